"""A PyTorch minibatch epoch: shuffled batches, a loss closure, and the chosen optimizer.

This is the device-independent path (CPU, CUDA, MPS). Compiled CPU kernels replace it behind the
same :class:`~latentrec.training.Trainable` interface where they are faster.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from latentrec._rng import torch_generator
from latentrec.errors import InvalidParameterError

__all__ = ["OPTIMIZERS", "MinibatchLoop", "make_optimizer", "resolve_device"]

OPTIMIZERS = ("sgd", "adam", "sparse_adam", "adagrad")
#: optimizers that need the embeddings to produce sparse gradients
SPARSE_OPTIMIZERS = ("sgd", "sparse_adam", "adagrad")


def resolve_device(device: str) -> torch.device:
    """``"auto"`` picks CUDA, then MPS, then the CPU; other names are checked for availability."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidParameterError(f"device {device!r} requested but CUDA is not available")
    if device == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise InvalidParameterError("device 'mps' requested but MPS is not available")
    try:
        return torch.device(device)
    except RuntimeError:
        raise InvalidParameterError(
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}"
        ) from None


def make_optimizer(name: str, parameters: Any, lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr)
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr)
    if name == "sparse_adam":
        return torch.optim.SparseAdam(list(parameters), lr=lr)
    if name == "adagrad":
        return torch.optim.Adagrad(parameters, lr=lr)
    raise InvalidParameterError(f"optimizer must be one of {list(OPTIMIZERS)}, got {name!r}")


@dataclass
class MinibatchLoop:
    """Runs epochs of ``loss(rows)`` over shuffled row batches of ``n_rows`` training rows.

    ``batch_size=None`` is full-batch training (the seed notebook's loop). ``lr_decay`` multiplies
    the learning rate after every epoch.
    """

    module: torch.nn.Module
    loss: Callable[[torch.Tensor], torch.Tensor]
    n_rows: int
    optimizer: str
    lr: float
    batch_size: int | None
    lr_decay: float = 1.0
    seed: int | None = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    shuffle: bool = True

    def __post_init__(self) -> None:
        self._optimizer = make_optimizer(self.optimizer, self.module.parameters(), self.lr)
        self._schedule = torch.optim.lr_scheduler.ExponentialLR(self._optimizer, self.lr_decay)
        self._generator = torch_generator(self.seed, "cpu")

    def train_epoch(self) -> dict[str, float]:
        self.module.train()
        if self.batch_size is None or self.batch_size >= self.n_rows:
            batches = [torch.arange(self.n_rows, device=self.device)]
        else:
            order = (torch.randperm(self.n_rows, generator=self._generator) if self.shuffle
                     else torch.arange(self.n_rows))
            batches = list(order.to(self.device).split(self.batch_size))
        total = torch.zeros((), device=self.device)
        for rows in batches:
            self._optimizer.zero_grad(set_to_none=True)
            loss = self.loss(rows)
            loss.backward()
            # the optimizers build sparse tensors from valid embedding gradients; opting out of
            # the invariant checks explicitly avoids their cost and torch's warning about them
            with torch.sparse.check_sparse_tensor_invariants(enable=False):
                self._optimizer.step()
            total += loss.detach() * len(rows)
        self._schedule.step()
        return {"loss": float(total) / self.n_rows}

    def state_dict(self) -> dict[str, Any]:
        """Optimizer, learning-rate schedule and shuffling generator (not the module)."""
        # optimizer state dicts hold references to the live moment tensors: copy them
        return copy.deepcopy({"optimizer": self._optimizer.state_dict(),
                              "schedule": self._schedule.state_dict(),
                              "generator": self._generator.get_state()})

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._optimizer.load_state_dict(state["optimizer"])
        self._schedule.load_state_dict(state["schedule"])
        self._generator.set_state(state["generator"])

"""One epoch loop for every model: progress, history, early stopping, divergence checks.

The trainer sees a model only through :class:`Trainable`. SGD/Adam minibatches, compiled SGD
kernels and ALS alternations each count as one ``train_epoch`` call, so early stopping and
progress reporting are written once.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from latentrec.errors import InvalidParameterError, TrainingDivergedError

__all__ = ["Callback", "EarlyStopping", "Trainable", "Trainer"]

logger = logging.getLogger(__name__)

#: Called after every epoch with ``(epoch, logs)``; returning ``True`` stops training.
Callback = Callable[[int, dict[str, float]], bool | None]


class Trainable(Protocol):
    """What the trainer needs from a model that is being fitted."""

    def train_epoch(self) -> dict[str, float]:
        """Run one epoch; return at least ``{"loss": ...}`` plus any validation metrics."""
        ...

    def state_dict(self) -> dict[str, torch.Tensor]:
        """A copy-able snapshot of the learned parameters."""
        ...

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore a snapshot taken by :meth:`state_dict`."""
        ...


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when ``monitor`` has not improved for ``patience`` epochs, then restore the best."""

    monitor: str = "valid_rmse"
    mode: str = "min"
    patience: int = 3
    min_delta: float = 0.0
    restore_best: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise InvalidParameterError(f"mode must be 'min' or 'max', got {self.mode!r}")
        if self.patience < 0:
            raise InvalidParameterError(f"patience must be >= 0, got {self.patience}")

    def improved(self, value: float, best: float) -> bool:
        if self.mode == "min":
            return value < best - self.min_delta
        return value > best + self.min_delta


@dataclass
class Trainer:
    """Runs ``epochs`` epochs of a :class:`Trainable` and returns the per-epoch history."""

    epochs: int
    early_stopping: EarlyStopping | None = None
    callbacks: Sequence[Callback] = ()
    show_progress: bool = True
    description: str = "training"

    def fit(self, model: Trainable) -> list[dict[str, float]]:
        if self.epochs < 1:
            raise InvalidParameterError(f"epochs must be >= 1, got {self.epochs}")
        history: list[dict[str, float]] = []
        best_value = math.inf if (self.early_stopping is None
                                  or self.early_stopping.mode == "min") else -math.inf
        best_state: dict[str, torch.Tensor] | None = None
        best_epoch = 0
        progress = _progress(self.epochs, self.description, self.show_progress)
        try:
            for epoch in range(1, self.epochs + 1):
                started = time.perf_counter()
                logs = dict(model.train_epoch())
                logs = {"epoch": float(epoch), **logs,
                        "seconds": time.perf_counter() - started}
                _check_finite(epoch, logs)
                history.append(logs)
                logger.debug("epoch %d: %s", epoch, logs)
                if progress is not None:
                    progress.set_postfix({k: f"{v:.4g}" for k, v in logs.items()
                                          if k not in ("epoch", "seconds")}, refresh=False)
                    progress.update(1)
                stop = any(bool(callback(epoch, logs)) for callback in self.callbacks)
                rule = self.early_stopping
                if rule is not None:
                    if rule.monitor not in logs:
                        raise InvalidParameterError(
                            f"early stopping watches {rule.monitor!r}, but training reports only "
                            f"{sorted(logs)}; pass validation data (valid=...)"
                        )
                    value = logs[rule.monitor]
                    if rule.improved(value, best_value):
                        best_value, best_epoch = value, epoch
                        if rule.restore_best:
                            best_state = {k: v.detach().clone()
                                          for k, v in model.state_dict().items()}
                    elif epoch - best_epoch >= rule.patience:
                        logger.info("early stop at epoch %d; best epoch %d (%s=%.5g)",
                                    epoch, best_epoch, rule.monitor, best_value)
                        stop = True
                if stop:
                    break
        finally:
            if progress is not None:
                progress.close()
        if best_state is not None and best_epoch != len(history):
            model.load_state_dict(best_state)
        if self.early_stopping is not None:
            for logs in history:
                logs["best"] = float(logs["epoch"] == best_epoch)
        return history


def _check_finite(epoch: int, logs: dict[str, float]) -> None:
    for name, value in logs.items():
        if not math.isfinite(value):
            raise TrainingDivergedError(
                f"training diverged at epoch {epoch}: {name} is {value}; lower lr or raise reg"
            )


def _progress(total: int, description: str, show: bool) -> Any:
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="epoch", leave=False, dynamic_ncols=True)

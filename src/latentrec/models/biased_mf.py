"""Biased matrix factorisation: the "SVD" of Funk and Koren."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Self

import numpy as np
import torch

from latentrec._rng import derive_seed, numpy_rng
from latentrec.data import Interactions
from latentrec.errors import InvalidParameterError
from latentrec.metrics import rmse
from latentrec.models._nn import (
    SGDConfig,
    fit_by_minibatches,
    validation_arrays,
)
from latentrec.models._solvers import SparseRows
from latentrec.models.als import fold_in_biased
from latentrec.models.base import FactorModel, train
from latentrec.training import Callback
from latentrec.training.minibatch import resolve_device

if TYPE_CHECKING:
    from latentrec.models._gibbs import GibbsTrainable

__all__ = ["BiasedMF"]

SOLVERS = ("auto", "kernel", "minibatch", "gibbs")
#: what the compiled kernel implements: plain SGD, or AdaGrad with one accumulator per row
KERNEL_OPTIMIZERS = ("sgd", "adagrad")
#: ratings from which the kernel runs the parallel blocked schedule by default
_PARALLEL_FROM = 1_000_000


@dataclasses.dataclass(frozen=True)
class BiasedMFConfig(SGDConfig):
    """Hyperparameters of :class:`BiasedMF`. Defaults were chosen on a validation split carved
    from MovieLens 100K ``u1.base`` (see docs/BENCHMARKS.md)."""

    factors: int = 100
    epochs: int = 30
    lr: float = 0.03
    lr_bias: float = 0.015
    reg: float = 0.06
    reg_bias: float = 0.01
    init_std: float = 0.01
    lr_decay: float = 0.95
    optimizer: str = "sgd"
    batch_size: int | None = 1024
    solver: str = "auto"
    blocks: int | None = None
    burn_in: int = 25
    clip: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_positive("lr_bias")
        self.check_non_negative("reg_bias")
        if self.blocks is not None:
            self.check_positive("blocks", integer=True)
        if isinstance(self.burn_in, bool) or not isinstance(self.burn_in, int) or (
                self.burn_in < 0):
            raise InvalidParameterError(f"burn_in must be an integer >= 0, got {self.burn_in!r}")
        if self.solver == "gibbs":
            if self.epochs <= self.burn_in:
                raise InvalidParameterError(
                    f"solver='gibbs' needs epochs > burn_in (sweeps kept = epochs - burn_in); "
                    f"got epochs={self.epochs}, burn_in={self.burn_in}")
            if self.patience is not None:
                raise InvalidParameterError(
                    "solver='gibbs' does not stop early (every extra sample helps); "
                    "leave patience=None")
        self.check_choice("solver", SOLVERS)
        if not isinstance(self.clip, bool):
            raise TypeError(f"clip must be True or False, got {type(self.clip).__name__}")


class BiasedMF(FactorModel):
    """Biased matrix factorisation: ``mean + b_u + b_i + p_u . q_i`` with L2 regularisation.

    Parameters (keyword-only, stored in ``model.config``)
    ----------------------------------------------------
    factors, epochs, lr, lr_bias, reg, reg_bias
        Latent dimension, passes over the data, learning rates of the factors and the biases,
        L2 on factors and on biases. Training works on ratings divided by their standard
        deviation, so these defaults suit any rating scale.
    init_std, lr_decay
        Standard deviation of the initial factors; learning-rate multiplier after each epoch.
    solver
        ``"kernel"``: compiled per-rating SGD on the CPU (numba, Funk's original update), with
        ``optimizer="sgd"`` (default) or ``"adagrad"`` (per-row adaptive steps ``lr /
        sqrt(sum of mean squared gradients)``, LIBMF's schedule: start from ``lr`` about 0.1);
        ``"minibatch"``: PyTorch minibatches with ``optimizer`` (``sgd``, ``adam``,
        ``sparse_adam``, ``adagrad``) and ``batch_size`` on any device; ``"auto"`` (default)
        takes the kernel on the CPU when it implements ``optimizer``, else minibatches.
        ``"gibbs"``: Bayesian biased MF (Salakhutdinov & Mnih 2008, with biases) sampled for
        ``epochs`` Gibbs sweeps, the first ``burn_in`` discarded; predictions average the
        samples (stored as one factor model). It needs no ``lr``/``reg`` tuning (the priors
        are learned) and is the most accurate setting; ``factors=10`` suits it.
    blocks
        For ``solver="kernel"``: ``1`` runs the serial per-rating SGD; ``b > 1`` splits the
        rating matrix into a ``b x b`` grid and updates blocks that share no user and no item
        in parallel (the LIBMF/DSGD scheme: no races, the same result for any thread count).
        Inside a block the ratings run in user order, which keeps memory access cheap; the
        order of the blocks changes every epoch. ``None`` (default) is serial (ratings
        shuffled every epoch) below a million ratings and 8 blocks above.
    clip
        Clip predictions to the training rating range (``predict`` only; ``recommend`` ranks by
        the raw score).
    patience
        With ``fit(..., valid=...)``, stop when ``valid_rmse`` has not improved for this many
        epochs and restore the best epoch.
    seed, device
        Same seed, same factors on the CPU. ``device`` is ``auto``, ``cpu``, ``cuda`` or ``mps``.

    Examples
    --------
    >>> from latentrec import BiasedMF
    >>> from latentrec.datasets import synthetic
    >>> model = BiasedMF(factors=8, epochs=5).fit(synthetic(200, 100), show_progress=False)
    >>> model.recommend([0, 1], k=3).shape
    (6, 4)
    """

    kind = "biased-mf"
    Config = BiasedMFConfig
    config: BiasedMFConfig

    def fit(self, data: Interactions, *, valid: Interactions | None = None,
            callbacks: Sequence[Callback] = (), show_progress: bool = True) -> Self:
        self._remember_data(data)
        if data.values is None:
            raise InvalidParameterError(
                "BiasedMF fits ratings; this data has no values (use an implicit-feedback model)"
            )
        global_mean = float(np.mean(data.values, dtype=np.float64))
        solver = self.config.solver
        device = resolve_device("cpu" if solver == "gibbs" and self.config.device == "auto"
                                else self.config.device)
        if solver == "gibbs" and device.type != "cpu":
            raise InvalidParameterError(f"solver='gibbs' runs on the CPU only; device is "
                                        f"{device.type!r}")
        kernel_optimizer = self.config.optimizer in KERNEL_OPTIMIZERS
        if solver == "auto":
            solver = "kernel" if device.type == "cpu" and kernel_optimizer else "minibatch"
        if solver == "kernel" and device.type != "cpu":
            raise InvalidParameterError(
                f"solver='kernel' runs on the CPU only; device is {device.type!r} "
                f"(use solver='minibatch')"
            )
        if solver == "kernel" and not kernel_optimizer:
            raise InvalidParameterError(
                f"solver='kernel' supports optimizer {' or '.join(map(repr, KERNEL_OPTIMIZERS))}"
                f", got {self.config.optimizer!r} (use solver='minibatch')")
        valid_arrays = None if valid is None else validation_arrays(self, valid)
        if solver == "minibatch":
            fit_by_minibatches(self, data, valid, callbacks, show_progress, biases=True,
                               global_mean=global_mean, scale=self.rating_std_)
            return self
        trainable: _KernelTrainable | GibbsTrainable
        if solver == "gibbs":
            from latentrec.models._gibbs import GibbsTrainable

            trainable = GibbsTrainable(self, data, valid_arrays)
        else:
            trainable = _KernelTrainable(self, data, global_mean, valid_arrays)
        train(self, trainable, epochs=self.config.epochs,
              monitor="valid_rmse" if valid is not None else None, mode="min",
              patience=self.config.patience, callbacks=callbacks, show_progress=show_progress)
        return self


    def _fold_in(self, rows: SparseRows) -> tuple[torch.Tensor, torch.Tensor | None]:
        # SGD's per-rating penalties, in original units: reg * std * n on the factors (they
        # were trained on ratings / std) and reg_bias * n on the bias
        config = self.config
        counts = rows.counts().clamp_min(1.0)[:, None]
        width = self.item_factors_.shape[1]
        reg = torch.cat([config.reg * self.rating_std_ * counts.expand(-1, width),
                         config.reg_bias * counts], dim=1)
        return fold_in_biased(self, rows, reg)


def _normal_rows(generator: np.random.Generator, rows: int, columns: int,
                 std: float) -> np.ndarray:
    """float32 ``N(0, std^2)`` draws, the same as one float64 draw cast down, made in chunks so
    no float64 copy of the whole matrix exists (100M ratings: 2.5 GB less at the peak)."""
    out = np.empty((rows, columns), dtype=np.float32)
    for start in range(0, rows, 1 << 16):
        stop = min(rows, start + (1 << 16))
        out[start:stop] = generator.standard_normal((stop - start, columns)) * std
    return out


class _KernelTrainable:
    """Per-rating SGD epochs in a compiled kernel, on ratings divided by their standard
    deviation ``s`` (so hyperparameters do not depend on the rating scale). Factors are
    published multiplied by ``sqrt(s)`` and biases by ``s``, which gives predictions in the
    original units."""

    def __init__(self, model: BiasedMF, data: Interactions, global_mean: float,
                 valid: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> None:
        from latentrec.models import _kernels

        config = model.config
        self.model = model
        self.config = config
        self.valid = valid
        self.global_mean = global_mean
        self.users = data.user_index.astype(np.int32)
        self.items = data.item_index.astype(np.int32)
        self.scale = model.rating_std_
        self.ratings = data.weights() / np.float32(self.scale)
        init = numpy_rng(config.seed)
        self.state = {
            "user_factors": _normal_rows(init, data.n_users, config.factors, config.init_std),
            "item_factors": _normal_rows(init, data.n_items, config.factors, config.init_std),
            "user_bias": np.zeros(data.n_users, dtype=np.float32),
            "item_bias": np.zeros(data.n_items, dtype=np.float32),
        }
        # AdaGrad accumulators start at 1, as in LIBMF: the first steps are about lr
        adaptive = config.optimizer == "adagrad"
        self.squares = (np.ones(data.n_users if adaptive else 0, dtype=np.float32),
                        np.ones(data.n_items if adaptive else 0, dtype=np.float32))
        self.shuffle = numpy_rng(derive_seed(config.seed, 1))
        self.lr = config.lr
        self.lr_bias = config.lr_bias
        self.blocks = config.blocks or (1 if len(self.ratings) < _PARALLEL_FROM else 8)
        self.epoch = 0
        if self.blocks > 1:
            if len(self.ratings) >= 2**31:
                raise InvalidParameterError("the blocked SGD kernel handles fewer than 2**31 "
                                            "ratings; use solver='minibatch'")
            # stored once in block order; each epoch only reorders the blocks
            strata = numpy_rng(derive_seed(config.seed, 2))
            order, self.block_ptr = _kernels.block_layout(
                self.users, self.items,
                (strata.permutation(data.n_users) % self.blocks).astype(np.int64),
                (strata.permutation(data.n_items) % self.blocks).astype(np.int64),
                data.n_users, self.blocks)
            # one array at a time, so only one extra copy is alive (100M ratings: 0.4 GB)
            self.users = self.users[order]
            self.items = self.items[order]
            self.ratings = self.ratings[order]

    def train_epoch(self) -> dict[str, float]:
        from latentrec.models import _kernels

        state = self.state
        weights = (state["user_factors"], state["item_factors"], state["user_bias"],
                   state["item_bias"], *self.squares, self.global_mean / self.scale, self.lr,
                   self.config.reg,
                   self.config.reg_bias, self.lr_bias)
        if self.blocks > 1:
            diagonals = self.shuffle.permutation(self.blocks).astype(np.int64)
            squared_error = _kernels.sgd_epoch_blocked(
                self.users, self.items, self.ratings, self.block_ptr, self.blocks, diagonals,
                *weights)
        else:
            order = self.shuffle.permutation(len(self.ratings))
            squared_error = _kernels.sgd_epoch(self.users[order], self.items[order],
                                               self.ratings[order], *weights)
        self.epoch += 1
        self.lr *= self.config.lr_decay
        self.lr_bias *= self.config.lr_decay
        logs = {"loss": float(squared_error) * self.scale**2 / len(self.ratings)}
        if self.valid is not None:
            self.publish()
            users, items, ratings = self.valid
            logs["valid_rmse"] = rmse(ratings, self.model._predict_aligned(users, items))
        return logs

    def publish(self) -> None:
        state = self.state
        root = float(np.sqrt(self.scale))
        self.model._set_factors(
            torch.from_numpy(state["user_factors"] * root),
            torch.from_numpy(state["item_factors"] * root),
            torch.from_numpy(state["user_bias"] * self.scale),
            torch.from_numpy(state["item_bias"] * self.scale),
            self.global_mean,
        )

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: torch.from_numpy(array.copy()) for name, array in self.state.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, tensor in state.items():
            self.state[name][...] = tensor.numpy()

"""Biased matrix factorisation: the "SVD" of Funk and Koren."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, ClassVar

import numpy as np
import torch

from latentrec._rng import derive_seed, numpy_rng
from latentrec.data import Interactions
from latentrec.errors import ConvergenceWarning, InvalidParameterError, ModelFileError
from latentrec.models._nn import MinibatchFactorTrainable, SGDConfig
from latentrec.models._sgd_setup import PARALLEL_FROM, normal_rows
from latentrec.models._solvers import SparseRows
from latentrec.models.base import Side, hyperparameters
from latentrec.models.factor import FactorModel, Prior, saved_seen_power
from latentrec.training import Trainable
from latentrec.training.minibatch import resolve_device
from latentrec.training.partition import Partition

__all__ = ["BiasedMF"]

#: which code trains the model (``engine``): the compiled CPU kernel or PyTorch minibatches
ENGINES = ("auto", "kernel", "minibatch")
#: what the compiled kernel implements: plain SGD, or AdaGrad with one accumulator per row
KERNEL_OPTIMIZERS = ("sgd", "adagrad")


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
    engine: str = "auto"
    blocks: int | None = None
    clip: bool = True
    identity: bool = True
    seen_items: bool = False
    seen_users: bool = False
    feature_reg: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_positive("lr_bias")
        self.check_non_negative("reg_bias")
        if self.blocks is not None:
            self.check_positive("blocks", integer=True)
        self.check_choice("engine", ENGINES)
        self.check_flag("clip")
        self.check_flag("identity")
        self.check_flag("seen_items")
        self.check_flag("seen_users")
        if self.feature_reg is not None:
            self.check_non_negative("feature_reg")


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
    engine
        Which code trains the model. ``"kernel"``: compiled per-rating SGD on the CPU (numba,
        Funk's original update), with ``optimizer="sgd"`` (default) or ``"adagrad"`` (per-row
        adaptive steps ``lr / sqrt(sum of mean squared gradients)``, LIBMF's schedule: start
        from ``lr`` about 0.1); ``"minibatch"``: PyTorch minibatches with ``optimizer``
        (``sgd``, ``adam``, ``sparse_adam``, ``adagrad``) and ``batch_size`` on any device;
        ``"auto"`` (default) takes the kernel on the CPU when it implements ``optimizer``, else
        minibatches. The Bayesian version of this model is :class:`~latentrec.BayesianMF`.
    blocks
        For ``engine="kernel"``: ``1`` runs the serial per-rating SGD; ``b > 1`` splits the
        rating matrix into a ``b x b`` grid and updates blocks that share no user and no item
        in parallel (the LIBMF/DSGD scheme: no races, the same result for any thread count).
        Inside a block the ratings run in user order, which keeps memory access cheap; the
        order of the blocks changes every epoch. ``None`` (default) is serial (ratings
        shuffled every epoch) below a million ratings and 8 blocks above.
    clip
        Clip predictions to the training rating range. ``recommend`` reports the same clipped
        predictions and ranks by the unclipped score.
    identity, seen_items, seen_users
        Side features and implicit-feedback groups (a factorization-machine-style hybrid).
        With ``fit(..., user_features=, item_features=)`` a user's vector is its own embedding
        (``identity=True``; ``False``: only for ids without features) plus the weighted sum of
        its features' embeddings, its bias likewise. ``seen_items=True`` adds the items each
        user rated in training, as a user feature group (SVD++'s implicit feedback:
        ``|N(u)|^-1/2 sum_{j in N(u)} y_j``); ``seen_users=True`` adds the users who rated
        each item, as an item feature group (the "flipped" group); both come from the
        training interactions only and have no biases. The penalties are per rating:
        ``reg`` on the ids' own embeddings, ``feature_reg`` (default: ``reg``) on each group
        embedding weighted by its design-matrix weight, ``reg_bias`` on all biases. With
        ``optimizer="sgd"`` on the CPU, ``engine="auto"`` trains features and ``seen_items``
        with the compiled kernel: per-rating SGD for the ids' own rows, AdaGrad steps of
        ``lr * 0.3 / sqrt(summed squared gradients)`` for the group embeddings, on gradients
        summed per user and, for the items' features, over a few thousand ratings (MovieLens
        100K's validation chose ``feature_reg=0.15`` with the other defaults).
        ``seen_users``, other optimizers and other devices train with PyTorch minibatches
        (``sparse_adam`` is refused; MovieLens 100K's validation chose ``optimizer="adam",
        lr=0.01, batch_size=4096, reg=0.2, feature_reg=0.04``).
        Items and users with features but no ratings join the model as cold ids; a new user
        folded in (``recommend_new_user``) gets the seen-items part of the items given.
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
    feedback = "explicit"
    quick_params: ClassVar[dict[str, Any]] = {"factors": 4, "epochs": 5}
    feature_sides = ("users", "items")
    #: the implicit-feedback groups' embeddings: ``y`` of every item (``seen_items``) and
    #: ``z`` of every user (``seen_users``), rows of ids added later are zero; ``None``
    #: without the group
    seen_item_factors_: torch.Tensor | None = None
    seen_user_factors_: torch.Tensor | None = None
    #: the groups' count normalisation (``n ** -seen_power``) the model was trained with
    seen_power_: float = 0.5

    def __init__(self, *, epochs: int = 30, patience: int | None = None, seed: int | None = 0,
                 factors: int = 100, lr: float = 0.03, reg: float = 0.06,
                 optimizer: str = "sgd", batch_size: int | None = 1024, init_std: float = 0.01,
                 lr_decay: float = 0.95, device: str = "auto", lr_bias: float = 0.015,
                 reg_bias: float = 0.01, engine: str = "auto", blocks: int | None = None,
                 clip: bool = True, identity: bool = True, seen_items: bool = False,
                 seen_users: bool = False, feature_reg: float | None = None) -> None:
        super().__init__(**hyperparameters(locals()))

    @classmethod
    def upgrade_model_file(cls, meta: dict[str, Any]) -> dict[str, Any]:
        # format 1 called the engine "solver" and had the Bayesian model as solver="gibbs"
        config = dict(meta.get("config") or {})
        if "solver" not in config:
            return meta
        solver = config.pop("solver")
        burn_in = config.pop("burn_in", 25)
        if solver == "gibbs":
            kept = ("epochs", "seed", "factors", "init_std", "clip", "device")
            return {**meta, "kind": "bayesian-mf",
                    "config": {**{k: config[k] for k in kept if k in config},
                               "burn_in": burn_in}}
        return {**meta, "config": {**config, "engine": solver}}

    def _distributed_trainable(self, data: Partition) -> Trainable:
        # DSGD moves item blocks between the ranks' compiled CPU kernels; the minibatch engine
        # has no distributed form (one process trains it on any device)
        from latentrec.models._dsgd import DSGDTrainable

        config = self.config
        if config.seen_items or config.seen_users:
            raise InvalidParameterError(
                "distributed BiasedMF does not train the implicit-feedback groups "
                "(seen_items, seen_users); train on one process")
        if config.engine == "minibatch":
            raise InvalidParameterError(
                "distributed BiasedMF trains with the compiled CPU kernel (DSGD); "
                "engine='minibatch' does not train distributed (use engine='kernel' or 'auto')")
        if config.device != "auto" and resolve_device(config.device).type != "cpu":
            raise InvalidParameterError(
                f"distributed BiasedMF runs the compiled kernel on the CPU only; device is "
                f"{config.device!r} (use device='cpu' or 'auto')")
        if config.optimizer not in KERNEL_OPTIMIZERS:
            raise InvalidParameterError(
                f"distributed BiasedMF (the compiled kernel) supports optimizer "
                f"{' or '.join(map(repr, KERNEL_OPTIMIZERS))}, got {config.optimizer!r}")
        return DSGDTrainable(self, data)

    def _trainable(self, data: Interactions) -> Trainable:
        global_mean = float(np.mean(data.weights(), dtype=np.float64))
        engine = self.config.engine
        device = resolve_device(self.config.device)
        kernel_optimizer = self.config.optimizer in KERNEL_OPTIMIZERS
        self.seen_item_factors_ = self.seen_user_factors_ = None
        if self._hybrid():
            from latentrec.models._hybrid_sgd import (
                SEEN_POWER,
                HybridKernelTrainable,
                HybridSGDTrainable,
            )

            self.seen_power_ = SEEN_POWER
            if self.config.optimizer == "sparse_adam":
                raise InvalidParameterError(
                    "optimizer='sparse_adam' takes sparse gradients only; the feature groups' "
                    "are dense: use optimizer='adam' with side features or seen_items/"
                    "seen_users")
            if engine == "auto":
                engine = ("kernel" if device.type == "cpu" and self.config.optimizer == "sgd"
                          and not self.config.seen_users and (self.config.blocks or 1) == 1
                          else "minibatch")
            if engine == "kernel":
                self._check_hybrid_kernel(device)
                return HybridKernelTrainable(self, data, global_mean=global_mean,
                                             scale=self.rating_std_)
            self._warn_minibatch_sgd(device, hybrid=True)
            return HybridSGDTrainable(self, data, global_mean=global_mean,
                                      scale=self.rating_std_)
        if engine == "auto":
            engine = "kernel" if device.type == "cpu" and kernel_optimizer else "minibatch"
        if engine == "kernel" and device.type != "cpu":
            raise InvalidParameterError(
                f"engine='kernel' runs on the CPU only; device is {device.type!r} "
                f"(use engine='minibatch')")
        if engine == "kernel" and not kernel_optimizer:
            raise InvalidParameterError(
                f"engine='kernel' supports optimizer {' or '.join(map(repr, KERNEL_OPTIMIZERS))}"
                f", got {self.config.optimizer!r} (use engine='minibatch')")
        if engine == "minibatch":
            self._warn_minibatch_sgd(device, hybrid=False)
            return MinibatchFactorTrainable(self, data, biases=True, global_mean=global_mean,
                                            scale=self.rating_std_)
        return _KernelTrainable(self, data, global_mean)

    def _warn_minibatch_sgd(self, device: torch.device, *, hybrid: bool) -> None:
        """Minibatches take a step on the mean loss of a batch, so ``lr`` (sized for the
        kernel's per-rating steps) moves them little: say so, and what trains well there."""
        config = self.config
        if config.optimizer != "sgd":
            return
        why = ("seen_users" if hybrid and config.seen_users
               else f"device {device.type!r}" if device.type != "cpu"
               else "engine='minibatch'" if config.engine == "minibatch"
               else f"blocks={config.blocks}")
        settings = ("lr=0.005, batch_size=4096, reg=0.2, feature_reg=0.04, epochs=12, chosen "
                    "on MovieLens 100K" if hybrid else "lr=0.005, batch_size=4096: "
                    "benchmarks/sgd_quality.py")
        warnings.warn(
            f"{'hybrid ' if hybrid else ''}BiasedMF with {why} trains with PyTorch "
            f"minibatches, where optimizer='sgd' learns slowly (the minibatch loss is a mean); "
            f"use optimizer='adam' ({settings})", ConvergenceWarning, stacklevel=5)

    def _check_hybrid_kernel(self, device: torch.device) -> None:
        """Refuse, in one line, what the hybrid kernel does not implement."""
        config = self.config
        if device.type != "cpu":
            raise InvalidParameterError(
                f"engine='kernel' runs on the CPU only; device is {device.type!r} "
                f"(use engine='minibatch')")
        if config.optimizer != "sgd":
            raise InvalidParameterError(
                f"engine='kernel' with side features or seen_items supports optimizer='sgd', "
                f"got {config.optimizer!r} (use engine='minibatch')")
        if config.blocks is not None and config.blocks > 1:
            raise InvalidParameterError(
                f"blocks={config.blocks}: the kernel with side features or seen_items runs "
                f"serially (blocks=None or 1)")
        if config.seen_users:
            raise InvalidParameterError(
                "engine='kernel' does not train seen_users (an item's sum over its users "
                "would cost that sum on every rating); use engine='minibatch' or 'auto'")

    def _hybrid(self) -> bool:
        """Whether this fit learns from side features or implicit-feedback groups."""
        return bool(self.config.seen_items or self.config.seen_users or any(
            self._feature_matrix(side) is not None for side in self.feature_sides))

    def _fold_in(self, rows: SparseRows, prior: Prior | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        # SGD's per-rating penalties, in original units: reg * std * n on the factors (they
        # were trained on ratings / std) and reg_bias * n on the bias
        config = self.config
        counts = rows.counts().clamp_min(1.0)[:, None]
        width = self.item_factors_.shape[1]
        reg = torch.cat([config.reg * self.rating_std_ * counts.expand(-1, width),
                         config.reg_bias * counts], dim=1)
        if self.seen_item_factors_ is not None:
            # SVD++: the given items' y, weighted as in training, join the features' vector
            # that the solution is drawn towards
            seen = self._seen_part(rows)
            prior = (seen, None) if prior is None else (prior[0].to(seen) + seen, prior[1])
        return self._fold_in_biased(rows, reg, prior)

    def _seen_part(self, rows: SparseRows) -> torch.Tensor:
        """``n^-seen_power sum_j y_j`` over each row's ``n`` items."""
        assert self.seen_item_factors_ is not None
        y = self.seen_item_factors_.cpu().float()
        counts = rows.counts().cpu()
        weights = torch.where(counts > 0, counts.clamp_min(1.0).pow(-self.seen_power_),
                              torch.zeros_like(counts))
        row_of, indices = rows.row_of.cpu(), rows.indices.cpu()
        return torch.zeros(rows.n_rows, y.shape[1]).index_add(
            0, row_of, y[indices] * weights[row_of][:, None])

    def _set_seen_factors(self, seen_items: torch.Tensor | None,
                          seen_users: torch.Tensor | None) -> None:
        """Called by the hybrid trainable's ``publish`` with the trained ids' ``y``/``z``."""
        self.seen_item_factors_ = None if seen_items is None else seen_items.detach()
        self.seen_user_factors_ = None if seen_users is None else seen_users.detach()

    def _add_ids(self, side: Side, ids: np.ndarray, matrix: Any) -> None:
        super()._add_ids(side, ids, matrix)
        # new ids were rated by no one / rated nothing in training: their y (z) rows are zero
        name = "seen_item_factors_" if side == "items" else "seen_user_factors_"
        table = getattr(self, name)
        if table is not None:
            setattr(self, name, torch.cat([table, table.new_zeros(len(ids), table.shape[1])]))

    def _tensors(self) -> dict[str, torch.Tensor]:
        tensors = super()._tensors()
        if self.seen_item_factors_ is not None:
            tensors["seen_item_factors"] = self.seen_item_factors_
        if self.seen_user_factors_ is not None:
            tensors["seen_user_factors"] = self.seen_user_factors_
        return tensors

    def _extra_meta(self) -> dict[str, Any]:
        meta = super()._extra_meta()
        if self.config.seen_items or self.config.seen_users:
            meta["seen_power"] = self.seen_power_
        return meta

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        super()._restore(tensors, meta)
        width = self.item_factors_.shape[1]
        self.seen_item_factors_ = self.seen_user_factors_ = None
        for flag, name, count in (("seen_items", "seen_item_factors", len(self.items_)),
                                  ("seen_users", "seen_user_factors", len(self.users_))):
            table = tensors.get(name)
            if getattr(self.config, flag) != (table is not None):
                raise ModelFileError(f"{name} is {'missing' if table is None else 'present'} "
                                     f"but the config has {flag}={getattr(self.config, flag)}")
            if table is None:
                continue
            if not table.is_floating_point() or tuple(table.shape) != (count, width):
                raise ModelFileError(f"{name} has shape {list(table.shape)}; expected "
                                     f"[{count}, {width}] (one row per "
                                     f"{name.split('_')[1]}, {width} factors)")
            # a fold-in sums at most every item's y, each weighted by at most 1
            largest = float(table.double().norm(dim=1).max()) if len(table) else 0.0
            if not largest * max(1, len(table)) < 1e18:
                raise ModelFileError(f"{name} holds non-finite or huge values; the file is "
                                     f"damaged or forged")
            setattr(self, f"{name}_", table)
        if self.config.seen_items or self.config.seen_users:
            self.seen_power_ = saved_seen_power(meta)


class _KernelTrainable:
    """Per-rating SGD epochs in a compiled kernel, on ratings divided by their standard
    deviation ``s`` (so hyperparameters do not depend on the rating scale). Factors are
    published multiplied by ``sqrt(s)`` and biases by ``s``, which gives predictions in the
    original units."""

    def __init__(self, model: BiasedMF, data: Interactions, global_mean: float) -> None:
        from latentrec.models import _kernels

        config = model.config
        self.model = model
        self.config = config
        self.global_mean = global_mean
        self.users = data.user_index.astype(np.int32)
        self.items = data.item_index.astype(np.int32)
        self.scale = model.rating_std_
        self.ratings = data.weights() / np.float32(self.scale)
        init = numpy_rng(config.seed)
        self.state = {
            "user_factors": normal_rows(init, data.n_users, config.factors, config.init_std),
            "item_factors": normal_rows(init, data.n_items, config.factors, config.init_std),
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
        self.blocks = config.blocks or (1 if len(self.ratings) < PARALLEL_FROM else 8)
        self.epoch = 0
        if self.blocks > 1:
            if len(self.ratings) >= 2**31:
                raise InvalidParameterError("the blocked SGD kernel handles fewer than 2**31 "
                                            "ratings; use engine='minibatch'")
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
        return {"loss": float(squared_error) * self.scale**2 / len(self.ratings)}

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

    def state_dict(self) -> dict[str, Any]:
        return {"parameters": {name: array.copy() for name, array in self.state.items()},
                "squares": [array.copy() for array in self.squares],
                "lr": self.lr, "lr_bias": self.lr_bias, "epoch": self.epoch,
                "shuffle": self.shuffle.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, array in state["parameters"].items():
            self.state[name][...] = array
        for mine, saved in zip(self.squares, state["squares"], strict=True):
            mine[...] = saved
        self.lr, self.lr_bias = float(state["lr"]), float(state["lr_bias"])
        self.epoch = int(state["epoch"])
        self.shuffle.bit_generator.state = state["shuffle"]

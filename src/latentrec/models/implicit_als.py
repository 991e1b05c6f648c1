"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) with frequency-scaled regularisation."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from latentrec._rng import torch_generator
from latentrec.data import Interactions
from latentrec.models._solvers import SparseRows, cg_solve, exact_solve
from latentrec.models.base import Side, hyperparameters
from latentrec.models.config import EpochConfig
from latentrec.models.factor import FactorModel, Prior
from latentrec.training import RankingValidator, Trainable
from latentrec.training.minibatch import resolve_device
from latentrec.training.partition import Partition

__all__ = ["ImplicitALS"]

CONFIDENCES = ("linear", "log")
SOLVERS = ("cg", "cholesky")


@dataclasses.dataclass(frozen=True)
class ImplicitALSConfig(EpochConfig):
    """Hyperparameters of :class:`ImplicitALS`."""

    epochs: int = 15
    factors: int = 64
    reg: float = 5.0
    reg_exponent: float = 0.5
    alpha: float = 5.0
    confidence: str = "log"
    epsilon: float = 1.0
    solver: str = "cg"
    cg_steps: int = 3
    init_std: float = 0.01
    report_loss: bool = False
    device: str = "auto"
    identity: bool = True
    feature_reg: float | None = None
    feature_cg_steps: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_positive("factors", "cg_steps", "feature_cg_steps", integer=True)
        self.check_positive("alpha", "init_std", "epsilon")
        self.check_non_negative("reg", "reg_exponent")
        if self.feature_reg is not None:
            self.check_non_negative("feature_reg")
        self.check_choice("confidence", CONFIDENCES)
        self.check_choice("solver", SOLVERS)
        self.check_flag("report_loss", "identity")


class ImplicitALS(FactorModel):
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008) with frequency-scaled regularisation.

    Every observed interaction with weight ``w`` gets preference 1 and confidence
    ``c = 1 + alpha * log(1 + w / epsilon)`` (``confidence="log"``, the default: counts such as
    plays are damped, and binary data gets ``1 + alpha * log 2``) or ``1 + alpha * w``
    (``"linear"``); every unobserved pair gets preference 0 and confidence 1. The penalty of a
    user (item) with ``n`` interactions is ``reg * n ** reg_exponent`` (frequency-scaled
    regularisation, Rendle et al., "Revisiting the Performance of iALS", 2021;
    ``reg_exponent=0`` is the classic constant penalty, 1 is ALS-WR).

    The defaults (64 factors, ``reg=5``, ``reg_exponent=0.5``, ``alpha=5``) were chosen on a
    validation split of MovieLens 100K and checked on Last.fm play counts and Gowalla
    (benchmarks/tune_implicit.py). Sparse catalogues with many items (Gowalla) gain from many
    more factors (512-1024) with a higher ``alpha`` (20-30, linear) and ``reg`` (10-20).

    ``report_loss=True`` adds the training loss (weighted squared error over all pairs plus the
    penalty, per interaction) to every epoch's history; it is off by default because it can
    cost half a sweep, and early stopping watches ``valid_ndcg@10`` instead.

    ``solver="cg"`` runs ``cg_steps`` conjugate-gradient steps per row and half-sweep from the
    previous factors, using the ``Y^T Y`` trick; ``"cholesky"`` solves every system exactly.
    Warm-started, 3 steps rank as well as the exact solve on the benchmarks above, at a
    fraction of its cost for many factors. Scores are ``p_u . q_i``; ``predict`` returns them
    too.

    Side features (``fit(data, user_features=..., item_features=...)``, see docs/features.md)
    make it a hybrid: an item's vector is its own embedding plus the sum of its features'
    embeddings, ``q_i = w_i + X_i E`` (users likewise). ``identity=True`` (the default) gives
    each id its own embedding, as LightFM's identity features; ``identity=False`` represents
    ids with features by their features alone (sides without features always keep their own
    embedding). The feature embeddings are extra blocks of the alternation: each id's whole
    vector is solved by the row solver above, its ridge drawn towards its features' part
    instead of zero, then the feature embeddings by ``feature_cg_steps`` Jacobi-preconditioned
    conjugate-gradient steps warm-started from the previous epoch (exact in the limit; every
    step lowers the objective). With ``identity=True`` that second block is a ridge regression
    of the whole vectors on the features, which never touches the interactions (one step per
    epoch ranked as well as three on Last.fm's tags, at about 1.7x the plain fit instead of
    2.5x); with ``identity=False`` it is the features' coupled normal equations. A feature
    column's penalty is ``feature_reg`` (default: ``reg``) times ``m ** reg_exponent``, ``m``
    the number of interactions it takes part in. Ids that have
    features but no interactions are scored by their features (cold start); see
    ``latentrec/models/_hybrid_als.py`` for the objective and the blocks.

    Examples
    --------
    >>> from latentrec import ImplicitALS
    >>> from latentrec.datasets import synthetic
    >>> data = synthetic(300, 200, feedback="implicit")
    >>> model = ImplicitALS(factors=8, epochs=3).fit(data, show_progress=False)
    >>> len(model.recommend([0, 1], k=5))
    10
    """

    kind = "ials"
    Config = ImplicitALSConfig
    config: ImplicitALSConfig
    feedback = "implicit"
    validator = RankingValidator
    quick_params: ClassVar[dict[str, Any]] = {"factors": 4, "epochs": 3}
    feature_sides: ClassVar[tuple[Side, ...]] = ("users", "items")

    def __init__(self, *, epochs: int = 15, patience: int | None = None, seed: int | None = 0,
                 factors: int = 64, reg: float = 5.0, reg_exponent: float = 0.5,
                 alpha: float = 5.0, confidence: str = "log", epsilon: float = 1.0,
                 solver: str = "cg", cg_steps: int = 3, init_std: float = 0.01,
                 report_loss: bool = False, device: str = "auto", identity: bool = True,
                 feature_reg: float | None = None, feature_cg_steps: int = 1) -> None:
        super().__init__(**hyperparameters(locals()))

    def _distributed_trainable(self, data: Partition) -> Trainable:
        from latentrec.models._distributed_als import DistributedImplicitALSTrainable

        return DistributedImplicitALSTrainable(self, data)

    def _trainable(self, data: Interactions) -> Trainable:
        if self._feature_matrix("users") is None and self._feature_matrix("items") is None:
            return _ImplicitALSTrainable(self, data)
        from latentrec.models._hybrid_als import HybridImplicitALSTrainable

        return HybridImplicitALSTrainable(self, data, _ImplicitALSTrainable(self, data))

    def _fold_in(self, rows: SparseRows, prior: Prior | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Each row's ``x`` solves ``(Y^T C Y + reg) x = Y^T C p + reg * m``: drawn towards the
        features' vector ``m`` (``prior``), or zero without one."""
        items = self.item_factors_.cpu()
        confidence = SparseRows(rows.indptr, rows.indices,
                                torch.from_numpy(self.confidence_weights(rows.weights.numpy())),
                                torch.empty(0), rows.n_cols)
        confidence.targets = confidence.weights + 1.0
        config = self.config
        reg = (config.reg * rows.counts().clamp_min(1.0).pow(config.reg_exponent))[:, None]
        extra = None if prior is None else reg * prior[0].cpu().to(items.dtype)
        return exact_solve(confidence, items, items.T @ items,
                           reg.expand(-1, items.shape[1]).contiguous(), extra), None

    def confidence_weights(self, values: np.ndarray) -> np.ndarray:
        """``c - 1`` for observed interaction weights ``values``."""
        config = self.config
        if config.confidence == "log":
            return (config.alpha * np.log1p(values / config.epsilon)).astype(np.float32)
        return (config.alpha * values).astype(np.float32)


class _ImplicitALSTrainable:
    def __init__(self, model: ImplicitALS, data: Interactions) -> None:
        config = model.config
        self.model = model
        self.config = config
        self.device = resolve_device(config.device)
        csr = data.to_csr().astype(np.float32)
        csr.data = model.confidence_weights(csr.data)
        self.user_rows, self.item_rows = csr, csr.T.tocsr()
        # the CPU kernel reads scipy's int32 CSR arrays directly; the torch solvers need
        # SparseRows (int64 indices, explicit targets), built only when they run
        self.compiled = self.device.type == "cpu" and config.solver == "cg"
        self.by_user = self.by_item = None
        if not self.compiled:
            self.by_user = SparseRows.from_csr(self.user_rows, self.device)
            self.by_item = SparseRows.from_csr(self.item_rows, self.device)
            for rows in (self.by_user, self.by_item):
                rows.targets = rows.weights + 1.0  # c * p with p = 1
        generator = torch_generator(config.seed)
        k = config.factors
        # users are solved first, from zero: only the item side needs a random start
        self.user_factors = torch.zeros(data.n_users, k, device=self.device)
        self.item_factors = (torch.randn(data.n_items, k, generator=generator)
                             * config.init_std).to(self.device)
        self.user_reg = self._reg(self.user_rows)
        self.item_reg = self._reg(self.item_rows)

    def _reg(self, rows: sp.csr_matrix) -> torch.Tensor:
        counts = torch.from_numpy(np.diff(rows.indptr).astype(np.float32)).clamp_min(1.0)
        penalty = self.config.reg * counts.pow(self.config.reg_exponent)
        return penalty.contiguous().to(self.device)

    def _half(self, rows: sp.csr_matrix, solver_rows: SparseRows | None, other: torch.Tensor,
              current: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
        """Solve one side; ``reg`` holds one penalty per row."""
        gram = other.T @ other
        if self.compiled:
            # the compiled kernel reads each row's partners once per CG step, in parallel
            from latentrec.models._als_kernels import cg_rows

            steps = self.config.cg_steps
            if len(current) < len(other):
                updated = current.contiguous()
                cg_rows(rows.indptr, rows.indices, rows.data, other.contiguous().numpy(),
                        gram.numpy(), False, reg.numpy(), updated.numpy(), steps)
                return updated
            # many rows: work where the Gram matrix is diagonal (see _als_kernels)
            eigenvalues, basis = torch.linalg.eigh(gram.double())
            basis = basis.to(other.dtype)
            rotated = current @ basis
            cg_rows(rows.indptr, rows.indices, rows.data, (other @ basis).numpy(),
                    torch.diag(eigenvalues.to(other.dtype)).numpy(), True, reg.numpy(),
                    rotated.numpy(), steps)
            return torch.mm(rotated, basis.T, out=current.contiguous())
        assert solver_rows is not None
        diagonal = reg[:, None].expand(-1, other.shape[1])
        if self.config.solver == "cholesky":
            return exact_solve(solver_rows, other, gram, diagonal)
        return cg_solve(solver_rows, other, gram, diagonal, current, self.config.cg_steps)

    def train_epoch(self) -> dict[str, float]:
        self.user_factors = self._half(self.user_rows, self.by_user, self.item_factors,
                                       self.user_factors, self.user_reg)
        self.item_factors = self._half(self.item_rows, self.by_item, self.user_factors,
                                       self.item_factors, self.item_reg)
        logs: dict[str, float] = {}
        if self.config.report_loss:
            logs["loss"] = self._loss()
        return logs

    def _loss(self) -> float:
        """The weighted squared error over all pairs plus the penalty, per interaction."""
        users, items = self.user_factors, self.item_factors
        everything = float(((users.T @ users) * (items.T @ items)).sum())
        if users.device.type == "cpu":
            from latentrec.models._als_kernels import implicit_loss_rows

            csr = self.user_rows
            observed = implicit_loss_rows(csr.indptr, csr.indices, csr.data,
                                          users.contiguous().numpy(),
                                          items.contiguous().numpy())
        else:
            rows = self.by_user
            assert rows is not None
            scores = rows.dots(users, items)
            confidence = rows.weights + 1.0
            observed = float((confidence * (1.0 - scores) ** 2 - scores**2).sum())
        penalty = float((self.user_reg[:, None] * users**2).sum()
                        + (self.item_reg[:, None] * items**2).sum())
        return (everything + observed + penalty) / max(1, self.user_rows.nnz)

    def publish(self) -> None:
        self.model._set_factors(self.user_factors, self.item_factors)

    def state_dict(self) -> dict[str, Any]:
        return {"user_factors": self.user_factors.clone(),
                "item_factors": self.item_factors.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # copies: the compiled half-sweeps update the factors in place
        self.user_factors = state["user_factors"].clone()
        self.item_factors = state["item_factors"].clone()

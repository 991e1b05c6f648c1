"""The trainables of :class:`~latentrec.BiasedMF` with side features and the
implicit-feedback groups (SVD++'s "items this user rated", the flipped "users who rated this
item"): PyTorch minibatches (:class:`HybridSGDTrainable`, described here) and the compiled
kernel (:class:`HybridKernelTrainable`, :mod:`latentrec.models._hybrid_kernel`).

A side's whole vector is a sum of groups, each a design matrix (one CSR row per id) times the
embeddings of its columns::

    P_u = p_u + sum_f X_uf e_f + sum_{j in N(u)} |N(u)|^-a y_j
    Q_i = q_i + sum_g X_ig e_g + sum_{v in N(i)} |N(i)|^-a z_v

with biases summed the same way for the features (the implicit groups have none). A batch
builds the vectors of its *distinct* users and items once (one ``embedding_bag`` per group,
weighted by the design matrix) and gathers them per rating, so SVD++'s sum over a user's items
costs once per user and batch, not once per rating. Penalties are those of the plain
minibatch engine, per rating: ``reg`` times the squared norm of the ids' own embeddings,
``feature_reg`` (default ``reg``) times that of each group embedding that enters the rating's
vectors, weighted by its design-matrix weight, ``reg_bias`` likewise for all biases.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from latentrec._rng import derive_seed, numpy_rng, torch_generator
from latentrec.data import Interactions
from latentrec.models._nn import FactorModule
from latentrec.models._sgd_setup import normal_rows
from latentrec.models.base import SIDES, Side
from latentrec.models.factor import FactorModel, hybrid_table
from latentrec.training.minibatch import SPARSE_OPTIMIZERS, MinibatchLoop, resolve_device

__all__ = ["SEEN_POWER", "HybridKernelTrainable", "HybridSGDTrainable", "seen_matrix"]

#: the implicit-feedback groups weigh each of an id's ``n`` interactions by ``n ** -SEEN_POWER``
#: (SVD++'s ``|N(u)|^-1/2``; 1.0 would be the mean). Chosen on a seeded 10% validation split
#: of MovieLens 100K ``u1.base`` (both groups, adam, lr 0.01, batch 4096, reg 0.15, best epoch
#: of 60): RMSE 0.9023 with 0.5, 0.9155 with 1.0.
SEEN_POWER = 0.5

#: the group names of a side: the side features, then the implicit-feedback group
SEEN_GROUP: dict[Side, str] = {"users": "seen_items", "items": "seen_users"}


def seen_matrix(rows: np.ndarray, columns: np.ndarray, shape: tuple[int, int]
                ) -> sp.csr_matrix:
    """The design matrix of an implicit-feedback group: one row per id, a column per
    interaction partner, each of a row's ``n`` entries ``n ** -SEEN_POWER`` (pairs counted
    once)."""
    matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, columns)),
                           shape=shape)
    matrix.sum_duplicates()
    matrix.sort_indices()
    matrix.data[:] = 1.0
    counts = np.diff(matrix.indptr).astype(np.float64)
    weights = np.zeros_like(counts)
    np.power(counts, -SEEN_POWER, out=weights, where=counts > 0)
    matrix.data = np.repeat(weights, np.diff(matrix.indptr)).astype(np.float32)
    return matrix


class _Design:
    """A design matrix as torch CSR tensors (it and its transpose) on one device, for
    products with the embeddings of its columns."""

    def __init__(self, matrix: sp.csr_matrix, device: torch.device) -> None:
        self.shape = matrix.shape
        self.nnz = matrix.nnz
        self.indptr = torch.from_numpy(matrix.indptr.astype(np.int64)).to(device)
        self.columns = torch.from_numpy(matrix.indices.astype(np.int64)).to(device)
        self.values = torch.from_numpy(matrix.data.astype(np.float32)).to(device)
        self.csr = _csr(matrix, device)
        self.csr_t = _csr(sp.csr_matrix(matrix.T), device)

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """Rows ``index`` as a CSR tensor."""
        starts = self.indptr[index]
        lengths = self.indptr[index + 1] - starts
        indptr = torch.zeros(len(index) + 1, dtype=torch.int64, device=index.device)
        torch.cumsum(lengths, 0, out=indptr[1:])
        total = int(indptr[-1])
        row_of = torch.repeat_interleave(torch.arange(len(index), device=index.device),
                                         lengths, output_size=total)
        positions = starts[row_of] + torch.arange(total, device=index.device) - indptr[:-1][
            row_of]
        return torch.sparse_csr_tensor(indptr, self.columns[positions],
                                       self.values[positions], (len(index), self.shape[1]),
                                       check_invariants=False)


def _csr(matrix: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    with warnings.catch_warnings():  # torch calls its CSR support beta; the products are exact
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr.astype(np.int64)),
            torch.from_numpy(matrix.indices.astype(np.int64)),
            torch.from_numpy(matrix.data.astype(np.float32)), size=matrix.shape,
            check_invariants=False).to(device)


#: a batch's rows are multiplied on their own when they hold less than this share of the
#: design matrix's entries; above it, the whole matrix is (torch's CSR product is fast, and
#: the transpose of a batch's rows costs a sort)
_ROWS_SHARE = 0.2


class _Product(torch.autograd.Function):
    """Rows ``index`` of ``design @ table``, the gradient by the transpose's product (dense:
    a batch's groups touch much of their tables; torch's embedding_bag backward sorted the
    batch's 40k entries, 80% of an epoch)."""

    @staticmethod
    def forward(ctx: Any, table: torch.Tensor, design: _Design, index: torch.Tensor
                ) -> torch.Tensor:
        ctx.design = design
        ctx.save_for_backward(index)
        starts = design.indptr[index]
        entries = int((design.indptr[index + 1] - starts).sum())
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            if entries < _ROWS_SHARE * design.nnz:
                rows = design.rows(index)
                ctx.rows = rows
                out: torch.Tensor = rows @ table
                return out
            ctx.rows = None
            whole: torch.Tensor = design.csr @ table
            return whole[index]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (index,) = ctx.saved_tensors
        design = ctx.design
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            if ctx.rows is not None:
                table_grad = ctx.rows.t() @ grad
            else:
                spread = grad.new_zeros(design.shape[0], grad.shape[1])
                spread[index] = grad  # the ids are distinct
                table_grad = design.csr_t @ spread
        return table_grad, None, None


class Group(nn.Module):
    """One group of a side: its design matrix (one row per training id) and the embeddings
    (optionally biases) of its columns."""

    def __init__(self, matrix: sp.csr_matrix, factors: int, *, bias: bool, init_std: float,
                 generator: torch.Generator) -> None:
        super().__init__()
        matrix = sp.csr_matrix(matrix, dtype=np.float32)
        matrix.sort_indices()
        self.matrix = matrix
        self.factors = nn.Parameter(torch.empty(matrix.shape[1], factors))
        with torch.no_grad():
            self.factors.normal_(0.0, init_std, generator=generator)
        self.bias = nn.Parameter(torch.zeros(matrix.shape[1], 1)) if bias else None
        self._devices(torch.device("cpu"))

    def _devices(self, device: torch.device) -> None:
        # the design matrix (and |X|, for the penalties) as plain attributes, not buffers:
        # the state holds what is learned; the matrix comes back with the data
        self.design = _Design(self.matrix, device)
        absolute = self.matrix
        if (self.matrix.data < 0).any():
            absolute = self.matrix.copy()
            absolute.data = np.abs(absolute.data)
        self.absolute = self.design if absolute is self.matrix else _Design(absolute, device)

    def _apply(self, fn: Any, recurse: bool = True) -> Group:
        super()._apply(fn, recurse)  # .to(device) moves the design matrix too
        self._devices(self.factors.device)
        return self

    def rows(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None,
                                                 torch.Tensor]:
        """For distinct ids ``index``: summed vectors, summed biases (``None`` without) and
        the penalties ``sum_f |x_f| ||e_f||^2`` and ``sum_f |x_f| b_f^2`` (columns of one
        tensor; the second only with biases)."""
        width = self.factors.shape[1]
        linear = self.factors if self.bias is None else torch.cat([self.factors, self.bias], 1)
        squares = self.factors.pow(2).sum(1, keepdim=True)
        if self.bias is not None:
            squares = torch.cat([squares, self.bias.pow(2)], 1)
        if self.absolute is self.design:  # one product for both (weights >= 0)
            both = _Product.apply(torch.cat([linear, squares], 1), self.design, index)
            summed, penalty = both[:, :linear.shape[1]], both[:, linear.shape[1]:]
        else:
            summed = _Product.apply(linear, self.design, index)
            penalty = _Product.apply(squares, self.absolute, index)
        bias = None if self.bias is None else summed[:, width]
        return summed[:, :width], bias, penalty

    def table(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Every id's summed vectors and biases (no gradient): ``X @ E``, ``X @ b``."""
        vectors = hybrid_table(None, self.matrix, self.factors.detach())
        bias = None if self.bias is None else hybrid_table(
            None, self.matrix, self.bias.detach()).reshape(-1)
        return vectors, bias


def publish_hybrid(model: FactorModel, scale: float,
                   tables: dict[Side, tuple[torch.Tensor, torch.Tensor]], global_mean: float,
                   features: dict[Side, tuple[torch.Tensor, torch.Tensor]],
                   seen_items: torch.Tensor | None, seen_users: torch.Tensor | None) -> None:
    """Hand a hybrid BiasedMF's tables, learned on ratings / ``scale``, to the model in the
    ratings' units (factors times ``sqrt(scale)``, biases times ``scale``): each side's whole
    vectors and biases, the feature embeddings and biases, the seen groups' embeddings."""
    root = scale**0.5
    (user_vectors, user_bias), (item_vectors, item_bias) = tables["users"], tables["items"]
    model._set_factors(user_vectors * root, item_vectors * root, user_bias * scale,
                       item_bias * scale, global_mean * scale)
    model.feature_factors_, model.feature_bias_ = {}, {}  # none from an earlier fit
    for side, (factors, bias) in features.items():
        model._set_feature_factors(side, factors * root, bias * scale)
    model._set_seen_factors(  # type: ignore[attr-defined]
        None if seen_items is None else seen_items * root,
        None if seen_users is None else seen_users * root)


class HybridSGDTrainable:
    """BiasedMF with feature groups, trained by torch minibatches on ratings / ``scale``
    (published factors times ``sqrt(scale)``, biases times ``scale``, as the plain engine)."""

    def __init__(self, model: FactorModel, data: Interactions, *, global_mean: float,
                 scale: float) -> None:
        config = model.config
        device = resolve_device(config.device)
        self.model, self.config, self.device, self.scale = model, config, device, scale
        sparse = config.optimizer in SPARSE_OPTIMIZERS
        generator = torch_generator(config.seed)
        self.module = FactorModule(
            data.n_users, data.n_items, config.factors, biases=True, sparse=sparse,
            init_std=config.init_std, global_mean=global_mean / scale, generator=generator,
        ).to(device)
        identity = bool(getattr(config, "identity", True))
        self.groups: dict[Side, dict[str, Group]] = {"users": {}, "items": {}}
        #: per side, 1.0 for ids that keep their own embedding (``identity=False``: ids
        #: without features); ``None``: every id keeps it
        self.own_used: dict[Side, torch.Tensor | None] = {"users": None, "items": None}
        for side in SIDES:  # drawn after the ids' embeddings, from the same stream
            matrix = model._feature_matrix(side)
            if matrix is None:
                continue
            self.groups[side]["features"] = Group(matrix, config.factors, bias=True,
                                                  init_std=config.init_std,
                                                  generator=generator)
            if not identity:
                self.own_used[side] = torch.from_numpy(
                    (np.diff(sp.csr_matrix(matrix).indptr) == 0).astype(np.float32)).to(device)
        users, items = data.user_index, data.item_index
        if getattr(config, "seen_items", False):
            self.groups["users"]["seen_items"] = Group(
                seen_matrix(users, items, (data.n_users, data.n_items)), config.factors,
                bias=False, init_std=config.init_std, generator=generator)
        if getattr(config, "seen_users", False):
            self.groups["items"]["seen_users"] = Group(
                seen_matrix(items, users, (data.n_items, data.n_users)), config.factors,
                bias=False, init_std=config.init_std, generator=generator)
        for groups in self.groups.values():
            for group in groups.values():
                group.to(device)
        trained = nn.ModuleList([self.module, *(g for side in SIDES
                                                for g in self.groups[side].values())])
        self.users = torch.from_numpy(users).to(device)
        self.items = torch.from_numpy(items).to(device)
        self.ratings = torch.from_numpy((data.weights() / scale).astype(np.float32)).to(device)
        self.reg, self.reg_bias = float(config.reg), float(config.reg_bias)
        feature_reg = getattr(config, "feature_reg", None)
        self.feature_reg = self.reg if feature_reg is None else float(feature_reg)
        self.loop = MinibatchLoop(trained, self._loss, len(data), config.optimizer,
                                  config.lr, config.batch_size, lr_decay=config.lr_decay,
                                  seed=derive_seed(config.seed, 1), device=device)

    def _side(self, side: Side, index: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Vectors, biases and penalties of ids ``index`` (one per rating): built for the
        distinct ids once, then gathered."""
        module = self.module
        own_table = module.user_factors if side == "users" else module.item_factors
        own_bias_table = module.user_bias if side == "users" else module.item_bias
        assert own_bias_table is not None
        distinct, inverse = torch.unique(index, return_inverse=True)
        vectors = own_table(distinct)
        bias = own_bias_table(distinct)[:, 0]
        penalty = self.reg * vectors.pow(2).sum(1) + self.reg_bias * bias.pow(2)
        used = self.own_used[side]
        if used is not None:
            keep = used[distinct]
            vectors, bias, penalty = vectors * keep[:, None], bias * keep, penalty * keep
        for group in self.groups[side].values():
            group_vectors, group_bias, group_penalty = group.rows(distinct)
            vectors = vectors + group_vectors
            penalty = penalty + self.feature_reg * group_penalty[:, 0]
            if group_bias is not None:
                bias = bias + group_bias
                penalty = penalty + self.reg_bias * group_penalty[:, 1]
        return vectors[inverse], bias[inverse], penalty[inverse]

    def _loss(self, rows: torch.Tensor) -> torch.Tensor:
        user_vectors, user_bias, user_penalty = self._side("users", self.users[rows])
        item_vectors, item_bias, item_penalty = self._side("items", self.items[rows])
        prediction = ((user_vectors * item_vectors).sum(1) + user_bias + item_bias
                      + self.module.global_mean)
        loss: torch.Tensor = (prediction - self.ratings[rows]).pow(2).mean()
        return loss + (user_penalty + item_penalty).mean()

    def train_epoch(self) -> dict[str, float]:
        logs = self.loop.train_epoch()
        logs["loss"] *= self.scale**2
        return logs

    def _table(self, side: Side) -> tuple[torch.Tensor, torch.Tensor]:
        """Every training id's whole vector and bias (scaled units, no gradient)."""
        module = self.module
        own = (module.user_factors if side == "users" else module.item_factors).weight
        own_bias = module.user_bias if side == "users" else module.item_bias
        assert own_bias is not None
        vectors, bias = own.detach().clone(), own_bias.weight.detach().reshape(-1).clone()
        used = self.own_used[side]
        if used is not None:
            vectors, bias = vectors * used[:, None], bias * used
        for group in self.groups[side].values():
            group_vectors, group_bias = group.table()
            vectors = vectors + group_vectors.to(vectors)
            if group_bias is not None:
                bias = bias + group_bias.to(bias)
        return vectors, bias

    def publish(self) -> None:
        features: dict[Side, tuple[torch.Tensor, torch.Tensor]] = {}
        seen: dict[str, torch.Tensor | None] = {"seen_items": None, "seen_users": None}
        for side in SIDES:
            for name, group in self.groups[side].items():
                factors = group.factors.detach().clone()
                if name == "features":
                    assert group.bias is not None
                    features[side] = factors, group.bias.detach().reshape(-1)
                else:
                    seen[name] = factors
        publish_hybrid(self.model, self.scale, {side: self._table(side) for side in SIDES},
                       float(self.module.global_mean), features, seen["seen_items"],
                       seen["seen_users"])

    def state_dict(self) -> dict[str, Any]:
        return {"module": {k: v.detach().clone() for k, v in self.module.state_dict().items()},
                "groups": {f"{side}/{name}": {k: v.detach().clone()
                                              for k, v in group.state_dict().items()}
                           for side in SIDES for name, group in self.groups[side].items()},
                "loop": self.loop.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        for side in SIDES:
            for name, group in self.groups[side].items():
                group.load_state_dict(state["groups"][f"{side}/{name}"])
        self.loop.load_state_dict(state["loop"])


class HybridKernelTrainable:
    """BiasedMF with side features and SVD++'s seen items, trained by the compiled per-rating
    SGD kernel (:mod:`latentrec.models._hybrid_kernel`) on ratings / ``scale``; published as
    :class:`HybridSGDTrainable` publishes. The flipped group (``seen_users``) is not here: an
    item's sum over its users would cost that sum on every rating."""

    def __init__(self, model: FactorModel, data: Interactions, *, global_mean: float,
                 scale: float) -> None:
        from latentrec.models._hybrid_kernel import FLUSH_EVERY, MIN_FLUSHES, group_by_user

        config = model.config
        self.model, self.config, self.scale = model, config, scale
        self.global_mean = global_mean / scale
        init = numpy_rng(config.seed)
        factors, std = config.factors, config.init_std
        identity = bool(getattr(config, "identity", True))
        # stored once grouped by user, in a random order inside each user
        self.shuffle = numpy_rng(derive_seed(config.seed, 1))
        order, self.rating_ptr = group_by_user(data.user_index, data.n_users,
                                               self.shuffle.permutation(len(data)))
        self.items = data.item_index[order].astype(np.int32)
        self.ratings = (data.weights()[order] / scale).astype(np.float32)
        counts = {"users": data.n_users, "items": data.n_items}
        self.own_rows = {side: normal_rows(init, counts[side], factors, std) for side in SIDES}
        self.own_bias = {side: np.zeros(counts[side], dtype=np.float32) for side in SIDES}
        self.own_used: dict[Side, np.ndarray] = {}
        #: per side: the design matrix (feature columns first, then the seen items), its
        #: columns' embeddings, the biases of its feature columns
        self.design: dict[Side, sp.csr_matrix] = {}
        #: the same as the kernel takes it: indptr (int64), columns (int32), values
        self.kernel_design: dict[Side, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.group_rows: dict[Side, np.ndarray] = {}
        self.group_bias: dict[Side, np.ndarray] = {}
        self.feature_columns: dict[Side, int] = {}
        #: AdaGrad's sums of squared gradients: one per group row, one per feature bias
        self.group_squares: dict[Side, np.ndarray] = {}
        self.bias_squares: dict[Side, np.ndarray] = {}
        for side in SIDES:
            features = model._feature_matrix(side)
            blocks = [] if features is None else [sp.csr_matrix(features, dtype=np.float32)]
            self.own_used[side] = np.ones(counts[side], dtype=np.float32)
            if features is not None and not identity:
                self.own_used[side] = (np.diff(blocks[0].indptr) == 0).astype(np.float32)
            if side == "users" and getattr(config, "seen_items", False):
                blocks.append(seen_matrix(data.user_index, data.item_index,
                                          (data.n_users, data.n_items)))
            design = sp.csr_matrix(sp.hstack(blocks, format="csr", dtype=np.float32)
                                   if blocks else np.zeros((counts[side], 0), np.float32))
            design.sort_indices()
            self.design[side] = design
            self.kernel_design[side] = (design.indptr.astype(np.int64),
                                        design.indices.astype(np.int32), design.data)
            self.feature_columns[side] = 0 if features is None else features.shape[1]
            self.group_rows[side] = normal_rows(init, design.shape[1], factors, std)
            self.group_bias[side] = np.zeros(self.feature_columns[side], dtype=np.float32)
            self.group_squares[side] = np.zeros(design.shape[1], dtype=np.float32)
            self.bias_squares[side] = np.zeros(self.feature_columns[side], dtype=np.float32)
        feature_reg = getattr(config, "feature_reg", None)
        self.feature_reg = config.reg if feature_reg is None else feature_reg
        self.lr, self.lr_bias = config.lr, config.lr_bias
        self.epoch = 0
        # small data still gets MIN_FLUSHES steps of its item groups an epoch
        self.flush_every = min(FLUSH_EVERY, max(1, -(-len(self.ratings) // MIN_FLUSHES)))

    def train_epoch(self) -> dict[str, float]:
        from latentrec.models._hybrid_kernel import GROUP_LR_RATIO, hybrid_sgd_epoch

        n_users = len(self.rating_ptr) - 1
        squared_error = hybrid_sgd_epoch(
            self.rating_ptr, self.items, self.ratings, self.shuffle.permutation(n_users),
            self.shuffle.integers(0, 2**62, n_users),
            self.own_rows["users"], self.own_rows["items"],
            self.own_bias["users"], self.own_bias["items"],
            self.own_used["users"], self.own_used["items"],
            *self.kernel_design["users"],
            self.group_rows["users"], self.group_bias["users"], self.group_squares["users"],
            self.bias_squares["users"],
            *self.kernel_design["items"],
            self.group_rows["items"], self.group_bias["items"], self.group_squares["items"],
            self.bias_squares["items"],
            self.global_mean, self.lr, float(self.config.reg), float(self.config.reg_bias),
            self.lr_bias, float(self.feature_reg), self.lr * GROUP_LR_RATIO, self.flush_every)
        self.epoch += 1
        self.lr *= self.config.lr_decay
        self.lr_bias *= self.config.lr_decay
        return {"loss": float(squared_error) * self.scale**2 / len(self.ratings)}

    def _table(self, side: Side) -> tuple[torch.Tensor, torch.Tensor]:
        """Every training id's whole vector and bias (scaled units)."""
        used = self.own_used[side]
        design = self.design[side]
        vectors = self.own_rows[side] * used[:, None] + design @ self.group_rows[side]
        features = design[:, :self.feature_columns[side]]
        bias = self.own_bias[side] * used + features @ self.group_bias[side]
        return (torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32)))

    def publish(self) -> None:
        features: dict[Side, tuple[torch.Tensor, torch.Tensor]] = {}
        seen_items = None
        for side in SIDES:
            columns = self.feature_columns[side]
            rows = torch.from_numpy(self.group_rows[side].copy())
            if columns:
                features[side] = rows[:columns], torch.from_numpy(self.group_bias[side].copy())
            if side == "users" and rows.shape[0] > columns:
                seen_items = rows[columns:]
        publish_hybrid(self.model, self.scale, {side: self._table(side) for side in SIDES},
                       self.global_mean, features, seen_items, None)

    def state_dict(self) -> dict[str, Any]:
        return {"arrays": {f"{name}/{side}": table[side].copy() for side in SIDES
                           for name, table in self._arrays().items()},
                "lr": self.lr, "lr_bias": self.lr_bias, "epoch": self.epoch,
                "shuffle": self.shuffle.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for side in SIDES:
            for name, table in self._arrays().items():
                table[side][...] = state["arrays"][f"{name}/{side}"]
        self.lr, self.lr_bias = float(state["lr"]), float(state["lr_bias"])
        self.epoch = int(state["epoch"])
        self.shuffle.bit_generator.state = state["shuffle"]

    def _arrays(self) -> dict[str, dict[Side, np.ndarray]]:
        return {"own_rows": self.own_rows, "own_bias": self.own_bias,
                "group_rows": self.group_rows, "group_bias": self.group_bias,
                "group_squares": self.group_squares, "bias_squares": self.bias_squares}

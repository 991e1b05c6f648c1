"""Gibbs sweeps of :class:`~latentrec.BayesianMF` with feature groups: a block-relational
factorisation machine (user-side x item-side interactions only).

With ratings standardised (``z = (r - mean) / std``) the model is::

    z_ui ~ N(P_u . Q_i + B_u + C_i, 1 / (alpha tau_u))
    [P_u, B_u] = [p_u, b_u]                              (identity, optional)
               + sum_f X_uf [e_f, d_f]                    (user features)
               + sum_{j in N(u)} |N(u)|^-a [y_j, c_j]     (seen_items: SVD++'s implicit group)

and ``[Q_i, C_i]`` likewise with the item features and (``seen_users``) the users who rated
``i``. ``N(u)`` are the training interactions only; ``a`` is :data:`SEEN_POWER` (SVD++'s
1/2; 0.6 here, chosen on validation). Every parameter block ``theta`` (a
``k + 1``-vector: an id's own ``[p, b]``, a feature value's ``[e, d]``, a seen item's
``[y, c]``) belongs to a group (the ids, each feature field, each seen group) with its own
Normal-Gamma prior per coordinate (mean ``mu_g``, precision ``lambda_g``, sampled every sweep
as in libFM and myFM).

**Sampling** (Rendle 2013, "Scaling factorization machines to relational data"): with the item
side fixed, the user side is a linear regression in ``R_u = [P_u, B_u]`` space with partner
``f_i = [Q_i, 1]`` and target ``z_ui - C_i``. Per user keep ``A_u = sum_i tau_u f_i f_i^T`` and
the residual gradient ``g_u = sum_i tau_u (z_ui - C_i) f_i - A_u R_u``. The conditional of a
block ``theta`` whose design column has weights ``x_u`` is Gaussian with::

    precision  Lambda_g + alpha M,                M = sum_u x_u^2 A_u
    linear     Lambda_g mu_g + alpha (sum_u x_u g_u + M theta)

an exact draw; then ``R_u += x_u delta`` and ``g_u -= x_u A_u delta`` for the affected users.
The ids' own blocks touch one user each and are drawn in parallel; feature and seen blocks are
drawn one after the other (they share users), each in ``O(nnz(column) d^2 + d^3)``. A sweep
costs ``O((ratings + nnz(design)) d^2)``: the item side follows the same way, then the noise.

The posterior mean is kept as in :mod:`latentrec.models._gibbs`, a running sum of samples side
by side, with each side's rows stacked as ``[R (training ids); theta (feature and seen
blocks)]``: the QR + SVD compression is a linear map of the rows, so the blocks' embeddings
stay in the basis of the effective tables and a cold id's ``X E`` scores exactly like a
training id's vector.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numba
import numpy as np
import scipy.sparse as sp
import torch
from numba import njit, prange

from latentrec._rng import numpy_rng
from latentrec.errors import InvalidParameterError
from latentrec.metrics import rmse
from latentrec.models._gibbs import (
    _ALPHA_START,
    _BUFFER_COLUMNS,
    _KEEP_RANK,
    _PUBLISH_RANK,
    _SERIAL_WORK,
    _csr_layout,
    _end_sweep,
    _sample_normal_gamma,
    compress_factors,
)
from latentrec.models._kernels import draw_gaussian

if TYPE_CHECKING:
    from latentrec.data import Interactions
    from latentrec.models.factor import FactorModel
    from latentrec.training import Validator

__all__ = ["SEEN_POWER", "HybridGibbsTrainable", "seen_design"]

#: The implicit-feedback groups weigh each of an id's ``n`` training interactions by
#: ``n ** -SEEN_POWER`` (SVD++'s ``|N(u)|^-1/2``). On the validation split of
#: ``benchmarks/warm_features.py --valid`` (10% of MovieLens 100K ``u1.base``; factors=10, 150
#: sweeps, seed 0) with both seen groups and the features, RMSE 0.8801 for 0.5, 0.8825 for
#: 0.25, 0.8868 for 1.0 (the mean), 0.8934 for 0 (the sum); with the seen groups alone 0.8825
#: for 0.5 and 0.8962 for 1.0. At factors=16 with 400 samples (seeds 0 and 1): 0.8784 for 0.4,
#: 0.8768 for 0.5, 0.8760 for 0.6, 0.8768 for 0.75.
SEEN_POWER = 0.6
#: Per-user noise of the block sampler: ``tau_u ~ Gamma(nu / 2, rate nu / 2)`` with this ``nu``
#: (the plain sampler keeps its own, 2). On the same validation split (factors=16,
#: 400 samples, seeds 0 and 1, SEEN_POWER 0.5) nu = 1, 2, 4, 8, 16 gave 0.8775, 0.8768,
#: 0.8759, 0.8759, 0.8758; with SEEN_POWER 0.6 and nu = 8, seeds 0-2: 0.8753 against 0.8767.
_BLOCK_NOISE_DOF = 8.0


def seen_design(rows: np.ndarray, columns: np.ndarray, shape: tuple[int, int],
                power: float | None = None) -> sp.csr_matrix:
    """The design matrix of an implicit-feedback group from training pairs: one row per id, a
    column per partner, each of a row's ``n`` entries ``n ** -power`` (pairs counted once;
    ``power`` defaults to :data:`SEEN_POWER`)."""
    power = SEEN_POWER if power is None else power
    matrix = sp.csr_matrix((np.ones(len(rows)), (rows, columns)), shape=shape)
    matrix.sum_duplicates()
    matrix.sort_indices()
    counts = np.diff(matrix.indptr).astype(np.float64)
    weights = np.zeros_like(counts)
    np.power(counts, -power, out=weights, where=counts > 0)
    matrix.data = np.repeat(weights, np.diff(matrix.indptr))
    return matrix


# ---------------------------------------------------------------------- kernels
@njit(cache=True, parallel=True, fastmath=True)
def side_statistics(indptr: np.ndarray, indices: np.ndarray, targets: np.ndarray,
                    partners: np.ndarray, partner_weights: np.ndarray,
                    row_weights: np.ndarray, rows: np.ndarray, gram: np.ndarray,
                    residual: np.ndarray) -> None:
    """Per row ``a`` of one side: ``gram[a] = sum_t c_t f f^T`` and ``residual[a] = sum_t c_t
    (targets_t - partner bias) f - gram[a] rows[a]`` with ``f = [partners[j, :k], 1]``,
    ``c_t = row_weights[a] partner_weights[j]`` (the partner's bias is its last column)."""
    n = indptr.shape[0] - 1
    d = partners.shape[1]
    k = d - 1
    for a in prange(n):
        g = gram[a]
        r = residual[a]
        for x in range(d):
            r[x] = 0.0
            for y in range(d):
                g[x, y] = 0.0
        f = np.empty(d)
        for t in range(indptr[a], indptr[a + 1]):
            j = indices[t]
            for x in range(k):
                f[x] = partners[j, x]
            f[k] = 1.0
            w = partner_weights[j] * row_weights[a]
            tv = (targets[t] - partners[j, k]) * w
            for x in range(d):
                wfx = w * f[x]
                r[x] += tv * f[x]
                for y in range(d):
                    g[x, y] += wfx * f[y]
        for x in range(d):
            s = 0.0
            for y in range(d):
                s += g[x, y] * rows[a, y]
            r[x] -= s


@njit(cache=True, parallel=True)
def sample_own(gram: np.ndarray, residual: np.ndarray, rows: np.ndarray, own: np.ndarray,
               prior_mean: np.ndarray, prior_precision: np.ndarray, alpha: float,
               normals: np.ndarray) -> None:
    """Draw every id's own block (design weight 1, one id each: independent, in parallel) and
    update ``rows`` and ``residual`` by the change."""
    n, d = own.shape
    for a in prange(n):
        prec = np.empty((d, d))
        lin = np.empty(d)
        new = np.empty(d)
        for x in range(d):
            s = 0.0
            for y in range(d):
                prec[x, y] = alpha * gram[a, x, y]
                s += gram[a, x, y] * own[a, y]
            prec[x, x] += prior_precision[x]
            lin[x] = prior_precision[x] * prior_mean[x] + alpha * (residual[a, x] + s)
        draw_gaussian(prec, lin, normals[a], new)
        for x in range(d):
            new[x] -= own[a, x]
            own[a, x] += new[x]
            rows[a, x] += new[x]
        for x in range(d):
            s = 0.0
            for y in range(d):
                s += gram[a, x, y] * new[y]
            residual[a, x] -= s


@njit(cache=True, fastmath=True)
def sample_blocks(col_ptr: np.ndarray, col_rows: np.ndarray, col_values: np.ndarray,
                  block_group: np.ndarray, gram: np.ndarray, residual: np.ndarray,
                  rows: np.ndarray, blocks: np.ndarray, means: np.ndarray,
                  precisions: np.ndarray, alpha: float, normals: np.ndarray) -> None:
    """Draw the feature and seen blocks one after the other (block ``b``'s design column:
    rows ``col_rows[col_ptr[b]:col_ptr[b + 1]]`` with weights ``col_values``), each from its
    exact conditional given all others, then update the rows it enters."""
    n_blocks, d = blocks.shape
    prec = np.empty((d, d))
    lin = np.empty(d)
    new = np.empty(d)
    for b in range(n_blocks):
        group = block_group[b]
        for x in range(d):
            lin[x] = 0.0
            for y in range(d):
                prec[x, y] = 0.0
        for t in range(col_ptr[b], col_ptr[b + 1]):
            a = col_rows[t]
            w = col_values[t]
            ww = w * w
            for x in range(d):
                lin[x] += w * residual[a, x]
                for y in range(d):
                    prec[x, y] += ww * gram[a, x, y]
        for x in range(d):
            s = 0.0
            for y in range(d):
                s += prec[x, y] * blocks[b, y]
            lin[x] = precisions[group, x] * means[group, x] + alpha * (lin[x] + s)
        for x in range(d):
            for y in range(x + 1):
                prec[x, y] *= alpha
            prec[x, x] += precisions[group, x]
        draw_gaussian(prec, lin, normals[b], new)
        for x in range(d):
            new[x] -= blocks[b, x]
            blocks[b, x] += new[x]
        for t in range(col_ptr[b], col_ptr[b + 1]):
            a = col_rows[t]
            w = col_values[t]
            for x in range(d):
                rows[a, x] += w * new[x]
            for x in range(d):
                s = 0.0
                for y in range(d):
                    s += gram[a, x, y] * new[y]
                residual[a, x] -= w * s


@njit(cache=True, parallel=True)
def squared_errors(indptr: np.ndarray, indices: np.ndarray, targets: np.ndarray,
                   rows: np.ndarray, partners: np.ndarray, out: np.ndarray) -> None:
    """Each row's sum of squared errors ``(z - R_a[:k] . R_j[:k] - R_a[k] - R_j[k])^2``."""
    n = indptr.shape[0] - 1
    k = rows.shape[1] - 1
    for a in prange(n):
        total = 0.0
        for t in range(indptr[a], indptr[a + 1]):
            j = indices[t]
            e = targets[t] - rows[a, k] - partners[j, k]
            for x in range(k):
                e -= rows[a, x] * partners[j, x]
            total += e * e
        out[a] = total


# ---------------------------------------------------------------------- one side
class _Side:
    """One side's parameters: own blocks (identity), feature and seen blocks with their
    design, the effective rows ``R``, and the group of every block."""

    def __init__(self, n: int, dim: int, identity: bool, groups: list[tuple[str, sp.csr_matrix]],
                 rng: np.random.Generator, init_std: float) -> None:
        k = dim - 1
        self.n = n
        self.identity = identity
        self.own = np.zeros((n, dim)) if identity else np.zeros((0, dim))
        if identity:
            self.own[:, :k] = rng.standard_normal((n, k)) * init_std
        self.group_names = [name for name, _ in groups]
        design = (sp.hstack([matrix for _, matrix in groups], format="csr", dtype=np.float64)
                  if groups else sp.csr_matrix((n, 0)))
        self.design = design
        widths = [matrix.shape[1] for _, matrix in groups]
        self.group_bounds = np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)
        # group 0 is the ids' own blocks (whether used or not); feature groups follow
        self.block_group = np.repeat(np.arange(1, len(groups) + 1), widths).astype(np.int64)
        csc = design.tocsc()
        csc.sort_indices()
        self.col_ptr = csc.indptr.astype(np.int64)
        self.col_rows = csc.indices.astype(np.int64)
        self.col_values = csc.data.astype(np.float64)
        self.blocks = np.zeros((design.shape[1], dim))
        self.blocks[:, :k] = rng.standard_normal((design.shape[1], k)) * init_std
        self.rows = np.zeros((n, dim))
        self.means = np.zeros((len(groups) + 1, dim))
        self.precisions = np.ones((len(groups) + 1, dim))
        self.refresh()

    def refresh(self) -> None:
        """``R = own + design @ blocks`` (recomputed once a sweep against drift)."""
        self.rows[...] = self.design @ self.blocks
        if self.identity:
            self.rows += self.own

    def sample_priors(self, rng: np.random.Generator) -> None:
        if self.identity:
            mean, precision = _sample_normal_gamma(self.own, rng)
            self.means[0], self.precisions[0] = mean, np.diag(precision)
        for g in range(len(self.group_names)):
            block = self.blocks[self.group_bounds[g]:self.group_bounds[g + 1]]
            mean, precision = _sample_normal_gamma(block, rng)
            self.means[g + 1], self.precisions[g + 1] = mean, np.diag(precision)

    def stacked(self) -> np.ndarray:
        """``[R; blocks]``: what the running sums keep."""
        return np.concatenate([self.rows, self.blocks])


class HybridGibbsTrainable:
    """Gibbs sweeps of :class:`~latentrec.BayesianMF` with feature and implicit-feedback
    groups (see the module docstring); :meth:`publish` sets the effective tables, the feature
    embeddings and the seen-items embeddings of the posterior mean."""

    def __init__(self, model: FactorModel, data: Interactions) -> None:
        config = model.config
        if data.values is None:
            raise InvalidParameterError("BayesianMF fits ratings; this data has no values")
        self.model = model
        self.burn_in = int(config.burn_in)
        self.sweep = 0
        self.rng = numpy_rng(config.seed)
        self.per_user_noise = config.noise == "per-user"
        self.noise_dof = _BLOCK_NOISE_DOF
        k = int(config.factors)
        self.k = k
        dim = k + 1
        values = np.asarray(data.values, dtype=np.float64)
        self.global_mean = float(np.mean(values))
        self.scale = model.rating_std_
        z = (values - self.global_mean) / self.scale
        self.n_ratings = len(z)
        users = data.user_index.astype(np.int64)
        items = data.item_index.astype(np.int64)
        n_users, n_items = data.n_users, data.n_items
        self.user_counts = np.bincount(users, minlength=n_users).astype(np.float64)
        order, self.user_ptr, self.user_cols = _csr_layout(users, items, n_users)
        self.z_by_user = z[order]
        order, self.item_ptr, self.item_cols = _csr_layout(items, users, n_items)
        self.z_by_item = z[order]
        identity = bool(getattr(config, "identity", True))
        sides: dict[str, _Side] = {}
        self.feature_columns: dict[str, int] = {}
        for side, n, seen_flag, seen_shape, (rows, cols) in (
                ("users", n_users, "seen_items", (n_users, n_items), (users, items)),
                ("items", n_items, "seen_users", (n_items, n_users), (items, users))):
            groups: list[tuple[str, sp.csr_matrix]] = []
            matrix = model._feature_matrix(side)  # type: ignore[arg-type]
            if matrix is not None:
                fitted = model.features_[side]  # type: ignore[index]
                names = fitted.columns()["feature"].to_numpy()
                matrix = sp.csr_matrix(matrix, dtype=np.float64)
                start = 0
                for stop in [*np.flatnonzero(names[1:] != names[:-1]) + 1, len(names)]:
                    groups.append((str(names[start]), matrix[:, start:stop]))
                    start = stop
                self.feature_columns[side] = matrix.shape[1]
            if getattr(config, seen_flag, False):
                groups.append((seen_flag, seen_design(rows, cols, seen_shape)))
            # sides without features always keep their own embedding
            sides[side] = _Side(n, dim, identity or matrix is None, groups, self.rng,
                                config.init_std)
        self.users, self.items = sides["users"], sides["items"]
        self.seen_items = bool(getattr(config, "seen_items", False))
        self.seen_power = SEEN_POWER
        self.alpha = _ALPHA_START
        self.user_noise = np.ones(n_users)
        self.item_noise = np.ones(n_items)
        self.user_gram = np.zeros((n_users, dim, dim))
        self.user_residual = np.zeros((n_users, dim))
        self.item_gram = np.zeros((n_items, dim, dim))
        self.item_residual = np.zeros((n_items, dim))
        nnz = self.n_ratings + self.users.design.nnz + self.items.design.nnz
        self.serial = nnz * dim * dim < _SERIAL_WORK
        n_left = n_users + self.users.blocks.shape[0]
        n_right = n_items + self.items.blocks.shape[0]
        capacity = _KEEP_RANK + _BUFFER_COLUMNS + k
        self.user_sum = np.zeros((n_left, capacity))
        self.item_sum = np.zeros((n_right, capacity))
        self.width = 0
        self.user_bias_sum = np.zeros(n_left)
        self.item_bias_sum = np.zeros(n_right)
        self.samples = 0

    # ------------------------------------------------------------------ Trainable
    def train_epoch(self) -> dict[str, float]:
        """One Gibbs sweep: per side, the groups' priors given their blocks, then the ids'
        own blocks and the feature and seen blocks given the other side; then ``alpha`` and
        (per-user noise) each ``tau_u``."""
        previous = numba.get_num_threads()
        if self.serial:
            numba.set_num_threads(1)
        try:
            self._sample_side(self.users, self.items, self.user_ptr, self.user_cols,
                              self.z_by_user, self.item_noise, self.user_noise,
                              self.user_gram, self.user_residual)
            self._sample_side(self.items, self.users, self.item_ptr, self.item_cols,
                              self.z_by_item, self.user_noise, self.item_noise,
                              self.item_gram, self.item_residual)
            user_errors = np.empty(self.users.n)
            squared_errors(self.user_ptr, self.user_cols, self.z_by_user, self.users.rows,
                           self.items.rows, user_errors)
        finally:
            numba.set_num_threads(previous)
        return _end_sweep(self, user_errors)

    def _sample_side(self, side: _Side, other: _Side, indptr: np.ndarray, cols: np.ndarray,
                     targets: np.ndarray, partner_weights: np.ndarray,
                     row_weights: np.ndarray, gram: np.ndarray, residual: np.ndarray) -> None:
        side.sample_priors(self.rng)
        side.refresh()
        side_statistics(indptr, cols, targets, other.rows, partner_weights, row_weights,
                        side.rows, gram, residual)
        dim = self.k + 1
        if side.identity:
            sample_own(gram, residual, side.rows, side.own, side.means[0], side.precisions[0],
                       self.alpha, np.asarray(self.rng.standard_normal((side.n, dim))))
        if side.blocks.shape[0]:
            sample_blocks(side.col_ptr, side.col_rows, side.col_values, side.block_group,
                          gram, residual, side.rows, side.blocks, side.means, side.precisions,
                          self.alpha,
                          np.asarray(self.rng.standard_normal(side.blocks.shape)))

    def publish(self) -> None:
        """Set the model's effective tables, feature embeddings (and biases) and seen-items
        embeddings to the posterior mean, in rating units."""
        k = self.k
        if self.samples == 0:
            left, right = self.users.stacked(), self.items.stacked()
            user_factors, item_factors = left[:, :k], right[:, :k]
            user_bias, item_bias = left[:, k], right[:, k]
            weight = 1.0
        else:
            user_factors, item_factors = compress_factors(self.user_sum[:, :self.width],
                                                   self.item_sum[:, :self.width], _PUBLISH_RANK)
            user_bias = self.user_bias_sum / self.samples
            item_bias = self.item_bias_sum / self.samples
            weight = 1.0 / self.samples
        root = math.sqrt(self.scale * weight)

        def table(values: np.ndarray, unit: float) -> torch.Tensor:
            return torch.from_numpy((values * unit).astype(np.float32))

        n_users, n_items = self.users.n, self.items.n
        model = self.model
        model._set_factors(table(user_factors[:n_users], root),
                           table(item_factors[:n_items], root),
                           table(user_bias[:n_users], self.scale),
                           table(item_bias[:n_items], self.scale), self.global_mean)
        for side_name, side, factors, bias in (("users", self.users, user_factors, user_bias),
                                               ("items", self.items, item_factors, item_bias)):
            n = side.n
            columns = self.feature_columns.get(side_name)
            if columns is not None:
                model._set_feature_factors(side_name,  # type: ignore[arg-type]
                                           table(factors[n:n + columns], root),
                                           table(bias[n:n + columns], self.scale))
        seen = None
        if self.seen_items:
            start = n_users + self.feature_columns.get("users", 0)
            seen = (table(user_factors[start:start + n_items], root),
                    table(user_bias[start:start + n_items], self.scale))
        model._set_seen_items(seen, self.seen_power)  # type: ignore[attr-defined]

    def state_dict(self) -> dict[str, Any]:
        """The sampler's state: blocks, noise, running sums, random stream."""
        return {
            "user_own": self.users.own.copy(), "item_own": self.items.own.copy(),
            "user_blocks": self.users.blocks.copy(), "item_blocks": self.items.blocks.copy(),
            "user_rows": self.users.rows.copy(), "item_rows": self.items.rows.copy(),
            "user_noise": self.user_noise.copy(),
            "user_sum": self.user_sum[:, :self.width].copy(),
            "item_sum": self.item_sum[:, :self.width].copy(),
            "user_bias_sum": self.user_bias_sum.copy(), "item_bias_sum": self.item_bias_sum.copy(),
            "alpha": self.alpha, "samples": self.samples, "sweep": self.sweep,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.users.own[...] = state["user_own"]
        self.items.own[...] = state["item_own"]
        self.users.blocks[...] = state["user_blocks"]
        self.items.blocks[...] = state["item_blocks"]
        self.users.rows[...] = state["user_rows"]  # as updated block by block: bit for bit
        self.items.rows[...] = state["item_rows"]
        self.user_noise = np.array(state["user_noise"], dtype=np.float64)
        self.width = int(state["user_sum"].shape[1])
        self.user_sum[:, :self.width] = state["user_sum"]
        self.item_sum[:, :self.width] = state["item_sum"]
        self.user_bias_sum[...] = state["user_bias_sum"]
        self.item_bias_sum[...] = state["item_bias_sum"]
        self.alpha = float(state["alpha"])
        self.samples = int(state["samples"])
        self.sweep = int(state["sweep"])
        self.rng.bit_generator.state = state["rng"]

    def validate(self, validator: Validator) -> float:
        """``valid_rmse`` of the running posterior mean (the current sample during burn-in)."""
        users, items, ratings = validator.users, validator.items, validator.ratings  # type: ignore[attr-defined]
        known_users, known_items = users >= 0, items >= 0
        both = known_users & known_items
        scores = np.zeros(len(users))
        k = self.k
        if self.samples:
            scores[known_users] += self.user_bias_sum[users[known_users]]
            scores[known_items] += self.item_bias_sum[items[known_items]]
            width = self.width
            scores[both] += np.einsum("ab,ab->a", self.user_sum[users[both], :width],
                                      self.item_sum[items[both], :width])
            scores /= self.samples
        else:
            left, right = self.users.rows, self.items.rows
            scores[known_users] += left[users[known_users], k]
            scores[known_items] += right[items[known_items], k]
            scores[both] += np.einsum("ab,ab->a", left[users[both], :k],
                                      right[items[both], :k])
        predictions = self.global_mean + self.scale * scores
        clip = self.model._clip_range
        if clip is not None:
            predictions = np.clip(predictions, *clip)
        return rmse(ratings, predictions)

    def _accumulate(self) -> None:
        k = self.k
        if self.width + k > self.user_sum.shape[1]:
            a, b = compress_factors(self.user_sum[:, :self.width], self.item_sum[:, :self.width],
                             _KEEP_RANK)
            self.width = a.shape[1]
            self.user_sum[:, :self.width] = a
            self.item_sum[:, :self.width] = b
        left, right = self.users.stacked(), self.items.stacked()
        self.user_sum[:, self.width:self.width + k] = left[:, :k]
        self.item_sum[:, self.width:self.width + k] = right[:, :k]
        self.width += k
        self.user_bias_sum += left[:, k]
        self.item_bias_sum += right[:, k]
        self.samples += 1

"""Hybrid implicit ALS: users and items represented by their own embeddings plus their features'.

An item's vector is ``q_i = w_i + X_i E`` (``w_i`` its own embedding, absent with
``identity=False``; ``X`` the items' design matrix, ``E`` one embedding per feature column), a
user's likewise when users have features. The objective is Hu, Koren & Volinsky's over all
pairs,

    sum_{u,i} c_ui (p_ui - P_u . Q_i)^2 + sum_u lambda_u |w_u|^2 + sum_i lambda_i |w_i|^2
                                        + sum_f mu_f |E_f|^2,

with the frequency-scaled penalties of plain iALS for the own embeddings and, for a feature
column ``f``, ``mu_f = feature_reg * max(1, m_f) ** reg_exponent`` where ``m_f = sum_i |X_if|
n_i`` counts the interactions the feature takes part in (weighed by the design matrix): with
``identity=False`` and one-hot features that are the ids themselves, the model is plain iALS.

It is minimised by block coordinate descent; every block is a convex quadratic solved (in the
limit) exactly, so the objective never increases. With own embeddings (``identity=True``) the
blocks are taken in the coordinates ``(z, E)``, ``z_i = w_i + X_i E`` the whole vectors (a
linear bijection of ``(w, E)``: the same objective, the same stationary points), in which the
data term depends on ``z`` alone:

1. the whole vectors of one side given the other side's and ``E``: ``lambda_i |w_i|^2 =
   lambda_i |z_i - o_i|^2`` with the offset ``o_i = X_i E``, a ridge drawn towards ``o_i``:
   ``(A_i + lambda_i I) z_i = b_i + lambda_i o_i`` with ``A_i = G + sum_u (c_ui - 1) p_u
   p_u^T`` (the ``G = P^T P`` trick for the unobserved pairs) and ``b_i = sum_u c_ui p_u``:
   the same row solver as plain iALS (``cg_steps`` warm-started conjugate-gradient steps per
   row, in the eigenbasis of ``G`` when the rows outnumber their partners, or Cholesky);
2. the feature embeddings ``E`` of that side given ``z``: only the penalties depend on them,
   ``sum_i lambda_i |z_i - X_i E|^2 + sum_f mu_f |E_f|^2``, a ridge regression of the whole
   vectors on the design matrix, ``(X^T Lambda X + M) E = X^T Lambda z``. Its matrix is the
   same for the ``k`` columns of ``E`` and for the whole fit (``lambda_i`` and ``mu_f`` are
   fixed), so no pass over the interactions is needed: ``feature_cg_steps`` conjugate-gradient
   steps per column, warm-started from the previous ``E`` and preconditioned by the constant
   diagonal ``(X o X)^T lambda + mu`` (Jacobi), each costing two products with ``X``.
   ``w_i = z_i - X_i E`` follows. Warm-started CG never increases the block's objective, and
   enough steps solve it exactly.

Without own embeddings (``identity=False``) the vectors are ``X E`` alone and block 2 is ``E``
given the other side: the normal equations ``X^T [A_i X_i E - b_i]_i + M E = 0`` couple all
features (two features of one item share its system), so they are solved matrix-free by
Jacobi-preconditioned conjugate gradients over the whole table (Takács, Pilászy, Németh & Tikk
2011 solve their rows the same way), warm-started from the previous ``E``: ``feature_cg_steps``
steps per epoch, each one application of ``A`` to every row (O(nnz k + n k + nnz(X) k) in the
eigenbasis of ``G``).

The side without features is solved exactly as in plain iALS.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch

from latentrec._rng import torch_generator
from latentrec.data import Interactions
from latentrec.models._solvers import SparseRows, cg_solve, exact_solve
from latentrec.models.base import Side
from latentrec.models.factor import hybrid_table

if TYPE_CHECKING:
    from latentrec.models.factor import FactorModel

__all__ = ["HybridImplicitALSTrainable"]


class _Sparse:
    """A fixed sparse matrix times dense tables: scipy on the CPU (torch's CSR products were
    10x slower there), a torch CSR tensor on other devices."""

    def __init__(self, matrix: sp.csr_matrix, device: torch.device) -> None:
        self.scipy: sp.csr_matrix | None = None
        self.torch: torch.Tensor | None = None
        matrix = sp.csr_matrix(matrix, dtype=np.float32)
        if device.type == "cpu":
            self.scipy = matrix
            return
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            self.torch = torch.sparse_csr_tensor(
                torch.from_numpy(matrix.indptr.astype(np.int64)),
                torch.from_numpy(matrix.indices.astype(np.int64)),
                torch.from_numpy(matrix.data), size=matrix.shape,
                check_invariants=False).to(device)

    def __matmul__(self, dense: torch.Tensor) -> torch.Tensor:
        if self.scipy is not None:
            from latentrec.models._als_kernels import sparse_times_dense

            matrix = self.scipy
            out = torch.empty(matrix.shape[0], dense.shape[1], dtype=torch.float32)
            sparse_times_dense(matrix.indptr, matrix.indices, matrix.data,
                               dense.float().contiguous().numpy(), out.numpy())
            return out
        assert self.torch is not None
        return self.torch @ dense


def _weighted_squares(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_r weights[r] * values[r]^2`` per column (float32, accumulated in float64 on the
    CPU)."""
    if values.device.type == "cpu":
        from latentrec.models._als_kernels import weighted_column_squares

        out = np.empty(values.shape[1])
        weighted_column_squares(values.contiguous().numpy(), weights.contiguous().numpy(), out)
        return torch.from_numpy(out).float()
    return (weights[:, None] * values * values).sum(0)


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    """The inner product of two tables (as vectors)."""
    return float(torch.dot(a.reshape(-1), b.reshape(-1)))


class _SideState:
    """One side's parameters and the fixed parts of its systems."""

    def __init__(self, name: Side, rows: sp.csr_matrix, solver_rows: SparseRows | None,
                 own: torch.Tensor | None, reg: torch.Tensor,
                 design: sp.csr_matrix | None, features: torch.Tensor | None,
                 feature_reg: float, reg_exponent: float, device: torch.device) -> None:
        self.name = name
        self.rows = rows  # this side's rows, values c - 1 (scipy, int32)
        self.solver_rows = solver_rows  # the same for the torch solvers (None when compiled)
        self.own = own
        self.reg = reg
        self.design = design
        self.features = features
        #: ``X E``, kept up to date by the CG steps (each computes ``X d`` for its direction)
        self.cached_offset: torch.Tensor | None = None
        self.matrix: _Sparse | None = None
        self.matrix_t: _Sparse | None = None
        self.squares_t: _Sparse | None = None
        self.feature_penalty: torch.Tensor | None = None
        self.scaled_t: _Sparse | None = None
        self.ridge_diagonal: torch.Tensor | None = None
        if design is not None:
            self.matrix = _Sparse(design, device)
            self.matrix_t = _Sparse(design.T.tocsr(), device)
            # (X o X)^T: the operator's diagonal is (X o X)^T diag(A_i) + mu
            self.squares_t = _Sparse(design.multiply(design).T.tocsr(), device)
            counts = np.diff(rows.indptr).astype(np.float64)
            touched = np.asarray(abs(design).T @ counts).ravel()
            self.feature_penalty = (feature_reg * torch.from_numpy(
                np.maximum(touched, 1.0)).pow(reg_exponent)).float().to(device)
            if own is not None:
                # block 2 with own embeddings: X^T Lambda and the diagonal of X^T Lambda X + M
                penalties = reg.cpu().numpy().astype(np.float64)
                scaled_t = (sp.diags(penalties) @ design).T.tocsr()
                self.scaled_t = _Sparse(scaled_t, device)
                diagonal = (design.multiply(design).T @ penalties
                            + self.feature_penalty.cpu().numpy())
                self.ridge_diagonal = torch.from_numpy(
                    np.asarray(diagonal, dtype=np.float32).reshape(-1, 1)).to(device)
            assert features is not None
            self.cached_offset = self.matrix @ features

    def offset(self) -> torch.Tensor | None:
        """``X E``: the feature part of every row's vector (None without features)."""
        return self.cached_offset

    def vectors(self) -> torch.Tensor:
        """Every row's whole vector."""
        offset = self.offset()
        if offset is None:
            assert self.own is not None
            return self.own
        return offset if self.own is None else self.own + offset


class HybridImplicitALSTrainable:
    """iALS with feature embeddings as extra blocks of the alternation (see the module)."""

    def __init__(self, model: FactorModel, data: Interactions, plain: Any) -> None:
        """``plain``: ImplicitALS's own trainable of ``data``, which built the rows, solvers,
        penalties and the random item start (passed in: this module does not import the
        model's)."""
        config = model.config
        self.plain = plain
        self.model, self.config, self.device = model, config, plain.device
        k = config.factors
        feature_reg = config.reg if config.feature_reg is None else config.feature_reg
        generator = torch_generator(config.seed)
        torch.randn(data.n_items, k, generator=generator)  # the plain start, drawn again
        self.sides: dict[Side, _SideState] = {}
        starts: tuple[tuple[Side, sp.csr_matrix, SparseRows | None, torch.Tensor,
                            torch.Tensor], ...] = (
            ("users", plain.user_rows, plain.by_user, plain.user_factors, plain.user_reg),
            ("items", plain.item_rows, plain.by_item, plain.item_factors, plain.item_reg))
        for name, rows, solver_rows, start, reg in starts:
            design = model._feature_matrix(name)
            own: torch.Tensor | None = start
            features = None
            if design is not None:
                own = own if config.identity else None
                if own is None and name == "items":  # no own start: the features' is random
                    features = (torch.randn(design.shape[1], k, generator=generator)
                                * config.init_std).to(self.device)
                else:  # users are solved first; items start from their own embeddings
                    features = torch.zeros(design.shape[1], k, device=self.device)
            self.sides[name] = _SideState(name, rows, solver_rows, own, reg, design, features,
                                          feature_reg, config.reg_exponent, self.device)

    # ------------------------------------------------------------------ the blocks
    def train_epoch(self) -> dict[str, float]:
        users, items = self.sides["users"], self.sides["items"]
        self._solve(users, items.vectors())
        self._solve(items, users.vectors())
        logs: dict[str, float] = {}
        if self.config.report_loss:
            logs["loss"] = self._loss()
        return logs

    def _solve(self, side: _SideState, other: torch.Tensor) -> None:
        """Update ``side`` given the other side's whole vectors ``other``."""
        if side.features is None:  # no features: plain iALS's half-sweep
            side.own = self.plain._half(side.rows, side.solver_rows, other, side.own, side.reg)
        elif side.own is not None:
            self._fit_features(side, self._wholes(side, other))
        elif self.plain.compiled:
            self._solve_features_compiled(side, other)
        else:
            side.features, side.cached_offset = self._solve_features(side, other)

    def _wholes(self, side: _SideState, other: torch.Tensor) -> torch.Tensor:
        """Block 1: every row's whole vector ``z_i``, its ridge drawn towards ``X_i E``."""
        offset = side.cached_offset
        assert side.own is not None and offset is not None
        current = side.own + offset
        if not self.plain.compiled:
            return self._half_centred(side, other, current, offset)
        from latentrec.models._als_kernels import cg_rows_centred

        rows, steps, gram = side.rows, self.config.cg_steps, other.T @ other
        if len(current) < len(other):
            cg_rows_centred(rows.indptr, rows.indices, rows.data, other.contiguous().numpy(),
                            gram.numpy(), False, side.reg.numpy(), offset.numpy(),
                            current.numpy(), steps)
            return current
        # many rows: work where the Gram matrix is diagonal, as plain iALS does
        eigenvalues, basis = torch.linalg.eigh(gram.double())
        basis = basis.to(other.dtype)
        rotated = current @ basis
        cg_rows_centred(rows.indptr, rows.indices, rows.data, (other @ basis).numpy(),
                        torch.diag(eigenvalues.to(other.dtype)).numpy(), True,
                        side.reg.numpy(), (offset @ basis).numpy(), rotated.numpy(), steps)
        return torch.mm(rotated, basis.T, out=current)

    def _fit_features(self, side: _SideState, wholes: torch.Tensor) -> None:
        """Block 2 with own embeddings: ``E`` given the whole vectors ``z``, a ridge
        regression of ``z`` on ``X`` (see the module), by ``feature_cg_steps``
        Jacobi-preconditioned CG steps per column from the current ``E``; ``w = z - X E``."""
        features, offset = side.features, side.cached_offset
        matrix, scaled_t, diagonal = side.matrix, side.scaled_t, side.ridge_diagonal
        assert features is not None and offset is not None and matrix is not None
        assert scaled_t is not None and diagonal is not None
        assert side.feature_penalty is not None
        penalty = side.feature_penalty[:, None]
        # residual = X^T Lambda (z - X E) - M E
        residual = (scaled_t @ (wholes - offset)).addcmul_(penalty, features, value=-1.0)
        direction = residual / diagonal
        rz_old = (residual * direction).sum(0)
        steps = self.config.feature_cg_steps
        for done in range(1, steps + 1):
            if not bool((rz_old > 0).any()):
                break
            moved = matrix @ direction
            # d^T (X^T Lambda X + M) d, per column, without forming the product
            curvature = (_weighted_squares(moved, side.reg)
                         + _weighted_squares(direction, side.feature_penalty))
            step = torch.where(curvature > 0, rz_old / curvature, 0.0)[None, :]
            # new tensors: the published tables and checkpoints must not change under them
            features = torch.addcmul(features, direction, step)
            offset = torch.addcmul(offset, moved, step)
            if done == steps:
                break
            product = (scaled_t @ moved).addcmul_(penalty, direction)
            residual.addcmul_(product, step, value=-1.0)
            preconditioned = residual / diagonal
            rz_new = (residual * preconditioned).sum(0)
            ratio = torch.where(rz_old > 0, rz_new / rz_old, 0.0)[None, :]
            direction = preconditioned.addcmul_(direction, ratio)
            rz_old = rz_new
        side.own, side.features, side.cached_offset = wholes.sub_(offset), features, offset

    def _solve_features_compiled(self, side: _SideState, other: torch.Tensor) -> None:
        """Block 2 without own embeddings (``identity=False``) by the compiled kernels: ``E``
        given the other side, ``feature_cg_steps`` Jacobi-preconditioned CG steps on
        ``X^T A X E + M E = X^T b``. When the rows outnumber their partners (items, usually)
        it works in the eigenbasis of ``G = Y^T Y`` (``G = V diag(e) V^T``), as plain iALS's
        half-sweep does: the partners and ``E`` are rotated by ``V`` (an orthogonal change of
        variables: scores, penalties and ``X E`` rotate alike), so every ``G x`` costs ``k``
        instead of ``k^2``; the Jacobi preconditioner is the operator's diagonal there.
        ``X E`` is recomputed from ``E`` at the end."""
        from latentrec.models._als_kernels import implicit_rows_apply

        assert side.features is not None and side.matrix is not None
        assert side.matrix_t is not None and side.feature_penalty is not None
        assert side.squares_t is not None
        rows, matrix, matrix_t = side.rows, side.matrix, side.matrix_t
        penalty = side.feature_penalty[:, None]
        gram = other.T @ other
        rotate = rows.shape[0] >= len(other)
        basis: torch.Tensor | None = None
        if rotate:
            eigenvalues, basis = torch.linalg.eigh(gram.double())
            basis = basis.to(other.dtype)
            partners = other @ basis
            gram = torch.diag(eigenvalues.to(other.dtype))
            features = side.features @ basis
        else:
            partners = other.contiguous()
            features = side.features.clone()
        partners_np, gram_np = partners.numpy(), gram.numpy()
        # residual = X^T (b - A X E) - M E
        start = torch.empty(rows.shape[0], features.shape[1])
        implicit_rows_apply(rows.indptr, rows.indices, rows.data, partners_np, gram_np, rotate,
                            (matrix @ features).numpy(), True, start.numpy())
        start.neg_()
        residual = (matrix_t @ start).sub_(penalty * features)
        squares = torch.from_numpy(rows @ (partners * partners).numpy())
        diagonal = (side.squares_t @ squares.add_(gram.diagonal()[None, :])).add_(penalty)
        preconditioned = residual / diagonal
        direction = preconditioned.clone()
        rz_old = _dot(residual, preconditioned)
        product_rows = torch.empty_like(start)
        for _ in range(self.config.feature_cg_steps):
            if rz_old <= 0.0:
                break
            moved = matrix @ direction
            implicit_rows_apply(rows.indptr, rows.indices, rows.data, partners_np, gram_np,
                                rotate, moved.numpy(), False, product_rows.numpy())
            product = (matrix_t @ product_rows).addcmul_(penalty, direction)
            curvature = _dot(direction, product)
            if curvature <= 0.0:
                break
            step = rz_old / curvature
            features.add_(direction, alpha=step)
            residual.sub_(product, alpha=step)
            torch.div(residual, diagonal, out=preconditioned)
            rz_new = _dot(residual, preconditioned)
            direction = preconditioned.add(direction, alpha=rz_new / rz_old)
            rz_old = rz_new
        if basis is not None:
            features = features @ basis.T
        side.features = features.contiguous()
        side.cached_offset = matrix @ side.features

    def _half_centred(self, side: _SideState, other: torch.Tensor, current: torch.Tensor,
                      centre: torch.Tensor) -> torch.Tensor:
        """Every row's ridge drawn towards ``centre`` (block 1 of the module docstring)."""
        gram = other.T @ other
        reg = side.reg
        solver_rows = side.solver_rows
        assert solver_rows is not None
        diagonal = reg[:, None].expand(-1, other.shape[1])
        extra = reg[:, None] * centre
        if self.config.solver == "cholesky":
            return exact_solve(solver_rows, other, gram, diagonal, extra)
        return cg_solve(solver_rows, other, gram, diagonal, current, self.config.cg_steps,
                        extra)

    def _apply(self, side: _SideState, other: torch.Tensor, gram: torch.Tensor,
               vectors: torch.Tensor, subtract_rhs: bool) -> torch.Tensor:
        """``A_i x_i`` (less ``b_i`` when ``subtract_rhs``) for every row of ``side``."""
        solver_rows = side.solver_rows
        assert solver_rows is not None
        dots = solver_rows.dots(vectors, other) * solver_rows.weights
        if subtract_rhs:
            dots = dots - solver_rows.targets
        return solver_rows.matrix(dots) @ other + vectors @ gram

    def _diagonal(self, side: _SideState, other: torch.Tensor, gram: torch.Tensor
                  ) -> torch.Tensor:
        """The diagonal of every row's ``A_i`` (rows x k)."""
        solver_rows = side.solver_rows
        assert solver_rows is not None
        squares = solver_rows.matrix(solver_rows.weights) @ (other * other)
        return squares + gram.diagonal()[None, :]

    def _solve_features(self, side: _SideState, other: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """Block 2: ``feature_cg_steps`` Jacobi-preconditioned CG steps on the feature
        embeddings' normal equations, from the current ``E``; returns ``E`` and ``X E``."""
        assert side.features is not None and side.matrix is not None
        assert side.matrix_t is not None and side.feature_penalty is not None
        matrix, matrix_t, penalty = side.matrix, side.matrix_t, side.feature_penalty[:, None]
        gram = other.T @ other
        features = side.features.clone()
        offset = side.cached_offset
        assert offset is not None
        offset = offset.clone()
        # residual = X^T (b - A q) - mu E, with q every row's current whole vector
        residual = -(matrix_t @ self._apply(side, other, gram, side.vectors(), True))
        residual -= penalty * features
        assert side.squares_t is not None
        diagonal = side.squares_t @ self._diagonal(side, other, gram)
        diagonal += penalty
        preconditioned = residual / diagonal
        direction = preconditioned.clone()
        rz_old = _dot(residual, preconditioned)
        for _ in range(self.config.feature_cg_steps):
            if rz_old <= 0.0:
                break
            moved = matrix @ direction
            product = matrix_t @ self._apply(side, other, gram, moved, False)
            product += penalty * direction
            curvature = _dot(direction, product)
            if curvature <= 0.0:
                break
            step = rz_old / curvature
            features += step * direction
            offset += step * moved
            residual -= step * product
            preconditioned = residual / diagonal
            rz_new = _dot(residual, preconditioned)
            direction = preconditioned + (rz_new / rz_old) * direction
            rz_old = rz_new
        return features, offset

    def _loss(self) -> float:
        """The weighted squared error over all pairs plus every penalty, per interaction."""
        users, items = self.sides["users"], self.sides["items"]
        user_vectors, item_vectors = users.vectors(), items.vectors()
        everything = float(((user_vectors.T @ user_vectors)
                            * (item_vectors.T @ item_vectors)).sum())
        plain = self.plain
        if not plain.compiled and plain.by_user is not None:
            rows = plain.by_user
            scores = rows.dots(user_vectors, item_vectors)
            confidence = rows.weights + 1.0
            observed = float((confidence * (1.0 - scores) ** 2 - scores**2).sum())
        else:
            from latentrec.models._als_kernels import implicit_loss_rows

            csr = plain.user_rows
            observed = implicit_loss_rows(csr.indptr, csr.indices, csr.data,
                                          user_vectors.contiguous().numpy(),
                                          item_vectors.contiguous().numpy())
        penalty = 0.0
        for side in (users, items):
            if side.own is not None:
                penalty += float((side.reg[:, None] * side.own**2).sum())
            if side.features is not None:
                assert side.feature_penalty is not None
                penalty += float((side.feature_penalty[:, None] * side.features**2).sum())
        return float(everything + observed + penalty) / max(1, int(plain.user_rows.nnz))

    # ------------------------------------------------------------------ the trainable
    def publish(self) -> None:
        tables = {name: hybrid_table(side.own, side.design, side.features)
                  for name, side in self.sides.items()}
        self.model._set_factors(tables["users"], tables["items"])
        for name, side in self.sides.items():
            if side.features is not None:
                self.model._set_feature_factors(name, side.features, None)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for name, side in self.sides.items():
            if side.own is not None:
                state[f"{name[:-1]}_factors"] = side.own.clone()
            if side.features is not None:
                assert side.cached_offset is not None
                state[f"{name[:-1]}_feature_factors"] = side.features.clone()
                state[f"{name[:-1]}_feature_offset"] = side.cached_offset.clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # copies: the compiled half-sweeps update the factors in place
        for name, side in self.sides.items():
            if side.own is not None:
                side.own = state[f"{name[:-1]}_factors"].clone()
            if side.features is not None:
                side.features = state[f"{name[:-1]}_feature_factors"].clone()
                side.cached_offset = state[f"{name[:-1]}_feature_offset"].clone()

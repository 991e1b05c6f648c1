"""Gibbs sweeps of Bayesian biased matrix factorisation (:class:`~latentrec.BayesianMF`).

This is BPMF (Salakhutdinov & Mnih 2008) with biases. Ratings are standardised,
``z = (r - mean) / std``, and the model is::

    z_ui ~ N(p_u . q_i + b_u + b_i, 1 / (alpha tau_u))
    x_u = [p_u, b_u] ~ N(mu_U, Lambda_U^-1)      y_i = [q_i, b_i] ~ N(mu_V, Lambda_V^-1)
    alpha ~ Gamma(a0, rate b0)

with one of two hyperpriors on each side's ``(mu, Lambda)`` (``prior``):

- ``"normal-gamma"`` (the default; libFM's and myFM's choice): ``Lambda`` diagonal, each
  coordinate ``d`` of ``[p, b]`` with its own ``lambda_d ~ Gamma(1/2, rate 1/2)`` and
  ``mu_d | lambda_d ~ N(0, 1 / lambda_d)``, so unneeded dimensions can be switched off and
  the bias has a prior of its own;
- ``"normal-wishart"`` (BPMF's): ``(mu, Lambda) ~ Normal-Wishart(0, beta0, I,
  nu0 = factors + 1)``, one full covariance over factors and bias together.

and one of two noise models (``noise``):

- ``"per-user"`` (the default; the user-specific noise of Lakshminarayanan, Bouchard &
  Archambeau 2011, "Robust Bayesian matrix factorisation"): ``tau_u ~ Gamma(nu/2, rate
  nu/2)``, mean 1, so the ratings of a user whom the model fits badly weigh less in the
  items' updates, and that user's own ``[p, b]`` stays nearer the prior;
- ``"shared"``: ``tau_u = 1``, one noise level for every rating.

A bias is one more latent coordinate whose partner on the other side is the constant 1, so
one compiled kernel (:func:`latentrec.models._kernels.gaussian_rows`) draws factors and bias
together, row by row (a blocked Gibbs step: each row's whole ``[p, b]`` at once). The
hyperparameters and noise precisions are sampled too, which is why nothing needs tuning: the
priors and the noise levels are learned from the data.

The prediction is the average over the samples kept after burn-in. That average is itself a
biased factor model (sample factors side by side, scaled by ``1 / sqrt(S)``, biases averaged);
it is kept as a running sum of ``P_s Q_s^T`` in factored form and re-compressed by QR + SVD
whenever its width passes a bound, so memory does not grow with the number of samples.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numba
import numpy as np
import torch

from latentrec._rng import numpy_rng
from latentrec.errors import InvalidParameterError
from latentrec.metrics import rmse
from latentrec.models._kernels import csr_gram, gaussian_rows

if TYPE_CHECKING:
    from latentrec.data import Interactions
    from latentrec.models.factor import FactorModel
    from latentrec.training import Validator

__all__ = ["GibbsTrainable", "compress_factors"]

#: Normal-Wishart prior on each side: ``mu0 = 0``, ``W0 = I`` (both natural on standardised
#: ratings), ``beta0`` pseudo-observations for the mean; ``nu0`` is the dimension.
_BETA0 = 2.0
#: Normal-Gamma prior on each coordinate: ``lambda ~ Gamma(a0 / 2, rate b0 / 2)``,
#: ``mu | lambda ~ N(0, 1 / (gamma0 lambda))``; libFM's and myFM's defaults ``a0 = b0 =
#: gamma0 = 1`` (weak next to the hundreds of rows on each side).
_GAMMA_A0 = 1.0
_GAMMA_B0 = 1.0
_GAMMA_MEAN_WEIGHT = 1.0
#: Per-user noise: ``tau_u ~ Gamma(nu / 2, rate nu / 2)``, mean 1. In a trial on the FilmTrust
#: validation split of docs/BENCHMARKS.md (seeds 0-4) nu = 1, 2, 4, 8 gave RMSE 0.7699,
#: 0.7683, 0.7686, 0.7684, and on MovieLens 100K nu = 2 and 8 both 0.8959: a weak prior that
#: the users' own ratings soon outweigh.
_USER_NOISE_DOF = 2.0
#: Gamma(a0, rate b0) prior on the noise precision: weak next to the thousands of ratings.
_ALPHA_A0 = 1.0
_ALPHA_B0 = 1.0
#: Starting noise precision (standardised data: the residual variance of a good model is
#: about half the rating variance).
_ALPHA_START = 2.0
#: Rank of the published posterior mean (the factor width callers see).
_PUBLISH_RANK = 64
#: Width the running sum is compressed back to. Above the published rank so that the repeated
#: truncations cost nothing measurable: on MovieLens 100K u1 (factors=10, 250 samples) the
#: published rank-64 model is within 0.0001 RMSE of the exact sample average, the same as one
#: compression at the end.
_KEEP_RANK = 128
#: New sample columns collected before each re-compression (about 25 samples at
#: ``factors=10``); bounds memory at ``n x (keep + this + factors)`` float64 per side.
_BUFFER_COLUMNS = 256
#: Below this much kernel work per sweep (ratings x dimension^2, about 16k ratings at
#: ``factors=10``) the kernels run on one numba thread: the parallel gain is then under
#: 0.15 ms a call, less than one stall of the thread pool on a machine whose cores are busy.
_SERIAL_WORK = 2_000_000
#: float64 entries of the per-user Gram blocks behind the training error (32 MB).
_GRAM_BLOCK = 4_000_000


class GibbsTrainable:
    """Gibbs sweeps of Bayesian biased MF behind the :class:`~latentrec.training.Trainable`
    protocol; :meth:`publish` stores the posterior mean in ``model`` as one factor model.

    ``model.config`` gives ``factors`` (latent dimension of each sample), ``burn_in`` (sweeps
    discarded before averaging), ``init_std`` and ``seed`` (every draw). Validation RMSE is
    computed from the running sums (:meth:`validate`), without publishing every sweep.
    """

    def __init__(self, model: FactorModel, data: Interactions) -> None:
        config = model.config
        if data.values is None:  # BayesianMF checks this first; keeps mypy precise
            raise InvalidParameterError("BayesianMF fits ratings; this data has no values")
        self.model = model
        self.burn_in = int(config.burn_in)
        self.sweep = 0
        self.rng = numpy_rng(config.seed)
        self.prior = config.prior
        self.per_user_noise = config.noise == "per-user"
        self.noise_dof = _USER_NOISE_DOF
        k = config.factors
        self.k = k
        dim = k + 1
        values = np.asarray(data.values, dtype=np.float64)
        self.global_mean = float(np.mean(values))
        self.scale = model.rating_std_  # std of the ratings, 1 when they are all equal
        # Standardised ratings: the unit priors (W0 = I, the noise prior) then suit any scale.
        z = (values - self.global_mean) / self.scale
        self.n_ratings = len(z)
        users = data.user_index.astype(np.int64)
        items = data.item_index.astype(np.int64)
        n_users, n_items = data.n_users, data.n_items
        self.z_squared = np.bincount(users, weights=z * z, minlength=n_users)
        self.user_counts = np.bincount(users, minlength=n_users).astype(np.float64)
        # Each side's ratings grouped by row (CSR), the layout the kernels walk.
        order, self.user_ptr, self.user_cols = _csr_layout(users, items, n_users)
        self.z_by_user = z[order]
        order, self.item_ptr, self.item_cols = _csr_layout(items, users, n_items)
        self.z_by_item = z[order]
        # X = [P | b_user], Y = [Q | b_item]: the current sample.
        self.user_sample = np.zeros((n_users, dim))
        self.item_sample = np.zeros((n_items, dim))
        self.user_sample[:, :k] = self.rng.standard_normal((n_users, k)) * config.init_std
        self.item_sample[:, :k] = self.rng.standard_normal((n_items, k)) * config.init_std
        # Partners: a user's features are [q_i | 1], an item's [p_u | 1]; the 1 pairs with
        # the bias coordinate. Preallocated so each sweep only copies the factor columns.
        self.item_partner = np.ones((n_items, dim))
        self.user_partner = np.ones((n_users, dim))
        self.alpha = _ALPHA_START
        # Noise precision of rating (u, i) = alpha * user_noise[u] (* item_noise[i], all ones):
        # the kernels take a row weight and a partner weight.
        self.user_noise = np.ones(n_users)
        self.item_noise = np.ones(n_items)
        # Buffers of _squared_errors: item rows [q_i, 1, b_i] and per-user Gram blocks.
        self.sse_features = np.ones((n_items, dim + 1))
        self.sse_block = max(1, min(n_users, _GRAM_BLOCK // (dim + 1) ** 2))
        self.sse_gram = np.empty((self.sse_block, dim + 1, dim + 1))
        self.sse_rhs = np.empty((self.sse_block, dim + 1))
        self.serial = self.n_ratings * dim * dim < _SERIAL_WORK
        # Running sum over kept samples: sum_s P_s Q_s^T = user_sum[:, :width] @ item_sum^T.
        capacity = max(_KEEP_RANK, _PUBLISH_RANK) + max(_BUFFER_COLUMNS, k)
        self.user_sum = np.zeros((n_users, capacity))
        self.item_sum = np.zeros((n_items, capacity))
        self.width = 0
        self.user_bias_sum = np.zeros(n_users)
        self.item_bias_sum = np.zeros(n_items)
        self.samples = 0

    # ------------------------------------------------------------------ Trainable
    def train_epoch(self) -> dict[str, float]:
        """One Gibbs sweep; after burn-in the sample joins the posterior mean.

        Order: each side's hyperprior given its rows, then its rows given the other side
        (users, then items); then the noise precision ``alpha`` given the residuals, and
        with ``noise="per-user"`` each user's ``tau_u`` given ``alpha``.

        Returns ``loss``, the training MSE of the current sample in original units.
        """
        k = self.k
        x, y = self.user_sample, self.item_sample
        user_ptr, user_cols = self.user_ptr, self.user_cols
        item_ptr, item_cols = self.item_ptr, self.item_cols
        previous = numba.get_num_threads()
        if self.serial:
            numba.set_num_threads(1)
        try:
            mean, precision = self._sample_hyperprior(x)
            self.item_partner[:, :k] = y[:, :k]
            gaussian_rows(user_ptr, user_cols, self.z_by_user - y[user_cols, k],
                          self.item_partner, self.item_noise, self.user_noise, mean, precision,
                          self.alpha, np.asarray(self.rng.standard_normal(x.shape)), x)
            mean, precision = self._sample_hyperprior(y)
            self.user_partner[:, :k] = x[:, :k]
            gaussian_rows(item_ptr, item_cols, self.z_by_item - x[item_cols, k],
                          self.user_partner, self.user_noise, self.item_noise, mean, precision,
                          self.alpha, np.asarray(self.rng.standard_normal(y.shape)), y)
            user_errors = self._squared_errors()
        finally:
            numba.set_num_threads(previous)
        return _end_sweep(self, user_errors)

    def publish(self) -> None:
        """Set the model's factors to the posterior mean, in original rating units.

        Factors have rank ``min(kept samples x factors, 64)`` (exact below 64, the best
        rank-64 approximation of the running sum above); before any sample is kept the
        current sample is published.
        """
        k = self.k
        if self.samples == 0:
            user_factors, item_factors = self.user_sample[:, :k], self.item_sample[:, :k]
            user_bias, item_bias = self.user_sample[:, k], self.item_sample[:, k]
            weight = 1.0
        else:
            user_factors, item_factors = compress_factors(self.user_sum[:, :self.width],
                                                          self.item_sum[:, :self.width],
                                                          _PUBLISH_RANK)
            user_bias = self.user_bias_sum / self.samples
            item_bias = self.item_bias_sum / self.samples
            weight = 1.0 / self.samples
        # z-units to rating units: the product picks up std (sqrt on each side), biases std.
        root = math.sqrt(self.scale * weight)
        self.model._set_factors(
            torch.from_numpy((user_factors * root).astype(np.float32)),
            torch.from_numpy((item_factors * root).astype(np.float32)),
            torch.from_numpy((user_bias * self.scale).astype(np.float32)),
            torch.from_numpy((item_bias * self.scale).astype(np.float32)),
            self.global_mean,
        )

    def state_dict(self) -> dict[str, Any]:
        """The sampler's state: current sample, noise precisions, running sums, random
        stream."""
        return {
            "user_sample": self.user_sample.copy(), "item_sample": self.item_sample.copy(),
            "user_noise": self.user_noise.copy(),
            "user_sum": self.user_sum[:, :self.width].copy(),
            "item_sum": self.item_sum[:, :self.width].copy(),
            "user_bias_sum": self.user_bias_sum.copy(), "item_bias_sum": self.item_bias_sum.copy(),
            "alpha": self.alpha, "samples": self.samples, "sweep": self.sweep,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.user_sample[...] = state["user_sample"]
        self.item_sample[...] = state["item_sample"]
        self.width = int(state["user_sum"].shape[1])
        self.user_sum[:, :self.width] = state["user_sum"]
        self.item_sum[:, :self.width] = state["item_sum"]
        self.user_bias_sum[...] = state["user_bias_sum"]
        self.item_bias_sum[...] = state["item_bias_sum"]
        self.alpha = float(state["alpha"])
        # checkpoints written before per-user noise existed had one shared noise level
        self.user_noise = np.array(state.get("user_noise", np.ones(len(self.user_noise))),
                                   dtype=np.float64)
        self.samples = int(state["samples"])
        self.sweep = int(state["sweep"])
        self.rng.bit_generator.state = state["rng"]

    def validate(self, validator: Validator) -> float:
        """``valid_rmse`` of the running posterior mean (of the current sample during
        burn-in), clipped like ``predict``. It reads the running sums directly rather than
        publishing every sweep: a QR + SVD per sweep would cost more than the sweep itself."""
        users, items, ratings = validator.users, validator.items, validator.ratings  # type: ignore[attr-defined]
        if self.samples:
            scores = self._mean_scores(users, items)
        else:
            scores = self._sample_scores(users, items)
        predictions = self.global_mean + self.scale * scores
        clip = self.model._clip_range
        if clip is not None:
            predictions = np.clip(predictions, *clip)
        return rmse(ratings, predictions)

    # ------------------------------------------------------------------ helpers
    def _sample_hyperprior(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mu, Lambda)`` of one side, drawn given its rows under the configured prior."""
        if self.prior == "normal-wishart":
            return _sample_normal_wishart(rows, self.rng)
        return _sample_normal_gamma(rows, self.rng)

    def _squared_errors(self) -> np.ndarray:
        """Each user's training sum of squared errors of the current sample (standardised
        units).

        With ``g_u = [p_u, b_u, 1]`` and ``f_i = [q_i, 1, b_i]`` every prediction is
        ``g_u . f_i``, so ``SSE = sum z^2 - 2 sum_u g_u . (sum_i z f_i)
        + sum_u g_u^T (sum_i f_i f_i^T) g_u``: per-user sums from :func:`csr_gram`, about
        twice as fast as gathering a factor row per rating, in blocks of users to bound the
        Gram memory.
        """
        k = self.k
        x, y = self.user_sample, self.item_sample
        features = self.sse_features
        features[:, :k] = y[:, :k]
        features[:, k + 1] = y[:, k]
        indptr, cols = self.user_ptr, self.user_cols
        errors = self.z_squared.copy()
        for start in range(0, len(indptr) - 1, self.sse_block):
            stop = min(start + self.sse_block, len(indptr) - 1)
            rows = stop - start
            gram, rhs = self.sse_gram[:rows], self.sse_rhs[:rows]
            csr_gram(indptr[start:stop + 1], cols, self.z_by_user, features, gram, rhs)
            user = np.empty((rows, k + 2))
            user[:, :k + 1] = x[start:stop]
            user[:, k + 1] = 1.0
            fitted = np.einsum("abc,ac->ab", gram, user)
            errors[start:stop] += np.einsum("ab,ab->a", user, fitted - 2.0 * rhs)
        # a perfect fit can round to a hair below zero
        return np.maximum(errors, 0.0)

    def _accumulate(self) -> None:
        """Add the current sample to the running sums, compressing them when full."""
        k = self.k
        if self.width + k > self.user_sum.shape[1]:
            left, right = compress_factors(self.user_sum[:, :self.width],
                                           self.item_sum[:, :self.width], _KEEP_RANK)
            self.width = left.shape[1]
            self.user_sum[:, :self.width] = left
            self.item_sum[:, :self.width] = right
        self.user_sum[:, self.width:self.width + k] = self.user_sample[:, :k]
        self.item_sum[:, self.width:self.width + k] = self.item_sample[:, :k]
        self.width += k
        self.user_bias_sum += self.user_sample[:, k]
        self.item_bias_sum += self.item_sample[:, k]
        self.samples += 1

    def _sample_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The current sample's standardised predictions for index pairs; an unknown side
        (``-1``) contributes nothing, as in the model's fallback (mean plus the known bias)."""
        k = self.k
        known_users, known_items = users >= 0, items >= 0
        both = known_users & known_items
        scores = np.zeros(len(users))
        scores[known_users] += self.user_sample[users[known_users], k]
        scores[known_items] += self.item_sample[items[known_items], k]
        scores[both] += _dot_rows(self.user_sample, self.item_sample, users[both], items[both],
                                  k)
        return scores

    def _mean_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The posterior mean's standardised predictions for index pairs (unknown side: no
        factor term, as in the model's fallback)."""
        known_users, known_items = users >= 0, items >= 0
        both = known_users & known_items
        scores = np.zeros(len(users))
        scores[known_users] += self.user_bias_sum[users[known_users]]
        scores[known_items] += self.item_bias_sum[items[known_items]]
        width = self.width
        scores[both] += np.einsum("ab,ab->a", self.user_sum[users[both], :width],
                                  self.item_sum[items[both], :width])
        return scores / self.samples


def compress_factors(left: np.ndarray, right: np.ndarray,
                     rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Factors ``(A, B)`` of rank at most ``rank`` with ``A @ B.T`` the best approximation of
    ``left @ right.T``, without forming that product.

    QR of each side reduces the problem to the SVD of a small ``width x width`` core; singular
    values are split evenly (``sqrt`` on each side). Exact when ``rank`` is at least the width.
    NumPy's LAPACK, not torch's: on a busy two-core machine torch's threaded QR right after
    numba's parallel kernels took seconds a call (its OpenMP threads wait on a core numba's
    pool holds), NumPy's a few hundredths.

    Parameters
    ----------
    left, right
        ``n x width`` and ``m x width`` factors.
    rank
        Largest rank kept.

    Returns
    -------
    tuple of numpy.ndarray
        ``n x r`` and ``m x r``, ``r = min(rank, width, n, m)``, columns by decreasing
        singular value.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.standard_normal((50, 30)), rng.standard_normal((40, 30))
    >>> c, d = compress_factors(a, b, 64)
    >>> bool(np.allclose(c @ d.T, a @ b.T))
    True
    """
    q_left, r_left = np.linalg.qr(left)
    q_right, r_right = np.linalg.qr(right)
    u, sigma, vh = np.linalg.svd(r_left @ r_right.T, full_matrices=False)
    rank = min(rank, sigma.shape[0])
    root = np.sqrt(sigma[:rank])
    return q_left @ (u[:, :rank] * root), q_right @ (vh[:rank].T * root)


def _csr_layout(rows: np.ndarray, cols: np.ndarray,
                n_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(order, indptr, cols[order])``: entries grouped by row, stable within a row."""
    order = np.argsort(rows, kind="stable")
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return order, indptr, np.ascontiguousarray(cols[order], dtype=np.int64)


def _dot_rows(x: np.ndarray, y: np.ndarray, users: np.ndarray, items: np.ndarray,
              k: int) -> np.ndarray:
    """``p_u . q_i`` of the current sample for index pairs (the first ``k`` columns)."""
    dots: np.ndarray = np.einsum("ij,ij->i", x[users, :k], y[items, :k])
    return dots


def _sample_normal_gamma(rows: np.ndarray,
                         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, diag(lambda))`` drawn from the Normal-Gamma posterior of each column of ``rows``
    (``N x D``) on its own: prior ``lambda_d ~ Gamma(a0 / 2, rate b0 / 2)``, ``mu_d | lambda_d
    ~ N(0, 1 / (gamma0 lambda_d))``; ``lambda`` from its marginal posterior, then ``mu`` given
    it (an exact joint draw)."""
    n, dim = rows.shape
    row_mean = rows.mean(axis=0)
    centred = rows - row_mean
    weight_n = _GAMMA_MEAN_WEIGHT + n
    scatter = (np.einsum("ij,ij->j", centred, centred)
               + (_GAMMA_MEAN_WEIGHT * n / weight_n) * row_mean**2)
    lam = rng.gamma(0.5 * (_GAMMA_A0 + n), 1.0 / (0.5 * (_GAMMA_B0 + scatter)))
    mean = (n / weight_n) * row_mean + rng.standard_normal(dim) / np.sqrt(weight_n * lam)
    return mean, np.diag(lam)


def _sample_normal_wishart(rows: np.ndarray,
                           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, Lambda)`` drawn from the Normal-Wishart posterior of the prior on ``rows``
    (``N x D``), prior ``mu0 = 0``, ``beta0``, ``W0 = I``, ``nu0 = D``."""
    n, dim = rows.shape
    row_mean = rows.mean(axis=0)
    centred = rows - row_mean
    beta_n = _BETA0 + n
    nu_n = dim + n
    mean_n = (n / beta_n) * row_mean
    scatter = (np.eye(dim) + centred.T @ centred
               + (_BETA0 * n / beta_n) * np.outer(row_mean, row_mean))
    # Wishart(W = scatter^-1, nu_n) by Bartlett: Lambda = (L A)(L A)^T with W = L L^T, A lower
    # triangular, A_jj = sqrt(chi2(nu_n - j)), standard normal below the diagonal.
    w = np.linalg.inv(0.5 * (scatter + scatter.T))
    chol = np.linalg.cholesky(0.5 * (w + w.T))
    bartlett = np.tril(rng.standard_normal((dim, dim)), -1)
    bartlett[np.diag_indices(dim)] = np.sqrt(rng.chisquare(nu_n - np.arange(dim)))
    factor = chol @ bartlett
    precision = np.ascontiguousarray(factor @ factor.T)
    # mu ~ N(mean_n, (beta_n Lambda)^-1): with beta_n Lambda = C C^T, mean + C^-T z.
    upper = np.linalg.cholesky(beta_n * precision)
    mean = mean_n + np.linalg.solve(upper.T, rng.standard_normal(dim))
    return mean, precision


def _end_sweep(sampler: Any, user_errors: np.ndarray) -> dict[str, float]:
    """The end of a sweep of either sampler: draw the noise precision (and the per-user
    weights) given each user's squared errors, keep the sample after burn-in, and report the
    training loss in rating units."""
    weighted = float(sampler.user_noise @ user_errors)
    sampler.alpha = float(sampler.rng.gamma(_ALPHA_A0 + 0.5 * sampler.n_ratings,
                                            1.0 / (_ALPHA_B0 + 0.5 * weighted)))
    if sampler.per_user_noise:
        half = 0.5 * sampler.noise_dof
        sampler.user_noise = sampler.rng.gamma(
            half + 0.5 * sampler.user_counts,
            1.0 / (half + 0.5 * sampler.alpha * user_errors))
    sampler.sweep += 1
    if sampler.sweep > sampler.burn_in:
        sampler._accumulate()
    return {"loss": float(user_errors.sum()) * sampler.scale**2 / sampler.n_ratings}

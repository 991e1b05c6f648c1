"""Synthetic interaction data with planted low-rank structure and Zipf-like popularity.

The generator is vectorised and works on blocks of users, so a million users, a hundred
thousand items and twenty million interactions take seconds and about a gigabyte, not minutes.
"""

from __future__ import annotations

import itertools
import math
from numbers import Integral, Real
from typing import Any, Literal

import numpy as np

from latentrec.data import IdMap, Interactions
from latentrec.errors import InvalidParameterError

__all__ = ["synthetic"]

Feedback = Literal["explicit", "implicit"]

# Each user's items are drawn with replacement and the first distinct ones kept, which is a
# draw without replacement. Candidates per user: _OVERSAMPLE times its count plus
# _EXTRA_CANDIDATES; users still short are drawn again with twice as many, and after
# _SPARSE_ROUNDS the rest (and users whose count nears the catalogue size) get an exact dense
# draw over all items (Gumbel top-k).
_OVERSAMPLE = 1.3
_EXTRA_CANDIDATES = 4
_SPARSE_ROUNDS = 3
_BLOCK_CANDIDATES = 2_000_000  # candidates per sparse block: bounds the transient memory
_BLOCK_CELLS = 4_000_000  # user x item cells per dense block

# Implicit data: items fall into taste clusters whose centres are the planted item factors;
# the user-cluster scores u.v have this standard deviation, and weights use scores up to
# _MAX_LOG_WEIGHT.
_IMPLICIT_SCORE_STD = 2.0
_MIN_CLUSTERS = 16
_CLUSTERS_PER_FACTOR = 4
_MAX_LOG_WEIGHT = 3.0
_MAX_ZIPF = 10.0

_START_TIME = 1_000_000_000  # 2001-09-09 UTC
_TIME_SPAN = 3 * 365 * 86_400  # users start within three years and stay active up to three


def synthetic(
    n_users: int = 1000,
    n_items: int = 500,
    *,
    n_interactions: int | None = None,
    density: float = 0.05,
    factors: int = 8,
    noise: float = 0.5,
    feedback: Feedback = "explicit",
    rating_scale: tuple[int, int] = (1, 5),
    user_zipf: float = 0.5,
    item_zipf: float = 0.8,
    seed: int | None = 0,
) -> Interactions:
    """Generate interactions from planted user and item factors, deterministically.

    Every user and item gets hidden factors (``factors`` dimensions); users are active and
    items popular in proportion to ``rank ** -user_zipf`` and ``rank ** -item_zipf`` (ranks are
    shuffled over the ids). Each user's items are drawn without replacement, so every
    ``(user, item)`` pair occurs at most once, and exactly ``n_interactions`` rows come back.

    * ``feedback="explicit"``: items are drawn by popularity and rated
      ``mean + user bias + item bias + u.v + N(0, noise**2)``, rounded to an integer and clipped
      to ``rating_scale``. The mean sits at 62.5% of the scale (3.5 on 1-5), and the biases and
      the planted ``u.v`` (standard deviation a quarter of the scale's width) scale with it, so a
      rank-``factors`` model beats a bias-only one by a clear margin.
    * ``feedback="implicit"``: each user draws items with probability proportional to
      ``popularity * exp(u.v + N(0, noise**2))``, where ``u.v`` has standard deviation 2, so a
      factor model clearly beats popularity at top-N. To draw this exactly at scale, the items
      fall into ``max(16, 4 * factors)`` taste clusters (at most ``n_items``) and an item's
      factors are its cluster's; the noise is drawn per (user, cluster). Values are
      play-count-like weights ``1 + Poisson(exp(min(score, 3)))``, larger for better matches.

    Each user's items are drawn with replacement in blocks of users and the first distinct ones
    are kept, which is a draw without replacement; users still short after a few rounds (and
    users whose count nears ``n_items``) get an exact draw over the whole catalogue, so there is
    never a shortfall.

    Parameters
    ----------
    n_users, n_items
        Numbers of users and items; ids are the integers ``0 .. n - 1``. Both id maps hold every
        id, even an item nobody drew (possible for tiny data with a steep ``item_zipf``).
    n_interactions
        Number of rows; overrides ``density``.
    density
        Fraction of the ``n_users x n_items`` matrix that is observed, used when
        ``n_interactions`` is ``None``.
    factors
        Rank of the planted structure; ``0`` leaves biases only (explicit) or popularity only
        (implicit).
    noise
        Standard deviation of the Gaussian noise added to each rating (explicit, in rating
        units) or to each score before the draw (implicit).
    feedback
        ``"explicit"`` (ratings) or ``"implicit"`` (weights).
    rating_scale
        ``(lowest, highest)`` integer rating, explicit feedback only.
    user_zipf, item_zipf
        Exponents of the activity and popularity skews, between 0 (uniform) and 10.
    seed
        The same arguments and seed give identical data; ``None`` draws fresh entropy.

    Returns
    -------
    Interactions
        Rows grouped by user (in id order), with timestamps (seconds) that increase within each
        user: users start at random times within three years of 2001-09-09 and spread their
        interactions over a random active period of up to three years.
        Every user has at least one interaction when ``n_interactions >= n_users``.

    Raises
    ------
    TypeError
        An argument has the wrong type.
    InvalidParameterError
        An argument is out of range, e.g. more interactions than ``n_users * n_items``.

    Examples
    --------
    >>> data = synthetic(n_users=100, n_items=50, density=0.1, seed=7)
    >>> data.n_users, data.n_items, len(data)
    (100, 50, 500)
    >>> data.rating_range()
    (1.0, 5.0)
    >>> clicks = synthetic(n_users=100, n_items=50, n_interactions=800, feedback="implicit")
    >>> clicks.feedback, len(clicks), bool(clicks.weights().min() >= 1)
    ('implicit', 800, True)
    """
    n_users = _check_int("n_users", n_users, minimum=1)
    n_items = _check_int("n_items", n_items, minimum=1)
    cells = n_users * n_items
    if n_interactions is None:
        density = _check_real("density", density)
        if not 0.0 < density <= 1.0:
            raise InvalidParameterError(f"density must be in (0, 1], got {density!r}")
        n_interactions = max(1, round(density * cells))
    else:
        n_interactions = _check_int("n_interactions", n_interactions, minimum=1)
        if n_interactions > cells:
            raise InvalidParameterError(
                f"n_interactions must be at most n_users * n_items = {cells} (each pair occurs "
                f"once), got {n_interactions}"
            )
    factors = _check_int("factors", factors, minimum=0)
    noise = _check_real("noise", noise, minimum=0.0)
    if feedback not in ("explicit", "implicit"):
        raise InvalidParameterError(
            f"feedback must be one of ['explicit', 'implicit'], got {feedback!r}"
        )
    low, high = _check_scale(rating_scale)
    user_zipf = _check_real("user_zipf", user_zipf, minimum=0.0)
    item_zipf = _check_real("item_zipf", item_zipf, minimum=0.0)
    for name, exponent in (("user_zipf", user_zipf), ("item_zipf", item_zipf)):
        if exponent > _MAX_ZIPF:  # steeper skews underflow the tail's probabilities
            raise InvalidParameterError(f"{name} must be <= {_MAX_ZIPF:g}, got {exponent!r}")
    if seed is not None:
        seed = _check_int("seed", seed, minimum=0)

    rng = np.random.default_rng(seed)
    generator = _Generator(
        rng, n_users, n_items, factors, noise, feedback, float(low), float(high), item_zipf
    )
    counts = _user_counts(rng, n_users, n_items, n_interactions, user_zipf)
    return generator.run(counts)


# ---------------------------------------------------------------------- validation
def _check_int(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise InvalidParameterError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_real(name: str, value: Any, *, minimum: float | None = None) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidParameterError(f"{name} must be finite, got {value!r}")
    if minimum is not None and number < minimum:
        raise InvalidParameterError(f"{name} must be >= {minimum:g}, got {value!r}")
    return number


def _check_scale(rating_scale: Any) -> tuple[int, int]:
    if not isinstance(rating_scale, (tuple, list)) or len(rating_scale) != 2:
        raise TypeError(
            f"rating_scale must be a (lowest, highest) pair of integers, got {rating_scale!r}"
        )
    if not all(
        isinstance(bound, Integral) and not isinstance(bound, (bool, np.bool_))
        for bound in rating_scale
    ):
        raise TypeError(
            f"rating_scale must be a (lowest, highest) pair of integers, got {rating_scale!r}"
        )
    low, high = int(rating_scale[0]), int(rating_scale[1])
    if low >= high:
        raise InvalidParameterError(
            f"rating_scale must be (lowest, highest) with lowest < highest, got {rating_scale!r}"
        )
    return low, high


# ---------------------------------------------------------------------- Zipf-like skews
def _log_rank_mass(n: int, exponent: float) -> np.ndarray:
    """Log of the mass of ranks ``1..n`` under a continuous ``x ** -exponent`` law on
    ``[1, n + 1)``: the mass of rank ``r`` is the integral over ``[r, r + 1)``, ~ ``r ** -a``.
    """
    ranks = np.arange(1, n + 1, dtype=np.float64)
    step = np.log1p(1.0 / ranks)
    power = 1.0 - exponent
    if abs(power) < 1e-9:
        return np.log(step)
    # r**p * ((1 + 1/r)**p - 1) / p, written to avoid cancellation for large r
    return power * np.log(ranks) + np.log(np.expm1(power * step) / power)


def _sample_ranks(rng: np.random.Generator, n: int, exponent: float, size: int) -> np.ndarray:
    """0-based ranks drawn from the same continuous law by inverting its distribution."""
    u = rng.random(size)
    power = 1.0 - exponent
    if abs(power) < 1e-9:
        x = np.exp(u * math.log(n + 1.0))
    else:
        top = math.expm1(power * math.log(n + 1.0))  # (n + 1)**p - 1
        x = np.exp(np.log1p(u * top) / power)
    ranks = x.astype(np.int64) - 1
    np.clip(ranks, 0, n - 1, out=ranks)
    return ranks


def _user_counts(
    rng: np.random.Generator, n_users: int, n_items: int, total: int, exponent: float
) -> np.ndarray:
    """Interactions per user: Zipf-like over shuffled ranks, at least one each when there are
    enough, and at most ``n_items`` each, summing to ``total``."""
    log_mass = _log_rank_mass(n_users, exponent)
    weights = np.empty(n_users, dtype=np.float64)
    weights[rng.permutation(n_users)] = np.exp(log_mass - log_mass.max())
    weights /= weights.sum()
    floor = 1 if total >= n_users else 0
    counts = rng.multinomial(total - floor * n_users, weights).astype(np.int64) + floor
    # users drawn past the catalogue size hand their excess to the others, by weight
    for _ in range(8):
        excess = int(np.maximum(counts - n_items, 0).sum())
        if excess == 0:
            return counts
        np.minimum(counts, n_items, out=counts)
        share = np.where(counts < n_items, weights, 0.0)
        if share.sum() <= 0.0:
            counts[np.argmax(weights)] += excess  # handed on by the fill below
            break
        counts += rng.multinomial(excess, share / share.sum())
    excess = int(np.maximum(counts - n_items, 0).sum())
    np.minimum(counts, n_items, out=counts)
    if excess:  # deterministic fill of the remaining room, most active users first
        order = np.argsort(-weights, kind="stable")
        room = n_items - counts[order]
        before = np.cumsum(room) - room
        counts[order] += np.clip(excess - before, 0, room)
    return counts


# ---------------------------------------------------------------------- the generator
class _Generator:
    """Holds the planted parameters and fills the output arrays block by block."""

    def __init__(
        self,
        rng: np.random.Generator,
        n_users: int,
        n_items: int,
        factors: int,
        noise: float,
        feedback: Feedback,
        low: float,
        high: float,
        item_zipf: float,
    ) -> None:
        self.rng = rng
        self.n_users = n_users
        self.n_items = n_items
        self.noise = noise
        self.feedback = feedback
        self.low, self.high = low, high
        self.item_zipf = item_zipf
        self.rank_to_item = rng.permutation(n_items).astype(np.int64)
        self.log_popularity = np.empty(n_items, dtype=np.float64)
        self.log_popularity[self.rank_to_item] = _log_rank_mass(n_items, item_zipf)

        if feedback == "explicit":
            scale = (high - low) / 4.0
            self.mean = low + 0.625 * (high - low)
            self.user_bias = (rng.standard_normal(n_users) * 0.35 * scale).astype(np.float32)
            self.item_bias = (rng.standard_normal(n_items) * 0.5 * scale).astype(np.float32)
            self.user_factors, self.item_factors = _factors(rng, n_users, n_items, factors, scale)
            return
        # implicit: an item's factors are those of its cluster, so each user's choice
        # probabilities popularity * exp(u.v) can be drawn exactly, cluster first, then item
        n_clusters = min(n_items, max(_MIN_CLUSTERS, _CLUSTERS_PER_FACTOR * factors))
        if factors == 0:
            n_clusters = 1
        self.cluster_of = (rng.permutation(n_items) % n_clusters).astype(np.int64)
        self.user_factors, self.centres = _factors(
            rng, n_users, n_clusters, factors, _IMPLICIT_SCORE_STD
        )
        self.item_factors = self.centres[self.cluster_of]
        # cluster k's items occupy (k, k + 1] of one increasing array, in proportion to their
        # popularity; each cluster is summed on its own so tiny masses are not lost
        by_cluster = np.argsort(self.cluster_of, kind="stable")
        bounds = np.searchsorted(self.cluster_of[by_cluster], np.arange(n_clusters + 1))
        self.items_by_cluster = by_cluster.astype(np.int64)
        self.cluster_cdf = np.empty(n_items, dtype=np.float64)
        self.log_cluster_mass = np.empty(n_clusters, dtype=np.float64)
        for cluster, (low, high) in enumerate(itertools.pairwise(map(int, bounds))):
            log_mass = self.log_popularity[by_cluster[low:high]]
            top = log_mass.max()
            cumulative = np.cumsum(np.exp(log_mass - top))
            self.log_cluster_mass[cluster] = top + math.log(cumulative[-1])
            self.cluster_cdf[low:high] = cluster + cumulative / cumulative[-1]
            self.cluster_cdf[high - 1] = cluster + 1.0

    # -------------------------------------------------------------- driver
    def run(self, counts: np.ndarray) -> Interactions:
        total = int(counts.sum())
        offsets = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        self.counts, self.offsets = counts, offsets
        self.items_out = np.empty(total, dtype=np.int64)
        self.values_out = np.empty(total, dtype=np.float32)

        factor = _OVERSAMPLE
        # users who would draw about as many candidates as there are items go dense at once
        dense = counts * factor + _EXTRA_CANDIDATES >= self.n_items
        pending = np.flatnonzero(~dense & (counts > 0))
        for _ in range(_SPARSE_ROUNDS):
            if len(pending) == 0:
                break
            pending = self._sparse(pending, factor)
            factor *= 2.0
        self._dense(np.sort(np.concatenate([np.flatnonzero(dense & (counts > 0)), pending])))

        user_index = np.repeat(np.arange(self.n_users, dtype=np.int64), counts)
        return Interactions(
            user_index=user_index,
            item_index=self.items_out,
            values=self.values_out,
            users=IdMap(np.arange(self.n_users, dtype=np.int64), name="users"),
            items=IdMap(np.arange(self.n_items, dtype=np.int64), name="items"),
            feedback=self.feedback,
            timestamps=self._timestamps(counts),
            source="synthetic",
        )

    # -------------------------------------------------------------- sparse path
    def _sparse(self, users: np.ndarray, factor: float) -> np.ndarray:
        """Draw candidates with replacement and keep each user's first distinct ones.

        Returns the users still short of their count; their rows stay unwritten.
        """
        wanted = np.ceil(self.counts[users] * factor).astype(np.int64) + _EXTRA_CANDIDATES
        cumulative = np.cumsum(wanted)
        cuts = np.searchsorted(
            cumulative, np.arange(_BLOCK_CANDIDATES, int(cumulative[-1]), _BLOCK_CANDIDATES)
        )
        cuts = np.unique(np.clip(cuts, 1, max(len(users) - 1, 1)))
        short = [
            self._sparse_block(block, block_wanted)
            for block, block_wanted in zip(np.split(users, cuts), np.split(wanted, cuts),
                                           strict=True)
            if len(block)
        ]
        return np.concatenate(short) if short else users[:0]

    def _sparse_block(self, users: np.ndarray, wanted: np.ndarray) -> np.ndarray:
        rng, n_items = self.rng, self.n_items
        need = self.counts[users]
        local = np.repeat(np.arange(len(users), dtype=np.int64), wanted)
        user_scores = None
        if self.feedback == "explicit":
            items = self.rank_to_item[_sample_ranks(rng, n_items, self.item_zipf, len(local))]
        else:
            user_scores = self._cluster_scores(users)
            logits = user_scores + self.log_cluster_mass
            chance = np.exp(logits - logits.max(axis=1, keepdims=True))
            cumulative = np.cumsum(chance, axis=1)
            cumulative /= cumulative[:, -1:]
            cumulative[:, -1] = 1.0
            # one sorted array for all users: user j's clusters occupy (j, j + 1]
            cumulative += np.arange(len(users))[:, None]
            draws = local + rng.random(len(local))
            cluster = np.searchsorted(cumulative.ravel(), draws, side="right") - local * len(
                self.log_cluster_mass
            )
            np.clip(cluster, 0, len(self.log_cluster_mass) - 1, out=cluster)
            # sorted queries make the search cache-friendly; the draw order is restored after
            queries = cluster + rng.random(len(local))
            by_query = np.argsort(queries)
            position = np.empty(len(local), dtype=np.int64)
            position[by_query] = np.searchsorted(
                self.cluster_cdf, queries[by_query], side="right"
            )
            np.clip(position, 0, n_items - 1, out=position)
            items = self.items_by_cluster[position]
        # each user's first distinct candidates, in draw order: a draw without replacement
        keys = local * n_items + items
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        first = np.ones(len(keys), dtype=bool)
        first[1:] = sorted_keys[1:] != sorted_keys[:-1]
        positions = np.sort(order[first])
        local, items = local[positions], items[positions]

        got = np.bincount(local, minlength=len(users))
        rank = np.arange(len(local), dtype=np.int64) - (np.cumsum(got) - got)[local]
        complete = got >= need
        keep = (rank < need[local]) & complete[local]
        owners = users[local[keep]]
        rows = self.offsets[owners] + rank[keep]
        chosen = items[keep]
        self.items_out[rows] = chosen
        if user_scores is None:
            self.values_out[rows] = self._ratings(owners, chosen)
        else:
            scores = user_scores[local[keep], self.cluster_of[chosen]]
            self.values_out[rows] = self._weights(scores)
        short: np.ndarray = users[~complete]
        return short

    # -------------------------------------------------------------- dense path
    def _dense(self, users: np.ndarray) -> None:
        """Exact draws without replacement over the whole catalogue (Gumbel top-k)."""
        rng, n_items = self.rng, self.n_items
        per_block = max(1, _BLOCK_CELLS // n_items)
        for start in range(0, len(users), per_block):
            block = users[start:start + per_block]
            need = self.counts[block]
            keys = self.log_popularity[None, :] - np.log(
                rng.standard_exponential((len(block), n_items))
            )
            scores = None
            if self.feedback == "implicit":
                scores = self._cluster_scores(block)[:, self.cluster_of]
                keys += scores
            top = int(need.max())
            if top < n_items:
                candidates = np.argpartition(-keys, top - 1, axis=1)[:, :top]
            else:
                candidates = np.broadcast_to(np.arange(n_items), keys.shape)
            picked = np.take_along_axis(keys, candidates, axis=1)
            ordered = np.take_along_axis(candidates, np.argsort(-picked, axis=1), axis=1)
            row_of, column = np.nonzero(np.arange(top)[None, :] < need[:, None])
            rows = self.offsets[block[row_of]] + column
            chosen = ordered[row_of, column].astype(np.int64)
            self.items_out[rows] = chosen
            if scores is None:
                self.values_out[rows] = self._ratings(block[row_of], chosen)
            else:
                self.values_out[rows] = self._weights(scores[row_of, chosen])

    # -------------------------------------------------------------- values and times
    def _cluster_scores(self, users: np.ndarray) -> np.ndarray:
        """Each user's taste for each cluster: ``u.v`` plus per-pair noise, float64."""
        scores: np.ndarray = (self.user_factors[users] @ self.centres.T).astype(np.float64)
        if self.noise:
            scores += self.rng.standard_normal(scores.shape) * self.noise
        return scores

    def _ratings(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        products = (self.user_factors[users] * self.item_factors[items]).sum(axis=1)
        ratings: np.ndarray = products.astype(np.float64) + self.mean
        ratings += self.user_bias[users] + self.item_bias[items]
        if self.noise:
            ratings += self.rng.standard_normal(len(ratings)) * self.noise
        np.rint(ratings, out=ratings)
        np.clip(ratings, self.low, self.high, out=ratings)
        return (ratings + 0.0).astype(np.float32)  # + 0.0 turns -0.0 into 0.0

    def _weights(self, scores: np.ndarray) -> np.ndarray:
        rates = np.exp(np.minimum(scores, _MAX_LOG_WEIGHT))
        weights: np.ndarray = (1 + self.rng.poisson(rates)).astype(np.float32)
        return weights

    def _timestamps(self, counts: np.ndarray) -> np.ndarray:
        """Each user starts at a random time and spreads their interactions over a random
        active period, with exponential gaps."""
        rng, offsets = self.rng, self.offsets
        starts = rng.integers(_START_TIME, _START_TIME + _TIME_SPAN, self.n_users)
        mean_gap = rng.uniform(0.05, 1.0, self.n_users) * _TIME_SPAN / np.maximum(counts, 1)
        out = np.empty(int(offsets[-1]), dtype=np.int64)
        cuts = np.searchsorted(offsets, np.arange(0, int(offsets[-1]), _BLOCK_CANDIDATES))
        bounds = [*np.unique(cuts).tolist(), self.n_users]
        for first_user, end_user in itertools.pairwise(bounds):
            low, high = int(offsets[first_user]), int(offsets[end_user])
            if low == high:
                continue
            user_rows = np.repeat(np.arange(first_user, end_user), counts[first_user:end_user])
            gaps = rng.standard_exponential(high - low) * mean_gap[user_rows]
            elapsed = np.cumsum(gaps)
            first_rows = offsets[user_rows] - low
            before = elapsed[first_rows] - gaps[first_rows]
            out[low:high] = starts[user_rows] + (elapsed - before).astype(np.int64)
        return out


def _factors(
    rng: np.random.Generator, n_rows: int, n_cols: int, factors: int, score_std: float
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian factors whose dot products have standard deviation ``score_std``."""
    # u.v has variance factors * std**4
    std = math.sqrt(score_std / math.sqrt(factors)) if factors else 0.0
    rows = (rng.standard_normal((n_rows, factors)) * std).astype(np.float32)
    cols = (rng.standard_normal((n_cols, factors)) * std).astype(np.float32)
    return rows, cols

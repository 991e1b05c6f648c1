"""Seeded, leakage-free train/test splits.

Every splitter returns :class:`Split` objects whose ``train`` and ``test`` parts share no
interaction. Each part keeps its own raw-id maps. Users or items that occur only in ``test``
("cold" ids) are counted on the split and handled by the ``cold`` policy: ``"keep"`` leaves those
rows in ``test`` (``evaluate`` scores them with the model's fallback and reports how many there
were) and ``"drop"`` removes them from ``test``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from latentrec._rng import numpy_rng
from latentrec.data.interactions import Interactions
from latentrec.errors import DataError, InvalidParameterError

__all__ = ["Split", "k_fold", "leave_last_out", "random_split", "temporal_split", "user_holdout"]

ColdPolicy = Literal["keep", "drop"]


@dataclass(frozen=True)
class Split:
    """A train/test pair; unpacks as ``train, test = split``."""

    train: Interactions
    test: Interactions
    cold_users: int
    cold_items: int
    cold_rows: int

    def __iter__(self) -> Iterator[Interactions]:
        yield self.train
        yield self.test


def _check_cold(cold: str) -> None:
    if cold not in ("keep", "drop"):
        raise InvalidParameterError(f"cold must be 'keep' or 'drop', got {cold!r}")


def _check_data(data: object) -> None:
    if not isinstance(data, Interactions):
        raise TypeError(f"data must be Interactions, got {type(data).__name__}")


def _rng(seed: object) -> np.random.Generator:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"seed must be an integer or None, got {type(seed).__name__}")
    if seed is not None and seed < 0:
        raise InvalidParameterError(f"seed must be >= 0, got {seed}")
    return numpy_rng(None if seed is None else int(seed))


def _make_split(data: Interactions, test_mask: np.ndarray, cold: ColdPolicy) -> Split:
    _check_cold(cold)
    if test_mask.all() or not test_mask.any():
        raise DataError(
            f"the split leaves {'no training' if test_mask.all() else 'no test'} interactions; "
            f"the data has {len(data)} rows"
        )
    train_users = np.zeros(data.n_users, dtype=bool)
    train_items = np.zeros(data.n_items, dtype=bool)
    train_users[data.user_index[~test_mask]] = True
    train_items[data.item_index[~test_mask]] = True
    test_users = np.unique(data.user_index[test_mask])
    test_items = np.unique(data.item_index[test_mask])
    cold_row = test_mask & (~train_users[data.user_index] | ~train_items[data.item_index])
    cold_users = int((~train_users[test_users]).sum())
    cold_items = int((~train_items[test_items]).sum())
    cold_rows = int(cold_row.sum())
    keep_test = test_mask & ~cold_row if cold == "drop" else test_mask
    if not keep_test.any():
        raise DataError("every test interaction involves a cold user or item")
    return Split(
        train=data.take(~test_mask),
        test=data.take(keep_test),
        cold_users=cold_users,
        cold_items=cold_items,
        cold_rows=cold_rows,
    )


def _check_fraction(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number between 0 and 1, got {type(value).__name__}")
    if not 0.0 < value < 1.0:
        raise InvalidParameterError(f"{name} must be between 0 and 1, got {value!r}")


def random_split(
    data: Interactions, test_size: float = 0.2, *, seed: int | None = 0, cold: ColdPolicy = "keep"
) -> Split:
    """Hold out a random ``test_size`` fraction of all interactions.

    Examples
    --------
    >>> from latentrec.datasets import synthetic
    >>> train, test = random_split(synthetic(n_users=50, n_items=40, density=0.2), seed=1)
    >>> len(test) > 0
    True
    """
    _check_data(data)
    _check_fraction("test_size", test_size)
    _check_cold(cold)
    rng = _rng(seed)
    n_test = round(len(data) * test_size)
    test_mask = np.zeros(len(data), dtype=bool)
    test_mask[rng.permutation(len(data))[:n_test]] = True
    return _make_split(data, test_mask, cold)


def _rank_within_user(
    data: Interactions, *keys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's 0-based position within its user when ordered by ``keys`` (the first one
    decides, later ones break ties), and the users' sizes."""
    order = np.lexsort((*keys[::-1], data.user_index))
    counts = data.user_counts()
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.empty(len(data), dtype=np.int64)
    rank[order] = np.arange(len(data)) - starts[data.user_index[order]]
    return rank, counts


def _per_user_test_counts(
    counts: np.ndarray, test_size: float | int, name: str = "test_size"
) -> np.ndarray:
    if isinstance(test_size, (bool, np.bool_)) or not isinstance(
        test_size, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{name} must be a fraction or a count, got {type(test_size).__name__}")
    wanted: np.ndarray
    if isinstance(test_size, (int, np.integer)):
        if test_size < 1:
            raise InvalidParameterError(f"{name} as a count must be >= 1, got {test_size}")
        wanted = np.full(len(counts), int(test_size))
    else:
        _check_fraction("test_size", float(test_size))
        wanted = np.round(counts * float(test_size)).astype(np.int64)
    # every user keeps at least one training interaction
    capped: np.ndarray = np.minimum(wanted, np.maximum(counts - 1, 0))
    return capped


def user_holdout(
    data: Interactions,
    test_size: float | int = 0.2,
    *,
    seed: int | None = 0,
    cold: ColdPolicy = "keep",
) -> Split:
    """Hold out part of every user's interactions at random.

    ``test_size`` is a fraction (``0.2``: 20% of each user's rows, rounded) or a count
    (``1``: leave-one-out). Every user keeps at least one training interaction, so users with a
    single interaction stay entirely in ``train``.
    """
    _check_data(data)
    _check_cold(cold)
    rank, counts = _rank_within_user(data, _rng(seed).random(len(data)))
    n_test = _per_user_test_counts(counts, test_size)
    return _make_split(data, rank < n_test[data.user_index], cold)


def leave_last_out(data: Interactions, n: int = 1, *, cold: ColdPolicy = "keep") -> Split:
    """Hold out each user's ``n`` most recent interactions (of equal times, the later rows count
    as more recent). Users keep at least one training interaction."""
    _check_data(data)
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an integer, got {type(n).__name__}")
    _check_cold(cold)
    if data.timestamps is None:
        raise DataError("leave_last_out needs timestamps; the data has none", source=data.source)
    # exact integer keys: newest first, then the later row first
    rank, counts = _rank_within_user(data, -data.timestamps, -np.arange(len(data)))
    n_test = _per_user_test_counts(counts, n, "n")
    return _make_split(data, rank < n_test[data.user_index], cold)


def temporal_split(
    data: Interactions,
    test_size: float = 0.2,
    *,
    cutoff: int | None = None,
    cold: ColdPolicy = "keep",
) -> Split:
    """Hold out everything at or after one global time: the ``cutoff`` timestamp if given,
    else the time that leaves the latest ``test_size`` fraction of interactions in ``test``."""
    _check_data(data)
    _check_cold(cold)
    if data.timestamps is None:
        raise DataError("temporal_split needs timestamps; the data has none", source=data.source)
    if cutoff is not None and (
        isinstance(cutoff, bool) or not isinstance(cutoff, (int, float, np.integer, np.floating))
    ):
        raise TypeError(f"cutoff must be a timestamp in seconds, got {type(cutoff).__name__}")
    if cutoff is None:
        _check_fraction("test_size", test_size)
        order = np.argsort(data.timestamps, kind="stable")
        n_test = max(1, round(len(data) * test_size))
        test_mask = np.zeros(len(data), dtype=bool)
        test_mask[order[len(data) - n_test:]] = True
    else:
        test_mask = data.timestamps >= cutoff
    return _make_split(data, test_mask, cold)


def k_fold(
    data: Interactions, k: int = 5, *, seed: int | None = 0, cold: ColdPolicy = "keep"
) -> Iterator[Split]:
    """``k`` splits whose test parts partition the interactions at random.

    The arguments are checked at once; the splits are made one at a time as they are used.
    """
    _check_data(data)
    _check_cold(cold)
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an integer, got {type(k).__name__}")
    if k < 2:
        raise InvalidParameterError(f"k must be >= 2, got {k!r}")
    if k > len(data):
        raise InvalidParameterError(f"k={k} folds need at least {k} interactions, got {len(data)}")
    fold = _rng(seed).permutation(len(data)) % k
    return (_make_split(data, fold == index, cold) for index in range(int(k)))

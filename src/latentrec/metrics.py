"""Accuracy and ranking metrics: pure, vectorised array functions.

This module is the library's reference for what each metric means.

Rating metrics
--------------
For ``n`` paired ratings ``y`` (true) and ``p`` (predicted):

- ``rmse = sqrt(mean((y - p) ** 2))``
- ``mae = mean(abs(y - p))``

Ranking metrics
---------------
Inputs are the same for every ranking metric:

``recommended``
    Integer array of shape ``(n_users, L)``. Row ``u`` holds item indices in rank order, best
    first; rank ``r`` (1-based) is column ``r - 1``. An entry of ``-1`` means "no item" (the user
    had fewer than ``L`` candidates); it keeps its rank position but is never a hit. A row must not
    list the same item twice.
``relevant``
    A ``scipy.sparse`` matrix (CSR preferred; other formats are converted) of shape
    ``(n_users, n_items)``. Row ``u`` belongs to row ``u`` of ``recommended``; its stored entries
    with a nonzero value mark the held-out relevant items ``R_u`` of that user. An explicitly
    stored zero is not relevant, and an item stored twice counts once.
``k``
    Cut-off, ``1 <= k <= L``. Only ranks ``1..k`` are scored.

Let ``hit(u, r)`` be 1 when the item at rank ``r`` of user ``u`` is in ``R_u`` and 0 otherwise,
``H_u = sum_{r<=k} hit(u, r)`` and ``m_u = min(k, |R_u|)``. Per user:

- ``precision_at_k = H_u / k`` (padding counts as a miss: the denominator is always ``k``)
- ``recall_at_k = H_u / |R_u|``
- ``ndcg_at_k = DCG / IDCG`` with binary gains, ``DCG = sum_{r<=k} hit(u, r) / log2(r + 1)`` and
  ``IDCG = sum_{r<=m_u} 1 / log2(r + 1)``
- ``map_at_k = (1 / m_u) * sum_{r<=k} hit(u, r) * (sum_{s<=r} hit(u, s)) / r``
- ``hit_rate_at_k = 1`` if ``H_u > 0`` else ``0``
- ``mrr_at_k = 1 / r*`` for the smallest rank ``r* <= k`` with a hit, ``0`` if there is none

Every ranking metric returns a float64 array of per-user scores, and ``NaN`` for users with no
relevant item (``|R_u| = 0``), whose score is undefined. Average with :func:`numpy.nanmean`.

Catalogue metric
----------------
- ``catalogue_coverage = |{items in at least one row of recommended}| / n_items``, ignoring ``-1``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from latentrec.errors import InvalidParameterError

__all__ = [
    "catalogue_coverage",
    "hit_rate_at_k",
    "hits_matrix",
    "mae",
    "map_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "recall_at_k",
    "rmse",
]

RelevantMatrix = sp.csr_array | sp.csr_matrix

_PAD = -1


# --------------------------------------------------------------------------------------------
# rating metrics


def _paired(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[NDArray[np.float64], ...]:
    arrays = []
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        array = np.asarray(values)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}")
        if array.ndim != 1:
            raise InvalidParameterError(f"{name} must be one-dimensional, got shape {array.shape}")
        arrays.append(array.astype(np.float64, copy=False))
    true, pred = arrays
    if true.shape != pred.shape:
        raise InvalidParameterError(
            f"y_true and y_pred must have the same length, got {true.size} and {pred.size}"
        )
    if true.size == 0:
        raise InvalidParameterError("y_true and y_pred are empty; need at least one rating")
    return true, pred


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error of predicted ratings.

    Parameters
    ----------
    y_true, y_pred : array_like of float, shape (n,)
        True and predicted ratings, paired by position.

    Returns
    -------
    float
        ``sqrt(mean((y_true - y_pred) ** 2))``.

    Raises
    ------
    InvalidParameterError
        If the inputs are not one-dimensional, differ in length or are empty.
    TypeError
        If an input does not hold numbers.

    Examples
    --------
    >>> rmse([3.0, 4.0, 5.0], [2.0, 4.0, 5.0])  # sqrt(1 / 3)
    0.5773502691896257
    """
    true, pred = _paired(y_true, y_pred)
    return float(np.sqrt(np.mean(np.square(true - pred))))


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error of predicted ratings.

    Parameters
    ----------
    y_true, y_pred : array_like of float, shape (n,)
        True and predicted ratings, paired by position.

    Returns
    -------
    float
        ``mean(abs(y_true - y_pred))``.

    Raises
    ------
    InvalidParameterError
        If the inputs are not one-dimensional, differ in length or are empty.
    TypeError
        If an input does not hold numbers.

    Examples
    --------
    >>> mae([3.0, 4.0, 5.0], [2.0, 4.5, 5.0])  # (1 + 0.5 + 0) / 3
    0.5
    """
    true, pred = _paired(y_true, y_pred)
    return float(np.mean(np.abs(true - pred)))


# --------------------------------------------------------------------------------------------
# ranking metrics: validation and the hit matrix


def _check_recommended(recommended: ArrayLike, n_items: int) -> NDArray[np.int64]:
    """Validate the shape, dtype and range of ``recommended``; return it as int64."""
    array = np.asarray(recommended)
    if array.dtype.kind not in "iu":
        raise TypeError(f"recommended must hold integer item indices, got dtype {array.dtype}")
    if array.ndim != 2:
        raise InvalidParameterError(
            f"recommended must be two-dimensional (n_users, L), got shape {array.shape}"
        )
    rec = array.astype(np.int64, copy=False)
    if rec.size:
        low, high = int(rec.min()), int(rec.max())
        if low < _PAD or high >= n_items:
            bad = low if low < _PAD else high
            raise InvalidParameterError(
                f"recommended holds item index {bad}; expected -1 (no item) or 0..{n_items - 1}"
            )
    return rec


def _check_distinct(rec: NDArray[np.int64]) -> None:
    """Raise if a row of ``rec`` lists the same item (other than ``-1``) twice."""
    if rec.shape[1] < 2:
        return
    ordered = np.sort(rec, axis=1)
    repeated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] != _PAD)
    if repeated.any():
        row, col = np.argwhere(repeated)[0]
        raise InvalidParameterError(
            f"recommended row {row} lists item {ordered[row, col + 1]} more than once; "
            f"each row must hold distinct items"
        )


def _check_k(k: int, n_cols: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if not 1 <= k <= n_cols:
        raise InvalidParameterError(
            f"k must be between 1 and {n_cols} (the length of the recommendation lists), got {k}"
        )


def _relevant_keys(
    coo: sp.coo_array | sp.coo_matrix, n_users: int, n_items: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Sorted, distinct ``user * n_items + item`` keys of the relevant entries, and |R_u|."""
    nonzero = coo.data != 0
    keys = coo.row[nonzero].astype(np.int64) * n_items + coo.col[nonzero].astype(np.int64)
    if keys.size > 1:
        if not bool(np.all(keys[1:] >= keys[:-1])):  # canonical CSR input is already sorted
            keys = np.sort(keys)
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]  # one item, one entry
    n_relevant = np.bincount(keys // max(n_items, 1), minlength=n_users).astype(np.int64)
    return keys, n_relevant


def _lookup(rec: NDArray[np.int64], keys: NDArray[np.int64], n_items: int) -> NDArray[np.bool_]:
    """For each entry of ``rec``, whether ``(row, item)`` is among the sorted ``keys``."""
    if keys.size == 0 or rec.size == 0:
        return np.zeros(rec.shape, dtype=bool)
    rows = np.arange(rec.shape[0], dtype=np.int64)[:, None]
    query = rows * n_items + rec
    pos = np.searchsorted(keys, query)
    np.minimum(pos, keys.size - 1, out=pos)
    found: NDArray[np.bool_] = (keys[pos] == query) & (rec != _PAD)
    return found


def _prepare(
    recommended: ArrayLike, relevant: RelevantMatrix, k: int | None
) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    """Validate the inputs; return the hit matrix of the top ``k`` columns and |R_u|."""
    if not sp.issparse(relevant):
        raise TypeError(
            f"relevant must be a scipy.sparse matrix (n_users, n_items), "
            f"got {type(relevant).__name__}"
        )
    coo = relevant.tocoo()
    if coo.ndim != 2:
        raise InvalidParameterError(
            f"relevant must be two-dimensional (n_users, n_items), got shape {coo.shape}"
        )
    n_users, n_items = (int(n) for n in coo.shape)
    rec = _check_recommended(recommended, n_items)
    if k is not None:
        _check_k(k, rec.shape[1])
    if rec.shape[0] != n_users:
        raise InvalidParameterError(
            f"recommended has {rec.shape[0]} rows but relevant has {n_users}; "
            f"row i of both must belong to the same user"
        )
    _check_distinct(rec)
    keys, n_relevant = _relevant_keys(coo, n_users, n_items)
    top = rec if k is None else rec[:, :k]
    return _lookup(top, keys, n_items), n_relevant


def hits_matrix(recommended: ArrayLike, relevant: RelevantMatrix) -> NDArray[np.bool_]:
    """Mark which recommended items are relevant.

    Parameters
    ----------
    recommended : array_like of int, shape (n_users, L)
        Item indices in rank order, best first; ``-1`` means "no item".
    relevant : scipy.sparse matrix, shape (n_users, n_items)
        Stored nonzero entries mark the relevant items of each user.

    Returns
    -------
    numpy.ndarray of bool, shape (n_users, L)
        ``True`` where ``recommended[u, r]`` is a relevant item of user ``u``; never at ``-1``.

    Raises
    ------
    InvalidParameterError
        If the shapes disagree, an index is out of range or a row repeats an item.
    TypeError
        If ``recommended`` is not integer or ``relevant`` is not sparse.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> relevant = sp.csr_array(([1, 1, 1], ([0, 0, 1], [2, 5, 0])), shape=(2, 6))
    >>> hits_matrix([[5, 1, 2], [3, 0, -1]], relevant)
    array([[ True, False,  True],
           [False,  True, False]])
    """
    hits, _ = _prepare(recommended, relevant, None)
    return hits


def _per_user(
    recommended: ArrayLike,
    relevant: RelevantMatrix,
    k: int,
    score: Callable[[NDArray[np.bool_], NDArray[np.int64], int], NDArray[np.float64]],
) -> NDArray[np.float64]:
    hits, n_relevant = _prepare(recommended, relevant, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = score(hits, n_relevant, k).astype(np.float64, copy=False)
    values[n_relevant == 0] = np.nan
    return values


def _discounts(k: int) -> NDArray[np.float64]:
    """``1 / log2(r + 1)`` for ranks ``r = 1..k``."""
    discounts: NDArray[np.float64] = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    return discounts


def _precision(
    hits: NDArray[np.bool_], n_relevant: NDArray[np.int64], k: int
) -> NDArray[np.float64]:
    precision: NDArray[np.float64] = np.count_nonzero(hits, axis=1) / np.float64(k)
    return precision


def _recall(hits: NDArray[np.bool_], n_relevant: NDArray[np.int64], k: int) -> NDArray[np.float64]:
    recall: NDArray[np.float64] = np.count_nonzero(hits, axis=1) / n_relevant.astype(np.float64)
    return recall


def _ndcg(hits: NDArray[np.bool_], n_relevant: NDArray[np.int64], k: int) -> NDArray[np.float64]:
    discounts = _discounts(k)
    dcg = hits.astype(np.float64) @ discounts
    ideal = np.concatenate(([0.0], np.cumsum(discounts)))[np.minimum(n_relevant, k)]
    return dcg / ideal


def _map(hits: NDArray[np.bool_], n_relevant: NDArray[np.int64], k: int) -> NDArray[np.float64]:
    ranks = np.arange(1, k + 1, dtype=np.float64)
    precision_at_rank = np.cumsum(hits, axis=1) / ranks
    total = np.where(hits, precision_at_rank, 0.0).sum(axis=1)
    average: NDArray[np.float64] = total / np.minimum(n_relevant, k).astype(np.float64)
    return average


def _hit_rate(
    hits: NDArray[np.bool_], n_relevant: NDArray[np.int64], k: int
) -> NDArray[np.float64]:
    hit: NDArray[np.float64] = (np.count_nonzero(hits, axis=1) > 0).astype(np.float64)
    return hit


def _mrr(hits: NDArray[np.bool_], n_relevant: NDArray[np.int64], k: int) -> NDArray[np.float64]:
    first = np.argmax(hits, axis=1).astype(np.float64) + 1.0
    reciprocal: NDArray[np.float64] = np.where(hits.any(axis=1), 1.0 / first, 0.0)
    return reciprocal


def precision_at_k(recommended: ArrayLike, relevant: RelevantMatrix, k: int) -> NDArray[np.float64]:
    """Precision at ``k``: relevant items among the top ``k``, divided by ``k``.

    Parameters
    ----------
    recommended : array_like of int, shape (n_users, L)
        Item indices in rank order, best first; ``-1`` means "no item" and is never a hit.
    relevant : scipy.sparse matrix, shape (n_users, n_items)
        Stored nonzero entries mark the held-out relevant items; row ``u`` belongs to row ``u``
        of ``recommended``.
    k : int
        Cut-off, ``1 <= k <= L``.

    Returns
    -------
    numpy.ndarray of float64, shape (n_users,)
        Per-user scores; ``NaN`` for users with no relevant item (average with ``np.nanmean``).

    Raises
    ------
    InvalidParameterError
        If ``k`` is out of range, the shapes disagree, an index is out of range or a row
        repeats an item.
    TypeError
        If ``k`` or ``recommended`` is not integer or ``relevant`` is not sparse.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> relevant = sp.csr_array(([1, 1, 1], ([0, 0, 1], [2, 5, 0])), shape=(3, 6))
    >>> precision_at_k([[5, 1, 2], [3, 0, -1], [1, 2, 3]], relevant, k=2)
    array([0.5, 0.5, nan])
    """
    return _per_user(recommended, relevant, k, _precision)


def recall_at_k(recommended: ArrayLike, relevant: RelevantMatrix, k: int) -> NDArray[np.float64]:
    """Recall at ``k``: relevant items among the top ``k``, divided by all relevant items.

    Parameters
    ----------
    recommended : array_like of int, shape (n_users, L)
        Item indices in rank order, best first; ``-1`` means "no item" and is never a hit.
    relevant : scipy.sparse matrix, shape (n_users, n_items)
        Stored nonzero entries mark the held-out relevant items; row ``u`` belongs to row ``u``
        of ``recommended``.
    k : int
        Cut-off, ``1 <= k <= L``.

    Returns
    -------
    numpy.ndarray of float64, shape (n_users,)
        Per-user scores; ``NaN`` for users with no relevant item (average with ``np.nanmean``).

    Raises
    ------
    InvalidParameterError
        If ``k`` is out of range, the shapes disagree, an index is out of range or a row
        repeats an item.
    TypeError
        If ``k`` or ``recommended`` is not integer or ``relevant`` is not sparse.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> relevant = sp.csr_array(([1, 1, 1], ([0, 0, 1], [2, 5, 0])), shape=(3, 6))
    >>> recall_at_k([[5, 1, 2], [3, 0, -1], [1, 2, 3]], relevant, k=2)
    array([0.5, 1. , nan])
    """
    return _per_user(recommended, relevant, k, _recall)


def ndcg_at_k(recommended: ArrayLike, relevant: RelevantMatrix, k: int) -> NDArray[np.float64]:
    """Normalised discounted cumulative gain at ``k``, with binary gains.

    ``DCG = sum of 1 / log2(r + 1)`` over the hits at ranks ``r <= k``; ``IDCG`` is the same sum
    over ranks ``1..min(k, |R_u|)``.

    Parameters
    ----------
    recommended : array_like of int, shape (n_users, L)
        Item indices in rank order, best first; ``-1`` means "no item" and is never a hit.
    relevant : scipy.sparse matrix, shape (n_users, n_items)
        Stored nonzero entries mark the held-out relevant items; row ``u`` belongs to row ``u``
        of ``recommended``.
    k : int
        Cut-off, ``1 <= k <= L``.

    Returns
    -------
    numpy.ndarray of float64, shape (n_users,)
        Per-user scores; ``NaN`` for users with no relevant item (average with ``np.nanmean``).

    Raises
    ------
    InvalidParameterError
        If ``k`` is out of range, the shapes disagree, an index is out of range or a row
        repeats an item.
    TypeError
        If ``k`` or ``recommended`` is not integer or ``relevant`` is not sparse.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> relevant = sp.csr_array(([1, 1, 1], ([0, 0, 1], [2, 5, 0])), shape=(3, 6))
    >>> ndcg_at_k([[5, 1, 2], [3, 0, -1], [1, 2, 3]], relevant, k=3).round(4)
    array([0.9197, 0.6309,    nan])
    """
    return _per_user(recommended, relevant, k, _ndcg)


def map_at_k(recommended: ArrayLike, relevant: RelevantMatrix, k: int) -> NDArray[np.float64]:
    """Mean average precision at ``k`` (per user: the average precision at ``k``).

    Sum, over the hits at ranks ``r <= k``, of the precision within the top ``r``, divided by
    ``min(k, |R_u|)``.

    Parameters
    ----------
    recommended : array_like of int, shape (n_users, L)
        Item indices in rank order, best first; ``-1`` means "no item" and is never a hit.
    relevant : scipy.sparse matrix, shape (n_users, n_items)
        Stored nonzero entries mark the held-out relevant items; row ``u`` belongs to row ``u``
        of ``recommended``.
    k : int
        Cut-off, ``1 <= k <= L``.

    Returns
    -------
    numpy.ndarray of float64, shape (n_users,)
        Per-user scores; ``NaN`` for users with no relevant item (average with ``np.nanmean``).

    Raises
    ------
    InvalidParameterError
        If ``k`` is out of range, the shapes disagree, an index is out of range or a row
        repeats an item.
    TypeError
        If ``k`` or ``recommended`` is not integer or ``relevant`` is not sparse.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> relevant = sp.csr_array(([1, 1, 1], ([0, 0, 1], [2, 5, 0])), shape=(3, 6))
    >>> map_at_k([[5, 1, 2], [3, 0, -1], [1, 2, 3]], relevant, k=3)  # (1 + 2/3) / 2, 1/2
    array([0.83333333, 0.5       ,        nan])
    """
    return _per_user(recommended, relevant, k, _map)


def hit_rate_at_k(recommended: ArrayLike, relevant: RelevantMatrix, k: int) -> NDArray[np.float64]:
    """Hit rate at ``k``: 1 if any of the top ``k`` items is relevant, else 0.

    Parameters
    ----------
    recommended : array_like of int, shape (n_users, L)
        Item indices in rank order, best first; ``-1`` means "no item" and is never a hit.
    relevant : scipy.sparse matrix, shape (n_users, n_items)
        Stored nonzero entries mark the held-out relevant items; row ``u`` belongs to row ``u``
        of ``recommended``.
    k : int
        Cut-off, ``1 <= k <= L``.

    Returns
    -------
    numpy.ndarray of float64, shape (n_users,)
        Per-user scores; ``NaN`` for users with no relevant item (average with ``np.nanmean``).

    Raises
    ------
    InvalidParameterError
        If ``k`` is out of range, the shapes disagree, an index is out of range or a row
        repeats an item.
    TypeError
        If ``k`` or ``recommended`` is not integer or ``relevant`` is not sparse.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> relevant = sp.csr_array(([1, 1, 1], ([0, 0, 1], [2, 5, 0])), shape=(3, 6))
    >>> hit_rate_at_k([[5, 1, 2], [3, 0, -1], [1, 2, 3]], relevant, k=1)
    array([ 1.,  0., nan])
    """
    return _per_user(recommended, relevant, k, _hit_rate)


def mrr_at_k(recommended: ArrayLike, relevant: RelevantMatrix, k: int) -> NDArray[np.float64]:
    """Reciprocal rank at ``k``: ``1 / rank`` of the first relevant item in the top ``k``, else 0.

    Parameters
    ----------
    recommended : array_like of int, shape (n_users, L)
        Item indices in rank order, best first; ``-1`` means "no item" and is never a hit.
    relevant : scipy.sparse matrix, shape (n_users, n_items)
        Stored nonzero entries mark the held-out relevant items; row ``u`` belongs to row ``u``
        of ``recommended``.
    k : int
        Cut-off, ``1 <= k <= L``.

    Returns
    -------
    numpy.ndarray of float64, shape (n_users,)
        Per-user scores; ``NaN`` for users with no relevant item (average with ``np.nanmean``).

    Raises
    ------
    InvalidParameterError
        If ``k`` is out of range, the shapes disagree, an index is out of range or a row
        repeats an item.
    TypeError
        If ``k`` or ``recommended`` is not integer or ``relevant`` is not sparse.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> relevant = sp.csr_array(([1, 1, 1], ([0, 0, 1], [2, 5, 0])), shape=(3, 6))
    >>> mrr_at_k([[5, 1, 2], [3, 0, -1], [1, 2, 3]], relevant, k=3)
    array([1. , 0.5, nan])
    """
    return _per_user(recommended, relevant, k, _mrr)


# --------------------------------------------------------------------------------------------
# catalogue metrics


def catalogue_coverage(recommended: ArrayLike, n_items: int) -> float:
    """Fraction of the catalogue that appears in at least one recommendation list.

    Parameters
    ----------
    recommended : array_like of int, shape (n_users, L)
        Item indices; ``-1`` means "no item" and is ignored.
    n_items : int
        Size of the catalogue; every index must be below it.

    Returns
    -------
    float
        ``|distinct items in recommended| / n_items``.

    Raises
    ------
    InvalidParameterError
        If ``n_items < 1``, ``recommended`` is not two-dimensional or an index is out of range.
    TypeError
        If ``n_items`` or ``recommended`` is not integer.

    Examples
    --------
    >>> catalogue_coverage([[0, 1], [1, 3], [3, -1]], n_items=5)  # items 0, 1, 3 of 5
    0.6
    """
    if isinstance(n_items, bool) or not isinstance(n_items, int | np.integer):
        raise TypeError(f"n_items must be an int, got {type(n_items).__name__}")
    if n_items < 1:
        raise InvalidParameterError(f"n_items must be at least 1, got {n_items}")
    rec = _check_recommended(recommended, int(n_items))
    seen = np.zeros(int(n_items), dtype=bool)
    seen[rec[rec != _PAD]] = True
    return float(np.count_nonzero(seen) / n_items)

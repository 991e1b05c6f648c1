"""Metrics against hand-worked examples and a slow loop-based reference."""

from __future__ import annotations

import doctest
import math
from collections.abc import Callable

import numpy as np
import pytest
import scipy.sparse as sp

from latentrec import metrics
from latentrec.errors import InvalidParameterError
from latentrec.metrics import (
    catalogue_coverage,
    hit_rate_at_k,
    hits_matrix,
    mae,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    rmse,
)

RankingMetric = Callable[..., np.ndarray]
RANKING = [precision_at_k, recall_at_k, ndcg_at_k, map_at_k, hit_rate_at_k, mrr_at_k]
NAN = float("nan")
LOG2_3 = math.log2(3)  # 1 / log2(3) = 0.63093 is the discount at rank 2


def csr(rows: list[list[int]], n_items: int) -> sp.csr_array:
    """Users x items CSR with a 1 at every listed item."""
    indptr = np.cumsum([0] + [len(r) for r in rows])
    indices = np.array([i for r in rows for i in r], dtype=np.int64)
    return sp.csr_array((np.ones(len(indices)), indices, indptr), shape=(len(rows), n_items))


# --------------------------------------------------------------------------------------------
# the hand-worked example
#
# user 0: recommended [2, 5, 1, 7], relevant {1, 2, 6}  -> hits at ranks 1 and 3
# user 1: recommended [4, 3, 0, -1], relevant {0, 3}    -> hits at ranks 2 and 3
# user 2: recommended [6, -1, -1, -1], relevant {}      -> undefined: NaN everywhere
# user 3: recommended [7, 6, 5, 4], relevant {3}        -> no hit

RECOMMENDED = np.array([[2, 5, 1, 7], [4, 3, 0, -1], [6, -1, -1, -1], [7, 6, 5, 4]])
RELEVANT = csr([[1, 2, 6], [0, 3], [], [3]], n_items=8)

EXPECTED: dict[tuple[RankingMetric, int], list[float]] = {
    # precision = hits / k (the -1 of user 1 counts as a miss)
    (precision_at_k, 4): [2 / 4, 2 / 4, NAN, 0.0],
    (precision_at_k, 2): [1 / 2, 1 / 2, NAN, 0.0],
    (precision_at_k, 1): [1.0, 0.0, NAN, 0.0],
    # recall = hits / |relevant|
    (recall_at_k, 4): [2 / 3, 2 / 2, NAN, 0.0],
    (recall_at_k, 2): [1 / 3, 1 / 2, NAN, 0.0],
    (recall_at_k, 1): [1 / 3, 0.0, NAN, 0.0],
    # user 0 @4: DCG = 1 + 1/log2(4) = 1.5; IDCG over min(4, 3) = 3 ranks = 1 + 1/log2(3) + 1/2
    # user 1 @4: DCG = 1/log2(3) + 1/log2(4); IDCG over 2 ranks = 1 + 1/log2(3)
    (ndcg_at_k, 4): [
        (1 + 1 / 2) / (1 + 1 / LOG2_3 + 1 / 2),  # 0.70393
        (1 / LOG2_3 + 1 / 2) / (1 + 1 / LOG2_3),  # 0.69343
        NAN,
        0.0,
    ],
    # @2: user 0 DCG = 1, IDCG = 1 + 1/log2(3); user 1 DCG = 1/log2(3), same IDCG
    (ndcg_at_k, 2): [1 / (1 + 1 / LOG2_3), (1 / LOG2_3) / (1 + 1 / LOG2_3), NAN, 0.0],
    (ndcg_at_k, 1): [1.0, 0.0, NAN, 0.0],
    # user 0 @4: (1/1 + 2/3) / min(4, 3) = 5/9; user 1 @4: (1/2 + 2/3) / min(4, 2) = 7/12
    (map_at_k, 4): [5 / 9, 7 / 12, NAN, 0.0],
    # @2: user 0 (1/1) / min(2, 3) = 1/2; user 1 (1/2) / min(2, 2) = 1/4
    (map_at_k, 2): [1 / 2, 1 / 4, NAN, 0.0],
    (map_at_k, 1): [1.0, 0.0, NAN, 0.0],
    (hit_rate_at_k, 4): [1.0, 1.0, NAN, 0.0],
    (hit_rate_at_k, 1): [1.0, 0.0, NAN, 0.0],
    # first hit: user 0 at rank 1, user 1 at rank 2
    (mrr_at_k, 4): [1.0, 1 / 2, NAN, 0.0],
    (mrr_at_k, 1): [1.0, 0.0, NAN, 0.0],
}


@pytest.mark.parametrize(
    ("metric", "k"), list(EXPECTED), ids=[f"{f.__name__}-{k}" for f, k in EXPECTED]
)
def test_hand_worked_example(metric: RankingMetric, k: int) -> None:
    result = metric(RECOMMENDED, RELEVANT, k)
    assert result.dtype == np.float64
    assert result.shape == (4,)
    np.testing.assert_allclose(result, EXPECTED[metric, k], rtol=1e-12, atol=0)


def test_ndcg_two_hits_at_ranks_one_and_three() -> None:
    # relevant {0, 1}; hits at ranks 1 and 3: (1 + 1/log2(4)) / (1 + 1/log2(3)) = 0.91972
    result = ndcg_at_k([[0, 4, 1]], csr([[0, 1]], n_items=5), k=3)
    np.testing.assert_allclose(result, [(1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))])
    assert result[0] == pytest.approx(0.919720, abs=1e-6)


def test_perfect_ranking_scores_one() -> None:
    rec = np.array([[3, 1, 0], [2, -1, -1]])
    rel = csr([[0, 1, 3], [2]], n_items=4)
    for metric in (ndcg_at_k, map_at_k, recall_at_k, hit_rate_at_k, mrr_at_k):
        np.testing.assert_allclose(metric(rec, rel, 3), [1.0, 1.0])
    # precision keeps k in the denominator even when the list is padded
    np.testing.assert_allclose(precision_at_k(rec, rel, 3), [1.0, 1 / 3])


def test_hits_matrix() -> None:
    expected = [
        [True, False, True, False],
        [False, True, True, False],
        [False, False, False, False],
        [False, False, False, False],
    ]
    hits = hits_matrix(RECOMMENDED, RELEVANT)
    assert hits.dtype == np.bool_
    np.testing.assert_array_equal(hits, expected)


def test_padding_never_hits_the_previous_users_last_item() -> None:
    # user 1's -1 must not be read as user 0's item n_items - 1 (key 1 * 3 - 1 == 0 * 3 + 2)
    rel = csr([[2], [0]], n_items=3)
    rec = np.array([[-1, 1], [-1, 2]])
    np.testing.assert_array_equal(hits_matrix(rec, rel), np.zeros((2, 2), dtype=bool))
    np.testing.assert_array_equal(recall_at_k(rec, rel, 2), [0.0, 0.0])


def test_padding_in_the_middle_keeps_its_rank() -> None:
    # the hit sits at rank 3 behind a gap: MRR 1/3, DCG 1/log2(4) = 1/2, IDCG 1
    rec = [[4, -1, 1]]
    rel = csr([[1]], n_items=5)
    np.testing.assert_allclose(mrr_at_k(rec, rel, 3), [1 / 3])
    np.testing.assert_allclose(ndcg_at_k(rec, rel, 3), [1 / 2])


def test_user_without_relevant_items_is_nan_and_nanmean_skips_it() -> None:
    rec = np.array([[0, 1], [0, 1]])
    rel = csr([[1], []], n_items=2)
    for metric in RANKING:
        result = metric(rec, rel, 2)
        assert math.isnan(result[1])
        assert not math.isnan(result[0])
    assert np.nanmean(recall_at_k(rec, rel, 2)) == 1.0


def test_all_users_without_relevant_items() -> None:
    rel = sp.csr_array((2, 3))
    for metric in RANKING:
        assert np.isnan(metric([[0, 1], [2, -1]], rel, 1)).all()


def test_no_users_gives_empty_arrays() -> None:
    rec = np.zeros((0, 3), dtype=np.int64)
    rel = sp.csr_array((0, 5))
    for metric in RANKING:
        result = metric(rec, rel, 3)
        assert result.shape == (0,)
        assert result.dtype == np.float64


@pytest.mark.parametrize(
    "convert",
    [sp.csr_matrix, sp.csc_array, sp.coo_array, sp.lil_matrix],
    ids=["csr_matrix", "csc_array", "coo_array", "lil_matrix"],
)
def test_other_sparse_formats_agree(convert: Callable[..., object]) -> None:
    for metric in RANKING:
        expected = metric(RECOMMENDED, RELEVANT, 3)
        np.testing.assert_array_equal(metric(RECOMMENDED, convert(RELEVANT), 3), expected)


def test_stored_zeros_are_not_relevant_and_duplicates_count_once() -> None:
    # user 0 stores item 1 as an explicit zero; user 1 stores item 2 twice (an uncanonical COO)
    rel = sp.coo_array(
        (np.array([0.0, 1.0, 1.0, 1.0]), (np.array([0, 0, 1, 1]), np.array([1, 3, 2, 2]))),
        shape=(2, 4),
    )
    rec = np.array([[1, 3], [2, 0]])
    np.testing.assert_array_equal(hits_matrix(rec, rel), [[False, True], [True, False]])
    np.testing.assert_allclose(recall_at_k(rec, rel, 2), [1.0, 1.0])


def test_unsorted_csr_indices() -> None:
    rel = sp.csr_array((np.ones(3), np.array([3, 0, 2]), np.array([0, 2, 3])), shape=(2, 4))
    assert not rel.has_sorted_indices
    rec = np.array([[0, 1, 3], [1, 2, -1]])
    np.testing.assert_array_equal(
        hits_matrix(rec, rel), [[True, False, True], [False, True, False]]
    )


def test_accepts_lists_and_other_integer_dtypes() -> None:
    expected = ndcg_at_k(RECOMMENDED, RELEVANT, 4)
    np.testing.assert_array_equal(ndcg_at_k(RECOMMENDED.tolist(), RELEVANT, 4), expected)
    np.testing.assert_array_equal(ndcg_at_k(RECOMMENDED.astype(np.int32), RELEVANT, 4), expected)
    np.testing.assert_array_equal(ndcg_at_k(RECOMMENDED, RELEVANT, np.int64(4)), expected)


# --------------------------------------------------------------------------------------------
# ranking errors


@pytest.mark.parametrize("metric", RANKING)
@pytest.mark.parametrize("k", [0, -1, 5])
def test_k_out_of_range(metric: RankingMetric, k: int) -> None:
    with pytest.raises(InvalidParameterError, match=rf"k must be between 1 and 4 .*got {k}$"):
        metric(RECOMMENDED, RELEVANT, k)


@pytest.mark.parametrize("k", [2.0, True, "2"])
def test_k_not_an_int(k: object) -> None:
    with pytest.raises(TypeError, match="k must be an int"):
        precision_at_k(RECOMMENDED, RELEVANT, k)  # type: ignore[arg-type]


def test_row_count_mismatch() -> None:
    with pytest.raises(InvalidParameterError, match="recommended has 3 rows but relevant has 4"):
        ndcg_at_k(RECOMMENDED[:3], RELEVANT, 2)


def test_recommended_not_two_dimensional() -> None:
    with pytest.raises(InvalidParameterError, match=r"recommended must be two-dimensional"):
        hits_matrix([1, 2, 3], RELEVANT)


def test_recommended_not_integer() -> None:
    with pytest.raises(TypeError, match="recommended must hold integer item indices"):
        recall_at_k(RECOMMENDED.astype(float), RELEVANT, 2)


@pytest.mark.parametrize("bad", [8, -2])
def test_recommended_index_out_of_range(bad: int) -> None:
    rec = RECOMMENDED.copy()
    rec[1, 3] = bad
    with pytest.raises(InvalidParameterError, match=rf"item index {bad}; expected -1 .* 0\.\.7"):
        map_at_k(rec, RELEVANT, 2)


def test_recommended_repeats_an_item() -> None:
    rec = RECOMMENDED.copy()
    rec[3] = [7, 6, 7, 4]
    with pytest.raises(InvalidParameterError, match="row 3 lists item 7 more than once"):
        mrr_at_k(rec, RELEVANT, 2)


def test_repeated_padding_is_fine() -> None:
    assert hits_matrix([[-1, -1, -1]], csr([[0]], n_items=1)).tolist() == [[False] * 3]


def test_relevant_not_sparse() -> None:
    with pytest.raises(TypeError, match=r"relevant must be a scipy\.sparse matrix .*ndarray"):
        hit_rate_at_k(RECOMMENDED, RELEVANT.toarray(), 2)  # type: ignore[arg-type]


def test_relevant_not_two_dimensional() -> None:
    rel = sp.coo_array(np.array([1.0, 0.0, 1.0]))
    with pytest.raises(InvalidParameterError, match="relevant must be two-dimensional"):
        hits_matrix([[0]], rel)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# randomized cross-check against a slow, obvious reference


def reference(rec_row: list[int], rel_items: set[int], k: int) -> dict[str, float]:
    """Every ranking metric of one user, by the module docstring's definitions, with loops."""
    if not rel_items:
        return dict.fromkeys(
            ["precision", "recall", "ndcg", "map", "hit_rate", "mrr"], float("nan")
        )
    hits = [item != -1 and item in rel_items for item in rec_row[:k]]
    n_hits = sum(hits)
    m = min(k, len(rel_items))
    dcg = sum(1 / math.log2(r + 1) for r, h in enumerate(hits, start=1) if h)
    idcg = sum(1 / math.log2(r + 1) for r in range(1, m + 1))
    ap = 0.0
    seen = 0
    for r, h in enumerate(hits, start=1):
        if h:
            seen += 1
            ap += seen / r
    first = next((r for r, h in enumerate(hits, start=1) if h), None)
    return {
        "precision": n_hits / k,
        "recall": n_hits / len(rel_items),
        "ndcg": dcg / idcg,
        "map": ap / m,
        "hit_rate": 1.0 if n_hits else 0.0,
        "mrr": 1 / first if first is not None else 0.0,
    }


NAMES = {
    precision_at_k: "precision",
    recall_at_k: "recall",
    ndcg_at_k: "ndcg",
    map_at_k: "map",
    hit_rate_at_k: "hit_rate",
    mrr_at_k: "mrr",
}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_cross_check(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_users, n_items, length = 60, 25, 8
    # distinct items per row, some rows padded with -1 (at the end or anywhere)
    rec = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :length]
    rec[rng.random(rec.shape) < 0.15] = -1
    # relevant sets of 0..12 items, denser on low item indices so that hits are common
    density = rng.random((n_users, 1)) * 0.5
    dense = (rng.random((n_users, n_items)) < density) & (rng.random((n_users, n_items)) < 0.9)
    rel = sp.csr_array(dense.astype(np.float64))
    rel_sets = [set(np.flatnonzero(row).tolist()) for row in dense]
    assert any(not s for s in rel_sets)

    hits = hits_matrix(rec, rel)
    for u in range(n_users):
        for r in range(length):
            assert hits[u, r] == (rec[u, r] != -1 and int(rec[u, r]) in rel_sets[u])

    for k in (1, 3, length):
        for metric, name in NAMES.items():
            expected = [reference(rec[u].tolist(), rel_sets[u], k)[name] for u in range(n_users)]
            np.testing.assert_allclose(metric(rec, rel, k), expected, rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------------------------
# catalogue coverage


def test_catalogue_coverage() -> None:
    # items 0, 1, 3 of 5 appear; the -1 is ignored and repeats across users count once
    assert catalogue_coverage([[0, 1], [1, 3], [3, -1]], n_items=5) == 3 / 5
    # the hand-worked example lists every item 0..7 somewhere: 8 of 10
    assert catalogue_coverage(RECOMMENDED, n_items=10) == 8 / 10
    assert catalogue_coverage(np.full((2, 3), -1), n_items=4) == 0.0
    assert catalogue_coverage(np.zeros((0, 3), dtype=int), n_items=4) == 0.0


def test_catalogue_coverage_errors() -> None:
    with pytest.raises(InvalidParameterError, match="n_items must be at least 1, got 0"):
        catalogue_coverage([[0]], n_items=0)
    with pytest.raises(TypeError, match="n_items must be an int, got float"):
        catalogue_coverage([[0]], n_items=2.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match=r"item index 4; expected -1 .* 0\.\.3"):
        catalogue_coverage([[0, 4]], n_items=4)
    with pytest.raises(InvalidParameterError, match="recommended must be two-dimensional"):
        catalogue_coverage([0, 1], n_items=4)


# --------------------------------------------------------------------------------------------
# rating metrics


def test_rmse_and_mae_by_hand() -> None:
    y_true = [4.0, 3.0, 5.0, 1.0]
    y_pred = [3.0, 3.0, 3.0, 2.0]
    # errors 1, 0, 2, -1: squares 1 + 0 + 4 + 1 = 6, abs 1 + 0 + 2 + 1 = 4
    assert rmse(y_true, y_pred) == pytest.approx(math.sqrt(6 / 4))
    assert mae(y_true, y_pred) == pytest.approx(4 / 4)
    assert isinstance(rmse(y_true, y_pred), float)
    assert isinstance(mae(np.array(y_true), np.array(y_pred)), float)
    assert rmse([1, 2], [1, 2]) == 0.0


@pytest.mark.parametrize("metric", [rmse, mae])
def test_rating_metric_errors(metric: Callable[..., float]) -> None:
    with pytest.raises(InvalidParameterError, match="same length, got 2 and 3"):
        metric([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(InvalidParameterError, match="empty"):
        metric([], [])
    with pytest.raises(InvalidParameterError, match="y_true must be one-dimensional"):
        metric([[1.0, 2.0]], [[1.0, 2.0]])
    with pytest.raises(TypeError, match="y_pred must hold numbers"):
        metric([1.0], ["a"])


# --------------------------------------------------------------------------------------------
# the module's own examples


def test_docstring_examples() -> None:
    result = doctest.testmod(metrics, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 10
    assert result.failed == 0

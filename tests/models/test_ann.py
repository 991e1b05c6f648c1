"""Approximate top-k with faiss agrees with exact search."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from latentrec import BiasedMF, ImplicitALS, Interactions
from latentrec.datasets import synthetic
from latentrec.errors import InvalidParameterError
from latentrec.models.ann import ItemIndex
from latentrec.serving import create_app

pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def model() -> ImplicitALS:
    data = synthetic(800, 3000, n_interactions=40_000, feedback="implicit", seed=4)
    return ImplicitALS(factors=16, epochs=4).fit(data, show_progress=False)


@pytest.mark.parametrize("method", ["ivf", "hnsw"])
def test_recall_against_exact_search(model: ImplicitALS, method: str) -> None:
    users = np.arange(300)
    exact_items, exact_scores = model.top_k_indices(users, 10)
    model.use_index(ItemIndex(model, method=method, probes=64))
    try:
        approx_items, approx_scores = model.top_k_indices(users, 10)
    finally:
        model.use_index(None)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx_items, exact_items,
                                                                strict=True)])
    assert recall >= 0.95
    # the index returns exact scores for what it finds, in descending order
    assert np.all(np.diff(approx_scores, axis=1) <= 1e-6)
    exact = {(row, item): score for row in range(len(users))
             for item, score in zip(exact_items[row], exact_scores[row], strict=True)}
    common = [(exact[(row, item)], score) for row in range(len(users))
              for item, score in zip(approx_items[row], approx_scores[row], strict=True)
              if (row, item) in exact]
    expected, found = np.array(common).T
    np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-5)


def test_index_excludes_seen_items(model: ImplicitALS) -> None:
    model.use_index(ItemIndex(model, probes=64))
    try:
        frame = model.recommend([0, 1, 2], k=20)
    finally:
        model.use_index(None)
    seen = model.seen_
    for user in (0, 1, 2):
        items = set(frame.loc[frame["user"] == user, "item"])
        assert not items & set(model.items_.ids_of(seen[user].indices).tolist())


def test_biases_are_part_of_the_search() -> None:
    data = synthetic(300, 400, density=0.05, seed=1)
    biased = BiasedMF(factors=4, epochs=3).fit(data, show_progress=False)
    exact = biased.recommend([0, 1], k=5)
    approx = biased.use_index(ItemIndex(biased, method="ivf", probes=1000)).recommend([0, 1],
                                                                                       k=5)
    biased.use_index(None)
    assert approx["item"].tolist() == exact["item"].tolist()
    np.testing.assert_allclose(approx["score"], exact["score"], rtol=1e-5)


def test_bad_arguments(model: ImplicitALS) -> None:
    with pytest.raises(InvalidParameterError, match="method must be one of"):
        ItemIndex(model, method="lsh")
    with pytest.raises(InvalidParameterError, match="probes must be an integer >= 1"):
        ItemIndex(model, probes=0)


def test_server_with_an_index(model: ImplicitALS) -> None:
    client = TestClient(create_app(model=model, ann="ivf"))
    body = client.get("/v1/users/3/recommendations", params={"k": 5}).json()
    assert len(body["items"]) == 5


def test_an_index_that_misses_the_top_items_warns(model: ImplicitALS) -> None:
    from latentrec.errors import IndexRecallWarning

    good = ItemIndex(model, method="ivf", probes=64)
    assert good.recall_estimate >= 0.95
    # one list searched out of 300: most of the true top items are never looked at
    with pytest.warns(IndexRecallWarning, match="raise probes"):
        poor = ItemIndex(model, method="ivf", lists=300, probes=1)
    assert poor.recall_estimate < 0.9


def test_users_the_index_cannot_fill_are_answered_exactly() -> None:
    # user 0 has seen all but 10 of 2,300 items: more than the index skips
    n_items = 2300
    users = np.r_[np.zeros(n_items - 10, dtype=np.int64), np.arange(1, 200).repeat(20)]
    items = np.r_[np.arange(n_items - 10), np.random.default_rng(0).integers(0, n_items,
                                                                              199 * 20)]
    data = Interactions.from_arrays(users, items, duplicates="sum", feedback="implicit")
    model = ImplicitALS(factors=8, epochs=2).fit(data, show_progress=False)
    exact_items, _ = model.top_k_indices(np.array([0]), 10, approximate=False)
    model.use_index(ItemIndex(model, method="ivf", probes=64))
    approx_items, _ = model.top_k_indices(np.array([0]), 10)
    unseen = model.n_items - model.seen_[0].nnz
    assert 5 <= unseen <= 10
    assert (approx_items >= 0).sum() == (exact_items >= 0).sum() == unseen
    np.testing.assert_array_equal(np.sort(approx_items), np.sort(exact_items))

"""evaluate(): the tidy table, hand-checked values and unseen users/items."""

from __future__ import annotations

import numpy as np
import pytest

from latentrec import BiasedMF, Interactions, evaluate
from latentrec.errors import InvalidParameterError


@pytest.fixture
def model(tiny: Interactions) -> BiasedMF:
    return BiasedMF(factors=2, epochs=5).fit(tiny, show_progress=False)


def test_table_has_every_metric(model: BiasedMF) -> None:
    test = Interactions.from_arrays(["ann", "bob"], ["w", "y"], [4.0, 2.0])
    table = evaluate(model, test, k=2)
    assert list(table.columns) == ["metric", "value"]
    assert table["metric"].tolist() == [
        "rmse", "mae", "precision@2", "recall@2", "ndcg@2", "map@2", "hit_rate@2", "mrr@2",
        "coverage", "test_interactions", "unknown_users", "unknown_items",
        "fallback_predictions",
    ]


def test_rating_metrics_match_predictions(model: BiasedMF) -> None:
    test = Interactions.from_arrays(["ann", "bob", "cat"], ["w", "y", "x"], [4.0, 2.0, 3.0])
    predicted = model.predict(["ann", "bob", "cat"], ["w", "y", "x"])
    values = evaluate(model, test, metrics=["rmse", "mae"]).set_index("metric")["value"]
    assert values["rmse"] == pytest.approx(np.sqrt(np.mean((predicted - [4, 2, 3]) ** 2)))
    assert values["mae"] == pytest.approx(np.mean(np.abs(predicted - [4, 2, 3])))


def test_ranking_metrics_by_hand(model: BiasedMF) -> None:
    # ann has seen x, y, z, so her only candidate is w: a hit at rank 1
    test = Interactions.from_arrays(["ann"], ["w"], [5.0])
    values = evaluate(model, test, k=1, metrics=["precision", "recall", "ndcg", "hit_rate",
                                                  "mrr", "map", "coverage"])
    table = values.set_index("metric")["value"]
    for name in ("precision@1", "recall@1", "ndcg@1", "hit_rate@1", "mrr@1", "map@1"):
        assert table[name] == 1.0
    assert table["coverage"] == 0.25  # one of four items recommended


def test_unseen_users_and_items_use_the_fallback(model: BiasedMF) -> None:
    test = Interactions.from_arrays(["ann", "newcomer", "bob"], ["new-item", "x", "y"],
                                    [4.0, 3.0, 2.0])
    table = evaluate(model, test).set_index("metric")["value"]
    assert table["unknown_users"] == 1
    assert table["unknown_items"] == 1
    assert table["fallback_predictions"] == 2
    assert table["test_interactions"] == 3
    assert np.isfinite(table["rmse"])


def test_relevance_threshold(model: BiasedMF) -> None:
    test = Interactions.from_arrays(["bob", "bob"], ["y", "z"], [1.0, 5.0])
    lenient = evaluate(model, test, k=2, metrics=["recall"]).set_index("metric")["value"]
    strict = evaluate(model, test, k=2, metrics=["recall"], relevance_threshold=4.0)
    assert lenient["recall@2"] == 1.0  # bob's two candidates are exactly y and z
    assert strict.set_index("metric")["value"]["recall@2"] == 1.0


def test_bad_arguments(model: BiasedMF, checkerboard: Interactions) -> None:
    test = Interactions.from_arrays(["ann"], ["w"], [5.0])
    with pytest.raises(InvalidParameterError, match="unknown metric 'auc'"):
        evaluate(model, test, metrics=["auc"])
    with pytest.raises(InvalidParameterError, match="k must be an integer >= 1"):
        evaluate(model, test, k=0)
    with pytest.raises(TypeError, match="test must be Interactions"):
        evaluate(model, "test.csv")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="rmse and mae need explicit ratings"):
        evaluate(model, checkerboard, metrics=["rmse"])


def test_sampled_metrics_warn_and_rank_against_unseen_items(checkerboard: Interactions) -> None:
    from latentrec import ImplicitALS, user_holdout
    from latentrec.errors import EvaluationWarning

    train, test = user_holdout(checkerboard, 0.2, seed=0)
    model = ImplicitALS(factors=4, epochs=5).fit(train, show_progress=False)
    with pytest.warns(EvaluationWarning, match="Krichene & Rendle"):
        table = evaluate(model, test, k=5, sampled_negatives=9).set_index("metric")["value"]
    # the checkerboard is learnable: held-out items beat the other parity's items
    assert table["sampled_hit_rate@5"] >= 0.9
    assert 0.0 < table["sampled_ndcg@5"] <= 1.0
    with pytest.raises(InvalidParameterError, match="sampled_negatives must be"):
        evaluate(model, test, sampled_negatives=0)

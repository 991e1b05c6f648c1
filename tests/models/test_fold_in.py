"""Fold-in inputs are checked against the model: ratings a rating model was never trained on,
NaN and infinities, negative weights and an item given twice are refused with one line naming
the value, before anything changes (serving answers these with a 4xx)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from latentrec import BPR, BiasedMF, ImplicitALS, Interactions, MatrixFactorization
from latentrec.errors import InvalidParameterError


@pytest.fixture(scope="module")
def rating_model(planted: Interactions) -> BiasedMF:
    return BiasedMF(factors=4, epochs=5).fit(planted, show_progress=False)


@pytest.fixture(scope="module")
def implicit_model(planted: Interactions) -> ImplicitALS:
    return ImplicitALS(factors=4, epochs=3).fit(planted.as_implicit(), show_progress=False)


def _items(model: Any, count: int) -> list[Any]:
    return model.items_.to_list()[:count]


@pytest.mark.parametrize("bad", [1e30, 1e300, -50.0, 0.0, 5.5])
def test_ratings_outside_the_trained_range_are_refused(rating_model: BiasedMF,
                                                       bad: float) -> None:
    low, high = rating_model.rating_range_ or (0.0, 0.0)
    assert (low, high) == (1.0, 5.0)
    items = _items(rating_model, 3)
    shown = re.escape(f"{bad:g}")
    with pytest.raises(InvalidParameterError, match=rf"values\[1\] \(item {items[1]!r}\) is "
                                                    rf"{shown}, outside the rating range 1 to "
                                                    rf"5") as error:
        rating_model.recommend_new_user(items, [4.0, bad, 3.0])
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_are_refused(rating_model: BiasedMF, implicit_model: ImplicitALS,
                                       bad: float) -> None:
    for model in (rating_model, implicit_model):
        items = _items(model, 2)
        with pytest.raises(InvalidParameterError,
                           match=rf"values\[0\] \(item {items[0]!r}\) is {bad}; values must be "
                                 rf"finite numbers"):
            model.recommend_new_user(items, [bad, 1.0])


def test_the_edges_of_the_range_are_accepted(rating_model: BiasedMF) -> None:
    table = rating_model.recommend_new_user(_items(rating_model, 3), [1.0, 5.0, 3.25], k=7)
    assert table["rank"].tolist() == list(range(1, 8))
    assert np.isfinite(table["score"]).all()


def test_an_item_given_twice_is_refused(rating_model: BiasedMF) -> None:
    """Rated 5 and 1 in one request, an item used to count as rated 6."""
    item = _items(rating_model, 1)[0]
    with pytest.raises(InvalidParameterError, match=rf"items: {item!r} is given 2 times; give "
                                                    rf"each item once"):
        rating_model.recommend_new_user([item, item], [5.0, 1.0])
    spelled = str(item)  # the same integer id spelled as text is the same item
    with pytest.raises(InvalidParameterError, match="is given 2 times"):
        rating_model.recommend_new_user([item, spelled])


def test_implicit_weights_must_be_non_negative_and_fit(implicit_model: ImplicitALS) -> None:
    items = _items(implicit_model, 2)
    with pytest.raises(InvalidParameterError, match=r"values\[1\] .* is -2; implicit weights "
                                                    r"must be >= 0"):
        implicit_model.recommend_new_user(items, [1.0, -2.0])
    with pytest.raises(InvalidParameterError, match=r"values\[0\] .* is 1e\+300"):
        implicit_model.recommend_new_user(items, [1e300, 1.0])
    assert len(implicit_model.recommend_new_user(items, [250.0, 1.0], k=3)) == 3


def test_values_must_be_numbers(rating_model: BiasedMF) -> None:
    with pytest.raises(InvalidParameterError, match="values must be numbers"):
        rating_model.recommend_new_user(_items(rating_model, 2), ["five", 3])


@pytest.mark.parametrize("make", [lambda: MatrixFactorization(factors=4, epochs=5),
                                  lambda: BPR(factors=4, epochs=2)])
def test_other_fold_in_models_check_too(planted: Interactions, make: Any) -> None:
    model = make()
    data = planted if model.feedback != "implicit" else planted.as_implicit()
    model.fit(data, show_progress=False)
    items = _items(model, 2)
    with pytest.raises(InvalidParameterError, match=r"values\[1\]"):
        model.recommend_new_user(items, [1.0, -50.0])
    with pytest.raises(InvalidParameterError, match="given 2 times"):
        model.recommend_new_user([items[0], items[0]])


# ---------------------------------------------------------------------- update_users
def _state(model: Any) -> tuple[np.ndarray, ...]:
    return (model.user_factors_.numpy().copy(), model.seen_.toarray().copy(),
            model.item_popularity_.copy())


def test_update_users_refuses_ratings_outside_the_range(planted: Interactions) -> None:
    model = BiasedMF(factors=4, epochs=3).fit(planted, show_progress=False)
    before = _state(model)
    user = model.users_.to_list()[0]
    items = _items(model, 2)
    update = Interactions.from_arrays([user, user], items, [4.0, 50.0])
    with pytest.raises(InvalidParameterError,
                       match=rf"data.values\[1\] \(user {user!r}, item {items[1]!r}\) is 50, "
                             rf"outside the rating range 1 to 5"):
        model.update_users(update)
    assert all(np.array_equal(a, b) for a, b in zip(before, _state(model), strict=True))
    model.update_users(Interactions.from_arrays([user, user], items, [4.0, 5.0]))
    assert not np.array_equal(before[0], _state(model)[0])


def test_update_users_refuses_a_pair_given_twice(planted: Interactions) -> None:
    model = BiasedMF(factors=4, epochs=3).fit(planted, show_progress=False)
    before = _state(model)
    user, item = model.users_.to_list()[0], _items(model, 1)[0]
    update = Interactions.from_arrays([user], [item], [4.0])
    twice = Interactions(user_index=np.array([0, 0]), item_index=np.array([0, 0]),
                         values=np.array([5.0, 1.0], dtype=np.float32), users=update.users,
                         items=update.items)
    with pytest.raises(InvalidParameterError, match=rf"data: user {user!r} and item {item!r} "
                                                    rf"are given 2 times"):
        model.update_users(twice)
    assert all(np.array_equal(a, b) for a, b in zip(before, _state(model), strict=True))


def test_update_users_of_a_rating_model_needs_ratings(planted: Interactions) -> None:
    model = BiasedMF(factors=4, epochs=3).fit(planted, show_progress=False)
    user, item = model.users_.to_list()[0], _items(model, 1)[0]
    with pytest.raises(InvalidParameterError, match="trained on ratings; data has no values"):
        model.update_users(Interactions.from_arrays([user], [item]))


def test_fold_in_without_values_uses_the_training_mean_of_a_rating_model() -> None:
    from latentrec import BiasedMF
    from latentrec.datasets import synthetic

    data = synthetic(60, 40, rating_scale=(2, 10), seed=3)
    model = BiasedMF(factors=4, epochs=3).fit(data, show_progress=False)
    items = data.items.ids_of([0, 1, 2])
    implied = model.recommend_new_user(items, k=5)  # no values: the mean, within [2, 10]
    explicit = model.recommend_new_user(items, [model.rating_mean_] * 3, k=5)
    assert implied["item"].tolist() == explicit["item"].tolist()
    with pytest.raises(InvalidParameterError, match="outside the rating range"):
        model.recommend_new_user(items, [1.0, 1.0, 1.0], k=5)

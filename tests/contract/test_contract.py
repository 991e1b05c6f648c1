"""Every registered model must pass these checks (STYLE.md section 6)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from latentrec import Interactions, load, model_kinds
from latentrec.errors import (
    InvalidParameterError,
    ModelFileError,
    NotFittedError,
    UnknownIdError,
)
from latentrec.models import Recommender

# small, fast settings per model kind; a new model must add itself here
FAST_PARAMS: dict[str, dict[str, Any]] = {
    "mf": {"factors": 4, "epochs": 5, "init_std": 0.1, "lr": 0.05},
    "biased-mf": {"factors": 4, "epochs": 5},
    "als": {"factors": 4, "epochs": 3},
    "ials": {"factors": 4, "epochs": 3},
    "bpr": {"factors": 4, "epochs": 2, "batch_size": 64},
    "popular": {},
    "item-knn": {"neighbours": 10},
    "ease": {"reg": 10.0},
}


def test_every_registered_model_is_covered() -> None:
    assert set(model_kinds()) == set(FAST_PARAMS)


@pytest.fixture(params=sorted(FAST_PARAMS))
def make_model(request: pytest.FixtureRequest) -> Any:
    kind = request.param

    def make(**extra: Any) -> Recommender:
        return model_kinds()[kind](**{**FAST_PARAMS[kind], **extra})

    return make


@pytest.fixture
def data(rng: np.random.Generator) -> Interactions:
    n = 400
    users = rng.integers(0, 30, n)
    items = rng.integers(0, 25, n)
    ratings = rng.integers(1, 6, n).astype(float)
    return Interactions.from_arrays(
        [f"user-{u}" for u in users], [f"item-{i}" for i in items], ratings, duplicates="last"
    )


def test_fit_returns_self(make_model: Any, data: Interactions) -> None:
    model = make_model()
    assert model.fit(data, show_progress=False) is model


def test_not_fitted_raises(make_model: Any) -> None:
    model = make_model()
    with pytest.raises(NotFittedError, match="not fitted"):
        model.predict("user-1", "item-1")
    with pytest.raises(NotFittedError, match="not fitted"):
        model.recommend("user-1")


def test_raw_ids_round_trip(make_model: Any, data: Interactions) -> None:
    model = make_model().fit(data, show_progress=False)
    recs = model.recommend(["user-3", "user-1"], k=4)
    assert set(recs["user"]) == {"user-3", "user-1"}
    assert recs["item"].isin(set(data.items.to_list())).all()
    assert recs.groupby("user", sort=False)["rank"].apply(list).tolist() == [[1, 2, 3, 4]] * 2
    assert recs["user"].tolist()[0] == "user-3"  # the order given is kept
    if "items" in model.similarity:
        similar = model.similar_items("item-2", k=3)
        assert "item-2" not in similar["similar_item"].tolist()
        assert similar["rank"].tolist() == [1, 2, 3]
    else:
        with pytest.raises(InvalidParameterError, match="does not define similar items"):
            model.similar_items("item-2")
    if "users" not in model.similarity:
        with pytest.raises(InvalidParameterError, match="does not define similar users"):
            model.similar_users("user-1")


def test_seen_items_are_excluded(make_model: Any, data: Interactions) -> None:
    model = make_model().fit(data, show_progress=False)
    frame = data.to_frame()
    for user in ("user-0", "user-5"):
        seen = set(frame.loc[frame["user"] == user, "item"])
        recs = model.recommend(user, k=data.n_items)
        assert not seen & set(recs["item"])
        assert len(recs) == data.n_items - len(seen)
        with_seen = model.recommend(user, k=data.n_items, exclude_seen=False)
        assert len(with_seen) == data.n_items


def test_allow_list_restricts_candidates(make_model: Any, data: Interactions) -> None:
    model = make_model().fit(data, show_progress=False)
    allowed = ["item-1", "item-2", "item-3"]
    recs = model.recommend(["user-1", "user-2"], k=10, items=allowed, exclude_seen=False)
    assert set(recs["item"]) <= set(allowed)
    assert (recs.groupby("user").size() == 3).all()


def test_batch_equals_one_by_one(make_model: Any, data: Interactions) -> None:
    model = make_model().fit(data, show_progress=False)
    users = ["user-1", "user-2", "user-7"]
    items = ["item-4", "item-9", "item-0"]
    batch = model.predict(users, items)
    single = [model.predict(u, i) for u, i in zip(users, items, strict=True)]
    np.testing.assert_allclose(batch, single, rtol=1e-6)
    together = model.recommend(users, k=5)
    apart = [model.recommend(u, k=5) for u in users]
    for user, frame in zip(users, apart, strict=True):
        assert together.loc[together["user"] == user, "item"].tolist() == frame["item"].tolist()


def test_unknown_ids_raise(make_model: Any, data: Interactions) -> None:
    model = make_model().fit(data, show_progress=False)
    with pytest.raises(UnknownIdError, match="unknown user: 'nobody'"):
        model.predict("nobody", "item-1")
    with pytest.raises(UnknownIdError, match="unknown item: 'nothing'"):
        model.predict("user-1", "nothing")
    with pytest.raises(UnknownIdError, match="unknown user"):
        model.recommend(["user-1", "nobody"])
    if "items" in model.similarity:
        with pytest.raises(UnknownIdError, match="unknown item"):
            model.similar_items("nothing")


def test_unknown_ids_fallback_is_marked(make_model: Any, data: Interactions) -> None:
    model = make_model().fit(data, show_progress=False)
    values = model.predict(["nobody", "user-1"], ["item-1", "nothing"], on_unknown="fallback")
    assert np.isfinite(values).all()
    recs = model.recommend(["nobody", "user-1"], k=3, on_unknown="fallback")
    assert recs.loc[recs["user"] == "nobody", "fallback"].all()
    assert not recs.loc[recs["user"] == "user-1", "fallback"].any()
    counts = data.to_frame()["item"].value_counts()
    chosen = recs.loc[recs["user"] == "nobody", "item"]
    assert counts[chosen].tolist() == counts.iloc[:3].tolist()  # the most popular (ties aside)


def test_get_set_clone(make_model: Any, data: Interactions) -> None:
    model = make_model()
    params = model.get_params()
    assert params == dataclasses.asdict(model.config)
    name = next(iter(params))
    with pytest.raises(InvalidParameterError, match=f"{name} must"):
        model.set_params(**{name: -1})
    assert model.get_params() == params  # a rejected change leaves the config alone
    with pytest.raises(InvalidParameterError, match="has no parameter 'nonsense'"):
        model.set_params(nonsense=1)
    fitted = model.fit(data, show_progress=False)
    copy = fitted.clone()
    assert copy.get_params() == fitted.get_params()
    with pytest.raises(NotFittedError):
        copy.predict("user-1", "item-1")


def test_same_seed_same_state(make_model: Any, data: Interactions) -> None:
    seeded = "seed" in make_model().get_params()
    extra = {"seed": 7} if seeded else {}
    first = make_model(**extra).fit(data, show_progress=False)._tensors()
    second = make_model(**extra).fit(data, show_progress=False)._tensors()
    assert all(torch.equal(first[name], second[name]) for name in first)
    if seeded:
        other = make_model(seed=8).fit(data, show_progress=False)._tensors()
        assert not all(torch.equal(first[name], other[name]) for name in first)


def test_identical_after_save_and_load(make_model: Any, data: Interactions,
                                       model_dir: Path) -> None:
    model = make_model().fit(data, show_progress=False)
    model.save(model_dir)
    again = load(model_dir)
    assert type(again) is type(model)
    assert again.get_params() == model.get_params()
    users = data.users.ids_of(data.user_index)
    items = data.items.ids_of(data.item_index)
    assert np.array_equal(again.predict(users, items), model.predict(users, items))
    assert again.recommend(["user-1", "user-2"], k=5).equals(
        model.recommend(["user-1", "user-2"], k=5))
    assert again.history_ == model.history_


def test_corrupted_file_raises(make_model: Any, data: Interactions, model_dir: Path) -> None:
    make_model().fit(data, show_progress=False).save(model_dir)
    weights = model_dir / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="truncated or was modified"):
        load(model_dir)

"""BayesianMF with feature groups and implicit-feedback groups (a block-relational
factorisation machine sampled by exact block Gibbs; issue 12 item 2)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from latentrec import BayesianMF, Interactions, load, persistence, read_features
from latentrec.datasets import synthetic
from latentrec.errors import InvalidParameterError, ModelFileError
from latentrec.models._gibbs_groups import seen_design


def _rmse(model: BayesianMF, test: Interactions) -> float:
    predicted = model.predict(test.users.ids_of(test.user_index),
                              test.items.ids_of(test.item_index), on_unknown="fallback")
    return float(np.sqrt(np.mean((predicted - test.values) ** 2)))


def _split(frame: pd.DataFrame, seed: int = 0) -> tuple[Interactions, Interactions]:
    test = np.random.default_rng(seed).random(len(frame)) < 0.25
    train_part = frame[~test]
    test_part = frame[test & frame.user.isin(train_part.user) & frame.item.isin(train_part.item)]
    return (Interactions.from_arrays(train_part.user, train_part.item, train_part.rating),
            Interactions.from_arrays(test_part.user, test_part.item, test_part.rating))


# ---------------------------------------------------------------------- no features: as before
#: Computed with the committed sampler before feature groups existed (commit de6b5e4):
#: synthetic(120, 80, seed=3), factors=4, epochs=30, burn_in=10, seed=7.
BEFORE = {
    "default": ("e88653c7822eb733a9b67531b0b0ac3958bebb6ed35b17bcabefa14fc353a681",
                [3.50946307182312, 3.6130857467651367, 3.020144462585449, 3.1923274993896484,
                 2.808171272277832]),
    "normal-wishart": ("eb342ef18192d214301581120898caa46a283ee8e90185924c822ffc591b2d5e",
                       [3.315426826477051, 3.561038017272949, 2.9647014141082764,
                        3.556565284729004, 3.090890407562256]),
}


@pytest.mark.parametrize("name, params", [
    ("default", {}), ("normal-wishart", {"prior": "normal-wishart", "noise": "shared"})])
def test_without_features_and_groups_the_samples_are_those_of_before(name, params):
    model = BayesianMF(factors=4, epochs=30, burn_in=10, seed=7, **params).fit(
        synthetic(120, 80, seed=3), show_progress=False)
    digest = hashlib.sha256(b"".join(t.numpy().tobytes() for t in (
        model.user_factors_, model.item_factors_, model.user_bias_, model.item_bias_))
    ).hexdigest()
    users, items = model.users_.to_numpy()[:5], model.items_.to_numpy()[:5]
    assert [float(x) for x in model.predict(users, items)] == BEFORE[name][1]
    assert digest == BEFORE[name][0]


# ---------------------------------------------------------------------- features
@pytest.fixture(scope="module")
def genre_world() -> dict[str, Any]:
    """Ratings driven by the item's genre (+-1.2) plus weak personal taste; few ratings per
    item, so an item's genre says more than its own handful of ratings. 40 items exist only
    in the feature table (cold)."""
    rng = np.random.default_rng(1)
    n_users, n_items, n_cold = 150, 240, 40
    genre = rng.integers(0, 4, n_items + n_cold)
    effect = np.array([-1.2, -0.4, 0.4, 1.2])[genre]
    users = rng.integers(0, n_users, 2400)
    items = rng.integers(0, n_items, 2400)
    ratings = np.clip(3.0 + effect[items] + 0.3 * rng.standard_normal(n_users)[users]
                      + 0.8 * rng.standard_normal(len(users)), 1.0, 5.0)
    frame = pd.DataFrame({"user": users, "item": items, "rating": ratings}).drop_duplicates(
        ["user", "item"])
    train, test = _split(frame)
    table = pd.DataFrame({"item": np.arange(n_items + n_cold),
                          "genre": [f"g{g}" for g in genre],
                          "noise": rng.choice(["a", "b", "c"], n_items + n_cold)})
    return {"train": train, "test": test, "features": read_features(table, "item"),
            "effect": effect, "cold": np.arange(n_items, n_items + n_cold)}


def _fit(data: Interactions, **params: Any) -> BayesianMF:
    features = {key: params.pop(key) for key in ("user_features", "item_features")
                if key in params}
    settings = {"factors": 4, "epochs": 60, "burn_in": 20, "seed": 0, **params}
    return BayesianMF(**settings).fit(data, show_progress=False, **features)


def test_item_features_that_drive_the_ratings_lower_the_error(genre_world):
    plain = _fit(genre_world["train"])
    hybrid = _fit(genre_world["train"], item_features=genre_world["features"])
    assert _rmse(hybrid, genre_world["test"]) < _rmse(plain, genre_world["test"]) - 0.02
    embeddings = hybrid.factors("items", features=True)
    genre_bias = embeddings.loc["genre"]["bias"]
    # the learned genre biases are ordered like the true effects
    assert list(genre_bias.sort_values().index) == ["g0", "g1", "g2", "g3"]


def test_cold_items_are_scored_by_their_genre(genre_world):
    model = _fit(genre_world["train"], item_features=genre_world["features"])
    cold = genre_world["cold"]
    assert set(cold) <= set(model.items_.to_list())
    users = np.repeat(model.users_.to_numpy()[:30], len(cold))
    items = np.tile(cold, 30)
    predicted = model.predict(users, items).reshape(30, len(cold)).mean(axis=0)
    correlation = np.corrcoef(predicted, genre_world["effect"][cold])[0, 1]
    assert correlation > 0.9
    # add_items: the same vectors as the cold items that joined in fit
    fresh = _fit(genre_world["train"], item_features=genre_world["features"])
    table = pd.DataFrame({"item": [9001, 9002], "genre": ["g0", "g3"], "noise": ["a", "a"]})
    fresh.add_items(read_features(table, "item"))
    low, high = fresh.predict([users[0], users[0]], [9001, 9002])
    assert high - low > 1.0


def test_identity_false_represents_items_by_their_features_alone(genre_world):
    model = _fit(genre_world["train"], item_features=genre_world["features"], identity=False)
    vectors = model.factors("items").drop(columns="bias").to_numpy()
    trained = len(genre_world["train"].items)
    genre = genre_world["features"].fit(genre_world["train"].items).matrix(
        model.items_.to_numpy()[:trained])
    # items of the same genre and noise value share one vector
    rows = {tuple(genre[i].toarray().ravel()): vectors[i] for i in range(trained)}
    for i in range(trained):
        np.testing.assert_allclose(vectors[i], rows[tuple(genre[i].toarray().ravel())],
                                   atol=1e-5)
    assert _rmse(model, genre_world["test"]) < 1.0


def test_cold_users_with_features(genre_world):
    rng = np.random.default_rng(2)
    train = genre_world["train"]
    users = train.users.to_numpy()
    # users' taste follows their "club": club x rates high
    club = {u: ("x" if u % 2 else "y") for u in users}
    frame = pd.DataFrame({"user": train.users.ids_of(train.user_index),
                          "item": train.items.ids_of(train.item_index)})
    frame["rating"] = np.clip(np.where(frame.user % 2 == 1, 4.5, 1.5)
                              + 0.5 * rng.standard_normal(len(frame)), 1, 5)
    data = Interactions.from_arrays(frame.user, frame.item, frame.rating)
    table = pd.DataFrame({"user": [*users, 5001, 5002],
                          "club": [*(club[u] for u in users), "x", "y"]})
    model = _fit(data, user_features=read_features(table, "user"))
    item = model.items_.to_list()[0]
    high, low = model.predict([5001, 5002], [item, item])
    assert high > 3.8 and low < 2.2
    ranked = model.recommend_new_user(features={"club": "x"}, k=3)
    assert len(ranked) == 3 and (ranked.score > 3.5).all()


# ---------------------------------------------------------------------- implicit groups
@pytest.fixture(scope="module")
def choice_world() -> tuple[Interactions, Interactions]:
    """Two kinds of users; each rates 6 items of its own cluster and 1 of the other (which
    items a user rated shows the kind) while the few rating values are noisy: the seen groups
    find the kind that the values alone show poorly (0.97-0.98 vs 1.10 when written)."""
    rng = np.random.default_rng(5)
    n_users, n_items = 300, 120
    kind = rng.integers(0, 2, n_users)
    cluster = np.arange(n_items) % 2
    rows = []
    for u in range(n_users):
        same = np.flatnonzero(cluster == kind[u])
        other = np.flatnonzero(cluster != kind[u])
        chosen = np.concatenate([rng.choice(same, 6, replace=False),
                                 rng.choice(other, 1, replace=False)])
        rows += [(u, i) for i in chosen]
    pairs = np.array(rows)
    match = kind[pairs[:, 0]] == cluster[pairs[:, 1]]
    ratings = np.clip(3.0 + np.where(match, 1.0, -1.0) + rng.standard_normal(len(pairs)),
                      1.0, 5.0)
    frame = pd.DataFrame({"user": pairs[:, 0], "item": pairs[:, 1], "rating": ratings})
    return _split(frame, seed=1)


def test_seen_groups_lower_the_error_where_the_choice_of_items_is_informative(choice_world):
    train, test = choice_world
    errors = {}
    for name, params in (("plain", {}), ("seen", {"seen_items": True, "seen_users": True})):
        errors[name] = np.mean([_rmse(_fit(train, seed=seed, **params), test)
                                for seed in (0, 1)])
    assert errors["seen"] < errors["plain"] - 0.05


def test_seen_design_weights_each_row_by_its_count():
    matrix = seen_design(np.array([0, 0, 0, 0, 2]), np.array([1, 3, 2, 1, 0]), (3, 4),
                         power=0.5)
    np.testing.assert_allclose(matrix.toarray(), [[0, 3**-0.5, 3**-0.5, 3**-0.5],
                                                  [0, 0, 0, 0], [1, 0, 0, 0]])


def test_a_new_user_folds_in_with_the_seen_items_term(choice_world):
    train, _ = choice_world
    model = _fit(train, seen_items=True)
    items = train.items.ids_of(train.item_index[train.user_index == 0])
    prior = model._seen_prior(_rows(model, items), None)
    assert prior is not None and float(prior[0].norm()) > 0
    factors, bias = model.seen_item_factors_  # type: ignore[misc]
    index = model.items_.index_of(items)
    expected = factors[index].sum(dim=0) / len(items) ** model.seen_power_
    torch.testing.assert_close(prior[0][0], expected)
    torch.testing.assert_close(prior[1][0], bias[index].sum() / len(items) ** model.seen_power_)
    with_seen = model.recommend_new_user(items, k=5)
    model_without = _fit(train)
    assert not with_seen.equals(model_without.recommend_new_user(items, k=5))


def _rows(model: BayesianMF, items: Any) -> Any:
    from latentrec.models._solvers import SparseRows

    index = model.items_.index_of(items)
    matrix = model._interaction_rows(index, np.full(len(index), 3.0),
                                     np.zeros(len(index), int), 1)
    return SparseRows.from_csr(matrix)


def test_seen_groups_need_the_normal_gamma_prior():
    with pytest.raises(InvalidParameterError, match="seen_items and seen_users need"):
        BayesianMF(seen_items=True, prior="normal-wishart")
    with pytest.raises(TypeError, match="seen_users must be True or False"):
        BayesianMF(seen_users=1)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- files
def _reseal(model_dir: Path) -> None:
    (model_dir / "manifest.json").write_text(persistence._manifest_text(model_dir))


def test_save_and_load_give_the_same_predictions_cold_ids_and_fold_in(genre_world, tmp_path):
    train = genre_world["train"]
    users = pd.DataFrame({"user": [*train.users.to_numpy(), 7001],
                          "club": ["x", "y"] * (len(train.users) // 2)
                          + ["x"] * (len(train.users) % 2) + ["y"]})
    model = _fit(train, item_features=genre_world["features"],
                 user_features=read_features(users, "user"), seen_items=True, seen_users=True)
    again = load(model.save(tmp_path / "m"))
    all_users = np.repeat(model.users_.to_numpy(), 3)
    all_items = np.resize(model.items_.to_numpy(), len(all_users))
    np.testing.assert_array_equal(again.predict(all_users, all_items),
                                  model.predict(all_users, all_items))
    cold = genre_world["cold"][:5]
    np.testing.assert_array_equal(again.predict([7001] * 5, cold), model.predict([7001] * 5,
                                                                                   cold))
    items = train.items.to_numpy()[:6]
    pd.testing.assert_frame_equal(again.recommend_new_user(items, [4, 5, 1, 2, 3, 4], k=5),
                                  model.recommend_new_user(items, [4, 5, 1, 2, 3, 4], k=5))
    pd.testing.assert_frame_equal(
        again.recommend_new_user(items, k=5, features={"club": "y"}),
        model.recommend_new_user(items, k=5, features={"club": "y"}))


@pytest.mark.parametrize("name, change, match", [
    ("seen_item_factors", lambda t: t[:-1], "seen_item_factors"),
    ("seen_item_factors", lambda t: t[:, :-1], "seen_item_factors"),
    ("seen_item_bias", lambda t: t[:-2], "seen_item_bias"),
    ("seen_item_factors", lambda t: t * float("nan"), "seen_item_factors"),
    ("seen_item_bias", lambda t: t[:0], "seen_item_bias"),
])
def test_tampered_seen_tables_are_refused_in_one_line(choice_world, tmp_path, name, change,
                                                      match):
    model_dir = _fit(choice_world[0], seen_items=True).save(tmp_path / "m")
    path = model_dir / "weights.safetensors"
    tensors = load_file(str(path))
    tensors[name] = change(tensors[name].clone()).contiguous()
    save_file(tensors, str(path))
    _reseal(model_dir)
    with pytest.raises(ModelFileError, match=match) as error:
        load(model_dir)
    assert "\n" not in str(error.value)


def test_a_file_whose_seen_tables_disagree_with_its_config_is_refused(choice_world, tmp_path):
    model_dir = _fit(choice_world[0], seen_items=True).save(tmp_path / "m")
    path = model_dir / "model.json"
    meta = json.loads(path.read_text())
    meta["config"]["seen_items"] = False
    path.write_text(json.dumps(meta))
    _reseal(model_dir)
    with pytest.raises(ModelFileError, match="seen_items=False"):
        load(model_dir)
    meta["config"]["seen_items"] = True
    meta["seen_power"] = 7
    path.write_text(json.dumps(meta))
    _reseal(model_dir)
    with pytest.raises(ModelFileError, match="seen_power"):
        load(model_dir)

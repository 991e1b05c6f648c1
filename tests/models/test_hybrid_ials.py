"""ImplicitALS with side features: feature embeddings as extra blocks of the alternation.

The data are planted so that features matter: every item has one of eight genres and every
user likes one genre, interacting with items of that genre (and two at random). Items (users)
present only in the feature table are cold: they can be ranked from their genre alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from latentrec import ImplicitALS, Interactions, load, read_features
from latentrec.data import Features
from latentrec.datasets import synthetic
from latentrec.models.factor import hybrid_table

GENRES = 8
N_USERS, N_ITEMS, N_WARM_ITEMS, N_WARM_USERS = 300, 200, 160, 260
#: quick settings that learn the planted genres on the CPU in well under a second
QUICK: dict[str, Any] = {"factors": 8, "epochs": 8, "device": "cpu", "seed": 0}



pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclass(frozen=True)
class Planted:
    data: Interactions
    item_genre: np.ndarray  # by item id 0..N_ITEMS-1
    user_genre: np.ndarray  # by user id 0..N_USERS-1

    def item_features(self, ids: np.ndarray | None = None) -> Features:
        ids = np.arange(N_ITEMS) if ids is None else ids
        return read_features(pd.DataFrame({"item": ids,
                                           "genre": [f"g{g}" for g in self.item_genre[ids]]}),
                             "item")

    def user_features(self, ids: np.ndarray | None = None) -> Features:
        ids = np.arange(N_USERS) if ids is None else ids
        return read_features(pd.DataFrame({"user": ids,
                                           "taste": [f"g{g}" for g in self.user_genre[ids]]}),
                             "user")

    def genre_hits(self, model: ImplicitALS, users: np.ndarray, items: np.ndarray) -> float:
        """The share of each user's top 3 among ``items`` that has the user's genre."""
        table = model.recommend(users, k=3, items=items)
        return float(np.mean(self.item_genre[table["item"].to_numpy().astype(int)]
                             == self.user_genre[table["user"].to_numpy().astype(int)]))


@pytest.fixture(scope="module")
def planted() -> Planted:
    rng = np.random.default_rng(0)
    item_genre = rng.integers(0, GENRES, N_ITEMS)
    user_genre = rng.integers(0, GENRES, N_USERS)
    users, items = [], []
    for user in range(N_WARM_USERS):  # the last users and items only have features
        liked = np.flatnonzero(item_genre[:N_WARM_ITEMS] == user_genre[user])
        chosen = set(rng.choice(liked, size=min(8, len(liked)), replace=False).tolist())
        chosen |= set(rng.choice(N_WARM_ITEMS, size=2, replace=False).tolist())
        users += [user] * len(chosen)
        items += sorted(chosen)
    return Planted(Interactions.from_arrays(np.array(users), np.array(items),
                                            feedback="implicit"), item_genre, user_genre)


COLD_ITEMS = np.arange(N_WARM_ITEMS, N_ITEMS)
WARM_USERS = np.arange(N_WARM_USERS)


@pytest.mark.parametrize("identity", [True, False])
def test_cold_items_are_ranked_by_their_genre(planted: Planted, identity: bool) -> None:
    model = ImplicitALS(**QUICK, identity=identity).fit(
        planted.data, item_features=planted.item_features(), show_progress=False)
    assert model.n_items == N_ITEMS  # the cold items joined with their features' vectors
    # chance is 1/8; the plain model cannot score the cold items at all
    assert planted.genre_hits(model, WARM_USERS, COLD_ITEMS) > 0.9
    assert planted.genre_hits(model, WARM_USERS, np.arange(N_WARM_ITEMS)) > 0.9


def test_without_identity_items_with_features_are_their_features(planted: Planted) -> None:
    features = planted.item_features()
    model = ImplicitALS(**QUICK, identity=False).fit(planted.data, item_features=features,
                                                     show_progress=False)
    by_features, _ = model.feature_vectors("items", features)
    index = model.items_.index_of(features.ids.to_numpy())
    torch.testing.assert_close(model.item_factors_[torch.from_numpy(index)], by_features)
    with_identity = ImplicitALS(**QUICK).fit(planted.data, item_features=features,
                                             show_progress=False)
    by_features, _ = with_identity.feature_vectors("items", features)
    warm = torch.from_numpy(with_identity.items_.index_of(np.arange(N_WARM_ITEMS)))
    assert not torch.allclose(with_identity.item_factors_[warm], by_features[:N_WARM_ITEMS])


def test_user_features_rank_for_cold_users(planted: Planted) -> None:
    model = ImplicitALS(**QUICK).fit(planted.data, user_features=planted.user_features(),
                                     show_progress=False)
    cold_users = np.arange(N_WARM_USERS, N_USERS)
    assert model.n_users == N_USERS
    assert planted.genre_hits(model, cold_users, np.arange(N_WARM_ITEMS)) > 0.9
    assert "users" in model.feature_factors_ and "items" not in model.feature_factors_


def test_both_sides_and_save_load_give_identical_recommendations(planted: Planted,
                                                                 tmp_path: Path) -> None:
    model = ImplicitALS(**QUICK).fit(planted.data, item_features=planted.item_features(),
                                     user_features=planted.user_features(),
                                     show_progress=False)
    everyone = np.arange(N_USERS)
    assert planted.genre_hits(model, everyone, COLD_ITEMS) > 0.9
    again = load(model.save(tmp_path / "model"))
    expected = model.recommend(everyone, k=5)
    pd.testing.assert_frame_equal(again.recommend(everyone, k=5), expected)
    assert set(expected["item"]) & set(COLD_ITEMS.tolist())
    pd.testing.assert_frame_equal(again.factors("items", features=True),
                                  model.factors("items", features=True))


def test_add_items_scores_new_items_by_their_genre(planted: Planted) -> None:
    warm = np.arange(N_WARM_ITEMS)
    model = ImplicitALS(**QUICK).fit(planted.data, item_features=planted.item_features(warm),
                                     show_progress=False)
    assert model.n_items == N_WARM_ITEMS
    model.add_items(planted.item_features(COLD_ITEMS))
    assert planted.genre_hits(model, WARM_USERS, COLD_ITEMS) > 0.9


def test_fold_in_with_features_solves_the_ridge_drawn_towards_them(planted: Planted) -> None:
    model = ImplicitALS(**QUICK).fit(planted.data, user_features=planted.user_features(),
                                     item_features=planted.item_features(),
                                     show_progress=False)
    genre = 3
    liked = np.flatnonzero(planted.item_genre[:N_WARM_ITEMS] == genre)[:2]
    table = model.recommend_new_user(liked, k=5, features={"taste": f"g{genre}"})
    assert (planted.item_genre[table["item"].to_numpy().astype(int)] == genre).mean() >= 0.8
    # the solution is (Y^T C Y + reg I)^-1 (Y^T C p + reg m), m the features' vector
    prior, _ = model.feature_vectors("users", {"taste": f"g{genre}"})
    items = model.item_factors_.double()
    rows = items[torch.from_numpy(model.items_.index_of(liked))]
    confidence = torch.from_numpy(model.confidence_weights(np.ones(len(liked))).astype(
        np.float64)) + 1.0
    config = model.config
    reg = config.reg * len(liked) ** config.reg_exponent
    system = items.T @ items + rows.T @ ((confidence[:, None] - 1.0) * rows)
    system += reg * torch.eye(config.factors, dtype=torch.float64)
    vector = torch.linalg.solve(system, rows.T @ confidence + reg * prior[0].double())
    scores = (items @ vector).float()
    top = table["item"].to_numpy().astype(int)
    expected = scores[torch.from_numpy(model.items_.index_of(top))].numpy()
    np.testing.assert_allclose(table["score"].to_numpy(), expected, rtol=1e-4, atol=1e-5)
    # without the features the answer differs: the prior counts
    plain = model.recommend_new_user(liked, k=5)
    assert not np.allclose(plain["score"].to_numpy(), table["score"].to_numpy())


@pytest.mark.parametrize(("solver", "steps"), [("cg", 20), ("cholesky", 20), ("cg", 1)])
@pytest.mark.parametrize("sides", ["items", "users", "both"])
def test_the_objective_never_increases(planted: Planted, solver: str, steps: int,
                                       sides: str) -> None:
    # with enough CG steps every block is solved exactly: block coordinate descent; one
    # warm-started CG step per block (and row) lowers each block's objective too
    features = {}
    if sides in ("items", "both"):
        features["item_features"] = planted.item_features()
    if sides in ("users", "both"):
        features["user_features"] = planted.user_features()
    for identity in (True, False):
        model = ImplicitALS(**{**QUICK, "epochs": 6}, identity=identity, solver=solver,
                            cg_steps=steps, feature_cg_steps=2 * steps,
                            report_loss=True).fit(
            planted.data, **features, show_progress=False)
        losses = np.array([row["loss"] for row in model.history_])
        assert (np.diff(losses) <= 1e-5 * losses[1:]).all(), losses
        assert losses[-1] < 0.8 * losses[0]


def test_cg_and_cholesky_reach_the_same_fixed_point(planted: Planted) -> None:
    features = {"item_features": planted.item_features()}
    answers = [ImplicitALS(**{**QUICK, "epochs": 4}, solver=solver, cg_steps=30,
                           feature_cg_steps=60).fit(planted.data, **features,
                                                    show_progress=False)
               for solver in ("cg", "cholesky")]
    torch.testing.assert_close(answers[0].item_factors_, answers[1].item_factors_,
                               rtol=1e-3, atol=1e-3)


def test_published_tables_are_own_plus_features(planted: Planted) -> None:
    features = planted.item_features()
    model = ImplicitALS(**QUICK).fit(planted.data, item_features=features,
                                     show_progress=False)
    cold = torch.from_numpy(model.items_.index_of(COLD_ITEMS))
    design = model.features_["items"].matrix(COLD_ITEMS)
    torch.testing.assert_close(model.item_factors_[cold],
                               hybrid_table(None, design, model.feature_factors_["items"]))
    assert model.item_bias_ is None and "items" not in model.feature_bias_


# ---------------------------------------------------------------------- no features
#: ImplicitALS(factors=3, epochs=3, report_loss=True) on synthetic(40, 30, density=0.15,
#: feedback="implicit", seed=3), computed with the code before side features (e0aebbf^):
#: the first six values of each table, the sums of their absolute values and the losses
BEFORE = {
    "cg": {"users": [0.39353516697883606, 0.21862037479877472, 0.7755986452102661,
                     -0.21623489260673523, 0.4554629921913147, 0.6372318267822266],
           "items": [0.01824560947716236, -0.5545862317085266, 0.39416074752807617,
                     0.31674709916114807, -0.38657107949256897, 0.5764338374137878],
           "sums": (47.26567840576172, 34.55964660644531),
           "loss": [11.814770649048388, 5.913490003447345, 5.369644083883442]},
    "cholesky": {"users": [0.393535315990448, 0.21862034499645233, 0.7755984663963318,
                           -0.21623481810092926, 0.45546311140060425, 0.6372316479682922],
                 "items": [0.01824578084051609, -0.5545862317085266, 0.3941606879234314,
                           0.3167470693588257, -0.38657110929489136, 0.5764338970184326],
                 "sums": (47.26567840576172, 34.55964660644531),
                 "loss": [11.814770657003901, 5.913489569855604, 5.369644426435444]},
}


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_without_features_the_factors_are_those_of_before(solver: str) -> None:
    data = synthetic(40, 30, density=0.15, feedback="implicit", seed=3)
    model = ImplicitALS(factors=3, epochs=3, solver=solver, report_loss=True).fit(
        data, show_progress=False)
    before = BEFORE[solver]
    np.testing.assert_allclose(model.user_factors_.numpy().ravel()[:6], before["users"],
                               rtol=0, atol=2e-6)
    np.testing.assert_allclose(model.item_factors_.numpy().ravel()[:6], before["items"],
                               rtol=0, atol=2e-6)
    np.testing.assert_allclose([float(model.user_factors_.abs().sum()),
                                float(model.item_factors_.abs().sum())], before["sums"],
                               rtol=1e-6)
    np.testing.assert_allclose([row["loss"] for row in model.history_], before["loss"],
                               rtol=1e-6)
    assert model.feature_factors_ == {}

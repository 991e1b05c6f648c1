"""BPR with side features (a hybrid model, as LightFM) and the WARP loss.

The data are planted so that features matter: every item has one of four genres and every user
likes one genre, interacting with items of that genre (and a few at random). Items present only
in the feature table (cold items) can then be ranked from their genre alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from latentrec import BPR, Interactions, evaluate, load, random_split, read_features
from latentrec.data import Features
from latentrec.datasets import synthetic
from latentrec.errors import InvalidParameterError, UnknownIdError
from latentrec.models.factor import hybrid_table

GENRES = 4
N_USERS, N_WARM, N_COLD = 160, 120, 40
#: quick settings that learn the planted genres on the CPU in about a second
QUICK: dict[str, Any] = {"factors": 8, "epochs": 15, "batch_size": 256, "lr": 0.05,
                         "device": "cpu", "seed": 0}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Planted:
    """Interactions of warm items, and features of every item (warm and cold) and user."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.item_genre = rng.integers(0, GENRES, N_WARM + N_COLD)
        self.user_genre = np.arange(N_USERS) % GENRES
        self.items = np.array([f"i{j}" for j in range(N_WARM + N_COLD)], dtype=object)
        self.users = np.array([f"u{u}" for u in range(N_USERS)], dtype=object)
        users, items = [], []
        for u in range(N_USERS):
            liked = np.flatnonzero(self.item_genre[:N_WARM] == self.user_genre[u])
            chosen = set(rng.choice(liked, 10, replace=False)) | set(rng.integers(0, N_WARM, 2))
            users += [self.users[u]] * len(chosen)
            items += [self.items[j] for j in sorted(chosen)]
        self.data = Interactions.from_arrays(users, items, None, feedback="implicit")
        self.cold = self.items[N_WARM:]

    def item_features(self) -> Features:
        return read_features(pd.DataFrame({"item": self.items,
                                           "genre": [f"g{g}" for g in self.item_genre]}), "item")

    def user_features(self) -> Features:
        return read_features(pd.DataFrame({"user": self.users,
                                           "taste": [f"g{g}" for g in self.user_genre]}), "user")

    def cold_auc(self, model: BPR) -> float:
        """Mean over users of the AUC of the cold items of the user's genre against the other
        cold items (0.5: chance; ties count half)."""
        scores = np.asarray(model.predict(np.repeat(self.users, N_COLD),
                                          np.tile(self.cold, N_USERS))).reshape(N_USERS, N_COLD)
        aucs = []
        for u in range(N_USERS):
            liked = self.item_genre[N_WARM:] == self.user_genre[u]
            good, bad = scores[u, liked], scores[u, ~liked]
            wins = (good[:, None] > bad[None, :]).mean() + 0.5 * (good[:, None] == bad[None, :]
                                                                   ).mean()
            aucs.append(wins)
        return float(np.mean(aucs))


@pytest.fixture(scope="module")
def planted() -> Planted:
    return Planted()


@pytest.fixture(scope="module")
def hybrid(planted: Planted) -> BPR:
    return BPR(**QUICK).fit(planted.data, item_features=planted.item_features(),
                            show_progress=False)


# ---------------------------------------------------------------------- cold items
def test_item_features_rank_cold_items_and_the_plain_model_cannot(planted: Planted,
                                                                   hybrid: BPR) -> None:
    assert set(planted.cold) <= set(hybrid.items_.to_list())
    assert planted.cold_auc(hybrid) > 0.9
    plain = BPR(**QUICK).fit(planted.data, show_progress=False)
    with pytest.raises(UnknownIdError):
        plain.predict(planted.users[0], planted.cold[0])
    fallback = plain.predict(np.repeat(planted.users[:5], N_COLD), np.tile(planted.cold, 5),
                             on_unknown="fallback")
    assert len(np.unique(fallback)) == 1  # every cold item gets the same score: no ranking


def test_cold_items_are_recommended_to_users_of_their_genre(planted: Planted,
                                                            hybrid: BPR) -> None:
    table = hybrid.recommend(list(planted.users[:40]), k=3, items=list(planted.cold))
    genre_of = dict(zip(planted.items, planted.item_genre, strict=True))
    user_genre = dict(zip(planted.users, planted.user_genre, strict=True))
    hits = np.mean([genre_of[i] == user_genre[u] for u, i in zip(table["user"], table["item"],
                                                                 strict=True)])
    assert hits > 0.9


def test_identity_false_represents_items_by_their_features_alone(planted: Planted) -> None:
    model = BPR(**QUICK, identity=False).fit(planted.data, item_features=planted.item_features(),
                                             show_progress=False)
    assert planted.cold_auc(model) > 0.9
    vectors = model.factors("items")
    embeddings = model.factors("items", features=True)
    assert embeddings.shape == (GENRES, QUICK["factors"] + 1)
    for g in range(GENRES):  # one genre each: an item's vector is its genre's embedding
        same = vectors.loc[list(planted.items[planted.item_genre == g])].to_numpy()
        assert np.array_equal(same, np.repeat(same[:1], len(same), axis=0))
        assert np.allclose(same[0], embeddings.loc[("genre", f"g{g}")].to_numpy())


def test_identity_true_keeps_each_item_its_own_embedding(hybrid: BPR,
                                                         planted: Planted) -> None:
    vectors = hybrid.factors("items").loc[list(planted.items[:N_WARM])].to_numpy()
    assert len(np.unique(vectors.round(6), axis=0)) == N_WARM
    # warm items: own embedding + genre embedding; cold items: the genre's alone
    embeddings = hybrid.factors("items", features=True)
    cold = hybrid.factors("items").loc[planted.cold[0]].to_numpy()
    genre = planted.item_genre[N_WARM]
    assert np.allclose(cold, embeddings.loc[("genre", f"g{genre}")].to_numpy())


def test_user_features_describe_new_users(planted: Planted) -> None:
    model = BPR(**QUICK).fit(planted.data, user_features=planted.user_features(),
                             show_progress=False)
    genre_of = dict(zip(planted.items, planted.item_genre, strict=True))
    for g in range(GENRES):
        top = model.recommend_new_user(features={"taste": f"g{g}"}, k=10)
        assert np.mean([genre_of[i] == g for i in top["item"]]) >= 0.8
    # users known only by their features join with add_users
    model.add_users(read_features(pd.DataFrame({"user": ["newcomer"], "taste": ["g2"]}), "user"))
    top = model.recommend("newcomer", k=10)
    assert np.mean([genre_of[i] == 2 for i in top["item"]]) >= 0.8
    with_identity_off = BPR(**QUICK, identity=False).fit(
        planted.data, user_features=planted.user_features(), show_progress=False)
    users = with_identity_off.factors("users").to_numpy()
    assert len(np.unique(users.round(6), axis=0)) == GENRES  # users are their taste alone


def test_fold_in_starts_from_the_new_users_features(planted: Planted) -> None:
    model = BPR(**QUICK).fit(planted.data, user_features=planted.user_features(),
                             item_features=planted.item_features(), show_progress=False)
    genre_of = dict(zip(planted.items, planted.item_genre, strict=True))
    # one item of genre 1, but the features say genre 3: the features' vector is the start
    one = str(planted.items[np.flatnonzero(planted.item_genre[:N_WARM] == 1)[0]])
    both = model.recommend_new_user([one], features={"taste": "g3"}, k=40)
    alone = model.recommend_new_user([one], k=40)
    assert np.mean([genre_of[i] == 3 for i in both["item"]]) > np.mean(
        [genre_of[i] == 3 for i in alone["item"]])
    # a strong penalty keeps the solution at the features' vector
    prior = model.feature_vectors("users", {"taste": "g3"})
    from latentrec.models._solvers import SparseRows

    rows = SparseRows.from_csr(model._interaction_rows(
        model.items_.index_of([one]), np.ones(1), np.zeros(1, int), 1))
    model.set_params(reg=1e4)
    vectors, _ = model._fold_in(rows, prior)
    assert torch.allclose(vectors, prior[0], atol=1e-3)


# ---------------------------------------------------------------------- files and additions
def test_fit_save_load_gives_the_same_answers_for_cold_ids(planted: Planted, hybrid: BPR,
                                                           tmp_path: Path) -> None:
    loaded = load(hybrid.save(tmp_path / "hybrid"))
    users = list(planted.users[:20])
    assert loaded.recommend(users, k=10).equals(hybrid.recommend(users, k=10))
    assert loaded.recommend(users, k=5, items=list(planted.cold)).equals(
        hybrid.recommend(users, k=5, items=list(planted.cold)))
    assert np.array_equal(loaded.predict(users, planted.cold[:20]),
                          hybrid.predict(users, planted.cold[:20]))
    assert loaded.similar_items(planted.cold[0], k=5).equals(
        hybrid.similar_items(planted.cold[0], k=5))
    assert loaded.factors("items", features=True).equals(hybrid.factors("items",
                                                                        features=True))


def test_add_items_scores_a_new_item_by_its_genre(planted: Planted, hybrid: BPR,
                                                  tmp_path: Path) -> None:
    model = load(hybrid.save(tmp_path / "copy"))
    model.add_items(read_features(pd.DataFrame({"item": ["new-0", "new-1"],
                                                "genre": ["g0", "g1"]}), "item"))
    fans = {g: list(planted.users[planted.user_genre == g]) for g in (0, 1)}
    for g, other in ((0, 1), (1, 0)):
        own = model.predict(fans[g], [f"new-{g}"] * len(fans[g]))
        theirs = model.predict(fans[g], [f"new-{other}"] * len(fans[g]))
        assert (own > theirs).mean() > 0.9


# ---------------------------------------------------------------------- WARP
def test_warp_learns_warm_rankings() -> None:
    data = synthetic(300, 150, density=0.08, feedback="implicit", seed=0)
    train, test = random_split(data, seed=0)
    model = BPR(**QUICK, loss="warp").fit(train, show_progress=False)
    table = evaluate(model, test, k=10, metrics=["hit_rate"]).set_index("metric")["value"]
    # a random list of 10 of the about 140 unseen items hits a user's ~3 test items with
    # probability about 0.2
    assert float(table["hit_rate@10"]) > 0.5
    again = BPR(**QUICK, loss="warp").fit(train, show_progress=False)
    assert torch.equal(again.item_factors_, model.item_factors_)


def test_warp_with_item_features_ranks_cold_items(planted: Planted) -> None:
    model = BPR(**QUICK, loss="warp", identity=False).fit(
        planted.data, item_features=planted.item_features(), show_progress=False)
    assert planted.cold_auc(model) > 0.9


def test_warp_weighs_violations_by_their_estimated_rank(planted: Planted) -> None:
    """max_sampled=1: only an interaction whose single draw violates the margin counts,
    with the largest weight; a larger max_sampled finds more violators: different models."""
    one = BPR(**QUICK, loss="warp", max_sampled=1).fit(planted.data, show_progress=False)
    many = BPR(**QUICK, loss="warp", max_sampled=30).fit(planted.data, show_progress=False)
    assert not torch.equal(one.item_factors_, many.item_factors_)


def test_warp_kos_learns_warm_rankings_and_differs_from_warp() -> None:
    data = synthetic(300, 150, density=0.08, feedback="implicit", seed=0)
    train, test = random_split(data, seed=0)
    kos = BPR(**QUICK, loss="warp-kos").fit(train, show_progress=False)
    table = evaluate(kos, test, k=10, metrics=["hit_rate"]).set_index("metric")["value"]
    assert float(table["hit_rate@10"]) > 0.5  # random lists: about 0.2 (as for WARP above)
    warp = BPR(**QUICK, loss="warp").fit(train, show_progress=False)
    assert not torch.equal(kos.item_factors_, warp.item_factors_)
    # kos_k picks which drawn positive is pushed: the first and the last give other models
    top = BPR(**QUICK, loss="warp-kos", kos_k=1, kos_n=3).fit(train, show_progress=False)
    last = BPR(**QUICK, loss="warp-kos", kos_k=3, kos_n=3).fit(train, show_progress=False)
    assert not torch.equal(top.item_factors_, last.item_factors_)


def test_warp_kos_with_item_features_ranks_cold_items(planted: Planted) -> None:
    model = BPR(**QUICK, loss="warp-kos", identity=False).fit(
        planted.data, item_features=planted.item_features(), show_progress=False)
    assert planted.cold_auc(model) > 0.9


def test_warp_kos_pushes_the_kth_best_of_the_users_items() -> None:
    """With many draws every item of a user is drawn: kos_k=1 picks the user's best scored
    item, kos_k=kos_n the worst."""
    from latentrec.models._bpr_trainable import BPRTrainable

    data = synthetic(40, 30, density=0.15, feedback="implicit", seed=1)
    for k, pick in ((1, torch.argmax), (200, torch.argmin)):
        model = BPR(factors=4, loss="warp-kos", kos_k=k, kos_n=200, device="cpu")
        trainable = BPRTrainable(model, data)
        users = torch.arange(data.n_users)
        vectors = trainable.module.user_factors.weight.detach()
        chosen = trainable._kth_positives(users, vectors)
        scores = trainable._scores(vectors, torch.arange(data.n_items).expand(len(users), -1))
        csr = data.to_csr()
        for user in range(data.n_users):
            own = torch.from_numpy(csr.indices[csr.indptr[user]:csr.indptr[user + 1]]).long()
            assert int(chosen[user]) == int(own[pick(scores[user, own])])


def test_warp_kos_settings_are_checked() -> None:
    with pytest.raises(InvalidParameterError, match="kos_k must be at most kos_n"):
        BPR(loss="warp-kos", kos_k=11, kos_n=10)
    with pytest.raises(InvalidParameterError, match="kos_n must be > 0"):
        BPR(kos_n=0)


# ---------------------------------------------------------------------- full softmax
@pytest.mark.parametrize("setup", [
    {},                                                    # plain, dense Adam
    {"items": True, "identity": False},                    # items by their features alone
    {"items": True, "identity": True},                     # own rows plus features
    {"items": True, "users": True, "identity": False},     # both sides' features
    {"items": True, "optimizer": "adagrad"},               # sparse gradients: rows gathered
])
def test_full_softmax_loss_is_the_cross_entropy_among_every_item(
        planted: Planted, setup: dict[str, Any]) -> None:
    """negatives=0: each interaction's -log softmax over all items, averaged, plus reg times
    the mean penalties of its user, its item and every item (float64 reference computed
    per interaction, without the per-user sharing of scores the trainable does)."""
    from latentrec.models._bpr_trainable import BPRTrainable

    reg = 0.3
    model = BPR(**QUICK, loss="softmax", negatives=0, reg=reg,
                identity=setup.get("identity", True), optimizer=setup.get("optimizer", "adam"))
    given = {"items": planted.item_features() if setup.get("items") else None,
             "users": planted.user_features() if setup.get("users") else None}
    if any(table is not None for table in given.values()):
        model._remember_features(planted.data, given)
    trainable = BPRTrainable(model, planted.data)
    # uneven: the first users' interactions come twice, so a user's weight is its count
    rows = torch.cat([torch.arange(0, len(planted.data), 3),
                      torch.arange(len(planted.data) // 4)])
    loss = float(trainable._loss(rows).detach())

    def whole(side: str, own: torch.Tensor, own_bias: torch.Tensor | None
              ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Every id's vector, bias and penalty, from the definitions in float64."""
        penalty = own.pow(2).sum(1)
        features = trainable.features.get(side)
        if features is None:
            return own, own_bias, penalty
        design = torch.from_numpy(features.matrix.toarray()).double()
        if not model.config.identity:
            has_features = design.abs().sum(1) > 0
            own = torch.where(has_features[:, None], 0.0, own)
            penalty = torch.where(has_features, 0.0, penalty)
            if own_bias is not None:
                own_bias = torch.where(has_features, 0.0, own_bias)
        embeddings = features.factors.detach().double()
        vectors = own + design @ embeddings
        penalty = penalty + design.abs() @ embeddings.pow(2).sum(1)
        if own_bias is not None and features.bias is not None:
            own_bias = own_bias + design @ features.bias.detach().double()[:, 0]
        return vectors, own_bias, penalty

    module = trainable.module
    user_vectors, _, user_penalty = whole(
        "users", module.user_factors.weight.detach().double(), None)
    vectors, bias, penalty = whole("items", module.item_factors.weight.detach().double(),
                                   module.item_bias.weight.detach().double()[:, 0])
    assert bias is not None
    users, positives = trainable.users[rows], trainable.items[rows]
    logits = user_vectors[users] @ vectors.T + bias
    expected = -torch.log_softmax(logits, 1)[torch.arange(len(rows)), positives].mean()
    expected += reg * (user_penalty[users].mean() + penalty[positives].mean() + penalty.mean())
    assert loss == pytest.approx(float(expected), rel=1e-5)


def test_full_softmax_in_chunks_gives_the_same_loss_and_gradients(
        planted: Planted, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch whose users x items scores exceed the budget is scored a few users at a time
    (each chunk recomputed in the backward pass): the same loss and gradients as at once."""
    from latentrec.models import _bpr_trainable
    from latentrec.models._bpr_trainable import BPRTrainable

    model = BPR(**QUICK, loss="softmax", negatives=0, reg=0.1, identity=False)
    model._remember_features(planted.data, {"items": planted.item_features(), "users": None})
    trainable = BPRTrainable(model, planted.data)
    rows = torch.arange(0, len(planted.data), 2)
    parameters = list(trainable.loop.module.parameters())  # ids' and features' tables

    def loss_and_gradients() -> tuple[float, list[torch.Tensor]]:
        for parameter in parameters:
            parameter.grad = None
        loss = trainable._loss(rows)
        loss.backward()
        return float(loss.detach()), [p.grad.clone() for p in parameters if p.grad is not None]

    whole_loss, whole_gradients = loss_and_gradients()
    monkeypatch.setattr(_bpr_trainable, "SOFTMAX_SCORE_BUDGET", 7 * N_WARM)  # 7 users a chunk
    chunked_loss, chunked_gradients = loss_and_gradients()
    assert chunked_loss == pytest.approx(whole_loss, rel=1e-6)
    assert len(chunked_gradients) == len(whole_gradients) > 0
    for chunked, whole in zip(chunked_gradients, whole_gradients, strict=True):
        torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-7)


def test_full_softmax_learns_warm_rankings_and_cold_items(planted: Planted,
                                                          tmp_path: Path) -> None:
    data = synthetic(300, 150, density=0.08, feedback="implicit", seed=0)
    train, test = random_split(data, seed=0)
    warm = BPR(**QUICK, loss="softmax", negatives=0).fit(train, show_progress=False)
    table = evaluate(warm, test, k=10, metrics=["hit_rate"]).set_index("metric")["value"]
    assert float(table["hit_rate@10"]) > 0.5  # random lists: about 0.2 (see WARP above)
    sampled = BPR(**QUICK, loss="softmax", negatives=5).fit(train, show_progress=False)
    assert not torch.equal(sampled.item_factors_, warm.item_factors_)
    cold = BPR(**QUICK, loss="softmax", negatives=0, identity=False).fit(
        planted.data, item_features=planted.item_features(), show_progress=False)
    assert planted.cold_auc(cold) > 0.9
    cold.save(tmp_path / "cold")
    again = load(tmp_path / "cold")
    assert again.config.negatives == 0 and again.config.loss == "softmax"
    assert planted.cold_auc(again) == planted.cold_auc(cold)


def test_full_softmax_settings_are_checked() -> None:
    with pytest.raises(InvalidParameterError, match="negatives=0 .* needs loss='softmax'"):
        BPR(loss="bpr", negatives=0)
    with pytest.raises(InvalidParameterError, match="negatives must be >= 0"):
        BPR(loss="softmax", negatives=-1)
    with pytest.raises(TypeError, match="negatives must be an integer"):
        BPR(loss="softmax", negatives=2.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="sampling='popularity' would be ignored"):
        BPR(loss="softmax", negatives=0, sampling="popularity")


# ---------------------------------------------------------------------- without features
#: BPR(factors=8, epochs=3, batch_size=256, seed=7, device="cpu") on
#: synthetic(300, 200, feedback="implicit", seed=3), computed with the code before features
#: were added (commit fb06a82): without features the model must train exactly as before
PLAIN_EXPECTED = {
    "user_factors": (-0.03500993177294731, 223.38911669701338),
    "item_factors": (0.01678549498319626, 110.04992541691172),
}


def test_without_features_training_is_unchanged() -> None:
    data = synthetic(300, 200, feedback="implicit", seed=3)
    model = BPR(factors=8, epochs=3, batch_size=256, seed=7, device="cpu").fit(
        data, show_progress=False)
    users, items = model.user_factors_.numpy(), model.item_factors_.numpy()
    assert (float(users[0, 0]), float(np.abs(users.astype(np.float64)).sum())) == (
        PLAIN_EXPECTED["user_factors"])
    assert (float(items[1, 0]), float(np.abs(items.astype(np.float64)).sum())) == (
        PLAIN_EXPECTED["item_factors"])
    assert model.feature_factors_ == {}
    assert set(model._tensors()) == {"user_factors", "item_factors", "item_bias"}


def test_refitting_without_features_forgets_them(planted: Planted, tmp_path: Path) -> None:
    model = BPR(**QUICK).fit(planted.data, item_features=planted.item_features(),
                             show_progress=False)
    model.fit(planted.data, show_progress=False)
    assert model.feature_factors_ == {}
    assert load(model.save(tmp_path / "plain")).n_items == N_WARM


def test_hybrid_tables_are_own_plus_features(planted: Planted, hybrid: BPR) -> None:
    fitted = hybrid.features_["items"]
    matrix = fitted.matrix(planted.items[:N_WARM])
    embeddings = hybrid.feature_factors_["items"]
    own = hybrid.item_factors_[:N_WARM] - hybrid_table(None, matrix, embeddings)
    # the own part is what is left: it differs from item to item, the features' part does not
    assert own.std(dim=0).min() > 0

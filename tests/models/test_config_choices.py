"""Every configuration choice changes what a model does, and each choice still works.

Each test fits tiny models on the CPU and checks behaviour that a choice is meant to have: the
option takes effect (results differ from the alternative, or match an exact reference), and the
model still learns (held-out ranking quality clearly above popularity or an untrained model).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from latentrec import (
    BPR,
    BiasedMF,
    ImplicitALS,
    Interactions,
    ItemKNN,
    Popularity,
    evaluate,
    random_split,
)
from latentrec.datasets import synthetic

# ---------------------------------------------------------------------- shared data and helpers
#: small settings that train BPR in well under a second on the CPU
BPR_QUICK: dict[str, Any] = {"factors": 16, "epochs": 12, "batch_size": 256, "seed": 0,
                             "device": "cpu"}
ALS_QUICK: dict[str, Any] = {"factors": 8, "epochs": 5, "seed": 0, "device": "cpu"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def split() -> tuple[Interactions, Interactions]:
    """Implicit play-count-like data (values 1..35) with planted taste clusters."""
    data = synthetic(300, 150, density=0.08, feedback="implicit", seed=0)
    train, test = random_split(data, seed=0)
    return train, test


def ranking(model: Any, test: Interactions) -> dict[str, float]:
    table = evaluate(model, test, k=10, metrics=["ndcg", "hit_rate"])
    values = table.set_index("metric")["value"]
    return {"ndcg": float(values["ndcg@10"]), "hit_rate": float(values["hit_rate@10"])}


@pytest.fixture(scope="module")
def popularity_quality(split: tuple[Interactions, Interactions]) -> dict[str, float]:
    train, test = split
    return ranking(Popularity().fit(train, show_progress=False), test)


@pytest.fixture(scope="module")
def untrained_quality(split: tuple[Interactions, Interactions]) -> dict[str, float]:
    """A BPR model that is its random initialisation: one epoch with a vanishing step."""
    train, test = split
    model = BPR(**{**BPR_QUICK, "epochs": 1, "lr": 1e-7}).fit(train, show_progress=False)
    return ranking(model, test)


@pytest.fixture(scope="module")
def bpr_default(split: tuple[Interactions, Interactions]) -> BPR:
    """loss="bpr", sampling="uniform", candidates=4 (the defaults), on the CPU."""
    return BPR(**BPR_QUICK).fit(split[0], show_progress=False)


def assert_learns(quality: dict[str, float], popularity: dict[str, float],
                  untrained: dict[str, float] | None = None) -> None:
    """Held-out ranking clearly better than popularity (and than an untrained model)."""
    assert quality["ndcg"] > 1.3 * popularity["ndcg"], (quality, popularity)
    assert quality["hit_rate"] > popularity["hit_rate"] + 0.03, (quality, popularity)
    if untrained is not None:
        assert quality["ndcg"] > 3 * untrained["ndcg"], (quality, untrained)
        assert quality["hit_rate"] > untrained["hit_rate"] + 0.2, (quality, untrained)


def largest_difference(first: Any, second: Any) -> float:
    """Largest absolute difference of two factor models' item factors and biases."""
    gaps = [float((first.item_factors_ - second.item_factors_).abs().max())]
    if first.item_bias_ is not None and second.item_bias_ is not None:
        gaps.append(float((first.item_bias_ - second.item_bias_).abs().max()))
    return max(gaps)


def mean_popularity_of_recommendations(model: Any, train: Interactions) -> float:
    """Average training count of the items in every user's top 10."""
    top, _ = model.top_k_indices(np.arange(model.n_users), 10)
    return float(train.item_counts()[top[top >= 0]].mean())


# ---------------------------------------------------------------------- BPR
def test_bpr_learns_on_the_cpu(split: tuple[Interactions, Interactions], bpr_default: BPR,
                               popularity_quality: dict[str, float],
                               untrained_quality: dict[str, float]) -> None:
    train, test = split
    assert bpr_default.item_factors_.device.type == "cpu"
    quality = ranking(bpr_default, test)
    assert_learns(quality, popularity_quality, untrained_quality)
    one_epoch = ranking(BPR(**{**BPR_QUICK, "epochs": 1}).fit(train, show_progress=False), test)
    assert quality["ndcg"] > 1.5 * one_epoch["ndcg"], (quality, one_epoch)
    # the training loss is recorded for every epoch and goes down
    losses = np.array([epoch["loss"] for epoch in bpr_default.history_])
    assert len(losses) == BPR_QUICK["epochs"]
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.9 * losses[0]
    assert losses[-5:].mean() < losses[:5].mean()


def test_bpr_softmax_loss_learns_and_differs_from_bpr(
        split: tuple[Interactions, Interactions], popularity_quality: dict[str, float],
        untrained_quality: dict[str, float]) -> None:
    # with several negatives the sampled softmax is a different objective from BPR's average
    # of pairwise terms (with one uniform negative the two coincide, see the next test)
    train, test = split
    settings = {**BPR_QUICK, "negatives": 4}
    softmax = BPR(**settings, loss="softmax").fit(train, show_progress=False)
    pairwise = BPR(**settings, loss="bpr").fit(train, show_progress=False)
    assert largest_difference(softmax, pairwise) > 1e-2
    softmax_losses = [epoch["loss"] for epoch in softmax.history_]
    pairwise_losses = [epoch["loss"] for epoch in pairwise.history_]
    # cross-entropy among 1 + 4 items starts near log 5, BPR's pairwise loss near log 2
    assert softmax_losses[0] > 1.2 > pairwise_losses[0]
    assert softmax_losses[-1] < 0.9 * softmax_losses[0]
    assert_learns(ranking(softmax, test), popularity_quality, untrained_quality)


def test_bpr_softmax_with_one_uniform_negative_is_bpr(
        split: tuple[Interactions, Interactions]) -> None:
    # cross-entropy over [s_pos - log p, s_neg - log p] with a constant p is
    # -log sigmoid(s_pos - s_neg): the same loss, so the same training run
    train = split[0]
    settings = {**BPR_QUICK, "epochs": 5, "negatives": 1, "sampling": "uniform"}
    softmax = BPR(**settings, loss="softmax").fit(train, show_progress=False)
    pairwise = BPR(**settings, loss="bpr").fit(train, show_progress=False)
    np.testing.assert_allclose([epoch["loss"] for epoch in softmax.history_],
                               [epoch["loss"] for epoch in pairwise.history_], rtol=1e-4)
    assert largest_difference(softmax, pairwise) < 1e-3


def test_bpr_popularity_sampling_differs_and_learns(
        split: tuple[Interactions, Interactions], bpr_default: BPR,
        popularity_quality: dict[str, float], untrained_quality: dict[str, float]) -> None:
    train, test = split
    popular = BPR(**BPR_QUICK, sampling="popularity").fit(train, show_progress=False)
    assert largest_difference(popular, bpr_default) > 1e-2
    assert_learns(ranking(popular, test), popularity_quality, untrained_quality)
    # popular items are drawn as negatives more often, so they are pushed down more: the
    # recommended items are clearly less popular than with uniform negatives
    assert (mean_popularity_of_recommendations(popular, train)
            < 0.85 * mean_popularity_of_recommendations(bpr_default, train))


def test_bpr_candidates_change_training_and_both_learn(
        split: tuple[Interactions, Interactions], bpr_default: BPR,
        popularity_quality: dict[str, float], untrained_quality: dict[str, float]) -> None:
    train, test = split
    assert bpr_default.config.candidates == 4
    plain = BPR(**BPR_QUICK, candidates=1).fit(train, show_progress=False)
    assert largest_difference(plain, bpr_default) > 1e-2
    assert [e["loss"] for e in plain.history_] != [e["loss"] for e in bpr_default.history_]
    assert_learns(ranking(plain, test), popularity_quality, untrained_quality)
    assert_learns(ranking(bpr_default, test), popularity_quality, untrained_quality)
    # the hardest of 4 samples is usually a high-scoring, popular item: dynamic negative
    # sampling pushes popular items down more than one uniform sample does
    assert (mean_popularity_of_recommendations(bpr_default, train)
            < 0.95 * mean_popularity_of_recommendations(plain, train))


# ---------------------------------------------------------------------- ImplicitALS
def test_ials_cholesky_matches_converged_cg_and_learns(
        split: tuple[Interactions, Interactions], popularity_quality: dict[str, float]) -> None:
    train, test = split
    exact = ImplicitALS(**ALS_QUICK, solver="cholesky").fit(train, show_progress=False)
    # conjugate gradients solve a k x k system exactly in k steps (up to rounding)
    converged = ImplicitALS(**ALS_QUICK, solver="cg", cg_steps=3 * ALS_QUICK["factors"]).fit(
        train, show_progress=False)
    rough = ImplicitALS(**ALS_QUICK, solver="cg", cg_steps=1).fit(train, show_progress=False)
    np.testing.assert_allclose(exact.item_factors_.numpy(), converged.item_factors_.numpy(),
                               atol=1e-4)
    np.testing.assert_allclose(exact.user_factors_.numpy(), converged.user_factors_.numpy(),
                               atol=1e-4)
    users = np.arange(exact.n_users)
    exact_top, _ = exact.top_k_indices(users, 10)
    converged_top, _ = converged.top_k_indices(users, 10)
    overlap = np.mean([len(set(a) & set(b)) / 10
                       for a, b in zip(exact_top, converged_top, strict=True)])
    assert overlap > 0.95
    # the solver choice takes effect: a single CG step is visibly not the exact solve
    assert largest_difference(exact, rough) > 1e-3
    assert_learns(ranking(exact, test), popularity_quality)


def test_ials_confidence_linear_and_log_differ_on_counts_and_both_learn(
        split: tuple[Interactions, Interactions], popularity_quality: dict[str, float]) -> None:
    train, test = split
    assert train.weights().max() > 10  # play-count-like values, where the two curves part
    linear = ImplicitALS(**ALS_QUICK, confidence="linear", alpha=1.0).fit(
        train, show_progress=False)
    log = ImplicitALS(**ALS_QUICK, confidence="log", alpha=5.0).fit(train, show_progress=False)
    assert largest_difference(linear, log) > 0.05
    np.testing.assert_allclose(linear.confidence_weights(np.array([1.0, 30.0])), [1.0, 30.0])
    np.testing.assert_allclose(log.confidence_weights(np.array([1.0, 30.0])),
                               5.0 * np.log1p([1.0, 30.0]), rtol=1e-6)
    assert_learns(ranking(linear, test), popularity_quality)
    assert_learns(ranking(log, test), popularity_quality)


def test_ials_confidence_curves_agree_when_they_give_equal_confidences(
        split: tuple[Interactions, Interactions]) -> None:
    # on binary data, linear with alpha * log 2 gives every interaction the confidence that
    # log with alpha gives: the same systems, so the same factors; counts separate them
    train = split[0]
    binary = Interactions.from_arrays(train.users.ids_of(train.user_index),
                                      train.items.ids_of(train.item_index), feedback="implicit")
    assert (binary.weights() == 1.0).all()
    linear = ImplicitALS(**ALS_QUICK, confidence="linear", alpha=5.0 * np.log(2.0)).fit(
        binary, show_progress=False)
    log = ImplicitALS(**ALS_QUICK, confidence="log", alpha=5.0).fit(binary, show_progress=False)
    assert largest_difference(linear, log) < 1e-4


# ---------------------------------------------------------------------- ItemKNN
def tie_break_data() -> Interactions:
    """User "t" played A 50 times and B once; X goes with A and Y with B, symmetrically.

    Unweighted, X and Y are equally good for t; weighted by the counts, X is better."""
    users = ["t", "t"]
    items = ["A", "B"]
    values = [50.0, 1.0]
    for n in range(3):
        users += [f"p{n}", f"p{n}", f"q{n}", f"q{n}"]
        items += ["A", "X", "B", "Y"]
        values += [1.0, 1.0, 1.0, 1.0]
    return Interactions.from_arrays(users, items, values, feedback="implicit")


@pytest.mark.parametrize("weighting", ["bm25", "log"])
def test_item_knn_weighting_uses_counts(weighting: str,
                                        split: tuple[Interactions, Interactions]) -> None:
    data = tie_break_data()
    binary = ItemKNN(weighting="binary").fit(data, show_progress=False)
    weighted = ItemKNN(weighting=weighting).fit(data, show_progress=False)
    x_binary, y_binary = binary.predict(["t", "t"], ["X", "Y"])
    assert x_binary == pytest.approx(y_binary, rel=1e-6)
    assert x_binary > 0
    x_weighted, y_weighted = weighted.predict(["t", "t"], ["X", "Y"])
    assert x_weighted > 1.2 * y_weighted > 0
    assert weighted.recommend("t", k=1)["item"].tolist() == ["X"]
    # on play counts the weighting changes many users' lists
    train = split[0]
    users = np.arange(train.n_users)
    binary_top, _ = ItemKNN(weighting="binary", neighbours=50).fit(
        train, show_progress=False).top_k_indices(users, 10)
    weighted_top, _ = ItemKNN(weighting=weighting, neighbours=50).fit(
        train, show_progress=False).top_k_indices(users, 10)
    changed = np.mean([list(a) != list(b) for a, b in zip(binary_top, weighted_top,
                                                          strict=True)])
    assert changed > 0.2


@pytest.mark.parametrize("weighting", ["binary", "log", "bm25"])
def test_item_knn_weightings_recover_a_known_pattern(weighting: str) -> None:
    # even users play even items, odd users odd items, with random counts; every user has
    # two of their ten items held out, and those are exactly what they should be offered
    rng = np.random.default_rng(7)
    users, items, values, held_out = [], [], [], {}
    for user in range(20):
        own = [item for item in range(20) if item % 2 == user % 2]
        hidden = {own[user // 2 % 10], own[(user // 2 + 3) % 10]}
        held_out[user] = hidden
        for item in own:
            if item not in hidden:
                users.append(user)
                items.append(item)
                values.append(float(rng.integers(1, 40)))
    data = Interactions.from_arrays(users, items, values, feedback="implicit")
    model = ItemKNN(weighting=weighting).fit(data, show_progress=False)
    frame = model.recommend(list(range(20)), k=2)
    for user in range(20):
        assert set(frame.loc[frame["user"] == user, "item"]) == held_out[user]
    # items of the other parity never score above zero
    assert model.predict([0, 1], [1, 0]).tolist() == [0.0, 0.0]


# ---------------------------------------------------------------------- Popularity
def test_popularity_sum_and_count_rank_differently() -> None:
    # "many" has the most interactions (3 x weight 1), "heavy" the largest sum (1 x weight 10)
    data = Interactions.from_arrays(
        ["a", "b", "c", "d", "e"], ["many", "many", "many", "heavy", "other"],
        [1.0, 1.0, 1.0, 10.0, 2.0], feedback="implicit")
    by_count = Popularity(weighting="count").fit(data, show_progress=False)
    by_sum = Popularity(weighting="sum").fit(data, show_progress=False)
    assert by_count.recommend("e", k=1)["item"].tolist() == ["many"]
    assert by_sum.recommend("e", k=1)["item"].tolist() == ["heavy"]
    assert by_count.predict("e", "many") == 3.0
    assert by_sum.predict("e", "heavy") == 10.0
    assert by_sum.recommend("e", k=3)["item"].tolist() == ["heavy", "many"]


# ---------------------------------------------------------------------- evaluation
def test_relevance_threshold_changes_ranking_metrics() -> None:
    # training popularity: a (4) > b (3) > c (2) > d (1); "t" trained on e only, so its list
    # is a, b, c, d; in the test it rated a 1 (disliked) and c 5
    users = ["u1", "u2", "u3", "u4", "u1", "u2", "u3", "u1", "u2", "u1", "t"]
    items = ["a", "a", "a", "a", "b", "b", "b", "c", "c", "d", "e"]
    train = Interactions.from_arrays(users, items, [4.0] * 10 + [3.0])
    test = Interactions.from_arrays(["t", "t"], ["a", "c"], [1.0, 5.0])
    model = Popularity().fit(train, show_progress=False)
    assert model.recommend("t", k=4)["item"].tolist() == ["a", "b", "c", "d"]

    def metrics(k: int, threshold: float | None) -> dict[str, float]:
        table = evaluate(model, test, k=k, metrics=["hit_rate", "precision", "ndcg"],
                         relevance_threshold=threshold)
        return dict(zip(table["metric"], table["value"], strict=True))

    # every test item relevant: the disliked "a" at rank 1 is a hit
    assert metrics(1, None)["hit_rate@1"] == 1.0
    assert metrics(1, None)["precision@1"] == 1.0
    # only ratings >= 4 relevant: "a" is not, and nothing relevant is at rank 1
    assert metrics(1, 4.0)["hit_rate@1"] == 0.0
    assert metrics(1, 4.0)["precision@1"] == 0.0
    # at k=3: relevant at ranks 1 and 3, then only at rank 3 (ideal: rank 1)
    ideal_two = 1.0 + 1.0 / np.log2(3.0)
    assert metrics(3, None)["ndcg@3"] == pytest.approx((1.0 + 0.5) / ideal_two)
    assert metrics(3, 4.0)["ndcg@3"] == pytest.approx(0.5)
    # a threshold that every test rating passes changes nothing
    assert metrics(3, 1.0) == metrics(3, None)


# ---------------------------------------------------------------------- BiasedMF
def test_biased_mf_clip_false_stops_clipping() -> None:
    # user 0 rates everything 5 and everyone rates item 0 5, while other ratings are 1-2:
    # mean + b_u + b_i for the unseen pair (0, 0) lies far above 5
    rng = np.random.default_rng(0)
    users, items, values = [], [], []
    for user in range(30):
        for item in range(20):
            if user == 0 and item == 0:
                continue
            if user == 0 or item == 0:
                users.append(user)
                items.append(item)
                values.append(5.0)
            elif rng.random() < 0.5:
                users.append(user)
                items.append(item)
                values.append(float(rng.integers(1, 3)))
    data = Interactions.from_arrays(users, items, values)
    assert data.rating_range() == (1.0, 5.0)
    every_user, every_item = (grid.ravel() for grid in np.meshgrid(
        np.arange(data.n_users), np.arange(data.n_items), indexing="ij"))
    settings = {"factors": 4, "epochs": 100, "seed": 0, "device": "cpu"}

    clipped = BiasedMF(**settings, clip=True).fit(data, show_progress=False)
    predictions = clipped.score_indices(every_user, every_item)
    assert predictions.min() >= 1.0
    assert predictions.max() <= 5.0
    assert clipped.predict(0, 0) == 5.0
    assert clipped.recommend(0, k=1)["score"].tolist() == [5.0]

    unclipped = BiasedMF(**settings, clip=False).fit(data, show_progress=False)
    predictions = unclipped.score_indices(every_user, every_item)
    assert predictions.max() > 5.5
    assert unclipped.predict(0, 0) > 5.5
    assert unclipped.recommend(0, k=1)["score"].iloc[0] > 5.5
    # the same training run: only the reporting differs
    np.testing.assert_array_equal(clipped.item_factors_.numpy(),
                                  unclipped.item_factors_.numpy())


# ---------------------------------------------------------------------- ANN index
def test_recommend_is_answered_by_the_item_index(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("faiss")
    from latentrec.models.ann import ItemIndex

    data = synthetic(200, 100, feedback="implicit", seed=0)
    model = ImplicitALS(factors=8, epochs=3, device="cpu").fit(data, show_progress=False)
    users = np.array([0, 1, 2])
    exact_items, exact_scores = model.top_k_indices(users, 5)
    index = ItemIndex(model)  # 100 items: 2 inverted lists, both probed, so exact
    assert index.recall_estimate == 1.0
    calls: list[tuple[list[int], int, bool]] = []
    search = index.search

    def spy(user_index: np.ndarray, k: int, *, exclude_seen: bool = True
            ) -> tuple[np.ndarray, np.ndarray]:
        calls.append((user_index.tolist(), k, exclude_seen))
        return search(user_index, k, exclude_seen=exclude_seen)

    monkeypatch.setattr(index, "search", spy)
    model.use_index(index)
    frame = model.recommend(users.tolist(), k=5)
    assert calls == [([0, 1, 2], 5, True)]
    for row, user in enumerate(users):
        got = frame.loc[frame["user"] == user, "item"].tolist()
        assert got == model.items_.ids_of(exact_items[row]).tolist()

    # a sentinel answer from the index is what recommend returns, scores included
    sentinel_items = np.array([[7, 3, 1]], dtype=np.int64)
    sentinel_scores = np.array([[30.0, 20.0, 10.0]], dtype=np.float32)
    monkeypatch.setattr(index, "search", lambda user_index, k, *, exclude_seen=True: (
        sentinel_items, sentinel_scores))
    frame = model.recommend(0, k=3)
    assert frame["item"].tolist() == model.items_.ids_of(sentinel_items[0]).tolist()
    assert frame["score"].tolist() == [30.0, 20.0, 10.0]

    # approximate=False, an allow-list and use_index(None) bypass the index
    calls.clear()
    monkeypatch.setattr(index, "search", spy)
    bypassed_items, bypassed_scores = model.top_k_indices(users, 5, approximate=False)
    np.testing.assert_array_equal(bypassed_items, exact_items)
    np.testing.assert_allclose(bypassed_scores, exact_scores)
    allowed = np.arange(0, model.n_items, 2)
    allowed_items, _ = model.top_k_indices(users, 5, allowed=allowed)
    assert np.isin(allowed_items, allowed).all()
    assert calls == []
    model.top_k_indices(users, 5)
    assert len(calls) == 1
    model.use_index(None)
    model.recommend(users.tolist(), k=5)
    assert len(calls) == 1

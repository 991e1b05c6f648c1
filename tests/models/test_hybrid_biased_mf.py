"""BiasedMF with side features and the implicit-feedback groups (SVD++'s items a user rated,
the flipped users who rated an item), trained by PyTorch minibatches or the compiled kernel.

Planted ratings: every item has one of four genres and every user one taste; a rating is high
when the genre is the user's taste and low otherwise, so features (and which items a user chose
to rate) carry the signal. Items present only in the feature table are cold items.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from latentrec import BiasedMF, Interactions, load, persistence, read_features
from latentrec.data import Features
from latentrec.datasets import synthetic
from latentrec.errors import (
    ConvergenceWarning,
    InvalidParameterError,
    ModelFileError,
    TrainingDivergedError,
)

GENRES = 4
N_USERS, N_WARM, N_COLD = 200, 120, 40
QUICK: dict[str, Any] = {"factors": 8, "epochs": 25, "batch_size": 256, "lr": 0.02,
                         "optimizer": "adam", "reg": 0.02, "device": "cpu", "seed": 0}


#: the compiled kernel's settings (plain SGD, the default optimizer)
KERNEL: dict[str, Any] = {"factors": 8, "epochs": 25, "device": "cpu", "seed": 0}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Planted:
    """``per_user`` training ratings per user (most of the user's taste), ``test`` the rest."""

    def __init__(self, seed: int = 0, per_user: int = 6, liked_share: float = 0.67) -> None:
        rng = np.random.default_rng(seed)
        self.item_genre = rng.integers(0, GENRES, N_WARM + N_COLD)
        self.user_genre = np.arange(N_USERS) % GENRES
        self.items = np.array([f"i{j}" for j in range(N_WARM + N_COLD)], dtype=object)
        self.users = np.array([f"u{u}" for u in range(N_USERS)], dtype=object)
        rows: list[tuple[str, str, float]] = []
        test: list[tuple[str, str, float]] = []
        for u in range(N_USERS):
            liked = np.flatnonzero(self.item_genre[:N_WARM] == self.user_genre[u])
            other = np.flatnonzero(self.item_genre[:N_WARM] != self.user_genre[u])
            n_liked = round(per_user * liked_share)
            chosen = np.concatenate([rng.choice(liked, n_liked + 3, replace=False),
                                     rng.choice(other, per_user - n_liked + 3, replace=False)])
            for rank, j in enumerate(rng.permutation(chosen)):
                rating = self.rating(u, j, rng)
                (test if rank < 6 else rows).append((self.users[u], self.items[j], rating))
        self.data = Interactions.from_arrays(*map(list, zip(*rows, strict=True)))
        self.test = Interactions.from_arrays(*map(list, zip(*test, strict=True)))
        self.cold = self.items[N_WARM:]

    def rating(self, user: int, item: int, rng: np.random.Generator) -> float:
        good = self.item_genre[item] == self.user_genre[user]
        return float(np.clip(np.round((4.5 if good else 1.8) + rng.normal(0, 0.4)), 1, 5))

    def item_features(self) -> Features:
        return read_features(pd.DataFrame({"item": self.items,
                                           "genre": [f"g{g}" for g in self.item_genre]}), "item")

    def user_features(self) -> Features:
        return read_features(pd.DataFrame({"user": self.users,
                                           "taste": [f"g{g}" for g in self.user_genre]}), "user")

    def test_rmse(self, model: BiasedMF) -> float:
        predicted = model.predict(self.test.users.ids_of(self.test.user_index),
                                  self.test.items.ids_of(self.test.item_index))
        return float(np.sqrt(np.mean((np.asarray(predicted) - self.test.weights()) ** 2)))

    def cold_gap(self, model: BiasedMF) -> float:
        """Mean predicted rating of cold items of each user's taste minus the others'."""
        scores = np.asarray(model.predict(np.repeat(self.users, N_COLD),
                                          np.tile(self.cold, N_USERS))).reshape(N_USERS, N_COLD)
        liked = self.item_genre[N_WARM:][None, :] == self.user_genre[:, None]
        return float(scores[liked].mean() - scores[~liked].mean())


@pytest.fixture(scope="module")
def planted() -> Planted:
    return Planted()


@pytest.fixture(scope="module")
def hybrid(planted: Planted) -> BiasedMF:
    return BiasedMF(**QUICK, seen_items=True, seen_users=True).fit(
        planted.data, item_features=planted.item_features(),
        user_features=planted.user_features(), show_progress=False)


# ---------------------------------------------------------------------- without features
def test_without_features_training_is_that_of_before() -> None:
    """Predictions of the code before the hybrid (commit fb06a82), engine by engine."""
    data = synthetic(120, 80, seed=3)
    expected = {
        ("kernel", "sgd"): [3.355926275253296, 3.577040195465088, 3.1980628967285156,
                            3.4885106086730957, 3.1204380989074707, 3.2278127670288086],
        ("minibatch", "sgd"): [3.348419427871704, 3.350579023361206, 3.3464465141296387,
                               3.349313735961914, 3.3448145389556885, 3.347107172012329],
        ("minibatch", "adam"): [3.3459651470184326, 3.42903470993042, 3.3445870876312256,
                                3.4254531860351562, 3.269548177719116, 3.3487846851348877],
    }
    for (engine, optimizer), values in expected.items():
        extra = {"lr": 0.01} if optimizer == "adam" else {}
        with warnings.catch_warnings():  # minibatch SGD warns that it learns slowly
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = BiasedMF(factors=4, epochs=4, device="cpu", engine=engine,
                             optimizer=optimizer, **extra).fit(data, show_progress=False)
        got = model.predict(np.arange(6), np.arange(6))
        np.testing.assert_array_equal(got, np.asarray(values, dtype=np.float32))
        assert model.seen_item_factors_ is None and model.feature_factors_ == {}


# ---------------------------------------------------------------------- learning
def test_features_lower_the_rmse_of_sparse_users(planted: Planted) -> None:
    plain = BiasedMF(**QUICK).fit(planted.data, show_progress=False)
    hybrid = BiasedMF(**QUICK).fit(planted.data, item_features=planted.item_features(),
                                   user_features=planted.user_features(), show_progress=False)
    assert planted.test_rmse(hybrid) < planted.test_rmse(plain) - 0.1


def test_cold_items_are_predicted_from_their_genre(planted: Planted, hybrid: BiasedMF) -> None:
    assert set(planted.cold) <= set(hybrid.items_.to_list())
    assert planted.cold_gap(hybrid) > 0.5  # planted: 2.7; without features it would be 0
    scores = np.asarray(hybrid.predict(np.repeat(planted.users, N_COLD),
                                       np.tile(planted.cold, N_USERS)))
    assert scores.min() >= 1.0 and scores.max() <= 5.0


def test_seen_groups_lower_the_rmse_when_the_choice_of_items_tells_the_taste() -> None:
    """Users with few ratings, mostly of their taste: which items they rated identifies the
    taste through the shared y (SVD++), which items' raters do through z (flipped)."""
    planted = Planted(seed=1, per_user=4, liked_share=0.75)
    params = {**QUICK, "reg": 0.05}
    plain = BiasedMF(**params, engine="minibatch").fit(planted.data, show_progress=False)
    seen = BiasedMF(**params, seen_items=True, seen_users=True).fit(planted.data,
                                                                     show_progress=False)
    assert planted.test_rmse(seen) < planted.test_rmse(plain) - 0.05


def test_published_tables_are_own_plus_groups(planted: Planted, hybrid: BiasedMF) -> None:
    """A warm user's vector is its own embedding plus its taste's embedding plus the
    normalised sum of the y of the items it rated (what serving scores with)."""
    y = hybrid.seen_item_factors_
    assert y is not None and y.shape == (len(hybrid.items_), 8)
    assert hybrid.seen_user_factors_ is not None
    assert hybrid.seen_user_factors_.shape == (len(hybrid.users_), 8)
    # cold items were rated by no one: zero y rows, no z sum in their vectors
    cold = hybrid.items_.index_of(planted.cold)
    assert torch.equal(y[cold], torch.zeros(len(cold), 8))
    features = hybrid.factors("items", features=True)
    assert len(features) == GENRES and "bias" in features


# ---------------------------------------------------------------------- fold-in
def test_fold_in_adds_the_given_items_seen_part(planted: Planted, hybrid: BiasedMF) -> None:
    liked = [item for item, g in zip(planted.items[:N_WARM], planted.item_genre[:N_WARM],
                                     strict=True) if g == 0][:4]
    top = hybrid.recommend_new_user(liked, [5, 5, 4, 5], k=10, features={"taste": "g0"})
    genre = dict(zip(planted.items, planted.item_genre, strict=True))
    assert np.mean([genre[item] == 0 for item in top["item"]]) >= 0.8
    # the prior of fold-in is the features' vector plus |N|^-1/2 sum of the items' y
    from latentrec.models._solvers import SparseRows

    index = hybrid.items_.index_of(liked)
    matrix = hybrid._interaction_rows(index, np.full(4, 5.0), np.zeros(4, int), 1)
    seen = hybrid._seen_part(SparseRows.from_csr(matrix))
    assert y_sum_close(seen[0], hybrid.seen_item_factors_[torch.from_numpy(index)].sum(0) / 2)


def y_sum_close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.allclose(a.float(), b.float(), atol=1e-6))


# ---------------------------------------------------------------------- files and state
def test_save_load_gives_identical_answers_including_cold_ids(
        planted: Planted, hybrid: BiasedMF, tmp_path: Path) -> None:
    again = load(hybrid.save(tmp_path / "model"))
    users = np.repeat(planted.users[:20], N_COLD + 10)
    items = np.tile(np.concatenate([planted.cold, planted.items[:10]]), 20)
    assert np.array_equal(again.predict(users, items), hybrid.predict(users, items))
    assert torch.equal(again.seen_item_factors_, hybrid.seen_item_factors_)
    assert torch.equal(again.seen_user_factors_, hybrid.seen_user_factors_)
    new_user = {"items": list(planted.items[:3]), "values": [5, 2, 4], "k": 5,
                "features": {"taste": "g1"}}
    assert again.recommend_new_user(**new_user).equals(hybrid.recommend_new_user(**new_user))


def test_add_items_pads_the_seen_users_table(planted: Planted, tmp_path: Path) -> None:
    model = BiasedMF(**{**QUICK, "epochs": 3}, seen_items=True).fit(
        planted.data, item_features=planted.item_features(), show_progress=False)
    table = read_features(pd.DataFrame({"item": ["new-1"], "genre": ["g2"]}), "item")
    model.add_items(table)
    assert model.seen_item_factors_ is not None
    assert model.seen_item_factors_.shape[0] == len(model.items_)
    again = load(model.save(tmp_path / "m"))
    assert np.array_equal(again.predict(["u2"], ["new-1"]), model.predict(["u2"], ["new-1"]))
    top = again.recommend_new_user(["new-1", "i0"], [5, 4], k=3)  # a new item among the given
    assert len(top) == 3


@pytest.mark.parametrize("name", ["seen_item_factors", "seen_user_factors"])
def test_tampered_seen_tables_are_refused_in_one_line(hybrid: BiasedMF, tmp_path: Path,
                                                       name: str) -> None:
    where = hybrid.save(tmp_path / "model")
    weights = where / "weights.safetensors"
    tensors = load_file(str(weights))
    tensors[name] = tensors[name][:-1].contiguous()
    save_file(tensors, str(weights))
    (where / "manifest.json").write_text(persistence._manifest_text(where))
    with pytest.raises(ModelFileError) as error:
        load(where)
    message = str(error.value)
    assert "\n" not in message and name in message and "shape" in message


def test_a_missing_seen_table_is_refused(hybrid: BiasedMF, tmp_path: Path) -> None:
    where = hybrid.save(tmp_path / "model")
    weights = where / "weights.safetensors"
    tensors = load_file(str(weights))
    del tensors["seen_item_factors"]
    save_file(tensors, str(weights))
    (where / "manifest.json").write_text(persistence._manifest_text(where))
    with pytest.raises(ModelFileError) as error:  # the tensor list of model.json says so
        load(where)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("power", "message"), [
    (7, "seen_power is 7.0; expected a number in [0, 1]"),
    ("0.5", "seen_power is '0.5'; expected a number"),
    (None, "seen_power is None; expected a number")])
def test_a_forged_seen_power_is_refused(hybrid: BiasedMF, tmp_path: Path, power: object,
                                        message: str) -> None:
    where = hybrid.save(tmp_path / "model")
    meta = json.loads((where / "model.json").read_text())
    meta["seen_power"] = power
    (where / "model.json").write_text(json.dumps(meta))
    (where / "manifest.json").write_text(persistence._manifest_text(where))
    with pytest.raises(ModelFileError) as error:
        load(where)
    assert message in str(error.value) and "\n" not in str(error.value)


# ---------------------------------------------------------------------- refusals
@pytest.mark.parametrize(("options", "named"), [
    ({"seen_users": True}, "seen_users"),
    ({"optimizer": "adagrad"}, "optimizer='sgd'"),
    ({"optimizer": "adam"}, "optimizer='sgd'"),
    ({"blocks": 4}, "blocks=4")])
def test_the_kernel_engine_refuses_what_it_does_not_train(planted: Planted,
                                                          options: dict[str, Any],
                                                          named: str) -> None:
    with pytest.raises(InvalidParameterError, match=named) as error:
        BiasedMF(**{**KERNEL, **options}, engine="kernel").fit(
            planted.data, item_features=planted.item_features(), show_progress=False)
    assert "\n" not in str(error.value)


def test_identity_false_represents_items_by_their_genre_alone(planted: Planted) -> None:
    model = BiasedMF(**QUICK, identity=False).fit(
        planted.data, item_features=planted.item_features(), show_progress=False)
    vectors = model.factors("items").loc[list(planted.items[:N_WARM])]
    genre_vectors = model.factors("items", features=True)
    for j in range(5):  # each warm item's vector is its genre's embedding
        row = genre_vectors.loc[("genre", f"g{planted.item_genre[j]}")]
        assert np.allclose(vectors.iloc[j].to_numpy(), row.to_numpy(), atol=1e-5)


# ---------------------------------------------------------------------- the group product
@pytest.mark.parametrize("index", [[3, 7, 20], list(range(50))], ids=["rows", "whole"])
def test_group_products_match_dense_algebra(index: list[int]) -> None:
    """A batch's rows of ``X @ E`` and the gradient ``X_b^T G``, whether the batch's rows are
    multiplied alone (few rows) or the whole matrix is (most rows)."""
    import scipy.sparse as sp

    from latentrec.models._hybrid_sgd import _Design, _Product

    matrix = sp.random(50, 30, density=0.2, format="csr", dtype=np.float32,
                       random_state=np.random.default_rng(0))
    design = _Design(matrix, torch.device("cpu"))
    table = torch.randn(30, 5, generator=torch.Generator().manual_seed(0), requires_grad=True)
    rows = torch.tensor(index)
    out = _Product.apply(table, design, rows)
    weights = torch.randn(len(index), 5, generator=torch.Generator().manual_seed(1))
    (out * weights).sum().backward()
    dense = torch.from_numpy(matrix.toarray())[rows]
    assert torch.allclose(out, dense @ table.detach(), atol=1e-5)
    assert table.grad is not None
    assert torch.allclose(table.grad, dense.T @ weights, atol=1e-5)


def test_sparse_adam_is_refused_in_one_line(planted: Planted) -> None:
    with pytest.raises(InvalidParameterError, match="sparse_adam") as error:
        BiasedMF(**{**QUICK, "optimizer": "sparse_adam"}, seen_items=True).fit(
            planted.data, show_progress=False)
    assert "\n" not in str(error.value)


def test_feature_reg_defaults_to_reg_and_weighs_the_groups_alone(planted: Planted) -> None:
    params = {**QUICK, "epochs": 3, "seen_items": True}
    fits = [BiasedMF(**params, **extra).fit(planted.data, item_features=planted.item_features(),
                                            show_progress=False)
            for extra in ({}, {"feature_reg": QUICK["reg"]}, {"feature_reg": 5.0})]
    tables = [model._tensors() for model in fits]
    assert all(torch.equal(tables[0][name], tables[1][name]) for name in tables[0])
    assert not torch.equal(tables[0]["seen_item_factors"], tables[2]["seen_item_factors"])
    assert float(tables[2]["item_feature_factors"].norm()) < float(
        tables[0]["item_feature_factors"].norm())


# ---------------------------------------------------------------------- the compiled kernel
def test_sgd_hybrids_train_on_the_kernel_and_seen_users_on_minibatches(planted: Planted
                                                                        ) -> None:
    features = {"item_features": planted.item_features(),
                "user_features": planted.user_features()}

    def fit(**options: Any) -> np.ndarray:
        model = BiasedMF(**{**KERNEL, "epochs": 3}, **options).fit(
            planted.data, show_progress=False, **features)
        return np.asarray(model.predict(planted.users[:20], planted.items[:20]))

    assert np.array_equal(fit(seen_items=True), fit(seen_items=True, engine="kernel"))
    with pytest.warns(ConvergenceWarning):  # minibatch SGD learns slowly
        assert not np.array_equal(fit(seen_items=True),
                                  fit(seen_items=True, engine="minibatch"))
        assert np.array_equal(fit(seen_items=True, seen_users=True),
                              fit(seen_items=True, seen_users=True, engine="minibatch"))


def test_kernel_features_lower_the_rmse_and_predict_cold_items(planted: Planted) -> None:
    plain = BiasedMF(**KERNEL).fit(planted.data, show_progress=False)
    hybrid = BiasedMF(**KERNEL).fit(planted.data, item_features=planted.item_features(),
                                    user_features=planted.user_features(),
                                    show_progress=False)
    assert planted.test_rmse(hybrid) < planted.test_rmse(plain) - 0.1
    assert planted.cold_gap(hybrid) > 0.5


def test_kernel_seen_items_lower_the_rmse_when_the_choice_of_items_tells_the_taste() -> None:
    planted = Planted(seed=1, per_user=4, liked_share=0.75)
    params = {**KERNEL, "lr": 0.05}
    plain = BiasedMF(**params).fit(planted.data, show_progress=False)
    seen = BiasedMF(**params, seen_items=True).fit(planted.data, show_progress=False)
    assert seen.seen_item_factors_ is not None and seen.seen_user_factors_ is None
    assert planted.test_rmse(seen) < planted.test_rmse(plain) - 0.05


def test_the_kernel_and_the_minibatch_engine_learn_the_same_model(planted: Planted) -> None:
    """Two optimisers of one objective: on planted data their predictions of the held-out
    ratings and the cold items agree (each alone is within 0.35 of the ratings)."""
    features = {"item_features": planted.item_features(),
                "user_features": planted.user_features()}
    kernel = BiasedMF(**KERNEL, seen_items=True).fit(planted.data, show_progress=False,
                                                     **features)
    minibatch = BiasedMF(**QUICK, seen_items=True).fit(planted.data, show_progress=False,
                                                       **features)
    users = planted.test.users.ids_of(planted.test.user_index)
    items = planted.test.items.ids_of(planted.test.item_index)
    gap = np.asarray(kernel.predict(users, items)) - np.asarray(minibatch.predict(users, items))
    assert np.sqrt(np.mean(gap**2)) < 0.35
    assert abs(planted.cold_gap(kernel) - planted.cold_gap(minibatch)) < 0.5


def test_kernel_identity_false_leaves_featured_items_to_their_genre(planted: Planted) -> None:
    model = BiasedMF(**KERNEL, identity=False).fit(
        planted.data, item_features=planted.item_features(), show_progress=False)
    vectors = model.factors("items").loc[list(planted.items[:N_WARM])]
    genre_vectors = model.factors("items", features=True)
    for j in range(5):
        row = genre_vectors.loc[("genre", f"g{planted.item_genre[j]}")]
        assert np.allclose(vectors.iloc[j].to_numpy(), row.to_numpy(), atol=1e-5)
    assert planted.cold_gap(model) > 0.3  # planted: 2.7; without features it would be 0


def test_kernel_resumes_where_it_stopped_with_its_adagrad_sums(planted: Planted,
                                                                tmp_path: Path) -> None:
    from latentrec.training import Checkpoint, Trainer

    def fit(**trainer: Any) -> BiasedMF:
        return BiasedMF(**{**KERNEL, "epochs": 6}, seen_items=True).fit(
            planted.data, item_features=planted.item_features(),
            trainer=Trainer(show_progress=False, **trainer))

    full = fit()
    fit(callbacks=[lambda epoch, logs: epoch == 3],
        checkpoint=Checkpoint(tmp_path / "part", every=6))
    resumed = fit(resume=tmp_path / "part")
    expected, tensors = full._tensors(), resumed._tensors()
    assert [name for name in expected if not torch.equal(tensors[name], expected[name])] == []


def reference_epoch(arrays: dict[str, Any], order: np.ndarray, *, lr: float, reg: float,
                    reg_bias: float, lr_bias: float, feature_reg: float, group_lr: float,
                    flush_every: int) -> float:
    """The kernel's epoch as written in its docstring, in float64 NumPy, rating by rating."""
    a = {name: (value.astype(np.float64) if isinstance(value, np.ndarray)
                and value.dtype == np.float32 else value) for name, value in arrays.items()}
    P, Q, bu, bi = a["P"], a["Q"], a["bu"], a["bi"]
    user_design, item_design = a["U"], a["I"]
    bias_lr = group_lr * lr_bias / lr

    def adagrad_bias(bias: np.ndarray, squares: np.ndarray, c: int, grad: float,
                     penalty: float) -> None:
        squares[c] += grad**2
        step = bias_lr / np.sqrt(squares[c] + 1e-10)
        bias[c] = max(0.0, 1.0 - step * penalty) * bias[c] + step * grad

    def adagrad(rows: np.ndarray, squares: np.ndarray, c: int, grad: np.ndarray,
                penalty: float) -> None:
        squares[c] += np.mean(grad**2)
        step = group_lr / np.sqrt(squares[c] + 1e-10)
        rows[c] = max(0.0, 1.0 - step * penalty) * rows[c] + step * grad

    def item_part(i: int) -> tuple[np.ndarray, float]:
        row = item_design[i]
        part = row.toarray()[0] @ a["EI"]
        bias = sum(x * a["CI"][c] for c, x in zip(row.indices, row.data, strict=True)
                   if c < len(a["CI"]))
        return part, float(bias)

    pending: dict[int, list[Any]] = {}
    since, sse = 0, 0.0
    parts = {i: item_part(i) for i in range(Q.shape[0])}
    users = a["users"][order]
    for u in np.unique(users, return_index=True)[0][np.argsort(
            np.unique(users, return_index=True)[1])]:
        row = user_design[u]
        part = row.toarray()[0] @ a["EU"]
        part_bias = sum(x * a["CU"][c] for c, x in zip(row.indices, row.data, strict=True)
                        if c < len(a["CU"]))
        grad, bias_grad, count = np.zeros_like(part), 0.0, 0
        own_u = a["own_u"][u]
        for position in order[users == u]:
            i = a["items"][position]
            own_i = a["own_i"][i]
            pu = own_u * P[u] + part
            qi = own_i * Q[i] + parts[i][0]
            err = (a["ratings"][position] - a["mu"] - own_u * bu[u] - part_bias
                   - own_i * bi[i] - parts[i][1] - pu @ qi)
            sse += err**2
            grad += err * qi
            bias_grad += err
            count += 1
            P[u] += own_u * lr * (err * qi - reg * P[u])
            Q[i] += own_i * lr * (err * pu - reg * Q[i])
            bu[u] += own_u * lr_bias * (err - reg_bias * bu[u])
            bi[i] += own_i * lr_bias * (err - reg_bias * bi[i])
            entry = pending.setdefault(i, [np.zeros_like(part), 0.0, 0])
            entry[0] += err * pu
            entry[1] += err
            entry[2] += 1
        for c, x in zip(row.indices, row.data, strict=True):
            adagrad(a["EU"], a["SU"], c, x * grad, feature_reg * abs(x) * count)
            if c < len(a["CU"]):
                adagrad_bias(a["CU"], a["BU"], c, x * bias_grad, reg_bias * abs(x) * count)
        since += count
        if since >= flush_every or u == users[-1]:
            column_grad = np.zeros_like(a["EI"])
            column_bias, weight = np.zeros(len(a["EI"])), np.zeros(len(a["EI"]))
            for i, (g, gb, n) in pending.items():
                for c, x in zip(item_design[i].indices, item_design[i].data, strict=True):
                    column_grad[c] += x * g
                    column_bias[c] += x * gb
                    weight[c] += abs(x) * n
            for c in np.flatnonzero(weight):
                adagrad(a["EI"], a["SI"], c, column_grad[c], feature_reg * weight[c])
                if c < len(a["CI"]):
                    adagrad_bias(a["CI"], a["BI"], c, column_bias[c], reg_bias * weight[c])
            pending, since = {}, 0
            parts = {i: item_part(i) for i in range(Q.shape[0])}
    arrays.update({name: value for name, value in a.items()
                   if isinstance(value, np.ndarray) and value.dtype == np.float64})
    return sse


def test_the_kernel_epoch_is_its_documented_algorithm() -> None:
    """One epoch of the compiled kernel against :func:`reference_epoch` on a small random
    problem: users with features and seen items, items with features (biased columns first),
    one user and one item known by their features alone, flushes every 7 ratings."""
    import scipy.sparse as sp

    from latentrec.models._hybrid_kernel import hybrid_sgd_epoch

    rng = np.random.default_rng(0)
    n_users, n_items, k, n = 6, 5, 3, 24
    users = np.sort(rng.integers(0, n_users, n)).astype(np.int32)  # stored grouped by user
    users[users == 4] = 3  # user 4 has no rating
    items = rng.integers(0, n_items, n).astype(np.int32)
    users_design = sp.random(n_users, 4 + n_items, density=0.5, format="csr",
                             dtype=np.float32, random_state=rng)
    items_design = sp.random(n_items, 3, density=0.6, format="csr", dtype=np.float32,
                             random_state=rng)
    arrays: dict[str, Any] = {
        "users": users, "items": items, "ratings": rng.normal(0, 1, n).astype(np.float32),
        "P": rng.normal(0, 0.3, (n_users, k)).astype(np.float32),
        "Q": rng.normal(0, 0.3, (n_items, k)).astype(np.float32),
        "bu": rng.normal(0, 0.1, n_users).astype(np.float32),
        "bi": rng.normal(0, 0.1, n_items).astype(np.float32),
        "own_u": np.array([1, 0, 1, 1, 1, 1], np.float32),
        "own_i": np.array([1, 1, 1, 0, 1], np.float32),
        "U": users_design, "EU": rng.normal(0, 0.3, (users_design.shape[1], k)).astype(np.float32),
        "CU": rng.normal(0, 0.1, 4).astype(np.float32),
        "SU": np.zeros(users_design.shape[1], np.float32), "BU": np.zeros(4, np.float32),
        "I": items_design, "EI": rng.normal(0, 0.3, (3, k)).astype(np.float32),
        "CI": rng.normal(0, 0.1, 2).astype(np.float32), "SI": np.zeros(3, np.float32),
        "BI": np.zeros(2, np.float32),
        "mu": 0.1}
    settings = {"lr": 0.05, "reg": 0.1, "reg_bias": 0.05, "lr_bias": 0.02,
                "feature_reg": 0.2, "group_lr": 0.03, "flush_every": 7}
    rating_ptr = np.concatenate([[0], np.cumsum(np.bincount(users, minlength=n_users))])
    user_order, rotations = rng.permutation(n_users), rng.integers(0, 2**62, n_users)
    # the positions the kernel visits: users in user_order, each from its rotation on
    order = np.concatenate([
        rating_ptr[u] + (rotations[u] + np.arange(rating_ptr[u + 1] - rating_ptr[u]))
        % max(1, rating_ptr[u + 1] - rating_ptr[u]) for u in user_order])
    initial = {name: value.copy() for name, value in arrays.items()
               if isinstance(value, np.ndarray)}
    kernel = {name: value.copy() if isinstance(value, np.ndarray) else value
              for name, value in arrays.items()}
    sse = hybrid_sgd_epoch(
        rating_ptr, items, kernel["ratings"], user_order, rotations, kernel["P"], kernel["Q"],
        kernel["bu"],
        kernel["bi"], kernel["own_u"], kernel["own_i"], users_design.indptr.astype(np.int64),
        users_design.indices.astype(np.int32), users_design.data, kernel["EU"], kernel["CU"],
        kernel["SU"], kernel["BU"], items_design.indptr.astype(np.int64),
        items_design.indices.astype(np.int32), items_design.data, kernel["EI"], kernel["CI"],
        kernel["SI"], kernel["BI"], arrays["mu"], settings["lr"], settings["reg"],
        settings["reg_bias"], settings["lr_bias"], settings["feature_reg"], settings["group_lr"],
        settings["flush_every"])
    expected = reference_epoch(arrays, order, **settings)
    assert sse == pytest.approx(expected, rel=1e-4)
    for name in ("P", "Q", "bu", "bi", "EU", "CU", "SU", "BU", "EI", "CI", "SI", "BI"):
        np.testing.assert_allclose(kernel[name], arrays[name], rtol=1e-4, atol=1e-5,
                                   err_msg=name)
    for name in ("P", "Q", "EU", "CU", "EI", "CI"):  # the epoch moved every table
        assert not np.allclose(kernel[name], initial[name], atol=1e-4), name
    # the own rows of ids known by their features alone never move
    np.testing.assert_array_equal(kernel["P"][1], initial["P"][1])
    np.testing.assert_array_equal(kernel["Q"][3], initial["Q"][3])


def test_seen_users_with_minibatch_sgd_warns_how_to_train_it(planted: Planted) -> None:
    for options, why in (({"seen_users": True}, "with seen_users"),
                         ({"seen_items": True, "engine": "minibatch"},
                          "with engine='minibatch'"),
                         ({"seen_items": True, "blocks": 4}, "with blocks=4")):
        with pytest.warns(ConvergenceWarning, match="optimizer='adam'") as caught:
            BiasedMF(**{**KERNEL, "epochs": 1}, **options).fit(planted.data,
                                                               show_progress=False)
        message = str(caught[0].message)
        assert len(caught) == 1 and "\n" not in message and why in message
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        BiasedMF(**{**QUICK, "epochs": 1}, seen_users=True).fit(planted.data,
                                                                show_progress=False)
        BiasedMF(**{**KERNEL, "epochs": 1}, seen_items=True).fit(planted.data,
                                                                 show_progress=False)


@pytest.mark.parametrize("options", [{"lr": 5.0}, {"lr_bias": 100.0}, {"reg": 1e6}])
def test_a_diverging_kernel_fit_ends_in_the_one_line_error(planted: Planted,
                                                           options: dict[str, Any]) -> None:
    """(A NaN in an AdaGrad sum once made numba's fastmath division raise ZeroDivisionError.)"""
    with pytest.raises(TrainingDivergedError, match="diverged at epoch"):
        BiasedMF(**KERNEL, seen_items=True, **options).fit(
            planted.data, item_features=planted.item_features(),
            user_features=planted.user_features(), show_progress=False)


def test_kernel_feature_biases_keep_to_the_ratings_when_the_factors_start_tiny(
        planted: Planted) -> None:
    """A feature bias has AdaGrad sums of its own: a step sized by the (tiny) factor
    gradients once gave genre biases of 50 on ratings of 1 to 5."""
    model = BiasedMF(**{**KERNEL, "init_std": 1e-4}).fit(
        planted.data, item_features=planted.item_features(),
        user_features=planted.user_features(), show_progress=False)
    for side in ("users", "items"):
        assert float(model.feature_bias_[side].abs().max()) < 2.0, side


def test_a_learning_rate_decayed_to_zero_trains_on(planted: Planted) -> None:
    model = BiasedMF(**{**KERNEL, "epochs": 40, "lr_decay": 1e-9}).fit(
        planted.data, item_features=planted.item_features(), show_progress=False)
    assert np.isfinite(np.asarray(model.predict(planted.users[:5], planted.items[:5]))).all()

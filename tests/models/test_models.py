"""Model-specific behaviour of MatrixFactorization and BiasedMF."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

from latentrec import BiasedMF, Interactions, MatrixFactorization, evaluate, random_split
from latentrec.errors import ConvergenceWarning, InvalidParameterError, TrainingDivergedError


def _rmse(model: BiasedMF | MatrixFactorization, test: Interactions) -> float:
    table = evaluate(model, test, metrics=["rmse"]).set_index("metric")
    return float(table.loc["rmse", "value"])


@pytest.fixture(scope="module")
def split(planted: Interactions) -> tuple[Interactions, Interactions]:
    train, test = random_split(planted, 0.2, seed=0)
    return train, test


def test_biased_mf_learns_planted_structure(split: tuple[Interactions, Interactions]) -> None:
    train, test = split
    mean_only = float(np.sqrt(np.mean((test.values - train.values.mean()) ** 2)))
    model = BiasedMF(factors=8, epochs=30, seed=0).fit(train, show_progress=False)
    assert _rmse(model, test) < 0.8 * mean_only


def test_kernel_and_minibatch_reach_the_same_quality(
        split: tuple[Interactions, Interactions]) -> None:
    train, test = split
    # the same objective, optimised per rating in the compiled kernel and by torch minibatches
    common = {"factors": 8, "epochs": 60, "reg": 0.03, "init_std": 0.1, "lr_decay": 1.0}
    kernel = BiasedMF(engine="kernel", lr=0.02, **common)
    torch_path = BiasedMF(engine="minibatch", optimizer="adam", lr=0.01, batch_size=512,
                          **common)
    kernel_rmse = _rmse(kernel.fit(train, show_progress=False), test)
    torch_rmse = _rmse(torch_path.fit(train, show_progress=False), test)
    assert kernel_rmse < 0.6 and torch_rmse < 0.6  # the mean alone scores 1.09
    assert abs(kernel_rmse - torch_rmse) < 0.03


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "sparse_adam", "adagrad"])
def test_every_optimizer_reduces_the_loss(optimizer: str,
                                          split: tuple[Interactions, Interactions]) -> None:
    train, _ = split
    lr = {"sgd": 0.05, "adam": 0.01, "sparse_adam": 0.01, "adagrad": 0.1}[optimizer]
    model = BiasedMF(factors=4, epochs=4, engine="minibatch", optimizer=optimizer, lr=lr)
    with warnings.catch_warnings():  # plain SGD on minibatches warns that it learns slowly
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(train, show_progress=False)
    losses = [h["loss"] for h in model.history_]
    assert losses[-1] < losses[0]


def test_early_stopping_restores_the_best_epoch(split: tuple[Interactions, Interactions]) -> None:
    train, test = split
    # no regularisation and many factors: validation error turns up after a few epochs
    model = BiasedMF(factors=64, epochs=60, reg=0.0, lr=0.05, lr_decay=1.0, init_std=0.1,
                     patience=3)
    model.fit(train, valid=test, show_progress=False)
    history = model.history_
    assert len(history) < 60
    best = min(history, key=lambda h: h["valid_rmse"])
    assert best["best"] == 1.0
    assert sum(h["best"] for h in history) == 1.0
    assert _rmse(model, test) == pytest.approx(best["valid_rmse"], abs=1e-6)


def test_history_reports_validation_without_early_stopping(
        split: tuple[Interactions, Interactions]) -> None:
    train, test = split
    model = BiasedMF(factors=4, epochs=3).fit(train, valid=test, show_progress=False)
    assert [h["epoch"] for h in model.history_] == [1.0, 2.0, 3.0]
    assert all("valid_rmse" in h and "loss" in h and "seconds" in h for h in model.history_)


def test_lr_decay_changes_training(split: tuple[Interactions, Interactions]) -> None:
    train, _ = split
    plain = BiasedMF(factors=4, epochs=3).fit(train, show_progress=False)
    decayed = BiasedMF(factors=4, epochs=3, lr_decay=0.5).fit(train, show_progress=False)
    assert plain.history_[-1]["loss"] != decayed.history_[-1]["loss"]


def test_divergence_is_reported(split: tuple[Interactions, Interactions]) -> None:
    train, _ = split
    with pytest.raises(TrainingDivergedError, match="lower lr or raise reg"):
        BiasedMF(factors=8, epochs=5, lr=50.0).fit(train, show_progress=False)


def test_predictions_are_clipped_to_the_rating_scale(split: tuple[Interactions, Interactions]
                                                      ) -> None:
    train, test = split
    model = BiasedMF(factors=8, epochs=10).fit(train, show_progress=False)
    users = test.users.ids_of(test.user_index)
    items = test.items.ids_of(test.item_index)
    clipped = model.predict(users, items, on_unknown="fallback")
    low, high = train.rating_range()
    assert clipped.min() >= low and clipped.max() <= high
    raw = model.set_params(clip=False)
    assert raw.config.clip is False


def test_progress_bar_is_silent_when_asked(split: tuple[Interactions, Interactions],
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    train, _ = split
    BiasedMF(factors=4, epochs=2).fit(train, show_progress=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    # on a terminal the bar is drawn; in a log file (not a terminal) it is not
    BiasedMF(factors=4, epochs=2).fit(train, show_progress=True)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    BiasedMF(factors=4, epochs=2).fit(train, show_progress=True)
    assert "BiasedMF" in capsys.readouterr().err


def test_callbacks_see_every_epoch_and_can_stop(split: tuple[Interactions, Interactions]) -> None:
    train, _ = split
    seen: list[int] = []

    def callback(epoch: int, logs: dict[str, float]) -> bool:
        seen.append(epoch)
        return epoch == 3

    model = BiasedMF(factors=4, epochs=10).fit(train, callbacks=[callback], show_progress=False)
    assert seen == [1, 2, 3]
    assert len(model.history_) == 3


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        ({"factors": 0}, InvalidParameterError, "factors must be > 0"),
        ({"factors": "8"}, TypeError, "factors must be an integer"),
        ({"lr": -1.0}, InvalidParameterError, "lr must be > 0"),
        ({"reg": float("nan")}, InvalidParameterError, "reg must be >= 0"),
        ({"optimizer": "lbfgs"}, InvalidParameterError, "optimizer must be one of"),
        ({"engine": "magic"}, InvalidParameterError, "engine must be one of"),
        ({"seed": -1}, InvalidParameterError, "seed must be a non-negative integer"),
        ({"patience": 0}, InvalidParameterError, "patience must be > 0"),
        ({"clip": "yes"}, TypeError, "clip must be True or False"),
    ],
)
def test_bad_hyperparameters_fail_at_once(params: dict[str, object], error: type[Exception],
                                          message: str) -> None:
    with pytest.raises(error, match=message):
        BiasedMF(**params)


def test_unavailable_device_is_a_clear_error(tiny: Interactions) -> None:
    if __import__("torch").cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(InvalidParameterError, match="CUDA is not available"):
        BiasedMF(device="cuda").fit(tiny, show_progress=False)


def test_biased_mf_needs_values(checkerboard: Interactions) -> None:
    with pytest.raises(InvalidParameterError, match="no values"):
        BiasedMF().fit(checkerboard, show_progress=False)


def test_matrix_factorization_defaults_are_the_seed_notebook() -> None:
    config = MatrixFactorization().config
    assert (config.factors, config.epochs, config.lr, config.optimizer, config.batch_size,
            config.reg, config.init_std) == (5, 100, 0.01, "adam", None, 0.0, 1.0)


def test_matrix_factorization_has_no_biases(tiny: Interactions) -> None:
    model = MatrixFactorization().fit(tiny, show_progress=False)
    assert "bias" not in model.factors("users").columns
    # its fallback for unknown pairs is the training mean
    assert model.predict("nobody", "x", on_unknown="fallback") == pytest.approx(
        float(np.mean(tiny.values)))


def test_similar_users_and_factor_tables(tiny: Interactions) -> None:
    model = BiasedMF(factors=3, epochs=5).fit(tiny, show_progress=False)
    similar = model.similar_users("ann", k=2)
    assert list(similar.columns) == ["user", "similar_user", "rank", "score"]
    assert "ann" not in similar["similar_user"].tolist()
    assert (similar["score"].between(-1.0001, 1.0001)).all()
    items = model.factors("items")
    assert list(items.index) == ["w", "x", "y", "z"]
    assert list(items.columns) == ["f0", "f1", "f2", "bias"]
    with pytest.raises(InvalidParameterError, match="side must be"):
        model.factors("things")  # type: ignore[arg-type]


def test_k_validation(tiny: Interactions) -> None:
    model = BiasedMF(factors=2, epochs=2).fit(tiny, show_progress=False)
    with pytest.raises(InvalidParameterError, match="k must be >= 1"):
        model.recommend("ann", k=0)
    with pytest.raises(TypeError, match="k must be an integer"):
        model.recommend("ann", k=2.5)  # type: ignore[arg-type]
    # k larger than the catalogue: every unseen item, no error
    assert model.recommend("ann", k=100)["item"].tolist() == ["w"]


FOLDABLE = {
    "biased-mf": {"factors": 8, "epochs": 20},
    "mf": {"factors": 4, "epochs": 50, "init_std": 0.1, "lr": 0.05, "reg": 0.01},
    "als": {"factors": 8, "epochs": 5},
    "ials": {"factors": 8, "epochs": 5},
    "bpr": {"factors": 8, "epochs": 5, "batch_size": 256},
}


@pytest.mark.parametrize("kind", sorted(FOLDABLE))
def test_fold_in_recovers_a_training_user(kind: str, planted: Interactions) -> None:
    from latentrec import model_kinds

    data = planted.as_implicit() if model_kinds()[kind].feedback == "implicit" else planted
    model = model_kinds()[kind](**FOLDABLE[kind]).fit(data, show_progress=False)
    frame = planted.to_frame()
    counts = frame["user"].value_counts()
    user = counts.index[len(counts) // 2]  # a typical user, with plenty of unseen items
    history = frame[frame["user"] == user]
    values = history["rating"] if kind != "ials" else None
    fresh = model.recommend_new_user(history["item"], values, k=20)
    trained = model.recommend(user, k=20)
    overlap = len(set(fresh["item"]) & set(trained["item"]))
    assert overlap >= 10, (kind, overlap)  # the folded-in user ranks like the trained one
    assert not set(fresh["item"]) & set(history["item"])
    assert fresh["rank"].tolist() == list(range(1, 21))


def test_fold_in_rejects_bad_input(planted: Interactions) -> None:
    from latentrec import Popularity
    from latentrec.errors import UnknownIdError

    model = BiasedMF(factors=4, epochs=2).fit(planted, show_progress=False)
    with pytest.raises(UnknownIdError, match="unknown item"):
        model.recommend_new_user(["no-such-item"])
    with pytest.raises(InvalidParameterError, match="one entry per item"):
        model.recommend_new_user([1, 2], [5.0])
    with pytest.raises(InvalidParameterError, match="at least one item"):
        model.recommend_new_user([])
    popular = Popularity().fit(planted, show_progress=False)
    assert not hasattr(popular, "recommend_new_user")


def test_update_users_changes_only_those_users(planted: Interactions) -> None:
    from latentrec import ImplicitALS

    implicit = planted.as_implicit()
    model = ImplicitALS(factors=8, epochs=5).fit(implicit, show_progress=False)
    before = model.factors("users")
    frame = implicit.to_frame()
    user = frame["user"].iloc[0]
    unseen = sorted(set(frame["item"]) - set(frame.loc[frame["user"] == user, "item"]))[:5]
    update = Interactions.from_arrays([user] * 5, unseen, feedback="implicit")
    model.update_users(update)
    after = model.factors("users")
    assert not np.allclose(before.loc[user], after.loc[user])
    others = before.index != user
    assert np.array_equal(before[others].to_numpy(), after[others].to_numpy())
    assert not set(unseen) & set(model.recommend(user, k=50)["item"])  # now seen


def test_deny_list_and_recommend_all(planted: Interactions) -> None:
    model = BiasedMF(factors=4, epochs=2).fit(planted, show_progress=False)
    top = model.recommend(0, k=3)["item"].tolist()
    without = model.recommend(0, k=3, exclude=top[:2])["item"].tolist()
    assert without[0] == top[2] and not set(top[:2]) & set(without)
    everyone = model.recommend_all(k=2)
    candidates = planted.n_items - planted.user_counts()
    assert len(everyone) == int(np.minimum(2, candidates).sum())
    assert set(everyone["user"]) == set(planted.users.ids_of(np.flatnonzero(candidates > 0)))
    assert list(everyone.columns) == ["user", "item", "rank", "score"]


def test_compiled_cg_matches_the_torch_cg(planted: Interactions) -> None:
    import scipy.sparse as sp
    import torch

    from latentrec.models._als_kernels import cg_rows
    from latentrec.models._solvers import SparseRows, cg_solve

    matrix = sp.csr_matrix(planted.to_csr())
    rows = SparseRows.from_csr(matrix)
    rows.targets = rows.weights + 1.0
    generator = torch.Generator().manual_seed(0)
    items = torch.randn(planted.n_items, 6, generator=generator) * 0.1
    start = torch.randn(planted.n_users, 6, generator=generator) * 0.1
    reg = torch.full((planted.n_users, 6), 0.3)
    expected = cg_solve(rows, items, items.T @ items, reg, start, 3)
    # the kernel works in the eigenbasis of the Gram matrix
    eigenvalues, basis = torch.linalg.eigh(items.T @ items)
    compiled = start @ basis
    cg_rows(matrix.indptr, matrix.indices, matrix.data.astype(np.float32),
            (items @ basis).numpy(), torch.diag(eigenvalues).numpy(), True,
            reg[:, 0].contiguous().numpy(), compiled.numpy(), 3)
    np.testing.assert_allclose((compiled @ basis.T).numpy(), expected.numpy(), rtol=1e-3,
                               atol=1e-5)
    in_place = start.clone()
    cg_rows(matrix.indptr, matrix.indices, matrix.data.astype(np.float32), items.numpy(),
            (items.T @ items).numpy(), False, reg[:, 0].contiguous().numpy(),
            in_place.numpy(), 3)
    np.testing.assert_allclose(in_place.numpy(), expected.numpy(), rtol=1e-3, atol=1e-5)


def test_blocked_parallel_sgd_matches_serial_quality(
        split: tuple[Interactions, Interactions]) -> None:
    train, test = split
    serial = BiasedMF(factors=8, epochs=20, blocks=1).fit(train, show_progress=False)
    blocked = BiasedMF(factors=8, epochs=20, blocks=4).fit(train, show_progress=False)
    again = BiasedMF(factors=8, epochs=20, blocks=4).fit(train, show_progress=False)
    assert abs(_rmse(serial, test) - _rmse(blocked, test)) < 0.02
    assert np.array_equal(blocked.factors("users").to_numpy(),
                          again.factors("users").to_numpy())


@pytest.mark.parametrize(("n_users", "n_items"), [(40, 120), (120, 40)])
def test_ease_solves_the_same_system_with_more_items_or_more_users(n_users: int,
                                                                    n_items: int) -> None:
    from latentrec.datasets import synthetic
    from latentrec.models.ease import _regularised_gram_inverse

    data = synthetic(n_users, n_items, density=0.2, feedback="implicit", seed=3)
    matrix = data.to_csr().astype(np.float32)
    matrix.data[:] = 1.0
    gram = (matrix.T @ matrix).toarray().astype(np.float64)
    direct = np.linalg.inv(gram + 7.0 * np.eye(n_items))
    np.testing.assert_allclose(_regularised_gram_inverse(matrix, 7.0).numpy(), direct,
                               atol=1e-6, rtol=1e-4)


def test_exact_solves_agree_when_the_partner_table_is_built_in_slices(
        planted: Interactions, monkeypatch: pytest.MonkeyPatch) -> None:
    import scipy.sparse as sp
    import torch

    from latentrec.models import _solvers

    rows = _solvers.SparseRows.from_csr(sp.csr_matrix(planted.to_csr()))
    generator = torch.Generator().manual_seed(0)
    partners = torch.randn(planted.n_items, 5, generator=generator)
    reg = torch.full((planted.n_users, 5), 0.5)
    whole = _solvers.exact_solve(rows, partners, partners.T @ partners, reg)
    # a budget of 40 partners' outer products and 100 systems: the systems are summed over
    # 8 slices, in blocks of 100 rows
    monkeypatch.setattr(_solvers, "_MAX_OUTER_FLOATS", 40 * 25)
    monkeypatch.setattr(_solvers, "_MAX_SLICED_SYSTEM_FLOATS", 100 * 25)
    sliced = _solvers.exact_solve(rows, partners, partners.T @ partners, reg)
    torch.testing.assert_close(sliced, whole, rtol=1e-4, atol=1e-5)


def test_kernel_adagrad_learns_faster_than_plain_sgd_at_the_start(
        split: tuple[Interactions, Interactions]) -> None:
    train, test = split
    plain = BiasedMF(factors=8, epochs=3).fit(train, show_progress=False)
    adaptive = BiasedMF(factors=8, epochs=3, optimizer="adagrad", lr=0.2,
                        lr_decay=1.0).fit(train, show_progress=False)
    assert _rmse(adaptive, test) < _rmse(plain, test) - 0.02


def test_the_kernel_refuses_optimizers_it_does_not_implement(tiny: Interactions) -> None:
    with pytest.raises(InvalidParameterError, match="engine='kernel' supports optimizer"):
        BiasedMF(engine="kernel", optimizer="adam").fit(tiny, show_progress=False)
    # with engine="auto", Adam means PyTorch minibatches
    model = BiasedMF(optimizer="adam", epochs=2).fit(tiny, show_progress=False)
    assert len(model.history_) == 2


def test_models_warn_about_data_they_are_not_made_for(planted: Interactions) -> None:
    from latentrec import ImplicitALS
    from latentrec.errors import DataWarning

    with pytest.warns(DataWarning, match="ImplicitALS learns from implicit feedback"):
        ImplicitALS(factors=4, epochs=1).fit(planted, show_progress=False)
    counts = planted.as_implicit()
    with pytest.warns(DataWarning, match="BiasedMF predicts ratings, but this data is implicit"):
        BiasedMF(factors=4, epochs=1).fit(counts, show_progress=False)


def test_recommend_reports_what_predict_gives(planted: Interactions) -> None:
    model = BiasedMF(factors=16, epochs=30, reg=0.0, lr=0.05).fit(planted, show_progress=False)
    users = planted.users.ids_of(range(40))
    table = model.recommend(users, k=10)
    low, high = model.rating_range_ or (0.0, 0.0)
    assert table["score"].between(low, high).all()
    np.testing.assert_allclose(table["score"].to_numpy(),
                               model.predict(table["user"], table["item"]), rtol=1e-6)
    # the rule matters here: the raw ranking scores of these lists pass the rating range
    _, raw = model.top_k_indices(model.users_.index_of(users), 10)
    assert raw.max() > high

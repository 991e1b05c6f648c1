"""BayesianMF: Bayesian biased MF by Gibbs sampling, published as one factor
model."""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np
import pytest

from latentrec import BayesianMF, BiasedMF, Interactions, evaluate, load, random_split
from latentrec.datasets import synthetic
from latentrec.errors import ConvergenceWarning, InvalidParameterError
from latentrec.models import _gibbs
from latentrec.models._gibbs import GibbsTrainable, compress_factors


def _rmse(model: BiasedMF, test: Interactions) -> float:
    table = evaluate(model, test, metrics=["rmse"]).set_index("metric")
    return float(table.loc["rmse", "value"])


def _gibbs_model(**params: object) -> BayesianMF:
    settings: dict[str, object] = {"factors": 4, "epochs": 20, "burn_in": 5, "seed": 0}
    settings.update(params)
    return BayesianMF(**settings)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def split() -> tuple[Interactions, Interactions]:
    data = synthetic(300, 200, density=0.1, factors=8, seed=0)
    train, test = random_split(data, 0.2, seed=0)
    return train, test


def _predictions(model: BiasedMF | BayesianMF, test: Interactions) -> np.ndarray:
    # the index-level API: it also works while a trainable is driven by hand
    return model.score_indices(*model.to_indices(test))


def test_beats_the_mean_and_a_short_sgd_fit(split: tuple[Interactions, Interactions]) -> None:
    train, test = split
    mean_only = float(np.sqrt(np.mean((test.values - train.values.mean()) ** 2)))
    sgd = BiasedMF(factors=8, epochs=30, seed=0).fit(train, show_progress=False)
    gibbs = _gibbs_model(factors=8, epochs=80, burn_in=20).fit(train, show_progress=False)
    # measured: mean 1.100, SGD 1.031, Gibbs 0.919 (0.936 with the previous recipe)
    assert _rmse(gibbs, test) < 0.9 * mean_only
    assert _rmse(gibbs, test) <= _rmse(sgd, test)


def test_same_seed_same_model_other_seed_other_model(
        split: tuple[Interactions, Interactions]) -> None:
    train, test = split
    first = _predictions(_gibbs_model(seed=3).fit(train, show_progress=False), test)
    again = _predictions(_gibbs_model(seed=3).fit(train, show_progress=False), test)
    other = _predictions(_gibbs_model(seed=4).fit(train, show_progress=False), test)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_save_and_load_give_identical_predictions(split: tuple[Interactions, Interactions],
                                                  model_dir: Path) -> None:
    train, test = split
    model = _gibbs_model().fit(train, show_progress=False)
    again = load(model.save(model_dir))
    assert isinstance(again, BayesianMF)
    np.testing.assert_array_equal(_predictions(again, test), _predictions(model, test))


def test_history_reports_valid_rmse_of_the_published_average(
        split: tuple[Interactions, Interactions]) -> None:
    train, test = split
    # 15 kept samples x 4 factors = 60 columns <= 64: the published model is the exact average,
    # so its RMSE is the one the last sweep reported
    model = _gibbs_model(epochs=20, burn_in=5).fit(train, valid=test, show_progress=False)
    assert len(model.history_) == 20
    assert all("valid_rmse" in logs and "loss" in logs for logs in model.history_)
    assert model.user_factors_.shape[1] == 60
    assert model.history_[-1]["valid_rmse"] == pytest.approx(_rmse(model, test), abs=1e-5)


def test_published_rank_is_at_most_64(split: tuple[Interactions, Interactions]) -> None:
    train, test = split
    # 25 kept samples x 8 factors = 200 columns, compressed to the best rank-64 model
    model = _gibbs_model(factors=8, epochs=30, burn_in=5).fit(train, valid=test,
                                                              show_progress=False)
    assert model.user_factors_.shape[1] == 64 and model.item_factors_.shape[1] == 64
    assert model.history_[-1]["valid_rmse"] == pytest.approx(_rmse(model, test), abs=2e-3)


def test_recompressing_the_running_sum_keeps_the_average(
        split: tuple[Interactions, Interactions], monkeypatch: pytest.MonkeyPatch) -> None:
    train, test = split
    once = _gibbs_model(factors=8, epochs=30).fit(train, show_progress=False)
    # a small buffer forces a re-compression every 2 samples; the chain itself is unchanged
    monkeypatch.setattr(_gibbs, "_KEEP_RANK", 64)
    monkeypatch.setattr(_gibbs, "_BUFFER_COLUMNS", 16)
    squeezed = _gibbs_model(factors=8, epochs=30).fit(train, valid=test, show_progress=False)
    # measured: RMSE within 0.0002 of the exact average; predictions move by 0.009 (RMS)
    assert _rmse(squeezed, test) == pytest.approx(squeezed.history_[-1]["valid_rmse"], abs=2e-3)
    difference = _predictions(squeezed, test) - _predictions(once, test)
    assert np.sqrt(np.mean(difference**2)) < 0.03


def test_epochs_must_exceed_burn_in() -> None:
    with pytest.raises(InvalidParameterError, match="needs epochs > burn_in.*epochs=50, "
                                                    "burn_in=50"):
        _gibbs_model(epochs=50, burn_in=50)


def test_burn_in_must_be_an_integer() -> None:
    with pytest.raises(InvalidParameterError, match="burn_in must be an integer >= 0, got 2.5"):
        _gibbs_model(burn_in=2.5)


def test_gibbs_does_not_stop_early() -> None:
    with pytest.raises(InvalidParameterError, match="does not stop early"):
        _gibbs_model(patience=3)


def test_state_dict_round_trip_restores_the_published_model(
        split: tuple[Interactions, Interactions]) -> None:
    train, test = split
    model = _gibbs_model(factors=8, epochs=70, burn_in=5)
    model._remember_data(train)
    trainable = GibbsTrainable(model, train)
    for _ in range(60):  # 55 samples x 8 columns: past the first re-compression (at 384)
        trainable.train_epoch()
    assert trainable.width < 55 * 8
    snapshot = trainable.state_dict()
    trainable.publish()
    before = _predictions(model, test)
    for _ in range(3):
        trainable.train_epoch()
    trainable.load_state_dict(snapshot)
    trainable.publish()
    np.testing.assert_array_equal(_predictions(model, test), before)


def test_publish_during_burn_in_gives_the_current_sample(
        split: tuple[Interactions, Interactions]) -> None:
    train, test = split
    model = _gibbs_model(factors=4, epochs=20, burn_in=5)
    model._remember_data(train)
    trainable = GibbsTrainable(model, train)
    trainable.train_epoch()
    trainable.publish()
    assert model.user_factors_.shape == (train.n_users, 4)
    assert np.isfinite(_predictions(model, test)).all()


def test_numba_thread_count_is_restored(split: tuple[Interactions, Interactions]) -> None:
    train, _ = split
    threads = numba.get_num_threads()
    _gibbs_model(epochs=8).fit(train, show_progress=False)
    assert numba.get_num_threads() == threads


def test_compress_factors_is_exact_or_the_best_low_rank_product() -> None:
    rng = np.random.default_rng(0)
    left, right = rng.standard_normal((40, 30)), rng.standard_normal((25, 30))
    product = left @ right.T
    a, b = compress_factors(left, right, 64)
    assert a.shape == (40, 25) and b.shape == (25, 25)  # rank is bounded by the smaller side
    np.testing.assert_allclose(a @ b.T, product, atol=1e-10)
    a, b = compress_factors(left, right, 5)
    u, s, vh = np.linalg.svd(product)
    np.testing.assert_allclose(a @ b.T, (u[:, :5] * s[:5]) @ vh[:5], atol=1e-10)


def _as_format_1(directory: Path, config: dict[str, object]) -> None:
    """Rewrite a saved model's description as latentrec 0.1 wrote it (format 1)."""
    import hashlib
    import json

    meta_path = directory / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["kind"], meta["config"] = "biased-mf", config
    meta["format_version"] = 1
    weights = (directory / "weights.safetensors").read_bytes()
    meta["weights_sha256"] = hashlib.sha256(weights).hexdigest()  # format 1's only checksum
    meta_path.write_text(json.dumps(meta))
    for extra in directory.iterdir():  # a later format's manifest, if any
        if extra.name not in ("model.json", "weights.safetensors"):
            extra.unlink()


def test_old_gibbs_files_load_as_bayesian_mf(split: tuple[Interactions, Interactions],
                                             model_dir: Path) -> None:
    train, test = split
    model = _gibbs_model().fit(train, show_progress=False)
    model.save(model_dir)
    _as_format_1(model_dir, {"solver": "gibbs", "factors": 4, "epochs": 20, "burn_in": 5,
                             "seed": 0, "lr": 0.03, "reg": 0.06, "patience": None,
                             "clip": True, "device": "auto"})
    again = load(model_dir)
    assert isinstance(again, BayesianMF)
    assert again.config.burn_in == 5 and again.config.factors == 4
    # sampled before `prior` and `noise` existed: a refit runs the sampler it had
    assert again.config.prior == "normal-wishart" and again.config.noise == "shared"
    np.testing.assert_array_equal(_predictions(again, test), _predictions(model, test))


def test_old_solver_files_load_with_the_engine(split: tuple[Interactions, Interactions],
                                               model_dir: Path) -> None:
    train, test = split
    with pytest.warns(ConvergenceWarning, match="optimizer='sgd' learns slowly"):
        model = BiasedMF(factors=4, epochs=3, engine="minibatch").fit(train,
                                                                      show_progress=False)
    model.save(model_dir)
    old = {k: v for k, v in model.get_params().items() if k != "engine"}
    _as_format_1(model_dir, {**old, "solver": "minibatch", "burn_in": 25})
    again = load(model_dir)
    assert isinstance(again, BiasedMF) and again.config.engine == "minibatch"
    np.testing.assert_array_equal(_predictions(again, test), _predictions(model, test))

"""The Gibbs sampler behind BayesianMF: what it recovers from planted data, its noise model,
its hyperpriors, the compiled row kernel, and the files of models sampled before ``prior`` and
``noise`` existed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from latentrec import BayesianMF, Interactions, load
from latentrec.errors import InvalidParameterError
from latentrec.models._gibbs import (
    GibbsTrainable,
    _sample_normal_gamma,
    _sample_normal_wishart,
)
from latentrec.models._kernels import gaussian_rows

N_USERS, N_ITEMS, RANK = 240, 160, 3


def _planted(noise_sd: np.ndarray, *, density: float = 0.35, stars: bool = False,
             seed: int = 0) -> tuple[Interactions, dict[str, np.ndarray]]:
    """Continuous ratings ``3 + b_u + b_i + p_u . q_i + N(0, noise_sd[u]^2)`` on a random
    ``density`` of the pairs (every user and item present), and the truth; ``stars`` rounds
    them to whole stars 1-5."""
    rng = np.random.default_rng(seed)
    users = rng.standard_normal((N_USERS, RANK)) * 0.8
    items = rng.standard_normal((N_ITEMS, RANK)) * 0.8
    user_bias = rng.standard_normal(N_USERS) * 0.4
    item_bias = rng.standard_normal(N_ITEMS) * 0.4
    signal = 3.0 + user_bias[:, None] + item_bias[None, :] + users @ items.T
    mask = rng.random((N_USERS, N_ITEMS)) < density
    mask[np.arange(N_USERS), rng.integers(0, N_ITEMS, N_USERS)] = True
    mask[rng.integers(0, N_USERS, N_ITEMS), np.arange(N_ITEMS)] = True
    rows, cols = np.nonzero(mask)
    values = signal[rows, cols] + rng.standard_normal(len(rows)) * noise_sd[rows]
    if stars:
        values = np.clip(np.round(values), 1, 5)
    data = Interactions.from_arrays(rows, cols, values)
    return data, {"signal": signal, "mask": mask}


def _sampler(data: Interactions, sweeps: int, **params: object) -> tuple[BayesianMF,
                                                                          GibbsTrainable]:
    """A model and its sampler driven by hand for ``sweeps`` sweeps, then published."""
    settings: dict[str, object] = {"factors": RANK, "epochs": sweeps, "burn_in": sweeps // 3,
                                   "seed": 0}
    settings.update(params)
    model = BayesianMF(**settings)  # type: ignore[arg-type]
    model._remember_data(data)
    trainable = GibbsTrainable(model, data)
    for _ in range(sweeps):
        trainable.train_epoch()
    trainable.publish()
    return model, trainable


def _all_pair_scores(model: BayesianMF, data: Interactions) -> np.ndarray:
    """Predictions for every (user, item) pair, indexed by the planted ids."""
    users = model.users_.index_of(np.arange(N_USERS))
    items = model.items_.index_of(np.arange(N_ITEMS))
    grid_users, grid_items = np.meshgrid(users, items, indexing="ij")
    return model.score_indices(grid_users.ravel(), grid_items.ravel()).reshape(N_USERS, N_ITEMS)


@pytest.mark.parametrize(("prior", "noise"), [("normal-gamma", "per-user"),
                                              ("normal-wishart", "shared")])
def test_recovers_a_planted_low_rank_model(prior: str, noise: str) -> None:
    data, truth = _planted(np.full(N_USERS, 0.5))
    model, _ = _sampler(data, 60, prior=prior, noise=noise, clip=False)
    scores = _all_pair_scores(model, data)
    unseen = ~truth["mask"]
    # the pairs never rated (signal sd 1.18, noise sd 0.5; a bias-only model misses by about
    # 1.1): measured 0.19 for both settings
    error = float(np.sqrt(np.mean((scores[unseen] - truth["signal"][unseen]) ** 2)))
    assert error < 0.25


def test_shared_noise_precision_converges_to_the_planted_one() -> None:
    data, _ = _planted(np.full(N_USERS, 0.5))
    _, trainable = _sampler(data, 60, noise="shared")
    # alpha is the precision of standardised ratings; in rating units the noise sd is
    # scale / sqrt(alpha); measured 0.503 (planted 0.5, 13,446 ratings)
    noise_sd = trainable.scale / np.sqrt(trainable.alpha)
    assert noise_sd == pytest.approx(0.5, rel=0.1)
    assert np.all(trainable.user_noise == 1.0)


def test_per_user_noise_finds_the_noisy_users() -> None:
    noisy = np.arange(N_USERS) % 2 == 1
    data, truth = _planted(np.where(noisy, 1.2, 0.3))
    model, trainable = _sampler(data, 60, noise="per-user", clip=False)
    user_sd = trainable.scale / np.sqrt(trainable.alpha * trainable.user_noise)
    users = model.users_.index_of(np.arange(N_USERS))
    # measured medians 0.31 and 1.19 (planted 0.3 and 1.2)
    assert np.median(user_sd[users[~noisy]]) == pytest.approx(0.3, rel=0.25)
    assert np.median(user_sd[users[noisy]]) == pytest.approx(1.2, rel=0.25)
    # and down-weighting the noisy users' ratings recovers the signal better than one level
    shared, _ = _sampler(data, 60, noise="shared", clip=False)
    unseen = ~truth["mask"]

    def error(fitted: BayesianMF) -> float:
        return float(np.sqrt(np.mean(
            (_all_pair_scores(fitted, data)[unseen] - truth["signal"][unseen]) ** 2)))

    # measured 0.26 per-user vs 0.33 shared
    assert error(model) < error(shared) - 0.04


def test_the_same_seed_gives_the_same_chain_and_noise_levels() -> None:
    data, _ = _planted(np.full(N_USERS, 0.5), density=0.2)
    first_model, first = _sampler(data, 12)
    again_model, again = _sampler(data, 12)
    _, other = _sampler(data, 12, seed=1)
    np.testing.assert_array_equal(first.user_noise, again.user_noise)
    np.testing.assert_array_equal(first_model.user_factors_.numpy(),
                                  again_model.user_factors_.numpy())
    assert not np.array_equal(first.user_noise, other.user_noise)


def test_resuming_from_a_state_dict_continues_the_same_chain() -> None:
    data, _ = _planted(np.full(N_USERS, 0.5), density=0.2)
    model = BayesianMF(factors=RANK, epochs=20, burn_in=2)
    model._remember_data(data)
    trainable = GibbsTrainable(model, data)
    for _ in range(4):
        trainable.train_epoch()
    snapshot = trainable.state_dict()
    for _ in range(3):
        trainable.train_epoch()
    expected = trainable.user_noise.copy(), trainable.user_sample.copy()
    trainable.load_state_dict(snapshot)
    for _ in range(3):
        trainable.train_epoch()
    np.testing.assert_array_equal(trainable.user_noise, expected[0])
    np.testing.assert_array_equal(trainable.user_sample, expected[1])
    # a checkpoint from before per-user noise resumes with one shared level
    del snapshot["user_noise"]
    trainable.load_state_dict(snapshot)
    assert np.all(trainable.user_noise == 1.0)


def test_predictions_stay_in_the_rating_range_when_clipping() -> None:
    data, _ = _planted(np.full(N_USERS, 0.5), stars=True)
    low, high = data.rating_range()  # type: ignore[misc]
    assert (low, high) == (1, 5)
    clipped, _ = _sampler(data, 30)
    scores = _all_pair_scores(clipped, data)
    assert scores.min() >= low and scores.max() <= high
    unclipped, _ = _sampler(data, 30, clip=False)
    scores = _all_pair_scores(unclipped, data)
    # so the clipping above did something: measured -0.73 to 6.70 without it
    assert scores.min() < low - 0.5 and scores.max() > high + 0.5


def test_gaussian_rows_draws_from_the_weighted_conditional() -> None:
    rng = np.random.default_rng(1)
    n_rows, n_partners, dim = 5, 7, 3
    indptr = np.array([0, 3, 3, 7, 9, 12], dtype=np.int64)  # row 1 has no entries
    indices = rng.integers(0, n_partners, indptr[-1]).astype(np.int64)
    targets = rng.standard_normal(indptr[-1])
    features = rng.standard_normal((n_partners, dim))
    partner_weights = rng.uniform(0.2, 3.0, n_partners)
    row_weights = rng.uniform(0.2, 3.0, n_rows)
    prior_mean = rng.standard_normal(dim)
    root = rng.standard_normal((dim, dim))
    prior_precision = root @ root.T + dim * np.eye(dim)
    alpha = 1.7
    normals = rng.standard_normal((n_rows, dim))
    out = np.empty((n_rows, dim))
    gaussian_rows(indptr, indices, targets, features, partner_weights, row_weights,
                  prior_mean, prior_precision, alpha, normals, out)
    for row in range(n_rows):
        entries = slice(indptr[row], indptr[row + 1])
        f = features[indices[entries]]
        c = alpha * row_weights[row] * partner_weights[indices[entries]]
        precision = prior_precision + (f * c[:, None]).T @ f
        mean = np.linalg.solve(precision, (c * targets[entries]) @ f
                               + prior_precision @ prior_mean)
        chol = np.linalg.cholesky(precision)
        # the draw is mean + L^-T z with precision = L L^T, so its covariance is precision^-1
        np.testing.assert_allclose(out[row], mean + np.linalg.solve(chol.T, normals[row]),
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sample", [_sample_normal_gamma, _sample_normal_wishart])
def test_hyperpriors_concentrate_on_the_rows_mean_and_precision(sample: object) -> None:
    rng = np.random.default_rng(2)
    sd = np.array([0.5, 1.0, 2.0])
    mean = np.array([1.0, -0.5, 0.0])
    rows = mean + rng.standard_normal((20_000, 3)) * sd
    draws = [sample(rows, rng) for _ in range(20)]  # type: ignore[operator]
    means = np.mean([draw[0] for draw in draws], axis=0)
    precisions = np.mean([draw[1] for draw in draws], axis=0)
    np.testing.assert_allclose(means, mean, atol=0.03)
    np.testing.assert_allclose(np.diag(precisions), 1 / sd**2, rtol=0.05)
    assert np.abs(precisions - np.diag(np.diag(precisions))).max() < 0.05


def test_prior_and_noise_are_validated() -> None:
    with pytest.raises(InvalidParameterError, match=r"prior must be one of "
                                                    r"\['normal-gamma', 'normal-wishart'\], "
                                                    r"got 'wishart'"):
        BayesianMF(prior="wishart")
    with pytest.raises(InvalidParameterError, match=r"noise must be one of "
                                                    r"\['per-user', 'shared'\], got 'user'"):
        BayesianMF(noise="user")


def test_files_from_before_prior_and_noise_refit_with_the_old_sampler(model_dir: Path) -> None:
    data, _ = _planted(np.full(N_USERS, 0.5), density=0.2)
    model = BayesianMF(factors=RANK, epochs=6, burn_in=2).fit(data, show_progress=False)
    model.save(model_dir)
    meta_path = model_dir / "model.json"
    meta = json.loads(meta_path.read_text())
    for key in ("prior", "noise"):
        del meta["config"][key]
    meta_path.write_text(json.dumps(meta))
    _refresh_checksums(model_dir)
    again = load(model_dir)
    assert isinstance(again, BayesianMF)
    assert again.config.prior == "normal-wishart" and again.config.noise == "shared"
    np.testing.assert_array_equal(again.user_factors_.numpy(), model.user_factors_.numpy())
    # today's files keep what they say
    assert load(model.save(model_dir.parent / "new")).config.prior == "normal-gamma"


def _refresh_checksums(directory: Path) -> None:
    """Rewrite the manifest for the files as they are now (after editing model.json)."""
    from latentrec import persistence

    (directory / "manifest.json").write_text(persistence._manifest_text(directory))

"""latentrec.datasets: the synthetic generator and the MovieLens loaders.

No test touches the network: downloads go to an HTTP server on 127.0.0.1 started here, or to a
closed loopback port. Real MovieLens data comes from the shared datasets folder (``realdata``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import os
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from latentrec.data import Interactions, temporal_split
from latentrec.datasets import (
    MOVIELENS_100K_FOLDS,
    MOVIELENS_VARIANTS,
    load_movielens,
    load_movielens_100k_split,
    load_movielens_items,
    movielens,
    synthetic,
)
from latentrec.errors import DataError, InvalidParameterError

FEEDBACKS = ["explicit", "implicit"]


def arrays(data: Interactions) -> list[np.ndarray]:
    assert data.values is not None and data.timestamps is not None
    return [data.user_index, data.item_index, data.values, data.timestamps]


def pair_keys(data: Interactions) -> np.ndarray:
    keys: np.ndarray = data.user_index * data.n_items + data.item_index
    return keys


# ---------------------------------------------------------------------- synthetic: basics
@pytest.mark.parametrize("feedback", FEEDBACKS)
def test_synthetic_same_seed_gives_identical_data(feedback: str) -> None:
    first = synthetic(200, 100, density=0.1, feedback=feedback, seed=3)  # type: ignore[arg-type]
    again = synthetic(200, 100, density=0.1, feedback=feedback, seed=3)  # type: ignore[arg-type]
    for a, b in zip(arrays(first), arrays(again), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("feedback", FEEDBACKS)
def test_synthetic_different_seed_gives_different_data(feedback: str) -> None:
    first = synthetic(200, 100, density=0.1, feedback=feedback, seed=3)  # type: ignore[arg-type]
    other = synthetic(200, 100, density=0.1, feedback=feedback, seed=4)  # type: ignore[arg-type]
    assert not np.array_equal(pair_keys(first), pair_keys(other))
    assert not np.array_equal(arrays(first)[2], arrays(other)[2])


def test_synthetic_sizes_follow_density_and_n_interactions() -> None:
    data = synthetic(n_users=100, n_items=50, density=0.1)
    assert (data.n_users, data.n_items, len(data)) == (100, 50, 500)
    data = synthetic(n_users=100, n_items=50, n_interactions=321, density=0.9)
    assert len(data) == 321
    assert data.users.to_list() == list(range(100))
    assert data.items.to_list() == list(range(50))
    assert data.source == "synthetic"


@pytest.mark.parametrize("feedback", FEEDBACKS)
@pytest.mark.parametrize(
    ("n_users", "n_items", "density"),
    [(300, 200, 0.05), (40, 30, 0.9), (20, 15, 1.0), (1, 1, 1.0)],  # sparse, dense and full
)
def test_synthetic_pairs_are_distinct_and_counts_exact(
    feedback: str, n_users: int, n_items: int, density: float
) -> None:
    data = synthetic(n_users, n_items, density=density, feedback=feedback)  # type: ignore[arg-type]
    keys = pair_keys(data)
    assert len(np.unique(keys)) == len(keys) == round(n_users * n_items * density)
    counts = data.user_counts()
    assert counts.min() >= 1 and counts.max() <= n_items


def test_synthetic_ratings_are_integers_within_the_scale() -> None:
    data = synthetic(300, 100, density=0.2)
    assert data.feedback == "explicit"
    assert data.values is not None and data.values.dtype == np.float32
    assert np.array_equal(data.values, np.round(data.values))
    assert data.rating_range() == (1.0, 5.0)
    assert set(np.unique(data.values).tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    wide = synthetic(300, 100, density=0.2, rating_scale=(0, 10))
    assert wide.values is not None
    assert wide.rating_range() == (0.0, 10.0)
    assert not np.signbit(wide.values).any()  # no -0.0 after rounding


def test_synthetic_implicit_weights_are_counts() -> None:
    data = synthetic(200, 100, density=0.1, feedback="implicit")
    weights = data.weights()
    assert data.feedback == "implicit" and data.rating_range() is None
    assert weights.min() >= 1 and np.array_equal(weights, np.round(weights))
    assert weights.max() > 3  # not all ones


def test_synthetic_popularity_and_activity_are_skewed() -> None:
    data = synthetic(1000, 500)
    items, users = data.item_counts(), data.user_counts()
    assert items.max() > 10 * np.median(items)
    assert users.max() > 4 * np.median(users)
    flat = synthetic(1000, 500, user_zipf=0.0, item_zipf=0.0)
    assert flat.item_counts().max() < 2 * np.median(flat.item_counts())
    assert flat.user_counts().max() < 2 * np.median(flat.user_counts())


def test_synthetic_timestamps_increase_within_each_user_and_split_by_time() -> None:
    data = synthetic(100, 60, density=0.2)
    assert data.timestamps is not None and data.timestamps.dtype == np.int64
    same_user = data.user_index[1:] == data.user_index[:-1]
    assert (np.diff(data.timestamps)[same_user] >= 0).all()
    assert np.ptp(data.timestamps) > 86_400 * 365  # users start at different times
    train, test = temporal_split(data, 0.2)
    assert train.timestamps is not None and test.timestamps is not None
    assert train.timestamps.max() <= test.timestamps.min()


@pytest.mark.parametrize("feedback", FEEDBACKS)
def test_synthetic_without_factors_or_noise(feedback: str) -> None:
    data = synthetic(50, 40, density=0.2, factors=0, noise=0.0, feedback=feedback)  # type: ignore[arg-type]
    assert len(data) == 400


# ---------------------------------------------------------------------- synthetic: structure
def _biased_mf(
    users: np.ndarray, items: np.ndarray, ratings: np.ndarray, shape: tuple[int, int], rank: int
) -> Any:
    """Tiny ALS for mean + user bias + item bias (+ a rank-``rank`` product)."""
    n_users, n_items = shape
    rng = np.random.default_rng(0)
    user_f = rng.standard_normal((n_users, rank)) * 0.1
    item_f = rng.standard_normal((n_items, rank)) * 0.1
    user_b, item_b, mean, reg = np.zeros(n_users), np.zeros(n_items), ratings.mean(), 5.0
    for _ in range(10):
        product = (user_f[users] * item_f[items]).sum(axis=1)
        user_b = np.bincount(users, ratings - mean - item_b[items] - product, n_users) / (
            np.bincount(users, minlength=n_users) + reg
        )
        item_b = np.bincount(items, ratings - mean - user_b[users] - product, n_items) / (
            np.bincount(items, minlength=n_items) + reg
        )
        residual = ratings - mean - user_b[users] - item_b[items]
        for solve, fixed, rows, cols, n in (
            (user_f, item_f, users, items, n_users),
            (item_f, user_f, items, users, n_items),
        ):
            gram = np.zeros((n, rank, rank)) + reg * np.eye(rank)
            np.add.at(gram, rows, fixed[cols][:, :, None] * fixed[cols][:, None, :])
            rhs = np.zeros((n, rank))
            np.add.at(rhs, rows, fixed[cols] * residual[:, None])
            solve[:] = np.linalg.solve(gram, rhs[..., None])[..., 0]
    return lambda u, i: mean + user_b[u] + item_b[i] + (user_f[u] * item_f[i]).sum(axis=1)


def test_synthetic_explicit_factors_beat_biases_on_a_holdout() -> None:
    data = synthetic(300, 200, density=0.2, seed=1)
    assert data.values is not None
    test = np.random.default_rng(0).random(len(data)) < 0.2
    users, items, ratings = data.user_index, data.item_index, data.values.astype(np.float64)
    rmse = {}
    for rank in (0, 8):
        model = _biased_mf(users[~test], items[~test], ratings[~test],
                           (data.n_users, data.n_items), rank)
        error = model(users[test], items[test]) - ratings[test]
        rmse[rank] = float(np.sqrt(np.mean(error**2)))
    assert rmse[8] < rmse[0] - 0.1, rmse


def test_synthetic_implicit_factors_beat_popularity_at_top_n() -> None:
    data = synthetic(300, 200, density=0.1, feedback="implicit", seed=1)
    test = np.random.default_rng(0).random(len(data)) < 0.2
    seen = np.zeros((data.n_users, data.n_items))
    seen[data.user_index[~test], data.item_index[~test]] = 1.0
    held = np.zeros_like(seen)
    held[data.user_index[test], data.item_index[test]] = 1.0
    # weighted matrix factorisation (implicit ALS), dense because the data is tiny
    rank, reg, confidence = 8, 0.1, 1.0 + 10.0 * seen
    rng = np.random.default_rng(0)
    user_f = rng.standard_normal((data.n_users, rank)) * 0.01
    item_f = rng.standard_normal((data.n_items, rank)) * 0.01
    for _ in range(6):
        for solve, fixed, weights, targets in (
            (user_f, item_f, confidence, seen),
            (item_f, user_f, confidence.T, seen.T),
        ):
            gram = np.einsum("ui,if,ig->ufg", weights, fixed, fixed) + reg * np.eye(rank)
            solve[:] = np.linalg.solve(gram, ((weights * targets) @ fixed)[..., None])[..., 0]

    def recall_at_10(scores: np.ndarray) -> float:
        top = np.argsort(-np.where(seen > 0, -np.inf, scores), axis=1)[:, :10]
        hits, wanted = np.take_along_axis(held, top, axis=1).sum(axis=1), held.sum(axis=1)
        return float(np.mean(hits[wanted > 0] / np.minimum(wanted[wanted > 0], 10)))

    popularity = recall_at_10(np.broadcast_to(seen.sum(axis=0), seen.shape))
    factors = recall_at_10(user_f @ item_f.T)
    assert factors > 1.3 * popularity, (factors, popularity)


# ---------------------------------------------------------------------- synthetic: validation
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_users": 0}, InvalidParameterError, r"n_users must be >= 1, got 0"),
        ({"n_items": -3}, InvalidParameterError, r"n_items must be >= 1, got -3"),
        ({"n_users": 10.0}, TypeError, r"n_users must be an integer, got float"),
        ({"n_items": True}, TypeError, r"n_items must be an integer, got bool"),
        ({"density": 0.0}, InvalidParameterError, r"density must be in \(0, 1\], got 0.0"),
        ({"density": 1.5}, InvalidParameterError, r"density must be in \(0, 1\], got 1.5"),
        ({"density": "0.1"}, TypeError, r"density must be a number, got str"),
        ({"density": float("nan")}, InvalidParameterError, r"density must be finite"),
        ({"n_interactions": 0}, InvalidParameterError, r"n_interactions must be >= 1"),
        ({"n_interactions": 10**9}, InvalidParameterError,
         r"n_interactions must be at most n_users \* n_items = 500000 .*got 1000000000"),
        ({"n_interactions": 5.5}, TypeError, r"n_interactions must be an integer, got float"),
        ({"factors": -1}, InvalidParameterError, r"factors must be >= 0, got -1"),
        ({"noise": -0.1}, InvalidParameterError, r"noise must be >= 0, got -0.1"),
        ({"noise": None}, TypeError, r"noise must be a number, got NoneType"),
        ({"feedback": "ratings"}, InvalidParameterError,
         r"feedback must be one of \['explicit', 'implicit'\], got 'ratings'"),
        ({"rating_scale": (5, 1)}, InvalidParameterError, r"lowest < highest, got \(5, 1\)"),
        ({"rating_scale": (1, 1)}, InvalidParameterError, r"lowest < highest"),
        ({"rating_scale": (0.5, 5.0)}, TypeError, r"rating_scale must be a \(lowest, highest\) "
         r"pair of integers, got \(0.5, 5.0\)"),
        ({"rating_scale": 5}, TypeError, r"pair of integers, got 5"),
        ({"user_zipf": -1.0}, InvalidParameterError, r"user_zipf must be >= 0, got -1.0"),
        ({"item_zipf": float("inf")}, InvalidParameterError, r"item_zipf must be finite"),
        ({"item_zipf": 11}, InvalidParameterError, r"item_zipf must be <= 10, got 11.0"),
        ({"seed": -1}, InvalidParameterError, r"seed must be >= 0, got -1"),
        ({"seed": "0"}, TypeError, r"seed must be an integer, got str"),
    ],
)
def test_synthetic_rejects_bad_arguments(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        synthetic(**kwargs)


def test_synthetic_accepts_numpy_scalars_and_no_seed() -> None:
    data = synthetic(
        np.int64(30), np.int32(20), density=np.float64(0.2), seed=None  # type: ignore[arg-type]
    )
    assert len(data) == 120


# ---------------------------------------------------------------------- MovieLens: real data
@pytest.mark.realdata
def test_load_movielens_100k_from_the_shared_copy(datasets_dir: Path) -> None:
    data = load_movielens("100k", path=datasets_dir / "ml-100k", download=False)
    assert (len(data), data.n_users, data.n_items) == (100_000, 943, 1682)
    assert data.feedback == "explicit" and data.rating_range() == (1.0, 5.0)
    assert data.timestamps is not None
    assert (data.timestamps.min(), data.timestamps.max()) == (874724710, 893286638)
    assert data.source is not None and data.source.endswith("u.data")


@pytest.mark.realdata
def test_load_movielens_finds_the_folder_in_a_parent_or_the_cache(
    datasets_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(load_movielens(path=datasets_dir, download=False)) == 100_000
    assert len(load_movielens(cache_dir=datasets_dir, download=False)) == 100_000
    monkeypatch.setenv("LATENTREC_DATA", str(datasets_dir))
    assert len(load_movielens(download=False)) == 100_000


@pytest.mark.realdata
@pytest.mark.parametrize(("fold", "sizes"), [("u1", (80_000, 20_000)), ("ua", (90_570, 9_430))])
def test_load_movielens_100k_split_from_the_shared_copy(
    datasets_dir: Path, fold: str, sizes: tuple[int, int]
) -> None:
    train, test = load_movielens_100k_split(fold, path=datasets_dir / "ml-100k", download=False)
    assert (len(train), len(test)) == sizes
    assert train.n_users == 943
    pairs = set(zip(train.users.ids_of(train.user_index), train.items.ids_of(train.item_index),
                    strict=True))
    assert not pairs & set(zip(test.users.ids_of(test.user_index),
                               test.items.ids_of(test.item_index), strict=True))


# ---------------------------------------------------------------------- MovieLens: fakes
FAKE_RATINGS = (
    b"1\t10\t4\t881250949\n2\t10\t3\t881250950\n2\t20\t5\t881250951\n3\t30\t1\t881250952\n"
)


FLAGS = {"unknown": 0, "Action": 1, "Animation": 3, "Children's": 4, "Comedy": 5, "Drama": 8}


def u_item_line(movie: int, title: str, released: str, *genres: str) -> str:
    flags = ["0"] * 19
    for genre in genres:
        flags[FLAGS[genre]] = "1"
    return f"{movie}|{title}|{released}||http://us.imdb.com/M/x|" + "|".join(flags) + "\n"


# Latin-1, as the real u.item; ids 10, 20, 30 are those of FAKE_RATINGS
FAKE_U_ITEM = (
    u_item_line(10, "Toy Story (1995)", "01-Jan-1995", "Animation", "Children's", "Comedy")
    + u_item_line(20, "Café Society (1996) (V)", "05-Mar-1996", "Drama")
    + u_item_line(30, "unknown", "", "unknown")
).encode("latin-1")


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, content in members.items():
            bundle.writestr(name, content)
    return path


@pytest.fixture
def fake_zip(tmp_path: Path) -> Path:
    """A small zip laid out like the official ml-100k.zip."""
    served = tmp_path / "served" / "mirror"
    served.mkdir(parents=True)
    return make_zip(
        served / "ml-100k.zip",
        {
            "ml-100k/u.data": FAKE_RATINGS,
            "ml-100k/u.item": FAKE_U_ITEM,
            "ml-100k/u1.base": FAKE_RATINGS[: FAKE_RATINGS.index(b"3\t30")],
            "ml-100k/u1.test": b"3\t30\t1\t881250952\n",
        },
    )


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxies and no LATENTREC_DATA: every request goes to the loopback URL a test sets."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY", "LATENTREC_DATA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("LATENTREC_MOVIELENS_URL", "http://127.0.0.1:9/")  # nothing listens


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server(fake_zip: Path, offline: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 whose ``/mirror`` serves the fake zip."""
    handler = partial(QuietHandler, directory=str(fake_zip.parent.parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/mirror"
    monkeypatch.setenv("LATENTREC_MOVIELENS_URL", url)  # no trailing slash on purpose
    yield url
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def trust_fake_zip(fake_zip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the fake zip's checksum the expected one for 100k."""
    content = fake_zip.read_bytes()
    spec = dataclasses.replace(
        movielens._VARIANTS["100k"], size=len(content), sha256=hashlib.sha256(content).hexdigest()
    )
    monkeypatch.setitem(movielens._VARIANTS, "100k", spec)


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def test_download_with_a_wrong_checksum_is_deleted(server: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"^http://127\.0\.0\.1:\d+/mirror/ml-100k\.zip: checksum "
                       r"mismatch for ml-100k\.zip: expected sha256 50d2a982.*; the download was "
                       r"deleted"):
        load_movielens("100k", cache_dir=cache)
    assert files_under(cache) == []


def test_download_verified_then_read_from_the_cache(
    server: str, tmp_path: Path, trust_fake_zip: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    data = load_movielens("100k", cache_dir=cache)
    assert (len(data), data.n_users, data.n_items) == (4, 3, 3)
    assert data.items.to_list() == [10, 20, 30]
    assert files_under(cache) == ["ml-100k.zip", "ml-100k/u.data"]
    # offline now: the cache answers, and the verified zip gives the split files too
    monkeypatch.setenv("LATENTREC_MOVIELENS_URL", "http://127.0.0.1:9/")
    assert len(load_movielens("100k", cache_dir=cache, download=False)) == 4
    train, test = load_movielens_100k_split("u1", cache_dir=cache, download=False)
    assert (len(train), len(test)) == (3, 1)
    assert "ml-100k/u1.base" in files_under(cache)


def test_download_reports_http_errors(server: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"downloading http://127\.0\.0\.1:\d+/mirror/ml-1m\.zip "
                       r"failed \(HTTP 404 .*\); download it yourself and pass path="):
        load_movielens("1m", cache_dir=tmp_path / "cache")
    assert files_under(tmp_path / "cache") == []


def test_offline_without_a_copy_says_where_it_looked(offline: None, tmp_path: Path) -> None:
    message = (
        rf"^MovieLens ml-100k not found: no ml-100k/u\.data or ml-100k\.zip in {tmp_path}, and "
        r"downloading http://127\.0\.0\.1:9/ml-100k\.zip failed \(.+\); download it yourself "
        r"and pass path= \(--data\)"
    )
    with pytest.raises(DataError, match=message) as caught:
        load_movielens("100k", cache_dir=tmp_path)
    assert "\n" not in str(caught.value)
    assert files_under(tmp_path) == []


def test_download_false_without_a_copy(offline: None, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"ml-latest-small not found: no ml-latest-small/ratings"
                       r"\.csv or ml-latest-small\.zip in .*, and download=False; download "
                       r"http://127\.0\.0\.1:9/ml-latest-small\.zip and pass path="):
        load_movielens("latest-small", cache_dir=tmp_path, download=False)


def test_cached_zip_with_a_wrong_checksum_is_kept_and_reported(
    offline: None, fake_zip: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    fake_zip.rename(cache / "ml-100k.zip")
    with pytest.raises(DataError, match=r"ml-100k\.zip: checksum mismatch .*; delete it, or"):
        load_movielens("100k", cache_dir=cache)
    assert files_under(cache) == ["ml-100k.zip"]


@pytest.mark.parametrize("where", ["zip", "folder of the zip"])
def test_load_from_a_zip_given_as_path(offline: None, fake_zip: Path, where: str) -> None:
    path = fake_zip if where == "zip" else fake_zip.parent
    data = load_movielens("100k", path=path, download=False)
    assert len(data) == 4
    train, test = load_movielens_100k_split("u1", path=path)
    assert (len(train), len(test)) == (3, 1)
    assert files_under(fake_zip.parent) == ["ml-100k.zip"]  # extracted to a scratch folder


def test_load_from_a_folder_given_as_path(offline: None, tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n")
    for path in (folder, tmp_path):
        data = load_movielens("1m", path=path)
        assert (len(data), data.rating_range()) == (2, (3.0, 5.0))
    latest = tmp_path / "ml-latest-small"
    latest.mkdir()
    (latest / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n"
    )
    data = load_movielens("latest-small", path=latest)
    assert data.values is not None and data.values.tolist() == [4.0, 4.5]


def test_bad_paths(offline: None, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing: no such file or directory"):
        load_movielens(path=tmp_path / "missing")
    with pytest.raises(DataError, match=r"no MovieLens ml-100k data here: expected u\.data in it "
                       r"or in ml-100k/, or ml-100k\.zip"):
        load_movielens(path=tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"notes\.txt: not a zip file"):
        load_movielens(path=tmp_path / "notes.txt")
    wrong = make_zip(tmp_path / "other.zip", {"ml-1m/ratings.dat": b"1::2::3::4\n"})
    with pytest.raises(DataError, match=r"other\.zip: has no ml-100k/u\.data; expected the "
                       r"official ml-100k\.zip"):
        load_movielens(path=wrong)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: load_movielens("10m"), InvalidParameterError,
         r"variant must be one of \['100k', '1m', 'latest-small', '20m'\], got '10m'"),
        (lambda: load_movielens(100),  # type: ignore[arg-type]
         TypeError, r"variant must be a string, got int"),
        (lambda: load_movielens_100k_split("u6"), InvalidParameterError,
         r"fold must be one of \['u1', 'u2', 'u3', 'u4', 'u5', 'ua', 'ub'\], got 'u6'"),
        (lambda: load_movielens_100k_split(1),  # type: ignore[arg-type]
         TypeError, r"fold must be a string, got int"),
        (lambda: load_movielens(path=3),  # type: ignore[arg-type]
         TypeError, r"path must be a path .*got int"),
        (lambda: load_movielens(cache_dir=3),  # type: ignore[arg-type]
         TypeError, r"cache_dir must be a path .*got int"),
        (lambda: load_movielens(download="no"),  # type: ignore[arg-type]
         TypeError, r"download must be True or False"),
    ],
)
def test_movielens_rejects_bad_arguments(call: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_movielens_constants() -> None:
    assert MOVIELENS_VARIANTS == ("100k", "1m", "latest-small", "20m")
    assert MOVIELENS_100K_FOLDS == ("u1", "u2", "u3", "u4", "u5", "ua", "ub")


# ---------------------------------------------------------------------- MovieLens: movies
def test_load_movielens_items_100k_names_the_rated_movies(offline: None, fake_zip: Path) -> None:
    movies = load_movielens_items("100k", path=fake_zip, download=False)
    assert movies.index.name == "item" and movies.index.tolist() == [10, 20, 30]
    assert list(movies.columns) == ["title", "year", "genres"]
    assert movies.title.tolist() == ["Toy Story", "Café Society (1996) (V)", "unknown"]  # Latin-1
    # the title's year, else the release date's, else none
    assert movies.year.tolist() == [1995, 1996, pd.NA]
    assert movies.genres.tolist() == ["Animation|Children's|Comedy", "Drama", "unknown"]
    assert str(movies.year.dtype) == "Int64"
    ratings = load_movielens("100k", path=fake_zip, download=False)
    # the item ids of the ratings index the movies: recommendations can show titles
    titles = movies.loc[ratings.items.ids_of([0, 1, 2]), "title"].tolist()
    assert titles == ["Toy Story", "Café Society (1996) (V)", "unknown"]


def test_load_movielens_items_1m_and_latest(offline: None, tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "movies.dat").write_bytes(
        "1::Toy Story (1995)::Animation|Children's|Comedy\n"
        "2::Jumanji (1995)::Adventure|Children's|Fantasy\n"
        "3::Bélier, Le (1999)::Drama\n".encode("latin-1")
    )
    movies = load_movielens_items("1m", path=folder)
    assert movies.title.tolist() == ["Toy Story", "Jumanji", "Bélier, Le"]
    assert movies.year.tolist() == [1995, 1995, 1999]
    assert movies.genres.tolist()[1] == "Adventure|Children's|Fantasy"
    latest = tmp_path / "ml-latest-small"
    latest.mkdir()
    (latest / "movies.csv").write_text(
        "movieId,title,genres\n"
        '1,"American President, The (1995)",Comedy|Drama|Romance\n'
        "2,Babylon 5,Sci-Fi\n"
        "3,Fawlty Towers (1975\u20131979),(no genres listed)\n"
        "4,Amélie (Fabuleux destin d'Amélie Poulain  Le) (2001) ,Comedy\n",
        encoding="utf-8",
    )
    movies = load_movielens_items("latest-small", path=latest)
    assert movies.index.tolist() == [1, 2, 3, 4]
    assert movies.title.tolist() == [
        "American President, The", "Babylon 5", "Fawlty Towers",
        "Amélie (Fabuleux destin d'Amélie Poulain  Le)",
    ]
    assert movies.year.tolist() == [1995, pd.NA, 1975, 2001]
    assert movies.genres.tolist()[2] == "(no genres listed)"


def test_movie_ids_follow_the_ratings_rule_for_ids(offline: None, tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "movies.dat").write_text("01::A (1990)::Drama\n1::B (1991)::Drama\n")
    (folder / "ratings.dat").write_text("1::01::5::1\n1::1::4::2\n")
    movies = load_movielens_items("1m", path=folder)
    assert movies.index.tolist() == ["01", "1"]  # two movies, not one movie 1
    assert load_movielens("1m", path=folder).items.to_list() == ["01", "1"]


@pytest.mark.parametrize(
    ("variant", "name", "content", "message"),
    [
        ("100k", "u.item", "1|Toy Story (1995)|01-Jan-1995\n",
         r"u\.item:1: the line has 3 fields separated by '\|', expected 24$"),
        ("100k", "u.item", u_item_line(1, "A", "").replace("||http", "||http").replace(
            "|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0", "|0|0|0|0|0|0|0|0|2|0|0|0|0|0|0|0|0|0|0"),
         r"u\.item:1: column 'Drama': genre flag '2' is not 0 or 1$"),
        ("1m", "movies.dat", "1::A (1990)::Drama\n\n1::B (1991)::Drama\n",
         r"movies\.dat:3: column 'movie id': movie id 1 is repeated, first seen on line 1$"),
        ("1m", "movies.dat", "1::A (1990)\n", r"movies\.dat:1: the line has 2 fields "
         r"separated by '::', expected 3$"),
        ("1m", "movies.dat", "::A (1990)::Drama\n", r"movies\.dat:1: column 'movie id': id is "
         r"missing$"),
        ("1m", "movies.dat", "\n\n", r"movies\.dat: no movies \(the file is empty\)$"),
        ("latest-small", "movies.csv", "id,name,genres\n1,A,Drama\n",
         r"movies\.csv:1: expected the header movieId,title,genres, found 'id,name,genres'$"),
        ("latest-small", "movies.csv", "movieId,title,genres\n1,A,Drama,extra\n",
         r"movies\.csv:2: the line has 4 fields, expected 3$"),
    ],
)
def test_malformed_movie_files_give_one_line_naming_the_place(
    offline: None, tmp_path: Path, variant: str, name: str, content: str, message: str
) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=message) as info:
        load_movielens_items(variant, path=tmp_path)
    assert "\n" not in str(info.value)


def test_movies_come_from_the_verified_cache_too(
    server: str, tmp_path: Path, trust_fake_zip: None
) -> None:
    cache = tmp_path / "cache"
    assert len(load_movielens_items("100k", cache_dir=cache)) == 3
    assert files_under(cache) == ["ml-100k.zip", "ml-100k/u.item"]
    with pytest.raises(DataError, match=r"no ml-100k/u\.item or ml-100k\.zip in .*, and "
                       r"download=False"):
        load_movielens_items("100k", cache_dir=tmp_path / "empty", download=False)


def test_movies_need_their_file(offline: None, tmp_path: Path) -> None:
    (tmp_path / "u.data").write_bytes(FAKE_RATINGS)
    assert len(load_movielens(path=tmp_path)) == 4
    with pytest.raises(DataError, match=r"no MovieLens ml-100k data here: expected u\.item"):
        load_movielens_items(path=tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_as_path_is_refused_not_waited_on(offline: None, tmp_path: Path) -> None:
    fifo = tmp_path / "ml-100k.zip"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def target() -> None:
        try:
            load_movielens("100k", path=fifo)
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():
        with open(fifo, "wb"):  # let the blocked reader go
            pass
        thread.join(10)
        pytest.fail("load_movielens blocked on a named pipe")
    assert isinstance(outcome[0], DataError)
    assert str(outcome[0]) == (f"{fifo}: not a regular file or a folder; expected the official "
                               f"ml-100k.zip or a folder holding u.data")


@pytest.mark.realdata
def test_load_movielens_items_100k_from_the_shared_copy(datasets_dir: Path) -> None:
    movies = load_movielens_items("100k", path=datasets_dir / "ml-100k", download=False)
    ratings = load_movielens("100k", path=datasets_dir / "ml-100k", download=False)
    assert len(movies) == 1682 and movies.index.is_unique
    assert sorted(movies.index.tolist()) == ratings.items.to_list()
    assert movies.loc[1].tolist() == ["Toy Story", 1995, "Animation|Children's|Comedy"]
    assert movies.loc[50, "title"] == "Star Wars"
    assert movies.year.isna().sum() == 1 and pd.isna(movies.loc[267, "year"])  # "unknown"
    assert (movies.genres != "").all()
    assert movies.genres.str.split("|").explode().nunique() == 19

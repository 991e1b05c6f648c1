"""Splitters: seeded, leakage-free, with cold users and items counted and handled."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latentrec.data import (
    Interactions,
    Split,
    k_fold,
    leave_last_out,
    random_split,
    read_interactions,
    temporal_split,
    user_holdout,
)
from latentrec.errors import DataError, InvalidParameterError


@pytest.fixture
def stamped() -> Interactions:
    """60 users with 1..30 distinct items each, random ratings and (tied) timestamps."""
    rng = np.random.default_rng(7)
    users, items, stamps = [], [], []
    for user in range(60):
        count = 1 + user % 30
        users += [f"u{user}"] * count
        items += [f"i{i}" for i in rng.choice(80, size=count, replace=False)]
        stamps += rng.integers(0, 50, size=count).tolist()
    ratings = rng.integers(1, 6, size=len(users)).astype(float)
    return Interactions.from_arrays(users, items, ratings, timestamps=stamps)


def rows(data: Interactions) -> pd.DataFrame:
    return data.to_frame()


def keys(data: Interactions) -> set[tuple[object, object]]:
    frame = data.to_frame()
    return set(zip(frame.user, frame.item, strict=True))


def assert_partition(data: Interactions, split: Split) -> None:
    train, test = split
    assert not keys(train) & keys(test)
    if split.cold_rows == 0 or len(train) + len(test) == len(data):
        assert keys(train) | keys(test) == keys(data)
        assert len(train) + len(test) == len(data)
    # every row keeps its rating and timestamp
    whole = rows(data).set_index(["user", "item"])
    for part in (train, test):
        got = rows(part).set_index(["user", "item"])
        pd.testing.assert_frame_equal(got, whole.loc[got.index], check_names=False)


def test_random_split(stamped: Interactions) -> None:
    split = random_split(stamped, 0.25, seed=3)
    assert_partition(stamped, split)
    assert len(split.test) == round(0.25 * len(stamped))


def test_random_split_is_seeded(stamped: Interactions) -> None:
    first = random_split(stamped, seed=11)
    again = random_split(stamped, seed=11)
    other = random_split(stamped, seed=12)
    assert keys(first.test) == keys(again.test)
    assert keys(first.test) != keys(other.test)


def test_user_holdout_fraction_per_user(stamped: Interactions) -> None:
    split = user_holdout(stamped, 0.3, seed=5)
    assert_partition(stamped, split)
    totals = Counter(rows(stamped).user)
    held = Counter(rows(split.test).user)
    for user, count in totals.items():
        assert held.get(user, 0) == min(round(count * 0.3), count - 1)
    assert split.cold_users == 0
    assert keys(user_holdout(stamped, 0.3, seed=5).test) == keys(split.test)
    assert keys(user_holdout(stamped, 0.3, seed=6).test) != keys(split.test)


def test_leave_one_out(stamped: Interactions) -> None:
    split = user_holdout(stamped, 1, seed=0)
    assert_partition(stamped, split)
    totals = Counter(rows(stamped).user)
    held = Counter(rows(split.test).user)
    assert held == Counter({user: 1 for user, count in totals.items() if count >= 2})
    assert "u0" in split.train.users and "u0" not in split.test.users  # one row: train only


def test_leave_n_out(stamped: Interactions) -> None:
    held = Counter(rows(user_holdout(stamped, 3, seed=0).test).user)
    for user, count in Counter(rows(stamped).user).items():
        assert held.get(user, 0) == min(3, count - 1)


def test_leave_last_out_picks_the_latest(stamped: Interactions) -> None:
    split = leave_last_out(stamped, 2)
    assert_partition(stamped, split)
    test = rows(split.test)
    train_latest = rows(split.train).groupby("user").timestamp.max()
    totals = Counter(rows(stamped).user)
    assert set(test.user) == {user for user, count in totals.items() if count >= 2}
    for user, group in test.groupby("user"):
        assert len(group) == min(2, totals[user] - 1)
        assert group.timestamp.min() >= train_latest[user]


def test_leave_last_out_breaks_ties_by_file_order() -> None:
    base = 1_700_000_000
    data = Interactions.from_arrays(
        ["a", "a", "a", "b", "b"],
        ["x", "y", "z", "x", "y"],
        [1, 2, 3, 4, 5.0],
        timestamps=[base + 5, base + 5, base + 1, 10**18 + 1, 10**18],
    )
    test = rows(leave_last_out(data).test)
    assert test.to_dict("list")["item"] == ["y", "x"]  # later row of a tie; exact big times


def test_temporal_split_by_fraction(stamped: Interactions) -> None:
    split = temporal_split(stamped, 0.2)
    assert_partition(stamped, split)
    assert len(split.test) == round(0.2 * len(stamped))
    assert rows(split.test).timestamp.min() >= rows(split.train).timestamp.max()


def test_temporal_split_by_cutoff(stamped: Interactions) -> None:
    split = temporal_split(stamped, cutoff=40)
    assert_partition(stamped, split)
    assert (rows(split.test).timestamp >= 40).all()
    assert (rows(split.train).timestamp < 40).all()


def test_k_fold_test_parts_partition_the_data(stamped: Interactions) -> None:
    folds = list(k_fold(stamped, 4, seed=1))
    assert len(folds) == 4
    seen: list[tuple[object, object]] = []
    for fold in folds:
        assert_partition(stamped, fold)
        seen += sorted(keys(fold.test))
    assert len(seen) == len(set(seen)) == len(stamped)
    assert [keys(f.test) for f in k_fold(stamped, 4, seed=1)] == [keys(f.test) for f in folds]


def cold_example() -> Interactions:
    # test (by timestamp >= 10): (ann, z) has a cold item, (eve, x) a cold user,
    # (eve, q) both, (bob, y) neither
    return Interactions.from_arrays(
        ["ann", "ann", "bob", "bob", "ann", "eve", "eve", "bob"],
        ["x", "y", "x", "w", "z", "x", "q", "y"],
        [1, 2, 3, 4, 5, 1, 2, 3.0],
        timestamps=[1, 2, 3, 4, 10, 11, 12, 13],
    )


def test_cold_users_and_items_are_counted() -> None:
    split = temporal_split(cold_example(), cutoff=10)
    assert (split.cold_users, split.cold_items, split.cold_rows) == (1, 2, 3)
    assert len(split.test) == 4


def test_cold_rows_are_dropped_on_request() -> None:
    split = temporal_split(cold_example(), cutoff=10, cold="drop")
    assert (split.cold_users, split.cold_items, split.cold_rows) == (1, 2, 3)
    assert keys(split.test) == {("bob", "y")}
    assert split.test.users.to_list() == ["bob"] and split.test.items.to_list() == ["y"]
    assert len(split.train) == 4


def test_dropping_every_test_row_is_an_error() -> None:
    data = Interactions.from_arrays(["a", "b"], ["x", "y"], [1.0, 2.0], timestamps=[1, 2])
    with pytest.raises(DataError, match="^every test interaction involves a cold user or item$"):
        temporal_split(data, cutoff=2, cold="drop")


def test_empty_sides_are_errors(stamped: Interactions) -> None:
    with pytest.raises(
        DataError, match=r"^the split leaves no test interactions; the data has \d+ rows$"
    ):
        temporal_split(stamped, cutoff=10**6)
    with pytest.raises(DataError, match=r"^the split leaves no training interactions"):
        temporal_split(stamped, cutoff=-1)
    with pytest.raises(DataError, match="leaves no test interactions"):
        random_split(Interactions.from_arrays(["a", "b"], ["x", "y"]), 0.1)


def test_splitters_need_timestamps(tiny: Interactions) -> None:
    with pytest.raises(
        DataError, match="^arrays: leave_last_out needs timestamps; the data has none$"
    ):
        leave_last_out(tiny)
    with pytest.raises(
        DataError, match="^arrays: temporal_split needs timestamps; the data has none$"
    ):
        temporal_split(tiny)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda d: random_split(d, 0.0),
            InvalidParameterError,
            r"^test_size must be between 0 and 1, got 0\.0$",
        ),
        (
            lambda d: random_split(d, 1),
            InvalidParameterError,
            r"^test_size must be between 0 and 1, got 1$",
        ),
        (
            lambda d: random_split(d, "0.2"),
            TypeError,
            r"^test_size must be a number between 0 and 1, got str$",
        ),
        (
            lambda d: random_split(d, cold="warm"),
            InvalidParameterError,
            r"^cold must be 'keep' or 'drop', got 'warm'$",
        ),
        (lambda d: random_split(d, seed=-1), InvalidParameterError, r"^seed must be >= 0, got -1$"),
        (
            lambda d: random_split(d, seed=1.5),
            TypeError,
            r"^seed must be an integer or None, got float$",
        ),
        (
            lambda d: random_split(d.to_frame()),
            TypeError,
            r"^data must be Interactions, got DataFrame$",
        ),
        (
            lambda d: user_holdout(d, 0),
            InvalidParameterError,
            r"^test_size as a count must be >= 1, got 0$",
        ),
        (
            lambda d: user_holdout(d, 1.0),
            InvalidParameterError,
            r"^test_size must be between 0 and 1, got 1\.0$",
        ),
        (
            lambda d: user_holdout(d, True),
            TypeError,
            r"^test_size must be a fraction or a count, got bool$",
        ),
        (
            lambda d: user_holdout(d, None),
            TypeError,
            r"^test_size must be a fraction or a count, got NoneType$",
        ),
        (
            lambda d: user_holdout(d, cold="x"),
            InvalidParameterError,
            r"^cold must be 'keep' or 'drop'",
        ),
        (
            lambda d: leave_last_out(d, 0),
            InvalidParameterError,
            r"^n as a count must be >= 1, got 0$",
        ),
        (lambda d: leave_last_out(d, 1.5), TypeError, r"^n must be an integer, got float$"),
        (
            lambda d: leave_last_out(d, cold="x"),
            InvalidParameterError,
            r"^cold must be 'keep' or 'drop'",
        ),
        (
            lambda d: temporal_split(d, 2.0),
            InvalidParameterError,
            r"^test_size must be between 0 and 1, got 2\.0$",
        ),
        (
            lambda d: temporal_split(d, cutoff="2020"),
            TypeError,
            r"^cutoff must be a timestamp in seconds, got str$",
        ),
        (
            lambda d: temporal_split(d, cold="x"),
            InvalidParameterError,
            r"^cold must be 'keep' or 'drop'",
        ),
        (lambda d: k_fold(d, 1), InvalidParameterError, r"^k must be >= 2, got 1$"),
        (lambda d: k_fold(d, 2.0), TypeError, r"^k must be an integer, got float$"),
        (
            lambda d: k_fold(d, 10**6),
            InvalidParameterError,
            r"^k=1000000 folds need at least 1000000 interactions, got \d+$",
        ),
        (lambda d: k_fold(d, cold="x"), InvalidParameterError, r"^cold must be 'keep' or 'drop'"),
    ],
)
def test_argument_errors(stamped: Interactions, call, error, message) -> None:  # type: ignore[no-untyped-def]
    # raised at the call, before any split is made (k_fold included)
    with pytest.raises(error, match=message):
        call(stamped)


def test_split_unpacks_and_keeps_its_own_id_maps(stamped: Interactions) -> None:
    split = random_split(stamped, seed=0)
    train, test = split
    assert train is split.train and test is split.test
    assert train.n_users == len(set(rows(train).user))
    assert test.n_items == len(set(rows(test).item))


@pytest.mark.realdata
def test_movielens_splits(datasets_dir: Path) -> None:
    data = read_interactions(datasets_dir / "ml-100k" / "u.data")
    loo = user_holdout(data, 1, seed=0)
    assert (len(loo.test), loo.test.n_users, loo.cold_users) == (943, 943, 0)
    last = leave_last_out(data)
    assert len(last.test) == 943 and len(last.train) == 99_057
    latest = data.to_frame().groupby("user").timestamp.max()
    test = last.test.to_frame().set_index("user").timestamp
    assert (test == latest[test.index]).all()
    cut = temporal_split(data, 0.1)
    assert cut.test.timestamps.min() >= cut.train.timestamps.max()  # type: ignore[union-attr]
    assert cut.cold_users > 0 and cut.cold_rows > 0
    dropped = temporal_split(data, 0.1, cold="drop")
    assert len(dropped.test) == len(cut.test) - cut.cold_rows
    assert set(dropped.test.users.to_list()) <= set(dropped.train.users.to_list())
    assert set(dropped.test.items.to_list()) <= set(dropped.train.items.to_list())

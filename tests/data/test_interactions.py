"""Interactions: building from frames, arrays and sparse matrices; validation; duplicates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from latentrec.data import Interactions
from latentrec.errors import DataError, InvalidParameterError


def frame(**columns: object) -> pd.DataFrame:
    return pd.DataFrame(columns)


# ---------------------------------------------------------------------- building
def test_from_arrays_explicit(tiny: Interactions) -> None:
    assert tiny.feedback == "explicit" and tiny.is_explicit
    assert (len(tiny), tiny.n_users, tiny.n_items) == (8, 4, 4)
    assert tiny.users.to_list() == ["ann", "bob", "cat", "dan"]
    assert tiny.items.to_list() == ["w", "x", "y", "z"]
    assert tiny.rating_range() == (1.0, 5.0)
    assert tiny.values is not None and tiny.values.dtype == np.float32
    assert repr(tiny) == "Interactions(8 explicit interactions, 4 users, 4 items, from arrays)"


def test_to_csr_is_users_by_items(tiny: Interactions) -> None:
    csr = tiny.to_csr()
    assert csr.shape == (4, 4) and csr.dtype == np.float32
    ann, bob = tiny.users.index_of(["ann", "bob"])
    x, w = tiny.items.index_of(["x", "w"])
    assert csr[ann, x] == 5.0 and csr[bob, w] == 1.0 and csr[ann, w] == 0.0
    assert tiny.to_csr() is csr  # cached


def test_to_frame_round_trips(tiny: Interactions) -> None:
    table = tiny.to_frame()
    assert list(table.columns) == ["user", "item", "rating"]
    again = Interactions.from_frame(table)
    assert again.to_frame().equals(table)


def test_implicit_without_values() -> None:
    data = Interactions.from_arrays([1, 1, 2], ["a", "b", "a"])
    assert data.feedback == "implicit" and data.values is None
    assert data.weights().tolist() == [1.0, 1.0, 1.0]
    assert data.rating_range() is None
    assert list(data.to_frame().columns) == ["user", "item"]
    assert data.to_csr().toarray().tolist() == [[1.0, 1.0], [1.0, 0.0]]
    assert data.user_counts().tolist() == [2, 1] and data.item_counts().tolist() == [2, 1]


def test_implicit_with_weights() -> None:
    data = Interactions.from_arrays(["u", "v"], ["a", "a"], [3, 10], feedback="implicit")
    assert data.feedback == "implicit"
    assert list(data.to_frame().columns) == ["user", "item", "weight"]
    assert data.weights().tolist() == [3.0, 10.0]


def test_from_frame_with_named_columns_and_timestamps() -> None:
    table = frame(uid=["b", "a"], movie=[7, 8], stars=[4.5, 2], when=[200, 100])
    data = Interactions.from_frame(
        table, user_col="uid", item_col="movie", value_col="stars", timestamp_col="when"
    )
    assert data.to_frame().to_dict("list") == {
        "user": ["b", "a"],
        "item": [7, 8],
        "rating": [4.5, 2.0],
        "timestamp": [200, 100],
    }
    assert data.timestamps is not None and data.timestamps.dtype == np.int64


def test_from_frame_implicit_falls_back_when_there_is_no_rating_column() -> None:
    data = Interactions.from_frame(frame(user=[1], item=[2]), feedback="implicit")
    assert data.values is None


def test_from_frame_accepts_pandas_extension_types() -> None:
    table = frame(
        user=pd.array(["a", "b"], dtype="string"),
        item=pd.Categorical(["x", "y"]),
        rating=pd.array([3, 4], dtype="Int64"),
    )
    data = Interactions.from_frame(table)
    assert data.users.to_list() == ["a", "b"] and data.items.to_list() == ["x", "y"]


def test_integral_float_ids_become_integers() -> None:
    data = Interactions.from_frame(frame(user=[1.0, 2.0], item=[3, 4], rating=[1, 2]))
    assert data.users.to_list() == [1, 2] and data.users.is_integer


def test_text_ids_become_integers_only_when_all_spell_one() -> None:
    as_int = Interactions.from_frame(
        frame(user=["10", "-2", "9223372036854775807"], item=["a", "b", "c"], rating=[1, 2, 3])
    )
    assert as_int.users.to_list() == [-2, 10, 9223372036854775807]
    too_big = Interactions.from_frame(
        frame(user=["9223372036854775808", "1"], item=["a", "b"], rating=[1, 2])
    )
    assert too_big.users.to_list() == ["1", "9223372036854775808"]
    mixed = Interactions.from_frame(frame(user=["10", "x"], item=["a", "b"], rating=[1, 2]))
    assert mixed.users.to_list() == ["10", "x"]


@pytest.mark.parametrize("build", ["frame", "arrays", "object column", "string dtype"])
def test_distinct_spellings_of_an_id_are_never_merged(build: str) -> None:
    # "01", "1" and "001" were one user 1; "0042", "42" and "42.0" one item 42
    users, items = ["01", "1", "001"], ["0042", "42", "42.0"]
    if build == "arrays":
        data = Interactions.from_arrays(users, items, [5.0, 4.0, 3.0])
    else:
        dtype = {"frame": None, "object column": object, "string dtype": "string"}[build]
        data = Interactions.from_frame(frame(user=pd.array(users, dtype=dtype),
                                             item=pd.array(items, dtype=dtype),
                                             rating=[5.0, 4.0, 3.0]))
    assert (len(data), data.n_users, data.n_items) == (3, 3, 3)
    assert data.users.to_list() == ["001", "01", "1"]
    assert data.items.to_list() == ["0042", "42", "42.0"]
    assert not data.users.is_integer
    assert data.users.index_of(["01", "1", 1]).tolist() == [1, 2, 2]


@pytest.mark.parametrize("spelling", ["+7", "-0", " 7", "7 ", "7.0", "1e3", "\u0667"])
def test_one_non_canonical_spelling_keeps_every_id_as_text(spelling: str) -> None:
    data = Interactions.from_frame(
        frame(user=["1", "2", spelling], item=["a", "b", "c"], rating=[1, 2, 3])
    )
    assert not data.users.is_integer
    assert sorted(data.users.to_list()) == sorted(["1", "2", spelling])


def test_mixed_python_ids_keep_their_spelling() -> None:
    users = pd.Series([1, "01", 2], dtype=object)
    data = Interactions.from_frame(frame(user=users, item=["a", "a", "a"], rating=[1, 2, 3]))
    assert data.users.to_list() == ["01", "1", "2"]


def test_unsigned_ids_beyond_int64_stay_exact() -> None:
    users = np.array([2**64 - 1, 2**63, 1], dtype=np.uint64)
    data = Interactions.from_frame(frame(user=users, item=["a", "a", "a"], rating=[1, 2, 3]))
    assert data.users.to_list() == ["1", "18446744073709551615", "9223372036854775808"]


def test_floating_point_ids_too_large_to_be_exact_are_refused() -> None:
    # 2**60 and 2**60 + 1 are the same float: reading such ids would merge users
    with pytest.raises(
        DataError, match=r"^data:2: column 'user': id 1\.152921504606847e\+18 is too large to be "
        r"stored exactly as a floating-point number; store ids as integers or text$"
    ):
        Interactions.from_frame(frame(user=[1.0, 2.0**60], item=["a", "b"], rating=[1, 2]))


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("user", [[1, 2], [3]], r"^data:1: column 'user': holds a list \(\[1, 2\]\) where a "
         r"single id was expected; a column of lists must be exploded to one row per value "
         r"first$"),
        ("item", ["a", np.array([1, 2])], r"^data:2: column 'item': holds a list \(\[1, 2\]\)"),
        ("item", [("a",), ("b",)], r"^data:1: column 'item': holds a list \(\('a',\)\)"),
        ("user", [{"id": 1}, {"id": 2}], r"^data:1: column 'user': holds a dict \(\{'id': 1\}\)"),
        ("rating", [1.0, [2.0]], r"^data:2: column 'rating': holds a list \(\[2\.0\]\) where "
         r"a number was expected"),
        ("rating", [np.array([1.0]), 2.0], r"^data:1: column 'rating': holds a list"),
        ("ts", [[1], [2]], r"^data:1: column 'ts': holds a list \(\[1\]\) where a timestamp"),
        ("ts", [100, [2]], r"^data:2: column 'ts': holds a list"),
    ],
)
def test_columns_of_lists_give_one_line_naming_row_and_column(
    column: str, values: list[object], message: str
) -> None:
    columns: dict[str, object] = {"user": ["u", "v"], "item": ["a", "b"], "rating": [1.0, 2.0],
                                  "ts": [1, 2]}
    columns[column] = pd.Series(values, dtype=object)
    with pytest.raises(DataError, match=message) as info:
        Interactions.from_frame(frame(**columns), timestamp_col="ts")
    assert "\n" not in str(info.value)
    assert info.value.__cause__ is None  # no pandas exception chained to it
    assert info.value.__context__ is None or info.value.__suppress_context__


@pytest.mark.parametrize(
    ("feedback", "value", "message"),
    [
        ("explicit", 1e308, r"^arrays:2: column 'rating': value 1e\+308 is out of range; "
         r"explicit ratings must lie within ±1,000,000$"),
        ("explicit", -1e308, r"value -1e\+308 is out of range; explicit ratings must lie"),
        ("explicit", 1e39, r"value 1e\+39 is out of range"),  # beyond float32: it became inf
        ("explicit", 1_000_001.0, r"value 1000001 is out of range"),
        ("implicit", 1e10, r"^arrays:2: column 'rating': value 1e\+10 is out of range; "
         r"implicit weights must lie within 0\.\.1,000,000,000$"),
        ("explicit", np.inf, r"^arrays:2: column 'rating': value is inf, not a finite number$"),
        ("explicit", -np.inf, r"value is -inf, not a finite number$"),
        ("explicit", np.nan, r"^arrays:2: column 'rating': value is missing$"),
    ],
)
def test_values_out_of_range_are_refused_at_read_time(
    feedback: str, value: float, message: str
) -> None:
    # 1e308 used to reach training as inf ("training diverged ... lower lr")
    with pytest.raises(DataError, match=message):
        Interactions.from_arrays(["a", "b"], ["x", "x"], [4.0, value],
                                 feedback=feedback)  # type: ignore[arg-type]


def test_values_at_the_bounds_are_kept() -> None:
    data = Interactions.from_arrays(["a", "b"], ["x", "x"], [-1e6, 1e6])
    assert data.rating_range() == (-1e6, 1e6)
    weights = Interactions.from_arrays(["a", "b"], ["x", "x"], [0, 1e9], feedback="implicit")
    assert weights.values is not None and weights.values.max() == np.float32(1e9)


def test_sparse_values_out_of_range_are_refused() -> None:
    matrix = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1e308]]))
    with pytest.raises(DataError, match=r"^matrix: matrix holds 1e\+308, out of range; implicit "
                       r"weights must lie within 0\.\.1,000,000,000$"):
        Interactions.from_sparse(matrix)
    with pytest.raises(DataError, match="explicit ratings must lie within ±1,000,000$"):
        Interactions.from_sparse(matrix, feedback="explicit")


@pytest.mark.parametrize("stamp", [1e300, -1e19, np.uint64(2**63)])
def test_timestamps_out_of_range_are_refused(stamp: object) -> None:
    stamps = np.array([1, stamp], dtype=np.asarray(stamp).dtype)
    with pytest.raises(DataError, match=r"^data:2: column 'ts': value .* is out of range for a "
                       r"timestamp$"):
        stamped(stamps)


def test_from_sparse() -> None:
    matrix = sp.csr_matrix(np.array([[1, 0, 2], [0, 0, 3]], dtype=np.float64))
    data = Interactions.from_sparse(matrix, users=["a", "b"], items=["x", "y", "z"])
    assert data.feedback == "implicit"
    assert data.to_frame().to_dict("list") == {
        "user": ["a", "a", "b"],
        "item": ["x", "z", "z"],
        "weight": [1.0, 2.0, 3.0],
    }
    assert (data.to_csr() != matrix).nnz == 0


def test_from_sparse_defaults_sums_repeats_and_keeps_empty_rows() -> None:
    coo = sp.coo_array(([1.0, 2.0, 5.0], ([0, 0, 2], [1, 1, 0])), shape=(3, 2))
    data = Interactions.from_sparse(coo, feedback="explicit")
    assert data.feedback == "explicit"
    assert (data.n_users, data.n_items) == (3, 2)  # user 1 has no entries but keeps its row
    assert data.users.to_list() == [0, 1, 2]
    assert data.to_csr().toarray().tolist() == [[0.0, 3.0], [0.0, 0.0], [5.0, 0.0]]


# ---------------------------------------------------------------------- argument errors
def test_from_frame_wants_a_frame() -> None:
    with pytest.raises(TypeError, match="^frame must be a pandas DataFrame, got dict$"):
        Interactions.from_frame({"user": [1]})  # type: ignore[arg-type]


def test_bad_feedback_and_duplicates_options() -> None:
    table = frame(user=[1], item=[2], rating=[3])
    with pytest.raises(
        InvalidParameterError,
        match=r"feedback must be one of \['explicit', 'implicit'\], got 'binary'",
    ):
        Interactions.from_frame(table, feedback="binary")  # type: ignore[arg-type]
    with pytest.raises(
        InvalidParameterError,
        match=r"duplicates must be one of \['error', 'last', 'mean', 'sum'\], got 'first'",
    ):
        Interactions.from_frame(table, duplicates="first")  # type: ignore[arg-type]


def test_explicit_needs_a_value_column() -> None:
    with pytest.raises(InvalidParameterError, match="explicit feedback needs a rating column"):
        Interactions.from_frame(frame(user=[1], item=[2]), value_col=None)


def test_from_arrays_argument_errors() -> None:
    with pytest.raises(
        DataError, match="^the arrays must have the same length, got 2 users, 1 items, 2 values$"
    ):
        Interactions.from_arrays([1, 2], [1], [1.0, 2.0])
    with pytest.raises(DataError, match="got 2 users, 2 items, 1 timestamps$"):
        Interactions.from_arrays([1, 2], [1, 2], timestamps=[5])
    with pytest.raises(TypeError, match="^users must be a one-dimensional sequence, got str$"):
        Interactions.from_arrays("ab", ["x", "y"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^items must be a one-dimensional sequence, got int$"):
        Interactions.from_arrays([1], 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^values must be a one-dimensional sequence, got ndarray$"):
        Interactions.from_arrays([1], [2], np.ones((1, 1)))


def test_from_sparse_errors() -> None:
    matrix = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 2.0]]))
    with pytest.raises(TypeError, match="^matrix must be a scipy sparse matrix, got ndarray$"):
        Interactions.from_sparse(matrix.toarray())  # type: ignore[arg-type]
    with pytest.raises(DataError, match="^matrix is 2 x 2 but got 1 user ids and 2 item ids$"):
        Interactions.from_sparse(matrix, users=["a"])
    with pytest.raises(
        DataError, match=r"^matrix: no interactions \(the matrix has no stored entries\)$"
    ):
        Interactions.from_sparse(sp.csr_matrix((2, 2)))
    bad = matrix.copy()
    bad.data[0] = np.nan
    with pytest.raises(DataError, match="^matrix: matrix holds NaN or infinite values$"):
        Interactions.from_sparse(bad)
    with pytest.raises(DataError, match="^matrix: implicit weights must be >= 0"):
        Interactions.from_sparse(-matrix)
    with pytest.raises(InvalidParameterError, match="feedback must be one of"):
        Interactions.from_sparse(matrix, feedback="ratings")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- data errors
def test_missing_column() -> None:
    with pytest.raises(
        DataError,
        match=r"^data: missing column 'rating'; found columns \['user', 'item', 'score'\]$",
    ):
        Interactions.from_frame(frame(user=[1], item=[2], score=[3]))
    with pytest.raises(DataError, match=r"^data: missing column 'ts'"):
        Interactions.from_frame(frame(user=[1], item=[2], rating=[3]), timestamp_col="ts")


def test_empty_data() -> None:
    with pytest.raises(DataError, match=r"^arrays: no interactions \(the data is empty\)$"):
        Interactions.from_arrays([], [], [])


@pytest.mark.parametrize(
    ("ratings", "message"),
    [
        ([4.0, np.nan], r"^arrays:2: column 'rating': value is missing$"),
        ([np.inf, 1.0], r"^arrays:1: column 'rating': value is inf, not a finite number$"),
        ([1.0, -np.inf], r"^arrays:2: column 'rating': value is -inf, not a finite number$"),
        (["4", "abc"], r"^arrays:2: column 'rating': 'abc' is not a number$"),
        ([4, None], r"^arrays:2: column 'rating': value is missing$"),
    ],
)
def test_bad_ratings_name_row_and_column(ratings: list[object], message: str) -> None:
    with pytest.raises(DataError, match=message) as info:
        Interactions.from_arrays(["a", "b"], ["x", "x"], np.array(ratings, dtype=object))
    assert info.value.column == "rating" and info.value.source == "arrays"
    assert info.value.line == int(message.split(":")[1])


def test_line_numbers_come_from_the_caller() -> None:
    table = frame(user=["a", "b"], item=["x", "y"], rating=[1.0, np.nan])
    with pytest.raises(DataError, match=r"^ratings\.csv:41: column 'rating': value is missing$"):
        Interactions.from_frame(table, source="ratings.csv", line_numbers=np.array([40, 41]))


def test_negative_implicit_weights() -> None:
    with pytest.raises(
        DataError,
        match=r"^arrays:2: column 'rating': weight -2\.0 is negative; "
        r"implicit weights must be >= 0$",
    ):
        Interactions.from_arrays([1, 2], [1, 1], [1, -2], feedback="implicit")


@pytest.mark.parametrize(
    ("users", "message"),
    [
        ([1.0, np.nan], r"^data:2: column 'user': id is missing$"),
        ([1.5, 2.0], r"^data:1: column 'user': id 1\.5 is not an integer or a string$"),
        ([1.0, np.inf], r"^data:2: column 'user': id inf is not an integer or a string$"),
        (["a", "  "], r"^data:2: column 'user': id is empty$"),
        (["a", None], r"^data:2: column 'user': id is missing$"),
    ],
)
def test_bad_ids(users: list[object], message: str) -> None:
    with pytest.raises(DataError, match=message):
        Interactions.from_frame(frame(user=users, item=["x", "y"], rating=[1, 2]))


# ---------------------------------------------------------------------- timestamps
def stamped(stamps: object) -> Interactions:
    return Interactions.from_frame(
        frame(user=["a", "b"], item=["x", "x"], rating=[1, 2], ts=stamps), timestamp_col="ts"
    )


@pytest.mark.parametrize(
    "stamps",
    [
        [1577836800, 1609459200],
        [1577836800.0, 1609459200.0],
        ["1577836800", "1609459200"],
        ["2020-01-01", "2021-01-01T00:00:00"],
        ["2020-01-01T01:00:00+01:00", "2021-01-01 00:00:00Z"],
        pd.to_datetime(["2020-01-01", "2021-01-01"]),
        pd.to_datetime(["2020-01-01", "2021-01-01"]).tz_localize("UTC"),
        pd.to_datetime(["2020-01-01 01:00", "2021-01-01 01:00"]).tz_localize("Europe/Paris"),
    ],
)
def test_timestamps_become_epoch_seconds(stamps: object) -> None:
    assert stamped(stamps).timestamps.tolist() == [1577836800, 1609459200]  # type: ignore[union-attr]


def test_large_integer_timestamps_are_exact() -> None:
    nanos = [1_700_000_000_000_000_001, 1_700_000_000_000_000_002]
    assert stamped(nanos).timestamps.tolist() == nanos  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("stamps", "message"),
    [
        (
            ["100", "soon"],
            r"^data:2: column 'ts': 'soon' is not a timestamp \(seconds or an ISO date\)$",
        ),
        (["2020-01-01", "soon"], r"^data:2: column 'ts': 'soon' is not a timestamp"),
        (["2020-01-01", None], r"^data:2: column 'ts': value is missing$"),
        ([100.0, np.nan], r"^data:2: column 'ts': value is missing$"),
        ([100.0, np.inf], r"^data:2: column 'ts': value is inf, not a finite number$"),
        (pd.to_datetime(["2020-01-01", None]), r"^data:2: column 'ts': value is missing$"),
    ],
)
def test_bad_timestamps(stamps: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        stamped(stamps)


# ---------------------------------------------------------------------- duplicates
def repeated(**options: object) -> Interactions:
    # rows: 1 (a,x,1,t10)  2 (b,x,4,t5)  3 (a,x,3,t30)  4 (a,y,2,t1)  5 (a,x,5,t20)
    return Interactions.from_arrays(
        ["a", "b", "a", "a", "a"],
        ["x", "x", "x", "y", "x"],
        [1.0, 4.0, 3.0, 2.0, 5.0],
        timestamps=[10, 5, 30, 1, 20],
        **options,  # type: ignore[arg-type]
    )


def test_duplicates_raise_by_default_naming_both_lines() -> None:
    with pytest.raises(
        DataError,
        match=r"^arrays:3: duplicate \(user, item\) pair \('a', 'x'\), first seen on line 1; "
        r"pass duplicates='last', 'mean' or 'sum' \(--duplicates\) to combine repeats$",
    ) as info:
        repeated()
    assert info.value.line == 3


def test_duplicate_integer_ids_are_shown_plainly() -> None:
    with pytest.raises(DataError, match=r"pair \(308, 12\), first seen on line 1"):
        Interactions.from_arrays([308, 308], [12, 12], [4.0, 4.0])


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        # the kept row stands where the group first (mean, sum) or last (last) appeared
        (
            "last",
            {
                "user": ["b", "a", "a"],
                "item": ["x", "y", "x"],
                "rating": [4.0, 2.0, 5.0],
                "timestamp": [5, 1, 20],
            },
        ),
        (
            "mean",
            {
                "user": ["a", "b", "a"],
                "item": ["x", "x", "y"],
                "rating": [3.0, 4.0, 2.0],
                "timestamp": [30, 5, 1],
            },
        ),
        (
            "sum",
            {
                "user": ["a", "b", "a"],
                "item": ["x", "x", "y"],
                "rating": [9.0, 4.0, 2.0],
                "timestamp": [30, 5, 1],
            },
        ),
    ],
)
def test_duplicate_policies(policy: str, expected: dict[str, list[object]]) -> None:
    data = repeated(duplicates=policy)
    assert data.to_frame().to_dict("list") == expected


def test_duplicate_policies_without_values() -> None:
    users, items = ["a", "a", "b", "a"], ["x", "x", "x", "x"]
    summed = Interactions.from_arrays(users, items, duplicates="sum")
    assert summed.to_frame().to_dict("list") == {
        "user": ["a", "b"],
        "item": ["x", "x"],
        "weight": [3.0, 1.0],
    }
    for policy in ("last", "mean"):
        kept = Interactions.from_arrays(users, items, duplicates=policy)  # type: ignore[arg-type]
        assert kept.values is None and len(kept) == 2


def test_mean_of_many_groups_is_vectorised_correctly(rng: np.random.Generator) -> None:
    users = rng.integers(0, 30, 2000)
    items = rng.integers(0, 20, 2000)
    ratings = rng.integers(1, 6, 2000).astype(np.float64)
    data = Interactions.from_arrays(users, items, ratings, duplicates="mean")
    expected = pd.DataFrame({"u": users, "i": items, "r": ratings}).groupby(["u", "i"]).r.mean()
    got = data.to_frame().set_index(["user", "item"]).rating.sort_index()
    assert len(data) == len(expected)
    np.testing.assert_allclose(got.to_numpy(), expected.sort_index().to_numpy(), rtol=1e-6)


# ---------------------------------------------------------------------- views
def test_take_compacts_the_id_maps(tiny: Interactions) -> None:
    rows = tiny.to_frame().user.isin(["ann", "dan"]).to_numpy()
    part = tiny.take(rows)
    assert part.users.to_list() == ["ann", "dan"]
    assert part.items.to_list() == ["x", "y", "z"]
    assert part.to_frame().equals(tiny.to_frame()[rows].reset_index(drop=True))
    whole_maps = tiny.take(np.flatnonzero(rows), compact=False)
    assert whole_maps.n_users == 4 and len(whole_maps) == 4


def test_as_implicit(tiny: Interactions) -> None:
    liked = tiny.as_implicit(min_value=4.0)
    assert liked.feedback == "implicit"
    assert sorted(zip(liked.to_frame().user, liked.to_frame().item, strict=True)) == [
        ("ann", "x"),
        ("ann", "z"),
        ("bob", "x"),
        ("cat", "w"),
    ]
    assert len(tiny.as_implicit()) == len(tiny)

"""IdMap: raw ids (str or int) to contiguous indices and back."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from latentrec.data import IdMap
from latentrec.data.ids import canonical_int, factorize, parse_canonical_int64
from latentrec.errors import DataError, InvalidParameterError, UnknownIdError


@pytest.mark.parametrize(
    "raw",
    [
        ["alice", "bob", "carol"],
        [42, 7, 1000],
        np.array([3, 1, 2], dtype=np.int32),
        np.array([3, 1, 2], dtype=np.uint16),
        pd.Index(["x", "y"]),
        ("t1", "t2"),
    ],
)
def test_round_trip(raw: object) -> None:
    ids = IdMap(raw, name="users")  # type: ignore[arg-type]
    expected = list(raw)  # type: ignore[call-overload]
    index = ids.index_of(expected)
    assert index.tolist() == list(range(len(expected)))
    assert ids.ids_of(index).tolist() == [x.item() if hasattr(x, "item") else x for x in expected]
    for position, raw_id in enumerate(expected):
        assert raw_id in ids
        assert ids.index_of(raw_id).tolist() == [position]


def test_integer_ids_stay_integers_and_text_finds_them() -> None:
    ids = IdMap([42, 7], name="items")
    assert ids.is_integer
    # text finds an integer id by its own spelling; numbers find it by value
    assert ids.index_of(["42", "7", np.int64(42), 7.0, np.uint8(7)]).tolist() == [0, 1, 0, 1, 1]
    assert "42" in ids and 42 in ids and "x" not in ids
    values = ids.to_list()
    assert values == [42, 7] and all(type(v) is int for v in values)
    assert json.dumps(values) == "[42, 7]"


@pytest.mark.parametrize(
    "spelling", ["042", "0042", "+42", "42.0", " 42", "42 ", "4_2", "\u0664\u0662", "42e0", "-0"]
)
def test_text_finds_an_integer_id_only_by_its_canonical_spelling(spelling: str) -> None:
    # a data set of text ids may hold "042" and "42" as two ids: neither may stand for the other
    ids = IdMap([42, 0], name="items")
    assert ids.index_of([spelling], on_unknown="ignore").tolist() == [-1]
    assert spelling not in ids
    assert ids.canonical([spelling, "42", "0"]) == [spelling, 42, 0]
    with pytest.raises(UnknownIdError, match="unknown item: "):
        ids.index_of([spelling])


def test_lookups_in_a_list_of_mixed_types_keep_each_value_as_it_is() -> None:
    # numpy would turn [42.0, "x"] into the strings "42.0" and "x"
    ids = IdMap([42, 7], name="items")
    assert ids.index_of([42.0, "x", 7, True, None, "7"], on_unknown="ignore").tolist() == [
        0, -1, 1, -1, -1, 1,
    ]


def test_parse_canonical_int64() -> None:
    text = pd.Series(["42", "-7", "0", "9223372036854775807", "-9223372036854775808",
                      "9223372036854775808", "042", "+42", "42.0", "-0", " 42", "x", None],
                     dtype=object)
    numbers, valid = parse_canonical_int64(text)
    assert valid.tolist() == [True] * 5 + [False] * 8
    assert numbers[:5].tolist() == [42, -7, 0, 2**63 - 1, -(2**63)]
    assert [canonical_int(t) for t in ("42", "042", "-0", "1\u0661", "99999999999999999999")] == [
        42, None, None, None, None,
    ]


def test_unsigned_ids_beyond_int64_do_not_wrap_around() -> None:
    huge = np.array([2**64 - 1, 1], dtype=np.uint64)
    ids = IdMap(huge, name="users")
    assert ids.to_list() == ["18446744073709551615", "1"]  # not -1 and 1
    small = IdMap([-1, 1], name="users")
    assert small.index_of(huge, on_unknown="ignore").tolist() == [-1, 1]


def test_string_ids_compare_by_text() -> None:
    ids = IdMap(["1", "b"], name="users")
    assert not ids.is_integer
    assert ids.index_of([1, "1", "b"]).tolist() == [0, 0, 1]
    assert all(type(v) is str for v in ids.to_list())


def test_mixed_ids_become_text() -> None:
    ids = IdMap(["a", 1], name="users")
    assert ids.to_list() == ["a", "1"]
    assert ids.index_of([1, "1"]).tolist() == [1, 1]


def test_unknown_ids_raise_naming_the_side_and_the_ids() -> None:
    users = IdMap(["ann", "bob"], name="users")
    with pytest.raises(UnknownIdError, match=r"^unknown user: 'zed' \(not in the training data"):
        users.index_of(["ann", "zed"])
    with pytest.raises(
        UnknownIdError, match=r"unknown users: 'a', 'b', 'c', 'd', 'e' and 2 more"
    ) as info:
        users.index_of(list("abcdefg"))
    assert info.value.side == "users"
    assert info.value.ids == list("abcde")
    assert isinstance(info.value, KeyError)
    assert "\n" not in str(info.value)


def test_unknown_ids_map_to_minus_one_on_request() -> None:
    items = IdMap([10, 20], name="items")
    got = items.index_of([20, "nope", 30, None, True, 1.5, "20"], on_unknown="ignore")
    assert got.tolist() == [1, -1, -1, -1, -1, -1, 1]


def test_lookup_of_odd_text_in_an_integer_map_is_quiet_and_exact() -> None:
    # neither a RuntimeWarning from a float cast nor a match on a sentinel value
    ids = IdMap([-(2**62), 5, 2**62], name="items")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = ids.index_of(
            ["99999999999999999999", "x", "", "1e5", "inf", np.nan, str(2**62)],
            on_unknown="ignore",
        )
    assert got.tolist() == [-1, -1, -1, -1, -1, -1, 2]
    assert ids.index_of(np.array([np.inf, 5.0]), on_unknown="ignore").tolist() == [-1, 1]


def test_on_unknown_must_be_known() -> None:
    with pytest.raises(
        InvalidParameterError, match=r"on_unknown must be 'raise' or 'ignore', got 'skip'"
    ):
        IdMap(["a"]).index_of(["a"], on_unknown="skip")  # type: ignore[arg-type]


def test_empty_lookup_and_empty_map() -> None:
    assert IdMap(["a"]).index_of([]).dtype == np.int64
    empty = IdMap([], name="users")
    assert len(empty) == 0 and empty.to_list() == []
    assert empty.index_of(["a"], on_unknown="ignore").tolist() == [-1]
    with pytest.raises(UnknownIdError, match="unknown user: 'a'"):
        empty.index_of(["a"])


@pytest.mark.parametrize("index", [-1, 2, 99])
def test_ids_of_rejects_indices_out_of_range(index: int) -> None:
    # -1 is what on_unknown="ignore" returns: it must not wrap around to the last id
    with pytest.raises(IndexError, match=rf"index {index} is out of range for 2 users"):
        IdMap(["a", "b"], name="users").ids_of([0, index])


def test_floating_point_ids_are_refused() -> None:
    with pytest.raises(
        DataError, match="^users must be integers or strings, got floating-point ids$"
    ):
        IdMap([1.5, 2.0], name="users")


def test_repeated_ids_are_refused() -> None:
    with pytest.raises(DataError, match=r"^items must be unique; repeated: \['x'\]$"):
        IdMap(["x", "y", "x"], name="items")


@pytest.mark.parametrize("bad", ["abc", b"abc", 5, None])
def test_ids_must_be_a_sequence(bad: object) -> None:
    with pytest.raises(TypeError, match="users must be a sequence of ids, got"):
        IdMap(bad, name="users")  # type: ignore[arg-type]


def test_from_list_round_trips_json() -> None:
    for raw in ([3, 1, 2], ["b", "a"], []):
        ids = IdMap.from_list(raw, name="users")
        assert IdMap.from_list(json.loads(json.dumps(ids.to_list())), name="users") == ids
    assert IdMap.from_list([1, "a"], name="items").to_list() == ["1", "a"]


@pytest.mark.parametrize("bad", [[1.5], [True, False], [None]])
def test_from_list_refuses_other_types(bad: list[object]) -> None:
    with pytest.raises(DataError, match="^users must be a list of integers or strings$"):
        IdMap.from_list(bad, name="users")


def test_subset_equality_and_repr() -> None:
    ids = IdMap(["a", "b", "c"], name="items")
    assert ids.subset(np.array([2, 0])).to_list() == ["c", "a"]
    assert ids == IdMap(["a", "b", "c"], name="items")
    assert ids != IdMap(["a", "b"], name="items")
    assert ids != ["a", "b", "c"]
    assert hash(ids) == hash(IdMap(["a", "b", "c"], name="items"))
    assert repr(ids) == "IdMap(3 items)"
    assert len(ids) == 3


def test_factorize_sorts_the_vocabulary() -> None:
    codes, ids = factorize(np.array(["b", "a", "b", "c"], dtype=object), name="users")
    assert ids.to_list() == ["a", "b", "c"]
    assert codes.tolist() == [1, 0, 1, 2]
    codes, ids = factorize(np.array([30, 10, 20, 10]), name="items")
    assert ids.to_list() == [10, 20, 30] and codes.tolist() == [2, 0, 1, 0]

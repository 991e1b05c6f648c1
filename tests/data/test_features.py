"""Feature tables: read_features, Features (fit, matrix, update, JSON) and the loaders of the
MovieLens 100K and Last.fm side features."""

from __future__ import annotations

import doctest
import gzip
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import latentrec
from latentrec.data import Features, IdMap, Interactions, read_features
from latentrec.data import features as features_module
from latentrec.datasets import (
    load_lastfm_tags,
    load_movielens_100k_features,
    load_movielens_100k_split,
)
from latentrec.errors import DataError, DataWarning, InvalidParameterError, NotFittedError


def write(path: Path, text: str | bytes) -> Path:
    data = text.encode("utf-8") if isinstance(text, str) else text
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)
    return path


def error_text(error: pytest.ExceptionInfo[BaseException]) -> str:
    """The message, checked to be one line with no chained pandas exception."""
    text = str(error.value)
    assert "\n" not in text
    assert error.value.__cause__ is None
    assert error.value.__context__ is None or error.value.__suppress_context__
    return text


def dense(features: Features, ids: Any = None) -> list[list[float]]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        matrix = features.matrix(ids, dtype=np.float64)
    return [[round(x, 6) for x in row] for row in matrix.toarray().tolist()]


def same(a: sp.csr_matrix, b: sp.csr_matrix) -> bool:
    return a.shape == b.shape and abs(a - b).nnz == 0 and a.dtype == b.dtype


def labels(features: Features) -> list[tuple[str, Any]]:
    return [(f, v) for f, v in features.columns()[["feature", "value"]].itertuples(index=False)]


MOVIES = pd.DataFrame({
    "item": ["m1", "m2", "m3", "m4"],
    "genre": ["Action|Comedy", "Drama", "Comedy | Drama|", None],
    "country": ["US", "FR", "US", "DE"],
    "year": [1990, 1995, 2000, np.nan],
})


# ---------------------------------------------------------------------- kinds and inference
def test_inferred_kinds_follow_the_documented_rule() -> None:
    table = pd.DataFrame({
        "id": [1, 2, 3],
        "count": [3, 4, 5],                      # integers: numeric
        "price": [1.5, np.nan, 2.0],             # floats: numeric
        "flag": [True, False, True],             # booleans: categorical
        "genre": ["a|b", "c", "a"],              # text with the separator: multi
        "color": ["red", "blue", "red"],         # text: categorical
        "codes": ["10", "20", None],             # text that all parses as numbers: numeric
        "listed": [["x", "y"], [], ["x"]],       # lists: multi
        "weighted": [{"rock": 2}, {}, None],     # dicts: tags
    })
    assert read_features(table, "id").kinds == {
        "count": "numeric", "price": "numeric", "flag": "categorical", "genre": "multi",
        "color": "categorical", "codes": "numeric", "listed": "multi", "weighted": "tags",
    }


def test_declared_kinds_override_inference(tmp_path: Path) -> None:
    path = write(tmp_path / "users.csv", "user,zip,genre,year\n1,01234,a|b,1990\n2,55105,c,1991\n")
    features = read_features(path, "user", categorical=["zip", "year"], tags="genre")
    assert features.kinds == {"zip": "categorical", "genre": "tags", "year": "categorical"}
    # declared categorical keeps the file's spelling: the leading zero stays
    assert labels(features.fit()) == [("zip", "01234"), ("zip", "55105"), ("genre", "a"),
                                      ("genre", "b"), ("genre", "c"), ("year", "1990"),
                                      ("year", "1991")]


def test_one_stray_text_value_makes_an_inferred_column_categorical() -> None:
    table = pd.DataFrame({"id": ["a", "b"], "age": ["30", "unknown"]})
    assert read_features(table, "id").kinds == {"age": "categorical"}
    with pytest.raises(DataError, match=r"^data:2: column 'age': 'unknown' is not a number$"):
        read_features(table, "id", numeric="age")


def test_columns_option_selects_features_and_kinds_add_to_it() -> None:
    features = read_features(MOVIES, "item", columns=["country"], numeric=["year"])
    assert features.names == ("country", "year")
    assert read_features(MOVIES, 0, columns=[2]).names == ("country",)


def test_categorical_values_are_spelled_as_text() -> None:
    table = pd.DataFrame({"id": [1, 2, 3, 4], "code": [3.0, np.nan, 2.5, 3]})
    features = read_features(table, "id", categorical="code").fit()
    assert labels(features) == [("code", "2.5"), ("code", "3")]  # 3, 3.0 and "3" are one value
    assert dense(features) == [[0, 1], [0, 0], [1, 0], [0, 1]]


# ---------------------------------------------------------------------- multi and tags
def test_multi_values_split_strip_and_count_once() -> None:
    features = read_features(MOVIES, "item", columns=["genre"]).fit()
    assert features.kinds == {"genre": "multi"}
    assert labels(features) == [("genre", "Action"), ("genre", "Comedy"), ("genre", "Drama")]
    assert dense(features) == [[0.5, 0.5, 0], [0, 0, 1], [0, 0.5, 0.5], [0, 0, 0]]


def test_multi_from_lists_and_a_separator_per_column() -> None:
    table = pd.DataFrame({"id": ["a", "b"], "langs": [["en", "fr", "en"], ("de",)],
                          "topics": ["x;y", "y"]})
    features = read_features(table, "id", multi=["langs", "topics"],
                             separator={"topics": ";"}).fit(normalize="none")
    assert labels(features) == [("langs", "de"), ("langs", "en"), ("langs", "fr"),
                                ("topics", "x"), ("topics", "y")]
    assert dense(features) == [[0, 1, 1, 1, 1], [1, 0, 0, 0, 1]]


def test_tags_fold_text_and_add_up_repeats_and_weights() -> None:
    table = pd.DataFrame({
        "artist": [1, 2, 3],
        "tags": ["Rock|indie| rock |Hip  Hop", ["hip hop", "ROCK"], {"Rock": 3, "jazz": 1.5}],
    })
    features = read_features(table, "artist", tags="tags").fit(normalize="none")
    assert labels(features) == [("tags", "hip hop"), ("tags", "indie"), ("tags", "jazz"),
                                ("tags", "rock")]
    assert dense(features) == [[1, 1, 0, 2], [1, 0, 0, 1], [0, 0, 1.5, 3]]
    grouped = read_features(table, "artist", tags="tags").fit()
    assert dense(grouped, [1, 3]) == [[0.25, 0.25, 0, 0.5], [0, 0, 0.333333, 0.666667]]


def test_from_pairs_counts_repeats_as_weights() -> None:
    tags = Features.from_pairs(["b", "a", "b", "b"], ["x", "x", "Y", "x"], feature="tag")
    assert tags.ids.to_list() == ["b", "a"]  # first appearance
    fitted = tags.fit(normalize="none")
    assert labels(fitted) == [("tag", "x"), ("tag", "y")]
    assert dense(fitted) == [[2, 1], [1, 0]]
    weighted = Features.from_pairs([1, 1], ["x", "y"], [3.0, 1.0], feature="tag").fit()
    assert dense(weighted) == [[0.75, 0.25]]
    multi = Features.from_pairs([1, 1, 1], ["x", "x", "y"], feature="genre", kind="multi").fit()
    assert dense(multi) == [[0.5, 0.5]]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Features.from_pairs([1, None], ["x", "y"], feature="t"),
         r"^pairs:2: column 'id': id is missing$"),
        (lambda: Features.from_pairs([1, 2], ["x", None], feature="t"),
         r"^pairs:2: column 'value': value is missing$"),
        (lambda: Features.from_pairs([1, 2], ["x", "  "], feature="t"),
         r"^pairs:2: column 'value': value is empty$"),
        (lambda: Features.from_pairs([1, 2], ["x", "y"], [1, -2], feature="t"),
         r"^pairs:2: column 'weight': weight is -2; weights must be positive numbers$"),
        (lambda: Features.from_pairs([1], ["x", "y"], feature="t"),
         r"^ids and values must be equally long, got 1 and 2$"),
        (lambda: Features.from_pairs([], [], feature="t", source="tags.csv"),
         r"^tags\.csv: no features \(there are no pairs\)$"),
    ],
)
def test_from_pairs_refuses_bad_pairs(call: Any, message: str) -> None:
    with pytest.raises((DataError, InvalidParameterError), match=message) as info:
        call()
    error_text(info)


# ---------------------------------------------------------------------- numbers
def test_numbers_are_standardised_on_the_fitted_rows() -> None:
    table = pd.DataFrame({"id": ["a", "b", "c", "d"], "x": [1.0, 3.0, 100.0, None]})
    fitted = read_features(table, "id").fit(["a", "b"])
    assert labels(fitted) == [("x", None)]
    # mean 2 and standard deviation 1 of the fitted rows a and b; c is scaled the same way;
    # a missing number is an empty entry, i.e. the mean
    assert dense(fitted, ["a", "b", "c", "d"]) == [[-1], [1], [98], [0]]
    state = fitted.state()["vocabulary"]["features"][0]
    assert (state["mean"], state["scale"]) == (2.0, 1.0)


def test_constant_numbers_get_scale_one() -> None:
    table = pd.DataFrame({"id": [1, 2], "x": [5, 5]})
    assert dense(read_features(table, "id").fit(), [1, 2]) == [[0], [0]]


def test_numbers_are_bucketed_by_quantiles_of_the_fitted_rows() -> None:
    table = pd.DataFrame({"id": list(range(1, 13)), "age": [*range(1, 11), 50, None]})
    fitted = read_features(table, "id", buckets={"age": 5}).fit(list(range(1, 11)))
    assert labels(fitted) == [("age", "[-inf, 3)"), ("age", "[3, 5)"), ("age", "[5, 7)"),
                              ("age", "[7, 9)"), ("age", "[9, inf)")]
    rows = fitted.matrix().toarray()
    assert rows[:10].sum(axis=0).tolist() == [2, 2, 2, 2, 2]  # each bucket a fifth
    assert rows[10].tolist() == [0, 0, 0, 0, 1]  # 50: beyond the fitted range, the last bucket
    assert rows[11].tolist() == [0, 0, 0, 0, 0]  # missing: no bucket


def test_bucket_edges_with_ties_and_a_count_for_every_numeric_column() -> None:
    table = pd.DataFrame({"id": [1, 2, 3, 4, 5], "a": [1, 1, 1, 1, 2], "b": [1, 2, 3, 4, 5]})
    fitted = read_features(table, "id", buckets=4).fit()
    # ties leave fewer buckets than asked for, but never an empty first bucket
    assert labels(fitted)[:2] == [("a", "[-inf, 2)"), ("a", "[2, inf)")]
    assert len(labels(fitted)) == 2 + 4


def test_numeric_text_in_a_file(tmp_path: Path) -> None:
    path = write(tmp_path / "items.tsv", "item\tprice\tyear\nx\t 1.5\t\ny\t2.5\t2001\n")
    features = read_features(path, "item", numeric=["price"])
    assert features.kinds == {"price": "numeric", "year": "numeric"}
    assert dense(features.fit(normalize="none")) == [[-1, 0], [1, 0]]


# ---------------------------------------------------------------------- ids
def test_ids_keep_their_spelling_01_and_1_stay_distinct(tmp_path: Path) -> None:
    path = write(tmp_path / "items.csv", "item,color\n01,red\n1,blue\n001,green\n")
    features = read_features(path, "item", categorical="color")
    assert features.ids.to_list() == ["01", "1", "001"]
    fitted = features.fit()
    assert dense(fitted, [1, "01", "001"]) == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    # integer ids of interactions find their canonical spelling only
    train = Interactions.from_arrays([7, 7], [1, 2], feedback="implicit")
    assert dense(features.fit(train.items), train.items) == [[1], [0]]


def test_integer_ids_are_found_by_their_text() -> None:
    features = read_features(pd.DataFrame({"id": [10, 20], "c": ["x", "y"]}), "id").fit()
    assert features.ids.is_integer
    assert dense(features, ["20", "020", 10]) == [[0, 1], [0, 0], [1, 0]]


def test_the_id_column_defaults_to_a_named_index_else_the_first_column() -> None:
    indexed = pd.DataFrame({"c": ["x", "y"]}, index=pd.Index([5, 6], name="item"))
    assert read_features(indexed).ids.to_list() == [5, 6]
    assert read_features(indexed, "item").ids.to_list() == [5, 6]
    unnamed = pd.DataFrame({"user": ["a", "b"], "c": ["x", "y"]}, index=[7, 3])
    assert read_features(unnamed).ids.to_list() == ["a", "b"]  # a filtered frame's row labels
    plain = pd.DataFrame({"user": ["a", "b"], "c": ["x", "y"]})
    assert read_features(plain).ids.to_list() == ["a", "b"]
    assert read_features(plain, 1).ids.to_list() == ["x", "y"]


# ---------------------------------------------------------------------- vocabulary and cold start
def test_the_vocabulary_holds_only_values_of_the_fitted_ids() -> None:
    fitted = read_features(MOVIES, "item", columns=["country"]).fit(["m1", "m2"])
    assert labels(fitted) == [("country", "FR"), ("country", "US")]
    assert fitted.n_columns == 2


def test_cold_ids_keep_their_rows_and_unknown_values_warn_once_counted() -> None:
    fitted = read_features(MOVIES, "item", columns=["genre", "country"]).fit(["m2"])
    assert labels(fitted) == [("genre", "Drama"), ("country", "FR")]
    with pytest.warns(DataWarning) as caught:
        matrix = fitted.matrix(["m1", "m3", "m3", "m2"], dtype=np.float64)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith(
        "3 unknown values ignored in 3 rows: 2 of 'genre' (first: 'Action'), 1 of 'country' "
        "(first: 'US'); fit saw no trained id with them"
    )
    assert caught[0].filename == __file__
    # the known values of a cold row still sum to 1 within their feature
    assert matrix.toarray().tolist() == [[0, 0], [1, 0], [1, 0], [1, 1]]


def test_one_unknown_feature_reads_like_the_example() -> None:
    fitted = read_features(MOVIES, "item", columns=["genre"]).fit(["m2"])
    with pytest.warns(DataWarning, match=r"^2 unknown values of 'genre' ignored in 2 rows "
                                         r"\(first: 'Action'\); "):
        fitted.matrix(["m1", "m3"])
    new = read_features(pd.DataFrame({"item": ["m9"], "genre": ["Drama|Western"]}), "item")
    with pytest.warns(DataWarning, match=r"^1 unknown value of 'genre' ignored in 1 row "
                                         r"\(first: 'Western'\); "):
        fitted.update(new).matrix(["m9"])


def test_no_warning_for_the_fitted_ids_and_ids_outside_the_table_get_empty_rows() -> None:
    fitted = read_features(MOVIES, "item").fit(["m1", "m2", "m3"])
    assert dense(fitted, ["m1", "nope"])[1] == [0] * fitted.n_columns


def test_identity_columns_come_first_for_the_fitted_ids() -> None:
    train = Interactions.from_arrays(["u", "u"], ["m2", "zzz"], feedback="implicit")
    fitted = read_features(MOVIES, "item", columns=["country"]).fit(train.items, identity=True)
    assert labels(fitted) == [("items", "m2"), ("items", "zzz"), ("country", "FR")]
    assert fitted.columns().kind.tolist() == ["identity", "identity", "categorical"]
    # zzz has no row in the table: identity only; m4 is cold: no identity column, and DE is
    # unknown
    with pytest.warns(DataWarning, match="1 unknown value of 'country'"):
        rows = fitted.matrix(["zzz", "m2", "m4"]).toarray().tolist()
    assert rows == [[0, 1, 0], [1, 0, 1], [0, 0, 0]]


def test_normalisation_rules() -> None:
    table = pd.DataFrame({"id": [1], "genre": ["a|b|c"], "tag": [{"x": 3, "y": 1}],
                          "color": ["red"], "n": [5.0]})
    features = read_features(table, "id", numeric="n")
    assert features.kinds["tag"] == "tags"
    group = features.fit(identity=True)
    # identity, genre a b c, tag x y, color red, n (a z-score: 0 for the one row)
    assert dense(group) == [[1, 0.333333, 0.333333, 0.333333, 0.75, 0.25, 1, 0]]
    raw = features.fit(identity=True, normalize="none")
    assert dense(raw) == [[1, 1, 1, 1, 3, 1, 1, 0]]
    row = features.fit(identity=True, normalize="row")
    assert dense(row) == [[0.111111, 0.111111, 0.111111, 0.111111, 0.333333, 0.111111,
                           0.111111, 0]]
    assert np.isclose(sum(dense(row)[0]), 1)


def test_shrink_divides_by_the_sum_plus_the_shrink() -> None:
    table = pd.DataFrame({"id": [1, 2], "tag": [{"x": 3, "y": 1}, {"x": 96, "y": 0.0001}],
                          "color": ["red", "red"]})
    features = read_features(table, "id")
    # group: within the tags, 3 and 1 over 4 + 4; 96 over 96 + 4 (the tiny y is its share)
    assert dense(features.fit(normalize="group", shrink=4.0))[0] == [0.375, 0.125, 1]
    heavy = dense(features.fit(normalize="group", shrink=4.0))[1]
    assert heavy[0] == pytest.approx(0.96, abs=1e-6) and heavy[2] == 1
    # row: the whole row (color's 1 included) over its sum plus the shrink
    assert dense(features.fit(normalize="row", shrink=5.0))[0] == [0.3, 0.1, 0.1]
    # the shrink is kept with the vocabulary, and files without it read as 0
    fitted = features.fit(shrink=4.0)
    assert same(Features.from_json(fitted.to_json()).matrix(), fitted.matrix())
    plain = features.fit().state()
    assert "shrink" not in plain["vocabulary"]
    assert same(Features.from_state(plain).matrix(), features.fit(shrink=0.0).matrix())


def test_matrix_before_fit_and_fit_returns_a_copy() -> None:
    features = read_features(MOVIES, "item")
    fitted = features.fit()
    assert fitted is not features and not features.is_fitted and fitted.is_fitted
    with pytest.raises(NotFittedError, match=r"fit returns a fitted copy: features = "):
        features.matrix()


def test_fit_refuses_ids_spelled_unlike_the_table() -> None:
    with pytest.raises(DataError, match=r"^data: none of the 2 ids given to fit has a row here "
                                        r"\(they look like 1, 2; the table's like 'm1', 'm2'\)"):
        read_features(MOVIES, "item").fit([1, 2])


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"normalize": "l2"}, InvalidParameterError, r"^normalize must be one of"),
        ({"shrink": -1.0}, InvalidParameterError, r"^shrink must be a finite number >= 0, "
                                                   r"got -1.0$"),
        ({"shrink": math.nan}, InvalidParameterError, r"^shrink must be a finite number"),
        ({"shrink": True}, TypeError, r"^shrink must be a number, got bool$"),
        ({"shrink": 2.0, "normalize": "none"}, InvalidParameterError,
         r'^shrink divides the sums of normalize="group" or "row"'),
        ({"identity": 1}, TypeError, r"^identity must be True or False"),
        ({"ids": Interactions.from_arrays(["u"], ["m1"], feedback="implicit")}, TypeError,
         r"^ids must be a sequence of ids or an IdMap, got Interactions$"),
    ],
)
def test_fit_checks_its_arguments(options: dict[str, Any], error: type[Exception],
                                  message: str) -> None:
    with pytest.raises(error, match=message):
        read_features(MOVIES, "item").fit(**options)


# ---------------------------------------------------------------------- update
def test_update_adds_and_replaces_rows_keeping_the_vocabulary() -> None:
    fitted = read_features(MOVIES, "item").fit()
    new = pd.DataFrame({"item": ["m9", "m1"], "genre": ["Drama", "Comedy"],
                        "country": ["FR", "US"], "year": [2000, 1990]})
    both = fitted.update(read_features(new, "item"))  # genre inferred categorical here
    assert both.kinds["genre"] == "multi"
    assert both.ids.to_list() == ["m2", "m3", "m4", "m9", "m1"]
    assert labels(both) == labels(fitted)
    m1, m2 = dense(fitted, ["m1", "m2"])
    # m9 is m2 again (Drama, FR, 1995 is m2's year; 2000 is m3's), m1 lost Action
    m3 = dense(fitted, ["m3"])[0]
    assert dense(both, ["m9", "m1", "m2"]) == [m2[:6] + m3[6:], [0, 1, 0, *m1[3:]], m2]


def test_update_refuses_a_numeric_feature_that_is_not_numeric() -> None:
    fitted = read_features(MOVIES, "item").fit()
    new = read_features(pd.DataFrame({"item": ["m9"], "year": ["old"]}), "item",
                        source="new.csv")
    with pytest.raises(DataError, match=r"^new\.csv: column 'year': feature 'year' is "
                                        r"categorical here but numeric in the table it updates$"):
        fitted.update(new)


def test_update_mixes_integer_and_text_ids_by_their_text() -> None:
    fitted = read_features(pd.DataFrame({"id": [1, 2], "c": ["x", "y"]}), "id").fit()
    both = fitted.update(read_features(pd.DataFrame({"id": ["01"], "c": ["y"]}), "id"))
    assert both.ids.to_list() == ["1", "2", "01"]
    assert dense(both, [1, "01"]) == [[1, 0], [0, 1]]


# ---------------------------------------------------------------------- JSON
@pytest.mark.parametrize("normalize", ["group", "row", "none"])
@pytest.mark.parametrize("identity", [False, True])
def test_json_round_trip_gives_the_same_matrix(normalize: str, identity: bool) -> None:
    table = MOVIES.assign(tags=pd.Series([{"a": 2}, "b|B", None, ["c"]], dtype=object))
    fitted = read_features(table, "item", tags="tags", buckets={"year": 2}).fit(
        ["m1", "m2", "m3"], identity=identity, normalize=normalize,  # type: ignore[arg-type]
    )
    text = fitted.to_json()
    json.loads(text)  # plain, standard JSON
    again = Features.from_json(text)
    assert again.state() == fitted.state()
    assert labels(again) == labels(fitted)
    ids = ["m1", "m2", "m3", "m4", "nope"]
    with pytest.warns(DataWarning):
        expected = fitted.matrix(ids)
    with pytest.warns(DataWarning):
        got = again.matrix(ids)
    assert same(expected, got)
    assert again.ids.to_list() == fitted.ids.to_list() and again.kinds == fitted.kinds


def test_json_without_the_table_applies_to_new_tables() -> None:
    fitted = read_features(MOVIES, "item").fit()
    vocabulary = Features.from_json(fitted.to_json(table=False))
    assert len(vocabulary) == 0 and vocabulary.n_columns == fitted.n_columns
    again = vocabulary.update(read_features(MOVIES, "item"))
    assert same(again.matrix(), fitted.matrix())
    assert Features.from_state(json.loads(fitted.to_json(table=False))).state(table=False) == (
        fitted.state(table=False))


def test_json_keeps_integer_and_text_ids_apart() -> None:
    text_ids = read_features(pd.DataFrame({"id": ["1", "01"], "c": ["x", "y"]}), "id")
    assert not text_ids.ids.is_integer
    again = Features.from_json(text_ids.fit(identity=True).to_json())
    assert again.ids.to_list() == ["1", "01"] and not again.ids.is_integer
    assert labels(again)[:2] == [("ids", "1"), ("ids", "01")]


def test_json_of_an_unfitted_table() -> None:
    state = read_features(MOVIES, "item").state()
    assert state["vocabulary"] is None
    assert not Features.from_state(state).is_fitted


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: "{", r"not valid JSON"),
        (lambda s: json.dumps([1]), r"expected a JSON object, got list"),
        (lambda s: {**s, "format": "pickle"}, r"not a latentrec features document"),
        (lambda s: {**s, "version": 99}, r"version 99 is newer than this latentrec reads"),
        (lambda s: {**s, "table": {**s["table"], "ids": [1, 1]}}, r"table\.ids: .*unique"),
        (lambda s: _edit(s, ["table", "features", 0, "codes"], [0, 99, 0, 0, 0]),
         r"table\.features\[0\]\.codes holds a value outside 0\.\.2"),
        (lambda s: _edit(s, ["table", "features", 0, "rows"], [0, 0]),
         r"table\.features\[0\]: rows, codes and weights must be equally long"),
        (lambda s: _edit(s, ["table", "features", 2, "numbers"], [1.0]),
         r"table\.features\[2\]\.numbers must hold one number per id"),
        (lambda s: _edit(s, ["table", "features", 0, "kind"], "pickle"),
         r"table\.features\[0\]: kind must be one of"),
        (lambda s: _edit(s, ["vocabulary", "features", 0, "values"], ["x", "x"]),
         r"vocabulary\.features\[0\]\.values holds a value twice"),
        (lambda s: _edit(s, ["vocabulary", "features", 2, "scale"], 0),
         r"vocabulary\.features\[2\]\.scale must be positive"),
        (lambda s: _edit(s, ["vocabulary", "features", 2], {"name": "year", "kind": "multi",
                                                             "values": []}),
         r"feature 'year' is numeric in the table but multi in the vocabulary"),
        (lambda s: _edit(s, ["vocabulary", "normalize"], "l2"),
         r"vocabulary\.normalize must be one of"),
        (lambda s: _edit(s, ["vocabulary", "shrink"], -2),
         r"vocabulary\.shrink must be a finite number >= 0, got -2$"),
        (lambda s: _edit(s, ["vocabulary", "shrink"], "1"),
         r"vocabulary\.shrink must be a finite number >= 0, got '1'$"),
        (lambda s: '{"format": "latentrec-features", "version": NaN}', r"not valid JSON"),
    ],
)
def test_malformed_json_is_refused_in_one_line(change: Any, message: str) -> None:
    state = read_features(MOVIES, "item").fit().state()
    changed = change(json.loads(json.dumps(state)))
    text = changed if isinstance(changed, str) else json.dumps(changed)
    with pytest.raises(DataError, match=r"^features JSON: " + message) as info:
        Features.from_json(text)
    error_text(info)


def _edit(state: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    target: Any = state
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return state


# ---------------------------------------------------------------------- files
def test_movielens_style_files_load_with_options(tmp_path: Path) -> None:
    path = write(tmp_path / "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n")
    users = read_features(path, "user", names=["user", "age", "gender", "occupation", "zip"],
                          categorical="zip")
    assert users.ids.to_list() == [1, 2]
    assert users.kinds == {"age": "numeric", "gender": "categorical",
                           "occupation": "categorical", "zip": "categorical"}


def test_separator_and_header_are_sniffed(tmp_path: Path) -> None:
    path = write(tmp_path / "items.csv", "movie,genres\nx,Action|Comedy\ny,Drama\n")
    features = read_features(path, "movie")
    assert features.kinds == {"genres": "multi"} and features.ids.to_list() == ["x", "y"]
    headerless = write(tmp_path / "plain.tsv", "x\tred\ny\tblue\n")
    assert read_features(headerless).ids.to_list() == ["x", "y"]
    assert read_features(headerless).names == ("1",)


def test_parquet_and_gzip_files(tmp_path: Path) -> None:
    table = pd.DataFrame({"item": [1, 2], "genre": [["a", "b"], ["b"]], "year": [1990, 2000]})
    table.to_parquet(tmp_path / "items.parquet")
    features = read_features(tmp_path / "items.parquet", "item")
    assert features.kinds == {"genre": "multi", "year": "numeric"}
    assert dense(features.fit(normalize="none")) == [[1, 1, -1], [0, 1, 1]]
    zipped = write(tmp_path / "items.csv.gz", "item,genre\n1,a|b\n2,b\n")
    assert read_features(zipped).kinds == {"genre": "multi"}


def test_latin_1_files_need_their_encoding(tmp_path: Path) -> None:
    path = write(tmp_path / "u.item", "1|ok\n2|Mis\xe9rables\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"u\.item:2: byte 0xe9 is not utf-8 text; pass the "
                                        r"file's encoding \(e\.g\. encoding='latin-1'\)$") as info:
        read_features(path, sep="|")
    error_text(info)
    fitted = read_features(path, sep="|", encoding="latin-1").fit()
    assert ("1", "Misérables") in labels(fitted)


# ---------------------------------------------------------------------- hostile tables
HOSTILE_FILES = [
    ("dup.csv", "item,genre\na,x\nb,y\na,z\n", {"id_col": "item"},
     r"dup\.csv:4: column 'item': id 'a' is repeated, first seen on line 2; a feature table "
     r"has one row per id"),
    ("noid.csv", "item,genre\na,x\n", {"id_col": "movie"},
     r"noid\.csv: column 'movie': is named in id_col= but the table has no such column; "
     r"found columns \['item', 'genre'\]"),
    ("num.csv", "item,year\na,1990\nb,19x0\n", {"numeric": "year"},
     r"num\.csv:3: column 'year': '19x0' is not a number"),
    ("inf.csv", "item,year\na,1990\nb,inf\n", {"numeric": ["year"]},
     r"inf\.csv:3: column 'year': value is inf, not a finite number"),
    ("empty.csv", "", {}, r"empty\.csv: no features \(the file is empty\)"),
    ("blank.csv", "\n\n", {}, r"blank\.csv: no features \(the file is empty\)"),
    ("header.csv", "item,genre\n", {"id_col": "item"},
     r"header\.csv: no features \(the file has only a header\)"),
    ("unknown.csv", "item,genre\na,x\n", {"multi": ["genres"]},
     r"unknown\.csv: column 'genres': is named in multi= but the table has no such column; "
     r"found columns \['item', 'genre'\]"),
    ("position.csv", "item,genre\na,x\n", {"categorical": [5]},
     r"position\.csv: has 2 columns, so there is no column 5 \(named in categorical=\)"),
    ("sepcol.csv", "item,genre\na,x\n", {"separator": {"genre2": ";"}},
     r"sepcol\.csv: column 'genre2': is named in separator= but the table has no such column; "
     r"found columns \['item', 'genre'\]"),
    ("bucketcol.csv", "item,age\na,1\n", {"buckets": {"agee": 3}},
     r"bucketcol\.csv: column 'agee': is named in buckets= but the table has no such column; "
     r"found columns \['item', 'age'\]"),
    ("ragged.csv", "item,genre\na,x\nb,y,z\n", {},
     r"ragged\.csv:3: the line has 3 fields, expected 2"),
    ("short.csv", "item,genre,year\na,x,1\nb,y\n", {},
     r"short\.csv:3: column 'year': the line has 2 fields, expected 3"),
    ("missingid.csv", "item,genre\na,x\n,y\n", {},
     r"missingid\.csv:3: column 'item': id is missing"),
    ("quote.csv", 'item,genre\na,"x\n', {}, r"quote\.csv:2: a quoted field is never closed"),
    ("onlyid.csv", "item,genre\na,x\n", {"columns": []},
     r"onlyid\.csv: has no feature columns besides the id column 'item'"),
    ("binary.csv", "item,genre\na,\x00x\n", {},
     r"binary\.csv:2: holds NUL bytes; not a text file of features \(Parquet files must end in "
     r"\.parquet\)"),
    ("names.csv", "a|x\n", {"names": ["item", "genre", "year"], "sep": "|"},
     r"names\.csv: has 2 columns but names= gives 3"),
    ("dupcol.csv", "item,genre,genre\na,x,y\n", {},
     r"dupcol\.csv:1: column 'genre' is repeated"),
    ("badgz.csv.gz", b"not gzip at all", {}, r"badgz\.csv\.gz: not a readable gzip file \(.*\)"),
]


@pytest.mark.parametrize(("name", "text", "options", "message"), HOSTILE_FILES,
                         ids=[case[0] for case in HOSTILE_FILES])
def test_malformed_files_get_one_line_errors(tmp_path: Path, name: str, text: str | bytes,
                                             options: dict[str, Any], message: str) -> None:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        write(path, text)
    with pytest.raises(DataError, match="^" + str(tmp_path).replace("\\", "\\\\") + "/"
                       + message + "$") as info:
        read_features(path, **options)
    error_text(info)
    assert info.value.source == str(path)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"buckets": 1}, InvalidParameterError, r"^buckets must be from 2 to 1000, got 1$"),
        ({"buckets": {"year": 5000}}, InvalidParameterError,
         r"^buckets\['year'\] must be from 2 to 1000, got 5000$"),
        ({"buckets": 2.5}, InvalidParameterError,
         r"^buckets must be an integer from 2 to 1000, got 2\.5$"),
        ({"buckets": True}, InvalidParameterError, r"^buckets must be an integer"),
        ({"buckets": {"country": 3}}, InvalidParameterError,
         r"^buckets= names 'country', a categorical column; only numeric columns are bucketed$"),
        ({"multi": "genre", "tags": "genre"}, InvalidParameterError,
         r"^column 'genre' is named in both multi= and tags=$"),
        ({"categorical": "item"}, InvalidParameterError,
         r"^column 'item' is the id column; it cannot also be a categorical feature$"),
        ({"separator": ""}, InvalidParameterError, r"^separator must be a non-empty string"),
        ({"separator": {"country": ";"}}, InvalidParameterError,
         r"^separator= names 'country', a categorical column; only multi and tags columns"),
        ({"sep": ","}, InvalidParameterError, r"^sep= applies to files, not to a DataFrame$"),
        ({"numeric": 1.5}, TypeError, r"^numeric must be a column name or a sequence"),
        ({"id_col": 1.5}, TypeError, r"^id_col must be a column name or position"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], error: type[Exception],
                                 message: str) -> None:
    options = {"id_col": "item", **options}
    with pytest.raises(error, match=message) as info:
        read_features(MOVIES, **options)
    error_text(info)


@pytest.mark.parametrize(
    ("table", "options", "message"),
    [
        (pd.DataFrame({"id": [1, 2], "c": ["x", ["y"]]}), {"categorical": "c"},
         r"^data:2: column 'c': holds a list where one value was expected; name the column in "
         r"multi= \(or tags=\) for several values$"),
        (pd.DataFrame({"id": [1, 2], "c": ["x", {"y": 1}]}), {"multi": "c"},
         r"^data:2: column 'c': holds a dict where a list of values was expected; name the "
         r"column in tags= for weighted values$"),
        (pd.DataFrame({"id": [1, 2], "c": [["x"], [["y"]]]}), {"multi": "c"},
         r"^data:2: column 'c': holds a list inside a list"),
        (pd.DataFrame({"id": [1, 2], "c": [{"x": 1}, {"y": 0}]}), {"tags": "c"},
         r"^data:2: column 'c': weight is 0; weights must be positive numbers$"),
        (pd.DataFrame({"id": [1, 2], "c": [1.0, [2.0]]}), {"numeric": "c"},
         r"^data:2: column 'c': holds a list where a number was expected$"),
        (pd.DataFrame({"id": [1.5, 2], "c": [1, 2]}), {},
         r"^data:1: column 'id': id 1\.5 is not an integer or a string$"),
        (pd.DataFrame({"id": [], "c": []}), {}, r"^data: no features \(the data has no rows\)$"),
        (pd.DataFrame({"id": ["a", "a"], "c": [1, 2]}), {"source": "mine"},
         r"^mine:2: column 'id': id 'a' is repeated, first seen on line 1; a feature table has "
         r"one row per id$"),
    ],
)
def test_malformed_frames_get_one_line_errors(table: pd.DataFrame, options: dict[str, Any],
                                              message: str) -> None:
    with pytest.raises(DataError, match=message) as info:
        read_features(table, "id", **options)
    error_text(info)


def test_duplicate_ids_in_a_frame_name_the_row() -> None:
    with pytest.raises(DataError, match=r"^data:3: column 'id': id 'a' is repeated, first "
                                        r"seen on line 1"):
        read_features(pd.DataFrame({"id": ["a", "b", "a"], "c": [1, 2, 3]}), "id")


def test_files_that_are_not_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_features(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"is a directory, expected a file of features$"):
        read_features(tmp_path)
    bad = write(tmp_path / "bad.parquet", "not parquet")
    with pytest.raises(DataError, match=r"bad\.parquet: not a readable Parquet file") as info:
        read_features(bad)
    error_text(info)
    with pytest.raises(TypeError, match="table must be a path or a pandas DataFrame"):
        read_features(42)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- the API
def test_exports_and_docstring_examples() -> None:
    from latentrec import data as data_package

    assert latentrec.read_features is read_features
    assert "read_features" in latentrec.__all__
    assert {"Features", "read_features"} <= set(data_package.__all__)
    result = doctest.testmod(features_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted >= 20


def test_repr_and_sizes() -> None:
    features = read_features(MOVIES, "item", source="movies.csv")
    assert repr(features) == ("Features(4 ids, 3 features: genre (multi), country "
                              "(categorical), year (numeric), from movies.csv)")
    fitted = features.fit(identity=True)
    assert len(fitted) == 4 and fitted.n_columns == 4 + 3 + 3 + 1
    assert "fitted: 11 columns" in repr(fitted)
    assert isinstance(fitted.ids, IdMap)


def test_large_tables_are_vectorised() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    ids = rng.integers(0, 20_000, n)
    tags = Features.from_pairs(ids, np.char.add("t", rng.integers(0, 5_000, n).astype(str)),
                               feature="tag")
    fitted = tags.fit()
    matrix = fitted.matrix()
    assert matrix.shape[0] == len(tags) and np.allclose(matrix.sum(axis=1), 1)
    assert Features.from_json(fitted.to_json()).matrix().nnz == matrix.nnz


# ---------------------------------------------------------------------- the loaders
def lastfm_or_fail(datasets_dir: Path) -> Path:
    folder = datasets_dir / "lastfm-hetrec"
    if not (folder / "user_taggedartists.dat.gz").exists() or not (folder / "tags.dat").exists():
        message = f"Last.fm tags not found at {folder} (set LATENTREC_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.mark.realdata
def test_movielens_100k_item_features(datasets_dir: Path) -> None:
    items = load_movielens_100k_features("items", path=datasets_dir / "ml-100k",
                                         download=False)
    assert len(items) == 1682 and items.ids.is_integer
    assert items.kinds == {"genre": "multi", "year": "numeric"}
    train, test = load_movielens_100k_split("u1", path=datasets_dir / "ml-100k",
                                            download=False)
    fitted = items.fit(train.items)
    genres = [v for f, v in labels(fitted) if f == "genre"]
    assert len(genres) == 19 and "Children's" in genres
    toy_story = fitted.columns().iloc[fitted.matrix([1]).indices]
    assert toy_story[toy_story.feature == "genre"].value.tolist() == [
        "Animation", "Children's", "Comedy"]
    assert toy_story[toy_story.feature == "year"].value.tolist() == ["[1995, 1996)"]
    # the items only u1.test has keep their rows: cold items with features
    cold = [item for item in test.items.to_list() if item not in train.items]
    assert cold and dense(fitted, cold[:1])[0] != [0] * fitted.n_columns
    year = [v for f, v in labels(items.fit()) if f == "year"]
    assert 2 < len(year) <= 10
    standardised = load_movielens_100k_features("items", path=datasets_dir / "ml-100k",
                                                download=False, year_buckets=None).fit()
    assert labels(standardised)[-1] == ("year", None)
    assert dense(standardised, [267])[0][-1] == 0  # the movie without a release date


@pytest.mark.realdata
def test_movielens_100k_user_features(datasets_dir: Path) -> None:
    users = load_movielens_100k_features("users", path=datasets_dir, download=False)
    assert len(users) == 943
    assert users.kinds == {"age": "categorical", "gender": "categorical",
                           "occupation": "categorical", "zip_prefix": "categorical"}
    fitted = users.fit()
    assert sum(f == "occupation" for f, _ in labels(fitted)) == 21
    first = fitted.columns().iloc[fitted.matrix([1]).indices].value.tolist()
    assert first == ["18-24", "M", "technician", "8"]
    assert np.allclose(fitted.matrix().sum(axis=1), 4)


@pytest.mark.realdata
def test_lastfm_artist_tags(datasets_dir: Path) -> None:
    folder = lastfm_or_fail(datasets_dir)
    tags = load_lastfm_tags(folder)
    assert len(tags) == 12_523 and tags.ids.is_integer and tags.kinds == {"tag": "tags"}
    raw = tags.fit(normalize="none")
    matrix = raw.matrix()
    assert float(matrix.sum()) == 186_479  # every assignment counted once
    values = raw.columns().value
    assert "metal" in set(values) and values.is_unique
    assert load_lastfm_tags(datasets_dir).ids == tags.ids
    listened = Interactions.from_frame(
        pd.read_csv(folder / "user_artists.dat", sep="\t"), user_col="userID",
        item_col="artistID", value_col="weight", feedback="implicit",
    )
    fitted = tags.fit(listened.items)
    cold = [a for a in tags.ids.to_list() if a not in listened.items]
    assert len(cold) == 390  # tagged, never listened to: kept for cold start
    tagged = [a for a in listened.items.to_list() if a in tags.ids][:50]
    assert np.allclose(fitted.matrix(tagged).sum(axis=1), 1)


def test_lastfm_loader_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATENTREC_DATA", str(tmp_path))
    with pytest.raises(DataError, match=r"HetRec Last\.fm not found: no user_taggedartists\.dat "
                                        r"and tags\.dat in .*hetrec2011-lastfm-2k\.zip"):
        load_lastfm_tags()
    folder = tmp_path / "lastfm-hetrec"
    folder.mkdir()
    write(folder / "tags.dat", "tagID\ttagValue\r\n1\tmetal\r\n2\tindie\r\n")
    write(folder / "user_taggedartists.dat",
          "userID\tartistID\ttagID\tday\tmonth\tyear\n2\t52\t1\t1\t4\t2009\n2\t52\t7\t1\t4\t2009\n")
    with pytest.raises(DataError, match=r"user_taggedartists\.dat:3: column 'tagID': tag id 7 "
                                        r"is not in tags\.dat$") as info:
        load_lastfm_tags()
    error_text(info)
    write(folder / "user_taggedartists.dat",
          "userID\tartistID\ttagID\tday\tmonth\tyear\n2\t052\t1\t1\t4\t2009\n")
    with pytest.raises(DataError, match=r":2: column 'artistID': '052' is not an integer id$"):
        load_lastfm_tags(tmp_path)
    write(folder / "user_taggedartists.dat",
          "userID\tartistID\ttagID\tday\tmonth\tyear\n2\t52\t1\t1\t4\t2009\n3\t52\t2\t1\t4\t2009\n"
          "3\t60\t1\t1\t4\t2009\n")
    tags = load_lastfm_tags(folder)
    assert tags.ids.to_list() == [52, 60]
    assert dense(tags.fit(normalize="none")) == [[1, 1], [0, 1]]
    with pytest.raises(FileNotFoundError):
        load_lastfm_tags(tmp_path / "nope")


def test_movielens_feature_loader_errors(tmp_path: Path) -> None:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    write(folder / "u.user", "1|24|M|technician|85711\n2|old|F|other|94043\n")
    with pytest.raises(DataError, match=r"u\.user:2: column 'age': age 'old' is not a number of "
                                        r"years from 0 to 150$") as info:
        load_movielens_100k_features("users", path=tmp_path, download=False)
    error_text(info)
    write(folder / "u.user", "1|24|M|technician|85711\n2|30|F|other\n")
    with pytest.raises(DataError, match=r"u\.user:1: the line has 4 fields separated by '\|', "
                                        r"expected 5|u\.user:2: column 'zip': value is missing"):
        load_movielens_100k_features("users", path=tmp_path, download=False)
    write(folder / "u.user", "1|24|M|technician|85711\n1|30|F|other|01234\n")
    with pytest.raises(DataError, match=r"u\.user:2: column 'user': id 1 is repeated"):
        load_movielens_100k_features("users", path=tmp_path, download=False)
    flags = "|".join(["0"] * 18)
    write(folder / "u.item", f"1|Toy Story (1995)|01-Jan-1995||url|1|{flags}\n"
                             f"2|GoldenEye (1995)|01-Jan-1995||url|0|{flags[:-1]}2\n")
    with pytest.raises(DataError, match=r"u\.item:2: column 'Western': genre flag '2' is not 0 "
                                        r"or 1$"):
        load_movielens_100k_features("items", path=tmp_path, download=False)
    write(folder / "u.item", f"1|Toy Story (1995)|01-Jan-1995||url|1|{flags}\n"
                             f"2|Unknown||||1|{flags}\n")
    items = load_movielens_100k_features("items", path=folder, download=False,
                                         year_buckets=None).fit()
    assert labels(items) == [("genre", "unknown"), ("year", None)]
    with pytest.raises(InvalidParameterError, match=r"side must be 'users' or 'items'"):
        load_movielens_100k_features("movies", path=folder)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match=r"year_buckets|buckets\['year'\] must be"):
        load_movielens_100k_features("items", path=folder, year_buckets=1)

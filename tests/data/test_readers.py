"""read_interactions and detect_format on small files written the way users write them."""

from __future__ import annotations

import gzip
import os
import stat
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latentrec.data import Interactions, detect_format, read_interactions
from latentrec.errors import DataError, InvalidParameterError

ROWS = [("ann", "x", "5", "100"), ("bob", "x", "3", "200"), ("ann", "y", "4.5", "300")]
EXPECTED = {
    "user": ["ann", "bob", "ann"],
    "item": ["x", "x", "y"],
    "rating": [5.0, 3.0, 4.5],
    "timestamp": [100, 200, 300],
}


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode("utf-8")
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as handle:
            handle.write(text)
    else:
        path.write_bytes(text)
    return path


def table(
    sep: str,
    *,
    header: str | None = "user,item,rating,timestamp",
    rows: list[tuple[str, ...]] = ROWS,
    newline: str = "\n",
) -> str:
    lines = [] if header is None else [header.replace(",", sep)]
    lines += [sep.join(row) for row in rows]
    return newline.join(lines) + newline


def error_text(error: pytest.ExceptionInfo[BaseException]) -> str:
    """The message, checked to be one line with no chained pandas exception."""
    text = str(error.value)
    assert "\n" not in text
    assert error.value.__cause__ is None
    assert error.value.__context__ is None or error.value.__suppress_context__
    return text


# ---------------------------------------------------------------------- layouts
@pytest.mark.parametrize("sep", [",", "\t", ";", "|", " ", "::"])
@pytest.mark.parametrize("header", [True, False])
def test_separators_with_and_without_header(tmp_path: Path, sep: str, header: bool) -> None:
    text = table(sep, header="user,item,rating,timestamp" if header else None)
    data = read_interactions(write(tmp_path / "ratings.txt", text))
    assert data.to_frame().to_dict("list") == EXPECTED
    layout = detect_format(tmp_path / "ratings.txt")
    assert layout.header is header
    assert layout.sep == (r"\s+" if sep == " " else sep)


def test_runs_of_spaces_and_tabs(tmp_path: Path) -> None:
    text = "ann   x\t5  100\n  bob x 3 200\nann y 4.5   300   \n"
    data = read_interactions(write(tmp_path / "r.txt", text))
    assert data.to_frame().to_dict("list") == EXPECTED


@pytest.mark.parametrize("name", ["r.csv", "r.csv.gz"])
def test_crlf_gzip_bom_and_blank_lines(tmp_path: Path, name: str) -> None:
    text = "\ufeff" + table(",", newline="\r\n") + "\r\n"
    data = read_interactions(write(tmp_path / name, text))
    assert data.to_frame().to_dict("list") == EXPECTED
    assert detect_format(tmp_path / name).user_col == "user"  # no BOM stuck to the name


def test_broken_gzip_files(tmp_path: Path) -> None:
    plain = tmp_path / "plain.csv.gz"
    plain.write_bytes(b"user,item,rating\nann,x,5\n")
    with pytest.raises(
        DataError, match=r"plain\.csv\.gz: not a readable gzip file \(Not a gzipped"
    ):
        read_interactions(plain)
    rows = "".join(f"u{i},x,5\n" for i in range(3000))
    whole = gzip.compress(f"user,item,rating\n{rows}".encode())
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"cut\.csv\.gz: not a readable gzip file \(Compressed"):
        read_interactions(cut)


def test_blank_lines_inside_keep_line_numbers(tmp_path: Path) -> None:
    text = "user,item,rating\nann,x,5\n\nbob,x,3\n\n\nbob,y,oops\n"
    with pytest.raises(DataError, match=r"r\.csv:7: column 'rating': 'oops' is not a number$"):
        read_interactions(write(tmp_path / "r.csv", text))
    data = read_interactions(write(tmp_path / "r.csv", text.replace("oops", "1")))
    assert len(data) == 3


def test_quoted_fields(tmp_path: Path) -> None:
    text = 'user,item,rating\n"Smith, Ann","The Film, Part 2",5\n"Bob ""B""",x,"3"\n'
    data = read_interactions(write(tmp_path / "r.csv", text))
    assert data.users.to_list() == ['Bob "B"', "Smith, Ann"]
    assert data.items.to_list() == ["The Film, Part 2", "x"]


def test_semicolons_with_decimal_commas_are_not_taken_for_commas(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"r\.txt:1: column 'rating': '3,5' is not a number$"):
        read_interactions(write(tmp_path / "r.txt", "1;2;3,5\n2;2;4,0\n"))


def test_integer_ids_stay_integers(tmp_path: Path) -> None:
    data = read_interactions(write(tmp_path / "r.csv", "1,10,5\n2,10,3\n2,-7,1\n"))
    assert data.users.to_list() == [1, 2] and data.items.to_list() == [-7, 10]
    assert data.users.is_integer and data.items.is_integer


def test_mixed_ids_are_all_text(tmp_path: Path) -> None:
    data = read_interactions(write(tmp_path / "r.csv", "user,item,rating\n1,10,5\nu2,10,3\n"))
    assert data.users.to_list() == ["1", "u2"]
    assert data.items.to_list() == [10]
    assert data.users.index_of([1, "u2"]).tolist() == [0, 1]


def test_ids_that_look_like_decimals_keep_their_spelling(tmp_path: Path) -> None:
    data = read_interactions(write(tmp_path / "r.csv", "user,item,rating\n1.5,a,5\n1,b,3\n"))
    assert data.users.to_list() == ["1", "1.5"]


def test_iso_dates_as_timestamps(tmp_path: Path) -> None:
    text = "user,item,rating,date\nann,x,5,2020-01-01\nbob,x,3,2021-01-01T00:00:00Z\n"
    data = read_interactions(write(tmp_path / "r.csv", text))
    assert data.timestamps is not None
    assert data.timestamps.tolist() == [1577836800, 1609459200]


def test_implicit_pairs_and_weights(tmp_path: Path) -> None:
    pairs = read_interactions(write(tmp_path / "p.csv", "ann,x\nbob,x\n"), feedback="implicit")
    assert pairs.feedback == "implicit" and pairs.values is None and len(pairs) == 2
    counts = read_interactions(
        write(tmp_path / "c.tsv", "user\titem\tplays\nann\tx\t7\n"), feedback="implicit"
    )
    assert counts.to_frame().to_dict("list") == {"user": ["ann"], "item": ["x"], "weight": [7.0]}


def test_columns_found_by_name_in_any_order(tmp_path: Path) -> None:
    text = "timestamp,rating,movieId,userId\n100,5,x,ann\n200,3,x,bob\n300,4.5,y,ann\n"
    data = read_interactions(write(tmp_path / "r.csv", text))
    assert data.to_frame().to_dict("list") == EXPECTED


def test_overrides(tmp_path: Path) -> None:
    path = write(tmp_path / "r.txt", "x|ann|1|5\nx|bob|2|3\n")
    data = read_interactions(path, user_col=1, item_col=0, value_col=3, timestamp_col=2)
    assert data.to_frame().to_dict("list") == {
        "user": ["ann", "bob"],
        "item": ["x", "x"],
        "rating": [5.0, 3.0],
        "timestamp": [1, 2],
    }
    named = write(tmp_path / "n.csv", "who,what,score\nann,x,5\n")
    data = read_interactions(named, user_col="who", item_col="what", value_col="score")
    assert data.to_frame().to_dict("list") == {"user": ["ann"], "item": ["x"], "rating": [5.0]}
    # sep and header overrides
    odd = write(tmp_path / "o.txt", "a:b:1\nc:d:2\n")
    assert len(read_interactions(odd, sep=":")) == 2
    headed = write(tmp_path / "h.csv", "u,i,r\n1,2,3\n")
    assert read_interactions(headed, header=True).users.to_list() == [1]
    with pytest.raises(DataError, match=r"h\.csv:1: column 'rating': 'r' is not a number$"):
        read_interactions(headed, header=False)


# ---------------------------------------------------------------------- MovieLens and Parquet
def test_movielens_100k_by_name(tmp_path: Path) -> None:
    for name in ("u.data", "u1.base", "ua.test"):
        path = write(tmp_path / name, "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
        layout = detect_format(path)
        assert layout.name == "ml-100k"
        data = read_interactions(path)
        assert data.timestamps is not None and data.timestamps.tolist() == [881250949, 891717742]


def test_movielens_1m_and_latest(tmp_path: Path) -> None:
    dat = write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n")
    assert detect_format(dat).name == "ml-1m"
    assert read_interactions(dat).to_frame().rating.tolist() == [5.0, 3.0]
    latest = write(
        tmp_path / "ratings.csv",
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.0,964981247\n",
    )
    layout = detect_format(latest)
    assert (
        layout.header,
        layout.user_col,
        layout.item_col,
        layout.value_col,
        layout.timestamp_col,
    ) == (True, "userId", "movieId", "rating", "timestamp")
    assert read_interactions(latest, format="ml-latest").items.to_list() == [1, 3]


def test_double_colon_files_with_colons_inside_fields(tmp_path: Path) -> None:
    # the fast path splits on ':'; a ':' inside an id sends the file to the exact parser
    for text in ("a:b::x::5\nbob::x::3\n", "bob::x::3\na:b::x::5\n"):
        data = read_interactions(write(tmp_path / "r.dat", text))
        assert sorted(data.users.to_list()) == ["a:b", "bob"]
    short = write(tmp_path / "s.dat", "1::10::5::100\n2::10::3\n")
    with pytest.raises(
        DataError, match=r"s\.dat:2: column 'timestamp': the line has 3 fields, expected 4$"
    ):
        read_interactions(short)
    long = write(tmp_path / "l.dat", "1::10::5::100\n2::10::3::200::7\n")
    with pytest.raises(DataError, match=r"l\.dat:2: the line has 5 fields, expected 4$"):
        read_interactions(long)


def test_explicit_formats(tmp_path: Path) -> None:
    tsv = write(tmp_path / "data.txt", "1\t2\t3\t4\n")
    assert len(read_interactions(tsv, format="tsv")) == 1
    assert len(read_interactions(tsv, format="ml-100k")) == 1
    csv = write(tmp_path / "u.data", "1,2,3\n")  # the name says MovieLens, the caller knows
    assert read_interactions(csv, format="csv").to_frame().rating.tolist() == [3.0]


def test_parquet_round_trip(tmp_path: Path, tiny: Interactions) -> None:
    path = tmp_path / "tiny.parquet"
    tiny.to_frame().to_parquet(path)
    assert detect_format(path).name == "parquet"
    again = read_interactions(path)
    assert again.to_frame().equals(tiny.to_frame())


def test_parquet_columns_by_name_with_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    pd.DataFrame(
        {
            "ts": pd.to_datetime(["2020-01-01", "2021-01-01"], utc=True),
            "score": [4.0, 2.5],
            "item_id": [7, 8],
            "user_id": ["a", "b"],
        }
    ).to_parquet(path)
    data = read_interactions(path, timestamp_col="ts")
    assert data.to_frame().to_dict("list") == {
        "user": ["a", "b"],
        "item": [7, 8],
        "rating": [4.0, 2.5],
        "timestamp": [1577836800, 1609459200],
    }
    pairs = tmp_path / "pairs.parquet"
    pd.DataFrame({"u": [1, 2], "i": [3, 3]}).to_parquet(pairs)
    assert len(read_interactions(pairs, feedback="implicit")) == 2


def test_parquet_errors(tmp_path: Path) -> None:
    broken = write(tmp_path / "broken.parquet", b"PAR1 not really")
    with pytest.raises(DataError, match=r"broken\.parquet: not a readable Parquet file \(") as info:
        read_interactions(broken)
    error_text(info)
    path = tmp_path / "bad.parquet"
    pd.DataFrame({"user": [1, 2], "item": [1, 1], "rating": [1.0, np.nan]}).to_parquet(path)
    with pytest.raises(DataError, match=r"bad\.parquet:2: column 'rating': value is missing$"):
        read_interactions(path)
    empty = tmp_path / "empty.parquet"
    pd.DataFrame({"user": [], "item": [], "rating": []}).to_parquet(empty)
    with pytest.raises(
        DataError, match=r"empty\.parquet: no interactions \(the file has no rows\)$"
    ):
        read_interactions(empty)


# ---------------------------------------------------------------------- malformed files
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("user,item,rating\nann,x,5\nbob,x,3,9\n", r"r\.csv:3: the line has 4 fields, expected 3$"),
        ("ann,x,5\nbob,x,3\ncat,x,1,2\n", r"r\.csv:3: the line has 4 fields, expected 3$"),
        (
            "user,item,rating\nann,x,5\nbob,x\n",
            r"r\.csv:3: column 'rating': the line has 2 fields, expected 3$",
        ),
        ("ann,x,5\nbob\ncat,x,1\n", r"r\.csv:2: column 'item': the line has 1 fields, expected 3$"),
        ("user,item,rating\nann,x,\n", r"r\.csv:2: column 'rating': value is missing$"),
        ("user,item,rating\nann,,5\n", r"r\.csv:2: column 'item': id is missing$"),
        (
            "user,item,rating\nann,x,abc\nbob,x,3\n",
            r"r\.csv:2: column 'rating': 'abc' is not a number$",
        ),
        (
            "user,item,rating\nann,x,1\nbob,x,NaN\n",
            r"r\.csv:3: column 'rating': 'NaN' is not a number$",
        ),
        (
            "user,item,rating\nann,x,inf\n",
            r"r\.csv:2: column 'rating': value is inf, not a finite number$",
        ),
        ("user,item,rating\nann,x,True\n", r"r\.csv:2: column 'rating': 'True' is not a number$"),
        ('user,item,rating\nann,x,5\nbob,"x,3\n', r"r\.csv:3: a quoted field is never closed$"),
        (
            "user,item,rating,timestamp\nann,x,5,100\nbob,x,3,later\n",
            r"r\.csv:3: column 'timestamp': 'later' is not a timestamp \(seconds or an ISO date\)$",
        ),
        (
            "user,item,rating\nann,x,5\nann,x,3\n",
            r"r\.csv:3: duplicate \(user, item\) pair \('ann', 'x'\), first seen on line 2; ",
        ),
        (
            "user,item\nann,x\n",
            r"r\.csv: has no rating column; pass feedback='implicit' \(--implicit\) for bare ",
        ),
        ("1,2,3,4,5\n", r"r\.csv: expected at most 4 columns, found 5; pass user_col, "),
    ],
)
def test_malformed_rows_give_one_line_naming_the_place(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(DataError, match=message) as info:
        read_interactions(write(tmp_path / "r.csv", text))
    error_text(info)


def test_error_attributes(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item,rating\nann,x,5\nbob,x,bad\n")
    with pytest.raises(DataError) as info:
        read_interactions(path)
    assert (info.value.source, info.value.line, info.value.column) == (str(path), 3, "rating")
    assert isinstance(info.value, ValueError)


def test_error_far_down_a_numeric_file_is_located(tmp_path: Path) -> None:
    rows = "".join(f"{u}\t{u % 97}\t{u % 5 + 1}\t{1000 + u}\n" for u in range(3000))
    path = write(tmp_path / "u.data", rows + "5000\t1\tfive\t99\n")
    with pytest.raises(DataError, match=r"u\.data:3001: column 'rating': 'five' is not a number$"):
        read_interactions(path)


def test_column_types_that_change_far_down_the_file(tmp_path: Path) -> None:
    # pandas reads big files in chunks; a text id after 2**18 numeric ones must not be mangled
    n = 2**18 + 10
    rows = "\n".join(f"{u},{u % 7},4" for u in range(n))
    data = read_interactions(
        write(tmp_path / "big.csv", "user,item,rating\n" + rows + "\nzed,1,5\n")
    )
    assert len(data) == n + 1
    assert not data.users.is_integer
    assert data.users.ids_of(data.users.index_of(["zed", 0, 262153])).tolist() == [
        "zed",
        "0",
        "262153",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"r\.csv: no interactions \(the file is empty\)$"),
        ("\n\n  \n", r"r\.csv: no interactions \(the file is empty\)$"),
        ("user,item,rating\n", r"r\.csv: no interactions \(the file has only a header\)$"),
        ("user,item,rating\n\n", r"r\.csv: no interactions \(the file has only a header\)$"),
    ],
)
def test_empty_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataError, match=message) as info:
        read_interactions(write(tmp_path / "r.csv", text))
    error_text(info)


@pytest.mark.parametrize("fmt", ["ml-100k", "ml-1m", "ml-latest", "tsv"])
@pytest.mark.parametrize("text", ["", "\n\n"])
def test_empty_files_with_a_named_format(tmp_path: Path, fmt: str, text: str) -> None:
    with pytest.raises(DataError, match=r"e\.txt: no interactions \(the file is empty\)$") as info:
        read_interactions(write(tmp_path / "e.txt", text), format=fmt)
    error_text(info)


def test_an_empty_file_with_a_header_override(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"e\.txt: no interactions \(the file is empty\)$") as info:
        read_interactions(write(tmp_path / "e.txt", ""), format="ml-100k", header=True)
    error_text(info)


def test_layout_errors(tmp_path: Path) -> None:
    one = write(tmp_path / "one.csv", "ann\nbob\n")
    with pytest.raises(DataError, match=r"one\.csv: cannot tell the column separator; pass sep"):
        read_interactions(one)
    with pytest.raises(DataError, match=r"one\.csv:1: needs at least two columns \(user, item\)$"):
        read_interactions(one, sep=",")
    path = write(tmp_path / "r.csv", "user,item,rating\nann,x,5\n")
    with pytest.raises(
        DataError,
        match=r"r\.csv: missing column 'stars'; found columns \['user', 'item', 'rating'\]$",
    ):
        read_interactions(path, value_col="stars")
    with pytest.raises(
        DataError, match=r"r\.csv: has 3 columns, so there is no column 7 for the timestamp$"
    ):
        read_interactions(path, timestamp_col=7)


def test_argument_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item,rating\nann,x,5\n")
    with pytest.raises(FileNotFoundError, match=r"nope\.csv: no such file$"):
        read_interactions(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a directory, expected a file of interactions$"):
        read_interactions(tmp_path)
    with pytest.raises(TypeError, match="^path must be a str or os.PathLike, got int$"):
        read_interactions(3)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match=r"^format must be one of \['auto', 'csv'"):
        read_interactions(path, format="excel")
    with pytest.raises(
        InvalidParameterError,
        match=r"^feedback must be one of \['explicit', 'implicit'\], got 'likes'$",
    ):
        read_interactions(path, feedback="likes")  # type: ignore[arg-type]
    with pytest.raises(
        InvalidParameterError,
        match=r"^duplicates must be one of \['error', 'last', 'mean', 'sum'\], got 'max'$",
    ):
        read_interactions(path, duplicates="max")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="^sep must be a non-empty string, got ''$"):
        read_interactions(path, sep="")


def test_duplicate_policies_from_a_file(tmp_path: Path) -> None:
    text = "user,item,rating,timestamp\nann,x,1,10\nbob,x,4,5\nann,x,3,30\n"
    path = write(tmp_path / "r.csv", text)
    mean = read_interactions(path, duplicates="mean").to_frame()
    assert mean.to_dict("list") == {
        "user": ["ann", "bob"],
        "item": ["x", "x"],
        "rating": [2.0, 4.0],
        "timestamp": [30, 5],
    }
    last = read_interactions(path, duplicates="last").to_frame()
    assert last.to_dict("list") == {
        "user": ["bob", "ann"],
        "item": ["x", "x"],
        "rating": [4.0, 3.0],
        "timestamp": [5, 30],
    }


# ---------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_movielens_100k(datasets_dir: Path) -> None:
    data = read_interactions(datasets_dir / "ml-100k" / "u.data")
    assert (len(data), data.n_users, data.n_items) == (100_000, 943, 1682)
    assert data.rating_range() == (1.0, 5.0)
    assert data.users.is_integer and data.timestamps is not None
    base = read_interactions(datasets_dir / "ml-100k" / "u1.base")
    assert (len(base), base.n_users) == (80_000, 943)


@pytest.mark.realdata
def test_lastfm_user_artists(datasets_dir: Path) -> None:
    path = datasets_dir / "lastfm-hetrec" / "user_artists.dat"
    layout = detect_format(path)
    assert (layout.sep, layout.header, layout.value_col) == ("\t", True, "weight")
    data = read_interactions(path, feedback="implicit")
    assert (len(data), data.n_users, data.n_items) == (92_834, 1892, 17_632)
    assert data.values is not None and float(data.values.sum(dtype=np.float64)) == 69_183_975
    assert data.users.is_integer and data.timestamps is None


@pytest.mark.realdata
def test_filmtrust_duplicates(datasets_dir: Path) -> None:
    path = datasets_dir / "filmtrust" / "ratings.txt"
    assert detect_format(path).sep == r"\s+"
    with pytest.raises(
        DataError,
        match=r"ratings\.txt:7489: duplicate \(user, item\) pair \(308, 12\), "
        r"first seen on line 7414; ",
    ) as info:
        read_interactions(path)
    error_text(info)
    data = read_interactions(path, duplicates="mean")
    assert (len(data), data.n_users, data.n_items) == (35_494, 1508, 2071)
    frame = data.to_frame().set_index(["user", "item"]).rating
    assert frame[(308, 207)] == 3.25 and frame[(308, 235)] == 2.75 and frame[(308, 12)] == 4.0


def test_a_count_column_read_as_ratings_warns(tmp_path: Path) -> None:
    from latentrec.errors import DataWarning

    named = tmp_path / "plays.csv"
    named.write_text("user,item,plays\na,x,3\nb,y,1\n")
    with pytest.warns(DataWarning, match="column 'plays' is named like a count"):
        read_interactions(named)
    heavy = tmp_path / "weights.csv"
    heavy.write_text("user,item,score\n" + "".join(f"u{i},i{i},{i * 37}\n" for i in range(40)))
    with pytest.warns(DataWarning, match="holds whole numbers up to 1,443"):
        read_interactions(heavy)
    read_interactions(named, feedback="implicit")  # no warning: counts read as counts


# ---------------------------------------------------------------------- ids keep their spelling
PADDED = [("01", "0042", "5"), ("1", "42", "4"), ("001", "42.0", "3")]


@pytest.mark.parametrize("sep", [",", "\t", ";", "|", " ", "::"])
@pytest.mark.parametrize("name", ["r.txt", "r.txt.gz"])
def test_distinct_spellings_of_ids_are_never_merged(tmp_path: Path, sep: str, name: str) -> None:
    # users 01, 1, 001 were one user 1; items 0042, 42, 42.0 one item 42 (and then a duplicate)
    data = read_interactions(write(tmp_path / name, table(sep, header=None, rows=PADDED)))
    assert (len(data), data.n_users, data.n_items) == (3, 3, 3)
    assert data.users.to_list() == ["001", "01", "1"]
    assert data.items.to_list() == ["0042", "42", "42.0"]


def test_distinct_spellings_in_movielens_and_parquet_files(tmp_path: Path) -> None:
    path = write(tmp_path / "u.data", "01\t0042\t5\t1\n1\t42\t4\t2\n")
    data = read_interactions(path)
    assert data.users.to_list() == ["01", "1"] and data.items.to_list() == ["0042", "42"]
    dat = write(tmp_path / "ratings.dat", "01::0042::5::1\n1::42::4::2\n")
    assert read_interactions(dat).users.to_list() == ["01", "1"]
    parquet = tmp_path / "r.parquet"
    pd.DataFrame({"user": ["01", "1"], "item": ["42", "42.0"], "rating": [1.0, 2.0]}).to_parquet(
        parquet)
    data = read_interactions(parquet)
    assert data.users.to_list() == ["01", "1"] and data.items.to_list() == ["42", "42.0"]


@pytest.mark.parametrize(
    ("spelling", "kept"),
    [("+7", "+7"), ("-0", "-0"), ("07", "07"), ('" 7"', " 7"), ("7 ", "7 "), ("7.0", "7.0"),
     ("7e0", "7e0")],
)
def test_one_non_canonical_integer_keeps_all_ids_as_text(
    tmp_path: Path, spelling: str, kept: str
) -> None:
    path = write(tmp_path / "r.csv", f"user,item,rating\n7,a,1\n{spelling},b,2\n0,c,3\n")
    data = read_interactions(path)
    assert not data.users.is_integer
    assert sorted(data.users.to_list()) == sorted(["7", kept, "0"])


def test_a_zero_padded_id_far_down_a_numeric_file(tmp_path: Path) -> None:
    # past pandas' first chunk and past the first block the spelling scan reads
    rows = "".join(f"{u},{u % 11},4\n" for u in range(150_000))
    data = read_interactions(write(tmp_path / "r.csv", rows + "007,3,5\n"))
    assert not data.users.is_integer and data.items.is_integer
    assert data.users.index_of(["7", "007"]).tolist() == [
        data.users.index_of(["7"])[0], data.users.index_of(["007"])[0]]
    assert data.n_users == 150_001


def test_canonical_integers_stay_integers_when_the_file_has_signs_elsewhere(
    tmp_path: Path,
) -> None:
    # a '+' in a date makes the fast spelling scan unsure; the ids, read as text, still are ints
    text = "user,item,rating,date\n1,10,5,2020-01-01T00:00:00+01:00\n2,-3,4,2021-01-01\n"
    data = read_interactions(write(tmp_path / "r.csv", text))
    assert data.users.to_list() == [1, 2] and data.items.to_list() == [-3, 10]
    assert data.users.is_integer and data.items.is_integer


# ---------------------------------------------------------------------- separators
@pytest.mark.parametrize(
    ("sep", "message"),
    [
        ("(a|", r"^sep '\(a\|' is not a valid regular expression \(missing \), unterminated "
         r"subpattern at position 0\); a separator longer than one character is a regular "
         r"expression$"),
        ("(,)", r"^sep '\(,\)' has a capturing group; write \(\?:\.\.\.\) instead of \(\.\.\.\)$"),
        ("x*", r"^sep 'x\*' matches an empty string$"),
        ("\n", r"^sep cannot be a line break or a quote, got '\\n'$"),
        (5, r"^sep must be a non-empty string, got 5$"),
    ],
)
def test_bad_separators_give_one_line_naming_the_argument(
    tmp_path: Path, sep: object, message: str
) -> None:
    path = write(tmp_path / "r.csv", "user,item,rating\nann,x,5\n")
    with pytest.raises(InvalidParameterError, match=message) as info:
        read_interactions(path, sep=sep)  # type: ignore[arg-type]
    error_text(info)
    with pytest.raises(InvalidParameterError, match=message):
        detect_format(path, sep=sep)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["auto", "tsv", "csv"])
def test_a_backslash_t_separator_means_a_tab(tmp_path: Path, fmt: str) -> None:
    # a shell passes --sep '\t' as backslash and t; pandas took it for a regex and warned
    path = write(tmp_path / "r.txt", table("\t"))
    data = read_interactions(path, sep="\\t", format=fmt)  # warnings are errors in the tests
    assert data.to_frame().to_dict("list") == EXPECTED
    assert detect_format(path, sep="\\t").sep == "\t"
    headerless = write(tmp_path / "u.data", "1\t2\t3\t4\n")
    assert len(read_interactions(headerless, sep="\\t", format="ml-100k")) == 1


@pytest.mark.parametrize(("sep", "written"), [("\\|", "|"), (r"\s*;\s*", " ; "), ("--", "--")])
def test_escaped_and_regular_expression_separators(
    tmp_path: Path, sep: str, written: str
) -> None:
    data = read_interactions(write(tmp_path / "r.txt", table(written)), sep=sep)
    assert data.to_frame().to_dict("list") == EXPECTED


# ---------------------------------------------------------------------- values out of range
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1e308", r"/r\.csv:3: column 'rating': value 1e\+308 is out of range; explicit ratings "
         r"must lie within ±1,000,000$"),
        ("-1e308", r"/r\.csv:3: column 'rating': value -1e\+308 is out of range"),
        ("1e39", r"/r\.csv:3: column 'rating': value 1e\+39 is out of range"),
        ("1e400", r"/r\.csv:3: column 'rating': value is inf, not a finite number$"),
        ("-inf", r"/r\.csv:3: column 'rating': value is -inf, not a finite number$"),
        ("nan", r"/r\.csv:3: column 'rating': 'nan' is not a number$"),
    ],
)
def test_ratings_out_of_range_are_refused_naming_the_line(
    tmp_path: Path, value: str, message: str
) -> None:
    path = write(tmp_path / "r.csv", f"user,item,rating\nann,x,5\nbob,x,{value}\n")
    with pytest.raises(DataError, match=message) as info:
        read_interactions(path)
    error_text(info)


def test_weights_out_of_range_are_refused_naming_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "w.csv", "user,item,weight\nann,x,5\nbob,x,1e12\n")
    with pytest.raises(DataError, match=r"/w\.csv:3: column 'weight': value 1e\+12 is out of "
                       r"range; implicit weights must lie within 0\.\.1,000,000,000$"):
        read_interactions(path, feedback="implicit")


# ---------------------------------------------------------------------- what is not a file
def read_in_a_thread(path: Path, call: object = read_interactions) -> BaseException | None:
    """Call ``call(path)`` and return what it raised; fail, not hang, if it blocks."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            call(path)  # type: ignore[operator]
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():
        if stat.S_ISFIFO(os.stat(path).st_mode):
            with open(path, "w"):  # a writer that closes at once lets the reader go
                pass
            thread.join(10)
        pytest.fail(f"reading {path} blocked")
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
@pytest.mark.parametrize("call", [read_interactions, detect_format])
def test_a_named_pipe_is_refused_not_waited_on(tmp_path: Path, call: object) -> None:
    fifo = tmp_path / "ratings.csv"
    os.mkfifo(fifo)
    error = read_in_a_thread(fifo, call)
    assert isinstance(error, DataError)
    assert str(error) == (f"{fifo}: is a named pipe (FIFO), not a regular file; save the "
                          f"interactions to a file and read that")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_a_device_is_refused_at_once(device: str) -> None:
    if not Path(device).exists():
        pytest.skip(f"no {device}")
    started = time.perf_counter()
    error = read_in_a_thread(Path(device))
    assert isinstance(error, DataError)
    assert str(error) == (f"{device}: is a character device, not a regular file; save the "
                          f"interactions to a file and read that")
    assert time.perf_counter() - started < 5


def test_a_file_without_line_ends_is_not_read_whole(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "1," * (1 << 20))
    with pytest.raises(DataError, match=r"/r\.csv:1: the line is longer than 1,048,576 "
                       r"characters; not a text file of interactions$"):
        read_interactions(path)


def test_binary_and_utf16_files_are_named_as_such(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item,rating\nann,x,5\n".encode("utf-16"))
    with pytest.raises(DataError, match=r"r\.csv:1: holds NUL bytes; not a text file of "
                       r"interactions \(binary, or text in UTF-16\? save it as UTF-8\)$"):
        read_interactions(path)


# ---------------------------------------------------------------------- Parquet lists
def test_a_parquet_list_column_names_the_file_and_column(tmp_path: Path) -> None:
    # was: unhashable type: 'numpy.ndarray', naming neither
    path = tmp_path / "lists.parquet"
    pd.DataFrame({"user": [1, 2], "item": [[10, 11], [12]], "rating": [4.0, 5.0]}).to_parquet(path)
    with pytest.raises(DataError) as info:
        read_interactions(path)
    assert error_text(info) == (
        f"{path}:1: column 'item': holds a list ([10, 11]) where a single id was expected; "
        f"a column of lists must be exploded to one row per value first"
    )
    ratings = tmp_path / "ratings.parquet"
    pd.DataFrame({"user": [1, 2], "item": [1, 2], "rating": [[4.0], [5.0]]}).to_parquet(ratings)
    with pytest.raises(DataError, match=r"ratings\.parquet:1: column 'rating': holds a list "
                       r"\(\[4\.0\]\) where a number was expected"):
        read_interactions(ratings)

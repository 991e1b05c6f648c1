"""read_interactions and detect_format on small files written the way users write them."""

from __future__ import annotations

import gzip
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

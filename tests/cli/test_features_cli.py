"""Side features and cold start from the command line: `train --item-features`, `recommend`,
`predict` and `similar` for ids known only by their features, `add-items`/`add-users`, and the
one-line errors of each (in-process with CliRunner, and as a real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from latentrec.cli.main import cli

# torch warns once per process when latentrec.models.factor.hybrid_table builds its CSR tensor
#: a model kind that learns from user and item features
HYBRID = "ials"
GENRES = ("A", "B", "C")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def genre_of_item(item: str) -> str:
    return GENRES[int(item.lstrip("ic")) % 3]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Users who each play items of one genre; item features name every item's genre, and
    the cold items c0..c5 (two per genre) have no plays at all."""
    plays = ["user,item"]
    for user in range(45):
        for step in range(6):
            item = (user % 3) + 3 * ((user + step) % 10)  # of the 10 items of its genre
            plays.append(f"u{user},i{item}")
    paths = {"plays": tmp_path / "plays.csv", "items": tmp_path / "items.csv",
             "users": tmp_path / "users.csv", "new": tmp_path / "new_items.csv"}
    paths["plays"].write_text("\n".join(plays) + "\n")
    items = [f"i{i}" for i in range(30)] + [f"c{i}" for i in range(6)]
    paths["items"].write_text("item,genre\n" + "".join(f"{i},{genre_of_item(i)}\n"
                                                      for i in items))
    paths["users"].write_text("user,favourite\n" + "".join(f"u{u},{GENRES[u % 3]}\n"
                                                           for u in range(45)))
    paths["new"].write_text("genre,item\nA,n0\nB,n1\n")  # ids not in the first column
    return paths


@pytest.fixture
def hybrid(files: dict[str, Path], tmp_path: Path) -> Path:
    model_dir = tmp_path / "model"
    code, out, err = run("train", str(files["plays"]), "-o", str(model_dir), "--implicit",
                         "--model", HYBRID, "--factors", "8", "--epochs", "8", "--seed", "1",
                         "--item-features", str(files["items"]), "--quiet")
    assert code == 0, err
    assert "6 items known only by their features joined the model" in out
    return model_dir


def test_cold_items_are_recommended_predicted_and_similar(hybrid: Path) -> None:
    code, out, err = run("recommend", str(hybrid), "--user", "u0", "-k", "36", "--json")
    assert code == 0, err
    ranked = [entry["item"] for entry in json.loads(out)["items"]]
    cold = [item for item in ranked if item.startswith("c")]
    assert len(cold) == 6  # every cold item can be recommended
    # u0 plays genre A: the cold items of genre A come first among the cold ones
    assert [genre_of_item(item) for item in cold[:2]] == ["A", "A"]
    code, out, err = run("similar", str(hybrid), "--item", "c1", "-k", "5", "--json")
    assert code == 0, err
    neighbours = [entry["item"] for entry in json.loads(out)["items"]]
    assert {genre_of_item(item) for item in neighbours} == {genre_of_item("c1")}
    code, out, err = run("predict", str(hybrid), "--user", "u0", "--item", "c0", "--json")
    assert code == 0, err
    liked = json.loads(out)["prediction"]
    code, out, _ = run("predict", str(hybrid), "--user", "u0", "--item", "c1", "--json")
    assert liked > json.loads(out)["prediction"]  # c0 is genre A, c1 genre B


def test_train_json_counts_cold_ids(files: dict[str, Path], tmp_path: Path) -> None:
    code, out, err = run("train", str(files["plays"]), "-o", str(tmp_path / "m"), "--implicit",
                         "--model", HYBRID, "--factors", "4", "--epochs", "2", "--json",
                         "--item-features", str(files["items"]),
                         "--user-features", str(files["users"]))
    assert code == 0, err
    summary = json.loads(out)
    assert summary["items"] == 30 and summary["cold_items"] == 6
    assert summary["users"] == 45 and summary["cold_users"] == 0


def test_add_items_extends_the_model_in_place(hybrid: Path, files: dict[str, Path]) -> None:
    code, out, err = run("add-items", str(hybrid), str(files["new"]), "--item-features-id",
                         "item")
    assert code == 0, err
    assert out.strip() == f"added 2 items to the {HYBRID} model (38 items); saved to {hybrid}"
    code, out, err = run("similar", str(hybrid), "--item", "n0", "-k", "4", "--json")
    assert code == 0, err
    assert {genre_of_item(e["item"]) for e in json.loads(out)["items"]} == {"A"}
    code, out, _ = run("recommend", str(hybrid), "--user", "u0", "-k", "38", "--json")
    assert "n0" in [entry["item"] for entry in json.loads(out)["items"]]
    # the same items again: refused in one line, the saved model unchanged
    before = (hybrid / "model.json").read_bytes()
    code, out, err = run("add-items", str(hybrid), str(files["new"]), "--item-features-id",
                         "item")
    assert code == 1 and out == ""
    assert err == "latentrec: error: items already in the model: ['n0', 'n1']\n"
    assert (hybrid / "model.json").read_bytes() == before


def test_add_items_to_another_directory(hybrid: Path, files: dict[str, Path],
                                        tmp_path: Path) -> None:
    extended = tmp_path / "extended"
    code, out, err = run("add-items", str(hybrid), str(files["new"]), "--item-features-id",
                         "item", "-o", str(extended), "--json")
    assert code == 0, err
    assert json.loads(out) == {"added": 2, "items": 38, "model_dir": str(extended)}
    assert run("similar", str(extended), "--item", "n1")[0] == 0
    code, _, err = run("similar", str(hybrid), "--item", "n1")
    assert code == 1 and "unknown item: 'n1'" in err  # the original model is untouched


@pytest.mark.parametrize(
    ("content", "message"),
    [("item,genre\ni0,A\ni1,B,extra\n", "items.csv:3: the line has 3 fields, expected 2"),
     ("item,genre\ni0,A\ni0,B\n", "items.csv:3"),
     ("", "items.csv")])
def test_bad_feature_files_are_one_line(content: str, message: str, files: dict[str, Path],
                                        tmp_path: Path) -> None:
    files["items"].write_text(content)
    model_dir = tmp_path / "bad-model"
    code, out, err = run("train", str(files["plays"]), "-o", str(model_dir), "--implicit",
                         "--model", HYBRID, "--item-features", str(files["items"]),
                         "--quiet")
    assert code == 1 and out == ""
    assert err.startswith("latentrec: error: ") and err.count("\n") == 1, err
    assert message in err
    assert not model_dir.exists()


def test_feature_option_errors(files: dict[str, Path], tmp_path: Path) -> None:
    base = ["train", str(files["plays"]), "-o", str(tmp_path / "m"), "--implicit"]
    cases = [
        (["--model", "popular", "--item-features", str(files["items"])],
         "--item-features: popular does not learn from item features; model kinds that do: "),
        (["--model", HYBRID, "--item-features-id", "item"],
         "--item-features-id needs --item-features"),
        (["--model", HYBRID, "--item-features", str(tmp_path / "absent.csv")],
         "absent.csv"),
        (["--model", HYBRID, "--item-features", str(files["items"]), "--item-features-id",
          "nothing"], "nothing"),
        (["--model", HYBRID, "--item-features", str(files["items"]), "--nproc", "2"],
         "--item-features: distributed training does not take side features yet"),
        (["--model", HYBRID, "--item-features-kind", "genre=multi"],
         "--item-features-kind needs --item-features"),
        (["--model", HYBRID, "--item-features", str(files["items"]), "--item-features-kind",
          "genre=list"], "--item-features-kind: expected NAME=KIND with KIND one of "
                         "categorical, multi, numeric, tags or numeric:N"),
        (["--model", HYBRID, "--item-features", str(files["items"]), "--item-features-kind",
          "genre=numeric:1"], "got 'genre=numeric:1'"),
        (["--model", HYBRID, "--item-features", str(files["items"]), "--item-features-kind",
          "colour=tags"], "column 'colour': is named in tags= but the table has no such column"),
        (["--model", HYBRID, "--item-features", str(files["items"]), "--item-features-kind",
          "genre=multi", "--item-features-kind", "genre=tags"],
         "--item-features-kind: column 'genre' is named in both multi= and tags="),
    ]
    for extra, message in cases:
        code, _, err = run(*base, *extra)
        assert code == 1, (extra, err)
        assert err.startswith("latentrec: error: ") and err.count("\n") == 1, err
        assert message in err, err
        assert not (tmp_path / "m").exists()
    # the refusal lists the kinds that do learn from item features
    code, _, err = run(*base, "--model", "popular", "--item-features", str(files["items"]))
    assert HYBRID in err.split("model kinds that do: ")[1]


def test_add_items_errors(hybrid: Path, files: dict[str, Path], tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    assert run("train", str(files["plays"]), "-o", str(plain), "--implicit", "--model",
               HYBRID, "--factors", "4", "--epochs", "2", "--quiet")[0] == 0
    popular = tmp_path / "popular"
    assert run("train", str(files["plays"]), "-o", str(popular), "--implicit", "--model",
               "popular", "--quiet")[0] == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("item,genre\nn5,A\nn5,B\n")
    cases = [
        (["add-items", str(plain), str(files["new"]), "--item-features-id", "item"],
         "was trained without item features"),
        (["add-items", str(popular), str(files["new"])],
         "this popular model was trained without item features"),
        (["add-items", str(hybrid), str(bad)], f"{bad}:3"),
        (["add-items", str(hybrid), str(tmp_path / "absent.csv")], "absent.csv"),
        (["add-users", str(hybrid), str(files["users"])], "was trained without user features"),
        (["add-items", str(tmp_path / "nothing"), str(files["new"])], "no such model directory"),
    ]
    for args, message in cases:
        code, _, err = run(*args)
        assert code == 1, (args, err)
        assert err.startswith("latentrec: error: ") and err.count("\n") == 1, err
        assert message in err, err


def test_unknown_feature_values_warn_in_one_line(hybrid: Path, tmp_path: Path) -> None:
    new = tmp_path / "new.csv"
    new.write_text("item,genre\nn9,Western\n")
    code, out, err = run("add-items", str(hybrid), str(new))
    assert code == 0, err
    assert err.startswith("latentrec: warning: 1 unknown value of 'genre'")
    assert err.count("\n") == 1
    assert "added 1 item to" in out


def test_add_users_and_cold_users(files: dict[str, Path], tmp_path: Path) -> None:
    users = files["users"].read_text() + "cold0,B\n"
    files["users"].write_text(users)
    model_dir = tmp_path / "users-model"
    code, out, err = run("train", str(files["plays"]), "-o", str(model_dir), "--implicit",
                         "--model", HYBRID, "--factors", "8", "--epochs", "8", "--seed", "1",
                         "--user-features", str(files["users"]), "--quiet")
    assert code == 0, err
    assert "1 users known only by their features joined the model" in out
    new = tmp_path / "new_users.csv"
    new.write_text("user,favourite\nfresh,C\n")
    code, out, err = run("add-users", str(model_dir), str(new))
    assert code == 0, err
    assert "added 1 user to" in out
    for user, genre in (("cold0", "B"), ("fresh", "C")):
        code, out, err = run("recommend", str(model_dir), "--user", user, "-k", "3", "--json")
        assert code == 0, err
        assert [genre_of_item(e["item"]) for e in json.loads(out)["items"]] == [genre] * 3


def test_real_subprocess(files: dict[str, Path], tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    command = [sys.executable, "-m", "latentrec.cli.main"]
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    done = subprocess.run([*command, "train", str(files["plays"]), "-o", str(model_dir),
                           "--implicit", "--model", HYBRID, "--epochs", "2", "--quiet",
                           "--item-features", str(files["items"])],
                          capture_output=True, text=True, check=False, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([*command, "add-items", str(model_dir), str(files["new"]),
                           "--item-features-id", "item", "--json"],
                          capture_output=True, text=True, check=False, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["items"] == 38
    done = subprocess.run([*command, "add-items", str(model_dir), str(files["new"]),
                           "--item-features-id", "item"],
                          capture_output=True, text=True, check=False, timeout=300, env=env)
    assert done.returncode == 1
    assert done.stderr == "latentrec: error: items already in the model: ['n0', 'n1']\n"


def test_feature_kinds_are_read_as_given_and_kept_by_add_items(tmp_path: Path) -> None:
    """Zip codes would be inferred numeric: --item-features-kind reads them as categories,
    a year as 3 quantile buckets; add-items then reads the new rows as the model did."""
    plays = ["user,item"] + [f"u{u},i{(u + s) % 12}" for u in range(30) for s in range(4)]
    (tmp_path / "plays.csv").write_text("\n".join(plays) + "\n")
    (tmp_path / "items.csv").write_text("item,zip,year\n" + "".join(
        f"i{i},{i % 4:05d},{1990 + i}\n" for i in range(12)))
    (tmp_path / "new.csv").write_text("item,zip,year\nn0,00002,1995\n")
    model_dir = tmp_path / "model"
    code, _, err = run("train", str(tmp_path / "plays.csv"), "-o", str(model_dir), "--implicit",
                       "--model", HYBRID, "--epochs", "2", "--quiet",
                       "--item-features", str(tmp_path / "items.csv"),
                       "--item-features-kind", "zip=categorical",
                       "--item-features-kind", "year=numeric:3")
    assert code == 0, err
    from latentrec import load

    columns = load(model_dir).features_["items"].columns()
    assert columns[columns.feature == "zip"].value.tolist() == ["00000", "00001", "00002",
                                                                "00003"]
    assert len(columns[columns.feature == "year"]) == 3
    code, _, err = run("add-items", str(model_dir), str(tmp_path / "new.csv"))
    assert code == 0 and err == "", err  # no unknown-value warning: 00002 is a known zip
    model = load(model_dir)
    row = model.features_["items"].matrix(["n0"]).toarray()[0]
    assert row[columns.index[columns.value == "00002"][0]] == 1


def test_recommend_for_an_anonymous_user(files: dict[str, Path], tmp_path: Path) -> None:
    model_dir = tmp_path / "users-model"
    code, _, err = run("train", str(files["plays"]), "-o", str(model_dir), "--implicit",
                       "--model", HYBRID, "--factors", "8", "--epochs", "8", "--seed", "1",
                       "--user-features", str(files["users"]), "--quiet")
    assert code == 0, err
    for genre in GENRES:
        code, out, err = run("recommend", str(model_dir), "--features",
                             json.dumps({"favourite": genre}), "-k", "5", "--json")
        assert code == 0, err
        answer = json.loads(out)
        assert answer["user"] is None
        assert {genre_of_item(entry["item"]) for entry in answer["items"]} == {genre}
    # interactions alone fold the user in; the items given are left out
    code, out, err = run("recommend", str(model_dir), "--interaction", "i0", "--interaction",
                         "i3", "-k", "4")
    assert code == 0, err
    assert out.startswith("anonymous user:\n") and len(out.splitlines()) == 5
    assert " i0 " not in out and " i3 " not in out
    cases = [
        (["--features", "{nope"], "--features: not valid JSON"),
        (["--features", json.dumps({"colour": "red"})],
         "--features: colour: the model has no user feature 'colour'"),
        (["--interaction", "i0=many"], "--interaction i0=many: the rating must be a number"),
        (["--interaction", "nope"], "nope"),
        # NaN and infinities are refused, never read as "no rating" or a missing feature
        (["--interaction", "i0=nan"], "--interaction i0=nan: the rating must be a finite number"),
        (["--interaction", "i0=inf"], "--interaction i0=inf: the rating must be a finite number"),
        (["--features", '{"favourite": NaN}'], "--features: not valid JSON (NaN is not a JSON "
                                               "number)"),
        (["--features", '{"favourite": 1e999}'], "--features: not valid JSON (1e999 is not a "
                                                 "finite number)"),
        (["--features", "{}"], "--features: give at least one feature's value"),
    ]
    for extra, message in cases:
        code, _, err = run("recommend", str(model_dir), *extra)
        assert code == 1 and err.count("\n") == 1 and message in err, (extra, err)
    code, _, err = run("recommend", str(model_dir), "--user", "u1", "--features", "{}")
    assert code == 2 and "give either --user" in err


def test_feature_commands_and_options_have_help() -> None:
    for command, shown in (("add-items", "--item-features-id"), ("add-users", "--user-features-id"),
                           ("train", "--item-features FILE"),
                           ("train", "--item-features-kind NAME=KIND")):
        code, out, _ = run(command, "--help")
        assert code == 0 and shown in out

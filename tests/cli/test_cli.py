"""The command line, in-process (CliRunner) and as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from latentrec.cli.main import cli


@pytest.fixture
def ratings_csv(tmp_path: Path) -> Path:
    rows = ["user,item,rating"]
    for user in range(30):
        for item in range(20):
            if (user * 7 + item * 3) % 4 == 0:
                rows.append(f"u{user},i{item},{1 + (user + item) % 5}")
    path = tmp_path / "ratings.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def trained(ratings_csv: Path, tmp_path: Path) -> Path:
    model_dir = tmp_path / "model"
    code, out, err = run("train", str(ratings_csv), "-o", str(model_dir), "--factors", "4",
                         "--epochs", "5", "--quiet")
    assert code == 0, err
    assert "trained biased-mf on" in out
    return model_dir


def test_train_evaluate_predict_recommend(trained: Path, ratings_csv: Path) -> None:
    code, out, _ = run("evaluate", str(trained), str(ratings_csv), "--json")
    assert code == 0
    metrics = json.loads(out)
    assert {"rmse", "mae", "ndcg@10", "precision@10", "coverage"} <= set(metrics)
    code, out, _ = run("predict", str(trained), "--user", "u1", "--item", "i3", "--json")
    assert code == 0
    prediction = json.loads(out)
    assert prediction["user"] == "u1" and prediction["item"] == "i3"
    assert 1.0 <= prediction["prediction"] <= 5.0
    code, out, _ = run("recommend", str(trained), "--user", "u1", "-k", "3", "--json")
    assert code == 0
    recommendation = json.loads(out)
    assert recommendation["user"] == "u1"
    assert len(recommendation["items"]) == 3
    assert set(recommendation["items"][0]) == {"item", "score"}


def test_recommend_all_to_csv(trained: Path, tmp_path: Path) -> None:
    output = tmp_path / "recs.csv"
    code, _, err = run("recommend", str(trained), "--all", "-k", "2", "-o", str(output))
    assert code == 0, err
    lines = output.read_text().splitlines()
    assert lines[0] == "user,item,rank,score"
    assert len(lines) == 1 + 30 * 2


def test_integer_ids_come_back_as_integers(tmp_path: Path) -> None:
    data = tmp_path / "u.data"
    data.write_text("".join(f"{u}\t{i}\t{1 + (u * i) % 5}\t{880000000 + u}\n"
                            for u in range(1, 20) for i in range(1, 15) if (u + i) % 3))
    model_dir = tmp_path / "model"
    assert run("train", str(data), "-o", str(model_dir), "--epochs", "2", "--quiet")[0] == 0
    code, out, _ = run("recommend", str(model_dir), "--user", "3", "-k", "1", "--json")
    assert code == 0
    assert json.loads(out)["user"] == 3
    assert isinstance(json.loads(out)["items"][0]["item"], int)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "{model}", "--user", "nobody", "--item", "i1"], "unknown user: 'nobody'"),
        (["recommend", "{model}", "--user", "nobody"], "unknown user: 'nobody'"),
        (["recommend", "{model}", "--user", "nobody"], "pass --fallback to score them"),
        (["recommend", "{model}", "--user", "u1", "-o", "{tmp}/nodir/recs.csv"],
         "nodir does not exist or is not a directory"),
        (["recommend", "{model}", "--user", "u1", "-o", ""], "the file name is empty"),
        (["recommend", "{model}", "--user", "u1", "-o", "{tmp}"], "is a directory, not a file"),
        (["evaluate", "{model}", "{tmp}/ratings.csv", "--relevance-threshold", "nan"],
         "relevance_threshold must be a finite number"),
        (["evaluate", "{model}", "{tmp}/ratings.csv", "-k", "99999999999"],
         "is larger than the catalogue (20 items)"),
        (["similar", "{model}", "--item", "nothing"], "unknown item: 'nothing'"),
        (["predict", "{tmp}/absent", "--user", "u1", "--item", "i1"], "no such model directory"),
        (["evaluate", "{model}", "{tmp}/absent.csv"], "absent.csv: no such file"),
    ],
)
def test_errors_are_one_line(args: list[str], message: str, trained: Path,
                             tmp_path: Path, ratings_csv: Path) -> None:
    filled = [a.format(model=trained, tmp=tmp_path) for a in args]
    code, out, err = run(*filled)
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("latentrec: error: ")
    assert message in err


def test_bad_file_names_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,rating\na,x,5\nb,y,abc\n")
    code, _, err = run("train", str(bad), "-o", str(tmp_path / "m"))
    assert code == 1
    assert err.strip() == f"latentrec: error: {bad}:3: column 'rating': 'abc' is not a number"
    assert not (tmp_path / "m").exists()


def test_usage_errors(trained: Path) -> None:
    code, _, err = run("recommend", str(trained))
    assert code == 2
    assert "either --user U" in err
    code, _, err = run("train", "x.csv")
    assert code == 2
    assert "Missing option '-o'" in err


def test_every_command_has_help() -> None:
    for command in ("train", "models", "evaluate", "predict", "recommend", "similar", "demo",
                    "serve", "bench"):
        code, out, _ = run(command, "--help")
        assert code == 0
        assert "Usage:" in out and "--help" in out


def test_demo_runs(tmp_path: Path) -> None:
    code, out, err = run("demo", "--quiet")
    assert code == 0, err
    assert "test metrics:" in out
    assert "predictions identical = True" in out


def test_real_subprocess(ratings_csv: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    model_dir = tmp_path / "model"
    exe = [sys.executable, "-m", "latentrec.cli.main"]
    done = subprocess.run([*exe, "train", str(ratings_csv), "-o", str(model_dir), "--epochs",
                           "2", "--quiet"], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([*exe, "recommend", str(model_dir), "--user", "u2", "--json"],
                          capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["user"] == "u2"
    done = subprocess.run([*exe, "predict", str(model_dir), "--user", "ghost", "--item", "i1"],
                          capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    done = subprocess.run([*exe, "--debug", "predict", str(model_dir), "--user", "ghost",
                           "--item", "i1"], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 1
    assert "Traceback" in done.stderr


def test_models_lists_every_registered_kind() -> None:
    from latentrec import model_kinds

    code, out, _ = run("models")
    assert code == 0
    listed = {line.split()[0] for line in out.splitlines() if not line.startswith(" ")}
    assert listed == set(model_kinds())
    assert "validates valid_ndcg@10" in out and "closed form" in out


def test_an_unknown_model_kind_lists_the_known_ones(ratings_csv: Path, tmp_path: Path) -> None:
    code, _, err = run("train", str(ratings_csv), "-o", str(tmp_path / "m"), "--model", "svd")
    assert code == 2
    assert "'svd' is not a model kind" in err and "biased-mf" in err


@pytest.mark.parametrize("kind", ["popular", "item-knn", "ease"])
def test_deterministic_models_accept_a_seed_and_refuse_epochs(kind: str, plays_tsv: Path,
                                                              tmp_path: Path) -> None:
    code, _, err = run("train", str(plays_tsv), "-o", str(tmp_path / kind), "--model", kind,
                       "--implicit", "--seed", "1", "--quiet")
    assert code == 0, err
    code, _, err = run("train", str(plays_tsv), "-o", str(tmp_path / kind), "--model", kind,
                       "--implicit", "--epochs", "3")
    assert code == 1
    assert f"--epochs: {kind} is fitted in closed form" in err
    code, _, err = run("train", str(plays_tsv), "-o", str(tmp_path / kind), "--model", kind,
                       "--implicit", "--lr", "0.1")
    assert code == 1
    assert f"--lr: {kind} has no parameter 'lr'" in err


def test_valid_fraction_refits_on_all_data_unless_told_not_to(ratings_csv: Path,
                                                              tmp_path: Path) -> None:
    code, out, err = run("train", str(ratings_csv), "-o", str(tmp_path / "a"), "--factors", "4",
                         "--epochs", "8", "--valid-fraction", "0.2", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["refit"] is True and 1 <= summary["best_epoch"] <= 8
    saved = json.loads((tmp_path / "a" / "model.json").read_text())
    assert len(saved["history"]) == summary["best_epoch"]  # the refit ran the best epochs
    assert sum(1 for _ in saved["users"]) == summary["users"]
    code, out, err = run("train", str(ratings_csv), "-o", str(tmp_path / "b"), "--factors", "4",
                         "--epochs", "8", "--valid-fraction", "0.2", "--no-refit", "--quiet")
    assert code == 0, err
    assert "--no-refit" in out and "held out" in out
    code, _, err = run("train", str(ratings_csv), "-o", str(tmp_path / "c"), "--model", "ials",
                       "--valid-fraction", "1.5")
    assert code == 1
    assert "--valid-fraction must be between 0 and 1" in err


def test_checkpoints_and_resume_from_the_command_line(ratings_csv: Path,
                                                      tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    code, _, err = run("train", str(ratings_csv), "-o", str(whole), "--factors", "4",
                       "--epochs", "6", "--quiet")
    assert code == 0, err
    checkpoints = tmp_path / "checkpoints"
    code, _, err = run("train", str(ratings_csv), "-o", str(tmp_path / "first"), "--factors",
                       "4", "--epochs", "3", "--quiet", "--checkpoint-dir", str(checkpoints))
    assert code == 0, err
    assert (checkpoints / "LATEST").read_text().strip() == "epoch-000003"
    resumed = tmp_path / "resumed"
    code, _, err = run("train", str(ratings_csv), "-o", str(resumed), "--factors", "4",
                       "--epochs", "6", "--quiet", "--resume", str(checkpoints))
    assert code == 0, err
    for user, item in (("u1", "i3"), ("u5", "i0")):
        _, first, _ = run("predict", str(whole), "--user", user, "--item", item)
        _, again, _ = run("predict", str(resumed), "--user", user, "--item", item)
        assert first == again
    code, _, err = run("train", str(ratings_csv), "-o", str(resumed), "--factors", "5",
                       "--epochs", "6", "--quiet", "--resume", str(checkpoints))
    assert code == 1
    assert "the checkpoint is of another run" in err


@pytest.fixture
def plays_tsv(tmp_path: Path) -> Path:
    rows = ["user\titem\tplays"]
    rows += [f"u{u}\ta{i}\t{1 + (u * i) % 7}" for u in range(40) for i in range(30)
             if (u + 2 * i) % 5 == 0 or (u % 3 == i % 3)]
    path = tmp_path / "plays.tsv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("kind", ["ials", "bpr", "popular", "item-knn", "ease", "als"])
def test_every_model_trains_evaluates_and_recommends(kind: str, plays_tsv: Path,
                                                     tmp_path: Path) -> None:
    model_dir = tmp_path / kind
    args = ["train", str(plays_tsv), "-o", str(model_dir), "--model", kind, "--quiet"]
    if kind != "als":
        args.append("--implicit")
    if kind in ("ials", "bpr", "als"):
        args += ["--factors", "4", "--epochs", "2"]
    code, _, err = run(*args)
    assert code == 0, err
    code, out, err = run("evaluate", str(model_dir), str(plays_tsv), "--json", "-k", "5")
    assert code == 0, err
    assert "ndcg@5" in json.loads(out)
    code, out, _ = run("recommend", str(model_dir), "--user", "u3", "-k", "2", "--json")
    assert code == 0
    assert len(json.loads(out)["items"]) == 2


def test_extra_hyperparameters(plays_tsv: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    code, _, err = run("train", str(plays_tsv), "-o", str(model_dir), "--model", "ials",
                       "--implicit", "--quiet", "-p", "alpha=5", "-p", "confidence=log",
                       "--epochs", "1")
    assert code == 0, err
    config = json.loads((model_dir / "model.json").read_text())["config"]
    assert config["alpha"] == 5 and config["confidence"] == "log"
    code, _, err = run("train", str(plays_tsv), "-o", str(model_dir), "--model", "ials",
                       "--implicit", "-p", "alpha=-1")
    assert code == 1
    assert "alpha must be > 0" in err
    code, _, err = run("train", str(plays_tsv), "-o", str(model_dir), "--model", "ials",
                       "--implicit", "-p", "colour=blue")
    assert code == 1
    assert "has no parameter 'colour'" in err
    code, _, err = run("train", str(plays_tsv), "-o", str(model_dir), "-p", "novalue")
    assert code == 2
    assert "expected NAME=VALUE" in err


def test_explicit_model_on_bare_pairs_is_a_clear_error(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("user,item\na,x\nb,y\n")
    code, _, err = run("train", str(pairs), "-o", str(tmp_path / "m"), "--implicit")
    assert code == 1
    assert "BiasedMF fits ratings" in err
    code, _, err = run("train", str(pairs), "-o", str(tmp_path / "m"))
    assert code == 1
    assert "no rating column" in err and "--implicit" in err


def test_recommend_answers_each_user_once_and_marks_fallbacks(trained: Path) -> None:
    code, out, err = run("recommend", str(trained), "--user", "u1", "--user", "u1", "-k", "2",
                         "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["user"] == "u1" and len(answer["items"]) == 2
    code, out, err = run("recommend", str(trained), "--user", "u1", "--user", "ghost", "-k",
                         "2", "--json", "--fallback")
    assert code == 0, err
    first, second = json.loads(out)["recommendations"]
    assert first["user"] == "u1" and first["fallback"] is False
    assert second["user"] == "ghost" and second["fallback"] is True
    assert len(second["items"]) == 2


def test_unknown_integer_ids_keep_the_models_id_type(tmp_path: Path) -> None:
    data = tmp_path / "u.data"
    data.write_text("".join(f"{u}\t{i}\t{1 + (u * i) % 5}\t{880000000 + u}\n"
                            for u in range(1, 20) for i in range(1, 15) if (u + i) % 3))
    model_dir = tmp_path / "model"
    assert run("train", str(data), "-o", str(model_dir), "--epochs", "2", "--quiet")[0] == 0
    code, out, _ = run("recommend", str(model_dir), "--user", "3", "--user", "99999", "-k", "1",
                       "--json", "--fallback")
    assert code == 0
    users = [entry["user"] for entry in json.loads(out)["recommendations"]]
    assert users == [3, 99999]


def test_similar_items_and_users(trained: Path) -> None:
    code, out, err = run("similar", str(trained), "--item", "i3", "-k", "3", "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["item"] == "i3" and len(answer["items"]) == 3  # the HTTP API's shape
    assert "i3" not in [entry["item"] for entry in answer["items"]]
    code, out, err = run("similar", str(trained), "--user", "u1", "--user", "u2", "-k", "2")
    assert code == 0, err
    assert out.startswith("user u1:") and "user u2:" in out
    code, _, err = run("similar", str(trained), "--item", "i3", "--user", "u1")
    assert code == 2 and "either --item I" in err


def test_debug_is_accepted_after_the_command(trained: Path) -> None:
    result = CliRunner().invoke(cli, ["predict", str(trained), "--user", "nobody", "--item",
                                      "i1", "--debug"])
    assert result.exit_code == 1
    assert type(result.exception).__name__ == "UnknownIdError"  # the traceback, not one line


def test_evaluating_on_training_data_warns(trained: Path, ratings_csv: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        code, _, err = run("evaluate", str(trained), str(ratings_csv))
    assert code == 0
    assert "latentrec: warning: " in err and "were seen in training" in err


def test_warnings_are_one_line(tmp_path: Path) -> None:
    import warnings

    plays = tmp_path / "plays.csv"
    plays.write_text("user,item,plays\n" + "".join(f"u{u},i{i},{1 + u % 3}\n"
                                                   for u in range(10) for i in range(6)))
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        code, _, err = run("train", str(plays), "-o", str(tmp_path / "m"), "--epochs", "1",
                           "--quiet")
    assert code == 0
    lines = [line for line in err.splitlines() if line]
    assert lines and all(line.startswith("latentrec: warning: ") for line in lines)
    assert "column 'plays' is named like a count" in err


def test_non_canonical_spellings_are_other_ids(tmp_path: Path) -> None:
    data = tmp_path / "u.data"
    data.write_text("".join(f"{u}\t{i}\t{1 + (u * i) % 5}\t{880000000 + u}\n"
                            for u in range(1, 20) for i in range(1, 15) if (u + i) % 3))
    model_dir = tmp_path / "model"
    assert run("train", str(data), "-o", str(model_dir), "--epochs", "2", "--quiet")[0] == 0
    code, _, err = run("similar", str(model_dir), "--item", "007")
    assert code == 1 and "unknown item: '007'" in err
    code, out, err = run("similar", str(model_dir), "--item", "7", "-k", "99999999999999999999",
                         "--json")
    assert code == 0, err
    assert len(json.loads(out)["items"]) == 13  # every other item
    code, out, _ = run("recommend", str(model_dir), "--user", "007", "--fallback", "--json")
    assert code == 0
    answer = json.loads(out)
    assert answer["user"] == "007" and answer["fallback"] is True  # text, not the user 7
    code, _, err = run("recommend", str(model_dir), "--user", "3", "--exclude-seen", "-k", "1")
    assert code == 0, err

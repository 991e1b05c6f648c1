"""Hostile and careless command lines: every one ends with a clean outcome, never a traceback.

Each case gives the arguments (``{w}`` is the workspace folder), the exit status (1: an error
of the input, 2: a usage error, 0: handled), and a piece of the one line on stderr that names
the culprit (file and line, option, id or value).
"""

from __future__ import annotations

import gzip
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

HEADER = b"user,item,rating\n"

#: files written into the workspace before the cases run
BAD_FILES: dict[str, bytes] = {
    "empty.csv": b"",
    "header_only.csv": HEADER,
    "abc.csv": HEADER + b"a,x,5\nb,y,abc\n",
    "nan.csv": HEADER + b"a,x,5\nb,y,nan\n",
    "inf.csv": HEADER + b"a,x,5\nb,y,inf\n",
    "huge.csv": HEADER + b"a,x,5\nb,y,1e308\n",
    "short_row.csv": HEADER + b"a,x,5\nb,y\n",
    "empty_id.csv": HEADER + b"a,x,5\n,y,3\n",
    "negative_weight.csv": b"user,item,weight\na,x,5\nb,y,-2\n",
    "duplicates.csv": HEADER + b"a,x,5\na,x,3\nb,y,4\n",
    "binary.csv": bytes(range(256)) * 4,
    "one_column.csv": b"user\na\nb\n",
    "pairs.csv": b"user,item\na,x\nb,y\n",
    "corrupt.csv.gz": b"\x1f\x8b\x08\x00garbage",
    "latin1.csv": HEADER + "é,x,5\nb,y,4\n".encode("latin-1"),
    "spaces.csv": HEADER + b"a , x , 5\nb,y,4\n",
}

CLI_CASES: list[tuple[str, str, int, str]] = [
    # --- the data file
    ("missing file", "train {w}/absent.csv -o {w}/m", 1, "absent.csv"),
    # a folder is a set of shards (docs/distributed.md): its first bad file is named
    ("a folder as data", "train {w} -o {w}/m", 1, "abc.csv:3: column 'rating'"),
    ("empty file", "train {w}/empty.csv -o {w}/m", 1, "empty.csv"),
    ("header only", "train {w}/header_only.csv -o {w}/m", 1, "header_only.csv"),
    ("text rating", "train {w}/abc.csv -o {w}/m", 1, "abc.csv:3: column 'rating'"),
    ("nan rating", "train {w}/nan.csv -o {w}/m", 1, "nan.csv:3"),
    ("inf rating", "train {w}/inf.csv -o {w}/m", 1, "inf.csv:3"),
    ("rating of 1e308", "train {w}/huge.csv -o {w}/m", 1, "huge.csv:3"),
    ("short row", "train {w}/short_row.csv -o {w}/m", 1, "short_row.csv:3"),
    ("empty id", "train {w}/empty_id.csv -o {w}/m", 1, "empty_id.csv:3"),
    ("negative weight", "train {w}/negative_weight.csv -o {w}/m --implicit --model ials", 1,
     "negative_weight.csv:3"),
    ("duplicate pairs", "train {w}/duplicates.csv -o {w}/m", 1, "duplicates.csv"),
    ("binary garbage", "train {w}/binary.csv -o {w}/m", 1, "binary.csv"),
    ("one column", "train {w}/one_column.csv -o {w}/m", 1, "one_column.csv"),
    ("pairs without ratings", "train {w}/pairs.csv -o {w}/m", 1, "no rating column"),
    ("corrupt gzip", "train {w}/corrupt.csv.gz -o {w}/m", 1, "corrupt.csv.gz"),
    ("wrong format", "train {w}/ratings.csv -o {w}/m --format parquet", 1, "ratings.csv"),
    ("bad regex separator", "train {w}/ratings.csv -o {w}/m --sep (a|", 1, "sep"),
    # --- distributed training: refused before any process starts
    ("no processes", "train {w}/ratings.csv -o {w}/m --nproc 0", 2, "--nproc"),
    ("restarts without processes", "train {w}/ratings.csv -o {w}/m --max-restarts 1", 1,
     "--max-restarts needs --nproc"),
    ("validation in distributed training",
     "train {w}/ratings.csv -o {w}/m --nproc 2 --valid-fraction 0.1", 1, "--valid-fraction"),
    ("a model that cannot train distributed",
     "train {w}/ratings.csv -o {w}/m --nproc 2 --model item-knn --implicit", 1,
     "only als, biased-mf, bpr, ials train distributed"),
    ("resume from nothing, distributed", "train {w}/ratings.csv -o {w}/m --nproc 2 --resume "
     "{w}/absent", 1, "not a checkpoint directory"),
    ("zero timeout", "train {w}/ratings.csv -o {w}/m --timeout 0", 2, "--timeout"),
    ("unknown format", "train {w}/ratings.csv -o {w}/m --format xlsx", 2, "xlsx"),
    ("unknown duplicates policy", "train {w}/ratings.csv -o {w}/m --duplicates first", 2,
     "first"),
    # --- hyperparameters
    ("zero factors", "train {w}/ratings.csv -o {w}/m --factors 0", 2, "--factors"),
    ("negative factors", "train {w}/ratings.csv -o {w}/m --factors -1", 2, "--factors"),
    ("text factors", "train {w}/ratings.csv -o {w}/m --factors abc", 2, "--factors"),
    ("zero epochs", "train {w}/ratings.csv -o {w}/m --epochs 0", 2, "--epochs"),
    ("negative lr", "train {w}/ratings.csv -o {w}/m --lr -1", 1, "lr must be > 0"),
    ("nan lr", "train {w}/ratings.csv -o {w}/m --lr nan", 1, "lr must be > 0"),
    ("infinite lr", "train {w}/ratings.csv -o {w}/m --lr inf", 1, "lr must be > 0"),
    ("negative reg", "train {w}/ratings.csv -o {w}/m --reg -1", 1, "reg must be >= 0"),
    ("negative seed", "train {w}/ratings.csv -o {w}/m --seed -1", 2, "--seed"),
    ("unknown device", "train {w}/ratings.csv -o {w}/m --device tpu", 1, "device"),
    ("text where a number goes", "train {w}/ratings.csv -o {w}/m -p lr_bias=abc", 1, "lr_bias"),
    ("unknown parameter", "train {w}/ratings.csv -o {w}/m -p colour=blue", 1,
     "has no parameter 'colour'"),
    ("parameter without value", "train {w}/ratings.csv -o {w}/m -p novalue", 2,
     "expected NAME=VALUE"),
    ("parameter without name", "train {w}/ratings.csv -o {w}/m -p =5", 2,
     "expected NAME=VALUE"),
    ("old parameter name", "train {w}/ratings.csv -o {w}/m -p solver=gibbs", 1,
     "has no parameter 'solver'"),
    ("unknown engine", "train {w}/ratings.csv -o {w}/m -p engine=gibbs", 1,
     "engine must be one of"),
    ("unknown model", "train {w}/ratings.csv -o {w}/m --model svd", 2, "'svd' is not a model"),
    ("burn-in past the end", "train {w}/ratings.csv -o {w}/m --model bayesian-mf -p "
     "burn_in=400", 1, "epochs > burn_in"),
    ("bad confidence", "train {w}/plays.csv -o {w}/m --model ials --implicit -p "
     "confidence=cubic", 1, "confidence must be one of"),
    ("bad loss", "train {w}/plays.csv -o {w}/m --model bpr --implicit -p loss=hinge", 1,
     "loss must be one of"),
    ("zero EASE reg", "train {w}/plays.csv -o {w}/m --model ease --implicit -p reg=0", 1,
     "reg must be > 0"),
    ("epochs on a closed-form model", "train {w}/plays.csv -o {w}/m --model popular "
     "--implicit --epochs 3", 1, "fitted in closed form"),
    ("lr on a model without one", "train {w}/plays.csv -o {w}/m --model item-knn --implicit "
     "--lr 0.1", 1, "--lr: item-knn has no parameter 'lr'"),
    ("rating model on pairs", "train {w}/pairs.csv -o {w}/m --implicit", 1,
     "BiasedMF fits ratings"),
    ("validation fraction 0", "train {w}/ratings.csv -o {w}/m --valid-fraction 0", 1,
     "--valid-fraction must be between 0 and 1"),
    ("validation fraction 1.5", "train {w}/ratings.csv -o {w}/m --valid-fraction 1.5", 1,
     "--valid-fraction must be between 0 and 1"),
    ("validation fraction nan", "train {w}/ratings.csv -o {w}/m --valid-fraction nan", 1,
     "--valid-fraction must be between 0 and 1"),
    ("validation of a closed-form model", "train {w}/plays.csv -o {w}/m --model popular "
     "--implicit --valid-fraction 0.2", 1, "there are no epochs to validate"),
    ("zero patience", "train {w}/ratings.csv -o {w}/m --patience 0", 2, "--patience"),
    ("zero checkpoint interval", "train {w}/ratings.csv -o {w}/m --checkpoint-every 0", 2,
     "--checkpoint-every"),
    ("checkpoints into a file", "train {w}/ratings.csv -o {w}/m --checkpoint-dir {w}/afile", 1,
     "--checkpoint-dir: "),
    ("checkpoints under a file", "train {w}/ratings.csv -o {w}/m --checkpoint-dir "
     "{w}/afile/sub", 1, "--checkpoint-dir: "),
    ("patience without validation", "train {w}/ratings.csv -o {w}/m --patience 2", 1,
     "--patience needs --valid-fraction"),
    ("refit with checkpoints", "train {w}/ratings.csv -o {w}/m --valid-fraction 0.2 "
     "--checkpoint-dir {w}/ck", 1, "--no-refit"),
    ("bad engine named as given", "train {w}/ratings.csv -o {w}/m -p engine=gibbs", 1,
     "-p engine: engine must be one of"),
    ("bad device named as given", "train {w}/ratings.csv -o {w}/m --device 7", 1, "device"),
    ("resume from nowhere", "train {w}/ratings.csv -o {w}/m --resume {w}/nowhere", 1,
     "--resume: "),
    ("resume from a non-checkpoint", "train {w}/ratings.csv -o {w}/m --resume {w}/model", 1,
     "not a checkpoint directory"),
    # --- the output location, checked before training
    ("output is a file", "train {w}/ratings.csv -o {w}/afile", 1, "afile"),
    ("output under a file", "train {w}/ratings.csv -o {w}/afile/sub", 1, "afile"),
    ("empty output", "train {w}/ratings.csv -o ", 1, "-o"),
    # --- model directories
    ("no such model", "predict {w}/absent --user u1 --item i1", 1, "no such model directory"),
    ("a file as model", "predict {w}/afile --user u1 --item i1", 1, "afile"),
    ("a data file as model", "recommend {w}/ratings.csv --user u1", 1, "ratings.csv"),
    ("folder without a model", "recommend {w} --user u1", 1, "not a latentrec model"),
    # --- ids, k, options of the model commands
    ("unknown user", "predict {w}/model --user nobody --item i1", 1, "unknown user: 'nobody'"),
    ("unknown item", "predict {w}/model --user u1 --item nothing", 1,
     "unknown item: 'nothing'"),
    ("unknown user in a list", "recommend {w}/model --user nobody", 1, "--fallback"),
    ("zero k", "recommend {w}/model --user u1 -k 0", 2, "-k"),
    ("negative k", "recommend {w}/model --user u1 -k -5", 2, "-k"),
    ("text k", "recommend {w}/model --user u1 -k ten", 2, "-k"),
    ("k beyond the catalogue", "recommend {w}/model --user u1 -k 99999999999999999999", 0, ""),
    ("all and a user", "recommend {w}/model --all --user u1", 2, "either --user U"),
    ("neither all nor a user", "recommend {w}/model", 2, "either --user U"),
    ("json and output", "recommend {w}/model --user u1 --json -o {w}/x.csv", 2, "exclusive"),
    ("output in a missing folder", "recommend {w}/model --user u1 -o {w}/nodir/x.csv", 1,
     "nodir"),
    ("output under a file", "recommend {w}/model --user u1 -o {w}/afile/x.csv", 1, "afile"),
    ("output is a folder", "recommend {w}/model --user u1 -o {w}", 1, "is a directory"),
    ("empty output file", "recommend {w}/model --user u1 -o ", 1, "the file name is empty"),
    ("k beyond the catalogue in evaluate", "evaluate {w}/model {w}/ratings.csv -k "
     "99999999999", 1, "larger than the catalogue"),
    ("nan relevance threshold", "evaluate {w}/model {w}/ratings.csv --relevance-threshold "
     "nan", 1, "relevance_threshold must be a finite number"),
    ("missing test file", "evaluate {w}/model {w}/absent.csv", 1, "absent.csv"),
    ("bad test file", "evaluate {w}/model {w}/abc.csv", 1, "abc.csv:3"),
    ("unknown similar item", "similar {w}/model --item nothing", 1, "unknown item: 'nothing'"),
    ("similar users of an item model", "similar {w}/knn --user u1", 1,
     "does not define similar users"),
    ("similar of both sides", "similar {w}/model --item i1 --user u1", 2, "either --item I"),
    ("unknown command", "fly {w}/model", 2, "No such command"),
    ("unknown option", "recommend {w}/model --user u1 --colour blue", 2, "--colour"),
]


@pytest.fixture(scope="module")
def files(workspace: Path) -> Path:
    for name, content in BAD_FILES.items():
        (workspace / name).write_bytes(content)
    return workspace


def _case_ids() -> list[str]:
    return [case[0] for case in CLI_CASES]


@pytest.mark.parametrize(("name", "command", "status", "culprit"), CLI_CASES, ids=_case_ids())
def test_command_line(name: str, command: str, status: int, culprit: str, files: Path,
                      invoke: Callable[..., tuple[int, str, str]]) -> None:
    args = [part.format(w=files) for part in command.split(" ")]
    if command.endswith("-o "):
        args[-1] = ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # warnings are not the point here; errors are
        code, out, err = invoke(*args)
    assert code == status, (code, err)
    assert "Traceback" not in err and "Traceback" not in out
    if status == 1:
        errors = [line for line in err.splitlines() if line.startswith("latentrec: error: ")]
        assert len(errors) == 1, err
        assert culprit in errors[0], err
        assert all(line.startswith("latentrec: ") for line in err.splitlines()), err
    elif status == 2:
        assert culprit in err, err


def test_a_failed_training_leaves_no_model_behind(
        files: Path, invoke: Callable[..., tuple[int, str, str]]) -> None:
    code, _, _ = invoke("train", str(files / "abc.csv"), "-o", str(files / "never"))
    assert code == 1
    assert not (files / "never").exists()


def test_gzip_input_reads(files: Path, invoke: Callable[..., tuple[int, str, str]]) -> None:
    packed = files / "ratings.csv.gz"
    packed.write_bytes(gzip.compress((files / "ratings.csv").read_bytes()))
    code, _, err = invoke("train", str(packed), "-o", str(files / "gz-model"), "--epochs", "1",
                           "--quiet")
    assert code == 0, err

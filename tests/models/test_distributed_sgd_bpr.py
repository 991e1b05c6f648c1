"""Distributed BiasedMF (DSGD) and BPR (data-parallel): real 2-process gloo runs on loopback
against single-process training, a one-process distributed run, replicas and resume.

All 2-process jobs run in one ``torchrun`` launch (``_distributed_driver.py``), shared by the
tests through a module fixture: starting torch twice costs more than the jobs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import latentrec
from latentrec import BPR, BiasedMF, Interactions, evaluate, read_interactions
from latentrec.datasets import synthetic
from latentrec.errors import InvalidParameterError
from latentrec.training.distributed import Group, free_port
from latentrec.training.partition import partition

pytestmark = pytest.mark.distributed

DRIVER = Path(__file__).with_name("_distributed_driver.py")
MF = {"factors": 8, "epochs": 20}
MF_RESUME = {"factors": 8, "epochs": 4, "optimizer": "adagrad", "lr": 0.1}
BPR_PARAMS = {"factors": 16, "epochs": 15, "batch_size": 1024, "device": "cpu"}
BPR_RESUME = {"factors": 8, "epochs": 3, "batch_size": 1024, "device": "cpu"}
#: NDCG@10 of single-process BPR_PARAMS on this data over seeds 0-4: 0.4059, 0.4026, 0.4022,
#: 0.4098, 0.4057 (sd 0.003); 2 processes, seeds 0-3: 0.3960, 0.4054, 0.4028, 0.4053. The
#: difference of two independent seeds has sd ~0.0045, so 0.02 is ~4.5 sd
BPR_TOLERANCE = 0.02


def _write(folder: Path, feedback: str) -> None:
    """Train (sorted by user, item: the order a partition stores) as one file and as two
    shards, and a 20% random test split."""
    frame = synthetic(600, 400, density=0.1, feedback=feedback,  # type: ignore[arg-type]
                      seed=1).to_frame().drop(columns=["timestamp"])
    frame = frame.rename(columns={frame.columns[2]: "rating" if feedback == "explicit"
                                  else "weight"})
    test = np.random.default_rng(7).random(len(frame)) < 0.2
    train = frame[~test].sort_values(["user", "item"])
    (folder / "shards").mkdir(parents=True)
    train.to_csv(folder / "train.csv", index=False)
    frame[test].to_csv(folder / "test.csv", index=False)
    half = len(train) // 2
    train.iloc[:half].to_csv(folder / "shards" / "a.csv", index=False)
    train.iloc[half:].to_csv(folder / "shards" / "b.csv", index=False)


def _launch(spec: dict[str, Any], folder: Path, processes: int) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "out": str(folder), "threads": 1}
    (folder / "jobs.json").write_text(json.dumps(spec), encoding="utf-8")
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
                                "MASTER_PORT")}
    if processes == 1:
        command = [sys.executable, str(DRIVER), str(folder / "jobs.json")]
    else:
        command = [sys.executable, "-m", "torch.distributed.run",
                   f"--nproc-per-node={processes}", "--rdzv-backend=c10d",
                   f"--rdzv-endpoint=127.0.0.1:{free_port()}", str(DRIVER),
                   str(folder / "jobs.json")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240,
                          env=environment)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results: dict[str, Any] = json.loads((folder / "results.json").read_text())
    return results


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("distributed")
    explicit, implicit = root / "explicit", root / "implicit"
    _write(explicit, "explicit")
    _write(implicit, "implicit")
    rated = {"shards": str(explicit / "shards"), "feedback": "explicit", "model": "biased-mf"}
    ranked = {"shards": str(implicit / "shards"), "feedback": "implicit", "model": "bpr"}
    two = _launch({"jobs": [
        {**rated, "name": "mf", "mode": "fit", "params": MF},
        {**rated, "name": "mf", "mode": "resume", "stop": 2, "params": MF_RESUME},
        {**ranked, "name": "bpr", "mode": "fit", "params": BPR_PARAMS},
        {**ranked, "name": "bpr", "mode": "resume", "stop": 1, "params": BPR_RESUME},
        {**ranked, "name": "replicas", "mode": "replicas",
         "params": {**BPR_RESUME, "epochs": 2}},
        {**ranked, "name": "replicas-adagrad", "mode": "replicas",
         "params": {**BPR_RESUME, "epochs": 2, "optimizer": "adagrad", "lr": 0.1}},
        {**ranked, "name": "gather", "mode": "gather", "params": BPR_RESUME},
    ]}, root / "two", 2)
    one = _launch({"jobs": [{**rated, "name": "mf", "mode": "fit", "params": MF},
                            {**rated, "name": "mfa", "mode": "fit", "params": MF_RESUME}]},
                  root / "one", 1)
    return {"root": root, "explicit": explicit, "implicit": implicit, "two": two, "one": one}


def _metric(model: Any, test: Interactions, name: str) -> float:
    table = evaluate(model, test, metrics=[name.split("@")[0]]).set_index("metric")
    return float(table.loc[name, "value"])


@pytest.mark.slow
def test_dsgd_rmse_matches_one_process(runs: dict[str, Any]) -> None:
    folder = runs["explicit"]
    train = read_interactions(folder / "train.csv", feedback="explicit")
    test = read_interactions(folder / "test.csv", feedback="explicit")
    single = _metric(BiasedMF(**MF).fit(train, show_progress=False), test, "rmse")
    distributed = _metric(latentrec.load(runs["root"] / "two" / "mf"), test, "rmse")
    assert abs(distributed - single) / single < 0.005, (distributed, single)
    assert runs["two"]["mf"]["bytes_sent"] > 0


@pytest.mark.slow
def test_distributed_bpr_ndcg_matches_one_process(runs: dict[str, Any]) -> None:
    folder = runs["implicit"]
    train = read_interactions(folder / "train.csv", feedback="implicit")
    test = read_interactions(folder / "test.csv", feedback="implicit")
    single = _metric(BPR(**BPR_PARAMS).fit(train, show_progress=False), test, "ndcg@10")
    distributed = _metric(latentrec.load(runs["root"] / "two" / "bpr"), test, "ndcg@10")
    assert abs(distributed - single) < BPR_TOLERANCE, (distributed, single)


@pytest.mark.slow
def test_bpr_replicas_stay_identical(runs: dict[str, Any]) -> None:
    for name in ("replicas", "replicas-adagrad"):
        result = runs["two"][name]
        assert result["identical"], result
        assert result["difference"] == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["sgd", "adagrad"])
def test_dsgd_in_one_process_is_single_process_training(runs: dict[str, Any],
                                                        optimizer: str) -> None:
    params, name = (MF, "mf") if optimizer == "sgd" else (MF_RESUME, "mfa")
    train = read_interactions(runs["explicit"] / "train.csv", feedback="explicit")
    single = BiasedMF(**params).fit(train, show_progress=False)
    distributed = latentrec.load(runs["root"] / "one" / name)
    for side in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        assert torch.equal(getattr(single, side), getattr(distributed, side)), side
    assert single.history_[-1]["loss"] == pytest.approx(distributed.history_[-1]["loss"],
                                                         rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mf", "bpr"])
def test_resume_equals_uninterrupted_run(runs: dict[str, Any], name: str) -> None:
    full = latentrec.load(runs["root"] / "two" / f"{name}-full")
    resumed = latentrec.load(runs["root"] / "two" / f"{name}-resumed")
    for side in ("user_factors_", "item_factors_", "item_bias_"):
        assert torch.equal(getattr(full, side), getattr(resumed, side)), side
    losses = [h["loss"] for h in runs["two"][name]["history"]]
    assert [h["loss"] for h in runs["two"][name]["resumed_history"]] == losses


def _partition(feedback: str) -> Any:
    data = synthetic(30, 20, density=0.3, feedback=feedback)  # type: ignore[arg-type]
    return partition(Group(), [data], ["synthetic"], feedback=feedback)


@pytest.mark.parametrize(("params", "match"), [
    ({"engine": "minibatch"}, "engine='minibatch' does not train distributed"),
    ({"optimizer": "adam"}, "supports optimizer 'sgd' or 'adagrad', got 'adam'"),
    ({"device": "cuda"}, "CUDA|CPU only"),
])
def test_distributed_biased_mf_refuses_what_dsgd_cannot_do(params: dict[str, Any],
                                                           match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        BiasedMF(factors=4, epochs=1, **params).fit(_partition("explicit"))


def test_one_process_partition_fits_bpr() -> None:
    model = BPR(factors=4, epochs=2, batch_size=64, device="cpu").fit(_partition("implicit"))
    assert model.item_factors_.shape == (20, 4)
    assert len(model.history_) == 2


def test_a_partition_trains_warp_kos() -> None:
    """The distributed trainable inherits the loss; k-OS draws from the rank's own users'
    items (a partition holds whole users) and gives another model than plain WARP."""
    fits = {loss: BPR(factors=4, epochs=2, batch_size=64, device="cpu", loss=loss).fit(
        _partition("implicit")) for loss in ("warp", "warp-kos")}
    assert all(bool(torch.isfinite(m.item_factors_).all()) for m in fits.values())
    assert not torch.equal(fits["warp"].item_factors_, fits["warp-kos"].item_factors_)


def test_a_partition_trains_full_softmax() -> None:
    """negatives=0 scores every item on each rank (every rank holds the whole catalogue)."""
    full = BPR(factors=4, epochs=2, batch_size=64, device="cpu", loss="softmax",
               negatives=0).fit(_partition("implicit"))
    sampled = BPR(factors=4, epochs=2, batch_size=64, device="cpu", loss="softmax",
                  negatives=4).fit(_partition("implicit"))
    assert bool(torch.isfinite(full.item_factors_).all())
    assert full.history_[-1]["loss"] < full.history_[0]["loss"]
    assert not torch.equal(full.item_factors_, sampled.item_factors_)


@pytest.mark.slow
def test_seen_rows_gathered_in_blocks_equal_whole_and_release_ends_the_partition(
        runs: dict[str, Any]) -> None:
    result = runs["two"]["gather"]
    assert result["nnz"] > 0
    assert result["blocks_equal"] and result["released_equal"]
    assert result["rows_left"] == 0  # freed on the last rank to report too
    assert "released" in result["refit"]

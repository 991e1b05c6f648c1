"""Distributed training: sharded input, vocabulary agreement, distributed ALS and iALS, faults.

The single-process tests run the distributed code path in a group of one. The ``distributed``
tests start real processes on loopback with gloo: ``latentrec train --nproc 2`` (torch's elastic
launcher) and ``torchrun -m latentrec train``, as users run them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import latentrec
from latentrec import ALS, ImplicitALS, read_interactions
from latentrec.data.shards import Shard, assign_shards, list_shards, read_shard
from latentrec.datasets import synthetic
from latentrec.errors import DataError, InvalidParameterError
from latentrec.training import Checkpoint
from latentrec.training.distributed import Group
from latentrec.training.sharded import fit_sharded

LATENTREC = [sys.executable, "-m", "latentrec"]
TORCHRUN = Path(sys.executable).with_name("torchrun")


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _write_shards(folder: Path, frame: pd.DataFrame) -> Path:
    """Unequal shards in two formats: three CSV files and a Parquet file of two row groups.
    Users 0-9 appear only in the first file and items of the last rows only in the Parquet
    file, so some ids live on one rank only."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = frame.sort_values(["user", "item"], kind="stable").reset_index(drop=True)
    cuts = [0, len(frame) // 10, len(frame) // 4, len(frame) // 2, len(frame)]
    frame.iloc[cuts[0]:cuts[1]].to_csv(folder / "part-0.csv", index=False)
    frame.iloc[cuts[1]:cuts[2]].to_csv(folder / "part-1.csv", index=False)
    frame.iloc[cuts[2]:cuts[3]].to_csv(folder / "part-2.csv", index=False)
    frame.iloc[cuts[3]:].to_parquet(folder / "part-3.parquet", row_group_size=len(frame) // 3)
    (folder / "_SUCCESS").write_text("")
    return folder


@pytest.fixture(scope="module")
def implicit_shards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A directory of shards and the same interactions as one file."""
    folder = tmp_path_factory.mktemp("implicit")
    frame = synthetic(400, 250, feedback="implicit", seed=3).to_frame()
    frame["user"] = "u" + frame["user"].astype(str)  # text ids
    one = folder / "all.csv"
    frame.to_csv(one, index=False)
    return _write_shards(folder / "shards", frame), one


@pytest.fixture(scope="module")
def rating_shards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("ratings")
    frame = synthetic(300, 200, seed=4).to_frame()
    one = folder / "all.csv"
    frame.to_csv(one, index=False)
    return _write_shards(folder / "shards", frame), one


# ---------------------------------------------------------------------- shards, one process
def test_list_shards_reads_files_and_row_groups_and_skips_job_files(
        implicit_shards: tuple[Path, Path]) -> None:
    shards = list_shards(implicit_shards[0])
    names = [(Path(s.path).name, s.row_group) for s in shards]
    assert names[:3] == [("part-0.csv", None), ("part-1.csv", None), ("part-2.csv", None)]
    assert [g for name, g in names if name == "part-3.parquet"] == [0, 1]
    assert all("_SUCCESS" not in s.path for s in shards)


def test_assign_shards_covers_every_shard_once_and_balances_rows() -> None:
    shards = [Shard(f"f{i}", None, size) for i, size in enumerate([100, 90, 50, 40, 30, 10])]
    mine = [assign_shards(shards, rank, 3) for rank in range(3)]
    assert sorted(s.path for part in mine for s in part) == sorted(s.path for s in shards)
    loads = [sum(s.size for s in part) for part in mine]
    assert max(loads) - min(loads) <= 30
    assert assign_shards(shards[:1], 1, 2) == []  # more ranks than shards: some read nothing


def test_row_group_errors_name_the_row_as_numbered_in_the_file(tmp_path: Path) -> None:
    frame = pd.DataFrame({"user": [1, 2, 3, 4], "item": [1, 2, 3, 4],
                          "rating": [1.0, 2.0, 3.0, float("nan")]})
    frame.to_parquet(tmp_path / "r.parquet", row_group_size=2)
    shards = list_shards(tmp_path)
    assert [s.row_group for s in shards] == [0, 1]
    with pytest.raises(DataError, match=r"r.parquet:4: column 'rating'"):
        read_shard(shards[1])


def test_empty_directory_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("not data")
    with pytest.raises(DataError, match="holds no data files"):
        list_shards(tmp_path)


@pytest.mark.parametrize("model_class", [ImplicitALS, ALS])
def test_one_process_over_shards_equals_fit_on_the_whole_file(
        model_class: type, implicit_shards: tuple[Path, Path],
        rating_shards: tuple[Path, Path]) -> None:
    shards, one = implicit_shards if model_class is ImplicitALS else rating_shards
    feedback = "implicit" if model_class is ImplicitALS else "explicit"
    whole = model_class(factors=6, epochs=4).fit(read_interactions(one, feedback=feedback),
                                                 show_progress=False)
    sharded = fit_sharded(model_class(factors=6, epochs=4), shards, feedback=feedback,
                          show_progress=False)
    assert sharded.users_ == whole.users_ and sharded.items_ == whole.items_
    assert torch.equal(sharded.user_factors_, whole.user_factors_)
    assert torch.equal(sharded.item_factors_, whole.item_factors_)
    assert (sharded.seen_ != whole.seen_).nnz == 0


def test_ids_spelled_differently_in_two_shards_stay_distinct(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("user,item\n1,10\n2,10\n")
    (tmp_path / "b.csv").write_text("user,item\n01,10\n1,11\n")  # '01' is not user 1
    model = fit_sharded(ImplicitALS(factors=2, epochs=1), tmp_path, feedback="implicit",
                        show_progress=False)
    assert model.users_.to_list() == ["01", "1", "2"]
    assert model.seen_.nnz == 4


def test_duplicates_across_shards_follow_the_policy(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("user,item,rating\n1,10,4\n2,10,3\n")
    (tmp_path / "b.csv").write_text("user,item,rating\n1,10,2\n1,11,5\n")
    with pytest.raises(DataError, match=r"user 1 and item 10 appear in more than one shard "
                                        r"\(.*a.csv and .*b.csv\); pass duplicates="):
        fit_sharded(ALS(factors=2, epochs=1), tmp_path, show_progress=False)
    last = fit_sharded(ALS(factors=2, epochs=1), tmp_path, duplicates="last",
                       show_progress=False)
    assert last.seen_[last.users_.index_of([1])[0], last.items_.index_of([10])[0]] == 2.0
    mean = fit_sharded(ALS(factors=2, epochs=1), tmp_path, duplicates="mean",
                       show_progress=False)
    assert mean.seen_[mean.users_.index_of([1])[0], mean.items_.index_of([10])[0]] == 3.0


def test_models_that_do_not_train_distributed_say_which_do(
        implicit_shards: tuple[Path, Path]) -> None:
    from latentrec import EASE

    with pytest.raises(InvalidParameterError, match="EASE does not train distributed; models "
                                                    "that do: .*ials"):
        fit_sharded(EASE(), implicit_shards[0], feedback="implicit", show_progress=False)


@pytest.mark.parametrize("size", [2, 3, 4])
def test_partner_renumbering_in_place_is_undone_exactly(size: int) -> None:
    from latentrec.models._distributed_als import _renumber

    partners = 1003
    block = -(-partners // size)
    indices = np.random.default_rng(size).integers(0, partners, 5000).astype(np.int32)
    original = indices.copy()
    _renumber(indices, size, block, forward=True, chunk=777)
    # partner i's row in the table gathered rank by rank
    assert np.array_equal(indices, (original % size) * block + original // size)
    _renumber(indices, size, block, forward=False, chunk=777)
    assert np.array_equal(indices, original)


def test_group_of_one_collectives_are_identities() -> None:
    group = Group()
    tensor = torch.arange(4.0)
    assert group.all_reduce(tensor) is tensor
    assert group.all_to_all([tensor])[0] is tensor
    assert group.all_gather_object({"a": 1}) == [{"a": 1}]
    assert group.bytes_sent == 0


# ---------------------------------------------------------------------- real processes
def _train(args: list[str], *, env: dict[str, str] | None = None, timeout: float = 180
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LATENTREC, "train", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize(("kind", "exchange"), [("ials", "all-gather"), ("ials", "in/out"),
                                                ("als", "in/out")])
def test_two_processes_give_the_factors_of_one(
        tmp_path: Path, kind: str, exchange: str, implicit_shards: tuple[Path, Path],
        rating_shards: tuple[Path, Path]) -> None:
    shards, one = implicit_shards if kind == "ials" else rating_shards
    extra = ["--implicit"] if kind == "ials" else []
    out = tmp_path / "model"
    done = _train([str(shards), "-o", str(out), "--model", kind, "--factors", "6",
                   "--epochs", "4", "--nproc", "2", "--quiet", *extra],
                  env={"LATENTREC_EXCHANGE": exchange})
    assert done.returncode == 0, done.stderr
    assert "with 2 processes" in done.stdout
    model = latentrec.load(out)
    single_class = ImplicitALS if kind == "ials" else ALS
    single = single_class(factors=6, epochs=4).fit(
        read_interactions(one, feedback="implicit" if kind == "ials" else "explicit"),
        show_progress=False)
    assert model.users_ == single.users_ and model.items_ == single.items_
    # the same rows solved from the same numbers; only the Gram matrix's sums are reordered
    assert _relative(model.user_factors_, single.user_factors_) < 1e-4
    assert _relative(model.item_factors_, single.item_factors_) < 1e-4
    assert (model.seen_ != single.seen_).nnz == 0
    assert len(model.recommend(single.users_.to_list()[:3], k=5)) == 15


@pytest.mark.distributed
@pytest.mark.slow
def test_a_data_error_on_one_rank_ends_every_rank_with_that_line(
        tmp_path: Path, rating_shards: tuple[Path, Path]) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    for name in ("part-0.csv", "part-1.csv"):
        (folder / name).write_bytes((rating_shards[0] / name).read_bytes())
    (folder / "part-9.csv").write_text("user,item,rating\n1,2,5\n3,4,abc\n")
    started = time.monotonic()
    done = _train([str(folder), "-o", str(tmp_path / "m"), "--model", "als", "--nproc", "2",
                   "--timeout", "60"])
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"latentrec: error: {folder / 'part-9.csv'}:3: column 'rating': 'abc' is not a number"]
    assert time.monotonic() - started < 60  # nobody waited for the timeout
    assert not (tmp_path / "m").exists()


@pytest.mark.distributed
@pytest.mark.slow
def test_a_fault_every_rank_finds_is_one_line_and_warnings_are_printed_once(
        tmp_path: Path, rating_shards: tuple[Path, Path]) -> None:
    shards = str(rating_shards[0])
    huge = _train([shards, "-o", str(tmp_path / "m"), "--model", "ials", "--implicit",
                   "--factors", "100000000", "--nproc", "2"])
    assert huge.returncode == 1
    assert len(huge.stderr.strip().splitlines()) == 1, huge.stderr
    assert "factors=100,000,000 needs" in huge.stderr
    warned = _train([shards, "-o", str(tmp_path / "w"), "--model", "ials", "--factors", "2",
                     "--epochs", "1", "--nproc", "2", "--quiet"])
    assert warned.returncode == 0, warned.stderr
    assert [line for line in warned.stderr.splitlines() if "warning" in line] == [
        line for line in warned.stderr.splitlines() if "this data holds ratings" in line]
    assert warned.stderr.count("this data holds ratings") == 1


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def _wait_for(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def long_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough data that 50 epochs take a few seconds."""
    folder = tmp_path_factory.mktemp("long")
    frame = synthetic(4000, 1500, n_interactions=300_000, feedback="implicit",
                      seed=5).to_frame()
    return _write_shards(folder / "shards", frame)


@pytest.mark.distributed
@pytest.mark.slow
def test_a_worker_killed_mid_training_is_restarted_and_the_run_completes(
        tmp_path: Path, long_run: Path) -> None:
    checkpoints, out = tmp_path / "ckpt", tmp_path / "model"
    args = [str(long_run), "-o", str(out), "--model", "ials", "--implicit", "--factors", "16",
            "--epochs", "50", "--nproc", "2", "--max-restarts", "1", "--checkpoint-dir",
            str(checkpoints), "--quiet"]
    launcher = subprocess.Popen([*LATENTREC, "train", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (checkpoints / "LATEST").is_file()
                  and (checkpoints / "LATEST").read_text().strip() >= "epoch-000002", 120)
        workers = _children(launcher.pid)
        assert len(workers) == 2
        os.kill(workers[-1], signal.SIGKILL)
        stdout, stderr = launcher.communicate(timeout=180)
    finally:
        launcher.kill()
    assert launcher.returncode == 0, stderr
    assert "trained ials" in stdout
    assert (checkpoints / "LATEST").read_text().strip() == "epoch-000050"
    model = latentrec.load(out)
    uninterrupted = fit_sharded(ImplicitALS(factors=16, epochs=50), long_run,
                                feedback="implicit", show_progress=False)
    # resumed from the checkpoint, so the same factors (up to the Gram matrix's sum order)
    assert _relative(model.item_factors_, uninterrupted.item_factors_) < 1e-3


@pytest.mark.distributed
@pytest.mark.slow
def test_without_restarts_a_killed_worker_fails_the_run_in_one_line(
        tmp_path: Path, long_run: Path) -> None:
    checkpoints = tmp_path / "ckpt"
    launcher = subprocess.Popen(
        [*LATENTREC, "train", str(long_run), "-o", str(tmp_path / "m"), "--model", "ials",
         "--implicit", "--factors", "16", "--epochs", "30", "--nproc", "2", "--timeout", "60",
         "--checkpoint-dir", str(checkpoints), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (checkpoints / "LATEST").is_file(), 120)
        os.kill(_children(launcher.pid)[-1], signal.SIGKILL)
        _, stderr = launcher.communicate(timeout=90)
    finally:
        launcher.kill()
    assert launcher.returncode == 1
    errors = [line for line in stderr.splitlines() if "error" in line.lower()]
    assert errors[-1] == "latentrec: error: distributed training failed: rank 1 was killed " \
                         "by signal 9"
    assert not (tmp_path / "m").exists()


@pytest.mark.distributed
@pytest.mark.slow
def test_torchrun_runs_the_command_and_resume_continues_a_checkpoint(
        tmp_path: Path, implicit_shards: tuple[Path, Path]) -> None:
    shards = implicit_shards[0]
    checkpoints = tmp_path / "ckpt"
    common = ["-m", "latentrec", "train", str(shards), "--model", "ials", "--implicit",
              "--factors", "6", "--quiet"]
    torchrun = [str(TORCHRUN), "--standalone", "--nproc-per-node", "2"]
    first = subprocess.run([*torchrun, *common, "-o", str(tmp_path / "a"), "--epochs", "3",
                            "--checkpoint-dir", str(checkpoints)],
                           capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("trained ials") == 1  # only rank 0 reports
    # continue the 3-epoch run to 6 epochs in one process: ranks keep their own rows
    resumed = _train([str(shards), "-o", str(tmp_path / "b"), "--model", "ials", "--implicit",
                      "--factors", "6", "--epochs", "6", "--resume", str(checkpoints),
                      "--quiet"])
    assert resumed.returncode == 0, resumed.stderr
    straight = fit_sharded(ImplicitALS(factors=6, epochs=6), shards, feedback="implicit",
                           show_progress=False)
    model = latentrec.load(tmp_path / "b")
    assert _relative(model.item_factors_, straight.item_factors_) < 1e-4
    np.testing.assert_array_equal(model.seen_.toarray(), straight.seen_.toarray())


def test_distributed_checkpoints_resume_in_one_process(
        tmp_path: Path, implicit_shards: tuple[Path, Path]) -> None:
    shards = implicit_shards[0]
    fit_sharded(ImplicitALS(factors=4, epochs=2), shards, feedback="implicit",
                checkpoint=Checkpoint(tmp_path), show_progress=False)
    with pytest.raises(InvalidParameterError, match="another run"):
        fit_sharded(ImplicitALS(factors=5, epochs=3), shards, feedback="implicit",
                    resume=tmp_path, show_progress=False)

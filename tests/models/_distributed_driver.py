"""One rank of a distributed test run (``torchrun --nproc-per-node P _distributed_driver.py
JOBS.json``, or plain ``python`` for ``P = 1``).

``JOBS.json`` holds ``{"out": DIR, "threads": N, "jobs": [...]}``; each job is ``{"name",
"shards" (a folder of shard files), "feedback", "model" (a kind), "params", "mode"}``. Every
rank reads its share of a job's shards and builds its partition (once per folder and
feedback), then runs the jobs in order, by mode:

- ``fit``: fit and save the model to ``OUT/NAME``;
- ``resume``: fit ``params["epochs"]`` epochs uninterrupted (saved to ``OUT/NAME-full``), then
  again from scratch for ``job["stop"]`` epochs with a checkpoint after every epoch, then a
  third time resuming from that checkpoint up to ``params["epochs"]`` (``OUT/NAME-resumed``);
- ``gather``: gather every user's row on rank 0 whole, in blocks of 3 users and releasing the
  rows in blocks of 5; record whether they agree, what is left, and what a second fit says;
- ``replicas``: run ``params["epochs"]`` epochs of the model's distributed trainable and
  record whether every rank's replica (its module's state) is identical to rank 0's.

Rank 0 writes ``OUT/results.json``: per job the history, the bytes this rank sent and, for
``replicas``, ``identical`` and the largest difference.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import latentrec
from latentrec.data.shards import assign_shards, list_shards, read_shard
from latentrec.training import Checkpoint
from latentrec.training.distributed import DistributedTrainer, init_group, shutdown
from latentrec.training.partition import Partition, partition


def _model(job: dict[str, Any], **changes: Any) -> Any:
    kinds = latentrec.persistence.model_kinds()
    return kinds[job["model"]](**{**job["params"], **changes})


def _run(job: dict[str, Any], data: Partition, out: Path) -> dict[str, Any]:
    group = data.group
    name, mode = job["name"], job["mode"]
    before = group.bytes_sent
    result: dict[str, Any] = {}
    if mode == "fit":
        started = time.perf_counter()
        model = _model(job).fit(data, trainer=DistributedTrainer(show_progress=False,
                                                                 group=group))
        result["seconds"] = time.perf_counter() - started
        result["history"] = model.history_
        if group.leader:
            model.save(out / name)
    elif mode == "resume":
        full = _model(job).fit(data, trainer=DistributedTrainer(show_progress=False,
                                                                group=group))
        folder = out / f"{name}-checkpoints"
        _model(job, epochs=job["stop"]).fit(data, trainer=DistributedTrainer(
            show_progress=False, group=group, checkpoint=Checkpoint(folder, every=1)))
        resumed = _model(job).fit(data, trainer=DistributedTrainer(
            show_progress=False, group=group, resume=folder))
        result["history"] = full.history_
        result["resumed_history"] = resumed.history_
        if group.leader:
            full.save(out / f"{name}-full")
            resumed.save(out / f"{name}-resumed")
    elif mode == "replicas":
        trainable: Any = _model(job)._distributed_trainable(data)
        for _ in range(job["params"]["epochs"]):
            trainable.train_epoch()
        mine = {key: value.detach().clone() for key, value in
                trainable.module.state_dict().items()}
        every = group.all_gather_object(mine)
        difference = max(float((part[key] - every[0][key]).abs().max())
                         for part in every for key in part)
        result["identical"] = all(torch.equal(part[key], every[0][key])
                                  for part in every for key in part)
        result["difference"] = difference
    elif mode == "gather":  # the partition's last job: it releases the rows
        whole = data.gather_rows(users_per_message=data.n_users * group.size)
        blocks = data.gather_rows(users_per_message=3)
        released = data.gather_rows(release=True, users_per_message=5)
        if group.leader:
            assert whole is not None and blocks is not None and released is not None
            result["blocks_equal"] = bool((whole != blocks).nnz == 0 and np.array_equal(
                whole.indptr, blocks.indptr) and np.array_equal(whole.data, blocks.data))
            result["released_equal"] = bool((whole != released).nnz == 0)
            result["nnz"] = int(whole.nnz)
        result["rows_left"] = int(data.user_rows.nnz + data.item_rows.nnz)
        try:
            _model(job).fit(data, trainer=DistributedTrainer(show_progress=False, group=group))
            result["refit"] = "trained"
        except latentrec.errors.InvalidParameterError as error:
            result["refit"] = str(error)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    result["bytes_sent"] = group.bytes_sent - before
    return result


def main(argv: list[str]) -> None:
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    group = init_group(timeout=120, threads=int(spec.get("threads", 1)))
    out = Path(spec["out"])
    partitions: dict[tuple[str, str], Partition] = {}
    results = {}
    for job in spec["jobs"]:
        key = (job["shards"], job["feedback"])
        if key not in partitions:
            shards = list_shards(job["shards"])
            mine = assign_shards(shards, group.rank, group.size)
            parts = [read_shard(shard, feedback=job["feedback"]) for shard in mine]
            partitions[key] = partition(group, parts, [str(shard) for shard in shards],
                                        feedback=job["feedback"],
                                        orders=[shards.index(shard) for shard in mine])
        results[job["name"]] = _run(job, partitions[key], out)
    if group.leader:
        (out / "results.json").write_text(json.dumps(results), encoding="utf-8")
    shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])

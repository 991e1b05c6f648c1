"""Resident memory of each process of a distributed ImplicitALS run, phase by phase.

    torchrun --standalone --nproc-per-node 4 benchmarks/distributed_phases.py \
        /tmp/latentrec-scale/dense-users-n100000000/parquet-8

(the Parquet shards that ``benchmarks/distributed.py scale`` writes). Prints, per rank, the
current and peak resident memory after reading the shards, partitioning, building the
trainable, two sweeps, publishing the model and gathering the seen rows on rank 0.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import resource
import sys
import time

import numpy as np

from latentrec import ImplicitALS
from latentrec.data.shards import assign_shards, list_shards, read_shard
from latentrec.models._distributed_als import DistributedImplicitALSTrainable
from latentrec.training.distributed import init_group
from latentrec.training.partition import partition

STARTED = time.perf_counter()


def report(phase: str) -> None:
    with open("/proc/self/statm") as statm:
        current = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rank {os.environ.get('RANK', '0')} {phase:10s} now {current:6.0f} MB, "
          f"peak {peak:6.0f} MB, {time.perf_counter() - STARTED:5.1f} s", flush=True)


def main() -> None:
    group = init_group(threads=1)
    trim = ctypes.CDLL("libc.so.6").malloc_trim  # memory freed by numpy goes back to the OS
    shards = list_shards(sys.argv[1])
    mine = assign_shards(shards, group.rank, group.size)
    parts = []
    for shard in mine:  # compacted as fit_sharded holds them
        part = read_shard(shard, feedback="implicit")
        parts.append(dataclasses.replace(
            part, user_index=part.user_index.astype(np.int32),
            item_index=part.item_index.astype(np.int32), timestamps=None,
            values=None if part.values is None else part.values.astype(np.float32)))
        del part
    trim(0)
    report("read")
    data = partition(group, parts, [str(s) for s in shards], feedback="implicit",
                     orders=[shards.index(s) for s in mine])
    data.single_use = True
    trim(0)
    report("partition")
    trainable = DistributedImplicitALSTrainable(ImplicitALS(factors=64, epochs=2), data)
    report("trainable")
    for epoch in (1, 2):
        trainable.train_epoch()
        report(f"sweep {epoch}")
    trainable.publish()
    report("publish")
    trainable.close()
    del trainable
    seen = data.gather_rows(release=True)
    report("gather")
    del seen


if __name__ == "__main__":
    main()

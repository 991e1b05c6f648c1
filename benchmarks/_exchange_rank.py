"""One process of ``benchmarks/distributed.py exchange``: run under torchrun.

Gathers a ``rows x 64`` float32 table (each process's share ``rows / P``) three ways: gloo's
own all-gather, latentrec's pairwise all-gather (:meth:`Group.all_gather_blocks`, into a
reused table as the ALS trainables do), and gloo's all-to-all sending the same share to every
process; rank 0 prints the median seconds of
``--repeats`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.distributed as dist

from latentrec.training.distributed import init_group, shutdown


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    group = init_group(threads=1, timeout=600)
    share = -(-args.rows // group.size)
    own = torch.randn(share, args.factors)
    table = torch.empty(share * group.size, args.factors)
    sent = own.repeat(group.size, 1)
    received = torch.empty_like(sent)
    ways = {
        "gloo all_gather": lambda: dist.all_gather_into_tensor(table, own),
        "latentrec all_gather_blocks (pairwise)": lambda: group.all_gather_blocks(own, share,
                                                                                  table),
        "gloo all_to_all (same bytes)": lambda: dist.all_to_all_single(received, sent),
    }
    seconds: dict[str, float] = {}
    for name, way in ways.items():
        times = []
        for _ in range(args.repeats):
            group.barrier()
            started = time.perf_counter()
            way()
            group.barrier()
            times.append(time.perf_counter() - started)
        seconds[name] = statistics.median(times)
    if group.leader:
        print(json.dumps({"procs": group.size, "rows": args.rows, "factors": args.factors,
                          "mb_per_process": own.numel() * 4 / 1e6, "seconds": seconds}))
    shutdown()


if __name__ == "__main__":
    main()

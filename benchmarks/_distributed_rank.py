"""One process of benchmarks/distributed.py: run under torchrun (P > 1) or alone (P = 1).

    torchrun --standalone --nproc-per-node P benchmarks/_distributed_rank.py \
        --data DIR --kind ials --params '{"factors": 64, "epochs": 3}' --feedback implicit \
        --threads 1 --out results/

Each rank writes ``rank-<r>.json``: seconds and bytes sent per epoch, the time to read and
partition its shards, and its peak resident memory. Rank 0 saves the model with --model-out.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

from latentrec.persistence import model_kinds
from latentrec.training.distributed import init_group, shutdown
from latentrec.training.sharded import fit_sharded


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--kind", required=True)
    parser.add_argument("--params", default="{}")
    parser.add_argument("--feedback", default="explicit")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True)
    parser.add_argument("--model-out", default=None)
    args = parser.parse_args()

    group = init_group(threads=args.threads, timeout=3600)
    model = model_kinds()[args.kind](**json.loads(args.params))
    epochs: list[dict[str, float]] = []
    sent = [0]

    def record(epoch: int, logs: dict[str, float]) -> None:
        epochs.append({"epoch": epoch, "seconds": logs["seconds"],
                       "bytes": group.bytes_sent - sent[0]})
        sent[0] = group.bytes_sent

    started = time.perf_counter()
    fit_sharded(model, args.data, output=args.model_out, feedback=args.feedback,
                callbacks=[record], show_progress=False, group=group)
    total = time.perf_counter() - started
    training = sum(e["seconds"] for e in epochs)
    report = {
        "rank": group.rank, "size": group.size, "threads": args.threads,
        "total_s": total, "training_s": training,
        "epochs": epochs, "bytes_total": group.bytes_sent,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, f"rank-{group.rank}.json").write_text(json.dumps(report))
    shutdown()


if __name__ == "__main__":
    main()

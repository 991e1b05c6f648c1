"""One training pass at scale, latentrec and peers side by side, each in its own process.

    python benchmarks/scale.py --task ials --interactions 20000000     # one iALS sweep, k=64
    python benchmarks/scale.py --task sgd  --interactions 20000000     # one SGD epoch, k=64
    python benchmarks/scale.py --task als  --interactions 20000000     # one explicit ALS sweep

Data: the built-in generator, 1M users x 100k items with Zipf-like popularity (user_zipf 0.5,
item_zipf 0.8) scaled down proportionally for smaller --interactions; generated once and cached
as .npy files under --cache (default /tmp/latentrec-scale). Every contender runs in a fresh
child process that loads the cached arrays, so "peak MB" (the child's maximum resident set)
is its own. "seconds" times the training pass only (best of --repeats passes after one
warm-up pass that also compiles numba kernels).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from _common import machine, markdown_table, save

CHILD_PRELUDE = """
import json, sys, time
import numpy as np
import scipy.sparse as sp
folder = sys.argv[1]; factors = int(sys.argv[2]); repeats = int(sys.argv[3])
users = np.load(folder + "/users.npy"); items = np.load(folder + "/items.npy")
values = np.load(folder + "/values.npy")
n_users, n_items = int(users.max()) + 1, int(items.max()) + 1
def interactions(feedback):
    # the loaded arrays as latentrec Interactions; the raw copies are dropped
    global users, items, values
    from latentrec import Interactions
    from latentrec.data import IdMap
    data = Interactions(users.astype(np.int64), items.astype(np.int64),
                        values if feedback == "explicit" else None,
                        IdMap(np.arange(n_users)), IdMap(np.arange(n_items)), feedback)
    users = items = values = None
    return data
def timed_fits(make, fit):
    # one warm-up fit (numba compilation, allocator), then `repeats` timed ones
    times = []
    for _ in range(repeats + 1):
        model = make()
        started = time.perf_counter()
        fit(model)
        times.append(time.perf_counter() - started)
    return times[1:]
def report(times, **extra):
    # VmHWM is this process's own peak; ru_maxrss can include the parent's at fork time
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    print(json.dumps({"seconds": min(times), "all_seconds": times, "peak_mb": peak, **extra}))
"""

CHILDREN: dict[str, dict[str, str]] = {
    "als": {
        "latentrec ALS (explicit, exact solves)": """
            from latentrec import ALS
            data = interactions("explicit")
            report(timed_fits(lambda: ALS(factors=factors, epochs=1),
                              lambda model: model.fit(data, show_progress=False)),
                   note="fit() of one sweep (users then items), setup included")
        """,
    },
    "ials": {
        "latentrec ImplicitALS (cg)": """
            from latentrec import ImplicitALS
            data = interactions("implicit")
            report(timed_fits(lambda: ImplicitALS(factors=factors, epochs=1, report_loss=False),
                              lambda model: model.fit(data, show_progress=False)),
                   note="fit() of one epoch, setup included")
        """,
        "implicit ALS (cg)": """
            from implicit.cpu.als import AlternatingLeastSquares
            from threadpoolctl import threadpool_limits
            matrix = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)),
                                   shape=(n_users, n_items))
            def fit(model):
                with threadpool_limits(1, "blas"):
                    model.fit(matrix, show_progress=False)
            report(timed_fits(lambda: AlternatingLeastSquares(factors=factors, iterations=1,
                                                              random_state=0), fit),
                   note="fit() of one iteration, setup included")
        """,
    },
    "sgd": {
        "latentrec BiasedMF (numba kernel)": """
            from latentrec import BiasedMF
            data = interactions("explicit")
            model = BiasedMF(factors=factors, epochs=repeats + 1)
            model.fit(data, show_progress=False)
            times = [h["seconds"] for h in model.history_][1:]
            report(times, note="per-epoch time from history (kernel + shuffle)")
        """,
        "latentrec BiasedMF (fit of one epoch)": """
            from latentrec import BiasedMF
            data = interactions("explicit")
            report(timed_fits(lambda: BiasedMF(factors=factors, epochs=1),
                              lambda model: model.fit(data, show_progress=False)),
                   note="fit() of one epoch, setup (block layout) included")
        """,
        "LIBMF (FPSGD, 2 threads)": """
            from libmf import mf
            triples = np.ascontiguousarray(np.column_stack([users, items, values])
                                           .astype(np.float32))
            times = []
            for _ in range(repeats):
                engine = mf.MF(k=factors, nr_iters=1, nr_threads=2, quiet=True,
                               lambda_p1=0.0, lambda_q1=0.0, lambda_p2=0.05, lambda_q2=0.05)
                started = time.perf_counter()
                engine.fit(triples)
                times.append(time.perf_counter() - started)
            report(times, note="fit() with one iteration, setup included")
        """,
    },
}


def generate(folder: Path, interactions: int) -> None:
    if (folder / "users.npy").exists():
        return
    import numpy as np

    from latentrec.datasets import synthetic

    scale = interactions / 20_000_000
    data = synthetic(max(1000, int(1_000_000 * scale)), max(500, int(100_000 * scale)),
                     n_interactions=interactions, seed=0)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "users.npy", data.user_index.astype(np.int32))
    np.save(folder / "items.npy", data.item_index.astype(np.int32))
    np.save(folder / "values.npy", data.values.astype(np.float32))


def run_contender(task: str, name: str, folder: Path, factors: int,
                  repeats: int) -> dict[str, Any] | None:
    """Run one contender in a fresh child process; its timing and peak memory, or None."""
    code = CHILD_PRELUDE + textwrap.dedent(CHILDREN[task][name])
    done = subprocess.run([sys.executable, "-c", code, str(folder), str(factors), str(repeats)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"{name}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{name} (n={folder.name[1:]}, k={factors}): {result['seconds']:.2f} s, "
          f"peak {result['peak_mb']:.0f} MB", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(CHILDREN), default="ials")
    parser.add_argument("--interactions", type=int, default=20_000_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cache", default="/tmp/latentrec-scale")
    parser.add_argument("--only", default=None)
    args = parser.parse_args(argv)
    folder = Path(args.cache) / f"n{args.interactions}"
    generate(folder, args.interactions)
    rows: list[dict[str, Any]] = []
    for name in CHILDREN[args.task]:
        if args.only and args.only not in name:
            continue
        result = run_contender(args.task, name, folder, args.factors, args.repeats)
        if result is not None:
            rows.append({"contender": name, **result})
    if rows:
        best_peer = min((r for r in rows if not r["contender"].startswith("latentrec")),
                        key=lambda r: r["seconds"], default=None)
        for row in rows:
            if best_peer is not None:
                row["time_vs_peer"] = row["seconds"] / best_peer["seconds"]
    print(markdown_table(rows, ["contender", "seconds", "peak_mb", "time_vs_peer", "note"]))
    save(f"scale_{args.task}_{args.interactions}", {"machine": machine(), "args": vars(args),
                                                    "rows": rows})


if __name__ == "__main__":
    main()

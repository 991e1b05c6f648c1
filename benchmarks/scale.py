"""One training pass at scale, latentrec and peers side by side, each in its own process.

    python benchmarks/scale.py --task ials --interactions 20000000     # one iALS sweep, k=64
    python benchmarks/scale.py --task sgd  --interactions 20000000     # one SGD epoch, k=64
    python benchmarks/scale.py --task als  --interactions 20000000     # one explicit ALS sweep
    python benchmarks/scale.py --task ials --shape dense-users         # the second data shape

Data: the built-in generator (``latentrec.datasets.synthetic``, explicit ratings) in one of two
shapes, picked with --shape:

* ``default``: 1M users x 100k items, ~20 interactions per user, Zipf-like activity and
  popularity (user_zipf 0.5, item_zipf 0.8);
* ``dense-users``: 225k users x 100k items, ~89 interactions per user, a heavier-tailed item
  popularity (user_zipf 0.5, item_zipf 1.05).

Users and items scale down proportionally for smaller --interactions (the sizes above are for
20M). The data is generated once and cached as .npy files under --cache (default
/tmp/latentrec-scale), one folder per shape and size. Every contender runs in a fresh child
process that loads the cached arrays, so "peak MB" (the child's maximum resident set) is its
own. "seconds" times the training pass only (best of --repeats passes after one warm-up pass
that also compiles numba kernels). latentrec's iALS runs with ``report_loss=False`` (no
per-epoch training loss), like implicit's ALS.
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


# users, items (at 20M interactions) and Zipf exponents of each data shape
SHAPES: dict[str, dict[str, float]] = {
    "default": {"n_users": 1_000_000, "n_items": 100_000, "user_zipf": 0.5, "item_zipf": 0.8},
    "dense-users": {"n_users": 225_000, "n_items": 100_000, "user_zipf": 0.5, "item_zipf": 1.05},
}


def shape_of(shape: str, interactions: int) -> dict[str, Any]:
    """The generator's arguments for ``shape`` scaled to ``interactions`` rows."""
    spec = SHAPES[shape]
    scale = interactions / 20_000_000
    return {"n_users": max(1000, int(spec["n_users"] * scale)),
            "n_items": max(500, int(spec["n_items"] * scale)),
            "n_interactions": interactions,
            "user_zipf": spec["user_zipf"], "item_zipf": spec["item_zipf"]}


def cache_folder(cache: str, shape: str, interactions: int) -> Path:
    # the default shape keeps its historical folder, so existing caches stay valid
    name = f"n{interactions}" if shape == "default" else f"{shape}-n{interactions}"
    return Path(cache) / name


def generate(folder: Path, arguments: dict[str, Any]) -> None:
    if (folder / "users.npy").exists():
        return
    import numpy as np

    from latentrec.datasets import synthetic

    data = synthetic(arguments["n_users"], arguments["n_items"],
                     n_interactions=arguments["n_interactions"],
                     user_zipf=arguments["user_zipf"], item_zipf=arguments["item_zipf"], seed=0)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "users.npy", data.user_index.astype(np.int32))
    np.save(folder / "items.npy", data.item_index.astype(np.int32))
    np.save(folder / "values.npy", data.values.astype(np.float32))


def describe(folder: Path) -> dict[str, Any]:
    """What the cached data holds: sizes, interactions per active user, item popularity."""
    import numpy as np

    users = np.load(folder / "users.npy", mmap_mode="r")
    items = np.load(folder / "items.npy")
    per_user = np.bincount(np.asarray(users))
    per_item = np.sort(np.bincount(items))[::-1]
    active = int((per_user > 0).sum())
    return {"interactions": len(items), "active_users": active,
            "active_items": int((per_item > 0).sum()),
            "per_user_mean": len(items) / active, "per_user_max": int(per_user.max()),
            "top1pct_items_share": float(per_item[:max(1, len(per_item) // 100)].sum()
                                         / len(items))}


def run_contender(task: str, name: str, folder: Path, factors: int,
                  repeats: int, label: str) -> dict[str, Any] | None:
    """Run one contender in a fresh child process; its timing and peak memory, or None."""
    code = CHILD_PRELUDE + textwrap.dedent(CHILDREN[task][name])
    done = subprocess.run([sys.executable, "-c", code, str(folder), str(factors), str(repeats)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"{name}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{name} ({label}, k={factors}): {result['seconds']:.2f} s, "
          f"peak {result['peak_mb']:.0f} MB", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(CHILDREN), default="ials")
    parser.add_argument("--interactions", type=int, default=20_000_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cache", default="/tmp/latentrec-scale")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="default",
                        help="data shape: default (1M users, ~20 per user) or dense-users "
                             "(225k users, ~89 per user, heavier-tailed popularity)")
    parser.add_argument("--only", default=None)
    args = parser.parse_args(argv)
    arguments = shape_of(args.shape, args.interactions)
    folder = cache_folder(args.cache, args.shape, args.interactions)
    generate(folder, arguments)
    data = {"shape": args.shape, "generator": arguments, **describe(folder)}
    label = (f"{args.shape}: {data['active_users']:,} users x {arguments['n_items']:,} items, "
             f"{data['interactions']:,} interactions, {data['per_user_mean']:.1f} per user, "
             f"item_zipf {arguments['item_zipf']:g}")
    print(f"data {label}; top 1% of items hold {data['top1pct_items_share']:.0%}",
          file=sys.stderr)
    rows: list[dict[str, Any]] = []
    for name in CHILDREN[args.task]:
        if args.only and args.only not in name:
            continue
        result = run_contender(args.task, name, folder, args.factors, args.repeats,
                               args.shape)
        if result is not None:
            rows.append({"contender": name, **result})
    if rows:
        best_peer = min((r for r in rows if not r["contender"].startswith("latentrec")),
                        key=lambda r: r["seconds"], default=None)
        for row in rows:
            if best_peer is not None:
                row["time_vs_peer"] = row["seconds"] / best_peer["seconds"]
    print(f"data: {label}")
    print(markdown_table(rows, ["contender", "seconds", "peak_mb", "time_vs_peer", "note"]))
    suffix = "" if args.shape == "default" else f"_{args.shape}"
    save(f"scale_{args.task}_{args.interactions}{suffix}",
         {"machine": machine(), "args": vars(args), "data": data, "rows": rows})


if __name__ == "__main__":
    main()

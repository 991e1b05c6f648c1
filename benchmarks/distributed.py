"""Distributed training measured: time per sweep/epoch, bytes sent, peak memory per rank and
quality at P processes, against one process, and Spark MLlib ALS on the same data.

    python benchmarks/distributed.py scale --task ials --interactions 20000000 --procs 1 2 4
    python benchmarks/distributed.py scale --task sgd --interactions 20000000 --procs 1 2 4
    python benchmarks/distributed.py quality --procs 1 2 4          # MovieLens 100K
    python benchmarks/distributed.py spark --interactions 2000000   # vs Spark MLlib ALS
    python benchmarks/distributed.py exchange --procs 2 4           # gloo collectives alone

``scale`` uses the data of benchmarks/scale.py (the same generator, shapes and cache), written
once as 8 Parquet shards. The baseline is one ordinary process (``model.fit``) with 2 threads;
each distributed run is ``torchrun --standalone --nproc-per-node P`` with 1 thread per process
(this machine has 2 cores, so P = 4 oversubscribes them: its times show overhead, not
speed-up). Seconds per epoch are the median over the epochs of the slowest rank's epoch, then
the median over ``--repeats`` runs, which alternate with the baseline's runs (this shared
machine has slow spells of a minute or more: single runs of the same command gave ratios from
0.89 to 1.64); ``each_vs_1x2`` lists each run against the baseline run beside it. Bytes are
those every rank hands to the network per epoch, summed over the ranks (counted by latentrec's
collectives, not estimated); peak MB is the largest resident set of any rank.

``quality`` trains on MovieLens 100K at P processes and scores like ``latentrec bench``:
ImplicitALS and BPR by NDCG@10 on the implicit split (every rating an interaction,
user_holdout 0.2, seed 42), BiasedMF and ALS by RMSE on u1.base/u1.test. The stochastic
models (BPR, BiasedMF) report the mean over --seeds, for one process and for P processes.

``spark`` runs Spark MLlib ALS (``implicitPrefs=True``, the same rank and confidence,
``local[2]``) and latentrec's ImplicitALS at P = 2 on the same synthetic implicit data and on
the MovieLens 100K implicit split: seconds per iteration (the difference between fits of
``--iterations`` and 1 iterations, divided by the difference, so Spark's job set-up is not
counted as iteration time) and NDCG@10.

``exchange`` times gathering a 1M x 64 table (each process's share) with gloo's all-gather,
with latentrec's pairwise all-gather, and with an all-to-all of the same bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine, markdown_table, save
from scale import cache_folder, describe, generate, shape_of

HERE = Path(__file__).resolve().parent
RANK_SCRIPT = HERE / "_distributed_rank.py"
TORCHRUN = Path(sys.executable).with_name("torchrun")

#: (model kind, feedback, hyperparameters) of each task, at --factors
TASKS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "ials": ("ials", "implicit", {}),
    "als": ("als", "explicit", {}),
    "sgd": ("biased-mf", "explicit", {}),
    "bpr": ("bpr", "implicit", {}),
}


# ---------------------------------------------------------------------------------- data
def parquet_shards(folder: Path, files: int = 8) -> Path:
    """The cached arrays of benchmarks/scale.py as ``files`` Parquet files of user, item,
    rating (written once)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = folder / f"parquet-{files}"
    if (target / "_DONE").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    users = np.load(folder / "users.npy", mmap_mode="r")
    items = np.load(folder / "items.npy", mmap_mode="r")
    values = np.load(folder / "values.npy", mmap_mode="r")
    bounds = np.linspace(0, len(users), files + 1).astype(np.int64)
    for part in range(files):
        lo, hi = bounds[part], bounds[part + 1]
        table = pa.table({"user": np.asarray(users[lo:hi]), "item": np.asarray(items[lo:hi]),
                          "rating": np.asarray(values[lo:hi])})
        pq.write_table(table, target / f"part-{part:03d}.parquet", row_group_size=1 << 20)
    (target / "_DONE").write_text("")
    return target


# ---------------------------------------------------------------------------------- runs
BASELINE = """
import json, resource, sys, time
import numpy as np
from latentrec import Interactions
from latentrec.data import IdMap
from latentrec.persistence import model_kinds
folder, kind, feedback, params = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
users = np.load(folder + "/users.npy").astype(np.int64)
items = np.load(folder + "/items.npy").astype(np.int64)
values = np.load(folder + "/values.npy") if feedback == "explicit" else None
data = Interactions(users, items, values, IdMap(np.arange(int(users.max()) + 1)),
                    IdMap(np.arange(int(items.max()) + 1)), feedback)
del users, items, values
model = model_kinds()[kind](**params)
started = time.perf_counter()
model.fit(data, show_progress=False)
print(json.dumps({"total_s": time.perf_counter() - started,
                  "epochs": [{"seconds": h["seconds"]} for h in model.history_],
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_baseline(folder: Path, kind: str, feedback: str, params: dict[str, Any]
                 ) -> dict[str, Any]:
    """One ordinary process with the machine's threads (numba and torch use every core)."""
    done = subprocess.run([sys.executable, "-c", BASELINE, str(folder), kind, feedback,
                           json.dumps(params)], capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_ranks(data: Path, kind: str, feedback: str, params: dict[str, Any], procs: int,
              threads: int, model_out: Path | None = None,
              env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """``procs`` processes (torchrun) with ``threads`` threads each; every rank's report."""
    out = Path(tempfile.mkdtemp(prefix="latentrec-dist-"))
    command = [str(RANK_SCRIPT), "--data", str(data), "--kind", kind, "--params",
               json.dumps(params), "--feedback", feedback, "--threads", str(threads),
               "--out", str(out)]
    if model_out is not None:
        command += ["--model-out", str(model_out)]
    launcher = ([str(TORCHRUN), "--standalone", "--nproc-per-node", str(procs)] if procs > 1
                else [sys.executable])
    subprocess.run([*launcher, *command], check=True, capture_output=True, text=True,
                   env={**os.environ, **(env or {})})
    reports = [json.loads(p.read_text()) for p in sorted(out.glob("rank-*.json"))]
    shutil.rmtree(out, ignore_errors=True)
    return reports


def summarise(label: str, reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One distributed run: the median over epochs of the slowest rank's epoch."""
    per_epoch = statistics.median(max(r["epochs"][e]["seconds"] for r in reports)
                                  for e in range(len(reports[0]["epochs"])))
    return {
        "run": label, "s_per_epoch": per_epoch,
        "MB_sent_per_epoch": sum(statistics.median(e["bytes"] for e in r["epochs"])
                                 for r in reports) / 1e6,
        "peak_MB_max_rank": max(r["peak_mb"] for r in reports),
        "setup_s": max(r["total_s"] - r["training_s"] for r in reports),
    }


def scale(args: argparse.Namespace) -> None:
    kind, feedback, extra = TASKS[args.task]
    arguments = shape_of(args.shape, args.interactions)
    folder = cache_folder(args.cache, args.shape, args.interactions)
    generate(folder, arguments)
    data = parquet_shards(folder)
    params = {**extra, "factors": args.factors, "epochs": args.epochs}
    # runs alternate (baseline, P = ..., baseline, ...) so that a slow spell of this shared
    # machine falls on both sides; each figure is the median over --repeats
    runs: dict[str, list[dict[str, Any]]] = {}
    for _ in range(args.repeats):
        if not args.no_baseline:
            baseline = run_baseline(folder, kind, feedback, params)
            runs.setdefault("1 process x 2 threads (model.fit)", []).append({
                "run": "", "s_per_epoch": statistics.median(e["seconds"]
                                                            for e in baseline["epochs"]),
                "MB_sent_per_epoch": 0.0, "peak_MB_max_rank": baseline["peak_mb"],
                "setup_s": baseline["total_s"] - sum(e["seconds"] for e in baseline["epochs"])})
            print(runs["1 process x 2 threads (model.fit)"][-1], file=sys.stderr)
        for procs in args.procs:
            label = f"{procs} process{'es' if procs > 1 else ''} x {args.threads} thread"
            reports = run_ranks(data, kind, feedback, params, procs, args.threads)
            runs.setdefault(label, []).append(summarise(label, reports))
            print(label, runs[label][-1], file=sys.stderr)
    rows = []
    base = runs.get("1 process x 2 threads (model.fit)")
    for label, repeats in runs.items():
        row: dict[str, Any] = {"run": label, **{
            key: statistics.median(r[key] for r in repeats)
            for key in ("s_per_epoch", "MB_sent_per_epoch", "peak_MB_max_rank", "setup_s")}}
        if base is not None:
            row["time_vs_1x2"] = row["s_per_epoch"] / statistics.median(
                r["s_per_epoch"] for r in base)
            row["peak_vs_1x2"] = row["peak_MB_max_rank"] / statistics.median(
                r["peak_MB_max_rank"] for r in base)
            row["each_vs_1x2"] = " ".join(f"{r['s_per_epoch'] / b['s_per_epoch']:.2f}"
                                          for r, b in zip(repeats, base, strict=True))
        rows.append(row)
    columns = ["run", "s_per_epoch", "time_vs_1x2", "MB_sent_per_epoch", "peak_MB_max_rank",
               "peak_vs_1x2", "setup_s", "each_vs_1x2"]
    table = markdown_table(rows, columns)
    print(table)
    suffix = "" if args.shape == "default" else f"_{args.shape}"
    save(f"distributed_{args.task}_n{args.interactions}{suffix}",
         {"task": args.task, "params": params, "data": {"shape": args.shape,
                                                        **describe(folder)},
          "machine": machine(), "rows": rows, "table": table})


# ---------------------------------------------------------------------------------- quality
def _shards(frame: Any, folder: Path, parts: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for part in range(parts):
        frame.iloc[part::parts].to_csv(folder / f"part-{part}.csv", index=False)
    return folder


def quality(args: argparse.Namespace) -> None:
    from _common import datasets_dir

    from latentrec import evaluate, load
    from latentrec.bench import load_split
    from latentrec.persistence import model_kinds

    root = datasets_dir(args.data_dir)
    work = Path(tempfile.mkdtemp(prefix="latentrec-quality-"))
    rows = []
    cases = [("ials", "implicit", "ndcg@10"), ("bpr", "implicit", "ndcg@10"),
             ("biased-mf", "explicit", "rmse"), ("als", "explicit", "rmse")]
    for kind, suite, metric in cases:
        if args.only and kind not in args.only:
            continue
        train, test = load_split(suite, "ml-100k", root)
        feedback = "implicit" if suite == "implicit" else "explicit"
        data = _shards(train.to_frame(), work / f"{kind}-data")
        # the stochastic models over several seeds: two runs of one seed differ by chance
        seeds = args.seeds if kind in ("bpr", "biased-mf") else [0]

        def score(model: Any, test: Any = test, metric: str = metric) -> float:
            return float(evaluate(model, test).set_index("metric").loc[metric, "value"])

        singles = [score(model_kinds()[kind](seed=seed).fit(train, show_progress=False))
                   for seed in seeds]
        reference = statistics.mean(singles)
        rows.append({"model": kind, "run": "model.fit", metric: reference,
                     "seeds": len(seeds), "spread": max(singles) - min(singles)})
        print(rows[-1], file=sys.stderr)
        for procs in args.procs:
            values, times = [], []
            for seed in seeds:
                out = work / f"{kind}-{procs}-{seed}"
                reports = run_ranks(data, kind, feedback, {"seed": seed}, procs, 1,
                                    model_out=out)
                values.append(score(load(out)))
                times.append(statistics.median(max(r["epochs"][e]["seconds"] for r in reports)
                                               for e in range(len(reports[0]["epochs"]))))
            value = statistics.mean(values)
            rows.append({"model": kind, "run": f"P={procs}", metric: value,
                         "seeds": len(seeds), "spread": max(values) - min(values),
                         "relative_change": value / reference - 1,
                         "s_per_epoch": statistics.median(times)})
            print(rows[-1], file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    table = markdown_table(rows, ["model", "run", "ndcg@10", "rmse", "seeds", "spread",
                                  "relative_change", "s_per_epoch"])
    print(table)
    save("distributed_quality_ml100k", {"machine": machine(), "rows": rows, "table": table})


# ---------------------------------------------------------------------------------- Spark
SPARK_CHILD = """
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from latentrec.bench._adapters import spark_factors, spark_session
folder, rank, alpha, reg, iterations = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), \\
    float(sys.argv[5]), [int(x) for x in sys.argv[6].split(",")]
from pyspark.ml.recommendation import ALS
session = spark_session()
train = session.read.parquet(folder).selectExpr("user", "item", "rating").cache()
train.count()
def fit(its):
    return ALS(rank=rank, maxIter=its, regParam=reg, alpha=alpha, implicitPrefs=True,
               userCol="user", itemCol="item", ratingCol="rating", numUserBlocks=2,
               numItemBlocks=2, seed=0).fit(train)
fit(1).userFactors.count()  # untimed: the JVM compiles Spark's code paths on first use
times = {}
for its in iterations:
    started = time.perf_counter()
    model = fit(its)
    model.userFactors.count(); model.itemFactors.count()
    times[its] = time.perf_counter() - started
users = spark_factors(model.userFactors, int(sys.argv[7]), rank)
items = spark_factors(model.itemFactors, int(sys.argv[8]), rank)
np.save(sys.argv[9] + "/users.npy", users); np.save(sys.argv[9] + "/items.npy", items)
session.stop()
print(json.dumps(times))
"""


def _ndcg_of_factors(users: Any, items: Any, train: Any, test: Any) -> float:
    import numpy as np
    import torch

    from latentrec.bench._data import relevant_matrix, score_top_k

    seen = train.to_csr()
    test_users, relevant = relevant_matrix(train, test)
    scores = torch.from_numpy(users[test_users] @ items.T)
    rows = seen[test_users]
    for row in range(len(test_users)):
        scores[row, rows.indices[rows.indptr[row]:rows.indptr[row + 1]]] = -np.inf
    top = torch.topk(scores, 10, dim=1).indices.numpy()
    return float(score_top_k(top, relevant, train.n_items, 10)["ndcg@10"])


def spark(args: argparse.Namespace) -> None:
    import numpy as np

    from latentrec import ImplicitALS, load

    rows = []
    for name, (train, test) in _spark_datasets(args).items():
        work = Path(tempfile.mkdtemp(prefix="latentrec-spark-"))
        frame = train.to_frame()
        frame["rating"] = 1.0 if train.values is None else frame[frame.columns[2]]
        frame = frame[["user", "item", "rating"]]
        frame["user"] = train.user_index.astype(np.int32)  # Spark ALS wants integer ids
        frame["item"] = train.item_index.astype(np.int32)
        (work / "data").mkdir()
        frame.to_parquet(work / "data" / "part-0.parquet")
        model = ImplicitALS(factors=args.factors)  # latentrec's defaults at this rank
        config = model.config
        median_count = float(np.median(np.diff(train.to_csr().indptr)))
        # Spark's penalty is reg * n, latentrec's reg * n^0.5: equal for the median user
        spark_reg = config.reg / max(1.0, median_count) ** (1 - config.reg_exponent)
        alpha = config.alpha * float(np.log(2.0))  # latentrec's log confidence of weight 1
        spark_times: dict[str, float] = json.loads(subprocess.run(
            [sys.executable, "-c", SPARK_CHILD, str(HERE.parent / "src"), str(work / "data"),
             str(args.factors), str(alpha), str(spark_reg), f"1,{args.iterations}",
             str(train.n_users), str(train.n_items), str(work)],
            capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        spark_iteration = ((spark_times[str(args.iterations)] - spark_times["1"])
                           / (args.iterations - 1))
        spark_ndcg = _ndcg_of_factors(np.load(work / "users.npy"), np.load(work / "items.npy"),
                                      train, test)
        ours = []
        for iterations in (1, args.iterations):
            reports = run_ranks(work / "data", "ials", "implicit",
                                {"factors": args.factors, "epochs": iterations}, 2, 1,
                                model_out=work / f"model-{iterations}")
            ours.append(max(r["training_s"] for r in reports))
        our_iteration = (ours[1] - ours[0]) / (args.iterations - 1)
        fitted = load(work / f"model-{args.iterations}")
        # the model's ids are the training indices that occur in the data: back to index order
        tables = []
        for ids, factors, n in ((fitted.users_, fitted.user_factors_, train.n_users),
                                (fitted.items_, fitted.item_factors_, train.n_items)):
            table = np.zeros((n, args.factors), dtype=np.float32)
            table[ids.to_numpy().astype(np.int64)] = factors.numpy()
            tables.append(table)
        ndcg = _ndcg_of_factors(tables[0], tables[1], train, test)
        rows.append({"data": name, "library": "Spark MLlib ALS (local[2])",
                     "s_per_iteration": spark_iteration, "ndcg@10": spark_ndcg})
        rows.append({"data": name, "library": "latentrec ImplicitALS, 2 processes x 1 thread",
                     "s_per_iteration": our_iteration, "ndcg@10": ndcg,
                     "time_vs_spark": our_iteration / spark_iteration})
        print(rows[-2:], file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
    table = markdown_table(rows, ["data", "library", "s_per_iteration", "ndcg@10",
                                  "time_vs_spark"])
    print(table)
    save(f"distributed_spark_n{args.interactions}", {"machine": machine(), "rows": rows,
                                                      "factors": args.factors, "table": table})


def _spark_datasets(args: argparse.Namespace) -> dict[str, Any]:
    from _common import datasets_dir

    from latentrec.bench import load_split
    from latentrec.data import user_holdout
    from latentrec.datasets import synthetic

    arguments = shape_of("default", args.interactions)
    data = synthetic(arguments["n_users"], arguments["n_items"],
                     n_interactions=args.interactions, user_zipf=arguments["user_zipf"],
                     item_zipf=arguments["item_zipf"], feedback="implicit", seed=0)
    return {"ml-100k": load_split("implicit", "ml-100k", datasets_dir(args.data_dir)),
            f"synthetic {args.interactions:,}": user_holdout(data, 0.2, seed=42)}


def exchange(args: argparse.Namespace) -> None:
    rows = []
    for procs in args.procs:
        done = subprocess.run([str(TORCHRUN), "--standalone", "--nproc-per-node", str(procs),
                               str(HERE / "_exchange_rank.py"), "--rows", str(args.rows)],
                              check=True, capture_output=True, text=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        for way, seconds in result["seconds"].items():
            rows.append({"P": procs, "way": way, "seconds": seconds,
                         "MB/s per process": result["mb_per_process"] * (procs - 1) / seconds})
    print(markdown_table(rows, ["P", "way", "seconds", "MB/s per process"]))
    save("distributed-exchange", {"machine": machine(), "rows": rows})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("scale", help="time, bytes and memory at P processes")
    one.add_argument("--task", choices=sorted(TASKS), default="ials")
    one.add_argument("--interactions", type=int, default=20_000_000)
    one.add_argument("--shape", default="default")
    one.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4])
    one.add_argument("--threads", type=int, default=1)
    one.add_argument("--factors", type=int, default=64)
    one.add_argument("--epochs", type=int, default=3)
    one.add_argument("--cache", default="/tmp/latentrec-scale")
    one.add_argument("--no-baseline", action="store_true")
    one.add_argument("--repeats", type=int, default=1)
    two = commands.add_parser("quality", help="MovieLens 100K quality at P processes")
    two.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4])
    two.add_argument("--data-dir", default=None)
    two.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    two.add_argument("--only", nargs="*", default=[])
    three = commands.add_parser("spark", help="against Spark MLlib ALS")
    three.add_argument("--interactions", type=int, default=2_000_000)
    three.add_argument("--factors", type=int, default=64)
    three.add_argument("--iterations", type=int, default=4)
    three.add_argument("--data-dir", default=None)
    four = commands.add_parser("exchange", help="gloo's all-gather against pairwise sends")
    four.add_argument("--procs", type=int, nargs="+", default=[2, 4])
    four.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    {"scale": scale, "quality": quality, "spark": spark,
     "exchange": exchange}[args.command](args)
    print(f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()

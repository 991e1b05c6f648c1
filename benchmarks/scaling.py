"""Scaling curves: latentrec's SGD epoch and iALS sweep against data size and factors.

    python benchmarks/scaling.py [--sizes 1000000 5000000 20000000 100000000]
                                 [--factors 16 32 64 128 256] [--repeats 1]

Data and child processes as in benchmarks/scale.py (the built-in generator, 1M users x 100k
items per 20M interactions, cached under /tmp/latentrec-scale; each point is a fresh process,
so its peak memory is its own). Sizes are measured at 64 factors, factors at 20M interactions.
"seconds" is one SGD epoch (from the training history, setup excluded) and one iALS ``fit`` of
one sweep (setup included). Writes benchmarks/results/scaling.json and docs/scaling.png
(needs matplotlib, in the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from _common import REPO, RESULTS, machine, markdown_table, save
from scale import generate, run_contender

CONTENDERS = {"sgd": "latentrec BiasedMF (numba kernel)", "ials": "latentrec ImplicitALS (cg)"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=[1_000_000, 5_000_000, 20_000_000, 100_000_000])
    parser.add_argument("--factors", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cache", default="/tmp/latentrec-scale")
    parser.add_argument("--plot", default=str(REPO / "docs" / "scaling.png"))
    parser.add_argument("--replot", action="store_true",
                        help="only redraw the plot from benchmarks/results/scaling.json")
    args = parser.parse_args(argv)
    if args.replot:
        plot(json.loads((RESULTS / "scaling.json").read_text())["rows"], Path(args.plot))
        return
    points = [(size, 64) for size in args.sizes]
    points += [(20_000_000, k) for k in args.factors if (20_000_000, k) not in points]
    rows: list[dict[str, Any]] = []
    for size, factors in points:
        folder = Path(args.cache) / f"n{size}"
        generate(folder, size)
        for task, name in CONTENDERS.items():
            result = run_contender(task, name, folder, factors, args.repeats)
            if result is not None:
                rows.append({"task": task, "interactions": size, "factors": factors,
                             "seconds": result["seconds"], "peak_mb": result["peak_mb"],
                             "seconds_per_million": result["seconds"] / (size / 1e6)})
    print(markdown_table(rows, ["task", "interactions", "factors", "seconds", "peak_mb",
                                "seconds_per_million"]))
    save("scaling", {"machine": machine(), "args": vars(args), "rows": rows})
    plot(rows, Path(args.plot))


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plot", file=sys.stderr)
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    labels = {"sgd": "BiasedMF SGD epoch", "ials": "ImplicitALS sweep"}
    figure, (by_size, by_factors, memory) = plt.subplots(1, 3, figsize=(15, 4.2))
    for task, label in labels.items():
        sized = sorted((r for r in rows if r["task"] == task and r["factors"] == 64),
                       key=lambda r: r["interactions"])
        factored = sorted((r for r in rows if r["task"] == task
                           and r["interactions"] == 20_000_000), key=lambda r: r["factors"])
        by_size.plot([r["interactions"] / 1e6 for r in sized], [r["seconds"] for r in sized],
                     "o-", label=label)
        by_factors.plot([r["factors"] for r in factored], [r["seconds"] for r in factored],
                        "o-", label=label)
        memory.plot([r["interactions"] / 1e6 for r in sized],
                    [r["peak_mb"] / 1024 for r in sized], "o-", label=label)
    by_size.set(xscale="log", yscale="log", xlabel="interactions (millions), 64 factors",
                ylabel="seconds", title="time vs data size")
    by_factors.set(xscale="log", yscale="log", xlabel="factors, 20M interactions",
                   ylabel="seconds", title="time vs factors")
    by_factors.set_xticks([16, 32, 64, 128, 256], labels=["16", "32", "64", "128", "256"])
    by_factors.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    memory.set(xscale="log", xlabel="interactions (millions), 64 factors",
               ylabel="peak resident GiB (process)", title="peak memory")
    for axes in (by_size, by_factors, memory):
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
    figure.suptitle("latentrec on a 2-core CPU (benchmarks/scaling.py)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    print(f"plot written to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()

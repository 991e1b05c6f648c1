"""Choose BiasedMF and BayesianMF settings for MovieLens 100K on a validation split of u1.base.

    python benchmarks/tune_ml100k.py [--data-dir ../shared/datasets]

u1.test is never read here. The validation split is a seeded random 10% of u1.base; each
setting is fitted on the other 90% and scored by RMSE on the 10%. The winners are the settings
that benchmarks/ml100k_explicit.py then refits on all of u1.base and scores on u1.test.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from typing import Any

from _common import datasets_dir, markdown_table, save

GRIDS: dict[str, list[dict[str, Any]]] = {
    # SGD around the defaults: size, penalty and length
    "sgd": [{"factors": f, "reg": r, "epochs": e}
            for f, r, e in itertools.product((50, 100, 200), (0.04, 0.06, 0.08), (20, 30, 40))],
    # Bayesian biased MF: latent size and number of sweeps (the priors tune themselves)
    "bayesian": [{"factors": f, "epochs": e, "burn_in": b}
              for f, e, b in itertools.product((5, 10, 20), (150, 300), (25, 50))],
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--grid", choices=sorted(GRIDS), action="append")
    args = parser.parse_args(argv)

    from latentrec import BayesianMF, BiasedMF, evaluate, random_split, read_interactions

    base = read_interactions(datasets_dir(args.data_dir) / "ml-100k" / "u1.base")
    train, valid = random_split(base, 0.1, seed=0)
    rows = []
    for grid in args.grid or sorted(GRIDS):
        for params in GRIDS[grid]:
            started = time.perf_counter()
            model_class = BayesianMF if grid == "bayesian" else BiasedMF
            model = model_class(**params).fit(train, show_progress=False)
            seconds = time.perf_counter() - started
            value = float(evaluate(model, valid, metrics=["rmse"])["value"].iloc[0])
            rows.append({"grid": grid, "params": params, "valid_rmse": value, "fit_s": seconds})
            print(f"{grid} {params}: {value:.4f} ({seconds:.2f} s)", file=sys.stderr)
    rows.sort(key=lambda row: row["valid_rmse"])
    print(markdown_table(rows[:10], ["grid", "params", "valid_rmse", "fit_s"]))
    for grid in sorted({row["grid"] for row in rows}):
        best = next(row for row in rows if row["grid"] == grid)
        print(f"best {grid}: {best['params']} valid RMSE {best['valid_rmse']:.4f}")
    save("tune_ml100k", {"rows": rows})


if __name__ == "__main__":
    main()

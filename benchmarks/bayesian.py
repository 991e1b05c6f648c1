"""latentrec's Bayesian biased MF (BayesianMF) against myFM's ids-only Gibbs sampler, side by side.

    python benchmarks/bayesian.py [--seeds 0,1,2,3,4] [--sets ml-100k,filmtrust] [--data-dir DIR]
    python benchmarks/bayesian.py --valid      # how the recipe was chosen; the test sets unread
    python benchmarks/bayesian.py --folds 5 --seeds 0   # 5-fold CV inside each training part

Data and splits (the same for every contender):

- MovieLens 100K: fit on ``u1.base``, score on ``u1.test``.
- FilmTrust: ``filmtrust/ratings.txt`` with duplicate (user, item) pairs averaged (35,494
  ratings); rows taken in the order of ``numpy.random.default_rng(0).permutation``, the first
  80% train and the rest test.

With ``--valid`` the test sets are never read: each training part is split again with
``latentrec.random_split(train, 0.1, seed=0)``, contenders fit on the 90% and are scored on the
10%, and the ablation variants (one change to the previous recipe at a time, and one removed
from the defaults) run as well. ``--folds K`` is another check that leaves the test sets
unread: K-fold cross-validation inside each training part (folds from
``numpy.random.default_rng(123).permutation``), the main contenders fitted on K-1 folds and
scored on the remaining one, for each fold.

RMSE with predictions clipped to the training rating range for every contender. A test pair
whose user or item is absent from the training part gets each library's fallback (latentrec:
the mean plus the known bias; myFM: the missing one-hot column adds nothing). Each seed runs
every contender before the next seed starts, so a change in the machine's load falls on all
of them. ``fit s`` is the median over seeds (training only; numba compiles before the clock).

myFM 0.4.0 (``pip install myfm==0.4.0 "setuptools<81"``; the ``bench`` extra) is
``MyFMRegressor(rank=10, random_seed=seed)`` with its default priors and ``fit(n_iter=200)``
(it keeps the last 195 samples) on a one-hot design matrix of the ids. "per-side groups"
passes ``group_shapes=[n_users, n_items]`` (a hyperprior for the user ids and another for the
item ids, as in myFM's MovieLens examples); "one group" lets all ids share one hyperprior
(myFM's default without ``group_shapes``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import datasets_dir, machine, markdown_table, save

#: the recipe before the comparison with myFM (BPMF's Normal-Wishart prior, one noise level)
PREVIOUS = {"prior": "normal-wishart", "noise": "shared"}

#: latentrec contenders of the main table: label -> BayesianMF parameters
MAIN = {
    "latentrec BayesianMF (defaults)": {},
    "latentrec BayesianMF (previous recipe)": PREVIOUS,
}

#: --valid adds these: one change to the previous recipe at a time, then one to the defaults
ABLATION = {
    "previous + normal-gamma prior (= defaults but shared noise)":
        {**PREVIOUS, "prior": "normal-gamma"},
    "previous + per-user noise (= defaults but normal-wishart prior)":
        {**PREVIOUS, "noise": "per-user"},
    "previous + init_std=0.1": {**PREVIOUS, "init_std": 0.1},
    "previous + burn_in=50": {**PREVIOUS, "burn_in": 50},
    "previous + burn_in=5 (myFM's)": {**PREVIOUS, "burn_in": 5},
    "previous, ratings centred but not scaled": {**PREVIOUS, "unscaled": True},
    "defaults but init_std=0.1": {"init_std": 0.1},
    "defaults but burn_in=50": {"burn_in": 50},
    "defaults but burn_in=50, init_std=0.1": {"burn_in": 50, "init_std": 0.1},
    "defaults but burn_in=5 (myFM's)": {"burn_in": 5},
    "defaults, ratings centred but not scaled": {"unscaled": True},
}

MYFM = {"myFM ids-only (per-side groups)": True, "myFM ids-only (one group)": False}


def load_sets(root: Path, names: list[str], valid: bool,
              folds: int | None = None) -> dict[str, list[tuple[Any, Any]]]:
    """``{name: [(train, test), ...]}``: one pair, whose test is a 10% split of the training
    part with ``valid``; with ``folds`` one pair per fold of the training part."""
    from latentrec import random_split, read_interactions

    sets = {}
    for name in names:
        if name == "ml-100k":
            train = read_interactions(root / "ml-100k" / "u1.base")
            test = None if valid else read_interactions(root / "ml-100k" / "u1.test")
        elif name == "filmtrust":
            full = read_interactions(root / "filmtrust" / "ratings.txt", duplicates="mean")
            order = np.random.default_rng(0).permutation(len(full))
            in_train = np.zeros(len(full), dtype=bool)
            in_train[order[:round(0.8 * len(full))]] = True
            train, test = full.take(in_train), full.take(~in_train)
        else:
            raise SystemExit(f"unknown data set {name!r}; known: ml-100k, filmtrust")
        if folds:
            order = np.random.default_rng(123).permutation(len(train))
            pairs = []
            for fold in np.array_split(order, folds):
                held_out = np.zeros(len(train), dtype=bool)
                held_out[fold] = True
                pairs.append((train.take(~held_out), train.take(held_out)))
            sets[name] = pairs
        elif valid:
            split = random_split(train, 0.1, seed=0)
            sets[name] = [(split.train, split.test)]
        else:
            sets[name] = [(train, test)]
    return sets


def latentrec_contender(params: dict[str, Any]) -> Callable[[Any, Any, int], tuple[float, float]]:
    from latentrec import BayesianMF, evaluate

    params = dict(params)
    unscaled = params.pop("unscaled", False)

    class Unscaled(BayesianMF):
        """The sampler on ratings centred by their mean but not divided by their std (as myFM
        samples them); only for this comparison."""

        def _trainable(self, data: Any) -> Any:
            std, self.rating_std_ = self.rating_std_, 1.0
            try:
                return super()._trainable(data)
            finally:
                self.rating_std_ = std

    model_class = Unscaled if unscaled else BayesianMF

    def run(train: Any, test: Any, seed: int) -> tuple[float, float]:
        model = model_class(seed=seed, **params)
        started = time.perf_counter()
        model.fit(train, show_progress=False)
        seconds = time.perf_counter() - started
        value = float(evaluate(model, test, metrics=["rmse"])["value"].iloc[0])
        return value, seconds

    return run


def myfm_contender(groups: bool) -> Callable[[Any, Any, int], tuple[float, float]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # myFM 0.4.0 imports pkg_resources
        import myfm
    import scipy.sparse as sp

    def design(user_index: np.ndarray, item_index: np.ndarray, n_users: int,
               n_items: int) -> sp.csr_matrix:
        """One-hot rows ``[user | item]``; an index of -1 (absent from training) sets nothing."""
        rows = np.arange(len(user_index))
        known_user, known_item = user_index >= 0, item_index >= 0
        row = np.concatenate([rows[known_user], rows[known_item]])
        col = np.concatenate([user_index[known_user], n_users + item_index[known_item]])
        return sp.csr_matrix((np.ones(len(row)), (row, col)),
                             shape=(len(user_index), n_users + n_items))

    def run(train: Any, test: Any, seed: int) -> tuple[float, float]:
        n_users, n_items = train.n_users, train.n_items
        x_train = design(train.user_index, train.item_index, n_users, n_items)
        users = train.users.index_of(test.users.to_numpy(), on_unknown="ignore")[test.user_index]
        items = train.items.index_of(test.items.to_numpy(), on_unknown="ignore")[test.item_index]
        x_test = design(users, items, n_users, n_items)
        model = myfm.MyFMRegressor(rank=10, random_seed=seed)
        started = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()):  # its progress bar
            model.fit(x_train, np.asarray(train.values, dtype=np.float64), n_iter=200,
                      group_shapes=[n_users, n_items] if groups else None)
        seconds = time.perf_counter() - started
        predictions = np.clip(model.predict(x_test), *train.rating_range())
        return float(np.sqrt(np.mean((predictions - test.values) ** 2))), seconds

    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seeds", default="0,1,2,3,4",
                        help="comma-separated seeds, each one fit per contender")
    parser.add_argument("--sets", default="ml-100k,filmtrust")
    parser.add_argument("--valid", action="store_true",
                        help="score on a 10%% split of each training part, with the ablation")
    parser.add_argument("--folds", type=int, default=None,
                        help="K-fold cross-validation inside each training part instead")
    parser.add_argument("--no-myfm", action="store_true", help="latentrec contenders only")
    args = parser.parse_args(argv)
    if args.folds is not None and (args.folds < 2 or args.valid):
        parser.error("--folds needs K >= 2 and excludes --valid")
    seeds = [int(seed) for seed in args.seeds.split(",")]

    from latentrec import BayesianMF
    from latentrec.datasets import synthetic

    contenders: dict[str, Callable[[Any, Any, int], tuple[float, float]]] = {
        label: latentrec_contender(params)
        for label, params in {**MAIN, **(ABLATION if args.valid else {})}.items()}
    if not args.no_myfm:
        contenders.update({label: myfm_contender(groups) for label, groups in MYFM.items()})
    BayesianMF(epochs=3, burn_in=1).fit(synthetic(50, 40), show_progress=False)  # compile

    sets = load_sets(datasets_dir(args.data_dir), args.sets.split(","), args.valid,
                     args.folds)
    runs: list[dict[str, Any]] = []
    for name, pairs in sets.items():
        for fold, (train, test) in enumerate(pairs):
            for seed in seeds:
                for label, run in contenders.items():
                    value, seconds = run(train, test, seed)
                    runs.append({"data": name, "fold": fold, "contender": label, "seed": seed,
                                 "rmse": value, "fit_s": seconds})
                    where = f" fold {fold}" if args.folds else ""
                    print(f"{name}{where} seed {seed} {label}: {value:.4f} ({seconds:.1f} s)",
                          file=sys.stderr, flush=True)

    rows = []
    for name in sets:
        for label in contenders:
            mine = [run for run in runs if run["data"] == name and run["contender"] == label]
            values = [run["rmse"] for run in mine]
            rows.append({
                "data": name, "contender": label, "seeds": args.seeds,
                "RMSE mean": statistics.fmean(values),
                "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                "min": min(values), "max": max(values),
                "fit s": statistics.median(run["fit_s"] for run in mine),
            })
    scored = ("validation (10% of each training part)" if args.valid
              else f"{args.folds}-fold cross-validation inside each training part"
              if args.folds else "test")
    print(f"{scored} RMSE, clipped; seeds {args.seeds}; mean, sd, min and max over "
          f"{'folds and ' if args.folds else ''}seeds\n")
    print(markdown_table(rows, ["data", "contender", "RMSE mean", "sd", "min", "max", "fit s"]))
    name = "bayesian_valid" if args.valid else f"bayesian_{args.folds}fold" if args.folds else (
        "bayesian")
    written = save(name,
                   {"machine": machine(), "args": vars(args), "rows": rows, "runs": runs})
    print(f"\nwritten {written}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Warm ratings with side features and the implicit-feedback groups (issue 12): latentrec and myFM
side by side on MovieLens 100K ``u1.base``/``u1.test``.

    nice -n 5 python benchmarks/warm_features.py                       (test, the default set)
    nice -n 5 python benchmarks/warm_features.py --valid               (10% of u1.base instead)
    nice -n 5 python benchmarks/warm_features.py --model biased-mf --params '{"epochs": 40}'
    nice -n 5 python benchmarks/warm_features.py --levels ids,seen --no-myfm
    nice -n 5 python benchmarks/warm_features.py --model biased-mf --params '{}' --seen items

Each contender is fitted at three levels:

- ``ids``: user and item ids only;
- ``seen``: plus the two implicit-feedback groups built from the training ratings alone, "the
  items this user rated" (SVD++) and "the users who rated this item", each weighed by
  ``count ** -SEEN_POWER`` (BayesianMF's, 0.6 today; latentrec: ``seen_items=True,
  seen_users=True``; with ``--seen items`` only the first, for myFM too);
- ``features``: plus ``u.user``'s age band, gender and occupation and ``u.item``'s genres and
  release year (10 quantile buckets), from ``latentrec.datasets.load_movielens_100k_features``
  (fitted on the training ids, ``normalize="group"``: a film's genres sum to 1; the zip-code
  prefix it also reads is left out). ``--year number|both``, ``--year-buckets N``, ``--age
  number|both`` (the age in years from ``u.user``, standardised) and ``--normalize none|row``
  encode the same columns otherwise, for latentrec and myFM alike (on ``--valid``, BayesianMF
  factors=16 with 400 samples, year as a number or both, 20 year buckets, age as a number or
  both and ``normalize="none"`` were all worse than the defaults). Items of ``u1.test`` that
  ``u1.base`` lacks are then known by their features (cold ids); at the other levels they get
  each model's fallback (latentrec: mean plus the known bias; myFM: the missing one-hot column
  adds nothing).

latentrec contenders: ``--model KIND --params JSON`` (any rating model that takes the groups
and features: ``bayesian-mf`` by default, ``biased-mf`` once its hybrid lands; the levels add
``seen_items``/``seen_users`` to the params and pass ``user_features``/``item_features``).
myFM 0.4.0 (``pip install myfm==0.4.0 "setuptools<81"``; the ``bench`` extra):
``MyFMRegressor(rank=10, random_seed=seed).fit(n_iter=200)`` with its default priors, one
group (own Normal-Gamma prior) per id side, feature field and implicit group, exactly the
columns latentrec gets; the per-user and per-item rows are given as myFM relation blocks
(``RelationBlock``, its documented form for this data; a plain sparse design with the implicit
groups repeated on every rating row costs minutes).

Predictions are clipped to the rating range. Fit times are wall times of the fit alone (and
the process's CPU time, all threads, which a busy shared machine inflates less), contenders
alternating, after an untimed warm-up fit that compiles the numba kernels. Results
go to benchmarks/results/warm_features[_valid].json.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from _common import datasets_dir, doc_parser, machine, markdown_table, save

# each implicit group weighs an id's n partners by n ** -SEEN_POWER: BayesianMF's own power, so
# that myFM always gets the columns latentrec's sampler uses
from latentrec.models._gibbs_groups import SEEN_POWER

LEVELS = ("ids", "seen", "features")
#: which implicit-feedback groups the ``seen`` and ``features`` levels add (``--seen``)
SEEN_PARAMS = {"both": {"seen_items": True, "seen_users": True},
               "items": {"seen_items": True}}
#: u.user columns used (the issue's "age band, gender, occupation")
USER_FEATURES = ("age", "gender", "occupation")

Run = Callable[[Any, Any, dict[str, Any], int], tuple[float, float, float]]


#: how a number of the issue's columns (the release year, the user's age) enters the model
ENCODINGS = ("buckets", "number", "both")


def _numeric(name: str, numbers: list[float | None], buckets: int | None) -> dict[str, Any]:
    return {"name": name, "kind": "numeric", "buckets": buckets, "numbers": numbers}


def load(root: Path, valid: bool, *, year: str = "buckets", year_buckets: int = 10,
         age: str = "buckets", normalize: str = "group"
         ) -> tuple[Any, Any, dict[str, Any]]:
    """``(train, test, {"users": Features, "items": Features})``, the features fitted on the
    training ids (``normalize`` as :meth:`Features.fit`).

    ``year``: the release year as ``year_buckets`` quantile buckets, as one standardised
    number, or ``both``. ``age``: the age band (``buckets``, MovieLens 1M's bands), the age in
    years standardised (``number``, read from ``u.user``), or ``both``."""
    from latentrec import random_split, read_interactions
    from latentrec.data import Features
    from latentrec.datasets import load_movielens_100k_features

    train = read_interactions(root / "ml-100k" / "u1.base")
    if valid:
        split = random_split(train, 0.1, seed=0)
        train, test = split.train, split.test
    else:
        test = read_interactions(root / "ml-100k" / "u1.test")
    users = load_movielens_100k_features("users", path=root / "ml-100k", download=False)
    state = users.state()  # keep the columns (the table has a zip prefix too)
    columns = [column for column in state["table"]["features"]
               if column["name"] in USER_FEATURES and (column["name"] != "age"
                                                       or age != "number")]
    if age != "buckets":
        years = {}
        with open(root / "ml-100k" / "u.user", encoding="latin-1") as lines:
            for line in lines:
                fields = line.rstrip("\n").split("|")
                years[int(fields[0])] = float(fields[1])
        ids = state["table"]["ids"]
        columns.insert(0 if age == "number" else 1,
                       _numeric("age_years", [years.get(int(x)) for x in ids], None))
    state["table"]["features"] = columns
    users = Features.from_state(state)
    items = load_movielens_100k_features("items", path=root / "ml-100k", download=False,
                                         year_buckets=year_buckets)
    if year != "buckets":
        state = items.state()
        columns = state["table"]["features"]
        (released,) = (column for column in columns if column["name"] == "year")
        number = _numeric("year_number" if year == "both" else "year",
                          list(released["numbers"]), None)
        state["table"]["features"] = ([*columns, number] if year == "both" else
                                      [number if column is released else column
                                       for column in columns])
        items = Features.from_state(state)
    return train, test, {"users": users.fit(train.users, normalize=normalize),
                         "items": items.fit(train.items, normalize=normalize)}


def rmse(predictions: np.ndarray, test: Any, train: Any) -> float:
    predictions = np.clip(predictions, *train.rating_range())
    return float(np.sqrt(np.mean((predictions - np.asarray(test.values)) ** 2)))


def latentrec_contender(kind: str, params: dict[str, Any]) -> Run:
    from latentrec.persistence import model_kinds

    model_class = model_kinds()[kind]

    def run(train: Any, test: Any, level: dict[str, Any], seed: int
            ) -> tuple[float, float, float]:
        settings = {**params, "seed": seed, **SEEN_PARAMS.get(level["seen"], {})}
        model = model_class(**settings)
        features = ({"user_features": level["features"]["users"],
                     "item_features": level["features"]["items"]}
                    if level["features"] else {})
        started, cpu = time.perf_counter(), time.process_time()
        model.fit(train, show_progress=False, **features)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        predictions = model.predict(test.users.ids_of(test.user_index),
                                    test.items.ids_of(test.item_index), on_unknown="fallback")
        return rmse(predictions, test, train), seconds, cpu

    return run


def _seen(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    matrix = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=shape)
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    counts = np.diff(matrix.indptr)
    matrix.data = np.repeat(np.where(counts > 0, np.maximum(counts, 1) ** -SEEN_POWER, 0.0),
                            counts)
    return matrix


def myfm_contender(rank: int = 10, n_iter: int = 200) -> Run:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # myFM 0.4.0 imports pkg_resources
        import myfm

    def run(train: Any, test: Any, level: dict[str, Any], seed: int
            ) -> tuple[float, float, float]:
        n_users, n_items = train.n_users, train.n_items
        # ids of the model: the training ids, then (with features) the cold ids of the tables
        user_ids, item_ids = train.users.to_numpy(), train.items.to_numpy()
        fitted = {}
        if level["features"]:
            for side, ids in (("users", user_ids), ("items", item_ids)):
                table = level["features"][side]
                fitted[side] = table if table.is_fitted else table.fit(
                    train.users if side == "users" else train.items)
                known = set(ids.tolist())
                extra = [x for x in table.ids.to_numpy() if x not in known]
                if side == "users":
                    user_ids = np.concatenate([user_ids, extra]).astype(user_ids.dtype)
                else:
                    item_ids = np.concatenate([item_ids, extra]).astype(item_ids.dtype)
        blocks, shapes = [], []
        train_pairs = (train.user_index.astype(np.int64), train.item_index.astype(np.int64))
        for side, ids, n_train, n_other, (rows, cols) in (
                ("users", user_ids, n_users, n_items, train_pairs),
                ("items", item_ids, n_items, n_users, train_pairs[::-1])):
            n = len(ids)
            parts = [sp.eye(n, n_train, format="csr")]  # own one-hot; cold ids: none
            groups = [n_train]
            if side in fitted:
                matrix = sp.csr_matrix(fitted[side].matrix(ids), dtype=np.float64)
                names = fitted[side].columns()["feature"].to_numpy()
                parts.append(matrix)
                start = 0
                for stop in [*np.flatnonzero(names[1:] != names[:-1]) + 1, len(names)]:
                    groups.append(stop - start)
                    start = stop
            if level["seen"] == "both" or (level["seen"] == "items" and side == "users"):
                parts.append(_seen(rows, cols, (n, n_other)))
                groups.append(n_other)
            blocks.append(sp.csr_matrix(sp.hstack(parts, format="csr"), dtype=np.float64))
            shapes += groups

        def relation(users: np.ndarray, items: np.ndarray) -> list[Any]:
            return [myfm.RelationBlock(users.tolist(), blocks[0]),
                    myfm.RelationBlock(items.tolist(), blocks[1])]

        def index(id_map: Any, ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
            from latentrec.data import IdMap

            return IdMap(ids).index_of(id_map.ids_of(wanted), on_unknown="ignore")

        test_users = index(test.users, user_ids, test.user_index)
        test_items = index(test.items, item_ids, test.item_index)
        # an id the model does not know: a row of zeros (the missing one-hot adds nothing)
        for array, block in ((test_users, 0), (test_items, 1)):
            if (array < 0).any():
                empty = blocks[block].shape[0]
                blocks[block] = sp.vstack([blocks[block],
                                           sp.csr_matrix((1, blocks[block].shape[1]))],
                                          format="csr")
                array[array < 0] = empty
        model = myfm.MyFMRegressor(rank=rank, random_seed=seed)
        x_train = sp.csr_matrix((len(train), 0), dtype=np.float64)
        started, cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stderr(io.StringIO()):  # its progress bar
            model.fit(x_train, np.asarray(train.values, dtype=np.float64),
                      X_rel=relation(*train_pairs), n_iter=n_iter, group_shapes=shapes)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        predictions = model.predict(sp.csr_matrix((len(test), 0), dtype=np.float64),
                                    relation(test_users, test_items))
        return rmse(predictions, test, train), seconds, cpu

    return run


def main(argv: list[str] | None = None) -> None:
    parser = doc_parser(__doc__)
    parser.add_argument("--data-dir", default=None, help="the shared datasets folder")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--valid", action="store_true",
                        help="score on a 10%% split of u1.base (random_split seed 0) instead "
                             "of u1.test: for choosing settings")
    parser.add_argument("--model", default="bayesian-mf", help="latentrec model kind")
    parser.add_argument("--params", default='{"factors": 10, "epochs": 225, "burn_in": 25}',
                        help="the latentrec model's parameters (JSON); the default keeps "
                             "200 samples, as myFM's n_iter=200 with its 5 burn-in sweeps "
                             "keeps 195")
    parser.add_argument("--label", default=None, help="name of the latentrec contender")
    parser.add_argument("--levels", default=",".join(LEVELS),
                        help=f"comma-separated, of {', '.join(LEVELS)}")
    parser.add_argument("--seen", choices=sorted(SEEN_PARAMS), default="both",
                        help="the implicit-feedback groups of the seen and features levels: "
                             "both (default) or only the items each user rated (SVD++)")
    parser.add_argument("--no-myfm", action="store_true", help="latentrec contenders only")
    parser.add_argument("--myfm-rank", type=int, default=10, help="myFM's rank (default 10)")
    parser.add_argument("--no-latentrec", action="store_true", help="myFM only")
    parser.add_argument("--year", choices=ENCODINGS, default="buckets",
                        help="the release year: quantile buckets (default), one standardised "
                             "number, or both")
    parser.add_argument("--year-buckets", type=int, default=10,
                        help="quantile buckets of the release year (default 10)")
    parser.add_argument("--age", choices=ENCODINGS, default="buckets",
                        help="the user's age: its band (buckets, default), the age in years "
                             "standardised (number), or both")
    parser.add_argument("--normalize", choices=("group", "none", "row"), default="group",
                        help="Features.fit's normalize for both sides (default group: a "
                             "film's genres sum to 1)")
    args = parser.parse_args(argv)
    if not 2 <= args.year_buckets <= 1000:
        parser.error(f"--year-buckets must be in 2..1000, got {args.year_buckets}")
    levels = args.levels.split(",")
    if not set(levels) <= set(LEVELS):
        parser.error(f"--levels: unknown {sorted(set(levels) - set(LEVELS))}")
    try:
        params = json.loads(args.params)
    except json.JSONDecodeError as error:
        parser.error(f"--params is not JSON: {error}")
    seeds = [int(seed) for seed in args.seeds.split(",")]

    contenders: dict[str, Run] = {}
    if not args.no_latentrec:
        label = args.label or f"latentrec {args.model} {json.dumps(params)}"
        contenders[label] = latentrec_contender(args.model, params)
    if not args.no_myfm:
        contenders[f"myFM 0.4.0 rank {args.myfm_rank}, n_iter 200"] = myfm_contender(
            rank=args.myfm_rank)

    from latentrec import BayesianMF, BiasedMF
    from latentrec.datasets import synthetic

    for seen in (False, True):  # compile the kernels, untimed
        BayesianMF(epochs=3, burn_in=1, seen_items=seen).fit(synthetic(50, 40),
                                                             show_progress=False)
        if args.model == "biased-mf" and not args.no_latentrec:
            BiasedMF(**{**params, "epochs": 1}, seen_items=seen).fit(synthetic(50, 40),
                                                                      show_progress=False)
    train, test, features = load(datasets_dir(args.data_dir), args.valid, year=args.year,
                                 year_buckets=args.year_buckets, age=args.age,
                                 normalize=args.normalize)
    runs: list[dict[str, Any]] = []
    for seed in seeds:
        for level_name in levels:
            level = {"seen": args.seen if level_name != "ids" else None,
                     "features": features if level_name == "features" else None}
            for label, run in contenders.items():
                value, seconds, cpu = run(train, test, level, seed)
                runs.append({"contender": label, "level": level_name, "seed": seed,
                             "rmse": value, "fit_s": seconds, "fit_cpu_s": cpu})
                print(f"seed {seed} {level_name} {label}: {value:.4f} ({seconds:.1f} s, "
                      f"{cpu:.1f} s of CPU)", file=sys.stderr, flush=True)
    rows = []
    for level_name in levels:
        for label in contenders:
            mine = [r for r in runs if r["contender"] == label and r["level"] == level_name]
            values = [r["rmse"] for r in mine]
            rows.append({"level": level_name, "contender": label, "seeds": args.seeds,
                         "RMSE": statistics.fmean(values),
                         "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                         "fit s": statistics.median(r["fit_s"] for r in mine),
                         "fit CPU s": statistics.median(r["fit_cpu_s"] for r in mine)})
    scored = "validation (10% of u1.base)" if args.valid else "u1.test"
    print(f"MovieLens 100K u1: {scored} RMSE, clipped; mean over seeds {args.seeds}\n")
    busy = os.getloadavg()[0]
    print(f"load average at the end: {busy:.1f} on {os.cpu_count()} cores (fit s is wall "
          f"time, CPU s the process's CPU time: all threads)\n")
    print(markdown_table(rows, ["level", "contender", "seeds", "RMSE", "sd", "fit s",
                                "fit CPU s"]))
    written = save("warm_features_valid" if args.valid else "warm_features",
                   {"machine": machine(), "args": vars(args), "rows": rows, "runs": runs})
    print(f"\nwritten {written}", file=sys.stderr)


if __name__ == "__main__":
    main()

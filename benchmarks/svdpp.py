"""SVD++ by BiasedMF's compiled kernel against the plain kernel, on several shapes of rating data:
held-out RMSE and fit time, in one process.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/svdpp.py [--repeats 3]
        [--sets ml-100k,filmtrust,synthetic] [--synthetic-ratings 2000000]
        [--feature-reg 0.15[,1.5,...]] [--valid] [--item-features] [--surprise]

Data sets and splits:

- ``ml-100k``: fit on ``u1.base``, score on ``u1.test`` (943 users, 1,650 items, 80k ratings,
  about 85 ratings per user);
- ``filmtrust``: ``benchmarks/bayesian.py``'s split (duplicates averaged, the first 80% of
  ``numpy.random.default_rng(0).permutation``; 1,476 users, 1,911 items, 28,395 training
  ratings, about 19 per user);
- ``synthetic``: ``latentrec.datasets.synthetic`` scaled as ``benchmarks/scale.py`` does (1M
  users x 100k items at 20M ratings, here ``--synthetic-ratings``), 5% held out by
  ``random_split(seed=0)``: about 2 ratings per user and tables of factors far larger than
  the caches, so it measures the cost of the extra rows SVD++ reads and writes per rating.

With ``--valid`` the test sides are never read: each training part is split again by
``random_split(train, 0.1, seed=0)`` (for ml-100k and filmtrust, ``benchmarks/bayesian.py``'s
validation split), and the models are scored on the 10%.

Contenders: ``BiasedMF()`` (defaults: the compiled kernel, 100 factors, 30 epochs) and
``BiasedMF(seen_items=True, feature_reg=r)`` for each ``r`` of ``--feature-reg`` (the same
kernel with SVD++'s group; 0.15, the default, was chosen on a validation split of ``u1.base``,
docs/BENCHMARKS.md). With ``--item-features`` the first ``feature_reg`` also fits with item
features, without and with SVD++'s group: on ml-100k ``u.item``'s genres and release year (10
quantile buckets, ``load_movielens_100k_features``), on synthetic random ones (2 of 20
"genres" and one of 10 "years" per item, seeded: they measure the cost, not a gain);
FilmTrust has none. With ``--surprise`` Surprise's ``SVDpp()`` (defaults, ``random_state=0``;
the ``bench`` extra) runs beside them on ml-100k and filmtrust, through ``latentrec bench``'s
adapter (on 2M ratings one fit would take hours). An untimed
fit compiles the kernels first; then each repeat fits the plain model and SVD++ one after the
other, and the table reports the median fit time of each and their ratio. Above a million
ratings the plain kernel runs its blocked schedule (8 blocks) while the SVD++ kernel runs
serially; with ``NUMBA_NUM_THREADS=1`` both have one thread. Results go to
``benchmarks/results/svdpp.json``.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import datasets_dir, doc_parser, machine, markdown_table, save

#: the key of a contender's params that asks for the item features (not a BiasedMF option)
WITH_FEATURES = "item_features"


def contenders(feature_regs: list[float], features: bool) -> dict[str, dict[str, Any]]:
    chosen: dict[str, dict[str, Any]] = {"BiasedMF() (plain kernel)": {}}
    for value in feature_regs:
        chosen[f"BiasedMF(seen_items=True, feature_reg={value:g}) (SVD++ kernel)"] = {
            "seen_items": True, "feature_reg": value}
    if features:
        value = feature_regs[0]
        chosen[f"BiasedMF(feature_reg={value:g}) + item features"] = {
            "feature_reg": value, WITH_FEATURES: True}
        chosen[f"BiasedMF(seen_items=True, feature_reg={value:g}) + item features"] = {
            "seen_items": True, "feature_reg": value, WITH_FEATURES: True}
    return chosen


def item_features(root: Path, name: str, train: Any) -> Any:
    """The items' feature table fitted on ``train``'s items, or None (FilmTrust)."""
    import pandas as pd

    from latentrec import read_features
    from latentrec.datasets import load_movielens_100k_features

    if name == "ml-100k":
        table = load_movielens_100k_features("items", path=root / "ml-100k", download=False)
    elif name == "synthetic":
        rng = np.random.default_rng(0)
        ids = train.items.to_numpy()
        genres = ["|".join(f"g{g}" for g in rng.choice(20, 2, replace=False)) for _ in ids]
        table = read_features(pd.DataFrame({"item": ids, "genre": genres,
                                            "year": rng.integers(0, 10, len(ids)).astype(str)}),
                              "item", multi=["genre"], categorical=["year"])
    else:
        return None
    return table.fit(train.items)


def load(root: Path, name: str, synthetic_ratings: int, valid: bool) -> tuple[Any, Any]:
    from latentrec import random_split

    if name in ("ml-100k", "filmtrust"):
        sys.path.insert(0, str(Path(__file__).parent))
        from bayesian import load_sets

        ((train, test),) = load_sets(root, [name], valid=valid)[name]
        return train, test
    if name == "synthetic":
        from latentrec.datasets import synthetic

        scale = synthetic_ratings / 20_000_000
        data = synthetic(max(1000, int(1_000_000 * scale)), max(500, int(100_000 * scale)),
                         n_interactions=synthetic_ratings, seed=0)
        split = random_split(data, 0.05, seed=0)
        if valid:
            split = random_split(split.train, 0.1, seed=0)
        return split.train, split.test
    raise SystemExit(f"unknown data set {name!r}; known: ml-100k, filmtrust, synthetic")


def surprise_svdpp(train: Any, test: Any) -> tuple[str, Any]:
    """Surprise's SVDpp on ``train``, answering ``test``'s pairs (``latentrec bench``'s
    adapter: ``fit()`` and ``answer(model)``)."""
    from latentrec.bench._adapters import prepare
    from latentrec.bench._arrays import BenchArrays
    from latentrec.bench._suites import Contender

    arrays = BenchArrays(
        "explicit", train.user_index, train.item_index, np.asarray(train.values),
        train.users.to_numpy(), train.items.to_numpy(),
        test_user_ids=test.users.ids_of(test.user_index),
        test_item_ids=test.items.ids_of(test.item_index))
    contender = Contender("surprise SVDpp()", "surprise", "surprise.SVDpp")
    return "Surprise SVDpp() (defaults)", prepare(arrays, contender, 10)


def rmse(model: Any, train: Any, test: Any) -> float:
    predictions = model.predict(test.users.ids_of(test.user_index),
                                test.items.ids_of(test.item_index), on_unknown="fallback")
    predictions = np.clip(np.asarray(predictions), *train.rating_range())
    return float(np.sqrt(np.mean((predictions - np.asarray(test.values)) ** 2)))


def main(argv: list[str] | None = None) -> None:
    parser = doc_parser(__doc__)
    parser.add_argument("--data-dir", default=None, help="the shared datasets folder")
    parser.add_argument("--sets", default="ml-100k,filmtrust,synthetic")
    parser.add_argument("--repeats", type=int, default=3, help="timed fits of each (median)")
    parser.add_argument("--synthetic-ratings", type=int, default=2_000_000)
    parser.add_argument("--feature-reg", default="0.15",
                        help="comma-separated feature_reg values of the SVD++ contenders")
    parser.add_argument("--valid", action="store_true",
                        help="score on 10%% of each training part; the test sides unread")
    parser.add_argument("--item-features", action="store_true",
                        help="also fit with item features (ml-100k, synthetic)")
    parser.add_argument("--surprise", action="store_true",
                        help="also fit Surprise's SVDpp (ml-100k, filmtrust)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.synthetic_ratings < 10_000:
        parser.error(f"--synthetic-ratings must be at least 10000, got {args.synthetic_ratings}")
    try:
        regs = [float(value) for value in args.feature_reg.split(",")]
    except ValueError:
        regs = []
    if not regs or not all(math.isfinite(value) and value >= 0 for value in regs):
        parser.error(f"--feature-reg: finite numbers >= 0 separated by commas, got "
                     f"{args.feature_reg!r}")
    chosen = contenders(regs, args.item_features)

    from latentrec import BiasedMF
    from latentrec.datasets import synthetic

    for params in chosen.values():  # compile the kernels, untimed
        options = {k: v for k, v in params.items() if k != WITH_FEATURES}
        BiasedMF(**options, epochs=1).fit(synthetic(50, 40), show_progress=False)
    root = datasets_dir(args.data_dir)
    rows = []
    for name in args.sets.split(","):
        train, test = load(root, name, args.synthetic_ratings, args.valid)
        print(f"{name}: {train.n_users} users, {train.n_items} items, {len(train)} training "
              f"and {len(test)} held-out ratings", file=sys.stderr, flush=True)
        features = item_features(root, name, train) if args.item_features else None
        here = {label: params for label, params in chosen.items()
                if not params.get(WITH_FEATURES) or features is not None}
        times: dict[str, list[float]] = {label: [] for label in here}
        scores: dict[str, float] = {}
        for _ in range(args.repeats):
            for label, params in here.items():
                model = BiasedMF(**{k: v for k, v in params.items() if k != WITH_FEATURES})
                given = {"item_features": features} if params.get(WITH_FEATURES) else {}
                started = time.perf_counter()
                model.fit(train, show_progress=False, **given)
                times[label].append(time.perf_counter() - started)
                scores[label] = rmse(model, train, test)  # the same every repeat (seeded)
        if args.surprise and name != "synthetic":
            label, fit_answer = surprise_svdpp(train, test)
            times[label] = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                fitted = fit_answer.fit()
                times[label].append(time.perf_counter() - started)
            predictions = np.clip(fit_answer.answer(fitted), *train.rating_range())
            scores[label] = float(np.sqrt(np.mean((predictions - np.asarray(test.values))
                                                  ** 2)))
            here[label] = {}
        plain = statistics.median(times[next(iter(here))])
        for label in here:
            seconds = statistics.median(times[label])
            rows.append({"data": name, "contender": label, "RMSE": scores[label],
                         "fit s": seconds, "fit / plain": seconds / plain,
                         "fits s": [round(t, 3) for t in times[label]]})
            print(f"{name} {label}: RMSE {scores[label]:.4f}, fit {seconds:.2f} s",
                  file=sys.stderr, flush=True)
    print(markdown_table(rows, ["data", "contender", "RMSE", "fit s", "fit / plain"]))
    written = save("svdpp_valid" if args.valid else "svdpp",
                   {"machine": machine(), "args": vars(args), "rows": rows})
    print(f"\nwritten {written}", file=sys.stderr)


if __name__ == "__main__":
    main()

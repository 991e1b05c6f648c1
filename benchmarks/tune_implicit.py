"""Choose ImplicitALS, BPR and EASE settings for the implicit top-N benchmark on validation data.

    python benchmarks/tune_implicit.py --dataset ml-100k --model ials
    python benchmarks/tune_implicit.py --dataset lastfm --model bpr
    python benchmarks/tune_implicit.py --dataset gowalla --model ials      (about 8 minutes)

The test part is never scored: the data is split exactly as the benchmark splits it
(``latentrec.bench.load_split``: ml-100k and Last.fm per user 80/20 with seed 42, Gowalla's
published files) and the test part is dropped. A validation split is carved from the training
part (per user 20%, ``--seed``, default 1); every setting is fitted on the other 80% and scored
on the validation 20% with the benchmark's own metric code, by NDCG@10 (Recall@20 on Gowalla,
as in ../shared/PEERS.md section E). The winner goes into ``TUNED_IMPLICIT`` in
latentrec/bench/_suites.py; the benchmark refits it on the whole training part and scores it
once on the test part.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import datasets_dir, markdown_table, save

from latentrec.bench import load_split, relevant_matrix, score_top_k


def grid(base: dict[str, Any], **axes: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Every combination of ``axes``, each on top of ``base``."""
    return [{**base, **dict(zip(axes, values, strict=True))}
            for values in itertools.product(*axes.values())]


#: binary interactions: linear confidence, so alpha is c - 1 for every interaction
_BINARY = {"confidence": "linear"}

GRIDS: dict[tuple[str, str], list[dict[str, Any]]] = {
    # strength of the frequency-scaled penalty against the weight of observed entries, with
    # the penalty's exponent compared at 64 factors (its scale moves with the exponent)
    ("ml-100k", "ials"): (
        grid({**_BINARY, "reg_exponent": 0.5}, factors=(32, 64, 128), alpha=(3.0, 5.0, 7.0, 10.0),
             reg=(3.0, 4.0, 5.0, 6.0, 8.0, 10.0))
        + grid({**_BINARY, "factors": 64, "reg_exponent": 0.0}, alpha=(3.0, 5.0, 7.0),
               reg=(20.0, 35.0, 50.0, 70.0))
        + grid({**_BINARY, "factors": 64, "reg_exponent": 1.0}, alpha=(3.0, 5.0, 7.0),
               reg=(0.3, 0.5, 0.7, 1.0))
    ),
    # play counts: log confidence, its scale epsilon, alpha and the penalty
    ("lastfm", "ials"): grid({"confidence": "log", "reg_exponent": 0.5}, factors=(64, 128),
                             epsilon=(1.0, 10.0), alpha=(1.0, 2.0, 3.0, 5.0),
                             reg=(3.0, 5.0, 8.0, 12.0, 20.0)),
    # a large sparse catalogue: capacity matters most, so many factors and fewer sweeps
    ("gowalla", "ials"): [
        {**_BINARY, "reg_exponent": 0.5, "epochs": 10, "factors": f, "alpha": a, "reg": r}
        for f in (512, 1024)
        for a, r in ((20.0, 8.0), (20.0, 12.0), (30.0, 12.0), (30.0, 20.0), (50.0, 20.0))
    ],
    # penalty, hard-negative candidates and learning-rate decay
    ("ml-100k", "bpr"): grid({}, factors=(64, 128), candidates=(1, 2, 4, 8),
                             reg=(0.01, 0.02, 0.03), lr_decay=(0.9, 0.95)),
    ("lastfm", "bpr"): grid({}, factors=(64, 128), candidates=(1, 4),
                            reg=(0.005, 0.01, 0.02), lr_decay=(0.9, 0.95)),
    # about 2.5 minutes a fit: the penalty only
    ("gowalla", "bpr"): grid({}, reg=(0.005, 0.02)),
    ("ml-100k", "ease"): grid({}, reg=(100.0, 200.0, 500.0, 1000.0, 2000.0)),
    ("lastfm", "ease"): grid({}, reg=(25.0, 50.0, 100.0, 200.0, 500.0)),
}

K = {"ml-100k": 10, "lastfm": 10, "gowalla": 20}
METRIC = {"ml-100k": "ndcg@10", "lastfm": "ndcg@10", "gowalla": "recall@20"}


def load_train(dataset: str, root: Path) -> Any:
    """The benchmark's training part only (the test part is split off and dropped)."""
    train, _ = load_split("implicit", dataset, root)
    return train


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(K), default="ml-100k")
    parser.add_argument("--model", choices=("ials", "bpr", "ease"), default="ials")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seed", type=int, default=1, help="seed of the validation split")
    args = parser.parse_args(argv)

    from latentrec import BPR, EASE, ImplicitALS, user_holdout

    if (args.dataset, args.model) not in GRIDS:
        raise SystemExit(f"no grid for {args.model} on {args.dataset}")
    model_class: Any = {"ials": ImplicitALS, "bpr": BPR, "ease": EASE}[args.model]
    train = load_train(args.dataset, datasets_dir(args.data_dir))
    fit_part, valid = user_holdout(train, 0.2, seed=args.seed)
    users, relevant = relevant_matrix(fit_part, valid)
    k, metric = K[args.dataset], METRIC[args.dataset]
    print(f"{args.dataset}: fitting on {len(fit_part):,}, validating on {len(valid):,} "
          f"interactions of the training part; choosing by {metric}", file=sys.stderr)

    rows = []
    for params in GRIDS[args.dataset, args.model]:
        started = time.perf_counter()
        model = model_class(**params).fit(fit_part, show_progress=False)
        fit_s = time.perf_counter() - started
        top = np.asarray(model.top_k_indices(users, k)[0])
        rows.append({"params": params, **score_top_k(top, relevant, fit_part.n_items, k),
                     "fit_s": fit_s})
        print(f"{params}: {metric} {rows[-1][metric]:.4f} ({fit_s:.1f} s)", file=sys.stderr)
    rows.sort(key=lambda row: -row[metric])
    columns = ["params", f"ndcg@{k}", f"recall@{k}", "coverage", "fit_s"]
    print(markdown_table(rows, columns))
    best = rows[0]
    print(f"\nchosen for {args.model} on {args.dataset}: {best['params']} "
          f"(validation {metric} {best[metric]:.4f})")
    path = save(f"tune_implicit_{args.dataset}_{args.model}",
                {"dataset": args.dataset, "model": args.model, "seed": args.seed,
                 "metric": metric, "chosen": best["params"], "rows": rows})
    print(f"written {path}", file=sys.stderr)


if __name__ == "__main__":
    main()

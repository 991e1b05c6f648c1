"""Top-N recommendation from implicit feedback: latentrec and peers on the same split and metrics.

    python benchmarks/implicit_topn.py --dataset ml-100k [--data-dir ../shared/datasets]
    python benchmarks/implicit_topn.py --dataset lastfm
    python benchmarks/implicit_topn.py --dataset gowalla --k 20

Protocol (../shared/PEERS.md, section B): ml-100k uses every rating as an interaction and
Last.fm its play counts as weights, split per user 80/20 (seed 42); Gowalla uses the NGCF /
LightGCN train/test files as published. Every model ranks the full catalogue with the user's
training items excluded, and every model's top-k lists are scored by the same code
(latentrec.metrics). Hyper-parameters marked "tuned" were chosen on a validation split carved
from the training part only (benchmarks/tune_implicit.py), never on the test part.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from _common import datasets_dir, machine, markdown_table, save

# chosen on validation splits by benchmarks/tune_implicit.py (see docs/BENCHMARKS.md)
TUNED: dict[str, dict[str, dict[str, Any]]] = {
    "ml-100k": {
        "ials": {"factors": 32, "reg": 5.0, "reg_exponent": 0.5, "alpha": 5.0,
                 "confidence": "linear"},
        "bpr": {"factors": 64, "epochs": 40, "lr": 0.02, "batch_size": 4096, "reg": 0.02,
                "candidates": 8, "lr_decay": 0.9},
        "ease": {"reg": 500.0},
    },
    "lastfm": {
        "ials": {"factors": 64, "reg": 12.0, "reg_exponent": 0.5, "alpha": 5.0,
                 "confidence": "log", "epsilon": 10.0},
        "bpr": {"factors": 128, "epochs": 40, "lr": 0.02, "batch_size": 4096, "reg": 0.01,
                "candidates": 4, "lr_decay": 0.95},
        "ease": {"reg": 100.0},
    },
    "gowalla": {
        "ials": {"factors": 1024, "epochs": 10, "reg": 20.0, "reg_exponent": 0.5, "alpha": 30.0,
                 "confidence": "linear"},
        "bpr": {"factors": 64, "epochs": 40, "lr": 0.02, "batch_size": 4096, "reg": 0.005,
                "candidates": 4, "lr_decay": 0.9},
    },
}


def _read_adjacency(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """LightGCN's ``user item item ...`` lines."""
    opener = gzip.open if path.suffix == ".gz" else open
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    with opener(path, "rt") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) > 1:
                row = np.asarray(fields, dtype=np.int64)
                users.append(np.full(len(row) - 1, row[0]))
                items.append(row[1:])
    return np.concatenate(users), np.concatenate(items)


def load(dataset: str, root: Path) -> tuple[Any, Any]:
    from latentrec import Interactions, read_interactions, user_holdout

    if dataset == "ml-100k":
        data = read_interactions(root / "ml-100k" / "u.data")
        binary = Interactions(data.user_index, data.item_index, None, data.users, data.items,
                              "implicit", data.timestamps, data.source)
        train, test = user_holdout(binary, 0.2, seed=42)
        return train, test
    if dataset == "lastfm":
        data = read_interactions(root / "lastfm-hetrec" / "user_artists.dat",
                                 feedback="implicit")
        train, test = user_holdout(data, 0.2, seed=42)
        return train, test
    if dataset == "gowalla":
        folder = root / "gowalla-lightgcn"
        train_users, train_items = _read_adjacency(folder / "train.txt.gz")
        test_users, test_items = _read_adjacency(folder / "test.txt")
        return (Interactions.from_arrays(train_users, train_items, feedback="implicit"),
                Interactions.from_arrays(test_users, test_items, feedback="implicit"))
    raise SystemExit(f"unknown dataset {dataset!r}")


def relevant_matrix(train: Any, test: Any) -> tuple[np.ndarray, sp.csr_matrix]:
    """Test users (as train indices) and their held-out items (as train item indices)."""
    user_map = train.users.index_of(test.users.to_numpy(), on_unknown="ignore")
    item_map = train.items.index_of(test.items.to_numpy(), on_unknown="ignore")
    users, items = user_map[test.user_index], item_map[test.item_index]
    keep = users >= 0
    # test items never seen in training still count as relevant: give them extra columns
    unknown = items < 0
    items = np.where(unknown, train.n_items + test.item_index, items)
    rows_users, rows = np.unique(users[keep], return_inverse=True)
    relevant = sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32),
                              (rows, items[keep])),
                             shape=(len(rows_users), train.n_items + test.n_items))
    relevant.sum_duplicates()
    return rows_users, relevant


def score(top: np.ndarray, relevant: sp.csr_matrix, n_items: int, k: int) -> dict[str, float]:
    from latentrec import metrics

    return {
        f"ndcg@{k}": float(np.nanmean(metrics.ndcg_at_k(top, relevant, k))),
        f"precision@{k}": float(np.nanmean(metrics.precision_at_k(top, relevant, k))),
        f"recall@{k}": float(np.nanmean(metrics.recall_at_k(top, relevant, k))),
        f"map@{k}": float(np.nanmean(metrics.map_at_k(top, relevant, k))),
        "coverage": metrics.catalogue_coverage(top, n_items),
    }


Entry = tuple[str, dict[str, Any], Callable[[], Any], Callable[[Any, np.ndarray, int], np.ndarray]]


def latentrec_entries(dataset: str, train: Any) -> list[Entry]:
    from latentrec import BPR, EASE, ImplicitALS, ItemKNN, Popularity

    def fitter(cls: Any, params: dict[str, Any]) -> Callable[[], Any]:
        return lambda: cls(**params).fit(train, show_progress=False)

    def top(model: Any, users: np.ndarray, k: int) -> np.ndarray:
        return np.asarray(model._top_k(users, k)[0])

    tuned = TUNED[dataset]
    entries: list[Entry] = [
        ("latentrec ImplicitALS (defaults)", {}, fitter(ImplicitALS, {}), top),
        ("latentrec ImplicitALS (tuned)", tuned["ials"], fitter(ImplicitALS, tuned["ials"]), top),
        ("latentrec BPR (defaults)", {}, fitter(BPR, {}), top),
        ("latentrec BPR (tuned)", tuned["bpr"], fitter(BPR, tuned["bpr"]), top),
        ("latentrec ItemKNN (defaults)", {}, fitter(ItemKNN, {}), top),
        ("latentrec Popularity", {}, fitter(Popularity, {}), top),
    ]
    if "ease" in tuned:
        entries.append(("latentrec EASE (tuned)", tuned["ease"], fitter(EASE, tuned["ease"]),
                        top))
    return entries


def implicit_entries(dataset: str, train: Any) -> list[Entry]:
    import implicit
    from threadpoolctl import threadpool_limits

    user_items = train.to_csr().astype(np.float32)

    def fitter(cls: Any, params: dict[str, Any], weights: sp.csr_matrix) -> Callable[[], Any]:
        def fit() -> Any:
            model = cls(random_state=0, **params)
            with threadpool_limits(1, "blas"):
                model.fit(weights, show_progress=False)
            return model
        return fit

    def top(model: Any, users: np.ndarray, k: int) -> np.ndarray:
        ids, _ = model.recommend(users, user_items[users], N=k,
                                 filter_already_liked_items=True)
        return np.where(np.isfinite(_), ids, -1).astype(np.int64)

    binary = user_items.copy()
    binary.data[:] = 1.0
    peers = {
        "ml-100k": ("implicit ALS (tuned, PEERS.md)", {"factors": 32, "regularization": 20.0,
                                                      "alpha": 5.0}, binary),
        "lastfm": ("implicit ALS (tuned, PEERS.md, bm25)", {"factors": 64,
                                                           "regularization": 50.0,
                                                           "alpha": 0.05}, _bm25(user_items)),
        "gowalla": ("implicit ALS (tuned, PEERS.md)", {"factors": 256, "regularization": 0.0033,
                                                      "alpha": 50.0}, binary),
    }
    name, params, weights = peers[dataset]
    als = implicit.cpu.als.AlternatingLeastSquares
    bpr = implicit.cpu.bpr.BayesianPersonalizedRanking
    return [
        ("implicit ALS (defaults)", {}, fitter(als, {}, binary), top),
        (name, params, fitter(als, params, weights), top),
        ("implicit BPR (defaults)", {}, fitter(bpr, {}, binary), top),
    ]


def _bm25(matrix: sp.csr_matrix) -> sp.csr_matrix:
    from implicit.nearest_neighbours import bm25_weight

    return bm25_weight(matrix, K1=100, B=0.8).tocsr().astype(np.float32)


def cornac_entries(dataset: str, train: Any) -> list[Entry]:
    import cornac

    triples = list(zip(train.user_index.tolist(), train.item_index.tolist(),
                       [1.0] * len(train), strict=True))
    data = cornac.data.Dataset.build(triples, seed=0)
    user_of = np.array([data.uid_map[u] for u in range(train.n_users)])
    item_order = np.array([data.iid_map[i] for i in range(train.n_items)])
    seen = train.to_csr()

    def fitter(cls: Any, params: dict[str, Any]) -> Callable[[], Any]:
        return lambda: cls(seed=0, verbose=False, **params).fit(data)

    def top(model: Any, users: np.ndarray, k: int) -> np.ndarray:
        result = np.full((len(users), k), -1, dtype=np.int64)
        for row, user in enumerate(users):
            # EASE's score() returns a 1 x n matrix, BPR's a vector
            scores = np.asarray(model.score(user_of[user])).ravel()[item_order]
            scores = scores.astype(np.float64)
            scores[seen[user].indices] = -np.inf
            best = np.argpartition(-scores, k)[:k]
            best = best[np.argsort(-scores[best])]
            result[row] = np.where(np.isfinite(scores[best]), best, -1)
        return result

    entries: list[Entry] = [
        ("cornac BPR (tuned, PEERS.md)", {"k": 64, "learning_rate": 0.01, "max_iter": 200,
                                          "lambda_reg": 0.01},
         fitter(cornac.models.BPR, {"k": 64, "learning_rate": 0.01, "max_iter": 200,
                                    "lambda_reg": 0.01}), top),
    ]
    # cornac EASE inverts a float64 items x items Gram matrix: about 27 GB for Gowalla's 41k
    # items, more than this machine has (PEERS.md); lamb as chosen on validation in PEERS.md.
    ease = {"ml-100k": {"lamb": 500.0}, "lastfm": {"lamb": 100.0, "posB": False}}
    if dataset in ease:
        entries.append(("cornac EASE (tuned, PEERS.md)", ease[dataset],
                        fitter(cornac.models.EASE, ease[dataset]), top))
    return entries


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(TUNED), default="ml-100k")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--only", default=None, help="run entries whose name contains this")
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args(argv)

    train, test = load(args.dataset, datasets_dir(args.data_dir))
    users, relevant = relevant_matrix(train, test)
    print(f"{args.dataset}: {len(train):,} train / {len(test):,} test interactions, "
          f"{train.n_users:,} users, {train.n_items:,} items", file=sys.stderr)
    entries = latentrec_entries(args.dataset, train)
    if not args.no_peers:
        for module, build in (("implicit", implicit_entries), ("cornac", cornac_entries)):
            if importlib.util.find_spec(module) is None:
                print(f"skipping {module}: not installed (pip install -e '.[bench]')",
                      file=sys.stderr)
                continue
            entries += build(args.dataset, train)

    rows = []
    for name, params, fit, top in entries:
        if args.only and args.only not in name:
            continue
        started = time.perf_counter()
        model = fit()
        fit_s = time.perf_counter() - started
        started = time.perf_counter()
        lists = top(model, users, args.k)
        rank_s = time.perf_counter() - started
        rows.append({"model": name, "params": params,
                     **score(lists, relevant, train.n_items, args.k),
                     "fit_s": fit_s, "rank_s": rank_s})
        print(f"{name}: NDCG@{args.k} {rows[-1][f'ndcg@{args.k}']:.4f}  fit {fit_s:.2f} s",
              file=sys.stderr)
    print(markdown_table(rows, ["model", f"ndcg@{args.k}", f"precision@{args.k}",
                                f"recall@{args.k}", "coverage", "fit_s", "rank_s"]))
    name = f"implicit_{args.dataset}" + ("_partial" if args.only else "")
    path = save(name, {"machine": machine(), "dataset": args.dataset,
                                             "k": args.k, "rows": rows})
    print(f"\nwritten {path}", file=sys.stderr)


if __name__ == "__main__":
    main()

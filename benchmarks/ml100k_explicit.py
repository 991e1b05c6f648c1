"""Rating prediction on MovieLens 100K (u1.base / u1.test): latentrec and peers side by side.

    python benchmarks/ml100k_explicit.py [--data-dir ../shared/datasets] [--repeats 3]

Protocol (the one in ../shared/PEERS.md): fit on u1.base, RMSE/MAE on u1.test with predictions
clipped to [1, 5]; ratings of users/items absent from u1.base are predicted with each library's
fallback (32 test ratings have such items). fit_s is the median of up to 3 fits (training only:
no imports, no reading, numba compilation excluded by a warm-up fit). Tuned settings were chosen
on a validation split carved from u1.base (benchmarks/tune_ml100k.py), never on u1.test.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import datasets_dir, machine, markdown_table, save, timed

# chosen on a validation split of u1.base by benchmarks/tune_ml100k.py
TUNED_BIASED_MF: dict[str, Any] = {"solver": "gibbs", "factors": 10, "epochs": 300,
                                   "burn_in": 25}
TUNED_SGD: dict[str, Any] = {"factors": 200}


def _clip(values: np.ndarray) -> np.ndarray:
    return np.clip(values, 1.0, 5.0)


def _scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    error = _clip(predicted) - truth
    return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error)))}


def latentrec_entries(train: Any, test: Any) -> list[tuple[str, dict[str, Any], Callable[[], Any],
                                                         Callable[[Any], np.ndarray]]]:
    from latentrec import BiasedMF, MatrixFactorization

    users = test.users.ids_of(test.user_index)
    items = test.items.ids_of(test.item_index)

    def predict(model: Any) -> np.ndarray:
        return np.asarray(model.predict(users, items, on_unknown="fallback"))

    def fitter(cls: Any, params: dict[str, Any]) -> Callable[[], Any]:
        return lambda: cls(**params).fit(train, show_progress=False)

    return [
        ("latentrec BiasedMF (defaults)", {}, fitter(BiasedMF, {}), predict),
        ("latentrec BiasedMF (tuned: gibbs)", TUNED_BIASED_MF,
         fitter(BiasedMF, TUNED_BIASED_MF), predict),
        ("latentrec BiasedMF (tuned: sgd)", TUNED_SGD, fitter(BiasedMF, TUNED_SGD), predict),
        ("latentrec MatrixFactorization (seed defaults)", {}, fitter(MatrixFactorization, {}),
         predict),
    ]


def surprise_entries(frame_train: Any, frame_test: Any) -> list[Any]:
    from surprise import SVD, Dataset, Reader

    trainset = Dataset.load_from_df(frame_train[["user", "item", "rating"]],
                                    Reader(rating_scale=(1, 5))).build_full_trainset()
    pairs = list(zip(frame_test["user"], frame_test["item"], strict=True))

    def fitter(params: dict[str, Any]) -> Callable[[], Any]:
        def fit() -> Any:
            model = SVD(random_state=0, **params)
            model.fit(trainset)
            return model
        return fit

    def predict(model: Any) -> np.ndarray:
        return np.array([model.predict(u, i).est for u, i in pairs])

    tuned = {"n_factors": 150, "n_epochs": 100, "lr_all": 0.005, "reg_all": 0.1}
    return [("surprise SVD (defaults)", {}, fitter({}), predict),
            ("surprise SVD (tuned, PEERS.md)", tuned, fitter(tuned), predict)]


def cornac_entries(frame_train: Any, frame_test: Any) -> list[Any]:
    import cornac

    triples = list(frame_train[["user", "item", "rating"]].itertuples(index=False, name=None))
    dataset = cornac.data.Dataset.from_uir(triples, seed=0)
    uid, iid = dataset.uid_map, dataset.iid_map
    users = [uid.get(u, -1) for u in frame_test["user"]]
    items = [iid.get(i, -1) for i in frame_test["item"]]

    def fitter(params: dict[str, Any]) -> Callable[[], Any]:
        def fit() -> Any:
            return cornac.models.MF(seed=0, verbose=False, **params).fit(dataset)
        return fit

    def predict(model: Any) -> np.ndarray:
        out = np.full(len(users), dataset.global_mean)
        for row, (u, i) in enumerate(zip(users, items, strict=True)):
            if u >= 0 and i >= 0:
                out[row] = model.score(u, i)
        return out

    tuned = {"k": 100, "max_iter": 50, "lambda_reg": 0.1, "learning_rate": 0.01}
    return [("cornac MF (defaults)", {}, fitter({}), predict),
            ("cornac MF (tuned, PEERS.md)", tuned, fitter(tuned), predict)]


def libmf_entries(frame_train: Any, frame_test: Any) -> list[Any]:
    from libmf import mf

    users = {u: n for n, u in enumerate(sorted(frame_train["user"].unique()))}
    items = {i: n for n, i in enumerate(sorted(frame_train["item"].unique()))}
    # the bindings read fit input row-major and predict input column-major (see PEERS.md)
    triples = np.ascontiguousarray(np.column_stack([
        frame_train["user"].map(users), frame_train["item"].map(items), frame_train["rating"],
    ]).astype(np.float32))
    pairs = np.asfortranarray(np.column_stack([
        frame_test["user"].map(users).fillna(len(users)),
        frame_test["item"].map(items).fillna(len(items)),
    ]).astype(np.float32))

    def fitter(params: dict[str, Any]) -> Callable[[], Any]:
        def fit() -> Any:
            engine = mf.MF(nr_threads=2, quiet=True, lambda_p1=0.0, lambda_q1=0.0, **params)
            engine.fit(triples)
            return engine
        return fit

    def predict(engine: Any) -> np.ndarray:
        return np.asarray(engine.predict(pairs), dtype=np.float64)

    defaults = {"k": 8, "nr_iters": 20, "lambda_p2": 0.1, "lambda_q2": 0.1, "eta": 0.1}
    tuned = {"k": 32, "nr_iters": 50, "lambda_p2": 0.1, "lambda_q2": 0.1, "eta": 0.05}
    return [("LIBMF (CLI defaults)", defaults, fitter(defaults), predict),
            ("LIBMF (tuned, PEERS.md)", tuned, fitter(tuned), predict)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=None, help="run entries whose name contains this")
    args = parser.parse_args(argv)

    from latentrec import BiasedMF, read_interactions

    base = datasets_dir(args.data_dir) / "ml-100k"
    train = read_interactions(base / "u1.base")
    test = read_interactions(base / "u1.test")
    frame_train, frame_test = train.to_frame(), test.to_frame()
    truth = test.values.astype(np.float64)
    # compile (or load from numba's cache) the kernels once, outside the timings
    BiasedMF(epochs=1).fit(train, show_progress=False)
    BiasedMF(solver="gibbs", epochs=2, burn_in=1).fit(train, show_progress=False)

    entries = latentrec_entries(train, test)
    for module, build in (("surprise", surprise_entries), ("cornac", cornac_entries),
                          ("libmf", libmf_entries)):
        if importlib.util.find_spec(module) is None:
            print(f"skipping {module}: not installed (pip install -e '.[bench]')",
                  file=sys.stderr)
            continue
        entries += build(frame_train, frame_test)

    rows = []
    for name, params, fit, predict in entries:
        if args.only and args.only not in name:
            continue
        model, seconds, times = timed(fit, args.repeats)
        rows.append({"model": name, "params": params, **_scores(truth, predict(model)),
                     "fit_s": seconds, "fit_runs_s": times})
        print(f"{name}: RMSE {rows[-1]['rmse']:.4f}  fit {seconds:.3f} s", file=sys.stderr)

    peers = [r for r in rows if not r["model"].startswith("latentrec")]
    if peers:
        best = min(peers, key=lambda r: r["rmse"])
        for row in rows:
            row["rmse_vs_best_peer"] = row["rmse"] / best["rmse"]
            row["fit_vs_best_peer"] = row["fit_s"] / best["fit_s"]
    print(markdown_table(rows, ["model", "rmse", "mae", "fit_s", "rmse_vs_best_peer",
                                "fit_vs_best_peer"]))
    path = save("ml100k_explicit", {"machine": machine(), "split": "u1.base/u1.test",
                                    "rows": rows})
    print(f"\nwritten {path}", file=sys.stderr)


if __name__ == "__main__":
    main()

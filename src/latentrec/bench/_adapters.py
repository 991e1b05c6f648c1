"""How each library is fitted and asked for its answers, inside a contender's child process.

An adapter turns the shared :class:`BenchArrays` into the library's own input (outside the
timings), and returns what the child times (``fit``) and what it scores (``answer``: predicted
ratings for the test pairs, or each user's top-k training item indices with -1 for gaps). Peer
libraries are imported inside their adapter only, and peer adapters never import torch.
Every adapter seeds its library (seed 0) so that runs repeat.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from latentrec.bench._arrays import BenchArrays
from latentrec.bench._suites import SPARK_MASTER, Contender

#: the share of training users a latentrec warm-up fit sees (compiles numba kernels, untimed)
WARM_UP_USER_SHARE = 0.02


@dataclass(frozen=True)
class Prepared:
    """A contender ready to run: ``fit()`` returns a fitted model, ``answer(model)`` its output.

    ``warm_up`` (when set) is called once before the timed fits, ``close`` once at the end.
    """

    fit: Callable[[], Any]
    answer: Callable[[Any], np.ndarray]
    warm_up: Callable[[], None] | None = None
    #: iterations (epochs) each fit runs, where the adapter fixes them: the child reports
    #: ``fit_s / iterations`` as the time per iteration
    iterations: int | None = None
    #: called once at the end of the child, whatever happened (stops Spark)
    close: Callable[[], None] | None = None


def _csr(arrays: BenchArrays) -> sp.csr_matrix:
    """Users x items float32 weights (ones without values), as ``Interactions.to_csr``."""
    weights = (np.ones(len(arrays.user_index), dtype=np.float32) if arrays.values is None
               else arrays.values)
    matrix = sp.csr_matrix((weights, (arrays.user_index, arrays.item_index)),
                           shape=(arrays.n_users, arrays.n_items), dtype=np.float32)
    matrix.sort_indices()
    return matrix


def _rating_frames(arrays: BenchArrays) -> tuple[Any, Any]:
    """Training ratings and test pairs with raw ids, as ``Interactions.to_frame`` gives them."""
    import pandas as pd

    train = pd.DataFrame({"user": arrays.user_ids[arrays.user_index],
                          "item": arrays.item_ids[arrays.item_index],
                          "rating": arrays.values})
    test = pd.DataFrame({"user": arrays.test_user_ids, "item": arrays.test_item_ids})
    return train, test


def _top_k_from_scores(scores: np.ndarray, seen: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best item indices of one user's scores, seen items excluded, -1 for gaps."""
    scores = scores.astype(np.float64)
    scores[seen] = -np.inf
    best = np.argpartition(-scores, k)[:k]
    best = best[np.argsort(-scores[best])]
    return np.where(np.isfinite(scores[best]), best, -1)


# ---------------------------------------------------------------------------- latentrec
def _latentrec(arrays: BenchArrays, contender: Contender, k: int) -> Prepared:
    from latentrec import models
    from latentrec.data import IdMap, Interactions

    model_class: Any = getattr(models, contender.adapter.split(".", 1)[1])
    params = dict(contender.params)
    train = Interactions(arrays.user_index, arrays.item_index, arrays.values,
                         IdMap(arrays.user_ids, name="users"),
                         IdMap(arrays.item_ids, name="items"),
                         "explicit" if arrays.feedback == "explicit" else "implicit")
    first_users = max(1, int(train.n_users * WARM_UP_USER_SHARE))
    sample = train.take(train.user_index < first_users)

    def warm_up() -> None:
        # the same model on a slice: numba compiles (or loads from its cache) the kernels and
        # torch sets itself up here, not inside the timed fits
        model_class(**params).fit(sample, show_progress=False)

    def fit() -> Any:
        return model_class(**params).fit(train, show_progress=False)

    def answer(model: Any) -> np.ndarray:
        if arrays.rank_users is not None:
            return np.asarray(model.top_k_indices(arrays.rank_users, k)[0])
        return np.asarray(model.predict(arrays.test_user_ids, arrays.test_item_ids,
                                        on_unknown="fallback"), dtype=np.float64)

    return Prepared(fit, answer, warm_up)


# ---------------------------------------------------------------------- rating prediction
def _surprise(arrays: BenchArrays, contender: Contender, k: int) -> Prepared:
    """Surprise's ``SVD`` or ``SVDpp`` (the name after the dot of the adapter)."""
    import surprise
    from surprise import Dataset, Reader

    algorithm = getattr(surprise, contender.adapter.split(".", 1)[1])

    frame_train, frame_test = _rating_frames(arrays)
    # Surprise clips its predictions to the scale: the training ratings' own (FilmTrust's is
    # 0.5-4, MovieLens's 1-5)
    scale = (float(frame_train["rating"].min()), float(frame_train["rating"].max()))
    trainset = Dataset.load_from_df(frame_train[["user", "item", "rating"]],
                                    Reader(rating_scale=scale)).build_full_trainset()
    pairs = list(zip(frame_test["user"], frame_test["item"], strict=True))
    params = dict(contender.params)

    def fit() -> Any:
        model = algorithm(random_state=0, **params)
        model.fit(trainset)
        return model

    def answer(model: Any) -> np.ndarray:
        return np.array([model.predict(u, i).est for u, i in pairs])

    return Prepared(fit, answer)


def _cornac_mf(arrays: BenchArrays, contender: Contender, k: int) -> Prepared:
    import cornac

    frame_train, frame_test = _rating_frames(arrays)
    triples = list(frame_train[["user", "item", "rating"]].itertuples(index=False, name=None))
    dataset = cornac.data.Dataset.from_uir(triples, seed=0)
    uid, iid = dataset.uid_map, dataset.iid_map
    users = [uid.get(u, -1) for u in frame_test["user"]]
    items = [iid.get(i, -1) for i in frame_test["item"]]
    params = dict(contender.params)

    def fit() -> Any:
        return cornac.models.MF(seed=0, verbose=False, **params).fit(dataset)

    def answer(model: Any) -> np.ndarray:
        out = np.full(len(users), dataset.global_mean)
        for row, (u, i) in enumerate(zip(users, items, strict=True)):
            if u >= 0 and i >= 0:
                out[row] = model.score(u, i)
        return out

    return Prepared(fit, answer)


def _libmf(arrays: BenchArrays, contender: Contender, k: int) -> Prepared:
    from libmf import mf

    frame_train, frame_test = _rating_frames(arrays)
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
    params = dict(contender.params)

    def fit() -> Any:
        engine = mf.MF(nr_threads=2, quiet=True, lambda_p1=0.0, lambda_q1=0.0, **params)
        engine.fit(triples)
        return engine

    def answer(engine: Any) -> np.ndarray:
        return np.asarray(engine.predict(pairs), dtype=np.float64)

    return Prepared(fit, answer)


def _myfm(arrays: BenchArrays, contender: Contender, k: int) -> Prepared:
    """myFM's Gibbs-sampled factorisation machine on ``[user id | item id]`` one-hots, one
    Normal-Gamma group per side (``group_shapes``), and with ``options["implicit"]`` the two
    implicit-feedback groups of latentrec's ``seen_items``/``seen_users`` (the items each user
    rated, the users who rated each item, from the training pairs, weighed by ``count **
    -0.5``), each its own group; the per-user and per-item rows go in as myFM relation
    blocks. Test ids absent from training get a row of zeros (the missing one-hot adds
    nothing)."""
    import contextlib
    import io
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # myfm 0.4.0 imports pkg_resources
        import myfm

    n_users, n_items = int(arrays.user_ids.shape[0]), int(arrays.item_ids.shape[0])
    users = arrays.user_index.astype(np.int64)
    items = arrays.item_index.astype(np.int64)
    implicit = bool(contender.options.get("implicit", False))
    n_iter = int(contender.options.get("n_iter", 200))
    params = dict(contender.params)
    blocks, shapes = [], []
    for n, n_other, rows, cols in ((n_users, n_items, users, items),
                                   (n_items, n_users, items, users)):
        # one spare row of zeros at the end: the test ids training does not know
        parts = [sp.eye(n + 1, n, format="csr")]
        shapes.append(n)
        if implicit:
            seen = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n + 1, n_other))
            seen.sum_duplicates()
            seen.data[:] = 1.0
            counts = np.diff(seen.indptr)
            seen.data = np.repeat(np.maximum(counts, 1) ** -0.5, counts).astype(np.float64)
            parts.append(seen)
            shapes.append(n_other)
        blocks.append(sp.csr_matrix(sp.hstack(parts, format="csr"), dtype=np.float64))

    def index(ids: np.ndarray, wanted: np.ndarray | None) -> np.ndarray:
        position = {value: row for row, value in enumerate(ids.tolist())}
        assert wanted is not None
        return np.array([position.get(value, len(ids)) for value in wanted.tolist()],
                        dtype=np.int64)

    test_users = index(arrays.user_ids, arrays.test_user_ids)
    test_items = index(arrays.item_ids, arrays.test_item_ids)

    def relation(user_rows: np.ndarray, item_rows: np.ndarray) -> list[Any]:
        return [myfm.RelationBlock(user_rows.tolist(), blocks[0]),
                myfm.RelationBlock(item_rows.tolist(), blocks[1])]

    train_relation = relation(users, items)
    test_relation = relation(test_users, test_items)
    values = np.asarray(arrays.values, dtype=np.float64)

    def fit() -> Any:
        model = myfm.MyFMRegressor(random_seed=0, **params)
        with contextlib.redirect_stderr(io.StringIO()):  # its progress bar
            model.fit(sp.csr_matrix((len(values), 0)), values, X_rel=train_relation,
                      n_iter=n_iter, group_shapes=shapes)
        return model

    def answer(model: Any) -> np.ndarray:
        return np.asarray(model.predict(sp.csr_matrix((len(test_users), 0)), test_relation),
                          dtype=np.float64)

    return Prepared(fit, answer, iterations=n_iter)


# ------------------------------------------------------------------------------ top-N
def _implicit(arrays: BenchArrays, contender: Contender, k: int) -> Prepared:
    import implicit
    from threadpoolctl import threadpool_limits

    user_items = _csr(arrays)
    weighting = contender.options.get("weighting", "binary")
    if weighting == "bm25":
        from implicit.nearest_neighbours import bm25_weight

        weights = bm25_weight(user_items, K1=100, B=0.8).tocsr().astype(np.float32)
    else:
        weights = user_items.copy()
        weights.data[:] = 1.0
    model_class: Any = {"implicit.ALS": implicit.cpu.als.AlternatingLeastSquares,
                        "implicit.BPR": implicit.cpu.bpr.BayesianPersonalizedRanking,
                        }[contender.adapter]
    params = dict(contender.params)

    def fit() -> Any:
        model = model_class(random_state=0, **params)
        # implicit warns and slows down when BLAS runs threads of its own
        with threadpool_limits(1, "blas"):
            model.fit(weights, show_progress=False)
        return model

    def answer(model: Any) -> np.ndarray:
        users = np.asarray(arrays.rank_users)
        ids, scores = model.recommend(users, user_items[users], N=k,
                                      filter_already_liked_items=True)
        return np.where(np.isfinite(scores), ids, -1).astype(np.int64)

    return Prepared(fit, answer)


def _cornac_ranker(arrays: BenchArrays, contender: Contender, k: int) -> Prepared:
    import cornac

    triples = list(zip(arrays.user_index.tolist(), arrays.item_index.tolist(),
                       [1.0] * len(arrays.user_index), strict=True))
    data = cornac.data.Dataset.build(triples, seed=0)
    user_of = np.array([data.uid_map[u] for u in range(arrays.n_users)])
    item_order = np.array([data.iid_map[i] for i in range(arrays.n_items)])
    seen = _csr(arrays)
    model_class: Any = {"cornac.BPR": cornac.models.BPR,
                        "cornac.EASE": cornac.models.EASE}[contender.adapter]
    params = dict(contender.params)

    def fit() -> Any:
        return model_class(seed=0, verbose=False, **params).fit(data)

    def answer(model: Any) -> np.ndarray:
        users = np.asarray(arrays.rank_users)
        result = np.full((len(users), k), -1, dtype=np.int64)
        for row, user in enumerate(users):
            # EASE's score() returns a 1 x n matrix, BPR's a vector
            scores = np.asarray(model.score(user_of[user])).ravel()[item_order]
            result[row] = _top_k_from_scores(scores, seen[user].indices, k)
        return result

    return Prepared(fit, answer)


def _lightfm(arrays: BenchArrays, contender: Contender, k: int) -> Prepared:
    # not exercised on the development machine, where lightfm cannot be installed (see
    # MISSING_PEER_REASONS); it follows lightfm's documented fit/predict API
    from lightfm import LightFM

    seen = _csr(arrays)
    binary = seen.copy()
    binary.data[:] = 1.0  # PEERS.md: LightFM sees binary interactions
    interactions = binary.tocoo()
    epochs = int(contender.options.get("epochs", 1))
    params = dict(contender.params)
    all_items = np.arange(arrays.n_items, dtype=np.int32)

    def fit() -> Any:
        return LightFM(random_state=0, **params).fit(interactions, epochs=epochs)

    def answer(model: Any) -> np.ndarray:
        users = np.asarray(arrays.rank_users)
        result = np.full((len(users), k), -1, dtype=np.int64)
        for row, user in enumerate(users):
            scores = np.asarray(model.predict(np.full(arrays.n_items, user, dtype=np.int32),
                                              all_items))
            result[row] = _top_k_from_scores(scores, seen[user].indices, k)
        return result

    return Prepared(fit, answer)


# ------------------------------------------------------------------------- Spark MLlib
def spark_session(master: str = SPARK_MASTER) -> Any:
    """A quiet local SparkSession for one child: loopback only, no UI, ERROR logs only.

    The caller stops it (``session.stop()``).
    """
    import os

    from pyspark.sql import SparkSession

    # read by Spark's launcher before any conf: no "hostname resolves to loopback" warning
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = (SparkSession.builder.master(master).appName("latentrec-bench")
               .config("spark.ui.enabled", "false")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.log.level", "ERROR")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.memory", "4g")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    return session


def spark_factors(frame: Any, n: int, rank: int) -> np.ndarray:
    """A fitted Spark ALS model's ``userFactors``/``itemFactors`` as an ``n`` x ``rank`` array.

    Row ``i`` holds the factors of Spark id ``i`` (the adapter passes the harness's indices as
    Spark's ids); ids Spark never saw keep zero rows.
    """
    factors = np.zeros((n, rank), dtype=np.float32)
    if hasattr(frame, "toArrow"):  # Spark >= 4.0
        table = frame.toArrow()
        ids = table.column("id").to_numpy()
        values = table.column("features").combine_chunks().flatten().to_numpy()
        factors[ids] = values.reshape(len(ids), rank)
    else:
        for row in frame.collect():
            factors[row["id"]] = row["features"]
    return factors


def _spark_frame(session: Any, columns: dict[str, np.ndarray]) -> Any:
    """A Spark DataFrame of ``columns``: from Arrow on Spark >= 4.0, else through pandas.

    PySpark 4.x warns that it does not fully support pandas >= 3 (FutureWarning); an Arrow
    table avoids pandas altogether.
    """
    from pyspark.sql import DataFrame

    if hasattr(DataFrame, "toArrow"):
        import pyarrow as pa

        return session.createDataFrame(pa.table(columns))
    import pandas as pd

    return session.createDataFrame(pd.DataFrame(columns))


def _spark_als(arrays: BenchArrays, contender: Contender, k: int) -> Prepared:
    from pyspark.ml.recommendation import ALS

    session = spark_session()
    try:
        explicit = arrays.feedback == "explicit"
        weights = (np.ones(len(arrays.user_index), dtype=np.float32) if arrays.values is None
                   else arrays.values.astype(np.float32))
        if contender.options.get("weighting") == "log1p":
            # Spark's confidence is 1 + alpha * r: r = log1p(w / epsilon) gives latentrec's
            weights = np.log1p(weights / float(contender.options["epsilon"])).astype(np.float32)
        train = _spark_frame(session, {"user": arrays.user_index.astype(np.int32),
                                       "item": arrays.item_index.astype(np.int32),
                                       "rating": weights}).cache()
        train.count()  # in Spark's memory before the timed fits, as other peers' inputs
        params = dict(contender.params)
        rank = int(params.get("rank", 10))
        first_users = max(1, int(arrays.n_users * WARM_UP_USER_SHARE))
        sample = train.filter(train.user < first_users).cache()
        sample.count()
    except BaseException:
        session.stop()
        raise

    def estimator(**override: Any) -> Any:
        return ALS(userCol="user", itemCol="item", ratingCol="rating", seed=0,
                   **{**params, **override})

    def warm_up() -> None:
        # the JVM loads and compiles ALS's classes here, not inside the timed fits
        estimator(maxIter=1).fit(sample)

    def fit() -> Any:
        return estimator().fit(train)

    def answer(model: Any) -> np.ndarray:
        users = spark_factors(model.userFactors, arrays.n_users, rank)
        items = spark_factors(model.itemFactors, arrays.n_items, rank)
        if explicit:
            return _predict_from_factors(arrays, users, items, float(np.mean(weights)))
        return _top_k_from_factors(arrays, users, items, k)

    return Prepared(fit, answer, warm_up, iterations=int(params.get("maxIter", 10)),
                    close=session.stop)


def _predict_from_factors(arrays: BenchArrays, users: np.ndarray, items: np.ndarray,
                          fallback: float) -> np.ndarray:
    """``p_u . q_i`` for the test pairs (raw ids); ``fallback`` where either id is unknown."""
    user_of = {user: n for n, user in enumerate(arrays.user_ids.tolist())}
    item_of = {item: n for n, item in enumerate(arrays.item_ids.tolist())}
    rows = np.array([user_of.get(u, -1) for u in np.asarray(arrays.test_user_ids).tolist()])
    cols = np.array([item_of.get(i, -1) for i in np.asarray(arrays.test_item_ids).tolist()])
    known = (rows >= 0) & (cols >= 0)
    out = np.full(len(rows), fallback, dtype=np.float64)
    out[known] = np.einsum("ij,ij->i", users[rows[known]], items[cols[known]])
    return out


def _top_k_from_factors(arrays: BenchArrays, users: np.ndarray, items: np.ndarray,
                        k: int) -> np.ndarray:
    """Each rank user's top-``k`` items by ``p_u . q_i``, training items excluded."""
    seen = _csr(arrays)
    rank_users = np.asarray(arrays.rank_users)
    result = np.full((len(rank_users), k), -1, dtype=np.int64)
    for start in range(0, len(rank_users), 1024):
        batch = rank_users[start:start + 1024]
        scores = users[batch] @ items.T
        for row, user in enumerate(batch):
            result[start + row] = _top_k_from_scores(scores[row], seen[user].indices, k)
    return result


def prepare(arrays: BenchArrays, contender: Contender, k: int) -> Prepared:
    """The adapter named by ``contender.adapter``, applied to the child's data."""
    if contender.adapter.startswith("latentrec."):
        return _latentrec(arrays, contender, k)
    adapters: dict[str, Callable[[BenchArrays, Contender, int], Prepared]] = {
        "surprise.SVD": _surprise,
        "surprise.SVDpp": _surprise,
        "cornac.MF": _cornac_mf,
        "libmf.MF": _libmf,
        "implicit.ALS": _implicit,
        "implicit.BPR": _implicit,
        "cornac.BPR": _cornac_ranker,
        "cornac.EASE": _cornac_ranker,
        "lightfm.LightFM": _lightfm,
        "myfm.MyFMRegressor": _myfm,
        "pyspark.ALS": _spark_als,
    }
    return adapters[contender.adapter](arrays, contender, k)

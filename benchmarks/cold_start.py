"""Side features and cold start: reference numbers for hybrid models (issue 12), peers side by side.

    python benchmarks/cold_start.py items [--seeds 0 1 2] [--data-dir ../shared/datasets] (~18 min)
    python benchmarks/cold_start.py tags                                                 (~2 min)
    python benchmarks/cold_start.py items --only genre softmax   (names with "genre" or "softmax")

LightFM comes from the bench extra (``pip install -c constraints.txt -e ".[dev,bench]"``, which
installs ``rectools-lightfm``); without it the LightFM rows are skipped with one line saying so.
Results go to benchmarks/results/cold_start_<task>.json (``_partial`` with --only).

``items``: cold-start items on MovieLens 100K. Every rating of ``u.data`` is a (binary)
interaction, as in ``latentrec bench implicit``. ``cold_item_split`` holds out 20% of the items
entirely (``numpy.random.default_rng(seed).permutation`` of the sorted item ids, the first 20%,
rounded): every interaction of a held-out item goes to the test side, every other one to
training. Test users are the users with at least one held-out item who also have a training
interaction (on ml-100k: all of them). Item features: ``u.item``'s genres and release year
(``load_movielens_100k_features("items")``, year cut into 10 quantile buckets), with the
vocabulary fitted on the training items only (``Task.fit_features``); a held-out item gets its
row from that vocabulary. Each test user ranks the held-out items only (all of them; none was
seen in training), ties broken at random (seeded), and is scored against the held-out items
they interacted with: NDCG@10 with binary gains (``DCG = sum 1/log2(rank + 1)`` over hits in
the top 10, over the ideal DCG of ``min(10, |R_u|)`` hits) and Recall@20 (hits in the top 20
over ``|R_u|``), both by ``latentrec.metrics``, averaged over test users, then mean, standard
deviation and range over the seeds. Contenders with a grid are tuned per seed on a validation
split carved from that seed's training part by the same function (20% of the training items
held out, seed ``seed + 1000``), chosen by validation NDCG@10, then refitted on the whole
training part and scored once on the test part.

``tags``: warm top-10 on HetRec Last.fm with the artists' tags (``user_taggedartists``) as item
features. The split and the scorer are ``latentrec bench implicit --dataset lastfm``'s:
``load_split`` (per user 80/20, seed 42, play counts as weights), every training artist ranked
for every test user with the user's training artists excluded, top-10 lists scored by
``score_top_k`` (NDCG@10 there is 0.2469 for latentrec ImplicitALS tuned). Settings are fixed
(PEERS.md's validation-chosen LightFM WARP, the bench's tuned ImplicitALS); none is tuned here.

Every fit time is the wall time of the fit alone (data preparation and scoring excluded; for
latentrec's models after an untimed warm-up fit on a slice that compiles the numba kernels).
LightFM runs ``num_threads=--threads`` (2): it is Hogwild, so its runs do not repeat exactly.

Adding a contender (a latentrec hybrid model, say): write ``def run(task: Task, params) ->
Answer`` that fits on ``task.train`` (and ``task.fit_features(...)``, never another
vocabulary) and returns the scores of ``task.users`` x ``task.items`` (raw ids) with the fit
time, then add ``Contender(run, grid=[...])`` under a new name to ``ITEM_CONTENDERS`` or
``TAG_CONTENDERS``. A function may return a list of Answers, one per checkpoint of one fit
(LightFM: one per epoch count), each with the params it stands for.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from _common import datasets_dir, machine, markdown_table, save

from latentrec.data import Features, Interactions

#: the held-out share of the items, and the cut-offs of the cold-start metrics
COLD_FRACTION = 0.2
NDCG_K, RECALL_K = 10, 20
#: the validation split of a seed is carved from its training part with seed + this
VALIDATION_SEED_OFFSET = 1000


# ---------------------------------------------------------------------------- the split
@dataclass(frozen=True)
class ColdItemSplit:
    """Interactions split by item: ``test`` holds every interaction of the ``cold_items``."""

    train: Interactions
    test: Interactions
    #: the held-out items' raw ids, sorted
    cold_items: np.ndarray
    #: test users without a training interaction: their test rows were dropped (none can be
    #: scored by a model that knows users only from training)
    dropped_users: int


def cold_item_split(data: Interactions, fraction: float = COLD_FRACTION,
                    seed: int = 0) -> ColdItemSplit:
    """Hold out ``round(fraction * n_items)`` items entirely, chosen by
    ``numpy.random.default_rng(seed).permutation`` of the sorted item ids."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    ids = np.sort(data.items.to_numpy())
    n_cold = round(fraction * len(ids))
    if not 0 < n_cold < len(ids):
        raise ValueError(f"holding out {fraction:.0%} of {len(ids)} items leaves no item on "
                         f"one side")
    cold_items = np.sort(np.random.default_rng(seed).permutation(ids)[:n_cold])
    is_cold = np.zeros(data.n_items, dtype=bool)
    is_cold[data.items.index_of(cold_items)] = True
    in_test = is_cold[data.item_index]
    train = data.take(~in_test)
    known_user = np.zeros(data.n_users, dtype=bool)
    known_user[data.user_index[~in_test]] = True
    test_users = np.unique(data.user_index[in_test])
    keep = in_test & known_user[data.user_index]
    return ColdItemSplit(train=train, test=data.take(keep), cold_items=cold_items,
                         dropped_users=int((~known_user[test_users]).sum()))


def relevant_cold(split: ColdItemSplit) -> tuple[np.ndarray, sp.csr_matrix]:
    """The test users (raw ids, sorted) and their held-out items: a users x ``cold_items``
    0/1 matrix. Held-out items nobody in the test kept (their only users were dropped) stay
    candidates."""
    users = np.sort(split.test.users.to_numpy())
    rows = np.searchsorted(users, split.test.users.ids_of(split.test.user_index))
    cols = np.searchsorted(split.cold_items, split.test.items.ids_of(split.test.item_index))
    relevant = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                             shape=(len(users), len(split.cold_items)))
    relevant.sum_duplicates()
    relevant.data[:] = 1.0
    return users, relevant


# ---------------------------------------------------------------------------- contenders
@dataclass(frozen=True)
class Task:
    """What a contender gets: training interactions, the item feature table, whom to score.

    ``item_features`` is the unfitted table of every item (training and candidates alike);
    :meth:`fit_features` fits its vocabulary on the training items only, the one rule every
    contender keeps. Scores are wanted for ``users`` x ``items`` (raw ids; every user is in
    ``train``, the items may be absent from it: cold items).
    """

    train: Interactions
    item_features: Features | None
    users: np.ndarray
    items: np.ndarray
    seed: int
    threads: int

    def fit_features(self, **options: Any) -> Features:
        """The item features with a vocabulary fitted on ``train.items`` (``Features.fit``'s
        options: ``identity``, ``normalize``)."""
        if self.item_features is None:
            raise ValueError("this task has no item features")
        return self.item_features.fit(self.train.items, **options)

    def binary_coo(self) -> sp.coo_matrix:
        """Training users x training items, 1 per interaction (what LightFM sees)."""
        matrix = self.train.to_csr().tocoo(copy=True)
        matrix.data[:] = 1.0
        return matrix


@dataclass
class Answer:
    """Scores of ``task.users`` x ``task.items`` (higher is better), the wall time of the fit
    that made them, and the params they stand for (``{}``: the contender's params)."""

    scores: np.ndarray
    fit_s: float
    params: dict[str, Any] = field(default_factory=dict)


ScoreFunction = Callable[[Task, Mapping[str, Any]], "Answer | list[Answer]"]


@dataclass(frozen=True)
class Contender:
    """A scoring function with its fixed ``params`` or a ``grid`` to tune on validation.

    ``library`` is a module that must be importable (skipped with one line when it is not).
    """

    run: ScoreFunction
    params: Mapping[str, Any] = field(default_factory=dict)
    grid: Sequence[Mapping[str, Any]] = ()
    library: str | None = None


def grid(**axes: Sequence[Any]) -> list[dict[str, Any]]:
    """Every combination of ``axes``."""
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def lightfm(loss: str, features: str) -> ScoreFunction:
    """LightFM (``loss``) with ``features`` ``"ids"`` (identity only, its default),
    ``"ids+features"`` (identity columns for the training items plus the feature columns,
    LightFM's recipe for cold start) or ``"features"`` (feature columns only).

    Rows are normalised to sum 1 as LightFM's ``Dataset`` does (``normalize="row"``) unless
    ``params["normalize"]`` says otherwise (``Task.fit_features``'s choices); users have
    identity features only. ``params["epochs"]`` may be a tuple of epoch counts: one fit
    (``fit_partial``) answers after each of them.
    """

    def run(task: Task, params: Mapping[str, Any]) -> list[Answer]:
        from lightfm import LightFM

        interactions = task.binary_coo()
        user_rows = task.train.users.index_of(task.users)
        train_features = candidate_features = None
        if features != "ids":
            fitted = task.fit_features(identity=features == "ids+features",
                                       normalize=params.get("normalize", "row"))
            train_features = fitted.matrix(task.train.items)
            candidate_features = fitted.matrix(task.items)
        epochs = params["epochs"]
        checkpoints = sorted(epochs) if isinstance(epochs, (tuple, list)) else [epochs]
        settings = {key: value for key, value in params.items()
                    if key not in ("epochs", "normalize")}
        model = LightFM(loss=loss, random_state=task.seed, **settings)
        answers: list[Answer] = []
        done, fit_s = 0, 0.0
        for total in checkpoints:
            started = time.perf_counter()
            model.fit_partial(interactions, item_features=train_features, epochs=total - done,
                              num_threads=task.threads)
            fit_s += time.perf_counter() - started
            done = total
            user_bias, user_vectors = model.get_user_representations()
            if candidate_features is None:  # identity only: the candidates' own rows
                item_bias, item_vectors = model.get_item_representations()
                columns = task.train.items.index_of(task.items)
                item_bias, item_vectors = item_bias[columns], item_vectors[columns]
            else:
                item_bias, item_vectors = model.get_item_representations(candidate_features)
            scores = (user_vectors[user_rows] @ item_vectors.T + item_bias[None, :]
                      + user_bias[user_rows, None])
            answers.append(Answer(scores, fit_s, {**params, "epochs": total}))
        return answers

    return run


def genre_popularity(task: Task, params: Mapping[str, Any]) -> Answer:
    """Score an item by the training popularity of its genres: the mean, over the item's
    genres, of the mean number of training interactions per training item of that genre
    (items without a known genre: the mean over all training items). Not personalised.
    ``params["feature"]`` names the feature (``"genre"``; ``"year"``: its buckets)."""
    started = time.perf_counter()
    fitted = task.fit_features(normalize="none")
    feature = params.get("feature", "genre")
    columns = np.flatnonzero(fitted.columns()["feature"].to_numpy() == feature)
    train_genres = (fitted.matrix(task.train.items)[:, columns] > 0).astype(np.float64)
    popularity = task.train.item_counts().astype(np.float64)
    items_per_genre = np.asarray(train_genres.sum(axis=0)).ravel()
    per_genre = (train_genres.T @ popularity) / np.maximum(items_per_genre, 1.0)
    genres = (fitted.matrix(task.items)[:, columns] > 0).astype(np.float64)
    count = np.asarray(genres.sum(axis=1)).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        item_score = np.where(count > 0, (genres @ per_genre) / count, popularity.mean())
    fit_s = time.perf_counter() - started
    return Answer(np.broadcast_to(item_score, (len(task.users), len(task.items))), fit_s)


def random_scores(task: Task, params: Mapping[str, Any]) -> Answer:
    """Uniform random scores (seeded): the floor."""
    rng = np.random.default_rng(task.seed)
    return Answer(rng.random((len(task.users), len(task.items))), 0.0)


def factor_scores(model: Any, task: Task) -> np.ndarray:
    """``global_mean + b_u + b_i + p_u . q_i`` of a fitted factor model for ``task.users`` x
    ``task.items``, in float64."""
    import torch

    users = torch.from_numpy(model.users_.index_of(task.users))
    items = torch.from_numpy(model.items_.index_of(task.items))
    scores = (model.user_factors_[users] @ model.item_factors_[items].T).double()
    scores += model.global_mean_
    if model.user_bias_ is not None:
        scores += model.user_bias_[users, None]
    if model.item_bias_ is not None:
        scores += model.item_bias_[None, items]
    return np.asarray(scores.cpu().numpy())


def latentrec_model(name: str) -> ScoreFunction:
    """A latentrec factor model without features, fitted on ``task.train`` (weights as given);
    scores ``global_mean + b_u + b_i + p_u . q_i`` from its learned factors. Training items
    only: an item absent from ``train`` cannot be scored (raises)."""

    def run(task: Task, params: Mapping[str, Any]) -> Answer:
        import torch

        from latentrec import models

        torch.set_num_threads(task.threads)
        model_class: Any = getattr(models, name)
        first = max(1, task.train.n_users // 50)
        # untimed warm-up on 2% of the users: numba compiles (or loads) its kernels here
        model_class(**params).fit(task.train.take(task.train.user_index < first),
                                  show_progress=False)
        started = time.perf_counter()
        model = model_class(**params).fit(task.train, show_progress=False)
        fit_s = time.perf_counter() - started
        return Answer(factor_scores(model, task), fit_s)

    return run


def latentrec_hybrid(name: str, **fixed: Any) -> ScoreFunction:
    """A latentrec model with item features (``fixed`` and the contender's params; the
    params' ``normalize`` is ``Task.fit_features``'s, default ``"group"``), fitted on
    ``task.train`` with the item table's vocabulary fitted on the training items: the
    held-out items join the model as cold items, scored by their features' vectors."""

    def run(task: Task, params: Mapping[str, Any]) -> Answer:
        import torch

        from latentrec import models

        torch.set_num_threads(task.threads)
        model_class: Any = getattr(models, name)
        settings = {**fixed, **{k: v for k, v in params.items() if k != "normalize"}}
        features = task.fit_features(normalize=params.get("normalize", "group"))
        first = max(1, task.train.n_users // 50)
        # untimed warm-up on 2% of the users, as latentrec_model's
        model_class(**settings).fit(task.train.take(task.train.user_index < first),
                                    item_features=features, show_progress=False)
        started = time.perf_counter()
        model = model_class(**settings).fit(task.train, item_features=features,
                                            show_progress=False)
        fit_s = time.perf_counter() - started
        return Answer(factor_scores(model, task), fit_s)  # cold ids included

    return run


#: latentrec BPR/WARP with item features, fixed (no grid, to keep the run short): chosen on
#: seed 0's validation split (training items only, VALIDATION_SEED_OFFSET) among a few
#: settings; NDCG@10 there: BPR ids + features 0.2757 (defaults), 0.2763 (20 epochs), 0.2783
#: (20 epochs, reg 0.005), 0.2749 (normalize="row"), 0.2565 (reg 0.05); BPR features only
#: 0.2645; WARP features only 0.2732 (max_sampled 10), 0.2772 (max_sampled 30); WARP ids +
#: features 0.2655. WARP features only with LightFM's row normalisation, on the validation
#: splits of seeds 0 and 1: 0.2884 and 0.2940 (reg 0.005), 0.2861 and 0.2962 (reg 0),
#: 0.2863 and 0.2960 (reg 0, 30 epochs), against 0.2770 and 0.2592 with group normalisation;
#: adagrad (lr 0.05, no decay), lr 0.01 without decay and 32 factors were no better; BPR ids +
#: features with row normalisation: 0.2702 (seed 0)
#: Full softmax (``negatives=0``), features only, unnormalised features: chosen on the
#: validation splits of seeds 0, 1, 2 (NDCG@10, mean of the three): reg 0.02 0.3241, reg 0.01
#: 0.3206, reg 0.05 0.3058, 40 epochs 0.3249, 32 factors 0.3237, row-normalised features
#: 0.3084; sampled softmax with 100 uniform negatives 0.3181 (reg 0.005, 20x the fit time)
_LATENTREC_SOFTMAX: dict[str, Any] = {"loss": "softmax", "negatives": 0, "epochs": 20,
                                      "reg": 0.02, "normalize": "none"}
_LATENTREC_BPR: dict[str, Any] = {"epochs": 20, "reg": 0.005}
_LATENTREC_WARP: dict[str, Any] = {"epochs": 20, "max_sampled": 30, "reg": 0.005,
                                   "normalize": "row"}


#: the losses whose hybrid fit time ``bpr_fit_times`` measures, as BPR settings
FIT_TIME_LOSSES: dict[str, dict[str, Any]] = {
    "bpr": {"loss": "bpr"}, "warp": {"loss": "warp"},
    "full softmax": {"loss": "softmax", "negatives": 0}}


def bpr_fit_times(root: Path | None = None, *, repeats: int = 3, epochs: int = 5,
                  threads: int = 2, seed: int = 0) -> list[dict[str, Any]]:
    """Fit time of latentrec BPR, WARP and full softmax without and with item features at
    the same settings (default factors), on the training part of the items task's ``seed`` split:
    plain, ids + features and features only fits alternate ``repeats`` times (one untimed
    warm-up fit first); prints and returns the medians of wall and CPU time (process time,
    steadier than wall time on a shared machine) and their ratios to plain. Run as
    ``python -c "import sys; sys.path.insert(0, 'benchmarks'); import cold_start;
    cold_start.bpr_fit_times()"``."""
    import torch

    from latentrec import BPR

    torch.set_num_threads(threads)
    data, features = load_ml100k(datasets_dir(None if root is None else str(root)))
    train = cold_item_split(data, COLD_FRACTION, seed).train
    fitted = features.fit(train.items)
    rows: list[dict[str, Any]] = []
    for loss, settings in FIT_TIME_LOSSES.items():
        setups: dict[str, tuple[dict[str, Any], Features | None]] = {
            "plain": ({}, None), "ids + features": ({"identity": True}, fitted),
            "features only": ({"identity": False}, fitted)}
        BPR(epochs=1, **settings).fit(train, show_progress=False)
        times: dict[str, list[float]] = {name: [] for name in setups}
        cpu: dict[str, list[float]] = {name: [] for name in setups}
        for _ in range(repeats):
            for name, (options, table) in setups.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                BPR(epochs=epochs, **settings, **options).fit(train, item_features=table,
                                                              show_progress=False)
                times[name].append(time.perf_counter() - started)
                cpu[name].append(time.process_time() - started_cpu)
        plain, plain_cpu = statistics.median(times["plain"]), statistics.median(cpu["plain"])
        for name, values in times.items():
            median, median_cpu = statistics.median(values), statistics.median(cpu[name])
            rows.append({"loss": loss, "setup": name, "epochs": epochs,
                         "median fit s": round(median, 2), "vs plain": round(median / plain, 3),
                         "median cpu s": round(median_cpu, 2),
                         "cpu vs plain": round(median_cpu / plain_cpu, 3),
                         "runs": [round(v, 2) for v in values]})
            print(rows[-1], flush=True)
    return rows


#: no_components x learning_rate, one fit each, answering after every epoch count given
#: (fit_partial). learning_rate 0.02 lost to 0.05 everywhere in a first run (seed 0's
#: validation), so the grid goes up to 0.1. The epoch counts widen what validation chose at the
#: ends of 5-30 in an earlier run: identity + features is flat from 5 on and took the low end,
#: features only and BPR were still gaining at 30 (at 50 BPR still gains a little).
def _lightfm_grid(epochs: tuple[int, ...], sizes: tuple[int, ...] = (32, 64),
                  normalize: tuple[str, ...] = ("row",)) -> list[dict[str, Any]]:
    return grid(no_components=sizes, learning_rate=(0.05, 0.1), epochs=[epochs],
                normalize=normalize)


#: the ``items`` task's contenders, in table order
ITEM_CONTENDERS: dict[str, Contender] = {
    "LightFM WARP (ids + features)": Contender(lightfm("warp", "ids+features"),
                                               grid=_lightfm_grid((2, 5, 10, 20, 30)),
                                               library="lightfm"),
    # unnormalised features ranked better on validation (best of grid 0.320 against 0.302,
    # mean of seeds 0-2; worse on seed 0): both are tried, as latentrec's softmax uses them
    "LightFM WARP (features only)": Contender(
        lightfm("warp", "features"),
        grid=_lightfm_grid((5, 10, 20, 30, 50), normalize=("row", "none")), library="lightfm"),
    # BPR is the weaker loss on this data (PEERS.md section B): 64 components only
    "LightFM BPR (ids + features)": Contender(lightfm("bpr", "ids+features"),
                                              grid=_lightfm_grid((10, 20, 30, 50), (64,)),
                                              library="lightfm"),
    "latentrec BPR (ids + features)": Contender(latentrec_hybrid("BPR", identity=True),
                                                _LATENTREC_BPR),
    "latentrec softmax (features only)": Contender(
        latentrec_hybrid("BPR", identity=False), _LATENTREC_SOFTMAX),
    "latentrec WARP (features only)": Contender(
        latentrec_hybrid("BPR", loss="warp", identity=False), _LATENTREC_WARP),
    # tuned per seed on validation like LightFM: WARP or its k-OS variant, 20 or 30 epochs
    "latentrec WARP (features only, tuned)": Contender(
        latentrec_hybrid("BPR", identity=False),
        grid=grid(loss=("warp", "warp-kos"), epochs=(20, 30), max_sampled=(30,),
                  reg=(0.005,), normalize=("row",))),
    "popularity within genre": Contender(genre_popularity, {"feature": "genre"}),
    "popularity within release-year bucket": Contender(genre_popularity, {"feature": "year"}),
    "random": Contender(random_scores),
}

#: PEERS.md's validation-chosen LightFM WARP on Last.fm (the bench's "LightFM WARP (tuned)")
_LIGHTFM_LASTFM = {"no_components": 64, "learning_rate": 0.05, "epochs": 50}


def _tuned_ials() -> dict[str, Any]:
    from latentrec.bench import TUNED_IMPLICIT

    return dict(TUNED_IMPLICIT["lastfm"]["ials"])


#: the ``tags`` task's contenders, in table order
TAG_CONTENDERS: dict[str, Contender] = {
    "LightFM WARP (ids only)": Contender(lightfm("warp", "ids"), _LIGHTFM_LASTFM,
                                         library="lightfm"),
    "LightFM WARP (ids + tags)": Contender(lightfm("warp", "ids+features"), _LIGHTFM_LASTFM,
                                           library="lightfm"),
    "latentrec ImplicitALS (defaults)": Contender(latentrec_model("ImplicitALS")),
    "latentrec ImplicitALS (tuned, bench)": Contender(latentrec_model("ImplicitALS"),
                                                      _tuned_ials()),
}


# ---------------------------------------------------------------------------- scoring
def top_columns(scores: np.ndarray, k: int, seed: int,
                exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """Each row's ``k`` best columns, best first, ties in random order (seeded); ``exclude``'s
    stored entries are never chosen (``-1`` pads rows with fewer candidates)."""
    scores = np.array(scores, dtype=np.float64)
    if exclude is not None:
        rows = np.repeat(np.arange(exclude.shape[0]), np.diff(exclude.indptr))
        scores[rows, exclude.indices] = -np.inf
    tie = np.random.default_rng(seed).random(scores.shape)
    n = min(k, scores.shape[1])
    if n < scores.shape[1]:  # keep the n best and every item tied with the n-th
        nth = -np.partition(-scores, n - 1, axis=1)[:, n - 1:n]
        tie = np.where(scores >= nth, tie, 2.0)
        scores = np.where(scores >= nth, scores, -np.inf)
    order = np.lexsort((tie, -scores), axis=1)[:, :n]
    best = np.take_along_axis(scores, order, axis=1)
    top = np.full((len(scores), k), -1, dtype=np.int64)
    top[:, :n] = np.where(np.isfinite(best), order, -1)
    return top


def score_cold(scores: np.ndarray, relevant: sp.csr_matrix, seed: int) -> dict[str, float]:
    """Mean NDCG@10 and Recall@20 over the rows of ``relevant`` (each has a relevant item)."""
    from latentrec import metrics

    top = top_columns(scores, RECALL_K, seed)
    return {f"ndcg@{NDCG_K}": float(np.mean(metrics.ndcg_at_k(top, relevant, NDCG_K))),
            f"recall@{RECALL_K}": float(np.mean(metrics.recall_at_k(top, relevant, RECALL_K)))}


def as_answers(result: Answer | list[Answer], params: Mapping[str, Any]) -> list[Answer]:
    answers = result if isinstance(result, list) else [result]
    for answer in answers:
        answer.params = answer.params or dict(params)
    return answers


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def missing_library(contender: Contender) -> str | None:
    if contender.library and importlib.util.find_spec(contender.library) is None:
        return contender.library
    return None


def chosen(contenders: Mapping[str, Contender],
           only: Sequence[str] | None) -> dict[str, Contender]:
    if only is not None and not all(part.strip() for part in only):
        raise SystemExit("--only: an empty name part would match every contender")
    picked = {name: c for name, c in contenders.items()
              if only is None or any(part.lower() in name.lower() for part in only)}
    if not picked:
        raise SystemExit(f"--only {' '.join(only or ())!r} matches none of: "
                         f"{'; '.join(contenders)}")
    absent = sorted({lib for c in picked.values() if (lib := missing_library(c))})
    for library in absent:
        say(f"{library} is not installed (pip install -c constraints.txt -e '.[bench]'): "
            f"skipping {', '.join(n for n, c in picked.items() if c.library == library)}")
    return {name: c for name, c in picked.items() if missing_library(c) is None}


# ---------------------------------------------------------------------------- items task
def load_ml100k(root: Path) -> tuple[Interactions, Features]:
    """u.data with every rating an interaction (as ``latentrec bench``'s implicit split), and
    u.item's features."""
    from latentrec.data import read_interactions
    from latentrec.datasets import load_movielens_100k_features

    data = read_interactions(root / "ml-100k" / "u.data")
    binary = Interactions(data.user_index, data.item_index, None, data.users, data.items,
                          "implicit", data.timestamps, data.source)
    features = load_movielens_100k_features("items", path=root / "ml-100k", download=False)
    return binary, features


def cold_task(split: ColdItemSplit, features: Features, seed: int,
              threads: int) -> tuple[Task, sp.csr_matrix]:
    users, relevant = relevant_cold(split)
    return Task(split.train, features, users, split.cold_items, seed, threads), relevant


def run_items(root: Path, seeds: Sequence[int], only: Sequence[str] | None,
              threads: int) -> dict[str, Any]:
    contenders = chosen(ITEM_CONTENDERS, only)
    data, features = load_ml100k(root)
    runs: list[dict[str, Any]] = []
    for seed in seeds:
        split = cold_item_split(data, COLD_FRACTION, seed)
        task, relevant = cold_task(split, features, seed, threads)
        inner = cold_item_split(split.train, COLD_FRACTION, seed + VALIDATION_SEED_OFFSET)
        valid_task, valid_relevant = cold_task(inner, features, seed, threads)
        say(f"seed {seed}: {len(split.train):,} train / {len(split.test):,} test interactions, "
            f"{len(split.cold_items)} held-out items, {len(task.users)} test users "
            f"({split.dropped_users} dropped); validation {len(inner.cold_items)} items, "
            f"{len(valid_task.users)} users")
        for name, contender in contenders.items():
            tried: list[dict[str, Any]] = []
            params: Mapping[str, Any] = contender.params
            if contender.grid:
                for point in contender.grid:
                    for answer in as_answers(contender.run(valid_task, point), point):
                        tried.append({"params": answer.params, "fit_s": answer.fit_s,
                                      **score_cold(answer.scores, valid_relevant, seed)})
                params = max(tried, key=lambda row: row[f"ndcg@{NDCG_K}"])["params"]
            answer = as_answers(contender.run(task, params), params)[-1]
            scores = score_cold(answer.scores, relevant, seed)
            runs.append({"seed": seed, "contender": name, "params": answer.params,
                         "fit_s": answer.fit_s, **scores, "validation": tried})
            say(f"  {name}: NDCG@{NDCG_K} {scores[f'ndcg@{NDCG_K}']:.4f}  Recall@{RECALL_K} "
                f"{scores[f'recall@{RECALL_K}']:.4f}  fit {answer.fit_s:.2f} s  {answer.params}")
    return {"runs": runs, "n_users": data.n_users, "n_items": data.n_items,
            "interactions": len(data)}


# ---------------------------------------------------------------------------- tags task
def run_tags(root: Path, only: Sequence[str] | None, threads: int) -> dict[str, Any]:
    from latentrec.bench import load_split, relevant_matrix, score_top_k
    from latentrec.datasets import load_lastfm_tags

    contenders = chosen(TAG_CONTENDERS, only)
    train, test = load_split("implicit", "lastfm", root)
    tags = load_lastfm_tags(root / "lastfm-hetrec")
    rank_users, relevant = relevant_matrix(train, test)
    task = Task(train, tags, train.users.ids_of(rank_users), train.items.to_numpy(), 0, threads)
    seen = train.to_csr()[rank_users]
    tagged = int((tags.ids.index_of(train.items.to_numpy(), on_unknown="ignore") >= 0).sum())
    say(f"Last.fm: {len(train):,} train / {len(test):,} test interactions, {len(rank_users):,} "
        f"test users, {train.n_items:,} training artists ({tagged:,} of them tagged)")
    runs: list[dict[str, Any]] = []
    for name, contender in contenders.items():
        answer = as_answers(contender.run(task, contender.params), contender.params)[-1]
        top = top_columns(answer.scores, 10, 0, exclude=seen)
        scores = score_top_k(top, relevant, train.n_items, 10)
        runs.append({"seed": 0, "contender": name, "params": answer.params,
                     "fit_s": answer.fit_s, **scores})
        say(f"  {name}: NDCG@10 {scores['ndcg@10']:.4f}  fit {answer.fit_s:.2f} s")
    return {"runs": runs, "tagged_training_artists": tagged}


# ---------------------------------------------------------------------------- report
def summary(runs: list[dict[str, Any]], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One row per contender: mean ± standard deviation [min-max] over seeds, median fit."""
    rows: list[dict[str, Any]] = []
    for name in dict.fromkeys(run["contender"] for run in runs):
        mine = [run for run in runs if run["contender"] == name]
        row: dict[str, Any] = {"contender": name, "seeds": len(mine)}
        for metric in metrics:
            values = [run[metric] for run in mine]
            row[metric] = statistics.fmean(values)
            row[f"{metric} sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
            row[f"{metric} range"] = f"{min(values):.4f}-{max(values):.4f}"
        row["fit s"] = statistics.median(run["fit_s"] for run in mine)
        shown = [run["params"] for run in mine]
        row["params"] = shown[0] if all(p == shown[0] for p in shown) else "; ".join(
            f"seed {run['seed']}: {p}" for run, p in zip(mine, shown, strict=True))
        rows.append(row)
    lightfm_best = max((row[metrics[0]] for row in rows if row["contender"].startswith("LightFM")),
                       default=None)
    for row in rows:
        row["vs best LightFM"] = (f"{row[metrics[0]] / lightfm_best:.3f}" if lightfm_best
                                  else "")
    return rows


def table(rows: list[dict[str, Any]], metrics: Sequence[str]) -> str:
    shown = []
    for row in rows:
        line = {"contender": row["contender"]}
        for metric in metrics:
            if row["seeds"] > 1:
                line[metric] = (f"{row[metric]:.4f} ± {row[f'{metric} sd']:.4f} "
                                f"[{row[f'{metric} range']}]")
            else:
                line[metric] = f"{row[metric]:.4f}"
        line["vs best LightFM"] = row["vs best LightFM"]
        line["fit s"] = f"{row['fit s']:.2f}"
        line["params"] = row["params"]
        shown.append(line)
    return markdown_table(shown, ["contender", *metrics, "vs best LightFM", "fit s", "params"])


def show_once(show: Callable[..., None]) -> Callable[..., None]:
    """``warnings.showwarning`` that shows each message once."""
    seen: set[str] = set()

    def shown(message: Warning | str, *args: Any, **kwargs: Any) -> None:
        if str(message) not in seen:
            seen.add(str(message))
            show(message, *args, **kwargs)

    return shown


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=("items", "tags"))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="split seeds of the items task")
    parser.add_argument("--threads", type=int, default=2, help="LightFM's and torch's threads")
    parser.add_argument("--only", nargs="+", default=None,
                        help="run the contenders whose name contains any of these (put it "
                             "after the task)")
    args = parser.parse_args(argv)
    # a value only held-out items have (ml-100k: genre "unknown") has no column: say it once
    # (a "once" filter does not hold: every catch_warnings exit re-arms it)
    warnings.showwarning = show_once(warnings.showwarning)
    root = datasets_dir(args.data_dir)
    started, described = time.perf_counter(), machine()
    if args.task == "items":
        result = run_items(root, args.seeds, args.only, args.threads)
        metrics = [f"ndcg@{NDCG_K}", f"recall@{RECALL_K}"]
    else:
        result = run_tags(root, args.only, args.threads)
        metrics = ["ndcg@10", "recall@10"]
    rows = summary(result["runs"], metrics)
    print(table(rows, metrics))
    command = "python benchmarks/cold_start.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    path = save(f"cold_start_{args.task}" + ("_partial" if args.only else ""), {
        "command": command, "task": args.task, "machine": described,
        "wall_s": time.perf_counter() - started, "summary": rows, **result,
    })
    say(f"\nwritten {path} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()

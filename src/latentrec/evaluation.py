"""Scoring a fitted model on held-out interactions: one tidy table of metrics."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from latentrec import metrics as m
from latentrec._rng import numpy_rng
from latentrec.data import Interactions
from latentrec.errors import EvaluationWarning, InvalidParameterError
from latentrec.models.base import Recommender

__all__ = ["RANKING_METRICS", "RATING_METRICS", "evaluate"]

RATING_METRICS = ("rmse", "mae")
RANKING_METRICS = ("precision", "recall", "ndcg", "map", "hit_rate", "mrr", "coverage")
_RANKERS = {
    "precision": m.precision_at_k, "recall": m.recall_at_k, "ndcg": m.ndcg_at_k,
    "map": m.map_at_k, "hit_rate": m.hit_rate_at_k, "mrr": m.mrr_at_k,
}


def evaluate(
    model: Recommender,
    test: Interactions,
    *,
    k: int = 10,
    metrics: Sequence[str] | None = None,
    relevance_threshold: float | None = None,
    exclude_seen: bool = True,
    sampled_negatives: int | None = None,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Score ``model`` on ``test``; returns a DataFrame with columns ``metric, value``.

    Rating metrics (``rmse``, ``mae``) need explicit test values; ranking metrics (``precision``,
    ``recall``, ``ndcg``, ``map``, ``hit_rate``, ``mrr`` at ``k``, and catalogue ``coverage``)
    rank the full catalogue for every test user, excluding the user's training items. An item is
    relevant when it is in the user's test interactions (with ``relevance_threshold``, only if
    its value is at least that). Metric names in the table are lower case with ``@k``, e.g.
    ``ndcg@10``.

    ``sampled_negatives=n`` adds the NCF-style ``sampled_hit_rate@k`` and ``sampled_ndcg@k``:
    each test interaction is ranked against ``n`` items drawn (seeded by ``seed``) from those
    the user never interacted with. It warns with
    :class:`~latentrec.errors.EvaluationWarning`: Krichene & Rendle (2020) show that sampled
    metrics can rank models differently from the full ranking, so use them only to compare
    with papers that report them.

    Users or items absent from training are normal in a test set. They are scored with the
    model's fallback (``predict(..., on_unknown="fallback")``: the global mean and known biases;
    popular items for unknown users) and counted in the rows ``unknown_users``,
    ``unknown_items`` and ``fallback_predictions``.

    Examples
    --------
    >>> from latentrec import BiasedMF, random_split, evaluate
    >>> from latentrec.datasets import synthetic
    >>> train, test = random_split(synthetic(300, 200), seed=0)
    >>> table = evaluate(BiasedMF(epochs=5).fit(train, show_progress=False), test)
    >>> table["metric"].tolist()[:2]
    ['rmse', 'mae']
    """
    if not isinstance(model, Recommender):
        raise TypeError(f"model must be a latentrec model, got {type(model).__name__}")
    if not isinstance(test, Interactions):
        raise TypeError(f"test must be Interactions, got {type(test).__name__}")
    model.require_fitted()
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidParameterError(f"k must be an integer >= 1, got {k!r}")
    if k > model.n_items and test.n_users * k > _MAX_PADDED:
        raise InvalidParameterError(f"k={k} is larger than the catalogue ({model.n_items:,} "
                                    f"items) and its padded lists would hold {test.n_users:,} x "
                                    f"{k:,} entries; choose k <= {model.n_items:,}")
    if relevance_threshold is not None and (
            isinstance(relevance_threshold, bool)
            or not isinstance(relevance_threshold, (int, float, np.number))
            or not math.isfinite(relevance_threshold)):
        raise InvalidParameterError(f"relevance_threshold must be a finite number, got "
                                    f"{relevance_threshold!r}")
    rating_ok = test.values is not None and test.is_explicit and model.feedback_ == "explicit"
    wanted = list(metrics) if metrics is not None else (
        [*RATING_METRICS, *RANKING_METRICS] if rating_ok else list(RANKING_METRICS))
    unknown_names = [name for name in wanted if name not in (*RATING_METRICS, *RANKING_METRICS)]
    if unknown_names:
        raise InvalidParameterError(
            f"unknown metric {unknown_names[0]!r}; choose from "
            f"{[*RATING_METRICS, *RANKING_METRICS]}"
        )
    if not rating_ok and any(name in RATING_METRICS for name in wanted):
        raise InvalidParameterError(
            "rmse and mae need explicit ratings in both the training data and the test data"
        )

    user_index, item_index = model.to_indices(test)
    unknown_row = (user_index < 0) | (item_index < 0)
    if exclude_seen and any(name in RANKING_METRICS for name in wanted):
        _warn_if_seen(model, user_index, item_index)
    rows: list[tuple[str, float]] = []
    if any(name in RATING_METRICS for name in wanted):
        assert test.values is not None  # rating_ok checked it
        predictions = model.score_indices(user_index, item_index)
        for name in RATING_METRICS:
            if name in wanted:
                rows.append((name, getattr(m, name)(test.values, predictions)))
    ranking = [name for name in wanted if name in RANKING_METRICS]
    if ranking:
        rows.extend(_ranking_rows(model, test, user_index, item_index, k, ranking,
                                  relevance_threshold, exclude_seen))
    if sampled_negatives is not None:
        rows.extend(_sampled_rows(model, test, user_index, item_index, k, sampled_negatives,
                                  seed))
    test_user_known = model.users_.index_of(test.users.to_numpy(), on_unknown="ignore") >= 0
    test_item_known = model.items_.index_of(test.items.to_numpy(), on_unknown="ignore") >= 0
    rows += [
        ("test_interactions", float(len(test))),
        ("unknown_users", float((~test_user_known).sum())),
        ("unknown_items", float((~test_item_known).sum())),
        ("fallback_predictions", float(unknown_row.sum())),
    ]
    return pd.DataFrame(rows, columns=["metric", "value"])


#: entries of padded top-k lists evaluate may build when k exceeds the catalogue
_MAX_PADDED = 20_000_000
#: share of test interactions seen in training above which rankings say little
_SEEN_WARNING = 0.5


def _warn_if_seen(model: Recommender, user_index: np.ndarray, item_index: np.ndarray) -> None:
    """Warn when most test interactions were seen in training: they are excluded from every
    ranking, so ranking metrics fall to about zero (e.g. evaluating on the training file)."""
    known = (user_index >= 0) & (item_index >= 0)
    if not known.any():
        return
    seen = model.seen_
    keys = user_index[known] * model.n_items + item_index[known]
    coo = seen.tocoo()
    seen_keys = np.sort(coo.row.astype(np.int64) * model.n_items + coo.col)
    share = float(np.isin(keys, seen_keys, assume_unique=False).mean()) * known.mean()
    if share > _SEEN_WARNING:
        warnings.warn(
            f"{share:.0%} of the test interactions were seen in training; seen items are "
            f"excluded from rankings, so ranking metrics are near 0: evaluate on held-out "
            f"data (in Python, or pass exclude_seen=False)", EvaluationWarning, stacklevel=3)


def _ranking_rows(model: Recommender, test: Interactions, user_index: np.ndarray,
                  item_index: np.ndarray, k: int, names: list[str],
                  relevance_threshold: float | None, exclude_seen: bool) -> list[tuple[str, float]]:
    relevant_row = np.ones(len(test), dtype=bool)
    if relevance_threshold is not None:
        relevant_row = test.weights() >= relevance_threshold
    # items unknown to the model get columns past the catalogue: relevant but never recommended
    n_items = model.n_items
    column = np.where(item_index >= 0, item_index, n_items + test.item_index)
    relevant = sp.csr_matrix(
        (np.ones(int(relevant_row.sum()), dtype=np.float32),
         (test.user_index[relevant_row], column[relevant_row])),
        shape=(test.n_users, n_items + test.n_items),
    )
    relevant.sum_duplicates()
    test_users = model.users_.index_of(test.users.to_numpy(), on_unknown="ignore")
    top_items, _ = model.top_k_indices(test_users, k, exclude_seen=exclude_seen)
    if top_items.shape[1] < k:
        # lists shorter than k (a k beyond the catalogue; evaluate bounded the size): pad them
        top_items = np.pad(top_items, ((0, 0), (0, k - top_items.shape[1])),
                           constant_values=-1)
    rows = []
    for name in names:
        if name == "coverage":
            rows.append(("coverage", m.catalogue_coverage(top_items, n_items)))
            continue
        per_user = _RANKERS[name](top_items, relevant, k)
        value = float(np.nanmean(per_user)) if np.isfinite(per_user).any() else float("nan")
        rows.append((f"{name}@{k}", value))
    return rows


def _sampled_rows(model: Recommender, test: Interactions, user_index: np.ndarray,
                  item_index: np.ndarray, k: int, negatives: int,
                  seed: int | None) -> list[tuple[str, float]]:
    if isinstance(negatives, bool) or not isinstance(negatives, (int, np.integer)) or (
            negatives < 1):
        raise InvalidParameterError(
            f"sampled_negatives must be an integer >= 1, got {negatives!r}")
    warnings.warn(
        "sampled-negative metrics can disagree with the full ranking (Krichene & Rendle "
        "2020); report the full-ranking metrics unless you compare with papers that sample",
        EvaluationWarning, stacklevel=3)
    known = (user_index >= 0) & (item_index >= 0)
    users, positives = user_index[known], item_index[known]
    if len(users) == 0:
        return [(f"sampled_hit_rate@{k}", float("nan")), (f"sampled_ndcg@{k}", float("nan"))]
    n_items = model.n_items
    # items each user must not get as a negative: training and test interactions
    taken = np.unique(np.concatenate([
        model.seen_.tocoo().row.astype(np.int64) * n_items + model.seen_.tocoo().col,
        users * n_items + positives]))
    rng = numpy_rng(seed)
    sampled = rng.integers(0, n_items, size=(len(users), negatives))
    for _ in range(20):  # redraw clashes; a handful of rounds suffices unless users saw it all
        keys = users[:, None] * n_items + sampled
        position = np.searchsorted(taken, keys).clip(0, len(taken) - 1)
        clash = taken[position] == keys
        if not clash.any():
            break
        sampled[clash] = rng.integers(0, n_items, size=int(clash.sum()))
    positive_scores = model.score_indices(users, positives)
    negative_scores = model.score_indices(np.repeat(users, negatives), sampled.reshape(-1)
                                             ).reshape(len(users), negatives)
    rank = (negative_scores > positive_scores[:, None]).sum(axis=1)
    hit = rank < k
    ndcg = np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0)
    return [(f"sampled_hit_rate@{k}", float(hit.mean())), (f"sampled_ndcg@{k}",
                                                           float(ndcg.mean()))]

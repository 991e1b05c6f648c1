"""Approximate top-k for large catalogues: a faiss index over a factor model's items.

Scores of a :class:`~latentrec.models.FactorModel` are ``mean + b_u + b_i + p_u . q_i``, so
top-k is a maximum-inner-product search of ``[p_u, 1]`` over the item vectors ``[q_i, b_i]``.
Inverted lists and graphs built directly on inner products find few of the true top items
when item norms vary as much as they do in trained models (recall@10 0.30 on a 1M-item
ImplicitALS, ``benchmarks/serve_load.py --ann ivf``). So the index stores each item with one
more coordinate, ``sqrt(M^2 - |x_i|^2)`` (M the largest norm): all items then have norm M and
the nearest neighbour in Euclidean distance of ``[p_u, 1, 0]`` is the largest inner product
(Bachrach et al. 2014), which clustering and graphs handle well (recall@10 1.0 there).
Candidates are rescored exactly, seen items are removed from an enlarged candidate list.
Needs ``pip install 'latentrec[ann]'``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from latentrec.errors import IndexRecallWarning, InvalidParameterError, LatentrecError

__all__ = ["ItemIndex"]

METHODS = ("ivf", "hnsw")
#: candidates fetched beyond k to make room for seen items (then an exact fallback)
_MAX_EXTRA = 2048
#: users sampled to estimate an index's recall@10 when it is built, and the level that warns
_RECALL_USERS = 256
_RECALL_WARNING = 0.9


class ItemIndex:
    """A faiss index over the items of a fitted factor model.

    Parameters
    ----------
    model
        A fitted :class:`~latentrec.models.FactorModel`.
    method
        ``"ivf"`` (inverted lists, quick to build; ``probes`` lists searched per query) or
        ``"hnsw"`` (graph; slower to build, ``probes`` is its ``efSearch``).
    lists
        Number of inverted lists for ``"ivf"`` (default ``4 * sqrt(n_items)``).
    probes
        Search breadth: more is slower and closer to exact.

    Examples
    --------
    >>> from latentrec import BiasedMF
    >>> from latentrec.datasets import synthetic
    >>> model = BiasedMF(factors=8, epochs=2).fit(synthetic(300, 500), show_progress=False)
    >>> index = ItemIndex(model, probes=64)
    >>> model.use_index(index).recommend(0, k=3)["rank"].tolist()
    [1, 2, 3]
    """

    def __init__(self, model: Any, *, method: str = "ivf", lists: int | None = None,
                 probes: int = 64, seed: int = 0) -> None:
        try:
            import faiss
        except ImportError:
            raise LatentrecError("approximate search needs faiss: pip install "
                                 "'latentrec[ann]'") from None
        if method not in METHODS:
            raise InvalidParameterError(f"method must be one of {list(METHODS)}, got {method!r}")
        if isinstance(probes, bool) or not isinstance(probes, int) or probes < 1:
            raise InvalidParameterError(f"probes must be an integer >= 1, got {probes!r}")
        model.require_fitted()
        items = model.item_factors_.detach().cpu().numpy().astype(np.float32)
        bias = (np.zeros(len(items), dtype=np.float32) if model.item_bias_ is None
                else model.item_bias_.detach().cpu().numpy().astype(np.float32))
        vectors = np.ascontiguousarray(np.hstack([items, bias[:, None]]))
        squared_norms = np.einsum("ij,ij->i", vectors, vectors)
        padding = np.sqrt(np.maximum(squared_norms.max(initial=0.0) - squared_norms, 0.0))
        equal_norm = np.ascontiguousarray(np.hstack([vectors, padding[:, None]]))
        dimension = equal_norm.shape[1]
        index: Any
        if method == "hnsw":
            graph = faiss.IndexHNSWFlat(dimension, 32, faiss.METRIC_L2)
            graph.hnsw.efConstruction = 200
            graph.add(equal_norm)
            graph.hnsw.efSearch = max(probes, 16)
            index = graph
        else:
            lists = lists or max(1, min(len(vectors) // 39, int(4 * math.sqrt(len(vectors)))))
            inverted = faiss.IndexIVFFlat(faiss.IndexFlatL2(dimension), dimension, lists,
                                          faiss.METRIC_L2)
            inverted.cp.seed = seed
            inverted.train(equal_norm)
            inverted.add(equal_norm)
            inverted.nprobe = min(probes, lists)
            index = inverted
        self.method = method
        self.probes = probes
        self._index = index
        self._vectors = vectors
        self._model = model
        self.recall_estimate = self._estimate_recall(seed)
        if self.recall_estimate < _RECALL_WARNING:
            sampled = min(_RECALL_USERS, model.n_users)
            warnings.warn(
                f"the {method} index finds only {self.recall_estimate:.0%} of the exact top-10 "
                f"items (estimated on {sampled} users); raise probes (now {probes}) or use "
                "method='ivf'", IndexRecallWarning, stacklevel=2)

    def _estimate_recall(self, seed: int) -> float:
        """Share of the exact top-10 (seen items excluded) that the index returns, on a seeded
        sample of users: a cheap check that catches an index built on unsuitable vectors."""
        model = self._model
        rng = np.random.default_rng(seed)
        users = rng.choice(model.n_users, min(_RECALL_USERS, model.n_users), replace=False)
        # exact scores 32 users at a time: 256 rows of a 1M-item catalogue would take 1 GB
        exact = np.concatenate([model.top_k_indices(part, 10, approximate=False)[0]
                                for part in np.array_split(users, -(-len(users) // 32))])
        approx, _ = self.search(users, 10)
        wanted = exact >= 0
        found = [np.isin(row_exact[row_ok], row_approx).sum()
                 for row_exact, row_ok, row_approx in zip(exact, wanted, approx, strict=True)]
        return float(np.sum(found) / max(1, wanted.sum()))

    def search(self, user_index: np.ndarray, k: int, *, exclude_seen: bool = True
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices (``-1`` padded) and scores for known users."""
        model = self._model
        users = torch.from_numpy(user_index)
        vectors = model.user_factors_.detach().cpu()[users].numpy().astype(np.float32)
        queries = np.hstack([vectors, np.ones((len(vectors), 1), dtype=np.float32)])
        searched = np.ascontiguousarray(np.hstack([queries, np.zeros((len(vectors), 1),
                                                                     dtype=np.float32)]))
        seen = model.seen_
        extra = 0
        if exclude_seen:
            counts = np.diff(seen.indptr)[user_index]
            extra = int(min(counts.max(initial=0), _MAX_EXTRA))
        wanted = min(k + extra, model.n_items)
        _, items = self._index.search(searched, wanted)
        found = items >= 0
        scores = np.einsum("bd,bkd->bk", queries, self._vectors[np.where(found, items, 0)])
        scores[~found] = -np.inf
        if exclude_seen and extra:
            starts, ends = seen.indptr[user_index], seen.indptr[user_index + 1]
            for row in np.flatnonzero(counts > 0):  # per user: a sorted-array membership test
                row_seen = seen.indices[starts[row]:ends[row]]
                position = np.searchsorted(row_seen, items[row]).clip(0, len(row_seen) - 1)
                hit = row_seen[position] == items[row]
                scores[row, hit] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        top_scores = np.take_along_axis(scores, order, axis=1)
        top_items = np.take_along_axis(items, order, axis=1)
        offset = np.full(len(user_index), model.global_mean_, dtype=np.float32)
        if model.user_bias_ is not None:
            offset += model.user_bias_.detach().cpu().numpy()[user_index]
        top_scores = top_scores + offset[:, None]
        valid = np.isfinite(top_scores) & (top_items >= 0)
        top_items = np.where(valid, top_items, -1)
        if top_items.shape[1] < k:
            pad = k - top_items.shape[1]
            top_items = np.pad(top_items, ((0, 0), (0, pad)), constant_values=-1)
            top_scores = np.pad(top_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        return top_items.astype(np.int64), top_scores.astype(np.float32)

"""Top-k over score matrices: chunks of users, seen-item masking, allow-lists."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from latentrec.data import IdMap
from latentrec.errors import InvalidParameterError

#: rows of the score matrix computed at once by recommend/similar (bounds memory)
SCORE_CHUNK = 2048


def top_k(score_chunk: Callable[[np.ndarray], torch.Tensor], user_index: np.ndarray, k: int,
          n_candidates: int) -> tuple[np.ndarray, np.ndarray]:
    """Item indices (``-1`` where a user has fewer candidates) and scores of each user's top
    ``k`` (at most as many columns as there are candidates), from ``score_chunk(users)``,
    which returns masked scores (``-inf`` = excluded)."""
    k_eff = min(k, n_candidates)
    # a k beyond the catalogue returns every candidate: the arrays are never wider than that
    width = max(k_eff, 1)
    top_items = np.full((len(user_index), width), -1, dtype=np.int64)
    top_scores = np.full((len(user_index), width), -np.inf, dtype=np.float32)
    if k_eff == 0:
        return top_items, top_scores
    for start in range(0, len(user_index), SCORE_CHUNK):
        chunk = user_index[start:start + SCORE_CHUNK]
        values, indices = torch.topk(score_chunk(chunk), k_eff, dim=1)
        values_np, indices_np = values.cpu().numpy(), indices.cpu().numpy()
        valid = np.isfinite(values_np)
        top_items[start:start + len(chunk), :k_eff] = np.where(valid, indices_np, -1)
        top_scores[start:start + len(chunk), :k_eff] = values_np
    return top_items, top_scores


def mask_scores(scores: torch.Tensor, user_index: np.ndarray, seen: sp.csr_matrix | None,
                allowed: np.ndarray | None) -> torch.Tensor:
    """Set to ``-inf`` the items outside ``allowed`` and, with ``seen``, each known user's
    training items (in place)."""
    if allowed is not None:
        mask = torch.ones(scores.shape[1], dtype=torch.bool, device=scores.device)
        mask[torch.from_numpy(allowed).to(scores.device)] = False
        scores[:, mask] = -math.inf
    if seen is not None and (user_index >= 0).any():
        rows, cols = seen_pairs(seen, user_index)
        scores[torch.from_numpy(rows).to(scores.device),
               torch.from_numpy(cols).to(scores.device)] = -math.inf
    return scores


def seen_pairs(seen: sp.csr_matrix, user_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row in chunk, item index) of every training interaction of the chunk's known users."""
    safe = np.where(user_index >= 0, user_index, 0)
    starts, ends = seen.indptr[safe], seen.indptr[safe + 1]
    lengths = np.where(user_index >= 0, ends - starts, 0)
    rows = np.repeat(np.arange(len(user_index)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    cols = seen.indices[np.repeat(starts, lengths) + offsets]
    return rows.astype(np.int64), cols.astype(np.int64)


def top_frame(user_ids: np.ndarray, item_map: IdMap, top_items: np.ndarray,
              top_scores: np.ndarray, fallback: np.ndarray | None) -> pd.DataFrame:
    """``user, item, rank, score`` rows (plus ``fallback`` when given) of top-k results."""
    n_users, k = top_items.shape
    keep = (top_items >= 0).reshape(-1)
    user_pos = np.repeat(np.arange(n_users), k)[keep]
    frame = pd.DataFrame({
        "user": user_ids[user_pos],
        "item": item_map.ids_of(top_items.reshape(-1)[keep]),
        "rank": np.tile(np.arange(1, k + 1), n_users)[keep].astype(np.int64),
        "score": top_scores.reshape(-1)[keep].astype(np.float64),
    })
    if fallback is not None:
        frame["fallback"] = fallback[user_pos]
    return frame


def canonical_ids(id_map: IdMap, given: list[Any], index: np.ndarray) -> np.ndarray:
    """The model's own spelling of each id (``"7"`` becomes ``7`` for integer ids); unknown
    ids stay as given."""
    result = np.empty(len(given), dtype=object)
    result[:] = given
    known = index >= 0
    if known.any():
        result[known] = id_map.ids_of(index[known])
    return result


def is_scalar(value: Any) -> bool:
    return isinstance(value, (str, bytes, int, np.integer))


def as_list(ids: Any) -> list[Any]:
    if is_scalar(ids):
        return [ids]
    if isinstance(ids, (pd.Series, pd.Index, np.ndarray)):
        return list(ids.tolist())
    return list(ids)


def check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an integer, got {type(k).__name__}")
    if k < 1:
        raise InvalidParameterError(f"k must be >= 1, got {k}")
    return int(k)

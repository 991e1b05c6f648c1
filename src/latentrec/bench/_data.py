"""The suites' data, splits and scores: one code path for latentrec and every peer.

Heavy imports (latentrec's readers pull in torch) stay inside the functions, so that importing
:mod:`latentrec.bench` is cheap.
"""

from __future__ import annotations

import errno
import gzip
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from latentrec.bench._arrays import BenchArrays

if TYPE_CHECKING:
    from latentrec.data import Interactions

#: where the team's machines keep the shared datasets, tried last
DATA_ENV = "LATENTREC_DATA"

#: files each (suite, dataset) reads, relative to the datasets folder
REQUIRED_FILES: dict[tuple[str, str], tuple[str, ...]] = {
    ("explicit", "ml-100k"): ("ml-100k/u1.base", "ml-100k/u1.test"),
    ("implicit", "ml-100k"): ("ml-100k/u.data",),
    ("implicit", "lastfm"): ("lastfm-hetrec/user_artists.dat",),
    ("implicit", "gowalla"): ("gowalla-lightgcn/train.txt.gz", "gowalla-lightgcn/test.txt"),
}

#: what each split is called in the results
SPLIT_NAMES: dict[tuple[str, str], str] = {
    ("explicit", "ml-100k"): "u1.base/u1.test",
    ("implicit", "ml-100k"): "user_holdout(0.2, seed=42), every rating an interaction",
    ("implicit", "lastfm"): "user_holdout(0.2, seed=42), play counts as weights",
    ("implicit", "gowalla"): "the NGCF/LightGCN train.txt/test.txt files",
}


def find_datasets_dir(given: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds the shared datasets (``ml-100k/``, ``lastfm-hetrec/`` ...).

    In order: ``given``; ``$LATENTREC_DATA``; the first ``shared/datasets`` folder beside the
    current directory or one of its parents (then beside this package's source); else
    ``./datasets``. The folder is not checked here: the suites name the file they miss and how
    to point at the data (``--data-dir`` or ``$LATENTREC_DATA``).

    Examples
    --------
    >>> find_datasets_dir("/data").as_posix()
    '/data'
    """
    if given is not None:
        return Path(given)
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    for start in (Path.cwd(), Path(__file__).resolve()):
        for folder in (start, *start.parents):
            if (folder / "shared" / "datasets").is_dir():
                return folder / "shared" / "datasets"
    return Path("datasets")


def check_data(suite: str, dataset: str, root: Path) -> None:
    """Raise ``FileNotFoundError`` naming the first file the suite needs and ``root`` lacks."""
    for relative in REQUIRED_FILES[suite, dataset]:
        path = root / relative
        if not path.is_file():
            hint = (f"{dataset} data not found; pass --data-dir DIR (the folder holding "
                    f"{relative.split('/')[0]}/) or set {DATA_ENV}")
            raise FileNotFoundError(errno.ENOENT, hint, str(path))


def _read_adjacency(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """LightGCN's ``user item item ...`` lines, as (users, items) pairs."""
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


def load_split(suite: str, dataset: str, root: Path) -> tuple[Interactions, Interactions]:
    """The (train, test) interactions of ``suite`` on ``dataset`` under the ``root`` folder.

    explicit/ml-100k is the official ``u1.base``/``u1.test``; implicit/ml-100k takes every
    rating as a (binary) interaction and implicit/lastfm the play counts as weights, both split
    per user 80/20 with seed 42; implicit/gowalla reads the NGCF/LightGCN files as published.
    """
    from latentrec.data import Interactions, read_interactions, user_holdout

    check_data(suite, dataset, root)
    if suite == "explicit":
        base = root / "ml-100k"
        return read_interactions(base / "u1.base"), read_interactions(base / "u1.test")
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
    folder = root / "gowalla-lightgcn"
    train_users, train_items = _read_adjacency(folder / "train.txt.gz")
    test_users, test_items = _read_adjacency(folder / "test.txt")
    return (Interactions.from_arrays(train_users, train_items, feedback="implicit"),
            Interactions.from_arrays(test_users, test_items, feedback="implicit"))


def relevant_matrix(train: Interactions, test: Interactions) -> tuple[np.ndarray, sp.csr_matrix]:
    """Test users (as training user indices) and their held-out items, one row per user.

    Columns are training item indices; test items never seen in training still count as
    relevant (no model can recommend them), in extra columns after the catalogue.
    """
    user_map = train.users.index_of(test.users.to_numpy(), on_unknown="ignore")
    item_map = train.items.index_of(test.items.to_numpy(), on_unknown="ignore")
    users, items = user_map[test.user_index], item_map[test.item_index]
    keep = users >= 0
    unknown = items < 0
    items = np.where(unknown, train.n_items + test.item_index, items)
    rows_users, rows = np.unique(users[keep], return_inverse=True)
    relevant = sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32),
                              (rows, items[keep])),
                             shape=(len(rows_users), train.n_items + test.n_items))
    relevant.sum_duplicates()
    return rows_users, relevant


def score_top_k(top: np.ndarray, relevant: sp.csr_matrix, n_items: int,
                k: int) -> dict[str, float]:
    """NDCG, precision, recall and MAP at ``k`` (means over users) and catalogue coverage.

    ``top`` holds one row of ``k`` training item indices per row of ``relevant`` (-1 where a
    model had fewer than ``k`` items to offer).
    """
    from latentrec import metrics

    return {
        f"ndcg@{k}": float(np.nanmean(metrics.ndcg_at_k(top, relevant, k))),
        f"precision@{k}": float(np.nanmean(metrics.precision_at_k(top, relevant, k))),
        f"recall@{k}": float(np.nanmean(metrics.recall_at_k(top, relevant, k))),
        f"map@{k}": float(np.nanmean(metrics.map_at_k(top, relevant, k))),
        "coverage": metrics.catalogue_coverage(top, n_items),
    }


def score_ratings(truth: np.ndarray, predicted: np.ndarray,
                  rating_range: tuple[float, float]) -> dict[str, float]:
    """RMSE and MAE of ``predicted`` clipped to ``rating_range`` (every library alike)."""
    from latentrec import metrics

    clipped = np.clip(np.asarray(predicted, dtype=np.float64), *rating_range)
    return {"rmse": metrics.rmse(truth, clipped), "mae": metrics.mae(truth, clipped)}


def bench_arrays(suite: str, train: Interactions, test: Interactions,
                 rank_users: np.ndarray | None) -> BenchArrays:
    """What a child process needs: the training part and the queries to answer."""
    explicit = suite == "explicit"
    return BenchArrays(
        feedback=train.feedback,
        user_index=train.user_index,
        item_index=train.item_index,
        values=train.values,
        user_ids=train.users.to_numpy(),
        item_ids=train.items.to_numpy(),
        test_user_ids=test.users.ids_of(test.user_index) if explicit else None,
        test_item_ids=test.items.ids_of(test.item_index) if explicit else None,
        rank_users=None if explicit else rank_users,
    )

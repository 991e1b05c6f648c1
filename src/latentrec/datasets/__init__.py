"""Ready-made data: a synthetic generator with planted structure, the MovieLens loaders
(ratings, the movies' titles, years and genres, and MovieLens 100K's user and movie features)
and the artists' tags of HetRec Last.fm.

Examples
--------
>>> from latentrec.datasets import synthetic
>>> synthetic(n_users=20, n_items=10, density=0.5).n_users
20
"""

from latentrec.datasets.lastfm import load_lastfm_tags
from latentrec.datasets.movielens import (
    MOVIELENS_100K_FOLDS,
    MOVIELENS_VARIANTS,
    load_movielens,
    load_movielens_100k_features,
    load_movielens_100k_split,
    load_movielens_items,
)
from latentrec.datasets.synthetic import synthetic

__all__ = [
    "MOVIELENS_100K_FOLDS",
    "MOVIELENS_VARIANTS",
    "load_lastfm_tags",
    "load_movielens",
    "load_movielens_100k_features",
    "load_movielens_100k_split",
    "load_movielens_items",
    "synthetic",
]

"""Ready-made data: a synthetic generator with planted structure and the MovieLens loaders
(ratings, and the movies' titles, years and genres).

Examples
--------
>>> from latentrec.datasets import synthetic
>>> synthetic(n_users=20, n_items=10, density=0.5).n_users
20
"""

from latentrec.datasets.movielens import (
    MOVIELENS_100K_FOLDS,
    MOVIELENS_VARIANTS,
    load_movielens,
    load_movielens_100k_split,
    load_movielens_items,
)
from latentrec.datasets.synthetic import synthetic

__all__ = [
    "MOVIELENS_100K_FOLDS",
    "MOVIELENS_VARIANTS",
    "load_movielens",
    "load_movielens_100k_split",
    "load_movielens_items",
    "synthetic",
]

"""Models. Every model follows the :class:`Recommender` contract; docs/extending.md shows how
to add one."""

from latentrec.models.als import ALS
from latentrec.models.base import Recommender, hyperparameters
from latentrec.models.bayesian_mf import BayesianMF
from latentrec.models.biased_mf import BiasedMF
from latentrec.models.bpr import BPR
from latentrec.models.config import EpochConfig, ModelConfig
from latentrec.models.ease import EASE
from latentrec.models.factor import FactorModel
from latentrec.models.implicit_als import ImplicitALS
from latentrec.models.item_knn import ItemKNN
from latentrec.models.loading import load, model_kinds
from latentrec.models.mf import MatrixFactorization
from latentrec.models.popularity import Popularity

__all__ = [
    "ALS",
    "BPR",
    "EASE",
    "BayesianMF",
    "BiasedMF",
    "EpochConfig",
    "FactorModel",
    "ImplicitALS",
    "ItemKNN",
    "MatrixFactorization",
    "ModelConfig",
    "Popularity",
    "Recommender",
    "hyperparameters",
    "load",
    "model_kinds",
]

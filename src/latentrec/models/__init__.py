"""Models. Every model follows the :class:`Recommender` contract."""

from latentrec.models.als import ALS, ImplicitALS
from latentrec.models.base import FactorModel, ModelConfig, Recommender, load, model_kinds
from latentrec.models.baselines import EASE, ItemKNN, Popularity
from latentrec.models.biased_mf import BiasedMF
from latentrec.models.bpr import BPR
from latentrec.models.mf import MatrixFactorization

__all__ = [
    "ALS",
    "BPR",
    "EASE",
    "BiasedMF",
    "FactorModel",
    "ImplicitALS",
    "ItemKNN",
    "MatrixFactorization",
    "ModelConfig",
    "Popularity",
    "Recommender",
    "load",
    "model_kinds",
]

"""Models. Every model follows the :class:`Recommender` contract."""

from latentrec.models.base import FactorModel, ModelConfig, Recommender, load, model_kinds
from latentrec.models.biased_mf import BiasedMF
from latentrec.models.mf import MatrixFactorization

__all__ = [
    "BiasedMF",
    "FactorModel",
    "MatrixFactorization",
    "ModelConfig",
    "Recommender",
    "load",
    "model_kinds",
]

"""latentrec: latent-factor recommenders trained in PyTorch.

Public names are imported lazily so that ``import latentrec`` (and the CLI's ``--help``) stays
fast; ``from latentrec import BiasedMF`` works as usual.

Examples
--------
>>> from latentrec import BiasedMF, random_split, evaluate
>>> from latentrec.datasets import synthetic
>>> train, test = random_split(synthetic(300, 200), seed=0)
>>> model = BiasedMF(epochs=5).fit(train, show_progress=False)
>>> float(evaluate(model, test).set_index("metric").loc["rmse", "value"]) < 2.0
True
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("latentrec")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_EXPORTS = {
    "Interactions": "latentrec.data",
    "IdMap": "latentrec.data",
    "read_interactions": "latentrec.data",
    "read_features": "latentrec.data",
    "Split": "latentrec.data",
    "random_split": "latentrec.data",
    "user_holdout": "latentrec.data",
    "leave_last_out": "latentrec.data",
    "temporal_split": "latentrec.data",
    "k_fold": "latentrec.data",
    "Recommender": "latentrec.models",
    "FactorModel": "latentrec.models",
    "MatrixFactorization": "latentrec.models",
    "BiasedMF": "latentrec.models",
    "BayesianMF": "latentrec.models",
    "ALS": "latentrec.models",
    "BPR": "latentrec.models",
    "EASE": "latentrec.models",
    "ItemKNN": "latentrec.models",
    "Popularity": "latentrec.models",
    "ImplicitALS": "latentrec.models",
    "load": "latentrec.models",
    "model_kinds": "latentrec.models",
    "evaluate": "latentrec.evaluation",
    "Trainer": "latentrec.training",
    "EarlyStopping": "latentrec.training",
    "Checkpoint": "latentrec.training",
}

__all__ = [
    "ALS",
    "BPR",
    "EASE",
    "BayesianMF",
    "BiasedMF",
    "Checkpoint",
    "EarlyStopping",
    "FactorModel",
    "IdMap",
    "ImplicitALS",
    "Interactions",
    "ItemKNN",
    "MatrixFactorization",
    "Popularity",
    "Recommender",
    "Split",
    "Trainer",
    "__version__",
    "evaluate",
    "k_fold",
    "leave_last_out",
    "load",
    "model_kinds",
    "random_split",
    "read_features",
    "read_interactions",
    "temporal_split",
    "user_holdout",
]

if TYPE_CHECKING:
    from latentrec.data import (
        IdMap,
        Interactions,
        Split,
        k_fold,
        leave_last_out,
        random_split,
        read_features,
        read_interactions,
        temporal_split,
        user_holdout,
    )
    from latentrec.evaluation import evaluate
    from latentrec.models import (
        ALS,
        BPR,
        EASE,
        BayesianMF,
        BiasedMF,
        FactorModel,
        ImplicitALS,
        ItemKNN,
        MatrixFactorization,
        Popularity,
        Recommender,
        load,
        model_kinds,
    )
    from latentrec.training import Checkpoint, EarlyStopping, Trainer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'latentrec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

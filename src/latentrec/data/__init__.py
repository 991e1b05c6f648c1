"""Interaction data: the container, id maps, readers and splitters; side features."""

from latentrec.data.features import Features, read_features
from latentrec.data.ids import IdMap
from latentrec.data.interactions import Interactions
from latentrec.data.readers import detect_format, read_interactions
from latentrec.data.split import (
    Split,
    k_fold,
    leave_last_out,
    random_split,
    temporal_split,
    user_holdout,
)

__all__ = [
    "Features",
    "IdMap",
    "Interactions",
    "Split",
    "detect_format",
    "k_fold",
    "leave_last_out",
    "random_split",
    "read_features",
    "read_interactions",
    "temporal_split",
    "user_holdout",
]

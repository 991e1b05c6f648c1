"""The training loop shared by every model, its checkpoints and its validation metrics."""

from latentrec.training.checkpoints import Checkpoint
from latentrec.training.trainer import Callback, EarlyStopping, Trainable, Trainer
from latentrec.training.validation import RankingValidator, RatingValidator, Validator

__all__ = [
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "RankingValidator",
    "RatingValidator",
    "Trainable",
    "Trainer",
    "Validator",
]

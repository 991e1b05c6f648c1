"""The training loop shared by every model."""

from latentrec.training.trainer import Callback, EarlyStopping, Trainable, Trainer

__all__ = ["Callback", "EarlyStopping", "Trainable", "Trainer"]

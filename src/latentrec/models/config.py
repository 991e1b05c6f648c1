"""Hyperparameter containers: every model keeps its hyperparameters in a frozen dataclass
(``model.config``) that validates itself when built, so a bad value fails at once."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from latentrec.errors import InvalidParameterError

__all__ = ["EpochConfig", "ModelConfig"]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Base of every model's hyperparameters; subclasses validate in ``__post_init__``."""

    def check_positive(self, *names: str, integer: bool = False) -> None:
        for name in names:
            value = getattr(self, name)
            kind = (int,) if integer else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind):
                raise TypeError(
                    f"{name} must be {'an integer' if integer else 'a number'}, "
                    f"got {type(value).__name__}"
                )
            if not value > 0 or (not integer and not math.isfinite(value)):
                raise InvalidParameterError(f"{name} must be > 0, got {value!r}")

    def check_non_negative(self, *names: str, integer: bool = False) -> None:
        for name in names:
            value = getattr(self, name)
            kind = (int,) if integer else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind):
                raise TypeError(
                    f"{name} must be {'an integer' if integer else 'a number'}, "
                    f"got {type(value).__name__}"
                )
            if not (value >= 0 and math.isfinite(value)):
                raise InvalidParameterError(f"{name} must be >= 0, got {value!r}")

    def check_choice(self, name: str, choices: Sequence[str]) -> None:
        if getattr(self, name) not in choices:
            raise InvalidParameterError(
                f"{name} must be one of {list(choices)}, got {getattr(self, name)!r}"
            )

    def check_flag(self, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False, got {type(value).__name__}")

    def check_seed(self) -> None:
        seed = getattr(self, "seed", None)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise InvalidParameterError(
                f"seed must be a non-negative integer or None, got {seed!r}")


@dataclasses.dataclass(frozen=True)
class EpochConfig(ModelConfig):
    """Hyperparameters of every model that trains in epochs: how many, early stopping's
    patience (with ``fit(..., valid=...)``), and the seed of every random draw."""

    epochs: int = 20
    patience: int | None = None
    seed: int | None = 0

    def __post_init__(self) -> None:
        self.check_positive("epochs", integer=True)
        if self.patience is not None:
            self.check_positive("patience", integer=True)
        self.check_seed()

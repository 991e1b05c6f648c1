"""``load`` and ``model_kinds`` typed for models (the registry itself is in persistence)."""

from __future__ import annotations

import os
from typing import cast

from latentrec import persistence
from latentrec.models.base import Recommender

__all__ = ["load", "model_kinds"]


def load(path: str | os.PathLike[str]) -> Recommender:
    """Load a model saved with :meth:`Recommender.save`. Never executes code from the files.

    Raises :class:`~latentrec.errors.ModelFileError` for a truncated, tampered or
    newer-format directory and ``FileNotFoundError`` when it does not exist.
    """
    return cast(Recommender, persistence.load(path))


def model_kinds() -> dict[str, type[Recommender]]:
    """Registered model kinds (the names in saved files and of ``latentrec train --model``),
    including those other packages add through the ``latentrec.models`` entry points."""
    return persistence.model_kinds()

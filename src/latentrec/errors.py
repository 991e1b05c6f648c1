"""Every exception and warning latentrec raises.

Messages are one line: what went wrong, where, what was expected and what was received.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "ConvergenceWarning",
    "DataError",
    "DataWarning",
    "DistributedError",
    "EvaluationWarning",
    "IndexRecallWarning",
    "InvalidParameterError",
    "LatentrecError",
    "ModelFileError",
    "NotFittedError",
    "PerformanceWarning",
    "TrainingDivergedError",
    "UnknownIdError",
]


class LatentrecError(Exception):
    """Base class of every error latentrec raises on purpose."""


class DataError(LatentrecError, ValueError):
    """Input data is malformed.

    The message starts with the place at fault, e.g. ``ratings.csv:42: column 'rating': ...``.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.source = source
        self.line = line
        self.column = column
        self.reason = message
        where = ""
        if source is not None:
            where = str(source)
            if line is not None:
                where += f":{line}"
            where += ": "
        if column is not None:
            where += f"column {column!r}: "
        super().__init__(where + message)


class UnknownIdError(LatentrecError, KeyError):
    """Raw ids that the model or data set has never seen."""

    def __init__(self, side: str, ids: Sequence[Any], total: int | None = None) -> None:
        self.side = side
        self.ids = list(ids)
        shown = ", ".join(repr(i) for i in self.ids[:5])
        count = total if total is not None else len(self.ids)
        more = f" and {count - 5} more" if count > 5 else ""
        noun = side[:-1] if count == 1 else side
        self.what = f"unknown {noun}: {shown}{more} (not in the training data"
        #: whether the call that raised offers a fallback (``on_unknown="fallback"``)
        self.has_fallback = False
        self.message = f"{self.what})"
        super().__init__(self.message)

    def offer_fallback(self, way_out: str = "pass on_unknown='fallback'") -> UnknownIdError:
        """Name the way out (in the caller's spelling: Python's ``on_unknown='fallback'``, the
        CLI's ``--fallback``, HTTP's own field); only for calls that offer a fallback."""
        self.has_fallback = True
        self.message = self.explain(way_out)
        self.args = (self.message,)
        return self

    def explain(self, way_out: str) -> str:
        """The message with ``way_out`` as the hint."""
        return f"{self.what}; {way_out} to score them with the documented fallback)"

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class InvalidParameterError(LatentrecError, ValueError):
    """A hyperparameter or argument is out of range."""


class NotFittedError(LatentrecError, AttributeError):
    """A model was used before ``fit`` or ``load``."""


class ModelFileError(LatentrecError):
    """A model directory is missing, truncated, tampered with or from a newer format."""


class TrainingDivergedError(LatentrecError):
    """The loss or the factors became NaN or infinite; lower ``lr`` or raise ``reg``."""


class DistributedError(LatentrecError):
    """A distributed run failed: a process died, timed out or could not join the others.

    ``exitcode`` is the failing process's exit status (negative: killed by that signal) and
    ``reported`` whether that process already printed its own one-line error.
    """

    def __init__(self, message: str, *, exitcode: int = 1, reported: bool = False) -> None:
        super().__init__(message)
        self.exitcode = exitcode
        self.reported = reported


class DataWarning(UserWarning):
    """Data is usable but suspicious; the message says how to silence or fix it."""


class ConvergenceWarning(UserWarning):
    """Training stopped before it converged; the message says what to change."""


class EvaluationWarning(UserWarning):
    """An evaluation protocol known to mislead was asked for; the message says what to use."""


class PerformanceWarning(UserWarning):
    """Something will be slow; the message says how to make it fast."""


class IndexRecallWarning(UserWarning):
    """An approximate index misses many of the exact top items; the message says what to do."""

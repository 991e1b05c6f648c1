"""One epoch loop for every model: progress, history, validation, early stopping, divergence
checks, checkpoints and resume.

The trainer sees a model only through :class:`Trainable`. SGD/Adam minibatches, compiled SGD
kernels, ALS alternations and Gibbs sweeps each count as one ``train_epoch`` call, so all of
this is written once. A caller changes how training runs by passing its own :class:`Trainer`
to ``fit(..., trainer=...)`` (callbacks, checkpoints, resume; a distributed trainer subclasses
it).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from latentrec.errors import (
    ConvergenceWarning,
    InvalidParameterError,
    ModelFileError,
    TrainingDivergedError,
)
from latentrec.training.checkpoints import Checkpoint, read_checkpoint, write_checkpoint
from latentrec.training.validation import Validator

__all__ = ["Callback", "EarlyStopping", "Trainable", "Trainer"]

logger = logging.getLogger(__name__)

#: Called after every epoch with ``(epoch, logs)``; returning ``True`` stops training.
Callback = Callable[[int, dict[str, float]], bool | None]


class Trainable(Protocol):
    """What the trainer needs from a model that is being fitted.

    ``state_dict`` must hold everything that the next epochs depend on (parameters, optimizer
    state, random generator states, learning-rate schedule), as nested dicts and lists of
    tensors, numpy arrays and JSON values: restoring it with ``load_state_dict`` and training on
    gives, on the CPU, bit for bit what uninterrupted training gives.
    """

    def train_epoch(self) -> dict[str, float]:
        """Run one epoch; return the training metrics (usually ``{"loss": ...}``)."""
        ...

    def publish(self) -> None:
        """Write the current parameters into the model, so that it can predict."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """A snapshot of the training state (copies, not views)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a snapshot taken by :meth:`state_dict`."""
        ...

    # Optional: ``validate(validator) -> float`` computes the validation metric without
    # publishing (the trainer publishes and calls the validator otherwise).


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when ``monitor`` has not improved for ``patience`` epochs, then restore the best."""

    monitor: str = "valid_rmse"
    mode: Literal["min", "max"] = "min"
    patience: int = 3
    min_delta: float = 0.0
    restore_best: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise InvalidParameterError(f"mode must be 'min' or 'max', got {self.mode!r}")
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or (
                self.patience < 1):
            raise InvalidParameterError(f"patience must be an integer >= 1, got "
                                        f"{self.patience!r}")

    def improved(self, value: float, best: float) -> bool:
        if self.mode == "min":
            return value < best - self.min_delta
        return value > best + self.min_delta


@dataclass
class Trainer:
    """Runs the epochs of a :class:`Trainable` and returns the per-epoch history.

    Parameters
    ----------
    callbacks
        Called after every epoch with ``(epoch, logs)``; one returning ``True`` stops training
        (a tuner's pruning hook, a custom logger).
    show_progress
        Draw a progress bar (only when stderr is a terminal).
    checkpoint
        Save the training state as a :class:`Checkpoint` policy says.
    resume
        A checkpoint directory to continue from; the run must be the same model, configuration
        and data, which is checked.
    early_stopping
        How to stop early: its ``min_delta`` and ``restore_best`` apply, and its ``patience``
        when the model's own ``patience`` is ``None``; the monitored metric is always the
        model's validation metric.

    Examples
    --------
    >>> import tempfile
    >>> from latentrec import BiasedMF
    >>> from latentrec.datasets import synthetic
    >>> from latentrec.training import Checkpoint, Trainer
    >>> folder = tempfile.mkdtemp()
    >>> trainer = Trainer(show_progress=False, checkpoint=Checkpoint(folder, every=2))
    >>> model = BiasedMF(factors=4, epochs=4).fit(synthetic(100, 50), trainer=trainer)
    >>> again = BiasedMF(factors=4, epochs=4).fit(synthetic(100, 50),
    ...                                            trainer=Trainer(resume=folder))
    >>> bool((again.predict([0], [0]) == model.predict([0], [0])).all())
    True
    """

    callbacks: Sequence[Callback] = ()
    show_progress: bool = True
    checkpoint: Checkpoint | None = None
    resume: str | os.PathLike[str] | None = None
    early_stopping: EarlyStopping | None = None
    #: set by ``run``: the epoch training started from (0, or the resumed checkpoint's)
    resumed_from: int = field(default=0, init=False)

    def run(self, trainable: Trainable, *, epochs: int, validator: Validator | None = None,
            patience: int | None = None, description: str = "training",
            identity: dict[str, Any] | None = None) -> list[dict[str, float]]:
        """Train ``trainable`` for ``epochs`` epochs and publish the result.

        ``validator`` adds its metric to every epoch's logs; with ``patience`` it drives early
        stopping (restoring the best epoch). ``identity`` describes the run (model, config,
        data shape) and is stored in checkpoints, so a resume on something else is refused.
        """
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise InvalidParameterError(f"epochs must be an integer >= 1, got {epochs!r}")
        rule = None
        given = self.early_stopping
        if validator is not None and (patience is not None or given is not None):
            rule = EarlyStopping(
                validator.name, validator.mode,
                patience if patience is not None else given.patience,  # type: ignore[union-attr]
                min_delta=0.0 if given is None else given.min_delta,
                restore_best=True if given is None else given.restore_best)
        identity = dict(identity or {})
        history: list[dict[str, float]] = []
        best_value = math.inf if rule is None or rule.mode == "min" else -math.inf
        best_state: dict[str, Any] | None = None
        best_epoch = 0
        start = 0
        if self.resume is not None:
            saved = read_checkpoint(self.resume)
            _check_identity(saved.get("identity"), identity, self.resume)
            try:
                trainable.load_state_dict(saved["trainable"])
            except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as error:
                # written by another engine or version: its state has other parts or shapes
                raise ModelFileError(
                    f"{self.resume}: the checkpoint's training state does not fit "
                    f"{type(trainable).__name__} ({type(error).__name__}: {error}); it was "
                    f"written by another engine or version of latentrec: train without "
                    f"resume") from None
            history = [dict(logs) for logs in saved["history"]]
            start = int(saved["epoch"])
            if start > epochs:
                raise InvalidParameterError(
                    f"{self.resume}: the checkpoint is at epoch {start}, past epochs={epochs}; "
                    f"resume with epochs >= {start}")
            best_value, best_epoch = float(saved["best_value"]), int(saved["best_epoch"])
            best_state = saved.get("best_state")
            logger.info("resuming %s from epoch %d (%s)", description, start, self.resume)
        self.resumed_from = start
        progress = _progress(epochs, start, description, self.show_progress)
        try:
            for epoch in range(start + 1, epochs + 1):
                started = time.perf_counter()
                logs = dict(trainable.train_epoch())
                if validator is not None:
                    logs[validator.name] = _validate(trainable, validator)
                logs = {"epoch": float(epoch), **logs, "seconds": time.perf_counter() - started}
                _check_finite(epoch, logs)
                history.append(logs)
                logger.debug("epoch %d: %s", epoch, logs)
                if progress is not None:
                    progress.set_postfix({k: f"{v:.4g}" for k, v in logs.items()
                                          if k not in ("epoch", "seconds")}, refresh=False)
                    progress.update(1)
                stop = any(bool(callback(epoch, logs)) for callback in self.callbacks)
                if rule is not None:
                    value = logs[rule.monitor]
                    if rule.improved(value, best_value):
                        best_value, best_epoch = value, epoch
                        if rule.restore_best:
                            best_state = trainable.state_dict()
                    elif epoch - best_epoch >= rule.patience:
                        logger.info("early stop at epoch %d; best epoch %d (%s=%.5g)",
                                    epoch, best_epoch, rule.monitor, best_value)
                        stop = True
                if self.checkpoint is not None and (stop or self.checkpoint.due(
                        epoch, epoch == epochs)):
                    self._save(self.checkpoint.directory, {
                        "identity": identity, "epoch": epoch, "history": history,
                        "trainable": trainable.state_dict(), "best_value": best_value,
                        "best_epoch": best_epoch, "best_state": best_state,
                    }, self.checkpoint.keep)
                if stop:
                    break
        finally:
            if progress is not None:
                progress.close()
        if (rule is not None and history and best_epoch == history[-1]["epoch"] == epochs
                and len(history) > 1):
            warnings.warn(
                f"{rule.monitor} was still improving at the last epoch ({epochs}); early "
                f"stopping never triggered, so more epochs would likely help", ConvergenceWarning,
                stacklevel=3)
        if best_state is not None and best_epoch != len(history):
            trainable.load_state_dict(best_state)
        trainable.publish()
        if rule is not None:
            for logs in history:
                logs["best"] = float(logs["epoch"] == best_epoch)
        return history


    def _save(self, directory: str | os.PathLike[str], state: dict[str, Any], keep: int
              ) -> None:
        """Write a checkpoint (a distributed trainer writes it from one rank only)."""
        write_checkpoint(directory, state, keep=keep)


def _validate(trainable: Trainable, validator: Validator) -> float:
    """The validation metric of the current epoch: from the trainable itself when it offers
    ``validate(validator)`` (cheaper than publishing every epoch), else from the published
    model."""
    own = getattr(trainable, "validate", None)
    if own is not None:
        return float(own(validator))
    trainable.publish()
    return validator()


def _check_identity(saved: Any, current: dict[str, Any], where: Any) -> None:
    if saved is None:
        return
    for key in sorted(set(current) | set(saved)):  # a key only one run has differs too
        if _normal(saved.get(key)) != _normal(current.get(key)):
            was, now = saved.get(key), current.get(key)
            if isinstance(was, dict) and isinstance(now, dict):  # name only what differs
                names = sorted(k for k in set(was) | set(now) if _normal(was.get(k))
                               != _normal(now.get(k)))
                change = ", ".join(f"{k} was {was.get(k)!r}, now {now.get(k)!r}"
                                   for k in names[:3])
            else:
                change = f"{key} was {was!r}, now {now!r}"
            raise InvalidParameterError(
                f"{where}: the checkpoint is of another run ({change}); resume with the same "
                f"model, configuration and data")


def _normal(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_normal(v) for v in value]
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return value


def _check_finite(epoch: int, logs: dict[str, float]) -> None:
    for name, value in logs.items():
        if not math.isfinite(value):
            raise TrainingDivergedError(
                f"training diverged at epoch {epoch}: {name} is {value}; lower lr or raise reg"
            )


def _progress(total: int, done: int, description: str, show: bool) -> Any:
    # carriage-return bars only on a terminal: in a log file they are noise
    if not show or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc=description, unit="epoch", leave=False,
                dynamic_ncols=True)

"""Training checkpoints: the full state of a run (parameters, optimizer, random generators,
epoch, history) in safetensors + JSON, written atomically so that a crash leaves the previous
checkpoint or the new one, never neither.

A checkpoint directory holds one sub-directory per kept checkpoint (``epoch-000012/`` with
``state.safetensors`` and ``state.json``) and a ``LATEST`` file naming the newest complete one.
A checkpoint is written under a temporary name and renamed into place, then ``LATEST`` is
replaced; older checkpoints are deleted only after that. Nothing is unpickled on resume.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentrec.errors import InvalidParameterError, ModelFileError
from latentrec.persistence import fsync_dir

__all__ = ["Checkpoint", "read_checkpoint", "write_checkpoint"]

FORMAT = "latentrec-checkpoint"
FORMAT_VERSION = 1
LATEST = "LATEST"
STATE_JSON = "state.json"
STATE_TENSORS = "state.safetensors"


@dataclass(frozen=True)
class Checkpoint:
    """Where and how often :class:`~latentrec.training.Trainer` saves checkpoints.

    Parameters
    ----------
    directory
        Folder of the checkpoints (created when needed).
    every
        Save after every ``every``-th epoch, and after the last one.
    keep
        How many of the newest checkpoints to keep (older ones are deleted).
    """

    directory: str | os.PathLike[str]
    every: int = 1
    keep: int = 1

    def __post_init__(self) -> None:
        for name in ("every", "keep"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidParameterError(f"checkpoint {name} must be an integer >= 1, "
                                            f"got {value!r}")

    def due(self, epoch: int, last: bool) -> bool:
        return last or epoch % self.every == 0


def write_checkpoint(directory: str | os.PathLike[str], state: dict[str, Any], *,
                     keep: int = 1) -> Path:
    """Save ``state`` (nested dicts and lists of tensors, arrays and JSON values) as the newest
    checkpoint in ``directory``; returns the checkpoint's folder."""
    from safetensors.torch import save_file

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    document = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "state": _flatten(state, "", tensors)}
    name = f"epoch-{int(state.get('epoch', 0)):06d}"
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", suffix=".tmp", dir=root))
    try:
        save_file(tensors, str(staging / STATE_TENSORS))
        (staging / STATE_JSON).write_text(json.dumps(document, allow_nan=True), encoding="utf-8")
        for written in (staging / STATE_TENSORS, staging / STATE_JSON):
            _fsync_file(written)  # the data, not just the names, survives a power loss
        fsync_dir(staging)
        final = root / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    pointer = root / f".{LATEST}.tmp"
    pointer.write_text(name + "\n", encoding="utf-8")
    os.replace(pointer, root / LATEST)
    fsync_dir(root)
    kept = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("epoch-"))
    for old in kept[:-keep]:
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    for leftover in root.glob(".epoch-*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)
    return final


def read_checkpoint(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The state saved by the newest complete checkpoint in ``directory``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such checkpoint directory")
    pointer = root / LATEST
    if not pointer.is_file():
        raise ModelFileError(f"{root}: not a checkpoint directory (no {LATEST} file)")
    name = pointer.read_text(encoding="utf-8").strip()
    folder = root / name
    if not name.startswith("epoch-") or "/" in name or not folder.is_dir():
        raise ModelFileError(f"{pointer}: names {name!r}, which is not a checkpoint here")
    try:
        document = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
        tensors = load_file(str(folder / STATE_TENSORS))
    except (OSError, ValueError, SafetensorError) as error:
        raise ModelFileError(f"{folder}: unreadable checkpoint ({error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ModelFileError(f"{folder / STATE_JSON}: not a latentrec checkpoint")
    if document.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{folder / STATE_JSON}: checkpoint format "
                             f"{document.get('format_version')!r}, this latentrec reads "
                             f"{FORMAT_VERSION}")
    try:
        state = _unflatten(document["state"], tensors)
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{folder}: inconsistent checkpoint ({error})") from None
    if not isinstance(state, dict):
        raise ModelFileError(f"{folder}: inconsistent checkpoint (state is not a mapping)")
    return state


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _flatten(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON for ``value`` with every tensor and array moved into ``tensors`` (keyed by path).

    Dicts with non-string keys (optimizer states use integers) and tuples are tagged so that
    they come back as they were.
    """
    if isinstance(value, torch.Tensor):
        tensors[path] = value.detach().to("cpu").clone().contiguous()
        return {"$tensor": path}
    if isinstance(value, np.ndarray):
        tensors[path] = torch.from_numpy(np.ascontiguousarray(value).copy())
        return {"$array": path}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        if all(isinstance(key, str) and not key.startswith("$") for key in value):
            return {key: _flatten(item, f"{path}.{key}", tensors) for key, item in value.items()}
        return {"$items": [[key, _flatten(item, f"{path}.{index}", tensors)]
                           for index, (key, item) in enumerate(value.items())]}
    if isinstance(value, tuple):
        return {"$tuple": [_flatten(item, f"{path}.{i}", tensors) for i, item in
                           enumerate(value)]}
    if isinstance(value, list):
        return [_flatten(item, f"{path}.{i}", tensors) for i, item in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot checkpoint a {type(value).__name__} at {path or 'the top'}")


def _unflatten(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if "$tensor" in value:
            return tensors[value["$tensor"]]
        if "$array" in value:
            return tensors[value["$array"]].numpy()
        if "$items" in value:
            return {key: _unflatten(item, tensors) for key, item in value["$items"]}
        if "$tuple" in value:
            return tuple(_unflatten(item, tensors) for item in value["$tuple"])
        return {key: _unflatten(item, tensors) for key, item in value.items()}
    if isinstance(value, list):
        return [_unflatten(item, tensors) for item in value]
    return value

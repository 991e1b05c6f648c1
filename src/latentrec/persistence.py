"""Model directories and the registry of model kinds. Nothing executes code on load.

A model directory holds ``model.json`` (format and library version, model kind, config, id maps,
metadata, and the SHA-256 of the weights) and ``weights.safetensors``. Loading checks the format
version, the checksum and every tensor's shape before anything is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

import torch

from latentrec.errors import InvalidParameterError, ModelFileError

__all__ = [
    "FORMAT_VERSION",
    "SavedModel",
    "load",
    "model_kinds",
    "read_model_dir",
    "register_kind",
    "write_model_dir",
]

#: entry-point group through which other packages add model kinds (see docs/extending.md)
ENTRY_POINT_GROUP = "latentrec.models"
_KINDS: dict[str, type[Any]] = {}
_ENTRY_POINTS_LOADED = False


class SavedModel(Protocol):
    """What :func:`load` needs from a registered model class."""

    kind: str

    @classmethod
    def upgrade_model_file(cls, meta: dict[str, Any]) -> dict[str, Any]:
        """``meta`` of an older file in today's form (another ``kind`` moves it there)."""
        ...

    @classmethod
    def from_model_files(cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor],
                         where: Path) -> Any:
        """A fitted model from a verified directory's description and tensors."""
        ...


def register_kind(kind: str, cls: type[Any]) -> None:
    """Make ``cls`` (a :class:`SavedModel`) the class that :func:`load` and ``latentrec train
    --model`` use for ``kind``. Models register themselves by defining ``kind`` (see
    ``Recommender``)."""
    if not isinstance(kind, str) or not kind or kind != kind.strip():
        raise InvalidParameterError(f"a model kind must be a non-empty name, got {kind!r}")
    known = _KINDS.get(kind)
    if known is not None and known.__qualname__ != cls.__qualname__:
        raise InvalidParameterError(
            f"model kind {kind!r} is already registered by {known.__module__}."
            f"{known.__qualname__}; choose another kind for {cls.__qualname__}")
    _KINDS[kind] = cls


def model_kinds() -> dict[str, type[Any]]:
    """Registered model kinds: the names in saved files and of ``latentrec train --model``.

    Kinds from other installed packages are found through the ``latentrec.models`` entry-point
    group the first time this is called.
    """
    global _ENTRY_POINTS_LOADED
    if not _ENTRY_POINTS_LOADED:
        from importlib.metadata import entry_points

        _ENTRY_POINTS_LOADED = True
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            entry.load()  # defining the class registers it
    return dict(_KINDS)


def load(path: str | os.PathLike[str]) -> Any:
    """Load a model saved with ``Recommender.save``. Never executes code from the files.

    Raises :class:`~latentrec.errors.ModelFileError` for a truncated, tampered or
    newer-format directory and ``FileNotFoundError`` when it does not exist.
    """
    meta, tensors = read_model_dir(path)
    where = Path(path) / META_FILE
    kinds = model_kinds()
    kind = meta.get("kind")
    if not isinstance(kind, str) or kind not in kinds:
        raise ModelFileError(f"{where}: unknown model kind {kind!r}; known: {sorted(kinds)}")
    meta = kinds[kind].upgrade_model_file(meta)
    if meta.get("kind") not in kinds:
        raise ModelFileError(f"{where}: unknown model kind {meta.get('kind')!r}")
    return kinds[meta["kind"]].from_model_files(meta, tensors, where)

FORMAT_VERSION = 1
META_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("latentrec")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0+unknown"


def write_model_dir(path: str | os.PathLike[str], meta: dict[str, Any],
                    tensors: dict[str, torch.Tensor]) -> Path:
    """Write ``meta`` and ``tensors`` to the directory ``path`` (created if needed).

    Files are written to temporary names and renamed, so a crash never leaves a half-written
    model that looks complete.
    """
    from safetensors.torch import save_file

    directory = Path(path)
    if directory.exists() and not directory.is_dir():
        raise ModelFileError(f"{directory}: exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    contiguous = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".tmp", delete=False) as handle:
        weights_tmp = Path(handle.name)
    save_file(contiguous, str(weights_tmp))
    document = {
        "format": "latentrec-model",
        "format_version": FORMAT_VERSION,
        "library_version": library_version(),
        "weights_sha256": _sha256(weights_tmp),
        "tensors": {name: list(t.shape) for name, t in contiguous.items()},
        **meta,
    }
    meta_tmp = directory / (META_FILE + ".tmp")
    meta_tmp.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(weights_tmp, directory / WEIGHTS_FILE)
    os.replace(meta_tmp, directory / META_FILE)
    return directory


def read_model_dir(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and verify a model directory; raise :class:`ModelFileError` on any problem."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(path)
    if not directory.exists():
        raise FileNotFoundError(f"{directory}: no such model directory")
    meta_path, weights_path = directory / META_FILE, directory / WEIGHTS_FILE
    if not directory.is_dir() or not meta_path.is_file():
        raise ModelFileError(f"{directory}: not a latentrec model directory (no {META_FILE})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelFileError(
            f"{meta_path}: not valid JSON ({error}); the file is damaged") from None
    if not isinstance(meta, dict) or meta.get("format") != "latentrec-model":
        raise ModelFileError(f"{meta_path}: not a latentrec model description")
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise ModelFileError(f"{meta_path}: format_version is missing or not an integer")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{meta_path}: written by latentrec {meta.get('library_version', '?')} in model "
            f"format {version}; this latentrec reads format {FORMAT_VERSION} and older - upgrade "
            f"latentrec to load it"
        )
    if not weights_path.is_file():
        raise ModelFileError(f"{directory}: {WEIGHTS_FILE} is missing")
    if _sha256(weights_path) != meta.get("weights_sha256"):
        raise ModelFileError(
            f"{weights_path}: checksum does not match {META_FILE}; the file is truncated or was "
            f"modified"
        )
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelFileError(f"{weights_path}: unreadable safetensors file ({error})") from None
    shapes = meta.get("tensors")
    if not isinstance(shapes, dict) or set(shapes) != set(tensors):
        raise ModelFileError(f"{meta_path}: the tensor list does not match {WEIGHTS_FILE}")
    for name, tensor in tensors.items():
        if list(tensor.shape) != shapes[name]:
            raise ModelFileError(
                f"{weights_path}: tensor {name!r} has shape {list(tensor.shape)}, "
                f"{META_FILE} says {shapes[name]}"
            )
    return meta, tensors

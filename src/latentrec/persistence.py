"""Model directories: weights in safetensors, everything else in JSON. Nothing executes code.

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
from typing import Any

import torch

from latentrec.errors import ModelFileError

__all__ = ["FORMAT_VERSION", "read_model_dir", "write_model_dir"]

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

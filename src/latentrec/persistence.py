"""Model directories and the registry of model kinds. Nothing executes code on load.

A model directory holds ``model.json`` (format and library version, model kind, config, id maps,
metadata), ``weights.safetensors`` and ``manifest.json``, which records the size and SHA-256 of
both and, with a checksum of its own, of itself: editing, truncating or removing any of the
three files is detected. Loading checks the manifest, the format version, every tensor's shape
and that every number is finite before anything is used; format-1 directories (no manifest,
the weights' checksum in ``model.json``) still load.

A save writes a new directory next to the target and renames it into place, so a crash at any
moment leaves the previous model or the new one. What a killed save leaves behind (hidden
``.NAME.tmp-*`` and ``.NAME.old-*`` siblings) is put right by the next save or load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from latentrec.errors import InvalidParameterError, ModelFileError

__all__ = [
    "FORMAT_VERSION",
    "SavedModel",
    "check_writable",
    "load",
    "model_kinds",
    "read_model_dir",
    "register_kind",
    "write_model_dir",
]

logger = logging.getLogger(__name__)

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
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__,
                                                                      cls.__qualname__):
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
            try:
                cls = entry.load()  # defining the class registers it
            except Exception as error:  # a broken plugin must not break every other model
                warnings.warn(f"model kind {entry.name!r} from {entry.value} could not be "
                              f"loaded ({type(error).__name__}: {error}); it is left out",
                              RuntimeWarning, stacklevel=2)
                continue
            if getattr(cls, "kind", None) != entry.name:
                warnings.warn(f"entry point {entry.name!r} names {entry.value}, whose kind is "
                              f"{getattr(cls, 'kind', None)!r}; registered by its kind",
                              RuntimeWarning, stacklevel=2)
    return dict(_KINDS)


def load(path: str | os.PathLike[str]) -> Any:
    """Load a model saved with ``Recommender.save``. Never executes code from the files.

    Raises :class:`~latentrec.errors.ModelFileError` (one line, naming the file) for a
    truncated, tampered, inconsistent or newer-format directory and ``FileNotFoundError`` when
    it does not exist.
    """
    meta, tensors = read_model_dir(path)
    where = Path(path) / META_FILE
    kinds = model_kinds()
    kind = meta.get("kind")
    if not isinstance(kind, str) or kind not in kinds:
        raise ModelFileError(f"{where}: unknown model kind {kind!r}; known: {sorted(kinds)}")
    try:
        meta = kinds[kind].upgrade_model_file(meta)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        raise ModelFileError(f"{where}: inconsistent model description ({error})") from None
    upgraded = meta.get("kind") if isinstance(meta, dict) else None
    if not isinstance(upgraded, str) or upgraded not in kinds:
        raise ModelFileError(f"{where}: unknown model kind {upgraded!r}")
    return kinds[upgraded].from_model_files(meta, tensors, where)


FORMAT_VERSION = 2
#: the oldest format this latentrec reads (format 1: no manifest)
OLDEST_FORMAT_VERSION = 1
META_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "manifest.json"
#: the deepest nesting of lists and objects a model description may have
MAX_JSON_DEPTH = 32
#: how long a load waits for a save in progress that has moved the old model aside
_SWAP_WAIT_S = 2.0
#: the largest float32: model values and fold-in weights must fit in it
FLOAT32_MAX = float(np.finfo(np.float32).max)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _canonical_sha256(document: dict[str, Any]) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def library_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("latentrec")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0+unknown"


# ---------------------------------------------------------------------- saving
def _absolute(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute, a symbolic link at its end followed (the save replaces what the
    link points to, not the link)."""
    target = Path(os.path.abspath(path))
    if target.is_symlink():
        target = Path(os.path.realpath(target))
    return target


def _replaceable(name: str) -> bool:
    """Whether a save may replace a file of this name in an existing directory: the model's
    own files, and what a killed format-1 save left (``*.tmp``)."""
    return name in (META_FILE, WEIGHTS_FILE, MANIFEST_FILE) or name.endswith(".tmp")


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Raise :class:`~latentrec.errors.ModelFileError` (one line, naming ``path``) unless a model
    can be saved to the directory ``path``; write nothing.

    ``path`` may be missing (it is created, with its parents), an empty directory or a model
    directory (it is replaced). A file, a path under a file, a directory holding other files,
    and a read-only location are refused. Call it before a long training run to find out up
    front; ``Recommender.save`` calls it too. Returns the absolute path that would be written.
    """
    given = Path(path)
    target = _absolute(path)
    if not target.name:
        raise ModelFileError(f"{given}: cannot save a model as the root directory")
    if target.exists():
        if not target.is_dir():
            raise ModelFileError(f"{given}: exists and is not a directory; a model is saved as a "
                                 f"directory")
        try:
            foreign = sorted(entry.name for entry in os.scandir(target)
                             if not _replaceable(entry.name))
        except OSError as error:
            raise ModelFileError(f"{given}: cannot read the directory "
                                 f"({error.strerror or error})") from None
        if foreign:
            raise ModelFileError(
                f"{given}: holds {foreign[0]!r}, which is not part of a latentrec model; a save "
                f"replaces the whole directory, so choose a new or empty one")
        if not os.access(target, os.W_OK | os.X_OK):
            raise ModelFileError(f"{given}: the directory is read-only")
        if os.path.ismount(target):
            raise ModelFileError(f"{given}: is a mount point, which a save cannot replace; save "
                                 f"to a directory inside it")
        where = target.parent
    else:
        where = target.parent
        while not where.exists() and where != where.parent:
            where = where.parent
        if not where.is_dir():
            raise ModelFileError(f"{given}: cannot create it, {where} is a file and not a "
                                 f"directory")
    if not os.access(where, os.W_OK | os.X_OK):
        why = "; a save replaces the directory as a whole" if target.exists() else ""
        raise ModelFileError(f"{given}: cannot write in {where} (read-only or permission "
                             f"denied){why}")
    return target


def write_model_dir(path: str | os.PathLike[str], meta: dict[str, Any],
                    tensors: dict[str, torch.Tensor]) -> Path:
    """Save ``meta`` and ``tensors`` as the model directory ``path`` (created with its parents,
    or replaced when it holds a model).

    The files are written to a new directory next to ``path``, flushed to disk and renamed into
    place (the old model is renamed aside first and removed last), so a crash at any moment
    leaves the old model or the new one; the next save or load puts a half-done swap right.
    Any failure raises :class:`~latentrec.errors.ModelFileError` (one line, naming ``path``)
    with the old model unchanged.
    """
    from safetensors import SafetensorError

    given = Path(path)
    target = check_writable(path)
    contiguous = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    document = {
        "format": "latentrec-model",
        "format_version": FORMAT_VERSION,
        "library_version": library_version(),
        "tensors": {name: list(t.shape) for name, t in contiguous.items()},
        **meta,
    }
    try:
        text = json.dumps(document, indent=1, allow_nan=False) + "\n"
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{given}: cannot save the model description ({error}); nothing "
                             f"was written") from None
    parent, prefix = target.parent, _prefix(target.name)
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    staging, aside = parent / f"{prefix}.tmp-{token}", parent / f"{prefix}.old-{token}"
    replacing = moved_aside = committed = False
    try:
        _recover(target)
        parent.mkdir(parents=True, exist_ok=True)
        replacing = os.path.lexists(target)
        os.mkdir(staging)
        _write_weights(staging / WEIGHTS_FILE, contiguous)
        _write_text(staging / META_FILE, text)
        _write_text(staging / MANIFEST_FILE, _manifest_text(staging))
        fsync_dir(staging)
        if replacing:
            os.rename(target, aside)
            moved_aside = True
        os.rename(staging, target)
        committed = True
    except BaseException as error:
        if moved_aside and not committed:
            with contextlib.suppress(OSError):
                os.rename(aside, target)  # the old model back in its place
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, (OSError, SafetensorError)):
            reason = (error.strerror if isinstance(error, OSError) and error.strerror
                      else str(error).splitlines()[0] if str(error) else type(error).__name__)
            kept = ("the model saved there before is unchanged" if replacing
                    else "nothing was saved")
            raise ModelFileError(f"{given}: could not save the model ({reason}); {kept}"
                                 ) from None
        raise
    with contextlib.suppress(OSError):
        fsync_dir(parent)
    if moved_aside:
        shutil.rmtree(aside, ignore_errors=True)
    return given


def _write_weights(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(path))
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (renames) to disk; a no-op where directories cannot be
    opened."""
    if os.name != "posix":
        return  # directories cannot be opened for fsync there
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _manifest_text(directory: Path) -> str:
    files = {name: {"bytes": (directory / name).stat().st_size,
                    "sha256": file_sha256(directory / name)}
             for name in (META_FILE, WEIGHTS_FILE)}
    manifest: dict[str, Any] = {"format": "latentrec-manifest",
                                "format_version": FORMAT_VERSION,
                                "library_version": library_version(), "files": files}
    manifest["manifest_sha256"] = _canonical_sha256(manifest)
    return json.dumps(manifest, indent=1) + "\n"


# ---------------------------------------------------------------------- leftovers of a crash
def _prefix(name: str) -> str:
    """The start of the hidden names of a save's new and old directories next to ``name``."""
    if len(name) <= 200:
        return f".{name}"
    return f".{name[:180]}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def _owner_gone(pid: int, path: Path) -> bool:
    """Whether the save that made ``path`` (process ``pid``) is over (finished or killed)."""
    if pid == os.getpid():
        return False  # perhaps another thread's save
    if os.name == "posix":
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False  # exists, another user's
        return False
    try:  # no safe liveness test elsewhere: a leftover untouched for an hour is stale
        return time.time() - path.stat().st_mtime > 3600
    except OSError:
        return False


def _leftovers(target: Path) -> list[tuple[str, int, Path]]:
    """(``"tmp"`` or ``"old"``, pid, path) of the directories saves left next to ``target``."""
    pattern = re.compile(re.escape(_prefix(target.name)) + r"\.(tmp|old)-(\d+)-[0-9a-f]+")
    try:
        with os.scandir(target.parent) as entries:
            names = [entry.name for entry in entries if pattern.fullmatch(entry.name)]
    except OSError:
        return []
    found = []
    for name in names:
        match = pattern.fullmatch(name)
        if match:
            found.append((match.group(1), int(match.group(2)), target.parent / name))
    return found


def _recover(target: Path) -> None:
    """Put right what killed saves left next to ``target``: a model moved aside and never
    replaced goes back into place (once no save is in progress); other leftovers are removed.
    Never raises: a load from a read-only location leaves things as they are."""
    leftovers = _leftovers(target)
    if not leftovers:
        return
    if not os.path.lexists(target):
        deadline = time.monotonic() + _SWAP_WAIT_S
        while (not os.path.lexists(target) and time.monotonic() < deadline and any(
                kind == "old" and not _owner_gone(pid, path) for kind, pid, path in leftovers)):
            time.sleep(0.02)  # a save is between its two renames: the new model comes next
        asides = [path for kind, pid, path in leftovers
                  if kind == "old" and _owner_gone(pid, path) and path.is_dir()]
        with contextlib.suppress(OSError):  # another process may be recovering too
            if asides and not os.path.lexists(target):
                newest = max(asides, key=lambda aside: aside.stat().st_mtime)
                os.rename(newest, target)
                logger.warning("%s: restored the model that a killed save had moved aside",
                               target)
    for _, pid, path in leftovers:
        if os.path.lexists(path) and _owner_gone(pid, path):
            shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------- loading
def read_model_dir(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and verify a model directory; raise :class:`ModelFileError` on any problem and
    ``FileNotFoundError`` when there is none.

    A directory that a concurrent save replaces while it is being read is read again.
    """
    directory = Path(path)
    with contextlib.suppress(OSError):
        _recover(_absolute(path))
    for attempt in range(3):
        before = _identity(directory)
        try:
            return _read_verified(directory)
        except (ModelFileError, FileNotFoundError):
            if attempt == 2 or _identity(directory) == before:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _identity(directory: Path) -> tuple[int, int] | None:
    try:
        status = os.stat(directory)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _read_verified(directory: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    if not directory.exists():
        raise FileNotFoundError(f"{directory}: no such model directory")
    meta_path, weights_path = directory / META_FILE, directory / WEIGHTS_FILE
    manifest_path = directory / MANIFEST_FILE
    if not directory.is_dir() or not (meta_path.is_file() or manifest_path.is_file()):
        raise ModelFileError(f"{directory}: not a latentrec model directory (no {META_FILE})")
    if os.path.lexists(manifest_path):
        version = _verify_manifest(directory)
        meta = _read_json(meta_path, "model description")
        if _document_version(meta, meta_path) != version:
            raise ModelFileError(f"{meta_path}: format_version differs from {MANIFEST_FILE}'s; "
                                 f"the directory was modified")
    else:
        meta = _read_json(meta_path, "model description")
        version = _document_version(meta, meta_path)
        if version >= 2:
            raise ModelFileError(f"{directory}: {MANIFEST_FILE} is missing; the directory is "
                                 f"incomplete or was modified")
        if not weights_path.is_file():  # format 1: the weights' checksum is in model.json
            raise ModelFileError(f"{directory}: {WEIGHTS_FILE} is missing")
        if file_sha256(weights_path) != meta.get("weights_sha256"):
            raise ModelFileError(f"{weights_path}: checksum does not match {META_FILE}; the file "
                                 f"is truncated or was modified")
    tensors = _read_weights(weights_path)
    _check_tensors(meta, tensors, meta_path, weights_path)
    return meta, tensors


def _newer_format(path: Path, document: dict[str, Any], version: int) -> ModelFileError:
    return ModelFileError(
        f"{path}: written by latentrec {document.get('library_version', '?')} in model format "
        f"{version}; this latentrec reads format {FORMAT_VERSION} and older - upgrade latentrec "
        f"to load it")


def _format_version(document: dict[str, Any], path: Path) -> int:
    version = document.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelFileError(f"{path}: format_version is missing or not an integer")
    if version > FORMAT_VERSION:
        raise _newer_format(path, document, version)
    if version < OLDEST_FORMAT_VERSION:
        raise ModelFileError(f"{path}: format_version {version} is not a model format")
    return version


def _verify_manifest(directory: Path) -> int:
    """Check the manifest's own checksum, then every file against it; the format version."""
    path = directory / MANIFEST_FILE
    manifest = _read_json(path, "manifest")
    if manifest.get("format") != "latentrec-manifest":
        raise ModelFileError(f"{path}: not a latentrec manifest; the file is damaged")
    version = _format_version(manifest, path)
    body = {key: value for key, value in manifest.items() if key != "manifest_sha256"}
    if manifest.get("manifest_sha256") != _canonical_sha256(body):
        raise ModelFileError(f"{path}: its checksum does not match its contents; the file is "
                             f"truncated or was modified")
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != {META_FILE, WEIGHTS_FILE}:
        raise ModelFileError(f"{path}: must list exactly {META_FILE} and {WEIGHTS_FILE}")
    for name in (META_FILE, WEIGHTS_FILE):
        entry, file = files[name], directory / name
        if not isinstance(entry, dict):
            raise ModelFileError(f"{path}: the entry of {name} is not an object")
        if not file.is_file():
            raise ModelFileError(f"{directory}: {name} is missing")
        if file.stat().st_size != entry.get("bytes") or file_sha256(file) != entry.get("sha256"):
            raise ModelFileError(f"{file}: checksum does not match {MANIFEST_FILE}; the file is "
                                 f"truncated or was modified")
    return version


def _document_version(meta: dict[str, Any], path: Path) -> int:
    if meta.get("format") != "latentrec-model":
        raise ModelFileError(f"{path}: not a latentrec model description")
    return _format_version(meta, path)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``: no NaN or Infinity, nested at most ``MAX_JSON_DEPTH``."""
    if not path.is_file():
        raise ModelFileError(f"{path}: not a regular file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ModelFileError(f"{path}: not valid JSON (not UTF-8 text); the file is damaged"
                             ) from None
    except OSError as error:
        raise ModelFileError(f"{path}: cannot read it ({error.strerror or error})") from None
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ModelFileError(f"{path}: not a {what}: nested more than {MAX_JSON_DEPTH} levels "
                             f"deep") from None
    except ValueError as error:  # JSONDecodeError too
        raise ModelFileError(f"{path}: not valid JSON ({error}); the file is damaged") from None
    if not isinstance(document, dict):
        raise ModelFileError(f"{path}: not a latentrec {what} (not a JSON object)")
    if _too_deep(document, MAX_JSON_DEPTH):
        raise ModelFileError(f"{path}: not a {what}: nested more than {MAX_JSON_DEPTH} levels "
                             f"deep")
    return document


def _too_deep(document: Any, limit: int) -> bool:
    """Whether lists and objects nest deeper than ``limit`` (iteratively: no recursion)."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list)))
    return False


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ModelFileError(f"{path}: unreadable safetensors file ({error})") from None


def _check_tensors(meta: dict[str, Any], tensors: dict[str, torch.Tensor], meta_path: Path,
                   weights_path: Path) -> None:
    shapes = meta.get("tensors")
    if not isinstance(shapes, dict) or set(shapes) != set(tensors):
        raise ModelFileError(f"{meta_path}: the tensor list does not match {WEIGHTS_FILE}")
    for name, tensor in tensors.items():
        if list(tensor.shape) != shapes[name]:
            raise ModelFileError(
                f"{weights_path}: tensor {name!r} has shape {list(tensor.shape)}, "
                f"{META_FILE} says {shapes[name]}")
        if tensor.is_floating_point() and not _all_finite(tensor):
            raise ModelFileError(f"{weights_path}: tensor {name!r} holds NaN or infinite "
                                 f"values")


def _all_finite(tensor: torch.Tensor) -> bool:
    flat = tensor.reshape(-1)
    step = 1 << 24
    return all(bool(torch.isfinite(flat[start:start + step]).all())
               for start in range(0, len(flat), step))


def finite_number(value: Any, name: str, *, float32: bool = True) -> float:
    """``value`` as a float if it is a finite number (within float32's range, which scores are
    computed in); :class:`~latentrec.errors.ModelFileError` otherwise. For model descriptions."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelFileError(f"{name} is {value!r}; expected a number")
    number = float(value)
    if not math.isfinite(number) or (float32 and abs(number) > FLOAT32_MAX):
        raise ModelFileError(f"{name} is {value!r}; expected a finite number"
                             + (" within float32's range" if float32 else ""))
    return number

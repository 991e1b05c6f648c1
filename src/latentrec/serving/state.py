"""Which model a service serves: loading and checking it, its identity, and how the worker
processes of one service agree on it.

A served model is identified by the SHA-256 of its ``model.json`` (shown shortened) and by a
version that grows with every reload the workers are asked to load. A model is served only if
it loads and every number in it is finite: anything else is refused before it is used.

Workers share a state folder (``latentrec serve`` makes one per service and removes it on exit):

- ``current-model.json`` names the committed model (version, directory, SHA-256), the
  model a reload proposes (``pending``) and the last version handed out;
- ``workers/<worker>.json`` is each worker's own report: its pid, the version and SHA-256 it
  serves, the proposal it last tried to load and whether that failed;
- ``reload.lock`` serialises reloads.

A reload runs in two phases, so that no client ever sees a model that not every worker could
load. The worker that receives ``POST /admin/reload`` loads and checks the model, then
proposes it; every worker loads the proposed model next to the one it serves and reports.
When every worker has loaded it, the proposal is committed and every worker switches (an
in-memory swap); if one fails, or not all answer within the reload timeout, the proposal is
withdrawn and nobody switches. A worker that starts later (uvicorn restarts a killed worker)
loads the committed model, never the one the service started with; if that fails it serves
503 rather than another model, until a reload succeeds.

A change to the served model (``POST /admin/items`` adds items to the catalogue) is a reload
too: under the reload lock, the committed model is read again from its directory, changed, and
saved as a new directory next to it (``NAME+items-TIMESTAMP``; the served directory is never
written), which is then proposed and committed as above. So every worker serves the changed
model, or none does (and the new directory is removed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from latentrec.errors import InvalidParameterError, LatentrecError, ModelFileError
from latentrec.models import Recommender, load
from latentrec.persistence import META_FILE, file_sha256

__all__ = ["Loaded", "ModelService", "ModelUnavailableError", "ReloadError", "SharedState",
           "check_values", "read_model"]

#: hex digits of the SHA-256 shown as a model's identity
SHORT_SHA = 12
#: how often a worker looks at the state folder for reloads done through another worker
POLL_SECONDS = 0.25
#: how long a reload waits for every worker to load (then to switch to) the new model
RELOAD_TIMEOUT = 60.0

# the server's log: uvicorn configures this logger in every worker
_log = logging.getLogger("uvicorn.error")
_instances = itertools.count(1)


class ReloadError(LatentrecError):
    """A reload that was refused (409) or not confirmed by every worker (503)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class ModelUnavailableError(LatentrecError):
    """This worker serves no model: it could not load the service's committed model."""


@dataclass(frozen=True)
class Loaded:
    """A model being served and its identity."""

    model: Recommender
    model_dir: str | None
    #: SHA-256 of model.json's bytes (``None`` for a model given in memory)
    sha256: str | None
    version: int
    loaded_at: str

    @property
    def short_sha(self) -> str | None:
        return None if self.sha256 is None else self.sha256[:SHORT_SHA]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _digest(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None


def read_model(directory: str | os.PathLike[str], *,
               expected_sha256: str | None = None) -> tuple[Recommender, str]:
    """The model in ``directory``, checked (:func:`check_values`), and the SHA-256 of its
    ``model.json``.

    Raises :class:`~latentrec.errors.ModelFileError` (also for a description nested too deeply
    to parse, and when the directory changes while it is read) or ``FileNotFoundError``.
    With ``expected_sha256``, a ``model.json`` with other bytes is refused.
    """
    meta = Path(directory) / META_FILE
    before = _digest(meta)
    try:
        model = load(directory)
    except RecursionError:
        raise ModelFileError(f"{meta}: nested too deeply to be a model description") from None
    after = _digest(meta)
    if after is None or before != after:
        raise ModelFileError(f"{directory}: changed while it was being loaded; try again")
    if expected_sha256 is not None and after != expected_sha256:
        raise ModelFileError(
            f"{meta}: is not the model the service serves (sha256 {after[:SHORT_SHA]}, "
            f"expected {expected_sha256[:SHORT_SHA]}); the directory changed after it was loaded")
    check_values(model, str(meta))
    return model, after


def check_values(model: Recommender, where: str) -> None:
    """Raise :class:`~latentrec.errors.ModelFileError` unless every number of the fitted
    ``model`` (its public attributes and config; not the training history) is finite and its
    rating range is ordered.

    Such a model would answer NaN or infinity, which JSON cannot carry.
    """
    for name, value in vars(model).items():
        if name.startswith("_") or name == "history_":
            continue
        if _has_non_finite(value):
            raise ModelFileError(f"{where}: {name.rstrip('_')} holds non-finite values (NaN or "
                                 f"infinity); this model cannot be served")
    rating_range = getattr(model, "rating_range_", None)
    if rating_range is not None and not rating_range[0] <= rating_range[1]:
        raise ModelFileError(f"{where}: rating range {list(rating_range)} is not ordered")


def _has_non_finite(value: Any, depth: int = 0) -> bool:
    if depth > 20:
        return False
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided:
            value = value.coalesce().values() if value.is_sparse else value.values()
        if value.is_floating_point() or value.is_complex():
            return not bool(torch.isfinite(value).all())
        return False
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "fc" and not bool(np.isfinite(value).all())
    if sp.issparse(value):
        return _has_non_finite(np.asarray(getattr(value, "data", [])), depth + 1)
    if isinstance(value, (float, np.floating)):
        return not math.isfinite(float(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(_has_non_finite(getattr(value, f.name), depth + 1)
                   for f in dataclasses.fields(value))
    if isinstance(value, (list, tuple)):
        return any(_has_non_finite(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return any(_has_non_finite(item, depth + 1) for item in value.values())
    return False


def _alive(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill(pid, 0) would send CTRL_C_EVENT there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed worker that its parent has not reaped yet is a zombie: dead
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class SharedState:
    """The state folder of one service (see the module's description)."""

    SYNC_FILE = "current-model.json"

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.sync_path = self.folder / self.SYNC_FILE
        self.workers_dir = self.folder / "workers"
        self.workers_dir.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the service's reload lock (across processes and threads)."""
        with open(self.folder / "reload.lock", "a+b") as handle:
            if sys.platform != "win32":
                import fcntl

                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield

    def read(self) -> dict[str, Any] | None:
        """The sync document, or ``None`` when there is none (or it cannot be read)."""
        try:
            document = json.loads(self.sync_path.read_text(encoding="utf-8"))
            committed, pending = document["committed"], document.get("pending")
            for entry in (committed,) if pending is None else (committed, pending):
                if not (isinstance(entry["version"], int) and isinstance(entry["model_dir"], str)
                        and isinstance(entry["sha256"], str)):
                    return None
            if not isinstance(document["last_version"], int):
                return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return dict(document)

    def write(self, document: dict[str, Any]) -> None:
        _write_atomically(self.sync_path, document)

    def initialise(self, model_dir: str, sha256: str) -> dict[str, Any]:
        """Commit ``model_dir`` as version 1 unless a model is committed already; the document."""
        with self.exclusive():
            document = self.read()
            if document is None:
                entry = {"version": 1, "model_dir": model_dir, "sha256": sha256}
                document = {"committed": entry, "pending": None, "last_version": 1}
                self.write(document)
            return document

    def publish(self, worker: str, status: dict[str, Any]) -> None:
        _write_atomically(self.workers_dir / f"{worker}.json", status)

    def withdraw(self, worker: str) -> None:
        with contextlib.suppress(OSError):
            (self.workers_dir / f"{worker}.json").unlink()

    def workers(self) -> list[dict[str, Any]]:
        """The reports of the workers that are alive (reports of dead ones are removed)."""
        reports = []
        for path in sorted(self.workers_dir.glob("*.json")):
            try:
                report = json.loads(path.read_text(encoding="utf-8"))
                pid = int(report["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if _alive(pid):
                reports.append(report)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
        return reports


def _sibling(model_dir: Path, label: str) -> Path:
    """A new directory name next to ``model_dir``: ``NAME+LABEL-TIMESTAMP`` (UTC), where
    ``NAME`` loses what an earlier change added, so that names do not grow."""
    stem = re.sub(r"\+[a-z]+-\d{8}T\d{6}Z(-\d+)?$", "", model_dir.name) or "model"
    base = f"{stem}+{label}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    for count in itertools.count(1):
        target = model_dir.parent / (base if count == 1 else f"{base}-{count}")
        if not target.exists():
            return target
    raise AssertionError("unreachable")


def _write_atomically(path: Path, document: dict[str, Any]) -> None:
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent,
                                     prefix=f".{path.name}.", suffix=".tmp",
                                     delete=False) as handle:
        json.dump(document, handle)
    os.replace(handle.name, path)  # atomic: readers never see half a file


class ModelService:
    """The model one worker serves, its reloads and, with a state folder, its agreement with
    the other workers of the service.

    ``prepare`` is applied to every model before it is served (e.g. building an ANN index).
    """

    def __init__(self, *, prepare: Callable[[Recommender], Recommender],
                 model_dir: str | os.PathLike[str] | None = None,
                 model: Recommender | None = None,
                 state_dir: str | os.PathLike[str] | None = None, workers: int = 1,
                 reload_timeout: float = RELOAD_TIMEOUT) -> None:
        if (model_dir is None) == (model is None):
            raise InvalidParameterError("give exactly one of model_dir and model")
        if workers < 1:
            raise InvalidParameterError(f"workers must be at least 1, got {workers}")
        self.prepare = prepare
        self.pid = os.getpid()
        self.worker = f"{self.pid}-{next(_instances)}"
        self.expected_workers = workers
        self.reload_timeout = reload_timeout
        self.events: dict[str, int] = defaultdict(int)
        self._lock = threading.RLock()  # this worker's state; the reload lock spans workers
        self._local_reload = threading.Lock()
        self.current: Loaded | None = None
        self.problem: str | None = None
        self._staged: Loaded | None = None
        self._prepared = 0  # the last proposal this worker tried to load
        self._prepare_error: str | None = None
        self._seen = 0  # the last committed version this worker acted on
        self.shared = None if state_dir is None else SharedState(state_dir)
        if self.shared is None:
            if model is None:
                assert model_dir is not None
                model, sha = read_model(model_dir)
                directory = str(model_dir)
            else:
                check_values(model, "the model")
                sha, directory = None, None
            self.current = Loaded(prepare(model), directory, sha, 1, _now())
            self._seen = 1
            return
        if model is not None:
            raise InvalidParameterError("a service with a state folder serves model directories, "
                                        "not models in memory")
        assert model_dir is not None
        document = self.shared.read()
        if document is None:  # the first worker of a service started without `latentrec serve`
            fresh, sha = read_model(model_dir)
            directory = str(Path(model_dir).resolve())
            document = self.shared.initialise(directory, sha)
            if document["committed"]["sha256"] == sha:
                self.current = Loaded(prepare(fresh), directory, sha,
                                      int(document["committed"]["version"]), _now())
        with self._lock:
            self._adopt(document["committed"])
            self._report()

    # ------------------------------------------------------------------ serving
    def loaded(self) -> Loaded:
        """The model to answer a request with (taken once per request)."""
        current = self.current
        if current is None:
            raise ModelUnavailableError(self.problem or "no model is loaded")
        return current

    def workers(self) -> list[dict[str, Any]]:
        """Every live worker of the service: pid and the identity of the model it serves."""
        if self.shared is None:
            current = self.current
            return [{"pid": self.pid, "version": None if current is None else current.version,
                     "sha256": None if current is None else current.short_sha}]
        reports = self.shared.workers()
        return sorted(({"pid": int(r["pid"]), "version": r.get("version"),
                        "sha256": (r.get("sha256") or "")[:SHORT_SHA] or None}
                       for r in reports), key=lambda w: (w["pid"], str(w["version"])))

    # ------------------------------------------------------------------ following
    def follow(self) -> None:
        """Act on the state folder once: load a proposed model, switch to a committed one."""
        if self.shared is None:
            return
        # read under the lock: a reload through this worker writes the document under it too,
        # so what is read here is never older than this worker's own state
        with self._lock:
            document = self.shared.read()
            if document is None:
                return
            committed, pending = document["committed"], document.get("pending")
            changed = False
            if int(committed["version"]) > self._seen:  # versions only grow
                self._adopt(committed)
                self.events["followed"] += 1
                changed = True
            if pending is not None and int(pending["version"]) > self._prepared:
                self._prepare(pending)
                changed = True
            elif (pending is None and self._staged is not None
                  and self._staged.version <= int(document["last_version"])):
                self._staged = None  # the proposal was withdrawn
                changed = True
            if changed:
                self._report()

    def run_follower(self, stop: threading.Event, interval: float = POLL_SECONDS) -> None:
        """Call :meth:`follow` every ``interval`` seconds until ``stop`` is set."""
        while not stop.wait(interval):
            try:
                self.follow()
            except Exception as error:  # the follower must outlive any surprise
                _log.error("latentrec: following the service's model failed: %s", error)

    def close(self) -> None:
        if self.shared is not None:
            self.shared.withdraw(self.worker)

    def _adopt(self, entry: dict[str, Any]) -> None:
        """Serve the committed model ``entry`` (in memory when possible)."""
        version, sha, directory = int(entry["version"]), str(entry["sha256"]), str(
            entry["model_dir"])
        self._seen = version
        staged, current = self._staged, self.current
        if staged is not None and staged.version == version and staged.sha256 == sha:
            self.current, self._staged = staged, None
        elif current is not None and current.sha256 == sha:
            self.current = dataclasses.replace(current, version=version)
        else:
            try:
                model, _ = read_model(directory, expected_sha256=sha)
                self.current = Loaded(self.prepare(model), directory, sha, version, _now())
            except (LatentrecError, OSError) as error:
                self.current = None
                self.problem = (f"this worker could not load the service's model (version "
                                f"{version}, {directory}): {error}")
                _log.error("latentrec: %s", self.problem)
                return
        self.problem = None

    def _prepare(self, entry: dict[str, Any]) -> None:
        """Load the proposed model ``entry`` next to the one being served."""
        version = int(entry["version"])
        self._prepared, self._staged, self._prepare_error = version, None, None
        try:
            model, _ = read_model(str(entry["model_dir"]), expected_sha256=str(entry["sha256"]))
            self._staged = Loaded(self.prepare(model), str(entry["model_dir"]),
                                  str(entry["sha256"]), version, _now())
        except (LatentrecError, OSError) as error:
            self._prepare_error = str(error).splitlines()[0] if str(error) else type(
                error).__name__
            _log.error("latentrec: could not load the proposed model: %s", self._prepare_error)

    def _report(self) -> None:
        if self.shared is None:
            return
        current = self.current
        self.shared.publish(self.worker, {
            "worker": self.worker, "pid": self.pid,
            "version": None if current is None else current.version,
            "sha256": None if current is None else current.sha256,
            "seen": self._seen, "problem": self.problem,
            "prepared": self._prepared, "prepare_error": self._prepare_error,
        })

    # ------------------------------------------------------------------ reloading
    def reload(self, model_dir: str) -> Loaded:
        """Serve the model in ``model_dir`` on every worker, or on none (:class:`ReloadError`)."""
        if self.shared is None:
            with self._local_reload:
                return self._reload_here(model_dir)
        with self.shared.exclusive():
            return self._reload_everywhere(model_dir)

    def extend(self, change: Callable[[Recommender], Any], label: str) -> Loaded:
        """Serve a changed copy of the served model on every worker, or on none.

        The model the service serves is read again from its directory (the served objects are
        never touched), ``change`` changes that copy in place (its exceptions propagate, and
        nothing is saved), and the result is saved as a new directory next to the served one,
        ``NAME+LABEL-TIMESTAMP``, then reloaded like :meth:`reload`. A directory never served
        (the reload was refused) is removed again. Changes are serialised with reloads, so
        none is lost to a concurrent one.
        """
        if self.shared is None:
            with self._local_reload:
                current = self.loaded()
                directory = self._save_changed(current.model_dir, current.sha256, change,
                                               label)
                return self._reload_or_remove(self._reload_here, directory)
        with self.shared.exclusive():
            document = self.shared.read()
            if document is None:
                raise ReloadError("model not changed: the service's state folder is unreadable",
                                  status=503)
            committed = document["committed"]
            directory = self._save_changed(str(committed["model_dir"]),
                                           str(committed["sha256"]), change, label)
            return self._reload_or_remove(self._reload_everywhere, directory)

    def _save_changed(self, model_dir: str | None, sha: str | None,
                      change: Callable[[Recommender], Any], label: str) -> str:
        if model_dir is None or sha is None:
            raise ReloadError("this service serves a model given in memory; changing it needs a "
                              "service started from a model directory")
        try:
            model, _ = read_model(model_dir, expected_sha256=sha)
        except (LatentrecError, OSError) as error:
            raise ReloadError(f"model not changed, still serving the old one: the served model "
                              f"could not be read again: {error}") from None
        change(model)
        target = _sibling(Path(model_dir), label)
        model.save(target)
        return str(target)

    def _reload_or_remove(self, reload: Callable[[str], Loaded], directory: str) -> Loaded:
        try:
            return reload(directory)
        except ReloadError as error:
            if error.status == 409:  # withdrawn or refused: no worker serves it
                shutil.rmtree(directory, ignore_errors=True)
            raise

    def _reload_here(self, model_dir: str) -> Loaded:
        model, sha = self._read_or_refuse(model_dir)
        with self._lock:
            version = (self._seen or 0) + 1
            fresh = Loaded(model, str(Path(model_dir)), sha, version, _now())
            self.current, self._seen, self.problem = fresh, version, None
        self.events["done"] += 1
        return fresh

    def _read_or_refuse(self, model_dir: str) -> tuple[Recommender, str]:
        try:
            model, sha = read_model(model_dir)
            return self.prepare(model), sha
        except (LatentrecError, OSError) as error:
            self.events["refused"] += 1
            raise ReloadError(f"model not reloaded, still serving the old one: {error}"
                              ) from None

    def _reload_everywhere(self, model_dir: str) -> Loaded:
        assert self.shared is not None
        document = self.shared.read()
        if document is None:
            raise ReloadError("model not reloaded: the service's state folder is unreadable",
                              status=503)
        committed = document["committed"]
        version = max(int(document["last_version"]), int(committed["version"])) + 1
        directory = str(Path(model_dir).resolve())
        model, sha = self._read_or_refuse(directory)
        fresh = Loaded(model, directory, sha, version, _now())
        proposal = {"version": version, "model_dir": directory, "sha256": sha}
        with self._lock:
            self._staged, self._prepared, self._prepare_error = fresh, version, None
            self.shared.write({"committed": committed, "pending": proposal,
                               "last_version": version})
            self._report()
        loaded, problem = self._wait_for_workers(
            lambda w: w.get("prepared") == version and not w.get("prepare_error"),
            lambda w: w.get("prepared") == version and bool(w.get("prepare_error")),
            "load it", "prepare_error")
        if not loaded:
            with self._lock:
                self.shared.write({"committed": committed, "pending": None,
                                   "last_version": version})
                self._staged = None
                self._report()
            self.events["refused"] += 1
            sha_old = str(committed["sha256"])[:SHORT_SHA]
            raise ReloadError(f"model not reloaded, every worker still serves the old one "
                              f"(version {committed['version']}, sha256 {sha_old}): {problem}")
        with self._lock:
            self.shared.write({"committed": proposal, "pending": None, "last_version": version})
            self.current, self._staged, self._seen, self.problem = fresh, None, version, None
            self._report()
        switched, problem = self._wait_for_workers(
            lambda w: w.get("version") == version,
            lambda w: w.get("seen") == version and w.get("version") != version,
            "switch to it", "problem")
        if not switched:
            self.events["incomplete"] += 1
            raise ReloadError(f"model version {version} (sha256 {sha[:SHORT_SHA]}) is committed, "
                              f"but not every worker serves it yet: {problem}", status=503)
        self.events["done"] += 1
        return fresh

    def _wait_for_workers(self, done: Callable[[dict[str, Any]], bool],
                          failed: Callable[[dict[str, Any]], bool], verb: str,
                          reason: str) -> tuple[bool, str]:
        """Wait until every live worker, and at least as many as the service has, is ``done``."""
        assert self.shared is not None
        deadline = time.monotonic() + self.reload_timeout
        while True:
            reports = self.shared.workers()
            for report in reports:
                if failed(report):
                    return False, f"worker pid {report['pid']} could not {verb}: {report[reason]}"
            finished = [report for report in reports if done(report)]
            if len(finished) == len(reports) and len(finished) >= self.expected_workers:
                return True, ""
            if time.monotonic() > deadline:
                waiting = sorted(str(r["pid"]) for r in reports if not done(r))
                return False, (f"{len(finished)} of {self.expected_workers} workers confirmed "
                               f"within {self.reload_timeout:g} s"
                               + (f" (no answer from pid {', '.join(waiting)})" if waiting
                                  else ""))
            time.sleep(0.02)

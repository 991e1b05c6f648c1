"""The benchmark harness: each contender in its own process, every answer scored here alike."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from latentrec.bench._data import (
    SPLIT_NAMES,
    bench_arrays,
    check_data,
    find_datasets_dir,
    load_split,
    relevant_matrix,
    score_ratings,
    score_top_k,
)
from latentrec.bench._results import ContenderResult, SkippedContender, SuiteResult
from latentrec.bench._suites import (
    BENCH_EXTRA_HINT,
    MISSING_PEER_REASONS,
    SUITE_DATASETS,
    Contender,
    contenders_for,
)
from latentrec.errors import InvalidParameterError

__all__ = ["ContenderResult", "SkippedContender", "SuiteResult", "describe_machine", "run_suite"]

logger = logging.getLogger(__name__)

#: pip distribution of each contender library, for the versions in the results
_DISTRIBUTIONS = {"latentrec": "latentrec", "surprise": "scikit-surprise",
                  "implicit": "implicit", "cornac": "cornac", "libmf": "libmf",
                  "lightfm": "lightfm", "pyspark": "pyspark", "myfm": "myfm"}
#: repeats of the timed fit when the caller gives none: the explicit suite's fits take well
#: under a second, so it reports the median of 3; top-N fits (Gowalla's) can take minutes
DEFAULT_REPEATS = {"explicit": 3, "implicit": 1}


def _matches(contender: Contender, only: Sequence[str]) -> bool:
    return not only or any(text.lower() in contender.name.lower() for text in only)


def _importable(library: str) -> bool:
    """Whether ``library`` can be imported here (found, not imported: that is the child's)."""
    return importlib.util.find_spec(library) is not None


def _java_found() -> bool:
    """Whether a ``java`` launcher is where PySpark looks: ``$JAVA_HOME/bin`` or ``PATH``."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return True
    return shutil.which("java") is not None


def _unavailable(library: str) -> str | None:
    """Why the peer ``library`` cannot run here, or None when it can."""
    if not _importable(library):
        return f"not installed; {MISSING_PEER_REASONS.get(library, BENCH_EXTRA_HINT)}"
    if library == "pyspark" and not _java_found():
        return ("no Java runtime (Spark needs one: install Java 17 or newer and put java on "
                "PATH or set JAVA_HOME)")
    return None


def _library_version(library: str) -> str | None:
    try:
        return version(_DISTRIBUTIONS.get(library, library))
    except PackageNotFoundError:
        return None


def _loadavg() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def describe_machine(loadavg_at_start: list[float] | None = None) -> dict[str, Any]:
    """Where and when the suite ran; the load averages tell whether others shared the CPUs."""
    import torch  # already imported by the data readers

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "loadavg_at_start": loadavg_at_start,
        "loadavg_at_end": _loadavg(),
    }


def _check_arguments(suite: str, dataset: str, k: int, repeats: int | None) -> None:
    if suite not in SUITE_DATASETS:
        raise InvalidParameterError(
            f"suite must be one of {sorted(SUITE_DATASETS)}, got {suite!r}")
    if dataset not in SUITE_DATASETS[suite]:
        raise InvalidParameterError(
            f"the {suite} suite runs on {list(SUITE_DATASETS[suite])}, got dataset {dataset!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidParameterError(f"k must be an integer >= 1, got {k!r}")
    if repeats is not None and (isinstance(repeats, bool) or not isinstance(repeats, int)
                                or repeats < 1):
        raise InvalidParameterError(f"repeats must be an integer >= 1, got {repeats!r}")


def _run_child(task_path: Path, contender: Contender, output: Path,
               timeout_s: float | None) -> dict[str, Any]:
    """Run one contender's process; its result, or ``RuntimeError`` with its last error line."""
    from latentrec.bench._child import RESULT_MARKER

    command = [sys.executable, "-m", "latentrec.bench._child", str(task_path), contender.name,
               str(output)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                              check=False)
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"timed out after {timeout_s:g} s") from error
    results = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if done.returncode != 0 or not results:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        last = lines[-1].strip() if lines else f"exit status {done.returncode}"
        raise RuntimeError(last)
    result: dict[str, Any] = json.loads(results[-1][len(RESULT_MARKER):])
    return result


def _add_ratios(rows: list[ContenderResult], metric: str,
                lower_is_better: bool) -> tuple[list[ContenderResult], str | None]:
    """Rows with quality and fit-time ratios against the best peer by ``metric``."""
    peers = [row for row in rows if row.is_peer]
    if not peers:
        return rows, None
    pick = min if lower_is_better else max
    best = pick(peers, key=lambda row: row.metrics[metric])
    updated = [
        dataclasses.replace(
            row, quality_vs_best_peer=row.metrics[metric] / best.metrics[metric],
            fit_vs_best_peer=row.fit_s / best.fit_s if best.fit_s > 0 else None)
        for row in rows
    ]
    return updated, best.name


def run_suite(
    suite: str = "explicit",
    *,
    dataset: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    peers: bool = True,
    only: Sequence[str] = (),
    k: int = 10,
    repeats: int | None = None,
    timeout_s: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> SuiteResult:
    """Run a benchmark suite: latentrec's models and each installed peer, side by side.

    The data are read and split once, here, with latentrec's code; every contender then runs
    in its own child process (``python -m latentrec.bench._child``), so its fit time and peak
    memory are its own, and its answers (predicted ratings, or top-``k`` lists with training
    items excluded) come back to be scored here by the same metric code. A peer whose library
    is not importable is skipped, with the reason, in ``SuiteResult.skipped``; a contender
    whose process fails is listed in ``SuiteResult.failed``.

    Parameters
    ----------
    suite : {"explicit", "implicit"}
        ``explicit``: rating prediction on MovieLens 100K ``u1.base``/``u1.test``, RMSE and MAE
        of predictions clipped to the rating range. ``implicit``: top-``k`` ranking of the full
        catalogue, NDCG/precision/recall/MAP at ``k`` and coverage.
    dataset : str, optional
        ``ml-100k`` (the default), or for the implicit suite ``lastfm`` or ``gowalla``.
    data_dir : path, optional
        The folder holding ``ml-100k/`` etc.; see :func:`find_datasets_dir` for the default.
    peers : bool
        Run the peer libraries too (only latentrec's models when False).
    only : sequence of str
        Keep the contenders whose name contains one of these (case-insensitive).
    k : int
        Cut-off of the ranking metrics (implicit suite).
    repeats : int, optional
        Timed fits per contender, reported as their median (default 3 for ``explicit``,
        1 for ``implicit``); a fit over 20 s is not repeated.
    timeout_s : float, optional
        Give up on a contender's process after this many seconds (listed as failed).
    progress : callable, optional
        Called with one line of text per step (data read, contender done or skipped).

    Returns
    -------
    SuiteResult
        Rows in table order (latentrec first), with ratios against the best peer.

    Raises
    ------
    FileNotFoundError
        If a data file of the suite is missing (the message names it).
    InvalidParameterError
        For an unknown suite or dataset, a bad ``k``/``repeats``, or ``only`` matching nothing.

    Examples
    --------
    >>> from latentrec.bench import run_suite
    >>> result = run_suite("explicit", only=["BiasedMF (defaults)"], peers=False)  # doctest: +SKIP
    >>> print(markdown_table(result))  # doctest: +SKIP
    """
    dataset = dataset if dataset is not None else SUITE_DATASETS.get(suite, ("ml-100k",))[0]
    _check_arguments(suite, dataset, k, repeats)
    say = progress if progress is not None else logger.info
    root = find_datasets_dir(data_dir)
    check_data(suite, dataset, root)

    everyone = contenders_for(suite, dataset)
    chosen = [c for c in everyone if (peers or not c.is_peer) and _matches(c, only)]
    if not chosen:
        names = "; ".join(c.name for c in everyone if peers or not c.is_peer)
        raise InvalidParameterError(
            f"only={list(only)} matches no contender of the {suite} suite; names: {names}")
    skipped: list[SkippedContender] = []
    for library in dict.fromkeys(c.library for c in chosen if c.is_peer):
        reason = _unavailable(library)
        if reason is not None:
            missing = [c for c in chosen if c.library == library]
            skipped += [SkippedContender(c.name, library, reason) for c in missing]
            say(f"skipping {library} ({len(missing)} contender{'s' * (len(missing) > 1)}): "
                f"{reason}")
    runnable = [c for c in chosen if c.name not in {s.name for s in skipped}]

    train, test = load_split(suite, dataset, root)
    say(f"{suite} suite on {dataset}: {len(train):,} train / {len(test):,} test interactions, "
        f"{train.n_users:,} users, {train.n_items:,} items")
    explicit = suite == "explicit"
    metrics = (["rmse", "mae"] if explicit
               else [f"ndcg@{k}", f"precision@{k}", f"recall@{k}", f"map@{k}", "coverage"])
    metric = metrics[0]
    rank_users: np.ndarray | None = None
    if explicit:
        truth = np.asarray(test.values, dtype=np.float64)
        rating_range = train.rating_range() or (-np.inf, np.inf)

        def score(answers: np.ndarray) -> dict[str, float]:
            return score_ratings(truth, answers, rating_range)
    else:
        rank_users, relevant = relevant_matrix(train, test)

        def score(answers: np.ndarray) -> dict[str, float]:
            return score_top_k(answers, relevant, train.n_items, k)

    rows: list[ContenderResult] = []
    failed: list[SkippedContender] = []
    loadavg_at_start = _loadavg()
    with tempfile.TemporaryDirectory(prefix="latentrec-bench-") as work:
        task_path = Path(work) / "task.json"
        arrays_path = Path(work) / "arrays.npz"
        bench_arrays(suite, train, test, rank_users).save(arrays_path)
        task_path.write_text(json.dumps({
            "suite": suite, "dataset": dataset, "k": k, "arrays": str(arrays_path),
            "repeats": repeats if repeats is not None else DEFAULT_REPEATS[suite],
        }))
        for number, contender in enumerate(runnable):
            output = Path(work) / f"answers-{number}.npy"
            try:
                child = _run_child(task_path, contender, output, timeout_s)
            except RuntimeError as error:
                failed.append(SkippedContender(contender.name, contender.library, str(error)))
                say(f"{contender.name}: failed: {error}")
                continue
            scores = score(np.load(output, allow_pickle=False))
            rows.append(ContenderResult(
                name=contender.name, library=contender.library,
                version=_library_version(contender.library), params=dict(contender.params),
                options=dict(contender.options), metrics=scores, fit_s=child["fit_s"],
                fit_runs_s=child["fit_runs_s"], answer_s=child["answer_s"],
                peak_mb=child["peak_mb"], peak_mb_end=child["peak_mb_end"],
                iterations=child.get("iterations")))
            memory = f"{child['peak_mb']:,.0f} MB" if child["peak_mb"] is not None else "?"
            per_iteration = rows[-1].fit_per_iteration_s
            iterations = ("" if per_iteration is None else
                          f" ({per_iteration:.3f} s per iteration: fit / {rows[-1].iterations})")
            say(f"{contender.name}: {metric.upper()} {scores[metric]:.4f}  "
                f"fit {child['fit_s']:.3f} s{iterations}  peak {memory}")

    rows, best_peer = _add_ratios(rows, metric, lower_is_better=explicit)
    return SuiteResult(
        suite=suite, dataset=dataset, split=SPLIT_NAMES[suite, dataset],
        k=None if explicit else k, metrics=metrics, metric=metric, lower_is_better=explicit,
        rows=rows, skipped=skipped, failed=failed, best_peer=best_peer,
        machine=describe_machine(loadavg_at_start),
    )

"""One contender in its own process: ``python -m latentrec.bench._child TASK NAME OUTPUT``.

``TASK`` is the JSON task the harness wrote (suite, dataset, k, repeats and the ``.npz`` of
arrays), ``NAME`` the contender's name and ``OUTPUT`` the ``.npy`` file for its answers
(predicted ratings or top-k lists), which the harness scores. The last line on stdout is
``RESULT_MARKER`` followed by a JSON object: fit seconds (median of the timed fits, and each
of them), answer seconds, the process's peak resident memory after fitting and at the end (plus
that of its child processes, such as Spark's JVM) and, where the adapter fixes them, the
iterations each fit runs.
Timed fits exclude reading, conversion to the library's input and, for latentrec, one warm-up
fit on a slice (numba compilation); the first fit that takes over 20 s is the only one.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latentrec.bench._arrays import BenchArrays
from latentrec.bench._suites import contenders_for

RESULT_MARKER = "LATENTREC_BENCH_RESULT "
#: after a fit this long, the first one is the measurement (Gowalla's fits take minutes)
SINGLE_RUN_AFTER_S = 20.0


def _children_peak_rss_mb() -> float:
    """The summed peak resident memory (MB) of this process's live child processes (Linux).

    Spark's JVM is such a child: its memory is the Spark peer's too. Zero where there are none
    or where ``/proc`` cannot tell.
    """
    total = 0.0
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # the command may hold spaces: the parent's pid is the 2nd field after ")"
            if stat.read_text().rpartition(")")[2].split()[1] != me:
                continue
            with open(stat.parent / "status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) / 1024  # kB
        except (OSError, IndexError):
            continue  # ended meanwhile, or not Linux
    return total


def peak_rss_mb() -> float | None:
    """This process's peak resident memory in MB (None where the platform cannot tell).

    On Linux it is ``VmHWM`` from ``/proc/self/status``, not ``ru_maxrss``: the kernel folds
    the parent's peak at ``exec`` time into the child's ``ru_maxrss``, so every child of the
    harness (which holds torch and the data) would report at least the harness's own peak.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass  # not Linux
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes
    return float(peak) / (1024 * 1024 if sys.platform == "darwin" else 1024)


def timed_fits(fit: Callable[[], Any], repeats: int) -> tuple[Any, float, list[float]]:
    """Run ``fit`` up to ``repeats`` times; the last model, the median and every time (s)."""
    times: list[float] = []
    model: Any = None
    for _ in range(repeats):
        started = time.perf_counter()
        model = fit()
        times.append(time.perf_counter() - started)
        if times[-1] > SINGLE_RUN_AFTER_S:
            break
    return model, statistics.median(times), times


def run_contender(task: dict[str, Any], name: str, output: Path) -> dict[str, Any]:
    """Fit and answer one contender as ``task`` says; write the answers to ``output``."""
    from latentrec.bench._adapters import prepare

    by_name = {c.name: c for c in contenders_for(task["suite"], task["dataset"])}
    contender = by_name[name]
    arrays = BenchArrays.load(Path(task["arrays"]))
    prepared = prepare(arrays, contender, int(task["k"]))

    def peak_mb() -> float | None:
        own = peak_rss_mb()
        return None if own is None else own + _children_peak_rss_mb()

    try:
        data_mb = peak_mb()
        if prepared.warm_up is not None:
            prepared.warm_up()
        model, fit_s, fit_runs_s = timed_fits(prepared.fit, int(task["repeats"]))
        fitted_mb = peak_mb()
        started = time.perf_counter()
        answers = prepared.answer(model)
        answer_s = time.perf_counter() - started
        end_mb = peak_mb()
    finally:
        if prepared.close is not None:
            prepared.close()
    np.save(output, np.asarray(answers), allow_pickle=False)
    result: dict[str, Any] = {"fit_s": fit_s, "fit_runs_s": fit_runs_s, "answer_s": answer_s,
                              "peak_mb": fitted_mb, "peak_mb_end": end_mb, "data_mb": data_mb}
    if prepared.iterations is not None:
        result["iterations"] = prepared.iterations
    return result


def main(argv: Sequence[str] | None = None) -> None:
    task_path, name, output = argv if argv is not None else sys.argv[1:]
    task = json.loads(Path(task_path).read_text())
    result = run_contender(task, name, Path(output))
    # libraries print on stdout too: the marker makes the result line unambiguous
    print(RESULT_MARKER + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

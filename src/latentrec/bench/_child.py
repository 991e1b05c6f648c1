"""One contender in its own process: ``python -m latentrec.bench._child TASK NAME OUTPUT``.

``TASK`` is the JSON task the harness wrote (suite, dataset, k, repeats and the ``.npz`` of
arrays), ``NAME`` the contender's name and ``OUTPUT`` the ``.npy`` file for its answers
(predicted ratings or top-k lists), which the harness scores. The last line on stdout is
``RESULT_MARKER`` followed by a JSON object: fit seconds (median of the timed fits, and each
of them), answer seconds and the process's peak resident memory after fitting and at the end.
Timed fits exclude reading, conversion to the library's input and, for latentrec, one warm-up
fit on a slice (numba compilation); the first fit that takes over 20 s is the only one.
"""

from __future__ import annotations

import json
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
    data_mb = peak_rss_mb()
    if prepared.warm_up is not None:
        prepared.warm_up()
    model, fit_s, fit_runs_s = timed_fits(prepared.fit, int(task["repeats"]))
    peak_mb = peak_rss_mb()
    started = time.perf_counter()
    answers = prepared.answer(model)
    answer_s = time.perf_counter() - started
    np.save(output, np.asarray(answers), allow_pickle=False)
    return {"fit_s": fit_s, "fit_runs_s": fit_runs_s, "answer_s": answer_s,
            "peak_mb": peak_mb, "peak_mb_end": peak_rss_mb(), "data_mb": data_mb}


def main(argv: Sequence[str] | None = None) -> None:
    task_path, name, output = argv if argv is not None else sys.argv[1:]
    task = json.loads(Path(task_path).read_text())
    result = run_contender(task, name, Path(output))
    # libraries print on stdout too: the marker makes the result line unambiguous
    print(RESULT_MARKER + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

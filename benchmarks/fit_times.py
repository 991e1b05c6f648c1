"""Fit times of the default models on MovieLens 100K u1.base, for before/after comparisons.

    python benchmarks/fit_times.py                              # this checkout
    PYTHONPATH=/path/to/other/checkout/src python benchmarks/fit_times.py   # another version

Runs in one process (median of 3 fits after a warm-up fit; BPR: 1), so run both versions one
after the other on a quiet machine and compare them with each other, not with other tables.
Works with the code from before the model-layer redesign too (the Bayesian model was then
``BiasedMF(solver="gibbs", factors=10, epochs=300)``).
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

from _common import datasets_dir


def median_fit(make: Callable[[], Any], data: Any, repeats: int = 3) -> float:
    make().fit(data, show_progress=False)  # warm-up: numba compilation, allocator
    times = []
    for _ in range(repeats):
        model = make()
        started = time.perf_counter()
        model.fit(data, show_progress=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    import latentrec
    import latentrec.models as models
    from latentrec import BPR, BiasedMF, ImplicitALS, read_interactions

    train = read_interactions(datasets_dir(None) / "ml-100k" / "u1.base")
    plays = train.as_implicit()
    bayesian: Callable[[], Any] = (
        models.BayesianMF if hasattr(models, "BayesianMF")
        else lambda: BiasedMF(solver="gibbs", factors=10, epochs=300))  # type: ignore[call-arg]
    warnings.simplefilter("ignore")  # the old code's and the new code's warnings alike
    print(f"latentrec from {latentrec.__file__}")
    for name, make, data, repeats in (("BiasedMF()", BiasedMF, train, 3),
                                      ("Bayesian", bayesian, train, 3),
                                      ("ImplicitALS()", ImplicitALS, plays, 3),
                                      ("BPR()", BPR, plays, 1)):
        print(f"{name:<14} {median_fit(make, data, repeats):.3f} s")


if __name__ == "__main__":
    main()

"""What a suite run measured: one result per contender and the suite's result."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ContenderResult", "SkippedContender", "SuiteResult"]


@dataclass(frozen=True)
class ContenderResult:
    """One contender's scores, times and memory.

    ``metrics`` maps metric names (``rmse``, ``ndcg@10`` ...) to values; ``fit_s`` is the
    median of the timed fits (``fit_runs_s`` lists them); ``answer_s`` is the time taken to
    predict the test pairs or rank for every test user; ``peak_mb`` is the child process's
    peak resident memory after fitting (interpreter, imports, data and the fits; plus its child
    processes' peaks, such as Spark's JVM), ``peak_mb_end`` after answering too. The ratios
    compare with the best peer of the run (``None`` when no peer ran). ``iterations`` is the
    number of iterations each fit runs, where the harness knows it (Spark's ``maxIter``).
    """

    name: str
    library: str
    version: str | None
    params: dict[str, Any]
    options: dict[str, Any]
    metrics: dict[str, float]
    fit_s: float
    fit_runs_s: list[float]
    answer_s: float
    peak_mb: float | None
    peak_mb_end: float | None
    quality_vs_best_peer: float | None = None
    fit_vs_best_peer: float | None = None
    iterations: int | None = None

    @property
    def is_peer(self) -> bool:
        return self.library != "latentrec"

    @property
    def fit_per_iteration_s(self) -> float | None:
        """``fit_s / iterations`` (setup included), where the contender's iterations are known."""
        return None if not self.iterations else self.fit_s / self.iterations


@dataclass(frozen=True)
class SkippedContender:
    """A contender that did not run: its library is missing, or its process failed."""

    name: str
    library: str
    reason: str


@dataclass
class SuiteResult:
    """Everything one suite run measured; see :func:`run_suite`.

    ``metrics`` are the quality columns in table order, ``metric`` the one that ranks
    (``rmse``, lower is better; ``ndcg@k``, higher is better); ``best_peer`` names the peer the
    ratios compare with.
    """

    suite: str
    dataset: str
    split: str
    k: int | None
    metrics: list[str]
    metric: str
    lower_is_better: bool
    rows: list[ContenderResult]
    skipped: list[SkippedContender] = field(default_factory=list)
    failed: list[SkippedContender] = field(default_factory=list)
    best_peer: str | None = None
    machine: dict[str, Any] = field(default_factory=dict)
    command: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document: the run's settings, machine, rows, skipped and failed."""
        answer_key = "predict_s" if self.suite == "explicit" else "rank_s"
        rows = []
        for row in self.rows:
            entry: dict[str, Any] = {"model": row.name, "library": row.library,
                                     "version": row.version, "params": row.params}
            if row.options:
                entry["options"] = row.options
            entry.update(row.metrics)
            entry.update({"fit_s": row.fit_s, "fit_runs_s": row.fit_runs_s,
                          answer_key: row.answer_s, "peak_mb": row.peak_mb,
                          "peak_mb_end": row.peak_mb_end,
                          f"{self.metric}_vs_best_peer": row.quality_vs_best_peer,
                          "fit_vs_best_peer": row.fit_vs_best_peer})
            if row.iterations is not None:
                entry.update({"iterations": row.iterations,
                              "fit_per_iteration_s": row.fit_per_iteration_s})
            rows.append(entry)
        return {
            "suite": self.suite, "dataset": self.dataset, "split": self.split, "k": self.k,
            "metric": self.metric, "lower_is_better": self.lower_is_better,
            "best_peer": self.best_peer, "command": self.command, "machine": self.machine,
            "rows": rows,
            "skipped": [dataclasses.asdict(entry) for entry in self.skipped],
            "failed": [dataclasses.asdict(entry) for entry in self.failed],
        }

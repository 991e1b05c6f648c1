"""Shared helpers for the benchmark scripts: data location, timing, tables, machine info."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def datasets_dir(given: str | None) -> Path:
    default = next((folder / "shared" / "datasets" for folder in REPO.parents
                    if (folder / "shared" / "datasets").is_dir()),
                   Path("/work/shared/datasets"))
    path = Path(given or os.environ.get("LATENTREC_DATA", default))
    if not (path / "ml-100k").is_dir():
        raise SystemExit(f"datasets not found at {path}; pass --data-dir or set LATENTREC_DATA")
    return path


def timed(function: Callable[[], Any], repeats: int = 3) -> tuple[Any, float, list[float]]:
    """Run ``function`` up to ``repeats`` times (once if it takes over 20 s); median seconds."""
    times: list[float] = []
    result = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
        if times[-1] > 20:
            break
    return result, statistics.median(times), times


def machine() -> dict[str, Any]:
    """Where and when a script ran (the same description ``latentrec bench`` records)."""
    from latentrec.bench import describe_machine

    return describe_machine(list(os.getloadavg()))


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4f}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def save(name: str, document: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")
    return path

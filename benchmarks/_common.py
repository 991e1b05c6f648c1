"""Shared helpers for the benchmark scripts: data location, tables, results, machine info."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def datasets_dir(given: str | None) -> Path:
    """The shared datasets folder (see ``latentrec.bench.find_datasets_dir``), checked."""
    from latentrec.bench import find_datasets_dir

    path = find_datasets_dir(given)
    if not (path / "ml-100k").is_dir():
        raise SystemExit(f"datasets not found at {path}; pass --data-dir or set LATENTREC_DATA")
    return path


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


def write_suite(result: Any, name: str) -> None:
    """Print a ``latentrec.bench`` suite result and write its JSON and plot to RESULTS."""
    from latentrec.bench import markdown_table as suite_table
    from latentrec.bench import write_results

    print(suite_table(result))
    written = write_results(result, RESULTS, name)
    if written.plot_skipped:
        print(f"skipping the plot: {written.plot_skipped}", file=sys.stderr)
    print(f"\nwritten {written.json}" + (f" and {written.plot}" if written.plot else ""),
          file=sys.stderr)


def save(name: str, document: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")
    return path


def doc_parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser whose help is a script's docstring: its first line, then the rest
    as written."""
    lines = (doc or "").splitlines()
    return argparse.ArgumentParser(description=lines[0] if lines else None,
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog="\n".join(lines[1:]))

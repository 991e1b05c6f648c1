"""A suite's results as a markdown table, a JSON document and a PNG plot (fit time vs quality)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from latentrec.bench._results import SuiteResult

__all__ = ["WrittenFiles", "markdown_table", "write_results"]

_HEADERS = {"rmse": "RMSE", "mae": "MAE", "coverage": "coverage"}
_SHORT = {"ndcg": "NDCG", "precision": "P", "recall": "R", "map": "MAP"}
_DASH = "–"


def _header(metric: str) -> str:
    if metric in _HEADERS:
        return _HEADERS[metric]
    name, _, k = metric.partition("@")
    return f"{_SHORT.get(name, name)}@{k}"


def _seconds(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:,.1f}"


def _ratio(value: float | None, digits: int) -> str:
    return _DASH if value is None else f"{value:.{digits}f}"


def markdown_table(result: SuiteResult) -> str:
    """The table (model, quality, fit s, peak MB, ratios to the best peer) and its notes."""
    primary = _header(result.metric)
    columns = ["model", *(_header(m) for m in result.metrics), "fit s", "peak MB",
               f"{primary} / best peer", "fit / best peer"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in result.rows:
        cells = [row.name, *(f"{row.metrics[m]:.4f}" for m in result.metrics),
                 _seconds(row.fit_s),
                 _DASH if row.peak_mb is None else f"{row.peak_mb:,.0f}",
                 _ratio(row.quality_vs_best_peer, 3), _ratio(row.fit_vs_best_peer, 2)]
        lines.append("| " + " | ".join(cells) + " |")
    direction = "lower" if result.lower_is_better else "higher"
    lines.append("")
    if result.best_peer is not None:
        lines.append(f"Ratios are against the best peer by {primary} ({direction} is better): "
                     f"{result.best_peer}.")
    else:
        lines.append("No peer ran, so there are no ratios.")
    lines += [f"Skipped {s.name}: {s.reason}." for s in result.skipped]
    lines += [f"Failed {s.name}: {s.reason}" for s in result.failed]
    return "\n".join(lines)


@dataclass(frozen=True)
class WrittenFiles:
    """Where :func:`write_results` wrote; ``plot`` is None when it could not draw it, and
    ``plot_skipped`` then says why."""

    json: Path
    plot: Path | None
    plot_skipped: str | None = None


def _json_ready(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_ready(item) for item in value]
    return value


#: a point whose quality is worse than the best by more than this share of it is drawn on the
#: chart's edge (its value is in the key), so that one poor baseline does not squash the rest
OFF_CHART_GAP = 0.5
_COLOURS = {False: "tab:blue", True: "tab:orange"}


def write_plot(result: SuiteResult, path: Path) -> None:
    """Scatter of fit time (log x) against the ranking metric, one numbered point a row.

    Names would overlap where points crowd, so each point carries its row number and the key
    beside the chart names it. Raises ``ModuleNotFoundError`` without matplotlib.
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend
    from matplotlib.lines import Line2D

    header = _header(result.metric)
    values = [row.metrics[result.metric] for row in result.rows]
    best = min(values) if result.lower_is_better else max(values)
    sign = 1.0 if result.lower_is_better else -1.0
    # the worst value drawn where it is; anything worse sits on that edge
    limit = best * (1 + sign * OFF_CHART_GAP)
    off_chart = [sign * (value - limit) > 0 for value in values]
    shown = [value for value, off in zip(values, off_chart, strict=True) if not off]  # has best
    worst_shown = max(shown) if result.lower_is_better else min(shown)
    edge = worst_shown + sign * 0.08 * (max(shown) - min(shown) or abs(best) * 0.05 or 0.05)

    figure = Figure(figsize=(11, 6), layout="constrained")
    axes = figure.subplots()
    handles = []
    for number, (row, value, off) in enumerate(zip(result.rows, values, off_chart,
                                                   strict=True), start=1):
        colour = _COLOURS[row.is_peer]
        # a fit can round to 0 s (Popularity), which a log axis cannot show
        x, y = max(row.fit_s, 1e-4), edge if off else value
        marker = ("^" if result.lower_is_better else "v") if off else "o"
        axes.scatter([x], [y], color=colour, marker=marker, zorder=3)
        axes.annotate(str(number), (x, y), xytext=(4, 3), textcoords="offset points",
                      fontsize=8, fontweight="bold")
        note = f", {header} {value:.3f}: off the chart" if off else ""
        handles.append(Line2D([], [], color=colour, marker=marker, linestyle="",
                              label=f"{number}  {row.name}{note}"))
    axes.set_xscale("log")
    axes.set_xlabel("fit time (s, log scale)")
    direction = "lower" if result.lower_is_better else "higher"
    axes.set_ylabel(f"{header} ({direction} is better)")
    axes.set_title(f"latentrec bench {result.suite}: {result.dataset}\n{result.split}",
                   fontsize=10)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                frameon=False, handletextpad=0.3, title="blue: latentrec, orange: peers",
                title_fontsize=8, alignment="left")
    figure.savefig(path, dpi=120)


def write_results(result: SuiteResult, directory: str | Path, name: str) -> WrittenFiles:
    """Write ``name.json`` (and ``name.png`` when matplotlib is installed) into ``directory``.

    The plot is skipped, with the reason in ``WrittenFiles.plot_skipped``, when matplotlib is
    missing or there is no row to draw.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / f"{name}.json"
    json_path.write_text(json.dumps(_json_ready(result.to_dict()), indent=1, default=str)
                         + "\n")
    if not result.rows:
        return WrittenFiles(json_path, None, "no contender ran, so there is nothing to plot")
    plot_path = folder / f"{name}.png"
    try:
        write_plot(result, plot_path)
    except ModuleNotFoundError as error:
        if error.name is None or not error.name.startswith("matplotlib"):
            raise
        return WrittenFiles(json_path, None,
                            "matplotlib is not installed (pip install 'latentrec[bench]')")
    return WrittenFiles(json_path, plot_path)

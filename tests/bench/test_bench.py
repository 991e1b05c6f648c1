"""``latentrec bench`` and the harness behind it (latentrec.bench)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from latentrec.bench import (
    SUITE_DATASETS,
    ContenderResult,
    SkippedContender,
    SuiteResult,
    _harness,
    contenders_for,
    find_datasets_dir,
    markdown_table,
    write_results,
)
from latentrec.cli._common import BENCH_DATASETS, BENCH_SUITES
from latentrec.cli.main import cli


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def row(name: str, library: str, rmse: float, fit_s: float) -> ContenderResult:
    return ContenderResult(name=name, library=library, version=None, params={}, options={},
                           metrics={"rmse": rmse, "mae": rmse * 0.8}, fit_s=fit_s,
                           fit_runs_s=[fit_s], answer_s=0.01, peak_mb=300.0, peak_mb_end=310.0)


@pytest.fixture
def fake_data_dir(tmp_path: Path) -> Path:
    """A datasets folder whose ml-100k files exist (enough for the checks before reading)."""
    folder = tmp_path / "datasets" / "ml-100k"
    folder.mkdir(parents=True)
    for name in ("u1.base", "u1.test", "u.data"):
        (folder / name).write_text("")
    return tmp_path / "datasets"


# ----------------------------------------------------------------------- on real ml-100k
@pytest.mark.realdata
def test_explicit_suite_writes_table_json_and_plot(datasets_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    code, stdout, stderr = run("bench", "explicit", "--data-dir", str(datasets_dir), "--out",
                               str(out), "--no-peers", "--only", "BiasedMF (defaults)",
                               "--repeats", "1")
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert lines[0] == ("| model | RMSE | MAE | fit s | peak MB | RMSE / best peer "
                        "| fit / best peer |")
    assert lines[2].startswith("| latentrec BiasedMF (defaults) | 0.91")
    assert lines[2].endswith("| – | – |")  # no peer ran: no ratios
    assert len([line for line in lines if line.startswith("| latentrec")]) == 1
    assert "No peer ran" in stdout
    assert "latentrec BiasedMF (defaults): RMSE 0.91" in stderr
    assert f"wrote {out / 'explicit_ml-100k.json'} and {out / 'explicit_ml-100k.png'}" in stderr

    document = json.loads((out / "explicit_ml-100k.json").read_text())
    assert document["suite"] == "explicit" and document["split"] == "u1.base/u1.test"
    assert document["command"] == ("latentrec bench explicit --dataset ml-100k --no-peers "
                                   "--only 'BiasedMF (defaults)' --repeats 1")
    assert document["skipped"] == [] and document["failed"] == []
    [entry] = document["rows"]
    assert entry["model"] == "latentrec BiasedMF (defaults)"
    # the published default-settings result on u1 (docs/BENCHMARKS.md): 0.9147
    assert entry["rmse"] == pytest.approx(0.9147, abs=0.003)
    assert entry["mae"] < entry["rmse"]
    assert 0 < entry["fit_s"] < 30 and len(entry["fit_runs_s"]) == 1
    assert entry["peak_mb"] > 50 and entry["peak_mb_end"] >= entry["peak_mb"]
    assert entry["rmse_vs_best_peer"] is None and entry["fit_vs_best_peer"] is None
    assert png_size(out / "explicit_ml-100k.png") == (1320, 720)


@pytest.mark.realdata
def test_implicit_suite_scores_top_n(datasets_dir: Path, tmp_path: Path) -> None:
    code, stdout, stderr = run("bench", "implicit", "--data-dir", str(datasets_dir), "--out",
                               str(tmp_path), "--no-peers", "--only", "popularity", "--json")
    assert code == 0, stderr
    document = json.loads(stdout)
    assert document["k"] == 10 and document["metric"] == "ndcg@10"
    [entry] = document["rows"]
    assert entry["model"] == "latentrec Popularity"
    # PEERS.md section B's popularity baseline on the same split: NDCG@10 0.2218
    assert entry["ndcg@10"] == pytest.approx(0.2218, abs=0.002)
    assert {"precision@10", "recall@10", "map@10", "coverage", "rank_s"} <= set(entry)
    assert (tmp_path / "implicit_ml-100k.png").exists()


@pytest.mark.realdata
def test_missing_peer_is_skipped_with_one_line(datasets_dir: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_harness, "_importable", lambda library: library != "surprise")
    code, stdout, stderr = run("bench", "explicit", "--data-dir", str(datasets_dir), "--out",
                               str(tmp_path), "--only", "surprise")
    assert code == 0, stderr
    skip_lines = [line for line in stderr.splitlines() if line.startswith("skipping surprise")]
    assert skip_lines == ["skipping surprise (3 contenders): not installed; "
                          "pip install 'latentrec[bench]'"]
    assert "Skipped surprise SVD (defaults): not installed" in stdout
    document = json.loads((tmp_path / "explicit_ml-100k.json").read_text())
    assert document["rows"] == []
    assert [s["name"] for s in document["skipped"]] == ["surprise SVD (defaults)",
                                                       "surprise SVD (tuned, PEERS.md)",
                                                       "surprise SVDpp (defaults)"]
    assert "skipping the plot: no contender ran" in stderr


@pytest.mark.realdata
def test_lightfm_is_skipped_with_the_reason(datasets_dir: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_harness, "_importable", lambda library: library != "lightfm")
    code, _, stderr = run("bench", "implicit", "--data-dir", str(datasets_dir), "--out",
                          str(tmp_path), "--only", "lightfm")
    assert code == 0, stderr
    assert ("skipping lightfm (1 contender): not installed; pip install 'latentrec[bench]' "
            "(LightFM comes as rectools-lightfm") in stderr


@pytest.mark.realdata
def test_failed_contender_is_an_error_after_the_results(datasets_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: Any) -> dict[str, Any]:
        raise RuntimeError("MemoryError: out of memory")

    monkeypatch.setattr(_harness, "_run_child", crash)
    code, _, stderr = run("bench", "explicit", "--data-dir", str(datasets_dir), "--out",
                          str(tmp_path), "--no-peers", "--only", "BiasedMF (defaults)")
    assert code == 1
    assert stderr.splitlines()[-1] == ("latentrec: error: 1 contender(s) failed: latentrec "
                                       "BiasedMF (defaults): MemoryError: out of memory")
    document = json.loads((tmp_path / "explicit_ml-100k.json").read_text())
    assert document["failed"] == [{"name": "latentrec BiasedMF (defaults)",
                                   "library": "latentrec",
                                   "reason": "MemoryError: out of memory"}]


# ------------------------------------------------------------------------ without data
def test_bad_data_dir_is_a_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    code, stdout, stderr = run("bench", "explicit", "--data-dir", str(missing))
    assert code == 1
    assert stdout == ""
    assert stderr == (f"latentrec: error: {missing / 'ml-100k' / 'u1.base'}: ml-100k data not "
                      "found; pass --data-dir DIR (the folder holding ml-100k/) or set "
                      "LATENTREC_DATA\n")


def test_bad_data_dir_in_a_real_process(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "error", "LATENTREC_DATA": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "latentrec.cli.main", "bench", "implicit",
                           "--dataset", "lastfm"], capture_output=True, text=True, env=env,
                          check=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1
    assert str(tmp_path / "lastfm-hetrec" / "user_artists.dat") in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--only", "no such model"], "only=['no such model'] matches no contender"),
        (["--dataset", "gowalla"], "the explicit suite runs on ['ml-100k'], got dataset"),
    ],
)
def test_bad_choices_are_one_line_errors(args: list[str], message: str,
                                         fake_data_dir: Path) -> None:
    code, _, stderr = run("bench", "explicit", "--data-dir", str(fake_data_dir), *args)
    assert code == 1
    assert stderr.count("\n") == 1
    assert message in stderr


def test_cli_choices_match_the_harness() -> None:
    assert tuple(SUITE_DATASETS) == BENCH_SUITES
    assert set(BENCH_DATASETS) == {d for names in SUITE_DATASETS.values() for d in names}


def test_every_peer_the_issue_names_is_a_contender() -> None:
    libraries = {c.library for suite, names in SUITE_DATASETS.items() for d in names
                 for c in contenders_for(suite, d)}
    assert libraries == {"latentrec", "surprise", "implicit", "lightfm", "cornac", "libmf",
                         "pyspark", "myfm"}
    names = [c.name for c in contenders_for("implicit", "ml-100k")]
    assert len(names) == len(set(names))  # children find their contender by name


def test_importing_the_cli_and_harness_stays_light() -> None:
    code = ("import sys, latentrec.cli.main, latentrec.bench, latentrec.bench._child, "
            "latentrec.bench._adapters; "
            "print(sorted(m for m in ('torch', 'pandas', 'matplotlib', 'numba') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    # a peer's child process must not pay for torch: its peak memory would not be its own
    assert done.stdout.strip() == "[]"


def test_peak_memory_is_the_childs_own() -> None:
    ballast = bytearray(300 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page: resident in this process
    code = "from latentrec.bench._child import peak_rss_mb; print(peak_rss_mb())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    # Linux's ru_maxrss would report this process's 300+ MB for the child too
    assert 5 < float(done.stdout) < 150
    del ballast


def test_datasets_dir_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared" / "datasets"
    shared.mkdir(parents=True)
    inside = tmp_path / "checkout" / "src"
    inside.mkdir(parents=True)
    monkeypatch.chdir(inside)
    monkeypatch.delenv("LATENTREC_DATA", raising=False)
    assert find_datasets_dir() == shared
    monkeypatch.setenv("LATENTREC_DATA", str(tmp_path / "env"))
    assert find_datasets_dir() == tmp_path / "env"
    assert find_datasets_dir(tmp_path / "given") == tmp_path / "given"


def test_child_failure_names_its_last_error_line(tmp_path: Path) -> None:
    [contender] = [c for c in contenders_for("explicit", "ml-100k") if c.name.startswith(
        "latentrec BiasedMF (defaults)")]
    with pytest.raises(RuntimeError, match=r"^FileNotFoundError: .*task\.json"):
        _harness._run_child(tmp_path / "task.json", contender, tmp_path / "out.npy", 60.0)


# ------------------------------------------------------------ ratios, table, JSON, plot
def suite_result(rows: list[ContenderResult]) -> SuiteResult:
    ranked, best = _harness._add_ratios(rows, "rmse", lower_is_better=True)
    return SuiteResult(suite="explicit", dataset="ml-100k", split="u1.base/u1.test", k=None,
                       metrics=["rmse", "mae"], metric="rmse", lower_is_better=True,
                       rows=ranked, best_peer=best,
                       skipped=[SkippedContender("LightFM", "lightfm", "not installed")])


def test_ratios_are_against_the_best_peer() -> None:
    result = suite_result([row("latentrec A", "latentrec", 0.90, 0.2),
                           row("peer fast", "cornac", 0.95, 0.1),
                           row("peer best", "libmf", 0.92, 0.4)])
    assert result.best_peer == "peer best"
    ours = result.rows[0]
    assert ours.quality_vs_best_peer == pytest.approx(0.90 / 0.92)
    assert ours.fit_vs_best_peer == pytest.approx(0.5)
    assert result.rows[2].quality_vs_best_peer == pytest.approx(1.0)
    table = markdown_table(result)
    assert "| latentrec A | 0.9000 | 0.7200 | 0.200 | 300 | 0.978 | 0.50 |" in table
    assert "best peer by RMSE (lower is better): peer best." in table
    assert "Skipped LightFM: not installed." in table


def test_higher_is_better_picks_the_highest_peer(tmp_path: Path) -> None:
    rows = [row("ours", "latentrec", 0.40, 1.0), row("p1", "implicit", 0.42, 2.0),
            row("p2", "cornac", 0.38, 0.5), row("popular", "latentrec", 0.20, 0.0)]
    ranked, best = _harness._add_ratios(rows, "rmse", lower_is_better=False)
    assert best == "p1"
    assert ranked[0].quality_vs_best_peer == pytest.approx(0.40 / 0.42)
    result = SuiteResult(suite="implicit", dataset="ml-100k", split="80/20", k=10,
                         metrics=["rmse"], metric="rmse", lower_is_better=False, rows=ranked,
                         best_peer=best)
    assert "best peer by RMSE (higher is better): p1." in markdown_table(result)
    assert write_results(result, tmp_path, "top").plot == tmp_path / "top.png"


def test_results_files(tmp_path: Path) -> None:
    result = suite_result([row("latentrec A", "latentrec", 0.90, 0.0),
                           row("peer", "cornac", 0.95, 0.1),
                           row("far off", "latentrec", 1.90, 5.0)])  # drawn on the edge
    written = write_results(result, tmp_path / "new", "demo")
    document = json.loads(written.json.read_text())
    assert [r["model"] for r in document["rows"]] == ["latentrec A", "peer", "far off"]
    assert document["rows"][0]["rmse_vs_best_peer"] == pytest.approx(0.90 / 0.95)
    assert document["rows"][0]["predict_s"] == 0.01
    assert document["best_peer"] == "peer"
    assert written.plot == tmp_path / "new" / "demo.png"
    assert png_size(written.plot) == (1320, 720)  # a 0 s fit is drawn on the log axis too


def test_plot_is_skipped_without_matplotlib(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import now fails
    written = write_results(suite_result([row("latentrec A", "latentrec", 0.9, 0.1)]),
                            tmp_path, "demo")
    assert written.plot is None
    assert written.plot_skipped == "matplotlib is not installed (pip install 'latentrec[bench]')"
    assert written.json.exists() and not (tmp_path / "demo.png").exists()

"""The Spark MLlib ALS peer of ``latentrec bench`` (latentrec.bench._adapters._spark_als)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from latentrec.bench import SUITE_DATASETS, TUNED_IMPLICIT, _child, _harness, contenders_for
from latentrec.bench._arrays import BenchArrays
from latentrec.bench._data import score_top_k
from latentrec.bench._results import ContenderResult
from latentrec.bench._suites import Contender

K = 5


def planted(rng: np.random.Generator) -> tuple[BenchArrays, sp.csr_matrix]:
    """4 groups of 15 users, each group liking its own 10 of 40 items: 6 seen, 2 held out."""
    train_users, train_items, test_users, test_items = [], [], [], []
    for user in range(60):
        liked = rng.permutation(np.arange(10) + 10 * (user // 15))
        train_users += [user] * 6
        train_items += liked[:6].tolist()
        test_users += [user] * 2
        test_items += liked[6:8].tolist()
    arrays = BenchArrays(
        feedback="implicit", user_index=np.array(train_users), item_index=np.array(train_items),
        values=None, user_ids=np.arange(60) + 1000, item_ids=np.arange(40) + 5000,
        rank_users=np.arange(60))
    relevant = sp.csr_matrix((np.ones(len(test_users), dtype=np.float32),
                              (test_users, test_items)), shape=(60, 40))
    return arrays, relevant


def random_ndcg(relevant: sp.csr_matrix, seen: sp.csr_matrix, rng: np.random.Generator) -> float:
    """NDCG@K of random rankings of each user's unseen items, averaged over 20 draws."""
    draws = []
    for _ in range(20):
        top = np.array([rng.permutation(np.setdiff1d(np.arange(40), seen[u].indices))[:K]
                        for u in range(60)])
        draws.append(score_top_k(top, relevant, 40, K)[f"ndcg@{K}"])
    return float(np.mean(draws))


def test_spark_contenders_follow_latentrec_ials() -> None:
    for dataset in SUITE_DATASETS["implicit"]:
        [spark] = [c for c in contenders_for("implicit", dataset) if c.library == "pyspark"]
        ials = TUNED_IMPLICIT[dataset]["ials"]
        assert spark.adapter == "pyspark.ALS"
        assert spark.params["implicitPrefs"] is True
        assert spark.params["rank"] == ials["factors"]
        assert spark.params["maxIter"] == ials.get("epochs", 15)
        assert spark.params["alpha"] == ials["alpha"]
        assert 0 < spark.params["regParam"] < ials["reg"]
    [explicit] = [c for c in contenders_for("explicit", "ml-100k") if c.library == "pyspark"]
    assert "implicitPrefs" not in explicit.params


def test_spark_is_skipped_without_java(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_harness, "_importable", lambda library: True)
    monkeypatch.setattr(_harness, "_java_found", lambda: False)
    reason = _harness._unavailable("pyspark")
    assert reason is not None and reason.startswith("no Java runtime")
    assert _harness._unavailable("implicit") is None


def test_spark_is_skipped_when_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_harness, "_importable", lambda library: library != "pyspark")
    assert _harness._unavailable("pyspark") == "not installed; pip install 'latentrec[bench]'"


def test_time_per_iteration_is_fit_over_iterations() -> None:
    row = ContenderResult(name="x", library="pyspark", version=None, params={}, options={},
                          metrics={"ndcg@10": 0.3}, fit_s=6.0, fit_runs_s=[6.0], answer_s=0.1,
                          peak_mb=None, peak_mb_end=None, iterations=15)
    assert row.fit_per_iteration_s == pytest.approx(0.4)
    assert dataclasses.replace(row, iterations=None).fit_per_iteration_s is None


@pytest.mark.slow
def test_spark_als_learns_planted_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pyspark")
    if not _harness._java_found():
        pytest.skip("no Java runtime for Spark")
    from pyspark.sql import SparkSession

    rng = np.random.default_rng(0)
    arrays, relevant = planted(rng)
    arrays.save(tmp_path / "arrays.npz")
    contender = Contender("Spark ALS (test)", "pyspark", "pyspark.ALS",
                          {"rank": 8, "maxIter": 5, "regParam": 0.1, "alpha": 5.0,
                           "implicitPrefs": True, "numUserBlocks": 2, "numItemBlocks": 2})
    # the child's own path (warm-up, timed fit, answers, close), in this process
    monkeypatch.setattr(_child, "contenders_for", lambda suite, dataset: [contender])
    task = {"suite": "implicit", "dataset": "planted", "k": K, "repeats": 1,
            "arrays": str(tmp_path / "arrays.npz")}
    result = _child.run_contender(task, contender.name, tmp_path / "answers.npy")

    top = np.load(tmp_path / "answers.npy", allow_pickle=False)
    assert top.shape == (60, K) and top.min() >= 0 and top.max() < 40
    seen = sp.csr_matrix((np.ones(len(arrays.user_index)), (arrays.user_index,
                                                            arrays.item_index)), shape=(60, 40))
    assert not any(set(top[u]) & set(seen[u].indices) for u in range(60))  # seen excluded
    ndcg = score_top_k(top, relevant, 40, K)[f"ndcg@{K}"]
    baseline = random_ndcg(relevant, seen, rng)
    assert np.isfinite(ndcg)
    assert baseline < 0.15
    assert ndcg > 0.5 and ndcg > 3 * baseline, (ndcg, baseline)

    assert result["iterations"] == 5
    assert result["fit_s"] > 0 and result["fit_runs_s"] == [result["fit_s"]]
    json.dumps(result)  # what the child prints after its marker
    assert SparkSession.getActiveSession() is None  # stopped by the adapter's close()

"""The same models on CUDA as on the CPU (run by benchmarks/gpu.sh on a GPU machine; skipped
where there is no CUDA device)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from latentrec import BPR, BiasedMF, ImplicitALS, Interactions, evaluate, load, random_split
from latentrec.data import user_holdout
from latentrec.errors import ConvergenceWarning

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _metric(model: object, test: Interactions, name: str) -> float:
    table = evaluate(model, test, metrics=[name.split("@")[0]], k=10)  # type: ignore[arg-type]
    return float(table.set_index("metric")["value"][name])


def test_biased_mf_on_cuda_matches_the_cpu_kernel(planted: Interactions) -> None:
    train, test = random_split(planted, 0.2, seed=0)
    cpu = BiasedMF(factors=8, epochs=30).fit(train, show_progress=False)
    with pytest.warns(ConvergenceWarning, match="optimizer='sgd' learns slowly"):
        cuda = BiasedMF(factors=8, epochs=30, device="cuda").fit(train, show_progress=False)
    assert cuda.item_factors_.device.type == "cuda"
    assert abs(_metric(cpu, test, "rmse") - _metric(cuda, test, "rmse")) < 0.03


def test_implicit_als_on_cuda_matches_the_cpu(planted: Interactions) -> None:
    train, test = user_holdout(planted.as_implicit(), 0.2, seed=0)
    scores = []
    for device in ("cpu", "cuda"):
        model = ImplicitALS(factors=16, epochs=10, device=device).fit(train, show_progress=False)
        scores.append(_metric(model, test, "ndcg@10"))
    assert scores[1] > 0.1
    assert abs(scores[0] - scores[1]) < 0.02


@pytest.mark.parametrize("loss", [{}, {"loss": "softmax", "negatives": 0}])
def test_bpr_on_cuda_learns_and_saves_for_the_cpu(planted: Interactions, tmp_path: Path,
                                                  loss: dict[str, Any]) -> None:
    train, test = user_holdout(planted.as_implicit(), 0.2, seed=0)
    model = BPR(factors=16, epochs=10, device="cuda", **loss).fit(train, show_progress=False)
    assert _metric(model, test, "ndcg@10") > 0.1
    model.save(tmp_path / "bpr")
    again = load(tmp_path / "bpr")
    assert again.item_factors_.device.type == "cpu"
    users = train.users.ids_of(np.arange(5))
    assert again.recommend(users, k=5)["item"].tolist() == model.recommend(users,
                                                                          k=5)["item"].tolist()

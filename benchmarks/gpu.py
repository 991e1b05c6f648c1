"""GPU timings in one go, sized for a short lease: one pass of each model over 20M interactions.

    python benchmarks/gpu.py [--interactions 20000000] [--factors 64] [--out DIR]

Data: the built-in generator (1M users x 100k items at 20M, Zipf-like, as benchmarks/scale.py),
generated on the spot. For BiasedMF (minibatch SGD on CUDA), ImplicitALS (batched CG on CUDA) and
BPR, it times ``fit`` of one epoch after a warm-up fit, with ``torch.cuda.synchronize()`` around
the timed part, and reports peak GPU memory. It also fits each model for a few epochs on a
held-out split of the same data on the GPU and on the CPU and reports both scores, so the GPU
path is checked for quality, not only speed. Writes ``gpu.json`` to --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def _timed_epoch(make: Any, data: Any) -> dict[str, float]:
    import torch

    make().fit(data, show_progress=False)  # warm-up: CUDA context, kernels, allocator
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    make().fit(data, show_progress=False)
    torch.cuda.synchronize()
    return {"seconds": time.perf_counter() - started,
            "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=int, default=20_000_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)

    import torch

    from latentrec import BPR, BiasedMF, ImplicitALS, evaluate, random_split, user_holdout
    from latentrec.datasets import synthetic

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run this on a GPU machine")
    scale = args.interactions / 20_000_000
    shape = (max(1000, int(1_000_000 * scale)), max(500, int(100_000 * scale)))
    started = time.perf_counter()
    explicit = synthetic(*shape, n_interactions=args.interactions, seed=0)
    implicit = synthetic(*shape, n_interactions=args.interactions, feedback="implicit", seed=0)
    report: dict[str, Any] = {"device": torch.cuda.get_device_name(),
                              "torch": torch.__version__, "interactions": args.interactions,
                              "factors": args.factors,
                              "generate_s": time.perf_counter() - started, "epoch": {},
                              "quality": {}}
    k = args.factors
    contenders = {
        "BiasedMF (minibatch SGD, batch 262144)": (lambda: BiasedMF(
            factors=k, epochs=1, device="cuda", engine="minibatch", optimizer="sgd",
            batch_size=262_144, lr=0.05), explicit),
        "ImplicitALS (CG, 3 steps)": (lambda: ImplicitALS(
            factors=k, epochs=1, device="cuda", report_loss=False), implicit),
        "BPR (batch 4096 defaults)": (lambda: BPR(factors=k, epochs=1, device="cuda"),
                                       implicit),
        "BPR (batch 262144)": (lambda: BPR(factors=k, epochs=1, device="cuda",
                                           batch_size=262_144, lr=0.05), implicit),
    }
    for name, (make, data) in contenders.items():
        report["epoch"][name] = _timed_epoch(make, data)
        print(f"{name}: {report['epoch'][name]}", flush=True)

    # quality: the GPU path against the CPU path on a smaller sample of the same generator
    small = synthetic(20_000, 5_000, n_interactions=1_000_000, seed=1)
    train, test = random_split(small, 0.1, seed=0)
    small_implicit = synthetic(20_000, 5_000, n_interactions=1_000_000, feedback="implicit",
                               seed=1)
    itrain, itest = user_holdout(small_implicit, 0.2, seed=0)
    checks = {
        "BiasedMF rmse": (lambda device: BiasedMF(factors=32, epochs=20, device=device),
                          train, test, "rmse"),
        "ImplicitALS ndcg@10": (lambda device: ImplicitALS(factors=32, device=device),
                                itrain, itest, "ndcg@10"),
        "BPR ndcg@10": (lambda device: BPR(factors=32, epochs=20, device=device),
                        itrain, itest, "ndcg@10"),
    }
    for name, (make, fit_on, score_on, metric) in checks.items():
        scores = {}
        for device in ("cpu", "cuda"):
            model = make(device).fit(fit_on, show_progress=False)
            table = evaluate(model, score_on, metrics=[metric.split("@")[0]], k=10)
            scores[device] = float(table.set_index("metric")["value"][metric])
        report["quality"][name] = scores
        print(f"{name}: {scores}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

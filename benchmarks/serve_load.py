"""Load test of `latentrec serve` on loopback with wrk: throughput and latency percentiles.

    python benchmarks/serve_load.py [--items 10000] [--users 20000] [--workers 2]
                                    [--seconds 15] [--connections 16] [--threads 1]
    python benchmarks/serve_load.py --items 1000000 --users 100000 --ann ivf

With --ann the model is an ImplicitALS (its scores are pure inner products, the hard case
for an index) and the script first measures recall@10 of the index against exact search on
1,000 random users.

Trains a BiasedMF on built-in synthetic data with the given catalogue size, saves it, starts
`latentrec serve` as a subprocess on a free loopback port, and drives
`GET /v1/users/{random user}/recommendations?k=10` with wrk (Debian package `wrk`) for a
bounded time. Reports requests/s, p50/p90/p99 latency and every non-2xx or socket error.
Client and server share this machine's cores, so the result is a lower bound for the server.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import machine, save

LUA = """
math.randomseed(42)
request = function()
  return wrk.format("GET", "/v1/users/" .. math.random(0, {last}) .. "/recommendations?k=10")
end
done = function(summary, latency, requests)
  io.write(string.format("LATENCY p50=%d p90=%d p99=%d max=%d\\n",
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
  io.write(string.format("ERRORS connect=%d read=%d write=%d status=%d timeout=%d\\n",
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
  io.write(string.format("TOTAL requests=%d seconds=%f\\n", summary.requests,
    summary.duration / 1e6))
end
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ann", choices=["ivf", "hnsw"], default=None)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")

    import numpy as np

    from latentrec import BiasedMF, ImplicitALS
    from latentrec.datasets import synthetic

    folder = Path(tempfile.mkdtemp(prefix="latentrec-load-"))
    recall = None
    if args.ann is None:
        data = synthetic(args.users, args.items, n_interactions=args.users * 20, seed=0)
        model = BiasedMF(factors=args.factors, epochs=3).fit(data, show_progress=False)
    else:
        from latentrec.models.ann import ItemIndex

        data = synthetic(args.users, args.items, n_interactions=args.users * 20,
                         feedback="implicit", seed=0)
        model = ImplicitALS(factors=args.factors, epochs=3).fit(data, show_progress=False)
        probe_users = np.random.default_rng(0).choice(model.n_users, 1000, replace=False)
        exact, _ = model.top_k_indices(probe_users, 10)
        started = time.perf_counter()
        index = ItemIndex(model, method=args.ann)
        build_s = time.perf_counter() - started
        approx, _ = model.use_index(index).top_k_indices(probe_users, 10)
        model.use_index(None)
        recall = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact,
                                                                            strict=True)]))
        print(f"index {args.ann}: recall@10 {recall:.4f} vs exact, built in {build_s:.1f} s")
    model.save(folder / "m")
    del model, data
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread per worker: no oversubscription
    server = subprocess.Popen(
        [sys.executable, "-m", "latentrec.cli.main", "serve", str(folder / "m"), "--port",
         str(port), "--workers", str(args.workers),
         *(["--ann", args.ann] if args.ann else [])], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(1500):
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        script = folder / "load.lua"
        script.write_text(LUA.replace("{last}", str(args.users - 1)))
        # warm-up, then the measured run
        subprocess.run(["wrk", "-t1", "-c4", "-d2s", "-s", str(script), url],
                       capture_output=True, check=True)
        done = subprocess.run(
            ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s",
             "--timeout", "5s", "-s", str(script), url],
            capture_output=True, text=True, check=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
    output = done.stdout
    latency = dict(re.findall(r"(p50|p90|p99|max)=(\d+)", output))
    errors = {k: int(v) for k, v in re.findall(r"(connect|read|write|status|timeout)=(\d+)",
                                               output)}
    total = re.search(r"TOTAL requests=(\d+) seconds=([\d.]+)", output)
    assert total is not None, output
    requests, seconds = int(total.group(1)), float(total.group(2))
    result = {
        "items": args.items, "users": args.users, "factors": args.factors,
        "workers": args.workers, "connections": args.connections,
        "requests": requests, "requests_per_s": requests / seconds,
        "p50_ms": int(latency["p50"]) / 1000, "p90_ms": int(latency["p90"]) / 1000,
        "p99_ms": int(latency["p99"]) / 1000, "max_ms": int(latency["max"]) / 1000,
        "errors": errors, "non_2xx": errors.get("status", 0), "ann": args.ann,
        "ann_recall_at_10": recall,
    }
    print(f"{result['requests_per_s']:.0f} requests/s, p50 {result['p50_ms']:.2f} ms, "
          f"p99 {result['p99_ms']:.2f} ms, errors {errors}")
    name = f"serve_load_{args.items}_c{args.connections}" + (f"_{args.ann}" if args.ann else "")
    save(name, {"machine": machine(), "result": result, "wrk": output})


if __name__ == "__main__":
    main()

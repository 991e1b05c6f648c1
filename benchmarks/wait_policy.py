"""OpenMP wait policy A/B: BPR (PyTorch loop) and ImplicitALS (numba kernel) fit times.

    python benchmarks/wait_policy.py [--contended]

Runs the same small fits in fresh processes with ``OMP_WAIT_POLICY=ACTIVE`` and ``PASSIVE``;
``--contended`` keeps one busy Python process running beside them (another job on the cores).
Data: the built-in generator (BPR: 1,000 users x 1,700 items, 80k interactions, 10 epochs;
ImplicitALS defaults: 2,000 x 15,000, 74k interactions, timed after a warm-up fit).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CHILD = """
import time
from latentrec import BPR, ImplicitALS
from latentrec.datasets import synthetic
data = synthetic(1000, 1700, n_interactions=80000, feedback="implicit", seed=0)
started = time.perf_counter(); BPR(epochs=10).fit(data, show_progress=False)
bpr = time.perf_counter() - started
wide = synthetic(2000, 15000, n_interactions=74000, feedback="implicit", seed=0)
ImplicitALS().fit(wide, show_progress=False)
started = time.perf_counter(); ImplicitALS().fit(wide, show_progress=False)
print(f"BPR 10 epochs {bpr:.2f} s, ImplicitALS {time.perf_counter() - started:.2f} s")
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contended", action="store_true")
    args = parser.parse_args(argv)
    busy = (subprocess.Popen([sys.executable, "-c", "while True: pass"])
            if args.contended else None)
    try:
        for policy in ("ACTIVE", "PASSIVE"):
            done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                                  check=True, env={**os.environ, "OMP_WAIT_POLICY": policy})
            print(f"OMP_WAIT_POLICY={policy}: {done.stdout.strip()}")
    finally:
        if busy is not None:
            busy.kill()


if __name__ == "__main__":
    main()

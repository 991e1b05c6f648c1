"""Rating prediction on MovieLens 100K (u1.base / u1.test): latentrec and peers side by side.

    python benchmarks/ml100k_explicit.py [--data-dir ../shared/datasets] [--repeats 3]

A thin wrapper over the package's harness (``latentrec bench explicit`` runs the same code);
results go to benchmarks/results/ml100k_explicit.json and .png (``_partial`` with --only).

Protocol (the one in ../shared/PEERS.md): fit on u1.base, RMSE/MAE on u1.test with predictions
clipped to [1, 5]; ratings of users/items absent from u1.base are predicted with each library's
fallback (32 test ratings have such items). Each contender runs in its own process. fit_s is the
median of up to 3 fits (training only: no imports, no reading, numba compilation excluded by a
warm-up fit); peak_mb is the process's peak resident memory after fitting. Tuned settings
(latentrec.bench._suites) were chosen on a validation split carved from u1.base
(benchmarks/tune_ml100k.py), never on u1.test.
"""

from __future__ import annotations

import argparse
import sys

from _common import write_suite

from latentrec.bench import run_suite


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=None, help="run entries whose name contains this")
    args = parser.parse_args(argv)

    result = run_suite("explicit", data_dir=args.data_dir, repeats=args.repeats,
                       only=[args.only] if args.only else [],
                       progress=lambda line: print(line, file=sys.stderr))
    result.command = "python benchmarks/ml100k_explicit.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    write_suite(result, "ml100k_explicit" + ("_partial" if args.only else ""))

if __name__ == "__main__":
    main()

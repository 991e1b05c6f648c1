"""Top-N recommendation from implicit feedback: latentrec and peers on the same split and metrics.

    python benchmarks/implicit_topn.py --dataset ml-100k [--data-dir ../shared/datasets]
    python benchmarks/implicit_topn.py --dataset lastfm
    python benchmarks/implicit_topn.py --dataset gowalla --k 20

A thin wrapper over the package's harness (``latentrec bench implicit`` runs the same code);
results go to benchmarks/results/implicit_<dataset>.json and .png (``_partial`` with --only).

Protocol (../shared/PEERS.md, section B): ml-100k uses every rating as an interaction and
Last.fm its play counts as weights, split per user 80/20 (seed 42); Gowalla uses the NGCF /
LightGCN train/test files as published. Every model ranks the full catalogue with the user's
training items excluded, and every model's top-k lists are scored by the same code
(latentrec.metrics). Each contender runs in its own process; fit_s times one fit (after an
untimed warm-up fit on a slice for latentrec's models, which compiles the numba kernels).
Hyper-parameters marked "tuned" were chosen on a validation split carved from the training
part only (benchmarks/tune_implicit.py), never on the test part.
"""

from __future__ import annotations

import argparse
import sys

from _common import write_suite

from latentrec.bench import SUITE_DATASETS, run_suite


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=SUITE_DATASETS["implicit"], default="ml-100k")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--only", default=None, help="run entries whose name contains this")
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args(argv)

    result = run_suite("implicit", dataset=args.dataset, data_dir=args.data_dir, k=args.k,
                       peers=not args.no_peers, only=[args.only] if args.only else [],
                       progress=lambda line: print(line, file=sys.stderr))
    result.command = "python benchmarks/implicit_topn.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    write_suite(result, f"implicit_{args.dataset}" + ("_partial" if args.only else ""))


if __name__ == "__main__":
    main()

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
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from _common import RESULTS

from latentrec.bench import (
    SUITE_DATASETS,
    TUNED_IMPLICIT,
    load_split,
    run_suite,
    score_top_k,
    write_results,
)

# tune_implicit.py imports _read_adjacency, load, relevant_matrix and score from here
from latentrec.bench import relevant_matrix as relevant_matrix
from latentrec.bench._data import _read_adjacency as _read_adjacency

# the settings live in the package; tune_implicit.py's docstring points here
TUNED = TUNED_IMPLICIT


def load(dataset: str, root: Path) -> tuple[Any, Any]:
    """(train, test) of ``dataset``, split exactly as the benchmark splits it."""
    return load_split("implicit", dataset, root)


def score(top: np.ndarray, relevant: sp.csr_matrix, n_items: int, k: int) -> dict[str, float]:
    return score_top_k(top, relevant, n_items, k)


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
    print(result.to_markdown())
    name = f"implicit_{args.dataset}" + ("_partial" if args.only else "")
    written = write_results(result, RESULTS, name)
    if written.plot_skipped:
        print(f"skipping the plot: {written.plot_skipped}", file=sys.stderr)
    print(f"\nwritten {written.json}" + (f" and {written.plot}" if written.plot else ""),
          file=sys.stderr)


if __name__ == "__main__":
    main()

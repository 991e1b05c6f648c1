"""Time and peak memory of one epoch of BPR's full softmax (``negatives=0``) on a catalogue.

    python benchmarks/full_softmax_cost.py [--users 30000] [--items 40000]
                                           [--interactions 400000] [--budget N]

Uniformly random implicit interactions (seed 0, repeats dropped), one epoch of
``BPR(loss="softmax", negatives=0)`` at its defaults (64 factors, batches of 4096) on one
thread. ``--budget`` overrides ``SOFTMAX_SCORE_BUDGET`` (the most user x item scores scored at
once; above it a batch is scored in chunks recomputed in the backward pass). Peak memory is
the process's maximum resident set size, so run one budget per process to compare them.
"""

from __future__ import annotations

import resource
import time

from _common import doc_parser


def main(argv: list[str] | None = None) -> None:
    parser = doc_parser(__doc__)
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument("--items", type=int, default=40_000)
    parser.add_argument("--interactions", type=int, default=400_000)
    parser.add_argument("--budget", type=int, default=None,
                        help="user x item scores at once [default: the library's]")
    args = parser.parse_args(argv)
    for name in ("users", "items", "interactions"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.budget is not None and args.budget < 1:
        parser.error("--budget must be at least 1")

    import numpy as np
    import torch

    from latentrec import BPR, Interactions
    from latentrec.models import _bpr_trainable

    torch.set_num_threads(1)
    if args.budget is not None:
        _bpr_trainable.SOFTMAX_SCORE_BUDGET = args.budget
    rng = np.random.default_rng(0)
    data = Interactions.from_arrays(rng.integers(0, args.users, args.interactions),
                                    rng.integers(0, args.items, args.interactions), None,
                                    feedback="implicit", duplicates="last")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    BPR(loss="softmax", negatives=0, epochs=1, device="cpu").fit(data, show_progress=False)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{data.n_users:,} users x {data.n_items:,} items, {len(data):,} interactions, "
          f"budget {_bpr_trainable.SOFTMAX_SCORE_BUDGET:,} scores: one epoch {seconds:.0f} s, "
          f"peak RSS {peak / 1024:.0f} MiB ({before / 1024:.0f} MiB before the fit)")


if __name__ == "__main__":
    main()

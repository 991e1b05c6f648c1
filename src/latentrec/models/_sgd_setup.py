"""What one-process and distributed SGD training of BiasedMF share: how the initial factors
are drawn, and from how many ratings the kernel stops shuffling rows inside a block."""

from __future__ import annotations

import numpy as np

__all__ = ["PARALLEL_FROM", "normal_rows"]

#: ratings from which the kernel runs the parallel blocked schedule by default (and DSGD runs
#: each block in user order)
PARALLEL_FROM = 1_000_000


def normal_rows(generator: np.random.Generator, rows: int, columns: int,
                 std: float) -> np.ndarray:
    """float32 ``N(0, std^2)`` draws, the same as one float64 draw cast down, made in chunks so
    no float64 copy of the whole matrix exists (100M ratings: 2.5 GB less at the peak)."""
    out = np.empty((rows, columns), dtype=np.float32)
    for start in range(0, rows, 1 << 16):
        stop = min(rows, start + (1 << 16))
        out[start:stop] = generator.standard_normal((stop - start, columns)) * std
    return out

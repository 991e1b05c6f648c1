"""Seeds in, generators out: configs hold seeds, never generators."""

from __future__ import annotations

import numpy as np
import torch


def numpy_rng(seed: int | None) -> np.random.Generator:
    return np.random.default_rng(seed)


def torch_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def derive_seed(seed: int | None, stream: int) -> int | None:
    """An independent, reproducible seed for a sub-task (``None`` stays ``None``)."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])

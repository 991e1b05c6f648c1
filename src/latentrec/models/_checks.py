"""Checks of what a model is given or loads: memory for factor tables, saved sparse matrices,
rating ranges."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import scipy.sparse as sp
import torch

from latentrec.errors import ModelFileError
from latentrec.persistence import finite_number

__all__ = ["bytes_text", "physical_memory", "saved_csr", "saved_range", "within_range"]


def physical_memory() -> int | None:
    """This machine's memory in bytes (a cgroup v2 limit when lower); ``None`` when unknown."""
    total: int | None = None
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        try:
            import psutil  # type: ignore[import-untyped]

            total = int(psutil.virtual_memory().total)
        except ImportError:
            return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return total
    if limit.isdigit() and (total is None or int(limit) < total):
        return int(limit)
    return total


def bytes_text(count: int) -> str:
    size = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def saved_csr(tensors: dict[str, torch.Tensor], prefix: str, shape: tuple[int, int],
              what: str) -> sp.csr_matrix:
    """The CSR matrix saved as ``{prefix}_indptr/_indices/_values`` (removed from ``tensors``),
    checked: integer indices inside ``shape``, row pointers from 0, non-decreasing, ending at
    the number of entries, finite float32 values. Raises :class:`ModelFileError`."""
    indptr = tensors.pop(f"{prefix}_indptr")
    indices = tensors.pop(f"{prefix}_indices")
    values = tensors.pop(f"{prefix}_values")
    if (indptr.dtype != torch.int64 or indices.dtype != torch.int64
            or values.dtype != torch.float32 or indptr.ndim != 1 or indices.ndim != 1
            or values.ndim != 1):
        raise ModelFileError(f"the {what} has the wrong tensor types")
    if (len(indptr) != shape[0] + 1 or int(indptr[0]) != 0 or int(indptr[-1]) != len(indices)
            or len(values) != len(indices) or bool((indptr[1:] < indptr[:-1]).any())
            or (len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= shape[1]))):
        raise ModelFileError(f"the {what} does not match the id maps")
    if not bool(torch.isfinite(values).all()):
        raise ModelFileError(f"the {what} holds NaN or infinite values")
    return sp.csr_matrix((values.numpy(), indices.numpy(), indptr.numpy()), shape=shape)


def saved_range(value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise ModelFileError(f"rating_range is {value!r}; expected [low, high]")
    low = finite_number(value[0], "rating_range[0]")
    high = finite_number(value[1], "rating_range[1]")
    if low > high:
        raise ModelFileError(f"rating_range is {value!r}; expected [low, high] with low <= high")
    return low, high


def within_range(number: float, bounds: tuple[float, float]) -> bool:
    """``number`` within ``bounds``, allowing float32 rounding."""
    low, high = bounds
    slack = 1e-5 * max(1.0, abs(low), abs(high))
    return low - slack <= number <= high + slack

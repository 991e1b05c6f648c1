"""Sparse-matrix helpers shared by the neighbourhood models."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from latentrec.data import Interactions


def weights_matrix(data: Interactions, weighting: str) -> sp.csr_matrix:
    """Users x items matrix of the interaction strengths used by the neighbourhood models."""
    matrix = data.to_csr().astype(np.float32)
    if weighting == "binary":
        matrix.data[:] = 1.0
    elif weighting == "log":
        matrix.data = np.log1p(matrix.data).astype(np.float32)
    elif weighting == "bm25":
        # BM25 on the item columns: frequent users count less, long user rows are normalised
        k1, b = 1.2, 0.75
        n_users = matrix.shape[0]
        per_item = np.bincount(matrix.indices, minlength=matrix.shape[1])
        idf = np.log(n_users / (1.0 + per_item)).astype(np.float32)
        row_length = np.diff(matrix.indptr)
        norm = k1 * (1.0 - b + b * row_length / max(1.0, row_length.mean()))
        rows = np.repeat(np.arange(n_users), row_length)
        values = matrix.data
        matrix.data = (values * (k1 + 1.0) / (values + norm[rows]) * idf[matrix.indices]
                       ).astype(np.float32)
    return matrix


def user_rows(matrix: sp.csr_matrix, user_index: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(matrix[user_index].toarray())

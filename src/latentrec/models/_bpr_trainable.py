"""The trainable of :class:`~latentrec.BPR`: minibatches of positives with sampled negatives
(its own module, so that the distributed trainer can extend it without importing the model).

With side features a side's vectors are its own embeddings plus the weighted sums of its
features' embeddings (:class:`FeatureEmbeddings`, one design-matrix row per id); without
features the arithmetic and the random draws are exactly those of the plain model.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from latentrec._rng import derive_seed, torch_generator
from latentrec.data import Interactions
from latentrec.models._nn import FactorModule
from latentrec.models.base import Side
from latentrec.models.factor import FactorModel, hybrid_table
from latentrec.training.minibatch import SPARSE_OPTIMIZERS, MinibatchLoop, resolve_device

__all__ = ["SOFTMAX_SCORE_BUDGET", "BPRTrainable", "FeatureEmbeddings"]

#: the full softmax scores a batch's users in chunks of at most this many user x item scores,
#: each recomputed in the backward pass instead of kept (2^26 floats, 256 MiB: a few such
#: tensors live at once), so memory stays bounded on any catalogue. The recomputation costs
#: time (an epoch on 30k users x 40k items: 462 s chunked at 2^24 against 325 s at once, peak
#: memory 0.9 against 2.9 GiB), so a batch that fits in one chunk is computed as one
SOFTMAX_SCORE_BUDGET = 1 << 26


class FeatureEmbeddings(nn.Module):
    """The embeddings (and optionally biases) of one side's feature columns, with that side's
    design matrix: :meth:`rows` gives ids' feature vectors, gathered from the CSR rows in
    one vectorised pass (no loop over ids).

    ``own_used`` (``identity=False``): per id, 1.0 when the id keeps its own embedding (it has
    no feature) and 0.0 when its features alone represent it; ``None``: every id keeps it.
    """

    def __init__(self, matrix: sp.csr_matrix, factors: int, *, bias: bool, sparse: bool,
                 init_std: float, generator: torch.Generator, identity: bool) -> None:
        super().__init__()
        matrix = sp.csr_matrix(matrix, dtype=np.float32)
        matrix.sort_indices()
        self.matrix = matrix
        self.sparse = sparse
        self.factors = nn.Parameter(torch.empty(matrix.shape[1], factors))
        with torch.no_grad():
            self.factors.normal_(0.0, init_std, generator=generator)
        self.bias = nn.Parameter(torch.zeros(matrix.shape[1], 1)) if bias else None
        # the design matrix as plain tensors (not buffers: the state holds only what is
        # learned, and the matrix comes back with the data)
        self.indptr = torch.from_numpy(matrix.indptr.astype(np.int64))
        self.columns = torch.from_numpy(matrix.indices.astype(np.int64))
        self.weights = torch.from_numpy(matrix.data)
        row_of = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
        self.design = torch.sparse_coo_tensor(
            torch.from_numpy(np.vstack([row_of, matrix.indices]).astype(np.int64)),
            self.weights, matrix.shape, is_coalesced=True, check_invariants=False)
        self.design_abs = torch.sparse_coo_tensor(
            self.design.indices(), self.weights.abs(), matrix.shape, is_coalesced=True,
            check_invariants=False)
        self.own_used: torch.Tensor | None = None
        if not identity:
            self.own_used = torch.from_numpy((np.diff(matrix.indptr) == 0).astype(np.float32))

    def _apply(self, fn: Any, recurse: bool = True) -> FeatureEmbeddings:
        # .to(device) moves the design matrix with the parameters
        super()._apply(fn, recurse)
        self.indptr, self.columns, self.weights, self.design, self.design_abs = (
            fn(t) for t in (self.indptr, self.columns, self.weights, self.design,
                            self.design_abs))
        if self.own_used is not None:
            self.own_used = fn(self.own_used)
        return self

    def rows(self, index: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """For ids ``index`` (1-d): their features' summed vectors, summed biases (``None``
        without biases) and the penalty ``sum_f |x_f| * ||e_f||^2``."""
        starts = self.indptr[index]
        lengths = self.indptr[index + 1] - starts
        row_of = torch.repeat_interleave(torch.arange(len(index), device=index.device),
                                         lengths)
        first = torch.cumsum(lengths, 0) - lengths
        positions = starts[row_of] + torch.arange(len(row_of), device=index.device) - first[
            row_of]
        columns, weights = self.columns[positions], self.weights[positions]
        gathered = F.embedding(columns, self.factors, sparse=self.sparse)
        width = self.factors.shape[1]
        vectors = torch.zeros(len(index), width, device=index.device).index_add(
            0, row_of, gathered * weights[:, None])
        penalty = torch.zeros(len(index), device=index.device).index_add(
            0, row_of, weights.abs() * gathered.pow(2).sum(-1))
        bias = None
        if self.bias is not None:
            gathered_bias = F.embedding(columns, self.bias, sparse=self.sparse)[:, 0]
            bias = torch.zeros(len(index), device=index.device).index_add(
                0, row_of, gathered_bias * weights)
        return vectors, bias, penalty

    def whole(self, own: torch.Tensor, own_bias: torch.Tensor | None
              ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Every id's whole vector, bias and penalty from the side's own tables ``own`` and
        ``own_bias`` (with gradient): cheaper than :meth:`rows` when a batch touches about
        as many rows as the side has (dense gradients: not for sparse optimizers)."""
        own_penalty = own.pow(2).sum(-1)
        if self.own_used is not None:
            own, own_penalty = own * self.own_used[:, None], own_penalty * self.own_used
            own_bias = None if own_bias is None else own_bias * self.own_used
        vectors = own + torch.sparse.mm(self.design, self.factors)
        penalty = own_penalty + torch.sparse.mm(
            self.design_abs, self.factors.pow(2).sum(-1, keepdim=True))[:, 0]
        bias = None
        if self.bias is not None and own_bias is not None:
            bias = own_bias + torch.sparse.mm(self.design, self.bias)[:, 0]
        return vectors, bias, penalty

    def table(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Every id's features' vectors and biases (no gradient): ``X @ E``, ``X @ b``."""
        vectors = torch.sparse.mm(self.design, self.factors.detach())
        bias = None
        if self.bias is not None:
            bias = torch.sparse.mm(self.design, self.bias.detach()).reshape(-1)
        return vectors, bias


class BPRTrainable:
    """One process's BPR (sampled-softmax, WARP) training by torch minibatches."""

    #: by side, the features' embeddings (empty: no features, the plain model)
    features: Mapping[Side, FeatureEmbeddings] = MappingProxyType({})
    #: this batch's whole item tables (vectors, biases, penalties), built at most once
    _batch_items: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor] | None = None

    def __init__(self, model: FactorModel, data: Interactions) -> None:
        config = model.config
        self.model = model
        self.config = config
        device = resolve_device(config.device)
        self.device = device
        self.n_items = data.n_items
        sparse = config.optimizer in SPARSE_OPTIMIZERS
        generator = torch_generator(config.seed)
        self.module = FactorModule(
            data.n_users, data.n_items, config.factors, biases=True, sparse=sparse,
            init_std=config.init_std, global_mean=0.0, generator=generator,
        ).to(device)
        features: dict[Side, FeatureEmbeddings] = {}
        for side in ("users", "items"):
            matrix = model._feature_matrix(side)
            if matrix is not None:  # drawn after the ids' embeddings, from the same stream
                features[side] = FeatureEmbeddings(
                    matrix, config.factors, bias=side == "items", sparse=sparse,
                    init_std=config.init_std, generator=generator,
                    identity=getattr(config, "identity", True)).to(device)
        trained: nn.Module = self.module
        if features:
            self.features = features
            trained = nn.ModuleList([self.module, *features.values()])
        self.users = torch.from_numpy(data.user_index).to(device)
        self.items = torch.from_numpy(data.item_index).to(device)
        self.positive_keys = torch.sort(self.users * data.n_items + self.items).values
        counts = torch.from_numpy(data.item_counts().astype(np.float64))
        if config.sampling == "popularity":
            probabilities = counts.pow(0.75)
        else:
            probabilities = torch.ones(data.n_items, dtype=torch.float64)
        self.probabilities = (probabilities / probabilities.sum()).to(torch.float32).to(device)
        self.log_probabilities = torch.log(self.probabilities.clamp_min(1e-12))
        self.sampler = torch_generator(derive_seed(config.seed, 2), device)
        self.loop = MinibatchLoop(trained, self._loss, len(data), config.optimizer,
                                  config.lr, config.batch_size, lr_decay=config.lr_decay,
                                  seed=derive_seed(config.seed, 1), device=device)

    # ------------------------------------------------------------------ sampling
    def _sample(self, users: torch.Tensor, count: int) -> torch.Tensor:
        shape = (len(users), count)
        if self.config.sampling == "uniform":
            negatives = torch.randint(0, self.n_items, shape, generator=self.sampler,
                                      device=self.device)
        else:
            negatives = torch.multinomial(self.probabilities, len(users) * count,
                                          replacement=True, generator=self.sampler
                                          ).reshape(shape)
        # redraw (once) the samples that are in fact positives of the user
        keys = users[:, None] * self.n_items + negatives
        found = torch.searchsorted(self.positive_keys, keys).clamp_max(
            len(self.positive_keys) - 1)
        clash = self.positive_keys[found] == keys
        if bool(clash.any()):
            redraw = torch.randint(0, self.n_items, (int(clash.sum()),), generator=self.sampler,
                                   device=self.device)
            negatives[clash] = redraw
        return negatives

    def _scores(self, user_vectors: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
        """Scores (no gradient) of the items ``pool`` (users x ...) for the users' vectors."""
        module = self.module
        assert module.item_bias is not None
        with torch.no_grad():
            if "items" not in self.features:
                vectors = module.item_factors.weight[pool]
                bias = module.item_bias.weight[pool, 0]
            elif pool.numel() >= self.n_items:  # cheaper to build every item's vector once
                table, table_bias = self._item_table()
                vectors, bias = table[pool], table_bias[pool]
            else:
                flat, flat_bias, _ = self._item_vectors(pool.reshape(-1))
                vectors = flat.reshape(*pool.shape, -1)
                bias = flat_bias.reshape(pool.shape)
            inner = user_vectors.detach().reshape(len(pool), *([1] * (pool.ndim - 1)), -1)
            scores: torch.Tensor = (inner * vectors).sum(-1) + bias
        return scores

    def _negatives(self, users: torch.Tensor, user_vectors: torch.Tensor) -> torch.Tensor:
        """``negatives`` items per user: sampled, or the hardest of ``candidates`` samples."""
        config = self.config
        if config.candidates == 1:
            return self._sample(users, config.negatives)
        pool = self._sample(users, config.negatives * config.candidates).reshape(
            len(users), config.negatives, config.candidates)
        hardest = self._scores(user_vectors, pool).argmax(dim=-1, keepdim=True)
        return pool.gather(2, hardest).squeeze(2)

    # ------------------------------------------------------------------ hybrid vectors
    def _user_vectors(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The users' whole vectors and their L2 penalty (``None``: the vectors' squared
        norms, computed where the plain model computes them; see :func:`_penalty`)."""
        side = self.features.get("users")
        if side is None:
            return self.module.user_factors(users), None
        if self._whole("users", users):
            vectors, _, penalty = side.whole(self.module.user_factors.weight, None)
            return vectors[users], penalty[users]
        vectors, _, penalty = _combine(self.module.user_factors(users), side, users)
        return vectors, penalty

    def _item_vectors(self, items: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The items' (any shape) whole vectors, biases and L2 penalty (as
        :meth:`_user_vectors`)."""
        module = self.module
        assert module.item_bias is not None
        side = self.features.get("items")
        if side is not None and self._whole("items", items):
            if self._batch_items is None:  # once per batch: positives and negatives share it
                self._batch_items = side.whole(module.item_factors.weight,
                                               module.item_bias.weight[:, 0])
            table, table_bias, table_penalty = self._batch_items
            assert table_bias is not None
            return table[items], table_bias[items], table_penalty[items]
        own = module.item_factors(items)
        own_bias = module.item_bias(items).squeeze(-1)
        if side is None:
            return own, own_bias, None
        flat = items.reshape(-1)
        vectors, bias, penalty = _combine(own.reshape(len(flat), -1), side, flat,
                                          own_bias.reshape(-1))
        assert bias is not None
        return (vectors.reshape(own.shape), bias.reshape(items.shape),
                penalty.reshape(items.shape))

    def _whole(self, side: Side, index: torch.Tensor) -> bool:
        """Whether to build every id's vector of ``side`` for a batch that looks up
        ``index``: with a dense optimizer, when the batch touches at least half as many
        rows as the side has (a sparse product instead of gathering each row's features)."""
        count = self.module.user_factors.num_embeddings if side == "users" else self.n_items
        return not self.features[side].sparse and 2 * index.numel() >= count

    def _item_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every item's whole vector and bias (no gradient)."""
        module = self.module
        assert module.item_bias is not None
        own = module.item_factors.weight.detach()
        own_bias = module.item_bias.weight.detach().reshape(-1)
        side = self.features.get("items")
        if side is None:
            return own, own_bias
        vectors, bias = side.table()
        assert bias is not None
        if side.own_used is not None:
            own, own_bias = own * side.own_used[:, None], own_bias * side.own_used
        return own + vectors, own_bias + bias

    # ------------------------------------------------------------------ losses
    def _loss(self, rows: torch.Tensor) -> torch.Tensor:
        config = self.config
        self._batch_items = None
        users, positives = self.users[rows], self.items[rows]
        if config.negatives == 0:
            return self._full_softmax_loss(users, positives)
        user_vectors, user_penalty = self._user_vectors(users)
        if config.loss == "warp-kos":
            positives = self._kth_positives(users, user_vectors)
        if config.loss in ("warp", "warp-kos"):
            return self._warp_loss(users, positives, user_vectors, user_penalty)
        negatives = self._negatives(users, user_vectors)
        positive_vectors, positive_bias, positive_penalty = self._item_vectors(positives)
        negative_vectors, negative_bias, negative_penalty = self._item_vectors(negatives)
        positive_scores = (user_vectors * positive_vectors).sum(-1) + positive_bias
        negative_scores = (user_vectors[:, None, :] * negative_vectors).sum(-1) + (
            negative_bias)
        if config.loss == "bpr":
            loss = -F.logsigmoid(positive_scores[:, None] - negative_scores).mean()
        else:
            corrected = negative_scores - self.log_probabilities[negatives]
            logits = torch.cat([positive_scores[:, None] - self.log_probabilities[positives][
                :, None], corrected], dim=1)
            loss = F.cross_entropy(logits, torch.zeros(len(rows), dtype=torch.long,
                                                       device=self.device))
        if config.reg:
            penalty = (_penalty(user_vectors, user_penalty)
                       + _penalty(positive_vectors, positive_penalty)
                       + _penalty(negative_vectors, negative_penalty).mean(-1))
            loss = loss + config.reg * penalty.mean()
        return loss

    def _full_softmax_loss(self, users: torch.Tensor, positives: torch.Tensor
                           ) -> torch.Tensor:
        """``negatives=0``: the cross-entropy of each positive among every item (no sampling,
        so no correction). A user's scores are computed once per batch, however many of
        their interactions it holds. The L2 penalty is the sampled softmax's with uniform
        negatives in expectation: the user's, the positive's and the mean over the items."""
        config = self.config
        distinct, row = torch.unique(users, return_inverse=True)
        user_vectors, user_penalty = self._user_vectors(distinct)
        vectors, bias, penalty = self._item_vectors(
            torch.arange(self.n_items, device=self.device))
        # per distinct user: how many of the batch's interactions are theirs, and the sum of
        # their positives' scores; the loss is sum_u count_u * logsumexp_u - sum of positives
        counts = torch.bincount(row, minlength=len(distinct)).to(vectors.dtype)
        positive_scores = (user_vectors[row] * vectors[positives]).sum(-1) + bias[positives]
        chunk = max(1, SOFTMAX_SCORE_BUDGET // self.n_items)
        if len(distinct) <= chunk:
            normalisers = _logsumexp_scores(user_vectors, vectors, bias)
        else:  # recomputed in the backward pass: only one chunk's scores live at a time
            normalisers = torch.cat([
                checkpoint(_logsumexp_scores, user_vectors[start:start + chunk], vectors, bias,
                           use_reentrant=False)
                for start in range(0, len(distinct), chunk)])
        loss = ((counts * normalisers).sum() - positive_scores.sum()) / len(users)
        if config.reg:
            item_penalty = _penalty(vectors, penalty)
            loss = loss + config.reg * (_penalty(user_vectors, user_penalty)[row].mean()
                                        + item_penalty[positives].mean() + item_penalty.mean())
        return loss

    def _kth_positives(self, users: torch.Tensor, user_vectors: torch.Tensor) -> torch.Tensor:
        """k-OS: per user, the ``kos_k``-th best scored of ``kos_n`` of the user's items drawn
        with replacement (``positive_keys`` holds each user's items as one sorted run)."""
        config = self.config
        first_key = users * self.n_items
        start = torch.searchsorted(self.positive_keys, first_key)
        count = torch.searchsorted(self.positive_keys, first_key + self.n_items) - start
        offsets = (torch.rand((len(users), config.kos_n), generator=self.sampler,
                              device=self.device) * count[:, None]).long()
        drawn = self.positive_keys[start[:, None] + offsets] - first_key[:, None]
        order = self._scores(user_vectors, drawn).argsort(dim=1, descending=True)
        return drawn.gather(1, order[:, config.kos_k - 1:config.kos_k])[:, 0]

    def _warp_loss(self, users: torch.Tensor, positives: torch.Tensor,
                   user_vectors: torch.Tensor, user_penalty: torch.Tensor | None
                   ) -> torch.Tensor:
        """WARP: per positive, the first of ``max_sampled`` drawn items that violates the
        margin, its hinge weighed by ``log(floor((n_items - 1) / draws))``."""
        config = self.config
        positive_vectors, positive_bias, positive_penalty = self._item_vectors(positives)
        positive_scores = (user_vectors * positive_vectors).sum(-1) + positive_bias
        block = self._sample(users, config.max_sampled)
        violates = self._scores(user_vectors, block) > positive_scores.detach()[:, None] - 1.0
        first = violates.to(torch.uint8).argmax(dim=1)
        draws = (first + 1).to(torch.float32)
        rank = torch.floor((self.n_items - 1) / draws).clamp_min(1.0)
        weight = torch.log(rank) * violates.any(dim=1)
        negatives = block.gather(1, first[:, None])[:, 0]
        negative_vectors, negative_bias, negative_penalty = self._item_vectors(negatives)
        negative_scores = (user_vectors * negative_vectors).sum(-1) + negative_bias
        loss = (weight * F.relu(1.0 - positive_scores + negative_scores)).mean()
        if config.reg:
            penalty = (_penalty(user_vectors, user_penalty)
                       + _penalty(positive_vectors, positive_penalty)
                       + _penalty(negative_vectors, negative_penalty))
            loss = loss + config.reg * penalty.mean()
        return loss

    def train_epoch(self) -> dict[str, float]:
        return self.loop.train_epoch()

    # ------------------------------------------------------------------ results and state
    def publish(self) -> None:
        module = self.module
        model = self.model
        assert module.item_bias is not None
        user_factors = module.user_factors.weight.detach().clone()
        item_factors = module.item_factors.weight.detach().clone()
        item_bias = module.item_bias.weight.detach().reshape(-1).clone()
        users, items = self.features.get("users"), self.features.get("items")
        if users is not None:
            user_factors = hybrid_table(_own(user_factors, users), users.matrix,
                                        users.factors.detach())
        if items is not None:
            assert items.bias is not None
            item_factors = hybrid_table(_own(item_factors, items), items.matrix,
                                        items.factors.detach())
            item_bias = hybrid_table(_own(item_bias[:, None], items), items.matrix,
                                     items.bias.detach()).reshape(-1)
        model._set_factors(user_factors, item_factors, None, item_bias, 0.0)
        model.feature_factors_, model.feature_bias_ = {}, {}  # none from an earlier fit
        for side, embeddings in self.features.items():
            model._set_feature_factors(
                side, embeddings.factors.detach().clone(),
                None if embeddings.bias is None else embeddings.bias.detach().reshape(-1).clone())

    def state_dict(self) -> dict[str, Any]:
        state = {"module": {k: v.detach().clone() for k, v in self.module.state_dict().items()},
                 "loop": self.loop.state_dict(), "sampler": self.sampler.get_state()}
        if self.features:
            state["features"] = {side: {k: v.detach().clone()
                                        for k, v in embeddings.state_dict().items()}
                                 for side, embeddings in self.features.items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        for side, embeddings in self.features.items():
            embeddings.load_state_dict(state["features"][side])
        self.loop.load_state_dict(state["loop"])
        self.sampler.set_state(state["sampler"])


def _combine(own: torch.Tensor, side: FeatureEmbeddings, index: torch.Tensor,
             own_bias: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Own embeddings (rows ``index``) plus the features': vectors, biases, penalty."""
    vectors, bias, penalty = side.rows(index)
    own_penalty = own.pow(2).sum(-1)
    if side.own_used is not None:
        used = side.own_used[index]
        own, own_penalty = own * used[:, None], own_penalty * used
        own_bias = None if own_bias is None else own_bias * used
    if own_bias is not None and bias is not None:
        bias = own_bias + bias
    return own + vectors, bias, own_penalty + penalty


def _logsumexp_scores(user_vectors: torch.Tensor, vectors: torch.Tensor,
                      bias: torch.Tensor) -> torch.Tensor:
    """``log sum_i exp(s_ui)`` over every item, per user (a chunk of the full softmax)."""
    return torch.logsumexp(user_vectors @ vectors.T + bias, dim=1)


def _penalty(vectors: torch.Tensor, penalty: torch.Tensor | None) -> torch.Tensor:
    """The L2 penalty of vectors: given (hybrid), or their squared norms (plain), computed
    here, after the scores, in the plain model's order (the gradients add up in the same
    order, so results stay bit for bit those of the model without features)."""
    return vectors.pow(2).sum(-1) if penalty is None else penalty


def _own(table: torch.Tensor, side: FeatureEmbeddings) -> torch.Tensor | None:
    """A side's own embeddings as they enter its ids' vectors (``identity=False``: only for
    ids without features; ``None`` when no id keeps one)."""
    if side.own_used is None:
        return table
    if not bool(side.own_used.any()):
        return None
    used: torch.Tensor = table * side.own_used.to(table)[:, None]
    return used


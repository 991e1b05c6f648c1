"""BPR (Rendle et al. 2009) and sampled-softmax training of factors for top-N ranking."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from latentrec._rng import torch_generator
from latentrec.data import Interactions
from latentrec.errors import InvalidParameterError
from latentrec.models._solvers import SparseRows
from latentrec.models.base import hyperparameters
from latentrec.models.config import EpochConfig
from latentrec.models.factor import FactorModel, Prior
from latentrec.training import RankingValidator, Trainable
from latentrec.training.minibatch import OPTIMIZERS
from latentrec.training.partition import Partition

__all__ = ["BPR"]

LOSSES = ("bpr", "softmax", "warp", "warp-kos")
#: the most items a batch may draw (batch_size x negatives x candidates, or x max_sampled /
#: kos_n): beyond it one batch's draws alone take gigabytes
MAX_BATCH_DRAWS = 1 << 28
SAMPLINGS = ("uniform", "popularity")


@dataclasses.dataclass(frozen=True)
class BPRConfig(EpochConfig):
    """Hyperparameters of :class:`BPR`."""

    epochs: int = 40
    factors: int = 64
    lr: float = 0.02
    reg: float = 0.02
    loss: str = "bpr"
    negatives: int = 1
    candidates: int = 4
    sampling: str = "uniform"
    optimizer: str = "adam"
    batch_size: int = 4096
    init_std: float = 0.1
    lr_decay: float = 0.9
    device: str = "auto"
    max_sampled: int = 10
    kos_k: int = 5
    kos_n: int = 10
    identity: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_positive("factors", "candidates", "batch_size", "max_sampled", "kos_k",
                            "kos_n", integer=True)
        self.check_non_negative("negatives", integer=True)
        if self.negatives == 0 and self.loss != "softmax":
            raise InvalidParameterError(f"negatives=0 (every item a negative) needs "
                                        f"loss='softmax', got loss={self.loss!r}")
        if self.negatives == 0 and self.sampling != "uniform":
            raise InvalidParameterError(f"negatives=0 scores every item, so nothing is "
                                        f"sampled; sampling={self.sampling!r} would be ignored")
        if self.kos_k > self.kos_n:
            raise InvalidParameterError(f"kos_k must be at most kos_n ({self.kos_n}), got "
                                        f"{self.kos_k}")
        self.check_positive("lr", "init_std", "lr_decay")
        self.check_non_negative("reg")
        self.check_flag("identity")
        self.check_choice("loss", LOSSES)
        self.check_choice("sampling", SAMPLINGS)
        self.check_choice("optimizer", OPTIMIZERS)
        if self.loss in ("warp", "warp-kos"):  # one block of max_sampled (k-OS: kos_n too)
            draws = {"max_sampled": self.max_sampled}
            if self.loss == "warp-kos":
                draws["kos_n"] = self.kos_n
            per_interaction = max(draws.values())
        else:
            draws = {"negatives": self.negatives, "candidates": self.candidates}
            per_interaction = self.negatives * self.candidates
        if self.batch_size * per_interaction > MAX_BATCH_DRAWS:
            named = ", ".join(f"{name}={value:,}" for name, value in draws.items())
            raise InvalidParameterError(
                f"batch_size={self.batch_size:,} with {named} draws "
                f"{self.batch_size * per_interaction:,} items per batch, more than "
                f"{MAX_BATCH_DRAWS:,}; lower them")


class BPR(FactorModel):
    """Factors trained to rank a user's items above sampled negatives, from the interactions
    and, optionally, user and item features.

    ``loss="bpr"``: Bayesian personalised ranking, ``-log sigmoid(s_ui - s_uj)`` averaged over
    ``negatives`` sampled items ``j`` per interaction. ``loss="softmax"``: sampled softmax, the
    cross-entropy of the positive among itself and the ``negatives`` sampled items (corrected
    for the sampling distribution; with one uniformly sampled negative it is exactly BPR, so it
    differs only with ``negatives > 1`` or popularity sampling). ``sampling`` draws negatives
    uniformly or in proportion to popularity (``count ** 0.75``); sampled items the user
    already has are redrawn once. ``loss="softmax", negatives=0`` samples nothing: the
    positive's cross-entropy among every item (full softmax; ``sampling`` and ``candidates``
    are not used), at ``n_items`` scores per distinct user of a batch (in chunks that bound
    the memory): meant for catalogues of up to tens of thousands of items. On MovieLens
    100K's cold items (features only) it had the best mean NDCG@10 (docs/features.md, cold
    start).
    With ``candidates > 1`` every negative is the highest-scoring of ``candidates`` sampled
    items (dynamic negative sampling, Zhang et al. 2013): like WARP, training then concentrates
    on the items that compete for the top of the user's list (the sampling correction of
    ``loss="softmax"`` does not account for this choice).

    ``loss="warp"``: weighted approximate-rank pairwise loss (Weston et al. 2011, WSABIE; the
    loss of LightFM). For each interaction ``(u, i)`` up to ``max_sampled`` items are drawn
    (``sampling``, in one block per batch) and the first ``j`` that violates the margin,
    ``s_uj > s_ui - 1``, is taken; the loss is ``log(floor((n_items - 1) / N)) *
    max(0, 1 - s_ui + s_uj)``, where ``N`` is the number of draws it took, so an
    interaction that a violator beats at once (estimated rank near the top of the catalogue
    from below) weighs most. Interactions with no violator among ``max_sampled`` draws are
    already ranked well and add nothing. ``negatives`` and ``candidates`` are not used.
    ``max_sampled=10`` is LightFM's default; larger values find the violators of
    well-ranked interactions too, at ``max_sampled`` scores per interaction and batch.
    ``loss="warp-kos"``: WARP with the k-order-statistic positive (Weston et al. 2013, LightFM's
    ``warp-kos``): for each interaction of user ``u``, ``kos_n`` of ``u``'s items are drawn
    (with replacement) and the ``kos_k``-th best scored of them is the positive that WARP
    pushes up. A small ``kos_k`` favours the items the user's list already ranks high (the
    top of the list), ``kos_k = kos_n`` the worst-ranked (every item the user has).

    Side features (``fit(data, user_features=..., item_features=...)``): a user's (item's)
    vector is its own embedding plus the weighted sum of the embeddings of its features (rows
    of the design matrix); an item's bias likewise sums its own and its features' biases.
    ``identity=False`` drops the own embedding of every id that has features (as LightFM
    without identity features: such ids are represented by their features alone; ids without
    any feature, and sides without features, keep their own). Ids that only the feature tables
    name (cold ids), ``add_items`` and ``add_users`` get their features' vectors; fold-in of a
    new user with features starts from their features' vector and is drawn towards it.

    ``reg`` is an L2 penalty on the vectors of every sampled triple (with features: on the
    own embedding and on each feature embedding, weighed by the absolute value of the
    feature), so frequent users, items and features are penalised more often (the full
    softmax penalises the user, the positive and the mean over all items);
    ``lr_decay`` multiplies the learning rate after every epoch. Scores are
    ``p_u . q_i + b_i``.

    The defaults (4 candidates, ``reg=0.02``, Adam at ``lr=0.02`` decayed by 0.9 per epoch over
    40 epochs of 4096-triple batches) were chosen on a validation split of MovieLens 100K
    (benchmarks/tune_implicit.py); sparse data with a large catalogue (Gowalla) wants a
    weaker ``reg`` (0.005).

    Examples
    --------
    >>> from latentrec import BPR
    >>> from latentrec.datasets import synthetic
    >>> data = synthetic(300, 200, feedback="implicit")
    >>> model = BPR(factors=8, epochs=2).fit(data, show_progress=False)
    >>> len(model.recommend(0, k=3))
    3
    """

    kind = "bpr"
    Config = BPRConfig
    config: BPRConfig
    feedback = "implicit"
    validator = RankingValidator
    feature_sides = ("users", "items")
    quick_params: ClassVar[dict[str, Any]] = {"factors": 4, "epochs": 2, "batch_size": 64}

    def __init__(self, *, epochs: int = 40, patience: int | None = None, seed: int | None = 0,
                 factors: int = 64, lr: float = 0.02, reg: float = 0.02, loss: str = "bpr",
                 negatives: int = 1, candidates: int = 4, sampling: str = "uniform",
                 optimizer: str = "adam", batch_size: int = 4096, init_std: float = 0.1,
                 lr_decay: float = 0.9, device: str = "auto", max_sampled: int = 10,
                 kos_k: int = 5, kos_n: int = 10, identity: bool = True) -> None:
        super().__init__(**hyperparameters(locals()))

    def _trainable(self, data: Interactions) -> Trainable:
        from latentrec.models._bpr_trainable import BPRTrainable

        return BPRTrainable(self, data)

    def _distributed_trainable(self, data: Partition) -> Trainable:
        from latentrec.models._distributed_bpr import DistributedBPRTrainable

        return DistributedBPRTrainable(self, data)

    def _fold_in(self, rows: SparseRows, prior: Prior | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A few Adam steps of the BPR loss on the user vectors alone (no closed form for a
        ranking loss), items held fixed. Without ``prior`` the vectors start at zero and are
        penalised towards it; with one (a new user's features) they start from the
        features' vectors and ``reg`` penalises the distance to them."""
        items = self.item_factors_.detach().cpu()
        assert self.item_bias_ is not None
        item_bias = self.item_bias_.detach().cpu()
        centre = (torch.zeros(rows.n_rows, items.shape[1]) if prior is None
                  else prior[0].detach().cpu().to(items.dtype).reshape(rows.n_rows, -1))
        vectors = centre.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([vectors], lr=0.05)
        generator = torch_generator(self.config.seed)
        for _ in range(_FOLD_IN_STEPS):
            negatives = torch.randint(0, len(items), (len(rows.indices), 4), generator=generator)
            user_vectors = vectors[rows.row_of]
            positive = (user_vectors * items[rows.indices]).sum(-1) + item_bias[rows.indices]
            negative = (user_vectors[:, None, :] * items[negatives]).sum(-1) + item_bias[
                negatives]
            shift = vectors if prior is None else vectors - centre
            loss = -F.logsigmoid(positive[:, None] - negative).mean() + self.config.reg * (
                shift.pow(2).sum(-1).mean())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return vectors.detach(), None


_FOLD_IN_STEPS = 100

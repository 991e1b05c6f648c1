"""BPR (Rendle et al. 2009) and sampled-softmax training of factors for top-N ranking."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from latentrec._rng import derive_seed, torch_generator
from latentrec.data import Interactions
from latentrec.models._nn import FactorModule
from latentrec.models._solvers import SparseRows
from latentrec.models.base import hyperparameters
from latentrec.models.config import EpochConfig
from latentrec.models.factor import FactorModel
from latentrec.training import RankingValidator, Trainable
from latentrec.training.minibatch import OPTIMIZERS, MinibatchLoop, resolve_device
from latentrec.training.partition import Partition

__all__ = ["BPR"]

LOSSES = ("bpr", "softmax")
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

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_positive("factors", "negatives", "candidates", "batch_size", integer=True)
        self.check_positive("lr", "init_std", "lr_decay")
        self.check_non_negative("reg")
        self.check_choice("loss", LOSSES)
        self.check_choice("sampling", SAMPLINGS)
        self.check_choice("optimizer", OPTIMIZERS)


class BPR(FactorModel):
    """Factors trained to rank a user's items above sampled negatives.

    ``loss="bpr"``: Bayesian personalised ranking, ``-log sigmoid(s_ui - s_uj)`` averaged over
    ``negatives`` sampled items ``j`` per interaction. ``loss="softmax"``: sampled softmax, the
    cross-entropy of the positive among itself and the ``negatives`` sampled items (corrected
    for the sampling distribution; with one uniformly sampled negative it is exactly BPR, so it
    differs only with ``negatives > 1`` or popularity sampling). ``sampling`` draws negatives
    uniformly or in proportion to popularity (``count ** 0.75``); sampled items the user
    already has are redrawn once.
    With ``candidates > 1`` every negative is the highest-scoring of ``candidates`` sampled
    items (dynamic negative sampling, Zhang et al. 2013): like WARP, training then concentrates
    on the items that compete for the top of the user's list (the sampling correction of
    ``loss="softmax"`` does not account for this choice). ``reg`` is an L2 penalty on the
    vectors of every sampled triple, so frequent users and items are penalised more often;
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
    quick_params: ClassVar[dict[str, Any]] = {"factors": 4, "epochs": 2, "batch_size": 64}

    def __init__(self, *, epochs: int = 40, patience: int | None = None, seed: int | None = 0,
                 factors: int = 64, lr: float = 0.02, reg: float = 0.02, loss: str = "bpr",
                 negatives: int = 1, candidates: int = 4, sampling: str = "uniform",
                 optimizer: str = "adam", batch_size: int = 4096, init_std: float = 0.1,
                 lr_decay: float = 0.9, device: str = "auto") -> None:
        super().__init__(**hyperparameters(locals()))

    def _trainable(self, data: Interactions) -> Trainable:
        return _BPRTrainable(self, data)

    def _distributed_trainable(self, data: Partition) -> Trainable:
        from latentrec.models._distributed_bpr import DistributedBPRTrainable

        return DistributedBPRTrainable(self, data)

    def _fold_in(self, rows: SparseRows) -> tuple[torch.Tensor, torch.Tensor | None]:
        # no closed form for a ranking loss: a few Adam steps on the user vectors alone
        items = self.item_factors_.detach().cpu()
        assert self.item_bias_ is not None
        item_bias = self.item_bias_.detach().cpu()
        vectors = torch.zeros(rows.n_rows, items.shape[1], requires_grad=True)
        optimizer = torch.optim.Adam([vectors], lr=0.05)
        generator = torch_generator(self.config.seed)
        for _ in range(_FOLD_IN_STEPS):
            negatives = torch.randint(0, len(items), (len(rows.indices), 4), generator=generator)
            user_vectors = vectors[rows.row_of]
            positive = (user_vectors * items[rows.indices]).sum(-1) + item_bias[rows.indices]
            negative = (user_vectors[:, None, :] * items[negatives]).sum(-1) + item_bias[
                negatives]
            loss = -F.logsigmoid(positive[:, None] - negative).mean() + self.config.reg * (
                vectors.pow(2).sum(-1).mean())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return vectors.detach(), None


_FOLD_IN_STEPS = 100


class _BPRTrainable:
    def __init__(self, model: BPR, data: Interactions) -> None:
        config = model.config
        self.model = model
        self.config = config
        device = resolve_device(config.device)
        self.device = device
        self.n_items = data.n_items
        self.module = FactorModule(
            data.n_users, data.n_items, config.factors, biases=True,
            sparse=config.optimizer in ("sgd", "sparse_adam", "adagrad"),
            init_std=config.init_std, global_mean=0.0, generator=torch_generator(config.seed),
        ).to(device)
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
        self.loop = MinibatchLoop(self.module, self._loss, len(data), config.optimizer,
                                  config.lr, config.batch_size, lr_decay=config.lr_decay,
                                  seed=derive_seed(config.seed, 1), device=device)

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

    def _negatives(self, users: torch.Tensor, user_vectors: torch.Tensor) -> torch.Tensor:
        """``negatives`` items per user: sampled, or the hardest of ``candidates`` samples."""
        config = self.config
        if config.candidates == 1:
            return self._sample(users, config.negatives)
        pool = self._sample(users, config.negatives * config.candidates).reshape(
            len(users), config.negatives, config.candidates)
        module = self.module
        assert module.item_bias is not None
        with torch.no_grad():
            scores = (user_vectors.detach()[:, None, None, :]
                      * module.item_factors.weight[pool]).sum(-1) + module.item_bias.weight[
                          pool, 0]
            hardest = scores.argmax(dim=-1, keepdim=True)
        return pool.gather(2, hardest).squeeze(2)

    def _loss(self, rows: torch.Tensor) -> torch.Tensor:
        config = self.config
        module = self.module
        users, positives = self.users[rows], self.items[rows]
        user_vectors = module.user_factors(users)
        negatives = self._negatives(users, user_vectors)
        positive_vectors = module.item_factors(positives)
        negative_vectors = module.item_factors(negatives)
        assert module.item_bias is not None
        positive_scores = (user_vectors * positive_vectors).sum(-1) + module.item_bias(
            positives).squeeze(-1)
        negative_scores = (user_vectors[:, None, :] * negative_vectors).sum(-1) + (
            module.item_bias(negatives).squeeze(-1))
        if config.loss == "bpr":
            loss = -F.logsigmoid(positive_scores[:, None] - negative_scores).mean()
        else:
            corrected = negative_scores - self.log_probabilities[negatives]
            logits = torch.cat([positive_scores[:, None] - self.log_probabilities[positives][
                :, None], corrected], dim=1)
            loss = F.cross_entropy(logits, torch.zeros(len(rows), dtype=torch.long,
                                                       device=self.device))
        if config.reg:
            penalty = (user_vectors.pow(2).sum(-1) + positive_vectors.pow(2).sum(-1)
                       + negative_vectors.pow(2).sum(-1).mean(-1))
            loss = loss + config.reg * penalty.mean()
        return loss

    def train_epoch(self) -> dict[str, float]:
        return self.loop.train_epoch()

    def publish(self) -> None:
        module = self.module
        assert module.item_bias is not None
        self.model._set_factors(module.user_factors.weight.detach().clone(),
                                module.item_factors.weight.detach().clone(), None,
                                module.item_bias.weight.detach().reshape(-1).clone(), 0.0)

    def state_dict(self) -> dict[str, Any]:
        return {"module": {k: v.detach().clone() for k, v in self.module.state_dict().items()},
                "loop": self.loop.state_dict(), "sampler": self.sampler.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.loop.load_state_dict(state["loop"])
        self.sampler.set_state(state["sampler"])

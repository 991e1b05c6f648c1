"""The trainable of :class:`~latentrec.BPR`: minibatches of positives with sampled negatives
(its own module, so that the distributed trainer can extend it without importing the model)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from latentrec._rng import derive_seed, torch_generator
from latentrec.data import Interactions
from latentrec.models._nn import FactorModule
from latentrec.models.factor import FactorModel
from latentrec.training.minibatch import MinibatchLoop, resolve_device

__all__ = ["BPRTrainable"]


class BPRTrainable:
    """One process's BPR (or sampled-softmax) training by torch minibatches."""

    def __init__(self, model: FactorModel, data: Interactions) -> None:
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

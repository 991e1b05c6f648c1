"""Bayesian biased matrix factorisation (BPMF with biases), sampled by Gibbs sweeps."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch

from latentrec.data import Interactions
from latentrec.errors import InvalidParameterError
from latentrec.models._solvers import SparseRows
from latentrec.models.base import hyperparameters
from latentrec.models.config import EpochConfig
from latentrec.models.factor import FactorModel
from latentrec.training import Trainable
from latentrec.training.minibatch import resolve_device

__all__ = ["BayesianMF"]

_FOLD_IN_REG = 0.06
_FOLD_IN_REG_BIAS = 0.01


@dataclasses.dataclass(frozen=True)
class BayesianMFConfig(EpochConfig):
    """Hyperparameters of :class:`BayesianMF`. Defaults were chosen on a validation split of
    MovieLens 100K ``u1.base`` (see docs/BENCHMARKS.md)."""

    epochs: int = 300
    factors: int = 10
    burn_in: int = 25
    init_std: float = 0.01
    clip: bool = True
    device: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_positive("factors", integer=True)
        self.check_positive("init_std")
        if isinstance(self.burn_in, bool) or not isinstance(self.burn_in, int) or (
                self.burn_in < 0):
            raise InvalidParameterError(f"burn_in must be an integer >= 0, got {self.burn_in!r}")
        if self.epochs <= self.burn_in:
            raise InvalidParameterError(
                f"BayesianMF needs epochs > burn_in (sweeps kept = epochs - burn_in); got "
                f"epochs={self.epochs}, burn_in={self.burn_in}")
        if self.patience is not None:
            raise InvalidParameterError(
                "BayesianMF does not stop early (every extra sample helps); leave patience=None")
        self.check_flag("clip")
        if not isinstance(self.device, str):
            raise TypeError(f"device must be a string, got {type(self.device).__name__}")


class BayesianMF(FactorModel):
    """Bayesian biased matrix factorisation (Salakhutdinov & Mnih 2008, with biases), sampled
    by Gibbs sweeps in compiled CPU kernels.

    The model is ``r_ui ~ N(mean + b_u + b_i + p_u . q_i, 1 / alpha)`` with Normal-Wishart
    priors on each side's ``[p, b]`` and a Gamma prior on the noise precision, all learned:
    there is no learning rate or penalty to tune. ``epochs`` Gibbs sweeps are run, the first
    ``burn_in`` discarded; predictions average the kept samples, stored as one factor model
    of rank up to 64 (so it predicts, recommends and saves like :class:`~latentrec.BiasedMF`).
    It is latentrec's most accurate rating model; ``factors=10`` suits it.

    Parameters
    ----------
    epochs, burn_in
        Gibbs sweeps in all, and how many of the first are discarded.
    factors, init_std
        Latent dimension of each sample; standard deviation of the starting sample.
    clip
        Clip predictions to the training rating range (``recommend`` reports the same).
    seed, device
        Same seed, same samples. The sampler runs on the CPU (``device`` ``auto`` or ``cpu``).

    Examples
    --------
    >>> from latentrec import BayesianMF
    >>> from latentrec.datasets import synthetic
    >>> model = BayesianMF(factors=4, epochs=20, burn_in=10).fit(synthetic(200, 100),
    ...                                                          show_progress=False)
    >>> model.user_factors_.shape[1] <= 64
    True
    """

    kind = "bayesian-mf"
    Config = BayesianMFConfig
    config: BayesianMFConfig
    feedback = "explicit"
    quick_params: ClassVar[dict[str, Any]] = {"factors": 4, "epochs": 8, "burn_in": 3}

    def __init__(self, *, epochs: int = 300, patience: int | None = None,
                 seed: int | None = 0, factors: int = 10, burn_in: int = 25,
                 init_std: float = 0.01, clip: bool = True, device: str = "auto") -> None:
        super().__init__(**hyperparameters(locals()))

    def _trainable(self, data: Interactions) -> Trainable:
        from latentrec.models._gibbs import GibbsTrainable

        if self.config.device != "auto" and resolve_device(self.config.device).type != "cpu":
            raise InvalidParameterError(f"BayesianMF samples on the CPU only; device is "
                                        f"{self.config.device!r}")
        return GibbsTrainable(self, data)

    def _fold_in(self, rows: SparseRows) -> tuple[torch.Tensor, torch.Tensor | None]:
        # a ridge solve against the posterior-mean items with BiasedMF's default per-rating
        # penalties (what this model used when it was BiasedMF(solver="gibbs"))
        counts = rows.counts().clamp_min(1.0)[:, None]
        width = self.item_factors_.shape[1]
        reg = torch.cat([_FOLD_IN_REG * self.rating_std_ * counts.expand(-1, width),
                         _FOLD_IN_REG_BIAS * counts], dim=1)
        return self._fold_in_biased(rows, reg)

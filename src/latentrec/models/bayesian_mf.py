"""Bayesian biased matrix factorisation (BPMF with biases), sampled by Gibbs sweeps."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from latentrec.data import Interactions
from latentrec.errors import InvalidParameterError, ModelFileError
from latentrec.models._solvers import SparseRows
from latentrec.models.base import Side, hyperparameters
from latentrec.models.config import EpochConfig
from latentrec.models.factor import FactorModel, Prior, saved_seen_power
from latentrec.training import Trainable
from latentrec.training.minibatch import resolve_device

if TYPE_CHECKING:
    from pathlib import Path

    from latentrec.models.base import Recommender

__all__ = ["BayesianMF"]

_FOLD_IN_REG = 0.06
_FOLD_IN_REG_BIAS = 0.01

PRIORS = ("normal-gamma", "normal-wishart")
NOISES = ("per-user", "shared")
#: What a model file written before ``prior`` and ``noise`` existed was trained with: refitting
#: such a model (``clone``, ``set_params``) runs the sampler it had.
_BEFORE_PRIOR_AND_NOISE = {"prior": "normal-wishart", "noise": "shared"}


@dataclasses.dataclass(frozen=True)
class BayesianMFConfig(EpochConfig):
    """Hyperparameters of :class:`BayesianMF`. Defaults were chosen on validation splits of
    MovieLens 100K ``u1.base`` and of a FilmTrust training split (see docs/BENCHMARKS.md,
    "Bayesian sampler vs myFM")."""

    epochs: int = 300
    factors: int = 10
    burn_in: int = 25
    init_std: float = 0.01
    prior: str = "normal-gamma"
    noise: str = "per-user"
    clip: bool = True
    identity: bool = True
    seen_items: bool = False
    seen_users: bool = False
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
        self.check_choice("prior", PRIORS)
        self.check_choice("noise", NOISES)
        self.check_flag("clip", "identity", "seen_items", "seen_users")
        if self.prior != "normal-gamma" and (self.seen_items or self.seen_users):
            raise InvalidParameterError(
                "seen_items and seen_users need prior='normal-gamma' (each group of a "
                "factorisation machine has its own Normal-Gamma prior)")
        if not isinstance(self.device, str):
            raise TypeError(f"device must be a string, got {type(self.device).__name__}")


class BayesianMF(FactorModel):
    """Bayesian biased matrix factorisation (Salakhutdinov & Mnih 2008, with biases), sampled
    by Gibbs sweeps in compiled CPU kernels.

    The model is ``r_ui ~ N(mean + b_u + b_i + p_u . q_i, 1 / (alpha tau_u))`` with
    hierarchical priors on each side's ``[p, b]``, a Gamma prior on the noise precision
    ``alpha`` and on each user's noise scale ``tau_u``, all learned: there is no learning rate
    or penalty to tune. ``epochs`` Gibbs sweeps are run, the first ``burn_in`` discarded;
    predictions average the kept samples, stored as one factor model of rank up to 64 (so it
    predicts, recommends and saves like :class:`~latentrec.BiasedMF`). It is latentrec's most
    accurate rating model.

    The defaults are the recipe: ``factors=10, epochs=300, burn_in=25``, a Normal-Gamma
    prior per coordinate and per-user noise. Over seeds 0-4 it scored RMSE 0.9026 on
    MovieLens 100K ``u1.test`` and 0.7720 on a FilmTrust 80/20 split, where myFM's ids-only
    sampler (rank 10, 200 samples) scored 0.9065 and 0.7730 (docs/BENCHMARKS.md, "Bayesian
    sampler vs myFM").

    Parameters
    ----------
    epochs, burn_in
        Gibbs sweeps in all, and how many of the first are discarded.
    factors, init_std
        Latent dimension of each sample; standard deviation of the starting sample (in
        standardised rating units).
    prior
        The hyperprior on each side's ``[p, b]``. ``"normal-gamma"`` (default): each
        coordinate of ``[p, b]``, the bias included, has its own mean and precision, sampled
        from the data (libFM's and myFM's prior), so dimensions the data do not need shrink
        towards zero. ``"normal-wishart"``: one mean vector and one full precision matrix per
        side, factors and bias correlated (BPMF's prior; the only one before ``prior``
        existed).
    noise
        ``"per-user"`` (default): each user's ratings have a noise precision of their own,
        the shared one times a sampled ``tau_u`` of prior mean 1 (Lakshminarayanan, Bouchard
        & Archambeau 2011), so the ratings of users the model fits badly weigh less in the
        item factors; ``tau_u ~ Gamma(nu / 2, rate nu / 2)`` with ``nu = 2``, or ``nu = 8``
        with features or seen groups (chosen on validation: the groups fit the typical user
        better, and a firmer prior on ``tau_u`` helps). ``"shared"``: one noise precision for
        all ratings.
    clip
        Clip predictions to the training rating range (``recommend`` reports the same).
    identity
        With side features (``fit(user_features=..., item_features=...)``): each id also gets
        its own embedding, as LightFM's identity features; ``False``: ids with features are
        represented by their features alone (sides without features always keep their own
        embedding).
    seen_items
        The items each user rated in training, as a user feature group (SVD++'s implicit
        feedback): ``P_u`` adds ``|N(u)|^-0.6 sum_{j in N(u)} y_j``, biases likewise (the
        power chosen on a validation split of MovieLens 100K; SVD++ has -1/2).
        ``recommend_new_user`` and ``update_users`` add the same term for the given items.
    seen_users
        The users who rated each item, as an item feature group (the flipped group).

    With features or a seen group the model is a factorisation machine restricted to
    user-side x item-side interactions: each side's vector (and bias) is the sum of its
    groups (own id, each feature field, the seen group), every group with its own
    Normal-Gamma prior, all blocks drawn by exact block Gibbs
    (:mod:`latentrec.models._gibbs_groups`). On MovieLens 100K ``u1`` (200 samples, seed 0)
    it scored 0.8852 with both seen groups and 0.8815 with ``u.user``/``u.item`` features
    too at ``factors=10`` (myFM with the same groups and features at rank 10: 0.8894 and
    0.8862), and 0.8797 at ``factors=16``, the rank chosen on a validation split (myFM
    rank 16: 0.8845; docs/BENCHMARKS.md, "Warm ratings with features"). Needs
    ``prior="normal-gamma"``.
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
    feature_sides: ClassVar[tuple[Side, ...]] = ("users", "items")
    #: with ``seen_items``: the embedding (and bias) of every item as a member of a user's
    #: rated items, and the power ``a`` of the weights ``|N(u)|^-a``
    seen_item_factors_: tuple[torch.Tensor, torch.Tensor] | None = None
    seen_power_: float = 0.5

    def __init__(self, *, epochs: int = 300, patience: int | None = None,
                 seed: int | None = 0, factors: int = 10, burn_in: int = 25,
                 init_std: float = 0.01, prior: str = "normal-gamma", noise: str = "per-user",
                 clip: bool = True, identity: bool = True, seen_items: bool = False,
                 seen_users: bool = False, device: str = "auto") -> None:
        super().__init__(**hyperparameters(locals()))

    @classmethod
    def upgrade_model_file(cls, meta: dict[str, Any]) -> dict[str, Any]:
        # files written before `prior` and `noise` existed were sampled with a Normal-Wishart
        # prior and one shared noise level
        config = meta.get("config")
        if not isinstance(config, dict) or all(key in config for key in _BEFORE_PRIOR_AND_NOISE):
            return meta
        return {**meta, "config": {**_BEFORE_PRIOR_AND_NOISE, **config}}

    @classmethod
    def from_model_files(cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor],
                         where: Path) -> Recommender:
        # a format-1 BiasedMF(solver="gibbs") file arrives here through BiasedMF's upgrade
        return super().from_model_files(cls.upgrade_model_file(meta), tensors, where)

    def _trainable(self, data: Interactions) -> Trainable:
        from latentrec.models._gibbs import GibbsTrainable

        if self.config.device != "auto" and resolve_device(self.config.device).type != "cpu":
            raise InvalidParameterError(f"BayesianMF samples on the CPU only; device is "
                                        f"{self.config.device!r}")
        config = self.config
        if (self._feature_matrix("users") is None and self._feature_matrix("items") is None
                and not config.seen_items and not config.seen_users):
            self._set_seen_items(None, 0.5)
            return GibbsTrainable(self, data)  # ids only: the plain sampler, bit for bit
        if config.prior != "normal-gamma":
            raise InvalidParameterError(
                "features need prior='normal-gamma' (each group of a factorisation machine "
                "has its own Normal-Gamma prior)")
        from latentrec.models._gibbs_groups import HybridGibbsTrainable

        return HybridGibbsTrainable(self, data)

    def _set_seen_items(self, seen: tuple[torch.Tensor, torch.Tensor] | None,
                        power: float) -> None:
        self.seen_item_factors_ = seen
        self.seen_power_ = float(power)

    def _seen_prior(self, rows: SparseRows, prior: Prior | None) -> Prior | None:
        """``prior`` plus each row's seen-items term ``sum_j |N|^-a [y_j, c_j]`` (items added
        after training have none)."""
        if self.seen_item_factors_ is None:
            return prior
        factors, bias = self.seen_item_factors_
        n_rows = rows.n_rows
        counts = rows.counts().double()
        weights = torch.zeros_like(counts)
        has = counts > 0
        weights[has] = counts[has] ** -self.seen_power_
        entry = weights[rows.row_of].float()
        vectors = torch.zeros(n_rows, factors.shape[1])
        offset = torch.zeros(n_rows)
        vectors.index_add_(0, rows.row_of, factors[rows.indices] * entry[:, None])
        offset.index_add_(0, rows.row_of, bias[rows.indices] * entry)
        if prior is None:
            return vectors, offset
        given, given_bias = prior
        return (given.cpu() + vectors,
                offset if given_bias is None else given_bias.cpu() + offset)

    def _fold_in(self, rows: SparseRows, prior: Prior | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        # a ridge solve against the posterior-mean items with BiasedMF's default per-rating
        # penalties (what this model used when it was BiasedMF(solver="gibbs"))
        counts = rows.counts().clamp_min(1.0)[:, None]
        width = self.item_factors_.shape[1]
        reg = torch.cat([_FOLD_IN_REG * self.rating_std_ * counts.expand(-1, width),
                         _FOLD_IN_REG_BIAS * counts], dim=1)
        return self._fold_in_biased(rows, reg, self._seen_prior(rows, prior))

    def _add_ids(self, side: Side, ids: np.ndarray, matrix: Any) -> None:
        super()._add_ids(side, ids, matrix)
        if side == "items" and self.seen_item_factors_ is not None:
            # new items were rated by nobody in training: no seen-items embedding
            factors, bias = self.seen_item_factors_
            extra = self.n_items - len(factors)
            self.seen_item_factors_ = (torch.cat([factors, factors.new_zeros(extra,
                                                                              factors.shape[1])]),
                                       torch.cat([bias, bias.new_zeros(extra)]))

    def _tensors(self) -> dict[str, torch.Tensor]:
        tensors = super()._tensors()
        if self.seen_item_factors_ is not None:
            tensors["seen_item_factors"], tensors["seen_item_bias"] = self.seen_item_factors_
        return tensors

    def _extra_meta(self) -> dict[str, Any]:
        meta = super()._extra_meta()
        if self.seen_item_factors_ is not None:
            meta["seen_power"] = self.seen_power_
        return meta

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        factors = tensors.pop("seen_item_factors", None)
        bias = tensors.pop("seen_item_bias", None)
        super()._restore(tensors, meta)
        if factors is None and bias is None:
            if self.config.seen_items:
                raise ModelFileError("seen_items=True but the file has no seen_item_factors")
            self._set_seen_items(None, 0.5)
            return
        if not self.config.seen_items:
            raise ModelFileError("seen_item_factors in a file of a model with seen_items=False")
        width = self.item_factors_.shape[1]
        if (factors is None or bias is None or not factors.is_floating_point()
                or not bias.is_floating_point()
                or tuple(factors.shape) != (self.n_items, width)
                or tuple(bias.shape) != (self.n_items,)):
            raise ModelFileError(f"seen_item_factors/seen_item_bias do not match the "
                                 f"{self.n_items} items and {width} factors")
        if not (bool(torch.isfinite(factors).all()) and bool(torch.isfinite(bias).all())):
            raise ModelFileError("seen_item_factors hold non-finite numbers")
        self._set_seen_items((factors, bias), saved_seen_power(meta))

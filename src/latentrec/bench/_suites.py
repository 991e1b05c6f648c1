"""What each suite runs: its data sets, its contenders and their settings.

Pure data, no heavy imports: the harness and every child process read the same list, so a
contender is named once and found again by its name in the child.

Peer settings are the ones in ``../shared/PEERS.md`` (chosen there on validation splits) and
the library defaults; latentrec's tuned settings were chosen on validation splits carved from
the training part only (``benchmarks/tune_ml100k.py`` and ``benchmarks/tune_implicit.py``),
never on the test part. Changing any of them changes published numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Suite = Literal["explicit", "implicit"]

#: the data sets each suite can run on; the first is the default
SUITE_DATASETS: dict[str, tuple[str, ...]] = {
    "explicit": ("ml-100k",),
    "implicit": ("ml-100k", "lastfm", "gowalla"),
}

#: install hint shown when a peer library is missing
BENCH_EXTRA_HINT = "pip install 'latentrec[bench]'"

#: why a peer that the bench extra cannot install is missing; the default is BENCH_EXTRA_HINT
MISSING_PEER_REASONS: dict[str, str] = {
    "lightfm": ("pip install 'latentrec[bench]' (LightFM comes as rectools-lightfm: lightfm "
                "1.17's own source release does not build, lyst/lightfm#687)"),
    "myfm": "pip install 'latentrec[bench]' (myfm 0.4.0 with setuptools<81: it imports "
            "pkg_resources)",
}

#: the Spark master of the Spark MLlib peer: local mode, one task slot per core of the
#: 2-core development machine (the same two threads implicit and LIBMF get)
SPARK_MASTER = "local[2]"
#: Spark ALS splits users and items into blocks (10 each by default); one per task slot saves
#: the scheduling of 10 small tasks per stage, which dominates fits of this size in local mode
SPARK_BLOCKS = {"numUserBlocks": 2, "numItemBlocks": 2}

# chosen on a validation split of u1.base by benchmarks/tune_ml100k.py
TUNED_SGD: dict[str, Any] = {"factors": 200}

# chosen on validation splits by benchmarks/tune_implicit.py (see docs/BENCHMARKS.md)
TUNED_IMPLICIT: dict[str, dict[str, dict[str, Any]]] = {
    "ml-100k": {
        "ials": {"factors": 32, "reg": 5.0, "reg_exponent": 0.5, "alpha": 5.0,
                 "confidence": "linear"},
        "bpr": {"factors": 64, "epochs": 40, "lr": 0.02, "batch_size": 4096, "reg": 0.02,
                "candidates": 8, "lr_decay": 0.9},
        "ease": {"reg": 500.0},
    },
    "lastfm": {
        "ials": {"factors": 64, "reg": 12.0, "reg_exponent": 0.5, "alpha": 5.0,
                 "confidence": "log", "epsilon": 10.0},
        "bpr": {"factors": 128, "epochs": 40, "lr": 0.02, "batch_size": 4096, "reg": 0.01,
                "candidates": 4, "lr_decay": 0.95},
        "ease": {"reg": 100.0},
    },
    "gowalla": {
        "ials": {"factors": 1024, "epochs": 10, "reg": 20.0, "reg_exponent": 0.5, "alpha": 30.0,
                 "confidence": "linear"},
        "bpr": {"factors": 64, "epochs": 40, "lr": 0.02, "batch_size": 4096, "reg": 0.005,
                "candidates": 4, "lr_decay": 0.9},
    },
}


@dataclass(frozen=True)
class Contender:
    """One model with one setting, as a row of the results table.

    ``library`` is the module that must be importable (``"latentrec"`` for our own models);
    ``adapter`` names the code in ``_adapters`` that fits and scores it; ``params`` go to the
    model's constructor and are reported; ``options`` steer the adapter (e.g. how counts are
    weighted) and are reported with the params.
    """

    name: str
    library: str
    adapter: str
    params: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_peer(self) -> bool:
        return self.library != "latentrec"


def _explicit_contenders() -> list[Contender]:
    surprise_tuned = {"n_factors": 150, "n_epochs": 100, "lr_all": 0.005, "reg_all": 0.1}
    cornac_tuned = {"k": 100, "max_iter": 50, "lambda_reg": 0.1, "learning_rate": 0.01}
    libmf_defaults = {"k": 8, "nr_iters": 20, "lambda_p2": 0.1, "lambda_q2": 0.1, "eta": 0.1}
    libmf_tuned = {"k": 32, "nr_iters": 50, "lambda_p2": 0.1, "lambda_q2": 0.1, "eta": 0.05}
    return [
        Contender("latentrec BiasedMF (defaults)", "latentrec", "latentrec.BiasedMF"),
        Contender("latentrec BayesianMF (defaults)", "latentrec", "latentrec.BayesianMF"),
        Contender("latentrec BayesianMF (+ implicit groups)", "latentrec",
                  "latentrec.BayesianMF", {"seen_items": True, "seen_users": True}),
        Contender("latentrec BiasedMF (tuned: sgd)", "latentrec", "latentrec.BiasedMF",
                  TUNED_SGD),
        # SVD++ (the items each user rated as a group), the compiled kernel; feature_reg from
        # the validation split of docs/BENCHMARKS.md
        Contender("latentrec BiasedMF (+ seen items: SVD++)", "latentrec",
                  "latentrec.BiasedMF", {"seen_items": True, "feature_reg": 0.15}),
        Contender("latentrec MatrixFactorization (seed defaults)", "latentrec",
                  "latentrec.MatrixFactorization"),
        Contender("surprise SVD (defaults)", "surprise", "surprise.SVD"),
        Contender("surprise SVD (tuned, PEERS.md)", "surprise", "surprise.SVD", surprise_tuned),
        Contender("surprise SVDpp (defaults)", "surprise", "surprise.SVDpp"),
        Contender("cornac MF (defaults)", "cornac", "cornac.MF"),
        Contender("cornac MF (tuned, PEERS.md)", "cornac", "cornac.MF", cornac_tuned),
        Contender("LIBMF (CLI defaults)", "libmf", "libmf.MF", libmf_defaults),
        Contender("LIBMF (tuned, PEERS.md)", "libmf", "libmf.MF", libmf_tuned),
        # Bayesian factorisation machine, default priors, 200 Gibbs sweeps (5 burnt):
        # BayesianMF's peer (benchmarks/bayesian.py, benchmarks/warm_features.py)
        Contender("myFM ids-only (rank 10, 200 samples)", "myfm", "myfm.MyFMRegressor",
                  {"rank": 10}, {"n_iter": 200}),
        Contender("myFM + implicit groups (rank 10, 200 samples)", "myfm",
                  "myfm.MyFMRegressor", {"rank": 10}, {"n_iter": 200, "implicit": True}),
        # Spark's own defaults (rank 10, 10 iterations, regParam 0.1 times the row's count)
        # but for the blocks: one per task slot of SPARK_MASTER instead of 10
        Contender("Spark MLlib ALS (defaults, 2 blocks)", "pyspark", "pyspark.ALS",
                  {"rank": 10, "maxIter": 10, "regParam": 0.1, **SPARK_BLOCKS}),
    ]


def _implicit_contenders(dataset: str) -> list[Contender]:
    tuned = TUNED_IMPLICIT[dataset]
    contenders = [
        Contender("latentrec ImplicitALS (defaults)", "latentrec", "latentrec.ImplicitALS"),
        Contender("latentrec ImplicitALS (tuned)", "latentrec", "latentrec.ImplicitALS",
                  tuned["ials"]),
        Contender("latentrec BPR (defaults)", "latentrec", "latentrec.BPR"),
        Contender("latentrec BPR (tuned)", "latentrec", "latentrec.BPR", tuned["bpr"]),
        Contender("latentrec ItemKNN (defaults)", "latentrec", "latentrec.ItemKNN"),
        Contender("latentrec Popularity", "latentrec", "latentrec.Popularity"),
    ]
    if "ease" in tuned:
        contenders.append(Contender("latentrec EASE (tuned)", "latentrec", "latentrec.EASE",
                                    tuned["ease"]))
    # implicit's tuned ALS differs per data set, and Last.fm's sees BM25-weighted play counts
    implicit_tuned = {
        "ml-100k": ("implicit ALS (tuned, PEERS.md)",
                    {"factors": 32, "regularization": 20.0, "alpha": 5.0}, "binary"),
        "lastfm": ("implicit ALS (tuned, PEERS.md, bm25)",
                   {"factors": 64, "regularization": 50.0, "alpha": 0.05}, "bm25"),
        "gowalla": ("implicit ALS (tuned, PEERS.md)",
                    {"factors": 256, "regularization": 0.0033, "alpha": 50.0}, "binary"),
    }
    name, params, weighting = implicit_tuned[dataset]
    contenders += [
        Contender("implicit ALS (defaults)", "implicit", "implicit.ALS", {},
                  {"weighting": "binary"}),
        Contender(name, "implicit", "implicit.ALS", params, {"weighting": weighting}),
        Contender("implicit BPR (defaults)", "implicit", "implicit.BPR", {},
                  {"weighting": "binary"}),
        Contender("cornac BPR (tuned, PEERS.md)", "cornac", "cornac.BPR",
                  {"k": 64, "learning_rate": 0.01, "max_iter": 200, "lambda_reg": 0.01}),
    ]
    # cornac EASE inverts a float64 items x items Gram matrix: about 27 GB for Gowalla's 41k
    # items, more than the development machine has (PEERS.md); lamb as chosen on validation.
    cornac_ease = {"ml-100k": {"lamb": 500.0}, "lastfm": {"lamb": 100.0, "posB": False}}
    if dataset in cornac_ease:
        contenders.append(Contender("cornac EASE (tuned, PEERS.md)", "cornac", "cornac.EASE",
                                    cornac_ease[dataset]))
    contenders.append(_spark_implicit(dataset))
    # PEERS.md's validation-chosen WARP settings; it has none for Gowalla
    lightfm_epochs = {"ml-100k": 20, "lastfm": 50}
    if dataset in lightfm_epochs:
        contenders.append(Contender(
            "LightFM WARP (tuned, PEERS.md)", "lightfm", "lightfm.LightFM",
            {"loss": "warp", "no_components": 64, "learning_rate": 0.05},
            {"epochs": lightfm_epochs[dataset]}))
    return contenders


def _spark_implicit(dataset: str) -> Contender:
    """Spark MLlib ALS (``implicitPrefs=True``) set up like latentrec's tuned ImplicitALS.

    Same rank and iteration count, and the same confidence: Spark's is ``1 + alpha * r``, so it
    gets latentrec's ``alpha`` and ``r`` is the weight ``w`` (binary data: 1) where latentrec's
    confidence is ``"linear"``, ``log1p(w / epsilon)`` where it is ``"log"`` (options
    ``weighting`` and ``epsilon``). Spark penalises a row with ``n`` interactions by
    ``regParam * n``, latentrec by ``reg * n ** 0.5``: ``regParam`` is ``reg / sqrt(n)`` at the
    median user's training count ``n`` (52, 40 and 16 on ml-100k, Last.fm and Gowalla), so the
    two penalties agree for the median user. Not tuned further.
    """
    ials = TUNED_IMPLICIT[dataset]["ials"]
    median_user_count = {"ml-100k": 52, "lastfm": 40, "gowalla": 16}[dataset]
    params = {
        "rank": ials["factors"],
        "maxIter": ials.get("epochs", 15),  # ImplicitALS's default is 15 epochs
        "regParam": round(ials["reg"] / median_user_count ** 0.5, 2),
        "alpha": ials["alpha"],
        "implicitPrefs": True,
        **SPARK_BLOCKS,
    }
    options: dict[str, Any] = {"weighting": "linear"}
    if ials["confidence"] == "log":
        options = {"weighting": "log1p", "epsilon": ials.get("epsilon", 1.0)}
    return Contender("Spark MLlib ALS (as latentrec ImplicitALS tuned)", "pyspark",
                     "pyspark.ALS", params, options)


def contenders_for(suite: str, dataset: str) -> list[Contender]:
    """Every contender of ``suite`` on ``dataset``, latentrec first, in table order."""
    if suite == "explicit":
        return _explicit_contenders()
    return _implicit_contenders(dataset)

"""Hostile and careless calls of the Python API: each raises the documented exception with a
one-line message naming the culprit, or is handled; none corrupts a model."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from latentrec import (
    ALS,
    BPR,
    EASE,
    BayesianMF,
    BiasedMF,
    ImplicitALS,
    Interactions,
    ItemKNN,
    MatrixFactorization,
    Popularity,
    evaluate,
    k_fold,
    leave_last_out,
    random_split,
    temporal_split,
    user_holdout,
)
from latentrec.datasets import synthetic
from latentrec.errors import (
    DataError,
    InvalidParameterError,
    NotFittedError,
    UnknownIdError,
)
from latentrec.training import Checkpoint, EarlyStopping, Trainer


@pytest.fixture(scope="module")
def ratings() -> Interactions:
    return synthetic(60, 40, seed=1)


@pytest.fixture(scope="module")
def model(ratings: Interactions) -> BiasedMF:
    return BiasedMF(factors=4, epochs=2).fit(ratings, show_progress=False)


@pytest.fixture(scope="module")
def implicit_model() -> ImplicitALS:
    data = synthetic(60, 40, feedback="implicit", seed=1)
    return ImplicitALS(factors=4, epochs=2).fit(data, show_progress=False)


Case = tuple[str, Callable[..., Any], type[BaseException], str]

CONSTRUCTION: list[Case] = [
    ("factors zero", lambda: BiasedMF(factors=0), InvalidParameterError, "factors must be > 0"),
    ("factors float", lambda: BiasedMF(factors=2.5), TypeError, "factors must be an integer"),
    ("factors bool", lambda: BiasedMF(factors=True), TypeError, "factors must be an integer"),
    ("factors text", lambda: BiasedMF(factors="8"), TypeError, "factors must be an integer"),
    ("epochs negative", lambda: BiasedMF(epochs=-1), InvalidParameterError, "epochs"),
    ("lr nan", lambda: BiasedMF(lr=math.nan), InvalidParameterError, "lr must be > 0"),
    ("lr inf", lambda: BiasedMF(lr=math.inf), InvalidParameterError, "lr must be > 0"),
    ("reg negative", lambda: BiasedMF(reg=-0.1), InvalidParameterError, "reg must be >= 0"),
    ("reg nan", lambda: BiasedMF(reg=math.nan), InvalidParameterError, "reg must be >= 0"),
    ("seed negative", lambda: BiasedMF(seed=-3), InvalidParameterError, "seed"),
    ("seed float", lambda: BiasedMF(seed=1.5), InvalidParameterError, "seed"),
    ("seed bool", lambda: BiasedMF(seed=True), InvalidParameterError, "seed"),
    ("patience zero", lambda: BiasedMF(patience=0), InvalidParameterError, "patience"),
    ("engine unknown", lambda: BiasedMF(engine="gibbs"), InvalidParameterError,
     "engine must be one of"),
    ("optimizer unknown", lambda: BiasedMF(optimizer="lbfgs"), InvalidParameterError,
     "optimizer must be one of"),
    ("clip text", lambda: BiasedMF(clip="yes"), TypeError, "clip must be True or False"),
    ("device number", lambda: BiasedMF(device=0), TypeError, "device must be a string"),
    ("unknown keyword", lambda: BiasedMF(**{"colour": "blue"}), TypeError, "colour"),
    ("bayesian burn-in", lambda: BayesianMF(epochs=10, burn_in=10), InvalidParameterError,
     "epochs > burn_in"),
    ("bayesian patience", lambda: BayesianMF(patience=3), InvalidParameterError,
     "does not stop early"),
    ("bayesian burn-in negative", lambda: BayesianMF(burn_in=-1), InvalidParameterError,
     "burn_in"),
    ("als clip text", lambda: ALS(clip=1), TypeError, "clip must be True or False"),
    ("ials solver", lambda: ImplicitALS(solver="lu"), InvalidParameterError,
     "solver must be one of"),
    ("ials confidence", lambda: ImplicitALS(confidence="exp"), InvalidParameterError,
     "confidence must be one of"),
    ("ials alpha zero", lambda: ImplicitALS(alpha=0), InvalidParameterError, "alpha"),
    ("ials cg steps zero", lambda: ImplicitALS(cg_steps=0), InvalidParameterError,
     "cg_steps"),
    ("ials report_loss text", lambda: ImplicitALS(report_loss="no"), TypeError,
     "report_loss must be True or False"),
    ("bpr loss", lambda: BPR(loss="hinge"), InvalidParameterError, "loss must be one of"),
    ("bpr sampling", lambda: BPR(sampling="zipf"), InvalidParameterError,
     "sampling must be one of"),
    ("bpr negatives zero", lambda: BPR(negatives=0), InvalidParameterError, "negatives"),
    ("bpr candidates zero", lambda: BPR(candidates=0), InvalidParameterError, "candidates"),
    ("bpr negatives huge", lambda: BPR(loss="softmax", negatives=10**30), InvalidParameterError,
     "items per batch, more than"),
    ("bpr negatives float", lambda: BPR(loss="softmax", negatives=2.0), TypeError,
     "negatives must be an integer"),
    ("bpr max_sampled huge", lambda: BPR(loss="warp", max_sampled=10**12),
     InvalidParameterError, "max_sampled=1,000,000,000,000 draws"),
    ("bpr kos_n huge", lambda: BPR(loss="warp-kos", kos_k=1, kos_n=10**9),
     InvalidParameterError, "kos_n=1,000,000,000 draws"),
    ("bpr batch zero", lambda: BPR(batch_size=0), InvalidParameterError, "batch_size"),
    ("mf batch zero", lambda: MatrixFactorization(batch_size=0), InvalidParameterError,
     "batch_size"),
    ("ease reg zero", lambda: EASE(reg=0), InvalidParameterError, "reg must be > 0"),
    ("ease max items zero", lambda: EASE(max_items=0), InvalidParameterError, "max_items"),
    ("knn neighbours zero", lambda: ItemKNN(neighbours=0), InvalidParameterError,
     "neighbours"),
    ("knn weighting", lambda: ItemKNN(weighting="tfidf"), InvalidParameterError,
     "weighting must be one of"),
    ("knn shrink negative", lambda: ItemKNN(shrink=-1), InvalidParameterError, "shrink"),
    ("popularity weighting", lambda: Popularity(weighting="mean"), InvalidParameterError,
     "weighting must be one of"),
    ("set_params unknown", lambda: BiasedMF().set_params(colour=1), InvalidParameterError,
     "has no parameter 'colour'"),
    ("set_params bad value", lambda: BiasedMF().set_params(factors=0), InvalidParameterError,
     "factors must be > 0"),
    ("early stopping mode", lambda: EarlyStopping(mode="up"), InvalidParameterError,
     "mode must be 'min' or 'max'"),
    ("early stopping patience", lambda: EarlyStopping(patience=0), InvalidParameterError,
     "patience"),
    ("checkpoint every zero", lambda: Checkpoint("x", every=0), InvalidParameterError,
     "every"),
    ("checkpoint keep zero", lambda: Checkpoint("x", keep=0), InvalidParameterError, "keep"),
]

DATA: list[Case] = [
    ("lengths differ", lambda: Interactions.from_arrays(["a", "b"], ["x"], [1.0, 2.0]),
     DataError, "length"),
    ("nan rating", lambda: Interactions.from_arrays(["a"], ["x"], [math.nan]), DataError,
     "rating"),
    ("inf rating", lambda: Interactions.from_arrays(["a"], ["x"], [math.inf]), DataError,
     "rating"),
    ("float ids", lambda: Interactions.from_arrays([1.5], ["x"], [1.0]), DataError,
     "is not an integer or a string"),
    ("negative weight", lambda: Interactions.from_arrays(["a"], ["x"], [-1.0],
                                                         feedback="implicit"), DataError,
     "negative"),
    ("duplicate pair", lambda: Interactions.from_arrays(["a", "a"], ["x", "x"], [1.0, 2.0]),
     DataError, "duplicate"),
    ("unknown feedback", lambda: Interactions.from_arrays(["a"], ["x"], [1.0],
                                                          feedback="clicks"),
     InvalidParameterError, "feedback"),
    ("frame without columns", lambda: Interactions.from_frame(pd.DataFrame({"u": ["a"]})),
     DataError, "user"),
    ("split fraction zero", lambda: random_split(synthetic(20, 10), 0.0),
     InvalidParameterError, "test_size"),
    ("split fraction one", lambda: random_split(synthetic(20, 10), 1.0),
     InvalidParameterError, "test_size"),
    ("split fraction nan", lambda: random_split(synthetic(20, 10), math.nan),
     InvalidParameterError, "test_size"),
    ("holdout fraction", lambda: user_holdout(synthetic(20, 10), 2.0), InvalidParameterError,
     "test_size must be between 0 and 1"),
    ("k_fold one fold", lambda: list(k_fold(synthetic(20, 10), 1)), InvalidParameterError,
     "k must be >= 2"),
    ("temporal without timestamps", lambda: temporal_split(_untimed(), 0.2),
     DataError, "needs timestamps"),
    ("leave last without timestamps", lambda: leave_last_out(_untimed()), DataError,
     "needs timestamps"),
    ("fit on a frame", lambda: BiasedMF(epochs=1).fit(pd.DataFrame()), TypeError,
     "data must be Interactions"),
    ("fit with a frame as valid", lambda: BiasedMF(epochs=1).fit(synthetic(20, 10),
                                                                  valid=pd.DataFrame()),
     TypeError, "valid must be Interactions"),
    ("rating model on pairs", lambda: BiasedMF(epochs=1).fit(
        Interactions.from_arrays(["a"], ["x"])), InvalidParameterError, "fits ratings"),
    ("bayesian on pairs", lambda: BayesianMF(epochs=30).fit(
        Interactions.from_arrays(["a"], ["x"])), InvalidParameterError, "fits ratings"),
    ("ease too big", lambda: EASE(max_items=5).fit(synthetic(20, 10, feedback="implicit")),
     InvalidParameterError, "max_items"),
    ("callbacks and a trainer", lambda: BiasedMF(epochs=1).fit(
        synthetic(20, 10), callbacks=[lambda e, logs: None], trainer=Trainer()),
     InvalidParameterError, "give callbacks to the Trainer"),
]


def _use(model_fixture: str, call: Callable[[Any], Any]) -> Callable[..., Any]:
    call.fixture = model_fixture  # type: ignore[attr-defined]
    return call


USE: list[tuple[str, Callable[[Any], Any], type[BaseException], str]] = [
    ("predict unknown user", lambda m: m.predict("ghost", 0), UnknownIdError,
     "unknown user: 'ghost'"),
    ("predict unknown item", lambda m: m.predict(0, "ghost"), UnknownIdError,
     "unknown item: 'ghost'"),
    ("predict lengths differ", lambda m: m.predict([0, 1], [0]), InvalidParameterError,
     "same length"),
    ("predict bad on_unknown", lambda m: m.predict(0, 0, on_unknown="skip"),
     InvalidParameterError, "on_unknown"),
    ("predict float id", lambda m: m.predict(0.5, 0), UnknownIdError, "unknown user"),
    ("recommend k zero", lambda m: m.recommend(0, k=0), InvalidParameterError, "k must be"),
    ("recommend k float", lambda m: m.recommend(0, k=2.5), TypeError, "k must be an integer"),
    ("recommend k bool", lambda m: m.recommend(0, k=True), TypeError, "k must be an integer"),
    ("recommend k text", lambda m: m.recommend(0, k="10"), TypeError, "k must be an integer"),
    ("recommend unknown user", lambda m: m.recommend("ghost"), UnknownIdError, "ghost"),
    ("recommend bad on_unknown", lambda m: m.recommend(0, on_unknown="skip"),
     InvalidParameterError, "on_unknown"),
    ("recommend unknown allow-list item", lambda m: m.recommend(0, items=["ghost"]),
     UnknownIdError, "ghost"),
    ("recommend unknown deny-list item", lambda m: m.recommend(0, exclude=["ghost"]),
     UnknownIdError, "ghost"),
    ("similar unknown item", lambda m: m.similar_items("ghost"), UnknownIdError, "ghost"),
    ("similar k zero", lambda m: m.similar_items(0, k=0), InvalidParameterError, "k must be"),
    ("factors of a bad side", lambda m: m.factors("both"), InvalidParameterError,
     "side must be"),
    ("fold-in nothing", lambda m: m.recommend_new_user([]), InvalidParameterError,
     "at least one item"),
    ("fold-in unknown item", lambda m: m.recommend_new_user(["ghost"]), UnknownIdError,
     "ghost"),
    ("fold-in values length", lambda m: m.recommend_new_user([0, 1], [5.0]),
     InvalidParameterError, "one entry per item"),
    ("fold-in nan value", lambda m: m.recommend_new_user([0], [math.nan]),
     InvalidParameterError, "values"),
    ("update with a frame", lambda m: m.clone().update_users(pd.DataFrame()), NotFittedError,
     "not fitted"),
    ("evaluate a frame", lambda m: evaluate(m, pd.DataFrame()), TypeError,
     "test must be Interactions"),
    ("evaluate k zero", lambda m: evaluate(m, synthetic(60, 40, seed=1), k=0),
     InvalidParameterError, "k must be"),
    ("evaluate unknown metric", lambda m: evaluate(m, synthetic(60, 40, seed=1),
                                                   metrics=["auc"]),
     InvalidParameterError, "unknown metric 'auc'"),
    ("evaluate nan threshold", lambda m: evaluate(m, synthetic(60, 40, seed=1),
                                                  relevance_threshold=math.nan),
     InvalidParameterError, "relevance_threshold"),
    ("evaluate huge k", lambda m: evaluate(m, synthetic(60, 40, seed=2), k=10**12),
     InvalidParameterError, "larger than the catalogue"),
    ("index api with a frame", lambda m: m.to_indices(pd.DataFrame()), TypeError,
     "data must be Interactions"),
    ("unfitted predict", lambda m: m.clone().predict(0, 0), NotFittedError, "not fitted"),
    ("unfitted recommend", lambda m: m.clone().recommend(0), NotFittedError, "not fitted"),
    ("unfitted save", lambda m: m.clone().save("/tmp/never"), NotFittedError, "not fitted"),
]


@pytest.mark.parametrize(("name", "call", "error", "message"), CONSTRUCTION + DATA,
                         ids=[case[0] for case in CONSTRUCTION + DATA])
def test_bad_construction_and_data(name: str, call: Callable[[], Any],
                                   error: type[BaseException], message: str) -> None:
    with pytest.raises(error, match=_literal(message)) as raised:
        call()
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(("name", "call", "error", "message"), USE,
                         ids=[case[0] for case in USE])
def test_bad_use_of_a_fitted_model(name: str, call: Callable[[Any], Any],
                                   error: type[BaseException], message: str,
                                   model: BiasedMF) -> None:
    before = model.user_factors_.clone()
    with pytest.raises(error, match=_literal(message)) as raised:
        call(model)
    assert "\n" not in str(raised.value)
    assert np.array_equal(before.numpy(), model.user_factors_.numpy())  # nothing changed


def test_similar_users_of_an_item_model(implicit_model: ImplicitALS) -> None:
    knn = ItemKNN(neighbours=5).fit(synthetic(40, 30, feedback="implicit"),
                                    show_progress=False)
    with pytest.raises(InvalidParameterError, match="does not define similar users"):
        knn.similar_users(0)
    assert len(implicit_model.similar_users(0, k=3)) == 3


def _untimed() -> Interactions:
    return Interactions.from_arrays(["a", "a", "b", "b"], ["x", "y", "x", "z"],
                                    [1.0, 2.0, 3.0, 4.0])


def _literal(text: str) -> str:
    import re

    return re.escape(text)

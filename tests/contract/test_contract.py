"""Every registered model must pass these checks: latentrec's own, and those other packages add
through the ``latentrec.models`` entry points (docs/extending.md).

The suite runs over the registry, :func:`latentrec.models.model_kinds`, with each class's
``quick_params``; a new model needs no edit here. conftest.py registers a model defined outside
the package (external_model.py), which must pass unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from latentrec import Interactions, load, read_features
from latentrec.errors import (
    ConvergenceWarning,
    InvalidParameterError,
    ModelFileError,
    NotFittedError,
    UnknownIdError,
)
from latentrec.models import EpochConfig, Recommender, model_kinds
from latentrec.training import Checkpoint, Trainer

#: the kind of the model in external_model.py (registered by conftest.py)
EXTERNAL_KIND = "user-item-baseline"

KINDS: dict[str, type[Recommender]] = model_kinds()
#: a model that learns from side features also runs every check with them: "bpr+features"
WITH_FEATURES = "+features"
HYBRID_KINDS = sorted(kind + WITH_FEATURES for kind, cls in KINDS.items() if cls.feature_sides)
EPOCH_KINDS = sorted(
    [kind for kind, cls in KINDS.items() if cls.trains_in_epochs]
    + [kind for kind in HYBRID_KINDS if KINDS[kind.removesuffix(WITH_FEATURES)].trains_in_epochs])


@pytest.fixture(params=sorted(KINDS) + HYBRID_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def model_class(kind: str) -> type[Recommender]:
    return KINDS[kind.removesuffix(WITH_FEATURES)]


def side_features(model_class: type[Recommender]) -> dict[str, Any]:
    """Feature tables of the ids ``interactions_for`` draws, for every side the model takes:
    a categorical and a multi-valued feature per id."""
    tables = {}
    for side in model_class.feature_sides:
        name, count = side[:-1], (30 if side == "users" else 25)
        table = pd.DataFrame({name: [f"{name}-{n}" for n in range(count)],
                              "group": [f"g{n % 3}" for n in range(count)],
                              "tags": [f"t{n % 4}|t{n % 5}" for n in range(count)]})
        tables[f"{name}_features"] = read_features(table, name)
    return tables


@pytest.fixture
def make_model(model_class: type[Recommender], kind: str) -> Any:
    def make(**extra: Any) -> Recommender:
        hybrid: dict[str, Any] = {}
        if kind.endswith(WITH_FEATURES):  # and the implicit-feedback groups, where it has them
            fields = {field.name for field in dataclasses.fields(model_class.Config)}
            hybrid = {name: True for name in ("seen_items", "seen_users") if name in fields}
            if "seen_users" in hybrid and "optimizer" in fields:
                # BiasedMF trains seen_users with minibatches: its documented optimizer there
                # (the compiled kernel, which seen_items alone gets, runs the cold-id checks)
                hybrid["optimizer"] = "adam"
        model = model_class(**{**model_class.quick_params, **hybrid, **extra})
        if kind.endswith(WITH_FEATURES):  # every fit of this model learns from the features
            model.fit = functools.partial(  # type: ignore[method-assign]
                model_class.fit, model, **side_features(model_class))
        return model

    return make


def interactions_for(model_class: type[Recommender], rng: np.random.Generator,
                     n: int) -> Interactions:
    """Random interactions of the feedback the model is made for: implicit data (counts of
    repeats) for implicit models, ratings for the others."""
    users = [f"user-{u}" for u in rng.integers(0, 30, n)]
    items = [f"item-{i}" for i in rng.integers(0, 25, n)]
    ratings = rng.integers(1, 6, n).astype(float)
    if model_class.feedback == "implicit":
        return Interactions.from_arrays(users, items, None, feedback="implicit",
                                        duplicates="sum")
    return Interactions.from_arrays(users, items, ratings, duplicates="last")


@pytest.fixture
def data(model_class: type[Recommender], rng: np.random.Generator) -> Interactions:
    return interactions_for(model_class, rng, 400)


@pytest.fixture
def valid(model_class: type[Recommender], data: Interactions,
          rng: np.random.Generator) -> Interactions:
    """Held-out interactions of the same users and items (drawn after ``data``)."""
    return interactions_for(model_class, rng, 120)


def field_defaults(config: type[Any]) -> dict[str, Any]:
    defaults = {}
    for field in dataclasses.fields(config):
        if field.default is not dataclasses.MISSING:
            defaults[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            defaults[field.name] = field.default_factory()
        else:
            defaults[field.name] = inspect.Parameter.empty
    return defaults


def without_times(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{key: value for key, value in logs.items() if key != "seconds"} for logs in history]


# ---------------------------------------------------------------------- the registry
def test_the_registry_holds_the_models_of_other_packages() -> None:
    external = KINDS.get(EXTERNAL_KIND)
    assert external is not None, "conftest.py did not register external_model.py"
    assert not external.__module__.startswith("latentrec.")
    assert model_kinds()[EXTERNAL_KIND] is external
    assert "als" in EPOCH_KINDS and EXTERNAL_KIND in EPOCH_KINDS
    assert "popular" in KINDS and "popular" not in EPOCH_KINDS


def test_the_guide_shows_the_external_model_word_for_word() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "extending.md").read_text("utf-8")
    source = (Path(__file__).with_name("external_model.py")).read_text("utf-8")
    assert f"```python\n{source}```\n" in guide, (
        "docs/extending.md and tests/contract/external_model.py show the same model; "
        "change both")


def test_declaration(kind: str, model_class: type[Recommender]) -> None:
    assert model_class.kind == kind.removesuffix(WITH_FEATURES)
    assert model_class.feedback in ("explicit", "implicit", "any")
    assert set(model_class.similarity) <= {"users", "items"}
    assert model_class.trains_in_epochs == issubclass(model_class.Config, EpochConfig)
    assert dataclasses.is_dataclass(model_class.Config)
    assert model_class.Config.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert set(model_class.quick_params) <= set(model_class.parameter_names())


def test_constructor_has_the_config_fields(model_class: type[Recommender]) -> None:
    defaults = field_defaults(model_class.Config)
    parameters = list(inspect.signature(model_class.__init__).parameters.values())
    assert parameters[0].name == "self"
    parameters = parameters[1:]
    assert [p.name for p in parameters if p.kind is not inspect.Parameter.KEYWORD_ONLY] == []
    assert {p.name: p.default for p in parameters} == defaults
    assert [p.name for p in parameters if p.annotation is inspect.Parameter.empty] == []
    assert model_class().get_params() == defaults
    assert model_class.parameter_names() == list(defaults)


# ---------------------------------------------------------------------- behaviour
def test_fit_returns_self(make_model: Any, data: Interactions) -> None:
    model = make_model()
    assert model.fit(data, show_progress=False) is model


def test_not_fitted_raises(make_model: Any) -> None:
    model = make_model()
    with pytest.raises(NotFittedError, match="not fitted"):
        model.predict("user-1", "item-1")
    with pytest.raises(NotFittedError, match="not fitted"):
        model.recommend("user-1")


def test_raw_ids_round_trip(make_model: Any, data: Interactions) -> None:
    model = make_model().fit(data, show_progress=False)
    recs = model.recommend(["user-3", "user-1"], k=4)
    assert set(recs["user"]) == {"user-3", "user-1"}
    assert recs["item"].isin(set(data.items.to_list())).all()
    assert recs.groupby("user", sort=False)["rank"].apply(list).tolist() == [[1, 2, 3, 4]] * 2
    assert recs["user"].tolist()[0] == "user-3"  # the order given is kept
    if "items" in model.similarity:
        similar = model.similar_items("item-2", k=3)
        assert "item-2" not in similar["similar_item"].tolist()
        assert similar["rank"].tolist() == [1, 2, 3]
    else:
        with pytest.raises(InvalidParameterError, match="does not define similar items"):
            model.similar_items("item-2")
    if "users" not in model.similarity:
        with pytest.raises(InvalidParameterError, match="does not define similar users"):
            model.similar_users("user-1")


def test_seen_items_are_excluded(make_model: Any, data: Interactions) -> None:
    model = make_model().fit(data, show_progress=False)
    frame = data.to_frame()
    for user in ("user-0", "user-5"):
        seen = set(frame.loc[frame["user"] == user, "item"])
        recs = model.recommend(user, k=data.n_items)
        assert not seen & set(recs["item"])
        assert len(recs) == data.n_items - len(seen)
        with_seen = model.recommend(user, k=data.n_items, exclude_seen=False)
        assert len(with_seen) == data.n_items


def test_allow_list_restricts_candidates(make_model: Any, data: Interactions) -> None:
    model = make_model().fit(data, show_progress=False)
    allowed = ["item-1", "item-2", "item-3"]
    recs = model.recommend(["user-1", "user-2"], k=10, items=allowed, exclude_seen=False)
    assert set(recs["item"]) <= set(allowed)
    assert (recs.groupby("user").size() == 3).all()


def test_batch_equals_one_by_one(make_model: Any, data: Interactions) -> None:
    model = make_model().fit(data, show_progress=False)
    users = ["user-1", "user-2", "user-7"]
    items = ["item-4", "item-9", "item-0"]
    batch = model.predict(users, items)
    single = [model.predict(u, i) for u, i in zip(users, items, strict=True)]
    np.testing.assert_allclose(batch, single, rtol=1e-6)
    together = model.recommend(users, k=5)
    apart = [model.recommend(u, k=5) for u in users]
    for user, frame in zip(users, apart, strict=True):
        assert together.loc[together["user"] == user, "item"].tolist() == frame["item"].tolist()


def test_unknown_ids_raise(make_model: Any, data: Interactions) -> None:
    model = make_model().fit(data, show_progress=False)
    with pytest.raises(UnknownIdError, match="unknown user: 'nobody'"):
        model.predict("nobody", "item-1")
    with pytest.raises(UnknownIdError, match="unknown item: 'nothing'"):
        model.predict("user-1", "nothing")
    with pytest.raises(UnknownIdError, match="unknown user"):
        model.recommend(["user-1", "nobody"])
    if "items" in model.similarity:
        with pytest.raises(UnknownIdError, match="unknown item"):
            model.similar_items("nothing")


def test_unknown_ids_fallback_is_marked(make_model: Any, data: Interactions) -> None:
    model = make_model().fit(data, show_progress=False)
    values = model.predict(["nobody", "user-1"], ["item-1", "nothing"], on_unknown="fallback")
    assert np.isfinite(values).all()
    recs = model.recommend(["nobody", "user-1"], k=3, on_unknown="fallback")
    assert recs.loc[recs["user"] == "nobody", "fallback"].all()
    assert not recs.loc[recs["user"] == "user-1", "fallback"].any()
    counts = data.to_frame()["item"].value_counts()
    chosen = recs.loc[recs["user"] == "nobody", "item"]
    assert counts[chosen].tolist() == counts.iloc[:3].tolist()  # the most popular (ties aside)


def test_get_set_clone(make_model: Any, data: Interactions) -> None:
    model = make_model()
    params = model.get_params()
    assert params == dataclasses.asdict(model.config)
    name = next(iter(params))
    with pytest.raises(InvalidParameterError, match=f"{name} must"):
        model.set_params(**{name: -1})
    assert model.get_params() == params  # a rejected change leaves the config alone
    with pytest.raises(InvalidParameterError, match="has no parameter 'nonsense'"):
        model.set_params(nonsense=1)
    fitted = model.fit(data, show_progress=False)
    copy = fitted.clone()
    assert copy.get_params() == fitted.get_params()
    with pytest.raises(NotFittedError):
        copy.predict("user-1", "item-1")


def test_same_seed_same_state(make_model: Any, data: Interactions) -> None:
    seeded = "seed" in make_model().get_params()
    extra = {"seed": 7} if seeded else {}
    first = make_model(**extra).fit(data, show_progress=False)._tensors()
    second = make_model(**extra).fit(data, show_progress=False)._tensors()
    assert all(torch.equal(first[name], second[name]) for name in first)
    if seeded:
        other = make_model(seed=8).fit(data, show_progress=False)._tensors()
        assert not all(torch.equal(first[name], other[name]) for name in first)


def test_identical_after_save_and_load(make_model: Any, data: Interactions,
                                       model_dir: Path) -> None:
    model = make_model().fit(data, show_progress=False)
    model.save(model_dir)
    again = load(model_dir)
    assert type(again) is type(model)
    assert again.get_params() == model.get_params()
    users = data.users.ids_of(data.user_index)
    items = data.items.ids_of(data.item_index)
    assert np.array_equal(again.predict(users, items), model.predict(users, items))
    assert again.recommend(["user-1", "user-2"], k=5).equals(
        model.recommend(["user-1", "user-2"], k=5))
    assert again.history_ == model.history_


def test_corrupted_file_raises(make_model: Any, data: Interactions, model_dir: Path) -> None:
    make_model().fit(data, show_progress=False).save(model_dir)
    weights = model_dir / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="truncated or was modified"):
        load(model_dir)


# ---------------------------------------------------------------------- training loop
def test_monitor_and_validation(make_model: Any, model_class: type[Recommender],
                                data: Interactions, valid: Interactions) -> None:
    model = make_model()
    if not model_class.trains_in_epochs:
        assert model.monitor is None
        model.fit(data, valid=valid, show_progress=False)  # ignored, not refused
        assert model.history_ == []
        return
    assert model.monitor is not None
    name, mode = model.monitor
    assert isinstance(name, str) and name.startswith("valid_")
    assert mode in ("min", "max")
    model.fit(data, valid=valid, show_progress=False)  # a first fit: nothing published yet
    assert len(model.history_) == model.config.epochs
    assert all(math.isfinite(logs[name]) for logs in model.history_)
    try:
        stopping = make_model(patience=1)
    except InvalidParameterError:
        return  # a model may refuse early stopping (BayesianMF: every sample counts)
    with warnings.catch_warnings():  # a short run may end while still improving
        warnings.simplefilter("ignore", ConvergenceWarning)
        stopping.fit(data, valid=valid, show_progress=False)
    assert 1 <= len(stopping.history_) <= model.config.epochs
    assert sum(logs["best"] for logs in stopping.history_) == 1.0
    assert all(name in logs for logs in stopping.history_)


@pytest.mark.parametrize("kind", EPOCH_KINDS)
def test_resume_is_bit_for_bit(make_model: Any, data: Interactions, tmp_path: Path, kind: str,
                               model_class: type[Recommender]) -> None:
    extra = {} if make_model().config.epochs >= 2 else {"epochs": 2}
    epochs = make_model(**extra).config.epochs
    stop_at = epochs // 2

    def quiet(**options: Any) -> Trainer:
        return Trainer(show_progress=False, **options)

    full = make_model(**extra).fit(
        data, trainer=quiet(checkpoint=Checkpoint(tmp_path / "full", every=1)))
    stopped = make_model(**extra).fit(data, trainer=quiet(
        callbacks=[lambda epoch, logs: epoch == stop_at],
        checkpoint=Checkpoint(tmp_path / "part", every=epochs)))  # written because it stops
    assert len(stopped.history_) == stop_at
    trainer = quiet(resume=tmp_path / "part")
    resumed = make_model(**extra).fit(data, trainer=trainer)
    assert trainer.resumed_from == stop_at
    finished = make_model(**extra).fit(data, trainer=quiet(resume=tmp_path / "full"))

    expected = full._tensors()
    if kind.endswith(WITH_FEATURES):  # the features' embeddings are part of what resumes
        assert {f"{side[:-1]}_feature_factors" for side in model_class.feature_sides
                } <= expected.keys()
    for again in (resumed, finished):
        tensors = again._tensors()
        assert tensors.keys() == expected.keys()
        assert [name for name in expected if not torch.equal(tensors[name], expected[name])
                ] == []
        assert without_times(again.history_) == without_times(full.history_)
    users = data.users.ids_of(data.user_index)
    items = data.items.ids_of(data.item_index)
    assert np.array_equal(resumed.predict(users, items), full.predict(users, items))
    assert resumed.recommend(["user-1", "user-2"], k=5).equals(
        full.recommend(["user-1", "user-2"], k=5))
    with pytest.raises(InvalidParameterError, match="another run"):
        make_model(**extra, seed=99).fit(data, trainer=quiet(resume=tmp_path / "part"))


# ---------------------------------------------------------------------- cold ids and identity
FEATURE_KINDS = sorted(kind for kind, cls in KINDS.items() if cls.feature_sides)


def features_with_cold_ids(data: Interactions, side: str, rng: np.random.Generator) -> Any:
    """A feature table of every training id of ``side`` plus two cold ids: a categorical and
    a multi-valued column."""
    known = (data.users if side == "users" else data.items).to_numpy().tolist()
    ids = [*known, f"cold-{side}-0", f"cold-{side}-1"]
    groups = rng.integers(0, 4, len(ids))
    tags = ["|".join(f"t{t}" for t in rng.choice(6, rng.integers(1, 4), replace=False))
            for _ in ids]
    table = pd.DataFrame({"id": ids, "group": [f"g{g}" for g in groups], "tags": tags})
    return read_features(table, "id")


@pytest.mark.parametrize("kind", FEATURE_KINDS)
@pytest.mark.parametrize("identity", [True, False])
def test_cold_ids_survive_save_load_and_resume(kind: str, model_class: type[Recommender],
                                               data: Interactions, rng: np.random.Generator,
                                               identity: bool, tmp_path: Path) -> None:
    features = {f"{side[:-1]}_features": features_with_cold_ids(data, side, rng)
                for side in model_class.feature_sides}
    extra: dict[str, Any] = {"identity": identity}
    if model_class.quick_params.get("epochs", 2) < 2:
        extra["epochs"] = 2

    def make() -> Recommender:
        return model_class(**{**model_class.quick_params, **extra})

    def quiet(**options: Any) -> Trainer:
        return Trainer(show_progress=False, **options)

    epochs = make().config.epochs
    full = make().fit(data, **features, trainer=quiet())
    make().fit(data, **features, trainer=quiet(
        callbacks=[lambda epoch, logs: epoch == epochs // 2],
        checkpoint=Checkpoint(tmp_path / "part", every=epochs)))
    resumed = make().fit(data, **features, trainer=quiet(resume=tmp_path / "part"))
    expected, tensors = full._tensors(), resumed._tensors()
    assert tensors.keys() == expected.keys()
    assert [name for name in expected if not torch.equal(tensors[name], expected[name])] == []
    users = ["user-1", "user-2"] + (["cold-users-0"] if "users" in model_class.feature_sides
                                    else [])
    loaded = load(full.save(tmp_path / "model"))
    assert loaded.recommend(users, k=5).equals(full.recommend(users, k=5))
    for side in model_class.feature_sides:
        assert loaded.factors(side, features=True).equals(full.factors(side, features=True))
    if "items" in model_class.feature_sides:
        cold_items = ["cold-items-0", "cold-items-1"]
        scores = full.predict(["user-1"] * 2, cold_items)
        assert np.isfinite(scores).all()
        assert np.array_equal(loaded.predict(["user-1"] * 2, cold_items), scores)

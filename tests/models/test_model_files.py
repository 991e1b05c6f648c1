"""What a model directory says is checked against itself on load, for every model kind: a
directory whose checksums agree (the manifest rewritten, as a buggy writer or a forger would)
but whose values are impossible raises one line naming the file. And sizes that cannot fit in
memory are refused before anything is allocated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file, save_file

from latentrec import ALS, BPR, EASE, BiasedMF, Interactions, ItemKNN, Popularity, load, persistence
from latentrec.errors import InvalidParameterError, ModelFileError
from latentrec.models import base


def _reseal(model_dir: Path) -> None:
    (model_dir / "manifest.json").write_text(persistence._manifest_text(model_dir))


def _edit_meta(model_dir: Path, **changes: Any) -> None:
    path = model_dir / "model.json"
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta))  # NaN is written as the literal NaN, as a forger could
    _reseal(model_dir)


def _edit_tensor(model_dir: Path, name: str, change: Any) -> None:
    path = model_dir / "weights.safetensors"
    tensors = load_file(str(path))
    tensors[name] = change(tensors[name].clone())
    save_file(tensors, str(path))
    _reseal(model_dir)


def _refused(model_dir: Path, match: str) -> str:
    with pytest.raises(ModelFileError, match=match) as error:
        load(model_dir)
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(model_dir))
    return message


@pytest.fixture
def explicit_dir(tiny: Interactions, model_dir: Path) -> Path:
    BiasedMF(factors=3, epochs=3).fit(tiny, show_progress=False).save(model_dir)
    return model_dir


def test_resealed_directory_still_loads(explicit_dir: Path) -> None:
    """The helper itself: rewriting the manifest over untouched files changes nothing."""
    _reseal(explicit_dir)
    assert load(explicit_dir).n_users == 4


@pytest.mark.parametrize(("changes", "match"), [
    ({"rating_range": [5.0, 1.0]}, r"rating_range is \[5.0, 1.0\]; expected \[low, high\] "
                                   r"with low <= high"),
    ({"rating_range": [1.0, float("inf")]}, "not valid JSON"),
    ({"rating_range": [1.0]}, "expected \\[low, high\\]"),
    ({"global_mean": -1e308}, "global_mean is -1e\\+308; expected a finite number"),
    ({"global_mean": float("nan")}, "NaN is not a number JSON allows"),
    ({"global_mean": 40.0}, "global_mean 40.0 is outside rating_range"),
    ({"global_mean": "3.5"}, "global_mean is '3.5'; expected a number"),
    ({"rating_mean": 1e300}, "rating_mean is 1e\\+300"),
    ({"rating_mean": 9.0}, "rating_mean 9.0 is outside rating_range"),
    ({"rating_std": 0.0}, "rating_std is 0.0; expected > 0"),
    ({"users": ["ann", "ann", "cat", "dan"]}, "users must be unique; repeated: \\['ann'\\]"),
    ({"items": [1, "1", 2, 3]}, "items must be unique"),
    ({"users": [1, 2, 3, 2**70]}, "inconsistent model description"),
    ({"users": "ann"}, "users is not a list of ids"),
    ({"feedback": "maybe"}, "feedback is 'maybe'"),
    ({"history": {"loss": 1}}, "history is not a list of objects"),
    ({"config": [3]}, "inconsistent model description"),
])
def test_impossible_values_in_model_json(explicit_dir: Path, changes: dict[str, Any],
                                         match: str) -> None:
    _edit_meta(explicit_dir, **changes)
    _refused(explicit_dir, match)


@pytest.mark.parametrize(("name", "change", "match"), [
    ("user_factors", lambda t: t.fill_(float("nan")), "'user_factors' holds NaN or infinite"),
    ("item_bias", lambda t: t.fill_(float("inf")), "'item_bias' holds NaN or infinite"),
    ("item_popularity", lambda t: -t, "item_popularity holds negative counts"),
    ("seen_values", lambda t: t * float("nan"), "'seen_values' holds NaN"),
    ("seen_indices", lambda t: -t - 1, "seen-item matrix does not match the id maps"),
    ("seen_indptr", lambda t: t.flip(0), "seen-item matrix does not match the id maps"),
    ("seen_indptr", lambda t: t.double(), "seen-item matrix has the wrong tensor types"),
    ("user_factors", lambda t: t.int(), "factor tensors are not floating point"),
])
def test_impossible_tensors(explicit_dir: Path, name: str, change: Any, match: str) -> None:
    _edit_tensor(explicit_dir, name, change)
    _refused(explicit_dir, match)


@pytest.mark.parametrize(("model", "name", "change", "match"), [
    (ItemKNN(neighbours=2), "sim_indices", lambda t: t + 100, "similarity matrix does not "
                                                              "match"),
    (ItemKNN(neighbours=2), "user_indptr", lambda t: t - 1, "user matrix does not match"),
    (EASE(reg=1.0), "weights", lambda t: t.fill_(float("nan")), "'weights' holds NaN"),
    (EASE(reg=1.0), "weights", lambda t: t.double(), "EASE weights do not match"),
    (Popularity(), "scores", lambda t: t.fill_(float("-inf")), "'scores' holds NaN"),
    (ALS(factors=2, epochs=1), "item_factors", lambda t: t[:, :1].contiguous(),
     "has shape"),
    (BPR(factors=2, epochs=1), "item_factors", lambda t: t * float("inf"), "holds NaN"),
])
def test_impossible_tensors_of_each_model(tiny: Interactions, model_dir: Path, model: Any,
                                          name: str, change: Any, match: str) -> None:
    data = tiny if model.feedback == "explicit" else tiny.as_implicit()
    model.fit(data, show_progress=False).save(model_dir)
    load(model_dir)
    _edit_tensor(model_dir, name, change)
    _refused(model_dir, match)


# ---------------------------------------------------------------------- sizes
def test_factor_tables_larger_than_memory_are_refused_up_front(tiny: Interactions) -> None:
    model = BiasedMF(factors=10**12, epochs=1)
    with pytest.raises(InvalidParameterError, match=r"factors=1,000,000,000,000 needs "
                                                    r"\d[\d,.]* TiB for the factor tables") as e:
        model.fit(tiny, show_progress=False)
    assert "\n" not in str(e.value) and "lower factors" in str(e.value)
    assert not hasattr(model, "user_factors_")


@pytest.mark.parametrize("make", [lambda: BiasedMF(factors=64, epochs=1),
                                  lambda: ALS(factors=64, epochs=1),
                                  lambda: BPR(factors=64, epochs=1)])
def test_the_limit_is_this_machines_memory(tiny: Interactions, make: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # 8 users and items x 64 factors x 4 bytes = 2,048 bytes
    monkeypatch.setattr(base, "physical_memory", lambda: 2047)
    data = tiny if make().feedback == "explicit" else tiny.as_implicit()
    with pytest.raises(InvalidParameterError, match="2.0 KiB .* this machine's 2.0 KiB"):
        make().fit(data, show_progress=False)
    monkeypatch.setattr(base, "physical_memory", lambda: 2048)
    make().fit(data, show_progress=False)


def test_physical_memory_is_known_here() -> None:
    memory = base.physical_memory()
    assert memory is not None and memory > 2**26

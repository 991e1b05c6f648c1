"""Model directories: safe formats, and a clear error for every kind of damage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latentrec import BiasedMF, Interactions, load
from latentrec.errors import ModelFileError


@pytest.fixture
def saved(tiny: Interactions, model_dir: Path) -> Path:
    BiasedMF(factors=3, epochs=3).fit(tiny, show_progress=False).save(model_dir)
    return model_dir


def _edit_meta(model_dir: Path, **changes: object) -> None:
    path = model_dir / "model.json"
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta))


def test_directory_holds_only_json_and_safetensors(saved: Path) -> None:
    assert sorted(p.name for p in saved.iterdir()) == ["model.json", "weights.safetensors"]
    meta = json.loads((saved / "model.json").read_text())
    assert meta["kind"] == "biased-mf"
    assert meta["format_version"] == 1
    assert meta["users"] == ["ann", "bob", "cat", "dan"]
    assert meta["config"]["factors"] == 3
    assert meta["rating_range"] == [1.0, 5.0]
    assert len(meta["history"]) == 3
    # safetensors starts with a little-endian header length, then a JSON header: no pickle
    header = (saved / "weights.safetensors").read_bytes()
    assert header[8:9] == b"{"


def test_integer_ids_stay_integers(model_dir: Path) -> None:
    data = Interactions.from_arrays([10, 10, 20], [7, 8, 7], [4.0, 2.0, 5.0])
    BiasedMF(factors=2, epochs=2).fit(data, show_progress=False).save(model_dir)
    model = load(model_dir)
    assert model.users_.to_list() == [10, 20]
    assert model.recommend(20, k=1)["item"].tolist() == [8]


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such model directory"):
        load(tmp_path / "absent")


def test_not_a_model_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not a latentrec model directory"):
        load(tmp_path)


def test_truncated_weights(saved: Path) -> None:
    weights = saved / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])
    with pytest.raises(ModelFileError, match="truncated or was modified"):
        load(saved)


def test_missing_weights(saved: Path) -> None:
    (saved / "weights.safetensors").unlink()
    with pytest.raises(ModelFileError, match="weights.safetensors is missing"):
        load(saved)


def test_damaged_json(saved: Path) -> None:
    path = saved / "model.json"
    path.write_text(path.read_text()[:50])
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load(saved)


def test_future_format_version(saved: Path) -> None:
    _edit_meta(saved, format_version=99, library_version="9.0")
    with pytest.raises(ModelFileError, match="format 99.*upgrade latentrec"):
        load(saved)


def test_unknown_kind(saved: Path) -> None:
    _edit_meta(saved, kind="deep-magic")
    with pytest.raises(ModelFileError, match="unknown model kind 'deep-magic'"):
        load(saved)


def test_tampered_id_map(saved: Path) -> None:
    _edit_meta(saved, users=["ann", "bob"])
    with pytest.raises(ModelFileError, match="does not match"):
        load(saved)


def test_tampered_config(saved: Path) -> None:
    _edit_meta(saved, config={"factors": -3})
    with pytest.raises(ModelFileError, match="inconsistent model description"):
        load(saved)


def test_tampered_tensor_list(saved: Path) -> None:
    meta = json.loads((saved / "model.json").read_text())
    meta["tensors"]["user_factors"] = [4, 99]
    (saved / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="has shape"):
        load(saved)


def test_saving_over_a_file_is_refused(tiny: Interactions, tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    model = BiasedMF(factors=2, epochs=1).fit(tiny, show_progress=False)
    with pytest.raises(ModelFileError, match="not a directory"):
        model.save(target)

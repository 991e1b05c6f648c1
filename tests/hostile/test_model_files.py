"""Damaged, tampered and forged model directories, loaded through the command line: each is
refused with one line naming the directory or file (exit 1), never loaded into a wrong model,
never a traceback, and no file executes code."""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from latentrec import persistence

Edit = Callable[[Path], None]


def _reseal(folder: Path) -> None:
    """What a forger who recomputes every checksum would do."""
    (folder / "manifest.json").write_text(persistence._manifest_text(folder))


def _meta(change: Callable[[dict[str, Any]], Any], *, reseal: bool = True) -> Edit:
    def edit(folder: Path) -> None:
        path = folder / "model.json"
        meta = json.loads(path.read_text())
        change(meta)
        path.write_text(json.dumps(meta))
        if reseal:
            _reseal(folder)
    return edit


def _tensor(name: str, change: Callable[[torch.Tensor], torch.Tensor]) -> Edit:
    def edit(folder: Path) -> None:
        path = folder / "weights.safetensors"
        tensors = load_file(str(path))
        tensors[name] = change(tensors[name].clone()).contiguous()
        save_file(tensors, str(path))
        _reseal(folder)
    return edit


def _write(name: str, content: bytes, *, reseal: bool = False) -> Edit:
    def edit(folder: Path) -> None:
        (folder / name).write_bytes(content)
        if reseal:
            _reseal(folder)
    return edit


def _delete(name: str) -> Edit:
    return lambda folder: (folder / name).unlink()


def _flip_byte(name: str) -> Edit:
    def edit(folder: Path) -> None:
        path = folder / name
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    return edit


def _truncate(name: str) -> Edit:
    def edit(folder: Path) -> None:
        path = folder / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return edit


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda meta: meta.__setitem__(key, value)


def _swap_users(meta: dict[str, Any]) -> None:
    meta["users"][0], meta["users"][1] = meta["users"][1], meta["users"][0]


DEEP = b'{"a":' * 200_000 + b"1" + b"}" * 200_000

CASES: list[tuple[str, Edit]] = [
    # damage and edits: the manifest catches them
    ("model.json one byte changed", _flip_byte("model.json")),
    ("model.json truncated", _truncate("model.json")),
    ("model.json deleted", _delete("model.json")),
    ("model.json emptied", _write("model.json", b"")),
    ("model.json replaced by {}", _write("model.json", b"{}")),
    ("model.json binary", _write("model.json", bytes(range(256)))),
    ("users swapped", _meta(_swap_users, reseal=False)),
    ("rating range reversed, unsealed", _meta(_set("rating_range", [5, 1]), reseal=False)),
    ("weights one byte changed", _flip_byte("weights.safetensors")),
    ("weights truncated", _truncate("weights.safetensors")),
    ("weights deleted", _delete("weights.safetensors")),
    ("weights emptied", _write("weights.safetensors", b"")),
    ("weights replaced by a pickle", _write("weights.safetensors",
                                            pickle.dumps({"user_factors": [1.0]}))),
    ("manifest deleted", _delete("manifest.json")),
    ("manifest garbage", _write("manifest.json", b"not json")),
    ("manifest truncated", _truncate("manifest.json")),
    ("manifest nested 200,000 deep", _write("manifest.json", DEEP)),
    ("model.json nested 200,000 deep", _write("model.json", DEEP)),
    ("model.json nested 200,000 deep, resealed", _write("model.json", DEEP, reseal=True)),
    # forgeries with consistent checksums: the values are checked
    ("global mean NaN", _meta(_set("global_mean", float("nan")))),
    ("global mean -1e308", _meta(_set("global_mean", -1e308))),
    ("rating range reversed", _meta(_set("rating_range", [5, 1]))),
    ("rating range infinite", _meta(_set("rating_range", [1, float("inf")]))),
    ("rating std zero", _meta(_set("rating_std", 0.0))),
    ("rating mean NaN", _meta(_set("rating_mean", float("nan")))),
    ("repeated user ids", _meta(lambda meta: meta["users"].__setitem__(1, meta["users"][0]))),
    ("one user id missing", _meta(lambda meta: meta["users"].pop())),
    ("ids of another type", _meta(_set("items", [[1], [2]]))),
    ("unknown kind", _meta(_set("kind", "svd++"))),
    ("path as a kind", _meta(_set("kind", "../../etc/passwd"))),
    ("unknown parameter", _meta(lambda meta: meta["config"].__setitem__("colour", "blue"))),
    ("parameter of the wrong type", _meta(lambda meta: meta["config"].__setitem__("factors",
                                                                                  "4"))),
    ("impossible parameter", _meta(lambda meta: meta["config"].__setitem__("lr", -1))),
    ("future format", _meta(_set("format_version", 99))),
    ("unknown feedback", _meta(_set("feedback", "sideways"))),
    ("history not a list", _meta(_set("history", "long"))),
    ("factors NaN", _tensor("user_factors", lambda t: t.fill_(float("nan")))),
    ("item bias infinite", _tensor("item_bias", lambda t: t.fill_(float("inf")))),
    ("factors of the wrong shape", _tensor("item_factors", lambda t: t[:-1])),
    ("factors of the wrong width", _tensor("user_factors", lambda t: t[:, :-1])),
    ("seen items out of range", _tensor("seen_indices", lambda t: t + 10_000)),
    ("seen row pointers going down", _tensor("seen_indptr", lambda t: t.flip(0))),
    ("negative popularity", _tensor("item_popularity", lambda t: -t - 1)),
]


@pytest.fixture(scope="module")
def saved(workspace: Path) -> Path:
    return workspace / "model"


@pytest.mark.parametrize(("name", "edit"), CASES, ids=[case[0] for case in CASES])
def test_a_tampered_model_is_refused(name: str, edit: Edit, saved: Path, tmp_path: Path,
                                     invoke: Callable[..., tuple[int, str, str]]) -> None:
    folder = tmp_path / "tampered"
    shutil.copytree(saved, folder)
    edit(folder)
    code, out, err = invoke("predict", str(folder), "--user", "u1", "--item", "i3")
    assert code == 1, (out, err)
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("latentrec: error: "), err
    assert str(folder) in lines[0]
    assert "Traceback" not in err


def test_the_untouched_copy_loads(saved: Path, tmp_path: Path,
                                  invoke: Callable[..., tuple[int, str, str]]) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(saved, folder)
    code, out, err = invoke("predict", str(folder), "--user", "u1", "--item", "i3")
    assert code == 0, err
    assert 1.0 <= float(out) <= 5.0


def test_finite_factors_whose_scores_overflow_are_refused(
        saved: Path, tmp_path: Path, invoke: Callable[..., tuple[int, str, str]]) -> None:
    folder = tmp_path / "huge"
    shutil.copytree(saved, folder)
    _tensor("user_factors", lambda t: t.fill_(1e20))(folder)
    _tensor("item_factors", lambda t: t.fill_(1e20))(folder)
    code, _, err = invoke("predict", str(folder), "--user", "u1", "--item", "i3")
    assert code == 1
    assert "scores can reach" in err and err.count("\n") == 1

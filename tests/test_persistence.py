"""Model directories: safe formats, a clear error for every kind of damage, and saves that a
crash, a full disk or a bad path cannot turn into a lost model."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.torch

from latentrec import BiasedMF, Interactions, load, persistence
from latentrec.errors import ModelFileError
from latentrec.models.base import Recommender

MODEL_FILES = ["manifest.json", "model.json", "weights.safetensors"]


@pytest.fixture
def saved(tiny: Interactions, model_dir: Path) -> Path:
    BiasedMF(factors=3, epochs=3).fit(tiny, show_progress=False).save(model_dir)
    return model_dir


def _reseal(model_dir: Path) -> None:
    """Rewrite the manifest for the files as they are now: a directory whose checksums agree
    but whose contents are wrong (what a buggy writer, or a deliberate forger, produces)."""
    (model_dir / "manifest.json").write_text(persistence._manifest_text(model_dir))


def _edit_meta(model_dir: Path, reseal: bool = True, **changes: object) -> None:
    path = model_dir / "model.json"
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta))
    if reseal:
        _reseal(model_dir)


def _one_line_naming(error: pytest.ExceptionInfo[BaseException], path: Path) -> str:
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message
    return message


def test_directory_holds_only_json_and_safetensors(saved: Path) -> None:
    assert sorted(p.name for p in saved.iterdir()) == MODEL_FILES
    meta = json.loads((saved / "model.json").read_text())
    assert meta["kind"] == "biased-mf"
    assert meta["format_version"] == 2
    assert meta["users"] == ["ann", "bob", "cat", "dan"]
    assert meta["config"]["factors"] == 3
    assert meta["rating_range"] == [1.0, 5.0]
    assert len(meta["history"]) == 3
    # safetensors starts with a little-endian header length, then a JSON header: no pickle
    header = (saved / "weights.safetensors").read_bytes()
    assert header[8:9] == b"{"


def test_manifest_covers_every_file_and_itself(saved: Path) -> None:
    """The manifest format, checked with hashlib alone (what another reader would do)."""
    manifest = json.loads((saved / "manifest.json").read_text())
    assert manifest["format"] == "latentrec-manifest" and manifest["format_version"] == 2
    for name in ("model.json", "weights.safetensors"):
        content = (saved / name).read_bytes()
        assert manifest["files"][name] == {"bytes": len(content),
                                           "sha256": hashlib.sha256(content).hexdigest()}
    claimed = manifest.pop("manifest_sha256")
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    assert claimed == hashlib.sha256(canonical.encode()).hexdigest()


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


# ---------------------------------------------------------------------- any file edited
def test_truncated_weights(saved: Path) -> None:
    weights = saved / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])
    with pytest.raises(ModelFileError, match="truncated or was modified") as error:
        load(saved)
    _one_line_naming(error, weights)


def test_weights_edited_in_place(saved: Path) -> None:
    weights = saved / "weights.safetensors"
    content = bytearray(weights.read_bytes())
    content[-1] ^= 0x01  # same size, one bit of one factor
    weights.write_bytes(bytes(content))
    with pytest.raises(ModelFileError, match="weights.safetensors: checksum does not match "
                                             "manifest.json"):
        load(saved)


def test_swapped_users_in_model_json_are_detected(saved: Path) -> None:
    """Swapping two ids keeps every shape right; only the checksum can tell."""
    before = load(saved).predict("ann", "w")
    meta = json.loads((saved / "model.json").read_text())
    users = meta["users"]
    users[0], users[1] = users[1], users[0]
    (saved / "model.json").write_text(json.dumps(meta, indent=1))
    with pytest.raises(ModelFileError, match="truncated or was modified") as error:
        load(saved)
    _one_line_naming(error, saved / "model.json")
    assert np.isfinite(before)


@pytest.mark.parametrize("change", ["checksum", "entry", "truncate"])
def test_edited_manifest_is_detected(saved: Path, change: str) -> None:
    path = saved / "manifest.json"
    manifest = json.loads(path.read_text())
    if change == "checksum":
        manifest["files"]["model.json"]["sha256"] = "0" * 64
        path.write_text(json.dumps(manifest))
    elif change == "entry":
        manifest["files"]["model.json"]["note"] = "harmless?"
        path.write_text(json.dumps(manifest))
    else:
        path.write_text(path.read_text()[:30])
    with pytest.raises(ModelFileError) as error:
        load(saved)
    _one_line_naming(error, path)


def test_removed_manifest_is_detected(saved: Path) -> None:
    (saved / "manifest.json").unlink()
    with pytest.raises(ModelFileError, match="manifest.json is missing"):
        load(saved)


def test_missing_weights(saved: Path) -> None:
    (saved / "weights.safetensors").unlink()
    with pytest.raises(ModelFileError, match="weights.safetensors is missing"):
        load(saved)


def test_damaged_json(saved: Path) -> None:
    path = saved / "model.json"
    path.write_text(path.read_text()[:50])
    _reseal(saved)
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load(saved)


@pytest.mark.parametrize("opening", ["[", '{"a":'])
@pytest.mark.parametrize("name", ["model.json", "manifest.json"])
def test_deeply_nested_json_is_one_line(saved: Path, opening: str, name: str) -> None:
    closing = "]" if opening == "[" else "}"
    (saved / name).write_text(opening * 200_000 + "1" + closing * 200_000)
    if name == "model.json":
        _reseal(saved)  # the nesting itself must be refused, not only the checksum
    with pytest.raises(ModelFileError, match="nested more than 32 levels deep") as error:
        load(saved)
    _one_line_naming(error, saved / name)


def test_moderately_nested_config_is_refused(saved: Path) -> None:
    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    _edit_meta(saved, history=[{"loss": deep}])
    with pytest.raises(ModelFileError, match="nested more than 32 levels deep"):
        load(saved)


def test_future_format_version(saved: Path) -> None:
    manifest = json.loads((saved / "manifest.json").read_text())
    manifest.update(format_version=99, library_version="9.0")
    (saved / "manifest.json").write_text(json.dumps(manifest))
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
    _reseal(saved)
    with pytest.raises(ModelFileError, match="has shape"):
        load(saved)


# ---------------------------------------------------------------------- format 1
def _as_format_1(model_dir: Path) -> None:
    """What latentrec wrote before the manifest: the weights' checksum in model.json."""
    (model_dir / "manifest.json").unlink()
    meta = json.loads((model_dir / "model.json").read_text())
    meta["format_version"] = 1
    meta["weights_sha256"] = hashlib.sha256(
        (model_dir / "weights.safetensors").read_bytes()).hexdigest()
    (model_dir / "model.json").write_text(json.dumps(meta, indent=1) + "\n")


def test_format_1_directories_still_load(tiny: Interactions, model_dir: Path) -> None:
    model = BiasedMF(factors=3, epochs=3).fit(tiny, show_progress=False)
    model.save(model_dir)
    _as_format_1(model_dir)
    again = load(model_dir)
    assert np.array_equal(again.predict(["ann", "dan"], ["w", "x"]),
                          model.predict(["ann", "dan"], ["w", "x"]))
    again.save(model_dir)  # saving again writes today's format
    assert sorted(p.name for p in model_dir.iterdir()) == MODEL_FILES
    assert json.loads((model_dir / "model.json").read_text())["format_version"] == 2


def test_format_1_weights_are_still_checked(saved: Path) -> None:
    _as_format_1(saved)
    weights = saved / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4])
    with pytest.raises(ModelFileError, match="checksum does not match model.json"):
        load(saved)


def test_format_1_values_are_still_checked(saved: Path) -> None:
    _as_format_1(saved)
    _edit_meta(saved, reseal=False, rating_range=[5.0, 1.0])
    with pytest.raises(ModelFileError, match="rating_range"):
        load(saved)


# ---------------------------------------------------------------------- where saves go
def _listing(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


def test_saving_over_a_file_is_refused(tiny: Interactions, tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    model = BiasedMF(factors=2, epochs=1).fit(tiny, show_progress=False)
    with pytest.raises(ModelFileError, match="exists and is not a directory") as error:
        model.save(target)
    _one_line_naming(error, target)
    assert _listing(tmp_path) == {"file": b"x"}


def test_saving_under_a_file_is_refused(tiny: Interactions, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    model = BiasedMF(factors=2, epochs=1).fit(tiny, show_progress=False)
    with pytest.raises(ModelFileError, match="afile is a file and not a directory") as error:
        model.save(tmp_path / "afile" / "sub" / "model")
    _one_line_naming(error, tmp_path / "afile" / "sub" / "model")
    assert _listing(tmp_path) == {"afile": b"x"}


def test_saving_over_a_directory_of_other_files_is_refused(tiny: Interactions,
                                                           tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    model = BiasedMF(factors=2, epochs=1).fit(tiny, show_progress=False)
    with pytest.raises(ModelFileError, match="holds 'notes.txt'.*new or empty"):
        model.save(tmp_path)
    assert _listing(tmp_path) == {"notes.txt": b"mine"}


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs POSIX permissions, which root ignores")
def test_saving_into_a_read_only_directory_is_refused(tiny: Interactions,
                                                      tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    model = BiasedMF(factors=2, epochs=1).fit(tiny, show_progress=False)
    try:
        with pytest.raises(ModelFileError, match="read-only or permission denied"):
            model.save(locked / "model")
        with pytest.raises(ModelFileError, match="read-only or permission denied"):
            persistence.check_writable(locked / "deeper" / "model")
    finally:
        locked.chmod(0o755)
    assert list(locked.iterdir()) == []


def test_read_only_locations_are_refused_before_writing(
        tiny: Interactions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same, wherever the tests run (root ignores permissions): the check asks the OS."""
    model = BiasedMF(factors=2, epochs=1).fit(tiny, show_progress=False)
    model.save(tmp_path / "kept")
    before = _listing(tmp_path)
    real_access = os.access
    read_only = {tmp_path, tmp_path / "kept"}
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: (
        Path(p) not in read_only and real_access(p, mode, **kw)))
    with pytest.raises(ModelFileError, match="kept: the directory is read-only"):
        model.save(tmp_path / "kept")
    with pytest.raises(ModelFileError, match="cannot write in"):
        model.save(tmp_path / "new" / "model")
    assert _listing(tmp_path) == before


def test_check_writable_writes_nothing(tmp_path: Path, saved: Path) -> None:
    target = tmp_path / "a" / "b" / "model"
    assert persistence.check_writable(target) == target
    assert not (tmp_path / "a").exists()
    assert persistence.check_writable(saved) == saved  # a model directory: replaced by a save
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelFileError, match="not a directory"):
        persistence.check_writable(tmp_path / "file")


def test_save_replaces_a_model_and_old_leftovers(tiny: Interactions, saved: Path) -> None:
    (saved / "tmpa1b2c3.tmp").write_bytes(b"\0" * 1000)  # what a killed format-1 save left
    (saved / "model.json.tmp").write_text("{")
    other = BiasedMF(factors=2, epochs=2, seed=9).fit(tiny, show_progress=False)
    other.save(saved)
    assert sorted(p.name for p in saved.iterdir()) == MODEL_FILES
    assert sorted(p.name for p in saved.parent.iterdir()) == [saved.name]
    assert load(saved).predict("ann", "w") == other.predict("ann", "w")


def test_save_through_a_symlink_replaces_its_target(tiny: Interactions, tmp_path: Path) -> None:
    real, link = tmp_path / "v1", tmp_path / "current"
    model = BiasedMF(factors=2, epochs=1).fit(tiny, show_progress=False)
    model.save(real)
    link.symlink_to(real)
    model.save(link)
    assert link.is_symlink() and sorted(p.name for p in real.iterdir()) == MODEL_FILES


# ---------------------------------------------------------------------- failures mid-save
def _two_models(tiny: Interactions) -> tuple[Recommender, Recommender]:
    old = BiasedMF(factors=3, epochs=3, seed=1).fit(tiny, show_progress=False)
    new = BiasedMF(factors=3, epochs=3, seed=2).fit(tiny, show_progress=False)
    assert old.predict("ann", "w") != new.predict("ann", "w")
    return old, new


def _which(model_dir: Path, old: Recommender, new: Recommender) -> str:
    score = load(model_dir).predict("ann", "w")
    assert score in (old.predict("ann", "w"), new.predict("ann", "w"))
    return "old" if score == old.predict("ann", "w") else "new"


def test_disk_full_leaves_the_old_model(tiny: Interactions, model_dir: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = _two_models(tiny)
    old.save(model_dir)
    real_save = safetensors.torch.save_file

    def full_disk(tensors: Any, filename: str, *args: Any, **kwargs: Any) -> None:
        real_save(tensors, filename, *args, **kwargs)
        with open(filename, "r+b") as handle:  # the disk filled up part-way through
            handle.truncate(100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(ModelFileError, match="could not save the model \\(No space left on "
                                             "device\\); the model saved there before is "
                                             "unchanged") as error:
        new.save(model_dir)
    _one_line_naming(error, model_dir)
    assert _which(model_dir, old, new) == "old"
    assert sorted(p.name for p in model_dir.parent.iterdir()) == [model_dir.name]  # no *.tmp


@pytest.mark.parametrize("step", range(6))
def test_a_failure_at_any_step_leaves_the_old_model(tiny: Interactions, model_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    step: int) -> None:
    """Steps: weights, model.json, manifest.json, directory sync, old model aside, new model in
    place; each raises in turn (an I/O error), and the old model is what stays."""
    old, new = _two_models(tiny)
    old.save(model_dir)
    calls = []

    def failing(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(original)
            if len(calls) == step + 1:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            return original(*args, **kwargs)
        return wrapper

    for name in ("_write_weights", "_write_text", "fsync_dir"):
        monkeypatch.setattr(persistence, name, failing(getattr(persistence, name)))
    monkeypatch.setattr(os, "rename", failing(os.rename))
    with pytest.raises(ModelFileError, match="the model saved there before is unchanged"):
        new.save(model_dir)
    monkeypatch.undo()
    assert _which(model_dir, old, new) == "old"
    assert sorted(p.name for p in model_dir.parent.iterdir()) == [model_dir.name]


def test_a_crash_at_any_moment_leaves_the_old_model_or_the_new(
        tiny: Interactions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a SIGKILL leaves: the folder is copied before and after every file-system change a
    save makes; each copy must load as the old model or the new one, and its leftovers must be
    gone after that load."""
    old, new = _two_models(tiny)
    folder = tmp_path / "models"
    old.save(folder / "m")
    copies: list[Path] = []
    busy = [False]

    def snapshot() -> None:
        if busy[0]:
            return
        busy[0] = True
        copy = tmp_path / f"crash-{len(copies)}"
        shutil.copytree(folder, copy, symlinks=True)
        copies.append(copy)
        busy[0] = False

    def watched(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            snapshot()
            return original(*args, **kwargs)
        return wrapper

    with monkeypatch.context() as patch:
        for name in ("mkdir", "rename", "replace", "unlink", "rmdir"):
            patch.setattr(os, name, watched(getattr(os, name)))
        for name in ("_write_weights", "_write_text"):
            patch.setattr(persistence, name, watched(getattr(persistence, name)))
        new.save(folder / "m")
    snapshot()
    # in the copies the saving process is gone, as after a kill
    monkeypatch.setattr(persistence, "_owner_gone", lambda pid, path: True)
    between_renames = [not (copy / "m").exists() for copy in copies]
    seen = [_which(copy / "m", old, new) for copy in copies]
    assert seen[0] == "old" and seen[-1] == "new" and len(copies) >= 10
    assert seen == sorted(seen, key=["old", "new"].index)  # old until the swap, then new
    assert any(between_renames)  # the dangerous moment was among the copies
    for copy in copies:
        assert sorted(p.name for p in copy.iterdir()) == ["m"]  # the load cleared leftovers
        assert sorted(p.name for p in (copy / "m").iterdir()) == MODEL_FILES


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and RLIMIT_FSIZE are POSIX")
def test_killed_and_file_size_limited_saves_in_a_real_process(tiny: Interactions,
                                                              tmp_path: Path) -> None:
    """A real process: a save over a file-size limit fails with one line (the real I/O error
    from safetensors); then a save SIGKILLed between its two renames leaves the old model,
    which the next load puts back in place."""
    old, new = _two_models(tiny)
    target, source = tmp_path / "m", tmp_path / "source"
    old.save(target)
    new.save(source)
    script = textwrap.dedent("""
        import os, resource, signal, sys
        from latentrec import load
        from latentrec.errors import ModelFileError
        model = load(sys.argv[1])
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (256, hard))
        try:
            model.save(sys.argv[2])
        except ModelFileError as error:
            print(error, flush=True)
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        real, calls = os.rename, []
        def rename(*args, **kwargs):
            calls.append(args)
            if len(calls) == 2:  # the old model is aside, the new one not yet in place
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        os.rename = rename
        model.save(sys.argv[2])
    """)
    result = subprocess.run([sys.executable, "-c", script, str(source), str(target)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{target}: could not save the model")
    assert lines[0].endswith("the model saved there before is unchanged")
    assert not target.exists()  # killed between the renames
    assert len(list(tmp_path.glob(".m.*"))) == 2  # the old model aside, the new one staged
    assert _which(target, old, new) == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "source"]
    new.save(target)
    assert _which(target, old, new) == "new"


def test_a_kind_cannot_be_taken_by_a_class_of_the_same_name_elsewhere() -> None:
    from latentrec.errors import InvalidParameterError
    from latentrec.persistence import model_kinds, register_kind

    original = model_kinds()["popular"]
    impostor = type(original.__name__, (), {"__module__": "elsewhere", "kind": "popular"})
    impostor.__qualname__ = original.__qualname__
    with pytest.raises(InvalidParameterError, match="already registered by"):
        register_kind("popular", impostor)
    assert model_kinds()["popular"] is original

import json
import os

import pytest
import torch

from lstmkit.errors import LstmkitError
from lstmkit.training import atomic, load_bundle, save_bundle, tensors_from_bytes, tensors_to_bytes


def test_tensors_round_trip_through_safetensors_bytes():
    t = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([1.5], dtype=torch.float64)}
    back = tensors_from_bytes(tensors_to_bytes(t))
    assert set(back) == {"a", "b"} and torch.equal(back["a"], t["a"]) and back["b"].dtype == torch.float64
    with pytest.raises(LstmkitError, match="not a valid safetensors file"):
        tensors_from_bytes(b"\x00garbage")


def test_bundle_round_trip_and_manifest(tmp_path):
    folder = save_bundle(tmp_path / "m", {"x.json": b"{}", "w.bin": b"123"}, kind="thing")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "lstmkit-thing" and set(manifest["files"]) == {"x.json", "w.bin"}
    assert load_bundle(folder, "thing", ["x.json", "w.bin"]) == {"x.json": b"{}", "w.bin": b"123"}
    assert sorted(os.listdir(tmp_path)) == ["m"]                      # no temp folders left behind


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "w.bin").write_bytes(b"124"), r"w.bin does not match its SHA-256"),
    (lambda f: (f / "w.bin").unlink(), r"incomplete: w.bin is missing"),
    (lambda f: (f / "manifest.json").unlink(), r"incomplete: manifest.json is missing"),
    (lambda f: (f / "manifest.json").write_text("{"), r"manifest.json is not a valid manifest"),
])
def test_load_bundle_refuses_damaged_folders(tmp_path, damage, message):
    folder = save_bundle(tmp_path / "m", {"x.json": b"{}", "w.bin": b"123"}, kind="thing")
    damage(folder)
    with pytest.raises(LstmkitError, match=message):
        load_bundle(folder, "thing", ["x.json", "w.bin"])


def test_load_bundle_checks_kind_and_existence(tmp_path):
    save_bundle(tmp_path / "m", {"a": b"1"}, kind="thing")
    with pytest.raises(LstmkitError, match="holds a 'lstmkit-thing', expected 'lstmkit-other'"):
        load_bundle(tmp_path / "m", "other", ["a"])
    with pytest.raises(LstmkitError, match="model folder not found"):
        load_bundle(tmp_path / "nothing", "thing", ["a"])


def test_interrupted_save_keeps_the_previous_folder(tmp_path, monkeypatch):
    folder = save_bundle(tmp_path / "m", {"a": b"old"}, kind="thing")
    calls = {"n": 0}
    real_fsync = os.fsync

    def crash_on_second_file(fd):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("power cut")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", crash_on_second_file)
    with pytest.raises(KeyboardInterrupt):
        save_bundle(folder, {"a": b"new", "b": b"new"}, kind="thing")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert load_bundle(folder, "thing", ["a"]) == {"a": b"old"}
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_atomic_write_bytes_replaces_whole_file_or_nothing(tmp_path, monkeypatch):
    path = atomic.write_text(tmp_path / "f.txt", "first")
    assert path.read_text() == "first"
    oct_mode = path.stat().st_mode & 0o777
    assert oct_mode & 0o044                                  # readable by others (umask, not 0600)

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic.write_text(path, "second")
    assert path.read_text() == "first"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_member_state_and_load_members_round_trip_and_refuse_misfits(tmp_path):
    from lstmkit.training.checkpoint import load_members, load_state, member_state, tensors_to_bytes

    torch.manual_seed(0)
    models = [torch.nn.Linear(3, 2) for _ in range(2)]
    state = member_state(models)
    assert sorted(state) == ["member0.bias", "member0.weight", "member1.bias", "member1.weight"]
    back = load_members(tmp_path, tensors_to_bytes(state), lambda: torch.nn.Linear(3, 2), 2)
    assert all(not m.training for m in back)
    for a, b in zip(models, back):
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    with pytest.raises(LstmkitError, match=f"model folder {tmp_path}: weights do not fit the configured model"):
        load_members(tmp_path, tensors_to_bytes(state), lambda: torch.nn.Linear(4, 2), 2)
    with pytest.raises(LstmkitError, match="weights do not fit"):
        load_state(torch.nn.Linear(3, 2), {"weight": torch.zeros(2, 3)}, tmp_path)    # bias missing

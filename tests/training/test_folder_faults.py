"""Saving a model folder under faults: only lstmkit's own folders are replaced, a failure at any step
of the swap leaves the last good folder, and what a killed process leaves is repaired on load."""
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from lstmkit.errors import LstmkitError
from lstmkit.training import atomic, load_bundle, save_bundle
from lstmkit.training.checkpoint import is_bundle


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_refuses_to_replace_a_folder_lstmkit_did_not_write(tmp_path):
    user = tmp_path / "m"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    with pytest.raises(LstmkitError, match=r"cannot save to .*m: it holds files lstmkit did not write \(notes.txt\)"):
        save_bundle(user, {"a": b"1"}, kind="thing")
    assert os.listdir(user) == ["notes.txt"] and (user / "notes.txt").read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_refuses_an_lstmkit_folder_that_gained_a_user_file(tmp_path):
    folder = save_bundle(tmp_path / "m", {"a": b"1"}, kind="thing")
    assert is_bundle(folder)
    (folder / "notes.txt").write_text("mine")
    assert not is_bundle(folder)
    with pytest.raises(LstmkitError, match="notes.txt"):
        save_bundle(folder, {"a": b"2"}, kind="thing")
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "a").read_bytes() == b"1"


def test_refuses_a_file_and_a_foreign_manifest(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(LstmkitError, match="not a folder"):
        save_bundle(tmp_path / "f", {"a": b"1"}, kind="thing")
    assert (tmp_path / "f").read_text() == "x"
    other = tmp_path / "o"
    other.mkdir()
    (other / "manifest.json").write_text('{"format": "someone-else", "files": {}}')
    with pytest.raises(LstmkitError, match="lstmkit did not write"):
        save_bundle(other, {"a": b"1"}, kind="thing")


def test_replaces_its_own_folder_and_an_empty_one(tmp_path):
    (tmp_path / "e").mkdir()
    save_bundle(tmp_path / "e", {"a": b"1"}, kind="thing")
    folder = save_bundle(tmp_path / "m", {"a": b"1", "b": b"2"}, kind="thing")
    save_bundle(folder, {"a": b"3"}, kind="thing")
    assert sorted(os.listdir(folder)) == ["a", "manifest.json"]
    assert load_bundle(folder, "thing", ["a"]) == {"a": b"3"}
    assert sorted(os.listdir(tmp_path)) == ["e", "m"]


STEPS = [("fsync", 1), ("fsync", 2), ("replace", 1), ("replace", 2), ("rmtree", 1)]


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()], ids=["OSError", "Ctrl-C"])
@pytest.mark.parametrize("func, nth", STEPS, ids=[f"{f}{n}" for f, n in STEPS])
def test_a_fault_at_any_step_of_the_swap_keeps_a_complete_folder(tmp_path, monkeypatch, func, nth, exc):
    folder = save_bundle(tmp_path / "m", {"a": b"old"}, kind="thing")
    real = {"fsync": os.fsync, "replace": os.replace, "rmtree": shutil.rmtree}
    calls = {"n": 0}

    def faulty(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == nth:
            raise exc
        return real[func](*args, **kwargs)

    target = {"fsync": os, "replace": os, "rmtree": shutil}[func]
    monkeypatch.setattr(target, func, faulty)
    try:
        save_bundle(folder, {"a": b"new"}, kind="thing")
        finished = True
    except (OSError, KeyboardInterrupt):
        finished = False
    monkeypatch.undo()
    got = load_bundle(folder, "thing", ["a"])["a"]
    # before the second rename the old folder is back; from it on the new one is in place
    assert got == (b"new" if finished or (func, nth) in (("rmtree", 1),) else b"old")
    assert sorted(os.listdir(tmp_path)) == ["m"], "staging or backup folder left behind"
    assert is_bundle(folder)


def test_load_recovers_the_backup_a_killed_save_left(tmp_path):
    pid = dead_pid()
    folder = save_bundle(tmp_path / "m", {"a": b"old"}, kind="thing")
    # the state SIGKILL between the two renames leaves: old folder renamed to the backup, the new
    # one complete in staging, no m/
    os.replace(folder, tmp_path / f".m.old-{pid}-x1")
    staging = tmp_path / f".m.new-{pid}-x2"
    staging.mkdir()
    (staging / "a").write_bytes(b"new")
    assert load_bundle(folder, "thing", ["a"]) == {"a": b"old"}
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_stale_backup_after_the_swap_and_half_written_staging_are_cleaned(tmp_path):
    pid = dead_pid()
    folder = save_bundle(tmp_path / "m", {"a": b"new"}, kind="thing")
    (tmp_path / f".m.old-{pid}-x1").mkdir()                # killed before the backup was deleted
    (tmp_path / f".m.new-{pid}-x2").mkdir()                # killed while writing staging
    (tmp_path / f".m.new-{pid}-x2" / "a").write_bytes(b"ha")
    live = tmp_path / f".m.new-{os.getppid()}-x3"         # a save of a running process: untouched
    live.mkdir()
    save_bundle(folder, {"a": b"newer"}, kind="thing")
    assert sorted(os.listdir(tmp_path)) == sorted(["m", live.name])
    assert load_bundle(folder, "thing", ["a"]) == {"a": b"newer"}


def test_a_real_sigkill_between_the_renames_loses_nothing(tmp_path):
    folder = save_bundle(tmp_path / "m", {"a": b"old"}, kind="thing")
    script = textwrap.dedent(f"""
        import os, signal
        from lstmkit.training import save_bundle
        real, n = os.replace, [0]
        def replace(a, b):
            n[0] += 1
            if n[0] == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            real(a, b)
        os.replace = replace
        save_bundle({str(folder)!r}, {{"a": b"new"}}, kind="thing")
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert not folder.exists()                               # what the kill left: only the backup
    assert load_bundle(folder, "thing", ["a"]) == {"a": b"old"}
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_sizes_are_checked_before_reading(tmp_path):
    folder = save_bundle(tmp_path / "m", {"a": b"12345"}, kind="thing")
    (folder / "a").write_bytes(b"1234")
    with pytest.raises(LstmkitError, match=r"a does not match its SHA-256 in manifest.json \(modified or damaged: 4 bytes, manifest.json says 5\)"):
        load_bundle(folder, "thing", ["a"])
    (folder / "manifest.json").write_bytes(b" " * (2 << 20))
    with pytest.raises(LstmkitError, match="not a valid manifest"):
        load_bundle(folder, "thing", ["a"])


def test_parent_of_model_folder_is_pointed_at(tmp_path):
    save_bundle(tmp_path / "out" / "model", {"a": b"1"}, kind="thing")
    with pytest.raises(LstmkitError, match=r"the model is in .*out/model"):
        load_bundle(tmp_path / "out", "thing", ["a"])

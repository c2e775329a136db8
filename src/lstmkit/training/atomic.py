"""Atomic file and folder writes: a reader sees the old content or the new one, never half of it.

Files: write a temp file in the same folder, fsync, os.replace. Folders (a saved model): write every
file into a fresh sibling *staging* folder, fsync, then swap it in with two renames (old -> *backup*,
staging -> path); the backup is deleted only after the new folder is in place. Any failure, Ctrl-C
included, puts the backup back. A process killed between the two renames leaves only the backup;
`recover_folder` (called by every later save and by `checkpoint.load_bundle`) renames it back and
removes staging folders of processes that no longer run. Staging and backup folders are named
``.NAME.new-PID-XXXX`` / ``.NAME.old-PID-XXXX`` so that a live process's are never touched.

A folder is only replaced when `owned(path)` says lstmkit wrote it (for model folders: its
manifest lists every file in it); anything else is refused with LstmkitError, never deleted.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Mapping, Optional

from lstmkit.errors import LstmkitError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fix_mode(path, folder: bool = False) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; give them the usual umask-based mode."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (temp file beside it, fsync, rename)."""
    return write_with(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_with(path: str | Path, writer: Callable[[Path], None]) -> Path:
    """Atomic write for libraries that want a file name (e.g. matplotlib's savefig): `writer` writes
    to a temp path with the same suffix, which is then renamed onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        writer(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _fix_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


Owned = Callable[[Path], bool]


_ACTIVE: set[str] = set()              # staging/backup folders of saves running in this process


def _in_use(folder: Path, pid: int) -> bool:
    """Whether a staging/backup folder may still be used by the save that made it."""
    if pid == os.getpid():
        return str(folder) in _ACTIVE
    return _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True                      # exists, owned by someone else
    return True


def _leftovers(path: Path, kind: str) -> list[tuple[Path, int]]:
    """Sibling staging ("new") or backup ("old") folders of `path`: (folder, pid of its writer)."""
    prefix = f".{path.name}.{kind}-"
    out = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return out
    for entry in entries:
        if entry.name.startswith(prefix) and entry.is_dir() and not entry.is_symlink():
            pid = entry.name[len(prefix):].split("-", 1)[0]
            out.append((entry, int(pid) if pid.isdigit() else -1))
    return sorted(out, key=lambda e: e[0].stat().st_mtime if e[0].exists() else 0, reverse=True)


def recover_folder(path: str | Path, owned: Optional[Owned] = None) -> Optional[Path]:
    """Repair what an interrupted `write_folder(path, ...)` of a killed process left behind.

    - `path` missing and a backup of a dead writer there: the backup is renamed back to `path`
      (the last complete folder); if that rename fails, the backup's path is returned to read from.
    - staging folders of dead writers are deleted (never complete: the swap did not happen).
    - backups of dead writers are deleted once `path` is an owned folder again.
    Returns the folder to read (`path`, a backup, or None when neither exists). Never raises OSError.
    """
    path = Path(path)
    for staging, pid in _leftovers(path, "new"):
        if not _in_use(staging, pid):
            shutil.rmtree(staging, ignore_errors=True)
    backups = _leftovers(path, "old")
    if not path.exists():
        for backup, pid in backups:
            if _in_use(backup, pid):
                return backup              # a save in progress: read the last good folder
            try:
                os.replace(backup, path)
                _fsync_dir(path.parent)
            except OSError:
                return backup
            break
        backups = _leftovers(path, "old")
    if path.is_dir() and (owned is None or owned(path)):
        for backup, pid in backups:
            if not _in_use(backup, pid):
                shutil.rmtree(backup, ignore_errors=True)
    return path if path.exists() else None


def _sibling(path: Path, kind: str) -> Path:
    folder = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.{kind}-{os.getpid()}-"))
    _ACTIVE.add(str(folder))
    return folder


def write_folder(path: str | Path, files: Mapping[str, bytes], owned: Optional[Owned] = None) -> Path:
    """Replace folder `path` by one holding exactly `files` (name -> content), atomically as a whole.

    The new folder is written beside the old one; then old -> backup, new -> path, backup deleted.
    On any failure (OSError, KeyboardInterrupt, ...) the backup goes back to `path` and the staging
    folder is removed. An existing `path` is replaced only when it is empty or `owned(path)` is true;
    otherwise LstmkitError (nothing is written). A `path` that is a file is refused the same way.
    """
    path = Path(path)
    for name in files:
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise ValueError(f"write_folder: expected plain file names, got {name!r}")
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise LstmkitError(f"cannot save to {path}: it exists and is not a folder; choose another "
                           f"path or remove it")
    recover_folder(path, owned)
    if path.exists() and any(path.iterdir()) and not (owned is not None and owned(path)):
        raise LstmkitError(f"cannot save to {path}: the folder exists and was not written by lstmkit "
                           f"(its files would be lost); choose another path or empty it")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = _sibling(path, "new")
    backup = None
    swapped = False
    try:
        for name, data in files.items():
            with open(staging / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        _fsync_dir(staging)
        _fix_mode(staging, folder=True)
        if path.exists():
            backup = _sibling(path, "old")
            os.rmdir(backup)
            os.replace(path, backup)
        os.replace(staging, path)
        swapped = True
        _fsync_dir(path.parent)
    except BaseException:
        if swapped and backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
        if not swapped:
            if backup is not None and backup.exists() and not path.exists():
                try:
                    os.replace(backup, path)
                except OSError:
                    pass                   # recover_folder puts it back on the next load/save
            shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        _ACTIVE.discard(str(staging))
        if backup is not None:
            _ACTIVE.discard(str(backup))
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
    return path

"""Model folders: safetensors weights + JSON files + a manifest of SHA-256 hashes. Never pickle.

A folder holds the named files and `manifest.json` = {"format": "lstmkit-KIND", "version": 1,
"files": {name: sha256}, "sizes": {name: bytes}}. `save_bundle` writes the whole folder atomically
(see atomic.write_folder) and replaces an existing folder only when lstmkit wrote it: its manifest is
lstmkit's and lists every file in it (`is_bundle`); anything else is refused, never deleted.
`load_bundle` first repairs what an interrupted save left (atomic.recover_folder), then refuses a
folder whose manifest is missing, does not list a required file, or whose sizes or hashes do not
match. Reading is bounded: sizes are checked before any file is read, hashes are streamed.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from lstmkit.errors import LstmkitError

from . import atomic

MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 1 << 20         # a manifest lists a handful of files: 1 MiB is generous
MAX_FILE_BYTES = 8 << 30             # no file of a model folder is read past this (8 GiB)
_CHUNK = 1 << 20


def tensors_to_bytes(tensors: Mapping[str, torch.Tensor]) -> bytes:
    return st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})


def tensors_from_bytes(data: bytes, where: str = "weights") -> dict[str, torch.Tensor]:
    try:
        return st_load(data)
    except (SafetensorError, ValueError, RuntimeError, TypeError, OverflowError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise LstmkitError(f"{where}: not a valid safetensors file ({first})") from None


def member_state(models: Sequence[torch.nn.Module]) -> dict[str, torch.Tensor]:
    """The weights of an ensemble in one flat dict: member i's tensor k is stored as "member{i}.{k}"."""
    return {f"member{i}.{k}": v for i, m in enumerate(models) for k, v in m.state_dict().items()}


def load_state(model: torch.nn.Module, state: Mapping[str, torch.Tensor], path) -> torch.nn.Module:
    """model.load_state_dict(state), then eval mode. Raises LstmkitError naming the folder `path` when
    the weights do not fit the model built from the saved config (missing, extra or reshaped)."""
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise LstmkitError(f"model folder {path}: weights do not fit the configured model "
                           f"({str(e).splitlines()[0]})") from None
    return model.eval()


def load_members(path, data: bytes, build: Callable[[], torch.nn.Module], members: int) -> list:
    """The `members` models of an ensemble saved with :func:`member_state` in the safetensors bytes
    `data` of folder `path`, each built by `build()`, loaded (:func:`load_state`) and in eval mode."""
    weights = tensors_from_bytes(data, f"{path}/weights.safetensors")
    out = []
    for i in range(members):
        prefix = f"member{i}."
        out.append(load_state(build(), {k[len(prefix):]: v for k, v in weights.items()
                                        if k.startswith(prefix)}, path))
    return out


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def json_bytes(obj) -> bytes:
    """Standard JSON: NaN and infinity (which JSON cannot hold) are written as null."""
    return (json.dumps(_finite(obj), indent=2, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


def _read_manifest(folder: Path) -> dict:
    """The parsed manifest of `folder`; LstmkitError when it is missing, too large or malformed."""
    path = folder / MANIFEST
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        hint = ""
        if (folder / "model" / MANIFEST).is_file():
            hint = f"; it looks like an output folder: the model is in {folder / 'model'}"
        raise LstmkitError(f"model folder {folder} is incomplete: {MANIFEST} is missing{hint}") from None
    except OSError as e:
        raise LstmkitError(f"model folder {folder}: cannot read {MANIFEST} ({e.strerror})") from None
    if not path.is_file() or size > MAX_MANIFEST_BYTES:
        raise LstmkitError(f"model folder {folder}: {MANIFEST} is not a valid manifest (expected a "
                           f"file of at most {MAX_MANIFEST_BYTES} bytes)")
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as e:
        raise LstmkitError(f"model folder {folder}: cannot read {MANIFEST} ({e.strerror})") from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise LstmkitError(f"model folder {folder}: {MANIFEST} is not a valid manifest") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    sizes = manifest.get("sizes", {}) if isinstance(manifest, dict) else None
    if (not isinstance(files, dict) or not isinstance(manifest.get("format"), str)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
            or not isinstance(sizes, dict)
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in sizes.values())):
        raise LstmkitError(f"model folder {folder}: {MANIFEST} is not a valid manifest (expected "
                           f"'format' and 'files' {{name: sha256}})")
    return manifest


def is_bundle(folder: str | Path) -> bool:
    """True when `folder` was written by save_bundle: an lstmkit manifest listing every file in it.
    Only such folders (or empty ones) are ever replaced."""
    folder = Path(folder)
    try:
        manifest = _read_manifest(folder)
        names = {p.name for p in folder.iterdir()}
    except (LstmkitError, OSError):
        return False
    if not manifest["format"].startswith("lstmkit-"):
        return False
    extra = names - set(manifest["files"]) - {MANIFEST}
    return not extra and all((folder / n).is_file() and not (folder / n).is_symlink() for n in names)


def save_bundle(folder: str | Path, files: Mapping[str, bytes], kind: str) -> Path:
    """Write `files` plus a manifest into `folder`, replacing it atomically. kind: e.g. "forecaster".

    An existing `folder` is replaced only if it is empty or was written by save_bundle (every file
    listed in its manifest); otherwise LstmkitError and nothing is touched."""
    if MANIFEST in files:
        raise ValueError(f"{MANIFEST} is written by save_bundle itself")
    manifest = {"format": f"lstmkit-{kind}", "version": 1,
                "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
                "sizes": {name: len(data) for name, data in files.items()}}
    folder = Path(folder)
    if folder.is_dir() and not is_bundle(folder) and any(folder.iterdir()):
        others = sorted(p.name for p in folder.iterdir())
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        raise LstmkitError(f"cannot save to {folder}: it holds files lstmkit did not write ({shown}); "
                           f"choose another folder, or move them away")
    return atomic.write_folder(folder, {**files, MANIFEST: json_bytes(manifest)}, owned=is_bundle)


def _read_verified(folder: Path, name: str, sha: str, size) -> bytes:
    path = folder / name
    try:
        actual = path.stat().st_size
    except FileNotFoundError:
        raise LstmkitError(f"model folder {folder} is incomplete: {name} is missing") from None
    except OSError as e:
        raise LstmkitError(f"model folder {folder}: cannot read {name} ({e.strerror})") from None
    if not path.is_file():
        raise LstmkitError(f"model folder {folder}: {name} is not a file")
    if size is not None and actual != size:
        raise LstmkitError(f"model folder {folder}: {name} does not match its SHA-256 in {MANIFEST} "
                           f"(modified or damaged: {actual} bytes, {MANIFEST} says {size})")
    if actual > MAX_FILE_BYTES:
        raise LstmkitError(f"model folder {folder}: {name} has {actual} bytes, more than the "
                           f"{MAX_FILE_BYTES} lstmkit reads")
    digest, buf = hashlib.sha256(), bytearray()
    try:
        with open(path, "rb") as f:
            while len(buf) <= actual:                   # never more than the size seen above
                chunk = f.read(_CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                buf += chunk
    except OSError as e:
        raise LstmkitError(f"model folder {folder}: cannot read {name} ({e.strerror})") from None
    if len(buf) != actual or digest.hexdigest() != sha:
        raise LstmkitError(f"model folder {folder}: {name} does not match its SHA-256 in "
                           f"{MANIFEST} (modified or damaged)")
    return bytes(buf)


def load_bundle(folder: str | Path, kind: str, required: list[str]) -> dict[str, bytes]:
    """Read and verify a folder written by save_bundle; returns {name: bytes} of the listed files.

    A folder left without its model by a killed save is recovered from the backup first."""
    folder = Path(folder)
    where = atomic.recover_folder(folder, owned=is_bundle)
    if where is None or not where.is_dir():
        if folder.exists() and not folder.is_dir():
            raise LstmkitError(f"expected a model folder, got a file: {folder}")
        raise LstmkitError(f"model folder not found: {folder}")
    manifest = _read_manifest(where)
    listed, fmt, sizes = manifest["files"], manifest["format"], manifest.get("sizes", {})
    if fmt != f"lstmkit-{kind}":
        raise LstmkitError(f"model folder {folder} holds a {fmt!r}, expected 'lstmkit-{kind}'")
    out = {}
    for name in required:
        if name not in listed:
            raise LstmkitError(f"model folder {folder}: {MANIFEST} does not list {name}")
        out[name] = _read_verified(where, name, listed[name], sizes.get(name))
    return out

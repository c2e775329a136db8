"""Model folders: safetensors weights + JSON files + a manifest of SHA-256 hashes. Never pickle.

A folder holds the named files and `manifest.json` = {"format": ..., "files": {name: sha256}}.
`save_bundle` writes the whole folder atomically (see atomic.write_folder); `load_bundle` refuses a
folder whose manifest is missing, lists other files than expected, or whose hashes do not match.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from lstmkit.errors import LstmkitError

from . import atomic

MANIFEST = "manifest.json"


def tensors_to_bytes(tensors: Mapping[str, torch.Tensor]) -> bytes:
    return st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})


def tensors_from_bytes(data: bytes, where: str = "weights") -> dict[str, torch.Tensor]:
    try:
        return st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise LstmkitError(f"{where}: not a valid safetensors file ({str(e).splitlines()[0]})") from None


def json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8")


def save_bundle(folder: str | Path, files: Mapping[str, bytes], kind: str) -> Path:
    """Write `files` plus a manifest into `folder`, replacing it atomically. kind: e.g. "forecaster"."""
    if MANIFEST in files:
        raise ValueError(f"{MANIFEST} is written by save_bundle itself")
    manifest = {"format": f"lstmkit-{kind}", "version": 1,
                "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}}
    return atomic.write_folder(folder, {**files, MANIFEST: json_bytes(manifest)})


def load_bundle(folder: str | Path, kind: str, required: list[str]) -> dict[str, bytes]:
    """Read and verify a folder written by save_bundle; returns {name: bytes} of the listed files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LstmkitError(f"model folder not found: {folder}")
    try:
        manifest = json.loads((folder / MANIFEST).read_text("utf-8"))
        listed = manifest["files"]
        fmt = manifest["format"]
    except FileNotFoundError:
        raise LstmkitError(f"model folder {folder} is incomplete: {MANIFEST} is missing") from None
    except (ValueError, KeyError, TypeError):
        raise LstmkitError(f"model folder {folder}: {MANIFEST} is not a valid manifest") from None
    if fmt != f"lstmkit-{kind}":
        raise LstmkitError(f"model folder {folder} holds a {fmt!r}, expected 'lstmkit-{kind}'")
    out = {}
    for name in required:
        if name not in listed:
            raise LstmkitError(f"model folder {folder}: {MANIFEST} does not list {name}")
        path = folder / name
        if not path.is_file():
            raise LstmkitError(f"model folder {folder} is incomplete: {name} is missing")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != listed[name]:
            raise LstmkitError(f"model folder {folder}: {name} does not match its SHA-256 in "
                               f"{MANIFEST} (modified or damaged)")
        out[name] = data
    return out

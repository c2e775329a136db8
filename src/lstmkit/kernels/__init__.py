"""Kernels behind one dispatch point: torch native, lstmkit fused (C++), pure-PyTorch reference."""
from . import _fork  # noqa: F401  (notes a fork() from the moment lstmkit is imported)
from .dispatch import BACKENDS, get_backend, set_backend, use_backend

__all__ = ["BACKENDS", "get_backend", "set_backend", "use_backend"]

"""Whether this process is a child of ``fork()``, noted from the moment lstmkit is imported.

A child cannot restart its parent's OpenMP thread pool (``csrc/parallel.cpp``). A library loaded
before the fork sees the fork through its own ``pthread_atfork`` handler; one loaded first in the
child learns it from :data:`forked` (``build.load`` tells it).
"""
from __future__ import annotations

import os

forked = False


def _after_fork_in_child() -> None:
    global forked
    forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

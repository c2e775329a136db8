"""Progress on stderr for every long phase: a tqdm bar on a terminal; plain lines otherwise (CI, pipes,
files), so that a long run is never silent.

Plain lines start only once a phase has run `LSTMKIT_PROGRESS_DELAY` seconds (default 5) and repeat
every `LSTMKIT_PROGRESS_EVERY` seconds (default 15), ending with a "done" line; short phases print
nothing. They come from a timer thread, so a phase that is one long library call (reading a CSV,
fitting ARIMA) still reports. `LSTMKIT_PROGRESS=0` silences them.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import Iterator, Optional

from tqdm.auto import tqdm


def _seconds(name: str, default: float) -> float:
    try:
        return max(0.0, float(os.environ.get(name, default)))
    except ValueError:
        return default


class PlainProgress:
    """The part of tqdm's interface lstmkit uses (update, set_postfix, close), as plain lines."""

    def __init__(self, total: Optional[int], desc: str, delay: Optional[float] = None,
                 every: Optional[float] = None):
        self.total, self.desc, self.n, self.postfix, self.inner = total, desc, 0, "", ""
        self.delay = _seconds("LSTMKIT_PROGRESS_DELAY", 5.0) if delay is None else delay
        self.every = max(0.05, _seconds("LSTMKIT_PROGRESS_EVERY", 15.0) if every is None else every)
        self.start = time.monotonic()
        self.printed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lstmkit progress: {desc}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        wait = self.delay
        while not self._stop.wait(wait):
            self._line()
            wait = self.every

    def _line(self, done: bool = False) -> None:
        parts = [f"lstmkit: {self.desc}"]
        if self.total:
            parts.append(f" {self.n}/{self.total}")
        if self.postfix or self.inner:
            parts.append(f" ({', '.join(p for p in (self.inner, self.postfix) if p)})")
        seconds = time.monotonic() - self.start
        parts.append(f" done in {seconds:.0f} s" if done else f" {seconds:.0f} s")
        try:
            print("".join(parts), file=sys.stderr, flush=True)
        except (OSError, ValueError):      # stderr closed: progress is not worth a crash
            return
        self.printed = True

    def update(self, n: int = 1) -> None:
        self.n += n

    def tick(self, done: int, total: int) -> None:
        """Progress inside one step (e.g. windows of the current epoch)."""
        self.inner = f"{done}/{total} windows this epoch" if done < total else ""

    def set_postfix(self, **kwargs) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kwargs.items())

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        if self.printed:
            self._line(done=True)


def _plain_enabled() -> bool:
    return os.environ.get("LSTMKIT_PROGRESS", "1") != "0"


def progress_bar(total: int, desc: str, enabled: Optional[bool] = None):
    """Progress of `total` steps on stderr. enabled=None: a tqdm bar on a terminal, else plain
    lines (see the module docstring); True: always a tqdm bar; False: nothing."""
    if enabled is None and not sys.stderr.isatty():
        if _plain_enabled():
            return PlainProgress(total, desc)
        enabled = False
    if enabled is None:
        enabled = True
    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True,
                file=sys.stderr)


@contextlib.contextmanager
def phase(desc: str) -> Iterator[None]:
    """``with phase("fitting ARIMA"): ...``: plain progress lines while a long step runs, on a
    terminal too (one blocking call cannot drive a bar)."""
    if not _plain_enabled():
        yield
        return
    bar = PlainProgress(None, desc)
    try:
        yield
    finally:
        bar.close()

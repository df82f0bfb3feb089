"""Progress that reads well on a terminal and in a log.

`progress` is a tqdm bar when stderr is a terminal; otherwise (a log file, CI, a pipe) it prints
plain lines, one every `EVERY_S` seconds and one at the end::

    synthetic samples: 48/120 (40%) in 62 s, ~93 s left

instead of interleaved bars full of carriage returns. The same object supports what the
callers use of tqdm: iteration, ``update(n)``, ``write(text)``, ``close()`` and ``with``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

#: Seconds between two progress lines when stderr is not a terminal.
EVERY_S = 30.0


class LineProgress:
    """Plain-line progress: ``desc: n/total (pct%) in t s, ~eta s left`` every ``every_s`` seconds.

    Parameters
    ----------
    iterable : iterable, optional
    total : int, optional
        Number of steps (default: ``len(iterable)`` when it has one).
    desc : str
    unit : str
        Unit of a step (shown when there is no total).
    initial : int
        Steps already done.
    every_s : float
        Seconds between lines.
    stream : text stream
        Where the lines go (default: ``sys.stderr`` at the time of each line).
    clock : callable
        Seconds, monotonic (for tests).
    """

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, desc: str = "",
                 unit: str = "it", initial: int = 0, every_s: float = EVERY_S, stream: TextIO | None = None,
                 clock=time.monotonic) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n = self._start = initial
        self.every_s, self._stream, self._clock = every_s, stream, clock
        self._t0 = self._last = clock()
        self._closed = False

    def _line(self) -> str:
        elapsed = self._clock() - self._t0
        head = f"{self.desc}: " if self.desc else ""
        if not self.total:
            return f"{head}{self.n} {self.unit} in {elapsed:.0f} s"
        text = f"{head}{self.n}/{self.total} ({100 * self.n / self.total:.0f}%) in {elapsed:.0f} s"
        done = self.n - self._start
        if 0 < done and self.n < self.total:
            text += f", ~{elapsed / done * (self.total - self.n):.0f} s left"
        return text

    def _print(self) -> None:
        stream = self._stream or sys.stderr
        print(self._line(), file=stream, flush=True)
        self._last = self._clock()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more steps; print a line when ``every_s`` has passed since the last."""
        self.n += n
        if self._clock() - self._last >= self.every_s:
            self._print()

    def write(self, text: str) -> None:
        """Print a message line (as tqdm's ``write``)."""
        print(text, file=self._stream or sys.stderr, flush=True)

    def close(self) -> None:
        """Print the final line (once)."""
        if not self._closed:
            self._closed = True
            self._print()

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable if self.iterable is not None else ():
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Silent:
    """No output at all (``disable=True``); iterates and counts like the others."""

    def __init__(self, iterable: Iterable | None = None, initial: int = 0) -> None:
        self.iterable, self.n = iterable, initial

    def update(self, n: int = 1) -> None:
        self.n += n

    def write(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        pass

    def __iter__(self) -> Iterator:
        return iter(self.iterable if self.iterable is not None else ())

    def __enter__(self) -> "_Silent":
        return self

    def __exit__(self, *exc) -> None:
        pass


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             initial: int = 0, disable: bool | None = False, leave: bool = True, position: int | None = None,
             stream: TextIO | None = None) -> Any:
    """A progress indicator over ``iterable`` (or updated by hand): a tqdm bar on a terminal,
    plain periodic lines otherwise.

    Parameters
    ----------
    iterable : iterable, optional
    total, desc, unit, initial
        As tqdm's.
    disable : bool or None
        True: silent. False or None: shown (None is tqdm's "only on a terminal"; here the
        log gets plain lines instead of nothing).
    leave, position
        tqdm's, for nested bars on a terminal (ignored for lines; an inner ``leave=False``
        progress prints no lines, so nested loops log only their outer progress).
    stream : text stream, optional
        Default ``sys.stderr``; whether it is a terminal decides bar or lines.

    Returns
    -------
    tqdm.tqdm, LineProgress or a silent stand-in
    """
    if disable:
        return _Silent(iterable, initial)
    out = stream or sys.stderr
    is_tty = bool(getattr(out, "isatty", lambda: False)())
    if is_tty:
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave, position=position,
                    dynamic_ncols=True, file=out)
    if not leave:
        return _Silent(iterable, initial)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, stream=stream)


__all__ = ["EVERY_S", "LineProgress", "progress"]

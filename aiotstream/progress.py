"""Progress bars for the long commands (``simulate``, ``replay``, ``train``, ``bench kernels``), shown only
when stderr is a terminal: in a pipe, a file, a test or a container's log they are off, so logs stay one line
per event. ``AIOTSTREAM_PROGRESS=0`` turns them off on a terminal too.

tqdm draws them (rate, elapsed and remaining time, one line redrawn in place, terminal width followed): a
small, dependency-free library, where a hand-written bar would have to get the same terminal details right.

>>> import io
>>> b = bar("simulate", total=10, stream=io.StringIO())  # not a terminal: a bar that does nothing
>>> b.update(5); b.close(); type(b).__name__
'NullBar'
"""
from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import IO, Any, Self

ENV = "AIOTSTREAM_PROGRESS"


def enabled(stream: IO[str] | None = None) -> bool:
    """Whether bars show on ``stream`` (default stderr): a terminal, and not turned off by the environment."""
    if os.environ.get(ENV, "").strip().lower() in ("0", "false", "no", "off"):
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed, or not a real stream
        return False


class _Writer:
    """``write`` and ``flush`` of a stream, nothing else."""

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def write(self, s: str) -> None:
        self.stream.write(s)

    def flush(self) -> None:
        self.stream.flush()


class NullBar:
    """What :func:`bar` gives when bars are off: every call does nothing."""

    n = 0

    def update(self, n: float = 1) -> None: ...
    def set_description_str(self, s: str) -> None: ...
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None: ...


def bar(desc: str, total: float | None = None, unit: str = "msg", stream: IO[str] | None = None) -> Any:
    """A tqdm bar on ``stream`` (default stderr) if :func:`enabled`, else a :class:`NullBar`. It disappears
    when closed (``leave=False``): the command's own summary line follows it."""
    stream = sys.stderr if stream is None else stream
    if not enabled(stream):
        return NullBar()
    from tqdm import tqdm

    try:  # a terminal that does not know its width (0 columns, e.g. a fresh pty) gets 80
        sized = os.get_terminal_size(stream.fileno()).columns > 0
    except (AttributeError, ValueError, OSError):
        sized = False
    # through a plain writer: tqdm 4.70 given sys.stderr itself drew nothing on a terminal (seen on a pty)
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=total is None or total >= 1000,
                file=_Writer(stream), leave=False, dynamic_ncols=sized, ncols=None if sized else 80,
                mininterval=0.25, smoothing=0.1)


class Watch:
    """A bar that follows a count read every ``every_s`` seconds from another thread (e.g. the inputs a
    Bytewax flow has read, :data:`~aiotstream.runstats.STATS`): for work whose loop is not ours to call
    ``update`` from. Nothing starts when bars are off. The bar is drawn on a duplicate of stderr taken at
    start, so it keeps reaching the terminal while the flow runs with fd 2 redirected."""

    def __init__(self, desc: str, read: Callable[[], int], total: float | None = None, unit: str = "msg",
                 every_s: float = 0.25):
        self.desc, self.read, self.total, self.unit, self.every_s = desc, read, total, unit, every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: IO[str] | None = None

    def __enter__(self) -> Self:
        if not os.isatty(2):  # the process's stderr (fd 2), whatever sys.stderr is now
            return self
        sys.stderr.flush()
        self._stream = os.fdopen(os.dup(2), "w", buffering=1)
        if not enabled(self._stream):  # turned off by the environment
            self._stream.close()
            self._stream = None
            return self
        b = bar(self.desc, self.total, self.unit, self._stream)

        def follow() -> None:
            try:
                while not self._stop.wait(self.every_s):
                    b.update(max(0, self.read() - b.n))
            finally:
                b.close()

        self._thread = threading.Thread(target=follow, name="aiotstream-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if self._stream is not None:
            self._stream.close()


def counted(items: Any, b: Any, every: int = 1000) -> Any:
    """``items`` as they are, moving bar ``b`` on every ``every`` items (not per item: bars cost nothing
    noticeable in a loop of millions)."""
    n = 0
    for n, x in enumerate(items, 1):
        if n % every == 0:
            b.update(every)
        yield x
    b.update(n % every)

"""How a run stops, and the contract every source keeps so that a stop is prompt and clean.

A run ends in one of four ways: its input ends, SIGINT (Ctrl-C), SIGTERM, or an error. Whichever it is,
the CLI prints one line at the end: the run's :func:`~aiotstream.runstats.RunStats.summary` and where the
outputs are.

**Signals do not raise into the dataflow.** Bytewax 0.21.1 turns any exception that reaches a worker
(``KeyboardInterrupt`` included) into a Rust panic: ``unwrap_any!`` in its ``run.rs`` panics with the
``PyErr``, Rust's default panic hook writes ``thread '<unnamed>' panicked at src/run.rs:...`` (plus a
backtrace under ``RUST_BACKTRACE``) to stderr, and the worker is torn down mid-epoch. So while a flow runs,
:func:`signals_stop_the_flow` replaces the SIGINT and SIGTERM handlers with one that only records the
request in :data:`STOP`; :class:`Stoppable` (the CLI wraps every flow's source in it) then makes each input
partition end at its next ``next_batch``. Bytewax takes the same path as at the end of a bounded input: the
epoch in progress closes, the stateful steps see end-of-input, every sink writes and closes, recovery (if
on) takes its last snapshot, and ``cli_main`` returns normally. Nothing panics and nothing in flight is lost.

At that end-of-input the stateful steps decide what to do with open windows and KPI periods
(:func:`stopping_keeps_state`): a stop requested by a signal in a run with recovery keeps them in the
snapshot (a restart continues them exactly, as if never stopped); without recovery, or at the real end of
the input, they are flushed as outputs, since nothing else would keep them.

**The contract for sources** (Kafka, files, simulator, MQTT, OPC UA; anything new):

1. ``next_batch`` returns within :data:`NEXT_BATCH_MAX_S` (0.5 s). It never blocks longer waiting for data:
   poll with a timeout of at most that, or ``queue.get(timeout=...)``, and return ``[]`` when nothing came.
2. ``next_awake`` is never more than :data:`NEXT_BATCH_MAX_S` ahead (Bytewax does not call ``next_batch``
   before then, so a longer sleep delays the stop by as much).
3. Every other wait (connecting in ``list_parts``/``build_part`` or a background thread, reconnect
   backoff, retries) waits on the stop request: ``if STOP.wait(delay): give up`` instead of
   ``time.sleep(delay)``, and a blocking client call gets a timeout of at most :data:`NEXT_BATCH_MAX_S` in a
   loop that checks :data:`STOP`. Giving up on a stop raises nothing: ``list_parts`` returns ``[]``, a
   partition's ``next_batch`` raises ``StopIteration``.
4. ``close()`` returns within :data:`CLOSE_MAX_S` (2 s): disconnect with a timeout, join threads with a
   timeout, never wait for a server that is down.
5. A stop is not the end of the data: acknowledge upstream (MQTT PUBACK, commits) only what was handed to
   the flow, exactly as at an epoch's end; messages received but not handed on stay unacknowledged so the
   server redelivers them.
6. Sinks: ``write_batch`` and ``close`` give up within :data:`CLOSE_MAX_S` once :data:`STOP` is set
   (retry loops check it); what could not be delivered is reported as a loss, not waited for.

:class:`Stoppable` already ends a partition at its next ``next_batch`` once :data:`STOP` is set (and skips
``list_parts`` when the stop came first), so rules 1-2 are what makes that prompt; rules 3-6 are the
source's own. If the run has not finished :data:`GRACE_S` (4 s) after the signal, the watchdog prints the
summary line, says what may be missing, and exits with the signal's code; a second signal does so at once.
Should even that watchdog not get to run (a thread stuck in C code holding the GIL), ``faulthandler``'s C
thread ends the process one second later (exit code 1, no summary).
Exit codes: 130 for SIGINT, 143 for SIGTERM (128 + the signal number, as shells report them).
"""
from __future__ import annotations

import faulthandler
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from bytewax.inputs import (
    DynamicSource,
    FixedPartitionedSource,
    StatefulSourcePartition,
    StatelessSourcePartition,
)

NEXT_BATCH_MAX_S = 0.5
"""Longest a source's ``next_batch`` may block, and furthest ahead its ``next_awake`` may be."""
CLOSE_MAX_S = 2.0
"""Longest a source's or sink's ``close()`` may take."""
GRACE_S = 4.0
"""After a stop signal, how long the run may take to finish cleanly before the watchdog exits anyway."""


class Terminated(KeyboardInterrupt):
    """SIGTERM outside the dataflow: unwinds like Ctrl-C (``except KeyboardInterrupt`` sees it too)."""

    signum = signal.SIGTERM


def exit_code(signum: int) -> int:
    """The exit code of a run stopped by ``signum``: 128 + the signal number.

    >>> exit_code(signal.SIGINT), exit_code(signal.SIGTERM)
    (130, 143)
    """
    return 128 + int(signum)


class StopRequest:
    """The process-wide stop request (:data:`STOP`): set once by a signal (or by code), read by every source.

    >>> s = StopRequest()
    >>> s.is_set(), s.wait(0.0), s.reason
    (False, False, None)
    >>> s.request(signal.SIGTERM); s.is_set(), s.wait(10.0), s.reason
    (True, True, 'SIGTERM')
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signum: int | None = None

    def request(self, signum: int = signal.SIGINT) -> None:
        if self.signum is None:
            self.signum = int(signum)
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None) -> bool:
        """Sleep up to ``timeout`` s or until a stop is requested; True if it was (use instead of sleep)."""
        return self._event.wait(timeout)

    @property
    def reason(self) -> str | None:
        return None if self.signum is None else signal.Signals(self.signum).name

    def clear(self) -> None:
        """Forget a request (a new run in the same process, e.g. tests)."""
        self._event.clear()
        self.signum = None


STOP = StopRequest()
"""The process's stop request: sources wait on it (see the module doc for the contract)."""

SOURCE_BUILT = threading.Event()
"""Set when a :class:`Stoppable` source has built its first partition: Bytewax has read the recovery store
(if any) and handed the partition its resume state, so the flow is reading (``/readyz`` waits for it)."""


def stopping_keeps_state(snapshots: bool) -> bool:
    """Whether a stateful step, told the input ended, keeps its open windows and periods (in the recovery
    snapshot) instead of flushing them: only when the end is a requested stop and recovery is on.

    >>> stopping_keeps_state(True)
    False
    """
    return snapshots and STOP.is_set()


# ---- the wrapper the CLI puts around every flow's source ---------------------------------------------
class _StoppablePart(StatefulSourcePartition[Any, Any]):
    def __init__(self, inner: StatefulSourcePartition[Any, Any]):
        self.inner = inner

    def next_batch(self) -> list[Any]:
        if STOP.is_set():
            raise StopIteration()
        return self.inner.next_batch()

    def next_awake(self) -> datetime | None:
        return None if STOP.is_set() else self.inner.next_awake()

    def snapshot(self) -> Any:
        return self.inner.snapshot()

    def close(self) -> None:
        self.inner.close()


class _StoppableDynamicPart(StatelessSourcePartition[Any]):
    def __init__(self, inner: StatelessSourcePartition[Any]):
        self.inner = inner

    def next_batch(self) -> list[Any]:
        if STOP.is_set():
            raise StopIteration()
        return self.inner.next_batch()

    def next_awake(self) -> datetime | None:
        return None if STOP.is_set() else self.inner.next_awake()

    def close(self) -> None:
        self.inner.close()


class Stoppable(FixedPartitionedSource[Any, Any]):
    """A partitioned source whose partitions end (``StopIteration``) at the first ``next_batch`` after a stop
    request; partition names, resume states and snapshots are the inner source's."""

    def __init__(self, inner: FixedPartitionedSource[Any, Any]):
        self.inner = inner

    def list_parts(self) -> list[str]:
        return [] if STOP.is_set() else self.inner.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _StoppablePart:
        part = _StoppablePart(self.inner.build_part(step_id, for_part, resume_state))
        SOURCE_BUILT.set()
        return part


class StoppableDynamic(DynamicSource[Any]):
    """:class:`Stoppable` for a ``DynamicSource``."""

    def __init__(self, inner: DynamicSource[Any]):
        self.inner = inner

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _StoppableDynamicPart:
        part = _StoppableDynamicPart(self.inner.build(step_id, worker_index, worker_count))
        SOURCE_BUILT.set()
        return part


def stoppable(source: Any) -> Any:
    """``source`` wrapped so that a stop request ends it (any other source is returned as it is)."""
    if isinstance(source, FixedPartitionedSource):
        return Stoppable(source)
    if isinstance(source, DynamicSource):
        return StoppableDynamic(source)
    return source


# ---- signals ------------------------------------------------------------------------------------------
def raise_on_sigterm() -> None:
    """Outside a flow, SIGTERM unwinds like Ctrl-C (:class:`Terminated`), so ``finally`` blocks stop children
    and the CLI prints one line; and SIGINT raises ``KeyboardInterrupt`` even when the parent ignored it."""

    def on_term(signum: int, _frame: object) -> None:
        raise Terminated()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)


@contextmanager
def signals_stop_the_flow(on_force: Callable[[int], None], grace_s: float = GRACE_S) -> Iterator[None]:
    """While the block runs (the dataflow), SIGINT and SIGTERM request a stop (:data:`STOP`) instead of
    raising. If the block has not ended ``grace_s`` after the first signal, or a second signal comes,
    ``on_force(signum)`` runs (it should say what may be missing) and the process exits with the signal's
    exit code without waiting any longer."""
    forced = threading.Lock()
    timer: list[threading.Timer] = []
    devnull = open(os.devnull, "w")  # noqa: SIM115 - faulthandler needs it open while armed

    def force(signum: int) -> None:
        if not forced.acquire(blocking=False):
            return
        try:
            on_force(signum)
        finally:
            os._exit(exit_code(signum))

    def on_signal(signum: int, _frame: object) -> None:
        if STOP.is_set():  # a second signal: stop now
            force(STOP.signum or signum)
            return
        STOP.request(signum)
        t = threading.Timer(grace_s, force, args=(signum,))
        t.daemon = True
        timer.append(t)
        t.start()
        # the last resort, for a thread stuck in C code that holds the GIL (the timer could not run): a C
        # watchdog thread that exits without Python (code 1, no summary) a second after the timer
        faulthandler.dump_traceback_later(grace_s + 1.0, exit=True, file=devnull)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        for t in timer:
            t.cancel()
        if not forced.acquire(blocking=False):  # the watchdog is exiting the process: let it
            threading.Event().wait()
        for s, h in old.items():
            signal.signal(s, h)
        devnull.close()

"""How a source reports its server's outages, and how client libraries' own log lines are kept out of the way.

:class:`OutageLog` turns a stream of connection events into the few lines an
operator needs: one warning when the connection is lost (or cannot be made at
start), at most one line per ``every_s`` (30 s) while it stays down, saying how
long and how many attempts, and one info line when it is back. A connection
may have several members (e.g. one Kafka consumer per partition): it is down
while any member that failed has not recovered.

:func:`route_library_logs` sends a client library's logger (asyncua) to ours at
DEBUG, tracebacks included, instead of to stderr at WARNING/ERROR: its details
stay available with ``-v``-style debug logging and out of the way otherwise.
:class:`LibrdkafkaLog` does the same for librdkafka's log callback.
"""
from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable

EVERY_S = 30.0
"""At most one line per this many seconds while a connection stays down."""

_CONNECTIONS: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()
_CONNECTIONS_LOCK = threading.Lock()


def register_connection(conn: object, name: str) -> None:
    """Make a source's connection state (an object with an ``is_up`` property) known to :func:`connections`:
    the metrics server's ``aiotstream_source_up`` and ``/readyz`` read it. Held weakly: a closed source's
    connection goes when it does. :class:`OutageLog` registers itself."""
    with _CONNECTIONS_LOCK:
        _CONNECTIONS[conn] = name


def connections() -> dict[str, bool]:
    """Every registered connection of the process by name: True while it is connected, False while it is down
    or not yet connected (several objects of one name: up only if all are)."""
    with _CONNECTIONS_LOCK:
        items = list(_CONNECTIONS.items())
    out: dict[str, bool] = {}
    for conn, name in items:
        out[name] = out.get(name, True) and bool(conn.is_up)  # type: ignore[attr-defined]
    return out


def _dur(seconds: float) -> str:
    """A duration for a log line.

    >>> _dur(0.25), _dur(12.34), _dur(125)
    ('0.2 s', '12 s', '2 min 5 s')
    """
    if seconds < 1:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s} s"


class OutageLog:
    """The log lines of one connection's outages (thread-safe).

    >>> lines, now = [], [0.0]
    >>> class L:
    ...     def warning(self, fmt, *a): lines.append("W " + fmt % a)
    ...     def info(self, fmt, *a): lines.append("I " + fmt % a)
    >>> o = OutageLog(L(), "OPC UA opc.tcp://plc:4840", clock=lambda: now[0])
    >>> o.ok("2 node(s) subscribed")
    >>> now[0] = 10
    >>> o.failed("socket closed", retry_in_s=0.5, attempt=False)
    >>> for t in (11, 13, 17, 25, 41, 73):
    ...     now[0] = t
    ...     o.failed("connection refused", retry_in_s=1.0)
    >>> now[0] = 80
    >>> o.ok("new session")
    >>> print("\\n".join(lines))  # doctest: +NORMALIZE_WHITESPACE
    I OPC UA opc.tcp://plc:4840: connected; 2 node(s) subscribed
    W OPC UA opc.tcp://plc:4840: connection lost (socket closed); reconnecting (next attempt in 0.5 s)
    W OPC UA opc.tcp://plc:4840: still down after 31 s, 5 failed attempt(s) (last: connection refused);
      next attempt in 1.0 s
    W OPC UA opc.tcp://plc:4840: still down after 1 min 3 s, 6 failed attempt(s) (last: connection refused);
      next attempt in 1.0 s
    I OPC UA opc.tcp://plc:4840: back after 1 min 10 s, 6 failed attempt(s); new session
    """

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter | object, name: str,
                 every_s: float = EVERY_S,
                 clock: Callable[[], float] = time.monotonic):
        self.log = logger
        self.name = name
        self.every_s = every_s
        self.clock = clock
        self._lock = threading.Lock()
        self.down: set[str] = set()  # members that failed and have not recovered
        self.since: float | None = None  # when the current outage began
        self.attempts = 0  # failed attempts in the current outage
        self.last_line = 0.0
        self.ever_up = False
        self.outages = 0
        register_connection(self, name)

    @property
    def is_down(self) -> bool:
        with self._lock:
            return bool(self.down)

    @property
    def is_up(self) -> bool:
        """Connected now: up at least once and no member down."""
        with self._lock:
            return self.ever_up and not self.down

    def failed(self, reason: str, retry_in_s: float | None = None, member: str = "",
               attempt: bool = True) -> None:
        """A connection attempt failed (``attempt``), or a connection was lost (``attempt=False``);
        ``retry_in_s``: when the next attempt is."""
        now = self.clock()
        nxt = f"next attempt in {retry_in_s:.1f} s" if retry_in_s is not None else ""
        with self._lock:
            first = not self.down
            self.down.add(member)
            if first:
                self.since, self.attempts, self.last_line = now, int(attempt), now
                self.outages += 1
                verb = "connection lost" if self.ever_up else "cannot connect"
                again = "reconnecting" if self.ever_up else "retrying"
                self.log.warning("%s: %s (%s); %s%s", self.name, verb, reason, again,
                                 f" ({nxt})" if nxt else "")
                return
            self.attempts += int(attempt)
            if now - self.last_line < self.every_s:
                return
            self.last_line = now
            assert self.since is not None
            tries = f", {self.attempts} failed attempt(s)" if self.attempts else ""
            self.log.warning("%s: still down after %s%s (last: %s)%s", self.name, _dur(now - self.since),
                             tries,
                             reason, f"; {nxt}" if nxt else "")

    def ok(self, detail: str = "", member: str = "") -> None:
        """A member is connected (again): one info line when the whole connection is back (or up the first
        time)."""
        now = self.clock()
        with self._lock:
            if member not in self.down:
                if not self.ever_up and not self.down:
                    self.ever_up = True
                    self.log.info("%s: connected%s", self.name, f"; {detail}" if detail else "")
                return
            self.down.discard(member)
            if self.down:
                return
            was_up, self.ever_up = self.ever_up, True
            assert self.since is not None
            tries = f", {self.attempts} failed attempt(s)" if self.attempts else ""
            self.log.info("%s: %s after %s%s%s", self.name, "back" if was_up else "connected",
                          _dur(now - self.since), tries, f"; {detail}" if detail else "")
            self.since = None
            self.attempts = 0


class _ToDebug(logging.Handler):
    """Re-logs a library's records on our logger at DEBUG (message, logger name and any traceback)."""

    def __init__(self, target: logging.Logger):
        super().__init__(logging.NOTSET)
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        if not self.target.isEnabledFor(logging.DEBUG):
            return
        self.target.debug("%s %s: %s", record.name, record.levelname, record.getMessage(),
                          exc_info=record.exc_info)


def route_library_logs(library: str, target: str) -> None:
    """Send logger ``library`` (and its children) to logger ``target`` at DEBUG and stop it reaching the root
    logger (stderr). Idempotent; the library's own level still decides what it emits (WARNING by default)."""
    lib = logging.getLogger(library)
    if any(isinstance(h, _ToDebug) for h in lib.handlers):
        return
    lib.addHandler(_ToDebug(logging.getLogger(target)))
    lib.propagate = False


class LibrdkafkaLog:
    """librdkafka's ``logger`` callback object: its lines (``FAIL``, ``ERROR``...) go to ``target`` at DEBUG
    instead of to stderr. confluent-kafka calls ``log(level, fmt, *args)`` from ``poll``/``consume``."""

    def __init__(self, target: str = "aiotstream.io.kafka.librdkafka"):
        self.target = logging.getLogger(target)

    def log(self, level: int, fmt: str, *args: object) -> None:
        if self.target.isEnabledFor(logging.DEBUG):
            self.target.debug("librdkafka[%s] " + fmt, level, *args)

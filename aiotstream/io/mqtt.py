"""MQTT: a Bytewax source (a paho session in a child process -> batches -> ``next_batch``) and a sink.

**Source.** One persistent MQTT session (a stable client id; MQTT 5 with
``clean_start = False`` and a session expiry, or 3.1.1 with ``clean_session =
False``) is one Bytewax partition, so exactly one worker owns it. The session
runs in a child process (:mod:`aiotstream.io.mqtt_relay`): paho's packet parsing
costs more CPU than the flow spends on a message, and there it has a core of its
own. The child sends batches; ``next_batch`` takes up to ``poll_batch`` messages
without waiting and stamps each with its position:

* ``topic`` = ``"mqtt:" + the MQTT topic``, ``partition`` = -1;
* ``offset`` = an arrival sequence number, strictly increasing per source:
  ``max(previous + 1, arrival time in µs since the epoch)``. It survives
  restarts (the snapshot carries it, and the clock keeps it unique without one).

**Acknowledgements.** QoS 1/2 messages are acknowledged by hand (paho's
``manual_ack``), never on receipt:

* ``ack = "epoch"`` (default): a message is acknowledged when the Bytewax epoch
  *after* the one in which it entered the dataflow closes at the input (the
  source's ``snapshot``). With recovery on, its epoch's state has normally been
  written by then. Needs MQTT 5, whose Receive Maximum lets the broker keep that
  many messages unacknowledged (3.1.1 brokers cap it; mosquitto at 20). It is also
  the flow control: the broker sends at most ``receive_maximum`` messages ahead of
  the acknowledgements, so ingest is capped near ``receive_maximum / (2 x epoch)``
  per second; a warning says when the window is full.
* ``ack = "batch"``: a batch is acknowledged when the next one is taken.

A message received but not yet acknowledged when the connection drops is
redelivered by the broker after the reconnect, so it is processed twice:
delivery is **at least once**. Acknowledgements for messages of an older
connection are never sent (their packet ids may name other messages now).
Where messages can still be lost, and how each loss is counted in the run's
STATS (group ``losses``), is in docs/mqtt.md: the broker's queue limits
(``mqtt_broker_dropped``, from its ``$SYS`` counter), gaps in per-topic sequence
numbers (``mqtt_seq_gap``), a session the broker no longer had
(``mqtt_session_lost``), QoS 0 messages received but not taken at stop
(``mqtt_qos0_unread``).

**Sink.** :class:`MqttSink` publishes the configured output kinds (e.g.
commands) to a topic template such as ``devices/{asset}/commands`` with QoS 1
and waits for every PUBACK at the end of each batch, so a batch is on the broker
before Bytewax moves on (at least once, like the Kafka sink). While the broker is
away paho keeps the messages and sends them after the reconnect; a batch that is
not acknowledged within ``publish_timeout_s`` fails the flow.
"""
from __future__ import annotations

import functools
import ipaddress
import logging
import pickle
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from aiotstream.config import MqttConnection, MqttInput, MqttOutput, SiteConfig
from aiotstream.errors import AiotError
from aiotstream.ids import is_valid_id
from aiotstream.io import mqtt_relay as relay
from aiotstream.io.mqtt_relay import connect_async as _connect
from aiotstream.io.mqtt_relay import make_client
from aiotstream.io.outage import register_connection
from aiotstream.io.sinkguard import count_loss, encode
from aiotstream.records import DecodeHints, DeviceMessage, Output
from aiotstream.runstats import STATS, RunStats
from aiotstream.topics import TopicRouter, TopicRule

log = logging.getLogger(__name__)
TOPIC_PREFIX = "mqtt:"
MQTT_MAX_PACKET = 268_435_455 + 5  # the protocol's largest remaining length plus the fixed header
_UNMATCHED = DecodeHints("auto")
_FRAME_SEQ = struct.Struct("<Q")  # the binary frame header's sequence number, at byte 28 (aiotstream.codecs)
STARTUP_WAIT_S = 5.0  # build_part waits this long at most for the session's first outcome
CLOSE_WAIT_S = 1.5  # close() waits this long at most for the child to say goodbye, then ends it
RETRY_LINE_S = 30.0  # while the broker is down, at most one line per this many seconds


class SequenceClock:
    """Strictly increasing positions that read as arrival time in µs (unique across restarts).

    >>> c = SequenceClock(last=10, now_us=lambda: 5)
    >>> c.next(), c.next()
    (11, 12)
    >>> SequenceClock(now_us=lambda: 1000).next()
    1000
    """

    def __init__(self, last: int = -1, now_us: Callable[[], int] | None = None):
        self.last = last
        self.now_us = now_us or (lambda: time.time_ns() // 1000)

    def next(self) -> int:
        n = self.now_us()
        self.last = n if n > self.last else self.last + 1
        return self.last


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (no name lookup).

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("localhost"), is_loopback("broker.plant")
    (True, True, True, False)
    """
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warn_if_plaintext(conn: MqttConnection, setting: str) -> bool:
    """One warning when ``conn`` reaches a non-loopback broker without TLS; True if it warned."""
    if conn.tls is not None or is_loopback(conn.host):
        return False
    log.warning("MQTT to %s:%s is not encrypted: credentials and plant data cross the network in clear text; "
                "set %s (a CA file, or {} for the system CAs) to use TLS", conn.host, conn.port, setting)
    return True


class SeqTracker:
    """Per-key sequence numbers -> messages known to be missing, net of late ones that fill a gap.

    ``see`` returns the change in the count of missing messages. A number ahead of
    the last one by more than 1 opens a gap; one behind it fills a gap if it was
    missing, is a duplicate if it is within ``window`` (QoS 1 redeliveries, device
    retries), and otherwise means the counter restarted (no gap is counted). With
    ``wrap`` the counter runs modulo ``wrap``; a number up to ``wrap / 2`` behind is
    "behind", so a restart cannot be told from a duplicate. At most ``max_ranges``
    open gaps per key are remembered for filling (older ones stay counted).

    >>> t = SeqTracker()
    >>> [t.see("a", n) for n in (0, 1, 4, 2, 2, 5, 3)]
    [0, 0, 2, -1, 0, 0, -1]
    >>> t.see("a", 10**6), t.see("a", 0), t.see("a", 1)
    (999994, 0, 0)
    >>> w = SeqTracker()
    >>> [w.see("k", n, wrap=256) for n in (254, 255, 0, 3, 1)]
    [0, 0, 0, 2, -1]
    """

    __slots__ = ("gaps", "max_ranges", "pos", "raw", "window")

    def __init__(self, window: int = 65535, max_ranges: int = 64):
        self.window = window
        self.max_ranges = max_ranges
        self.pos: dict[str, int] = {}  # position on a counter that never wraps
        self.raw: dict[str, int] = {}  # the last number as sent
        # open gaps [first, end) on the unwrapped counter, oldest first
        self.gaps: dict[str, list[list[int]]] = {}

    def see(self, key: str, n: int, wrap: int = 0) -> int:
        last = self.raw.get(key)
        if last is None:
            self.raw[key] = self.pos[key] = n
            return 0
        if wrap:
            d = (n - last) % wrap
            if d > wrap // 2:
                d -= wrap
        else:
            d = n - last
        if d == 1:
            self.raw[key] = n
            self.pos[key] += 1
            return 0
        if d > 1:
            pos = self.pos[key]
            gaps = self.gaps.setdefault(key, [])
            gaps.append([pos + 1, pos + d])
            if len(gaps) > self.max_ranges:
                del gaps[0]
            self.raw[key] = n
            self.pos[key] = pos + d
            return d - 1
        if d == 0:
            return 0
        if self._fill(key, self.pos[key] + d):
            return -1
        if -d > self.window and not wrap:  # far behind: the device's counter started again
            self.raw[key] = self.pos[key] = n
            self.gaps.pop(key, None)
        return 0

    def _fill(self, key: str, v: int) -> bool:
        gaps = self.gaps.get(key)
        if not gaps:
            return False
        for i, (a, b) in enumerate(gaps):
            if a <= v < b:
                if b - a == 1:
                    del gaps[i]
                elif v == a:
                    gaps[i][0] = a + 1
                elif v == b - 1:
                    gaps[i][1] = b - 1
                else:
                    gaps[i:i + 1] = [[a, v], [v + 1, b]]
                return True
        return False


@functools.lru_cache(maxsize=64)
def _seq_in_text(field: str) -> re.Pattern[bytes]:
    return re.compile(rb'"' + re.escape(field.encode()) + rb'"\s*:\s*([0-9]{1,19})(?![0-9.eE])')


def sequence_number(payload: bytes, where: str) -> int | None:
    """The sequence number ``where`` names in a payload: ``frame`` (the frame header's) or a JSON field.

    A payload that is not JSON (it becomes a dead letter) is searched for ``"<field>": <digits>``, so
    that a malformed message is not also counted as a gap.

    >>> sequence_number(b'{"seq": 7, "value": 1}', "seq"), sequence_number(b'{"seq": "7"}', "seq")
    (7, None)
    >>> sequence_number(b'{"seq": 8, "value": oops', "seq")
    8
    """
    if where == "frame":
        if len(payload) >= 36 and payload[:4] == b"AIOW":
            return int(_FRAME_SEQ.unpack_from(payload, 28)[0])
        return None
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        m = _seq_in_text(where).search(payload)
        return int(m.group(1)) if m else None
    v = obj.get(where) if isinstance(obj, dict) else None
    return v if type(v) is int and v >= 0 else None


class BrokerDrops:
    """Growth of the broker's dropped-message counter since the flow first saw it; a drop means a restart.

    >>> d = BrokerDrops()
    >>> d.update(100), d.update(130), d.update(5), d.update(5)
    (0, 30, 5, 0)
    """

    def __init__(self, last: int | None = None):
        self.last = last

    def update(self, value: int) -> int:
        last, self.last = self.last, value
        if last is None:
            return 0
        return value - last if value >= last else value


class ConnectionLog:
    """What an operator reads about the connection: one warning when it is lost, at most one line per
    ``every_s`` while it stays down (with the attempts so far), one info line when it is back.

    >>> lines = []
    >>> t = [0.0]
    >>> c = ConnectionLog("b:1883", "1-30 s", lambda lvl, msg: lines.append(msg), lambda: t[0])
    >>> c.up(False); c.down("Unspecified error")
    >>> for t[0] in (1, 3, 7, 15, 31, 47):
    ...     c.retry()
    >>> t[0] = 50; c.up(True)
    >>> len(lines), lines[-1]
    (4, 'MQTT connection to b:1883 back after 50 s (6 failed attempt(s)); session present: True')
    """

    def __init__(self, where: str, backoff: str, emit: Callable[[int, str], None],
                 now: Callable[[], float] = time.monotonic, every_s: float = RETRY_LINE_S):
        self.where = where
        self.backoff = backoff
        self.emit = emit
        self.now = now
        self.every_s = every_s
        self.down_since: float | None = None
        self.last_line = 0.0
        self.attempts = 0
        self.ever_up = False
        register_connection(self, f"MQTT {where}")

    @property
    def is_up(self) -> bool:
        """Connected now (for the metrics server: aiotstream.io.outage.connections)."""
        return self.ever_up and self.down_since is None

    def up(self, session_present: bool) -> None:
        if self.down_since is not None and self.ever_up:
            self.emit(logging.INFO,
                      f"MQTT connection to {self.where} back after {self.now() - self.down_since:.0f} s "
                      f"({self.attempts} failed attempt(s)); session present: {session_present}")
        else:
            self.emit(logging.INFO, f"MQTT connected to {self.where} (session present: {session_present})")
        self.down_since = None
        self.attempts = 0
        self.ever_up = True

    def down(self, reason: str) -> None:
        self.down_since = self.last_line = self.now()
        self.attempts = 0
        self.emit(logging.WARNING,
                  f"MQTT connection to {self.where} lost ({reason}); reconnecting with "
                  f"backoff {self.backoff}")

    def retry(self, refused: str | None = None, why: str | None = None) -> None:
        """A connection attempt failed: the broker ``refused`` it (a CONNACK or a TLS alert), or it did not
        get that far (``why``: a refused TCP connection, a certificate the CA does not sign, ...)."""
        self.attempts += 1
        now = self.now()
        unreachable = f"not reachable ({why})" if why else "not reachable"
        if self.down_since is None:
            self.down_since = self.last_line = now
            what = f"refused the connection ({refused})" if refused else unreachable
            self.emit(logging.WARNING,
                      f"MQTT broker {self.where} {what}; retrying with backoff {self.backoff}")
        elif now - self.last_line >= self.every_s:
            self.last_line = now
            why = f"still refuses the connection ({refused})" if refused else f"still {unreachable}"
            self.emit(logging.WARNING, f"MQTT broker {self.where} {why} after {now - self.down_since:.0f} s "
                                       f"({self.attempts} failed attempt(s)); retrying with "
                                       f"backoff {self.backoff}")


def _resume_state(resume: Any) -> tuple[int, int | None, dict[str, list[int]]]:
    """(last offset, broker drop counter, per-topic sequence positions) from a snapshot (an int before the
    counter and the sequence numbers were kept)."""
    if resume is None:
        return -1, None, {}
    if isinstance(resume, int):
        return resume, None, {}
    return int(resume["offset"]), resume.get("drops"), resume.get("seq") or {}


class _MqttPartition(StatefulSourcePartition[DeviceMessage, dict]):
    def __init__(self, cfg: MqttInput, client_id: str, batch: int, resume: Any,
                 stop: threading.Event | None, idle_stop_s: float | None,
                 ready: threading.Event | None = None,
                 stats: RunStats = STATS):
        self.cfg = cfg
        self.client_id = client_id
        self.batch = batch
        self.last, drops, seq = _resume_state(resume)
        self.resumed = resume is not None
        self.stop = stop
        self.idle_stop_s = idle_stop_s
        self.ready = ready
        self.stats = stats
        self.where = f"{cfg.host}:{cfg.port}"
        self.router: TopicRouter[tuple[DecodeHints, str, int]] = TopicRouter([
            TopicRule.build(s.filter, s.asset, s.metric,
                            tag=(DecodeHints(s.format, s.effective_missing_ts, tuple(s.metric_names.items())),
                                 s.seq, s.seq_wrap))
            for s in cfg.subscriptions])
        self.routes: dict[str, tuple[str, DecodeHints, str | None, str | None, str, int]] = {}
        self.seq = SeqTracker(window=max(cfg.receive_maximum, 1024))
        self.seq_kept = any(s.seq for s in cfg.subscriptions)
        for topic, (pos, raw) in seq.items():
            self.seq.pos[topic], self.seq.raw[topic] = pos, raw
        self.drops = BrokerDrops(drops)
        # no counter value by then: the broker has dropped nothing
        self.drops_baseline_at: float | None = None
        self.conn_log = ConnectionLog(self.where, f"{cfg.reconnect_min_s}-{cfg.reconnect_max_s} s",
                                      lambda lvl, msg: log.log(lvl, msg))
        self.pending_cur: list[tuple[int, int, int]] = []  # (mid, qos, gen) taken in this epoch
        self.pending_prev: list[tuple[int, int, int]] = []  # taken in the previous epoch
        self.received = 0  # QoS 1/2 messages taken from the child ...
        self.acked = 0  # ... and acknowledged (sent to the child for its connection)
        self.window_warned = 0.0
        self.drops_warned = 0.0
        self.leftover: list[tuple] = []
        self.last_data = time.monotonic()
        self.idle = False
        self.eof = False
        self.closed = False
        self.subscribed = False
        self.inc = 0  # child incarnation: acknowledgements go only to the child that delivered the message
        self.spawned_at = 0.0
        self.proc: subprocess.Popen[bytes] | None = None
        self.data: Connection | None = None
        self.ctl: Connection | None = None
        self._spawn()
        self._await_first_outcome(STARTUP_WAIT_S)

    # ---- the child process -----------------------------------------------------------------------
    def _spawn(self) -> None:
        data_r, data_w = socket.socketpair()
        ctl_r, ctl_w = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aiotstream.io.mqtt_relay", str(data_w.fileno()), str(ctl_r.fileno())],
                pass_fds=(data_w.fileno(), ctl_r.fileno()), stdin=subprocess.DEVNULL)
        finally:
            data_w.close()
            ctl_r.close()
        self.data = Connection(data_r.detach())
        self.ctl = Connection(ctl_w.detach())
        self.inc += 1
        self.spawned_at = time.monotonic()
        self.ctl.send((relay.CONFIG, self.cfg.model_dump_json(), self.client_id,
                       log.isEnabledFor(logging.DEBUG)))

    def _await_first_outcome(self, timeout_s: float) -> None:
        """Wait until the session is subscribed or the first attempt failed (so devices that start
        publishing right after the flow starts find the subscription), at most ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not self.subscribed and self.conn_log.down_since is None and self.proc is not None:
            left = deadline - time.monotonic()
            if left <= 0 or self.data is None or not self.data.poll(min(left, 0.05)):
                if left <= 0 or self.proc.poll() is not None:
                    return
                continue
            self._read_frame(self.leftover)

    def _child_gone(self) -> None:
        """The child ended without being asked to: start another (its unacknowledged messages come again)."""
        if self.closed or self.proc is None:
            return
        rc = self.proc.poll()
        if rc is None:
            self.proc.kill()
            rc = self.proc.wait()
        for c in (self.data, self.ctl):
            if c is not None:
                c.close()
        self.data = self.ctl = None
        self.proc = None
        self.leftover = [m for m in self.leftover if m[3] == 0]  # QoS 0 cannot come again; keep it
        log.warning("MQTT client process for %s exited (code %s); starting a new one (messages it had not "
                    "passed on come again from the session)", self.where, rc)

    def _read_frame(self, items: list[tuple]) -> None:
        assert self.data is not None
        try:
            frame = pickle.loads(self.data.recv_bytes())
        except (EOFError, OSError):
            self._child_gone()
            return
        kind = frame[0]
        if kind == relay.MSGS:
            items.extend(frame[1])
        else:
            self._event(frame)

    def _event(self, frame: tuple) -> None:
        kind = frame[0]
        if kind == relay.UP:
            _, _gen, present = frame
            expected = self.conn_log.ever_up or self.resumed
            self.conn_log.up(present)
            if expected and not present:
                self.stats.add("losses", "mqtt_session_lost")
                log.warning("MQTT broker %s had no session for client id %r: whatever was published for this "
                            "flow while it was away is lost (the session expired after session_expiry_s = %d "
                            "s, or the broker lost its state: is "
                            "persistence on?)", self.where, self.client_id,
                            self.cfg.session_expiry_s)
        elif kind == relay.SUBSCRIBED:
            _, failed = frame
            if self.cfg.broker_drops_topic and self.drops.last is None:
                # a broker publishes the counter (retained) right after the SUBACK, or has none yet
                self.drops_baseline_at = time.monotonic() + 1.0
            for flt, reason in failed:
                if flt == self.cfg.broker_drops_topic:
                    self.drops_baseline_at = None
                    log.info("MQTT broker %s does not let this client read %s (%s): its drops "
                             "cannot be counted",
                             self.where, flt, reason)
                else:
                    log.warning("MQTT broker %s refused the subscription %r: %s (check its ACL "
                                "for this client)",
                                self.where, flt, reason)
            self.subscribed = True
            if self.ready is not None:
                self.ready.set()
        elif kind == relay.DOWN:
            self.conn_log.down(frame[2])
        elif kind == relay.RETRY:
            self.conn_log.retry(why=frame[1] if len(frame) > 1 else None)
        elif kind == relay.REFUSED:
            self.conn_log.retry(refused=frame[1])
        elif kind == relay.DROPS:
            self._drops(frame[1])
        elif kind == relay.DEBUG:
            log.debug("paho: %s", frame[1])
        elif kind == relay.FATAL:
            self.closed = True
            raise AiotError(f"MQTT source for {self.where}: {frame[1]}")

    def _drops(self, payload: bytes) -> None:
        try:
            value = int(payload)
        except ValueError:
            log.debug("MQTT %s: %r is not a counter", self.cfg.broker_drops_topic, payload[:40])
            return
        delta = self.drops.update(value)
        if delta > 0:
            self.stats.add("losses", "mqtt_broker_dropped", delta)
            now = time.monotonic()
            if now - self.drops_warned >= 60:
                self.drops_warned = now
                log.warning("MQTT broker %s dropped %d message(s) (its counter %s, for all its clients): a "
                            "queue limit was reached; see docs/mqtt.md "
                            "(max_queued_messages)", self.where, delta,
                            self.cfg.broker_drops_topic)

    def _send_acks(self, pending: list[tuple[int, int, int]]) -> None:
        """Acknowledge (mid, qos, gen) entries of this child; the others' messages come again anyway."""
        if not pending or self.ctl is None:
            return
        groups: dict[tuple[int, int], array[int]] = {}
        inc = self.inc << 32
        for mid, qos, gen in pending:
            if gen & ~0xFFFFFFFF == inc:
                g = groups.get((gen, qos))
                if g is None:
                    groups[(gen, qos)] = g = array("H")
                g.append(mid)
        try:
            for (gen, qos), mids in groups.items():
                self.ctl.send((relay.ACK, gen & 0xFFFFFFFF, qos, mids.tobytes()))
                self.acked += len(mids)
        except OSError:
            self._child_gone()

    # ---- bytewax ---------------------------------------------------------------------------------
    def next_batch(self) -> list[DeviceMessage]:
        if self.cfg.ack == "batch" and self.pending_cur:
            self._send_acks(self.pending_cur)
            self.pending_cur = []
        if self.proc is None and not self.closed and time.monotonic() - self.spawned_at >= 1.0:
            self._spawn()
        items, self.leftover = self.leftover, []
        data = self.data
        while len(items) < self.batch and data is not None and data.poll(0):
            self._read_frame(items)
            data = self.data
        if len(items) > self.batch:
            self.leftover = items[self.batch:]
            items = items[:self.batch]
        out: list[DeviceMessage] = []
        if items:
            out = self._messages(items)
        now = time.monotonic()
        if self.drops_baseline_at is not None and now >= self.drops_baseline_at:
            self.drops_baseline_at = None
            if self.drops.last is None:
                self.drops.last = 0
        if out:
            self.last_data = now
            self.idle = False
        else:
            self.idle = True
            stopping = self.stop is not None and self.stop.is_set()
            if stopping and now - self.last_data >= (self.idle_stop_s or 0.0):
                self.eof = True
                raise StopIteration()
        return out

    def _messages(self, items: list[tuple]) -> list[DeviceMessage]:
        out: list[DeviceMessage] = []
        append = out.append
        pend = self.pending_cur.append
        routes = self.routes
        last = self.last
        inc = self.inc << 32
        gaps = 0
        q1 = 0
        for topic, payload, mid, qos, gen, arrival in items:
            r = routes.get(topic)
            if r is None:
                r = self._route(topic)
            ptopic, hints, asset, metric, seq, wrap = r
            off = arrival // 1000
            if off <= last:
                off = last + 1
            last = off
            append(DeviceMessage(ptopic, -1, off, payload, hints, asset, metric, arrival))
            if qos:
                pend((mid, qos, inc | gen))
                q1 += 1
            if seq:
                n = sequence_number(payload, seq)
                if n is not None:
                    gaps += self.seq.see(topic, n, wrap)
        self.last = last
        self.received += q1
        if gaps:
            self.stats.add("losses", "mqtt_seq_gap", gaps)
        if q1 and self.cfg.ack == "epoch":
            self._check_window()
        return out

    def _check_window(self) -> None:
        held = len(self.pending_cur) + len(self.pending_prev)
        if held >= self.cfg.receive_maximum:
            now = time.monotonic()
            if now - self.window_warned >= 600:
                self.window_warned = now
                log.warning("MQTT %s: %d messages wait for their epoch to close before they are "
                            "acknowledged, the whole receive_maximum: a broker that honours it sends no more "
                            "until then, so ingest is held to about receive_maximum per two epochs. Shorten "
                            "the epoch (--epoch-s), raise inputs.mqtt.receive_maximum (at most 65535) or use "
                            "ack = 'batch' (docs/mqtt.md)", self.where, held)

    def _route(self, topic: str) -> tuple[str, DecodeHints, str | None, str | None, str, int]:
        r = self.router.route(topic)
        if r is None or r[0] is None:
            res = (TOPIC_PREFIX + topic, _UNMATCHED, None, None, "", 0)
        else:
            (hints, seq, wrap), asset, metric = r
            res = (TOPIC_PREFIX + topic, hints, asset, metric, seq, wrap)
        if len(self.routes) >= 100_000:
            self.routes.clear()
        self.routes[topic] = res
        return res

    def next_awake(self) -> datetime | None:
        return datetime.now(UTC) + timedelta(milliseconds=5) if self.idle else None

    def snapshot(self) -> dict:
        if self.cfg.ack == "epoch":
            self._send_acks(self.pending_prev)
            self.pending_prev, self.pending_cur = self.pending_cur, []
        state: dict[str, Any] = {"offset": self.last, "drops": self.drops.last}
        # so that a restart from this snapshot counts what went missing while the flow was away
        if self.seq_kept:
            pos, raw = self.seq.pos, self.seq.raw
            state["seq"] = {k: [pos[k], raw[k]] for k in raw}
        return state

    def close(self) -> None:
        """Stop the session within CLOSE_WAIT_S. After the end of input everything taken was handed on, so
        it is acknowledged; otherwise what was not acknowledged stays with the broker's session and comes
        again on the next start. QoS 0 messages the flow did not take are lost (counted)."""
        if self.closed:
            return
        if self.eof:
            self._send_acks(self.pending_prev + self.pending_cur)
            self.pending_prev, self.pending_cur = [], []
        self.closed = True
        unacked = sum(1 for p in (self.pending_prev, self.pending_cur) for e in p)
        unread = list(self.leftover)
        self.leftover = []
        deadline = time.monotonic() + CLOSE_WAIT_S
        proc, data, ctl = self.proc, self.data, self.ctl
        try:
            if ctl is not None:
                ctl.send((relay.CLOSE,))
            while data is not None and proc is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not data.poll(min(left, 0.05)):
                    if left <= 0 or proc.poll() is not None:
                        break
                    continue
                frame = pickle.loads(data.recv_bytes())
                if frame[0] == relay.MSGS:
                    unread.extend(frame[1])
                elif frame[0] == relay.CLOSED:
                    break
                elif frame[0] == relay.DROPS:
                    self._drops(frame[1])
        except (EOFError, OSError):
            pass
        finally:
            if proc is not None:
                try:
                    proc.wait(max(0.05, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.debug("MQTT client process for %s did not end within %.1f s; killed", self.where,
                              CLOSE_WAIT_S)
                    proc.kill()
                    proc.wait()
            for c in (data, ctl):
                if c is not None:
                    c.close()
            self.proc = self.data = self.ctl = None
        qos0 = sum(1 for m in unread if m[3] == 0)
        if qos0:
            self.stats.add("losses", "mqtt_qos0_unread", qos0)
        unacked += len(unread) - qos0
        if unacked:
            self.stats.set("gauges", "mqtt_unacked_at_stop", unacked)
            log.info("MQTT %s: %d message(s) received but not acknowledged at stop; the broker keeps them in "
                     "the session (client id %r) and sends them again on the next start", self.where, unacked,
                     self.client_id)


class MqttSource(FixedPartitionedSource[DeviceMessage, dict]):
    """One MQTT session as one partition (see the module doc for positions and acknowledgements).

    ``stop`` + ``idle_stop_s`` end the input (for tests and bounded runs): once
    ``stop`` is set, the source finishes after ``idle_stop_s`` without messages.
    ``ready`` is set when the session has subscribed (for tests and readiness).
    """

    def __init__(self, cfg: MqttInput, site_id: str, batch: int = 1000, *,
                 stop: threading.Event | None = None,
                 idle_stop_s: float | None = None, ready: threading.Event | None = None):
        self.cfg = cfg
        self.client_id = cfg.client_id or f"aiotstream-{site_id}"
        self.batch = batch
        self.stop = stop
        self.idle_stop_s = idle_stop_s
        self.ready = ready
        # a missing password variable or unreadable TLS files: a one-line error now, not a dying child later
        try:
            make_client(cfg, self.client_id, persistent=True)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise AiotError(f"MQTT source for {cfg.host}:{cfg.port}: {exc} (check inputs.mqtt.tls)") from None
        warn_if_plaintext(cfg, "inputs.mqtt.tls")

    def list_parts(self) -> list[str]:
        return [f"mqtt:{self.client_id}"]

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _MqttPartition:
        return _MqttPartition(self.cfg, self.client_id, self.batch, resume_state, self.stop, self.idle_stop_s,
                              self.ready)


def mqtt_source(config: SiteConfig, **kwargs: Any) -> MqttSource:
    if config.inputs.mqtt is None:
        raise AiotError("the site config has no [inputs.mqtt] table")
    return MqttSource(config.inputs.mqtt, config.site.id, config.inputs.poll_batch, **kwargs)


# ---- sink ------------------------------------------------------------------------------------------
def output_topic(template: str, site: str, out: Output) -> str | None:
    """Fill a topic template from an output; None when a value from the data is not a plain id
    (:mod:`aiotstream.ids`), so no record can add a level or a wildcard to the topic it is published to.

    >>> output_topic("devices/{asset}/{kind}", "s", Output("command", "pump-1", {"asset": "pump-1"}))
    'devices/pump-1/command'
    >>> evil = Output("deadletter", "evil/#", {"asset": "evil/#"})
    >>> output_topic("devices/{asset}/{kind}", "s", evil) is None
    True
    """
    rec = out.record
    values = {"site": site, "asset": out.key or rec.get("asset") or "_", "kind": out.kind,
              "line": rec.get("line") or "_"}
    if not all(v == "_" or is_valid_id(v) for v in values.values()):
        return None
    return template.format(**values)


class MqttPublisher:
    """A paho client that publishes and can wait until every QoS 1/2 message is acknowledged.

    It keeps QoS 1/2 messages in the order they were published, across connects. paho (2.1, 2.2) does
    not: at a (re)connect it marks every message it holds for resending at the CONNACK, but a message
    handed to it between that moment and the end of its CONNACK handling goes out at once, before the
    older ones (a device that started publishing right after connecting delivered an early frame after
    8 s of later ones). So ``publish`` waits, at most ``CONNECT_WAIT_S`` per outage, until the session is
    up and paho has resent what it held; when the broker stays away longer it hands messages to paho,
    which keeps them in order until the next connect."""

    CONNECT_WAIT_S = 5.0

    def __init__(self, conn: MqttConnection, client_id: str, persistent: bool = True):
        self.conn = conn
        self.pending: set[int] = set()
        self.early: set[int] = set()
        self.topics: dict[int, str] = {}  # mid -> topic of the messages not acknowledged yet
        self.refused: list[tuple[int, str]] = []  # (mid, reason): PUBACKs that said no (an ACL, a quota)
        self.cond = threading.Condition()
        self.max_packet = MQTT_MAX_PACKET  # lowered by the broker's Maximum Packet Size (MQTT 5 CONNACK)
        self.up = threading.Event()
        self.resent = True  # paho has sent again what it held at the last connect (checked on first use)
        self.gave_up = False  # the broker stayed away longer than CONNECT_WAIT_S: publish without waiting
        self.client, props = make_client(conn, client_id, persistent=persistent)
        self.client.on_publish = self._on_publish
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        _connect(self.client, conn, props, persistent=persistent)

    def _on_connect(self, _client: mqtt.Client, _ud: Any, _flags: Any, reason: Any, props: Any) -> None:
        if getattr(reason, "is_failure", False):
            return
        size = getattr(props, "MaximumPacketSize", None) if props is not None else None
        self.max_packet = int(size) if size else MQTT_MAX_PACKET
        self.resent = False
        self.gave_up = False
        self.up.set()

    def _on_disconnect(self, *_args: Any) -> None:
        self.up.clear()

    def _resending(self) -> bool:
        """paho still holds messages it marked for resending at the CONNACK (paho's internals; without them
        there is nothing to check)."""
        lock = getattr(self.client, "_out_message_mutex", None)
        held = getattr(self.client, "_out_messages", None)
        if lock is None or held is None:
            return False
        with lock:
            return any(m.state == mqtt.mqtt_ms_publish for m in held.values())

    def _wait_up(self) -> None:
        if self.gave_up or (self.up.is_set() and self.resent):
            return
        deadline = time.monotonic() + self.CONNECT_WAIT_S
        while True:
            left = deadline - time.monotonic()
            if self.up.wait(max(left, 0.0)) and not self._resending():
                self.resent = True
                return
            if left <= 0:
                self.gave_up = True
                return
            time.sleep(0.001)

    def payload_limit(self, topic: str) -> int:
        """The largest payload a PUBLISH to ``topic`` may carry (fixed header, topic, packet id,
        properties)."""
        return self.max_packet - 32 - len(topic.encode())

    def _on_publish(self, _client: mqtt.Client, _ud: Any, mid: int, reason: Any, _props: Any) -> None:
        # runs in paho's thread while it holds its message lock: never call into paho from here
        if not self.conn.qos:
            return
        with self.cond:
            if getattr(reason, "is_failure", False):
                self.refused.append((mid, str(reason)))
            if mid in self.pending:
                self.pending.discard(mid)
                if not self.pending:
                    self.cond.notify_all()
            else:
                self.early.add(mid)  # PUBACK before publish() returned: settled when the mid is registered

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self._wait_up()  # QoS 0 too: paho drops what it was given before its first connect
        info = self.client.publish(topic, payload, qos=self.conn.qos, retain=retain)  # not under self.cond:
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:  # paho calls _on_publish holding its own lock
            raise AiotError(f"MQTT: paho's queue is full publishing to {topic!r}")
        if self.conn.qos:
            with self.cond:
                self.topics[info.mid] = topic
                if info.mid in self.early:
                    self.early.discard(info.mid)
                else:
                    self.pending.add(info.mid)

    def flush(self, timeout_s: float) -> None:
        """Wait for every PUBACK; paho resends after reconnects. Raise AiotError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while self.pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AiotError(f"MQTT: {len(self.pending)} message(s) not acknowledged by "
                                    f"{self.conn.host}:{self.conn.port} within {timeout_s:g} s")
                self.cond.wait(min(left, 0.5))
            refused, self.refused = self.refused, []
            topics, self.topics = self.topics, {}
        for mid, why in refused:
            # MQTT 5 only (a 3.1.1 broker drops what its ACL denies and acknowledges it all the same)
            STATS.add("losses", "mqtt_publish_refused")
            log.error("MQTT broker %s:%d refused a message to %r: %s (check its ACL for user %r)",
                      self.conn.host, self.conn.port, topics.get(mid, "?"), why, self.conn.username)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class _MqttSinkPartition(StatelessSinkPartition[Output]):
    def __init__(self, cfg: MqttOutput, site: str, client_id: str):
        self.cfg = cfg
        self.site = site
        self.kinds = frozenset(cfg.kinds)
        self.pub = MqttPublisher(cfg, client_id)

    def write_batch(self, items: list[Output]) -> None:
        sent = 0
        for out in items:
            if out.kind in self.kinds:
                topic = output_topic(self.cfg.topic, self.site, out)
                if topic is None:  # never from config ids; a guard against ids from data
                    log.error("MQTT sink: %s record %s not published: its asset/line is not a plain id (%r)",
                              out.kind, out.record.get("id"), out.key)
                    STATS.add("losses", "mqtt_unsafe_topic")
                    continue
                enc = encode(out, self.pub.payload_limit(topic))
                if enc is None:
                    count_loss(out, "output_too_large",
                               "not even a dead letter for it fits the MQTT packet limit")
                    continue
                fixed, data = enc
                if fixed is not out:  # a stand-in dead letter: never on a device's command topic
                    topic = output_topic(self.cfg.topic, self.site,
                                         fixed) if fixed.kind in self.kinds else None
                    if topic is None:
                        continue  # the main sink writes the same dead letter
                self.pub.publish(topic, data, self.cfg.retain)
                sent += 1
        if sent:
            # at least once: on the broker before the epoch moves on
            self.pub.flush(self.cfg.publish_timeout_s)

    def close(self) -> None:
        self.pub.flush(self.cfg.publish_timeout_s)
        self.pub.close()


class MqttSink(DynamicSink[Output]):
    """Publishes the outputs of ``cfg.kinds`` to ``cfg.topic`` (template), QoS 1, PUBACKs awaited per
    batch."""

    def __init__(self, cfg: MqttOutput, site_id: str):
        self.cfg = cfg
        self.site = site_id
        self.client_id = cfg.client_id or f"aiotstream-{site_id}-out"
        # commands to actuators in clear text are worse than readings
        warn_if_plaintext(cfg, "outputs.mqtt.tls")

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _MqttSinkPartition:
        return _MqttSinkPartition(self.cfg, self.site, f"{self.client_id}-w{worker_index}")


def publish_messages(conn: MqttConnection, client_id: str, messages: Sequence[tuple[str, bytes]],
                     timeout_s: float = 60.0) -> int:
    """Publish ``(topic, payload)`` pairs with the connection's QoS and wait for every PUBACK (a device
    side)."""
    pub = MqttPublisher(conn, client_id, persistent=False)
    try:
        for topic, payload in messages:
            pub.publish(topic, payload)
        pub.flush(timeout_s)
    finally:
        pub.close()
    return len(messages)

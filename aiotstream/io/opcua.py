"""OPC UA: a Bytewax source that subscribes to configured nodes (asyncua client in a background thread).

The client runs its own asyncio loop in a thread, creates one subscription
(``publishing_interval_ms``) with a monitored item per configured node
(``sampling_interval_ms``) and puts every data change on a bounded queue;
``next_batch`` drains it. asyncua's ``auto_reconnect`` supervisor re-creates the
session and the subscription after a connection loss; the first connection is
retried here with exponential backoff up to ``reconnect_max_s``.

Each data change becomes one message in the ``opcua`` payload format
(:func:`~aiotstream.codecs_iot.encode_opcua`: value, status code, source and
server timestamps), decoded in the flow's decode step like any other payload:

* event time: the server timestamp (``timestamp = "server"``, default) or the
  source timestamp (``"source"``), the other one if it is missing, else arrival;
* status: Good and Uncertain values pass; Bad ones become dead letters with
  reason ``bad_quality`` (``bad_quality = "deadletter"``) or readings carrying
  the status (``"flag"``), which windows count as input but leave out of values.

Positions: ``topic = "opcua:<endpoint>#<node id>"``, ``partition = -1``,
``offset`` = the same strictly increasing arrival sequence as MQTT (µs clock).
OPC UA subscriptions are not replayable: after a flow restart the server sends
current values again, so delivery is at most once across flow restarts and
exactly once while connected (a sequence gap is not detected).
"""
from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from aiotstream.codecs_iot import encode_opcua
from aiotstream.config import OpcUaInput, SiteConfig
from aiotstream.errors import AiotError
from aiotstream.io.mqtt import SequenceClock
from aiotstream.records import DecodeHints, DeviceMessage

log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HINTS = DecodeHints("opcua", "arrival")


def to_ns(ts: datetime | None) -> int | None:
    """An OPC UA DateTime (UTC, naive or aware) as ns since the Unix epoch; None stays None.

    >>> to_ns(datetime(2026, 1, 1, 0, 0, 0, 5))
    1767225600000005000
    """
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    if ts <= _EPOCH:
        return None  # OPC UA's "no timestamp" is 1601-01-01
    return (ts - _EPOCH) // timedelta(microseconds=1) * 1000


class _Handler:
    """asyncua subscription handler: every data change -> the queue (blocks when full: backpressure)."""

    def __init__(self, part: _OpcUaPartition):
        self.part = part

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.part.on_change(node, data.monitored_item.Value)

    def status_change_notification(self, status: Any) -> None:
        log.warning("OPC UA subscription status changed: %s", status)


class _OpcUaPartition(StatefulSourcePartition[DeviceMessage, int]):
    def __init__(self, cfg: OpcUaInput, batch: int, resume: int | None, stop: threading.Event | None,
                 idle_stop_s: float | None):
        from asyncua import ua

        self.cfg = cfg
        self.batch = batch
        self.clock = SequenceClock(resume if resume is not None else -1)
        self.stop = stop
        self.idle_stop_s = idle_stop_s
        self.q: queue.Queue[tuple[str, str, str, bytes, int]] = queue.Queue(maxsize=cfg.queue_size)
        self.nodes = {ua.NodeId.from_string(n.node_id): (f"opcua:{cfg.endpoint}#{n.node_id}", n.asset, n.metric)
                      for n in cfg.nodes}
        self.ids = {k: n.node_id for k, n in zip(self.nodes, cfg.nodes)}
        self.connected = threading.Event()
        self.error: BaseException | None = None
        self.last_data = time.monotonic()
        self.idle = False
        self._closing = threading.Event()
        self.thread = threading.Thread(target=self._thread_main, name="aiotstream-opcua", daemon=True)
        self.thread.start()

    # ---- asyncio thread ---------------------------------------------------------------------------
    def on_change(self, node: Any, dv: Any) -> None:
        key = node.nodeid
        where = self.nodes.get(key)
        if where is None:
            return
        status = dv.StatusCode.value if dv.StatusCode is not None else 0
        name = dv.StatusCode.name if dv.StatusCode is not None else "Good"
        value = dv.Value.Value if dv.Value is not None else None
        raw = encode_opcua(self.ids[key], value, int(status), to_ns(dv.SourceTimestamp), to_ns(dv.ServerTimestamp),
                           name, self.cfg.timestamp, self.cfg.bad_quality)
        self.q.put((where[0], where[1], where[2], raw, time.time_ns()))

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - surfaced to the worker in next_batch
            self.error = exc

    async def _run(self) -> None:
        from asyncua import Client, ua

        cfg = self.cfg
        client = Client(url=cfg.endpoint, timeout=cfg.timeout_s, auto_reconnect=True,
                        reconnect_max_delay=cfg.reconnect_max_s)
        if cfg.username:
            client.set_user(cfg.username)
        if cfg.password_env:
            pw = os.environ.get(cfg.password_env)
            if pw is None:
                raise AiotError(f"OPC UA password: environment variable {cfg.password_env!r} is not set")
            client.set_password(pw)
        if cfg.security:
            await client.set_security_string(cfg.security)
        delay = 0.5
        while not self._closing.is_set():
            try:
                await client.connect()
                break
            except (OSError, TimeoutError, ua.UaError) as exc:
                log.warning("OPC UA %s: cannot connect (%s); retrying in %.1f s", cfg.endpoint, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, cfg.reconnect_max_s)
        if self._closing.is_set():
            return
        try:
            sub = await client.create_subscription(cfg.publishing_interval_ms, _Handler(self))
            nodes = [client.get_node(k) for k in self.nodes]
            handles = await sub.subscribe_data_change(nodes, sampling_interval=cfg.sampling_interval_ms,
                                                      queuesize=100)
            bad = [(self.ids[k], h) for k, h in zip(self.nodes, handles) if isinstance(h, ua.StatusCode)]
            if bad:
                raise AiotError(f"OPC UA {cfg.endpoint}: cannot subscribe to "
                                + ", ".join(f"{n} ({h.name})" for n, h in bad) + "; check the node ids")
            self.connected.set()
            log.info("OPC UA connected to %s, %d node(s) subscribed", cfg.endpoint, len(nodes))
            while not self._closing.is_set():
                await asyncio.sleep(0.1)
        finally:
            await client.disconnect()

    # ---- bytewax worker ---------------------------------------------------------------------------
    def next_batch(self) -> list[DeviceMessage]:
        if self.error is not None:
            raise AiotError(f"OPC UA source stopped: {self.error}") from self.error
        out: list[DeviceMessage] = []
        get, clock = self.q.get_nowait, self.clock
        for _ in range(self.batch):
            try:
                topic, asset, metric, raw, arrival = get()
            except queue.Empty:
                break
            out.append(DeviceMessage(topic, -1, clock.next(), raw, _HINTS, asset, metric, arrival))
        now = time.monotonic()
        if out:
            self.last_data, self.idle = now, False
        else:
            self.idle = True
            if self.stop is not None and self.stop.is_set() and now - self.last_data >= (self.idle_stop_s or 0.0):
                raise StopIteration()
        return out

    def next_awake(self) -> datetime | None:
        return datetime.now(UTC) + timedelta(milliseconds=5) if self.idle else None

    def snapshot(self) -> int:
        return self.clock.last

    def close(self) -> None:
        self._closing.set()
        self.thread.join(timeout=10)


class OpcUaSource(FixedPartitionedSource[DeviceMessage, int]):
    """One OPC UA server connection (one subscription) as one partition.

    ``stop`` + ``idle_stop_s`` end the input (tests, bounded runs).
    """

    def __init__(self, cfg: OpcUaInput, batch: int = 1000, *, stop: threading.Event | None = None,
                 idle_stop_s: float | None = None):
        self.cfg = cfg
        self.batch = batch
        self.stop = stop
        self.idle_stop_s = idle_stop_s

    def list_parts(self) -> list[str]:
        return [f"opcua:{self.cfg.endpoint}"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _OpcUaPartition:
        return _OpcUaPartition(self.cfg, self.batch, resume_state, self.stop, self.idle_stop_s)


def opcua_source(config: SiteConfig, **kwargs: Any) -> OpcUaSource:
    if config.inputs.opcua is None:
        raise AiotError("the site config has no [inputs.opcua] table")
    return OpcUaSource(config.inputs.opcua, config.inputs.poll_batch, **kwargs)

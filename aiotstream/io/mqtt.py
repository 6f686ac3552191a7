"""MQTT: a Bytewax source (paho-mqtt client thread -> bounded queue -> ``next_batch``) and a sink.

**Source.** One persistent MQTT session (a stable client id; MQTT 5 with
``clean_start = False`` and a session expiry, or 3.1.1 with ``clean_session =
False``) is one Bytewax partition, so exactly one worker owns it. paho's network
thread puts each message on a bounded queue (when the queue is full the
thread blocks, TCP pushes back, and the broker stops sending); ``next_batch``
drains up to ``poll_batch`` messages and stamps each with its position:

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
  many messages unacknowledged (3.1.1 brokers cap it; mosquitto at 20).
* ``ack = "batch"``: a batch is acknowledged when the next one is taken.

A message received but not yet acknowledged when the connection drops is
redelivered by the broker after the reconnect, so it is processed twice:
delivery is **at least once**. Duplicates come from (1) such redeliveries, (2) a
flow restart after a crash (everything after the last acknowledgement comes
again), (3) devices re-publishing after their own reconnects. Outputs have
deterministic ids where their inputs are the same, so consumers can drop them.
Acknowledgements for messages of an older connection are never sent (their
packet ids may name other messages now). Messages are lost only if the broker
loses them (a broker without persistence that restarts), if a session expires
(``session_expiry_s``) while the flow is down, or if the flow process dies
after acknowledging messages whose windows had not reached the outputs (at
most two epochs' worth with ``ack = "epoch"``; see README "Delivery").

**Sink.** :class:`MqttSink` publishes the configured output kinds (e.g.
commands) to a topic template such as ``devices/{asset}/commands`` with QoS 1
and waits for every PUBACK at the end of each batch, so a batch is on the broker
before Bytewax moves on (at least once, like the Kafka sink). While the broker is
away paho keeps the messages and sends them after the reconnect; a batch that is
not acknowledged within ``publish_timeout_s`` fails the flow.
"""
from __future__ import annotations

import logging
import os
import queue
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from aiotstream.analysis import Output
from aiotstream.config import MqttConnection, MqttInput, MqttOutput, SiteConfig
from aiotstream.errors import AiotError
from aiotstream.ids import is_valid_id
from aiotstream.io.sinkguard import count_loss, encode
from aiotstream.records import DecodeHints, DeviceMessage
from aiotstream.runstats import STATS
from aiotstream.topics import TopicRouter, TopicRule

log = logging.getLogger(__name__)
TOPIC_PREFIX = "mqtt:"
MQTT_MAX_PACKET = 268_435_455 + 5  # the protocol's largest remaining length plus the fixed header
_UNMATCHED = DecodeHints("auto")


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


def _password(conn: MqttConnection) -> str | None:
    if not conn.password_env:
        return None
    value = os.environ.get(conn.password_env)
    if value is None:
        raise AiotError(f"MQTT password: environment variable {conn.password_env!r} is not set "
                        f"(password_env in the site config names it)")
    return value


def make_client(conn: MqttConnection, client_id: str, *, persistent: bool, manual_ack: bool = False,
                session_expiry_s: int = 3600) -> tuple[mqtt.Client, Properties | None]:
    """A paho client configured from the config (TLS, credentials, reconnect backoff) and its CONNECT properties."""
    v5 = conn.protocol == "5"
    kwargs: dict[str, Any] = {"client_id": client_id, "protocol": mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                              "manual_ack": manual_ack, "reconnect_on_failure": True}
    if not v5:
        kwargs["clean_session"] = not persistent
    client = mqtt.Client(CallbackAPIVersion.VERSION2, **kwargs)
    if conn.username or conn.password_env:
        client.username_pw_set(conn.username or None, _password(conn))
    if conn.tls is not None:
        t = conn.tls
        client.tls_set(ca_certs=t.ca_file or None, certfile=t.cert_file or None, keyfile=t.key_file or None,
                       cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if t.insecure:
            client.tls_insecure_set(True)
    client.reconnect_delay_set(conn.reconnect_min_s, conn.reconnect_max_s)
    props = None
    if v5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = session_expiry_s if persistent else 0
    return client, props


def _connect(client: mqtt.Client, conn: MqttConnection, props: Properties | None, persistent: bool) -> None:
    if conn.protocol == "5":
        client.connect_async(conn.host, conn.port, keepalive=conn.keepalive_s, clean_start=not persistent,
                             properties=props)
    else:
        client.connect_async(conn.host, conn.port, keepalive=conn.keepalive_s)
    client.loop_start()


class _MqttPartition(StatefulSourcePartition[DeviceMessage, int]):
    def __init__(self, cfg: MqttInput, client_id: str, batch: int, resume: int | None,
                 stop: threading.Event | None, idle_stop_s: float | None):
        self.cfg = cfg
        self.batch = batch
        self.clock = SequenceClock(resume if resume is not None else -1)
        self.stop = stop
        self.idle_stop_s = idle_stop_s
        self.q: queue.Queue[tuple[str, bytes, int, int, int, int]] = queue.Queue(maxsize=cfg.queue_size)
        self.router: TopicRouter[DecodeHints] = TopicRouter([
            TopicRule.build(s.filter, s.asset, s.metric,
                            tag=DecodeHints(s.format, s.effective_missing_ts, tuple(s.metric_names.items())))
            for s in cfg.subscriptions])
        self.gen = 0  # connection generation: acks only go to the connection that delivered the message
        self.connected = threading.Event()
        self.pending_cur: list[tuple[int, int, int]] = []  # (mid, qos, gen) taken in this epoch
        self.pending_prev: list[tuple[int, int, int]] = []  # taken in the previous epoch
        self.last_data = time.monotonic()
        self.idle = False
        self.client, props = make_client(cfg, client_id, persistent=True, manual_ack=True,
                                         session_expiry_s=cfg.session_expiry_s)
        if props is not None:
            props.ReceiveMaximum = cfg.receive_maximum
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        _connect(self.client, cfg, props, persistent=True)

    # ---- paho thread ----------------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _ud: Any, flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT %s:%s refused the connection: %s", self.cfg.host, self.cfg.port, reason)
            return
        self.gen += 1
        if self.cfg.protocol == "5":  # retained messages only for new subscriptions, not on every reconnect
            opts = SubscribeOptions(qos=self.cfg.qos, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
            client.subscribe([(s.filter, opts) for s in self.cfg.subscriptions])
        else:
            client.subscribe([(s.filter, self.cfg.qos) for s in self.cfg.subscriptions])
        log.info("MQTT connected to %s:%s (session present: %s)", self.cfg.host, self.cfg.port,
                 getattr(flags, "session_present", "?"))
        self.connected.set()

    def _on_disconnect(self, _client: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self.gen += 1
        self.connected.clear()
        log.warning("MQTT connection to %s:%s lost (%s); reconnecting", self.cfg.host, self.cfg.port, reason)

    def _on_message(self, _client: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        # blocks when the queue is full: paho stops reading, TCP pushes back on the broker
        self.q.put((msg.topic, msg.payload, msg.mid, msg.qos, self.gen, time.time_ns()))

    # ---- bytewax worker -------------------------------------------------------------------------
    def _ack(self, pending: list[tuple[int, int, int]]) -> None:
        gen = self.gen
        for mid, qos, g in pending:
            if qos and g == gen:
                self.client.ack(mid, qos)

    def next_batch(self) -> list[DeviceMessage]:
        if self.cfg.ack == "batch" and self.pending_cur:
            self._ack(self.pending_cur)
            self.pending_cur = []
        out: list[DeviceMessage] = []
        get, route, clock = self.q.get_nowait, self.router.route, self.clock
        for _ in range(self.batch):
            try:
                topic, payload, mid, qos, gen, arrival = get()
            except queue.Empty:
                break
            r = route(topic)
            hints, asset, metric = (r if r is not None and r[0] is not None else (_UNMATCHED, None, None))
            out.append(DeviceMessage(TOPIC_PREFIX + topic, -1, clock.next(), payload, hints, asset, metric, arrival))
            if qos:
                self.pending_cur.append((mid, qos, gen))
        now = time.monotonic()
        if out:
            self.last_data = now
            self.idle = False
        else:
            self.idle = True
            if self.stop is not None and self.stop.is_set() and \
                    now - self.last_data >= (self.idle_stop_s or 0.0):
                raise StopIteration()
        return out

    def next_awake(self) -> datetime | None:
        return datetime.now(UTC) + timedelta(milliseconds=5) if self.idle else None

    def snapshot(self) -> int:
        if self.cfg.ack == "epoch":
            self._ack(self.pending_prev)
            self.pending_prev, self.pending_cur = self.pending_cur, []
        return self.clock.last

    def close(self) -> None:
        """End of input (finite runs only): everything taken was handed on, so acknowledge it all."""
        self._ack(self.pending_prev + self.pending_cur)
        self.pending_prev, self.pending_cur = [], []
        self.client.disconnect()
        self.client.loop_stop()


class MqttSource(FixedPartitionedSource[DeviceMessage, int]):
    """One MQTT session as one partition (see the module doc for positions and acknowledgements).

    ``stop`` + ``idle_stop_s`` end the input (for tests and bounded runs): once
    ``stop`` is set, the source finishes after ``idle_stop_s`` without messages.
    """

    def __init__(self, cfg: MqttInput, site_id: str, batch: int = 1000, *, stop: threading.Event | None = None,
                 idle_stop_s: float | None = None):
        self.cfg = cfg
        self.client_id = cfg.client_id or f"aiotstream-{site_id}"
        self.batch = batch
        self.stop = stop
        self.idle_stop_s = idle_stop_s

    def list_parts(self) -> list[str]:
        return [f"mqtt:{self.client_id}"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _MqttPartition:
        return _MqttPartition(self.cfg, self.client_id, self.batch, resume_state, self.stop, self.idle_stop_s)


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
    >>> output_topic("devices/{asset}/{kind}", "s", Output("deadletter", "evil/#", {"asset": "evil/#"})) is None
    True
    """
    rec = out.record
    values = {"site": site, "asset": out.key or rec.get("asset") or "_", "kind": out.kind,
              "line": rec.get("line") or "_"}
    if not all(v == "_" or is_valid_id(v) for v in values.values()):
        return None
    return template.format(**values)


class MqttPublisher:
    """A paho client that publishes and can wait until every QoS 1/2 message is acknowledged."""

    def __init__(self, conn: MqttConnection, client_id: str, persistent: bool = True):
        self.conn = conn
        self.pending: set[int] = set()
        self.early: set[int] = set()
        self.cond = threading.Condition()
        self.max_packet = MQTT_MAX_PACKET  # lowered by the broker's Maximum Packet Size (MQTT 5 CONNACK)
        self.client, props = make_client(conn, client_id, persistent=persistent)
        self.client.on_publish = self._on_publish
        self.client.on_connect = self._on_connect
        _connect(self.client, conn, props, persistent=persistent)

    def _on_connect(self, _client: mqtt.Client, _ud: Any, _flags: Any, _reason: Any, props: Any) -> None:
        size = getattr(props, "MaximumPacketSize", None) if props is not None else None
        self.max_packet = int(size) if size else MQTT_MAX_PACKET

    def payload_limit(self, topic: str) -> int:
        """The largest payload a PUBLISH to ``topic`` may carry (fixed header, topic, packet id, properties)."""
        return self.max_packet - 32 - len(topic.encode())

    def _on_publish(self, _client: mqtt.Client, _ud: Any, mid: int, _reason: Any, _props: Any) -> None:
        # runs in paho's thread while it holds its message lock: never call into paho from here
        if not self.conn.qos:
            return
        with self.cond:
            if mid in self.pending:
                self.pending.discard(mid)
                if not self.pending:
                    self.cond.notify_all()
            else:
                self.early.add(mid)  # PUBACK before publish() returned: settled when the mid is registered

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=self.conn.qos, retain=retain)  # not under self.cond:
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:  # paho calls _on_publish holding its own lock
            raise AiotError(f"MQTT: paho's queue is full publishing to {topic!r}")
        if self.conn.qos:
            with self.cond:
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
                    count_loss(out, "output_too_large", "not even a dead letter for it fits the MQTT packet limit")
                    continue
                fixed, data = enc
                if fixed is not out:  # a stand-in dead letter: never on a device's command topic
                    topic = output_topic(self.cfg.topic, self.site, fixed) if fixed.kind in self.kinds else None
                    if topic is None:
                        continue  # the main sink writes the same dead letter
                self.pub.publish(topic, data, self.cfg.retain)
                sent += 1
        if sent:
            self.pub.flush(self.cfg.publish_timeout_s)  # at least once: on the broker before the epoch moves on

    def close(self) -> None:
        self.pub.flush(self.cfg.publish_timeout_s)
        self.pub.close()


class MqttSink(DynamicSink[Output]):
    """Publishes the outputs of ``cfg.kinds`` to ``cfg.topic`` (template), QoS 1, PUBACKs awaited per batch."""

    def __init__(self, cfg: MqttOutput, site_id: str):
        self.cfg = cfg
        self.site = site_id
        self.client_id = cfg.client_id or f"aiotstream-{site_id}-out"

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _MqttSinkPartition:
        return _MqttSinkPartition(self.cfg, self.site, f"{self.client_id}-w{worker_index}")


def publish_messages(conn: MqttConnection, client_id: str, messages: Sequence[tuple[str, bytes]],
                     timeout_s: float = 60.0) -> int:
    """Publish ``(topic, payload)`` pairs with the connection's QoS and wait for every PUBACK (a device side)."""
    pub = MqttPublisher(conn, client_id, persistent=False)
    try:
        for topic, payload in messages:
            pub.publish(topic, payload)
        pub.flush(timeout_s)
    finally:
        pub.close()
    return len(messages)

"""The MQTT source's session, run in a process of its own (``python -m aiotstream.io.mqtt_relay``).

The session is paho's, with one part replaced: incoming QoS 0/1 PUBLISH packets are split from
whole socket reads and handed over a read at a time (:class:`aiotstream.io.mqtt_wire.BatchClient`;
paho's own reader costs 28-33 µs of CPU per small message here, more than the flow spends on it,
the batched one 1-2 µs). In this child process the network thread has a core of its own: it answers
keepalives and acknowledgements even while the Bytewax worker is busy (a long snapshot, a model
swap), instead of taking turns with it on one GIL.

Two socket pairs connect it to :class:`aiotstream.io.mqtt.MqttSource`, framed and pickled by
:mod:`multiprocessing.connection` (our own two processes, nothing from the network is unpickled):

* data, child -> parent: batches of messages ``(MSGS, [(topic, payload, mid, qos, gen, arrival_ns)])``
  (``arrival_ns``: when the socket read that brought the message returned)
  and events (connected, lost, retrying, refused, the broker's drop counter, paho's debug log,
  closed). Only the child's main thread writes it; while the parent does not read, that write
  blocks, the message queue fills, paho stops reading and TCP pushes back on the broker.
* control, parent -> child: the configuration, acknowledgements ``(ACK, gen, qos, mids)`` and
  ``(CLOSE,)``. A thread of its own reads it, so acknowledgements never wait behind data.

``gen`` numbers the connections: an acknowledgement is sent only on the connection that
delivered the message (packet ids are per connection). Reconnects are paho's own
(``loop_start`` + ``reconnect_delay_set``: exponential backoff from ``reconnect_min_s`` to
``reconnect_max_s``, reset when a CONNACK arrives, and interrupted by ``disconnect``).
The child ignores SIGINT (the parent decides when to stop) and exits when the parent goes.
"""
from __future__ import annotations

import collections
import json
import logging
import os
import pickle
import signal
import ssl
import sys
import threading
import time
from array import array
from multiprocessing.connection import Connection
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from aiotstream.errors import AiotError
from aiotstream.io.mqtt_wire import BatchClient, Packet
from aiotstream.secretfiles import read_secret

if TYPE_CHECKING:
    from aiotstream.config import MqttConnection, MqttInput

# frames, child -> parent
MSGS, UP, SUBSCRIBED, DOWN, RETRY, REFUSED, DROPS, DEBUG, CLOSED, FATAL = range(10)
# frames, parent -> child
CONFIG, ACK, CLOSE = range(3)

FLUSH_S = 0.002  # the child's main thread sends what arrived at most this long ago
MAX_FRAME = 5000  # messages per data frame


def password(conn: MqttConnection) -> str | None:
    if conn.password_file:
        return read_secret(conn.password_file, "mqtt password_file")
    if not conn.password_env:
        return None
    value = os.environ.get(conn.password_env)
    if value is None:
        raise AiotError(f"MQTT password: environment variable {conn.password_env!r} is not set (password_env "
                        "in the site config names it)")
    return value


def make_client(conn: MqttConnection, client_id: str, *, persistent: bool, manual_ack: bool = False,
                session_expiry_s: int = 3600, cls: type[mqtt.Client] = mqtt.Client,
                **extra: Any) -> tuple[mqtt.Client, Properties | None]:
    """A paho client (``cls``, constructed with ``extra`` too) configured from the config (TLS, credentials,
    reconnect backoff) and its CONNECT properties."""
    v5 = conn.protocol == "5"
    kwargs: dict[str, Any] = {"client_id": client_id, "protocol": mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                              "manual_ack": manual_ack, "reconnect_on_failure": True, **extra}
    if not v5:
        kwargs["clean_session"] = not persistent
    client = cls(CallbackAPIVersion.VERSION2, **kwargs)
    if conn.username or conn.password_env or conn.password_file:
        client.username_pw_set(conn.username or None, password(conn))
    if conn.tls is not None:
        t = conn.tls
        key_pw = read_secret(t.key_password_file, "mqtt tls.key_password_file") \
            if t.key_password_file else None
        client.tls_set(ca_certs=t.ca_file or None, certfile=t.cert_file or None, keyfile=t.key_file or None,
                       cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT,
                       keyfile_password=key_pw)
        if t.insecure:
            client.tls_insecure_set(True)
    client.reconnect_delay_set(conn.reconnect_min_s, conn.reconnect_max_s)
    props = None
    if v5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = session_expiry_s if persistent else 0
    return client, props


def connect_async(client: mqtt.Client, conn: MqttConnection, props: Properties | None,
                  persistent: bool) -> None:
    if conn.protocol == "5":
        client.connect_async(conn.host, conn.port, keepalive=conn.keepalive_s, clean_start=not persistent,
                             properties=props)
    else:
        client.connect_async(conn.host, conn.port, keepalive=conn.keepalive_s)
    client.loop_start()


class _PahoLog:
    """paho's log, as DEBUG frames for the parent (only when the parent logs at DEBUG)."""

    def __init__(self, events: collections.deque[tuple]):
        self.events = events

    def log(self, _level: int, fmt: str, *args: Any) -> None:
        self.events.append((DEBUG, fmt % args if args else fmt))


class Relay:
    """One persistent MQTT session; messages and events go to ``data``, acknowledgements come in."""

    def __init__(self, cfg: MqttInput, client_id: str, data: Connection, debug: bool = False):
        self.cfg = cfg
        self.data = data
        self.msgs: collections.deque[tuple[str, bytes, int, int, int, int]] = collections.deque()
        self.events: collections.deque[tuple] = collections.deque()
        self.cap = cfg.queue_size
        self.gen = 0
        self.connected = False
        # an acknowledgement is checked and queued atomically w.r.t. reconnects
        self.gen_lock = threading.Lock()
        self.closing = threading.Event()
        self.drops_topic = cfg.broker_drops_topic
        self.topics: dict[bytes, str] = {}  # topic as received -> as handed on
        client, props = make_client(cfg, client_id, persistent=True, manual_ack=True,
                                    session_expiry_s=cfg.session_expiry_s, cls=BatchClient,
                                    on_publishes=self._on_publishes)
        assert isinstance(client, BatchClient)
        self.client = client
        if props is not None:
            props.ReceiveMaximum = cfg.receive_maximum
        self.props = props
        self.client.suppress_exceptions = True  # a failing callback is logged, the network thread lives on
        if debug:
            self.client.enable_logger(_PahoLog(self.events))  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_log = self._on_log
        self.subscribing: dict[int, list[str]] = {}
        # why the last attempt ended before a CONNACK (a TLS alert: no client certificate, an unknown CA)
        self.last_error = ""
        self.refused = False  # this attempt's CONNACK said no (already reported)

    # ---- paho's network thread -------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _ud: Any, flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self.refused = True
            self.events.append((REFUSED, str(reason)))
            return
        if self.closing.is_set():
            client.disconnect()
            return
        subs = self.cfg.subscriptions
        if self.cfg.protocol == "5":  # retained messages only for new subscriptions, not on every reconnect
            opts = SubscribeOptions(qos=self.cfg.qos, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
            topics: list[tuple[str, Any]] = [(s.filter, opts) for s in subs]
            if self.drops_topic:  # the retained counter at every connect: a baseline after broker restarts
                topics.append((self.drops_topic, SubscribeOptions(qos=0)))
        else:
            topics = [(s.filter, self.cfg.qos) for s in subs]
            if self.drops_topic:
                topics.append((self.drops_topic, 0))
        with self.gen_lock:
            self.gen += 1
            self.connected = True
            gen = self.gen
        self.events.append((UP, gen, bool(getattr(flags, "session_present", False))))
        _rc, mid = client.subscribe(topics)
        self.subscribing[mid] = [t for t, _ in topics]

    def _on_subscribe(self, _client: mqtt.Client, _ud: Any, mid: int, reasons: list[Any],
                      _props: Any) -> None:
        filters = self.subscribing.pop(mid, [])
        failed = [(f, str(r)) for f, r in zip(filters, reasons, strict=False) if r.is_failure]
        self.events.append((SUBSCRIBED, failed))

    def _on_connect_fail(self, client: mqtt.Client, _ud: Any) -> None:
        if not self.closing.is_set():
            self.events.append((RETRY, getattr(client, "connect_error", "")))

    def _on_disconnect(self, _client: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        with self.gen_lock:
            was = self.connected
            self.connected = False
        refused, self.refused = self.refused, False
        if self.closing.is_set():
            return
        if was:
            self.events.append((DOWN, self.gen, str(reason)))
        elif not refused:  # ended before any CONNACK: the TLS handshake failed (or the broker hung up)
            self.events.append((REFUSED, self.last_error or str(reason)))
        self.last_error = ""

    def _on_log(self, _client: mqtt.Client, _ud: Any, level: int, buf: str) -> None:
        if level == mqtt.MQTT_LOG_ERR:
            self.last_error = buf

    def _topic(self, raw: bytes) -> str:
        try:
            topic = raw.decode()
        except UnicodeDecodeError:  # brokers refuse such topics; keep the message (a dead letter later)
            topic = "<topic is not UTF-8>"
        if len(self.topics) >= 100_000:
            self.topics.clear()
        self.topics[raw] = topic
        return topic

    def _on_publishes(self, packets: list[Packet]) -> None:
        """QoS 0/1 messages of one socket read (:class:`BatchClient`), one arrival time for all."""
        arrival = time.time_ns()
        # only written in this thread (on_connect): a message keeps the connection that brought it
        gen = self.gen
        topics = self.topics
        drops = self.drops_topic
        batch = []
        append = batch.append
        for raw, payload, mid, header in packets:
            topic = topics.get(raw)
            if topic is None:
                topic = self._topic(raw)
            if topic == drops:
                self.events.append((DROPS, payload))
                continue
            append((topic, payload, mid, (header >> 1) & 3, gen, arrival))
        self._queue(batch)

    def _on_message(self, _client: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        """QoS 2 messages (paho's own reader: they need its PUBREC/PUBREL exchange)."""
        topic = self.topics.get(msg._topic) or self._topic(msg._topic)
        if topic == self.drops_topic:
            self.events.append((DROPS, msg.payload))
            return
        self._queue([(topic, msg.payload, msg.mid, msg.qos, self.gen, time.time_ns())])

    def _queue(self, batch: list[tuple[str, bytes, int, int, int, int]]) -> None:
        q = self.msgs
        if len(q) >= self.cap:  # the flow is behind: stop reading (TCP pushes back on the broker)
            while len(q) >= self.cap and not self.closing.is_set():
                time.sleep(0.002)
        q.extend(batch)  # at most one read (READ_SIZE bytes) past the cap

    # ---- control thread --------------------------------------------------------------------------
    def control(self, ctl: Connection) -> None:
        """Acknowledgements and CLOSE from the parent; EOF (the parent is gone) closes too."""
        try:
            while True:
                frame = ctl.recv()
                if frame[0] == ACK:
                    _, gen, qos, mids = frame
                    with self.gen_lock:
                        if self.connected and gen == self.gen:
                            self.client.ack_many(array("H", mids), qos)
                elif frame[0] == CLOSE:
                    break
        except (EOFError, OSError):
            pass
        self.closing.set()

    # ---- main thread -----------------------------------------------------------------------------
    def _send(self, frame: tuple) -> None:
        self.data.send_bytes(pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL))

    def flush(self) -> None:
        """Send the events, then the messages (one frame per connection generation, at most MAX_FRAME)."""
        ev = self.events
        while ev:
            self._send(ev.popleft())
        q = self.msgs
        n = len(q)
        if not n:
            return
        pop = q.popleft
        items = [pop() for _ in range(n)]
        for i in range(0, n, MAX_FRAME):
            self._send((MSGS, items[i:i + MAX_FRAME]))

    def run(self) -> None:
        connect_async(self.client, self.cfg, self.props, persistent=True)
        while not self.closing.is_set():
            self.flush()
            time.sleep(FLUSH_S)
        self.client.disconnect()  # clean: the broker keeps the session; nothing is lost or reported as lost
        self.client.loop_stop()
        self.flush()  # what arrived before the disconnect: the parent counts it (it will not take it)
        self._send((CLOSED,))


def main(argv: list[str]) -> int:
    """``python -m aiotstream.io.mqtt_relay DATA_FD CONTROL_FD``: the first control frame is the config."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the parent decides
    data, ctl = Connection(int(argv[1])), Connection(int(argv[2]))
    try:
        _, cfg_json, client_id, debug = ctl.recv()
        # the parent validated it; attribute access is all the relay needs, and not importing pydantic and
        # the config module here halves the time until the session is subscribed
        cfg = json.loads(cfg_json, object_hook=lambda d: SimpleNamespace(**d))
        relay = Relay(cfg, client_id, data, debug)
        threading.Thread(target=relay.control, args=(ctl,), name="mqtt-relay-control", daemon=True).start()
        relay.run()
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return 0  # the parent is gone; the broker keeps the session
    # bad TLS files, a missing password variable
    except (AiotError, ValueError, OSError, ssl.SSLError) as exc:
        try:
            data.send_bytes(pickle.dumps((FATAL, f"{type(exc).__name__}: {exc}")))
        except OSError:
            pass
        return 2
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main(sys.argv))

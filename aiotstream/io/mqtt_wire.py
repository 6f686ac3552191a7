"""MQTT packets from whole socket reads: the MQTT relay's fast path for incoming PUBLISH packets.

paho reads a packet with three or more ``recv`` calls (the first byte, the remaining length one byte at
a time, then the rest), and its network loop ``select``\\s once per packet. Then it decodes the PUBLISH
with ``struct`` format strings built per packet, parses the MQTT 5 properties into a ``Properties``
object, builds an ``MQTTMessage``, formats a debug line and calls ``on_message``. For a 60-byte
reading that is most of the relay's CPU, more than the bare subscriber the issue measures against.

:class:`BatchClient` is a paho client that keeps everything but the reading of packets: connecting,
subscribing, keepalive, reconnects, sending and session state are paho's own. Its ``_packet_read``
(paho's hook, called when ``select`` says the socket is readable) reads what the socket holds, up to
``READ_SIZE`` bytes, in one ``recv`` and splits it into packets with :func:`split_packets`:

* PUBLISH with QoS 0 or 1 is decoded here (topic, packet id, payload; the MQTT 5 properties are skipped:
  the relay uses none of them) and handed to ``on_publishes`` together with its neighbours, one call per
  run of consecutive PUBLISH packets. With ``manual_ack`` paho keeps no state for an incoming QoS 0/1
  message, so nothing of paho's is bypassed but the callback. (``message_callback_add`` filters and
  ``on_message`` are not called for these packets.)
* every other packet, QoS 2 PUBLISH included, goes to paho's own handler (``_packet_handle``) exactly as
  paho's reader would hand it over, in order. A packet that ends the connection (a DISCONNECT, a CONNACK
  that makes paho reconnect) drops what followed it in the read, as paho's reader would never read it.

A packet cut by the end of a read waits for the next read (``need`` says how many bytes it lacks, so a
large packet is collected without re-splitting). The buffer is dropped on ``reconnect``.

Topic aliases: the client never sets Topic Alias Maximum in its CONNECT, so under MQTT 5 a broker must
not send them (section 3.1.2.11.8). A PUBLISH with an empty topic is handed on with topic ``b""``, as paho
would. Malformed packets end the connection like paho's (``MQTT_ERR_PROTOCOL``), after the packets before
them were handled.
"""
from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.client import MQTT_LOG_DEBUG, MQTT_LOG_ERR, MQTTErrorCode, time_func
from paho.mqtt.exception import MalformedPacket

PUBLISH = 0x30
PUBACK = 0x40
_PUBACK = struct.Struct("!BBH")  # type, remaining length 2, packet id (no reason code: success, MQTT 5 too)
READ_SIZE = 1 << 18  # bytes per recv: a few thousand small readings; the kernel's socket buffer is about this

# (topic, payload, packet id, first header byte) for a QoS 0/1 PUBLISH; (None, body, 0, first header byte)
# for any other packet (body = everything after the fixed header, as paho's _packet_handle expects it)
Packet = tuple[bytes | None, bytes, int, int]


def split_packets(data: bytes, v5: bool) -> tuple[list[Packet], int, int, str | None]:
    """The complete packets at the start of ``data`` -> (packets, bytes used, bytes needed, error).

    ``bytes needed`` is the length of ``data`` the first incomplete packet needs to be complete (at least
    ``used + 1``; the header may be cut, then it is a lower bound). ``error`` names a malformed packet at
    ``used``, where splitting stopped; the packets before it are returned.

    >>> pub = bytes([0x30, 9, 0, 3]) + b"a/b" + b"{}xx"  # QoS 0, topic a/b, payload {}xx
    >>> split_packets(pub + bytes([0xD0, 0]) + pub[:4], v5=False)  # + a PINGRESP + a cut PUBLISH
    ([(b'a/b', b'{}xx', 0, 48), (None, b'', 0, 208)], 13, 24, None)
    """
    out: list[Packet] = []
    append = out.append
    n = len(data)
    pos = 0
    while True:
        if n - pos < 2:
            return out, pos, pos + 2, None
        rl = data[pos + 1]
        start = pos + 2
        if rl > 127:  # the remaining length goes on: at most four bytes (paho's limit, the protocol's too)
            rl &= 127
            mult = 128
            while True:
                if start >= n:
                    return out, pos, start + 1, None
                if start - pos > 4:
                    return out, pos, pos, "remaining length longer than four bytes"
                b = data[start]
                start += 1
                rl += (b & 127) * mult
                mult <<= 7
                if b < 128:
                    break
        end = start + rl
        if end > n:
            return out, pos, end, None
        header = data[pos]
        if header & 0xF6 == PUBLISH or header & 0xF6 == PUBLISH | 2:  # PUBLISH, QoS 0 or 1 (any dup/retain)
            if rl < 2:
                return out, pos, pos, "PUBLISH shorter than its topic length"
            p = start + 2 + ((data[start] << 8) | data[start + 1])
            if p > end:
                return out, pos, pos, "PUBLISH topic longer than the packet"
            if p == start + 2 and not v5:
                return out, pos, pos, "topic can't be empty in MQTTv3"
            topic = data[start + 2:p]
            mid = 0
            if header & 2:
                if p + 2 > end:
                    return out, pos, pos, "PUBLISH without its packet id"
                mid = (data[p] << 8) | data[p + 1]
                p += 2
            if v5:  # skip the properties: a variable byte integer (at most four bytes), then that many bytes
                if p >= end:
                    return out, pos, pos, "PUBLISH without its properties length"
                b = data[p]
                p += 1
                plen = b & 127
                mult = 128
                while b > 127:
                    if p >= end or mult > 128 ** 3:
                        return out, pos, pos, "PUBLISH properties length malformed"
                    b = data[p]
                    p += 1
                    plen += (b & 127) * mult
                    mult <<= 7
                p += plen
                if p > end:
                    return out, pos, pos, "PUBLISH properties longer than the packet"
            append((topic, data[p:end], mid, header))
        else:
            append((None, data[start:end], 0, header))
        pos = end


_PAHO_INTERNALS = ("_sock_recv", "_msgtime_mutex", "_last_bytes_received", "_packet_handle", "_in_packet",
                   "_packet_queue", "_protocol", "_easy_log")


def _fresh_in_packet() -> dict[str, Any]:
    return {"command": 0, "have_remaining": 0, "remaining_count": [], "remaining_mult": 1,
            "remaining_length": 0, "packet": bytearray(b""), "to_process": 0, "pos": 0}


class BatchClient(mqtt.Client):
    """A paho client that reads whole socket buffers and hands QoS 0/1 PUBLISH packets over in runs.

    ``on_publishes(packets)`` runs in paho's network thread with a list of ``(topic, payload, mid,
    header)``; QoS = ``(header >> 1) & 3``. Construct it like ``mqtt.Client`` (keyword arguments).
    ``on_message`` gets the other messages (QoS 2), or all of them if this paho lacks the internals the
    reader needs (``batched`` is False then).
    """

    def __init__(self, *args: Any, on_publishes: Callable[[list[Packet]], None], **kwargs: Any):
        super().__init__(*args, **kwargs)
        if not self._manual_ack:  # paho would acknowledge QoS 1 on receipt; this reader acknowledges nothing
            raise ValueError("BatchClient needs manual_ack=True")
        self.on_publishes = on_publishes
        # paho internals this reader uses (paho 2.1/2.2); without them paho reads, and on_message gets all
        self.batched = all(hasattr(self, a) for a in _PAHO_INTERNALS)
        self._chunks: list[bytes] = []  # the start of a packet cut by the end of a read
        self._have = 0
        self._need = 0
        # why the last connection attempt failed (paho calls on_connect_fail without saying): a refused TCP
        # connection, a server certificate the CA does not sign, a name that does not resolve
        self.connect_error = ""

    def ack_many(self, mids: Iterable[int], qos: int) -> None:
        """Acknowledge messages (``manual_ack``): QoS 1 as one write of back-to-back PUBACKs, not a queued
        packet and a wake-up of the network thread per message; QoS 2 one by one through paho."""
        if qos != 1:
            for mid in mids:
                self.ack(mid, qos)
            return
        pack = _PUBACK.pack
        packet = b"".join([pack(PUBACK, 2, mid) for mid in mids])
        if packet:
            self._easy_log(MQTT_LOG_DEBUG, "Sending %d PUBACK", len(packet) // 4)
            self._packet_queue(PUBACK, packet, 0, 1)

    def reconnect(self) -> MQTTErrorCode:
        self._chunks, self._have, self._need = [], 0, 0
        try:
            return super().reconnect()
        except OSError as exc:
            self.connect_error = str(exc).strip() or type(exc).__name__
            raise

    def _packet_read(self) -> MQTTErrorCode:
        if not self.batched:
            return super()._packet_read()
        try:
            data = self._sock_recv(READ_SIZE)
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_AGAIN
        except TimeoutError as err:
            self._easy_log(MQTT_LOG_ERR, "timeout on socket: %s", err)
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        except OSError as err:
            self._easy_log(MQTT_LOG_ERR, "failed to receive on socket: %s", err)
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if not data:
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        with self._msgtime_mutex:
            self._last_bytes_received = time_func()
        if self._chunks:
            self._chunks.append(data)
            self._have += len(data)
            if self._have < self._need:
                return MQTTErrorCode.MQTT_ERR_AGAIN
            data = b"".join(self._chunks)
            self._chunks = []
        packets, used, need, error = split_packets(data, self._protocol == mqtt.MQTTv5)
        if error is None and used < len(data):
            self._chunks, self._have, self._need = [data[used:]], len(data) - used, need - used
        rc = self._dispatch(packets)
        if rc:
            return rc
        if error is not None:
            self._easy_log(MQTT_LOG_DEBUG, "Received malformed packet: %s", error)
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        return MQTTErrorCode.MQTT_ERR_AGAIN  # all read: loop_read returns, select waits for more

    def _dispatch(self, packets: list[Packet]) -> MQTTErrorCode:
        """Runs of PUBLISH packets to ``on_publishes``, the others one by one to paho, in order."""
        sock = self._sock
        i = 0
        n = len(packets)
        while i < n:
            j = i
            while j < n and packets[j][0] is not None:
                j += 1
            if j > i:
                run = packets[i:j] if (i or j < n) else packets
                self._easy_log(MQTT_LOG_DEBUG, "Received %d PUBLISH (QoS 0/1) in one read", len(run))
                try:
                    self.on_publishes(run)
                except Exception as err:  # as paho treats a failing on_message
                    self._easy_log(MQTT_LOG_ERR, "Caught exception in on_publishes: %s", err)
                    if not self.suppress_exceptions:
                        raise
            if j == n:
                break
            _, body, _, header = packets[j]
            self._in_packet = {"command": header, "have_remaining": 1, "remaining_count": [],
                               "remaining_mult": 1, "remaining_length": len(body), "packet": bytearray(body),
                               "to_process": 0, "pos": 0}
            try:
                rc = self._packet_handle()
            except MalformedPacket as exc:
                self._easy_log(MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
                rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
            self._in_packet = _fresh_in_packet()  # type: ignore[assignment]
            if rc:
                return rc
            if self._sock is not sock:  # the packet ended this connection: the rest of the read is void
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            i = j + 1
        return MQTTErrorCode.MQTT_ERR_SUCCESS

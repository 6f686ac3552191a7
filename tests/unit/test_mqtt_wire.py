"""The MQTT relay's packet reader (aiotstream.io.mqtt_wire) against paho's own: packets encoded by paho,
the byte stream cut at random places (each piece one ``recv``), read by both; what each hands on must be
the same, packet for packet."""
from __future__ import annotations

import itertools
import struct
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.client import MQTTErrorCode
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from aiotstream.io.mqtt_wire import BatchClient, split_packets

V5, V311 = mqtt.MQTTv5, mqtt.MQTTv311
OK = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN)


class Feed:
    """A socket whose ``recv`` returns at most what is left of the current piece: one piece is what one
    read could get (BlockingIOError when all was read, as for a non-blocking socket)."""

    def __init__(self, pieces: list[bytes]):
        self.pieces = [p for p in pieces if p]
        self.cur = b""

    def recv(self, n: int) -> bytes:
        if not self.cur:
            if not self.pieces:
                raise BlockingIOError
            self.cur = self.pieces.pop(0)
        out, self.cur = self.cur[:n], self.cur[n:]
        return out

    def empty(self) -> bool:
        return not self.cur and not self.pieces

    def close(self) -> None:
        pass


def encoder(protocol: int) -> tuple[mqtt.Client, list[bytes]]:
    """A paho client whose outgoing packets are collected instead of sent."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
    out: list[bytes] = []
    c._sock = Feed([])  # type: ignore[assignment]  # _send_publish refuses to encode without a socket
    c._packet_queue = lambda command, packet, mid, qos, info=None: out.append(bytes(packet)) or 0  # type: ignore[method-assign]
    return c, out


def other_packet(enc: mqtt.Client, header: int, body: bytes) -> bytes:
    packet = bytearray([header])
    enc._pack_remaining_length(packet, len(body))
    return bytes(packet) + body


def record_others(client: mqtt.Client, got: list[tuple]) -> None:
    """Packets paho would handle itself (not QoS 0/1 PUBLISH) are recorded, not handled (no broker here)."""
    real = client._packet_handle

    def handle() -> MQTTErrorCode:
        p = client._in_packet
        if p["command"] & 0xF0 == 0x30 and (p["command"] >> 1) & 3 < 2:
            return real()  # paho's own PUBLISH handling, for the reference client
        got.append(("other", p["command"], bytes(p["packet"]), p["remaining_length"]))
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    client._packet_handle = handle  # type: ignore[method-assign]


def read_with_paho(protocol: int, pieces: list[bytes]) -> tuple[list[tuple], MQTTErrorCode]:
    got: list[tuple] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol, manual_ack=True)
    c.on_message = lambda _c, _u, m: got.append(("pub", m._topic, m.payload, m.mid, m.qos, m.dup, m.retain))
    record_others(c, got)
    return got, drive(c, pieces)


def read_batched(protocol: int, pieces: list[bytes]) -> tuple[list[tuple], MQTTErrorCode]:
    got: list[tuple] = []

    def on_publishes(packets: list[Any]) -> None:
        for topic, payload, mid, h in packets:
            assert type(topic) is bytes and type(payload) is bytes
            got.append(("pub", topic, payload, mid, (h >> 1) & 3, bool(h & 8), bool(h & 1)))

    c = BatchClient(CallbackAPIVersion.VERSION2, protocol=protocol, manual_ack=True, on_publishes=on_publishes)
    assert c.batched, "this paho lacks what the batched reader needs: the relay falls back to paho's reader"
    record_others(c, got)
    return got, drive(c, pieces)


def drive(c: mqtt.Client, pieces: list[bytes]) -> MQTTErrorCode:
    """Call the reader while the socket has bytes (as paho's loop does when select says readable)."""
    feed = Feed(pieces)
    c._sock = feed  # type: ignore[assignment]
    for _ in range(10 * sum(map(len, pieces)) + 10):
        if feed.empty():
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        rc = c._packet_read()
        if rc not in OK:
            return rc
    raise AssertionError("the reader does not make progress")


texts = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)


@st.composite
def publish_properties(draw: st.DrawFn) -> Properties | None:
    if draw(st.booleans()):
        return None
    p = Properties(PacketTypes.PUBLISH)
    if draw(st.booleans()):
        p.PayloadFormatIndicator = draw(st.integers(0, 1))
    if draw(st.booleans()):
        p.MessageExpiryInterval = draw(st.integers(0, 2**32 - 1))
    if draw(st.booleans()):
        p.TopicAlias = draw(st.integers(1, 65535))
    if draw(st.booleans()):
        p.ContentType = draw(texts)
    if draw(st.booleans()):
        p.ResponseTopic = draw(texts.filter(bool))
    if draw(st.booleans()):
        p.CorrelationData = draw(st.binary(max_size=20))
    if draw(st.booleans()):
        p.UserProperty = draw(st.lists(st.tuples(texts, texts), min_size=1, max_size=3))
    if draw(st.booleans()):
        p.SubscriptionIdentifier = draw(st.integers(1, 268_435_455))
    return p


payloads = st.one_of(st.binary(max_size=200),
                     st.integers(100, 70_000).map(lambda n: bytes(range(256)) * (n // 256) + b"\x7f" * (n % 256)))


@st.composite
def streams(draw: st.DrawFn) -> tuple[int, list[bytes]]:
    """A protocol and a byte stream of PUBLISH packets (paho-encoded) among other packets."""
    protocol = draw(st.sampled_from([V5, V311]))
    enc, out = encoder(protocol)
    packets: list[bytes] = []
    for _ in range(draw(st.integers(1, 12))):
        if draw(st.integers(0, 4)):
            qos = draw(st.integers(0, 2))
            topic = draw(st.binary(min_size=0 if protocol == V5 else 1, max_size=40)
                         | texts.filter(bool).map(str.encode))
            out.clear()
            enc._send_publish(draw(st.integers(1, 65535)) if qos else 0, topic, draw(payloads), qos,
                              draw(st.booleans()), draw(st.booleans()),
                              properties=draw(publish_properties()) if protocol == V5 else None)
            packets.append(out[0])
        else:  # PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, PINGRESP, DISCONNECT-like bodies
            header = draw(st.sampled_from([0x40, 0x50, 0x62, 0x70, 0x90, 0xB0, 0xD0, 0xE0, 0x20]))
            packets.append(other_packet(enc, header, draw(st.binary(max_size=300))))
    return protocol, packets


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.lists(st.integers(0, 10**6), max_size=30))
def test_the_batched_reader_hands_on_what_paho_would_however_the_bytes_arrive(stream, points) -> None:
    protocol, packets = stream
    pieces = cut(b"".join(packets), points)
    expected, rc_paho = read_with_paho(protocol, pieces)
    got, rc = read_batched(protocol, pieces)
    assert rc_paho == rc == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert len(expected) == len(packets)
    assert got == expected


@settings(max_examples=200, deadline=None)
@given(streams())
def test_splitting_reports_how_much_a_cut_packet_still_needs(stream) -> None:
    protocol, packets = stream
    data = b"".join(packets)
    for end in sorted({len(data) - 1, len(packets[0]) - 1, len(packets[0]), 1}):
        if not 0 < end <= len(data):
            continue
        got, used, need, error = split_packets(data[:end], protocol == V5)
        assert error is None
        assert data[:used] == b"".join(packets[:len(got)])
        assert need > used or (used == end and need >= used)
        if used < end:  # need never overshoots: the packet (or at least its header) ends there
            whole = len(b"".join(packets[:len(got) + 1]))
            assert end < need <= whole


@pytest.mark.parametrize("protocol", [V5, V311])
def test_a_malformed_packet_ends_the_connection_after_the_packets_before_it(protocol: int) -> None:
    enc, out = encoder(protocol)
    enc._send_publish(0, b"a/b", b"first", 0)
    good = out[0]
    for bad in (bytes([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]),  # a five-byte remaining length
                bytes([0x30, 4, 0, 9, ord("a"), ord("b")]),  # the topic runs past the packet
                bytes([0x32, 4, 0, 1, ord("a"), 0]),  # QoS 1 without its packet id
                # 3.1.1: an empty topic; 5: a properties length that goes on past the packet
                bytes([0x30, 2, 0, 0]) if protocol == V311 else bytes([0x30, 3, 0, 0, 0x85])):
        got, rc = read_batched(protocol, [good + bad + good])
        ref, rc_ref = read_with_paho(protocol, [good + bad + good])
        assert rc == MQTTErrorCode.MQTT_ERR_PROTOCOL, bad
        assert rc_ref == MQTTErrorCode.MQTT_ERR_PROTOCOL, bad
        assert got == ref[:1] == [("pub", b"a/b", b"first", 0, 0, False, False)]


def test_the_batched_reader_needs_manual_acks_and_acknowledges_a_batch_in_one_write() -> None:
    with pytest.raises(ValueError, match="manual_ack"):
        BatchClient(CallbackAPIVersion.VERSION2, on_publishes=lambda _p: None)
    c = BatchClient(CallbackAPIVersion.VERSION2, protocol=V5, manual_ack=True, on_publishes=lambda _p: None)
    sent: list[bytes] = []
    c._packet_queue = lambda command, packet, mid, qos, info=None: sent.append(bytes(packet)) or 0  # type: ignore[method-assign]
    c.ack_many([1, 2, 65535], 1)
    assert sent == [b"".join(struct.pack("!BBH", 0x40, 2, m) for m in (1, 2, 65535))]
    sent.clear()
    c.ack_many([7], 2)  # QoS 2: paho's own PUBCOMP
    assert sent == [struct.pack("!BBH", 0x70, 2, 7)]


def test_without_the_paho_internals_it_needs_the_client_reads_as_paho_does() -> None:
    enc, out = encoder(V5)
    for i, qos in enumerate((0, 1, 2, 1)):
        enc._send_publish(i + 1 if qos else 0, b"t/%d" % i, b"p%d" % i, qos)
    pieces = cut(b"".join(out), [3, 17, 30])
    expected, _ = read_with_paho(V5, pieces)
    got: list[tuple] = []
    c = BatchClient(CallbackAPIVersion.VERSION2, protocol=V5, manual_ack=True,
                    on_publishes=lambda _p: pytest.fail("the batched reader ran"))
    c.batched = False
    c.on_message = lambda _c, _u, m: got.append(("pub", m._topic, m.payload, m.mid, m.qos, m.dup, m.retain))
    record_others(c, got)
    assert drive(c, pieces) == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert got == expected and len(got) == 4

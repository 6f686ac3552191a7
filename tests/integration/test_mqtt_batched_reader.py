"""The MQTT source's own packet reader (aiotstream.io.mqtt_wire) on a real mosquitto: every message of a
mix of topics (UTF-8, long), payload sizes (empty to 1 MB, so packets span socket reads) and MQTT 5
properties arrives once, in order per topic, with MQTT 5 and 3.1.1, QoS 0, 1 and 2; QoS 1 and 2 ones are all
acknowledged (the session has nothing left to send); and over TLS."""
from __future__ import annotations

import ipaddress
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from conftest import MOSQUITTO, MosquittoBroker
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from test_mqtt import redelivered

from aiotstream.config import SiteConfig
from aiotstream.io.broker import free_port
from aiotstream.io.mqtt import MqttSource

pytestmark = pytest.mark.integration


def messages(prefix: str, n: int) -> list[tuple[str, bytes]]:
    names = ["a", "ünïcode-wärme", "l" * 200, "b"]
    sizes = [0, 1, 60, 127, 128, 16_383, 16_384, 70_000]
    out = []
    for i in range(n):
        size = 1_000_000 if i == n // 2 else sizes[i % len(sizes)] if i % 7 == 0 else 40 + i % 50
        payload = (b"%d:" % i + b"x" * size)[:size]  # the index first, as far as the size allows
        out.append((f"{prefix}/w/{names[i % len(names)]}", payload))
    return out


def publish(host: str, port: int, msgs: list[tuple[str, bytes]], qos: int) -> None:
    """MQTT 5 with properties on every message: the broker passes them on to MQTT 5 subscribers."""
    done = threading.Event()
    acked = [0]
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"wire-pub-{uuid.uuid4().hex[:8]}",
                    protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)

    def on_publish(*_a: object) -> None:
        acked[0] += 1
        if acked[0] == len(msgs):
            done.set()

    c.on_publish = on_publish
    c.connect(host, port)
    c.loop_start()
    for i, (t, p) in enumerate(msgs):
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("i", str(i)), ("k", "v" * (i % 30))]
        if i % 3:
            props.MessageExpiryInterval = 3600
            props.ContentType = "application/json"
        c.publish(t, p, qos=qos, properties=props)
    assert done.wait(120), f"the broker acknowledged {acked[0]} of {len(msgs)}"
    c.disconnect()
    c.loop_stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
@pytest.mark.parametrize("qos", [0, 1, 2])  # 2: paho's own reader path, among the batched one
def test_every_message_arrives_once_in_order_through_the_batched_reader(own_mosquitto, protocol: str,
                                                                        qos: int) -> None:
    # the shipped broker config: a default mosquitto queues 1000 messages per client and drops the rest
    # of a burst (QoS 2 here, whose four-way handshake lets the publisher run ahead)
    host, port = "127.0.0.1", own_mosquitto.port
    prefix = f"w{uuid.uuid4().hex[:10]}"
    client_id = f"aiotstream-wire-{prefix}"
    cfg = SiteConfig.from_dict({
        "site": {"id": "s"}, "assets": [{"id": "a"}],
        "inputs": {"kind": "mqtt", "mqtt": {
            "host": host, "port": port, "client_id": client_id, "protocol": protocol,
            "qos": qos, "ack": "batch", "session_expiry_s": 600,
            "subscriptions": [{"filter": f"{prefix}/w/#"}]}}}).inputs.mqtt
    assert cfg is not None
    msgs = messages(prefix, 3000)
    src = MqttSource(cfg, "s", batch=500)
    part = src.build_part("in", src.list_parts()[0], None)
    try:
        assert part.subscribed, "the source did not subscribe"
        threading.Thread(target=publish, args=(host, port, msgs, qos), daemon=True).start()
        got = []
        deadline = time.monotonic() + 120
        while len(got) < len(msgs) and time.monotonic() < deadline:
            got.extend(part.next_batch())
        time.sleep(0.5)  # anything more (a duplicate) would have come by now
        got.extend(part.next_batch())
        part.next_batch()  # ack = "batch": the last batch is acknowledged when the next one is taken
        time.sleep(0.2)
    finally:
        part.close()
    by_topic: dict[str, list[bytes]] = {}
    for t, p in msgs:
        by_topic.setdefault("mqtt:" + t, []).append(p)
    got_by_topic: dict[str, list[bytes]] = {}
    for m in got:
        got_by_topic.setdefault(m.topic, []).append(m.value)
    assert len(got) == len(msgs)
    assert got_by_topic == by_topic
    # everything was acknowledged: the session has nothing to send again (and this ends it)
    assert redelivered(host, port, client_id, 1.0) == 0


def tls_files(d: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 (generated here, nothing downloaded)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def cert(name: str, key: Any, issuer: x509.Name, signer: Any, ca: bool) -> x509.Certificate:
        b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
             .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                critical=False)
        return b.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = cert("test CA", ca_key, ca_name, ca_key, True)
    server = cert("127.0.0.1", key, ca_name, ca_key, False)
    paths = d / "ca.pem", d / "server.pem", d / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@pytest.mark.skipif(MOSQUITTO is None, reason="the mosquitto binary is missing (apt-get install -y mosquitto)")
def test_the_batched_reader_over_tls(tmp_path: Path) -> None:
    """TLS hands over at most one record (16 KiB) per recv and keeps the rest in the SSL object."""
    ca, certfile, keyfile = tls_files(tmp_path)
    tls_port = free_port()
    broker = MosquittoBroker(tmp_path / "mosquitto", settings={
        "listener": f"{tls_port} 127.0.0.1", "certfile": str(certfile), "keyfile": str(keyfile)}).start()
    try:
        prefix = f"t{uuid.uuid4().hex[:10]}"
        cfg = SiteConfig.from_dict({
            "site": {"id": "s"}, "assets": [{"id": "a"}],
            "inputs": {"kind": "mqtt", "mqtt": {
                "host": "127.0.0.1", "port": tls_port, "client_id": f"aiotstream-tls-{prefix}", "qos": 1,
                "ack": "batch", "tls": {"ca_file": str(ca)}, "subscriptions": [{"filter": f"{prefix}/w/#"}]}}}
        ).inputs.mqtt
        assert cfg is not None
        msgs = messages(prefix, 1500)
        src = MqttSource(cfg, "s", batch=500)
        part = src.build_part("in", src.list_parts()[0], None)
        try:
            assert part.subscribed, "the source did not subscribe over TLS"
            publish("127.0.0.1", broker.port, msgs, 1)  # the plain listener of the same broker
            got = []
            deadline = time.monotonic() + 60
            while len(got) < len(msgs) and time.monotonic() < deadline:
                got.extend(part.next_batch())
        finally:
            part.close()
        assert [(m.topic, m.value) for m in got if m.topic.endswith("/a")] == \
            [("mqtt:" + t, p) for t, p in msgs if t.endswith("/a")]
        assert sorted((m.topic, m.value) for m in got) == sorted(("mqtt:" + t, p) for t, p in msgs)
    finally:
        broker.stop()

"""MQTT over TLS with client certificates, a password from a file and an ACL, end to end: a mosquitto the test
starts on its own loopback port (``require_certificate true``, ``password_file``, ``acl_file``, no anonymous
clients; CA, server and client certificates generated here with ``cryptography``) serves the flow's MQTT
source, which reads the devices' messages over it. A wrong password, a missing client certificate and an
ACL-denied publish each end in a logged refusal naming the broker, not a silent hang; a missing secret file
is a one-line error naming the field.

Mosquitto's acl_file does not refuse a subscription (2.0.11 grants it and delivers nothing its ACL denies),
so the ACL refusal is shown where the broker does say no: the PUBACK of the flow's MQTT sink (MQTT 5)."""
from __future__ import annotations

import ipaddress
import logging
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from conftest import MOSQUITTO, MosquittoBroker
from paho.mqtt.enums import CallbackAPIVersion

from aiotstream.config import MqttInput, MqttOutput, SiteConfig
from aiotstream.errors import AiotError
from aiotstream.io.broker import free_port
from aiotstream.io.mqtt import MqttSink, MqttSource
from aiotstream.records import Output

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(MOSQUITTO is None,
                                 reason="the mosquitto binary is missing (apt-get install -y mosquitto)")]

FLOW_PW, DEVICE_PW, KEY_PASSPHRASE = "flow-Pa55-word", "device-Pa55", b"client key passphrase"


def pki(d: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1, and a client certificate whose key is encrypted."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "plant test CA")])

    def cert(name: str, key: Any, ca: bool, usage: Any = None) -> x509.Certificate:
        b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
             .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if usage is not None:
            b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if name == "127.0.0.1":
            b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(name))]),
                                critical=False)
        return b.sign(ca_key, hashes.SHA256())

    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    pem = serialization.Encoding.PEM
    files = {"ca": d / "ca.pem", "server_cert": d / "server.pem", "server_key": d / "server.key",
             "client_cert": d / "client.pem", "client_key": d / "client.key", "key_pass": d / "client.pass"}
    files["ca"].write_bytes(cert("plant test CA", ca_key, True).public_bytes(pem))
    files["server_cert"].write_bytes(cert("127.0.0.1", server_key, False, ExtendedKeyUsageOID.SERVER_AUTH)
                                     .public_bytes(pem))
    files["server_key"].write_bytes(server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))
    files["client_cert"].write_bytes(cert("aiotstream-flow", client_key, False, ExtendedKeyUsageOID.CLIENT_AUTH)
                                     .public_bytes(pem))
    files["client_key"].write_bytes(client_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(KEY_PASSPHRASE)))
    files["key_pass"].write_bytes(KEY_PASSPHRASE + b"\n")
    return files


class SecureBroker:
    def __init__(self, d: Path):
        self.files = pki(d)
        passwd = d / "passwd"
        subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "flow", FLOW_PW], check=True,
                       capture_output=True)
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), "device", DEVICE_PW], check=True,
                       capture_output=True)
        acl = d / "acl"
        acl.write_text("user flow\ntopic read plant/#\ntopic write devices/#\n\n"
                       "user device\ntopic write plant/#\ntopic read devices/#\n")
        self.tls_port = free_port()
        f = self.files
        # the plain listener (the fixture's health check, and devices) needs a password too: these are global
        self.broker = MosquittoBroker(d / "mosquitto", settings={
            "allow_anonymous": "false", "password_file": str(passwd), "acl_file": str(acl),
            "listener": f"{self.tls_port} 127.0.0.1", "cafile": str(f["ca"]), "certfile": str(f["server_cert"]),
            "keyfile": str(f["server_key"]), "require_certificate": "true", "tls_version": "tlsv1.2"})
        self.pw_file = d / "flow.password"
        self.pw_file.write_text(FLOW_PW + "\n")

    def input(self, prefix: str, filt: str = "plant/#", **over: Any) -> MqttInput:
        f = self.files
        mqtt_cfg: dict[str, Any] = {
            "host": "127.0.0.1", "port": self.tls_port, "client_id": f"aiotstream-{prefix}", "qos": 1,
            "ack": "batch", "username": "flow", "password_file": str(self.pw_file), "broker_drops_topic": "",
            "reconnect_min_s": 1, "reconnect_max_s": 2,
            "tls": {"ca_file": str(f["ca"]), "cert_file": str(f["client_cert"]), "key_file": str(f["client_key"]),
                    "key_password_file": str(f["key_pass"])},
            "subscriptions": [{"filter": filt}]}
        for k, v in over.items():
            if k == "tls" and v is not None:
                mqtt_cfg["tls"] = {**mqtt_cfg["tls"], **v}
            else:
                mqtt_cfg[k] = v
        mqtt_cfg = {k: v for k, v in mqtt_cfg.items() if v is not None}
        cfg = SiteConfig.from_dict({"site": {"id": "s"}, "assets": [{"id": "press-1"}],
                                    "inputs": {"kind": "mqtt", "mqtt": mqtt_cfg}}).inputs.mqtt
        assert cfg is not None
        return cfg

    def publish(self, msgs: list[tuple[str, bytes]]) -> None:
        """As the device user, over the plain listener of the same broker (QoS 1, every PUBACK awaited)."""
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dev-{uuid.uuid4().hex[:8]}",
                        protocol=mqtt.MQTTv5)
        c.username_pw_set("device", DEVICE_PW)
        c.connect("127.0.0.1", self.broker.port)
        c.loop_start()
        try:
            infos = [c.publish(t, p, qos=1) for t, p in msgs]
            for info in infos:
                info.wait_for_publish(30)
                assert info.is_published()
        finally:
            c.disconnect()
            c.loop_stop()


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[SecureBroker]:
    b = SecureBroker(tmp_path)
    b.broker.start()
    try:
        yield b
    finally:
        b.broker.stop()


def read(cfg: MqttInput, secure: SecureBroker, msgs: list[tuple[str, bytes]], want: int) -> tuple[Any, list]:
    src = MqttSource(cfg, "s", batch=100)
    part = src.build_part("in", src.list_parts()[0], None)
    got: list[Any] = []
    try:
        if part.subscribed:
            secure.publish(msgs)
            deadline = time.monotonic() + 30
            while len(got) < want and time.monotonic() < deadline:
                got.extend(part.next_batch())
                time.sleep(0.01)
        else:  # let the refusals be logged (at least one retry)
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                got.extend(part.next_batch())
                time.sleep(0.05)
    finally:
        part.close()
    return part, got


def test_the_flow_reads_over_tls_with_client_certificate_and_password_file(
        secure: SecureBroker, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    prefix = uuid.uuid4().hex[:8]
    msgs = [(f"plant/{prefix}/press-1/temp", b'{"ts": %d, "value": %d}' % (1_700_000_000_000 + i, i))
            for i in range(50)]
    part, got = read(secure.input(prefix), secure, msgs, len(msgs))
    assert part.subscribed
    assert [(m.topic, m.value) for m in got] == [("mqtt:" + t, p) for t, p in msgs]
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (FLOW_PW, KEY_PASSPHRASE.decode()):
        assert secret not in text


@pytest.mark.parametrize("case", ["wrong password", "no client certificate", "server from another CA"])
def test_refused_connections_are_logged_not_a_hang(case: str, secure: SecureBroker, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    prefix = uuid.uuid4().hex[:8]
    over: dict[str, Any] = {}
    if case == "wrong password":
        bad = tmp_path / "bad.password"
        bad.write_text("not-the-password\n")
        over["password_file"] = str(bad)
    elif case == "no client certificate":
        over["tls"] = {"cert_file": "", "key_file": "", "key_password_file": ""}
    else:  # the flow trusts another CA than the one that signed the broker's certificate
        (tmp_path / "other").mkdir()
        over["tls"] = {"ca_file": str(pki(tmp_path / "other")["ca"])}
    part, got = read(secure.input(prefix, **over), secure, [(f"plant/{prefix}/x", b"1")], 1)
    assert got == [] and not part.subscribed
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    what, why = {"wrong password": ("refused the connection", "Not authorized"),
                 "no client certificate": ("refused the connection", "certificate required"),
                 "server from another CA": ("not reachable", "CERTIFICATE_VERIFY_FAILED")}[case]
    assert any(f"127.0.0.1:{secure.tls_port} {what}" in w and why in w for w in warnings), warnings


def test_the_sink_over_tls_publishes_and_an_acl_refusal_is_logged(secure: SecureBroker,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Commands reach a device over TLS with the flow's certificate; a topic the ACL denies is an error line
    naming the topic and the reason, and a counted loss (not a silent success)."""
    from aiotstream.runstats import STATS

    received: list[tuple[str, bytes]] = []
    dev = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dev-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
    dev.username_pw_set("device", DEVICE_PW)
    dev.on_message = lambda _c, _u, m: received.append((m.topic, m.payload))
    dev.connect("127.0.0.1", secure.broker.port)
    dev.subscribe("devices/#", qos=1)
    dev.loop_start()
    conn = secure.input("sink").model_dump(include=set(MqttOutput.model_fields) - {"client_id"})
    cmd = Output("command", "press-1", {"asset": "press-1", "id": "c1", "value": 1.5})
    try:
        time.sleep(0.5)  # the device's subscription is in place
        ok = MqttSink(MqttOutput(**conn), "s").build("out", 0, 1)
        ok.write_batch([cmd])
        ok.close()
        deadline = time.monotonic() + 20
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [t for t, _ in received] == ["devices/press-1/command"]
        caplog.set_level(logging.INFO)
        before = STATS.get("losses", "mqtt_publish_refused")
        denied = MqttSink(MqttOutput(**{**conn, "topic": "plant/{asset}/{kind}"}), "s").build("out", 0, 1)
        denied.write_batch([cmd])
        denied.close()
    finally:
        dev.disconnect()
        dev.loop_stop()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("refused a message to 'plant/press-1/command'" in e and "Not authorized" in e for e in errors), \
        errors
    assert STATS.get("losses", "mqtt_publish_refused") == before + 1


def test_a_missing_secret_file_is_one_line_naming_the_field(secure: SecureBroker, tmp_path: Path) -> None:
    cfg = secure.input("missing", password_file=str(tmp_path / "nope"))
    with pytest.raises(AiotError) as err:
        src = MqttSource(cfg, "s", batch=10)
        part = src.build_part("in", src.list_parts()[0], None)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                part.next_batch()
                time.sleep(0.05)
        finally:
            part.close()
    msg = str(err.value)
    assert "password_file" in msg and "nope" in msg and "\n" not in msg


def test_the_flow_runs_over_tls_with_client_certificate_and_password_file(secure: SecureBroker) -> None:
    """The predictive-maintenance flow itself (Bytewax, the site's MQTT source) over the TLS listener: every
    reading arrives and decodes (no dead letter)."""
    from mqtt_devices import Devices, run_flow
    from mqtt_devices import site as mqtt_site

    prefix = uuid.uuid4().hex[:8]
    src = secure.input(prefix).model_dump(mode="json")
    settings = {k: src[k] for k in ("username", "password_file", "tls", "broker_drops_topic")}
    cfg = mqtt_site("127.0.0.1", secure.tls_port, f"plant/{prefix}", assets=2, **settings,
                    subscriptions=[{"filter": f"plant/{prefix}/+/+", "format": "json", "asset": "{2}",
                                    "metric": "{3}", "seq": "seq"}])
    dev = Devices(f"plant/{prefix}", assets=2)
    msgs = dev.readings(2400)

    def device(_rec: Any, _stop: Any) -> None:
        secure.publish(msgs)

    rec, out = run_flow(cfg, device)
    assert rec.unique() == set(msgs)
    assert out and [o for o in out if o.kind == "deadletter"] == []

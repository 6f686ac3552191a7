"""``[inputs.kafka]`` reaches librdkafka: the settings the product hands to confluent-kafka (every client of the
site: the flow's source and sink, topic creation, the console), secrets read from their files, checked
against a real librdkafka client built with them (``Producer(conf)`` loads the CA, the client certificate and
the encrypted key at construction, and refuses what does not fit).

Tansu, the Kafka-protocol broker the other tests start, does not enforce SASL or TLS, so no broker here
authenticates these settings end to end (docs/security.md says so)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from aiotstream.config import default_site
from aiotstream.errors import AiotError, ConfigError
from aiotstream.io.kafka import KafkaOutputSink, kafka_source, make_producer
from aiotstream.io.kafka_client import client_config

SASL_PW, KEY_PASS = "kafka-sasl-Secret-1", "kafka key passphrase"


def pki(d: Path) -> dict[str, Path]:
    """A CA, and a client certificate signed by it whose key is encrypted with KEY_PASS."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kafka test CA")])

    def cert(name: x509.Name, k: Any, ca: bool) -> x509.Certificate:
        return (x509.CertificateBuilder().subject_name(name).issuer_name(ca_name).public_key(k.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
                .not_valid_after(now + timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .sign(ca_key, hashes.SHA256()))

    pem = serialization.Encoding.PEM
    files = {n: d / n for n in ("ca.pem", "client.pem", "client.key", "key.pass", "sasl.pass")}
    files["ca.pem"].write_bytes(cert(ca_name, ca_key, True).public_bytes(pem))
    files["client.pem"].write_bytes(cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flow")]), key,
                                         False).public_bytes(pem))
    files["client.key"].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                      serialization.BestAvailableEncryption(KEY_PASS.encode())))
    files["key.pass"].write_text(KEY_PASS + "\n")
    files["sasl.pass"].write_text(SASL_PW + "\n")
    return files


def site(files: dict[str, Path], **over: Any) -> Any:
    kafka = {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "username": "flow",
             "password_file": str(files["sasl.pass"]), "ca_file": str(files["ca.pem"]),
             "cert_file": str(files["client.pem"]), "key_file": str(files["client.key"]),
             "key_password_file": str(files["key.pass"]), **over}
    return default_site(2, inputs={"brokers": ["kafka.plant.local:9093"],
                                   "kafka": {k: v for k, v in kafka.items() if v is not None}})


def test_what_reaches_librdkafka_and_a_real_client_takes_it(tmp_path: Path) -> None:
    files = pki(tmp_path)
    cfg = site(files)
    conf = client_config("kafka.plant.local:9093", cfg.inputs.kafka)
    assert {k: v for k, v in conf.items() if k not in ("bootstrap.servers", "logger")} == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "flow",
        "sasl.password": SASL_PW, "ssl.ca.location": str(files["ca.pem"]),
        "ssl.certificate.location": str(files["client.pem"]), "ssl.key.location": str(files["client.key"]),
        "ssl.key.password": KEY_PASS}
    Producer(conf)  # librdkafka loads the CA, the certificate and the key (opening it with the passphrase)
    make_producer("kafka.plant.local:9093", cfg.inputs.kafka)
    KafkaOutputSink(cfg).build("out", 0, 1)  # the flow's sink
    # the flow's source hands the same settings to Bytewax's KafkaSource
    add = kafka_source(cfg)._add_config  # type: ignore[attr-defined]
    assert add["sasl.password"] == SASL_PW and add["ssl.key.location"] == str(files["client.key"])
    # the config (and what its hash is computed over) holds the files' paths, never the secrets
    dumped = cfg.model_dump_json()
    assert SASL_PW not in dumped and KEY_PASS not in dumped and str(files["sasl.pass"]) in dumped


@pytest.mark.parametrize(("mechanism", "protocol"), [("PLAIN", "SASL_PLAINTEXT"), ("SCRAM-SHA-256", "SASL_SSL")])
def test_sasl_mechanisms(tmp_path: Path, mechanism: str, protocol: str) -> None:
    files = pki(tmp_path)
    tls = {} if protocol == "SASL_SSL" else {"ca_file": None, "cert_file": None, "key_file": None,
                                             "key_password_file": None}
    cfg = site(files, sasl_mechanism=mechanism, security_protocol=protocol, **tls)
    conf = client_config("h:9093", cfg.inputs.kafka)
    assert (conf["security.protocol"], conf["sasl.mechanism"]) == (protocol, mechanism)
    Producer(conf)


def test_librdkafka_refusing_the_key_is_one_line(tmp_path: Path) -> None:
    files = pki(tmp_path)
    files["key.pass"].write_text("not the passphrase\n")
    with pytest.raises(AiotError) as err:
        make_producer("h:9093", site(files).inputs.kafka)
    msg = str(err.value)
    assert "librdkafka refuses the settings" in msg and "ssl.key" in msg and "\n" not in msg
    assert "not the passphrase" not in msg


@pytest.mark.parametrize("field", ["password_file", "key_password_file", "ca_file"])
def test_a_missing_or_empty_file_is_one_line_naming_the_field(tmp_path: Path, field: str) -> None:
    files = pki(tmp_path)
    for content in (None, "") if field != "ca_file" else (None,):  # an empty CA file: librdkafka's to refuse
        path = tmp_path / f"{field}-{content!r}"
        if content is not None:
            path.write_text(content)
        with pytest.raises(AiotError) as err:
            client_config("h:9093", site(files, **{field: str(path)}).inputs.kafka)
        msg = str(err.value)
        assert msg.startswith(f"inputs.kafka.{field}: ") and str(path) in msg and "\n" not in msg


@pytest.mark.parametrize(("over", "says"), [
    ({"sasl_mechanism": ""}, "needs sasl_mechanism, username and password_file"),
    ({"security_protocol": "SSL"}, "has no SASL"),
    ({"security_protocol": "SASL_PLAINTEXT"}, "has no TLS"),
    ({"sasl_mechanism": "GSSAPI"}, "sasl_mechanism"),
    ({"cert_file": None}, "cert_file and key_file go together"),
])
def test_inconsistent_settings_fail_at_load(tmp_path: Path, over: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        site(pki(tmp_path), **over)


@pytest.mark.parametrize(("protocol", "warns"), [("SASL_SSL", None), ("SSL", None),
                                                 ("SASL_PLAINTEXT", "SASL credentials"), (None, "messages cross")])
def test_the_plaintext_warning_follows_the_site_config(tmp_path: Path, protocol: str | None, warns: str | None,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    import logging

    files = pki(tmp_path)
    if protocol is None:
        cfg = default_site(2, inputs={"brokers": ["kafka.plant.local:9093"]})
    elif protocol == "SSL":
        cfg = site(files, security_protocol="SSL", sasl_mechanism="", username="", password_file="")
    elif protocol == "SASL_PLAINTEXT":
        cfg = site(files, security_protocol="SASL_PLAINTEXT", ca_file=None, cert_file=None, key_file=None,
                   key_password_file=None)
    else:
        cfg = site(files)
    caplog.set_level(logging.INFO)
    kafka_source(cfg)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if warns is None:
        assert lines == []
    else:
        assert len(lines) == 1 and warns in lines[0] and "[inputs.kafka]" in lines[0]
        assert SASL_PW not in lines[0]

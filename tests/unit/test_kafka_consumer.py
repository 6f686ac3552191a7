"""The Kafka consumer side's start-up warning (plaintext to another machine) and its loopback test."""
from __future__ import annotations

import ipaddress
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.config import default_site
from aiotstream.io.kafka import kafka_source
from aiotstream.io.kafka_consumer import is_loopback


@pytest.mark.parametrize(("brokers", "env", "warns"), [
    ("10.0.0.5:9092,10.0.0.6:9092", {}, True),
    ("kafka.plant.local:9092", {"AIOTSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, True),
    ("10.0.0.5:9092", {"AIOTSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL"}, False),
    ("127.0.0.1:9092,localhost:9093", {}, False),
])
def test_plaintext_to_another_machine_is_one_warning_naming_the_fix(brokers: str, env: dict[str, str], warns: bool,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    caplog.set_level(logging.INFO)
    for blocks in (False, True):
        kafka_source(default_site(2), brokers, blocks=blocks)  # builds the source; nothing connects yet
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if not warns:
        assert lines == []
        return
    assert len(lines) == 2  # one per source built
    assert all('security_protocol = "SSL"' in m and "non-loopback" in m for m in lines)
    assert ("SASL credentials" in lines[0]) == ("SASL" in env.get("AIOTSTREAM_KAFKA_SECURITY_PROTOCOL", ""))


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)), st.integers(1, 65535))
def test_is_loopback_agrees_with_ipaddress(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> None:
    addr = f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
    assert is_loopback(addr) == ip.is_loopback

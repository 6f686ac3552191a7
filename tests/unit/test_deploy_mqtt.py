"""deploy/compose.yaml, deploy/mosquitto.conf and deploy/site-mqtt.toml agree with each other, with the tests'
broker and with the MQTT source's flow control (no docker runs here)."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from aiotstream.config import SiteConfig

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def mosquitto_settings(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition(" ")
            out[key] = value.strip()
    return out


def test_compose_runs_the_shipped_broker_config_and_the_mqtt_site_on_loopback_ports() -> None:
    # the MQTT path is part of the one local stack: mosquitto and flow-mqtt beside the Kafka flow
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    broker, flow = compose["services"]["mosquitto"], compose["services"]["flow-mqtt"]
    assert "./mosquitto.conf:/mosquitto/config/mosquitto.conf:ro" in broker["volumes"]
    assert any(v.endswith(":/mosquitto/data") for v in broker["volumes"])  # persistence survives the container
    for svc in compose["services"].values():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{port} is published beyond loopback"
    site_mount = next(v for v in flow["volumes"] if v.endswith(":/etc/aiotstream/site.toml:ro"))
    site_file = DEPLOY / site_mount.split(":")[0]
    cfg = SiteConfig.from_dict(tomllib.loads(site_file.read_text()), source=str(site_file))
    assert cfg.inputs.kind == "mqtt" and cfg.inputs.mqtt is not None
    assert cfg.inputs.mqtt.host == "mosquitto"  # the compose service
    assert flow["command"][:3] == ["run", "--site", "/etc/aiotstream/site.toml"]
    assert "--recovery" in flow["command"]  # so a restart counts what went missing while it was away


def test_the_broker_queue_is_sized_for_the_flow_control_and_the_five_times_burst() -> None:
    conf = mosquitto_settings((DEPLOY / "mosquitto.conf").read_text())
    site = tomllib.loads((DEPLOY / "site-mqtt.toml").read_text())
    assert conf["persistence"] == "true"
    # the bursts: 200,000 readings and one 5x larger must fit behind the flow's in-flight window
    assert int(conf["max_queued_messages"]) + site["inputs"]["mqtt"]["receive_maximum"] >= 1_000_000
    assert int(conf["max_queued_bytes"]) >= 1_000_000 * 100  # 100-byte readings
    assert int(conf["max_inflight_messages"]) >= 100  # publishers are not held to 20 per round trip
    assert conf["sys_interval"] != "0"  # the drop counter the flow reads is published
    # the flow reads the counter this broker publishes
    cfg = SiteConfig.from_dict(site)
    assert cfg.inputs.mqtt is not None
    assert cfg.inputs.mqtt.broker_drops_topic == "$SYS/broker/publish/messages/dropped"


def test_the_tests_broker_is_the_shipped_config_on_its_own_port(tmp_path: Path) -> None:
    from conftest import mosquitto_conf

    shipped = mosquitto_settings((DEPLOY / "mosquitto.conf").read_text())
    ours = mosquitto_settings(mosquitto_conf(12345, tmp_path, {"sys_interval": "1"}))
    assert ours["listener"] == "12345 127.0.0.1"
    assert ours["sys_interval"] == "1"
    for key in ("max_queued_messages", "max_queued_bytes", "max_inflight_messages", "persistence",
                "queue_qos0_messages", "autosave_interval"):
        assert ours[key] == shipped[key], key
    assert re.fullmatch(rf"{re.escape(str(tmp_path))}/data/", ours["persistence_location"])


def test_compose_flow_serves_metrics_on_the_published_port_and_its_healthcheck_asks_readyz() -> None:
    from aiotstream.cli import build_parser

    flow = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["flow-mqtt"]
    args = build_parser().parse_args(flow["command"])
    assert args.metrics_host == "0.0.0.0"  # in the container; the host side is loopback (checked above)
    # published on the host's 9465 (the Kafka flow has 9464)
    assert any(p.startswith("127.0.0.1:") and p.endswith(f":{args.metrics_port}") for p in flow["ports"])
    test = flow["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"] and f"http://127.0.0.1:{args.metrics_port}/readyz" in test[-1]
    compile(test[-1], "healthcheck", "exec")  # the probe is valid Python
    assert f"EXPOSE 2101 {args.metrics_port}" in (DEPLOY / "Dockerfile").read_text()

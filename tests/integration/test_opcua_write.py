"""OPC UA write-back against an asyncua server of the test's own: an emitted command's value arrives in the
actuator's PLC node (in the node's data type) and is acknowledged with the record devices send; a command
outside the envelope at the moment of writing (against the value the PLC holds then) is not written and is
acknowledged as rejected ("blocked at write time"); a node that does not exist or refuses the write is a
failed ack, not a crash; the acks reach the site's ack topic on a real Kafka-protocol broker."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from aiotstream.codecs.feedback import decode_feedback
from aiotstream.config import SiteConfig, default_site
from aiotstream.io.broker import free_port
from aiotstream.io.opcua_write import OpcUaCommandSink
from aiotstream.records import Output, Position

pytestmark = pytest.mark.integration
asyncua = pytest.importorskip("asyncua")
ua = asyncua.ua


class Plc:
    """An asyncua server with a writable Double setpoint, a writable Int32 one and a read-only one."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}/plc/"
        self.ready = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: Any = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self) -> None:
        from asyncua import Server

        try:
            self.loop = asyncio.get_running_loop()
            server = Server()
            await server.init()
            server.set_endpoint(self.endpoint)
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            idx = await server.register_namespace("urn:aiotstream:test-plc")
            objs = server.nodes.objects
            speed = await objs.add_variable(ua.NodeId("press.speed", idx), "speed", 50.0)
            steps = await objs.add_variable(ua.NodeId("press.steps", idx), "steps", ua.Variant(3, ua.VariantType.Int32))
            await objs.add_variable(ua.NodeId("press.locked", idx), "locked", 1.0)  # not writable
            await speed.set_writable()
            await steps.set_writable()
            self.server = server
            async with server:
                self.ready.set()
                while not self.done.is_set():
                    await asyncio.sleep(0.05)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc
            self.ready.set()

    def value(self, name: str) -> Any:
        assert self.loop is not None

        async def read() -> Any:
            return await self.server.get_node(f"ns=2;s=press.{name}").read_value()

        return asyncio.run_coroutine_threadsafe(read(), self.loop).result(10)


@pytest.fixture
def plc() -> Iterator[Plc]:
    p = Plc()
    p.thread.start()
    assert p.ready.wait(30), "the asyncua server did not start"
    if p.error:
        raise p.error
    yield p
    p.done.set()
    p.thread.join(10)


def site(endpoint: str, site_id: str = "demo-plant") -> SiteConfig:
    return default_site(1, site_id=site_id, control={"actuators": [
        {"name": "speed", "min": 0, "max": 100, "max_step": 10},
        {"name": "steps", "min": 0, "max": 10},
        {"name": "locked", "min": 0, "max": 10},
        {"name": "ghost", "min": 0, "max": 10},
    ]}, outputs={"opcua": {"endpoint": endpoint, "writes": [
        {"asset": "asset-000", "actuator": "speed", "node_id": "ns=2;s=press.speed"},
        {"asset": "asset-000", "actuator": "steps", "node_id": "ns=2;s=press.steps"},
        {"asset": "asset-000", "actuator": "locked", "node_id": "ns=2;s=press.locked"},
        {"asset": "asset-000", "actuator": "ghost", "node_id": "ns=2;s=press.does-not-exist"},
    ]}})


def command(actuator: str, value: Any, status: str = "emitted") -> Output:
    cid = f"c-{uuid.uuid4().hex[:10]}"
    return Output("command", "asset-000", {"schema": "aiotstream.command/1", "command_id": cid, "status": status,
                                           "asset": "asset-000", "actuator": actuator, "value": value})


def test_commands_are_written_checked_again_and_acknowledged(plc: Plc, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    acks: list[tuple[str, str, bytes]] = []
    sink = OpcUaCommandSink(site(plc.endpoint), send_ack=lambda t, k, v: acks.append((t, k, v)))
    part = sink.build("out", 0, 1)
    cmds = [command("speed", 55.0),              # applied
            command("speed", 75.0),              # 20 away from the 55 the PLC holds now: max_step 10
            command("speed", 150.0),             # above max
            command("steps", 7.0),               # an Int32 node: written as 7
            command("locked", 2.0),              # the node refuses the write
            command("ghost", 1.0),               # no such node
            command("speed", 60.0, "awaiting_approval")]  # not emitted: not written, no ack
    try:
        part.write_batch(cmds)
    finally:
        part.close()
    assert plc.value("speed") == 55.0
    assert plc.value("steps") == 7
    assert plc.value("locked") == 1.0
    assert [(t, k) for t, k, _ in acks] == [("demo-plant.acks", "asset-000")] * 6
    got = [decode_feedback(v, Position("demo-plant.acks", 0, i)) for i, (_, _, v) in enumerate(acks)]
    assert [(f.command_id, f.status) for f in got] == [
        (cmds[0].record["command_id"], "applied"), (cmds[1].record["command_id"], "rejected"),
        (cmds[2].record["command_id"], "rejected"), (cmds[3].record["command_id"], "applied"),
        (cmds[4].record["command_id"], "failed"), (cmds[5].record["command_id"], "failed")]
    raw = [orjson.loads(v) for _, _, v in acks]
    assert raw[0]["value"] == 55.0 and raw[3]["value"] == 7.0
    assert raw[1]["note"].startswith("blocked at write time: max_step") and "max: 150 > 100" in raw[2]["note"]
    assert "BadNotWritable" in raw[4]["note"] or "BadUserAccessDenied" in raw[4]["note"], raw[4]["note"]
    assert "BadNodeIdUnknown" in raw[5]["note"], raw[5]["note"]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING and "OPC UA write" in r.getMessage()]) == 4


@pytest.mark.parametrize("peer", ["nothing listens", "a listener that never answers"])
def test_an_unreachable_plc_is_a_failed_ack_not_a_crash(peer: str) -> None:
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    if peer == "a listener that never answers":
        silent.listen()
    port = silent.getsockname()[1]
    acks: list[bytes] = []
    cfg = site(f"opc.tcp://127.0.0.1:{port}/plc/")
    assert cfg.outputs.opcua is not None
    cfg = cfg.model_copy(update={"outputs": cfg.outputs.model_copy(
        update={"opcua": cfg.outputs.opcua.model_copy(update={"timeout_s": 0.3})})})
    try:
        part = OpcUaCommandSink(cfg, send_ack=lambda _t, _k, v: acks.append(v)).build("out", 0, 1)
        try:
            part.write_batch([command("speed", 55.0), command("speed", 56.0)])
        finally:
            part.close()
    finally:
        silent.close()
    recs = [orjson.loads(a) for a in acks]
    assert [r["status"] for r in recs] == ["failed", "failed"]
    assert all("not reachable" in r["note"] for r in recs), recs


def test_acks_reach_the_site_ack_topic(plc: Plc, kafka_broker: str) -> None:
    from confluent_kafka import Consumer, TopicPartition

    from aiotstream.io.kafka import ensure_topics

    site_id = f"w{uuid.uuid4().hex[:8]}"
    cfg = site(plc.endpoint, site_id)
    ensure_topics(kafka_broker, [f"{site_id}.acks"], partitions=1)
    part = OpcUaCommandSink(cfg, kafka_broker).build("out", 0, 1)
    cmd = command("speed", 58.0)
    try:
        part.write_batch([cmd])
    finally:
        part.close()
    c = Consumer({"bootstrap.servers": kafka_broker, "group.id": "t", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(f"{site_id}.acks", 0, 0)])
        msgs = []
        for _ in range(50):
            msgs += [m for m in c.consume(10, timeout=0.2) if m.error() is None]
            if msgs:
                break
    finally:
        c.close()
    assert len(msgs) == 1 and msgs[0].key() == b"asset-000"
    fb = decode_feedback(msgs[0].value(), Position(f"{site_id}.acks", 0, 0))
    assert (fb.type, fb.command_id, fb.status) == ("command_ack", cmd.record["command_id"], "applied")
    assert plc.value("speed") == 58.0


def test_the_flows_emitted_commands_reach_the_plc(plc: Plc) -> None:
    """The plant flow itself: anomalies fire an auto-mode rule, its emitted commands (and their reverts) go
    through the writer to the PLC node; each is acknowledged as applied with the value the command carried."""
    from bytewax.testing import TestingSink, run_main

    from aiotstream.dataflow import build_flow
    from aiotstream.io.simulator import SimulatorSource
    from aiotstream.sim.plant import Fault, PlantSimulator

    start, s = 1_767_225_600_000_000_000, 1_000_000_000
    assets = [f"m-{i:03d}" for i in range(4)]
    cfg = default_site(4, site_id="wb-plant", inputs={"tail": False},
                       assets=[{"id": a, "line": "line-1"} for a in assets], model={"warmup_windows": 10},
                       control={"actuators": [{"name": "speed", "unit": "%", "initial": 50, "min": 0, "max": 100,
                                               "max_step": 10, "ack_timeout_s": 0}],
                                "rules": [{"name": "slow", "actuator": "speed", "mode": "auto",
                                           "when": {"alert_type": "anomaly"}, "action": {"delta": -5},
                                           "revert": {"set": 50}}]},
                       outputs={"opcua": {"endpoint": plc.endpoint, "writes": [
                           {"asset": a, "actuator": "speed", "node_id": "ns=2;s=press.speed"} for a in assets]}})
    faults = [Fault("m-001", "imbalance", start + 20 * s, None, None),
              Fault("m-000", "sensor_stuck", start + 30 * s, start + 40 * s, "y")]
    sim = PlantSimulator(cfg.all_assets(), duration_s=60.0, seed=5, warmup_s=0.0, faults=faults)
    acks: list[bytes] = []
    out: list[Output] = []
    writer = OpcUaCommandSink(cfg, send_ack=lambda _t, _k, v: acks.append(v))
    run_main(build_flow(cfg, SimulatorSource(list(sim.messages()), cfg.site.id, batch=97), TestingSink(out),
                        tail=False, snapshots=False, also=[writer]))
    emitted = [o.record for o in out if o.kind == "command" and o.record["status"] == "emitted"]
    assert emitted, "no command was emitted: the scenario did not fire the rule"
    got = [orjson.loads(a) for a in acks]
    assert [(g["command_id"], g["status"], g["value"]) for g in got] == \
        [(e["command_id"], "applied", e["value"]) for e in emitted]
    assert plc.value("speed") == got[-1]["value"]


def test_aiotstream_run_writes_to_the_plc_and_reads_the_ack_back(plc: Plc, kafka_broker: str,
                                                                 tmp_path: Path) -> None:
    """The whole loop as deployed: ``aiotstream run`` with ``[outputs.opcua]`` on a real Kafka-protocol broker;
    an anomaly fires an auto-mode command, the writer writes it to the PLC node and acknowledges it on
    ``<site>.acks``, the flow reads that ack back and the command becomes ``acked`` with the written value."""
    from support import Follow, start_flow, stop_flow

    from aiotstream.io.kafka import ensure_topics, input_topics, output_topics
    from aiotstream.io.simulator import write_to_kafka
    from aiotstream.sim.plant import Fault, PlantSimulator

    site_id = f"wb{uuid.uuid4().hex[:8]}"
    toml = tmp_path / "site.toml"
    toml.write_text(f"""
[site]
id = "{site_id}"
[[assets]]
id = "m-000"
[[assets]]
id = "m-001"
[model]
warmup_windows = 10
drift_detector = "none"
[window]
idle_close_s = 2
[[control.actuators]]
name = "speed"
initial = 50
min = 0
max = 100
max_step = 10
ack_timeout_s = 600
[[control.rules]]
name = "slow"
actuator = "speed"
mode = "auto"
when = {{ alert_type = "anomaly" }}
action = {{ delta = -5 }}
[outputs.opcua]
endpoint = "{plc.endpoint}"
[[outputs.opcua.writes]]
asset = "m-001"
actuator = "speed"
node_id = "ns=2;s=press.speed"
""")
    cfg = SiteConfig.load(toml)
    s = 1_000_000_000
    start = (time.time_ns() // s - 60) * s  # event time near the writer's clock, which stamps the ack
    sim = PlantSimulator(cfg.all_assets(), duration_s=60.0, start_ns=start, seed=5, warmup_s=0.0,
                         faults=[Fault("m-001", "imbalance", start + 20 * s, None, None)])
    topics = output_topics(cfg)
    ensure_topics(kafka_broker, input_topics(cfg) + list(topics.values()), partitions=1)
    wave, read = cfg.inputs.topics
    write_to_kafka(sim.messages(), kafka_broker, wave, read)
    log = tmp_path / "flow.log"
    proc = start_flow(toml, kafka_broker, log)
    out = Follow(kafka_broker, topics, group=site_id)
    try:
        acked = out.wait_for("an acked command", lambda: [c for c in out.records["command"]
                                                           if c["status"] == "acked"], proc, log)
    finally:
        rc = stop_flow(proc)
        out.c.close()
    assert rc == 130, log.read_text()[-3000:]  # stopped by SIGINT, cleanly
    cmd = acked[0]  # type: ignore[index]
    emitted = [c for c in out.records["command"] if c["command_id"] == cmd["command_id"]
               and c["status"] == "emitted"]
    assert emitted and cmd["asset"] == "m-001" and cmd["acked_value"] == emitted[0]["value"] == 45.0
    assert cmd["inputs"][0]["topic"] == f"{site_id}.acks"
    assert plc.value("speed") == 45.0


def _auth_site(endpoint: str, tmp: Path, **writer: Any) -> SiteConfig:
    """``site`` with [auth]: the writer is the device principal 'plc-writer' (Ed25519, its private key
    encrypted with a passphrase from a secret file); 'ana' is an operator."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    k = Ed25519PrivateKey.generate()
    (tmp / "writer.pem").write_bytes(k.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"writer passphrase")))
    (tmp / "writer.pass").write_text("writer passphrase\n")
    (tmp / "writer.pub").write_bytes(k.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (tmp / "ana.key").write_text("0123456789abcdef-ana\n")
    data = site(endpoint).model_dump(mode="json", exclude_none=True)
    data["outputs"]["opcua"].update({"ack_principal": "plc-writer", "ack_key_file": str(tmp / "writer.pem"),
                                     "ack_key_password_file": str(tmp / "writer.pass"), "timeout_s": 0.3},
                                    **writer)
    data["auth"] = {"principals": [
        {"id": "plc-writer", "roles": ["device"], "assets": ["asset-000"], "public_key_file": str(tmp / "writer.pub")},
        {"id": "ana", "roles": ["operator"], "secret_file": str(tmp / "ana.key")}]}
    return SiteConfig.from_dict(data)


def test_with_auth_the_writer_signs_its_acks_as_its_device_principal(tmp_path: Path) -> None:
    """The acks the writer sends (failed ones here: nothing listens) are signed; the flow's decode step accepts
    them as command_acks by 'plc-writer'; changed, replayed or unsigned, the same acks are refused."""
    import socket

    from aiotstream.pdm.ingest import Ingestor
    from aiotstream.pdm.runtime import SiteRuntime
    from aiotstream.records import Feedback, SourceMessage

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    cfg = _auth_site(f"opc.tcp://127.0.0.1:{silent.getsockname()[1]}/plc/", tmp_path)
    acks: list[bytes] = []
    try:
        part = OpcUaCommandSink(cfg, send_ack=lambda _t, _k, v: acks.append(v)).build("out", 0, 1)
        try:
            part.write_batch([command("speed", 55.0), command("speed", 56.0)])
        finally:
            part.close()
    finally:
        silent.close()
    recs = [orjson.loads(a) for a in acks]
    assert [(r["status"], r["by"], r["auth"]["principal"], r["auth"]["alg"]) for r in recs] == \
        [("failed", "plc-writer", "plc-writer", "ed25519")] * 2
    unsigned = {k: v for k, v in recs[0].items() if k != "auth"}
    changed = {**recs[1], "status": "applied"}
    msgs = [SourceMessage("demo-plant.acks", 0, i, v) for i, v in
            enumerate([*acks, acks[0], orjson.dumps(unsigned), orjson.dumps(changed)])]
    items: list[Any] = []
    dead: list[Output] = []
    Ingestor(SiteRuntime(cfg))._decode(msgs, items.append, dead.append)
    assert [(f.type, f.status, f.by, f.pos.offset) for f in items if isinstance(f, Feedback)] == \
        [("command_ack", "failed", "plc-writer", 0), ("command_ack", "failed", "plc-writer", 1)]
    assert [(d.record["source"]["offset"], d.record["reason"]) for d in dead] == \
        [(2, "replayed"), (3, "unsigned"), (4, "bad_signature")]


def test_with_auth_a_writer_that_cannot_sign_its_acks_is_a_config_error(tmp_path: Path) -> None:
    from aiotstream.errors import AiotError, ConfigError

    cases = [({"ack_principal": None, "ack_key_file": None, "ack_key_password_file": None},
              "outputs.opcua.ack_principal", "must be signed"),
             ({"ack_principal": "ana"}, "outputs.opcua.ack_principal", "needs the device role"),
             ({"ack_principal": "ghost"}, "outputs.opcua.ack_principal", "not in [[auth.principals]]"),
             ({"ack_key_file": None}, "outputs.opcua", "go together")]
    for change, path, words in cases:
        with pytest.raises(ConfigError) as exc:
            _auth_site("opc.tcp://127.0.0.1:4840/plc/", tmp_path, **change)
        assert [(p, words in m) for p, m in exc.value.problems] == [(path, True)], exc.value.problems
    cfg = _auth_site("opc.tcp://127.0.0.1:4840/plc/", tmp_path)
    (tmp_path / "writer.pass").write_text("not the passphrase\n")
    with pytest.raises(AiotError, match="outputs.opcua.ack_key_file: .*passphrase is wrong"):
        OpcUaCommandSink(cfg, send_ack=lambda *_: None)

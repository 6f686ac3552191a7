"""Decisions on a real broker: a fault opens one alert, an operator acks it, recovery clears it, MTTR is in the
KPIs; an approval-mode command is emitted only after its approval, and never after its expiry.

``aiotstream run`` tails the topics in a subprocess, like a deployment. The test is the plant, the
operator and the device: it writes the first 34 s of simulated data (a sensor_stuck fault on
press-1 starts at 30 s), waits for the alert and the two commands awaiting approval, answers on
``<site>.feedback`` (ack the alert, approve one command in time and the other after its 5 s
expiry), acknowledges the emitted command from the device side on ``<site>.acks``, writes the rest
of the data (the fault ends at 40 s), waits for the outputs, then stops the flow with SIGINT.
"""
from __future__ import annotations

import subprocess
import tomllib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from support import Follow, cli, start_flow, stop_flow

from aiotstream.config import SiteConfig
from aiotstream.io.kafka import ensure_topics, input_topics, make_producer, output_topics
from aiotstream.io.simulator import write_to_kafka
from aiotstream.schemas import validator
from aiotstream.sim.plant import Fault, PlantSimulator

pytestmark = pytest.mark.integration

SITE = "it-dec"
S = 1_000_000_000
START = 1_767_225_600_000_000_000
ONSET, END, SPLIT = START + 30 * S, START + 40 * S, START + 34 * S
WAIT_S = 120.0  # upper bound for each wait; the whole test normally takes ~20 s

SITE_TOML = f"""
[site]
id = "{SITE}"
[[assets]]
id = "press-1"
line = "l1"
[[assets]]
id = "press-2"
line = "l1"
[window]
idle_close_s = 2
[model]
warmup_windows = 10
drift_detector = "none"
[alerts]
escalate_after_s = 0
[kpi]
periods_s = [10]
[[control.actuators]]
name = "speed"
unit = "rpm"
initial = 1800
min = 600
max = 1800
ack_timeout_s = 600
[[control.actuators]]
name = "coolant"
initial = 0
min = 0
max = 1
ack_timeout_s = 0
[[control.rules]]
name = "slow"
actuator = "speed"
when = {{ alert_type = "anomaly" }}
action = {{ set = 1200 }}
mode = "approval"
approval_timeout_s = 600
[[control.rules]]
name = "cool"
actuator = "coolant"
when = {{ alert_type = "anomaly" }}
action = {{ set = 1 }}
mode = "approval"
approval_timeout_s = 5
"""


class Outputs(Follow):
    """Follows every output topic from the beginning and keeps the records by topic kind."""

    def __init__(self, brokers: str, topics: dict[str, str]):
        super().__init__(brokers, topics, group="it-dec")

    def wait_for(self, what: str, found: Callable[[], object], proc: subprocess.Popen, log: Path) -> object:
        return super().wait_for(what, found, proc, log, WAIT_S)

    def summary(self) -> dict:
        r = self.records
        return {"alerts": [(a["asset"], a["event"], a["at_ns"]) for a in r["alert"]],
                "commands": [(c["rule"], c["status"], c["at_ns"]) for c in r["command"]],
                "deadletter": Counter(d["reason"] for d in r["deadletter"]),
                "kpis": sorted({(k["scope"], k["period"]["start_ns"]) for k in r["kpi"]}),
                "scores": len(r["score"])}

    def find(self, kind: str, **match: object) -> list[dict]:
        return [r for r in self.records[kind] if all(r.get(k) == v for k, v in match.items())]


def send(brokers: str, topic: str, **fields: object) -> int:
    ts = fields["ts"]
    p = make_producer(brokers)
    p.produce(topic, orjson.dumps({"schema": "aiotstream.feedback/1", "asset": "press-1", **fields}), key=b"press-1")
    assert p.flush(10) == 0
    return int(ts)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def scenario(kafka_broker: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("decisions")
    site = tmp / "site.toml"
    site.write_text(SITE_TOML)
    cfg = SiteConfig.load(site)
    sim = PlantSimulator(cfg.all_assets(), duration_s=60.0, seed=21, warmup_s=0.0,
                         faults=[Fault("press-1", "sensor_stuck", ONSET, END, "x")])
    msgs = list(sim.messages())
    topics = output_topics(cfg)
    ensure_topics(kafka_broker, input_topics(cfg) + list(topics.values()), partitions=2)
    wave, read = cfg.inputs.topics
    write_to_kafka((m for m in msgs if m.t_ns < SPLIT), kafka_broker, wave, read)

    log = tmp / "flow.log"
    proc = start_flow(site, kafka_broker, log)
    out = Outputs(kafka_broker, topics)
    feedback, acks = cfg.inputs.feedback_topics
    sent: dict[str, int] = {}
    try:
        opened = out.wait_for("an opened alert", lambda: out.find("alert", asset="press-1", event="opened"), proc,
                              log)[0]
        waiting = out.wait_for("two commands awaiting approval", lambda: len(
            out.find("command", status="awaiting_approval")) == 2 and out.find("command", status="awaiting_approval"),
            proc, log)
        by_rule = {c["rule"]: c for c in waiting}
        slow, cool = by_rule["slow"], by_rule["cool"]
        sent["ack"] = send(kafka_broker, feedback, type="ack", alert_id=opened["alert_id"],
                           ts=opened["opened_at_ns"] + S, by="ana")
        sent["approve_slow"] = send(kafka_broker, feedback, type="approve", command_id=slow["command_id"],
                                    ts=slow["requested_at_ns"] + S, by="ana")
        # 20 s after the request: well past cool's 5 s expiry
        sent["approve_cool"] = send(kafka_broker, feedback, type="approve", command_id=cool["command_id"],
                                    ts=cool["requested_at_ns"] + 20 * S, by="ana")
        emitted = out.wait_for("the approved command emitted", lambda: out.find("command", status="emitted"), proc,
                               log)[0]
        # the device applies it and acknowledges on the ack topic
        sent["device_ack"] = send(kafka_broker, acks, type="command_ack", command_id=emitted["command_id"],
                                  ts=emitted["at_ns"] + S, value=1200.0)
        write_to_kafka((m for m in msgs if m.t_ns >= SPLIT), kafka_broker, wave, read)

        def done() -> bool:
            cleared = out.find("alert", asset="press-1", event="cleared")
            if not cleared or not out.find("command", status="acked") or not out.find("deadletter"):
                return False
            t = cleared[0]["cleared_at_ns"]
            return any(k["scope"] == "site" and k["period"]["start_ns"] <= t < k["period"]["end_ns"]
                       for k in out.records["kpi"])

        out.wait_for("the clear, the device ack and the KPIs of the clear's period", done, proc, log)
    finally:
        rc = stop_flow(proc)
    for _ in range(5):
        out.poll()
    out.c.close()
    return {"out": out, "opened": opened, "slow": slow, "cool": cool, "sent": sent, "rc": rc, "log": log}


def test_fault_alert_acked_and_cleared_with_mttr_in_the_kpis(scenario: dict) -> None:
    out = scenario["out"]
    alerts = out.find("alert", asset="press-1", alert_type="anomaly")
    opened = scenario["opened"]
    assert [a["event"] for a in alerts] == ["opened", "acknowledged", "cleared"]
    assert {a["alert_id"] for a in alerts} == {opened["alert_id"]}
    assert ONSET - S <= opened["opened_at_ns"] <= ONSET + 3 * S
    ack, cleared = alerts[1], alerts[2]
    assert (ack["acknowledged_at_ns"], ack["acknowledged_by"]) == (scenario["sent"]["ack"], "ana")
    t_open, t_clear = opened["opened_at_ns"], cleared["cleared_at_ns"]
    assert END <= t_clear <= END + 5 * S and cleared["acknowledged_by"] == "ana"
    # MTTR of press-1 in the period of the clear = cleared_at - opened_at (the one repair ends there)
    (k,) = [k for k in out.find("kpi", scope="asset", asset="press-1")
            if k["period"]["start_ns"] <= t_clear < k["period"]["end_ns"]]
    assert k["totals"]["repairs"] == 1
    assert k["kpis"]["mttr_s"] == pytest.approx((t_clear - t_open) / S, rel=1e-12)
    # the site roll-up of that period adds both presses' repairs
    (site,) = [k for k in out.find("kpi", scope="site") if k["period"]["start_ns"] <= t_clear < k["period"]["end_ns"]]
    parts = [k for k in out.find("kpi", scope="asset") if k["period"]["start_ns"] == site["period"]["start_ns"]]
    assert site["complete"] and site["assets_reported"] == len(parts) == 2
    assert site["totals"]["repairs"] == sum(p["totals"]["repairs"] for p in parts)
    assert site["totals"]["repair_s"] == pytest.approx(sum(p["totals"]["repair_s"] for p in parts))
    if site["totals"]["repairs"] == 1:
        assert site["kpis"]["mttr_s"] == pytest.approx((t_clear - t_open) / S, rel=1e-12)


def test_approval_command_emitted_only_after_approval_and_never_after_expiry(scenario: dict) -> None:
    out, slow, cool, sent = scenario["out"], scenario["slow"], scenario["cool"], scenario["sent"]
    by_id = {}
    for c in out.records["command"]:
        by_id.setdefault(c["command_id"], []).append(c)
    # in time: awaiting -> emitted (at or after the approval's time, with its approver) -> acked by the device
    s = by_id[slow["command_id"]]
    assert [c["status"] for c in s] == ["awaiting_approval", "emitted", "acked"]
    assert s[1]["at_ns"] >= sent["approve_slow"] and s[1]["by"] == "ana" and s[1]["value"] == 1200.0
    assert s[2]["acked_value"] == 1200.0 and s[2]["inputs"][0]["topic"] == f"{SITE}.acks"
    # too late: awaiting -> expired at requested + 5 s, never emitted; the late approval is refused
    c = by_id[cool["command_id"]]
    assert [x["status"] for x in c] == ["awaiting_approval", "expired"]
    assert c[1]["at_ns"] == cool["requested_at_ns"] + 5 * S
    (late,) = [d for d in out.records["deadletter"] if d["reason"] == "command_not_pending"]
    assert orjson.loads(__import__("base64").b64decode(late["payload_b64"]))["command_id"] == cool["command_id"]


def test_every_output_validates_and_the_flow_stopped_cleanly(scenario: dict) -> None:
    out = scenario["out"]
    for kind, records in out.records.items():
        v = validator(kind)
        for rec in records:
            err = next(iter(v.iter_errors(rec)), None)
            assert err is None, f"{kind} {rec.get('id')}: {err.message} at {list(err.path)}"
    assert scenario["rc"] == 130, Path(scenario["log"]).read_text()[-2000:]
    assert {d["reason"] for d in out.records["deadletter"]} == {"command_not_pending"}


def test_the_audit_trail_names_who_did_what_and_verifies_and_a_tampered_export_fails(scenario: dict,
                                                                                   kafka_broker: str,
                                                                                   tmp_path: Path) -> None:
    from aiotstream.audit import read_kafka

    out = scenario["out"]
    entries = out.records["audit"]
    did = [(e["chain"], e["principal"], e["what"], e["details"].get("rule") or e["details"].get("reason"))
           for e in entries if e["chain"] != "config"]
    by_ana = {(w, d) for c, p, w, d in did if p == "ana"}
    assert ("alert.acknowledged", None) in by_ana
    assert ("command.approved", "slow") in by_ana
    assert ("refusal", "command_not_pending") in by_ana  # cool's approval came after its expiry
    flows = {(w, d) for c, p, w, d in did if p == "flow"}
    assert {("command.awaiting_approval", "slow"), ("command.awaiting_approval", "cool"),
            ("command.expired", "cool")} <= flows
    assert ("anonymous", "command.acked") in {(p, w) for c, p, w, d in did}  # the device ack names nobody
    assert {c for c, *_ in did} == {"asset:press-1"}
    loads = [e for e in entries if e["chain"] == "config"]
    assert loads and loads[0]["what"] == "config.load" and loads[0]["principal"] == "flow"
    assert loads[0]["details"]["config_hash"] == SiteConfig.from_dict(tomllib.loads(SITE_TOML)).config_hash

    ok = subprocess.run(cli("audit", "verify", "--brokers", kafka_broker, "--site", SITE, "--broker-wait", "5"),
                        capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    assert f"{SITE}.audit: audit trail verified: 2 chain(s), {len(entries)} entries" in ok.stdout

    export = [orjson.dumps(e) for e in read_kafka(kafka_broker, f"{SITE}.audit", 5.0)]
    good, bad = tmp_path / "audit.jsonl", tmp_path / "tampered.jsonl"
    good.write_bytes(b"\n".join(export) + b"\n")
    i = next(n for n, e in enumerate(export) if orjson.loads(e)["what"] == "alert.acknowledged")
    edited = orjson.loads(export[i])
    edited["principal"] = "mallory"
    bad.write_bytes(b"\n".join([*export[:i], orjson.dumps(edited), *export[i + 1:]]) + b"\n")
    assert subprocess.run(cli("audit", "verify", str(good)), capture_output=True, timeout=60,
                          check=False).returncode == 0
    proc = subprocess.run(cli("audit", "verify", str(bad)), capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"aiotstream audit verify: {bad}: broken: chain asset:press-1 seq "
                                   f"{edited['seq']}: edited (its hash does not match its content)")

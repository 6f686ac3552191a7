"""Signed control, feedback and ack messages against the real broker (issue 19 item 1, "done when").

One ``aiotstream run`` of a site with ``[auth]`` tails the session's Tansu broker. The test is the plant, the
people and the device: a fault opens an alert and a command that waits for approval; then, on
``<site>.feedback``, an unsigned ack, an approval signed with the wrong key, a correctly signed ack (taken)
and the same bytes again (replayed), an expired and a future ack, an approval by an operator (wrong role),
by an engineer of another asset (wrong asset), by an unknown principal, and the engineer's correctly signed
approval (taken: the command is emitted); the device's ack, signed with ``aiotstream auth sign``, on
``<site>.acks`` (taken: acked); on ``<site>.control`` an erasure request signed by an operator (wrong role)
and by the governance principal (taken). Every refusal is a dead letter with its reason and the claimed
principal, and an audit entry; every accepted action is audited with its authenticated principal; the
audit trail verifies (``aiotstream audit verify``).
"""
from __future__ import annotations

import base64
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support import Follow, cli, start_flow, stop_flow

from aiotstream.auth import generate_keypair, load_private_key, sign
from aiotstream.config import SiteConfig
from aiotstream.io.kafka import ensure_topics, input_topics, make_producer, output_topics
from aiotstream.io.simulator import write_to_kafka
from aiotstream.schemas import validator
from aiotstream.sim.plant import Fault, PlantSimulator

pytestmark = pytest.mark.integration

SITE = "it-auth"
S = 1_000_000_000
START = 1_767_225_600_000_000_000
ONSET, END, SPLIT = START + 30 * S, START + 40 * S, START + 34 * S
WAIT_S = 120.0
SECRETS = {"ana": "ana-0123456789abcdef", "ed2": "ed2-0123456789abcdef", "dpo": "dpo-0123456789abcdef",
           "mallory": "mallory-0123456789ab"}


def site_toml(keys: Path) -> str:
    return f"""
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
[governance]
erasure = true
[[control.actuators]]
name = "speed"
initial = 1800
min = 600
max = 1800
ack_timeout_s = 600
[[control.rules]]
name = "slow"
actuator = "speed"
when = {{ alert_type = "anomaly" }}
action = {{ set = 1200 }}
mode = "approval"
approval_timeout_s = 600
[auth]
max_age_s = 300
max_future_s = 30
[[auth.principals]]
id = "ana"
roles = ["operator"]
secret_file = "{keys / 'ana.key'}"
[[auth.principals]]
id = "eve"
roles = ["engineer"]
assets = ["line:l1"]
public_key_file = "{keys / 'eve.pub'}"
[[auth.principals]]
id = "ed2"
roles = ["engineer"]
assets = ["press-2"]
secret_file = "{keys / 'ed2.key'}"
[[auth.principals]]
id = "plc"
roles = ["device"]
assets = ["press-1"]
public_key_file = "{keys / 'plc.pub'}"
[[auth.principals]]
id = "dpo"
roles = ["governance"]
secret_file = "{keys / 'dpo.key'}"
"""


class Outputs(Follow):
    def __init__(self, brokers: str, topics: dict[str, str]):
        super().__init__(brokers, topics, group="it-auth")

    def wait_for(self, what: str, found: Callable[[], object], proc: subprocess.Popen, log: Path) -> Any:
        return super().wait_for(what, found, proc, log, WAIT_S)

    def find(self, kind: str, **match: object) -> list[dict]:
        return [r for r in self.records[kind] if all(r.get(k) == v for k, v in match.items())]


def hmac_signed(body: dict[str, Any], pid: str, ts: int | None = None) -> dict[str, Any]:
    return sign(body, pid, SECRETS[pid].encode(), alg="hmac-sha256", now_ns=ts)


def feedback(**fields: Any) -> dict[str, Any]:
    return {"schema": "aiotstream.feedback/1", "asset": "press-1", **fields}


@pytest.fixture(scope="module")
def scenario(kafka_broker: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("auth")
    keys = tmp / "keys"
    keys.mkdir()
    for pid, secret in SECRETS.items():
        (keys / f"{pid}.key").write_text(secret + "\n")
    eve_pem, eve_pub = generate_keypair()
    (keys / "eve.pub").write_bytes(eve_pub)
    eve = load_private_key(_write(keys / "eve.pem", eve_pem))
    gen = subprocess.run(cli("auth", "keygen", "--out-dir", str(keys), "--principal", "plc"), capture_output=True,
                         timeout=120, check=False)
    assert gen.returncode == 0, gen.stderr
    site = tmp / "site.toml"
    site.write_text(site_toml(keys))
    cfg = SiteConfig.load(site)
    sim = PlantSimulator(cfg.all_assets(), duration_s=60.0, seed=21, warmup_s=0.0,
                         faults=[Fault("press-1", "sensor_stuck", ONSET, END, "x")])
    msgs = list(sim.messages())
    topics = output_topics(cfg)
    ensure_topics(kafka_broker, input_topics(cfg) + list(topics.values()), partitions=2)
    wave, read = cfg.inputs.topics
    fb_topic, ack_topic = cfg.inputs.feedback_topics
    (control,) = cfg.control_topics()
    write_to_kafka((m for m in msgs if m.t_ns < SPLIT), kafka_broker, wave, read)

    log = tmp / "flow.log"
    proc = start_flow(site, kafka_broker, log)
    out = Outputs(kafka_broker, topics)
    producer = make_producer(kafka_broker)

    def send(topic: str, body: dict[str, Any] | bytes) -> bytes:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        producer.produce(topic, raw, key=b"press-1")
        assert producer.flush(10) == 0
        return raw

    sent: dict[str, bytes] = {}
    try:
        opened = out.wait_for("an opened alert", lambda: out.find("alert", asset="press-1", event="opened"), proc,
                              log)[0]
        (slow,) = out.wait_for("the command awaiting approval",
                               lambda: out.find("command", status="awaiting_approval"), proc, log)
        ack = feedback(type="ack", alert_id=opened["alert_id"], ts=opened["opened_at_ns"] + S)
        approve = feedback(type="approve", command_id=slow["command_id"], ts=slow["requested_at_ns"] + S)
        now = time.time_ns()
        good_ack = orjson.dumps(hmac_signed(ack, "ana"))
        cases = {
            "unsigned": {**ack, "by": "ana"},
            "bad_signature": sign(approve, "eve", Ed25519PrivateKey.generate(), alg="ed25519"),
            "ack": good_ack,
            "replayed": good_ack,
            "expired": hmac_signed(ack, "ana", now - 400 * S),
            "future_auth": hmac_signed(ack, "ana", now + 120 * S),
            "wrong_role": hmac_signed(approve, "ana"),
            "wrong_asset": hmac_signed(approve, "ed2"),
            "unknown_principal": hmac_signed(approve, "mallory"),
            "approve": sign(approve, "eve", eve, alg="ed25519"),
        }
        for name, body in cases.items():
            sent[name] = send(fb_topic, body)
        emitted = out.wait_for("the approved command emitted", lambda: out.find("command", status="emitted"), proc,
                               log)[0]
        # the device acknowledges, signing with the CLI as a device script would
        device_ack = feedback(type="command_ack", command_id=emitted["command_id"], ts=emitted["at_ns"] + S,
                              value=1200.0)
        signed = subprocess.run(cli("auth", "sign", "--principal", "plc", "--key", str(keys / "plc.pem")),
                                input=orjson.dumps(device_ack), capture_output=True, timeout=120, check=False)
        assert signed.returncode == 0, signed.stderr
        sent["device_ack"] = send(ack_topic, signed.stdout.strip())
        sent["erase_wrong_role"] = send(control, hmac_signed({"type": "erase", "subject": "zed"}, "ana"))
        sent["erase"] = send(control, hmac_signed({"type": "erase", "subject": "zed"}, "dpo"))
        write_to_kafka((m for m in msgs if m.t_ns >= SPLIT), kafka_broker, wave, read)

        def done() -> bool:
            return bool(out.find("alert", asset="press-1", event="cleared") and out.find("command", status="acked")
                        and len(out.records["deadletter"]) >= 9 and "erasure request from dpo" in log.read_text()
                        and sum(e["what"] == "refusal" for e in out.records["audit"]) >= 9)

        out.wait_for("the clear, the device ack, 9 refusals audited and the erasure", done, proc, log)
    finally:
        rc = stop_flow(proc)
    for _ in range(5):
        out.poll()
    out.c.close()
    return {"out": out, "sent": sent, "rc": rc, "log": log, "site": site, "opened": opened, "slow": slow}


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    path.chmod(0o600)
    return str(path)


def _nonce(raw: bytes) -> str:
    obj = orjson.loads(raw)
    return obj["auth"]["nonce"] if "auth" in obj else "unsigned"


REFUSED = {"unsigned": ("unsigned", None, "ana"), "bad_signature": ("bad_signature", "eve", "eve"),
           "replayed": ("replayed", "ana", "ana"), "expired": ("expired", "ana", "ana"),
           "future_auth": ("future_auth", "ana", "ana"), "wrong_role": ("forbidden", "ana", "ana"),
           "wrong_asset": ("forbidden", "ed2", "ed2"), "unknown_principal": ("unknown_principal", "mallory", "mallory"),
           "erase_wrong_role": ("forbidden", "ana", "ana")}
"""case -> (dead-letter reason, the dead letter's claimed principal, the audit entry's principal)."""


def test_every_bad_message_is_refused_dead_lettered_with_its_reason_and_audited(scenario: dict) -> None:
    out, sent = scenario["out"], scenario["sent"]
    dead: dict[str, list[dict]] = {}  # by the nonce (the payload of a dead letter after the erasure of 'zed'
    for d in out.records["deadletter"]:  # has its subject redacted: payload_redacted)
        dead.setdefault(_nonce(base64.b64decode(d["payload_b64"])), []).append(d)
    got = {}
    for case, (reason, claimed, _) in REFUSED.items():
        (d,) = [x for x in dead[_nonce(sent[case])] if x["reason"] == reason]
        got[case] = (d["reason"], d["principal"])
        assert d["principal"] == claimed, (case, d)
        sig = orjson.loads(sent[case]).get("auth", {}).get("sig")
        assert sig is None or sig not in d["message"], d["message"]
        for secret in SECRETS.values():
            assert secret not in d["message"]
    assert len(out.records["deadletter"]) == len(REFUSED), Counter(d["reason"] for d in out.records["deadletter"])
    refusals = {(e["details"]["source"]["topic"], e["details"]["source"]["offset"]): e
                for e in out.records["audit"] if e["what"] == "refusal"}
    assert len(refusals) == len(REFUSED)
    for d in out.records["deadletter"]:
        e = refusals[(d["source"]["topic"], d["source"]["offset"])]
        assert e["details"]["reason"] == d["reason"] and e["details"]["deadletter_id"] == d["id"]
    by_reason = Counter((e["principal"], e["details"]["reason"]) for e in refusals.values())
    assert by_reason == Counter((p, r) for r, _, p in REFUSED.values())


def test_correctly_signed_messages_take_effect_as_their_principal(scenario: dict) -> None:
    out = scenario["out"]
    acked = out.find("alert", asset="press-1", event="acknowledged")
    assert [(a["alert_id"], a["acknowledged_by"]) for a in acked] == [(scenario["opened"]["alert_id"], "ana")]
    cmds = [c for c in out.records["command"] if c["command_id"] == scenario["slow"]["command_id"]]
    assert [(c["status"], c.get("by")) for c in cmds] == [("awaiting_approval", None), ("emitted", "eve"),
                                                          ("acked", "plc")]
    assert cmds[2]["acked_value"] == 1200.0
    assert "erasure request from dpo" in scenario["log"].read_text()
    audit = {(e["principal"], e["what"]) for e in out.records["audit"]}
    assert {("ana", "alert.acknowledged"), ("eve", "command.approved"), ("plc", "command.acked"),
            ("dpo", "governance.erasure")} <= audit
    (erased,) = [e for e in out.records["audit"] if e["what"] == "governance.erasure"]
    assert erased["chain"] == "governance" and erased["details"]["subject"].startswith("sha256:")
    assert erased["details"]["source"].startswith(f"{SITE}.control:")


def test_the_audit_trail_verifies_and_every_output_validates(scenario: dict, kafka_broker: str) -> None:
    out = scenario["out"]
    ok = subprocess.run(cli("audit", "verify", "--brokers", kafka_broker, "--site", SITE, "--broker-wait", "5"),
                        capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    assert f"{SITE}.audit: audit trail verified:" in ok.stdout
    for kind, records in out.records.items():
        v = validator(kind)
        for rec in records:
            err = next(iter(v.iter_errors(rec)), None)
            assert err is None, f"{kind} {rec.get('id')}: {err.message} at {list(err.path)}"
    assert scenario["rc"] == 130, Path(scenario["log"]).read_text()[-2000:]
    text = scenario["log"].read_text()
    assert "no [auth] in the site config" not in text
    # the run's counters (what aiotstream_deadletters_total{reason} exports) count the refusals by reason
    assert "dead letters 9 (forbidden 3, bad_signature 1, expired 1, future_auth 1, replayed 1, " \
           "unknown_principal 1, unsigned 1)" in text, text[-1500:]
    for secret in SECRETS.values():
        assert secret not in text

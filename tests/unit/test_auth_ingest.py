"""[auth] in the decode steps of both flows: signed feedback, acks and control messages are verified and stripped
before the decoders, ``by`` becomes the acting principal; refusals are dead letters with the reason and the claimed
principal, counted by reason, audited as ``refusal`` entries with that principal; the PII policy covers the
principal; a site without [auth] takes today's path (and warns once at flow start)."""
from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from aiotstream.audit import Auditor, ChainHead
from aiotstream.auth import sign
from aiotstream.config import SiteConfig
from aiotstream.governance import Policy
from aiotstream.records import Feedback, Output, SourceMessage
from aiotstream.runstats import RunStats, count_outputs

S = 1_000_000_000
WALL = 1_767_225_600 * S
SECRET = b"0123456789abcdef0123"


def _keys(tmp: Path) -> dict[str, str]:
    (tmp / "ops.key").write_bytes(SECRET + b"\n")
    return {"secret_file": str(tmp / "ops.key")}


def plant(tmp: Path, **auth: Any) -> SiteConfig:
    key = _keys(tmp)
    return SiteConfig.from_dict({
        "site": {"id": "s1"},
        "assets": [{"id": "p1", "line": "L1"}, {"id": "p2", "line": "L2"}],
        "governance": {"erasure": True},
        "auth": {"principals": [{"id": "ana", "roles": ["operator"], **key},
                                {"id": "eve", "roles": ["engineer"], "assets": ["line:L1"], **key},
                                {"id": "dpo", "roles": ["governance"], **key},
                                {"id": "plc", "roles": ["device"], "assets": ["p2"], **key}], **auth},
    })


def msg(topic: str, offset: int, body: Any) -> SourceMessage:
    return SourceMessage(topic, 0, offset, body if isinstance(body, bytes) else orjson.dumps(body))


def fb(kind: str, asset: str = "p1", **f: Any) -> dict[str, Any]:
    return {"schema": "aiotstream.feedback/1", "type": kind, "ts": WALL - S, "asset": asset, **f}


def signed(body: dict[str, Any], pid: str, ts: int = WALL, **kw: Any) -> dict[str, Any]:
    return sign(body, pid, SECRET, alg="hmac-sha256", now_ns=ts, **kw)


def run_plant(cfg: SiteConfig, msgs: list[SourceMessage]) -> tuple[list[Any], list[Output]]:
    from aiotstream.pdm.ingest import Ingestor
    from aiotstream.pdm.runtime import SiteRuntime

    ing = Ingestor(SiteRuntime(cfg), now_ns=lambda: WALL)
    items: list[Any] = []
    dead: list[Output] = []
    ing._decode(msgs, items.append, dead.append)
    return items, dead


def test_plant_flow_feedback_and_control(tmp_path: Path) -> None:
    cfg = plant(tmp_path)
    replay = signed(fb("ack", alert_type="anomaly"), "ana", nonce="R" * 22)
    msgs = [
        msg("s1.feedback", 0, signed(fb("ack", alert_type="anomaly"), "ana")),  # accepted, by = ana
        msg("s1.feedback", 1, fb("ack", alert_type="anomaly", by="ana")),  # unsigned
        msg("s1.feedback", 2, {**signed(fb("ack", alert_type="anomaly"), "ana"), "asset": "p2"}),  # tampered
        msg("s1.feedback", 3, replay),
        msg("s1.feedback", 4, replay),  # replayed
        msg("s1.feedback", 5, signed(fb("ack", alert_type="anomaly"), "ana", ts=WALL - 301 * S)),  # expired
        msg("s1.feedback", 6, signed(fb("ack", alert_type="anomaly"), "ana", ts=WALL + 31 * S)),  # future
        msg("s1.feedback", 7, signed(fb("approve", command_id="c1"), "ana")),  # wrong role
        msg("s1.acks", 8, signed(fb("approve", "p2", command_id="c1"), "eve")),  # wrong asset (line L2)
        msg("s1.acks", 9, signed(fb("approve", command_id="c1"), "eve")),  # accepted
        msg("s1.acks", 10, signed(fb("command_ack", "p2", command_id="c1", status="applied"), "plc")),  # ok
        msg("s1.acks", 11, signed(fb("ack", "p1", alert_type="x", bogus=1), "ana")),  # signed, malformed
        msg("s1.control", 12, signed({"type": "erase", "subject": "bob"}, "dpo")),  # accepted erasure
        msg("s1.control", 13, signed({"type": "erase", "subject": "bob"}, "ana")),  # wrong role
        msg("s1.control", 14, {"type": "promote", "version": "2.0"}),  # unsigned promotion
        msg("s1.control", 15, signed({"type": "promote", "version": "2.0"}, "ana")),  # wrong role
        msg("s1.feedback", 16, {**fb("ack"), "auth": {"principal": "ana"}}),  # malformed auth
        msg("s1.feedback", 17, signed(fb("ack", alert_type="anomaly", by="bob"), "ana")),  # by is not ana
        msg("s1.control", 18, b"not json"),
    ]
    items, dead = run_plant(cfg, msgs)
    fbs = [i for i in items if isinstance(i, Feedback)]
    assert [(f.pos.offset, f.type, f.by) for f in fbs] == [(0, "ack", "ana"), (3, "ack", "ana"),
                                                           (9, "approve", "eve"), (10, "command_ack", "plc")]
    erasures = [i for i in items if not isinstance(i, Feedback)]
    assert [(e.subject, e.by) for e in erasures] == [("bob", "dpo")]
    got = {o.record["source"]["offset"]: (o.record["reason"], o.record.get("principal", "-")) for o in dead}
    assert got == {1: ("unsigned", None), 2: ("bad_signature", "ana"), 4: ("replayed", "ana"),
                   5: ("expired", "ana"), 6: ("future_auth", "ana"), 7: ("forbidden", "ana"),
                   8: ("forbidden", "eve"), 11: ("bad_feedback", "-"), 13: ("forbidden", "ana"),
                   14: ("unsigned", None), 15: ("forbidden", "ana"), 16: ("bad_auth", "ana"),
                   17: ("forbidden", "ana"), 18: ("bad_json", "-")}
    for o in dead:  # the dead letter keeps the message as it came (auth included), never the key
        raw = base64.b64decode(o.record["payload_b64"])
        assert raw == msgs[o.record["source"]["offset"]].value
        assert SECRET.decode() not in o.record["message"]
        if raw.startswith(b"{"):
            assert orjson.loads(raw).get("auth", {}).get("sig", "\0") not in o.record["message"]

    # counted by reason (what aiotstream_deadletters_total{reason} shows)
    stats = RunStats()
    count_outputs(dead, stats)
    for reason in ("unsigned", "bad_signature", "replayed", "expired", "future_auth", "forbidden", "bad_auth"):
        assert stats.get("deadletters", reason) >= 1, reason
    assert stats.get("deadletters", "forbidden") == 5

    # audited: every refusal an entry, attributed to the principal the message claims
    auditor = Auditor.of(cfg, _ctx(cfg))
    heads: dict[str, ChainHead] = {}
    entries = []
    for o in dead:
        for chain, (_, out) in auditor.keyed(o, False):
            head = heads.setdefault(chain, ChainHead(chain))
            ev = auditor.event(out, head)
            if ev is not None:
                entries.append(head.append("s1", ev, wall_ns=0))
    by_offset = {e["details"]["source"]["offset"]: e for e in entries}
    assert by_offset[2]["what"] == "refusal" and by_offset[2]["principal"] == "ana"
    assert by_offset[2]["details"]["reason"] == "bad_signature"
    assert by_offset[1]["principal"] == "ana"  # unsigned: the by it claims
    assert by_offset[14]["principal"] == "anonymous"
    assert by_offset[8]["principal"] == "eve" and by_offset[8]["details"]["reason"] == "forbidden"
    assert set(by_offset) == set(got)


def _ctx(cfg: SiteConfig) -> Any:
    from aiotstream.pdm.runtime import SiteRuntime

    return SiteRuntime(cfg).ctx


def test_a_promotion_signed_by_a_model_admin_passes_auth(tmp_path: Path) -> None:
    """(This site has no ONNX models: the promotion gets as far as the rollout, which says so.)"""
    key = _keys(tmp_path)
    cfg = SiteConfig.from_dict({"site": {"id": "s1"}, "assets": [{"id": "p1"}], "governance": {"erasure": True},
                                "auth": {"principals": [{"id": "max", "roles": ["model_admin"], **key}]}})
    m = signed({"type": "promote", "version": "2.0"}, "max")
    _, dead = run_plant(cfg, [msg("s1.control", 0, m)])
    assert [(o.record["reason"], o.record["message"]) for o in dead] == \
        [("bad_control", 'this site has no ONNX models (model.kind is not "onnx")')]
    assert base64.b64decode(dead[0].record["payload_b64"]) == orjson.dumps(m)


def test_without_auth_signed_messages_are_refused_as_today_and_a_warning(tmp_path: Path,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    from aiotstream.auth import warn_without_auth

    cfg = SiteConfig.from_dict({"site": {"id": "s1"}, "assets": [{"id": "p1"}]})
    items, dead = run_plant(cfg, [msg("s1.feedback", 0, fb("ack", alert_type="a", by="whoever")),
                                  msg("s1.feedback", 1, signed(fb("ack", alert_type="a"), "ana"))])
    assert [(i.type, i.by) for i in items] == [("ack", "whoever")]
    assert [o.record["reason"] for o in dead] == ["bad_feedback"] and "principal" not in dead[0].record
    with caplog.at_level(logging.WARNING, logger="aiotstream.auth"):
        warn_without_auth(cfg)
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "s1.feedback, s1.acks" in caplog.text and "approve commands" in caplog.text


def test_optional_auth_accepts_unsigned(tmp_path: Path) -> None:
    cfg = plant(tmp_path, required=False)
    items, dead = run_plant(cfg, [msg("s1.feedback", 0, fb("ack", alert_type="a", by="whoever")),
                                  msg("s1.feedback", 1, {**signed(fb("ack", alert_type="a"), "ana"), "ts": 1})])
    assert [(i.type, i.by) for i in items] == [("ack", "whoever")]
    assert [o.record["reason"] for o in dead] == ["bad_signature"]


def test_building_flow_feedback(tmp_path: Path) -> None:
    from aiotstream.energy.ingest import BuildingIngest
    from aiotstream.energy.runtime import BuildingRuntime

    key = _keys(tmp_path)
    cfg = SiteConfig.from_dict({
        "site": {"id": "b1", "flow": "energy-optimization"},
        "building": {"interval_s": 10, "day_s": 240, "zones": [{"id": "z1", "floor": "f1"},
                                                                {"id": "z2", "floor": "f2"}]},
        "window": {"allowed_lateness_s": 0}, "kpi": {"periods_s": [20]},
        "auth": {"principals": [{"id": "eve", "roles": ["engineer"], "assets": ["line:f1"], **key}]}})
    ing = BuildingIngest(BuildingRuntime(cfg), now_ns=lambda: WALL)
    mw = {"start": WALL, "end": WALL + 60 * S}
    out = ing.decode([msg("b1.feedback", 0, signed(fb("maintenance", "z1", **mw), "eve")),
                      msg("b1.feedback", 1, signed(fb("maintenance", "z2", **mw), "eve")),
                      msg("b1.feedback", 2, fb("maintenance", "z1", **mw))])
    dead = [o for o in out if isinstance(o, Output)]
    zones = {x[0]: x[1] for x in out if not isinstance(x, Output)}
    assert [(f.type, f.by, f.pos.offset) for f in zones["z1"].feedback] == [("maintenance", "eve", 0)]
    assert "z2" not in zones or not zones["z2"].feedback
    assert sorted((o.record["source"]["offset"], o.record["reason"], o.record["principal"]) for o in dead) == \
        [(1, "forbidden", "eve"), (2, "unsigned", None)]


def test_the_pii_policy_covers_the_principal(tmp_path: Path) -> None:
    cfg = plant(tmp_path)
    _, dead = run_plant(cfg, [msg("s1.feedback", 0, signed(fb("approve", command_id="c"), "ana"))])
    pol = Policy("pseudonymise", key=b"k" * 32)
    rec = pol.apply(dead[0]).record
    assert rec["principal"] == pol.pseudonym("ana")
    payload = orjson.loads(base64.b64decode(rec["payload_b64"]))
    assert payload["auth"]["principal"] == pol.pseudonym("ana") and rec["payload_redacted"] is True


def test_feedback_over_a_device_source_with_format_auto_is_checked_too(tmp_path: Path) -> None:
    """An MQTT subscription with format = "auto" hands payloads to the decoder that takes feedback: with [auth]
    they are verified like those from Kafka (before this, an unsigned ack over MQTT took effect)."""
    from aiotstream.records import DecodeHints, DeviceMessage

    cfg = plant(tmp_path)
    hints = DecodeHints("auto")
    body = fb("ack", alert_type="anomaly")

    def dev(offset: int, payload: dict[str, Any], asset: str | None = None) -> DeviceMessage:
        return DeviceMessage("mqtt:plant/p1/fb", -1, offset, orjson.dumps(payload), hints, asset, None, WALL)

    items, dead = run_plant(cfg, [dev(0, body), dev(1, signed(body, "ana")),
                                  dev(2, signed(fb("approve", command_id="c"), "ana")),
                                  dev(3, signed(body, "ana"), asset="p2"),
                                  dev(4, {"asset": "p1", "ts": WALL - S, "metric": "t", "value": 1.5})])
    assert [(type(i).__name__, getattr(i, "by", None), i.pos.offset) for i in items] == \
        [("Feedback", "ana", 1), ("Reading", None, 4)]
    assert [(o.record["source"]["offset"], o.record["reason"]) for o in dead] == \
        [(0, "unsigned"), (2, "forbidden"), (3, "asset_mismatch")]


def test_a_signed_message_refused_after_the_verifier_is_audited_as_its_acting_principal(tmp_path: Path) -> None:
    """E.g. an approval, signed without 'by', for a command that is no longer pending: the refusal entry names
    the principal that signed it (on whose behalf), not 'anonymous'."""
    cfg = plant(tmp_path)
    rt_ctx = _ctx(cfg)
    auditor = Auditor.of(cfg, rt_ctx)
    body = signed(fb("approve", command_id="c9"), "eve")
    rec = {"reason": "command_not_pending", "message": "m", "asset": "p1", "id": "x",
           "source": {"topic": "s1.feedback", "partition": 0, "offset": 3},
           "payload_b64": base64.b64encode(orjson.dumps(body)).decode()}
    ev = auditor.event(Output("deadletter", "p1", rec), ChainHead("c"))
    assert ev is not None and (ev.principal, ev.what) == ("eve", "refusal")
    rec["payload_b64"] = base64.b64encode(orjson.dumps(signed(fb("ack"), "con", on_behalf_of="ana"))).decode()
    assert auditor.event(Output("deadletter", "p1", rec), ChainHead("c")).principal == "ana"  # type: ignore[union-attr]
    unsigned_site = Auditor.of(SiteConfig.from_dict({"site": {"id": "s1"}, "assets": [{"id": "p1"}]}), rt_ctx)
    assert unsigned_site.event(Output("deadletter", "p1", rec), ChainHead("c")).principal == "anonymous"  # type: ignore[union-attr]

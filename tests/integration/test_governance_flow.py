"""The PII policy and erasure requests in a whole flow (in-process Bytewax run_main, simulator source; issue 19
item 3): the policy applies to every output before any sink; an erasure request on the control topic makes
that person's id a pseudonym in every later output even under ``pii = "keep"``, others stay as they are."""
from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from bytewax.testing import TestingSink, run_main

from aiotstream.config import SiteConfig, default_site
from aiotstream.dataflow import build_flow
from aiotstream.governance import ERASED, Policy
from aiotstream.io.simulator import SimulatorSource
from aiotstream.records import Output
from aiotstream.schemas import validator
from aiotstream.sim.plant import PlantSimulator, SimMessage

BASE = {"inputs": {"tail": False}, "kpi": {"period_s": 5}}


@pytest.fixture(autouse=True)
def _no_erasures() -> Iterator[None]:
    ERASED.clear()
    yield
    ERASED.clear()


@pytest.fixture(scope="module")
def sim() -> PlantSimulator:
    return PlantSimulator(default_site(3).all_assets(), duration_s=40.0, n_faults=2, seed=3, warmup_s=22.0)


def _run(cfg: SiteConfig, messages: list[SimMessage]) -> list[Output]:
    out: list[Output] = []
    run_main(build_flow(cfg, SimulatorSource(messages, cfg.site.id, batch=97), TestingSink(out), tail=False))
    return out


def _opened(cfg: SiteConfig, sim: PlantSimulator) -> dict:
    """The first alert the flow opens with ``cfg`` (its id depends on the config hash)."""
    out = _run(cfg, list(sim.messages()))
    return next(o.record for o in out if o.kind == "alert" and o.record["event"] == "opened")


def _feedback(alert: dict, kind: str, by: str, dt: int) -> SimMessage:
    body = {"schema": "aiotstream.feedback/1", "type": kind, "asset": alert["asset"],
            "alert_id": alert["alert_id"], "ts": alert["at_ns"] + dt, "by": by}
    return SimMessage("feedback", alert["asset"], alert["at_ns"] + dt, orjson.dumps(body))


def _messages(sim: PlantSimulator, alert: dict, erase: bytes | None) -> list[SimMessage]:
    msgs = list(sim.messages())
    first = [] if erase is None else [SimMessage("control", "x", 0, erase)]
    return first + msgs + [_feedback(alert, "ack", "ana", 1), _feedback(alert, "clear", "bo", 2)]


def _alert_events(out: list[Output], alert_id: str) -> dict[str, dict]:
    return {o.record["event"]: o.record for o in out if o.kind == "alert" and o.record["alert_id"] == alert_id}


def _key(tmp_path: Path) -> Path:
    key = tmp_path / "pseudonym.key"
    key.write_bytes(b"0123456789abcdef0123456789abcdef\n")
    return key


def test_an_erased_person_is_a_pseudonym_in_later_outputs_under_keep(sim: PlantSimulator,
                                                                     tmp_path: Path) -> None:
    cfg = default_site(3, **BASE, governance={"erasure": True, "pseudonym_key_file": str(_key(tmp_path))})
    opened = _opened(cfg, sim)
    erase = orjson.dumps({"type": "erase", "subject": "ana", "by": "dpo"})
    out = _run(cfg, _messages(sim, opened, erase))
    ev = _alert_events(out, opened["alert_id"])
    pn = Policy.from_config(cfg).pseudonym("ana")
    assert ev["acknowledged"]["acknowledged_by"] == ev["acknowledged"]["by"] == pn
    assert ev["cleared"]["cleared_by"] == "operator:bo" and ev["cleared"]["acknowledged_by"] == pn  # kept: not erased
    assert not any(b'"ana"' in orjson.dumps(o.record) or b':ana"' in orjson.dumps(o.record) for o in out)
    assert not [o for o in out if o.kind == "deadletter"]  # the request was taken, not dead-lettered
    v = validator()
    for o in out:
        assert next(iter(v.iter_errors(o.record)), None) is None


def test_without_an_erasure_keep_keeps_names(sim: PlantSimulator) -> None:
    cfg = default_site(3, **BASE, governance={"erasure": True})
    opened = _opened(cfg, sim)
    out = _run(cfg, _messages(sim, opened, None))
    ev = _alert_events(out, opened["alert_id"])
    assert ev["acknowledged"]["acknowledged_by"] == "ana" and ev["cleared"]["cleared_by"] == "operator:bo"


def test_pii_drop_and_pseudonymise_apply_to_every_output(sim: PlantSimulator, tmp_path: Path) -> None:
    cfg = default_site(3, **BASE, governance={"pii": "drop"})
    opened = _opened(cfg, sim)
    out = _run(cfg, _messages(sim, opened, None))
    ev = _alert_events(out, opened["alert_id"])
    assert ev["acknowledged"]["acknowledged_by"] is None and ev["cleared"]["cleared_by"] == "operator"
    assert not any(b'"ana"' in orjson.dumps(o.record) or b':bo"' in orjson.dumps(o.record) for o in out)
    cfg = default_site(3, **BASE, governance={"pii": "pseudonymise", "pseudonym_key_file": str(_key(tmp_path))})
    opened = _opened(cfg, sim)
    out = _run(cfg, _messages(sim, opened, None))
    ev = _alert_events(out, opened["alert_id"])
    pol = Policy.from_config(cfg)
    assert ev["cleared"]["cleared_by"] == "operator:" + pol.pseudonym("bo") and ev["cleared"]["acknowledged_by"] == \
        pol.pseudonym("ana")


def test_a_malformed_erasure_request_is_a_dead_letter(sim: PlantSimulator) -> None:
    bad = orjson.dumps({"type": "erase", "subject": "", "by": "dpo"})
    out = _run(default_site(3, **BASE, governance={"erasure": True}), [SimMessage("control", "x", 0, bad),
                                                                        *sim.messages()])
    dead = [o.record for o in out if o.kind == "deadletter"]
    assert [(d["reason"], d["message"]) for d in dead] == [
        ("bad_control", "erase: field 'subject' must be a string of 1..256 characters")]
    assert len(ERASED) == 0


def test_erasures_survive_a_restart_from_the_recovery_snapshot(tmp_path: Path) -> None:
    """Run 1 takes an erasure request, with recovery on; then, in a "new process" (the in-memory list
    cleared), run 2 resumes from the recovery directory and reads only new input: a malformed feedback
    message by the erased person. Its dead letter's payload carries the pseudonym, not the name."""
    from bytewax.recovery import RecoveryConfig, init_db_dir

    cfg = default_site(1, **BASE, governance={"erasure": True, "pseudonym_key_file": str(_key(tmp_path))})
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    init_db_dir(recovery, 1)
    erase = SimMessage("control", "x", 0, orjson.dumps({"type": "erase", "subject": "ana", "by": "dpo"}))
    bad = {"schema": "aiotstream.feedback/1", "type": "ack", "asset": "asset-000", "alert_type": "anomaly",
           "ts": 1_767_225_600_000_000_000, "by": "ana", "bogus": 1}
    late = SimMessage("feedback", "asset-000", 1, orjson.dumps(bad))

    def run(messages: list[SimMessage]) -> list[Output]:
        out: list[Output] = []
        flow = build_flow(cfg, SimulatorSource(messages, cfg.site.id, batch=1), TestingSink(out), tail=False)
        run_main(flow, recovery_config=RecoveryConfig(str(recovery)))
        return out

    assert [o for o in run([erase]) if o.kind != "audit"] == []  # only the audit trail's config load
    assert "ana" in ERASED
    ERASED.clear()
    out = run([erase, late])  # resumes after the first message: only the feedback is read
    dead = [o.record for o in out if o.kind == "deadletter"]
    assert len(dead) == 1 and dead[0]["reason"] == "bad_feedback" and dead[0]["payload_redacted"] is True
    body = orjson.loads(base64.b64decode(dead[0]["payload_b64"]))
    assert body["by"] == Policy.from_config(cfg).pseudonym("ana")

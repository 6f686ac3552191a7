"""Alert scoring against ground truth, and lineage: ids, time formatting, the lineage block."""
from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aiotstream
from aiotstream.evaluate import score_alerts
from aiotstream.lineage import FlowContext, inputs_block, iso_ns, make_id, window_block

S = 1_000_000_000
SCHEMA = json.loads((Path(aiotstream.__file__).parent / "schemas" / "outputs.schema.json").read_text())
TIME_RE = re.compile(SCHEMA["$defs"]["time"]["pattern"])
LINEAGE_SCHEMA = {"$schema": SCHEMA.get("$schema"), "$defs": SCHEMA["$defs"], "$ref": "#/$defs/lineage"}


def fault(asset: str, kind: str, onset_s: float, end_s: float | None) -> dict:
    return {"asset": asset, "kind": kind, "onset_ns": int(onset_s * S), "end_ns": None if end_s is None else int(end_s * S)}


def alert(asset: str, opened_s: float, status: str = "open") -> dict:
    return {"asset": asset, "status": status, "opened_at_ns": int(opened_s * S)}


# ---------------------------------------------------------------------------------------------
# score_alerts
# ---------------------------------------------------------------------------------------------
TRUTH = [
    fault("a", "imbalance", 100, 200),
    fault("b", "bearing", 100, None),
    fault("c", "misalignment", 50, 80),
    fault("d", "looseness", 10, 20),
]
ALERTS = [
    alert("a", 103),  # detects a (onset 100 .. 105); true
    alert("a", 101),  # also detects a, earlier: delay = 1 s; true
    alert("a", 100, status="cleared"),  # not an opened alert: ignored
    alert("b", 120),  # after onset + 5 s: b missed; fault never ends -> still a true alert
    alert("c", 84),  # after onset + 5 s: c missed; 84 <= end 80 + 5 -> true alert
    alert("c", 86),  # 86 > 85: false alert
    alert("e", 100),  # healthy asset: false alert
    alert("d", 9),  # 1 s before d's onset: false without lead, detects d with lead >= 1 s
]


def test_score_alerts_hand_computed() -> None:
    r = score_alerts(TRUTH, ALERTS, tolerance_ns=5 * S)
    # faults 4, detected only a -> recall 1/4; opened alerts 7 (the cleared one does not count),
    # true: a@103, a@101, b@120, c@84 = 4 -> precision 4/7; false: c@86, e@100, d@9 = 3
    assert (r.faults, r.detected, r.alerts, r.true_alerts, r.false_alerts) == (4, 1, 7, 4, 3)
    assert r.recall == pytest.approx(0.25)
    assert r.precision == pytest.approx(4 / 7)
    assert r.delays_s == {"a/imbalance": pytest.approx(1.0)}
    assert sorted(r.missed) == ["b/bearing", "c/misalignment", "d/looseness"]


def test_score_alerts_lead_window() -> None:
    r = score_alerts(TRUTH, ALERTS, tolerance_ns=5 * S, lead_ns=1 * S)
    # d@9 is now within [onset 10 - lead 1, 10 + 5]: detected (delay clipped at 0) and true
    assert (r.detected, r.true_alerts, r.false_alerts) == (2, 5, 2)
    assert r.recall == pytest.approx(0.5)
    assert r.precision == pytest.approx(5 / 7)
    assert r.delays_s["d/looseness"] == 0.0
    assert "d/looseness" not in r.missed
    # one ns before the lead window: neither a detection nor a true alert
    truth = [fault("d", "looseness", 10, 20)]
    r = score_alerts(truth, [{"asset": "d", "status": "open", "opened_at_ns": 9 * S - 1}], 5 * S, lead_ns=S)
    assert (r.detected, r.true_alerts, r.false_alerts) == (0, 0, 1)
    r = score_alerts(truth, [{"asset": "d", "status": "open", "opened_at_ns": 9 * S}], 5 * S, lead_ns=S)
    assert (r.detected, r.true_alerts) == (1, 1)


def test_tolerance_boundary() -> None:
    truth = [fault("a", "imbalance", 100, None)]
    at_edge = score_alerts(truth, [alert("a", 105)], tolerance_ns=5 * S)
    assert at_edge.detected == 1 and at_edge.delays_s == {"a/imbalance": pytest.approx(5.0)}
    past = score_alerts(truth, [{"asset": "a", "status": "open", "opened_at_ns": 105 * S + 1}], tolerance_ns=5 * S)
    # too late to count as a detection, but the fault is still on: a true alert, not a false one
    assert (past.detected, past.recall, past.missed) == (0, 0.0, ["a/imbalance"])
    assert (past.true_alerts, past.false_alerts, past.precision) == (1, 0, 1.0)


def test_alert_after_fault_end_plus_tolerance_is_false() -> None:
    truth = [fault("a", "imbalance", 100, 110)]
    r = score_alerts(truth, [alert("a", 115), alert("a", 116)], tolerance_ns=5 * S)
    # 115 <= 110 + 5: true; 116 > 115: false; neither is within onset + 5 = 105: missed
    assert (r.detected, r.true_alerts, r.false_alerts) == (0, 1, 1)
    assert r.precision == pytest.approx(0.5)


def test_false_alert_on_healthy_asset_only() -> None:
    r = score_alerts([], [alert("x", 10)])
    assert (r.faults, r.recall, r.alerts, r.true_alerts, r.false_alerts, r.precision) == (0, 1.0, 1, 0, 1, 0.0)


def test_cleared_alerts_ignored_and_empty_inputs() -> None:
    truth = [fault("a", "imbalance", 100, None)]
    r = score_alerts(truth, [alert("a", 101, status="cleared")])
    assert (r.alerts, r.detected, r.recall, r.precision, r.missed) == (0, 0, 0.0, 1.0, ["a/imbalance"])
    r = score_alerts([], [])
    assert (r.recall, r.precision, r.faults, r.alerts) == (1.0, 1.0, 0, 0)


def test_same_asset_two_faults_one_alert_each() -> None:
    truth = [fault("a", "imbalance", 100, 150), fault("a", "bearing", 300, None)]
    r = score_alerts(truth, [alert("a", 102), alert("a", 301.5), alert("a", 200)], tolerance_ns=5 * S)
    # 102 detects imbalance (2 s), 301.5 detects bearing (1.5 s); 200 is between faults: false
    assert r.delays_s == {"a/imbalance": pytest.approx(2.0), "a/bearing": pytest.approx(1.5)}
    assert (r.recall, r.true_alerts, r.false_alerts) == (1.0, 2, 1)


def test_accepts_iterators() -> None:
    r = score_alerts(iter(TRUTH), iter(ALERTS), tolerance_ns=5 * S)
    assert (r.faults, r.alerts) == (4, 7)


# ---------------------------------------------------------------------------------------------
# make_id
# ---------------------------------------------------------------------------------------------
PARTS = ("alert", "plant-a", "pump-001", 1_000, 2_000)


def test_make_id_deterministic_and_shaped() -> None:
    a = make_id(*PARTS)
    assert a == make_id(*PARTS)
    assert re.fullmatch(r"[0-9a-f]{32}", a)
    jsonschema.validate(a, {"$defs": SCHEMA["$defs"], "$ref": "#/$defs/id"})


@pytest.mark.parametrize("i", range(len(PARTS)))
def test_make_id_sensitive_to_every_part(i: int) -> None:
    changed = list(PARTS)
    changed[i] = f"{changed[i]}x" if isinstance(changed[i], str) else changed[i] + 1
    assert make_id(*changed) != make_id(*PARTS)


def test_make_id_order_count_and_boundaries_matter() -> None:
    assert make_id("a", "b") != make_id("b", "a")
    assert make_id("ab", "c") != make_id("a", "bc")  # parts are separated, not concatenated
    assert make_id("a") != make_id("a", "")
    assert make_id("a", "b") != make_id("ab")
    assert len({make_id("x", i) for i in range(1_000)}) == 1_000


# ---------------------------------------------------------------------------------------------
# iso_ns
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("t_ns", "text"),
    [
        (0, "1970-01-01T00:00:00.000000Z"),
        # 1e9 s after the epoch is the well-known 2001-09-09 01:46:40 UTC
        (1_000_000_000 * S, "2001-09-09T01:46:40.000000Z"),
        # 2026-01-01: 56 years incl. 14 leap days = 20454 days * 86400 = 1_767_225_600 s
        (1_767_225_600 * S + 123_456_000, "2026-01-01T00:00:00.123456Z"),
        # 2000-01-01 = 946_684_800 s; + 59 days = 2000-02-29 (leap day)
        ((946_684_800 + 59 * 86_400) * S + 500_000_000, "2000-02-29T00:00:00.500000Z"),
        (86_399 * S + 999_999_000, "1970-01-01T23:59:59.999999Z"),
    ],
)
def test_iso_ns_known_values(t_ns: int, text: str) -> None:
    assert iso_ns(t_ns) == text


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 4_102_444_800_000_000))  # microseconds up to 2100-01-01
def test_iso_ns_microsecond_exact(us: int) -> None:
    expected = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")
    assert iso_ns(us * 1_000) == expected
    assert TIME_RE.fullmatch(iso_ns(us * 1_000))


# ---------------------------------------------------------------------------------------------
# lineage blocks
# ---------------------------------------------------------------------------------------------
def test_inputs_and_window_blocks() -> None:
    assert inputs_block((("wf", 0, 5, 9), ("wf", 1, 2, 2))) == [
        {"topic": "wf", "partition": 0, "first_offset": 5, "last_offset": 9},
        {"topic": "wf", "partition": 1, "first_offset": 2, "last_offset": 2},
    ]
    assert inputs_block(()) == []
    start = 1_767_225_600 * S
    assert window_block(start, start + S) == {
        "start": "2026-01-01T00:00:00.000000Z", "end": "2026-01-01T00:00:01.000000Z",
        "start_ns": start, "end_ns": start + S, "time": "event"}


def test_flow_context_block_has_every_lineage_key() -> None:
    ctx = FlowContext(site="plant-a", flow="predictive-maintenance", flow_version="1", config_hash="0123456789abcdef")
    assert ctx.code_version == aiotstream.code_version()
    assert ctx.code_version.startswith(aiotstream.__version__)
    start = 1_767_225_600 * S
    before = time.time()
    block = ctx.block(
        inputs=inputs_block((("plant-a.waveforms", 0, 10, 19),)),
        window=window_block(start, start + S),
        features={"set": "vibration-basic", "version": 1},
        model={"name": "baseline", "version": "1", "sha256": "a" * 64, "variant": "champion"},
    )
    after = time.time()
    required = set(SCHEMA["$defs"]["lineage"]["required"])
    assert set(block) == required - {"id"}
    for key in ("site", "flow", "flow_version", "config_hash", "code_version", "inputs", "window", "features",
                "model", "produced_at"):
        assert key in block
    assert (block["site"], block["flow"], block["flow_version"], block["config_hash"]) == (
        "plant-a", "predictive-maintenance", "1", "0123456789abcdef")
    assert block["inputs"][0]["first_offset"] == 10
    produced = datetime.strptime(block["produced_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before - 1 <= produced.timestamp() <= after + 1
    jsonschema.validate({**block, "id": make_id("score", "plant-a", "pump-001", start)}, LINEAGE_SCHEMA)


def test_flow_context_block_allows_null_parts() -> None:
    ctx = FlowContext("s", "f", "2", "fedcba9876543210", code_version="9.9")
    block = ctx.block(inputs=[], window=None, features=None, model=None)
    assert (block["window"], block["features"], block["model"], block["code_version"]) == (None, None, None, "9.9")
    jsonschema.validate({**block, "id": make_id("kpi")}, LINEAGE_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):  # the schema really checks: no id -> invalid
        jsonschema.validate(block, LINEAGE_SCHEMA)

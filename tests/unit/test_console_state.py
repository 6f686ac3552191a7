"""The console's state folding: output records in, the latest state per alert, command, model and KPI out."""
from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aiotstream.console.state import BINS, ConsoleState

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "plant-control"
S = 1_000_000_000


def alert(aid: str, event: str, status: str, at: int, asset: str = "p1", severity: str = "warning",
          **kw: object) -> dict:
    return {"alert_id": aid, "event": event, "status": status, "asset": asset, "at_ns": at, "severity": severity,
            "alert_type": "anomaly", **kw}


def command(cid: str, status: str, at: int, asset: str = "p1", **kw: object) -> dict:
    return {"command_id": cid, "status": status, "asset": asset, "at_ns": at, "requested_at_ns": at, **kw}


def score(asset: str, s: float, end: int, ref: tuple[str, str] = ("m", "1"), variant: str = "champion",
          shadow: tuple[str, float] | None = None) -> dict:
    rec = {"asset": asset, "score": s, "anomalous": s >= 0.9, "window": {"end_ns": end},
           "model": {"name": ref[0], "version": ref[1], "variant": variant}}
    if shadow is not None:
        rec["shadow"] = {"model": {"name": "m", "version": shadow[0], "variant": "shadow"}, "score": shadow[1],
                         "anomalous": False}
    return rec


def kpi(start: int, revision: int = 0, oee: float | None = 0.5, scope: str = "site", scheme: str = "10") -> dict:
    return {"scope": scope, "asset": None, "line": None, "revision": revision, "kpis": {"oee": oee},
            "period": {"scheme": scheme, "label": None, "length_s": 10, "start_ns": start, "end_ns": start + 10 * S}}


def test_an_alerts_lifecycle_moves_it_through_the_open_table_and_out() -> None:
    s = ConsoleState()
    s.fold("alert", alert("a1", "opened", "open", 1 * S, inputs=[{"topic": "waveforms"}]))
    assert [(a["alert_id"], a["status"]) for a in s.open_alerts()] == [("a1", "open")]
    s.fold("alert", alert("a1", "escalated", "open", 2 * S, escalation_level=1))
    s.fold("alert", alert("a1", "acknowledged", "acknowledged", 3 * S, acknowledged_by="ana",
                          inputs=[{"topic": "feedback"}], window=None))
    (a,) = s.open_alerts()
    assert (a["status"], a["acknowledged_by"], a["event"]) == ("acknowledged", "ana", "acknowledged")
    # the lineage of the opening stays with the alert; the latest event has its own
    assert a["opened_lineage"]["inputs"] == [{"topic": "waveforms"}] and a["inputs"] == [{"topic": "feedback"}]
    s.fold("alert", alert("a1", "cleared", "cleared", 4 * S, cleared_by="bo"))
    assert s.open_alerts() == []
    assert [a["cleared_by"] for a in s.recent_closed_alerts()] == ["bo"]
    # a label after the clear is its latest event; an older event arriving late does not reopen it
    s.fold("alert", alert("a1", "labelled", "cleared", 5 * S, label={"label": "true_fault"}))
    s.fold("alert", alert("a1", "escalated", "open", 2 * S))
    assert s.open_alerts() == [] and s.alert("a1")["event"] == "labelled"
    assert s.clock("p1") == 5 * S


def test_open_alerts_list_critical_first_then_the_newest() -> None:
    s = ConsoleState()
    s.fold("alert", alert("w-old", "opened", "open", 1 * S))
    s.fold("alert", alert("c", "opened", "open", 2 * S, severity="critical", asset="p2"))
    s.fold("alert", alert("w-new", "opened", "open", 3 * S, asset="p3"))
    s.fold("alert", alert("i", "opened", "open", 4 * S, severity="info", asset="p4"))
    assert [a["alert_id"] for a in s.open_alerts()] == ["c", "w-new", "w-old", "i"]


def test_memory_is_bounded_and_cleared_alerts_go_first() -> None:
    s = ConsoleState(max_alerts=3)
    s.fold("alert", alert("o1", "opened", "open", 1))
    s.fold("alert", alert("c1", "cleared", "cleared", 2))
    s.fold("alert", alert("o2", "opened", "open", 3))
    s.fold("alert", alert("c2", "cleared", "cleared", 4))
    s.fold("alert", alert("o3", "opened", "open", 5))
    assert list(s.alerts) == ["o1", "o2", "o3"]  # c1, then c2 went first
    s.fold("alert", alert("o4", "opened", "open", 6))  # nothing closed left: the oldest goes
    assert list(s.alerts) == ["o2", "o3", "o4"]


def test_commands_awaiting_approval_are_pending_until_the_flow_says_otherwise() -> None:
    s = ConsoleState(max_commands=2)
    s.fold("command", command("k1", "awaiting_approval", 1 * S, expires_at_ns=9 * S))
    s.fold("command", command("k2", "blocked", 2 * S, blocked_by={"check": "max"}))
    assert [c["command_id"] for c in s.pending_commands()] == ["k1"]
    assert [c["command_id"] for c in s.recent_commands()] == ["k2"]
    s.fold("command", command("k3", "awaiting_approval", 3 * S))  # over the bound: the closed k2 goes
    assert sorted(s.commands) == ["k1", "k3"]
    s.fold("command", command("k1", "emitted", 4 * S, by="ana"))
    assert [c["command_id"] for c in s.pending_commands()] == ["k3"]
    assert s.command("k1")["by"] == "ana"


def test_model_versions_per_asset_with_score_histograms() -> None:
    s = ConsoleState()
    for i, x in enumerate([0.0, 0.04, 0.51, 0.99, 1.0]):
        s.fold("score", score("p1", x, i * S, shadow=("2", 0.5)))
    s.fold("score", score("p2", 0.3, 9 * S, ref=("m", "3"), variant="canary"))
    models = s.asset_models()
    p1, p2 = models["p1"], models["p2"]
    assert (p1.live, p1.live_variant, p1.shadow) == ("m@1", "champion", "m@2")
    assert (p2.live, p2.live_variant, p2.shadow) == ("m@3", "canary", None)
    champ = p1.versions[("m@1", "champion")]
    assert champ.windows == 5 and champ.anomalous == 2 and len(champ.hist) == BINS
    assert champ.hist[0] == 2 and champ.hist[BINS // 2] == 1 and champ.hist[-1] == 2
    shadow = p1.versions[("m@2", "shadow")]
    assert shadow.windows == 5 and shadow.hist[BINS // 2] == 5
    # the shadow stopped: the asset has none any more; its history stays
    s.fold("score", score("p1", 0.2, 10 * S))
    assert s.asset_models()["p1"].shadow is None and ("m@2", "shadow") in s.asset_models()["p1"].versions


def test_rollback_target_is_the_champion_before_the_latest_promotion() -> None:
    s = ConsoleState()
    assert s.previous_champion() is None
    s.fold("model", {"event": "promoted", "variant": "champion", "ref": "m@1"})
    assert s.previous_champion() is None
    s.fold("model", {"event": "promoted", "variant": "shadow", "ref": "m@3"})
    s.fold("model", {"event": "refused", "variant": "champion", "ref": "m@9"})
    s.fold("model", {"event": "promoted", "variant": "champion", "ref": "m@2"})
    assert s.previous_champion() == "m@1"
    s.fold("model", {"event": "promoted", "variant": "champion", "ref": "m@1"})  # rolled back
    assert s.previous_champion() == "m@2"
    assert [e["ref"] for e in s.model_events] == ["m@1", "m@3", "m@9", "m@2", "m@1"]


def test_kpis_keep_the_highest_revision_and_a_bounded_history() -> None:
    s = ConsoleState(kpi_history=3)
    s.fold("kpi", kpi(0, revision=1, oee=0.7))
    s.fold("kpi", kpi(0, revision=0, oee=0.1))  # an older revision arriving late
    for k in range(1, 5):
        s.fold("kpi", kpi(k * 10 * S, oee=k / 10))
    s.fold("kpi", kpi(0, oee=0.9, scope="asset", scheme="10") | {"asset": "p1"})
    assert s.kpi_keys() == [("site", "site", "10"), ("asset", "p1", "10")]
    series = s.kpi_series(("site", "site", "10"))
    assert [r["period"]["start_ns"] for r in series] == [20 * S, 30 * S, 40 * S]
    s2 = ConsoleState()
    s2.fold("kpi", kpi(0, revision=1, oee=0.7))
    s2.fold("kpi", kpi(0, revision=0, oee=0.1))
    assert s2.kpi_series(("site", "site", "10"))[0]["kpis"]["oee"] == 0.7


def test_dead_letters_are_counted_by_reason() -> None:
    s = ConsoleState(recent=2)
    for r in ["bad_json", "too_old", "bad_json", "bad_feedback"]:
        s.fold("deadletter", {"reason": r, "message": "m", "asset": None, "source": {"topic": "t"}})
    assert s.deadletter_counts() == [("bad_json", 2), ("too_old", 1), ("bad_feedback", 1)]
    assert [d["reason"] for d in s.recent_deadletters] == ["bad_json", "bad_feedback"]


def test_the_golden_plant_outputs_fold_into_the_alerts_still_open() -> None:
    s = ConsoleState()
    recs = {k: [orjson.loads(x) for x in (GOLDEN / f"{k}s.jsonl").read_bytes().splitlines() if x.strip()]
            for k in ("alert", "command", "kpi")}
    for kind, rs in recs.items():
        for r in rs:
            s.fold(kind, r)
    assert s.bad_records == 0 and s.records == sum(map(len, recs.values()))
    last: dict[str, str] = {}
    for r in recs["alert"]:
        last[r["alert_id"]] = r["status"]
    want = {a for a, st_ in last.items() if st_ != "cleared"}
    assert want and {a["alert_id"] for a in s.open_alerts()} == want
    assert {c["command_id"] for c in s.recent_commands(1000)} == {c["command_id"] for c in recs["command"]}
    assert len(s.kpi_keys()) == len({(k["scope"], k["asset"] or k["line"] or "site", k["period"]["scheme"])
                                     for k in recs["kpi"]})


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                    max_leaves=12)
FIELDS = ["alert_id", "command_id", "event", "status", "asset", "at_ns", "score", "window", "model", "shadow",
          "scope", "period", "revision", "reason", "ref", "variant", "severity", "requested_at_ns"]


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(["alert", "command", "kpi", "score", "deadletter", "model"]),
       rec=st.one_of(JSON, st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=8)))
@example(kind="alert", rec={"alert_id": None, "severity": []})  # (found by CI: the views' sort raised)
@example(kind="alert", rec={"alert_id": "a", "at_ns": "soon"})
@example(kind="command", rec={"command_id": "c", "status": "awaiting_approval", "requested_at_ns": [1]})
def test_any_record_is_folded_or_counted_as_bad_never_an_exception(kind: str, rec: object) -> None:
    s = ConsoleState()
    s.fold(kind, rec)
    assert s.records == 1
    s.open_alerts(), s.pending_commands(), s.asset_models(), s.kpi_keys(), s.deadletter_counts()
    for key in s.kpi_keys():
        s.kpi_series(key)


@pytest.mark.parametrize("kind", ["alert", "command", "score", "kpi", "deadletter", "model"])
def test_a_record_of_the_wrong_shape_is_counted_bad(kind: str) -> None:
    s = ConsoleState()
    s.fold(kind, {"nothing": 1} if kind != "model" else [1])
    assert s.bad_records == 1

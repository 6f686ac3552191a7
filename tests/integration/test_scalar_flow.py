"""Scalar readings through the whole plant flow (in-process Bytewax, no broker): a site with no waveform
frames gets scalar records (aiotstream.scalar/1), an explained scalar_anomaly alert for an injected fault through the alert
book (acknowledged by feedback, cleared when the fault ends), KPIs, and a recovery snapshot that resumes
bit for bit."""
from __future__ import annotations

import copy
import pickle

import numpy as np
import orjson
import pytest
from bytewax.testing import TestingSink, TestingSource, run_main

from aiotstream.codecs import encode_reading
from aiotstream.config import SiteConfig
from aiotstream.dataflow import build_flow
from aiotstream.pdm.asset import AssetAnalyzer
from aiotstream.pdm.ingest import Ingestor
from aiotstream.pdm.runtime import SiteRuntime
from aiotstream.records import Output, SourceMessage
from aiotstream.schemas import validator

S = 1_000_000_000
START = 1_767_225_600 * S
ROWS = 1500
FAULT = (1000, 1120)  # rows with the fault on "current"
CHANNELS = ("temperature", "current", "pressure")


def site(readings_only: bool = True) -> SiteConfig:
    return SiteConfig.from_dict({
        "site": {"id": "scalar-site"},
        "assets": [{"id": "pump-1"}, {"id": "pump-2"}],
        "inputs": {"tail": False},
        "kpi": {"periods_s": [300]},
        "scalar": {"readings_only": readings_only},
    })


def readings(seed: int = 11) -> list[tuple[str, int, str, float]]:
    """Two pumps, three channels at 1 Hz, correlated noise; pump-1's current steps by 8 of its sd in FAULT.
    Readings are shuffled within each second (one metric per record, any order)."""
    rng = np.random.default_rng(seed)
    out = []
    for asset in ("pump-1", "pump-2"):
        base = rng.normal(size=(ROWS, 1))
        x = np.hstack([60 + 0.5 * (base + 0.3 * rng.normal(size=(ROWS, 1))),
                       12 + 0.2 * (base + 0.3 * rng.normal(size=(ROWS, 1))),
                       3 + 0.05 * rng.normal(size=(ROWS, 1))])
        if asset == "pump-1":
            x[FAULT[0]:FAULT[1], 1] += 8 * 0.2
        for r in range(ROWS):
            for j in rng.permutation(3):
                out.append((asset, START + r * S, CHANNELS[j], round(float(x[r, j]), 6)))
    out.sort(key=lambda e: e[1])  # time order across assets; within a second, the shuffled order
    return out


def messages(feedback: list[dict] | None = None) -> list[SourceMessage]:
    msgs = [SourceMessage("scalar-site.readings", 0, i, encode_reading(a, t, m, v))
            for i, (a, t, m, v) in enumerate(readings())]
    for i, fb in enumerate(feedback or []):  # feedback arrives with the readings of its time
        at = next(k for k, m in enumerate(msgs) if orjson.loads(m.value).get("ts", 0) > fb["ts"])
        msgs.insert(at, SourceMessage("scalar-site.feedback", 0, i, orjson.dumps(fb)))
    return msgs


def run(cfg: SiteConfig, msgs: list[SourceMessage]) -> list[Output]:
    out: list[Output] = []
    run_main(build_flow(cfg, TestingSource(msgs, batch_size=500), TestingSink(out), tail=False))
    return out


ACK_AT = START + (FAULT[0] + 60) * S


@pytest.fixture(scope="module")
def outputs() -> list[Output]:
    ack = {"schema": "aiotstream.feedback/1", "type": "ack", "asset": "pump-1", "alert_type": "scalar_anomaly",
           "ts": ACK_AT, "by": "ana"}
    return run(site(), messages([ack]))


def test_scalar_scores_cover_every_row_and_validate(outputs: list[Output]) -> None:
    v = validator()
    for o in outputs:
        err = next(iter(v.iter_errors(o.record)), None)
        assert err is None, f"{o.kind}: {err.message} at {list(err.path)}"
    recs = [o.record for o in outputs if o.record.get("schema") == "aiotstream.scalar/1"]
    assert {r["asset"] for r in recs} == {"pump-1", "pump-2"}
    for asset in ("pump-1", "pump-2"):
        mine = [r for r in recs if r["asset"] == asset]
        ts = [t for r in mine for t in r["row_ts_ns"]]
        assert ts == [START + r * S for r in range(ROWS)]  # every row once, in time order
        assert all(r["channels"] == mine[0]["channels"] for r in mine)  # the order is fixed
        assert set(mine[0]["channels"]) == set(CHANNELS)
        assert len(mine) > 10  # scored as the windows close, in blocks, not once at the end
    assert not [o for o in outputs if o.kind == "deadletter"]


def test_an_injected_fault_opens_an_explained_alert_that_is_acked_and_clears(outputs: list[Output]) -> None:
    alerts = [o.record for o in outputs if o.kind == "alert" and o.record["alert_type"] == "scalar_anomaly"]
    assert {a["asset"] for a in alerts} == {"pump-1"}  # the clean pump raises nothing
    events = [a["event"] for a in alerts]
    assert events == ["opened", "acknowledged", "cleared"], events
    opened = alerts[0]
    assert START + FAULT[0] * S <= opened["opened_at_ns"] <= START + (FAULT[0] + 30) * S
    top = opened["explanation"][0]
    assert top["feature"] == "current"  # the channel, in units of its own normal deviation, and its p
    assert top["z"] > 4 and top["p"] < 1e-4
    assert top["baseline_low"] < 12 < top["baseline_high"]
    assert opened["detail"]["score"] > 0.999 and opened["detail"]["p"] < 1e-3
    assert alerts[1]["by"] == "ana" and alerts[1]["at_ns"] == ACK_AT
    assert START + FAULT[1] * S <= alerts[2]["cleared_at_ns"] <= START + (FAULT[1] + 60) * S
    scores = [o.record for o in outputs if o.record.get("schema") == "aiotstream.scalar/1"
              and o.record["asset"] == "pump-1"]
    alert_rows = {t for r in scores for t, a in zip(r["row_ts_ns"], r["row_alert"], strict=True) if a}
    assert min(alert_rows) == opened["opened_at_ns"] and max(alert_rows) < alerts[2]["cleared_at_ns"]


def test_kpis_count_the_scalar_rows_and_the_alert(outputs: list[Output]) -> None:
    kpis = [o.record for o in outputs if o.kind == "kpi" and o.record["scope"] == "asset"]
    for asset in ("pump-1", "pump-2"):
        mine = [k["totals"] for k in kpis if k["asset"] == asset]
        assert sum(t["scalar_rows"] for t in mine) == ROWS
        assert sum(t["alerts_opened"] for t in mine) == (1 if asset == "pump-1" else 0)
        assert (sum(t["scalar_alert_rows"] for t in mine) > 50) == (asset == "pump-1")
        assert sum(t["failures"] for t in mine) == (1 if asset == "pump-1" else 0)  # a failure (MTBF)


def test_without_readings_only_the_same_scores_come_at_the_end() -> None:
    """A site that may send frames holds readings-only windows until the input ends (bounded replay):
    the rows are the same, scored in one go."""
    msgs = messages()
    a = [o.record for o in run(site(True), msgs) if o.record.get("schema") == "aiotstream.scalar/1"]
    b = [o.record for o in run(site(False), msgs) if o.record.get("schema") == "aiotstream.scalar/1"]
    for asset in ("pump-1", "pump-2"):
        sa = [s for r in a if r["asset"] == asset for s in r["row_score"]]
        sb = [s for r in b if r["asset"] == asset for s in r["row_score"]]
        assert sa == sb and len(sa) == ROWS


def test_the_detector_state_survives_a_snapshot_round_trip() -> None:
    cfg = site()
    rt = SiteRuntime(cfg)
    items = [it for _, group in (x for x in Ingestor(rt).decode_grouped(messages()) if isinstance(x, tuple))
             for it in group if it.asset == "pump-1"]
    cut = len(items) * 2 // 3  # after the detector calibrated, inside the fault
    straight = AssetAnalyzer(rt, "pump-1")
    a = straight.on_items(items[:cut]) + straight.on_items(items[cut:]) + straight.flush()
    first = AssetAnalyzer(rt, "pump-1")
    b = first.on_items(items[:cut])
    assert first.scalar is not None and first.scalar.detector is not None
    resumed = pickle.loads(pickle.dumps(copy.deepcopy(first))).attach(rt)
    b += resumed.on_items(items[cut:]) + resumed.flush()
    assert [o.record["id"] for o in a] == [o.record["id"] for o in b]
    assert [o.record.get("row_score") for o in a] == [o.record.get("row_score") for o in b]


def test_an_operator_clear_of_a_still_alarming_alert_reopens_it_after_the_cooldown() -> None:
    """As for window scores: the book's policy is cleared by the operator; the detector still alarms, so the
    alert opens again at the next block once [alerts] cooldown_s (30 s) has passed."""
    clear_at = START + (FAULT[0] + 30) * S
    clear = {"schema": "aiotstream.feedback/1", "type": "clear", "asset": "pump-1",
             "alert_type": "scalar_anomaly", "ts": clear_at, "by": "ana"}
    out = run(site(), messages([clear]))
    alerts = [o.record for o in out if o.kind == "alert" and o.record["alert_type"] == "scalar_anomaly"]
    assert [(a["event"], a["cleared_by"]) for a in alerts] == [
        ("opened", None), ("cleared", "operator:ana"), ("opened", None), ("cleared", "condition")]
    assert alerts[1]["at_ns"] == clear_at
    assert alerts[2]["alert_id"] != alerts[0]["alert_id"]
    assert clear_at + 30 * S <= alerts[2]["opened_at_ns"] <= clear_at + 45 * S


def test_a_lasting_level_shift_is_a_change_event_in_the_records_and_kpis() -> None:
    """A shift that outlasts [scalar] accept rows re-baselines the channel: the record's changes say which
    channel, when and from which level to which, and the KPIs count it."""
    cfg = SiteConfig.from_dict({"site": {"id": "scalar-site"}, "assets": [{"id": "pump-1"}],
                                "inputs": {"tail": False}, "kpi": {"periods_s": [300]},
                                "scalar": {"readings_only": True, "accept": 60}})
    rt = SiteRuntime(cfg)
    rng = np.random.default_rng(2)
    rows = 900
    temp = 60 + 0.5 * rng.normal(size=rows)
    temp[500:] += 10.0  # a new normal from row 500 on
    msgs = []
    for r in range(rows):
        msgs.append(SourceMessage("scalar-site.readings", 0, 2 * r, encode_reading("pump-1", START + r * S, "temperature",
                                                                                   round(float(temp[r]), 4))))
        msgs.append(SourceMessage("scalar-site.readings", 0, 2 * r + 1, encode_reading("pump-1", START + r * S, "current",
                                                                                       round(12 + 0.2 * rng.normal(), 4))))
    items = [it for _, group in (x for x in Ingestor(rt).decode_grouped(msgs) if isinstance(x, tuple)) for it in group]
    a = AssetAnalyzer(rt, "pump-1")
    out = a.on_items(items) + a.flush()
    changes = [c for o in out if o.kind == "scalar" for c in o.record["changes"]]
    assert [c["channel"] for c in changes] == ["temperature"]
    c = changes[0]
    assert START + 500 * S < c["ts_ns"] <= START + 700 * S
    assert abs(c["old_level"] - 60) < 1 and abs(c["new_level"] - 70) < 1.5
    kpis = [o.record["totals"] for o in out if o.kind == "kpi" and o.record["scope"] == "asset"]
    assert sum(k["baseline_changes"] for k in kpis) == 1


def _strip(o: object) -> object:
    """A record without its wall-clock fields."""
    if isinstance(o, dict):
        return {k: _strip(v) for k, v in o.items() if k not in ("produced_at", "code_version")}
    if isinstance(o, list):
        return [_strip(v) for v in o]
    return o


@pytest.mark.parametrize(("periods", "block_s", "window"), [
    ([300], 10.0, {}), ([10], 10.0, {}), ([3], 4.0, {}), ([13, 5], 0.0, {}), ([7, 60], 10.0, {}),
    ([1], 10.0, {}),  # every window opens its period, which ends with it
    ([3], 60.0, {}),  # after the gap, the period open before it ended in it (a later one holds the window)
    ([10], 10.0, {"length_s": 3, "hop_s": 1}),  # sliding: periods close 2 s late (emit delay), so stay open
])
def test_readings_only_windows_without_due_rows_take_the_kpi_steps_in_one(
        monkeypatch: pytest.MonkeyPatch, periods: list[float], block_s: float, window: dict) -> None:
    """``_windows_closed`` takes a readings-only window's KPI steps in one call (``readings_window``) when no
    scalar rows are due there (no block due, no KPI period ending by the window's end: a period's end forces
    the rows out, so they count in it). The outputs are those of the steps one by one (the path without
    every scheme tumbling), alerts, acks, a gap in the data and KPI periods ending inside and at a window's
    end included."""
    ack = {"schema": "aiotstream.feedback/1", "type": "ack", "asset": "pump-1", "alert_type": "scalar_anomaly",
           "ts": ACK_AT, "by": "ana"}
    cfg = SiteConfig.from_dict({
        "site": {"id": "scalar-site"},
        "assets": [{"id": "pump-1"}, {"id": "pump-2"}],
        "inputs": {"tail": False},
        "kpi": {"periods_s": periods},
        "scalar": {"readings_only": True, "block_s": block_s},
        "window": window,
    })
    gap = (START + 700 * S, START + 706 * S)  # no reading for 6 s
    msgs = [m for m in messages([ack]) if not gap[0] <= orjson.loads(m.value).get("ts", 0) < gap[1]]
    fast = run(cfg, msgs)

    class NotTumbling:  # the schemes are no longer all "Tumbling": the steps one by one
        pass

    monkeypatch.setattr("aiotstream.pdm.asset.Tumbling", NotTumbling)
    slow = run(cfg, msgs)
    key = [(o.kind, o.key, _strip(o.record)) for o in fast if o.kind != "audit"]
    assert key == [(o.kind, o.key, _strip(o.record)) for o in slow if o.kind != "audit"]
    assert any(o.kind == "alert" for o in fast)
    assert sum(o.kind == "kpi" for o in fast) > 2 * len(periods)

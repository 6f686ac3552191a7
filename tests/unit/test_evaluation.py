"""aiotstream.evaluation: point-wise (SKAB) and event-wise metrics, a labelled file, a simulator run, the plot."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.evaluation.metrics import (
    Interval,
    binary_metrics,
    confusion,
    event_metrics,
    event_stats,
    row_events,
    segments,
)
from aiotstream.evaluation.simulated import alert_intervals, score_run
from aiotstream.units import S

# ---- point-wise ------------------------------------------------------------------------------------------


def test_pointwise_by_hand() -> None:
    # rows:  label 1 1 1 0 0 0 0 1 ; alert 1 0 1 1 0 0 0 0 -> TP 2, FN 2, FP 1, TN 3
    c = confusion([1, 1, 1, 0, 0, 0, 0, 1], [1, 0, 1, 1, 0, 0, 0, 0])
    assert c == {"tp": 2, "tn": 3, "fp": 1, "fn": 2}
    m = binary_metrics(c)
    assert m["f1"] == pytest.approx(2 / (2 + 1.5))  # TP / (TP + (FP + FN) / 2)
    assert m["far"] == pytest.approx(100 * 1 / 4) and m["mar"] == pytest.approx(100 * 2 / 4)


def test_pointwise_edge_cases() -> None:
    # nothing to find, nothing found: a perfect score
    assert binary_metrics(confusion([0, 0, 0], [0, 0, 0])) == {"f1": 1.0, "far": 0.0, "mar": 0.0}
    # nothing to find, one false alarm
    assert binary_metrics(confusion([0, 0, 0, 0], [0, 1, 0, 0])) == {"f1": 0.0, "far": 25.0, "mar": 0.0}
    # something to find, no alerts
    assert binary_metrics(confusion([0, 1, 1], [0, 0, 0])) == {"f1": 0.0, "far": 0.0, "mar": 100.0}
    with pytest.raises(ValueError, match="shape"):
        confusion([0, 1], [0])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), max_size=300))
def test_pointwise_properties(rows: list[tuple[bool, bool]]) -> None:
    label = np.array([r[0] for r in rows], bool)
    alert = np.array([r[1] for r in rows], bool)
    m = binary_metrics(confusion(label, alert))
    assert 0.0 <= m["f1"] <= 1.0 and 0.0 <= m["far"] <= 100.0 and 0.0 <= m["mar"] <= 100.0
    assert binary_metrics(confusion(label, label)) == {"f1": 1.0, "far": 0.0, "mar": 0.0}
    # event-wise, perfect predictions find every event with no false alert and no delay
    truth, alerts = row_events(label, label)
    r = event_metrics(truth, alerts, horizon=len(label))
    assert r.recall in (None, 1.0) and r.precision in (None, 1.0) and r.false_alerts == 0
    assert all(d == 0 for d in r.delays)
    # rows: against the SKAB harness (an alert row anywhere in a segment finds it), an alert run must open in
    # the segment here: the same events, never more found, never fewer false; equal when no run crosses a start
    truth, alerts = row_events(label, alert)
    r = event_metrics(truth, alerts, horizon=len(label))
    e = event_stats(label, alert)
    assert r.events == e["events"] and r.detected <= e["found"] and r.false_alerts >= e["false_openings"]
    if not any(alert[s] and s > 0 and alert[s - 1] for s, _ in segments(label)):
        assert r.detected == e["found"] and [d for d in r.delays if d is not None] == e["delays"]


# ---- event-wise ------------------------------------------------------------------------------------------


def test_events_by_hand() -> None:
    truth = [Interval("a", 100, 200, "f"), Interval("b", 50, None, "g")]
    alerts = [Interval("a", 90, 95),   # before onset, closed before it: false
              Interval("a", 95, 130),  # opened before onset, still open at it: false, and detects nothing
              Interval("a", 150, 160),  # opens in the fault: detects it, delay 50
              Interval("a", 300, 310),  # after the fault: false
              Interval("b", 80, None),  # detects b after 30
              Interval("c", 10, 20)]   # an asset without faults: false
    r = event_metrics(truth, alerts, horizon=1000, assets=["a", "b", "c", "d"], span=1000, per_day=1000)
    assert r.delays == [50, 30]
    assert (r.detected, r.recall) == (2, 1.0)
    assert r.alert_true == [False, False, True, False, True, False]
    assert r.precision == pytest.approx(2 / 6) and r.false_alerts == 4
    assert r.false_alerts_per_asset_per_day == pytest.approx(4 / 4)  # 4 false alerts, 4 assets, 1 "day"
    # an alert open since before the onset only: the fault is missed
    r = event_metrics(truth[:1], [Interval("a", 95, 130)], horizon=1000)
    assert r.delays == [None] and r.precision == 0.0
    # unless it opened within the lead: then it detects with delay 0
    assert event_metrics(truth[:1], [Interval("a", 95, 130)], horizon=1000, lead=5).delays == [0]


def test_events_edges_tolerance_lead_max_delay() -> None:
    truth = [Interval("a", 100, 110)]
    # no alerts: recall 0, precision undefined
    r = event_metrics(truth, [], horizon=500)
    assert (r.recall, r.precision, r.missed) == (0.0, None, truth)
    # no events: recall undefined, every alert false
    r = event_metrics([], [Interval("a", 1, 2)], horizon=500)
    assert (r.recall, r.precision, r.false_alerts) == (None, 0.0, 1)
    # an alert opening 3 after the end: only with tolerance >= 4 (half-open windows)
    late = [Interval("a", 113, 120)]
    assert event_metrics(truth, late, horizon=500).recall == 0.0
    assert event_metrics(truth, late, horizon=500, tolerance=4).delays == [13]
    # an alert opening 2 before the onset: only with lead >= 2
    early = [Interval("a", 98, 99)]
    assert event_metrics(truth, early, horizon=500).recall == 0.0
    assert event_metrics(truth, early, horizon=500, lead=2).delays == [0]
    # max_delay: opened at onset + 5 counts with max_delay 5, not 4; the alert stays true either way
    alert = [Interval("a", 105, 109)]
    assert event_metrics(truth, alert, horizon=500, max_delay=5).delays == [5]
    r = event_metrics(truth, alert, horizon=500, max_delay=4)
    assert r.delays == [None] and r.precision == 1.0


def test_overlapping_events() -> None:
    # two faults on one asset that overlap; one alert inside both finds both and is one true alert
    truth = [Interval("a", 0, 50), Interval("a", 30, 80)]
    r = event_metrics(truth, [Interval("a", 40, 45)], horizon=100)
    assert r.delays == [40, 10] and r.true_alerts == 1 and r.precision == 1.0
    # as labelled rows they merge into one event
    label = np.zeros(100, bool)
    label[0:50] = label[30:80] = True
    assert segments(label) == [(0, 80)]


# ---- a simulator run ---------------------------------------------------------------------------------------


def _alert(asset: str, aid: str, t: int, kind: str = "anomaly", cleared: int | None = None) -> list[dict]:
    out = [{"asset": asset, "alert_id": aid, "event": "opened", "opened_at_ns": t, "alert_type": kind}]
    if cleared is not None:
        out.append({"asset": asset, "alert_id": aid, "event": "cleared", "opened_at_ns": t,
                    "cleared_at_ns": cleared, "alert_type": kind})
    return out


def test_score_run_by_hand() -> None:
    s0 = 1_000 * S
    truth = {"start_ns": s0, "end_ns": s0 + 1000 * S, "scenario": "realistic", "amplitude": 0.25,
             "assets": [{"id": i} for i in ("a", "b", "c", "d")],
             "faults": [{"asset": "a", "kind": "imbalance", "onset_ns": s0 + 100 * S, "end_ns": None},
                        {"asset": "b", "kind": "spike_burst", "onset_ns": s0 + 200 * S,
                         "end_ns": s0 + 205 * S}],
             "events": [{"asset": "c", "kind": "maintenance_reset", "onset_ns": s0 + 300 * S,
                         "end_ns": s0 + 330 * S},
                        {"asset": "d", "kind": "noise_burst", "onset_ns": s0 + 500 * S, "end_ns": s0 + 503 * S}]}
    alerts = (_alert("a", "1", s0 + 102 * S) + _alert("a", "1b", s0 + 150 * S)  # detection, then still inside
              + _alert("c", "2", s0 + 331 * S, cleared=s0 + 340 * S)  # after the maintenance: false
              + _alert("d", "3", s0 + 501 * S)  # in a noise burst: false
              + _alert("d", "4", s0 + 700 * S, kind="drift")  # drift on a clean asset (not a fault alert)
              + _alert("b", "5", s0 + 212 * S))  # 7 s after a 5 s fault ended: beyond the 5 s tolerance
    r = score_run(truth, alerts, tolerance_ns=5 * S)
    ev = r["events"]
    assert (ev["faults"], ev["detected"], ev["recall"]) == (2, 1, 0.5)
    assert (ev["alerts"], ev["true_alerts"], ev["precision"]) == (5, 2, 0.4)
    assert ev["delay_s"]["median"] == pytest.approx(2.0)
    assert ev["false_alerts_per_asset_per_day"] == pytest.approx(3 / (4 * 1000 / 86_400))
    assert r["maintenance_resets"]["resets"] == 1 and r["maintenance_resets"]["with_fault_alert"] == 1
    assert r["drift_on_clean"] == {"clean_assets": 2, "drift_alerts": 1, "assets_with_drift": 1,
                                   "per_asset_per_day": pytest.approx(1 / (2 * 1000 / 86_400)),
                                   "drift_alerts_all_assets": 1}
    assert r["false_alerts_near"] == {"maintenance_reset": 1, "noise_burst": 1, "none": 1}
    assert ev["by_kind"] == {"imbalance": {"faults": 1, "detected": 1}, "spike_burst": {"faults": 1, "detected": 0}}
    assert score_run(truth, alerts, tolerance_ns=8 * S)["events"]["recall"] == 1.0
    assert r["maintenance_resets"]["raised_alert"] == 1
    # intervals: the cleared alert ends, the others run on
    ivs = {iv.ref: iv for iv in alert_intervals(alerts)}
    assert ivs["2"].end == s0 + 340 * S and ivs["1"].end is None and "4" not in ivs


def test_a_reset_raises_only_false_alerts_soon_after_it_that_nothing_else_explains() -> None:
    s0 = 1_000 * S
    reset = {"kind": "maintenance_reset", "onset_ns": s0 + 100 * S, "end_ns": s0 + 130 * S}
    truth = {"start_ns": s0, "end_ns": s0 + 1000 * S, "assets": [{"id": i} for i in "abcd"],
             "faults": [{"asset": "a", "kind": "imbalance", "onset_ns": s0 + 200 * S, "end_ns": None}],
             "events": [{"asset": i, **reset} for i in "abcd"]
             + [{"asset": "b", "kind": "noise_burst", "onset_ns": s0 + 150 * S, "end_ns": s0 + 152 * S},
                {"asset": "d", "kind": "sensor_drift", "onset_ns": s0, "end_ns": None}]}
    alerts = (_alert("a", "1", s0 + 201 * S)  # detects the fault after the reset: not the reset's
              + _alert("b", "2", s0 + 151 * S)  # in a noise burst: the burst's
              + _alert("c", "3", s0 + 250 * S)  # 120 s after the reset: beyond near_ns
              + _alert("d", "4", s0 + 131 * S))  # right after the reset (a run-long drift explains nothing)
    r = score_run(truth, alerts, near_ns=60 * S)["maintenance_resets"]
    assert (r["resets"], r["with_fault_alert"], r["raised_alert"]) == (4, 4, 1)
    assert [x["asset"] for x in r["raised_which"]] == ["d"]


# ---- the CLI ---------------------------------------------------------------------------------------------


def _csv(path, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, n)
    b = rng.normal(5, 0.5, n)
    label = np.zeros(n, int)
    label[250:300] = 1
    a[250:300] += 12.0  # a big fault the default detector finds
    lines = ["time;a;b;anomaly"] + [f"2026-01-01 00:{i // 60:02d}:{i % 60:02d};{a[i]:.5f};{b[i]:.5f};{label[i]}"
                                    for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return a, label


def test_cli_labelled_file_with_predictions(tmp_path, capsys) -> None:
    from aiotstream.cli import main

    _csv(tmp_path / "data.csv")
    alert = np.zeros(400, int)
    alert[260:320] = 1  # late by 10 rows, 20 rows too long
    alert[100:103] = 1  # one false alert
    pred = ["timestamp,anomaly_score,alert"] + [f"{i},{0.99 if alert[i] else 0.1},{alert[i]}" for i in range(400)]
    (tmp_path / "pred.csv").write_text("\n".join(pred) + "\n")
    rc = main(["evaluate", str(tmp_path / "data.csv"), "--timestamp-column", "time", "--value-columns", "a,b",
               "--label-column", "anomaly", "--predictions", str(tmp_path / "pred.csv"),
               "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png")])
    assert rc == 0
    r = json.loads((tmp_path / "r.json").read_text())
    pw = r["pointwise"]
    assert (pw["tp"], pw["fp"], pw["fn"], pw["tn"]) == (40, 23, 10, 327)
    assert pw["f1"] == pytest.approx(40 / (40 + 33 / 2))
    assert pw["far"] == pytest.approx(100 * 23 / 350) and pw["mar"] == pytest.approx(100 * 10 / 50)
    ev = r["events"]
    assert (ev["events"], ev["detected"], ev["alerts"], ev["true_alerts"]) == (1, 1, 2, 1)
    assert ev["delay_s"]["median"] == 10.0 and ev["delay_rows"]["median"] == 10.0
    assert r["false_alerts_per_asset_per_day"] == pytest.approx(1 / (399 / 86_400))
    assert r["detector"].startswith("predictions from")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert "F1 0.708" in out and "event recall" in out


def test_cli_labelled_file_runs_the_detector(tmp_path) -> None:
    from aiotstream.cli import main

    _csv(tmp_path / "data.csv")
    assert main(["evaluate", str(tmp_path / "data.csv"), "--timestamp-column", "time", "--value-columns",
                 "a,b", "--json", str(tmp_path / "r.json"), "--no-plot"]) == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert "StreamingDetector" in r["detector"] or "aiotstream.detect" in r["detector"]
    assert r["events"]["detected"] == 1 and "plot" not in r
    # a column that is not there: one line, exit 2
    assert main(["evaluate", str(tmp_path / "data.csv"), "--timestamp-column", "time", "--value-columns",
                 "a,nope", "--no-plot"]) == 2
    assert main(["evaluate", "--no-plot"]) == 2


def test_plot_failure_is_reported_not_raised(tmp_path, monkeypatch) -> None:
    from aiotstream.evaluation import plot

    def no_matplotlib() -> None:
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr(plot, "_pyplot", no_matplotlib)
    res = {"per_event": [{"start_row": 2, "end_row": 4, "delay_rows": None}], "false_alert_rows": []}
    where, why = plot.plot_labelled(tmp_path / "x.png", np.arange(6) * S, np.zeros((6, 1)), ["a"],
                                    np.array([0, 0, 1, 1, 0, 0], bool), np.zeros(6), np.zeros(6, bool), res)
    assert where is None and "matplotlib" in why
    where, why = plot.plot_labelled(tmp_path / "x.png", np.arange(6) * S, np.zeros((6, 1)), ["a"],
                                    np.zeros(6, bool), np.zeros(6), np.zeros(6, bool),
                                    {"per_event": [], "false_alert_rows": []})
    assert where is None and "no events" in why


def test_cli_simulate_mode_small_run(tmp_path, capsys) -> None:
    from aiotstream.cli import main

    rc = main(["evaluate", "--simulate", "realistic", "--assets", "3", "--duration-s", "60", "--faults", "1",
               "--day-s", "30", "--out", str(tmp_path / "out"), "--json", str(tmp_path / "r.json"),
               "--plot", str(tmp_path / "r.png")])
    assert rc == 0
    r = json.loads((tmp_path / "r.json").read_text())
    truth = json.loads((tmp_path / "out" / "truth.json").read_text())
    assert r["scenario"] == "realistic" and r["amplitude"] == 0.25 and r["assets"] == 3
    assert r["events"]["faults"] == len(truth["faults"]) == 1
    alerts = [json.loads(x) for x in (tmp_path / "out" / "alerts.jsonl").read_text().splitlines() if x]
    assert r["events"]["alerts"] == len({a["alert_id"] for a in alerts if a["alert_type"] != "drift"})
    resets = [e for e in truth["events"] if e["kind"] == "maintenance_reset"]
    assert r["maintenance_resets"]["resets"] == len(resets)
    assert r["drift_on_clean"]["clean_assets"] == 2
    assert "event recall" in capsys.readouterr().out
    assert r["plot"]["path"] is None or (tmp_path / "r.png").exists()


def test_lazy_simulator_source_equals_the_list_one_and_resumes() -> None:
    from aiotstream.io.simulator import SimulatorSource
    from aiotstream.sim.realistic import RealisticPlantSimulator, RealisticSpec

    spec = RealisticSpec(day_s=10.0, maintenance_fraction=1.0, maintenance_s=(5.0, 8.0), guard_s=1.0)
    sim = RealisticPlantSimulator(3, duration_s=30.0, n_faults=0, seed=1, frame_samples=2_000, spec=spec,
                                  warmup_s=5.0)

    def drain(part) -> list[tuple]:
        out = []
        while True:
            try:
                out += [(m.topic, m.offset, m.value) for m in part.next_batch()]
            except StopIteration:
                return out

    eager = drain(SimulatorSource(list(sim.messages()), "s", batch=50).build_part("x", "sim", None))
    lazy = drain(SimulatorSource(sim.messages, "s", batch=64).build_part("x", "sim", None))
    assert eager == lazy and any(t == "s.feedback" for t, _o, _v in lazy)
    resumed = drain(SimulatorSource(sim.messages, "s", batch=7).build_part("x", "sim", 101))
    assert resumed == lazy[101:]


def test_cli_labelled_parquet_equals_csv(tmp_path) -> None:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from aiotstream.cli import main

    _csv(tmp_path / "data.csv")
    table = pcsv.read_csv(tmp_path / "data.csv", parse_options=pcsv.ParseOptions(delimiter=";"))
    pq.write_table(table, tmp_path / "data.parquet")
    for name in ("data.csv", "data.parquet"):
        assert main(["evaluate", str(tmp_path / name), "--timestamp-column", "time", "--value-columns", "a,b",
                     "--json", str(tmp_path / f"{name}.json"), "--no-plot"]) == 0
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("data.csv", "data.parquet"))
    assert a["pointwise"] == b["pointwise"] and a["events"] == b["events"] and a["span_s"] == 399.0


def test_run_detector_prefers_aiotstream_detect(tmp_path, monkeypatch) -> None:
    """The adapter calls aiotstream.detect.detect_file(path, timestamp column, value columns) when it exists
    (a stand-in module here: the dispatch is what is tested), else the streaming detector."""
    import sys
    import types

    from aiotstream.evaluation.labelled import load_labelled, run_detector
    from aiotstream.models.streaming import StreamingDetector

    _csv(tmp_path / "data.csv")
    series = load_labelled(tmp_path / "data.csv", "time", ["a", "b"], "anomaly")
    monkeypatch.setitem(sys.modules, "aiotstream.detect", None)  # not importable
    score, alert, which = run_detector(series)
    ref_score, ref_alert = StreamingDetector(2).run(series.x)
    assert "StreamingDetector" in which and np.array_equal(alert, ref_alert) and np.allclose(score, ref_score)
    calls = []

    def detect_file(path, ts, cols):
        calls.append((path, ts, list(cols)))
        return types.SimpleNamespace(score=np.full(400, 0.5), alert=np.arange(400) % 2)

    monkeypatch.setitem(sys.modules, "aiotstream.detect", types.SimpleNamespace(detect_file=detect_file))
    score, alert, which = run_detector(series)
    assert calls == [(str(tmp_path / "data.csv"), "time", ["a", "b"])]
    assert which.startswith("aiotstream.detect.detect_file") and alert.sum() == 200 and score[0] == 0.5

"""One asset's analyzer end to end (no Bytewax): a fault, operator feedback, commands, KPIs, all as records.

The simulator injects a sensor_stuck fault from 30 s to 40 s. The tests act as the operator: they feed
the data a second at a time, watch the outputs and answer with feedback messages (decoded from JSON
like any input), as an operator would answer the alerts topic.
"""
from __future__ import annotations

from collections import Counter
from functools import cache
from typing import Any

import orjson
import pytest

from aiotstream.config import SiteConfig
from aiotstream.pdm.asset import AssetAnalyzer
from aiotstream.pdm.ingest import Ingestor
from aiotstream.pdm.runtime import SiteRuntime
from aiotstream.records import Feedback, Frame, Output, Reading, SourceMessage
from aiotstream.schemas import validator
from aiotstream.sim.plant import Fault, PlantSimulator

S = 1_000_000_000
START = 1_767_225_600_000_000_000
ONSET, END = START + 30 * S, START + 40 * S


def site(**over: Any) -> SiteConfig:
    data: dict[str, Any] = {
        "site": {"id": "sc"}, "assets": [{"id": "p1", "line": "l1"}], "inputs": {"tail": False},
        # the z-score window detector: these tests are about the decisions (escalation, labels that teach the
        # model, maintenance windows, timers) around a fault it alerts on at once; the calibrated default
        # waits for persistence (tests/unit/test_window_detector.py, test_realistic_precision_flow.py)
        "model": {"kind": "zscore", "warmup_windows": 10, "drift_detector": "none"}, "kpi": {"periods_s": [10]},
        "alerts": {"escalate_after_s": 0},
    }
    for k, v in over.items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
    return SiteConfig.from_dict(data)


@cache
def plant_items() -> tuple[Frame | Reading, ...]:
    """The simulated asset's decoded inputs (60 s, the fault at 30-40 s), made once: analyzers only read them."""
    sim = PlantSimulator(site().all_assets(), duration_s=60.0, seed=4, warmup_s=0.0,
                         faults=[Fault("p1", "sensor_stuck", ONSET, END, "x")])
    ingest = Ingestor(SiteRuntime(site()), now_ns=lambda: START + 10**13)
    msgs = [SourceMessage("sc.readings" if m.stream == "reading" else "sc.waveforms", 0, i, m.payload)
            for i, m in enumerate(sim.messages())]
    return tuple(it for _, it in (x for x in ingest.decode_batch(msgs) if isinstance(x, tuple)))


class Plant:
    """Drives one AssetAnalyzer through simulated data, a second at a time, plus feedback messages."""

    def __init__(self, cfg: SiteConfig):
        self.rt = SiteRuntime(cfg)
        self.ingest = Ingestor(self.rt, now_ns=lambda: START + 10**13)
        self.items = plant_items()
        self.a = AssetAnalyzer(self.rt, "p1")
        self.outs: list[Output] = []
        self.sent = 0
        self.fed_until = START

    def feed_until(self, t_ns: int) -> list[Output]:
        batch = [i for i in self.items if self.fed_until <= (i.t0_ns if isinstance(i, Frame) else i.ts_ns) < t_ns]
        self.fed_until = t_ns
        new = self.a.on_items(batch, 0.0) if batch else []
        self.outs += new
        return new

    def feed_until_alert(self) -> dict:
        for sec in range(1, 60):
            for o in self.feed_until(START + sec * S):
                if o.kind == "alert" and o.record["event"] == "opened":
                    return o.record
        raise AssertionError("no alert opened")

    def send(self, **fields: Any) -> list[Output]:
        self.sent += 1
        raw = orjson.dumps({"schema": "aiotstream.feedback/1", "asset": "p1", **fields})
        routed = self.ingest.decode_batch([SourceMessage("sc.feedback", 0, self.sent, raw)])
        new: list[Output] = [x for x in routed if isinstance(x, Output)]
        fbs = [fb for _, fb in (x for x in routed if isinstance(x, tuple))]
        assert all(isinstance(f, Feedback) for f in fbs)
        new += self.a.on_items(fbs, 0.0) if fbs else []
        self.outs += new
        return new

    def finish(self) -> list[Output]:
        self.feed_until(START + 10**12)
        self.outs += self.a.flush()
        v = validator()
        for o in self.outs:
            err = next(iter(v.iter_errors(o.record)), None)
            assert err is None, f"{o.kind}: {err.message} at {list(err.path)}"
        return self.outs

    def records(self, kind: str, **match: Any) -> list[dict]:
        return [o.record for o in self.outs if o.kind == kind and all(o.record.get(k) == v for k, v in match.items())]


APPROVALS = {
    "actuators": [{"name": "speed", "unit": "rpm", "initial": 1800, "min": 600, "max": 1800, "ack_timeout_s": 600},
                  {"name": "coolant", "initial": 0, "min": 0, "max": 1, "ack_timeout_s": 0}],
    "rules": [{"name": "slow", "actuator": "speed", "when": {"alert_type": "anomaly"}, "action": {"set": 1200},
               "mode": "approval", "approval_timeout_s": 600},
              {"name": "cool", "actuator": "coolant", "when": {"alert_type": "anomaly"}, "action": {"set": 1},
               "mode": "approval", "approval_timeout_s": 5}],
}


def test_fault_ack_clear_mttr_approvals_and_device_ack() -> None:
    p = Plant(site(control=APPROVALS))
    opened = p.feed_until_alert()
    t_open = opened["opened_at_ns"]
    assert ONSET - S <= t_open <= ONSET + 3 * S and opened["status"] == "open" and opened["explanation"]
    assert opened["explanation"][0]["feature"].startswith("x.")  # the stuck channel deviates most
    waiting = {r["rule"]: r for r in p.records("command", status="awaiting_approval")}
    assert set(waiting) == {"slow", "cool"} and waiting["slow"]["requested_at_ns"] == t_open
    assert waiting["cool"]["expires_at_ns"] == t_open + 5 * S
    assert p.records("command", status="emitted") == []  # nothing is emitted before an approval

    p.send(type="ack", alert_id=opened["alert_id"], ts=t_open + S, by="ana")
    p.send(type="approve", command_id=waiting["slow"]["command_id"], ts=t_open + S, by="ana")
    p.send(type="approve", command_id=waiting["cool"]["command_id"], ts=t_open + 30 * S, by="ana")  # too late
    p.send(type="command_ack", command_id=waiting["slow"]["command_id"], ts=t_open + 3 * S, value=1200.0)
    p.finish()

    (ack,) = p.records("alert", event="acknowledged")
    assert (ack["acknowledged_at_ns"], ack["acknowledged_by"], ack["status"], ack["inputs"][0]["topic"]) == (
        t_open + S, "ana", "acknowledged", "sc.feedback")
    (cleared,) = p.records("alert", event="cleared")
    t_clear = cleared["cleared_at_ns"]
    assert END <= t_clear <= END + 5 * S and cleared["acknowledged_by"] == "ana"
    assert cleared["alert_id"] == opened["alert_id"]

    # the approved command is emitted at the approval's time, then acked; the late one expired and never emitted
    assert [(r["rule"], r["at_ns"], r["by"]) for r in p.records("command", status="emitted")] == [
        ("slow", t_open + S, "ana")]
    (acked,) = p.records("command", status="acked")
    assert (acked["at_ns"], acked["acked_value"]) == (t_open + 3 * S, 1200.0)
    (expired,) = p.records("command", status="expired")
    assert (expired["rule"], expired["at_ns"]) == ("cool", t_open + 5 * S)
    (late,) = p.records("deadletter")
    assert late["reason"] == "command_not_pending" and "expired" in late["message"]

    kpis = p.records("kpi", scope="asset")
    assert sum(k["totals"]["frames"] for k in kpis) == sum(isinstance(i, Frame) for i in p.items)
    (with_clear,) = [k for k in kpis if k["period"]["start_ns"] <= t_clear < k["period"]["end_ns"]]
    assert with_clear["totals"]["repairs"] == 1
    assert with_clear["kpis"]["mttr_s"] == pytest.approx((t_clear - t_open) / S, rel=1e-12)
    (with_ack,) = [k for k in kpis if k["period"]["start_ns"] <= t_open + S < k["period"]["end_ns"]]
    assert with_ack["kpis"]["mtta_s"] == 1.0
    totals = Counter()
    for k in kpis:
        totals.update({n: v for n, v in k["totals"].items() if n.startswith(("commands_", "alerts_"))})
    assert {k: v for k, v in totals.items() if v} == {
        "alerts_opened": 1, f"alerts_{opened['severity']}": 1, "alerts_cleared": 1, "alerts_acknowledged": 1,
        "commands_awaiting_approval": 2, "commands_emitted": 1, "commands_acked": 1, "commands_expired": 1}
    assert sum(k["totals"]["failure_s"] for k in kpis) == pytest.approx((t_clear - t_open) / S)


def test_acks_that_match_no_pending_command_are_dead_letters_and_report_nothing() -> None:
    """Issue 15 item 6: an ack for a command that is not pending (expired, acked already, unknown, another
    asset's) is a dead letter with its reason, and the actuator's reported value does not move."""
    p = Plant(site(control=APPROVALS))
    opened = p.feed_until_alert()
    t_open = opened["opened_at_ns"]
    waiting = {r["rule"]: r for r in p.records("command", status="awaiting_approval")}
    slow, cool = waiting["slow"]["command_id"], waiting["cool"]["command_id"]
    p.send(type="approve", command_id=slow, ts=t_open + S, by="ana")
    p.send(type="command_ack", command_id=slow, ts=t_open + 2 * S, value=1200.0)
    p.feed_until(t_open + 10 * S)  # the feedback applies as the clock passes it; the coolant approval expires
    assert [r["command_id"] for r in p.records("command", status="acked")] == [slow]
    assert p.records("command", status="expired", rule="cool")
    reported = dict(p.a.control.reported)
    sent = [({"command_id": slow, "value": 900.0}, "duplicate_ack"),
            ({"command_id": slow, "status": "failed"}, "duplicate_ack"),
            ({"command_id": cool, "value": 1.0}, "command_not_pending"),
            ({"command_id": "f" * 32, "value": 1.0}, "unknown_command"),
            ({"command_id": slow, "value": 1.0, "asset": "nope"}, "unknown_asset")]
    for fields, reason in sent:
        (dead,) = p.send(type="command_ack", ts=t_open + 5 * S, **fields)  # before the clock: applies now
        assert dead.kind == "deadletter" and dead.record["reason"] == reason, (fields, dead.record)
        assert dead.record["source"]["topic"] == "sc.feedback"
    assert p.a.control.reported == reported
    assert (p.a.control.current("speed"), p.a.control.current("coolant")) == (1200.0, 0)
    p.finish()
    assert len(p.records("command", status="acked")) == 1


def test_escalation_and_a_false_alarm_label_teaches_the_model() -> None:
    p = Plant(site(alerts={"escalate_after_s": 2, "max_escalations": 2}))
    opened = p.feed_until_alert()
    t_open = opened["opened_at_ns"]
    p.feed_until(START + 55 * S)
    esc = p.records("alert", event="escalated")
    assert [(e["at_ns"] - t_open, e["escalation_level"], e["window"], e["inputs"]) for e in esc] == [
        (2 * S, 1, None, []), (4 * S, 2, None, [])]
    mean_before = p.a.detector.mean.copy()  # type: ignore[attr-defined]
    (labelled,) = p.send(type="label", alert_id=opened["alert_id"], label="false_alarm", ts=START + 50 * S, by="bo")
    assert labelled.record["event"] == "labelled" and labelled.record["learned"] is True
    assert labelled.record["label"] == {"label": "false_alarm", "fault_type": None, "by": "bo",
                                        "at_ns": START + 50 * S}
    assert (p.a.detector.mean != mean_before).any()  # type: ignore[attr-defined]
    (again,) = p.send(type="label", alert_id=opened["alert_id"], label="true_fault", ts=START + 51 * S)
    assert again.kind == "deadletter" and again.record["reason"] == "already_labelled"
    p.finish()
    kpis = p.records("kpi", scope="asset")
    assert sum(k["totals"]["alerts_escalated"] for k in kpis) == 2
    assert sum(k["totals"]["labels_false_alarm"] for k in kpis) == 1
    (fa,) = [k for k in kpis if k["totals"]["labels_false_alarm"]]
    assert fa["kpis"]["false_alarm_rate"] == 1.0


@pytest.mark.parametrize(("window_s", "opens_at_s"), [((25, 50), None), ((25, 35), 35)])
def test_maintenance_from_feedback_suppresses_alerts(window_s: tuple[int, int], opens_at_s: int | None) -> None:
    p = Plant(site())
    p.feed_until(START + 5 * S)
    assert p.send(type="maintenance", start=START + window_s[0] * S, end=START + window_s[1] * S,
                  ts=START + 5 * S, window_id="pm") == []  # site-wide: no asset or line named
    p.finish()
    alerts = p.records("alert")
    if opens_at_s is None:
        assert alerts == []  # the fault fell entirely inside the window
    else:  # the condition outlived the window: the alert opens when it ends
        assert [(a["event"], a["opened_at_ns"]) for a in alerts][:1] == [("opened", START + opens_at_s * S)]
        assert alerts[0]["detail"]["after_maintenance"] is True
    kpis = p.records("kpi", scope="asset")
    assert sum(k["totals"]["alerts_suppressed"] for k in kpis) == 1
    assert sum(k["totals"]["maintenance_s"] for k in kpis) == (window_s[1] - window_s[0])


@pytest.mark.parametrize(("end", "reason"), [(2**64 - 1, "bad_timestamp"), (2**63 - 1, "maintenance_too_long"),
                                             (START + 8 * 86_400 * S, "maintenance_too_long")])
def test_a_maintenance_window_beyond_the_maximum_is_refused_and_alerts_still_open(end: int, reason: str) -> None:
    """Issue 15 item 8: a window ending at 2**64 - 1 (or any far future) silenced every alert of the asset
    for good. Windows are bounded by alerts.maintenance_max_s (default 7 days); a longer one is a dead letter
    (and a time beyond int64 ns is not a time: the decoder refuses it)."""
    p = Plant(site())
    p.feed_until(START + 5 * S)
    (dead,) = p.send(type="maintenance", start=START, end=end, ts=START + 2 * S, window_id="forever")
    assert dead.kind == "deadletter" and dead.record["reason"] == reason
    assert ("alerts.maintenance_max_s" if reason == "maintenance_too_long" else "'end'") in dead.record["message"]
    assert p.a.schedule.windows == {}
    p.finish()
    assert [a["event"] for a in p.records("alert")][:1] == ["opened"]  # the fault is alerted on
    assert sum(k["totals"]["alerts_suppressed"] for k in p.records("kpi", scope="asset")) == 0


def test_the_maintenance_maximum_is_configurable_and_a_window_can_be_extended_by_id() -> None:
    p = Plant(site(alerts={"maintenance_max_s": 20}))
    p.feed_until(START + 5 * S)
    assert p.send(type="maintenance", start=START + 25 * S, end=START + 45 * S, ts=START + 2 * S,
                  window_id="w") == []  # exactly the maximum: fine
    (dead,) = p.send(type="maintenance", start=START + 25 * S, end=START + 46 * S, ts=START + 2 * S, window_id="w")
    assert dead.record["reason"] == "maintenance_too_long" and p.a.schedule.windows == {"w": (START + 25 * S,
                                                                                             START + 45 * S)}
    p.feed_until(START + 44 * S)
    assert p.send(type="maintenance", start=START + 40 * S, end=START + 60 * S, ts=START + 43 * S,
                  window_id="w") == []  # extended by a later message with the same id, before it ended
    p.finish()
    assert p.records("alert") == []  # the fault (30-40 s) fell inside the window
    assert sum(k["totals"]["alerts_suppressed"] for k in p.records("kpi", scope="asset")) == 1


def test_maintenance_windows_per_asset_are_bounded_and_ended_ones_are_forgotten() -> None:
    p = Plant(site(alerts={"maintenance_max_windows": 3}))
    p.feed_until(START + 20 * S)
    for i in range(3):
        assert p.send(type="maintenance", start=START + i * S, end=START + (i + 1) * S, ts=START + S,
                      window_id=f"w{i}") == []
    # three ended windows are known: the clock (19 s) is past them, so they are forgotten for a new one
    assert p.send(type="maintenance", start=START + 50 * S, end=START + 51 * S, ts=START + S, window_id="a") == []
    assert p.send(type="maintenance", start=START + 52 * S, end=START + 53 * S, ts=START + S, window_id="b") == []
    assert p.send(type="maintenance", start=START + 54 * S, end=START + 55 * S, ts=START + S, window_id="c") == []
    (dead,) = p.send(type="maintenance", start=START + 56 * S, end=START + 57 * S, ts=START + S, window_id="d")
    assert dead.record["reason"] == "too_many_windows" and sorted(p.a.schedule.windows) == ["a", "b", "c"]
    assert p.send(type="maintenance", start=START + 50 * S, end=START + 50 * S + 1, ts=START + S,
                  window_id="a") == []  # a known id can always be changed


def test_active_suppressions_are_a_gauge_of_the_run_summary() -> None:
    """Issue 15 item 8: while a maintenance window is in force at an asset's clock its alerts are suppressed;
    the run summary says how many assets that is now (a process-wide gauge: each asset adds and takes back
    its part, a resumed asset reports afresh, a forgotten one takes its part back)."""
    import pickle

    from aiotstream.runstats import STATS

    STATS.reset()
    gauge = lambda: STATS.get("gauges", "active_suppressions")
    p = Plant(site())
    p.feed_until(START + 5 * S)
    p.send(type="maintenance", start=START + 10 * S, end=START + 20 * S, ts=START + 5 * S, window_id="m")
    assert gauge() == 0  # planned, not in force yet
    p.feed_until(START + 12 * S)
    assert gauge() == 1 and "active_suppressions 1" in STATS.summary()
    other = Plant(site())  # a second asset analyzer of the same process in maintenance too
    other.feed_until(START + 5 * S)
    other.send(type="maintenance", start=START, end=START + 60 * S, ts=START + S)
    assert gauge() == 2
    p.feed_until(START + 23 * S)  # the first window ended at that asset's clock
    assert gauge() == 1
    other.feed_until(START + 10 * S)
    assert gauge() == 1
    other.a.release()  # forgotten after state_ttl_s: its part goes
    assert gauge() == 0
    resumed = pickle.loads(pickle.dumps(other.a)).attach(other.rt)
    STATS.reset()  # a resume in a new process: the gauge starts at 0 and the asset reports itself again
    resumed.on_items([], 0.0)
    assert gauge() == 1
    STATS.reset()


def test_feedback_waiting_for_the_clock_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A flood of feedback from the near future waited in the asset's queue without bound."""
    from aiotstream.pdm import asset as analysis

    monkeypatch.setattr(analysis, "MAX_WAITING_FEEDBACK", 3)
    p = Plant(site())
    p.feed_until(START + 5 * S)
    for i in range(3):
        assert p.send(type="ack", alert_type="nope", ts=START + 20 * S + i) == []  # they wait
    (dead,) = p.send(type="ack", alert_type="nope", ts=START + 20 * S)
    assert dead.record["reason"] == "too_many_waiting" and "3 feedback messages" in dead.record["message"]
    (now,) = p.send(type="ack", alert_type="nope", ts=START + S)  # from the past: applies at once
    assert now.record["reason"] == "no_open_alert"
    p.feed_until(START + 25 * S)  # the clock passes them: each is applied (refused: no open alert of the type)
    assert p.a._waiting_feedback == 0
    assert p.send(type="ack", alert_type="nope", ts=START + 50 * S) == []  # room again
    reasons = Counter(o.record["reason"] for o in p.outs if o.kind == "deadletter")
    assert reasons == {"no_open_alert": 4, "too_many_waiting": 1}


def test_an_asset_forgotten_after_its_ttl_takes_its_suppression_back() -> None:
    from datetime import UTC, datetime, timedelta

    from aiotstream.dataflow.plant import AnalyzerLogic
    from aiotstream.runstats import STATS

    STATS.reset()
    p = Plant(site(maintenance=[{"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:10:00Z"}]))
    wall = [datetime(2026, 1, 1, tzinfo=UTC)]
    logic = AnalyzerLogic(p.rt, None, timedelta(seconds=2), ttl=timedelta(seconds=60), now=lambda: wall[0])
    logic.on_batch([[i for i in p.items if (i.t0_ns if isinstance(i, Frame) else i.ts_ns) < START + 20 * S]])
    assert STATS.get("gauges", "active_suppressions") == 1
    wall[0] += timedelta(seconds=61)
    _, keep = logic.on_notify()
    assert keep is AnalyzerLogic.DISCARD and STATS.get("gauges", "active_suppressions") == 0
    STATS.reset()


def test_unacked_auto_command_is_retried_then_fails_and_raises_an_alert() -> None:
    control = {"actuators": [{"name": "speed", "initial": 1800, "ack_timeout_s": 1, "max_retries": 1}],
               "rules": [{"name": "slow", "actuator": "speed", "when": {"alert_type": "anomaly"},
                          "action": {"delta": -300}, "mode": "auto"}]}
    p = Plant(site(control=control))
    t_open = p.feed_until_alert()["opened_at_ns"]
    p.finish()
    cmds = p.records("command")
    assert [(c["status"], c["attempt"], c["at_ns"] - t_open, c["value"]) for c in cmds] == [
        ("emitted", 0, 0, 1500.0), ("emitted", 1, S, 1500.0), ("failed", 1, 2 * S, 1500.0)]
    assert len({c["command_id"] for c in cmds}) == 1 and len({c["id"] for c in cmds}) == 3
    (failed,) = p.records("alert", alert_type="command_failed")
    assert (failed["event"], failed["severity"], failed["at_ns"], failed["detail"]["actuator"]) == (
        "opened", "critical", t_open + 2 * S, "speed")
    kpis = p.records("kpi", scope="asset")
    assert sum(k["totals"]["commands_retried"] for k in kpis) == 1
    assert sum(k["totals"]["commands_failed"] for k in kpis) == 1


def test_silence_lets_timers_run_on_wall_clock() -> None:
    """Tailing: a silent asset's clock runs on with the wall clock from where it stood, so timers fire."""
    from datetime import UTC, datetime, timedelta

    from aiotstream.dataflow.plant import AnalyzerLogic

    control = {"actuators": [{"name": "speed", "initial": 1800}],
               "rules": [{"name": "slow", "actuator": "speed", "when": {"alert_type": "anomaly"},
                          "action": {"set": 1000}, "mode": "approval", "approval_timeout_s": 8},
                         {"name": "slower", "actuator": "speed", "when": {"alert_type": "anomaly"},
                          "action": {"set": 900}, "mode": "advisory"}]}
    p = Plant(site(control=control, alerts={"escalate_after_s": 20}))
    wall = [datetime(2026, 1, 1, tzinfo=UTC)]
    logic = AnalyzerLogic(p.rt, None, timedelta(seconds=2), now=lambda: wall[0])
    items = [i for i in p.items if (i.t0_ns if isinstance(i, Frame) else i.ts_ns) < START + 34 * S]
    outs, _ = logic.on_batch([items])  # one per-asset list from one poll batch
    (opened,) = [o.record for o in outs if o.kind == "alert" and o.record["event"] == "opened"]
    t_open = opened["opened_at_ns"]
    assert logic.notify_at() == wall[0] + timedelta(seconds=2)  # first: close the windows after idle_close_s
    epoch = wall[0]
    wall[0] += timedelta(seconds=2)
    outs, _ = logic.on_notify()
    start = logic.silent_from_ns
    assert start == START + 34 * S  # the clock after closing the last windows (the data ends at 34 s)
    assert t_open + 8 * S > start + 2 * S and not [o for o in outs if o.kind == "command"]
    # next wake-up: when the approval expires, counted from the clock at the start of the silence
    assert logic.notify_at() == epoch + timedelta(microseconds=(t_open + 8 * S - start) / 1000)
    wall[0] = epoch + timedelta(seconds=(t_open + 8 * S - start) / S + 0.001)
    outs, _ = logic.on_notify()
    assert [(o.record["status"], o.record["at_ns"]) for o in outs if o.kind == "command"] == [
        ("expired", t_open + 8 * S)]
    # the escalation (20 s after the open) is the next timer; the expiry above must not have moved the anchor
    assert logic.notify_at() == epoch + timedelta(microseconds=(t_open + 20 * S - start) / 1000)
    wall[0] = epoch + timedelta(seconds=(t_open + 20 * S - start) / S)
    outs, _ = logic.on_notify()
    assert [(o.record["event"], o.record["at_ns"]) for o in outs if o.kind == "alert"] == [
        ("escalated", t_open + 20 * S)]
    assert logic.notify_at() is None  # nothing more is due


def test_feedback_for_an_unknown_alert_or_command_is_dead_lettered() -> None:
    p = Plant(site())
    p.feed_until(START + 12 * S)
    out = p.send(type="ack", alert_id="0" * 32, ts=START + 12 * S) + \
        p.send(type="approve", command_id="1" * 32, ts=START + 12 * S)
    p.feed_until(START + 13 * S)
    # the readings stream is at 12 s, so the watermark is 11.5 s: the clock (newest closed window end) is still
    # 11 s and the feedback (12 s) waits in the queue
    assert [o for o in p.outs if o.kind == "deadletter"] == []
    p.feed_until(START + 15 * S)
    assert [o.record["reason"] for o in p.outs if o.kind == "deadletter"] == ["unknown_alert", "unknown_command"]
    assert out == []  # queued until the clock passes their time, then refused with a reason


def test_state_with_pending_commands_and_shifts_survives_a_snapshot_round_trip() -> None:
    """Bytewax snapshots pickle the analyzer: resuming mid-fault must give exactly the same records."""
    import copy
    import pickle

    cfg = site(control=APPROVALS, kpi={"periods_s": [10, 30], "shifts": [{"name": "A", "start": "00:00", "hours": 12},
                                                                         {"name": "B", "start": "12:00", "hours": 12}]})

    def run(snapshot_at: int | None) -> list[dict]:
        p = Plant(cfg)
        opened = p.feed_until_alert()
        p.send(type="ack", alert_id=opened["alert_id"], ts=opened["opened_at_ns"] + S)
        if snapshot_at is not None:
            p.feed_until(START + snapshot_at * S)
            p.a = pickle.loads(pickle.dumps(copy.deepcopy(p.a))).attach(p.rt)
        p.finish()
        out = []
        for o in p.outs:  # produced_at and the measured model latency are wall-clock facts
            r = {k: v for k, v in o.record.items() if k != "produced_at"}
            if "totals" in r:
                r["totals"] = {k: v for k, v in r["totals"].items() if not k.startswith("model_latency")}
                r["kpis"] = {k: v for k, v in r["kpis"].items() if k != "model_latency_ms"}
            out.append(r)
        return out

    straight = run(None)
    assert straight == run(36)
    assert any(r.get("status") == "expired" for r in straight)  # a timer that fired after the resume


def test_snapshot_is_a_pickle_that_resumes_the_same_analyzer() -> None:
    """A resumed AnalyzerLogic continues exactly as the one that took the snapshot; no snapshots when off."""
    from aiotstream.dataflow.plant import AnalyzerLogic

    p = Plant(site(model={"warmup_windows": 5, "drift_detector": "adwin", "kind": "hst"}))
    first = [i for i in p.items if (i.t0_ns if isinstance(i, Frame) else i.ts_ns) < START + 20 * S]
    rest = [i for i in p.items if (i.t0_ns if isinstance(i, Frame) else i.ts_ns) >= START + 20 * S]
    logic = AnalyzerLogic(p.rt, None, None)
    logic.on_batch([first])
    snap = logic.snapshot()
    assert isinstance(snap, bytes)
    resumed = AnalyzerLogic(p.rt, snap, None)
    assert resumed.analyzer is not logic.analyzer and resumed.analyzer.rt is p.rt
    after_original = logic.on_batch([rest])[0] + logic.on_eof()[0]
    after_resumed = resumed.on_batch([rest])[0] + resumed.on_eof()[0]
    def stable(r: Any) -> Any:  # produced_at and latencies are wall-clock readings
        return {k: stable(v) for k, v in r.items() if k != "produced_at" and "latency" not in k} \
            if isinstance(r, dict) else r

    assert after_original and [(o.kind, stable(o.record)) for o in after_resumed] == \
        [(o.kind, stable(o.record)) for o in after_original]
    off = AnalyzerLogic(p.rt, None, None, snapshots=False)
    off.on_batch([first])
    assert off.snapshot() is None

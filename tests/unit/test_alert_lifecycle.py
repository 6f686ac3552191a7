"""Alert lifecycle: N-of-M debounce, direction, AlertBook transitions, escalation, suppression, feedback."""
from __future__ import annotations

import pickle

import numpy as np
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from aiotstream.decisions.alerts import AlertBook, AlertPolicy, AlertRuleSpec, anomaly_spec
from aiotstream.decisions.maintenance import MaintenanceSchedule
from aiotstream.records import Feedback, Position

POS = Position("s.feedback", 0, 7)
ANOMALY = anomaly_spec(0.9, 0.6, 0.99, 1, None, 2, None, cooldown_ns=10)
FAILED = AlertRuleSpec("command_failed", None, severity="critical")


def book(escalate: int = 0, max_esc: int = 1, history: int = 100, schedule: MaintenanceSchedule | None = None,
         specs: tuple[AlertRuleSpec, ...] = (ANOMALY, FAILED)) -> AlertBook:
    return AlertBook("p1", "site", "0123456789abcdef", list(specs), schedule or MaintenanceSchedule(),
                     escalate_after_ns=escalate, max_escalations=max_esc, history=history)


def feed(b: AlertBook, values: list[tuple[int, float]], alert_type: str = "anomaly") -> list[tuple[str, int]]:
    out = []
    for t, v in values:
        out += [(c.event, c.at_ns) for c in b.on_value(alert_type, t, v, lambda: [{"feature": "x"}])]
    return out


def fb(kind: str, ts: int, **kw: object) -> Feedback:
    return Feedback(kind, kw.pop("asset", "p1"), ts, POS, **kw)  # type: ignore[arg-type]


# ---- AlertPolicy: N of M, direction ---------------------------------------------------------------
def test_n_of_m_debounce_opens_on_the_nth_hit_within_m_windows() -> None:
    p = AlertPolicy(0.9, 0.6, open_windows=2, clear_windows=1, open_of=3)
    # hits at 1 and 3 (2 of the last 3: [T, F, T]) -> opens at index 3; consecutive-only would not
    ev = [(i, e.kind) for i, v in enumerate([0.1, 0.95, 0.5, 0.95]) for e in p.update(i, v)]
    assert ev == [(3, "opened")]
    q = AlertPolicy(0.9, 0.6, open_windows=2, clear_windows=1)  # M = N: consecutive
    assert [e.kind for i, v in enumerate([0.1, 0.95, 0.5, 0.95]) for e in q.update(i, v)] == []


def test_n_of_m_clear_and_window_slides() -> None:
    p = AlertPolicy(0.9, 0.6, open_windows=1, clear_windows=2, clear_of=3)
    # opens at 0; lows at 1 and 3 within [1, 2, 3] -> clears at 3
    ev = [(i, e.kind) for i, v in enumerate([0.95, 0.1, 0.7, 0.1]) for e in p.update(i, v)]
    assert ev == [(0, "opened"), (3, "cleared")]
    # a low that slid out of the last 3 windows no longer counts: lows at 1, 5 are 4 apart
    p = AlertPolicy(0.9, 0.6, open_windows=1, clear_windows=2, clear_of=3)
    ev = [(i, e.kind) for i, v in enumerate([0.95, 0.1, 0.7, 0.7, 0.7, 0.1]) for e in p.update(i, v)]
    assert ev == [(0, "opened")]


def test_direction_below_mirrors_thresholds_and_peak() -> None:
    p = AlertPolicy(10.0, 12.0, open_windows=1, clear_windows=1, direction="below")
    assert p.update(1, 10.5) == []
    (e,) = p.update(2, 10.0)  # at or below open_threshold opens
    assert e.kind == "opened" and e.peak_score == 10.0
    assert p.update(3, 8.0) == [] and p.peak == 8.0  # the peak of a 'below' alert is its lowest value
    assert p.update(4, 12.0) == []  # not above 12: hysteresis keeps it open
    (e,) = p.update(5, 12.5)
    assert (e.kind, e.peak_score) == ("cleared", 8.0)


def test_force_clear_starts_the_cooldown() -> None:
    p = AlertPolicy(0.9, 0.6, open_windows=1, clear_windows=1, cooldown_ns=100)
    p.update(0, 0.95)
    p.force_clear(50)
    assert not p.is_open
    assert p.update(149, 0.99) == []
    assert [e.kind for e in p.update(150, 0.99)] == ["opened"]


# ---- AlertBook transitions ------------------------------------------------------------------------
def test_open_ack_clear_with_times_and_ids() -> None:
    b = book()
    (opened,) = b.on_value("anomaly", 100, 0.95, lambda: [{"feature": "x.rms"}], np.zeros(2), (99, 100))
    a = opened.alert
    assert (opened.event, a.status, a.severity, a.opened_at_ns, a.explanation) == (
        "opened", "open", "warning", 100, [{"feature": "x.rms"}])
    assert a.alert_id == b.alert_id("anomaly", 100, 0) and len(a.alert_id) == 32 and a.seq == 0
    changes, problem = b.feedback(fb("ack", 130, alert_id=a.alert_id, by="ana"))
    assert problem is None
    (ack,) = changes
    assert (ack.event, ack.alert.status, ack.alert.acknowledged_at_ns, ack.alert.acknowledged_by, ack.at_ns) == (
        "acknowledged", "acknowledged", 130, "ana", 130)
    # clear_windows = 2: lows at 140 and 150 clear at 150; the record keeps the ack
    assert feed(b, [(140, 0.5), (150, 0.4)]) == [("cleared", 150)]
    (cleared,) = [c for c in b.known.values()]
    assert (cleared.status, cleared.cleared_at_ns, cleared.cleared_by, cleared.acknowledged_at_ns) == (
        "cleared", 150, "condition", 130)
    assert b.open_alerts() == {}


def test_severity_rises_while_open_but_never_falls() -> None:
    b = book()
    assert feed(b, [(1, 0.95), (2, 0.995), (3, 0.95)]) == [("opened", 1), ("severity_changed", 2)]
    assert b.current["anomaly"].severity == "critical"


def test_at_most_one_open_alert_per_type_and_event_alerts_count_repeats() -> None:
    b = book()
    feed(b, [(1, 0.95), (2, 0.99), (3, 0.97)])
    assert len(b.current) == 1
    (c,) = b.raise_event("command_failed", 5, "critical", {"actuator": "speed"})
    assert c.event == "opened" and c.alert.severity == "critical"
    assert b.raise_event("command_failed", 6, "critical", {"actuator": "speed"}) == []
    assert b.current["command_failed"].occurrences == 2
    assert b.resolve("command_failed", 7, "command_acked", lambda a: a.detail["actuator"] == "fan") == []
    (r,) = b.resolve("command_failed", 8, "command_acked", lambda a: a.detail["actuator"] == "speed")
    assert (r.event, r.alert.cleared_by) == ("cleared", "command_acked")


def test_escalation_after_time_repeats_up_to_max_and_stops_on_ack() -> None:
    b = book(escalate=100, max_esc=2)
    feed(b, [(1000, 0.95)])
    assert b.next_deadline() == 1100
    assert b.advance(1099) == []
    (e1,) = b.advance(1100)
    assert (e1.event, e1.at_ns, e1.alert.escalation_level) == ("escalated", 1100, 1)
    # the second escalation is due at 1200; one call catching up fires it at its own time
    (e2,) = b.advance(5000)
    assert (e2.at_ns, e2.alert.escalation_level) == (1200, 2)
    assert b.next_deadline() is None  # max_escalations reached
    b2 = book(escalate=100, max_esc=3)
    (o,) = b2.on_value("anomaly", 0, 0.95, list)
    b2.feedback(fb("ack", 50, alert_id=o.alert.alert_id))
    assert b2.advance(10_000) == []


HOT = AlertRuleSpec("hot", "temperature.max", "above", 80.0, 75.0, 90.0, "warning", 1, None, 1, None, 0)
COLD = AlertRuleSpec("cold", "temperature.min", "below", 5.0, 8.0, 0.0, "info", 1, None, 1, None, 0)


def test_several_deadlines_at_once_fire_in_time_order_each_at_its_own_time() -> None:
    b = book(escalate=100, max_esc=2, specs=(ANOMALY, HOT, FAILED))
    feed(b, [(0, 0.95)])
    b.raise_event("command_failed", 20, "critical", {"actuator": "speed"})
    feed(b, [(50, 85.0)], "hot")
    assert b.next_deadline() == 100
    # one call catching up over every deadline: each escalation at its own time, oldest first
    got = [(c.event, c.alert.alert_type, c.at_ns, c.alert.escalation_level, c.alert.next_escalation_ns)
           for c in b.advance(10_000)]
    assert got == [("escalated", "anomaly", 100, 1, 200), ("escalated", "command_failed", 120, 1, 220),
                   ("escalated", "hot", 150, 1, 250), ("escalated", "anomaly", 200, 2, None),
                   ("escalated", "command_failed", 220, 2, None), ("escalated", "hot", 250, 2, None)]
    assert b.next_deadline() is None and b.advance(20_000) == []


def test_deadlines_due_at_the_same_instant_all_fire_and_maintenance_defers_them_together() -> None:
    sched = MaintenanceSchedule()
    b = book(escalate=100, max_esc=3, specs=(ANOMALY, HOT, FAILED), schedule=sched)
    feed(b, [(0, 0.95)])
    feed(b, [(0, 85.0)], "hot")  # two alerts opened at the same instant: both due at 100
    b.raise_event("command_failed", 30, "critical", {"actuator": "speed"})  # due at 130
    assert b.next_deadline() == 100
    sched.set("m", 90, 140)  # maintenance from 90 to 140 covers all three deadlines
    feed(b, [(95, 0.1), (96, 0.1), (110, 0.96)])  # the anomaly clears, and after its cool-down is held back
    assert "anomaly" in b.suppressed and b.next_deadline() == 100
    assert b.advance(139) == []  # due in maintenance: each escalation waits for its end
    assert b.next_deadline() == 140
    got = [(c.event, c.alert.alert_type, c.at_ns, c.alert.escalation_level, c.alert.next_escalation_ns)
           for c in b.advance(140)]
    # at the end of maintenance: the held-back alert opens, the deferred escalations fire, all at 140
    assert got == [("opened", "anomaly", 140, 0, 240), ("escalated", "hot", 140, 1, 240),
                   ("escalated", "command_failed", 140, 1, 240)]
    assert b.next_deadline() == 240
    assert sorted((c.alert.alert_type, c.at_ns, c.alert.escalation_level) for c in b.advance(240)) == [
        ("anomaly", 240, 1), ("command_failed", 240, 2), ("hot", 240, 2)]


def test_an_alert_that_opens_already_critical() -> None:
    b = book(specs=(ANOMALY, HOT, COLD, FAILED))
    (o,) = b.on_value("anomaly", 1, 0.995, list)
    assert (o.event, o.alert.severity, o.alert.score, o.alert.peak_score) == ("opened", "critical", 0.995, 0.995)
    assert feed(b, [(2, 0.999), (3, 0.95)]) == []  # critical from the start: no severity_changed follows
    assert b.current["anomaly"].severity == "critical"
    (h,) = b.on_value("hot", 1, 90.0, list)  # exactly the critical threshold is critical
    assert h.alert.severity == "critical"
    (c,) = b.on_value("cold", 1, 0.0, list)  # 'below': at or below its critical threshold
    assert c.alert.severity == "critical"
    (w,) = book(specs=(COLD,)).on_value("cold", 1, 0.5, list)  # 'below' and above critical: base severity
    assert w.alert.severity == "info"
    # held back by maintenance, the condition reached critical meanwhile: it opens critical at the end
    sched = MaintenanceSchedule()
    sched.set("m", 0, 100)
    b2 = book(schedule=sched)
    feed(b2, [(10, 0.92), (20, 0.995), (30, 0.93)])
    (late,) = b2.advance(100)
    assert (late.event, late.alert.severity, late.alert.peak_score, late.alert.score) == (
        "opened", "critical", 0.995, 0.92)


def test_the_open_alerts_score_and_peak_follow_every_window() -> None:
    b = book(specs=(ANOMALY, COLD))
    (o,) = b.on_value("anomaly", 1, 0.92, list)
    a = b.current["anomaly"]
    assert (a.score, a.peak_score) == (0.92, 0.92)
    steps = [(2, 0.97, 0.97), (3, 0.95, 0.97), (4, 0.7, 0.97), (5, 0.98, 0.98)]
    for t, v, peak in steps:
        assert b.on_value("anomaly", t, v, list) == []
        assert (a.score, a.peak_score, a.severity) == (v, peak, "warning"), t
    (up,) = b.on_value("anomaly", 6, 0.991, list)  # the peak reaches critical: the severity rises with it
    assert (up.event, up.alert.peak_score, up.alert.score, up.at_ns) == ("severity_changed", 0.991, 0.991, 6)
    assert o.alert.peak_score == 0.92  # the records already out are copies: they keep their values
    feed(b, [(7, 0.5)])
    (cl,) = b.on_value("anomaly", 8, 0.4, list)
    assert (cl.event, cl.alert.score, cl.alert.peak_score, cl.alert.severity) == ("cleared", 0.4, 0.991, "critical")
    # the next alert starts its own peak
    (o2,) = feed_changes(b, 100, 0.93)
    assert (o2.alert.peak_score, o2.alert.severity) == (0.93, "warning")
    # 'below': the peak is the lowest value
    b.on_value("cold", 1, 4.0, list)
    for t, v in ((2, 3.0), (3, 4.5)):
        b.on_value("cold", t, v, list)
    assert (b.current["cold"].score, b.current["cold"].peak_score) == (4.5, 3.0)


def feed_changes(b: AlertBook, t: int, v: float) -> list:
    return b.on_value("anomaly", t, v, list)


def test_schedule_boundaries_chains_pruning_and_offers() -> None:
    m = MaintenanceSchedule()
    m.set("b", 10, 20)  # inserted after the window it continues: end_of needs a second pass
    m.set("a", 0, 10)
    assert (m.active(0), m.active(19), m.active(20), m.end_of(5)) == (True, True, False, 20)
    m.prune(20)  # a window ending exactly then is kept (it could still matter at that instant)
    assert sorted(m.windows) == ["b"]
    m.prune(21)
    assert m.windows == {}
    assert m.offer("x", 0, 100, max_ns=100, max_windows=2, forget_before_ns=None) is None  # exactly the maximum
    assert m.offer("x", 0, 101, max_ns=100, max_windows=2, forget_before_ns=None).reason == "maintenance_too_long"
    assert m.offer("y", 200, 300, max_ns=100, max_windows=2, forget_before_ns=None) is None
    assert m.offer("z", 400, 401, max_ns=100, max_windows=2, forget_before_ns=50).reason == "too_many_windows"
    assert m.offer("y", 200, 250, max_ns=100, max_windows=2, forget_before_ns=None) is None  # a known id, at the cap
    assert m.offer("z", 400, 401, max_ns=100, max_windows=2, forget_before_ns=101) is None  # x (ended 100) forgotten
    assert sorted(m.windows) == ["y", "z"]


def test_the_suppression_gauge_adds_differences_and_a_resumed_one_reports_afresh() -> None:
    from aiotstream.decisions.maintenance import SuppressionGauge
    from aiotstream.runstats import RunStats

    stats = RunStats()
    g = SuppressionGauge(stats)
    g.update(False)
    assert stats.get("gauges", "active_suppressions") == 0 and not g.on
    g.update(True)
    g.update(True)
    assert stats.get("gauges", "active_suppressions") == 1 and g.on
    copy = pickle.loads(pickle.dumps(g))
    assert (copy.on, copy.stats) == (False, None)  # not carried by a snapshot
    g.release()
    g.release()
    assert stats.get("gauges", "active_suppressions") == 0 and not g.on


def test_policy_needs_n_at_most_m_for_opening_and_clearing() -> None:
    for kw in ({"open_windows": 3, "open_of": 2}, {"clear_windows": 3, "clear_of": 2}):
        try:
            AlertPolicy(0.9, 0.6, **kw)  # type: ignore[arg-type]
        except ValueError as e:
            assert "N <= M" in str(e)
        else:
            raise AssertionError(f"{kw} accepted")


def test_no_escalation_without_max_escalations_and_suppressed_drafts_take_no_seq() -> None:
    b = book(escalate=100, max_esc=0)
    feed(b, [(0, 0.95)])
    assert b.current["anomaly"].next_escalation_ns is None and b.next_deadline() is None
    sched = MaintenanceSchedule()
    sched.set("m", 0, 50)
    b2 = book(schedule=sched)
    (sup,) = b2.on_value("anomaly", 10, 0.95, list)
    assert (sup.event, sup.alert.seq, sup.alert.status) == ("suppressed", -1, "suppressed")
    assert sup.alert.alert_id == b2.alert_id("anomaly", 10, 0)  # the id it would have had
    (late,) = b2.advance(50)
    assert late.alert.detail == {"after_maintenance": True, "condition_since_ns": 10} and late.alert.seq == 0


def test_escalation_waits_for_the_end_of_maintenance() -> None:
    sched = MaintenanceSchedule()
    b = book(escalate=100, schedule=sched)
    feed(b, [(0, 0.95)])
    sched.set("m", 50, 300)  # maintenance starts after the alert opened
    assert b.advance(299) == []
    (e,) = b.advance(300)
    assert (e.event, e.at_ns) == ("escalated", 300)


def test_suppressed_in_maintenance_then_opens_at_its_end_if_the_condition_holds() -> None:
    sched = MaintenanceSchedule()
    sched.set("m", 100, 200)
    b = book(schedule=sched)
    assert feed(b, [(110, 0.95), (120, 0.97)]) == [("suppressed", 110)]
    assert b.open_alerts() == {} and b.next_deadline() == 200
    (c,) = b.advance(200)
    assert (c.event, c.alert.opened_at_ns, c.alert.detail["condition_since_ns"]) == ("opened", 200, 110)
    assert c.alert.peak_score == 0.97


def test_suppressed_condition_that_clears_during_maintenance_leaves_nothing() -> None:
    sched = MaintenanceSchedule()
    sched.set("m", 100, 200)
    b = book(schedule=sched)
    assert feed(b, [(110, 0.95), (120, 0.1), (130, 0.1)]) == [("suppressed", 110)]  # the clear is silent too
    assert b.advance(1000) == [] and b.open_alerts() == {}


def test_maintenance_end_follows_touching_windows_and_replacement() -> None:
    m = MaintenanceSchedule()
    m.set("a", 0, 10)
    m.set("b", 10, 20)
    m.set("c", 25, 30)
    assert m.end_of(5) == 20 and m.end_of(20) is None and m.end_of(26) == 30
    m.set("b", 10, 12)  # the same id ends it early
    assert m.end_of(5) == 12


def test_operator_clear_forces_the_policy_closed_and_a_persisting_condition_reopens_after_cooldown() -> None:
    b = book()
    feed(b, [(0, 0.95)])
    a = b.current["anomaly"]
    (c,), problem = b.feedback(fb("clear", 5, alert_id=a.alert_id, by="bo"))
    assert problem is None and (c.event, c.alert.cleared_by, c.at_ns) == ("cleared", "operator:bo", 5)
    assert feed(b, [(10, 0.99), (14, 0.99)]) == []  # cool-down 10 from the clear at 5
    assert feed(b, [(15, 0.99)]) == [("opened", 15)]


def test_ack_by_alert_type_and_every_refusal_reason() -> None:
    b = book()
    changes, problem = b.feedback(fb("ack", 1, alert_type="anomaly"))
    assert changes == [] and problem is not None and problem.reason == "no_open_alert"
    _, problem = b.feedback(fb("ack", 1, alert_id="f" * 32))
    assert problem is not None and problem.reason == "unknown_alert"
    feed(b, [(10, 0.95)])
    (c,), problem = b.feedback(fb("ack", 11, alert_type="anomaly"))
    assert c.event == "acknowledged"
    changes, problem = b.feedback(fb("ack", 12, alert_type="anomaly"))  # a repeated ack changes nothing ...
    assert changes == [] and problem is not None and problem.reason == "already_acknowledged"  # ... and says so
    assert b.current["anomaly"].acknowledged_at_ns == 11
    aid = c.alert.alert_id
    feed(b, [(20, 0.1), (30, 0.1)])
    _, problem = b.feedback(fb("ack", 40, alert_id=aid))
    assert problem is not None and problem.reason == "alert_not_open"
    _, problem = b.feedback(fb("clear", 40, alert_id=aid))
    assert problem is not None and problem.reason == "alert_not_open"


def test_label_works_after_clear_once_and_repeats_are_refused() -> None:
    b = book()
    feed(b, [(10, 0.95), (20, 0.1), (30, 0.1)])
    aid = b.alert_id("anomaly", 10, 0)
    (c,), problem = b.feedback(fb("label", 40, alert_id=aid, label="false_alarm", by="cy"))
    assert problem is None and (c.event, c.alert.status, c.alert.label, c.alert.labelled_by) == (
        "labelled", "cleared", "false_alarm", "cy")
    changes, problem = b.feedback(fb("label", 41, alert_id=aid, label="false_alarm", by="cy"))
    assert changes == [] and problem is not None and problem.reason == "already_labelled"
    assert "the same label again" in problem.message
    _, problem = b.feedback(fb("label", 42, alert_id=aid, label="true_fault"))
    assert problem is not None and problem.reason == "already_labelled" and "first label stands" in problem.message
    assert (b.known[aid].label, b.known[aid].labelled_at_ns) == ("false_alarm", 40)


def test_history_is_bounded_but_open_alerts_are_never_forgotten() -> None:
    b = book(history=2)
    t = 0
    ids = []
    for _ in range(5):
        t += 100
        feed(b, [(t, 0.95)])
        ids.append(b.current["anomaly"].alert_id)
        feed(b, [(t + 1, 0.1), (t + 2, 0.1)])
    assert list(b.known) == ids[-2:]
    feed(b, [(t + 100, 0.95)])
    assert b.current["anomaly"].alert_id in b.known


def run_events(b: AlertBook, steps: list[tuple[str, int]]) -> list[tuple[str, str, int]]:
    """Feed ``(fail | resolve, t)`` steps of ``command_failed``; (event, alert_id, seq) of every change."""
    out = []
    for kind, t in steps:
        if kind == "fail":
            changes = b.raise_event("command_failed", t, "critical", {"actuator": "s"})
        else:
            changes = b.resolve("command_failed", t, "command_acked", lambda _a: True)
        out += [(c.event, c.alert.alert_id, c.alert.seq) for c in changes]
    return out


FAIL_FAIL_RESOLVE_FAIL = [("fail", 0), ("fail", 0), ("resolve", 0), ("fail", 0)]


def test_event_alert_reopened_at_the_same_instant_is_a_new_alert_with_its_own_id() -> None:
    """Regression (hypothesis found it): fail, fail, resolve, fail at t=0 reused the first alert's id for the
    second alert, so the second replaced the first in the book (feedback for the first reached the second) and
    its records and commands repeated the first's ids, which consumers and the controller drop as replays."""
    b = book()
    (o1, a1, s1), (c1, c1_id, _), (o2, a2, s2) = run_events(b, FAIL_FAIL_RESOLVE_FAIL)
    assert (o1, c1, o2, s1, s2) == ("opened", "cleared", "opened", 0, 1)
    assert c1_id == a1 and a2 != a1
    assert (a1, a2) == (b.alert_id("command_failed", 0, 0), b.alert_id("command_failed", 0, 1))
    first, second = b.known[a1], b.known[a2]
    assert (first.status, first.occurrences, first.cleared_by) == ("cleared", 2, "command_acked")
    assert (second.status, second.occurrences) == ("open", 1) and b.current["command_failed"] is second
    # feedback by id reaches the alert it names: the first one is cleared, the second is open
    _, problem = b.feedback(fb("ack", 0, alert_id=a1))
    assert problem is not None and problem.reason == "alert_not_open" and second.status == "open"
    (lab,), problem = b.feedback(fb("label", 0, alert_id=a1, label="true_fault"))
    assert problem is None and lab.alert.alert_id == a1 and second.label is None
    (ack,), _ = b.feedback(fb("ack", 0, alert_id=a2))
    assert (ack.alert.alert_id, ack.alert.status) == (a2, "acknowledged")


def test_condition_alert_cleared_and_reopened_at_the_same_instant_gets_a_new_id() -> None:
    # no cool-down: an operator clear at 5 while the condition holds, and the window at 5 opens a new alert
    hot = AlertRuleSpec("hot", "temperature.max", "above", 0.7, 0.3, None, "warning", 1, None, 1, None, 0)
    b = book(specs=(hot,))
    (o1,) = b.on_value("hot", 5, 0.9, list)
    (c1,), _ = b.feedback(fb("clear", 5, alert_type="hot"))
    (o2,) = b.on_value("hot", 5, 0.9, list)
    assert (o1.event, c1.event, o2.event) == ("opened", "cleared", "opened")
    assert c1.alert.alert_id == o1.alert.alert_id != o2.alert.alert_id
    assert [(a.status, a.seq) for a in b.known.values()] == [("cleared", 0), ("open", 1)]


def test_alert_ids_are_deterministic_across_books_and_snapshot_resumes() -> None:
    steps = FAIL_FAIL_RESOLVE_FAIL + [("resolve", 3), ("fail", 3), ("resolve", 9), ("fail", 9)]
    straight = run_events(book(), steps)
    assert straight == run_events(book(), steps)  # the same inputs give the same ids
    assert len({aid for ev, aid, _ in straight if ev == "opened"}) == 4
    for cut in range(len(steps) + 1):  # resuming from a snapshot (the pickled book) after any step
        first = book()
        out = run_events(first, steps[:cut])
        out += run_events(pickle.loads(pickle.dumps(first)), steps[cut:])
        assert out == straight, cut
    # the id depends on the asset, the site, the config, the type, the opening time and the sequence number
    ids = [AlertBook(asset, site_, cfg, [FAILED], MaintenanceSchedule()).alert_id(typ, t, seq)
           for asset, site_, cfg, typ, t, seq in [("p1", "s", "c", "command_failed", 0, 0),
                                                   ("p2", "s", "c", "command_failed", 0, 0),
                                                   ("p1", "t", "c", "command_failed", 0, 0),
                                                   ("p1", "s", "d", "command_failed", 0, 0),
                                                   ("p1", "s", "c", "anomaly", 0, 0),
                                                   ("p1", "s", "c", "command_failed", 1, 0),
                                                   ("p1", "s", "c", "command_failed", 0, 1)]]
    assert len(set(ids)) == len(ids)


def test_a_suppressed_alert_takes_no_sequence_number() -> None:
    sched = MaintenanceSchedule()
    sched.set("m", 10, 20)
    b = book(schedule=sched)
    assert run_events(b, [("fail", 0), ("resolve", 1)])[0][2] == 0
    (sup,) = b.raise_event("command_failed", 15, "critical", {"actuator": "s"})
    assert sup.event == "suppressed" and b.open_alerts() == {}
    assert run_events(b, [("fail", 25)]) == [("opened", b.alert_id("command_failed", 25, 1), 1)]


# ---- property: dedupe ------------------------------------------------------------------------------
# values cluster around the thresholds (anomaly 0.9/0.6, hot 0.7/0.3) so conditions open and clear often
VALUE = st.one_of(st.sampled_from([0.1, 0.5, 0.65, 0.8, 0.95]), st.floats(0, 1))
EVENT = st.one_of(
    st.tuples(st.just("value"), st.sampled_from(["anomaly", "hot"]), VALUE),
    st.tuples(st.just("value"), st.sampled_from(["anomaly", "hot"]), VALUE),
    st.tuples(st.just("ack"), st.sampled_from(["anomaly", "hot", "command_failed"]), st.none()),
    st.tuples(st.just("clear"), st.sampled_from(["anomaly", "hot", "command_failed"]), st.none()),
    st.tuples(st.just("fail"), st.just("command_failed"), st.none()),
    st.tuples(st.just("resolve"), st.just("command_failed"), st.none()),
    st.tuples(st.just("maintenance"), st.integers(0, 5), st.integers(1, 20)),
)


@settings(max_examples=200, deadline=None)
@example(steps=[(0, (k, "command_failed", None)) for k in ("fail", "fail", "resolve", "fail")], escalate=0)
@given(steps=st.lists(st.tuples(st.integers(0, 3), EVENT), min_size=20, max_size=120), escalate=st.integers(0, 5))
def test_never_two_open_alerts_of_one_type(steps: list, escalate: int) -> None:
    hot = AlertRuleSpec("hot", "temperature.max", "above", 0.7, 0.3, None, "warning", 2, 3, 1, None, 2)
    sched = MaintenanceSchedule()
    b = book(escalate=escalate, max_esc=2, schedule=sched, specs=(ANOMALY, hot, FAILED))
    t = 0
    opened: list[str] = []
    open_now: dict[str, str] = {}
    for dt, (kind, a, x) in steps:
        t += dt
        if kind == "value":
            changes = b.on_value(a, t, x, list)
        elif kind in ("ack", "clear"):
            changes, _ = b.feedback(fb(kind, t, alert_type=a))
        elif kind == "fail":
            changes = b.raise_event(a, t, "critical", {"actuator": "s"})
        elif kind == "resolve":
            changes = b.resolve(a, t, "acked", lambda _a: True)
        else:
            sched.set(f"w{t}", t + a, t + a + x)
            changes = []
        changes += b.advance(t)
        for c in changes:
            event(c.event)
            if c.event == "opened":
                assert c.alert.alert_type not in open_now, "a second open alert of one type"
                open_now[c.alert.alert_type] = c.alert.alert_id
                opened.append(c.alert.alert_id)
            elif c.event == "cleared":
                assert open_now.pop(c.alert.alert_type) == c.alert.alert_id
        if len(open_now) > 1:
            event("two types open at once")
        assert {k: v.alert_id for k, v in b.current.items()} == open_now
        assert all(v.status in ("open", "acknowledged") for v in b.current.values())
        for typ, policy in b.policies.items():  # the condition is open iff its alert is open or suppressed
            assert policy.is_open == (typ in b.current or typ in b.suppressed)
    assert len(opened) == len(set(opened))  # an alert id opens once

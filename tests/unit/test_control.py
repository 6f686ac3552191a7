"""Safety envelope rules, the command state machine, and the property: no emitted command breaks its envelope."""
from __future__ import annotations

import math

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from aiotstream.decisions.control import (
    TOLERANCE,
    ActuatorSpec,
    Controller,
    Envelope,
    Interlock,
    RuleSpec,
    Situation,
)
from aiotstream.records import Feedback, Position

S = 1_000_000_000
CALM = Situation({}, {}, None, False)
POS = Position("s.feedback", 0, 1)


def sit(metrics: dict | None = None, alerts: dict | None = None, state: str | None = None,
        maintenance: bool = False) -> Situation:
    return Situation(metrics or {}, alerts or {}, state, maintenance)


# ---- the envelope, one rule at a time -------------------------------------------------------------------
def test_interlocks_block_with_their_name() -> None:
    locks = (Interlock("hot", metric="temperature", above=90.0), Interlock("dry", metric="flow", below=1.0),
             Interlock("alarm", alert_type="anomaly", min_severity="critical"),
             Interlock("stopped", states=("down", "planned_stop")), Interlock("service", maintenance=True))
    env = Envelope(interlocks=locks)
    assert env.check(1.0, 0, None, None, CALM).allowed
    cases = [(sit({"temperature": 90.5}), "hot"), (sit({"flow": 0.5}), "dry"),
             (sit(alerts={"anomaly": "critical"}), "alarm"), (sit(state="down"), "stopped"),
             (sit(maintenance=True), "service")]
    for s, name in cases:
        v = env.check(1.0, 0, None, None, s)
        assert not v.allowed and v.blocked_by == {"check": "interlock", "rule": name,
                                                  "message": v.blocked_by["message"]}  # type: ignore[index]
    # boundaries: 90.0 is not above 90; a warning is below critical; an unknown metric does not hold
    assert env.check(1.0, 0, None, None, sit({"temperature": 90.0, "flow": 1.0}, {"anomaly": "warning"},
                                             "running")).allowed


def test_min_interval() -> None:
    env = Envelope(min_interval_ns=60 * S)
    assert env.check(5.0, 100 * S, 0.0, (0.0, 41 * S), CALM).blocked_by["check"] == "min_interval"  # type: ignore[index]
    assert env.check(5.0, 101 * S, 0.0, (0.0, 41 * S), CALM).allowed  # exactly 60 s later


def test_bounds_block_or_clamp() -> None:
    env = Envelope(min=10.0, max=20.0)
    assert env.check(20.0, 0, None, None, CALM).allowed and env.check(10.0, 0, None, None, CALM).allowed
    assert env.check(20.5, 0, None, None, CALM).blocked_by["check"] == "max"  # type: ignore[index]
    assert env.check(9.0, 0, None, None, CALM).blocked_by["check"] == "min"  # type: ignore[index]
    c = Envelope(min=10.0, max=20.0, clamp=True).check(25.0, 0, None, None, CALM)
    assert (c.allowed, c.value, c.clamped_by) == (True, 20.0, ("max",))


def test_max_step_from_the_current_value() -> None:
    env = Envelope(max_step=5.0)
    assert env.check(105.0, 0, 100.0, None, CALM).allowed
    assert env.check(105.1, 0, 100.0, None, CALM).blocked_by["check"] == "max_step"  # type: ignore[index]
    assert env.check(105.0, 0, None, None, CALM).blocked_by["check"] == "max_step"  # type: ignore[index]
    c = Envelope(max_step=5.0, clamp=True).check(90.0, 0, 100.0, None, CALM)
    assert (c.value, c.clamped_by) == (95.0, ("max_step",))


def test_max_rate_since_the_previous_command() -> None:
    env = Envelope(max_rate_per_s=2.0)
    assert env.check(120.0, 10 * S, None, (100.0, 0), CALM).allowed  # 20 in 10 s = 2/s
    assert env.check(121.0, 10 * S, None, (100.0, 0), CALM).blocked_by["check"] == "max_rate"  # type: ignore[index]
    assert env.check(1e6, 0, None, None, CALM).allowed  # no previous command: no rate to check
    c = Envelope(max_rate_per_s=2.0, clamp=True).check(50.0, 5 * S, None, (100.0, 0), CALM)
    assert (c.value, c.clamped_by) == (90.0, ("max_rate",))


def test_clamp_that_cannot_satisfy_every_limit_blocks() -> None:
    # the current value 50 is outside [0, 10] and only 5 may change per command: no value fits both.
    # 0 is clamped to 45 by max_step, which breaks the bounds: the first failing check (bounds) blocks
    c = Envelope(min=0.0, max=10.0, max_step=5.0, clamp=True).check(0.0, 0, 50.0, None, CALM)
    assert not c.allowed and c.blocked_by["check"] == "max" and c.clamped_by == ("max_step",)  # type: ignore[index]


def test_non_finite_value_blocks() -> None:
    assert Envelope().check(math.nan, 0, None, None, CALM).blocked_by["check"] == "value"  # type: ignore[index]


# ---- the controller ---------------------------------------------------------------------------------------
def act(**kw: object) -> ActuatorSpec:
    return ActuatorSpec(**{"name": "speed", "unit": "rpm", "initial": 1800.0,  # type: ignore[arg-type]
                           "envelope": Envelope(min=600.0, max=1800.0), "ack_timeout_ns": 10 * S,
                           "max_retries": 2, **kw})


def rule(**kw: object) -> RuleSpec:
    return RuleSpec(**{"name": "slow", "actuator": "speed", "kind": "alert", "action": ("set", 1200.0),  # type: ignore[arg-type]
                       "alert_type": "anomaly", "min_severity": "warning", "mode": "auto", **kw})


def ctl(actuator: ActuatorSpec | None = None, *rules: RuleSpec) -> Controller:
    return Controller("p1", "site", "0123456789abcdef", [actuator or act()], list(rules) or [rule()])


def fb(kind: str, cid: str, ts: int, **kw: object) -> Feedback:
    return Feedback(kind, "p1", ts, POS, command_id=cid, **kw)  # type: ignore[arg-type]


def opened(c: Controller, t: int, severity: str = "warning", aid: str = "a1") -> list:
    return c.on_alerts(t, {"anomaly": (severity, aid)}, CALM)


def test_auto_emits_once_per_rising_edge_and_acks_match_by_id() -> None:
    c = ctl()
    (ch,) = opened(c, 5 * S)
    cmd = ch.command
    assert (ch.status, cmd.value, cmd.previous_value, cmd.attempt, cmd.trigger["alert_id"]) == (
        "emitted", 1200.0, 1800.0, 0, "a1")
    assert opened(c, 6 * S) == []  # still open: no new edge
    (ack,), problem = c.feedback(fb("command_ack", cmd.command_id, 7 * S, status="applied", value=1200.0), 7 * S, CALM)
    assert problem is None and ack.status == "acked" and ack.command.acked_value == 1200.0
    again = fb("command_ack", cmd.command_id, 8 * S, status="applied", value=700.0)
    changes, problem = c.feedback(again, 8 * S, CALM)  # a repeated ack: refused, and it reports nothing
    assert changes == [] and problem is not None and problem[0] == "duplicate_ack"
    assert c.current("speed") == 1200.0


def commands_in_every_state() -> tuple[Controller, dict[str, str]]:
    """A controller with one command in each state an ack can find: status -> command id."""
    c = Controller("p1", "site", "0123456789abcdef", [act(), act(name="fan", initial=10.0,
                                                               envelope=Envelope(min=0.0, max=100.0))],
                   [rule(), rule(name="adv", actuator="fan", mode="advisory", action=("set", 20.0)),
                    rule(name="ask", actuator="fan", mode="approval", action=("set", 30.0),
                         approval_timeout_ns=S, alert_type="drift")])
    ids: dict[str, str] = {}
    for ch in opened(c, 0):  # speed emitted, fan advisory
        ids[ch.status] = ch.command.command_id
    ids["superseded"] = ids.pop("emitted")
    for ch in c.on_alerts(S, {}, CALM) + opened(c, 2 * S, aid="a2"):  # a new edge supersedes the first
        if ch.status == "emitted":
            ids["emitted"] = ch.command.command_id
    ch, = c.on_alerts(3 * S, {"anomaly": ("warning", "a2"), "drift": ("warning", "d1")}, CALM)
    ids["awaiting_approval"] = ch.command.command_id
    ids["expired"] = ids["awaiting_approval"]
    (ex,) = c.advance(4 * S, CALM)
    assert ex.status == "expired"
    del ids["awaiting_approval"]
    assert set(ids) == {"advisory", "superseded", "emitted", "expired"}
    return c, ids


@pytest.mark.parametrize("state", ["advisory", "superseded", "expired", "failed"])
def test_an_ack_for_a_command_that_is_not_pending_changes_nothing(state: str) -> None:
    c, ids = commands_in_every_state()
    if state == "failed":  # no ack within the retries
        c.advance(10**12, CALM)
        cid = ids["emitted"]
        assert c.commands[cid].status == "failed"
    else:
        cid = ids[state]
    before = (dict(c.reported), c.current("speed"), c.current("fan"), c.commands[cid].status)
    for status in ("applied", "failed"):
        changes, problem = c.feedback(fb("command_ack", cid, 5 * S, status=status, value=50.0), 5 * S, CALM)
        assert changes == [] and problem is not None and problem[0] == "command_not_pending", (state, problem)
    assert (dict(c.reported), c.current("speed"), c.current("fan"), c.commands[cid].status) == before


def test_repeated_or_contradicting_acks_are_duplicates() -> None:
    for first, second in (("applied", "applied"), ("applied", "failed"), ("failed", "failed"),
                          ("rejected", "applied")):
        c = ctl()
        cid = opened(c, 0)[0].command.command_id
        (ch,), problem = c.feedback(fb("command_ack", cid, S, status=first, value=1200.0), S, CALM)
        assert problem is None and ch.status == ("acked" if first == "applied" else "failed")
        reported = dict(c.reported)
        changes, problem = c.feedback(fb("command_ack", cid, 2 * S, status=second, value=900.0), 2 * S, CALM)
        assert changes == [] and problem is not None and problem[0] == "duplicate_ack", (first, second)
        assert c.reported == reported and c.commands[cid].status == ch.status


def test_ack_values_outside_the_actuator_bounds_are_refused() -> None:
    c = ctl()  # speed: bounds [600, 1800]
    cid = opened(c, 0)[0].command.command_id
    for value in (599.0, 1800.5, 1e308, -1e308, math.inf, math.nan):
        changes, problem = c.feedback(fb("command_ack", cid, S, value=value), S, CALM)
        assert changes == [] and problem is not None and problem[0] == "bad_ack_value", value
        assert c.reported == {} and c.commands[cid].status == "emitted"
    (ch,), problem = c.feedback(fb("command_ack", cid, S, value=1800.0), S, CALM)  # the bound itself is fine
    assert problem is None and ch.status == "acked" and c.current("speed") == 1800.0


def test_acks_match_commands_by_id_and_asset() -> None:
    c = ctl()
    cid = opened(c, 0)[0].command.command_id
    other = Feedback("command_ack", "p2", S, POS, command_id=cid)
    changes, problem = c.feedback(other, S, CALM)
    assert changes == [] and problem is not None and problem[0] == "unknown_command"
    changes, problem = c.feedback(fb("command_ack", cid[::-1], S), S, CALM)
    assert changes == [] and problem is not None and problem[0] == "unknown_command"
    assert c.commands[cid].status == "emitted"


def test_the_same_approval_again_is_refused_with_a_reason() -> None:
    c = ctl(None, rule(mode="approval"))
    cid = opened(c, 0)[0].command.command_id
    (em,), problem = c.feedback(fb("approve", cid, S, by="op"), S, CALM)
    assert problem is None and em.status == "emitted"
    changes, problem = c.feedback(fb("approve", cid, 2 * S, by="op"), 2 * S, CALM)
    assert changes == [] and problem is not None and problem[0] == "already_approved"
    changes, problem = c.feedback(fb("approve", cid, 2 * S, by="other"), 2 * S, CALM)
    assert changes == [] and problem is not None and problem[0] == "command_not_pending"


def test_severity_threshold_of_an_alert_rule() -> None:
    c = ctl(None, rule(min_severity="critical"))
    assert opened(c, S) == []
    assert [ch.status for ch in opened(c, 2 * S, "critical")] == ["emitted"]


def test_advisory_is_checked_but_not_emitted() -> None:
    c = ctl(None, rule(mode="advisory", action=("set", 2000.0)))
    (ch,) = opened(c, S)
    assert ch.status == "blocked" and ch.command.blocked_by["check"] == "max"  # type: ignore[index]
    c = ctl(None, rule(mode="advisory"))
    (ch,) = opened(c, S)
    assert ch.status == "advisory" and c.last == {}  # a recommendation does not move the actuator


def test_approval_in_time_emits_late_approval_is_refused() -> None:
    c = ctl(None, rule(mode="approval", approval_timeout_ns=60 * S))
    (ch,) = opened(c, 0)
    cid = ch.command.command_id
    assert ch.status == "awaiting_approval" and ch.command.expires_at_ns == 60 * S and c.next_deadline() == 60 * S
    (em,), problem = c.feedback(fb("approve", cid, 30 * S, by="op"), 30 * S, CALM)
    assert problem is None and (em.status, em.at_ns, em.command.approved_by) == ("emitted", 30 * S, "op")
    # a second rule instance: not approved in time -> expired at the deadline; the late approve is refused
    c2 = ctl(None, rule(mode="approval", approval_timeout_ns=60 * S))
    cid2 = opened(c2, 0)[0].command.command_id
    assert c2.advance(59 * S, CALM) == []
    (ex,) = c2.advance(90 * S, CALM)
    assert (ex.status, ex.at_ns) == ("expired", 60 * S)
    changes, problem = c2.feedback(fb("approve", cid2, 90 * S), 90 * S, CALM)
    assert changes == [] and problem is not None and problem[0] == "command_not_pending"


def test_approval_rechecks_the_envelope_and_reject() -> None:
    lock = Interlock("stopped", states=("down",))
    c = ctl(act(envelope=Envelope(min=600.0, max=1800.0, interlocks=(lock,))), rule(mode="approval"))
    cid = opened(c, 0)[0].command.command_id
    (ch,), _ = c.feedback(fb("approve", cid, S), S, sit(state="down"))  # the machine went down meanwhile
    assert ch.status == "blocked" and ch.command.blocked_by["rule"] == "stopped"  # type: ignore[index]
    c = ctl(None, rule(mode="approval"))
    cid = opened(c, 0)[0].command.command_id
    (ch,), _ = c.feedback(fb("reject", cid, S, by="op"), S, CALM)
    assert ch.status == "rejected"
    _, problem = c.feedback(fb("approve", "0" * 32, S), S, CALM)
    assert problem is not None and problem[0] == "unknown_command"


def test_unacked_commands_are_retried_with_the_same_id_then_fail() -> None:
    c = ctl()
    cid = opened(c, 0)[0].command.command_id
    r1, r2, fail = c.advance(100 * S, CALM)
    assert [(x.status, x.command.attempt, x.at_ns, x.command.command_id) for x in (r1, r2, fail)] == [
        ("emitted", 1, 10 * S, cid), ("emitted", 2, 20 * S, cid), ("failed", 2, 30 * S, cid)]
    assert "no device ack after 3 attempt(s)" in fail.command.reason
    assert c.next_deadline() is None


def test_device_failure_fails_at_once_and_no_ack_needed_when_timeout_is_zero() -> None:
    c = ctl()
    cid = opened(c, 0)[0].command.command_id
    (ch,), _ = c.feedback(fb("command_ack", cid, S, status="rejected", note="local mode"), S, CALM)
    assert (ch.status, ch.command.reason) == ("failed", "device reported rejected: local mode")
    c = ctl(act(ack_timeout_ns=0))
    opened(c, 0)
    assert c.next_deadline() is None and c.advance(10**15, CALM) == []


def test_retry_blocked_by_an_interlock_that_came_up() -> None:
    lock = Interlock("hot", metric="t", above=1.0)
    c = ctl(act(envelope=Envelope(interlocks=(lock,))))
    opened(c, 0)
    (ch,) = c.advance(10 * S, sit({"t": 5.0}))
    assert ch.status == "blocked" and ch.command.blocked_by["rule"] == "hot"  # type: ignore[index]


def test_newer_command_supersedes_pending_ones_and_revert_on_falling_edge() -> None:
    c = ctl(None, rule(mode="approval", revert=("set", 1800.0)))
    first = opened(c, 0)[0].command.command_id
    changes = c.on_alerts(5 * S, {}, CALM)  # the alert cleared: revert proposed, the first is superseded
    assert [(ch.status, ch.command.command_id == first) for ch in changes] == [("superseded", True),
                                                                               ("awaiting_approval", False)]
    assert changes[1].command.trigger["revert"] is True and changes[1].command.value == 1800.0


def test_delta_and_scale_need_a_current_value() -> None:
    c = ctl(act(initial=None), rule(action=("delta", -100.0)))
    (ch,) = opened(c, 0)
    assert ch.status == "blocked" and ch.command.blocked_by["check"] == "value"  # type: ignore[index]
    c = ctl(act(initial=1000.0, feedback_metric="rpm"), rule(action=("scale", 0.9)))
    c.on_reading("rpm", 0, 1500.0)  # the device reports 1500: newer than any command
    (ch,) = opened(c, S)
    assert ch.command.value == pytest.approx(1350.0)


def test_signal_and_kpi_rules() -> None:
    sig = RuleSpec("cool", "speed", "signal", ("set", 900.0), mode="auto", signal="temperature.max", above=80.0)
    kpi = RuleSpec("oee", "speed", "kpi", ("set", 1700.0), mode="advisory", kpi="oee", kpi_scheme="60s", below=0.5)
    c = Controller("p1", "s", "0123456789abcdef", [act(envelope=Envelope())], [sig, kpi])
    assert c.on_signals(S, {"temperature.max": 79.0}, CALM) == []
    assert [ch.status for ch in c.on_signals(2 * S, {"temperature.max": 81.0}, CALM)] == ["emitted"]
    assert c.on_signals(3 * S, {"temperature.max": math.nan}, CALM) == []  # missing: no edge either way
    assert c.on_kpis(4 * S, "10s", {"oee": 0.1}, CALM) == []  # another period scheme
    assert c.on_kpis(4 * S, "60s", {"oee": None}, CALM) == []
    assert [ch.status for ch in c.on_kpis(5 * S, "60s", {"oee": 0.4}, CALM)] == ["advisory"]


def test_off_rules_do_nothing_and_replayed_proposals_are_ignored() -> None:
    assert ctl(None, rule(mode="off")).rules == []
    c = ctl()
    opened(c, 0)
    c.holds.clear()  # as if the same edge were seen again (a replayed input)
    assert opened(c, 0) == []


# ---- property: whatever happens, no emitted command breaks its envelope -------------------------------------
# The generator is built so that the risky situations are common, not just possible: the current value
# usually lies near the bounds, actions are scaled to the envelope, conditions flip often (so commands are
# proposed and emitted often), time steps sit around the envelope's intervals and the 3 s ack timeout (so
# commands come close together and retries happen), and the interlock flips on and off.
@st.composite
def scenario(draw: st.DrawFn) -> tuple[Envelope, float | None, list[RuleSpec]]:
    lo = draw(st.floats(-100, 100))
    hi = lo + draw(st.floats(1, 200))
    opt = lambda s: draw(st.one_of(st.none(), s))
    env = Envelope(min=opt(st.just(lo)), max=opt(st.just(hi)), max_step=opt(st.floats(0.5, 50)),
                   max_rate_per_s=opt(st.floats(0.1, 5)), min_interval_ns=draw(st.sampled_from([0, S, 5 * S])),
                   interlocks=(Interlock("hot", metric="t", above=50.0), Interlock("down", states=("down",))),
                   clamp=draw(st.booleans()))
    initial = draw(st.one_of(st.floats(lo, hi), st.floats(lo - 20, hi + 20), st.none()))
    span = max(hi - lo, 1.0)
    act = st.one_of(st.tuples(st.just("set"), st.floats(lo - span / 4, hi + span / 4)),
                    st.tuples(st.just("delta"), st.floats(-span / 2, span / 2)),
                    st.tuples(st.just("scale"), st.floats(0.5, 1.5)))
    mode = draw(st.sampled_from(["auto", "approval", "advisory"]))
    rules = [RuleSpec("r1", "valve", "alert", draw(act), mode=mode, alert_type="anomaly", revert=draw(act),
                      approval_timeout_ns=5 * S),
             RuleSpec("r2", "valve", "signal", draw(act), mode="auto", signal="x", above=0.0, revert=draw(act))]
    return env, initial, rules


STEP = st.one_of(
    st.tuples(st.just("alert"), st.sampled_from(["warning", "critical", None])),
    st.tuples(st.just("signal"), st.sampled_from([-1.0, 1.0])),
    st.tuples(st.just("signal"), st.sampled_from([-1.0, 1.0])),
    st.tuples(st.just("approve"), st.none()),
    st.tuples(st.just("ack"), st.sampled_from(["applied", "failed"])),
    st.tuples(st.just("temp"), st.sampled_from([20.0, 60.0])),
    st.tuples(st.just("state"), st.sampled_from(["running", "down"])),
    st.tuples(st.just("report"), st.floats(-150, 150)),
)
DT = st.sampled_from([0, S // 4, S // 2, S, 2 * S, 3 * S, 6 * S])


@settings(max_examples=200, deadline=None)
@given(sc=scenario(), steps=st.lists(st.tuples(DT, STEP), min_size=20, max_size=80))
def test_no_emitted_command_violates_its_envelope(sc: tuple, steps: list) -> None:
    env, initial, rules = sc
    a = ActuatorSpec("valve", "%", initial, "valve_pos", env, ack_timeout_ns=3 * S, max_retries=1)
    c = Controller("p1", "s", "0123456789abcdef", [a], rules)
    t = 0
    metrics: dict[str, float] = {}
    state = "running"
    emitted: list[tuple[int, float, Situation, float | None, str]] = []  # (t, value, situation, ref, command id)

    def record(changes: list, s: Situation, ref: float | None) -> None:
        for ch in changes:
            if ch.command.blocked_by is not None:
                event(f"blocked by {ch.command.blocked_by['check']}")
            if ch.status == "emitted" and ch.command.attempt == 0:
                event("emitted")
                emitted.append((ch.at_ns, ch.command.value, s, ref, ch.command.command_id))
            if ch.status == "emitted" and ch.command.attempt > 0:  # a retry: same value, interlocks re-checked
                event("retried")
                assert not any(i.holds(s) for i in env.interlocks)

    for dt, (kind, x) in steps:
        t += dt
        s = Situation(dict(metrics), {}, state, False)
        record(c.advance(t, s), s, c.current("valve"))
        ref = c.current("valve")
        if kind == "alert":
            record(c.on_alerts(t, {} if x is None else {"anomaly": (x, f"a{t}")}, s), s, ref)
        elif kind == "signal":
            record(c.on_signals(t, {"x": x}, s), s, ref)
        elif kind in ("approve", "ack"):
            pending = c.pending()
            if pending:
                cmd = pending[0]
                f = Feedback("approve" if kind == "approve" else "command_ack", "p1", t, POS,
                             command_id=cmd.command_id, status=None if kind == "approve" else x)
                record(c.feedback(f, t, s)[0], s, ref)
        elif kind == "temp":
            metrics["t"] = x
        elif kind == "state":
            state = x
        else:
            c.on_reading("valve_pos", t, x)
    if len(emitted) > 1:
        event("two or more commands emitted")
    # first emissions of distinct commands, in order
    assert len({e[4] for e in emitted}) == len(emitted)
    prev: tuple[int, float] | None = None
    for t_e, v, s, ref, _ in emitted:
        tol = TOLERANCE * max(1.0, abs(v))
        assert not any(i.holds(s) for i in env.interlocks)
        assert math.isfinite(v)
        if env.min is not None:
            assert v >= env.min - tol
        if env.max is not None:
            assert v <= env.max + tol
        if env.max_step is not None:
            assert ref is not None and abs(v - ref) <= env.max_step + TOLERANCE * max(1.0, abs(ref), env.max_step) + tol
        if prev is not None:
            assert t_e - prev[0] >= env.min_interval_ns
            if env.max_rate_per_s is not None:
                room = env.max_rate_per_s * (t_e - prev[0]) / S
                assert abs(v - prev[1]) <= room + TOLERANCE * max(1.0, abs(prev[1]), room) + tol
        prev = (t_e, v)

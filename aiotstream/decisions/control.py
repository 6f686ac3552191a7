"""Closed-loop control inside a safety envelope: rules -> commands, approval, device acks, retries.

A rule maps a condition (an alert of a type and severity, a window signal
such as the model score, or a KPI) to an action on an actuator (``set``,
``delta`` or ``scale`` a numeric setpoint). It fires on the condition's rising
edge; its optional ``revert`` action fires on the falling edge. Every command
passes the actuator's :class:`Envelope` before it is emitted.

Command states (each change is one ``aiotstream.command/1`` record)::

    proposed ─┬─ mode advisory ──> advisory   (a recommendation; devices do not act on it)
              ├─ mode approval ──> awaiting_approval ─┬─ approve (in time) ─> envelope ─> emitted | blocked
              │                                       ├─ reject ──────────────────────> rejected
              │                                       └─ approval_timeout passes ─────> expired
              └─ mode auto ──────> envelope ─> emitted | blocked
    emitted ─┬─ device ack "applied" ─> acked
             ├─ device ack "failed"/"rejected" ─> failed (+ command_failed alert)
             ├─ no ack within ack_timeout ─> emitted again (attempt + 1, same command_id) ...
             │                              ... after max_retries ─> failed (+ command_failed alert)
             └─ a newer command for the actuator ─> superseded

A newer approval or auto command for the same actuator supersedes one that
is still awaiting approval or unacknowledged. ``command_id`` is the
idempotency key (devices must apply a command id at most once); retries
repeat it. A device ack is matched to the asset's command by ``command_id``
and counts only for an ``emitted`` command, once, with a value inside the
actuator's bounds; any other ack is refused with a reason (and its value is
not taken as the actuator's value).

The envelope, checked in this order (the first failing check blocks):

1. interlocks: no command while any interlock holds;
2. ``min_interval_s`` since the previous emitted command;
3. bounds ``[min, max]``; 4. ``max_step`` from the current value; 5. ``max_rate_per_s``
   times the time since the previous emitted command.

With ``on_violation = "clamp"`` checks 3-5 limit the value instead of
blocking (it is blocked if the limits cannot all be met).

>>> env = Envelope(min=0.0, max=100.0, max_step=10.0)
>>> sit = Situation({}, {}, None, False)
>>> (env.check(95.0, 0, ref=90.0, last=None, sit=sit).allowed,
...  env.check(120.0, 0, 90.0, None, sit).blocked_by["check"])
(True, 'max')
>>> Envelope(max=100.0, max_step=10.0, clamp=True).check(120.0, 0, 95.0, None, sit).value
100.0
"""
from __future__ import annotations

import copy
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiotstream.config import SEVERITIES
from aiotstream.lineage import FlowContext, iso_ns, make_id
from aiotstream.records import Feedback
from aiotstream.units import S

TOLERANCE = 1e-9  # relative slack when comparing a (clamped) value with a limit


def _tol(*xs: float) -> float:
    return TOLERANCE * max([1.0] + [abs(x) for x in xs])


@dataclass(frozen=True, slots=True)
class Situation:
    """What interlocks look at: latest readings, open alerts (type -> severity), machine state,
    maintenance."""

    metrics: Mapping[str, float]
    alerts: Mapping[str, str]
    state: str | None
    maintenance: bool


@dataclass(frozen=True, slots=True)
class Interlock:
    """A condition that forbids commands while it holds (exactly one kind is set)."""

    name: str
    metric: str | None = None
    above: float | None = None
    below: float | None = None
    alert_type: str | None = None
    min_severity: str = "info"
    states: tuple[str, ...] = ()
    maintenance: bool = False

    def holds(self, sit: Situation) -> bool:
        """Whether the interlock holds now.

        >>> hot = Interlock("hot", metric="temperature", above=90.0)
        >>> hot.holds(Situation({"temperature": 91.0}, {}, None, False))
        True
        """
        if self.metric is not None:
            v = sit.metrics.get(self.metric)
            if v is None:
                return False
            return (self.above is not None and v > self.above) or (self.below is not None and v < self.below)
        if self.alert_type is not None:
            sev = sit.alerts.get(self.alert_type)
            return sev is not None and SEVERITIES.index(sev) >= SEVERITIES.index(self.min_severity)
        if self.states:
            return sit.state in self.states
        return self.maintenance and sit.maintenance

    def describe(self) -> str:
        if self.metric is not None:
            parts = [f"> {self.above:g}" if self.above is not None else "", f"< {self.below:g}"
                     if self.below is not None else ""]
            return f"{self.metric} {' or '.join(p for p in parts if p)}"
        if self.alert_type is not None:
            return f"an open {self.alert_type} alert (severity >= {self.min_severity})"
        if self.states:
            return f"machine state in {list(self.states)}"
        return "a maintenance window in progress"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The envelope's answer: allowed (with the value to send, maybe clamped) or blocked (by which check)."""

    allowed: bool
    value: float
    blocked_by: dict[str, str] | None = None
    clamped_by: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Envelope:
    """Safety limits of one actuator. Pure: :meth:`check` depends only on its arguments."""

    min: float | None = None
    max: float | None = None
    max_step: float | None = None
    max_rate_per_s: float | None = None
    min_interval_ns: int = 0
    interlocks: tuple[Interlock, ...] = ()
    clamp: bool = False

    def interlock(self, sit: Situation) -> Interlock | None:
        """The first interlock that holds, if any."""
        return next((i for i in self.interlocks if i.holds(sit)), None)

    def _limits(self, value: float, t_ns: int, ref: float | None, last: tuple[float, int] | None
                ) -> list[tuple[str, float, float, str]]:
        """``(check, low, high, message)`` for each value limit that applies."""
        out = []
        if self.min is not None or self.max is not None:
            lo = -math.inf if self.min is None else self.min
            hi = math.inf if self.max is None else self.max
            out.append(("min" if self.min is not None and value < self.min else "max", lo, hi,
                        f"bounds [{self.min}, {self.max}]"))
        if self.max_step is not None and ref is not None:
            out.append(("max_step", ref - self.max_step, ref + self.max_step,
                        f"at most {self.max_step:g} from the current value {ref:g}"))
        if self.max_rate_per_s is not None and last is not None:
            room = self.max_rate_per_s * (t_ns - last[1]) / S
            msg = (f"at most {self.max_rate_per_s:g}/s x {(t_ns - last[1]) / S:g} s = {room:g} from the "
                   f"previous command's {last[0]:g}")
            out.append(("max_rate", last[0] - room, last[0] + room, msg))
        return out

    def check(self, value: float, t_ns: int, ref: float | None, last: tuple[float, int] | None,
              sit: Situation) -> Verdict:
        """Check a command's value at ``t_ns``.

        ``ref`` is the actuator's current value (None: unknown), ``last`` the
        (value, time) of the previous emitted command (None: there was none).
        """
        lock = self.interlock(sit)
        if lock is not None:
            return Verdict(False, value, {"check": "interlock", "rule": lock.name,
                                          "message": f"interlock {lock.name!r} holds: {lock.describe()}"})
        if last is not None and t_ns - last[1] < self.min_interval_ns:
            return Verdict(False, value, {"check": "min_interval", "rule": "min_interval_s",
                                          "message": f"{(t_ns - last[1]) / S:g} s since the previous "
                                                     "command, the minimum is "
                                                     f"{self.min_interval_ns / S:g} s"})
        if not math.isfinite(value):
            return Verdict(False, value,
                           {"check": "value", "rule": "finite", "message": f"value {value} is not finite"})
        if self.max_step is not None and ref is None:
            return Verdict(False, value, {"check": "max_step", "rule": "max_step",
                                          "message": "the current value is unknown, so max_step cannot be "
                                                     "checked: set the actuator's initial or "
                                                     "feedback_metric"})
        v = value
        clamped: list[str] = []
        if self.clamp:
            for check, lo, hi, _ in self._limits(v, t_ns, ref, last):
                if v < lo or v > hi:
                    v = min(max(v, lo), hi)
                    clamped.append(check)
        for check, lo, hi, msg in self._limits(v, t_ns, ref, last):
            if v < lo - _tol(lo) or v > hi + _tol(hi):
                what = "clamped value" if clamped else "value"
                return Verdict(False, value, {"check": check, "rule": check if check not in ("min", "max")
                                              else "bounds", "message": f"{what} {v:g} breaks {msg}"},
                               tuple(clamped))
        return Verdict(True, v, None, tuple(clamped))


# ---- rules and the per-asset controller ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ActuatorSpec:
    name: str
    unit: str = ""
    initial: float | None = None
    feedback_metric: str | None = None
    envelope: Envelope = field(default_factory=Envelope)
    ack_timeout_ns: int = 30 * S
    max_retries: int = 2


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """A control rule resolved from the config. ``kind`` is alert, signal or kpi."""

    name: str
    actuator: str
    kind: str
    action: tuple[str, float]  # ("set" | "delta" | "scale", x)
    revert: tuple[str, float] | None = None
    mode: str = "advisory"
    approval_timeout_ns: int = 300 * S
    alert_type: str | None = None
    min_severity: str = "warning"
    signal: str | None = None
    kpi: str | None = None
    kpi_scheme: str | None = None
    above: float | None = None
    below: float | None = None

    def value_holds(self, v: float | None) -> bool:
        """Signal/KPI conditions: above (v > above) or below (v < below); a missing value does not hold."""
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return False
        return (self.above is not None and v > self.above) or (self.below is not None and v < self.below)


@dataclass(slots=True)
class Command:
    command_id: str
    rule: str
    actuator: str
    unit: str
    mode: str
    status: str
    value: float
    previous_value: float | None
    action: tuple[str, float]
    trigger: dict[str, Any]
    requested_at_ns: int
    expires_at_ns: int | None = None
    attempt: int = 0
    ack_deadline_ns: int | None = None
    emitted_at_ns: int | None = None
    approved_by: str = ""
    acked_value: float | None = None
    ack_status: str | None = None  # the device ack's status, once one was taken (a second one is a duplicate)
    blocked_by: dict[str, str] | None = None
    clamped_by: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CommandChange:
    """A command entered ``status`` at ``at_ns`` (one record)."""

    status: str
    command: Command
    at_ns: int
    cause: Feedback | None = None


PENDING = ("awaiting_approval", "emitted")


class Controller:
    """The commands of one asset: rule edges, envelope, approval, acks, retries. Times are event time (ns)."""

    def __init__(self, asset: str, site: str, config_hash: str, actuators: list[ActuatorSpec],
                 rules: list[RuleSpec],
                 history: int = 256):
        self.asset = asset
        self.site = site
        self.config_hash = config_hash
        self.actuators = {a.name: a for a in actuators}
        self.rules = [r for r in rules if r.mode != "off"]
        self.history = history
        self.holds: dict[str, bool] = {}
        self.last: dict[str, tuple[float, int]] = {}  # actuator -> previous emitted command (value, time)
        # actuator -> value reported by the device side, time
        self.reported: dict[str, tuple[float, int]] = {}
        self.commands: OrderedDict[str, Command] = OrderedDict()

    # ---- queries ------------------------------------------------------------------------------------
    def current(self, actuator: str) -> float | None:
        """The actuator's current value: the newer of the device's report and the previous command, else
        initial."""
        last, rep = self.last.get(actuator), self.reported.get(actuator)
        if rep is not None and (last is None or rep[1] >= last[1]):
            return rep[0]
        if last is not None:
            return last[0]
        return self.actuators[actuator].initial

    def next_deadline(self) -> int | None:
        times = [c.expires_at_ns if c.status == "awaiting_approval" else c.ack_deadline_ns
                 for c in self.commands.values() if c.status in PENDING]
        times = [t for t in times if t is not None]
        return min(times) if times else None

    def pending(self) -> list[Command]:
        return [c for c in self.commands.values() if c.status in PENDING]

    # ---- inputs -------------------------------------------------------------------------------------
    def on_reading(self, metric: str, t_ns: int, value: float) -> None:
        """A reading: the device-side value of actuators that report through this metric."""
        for a in self.actuators.values():
            if a.feedback_metric == metric:
                self.reported[a.name] = (value, t_ns)

    def on_alerts(self, t_ns: int, alerts: Mapping[str, tuple[str, str]],
                  sit: Situation) -> list[CommandChange]:
        """The open alerts changed: ``alerts`` is type -> (severity, alert_id)."""
        out: list[CommandChange] = []
        for r in self.rules:
            if r.kind != "alert":
                continue
            cur = alerts.get(r.alert_type or "")
            holds = cur is not None and SEVERITIES.index(cur[0]) >= SEVERITIES.index(r.min_severity)
            trig = {"kind": "alert", "alert_type": r.alert_type, "severity": cur[0] if cur else None,
                    "alert_id": cur[1] if cur else self._last_trigger(r)}
            out += self._edge(r, holds, t_ns, trig, sit)
        return out

    def on_signals(self, t_ns: int, values: Mapping[str, float], sit: Situation) -> list[CommandChange]:
        """A window closed: ``values`` holds the score and the feature values."""
        out: list[CommandChange] = []
        for r in self.rules:
            if r.kind == "signal" and r.signal in values:
                v = values[r.signal]
                if isinstance(v, float) and math.isnan(v):
                    continue  # a missing value changes nothing
                out += self._edge(r, r.value_holds(v), t_ns,
                                  {"kind": "signal", "signal": r.signal, "value": v}, sit)
        return out

    def on_kpis(self, t_ns: int, scheme: str, kpis: Mapping[str, float | None],
                sit: Situation) -> list[CommandChange]:
        """An asset KPI period of ``scheme`` finished."""
        out: list[CommandChange] = []
        for r in self.rules:
            if r.kind == "kpi" and r.kpi_scheme == scheme and kpis.get(r.kpi or "") is not None:
                v = kpis[r.kpi or ""]
                out += self._edge(r, r.value_holds(v), t_ns, {"kind": "kpi", "kpi": r.kpi, "period": scheme,
                                                               "value": v}, sit)
        return out

    def _last_trigger(self, r: RuleSpec) -> str | None:
        for c in reversed(self.commands.values()):
            if c.rule == r.name:
                return c.trigger.get("alert_id")
        return None

    def _edge(self, r: RuleSpec, holds: bool, t_ns: int, trigger: dict,
              sit: Situation) -> list[CommandChange]:
        was = self.holds.get(r.name, False)
        self.holds[r.name] = holds
        if holds and not was:
            return self.propose(r, r.action, t_ns, trigger, sit)
        if was and not holds and r.revert is not None:
            return self.propose(r, r.revert, t_ns, {**trigger, "revert": True}, sit)
        return []

    # ---- commands -----------------------------------------------------------------------------------
    def propose(self, r: RuleSpec, action: tuple[str, float], t_ns: int, trigger: dict,
                sit: Situation) -> list[CommandChange]:
        act = self.actuators[r.actuator]
        cur = self.current(r.actuator)
        op, x = action
        cid = make_id("command-id", self.site, self.config_hash, self.asset, r.name, r.actuator, op, x, t_ns,
                      trigger.get("alert_id") or trigger.get("signal") or trigger.get("kpi") or "")
        value = x if op == "set" else (None if cur is None else (cur + x if op == "delta" else cur * x))
        cmd = Command(cid, r.name, r.actuator, act.unit, r.mode, "proposed",
                      math.nan if value is None else value,
                      cur, action, trigger, t_ns)
        if cid in self.commands:
            return []  # the same proposal again (a replayed input): already handled
        out: list[CommandChange] = []
        if r.mode in ("approval", "auto"):
            out += self._supersede(r.actuator, t_ns, cid)
        self._remember(cmd)
        if value is None:
            cmd.blocked_by = {"check": "value", "rule": op,
                              "message": f"{op} needs the current value of {r.actuator}, which is unknown: "
                                         "set its initial or feedback_metric"}
            return out + [self._to(cmd, "blocked", t_ns)]
        verdict = act.envelope.check(cmd.value, t_ns, cur, self.last.get(r.actuator), sit)
        if not verdict.allowed:
            cmd.blocked_by, cmd.clamped_by = verdict.blocked_by, verdict.clamped_by
            return out + [self._to(cmd, "blocked", t_ns)]
        if r.mode == "advisory":
            cmd.value, cmd.clamped_by = verdict.value, verdict.clamped_by
            return out + [self._to(cmd, "advisory", t_ns)]
        if r.mode == "approval":
            cmd.expires_at_ns = t_ns + r.approval_timeout_ns
            return out + [self._to(cmd, "awaiting_approval", t_ns)]
        return out + self._emit(cmd, t_ns, sit)

    def _emit(self, cmd: Command, t_ns: int, sit: Situation,
              cause: Feedback | None = None) -> list[CommandChange]:
        act = self.actuators[cmd.actuator]
        verdict = act.envelope.check(cmd.value, t_ns, self.current(cmd.actuator), self.last.get(cmd.actuator),
                                     sit)
        if not verdict.allowed:
            cmd.blocked_by, cmd.clamped_by = verdict.blocked_by, verdict.clamped_by
            return [self._to(cmd, "blocked", t_ns, cause)]
        cmd.value, cmd.clamped_by = verdict.value, verdict.clamped_by
        cmd.emitted_at_ns = t_ns
        cmd.ack_deadline_ns = t_ns + act.ack_timeout_ns if act.ack_timeout_ns > 0 else None
        self.last[cmd.actuator] = (cmd.value, t_ns)
        return [self._to(cmd, "emitted", t_ns, cause)]

    def _supersede(self, actuator: str, t_ns: int, by: str) -> list[CommandChange]:
        out = []
        for c in self.commands.values():
            if c.actuator == actuator and c.status in PENDING and (c.status == "awaiting_approval"
                                                                    or c.ack_deadline_ns is not None):
                c.reason = f"superseded by command {by}"
                c.ack_deadline_ns = None
                out.append(self._to(c, "superseded", t_ns))
        return out

    def _to(self, cmd: Command, status: str, t_ns: int, cause: Feedback | None = None) -> CommandChange:
        cmd.status = status
        return CommandChange(status, copy.copy(cmd), t_ns, cause)

    def _remember(self, cmd: Command) -> None:
        self.commands[cmd.command_id] = cmd
        while len(self.commands) > self.history:
            oldest = next(iter(self.commands.values()))
            if oldest.status in PENDING:  # never forget a pending command
                self.commands.move_to_end(oldest.command_id)
                if all(c.status in PENDING for c in self.commands.values()):
                    break
                continue
            self.commands.popitem(last=False)

    # ---- feedback and time --------------------------------------------------------------------------
    def feedback(self, fb: Feedback, t_ns: int,
                 sit: Situation) -> tuple[list[CommandChange], tuple[str, str] | None]:
        """An operator's approve/reject or a device's command_ack; returns changes or (reason, message).

        Feedback is matched to a command of this asset by ``command_id``. One that changes nothing (an
        unknown command, a command no longer pending, the same approval or ack again, an ack value the
        actuator cannot have) is refused with a reason, and the controller's state stays as it was.
        """
        cmd = self.commands.get(fb.command_id or "")
        if cmd is None or (fb.asset is not None and fb.asset != self.asset):
            return [], ("unknown_command",
                        f"command {fb.command_id} is not a recent command of asset {fb.asset or self.asset}")
        if fb.type in ("approve", "reject"):
            if cmd.status != "awaiting_approval":
                if fb.type == "approve" and cmd.approved_by == (fb.by or "?"):
                    return [], ("already_approved",
                                (f"command {cmd.command_id} was approved by {cmd.approved_by} already; this "
                                 "approval changes nothing"))
                msg = (f"command {cmd.command_id} is {cmd.status}, not awaiting approval, so it "
                       f"cannot be {fb.type}d")
                return [], ("command_not_pending", msg)
            if fb.type == "reject":
                cmd.reason = f"rejected by {fb.by or '?'}"
                return [self._to(cmd, "rejected", t_ns, fb)], None
            cmd.approved_by = fb.by or "?"
            return self._emit(cmd, t_ns, sit, fb), None
        # command_ack from the device side: only for the emitted command it names, and nothing else changes
        status = fb.status or "applied"
        if cmd.ack_status is not None:
            word = "the same" if cmd.ack_status == status else f"an earlier {cmd.ack_status!r}"
            return [], ("duplicate_ack", (f"command {cmd.command_id} has {word} device ack already (it is "
                                          f"{cmd.status}); this {status!r} ack changes nothing"))
        if cmd.status != "emitted":
            return [], ("command_not_pending",
                        (f"command {cmd.command_id} is {cmd.status}, so a device ack for it has "
                         "nothing to acknowledge"))
        if fb.value is not None:
            problem = self.ack_value_problem(cmd.actuator, fb.value)
            if problem is not None:
                return [], ("bad_ack_value", f"device ack for command {cmd.command_id}: {problem}")
            self.reported[cmd.actuator] = (fb.value, t_ns)
        cmd.ack_deadline_ns = None
        cmd.ack_status = status
        if status == "applied":
            cmd.acked_value = fb.value
            return [self._to(cmd, "acked", t_ns, fb)], None
        cmd.reason = f"device reported {status}" + (f": {fb.note}" if fb.note else "")
        return [self._to(cmd, "failed", t_ns, fb)], None

    def ack_value_problem(self, actuator: str, value: float) -> str | None:
        """Why a value a device reports for ``actuator`` cannot be its value (not finite, outside the
        envelope's bounds), or None.

        >>> c = Controller("p1", "s", "h", [ActuatorSpec("v", envelope=Envelope(min=0.0, max=10.0))], [])
        >>> c.ack_value_problem("v", 10.0), c.ack_value_problem("v", 11.0)
        (None, 'value 11 is outside the bounds [0.0, 10.0] of actuator v')
        """
        env = self.actuators[actuator].envelope
        if not math.isfinite(value):
            return f"value {value} is not finite"
        lo = -math.inf if env.min is None else env.min
        hi = math.inf if env.max is None else env.max
        if value < lo - _tol(lo) or value > hi + _tol(hi):
            return f"value {value:g} is outside the bounds [{env.min}, {env.max}] of actuator {actuator}"
        return None

    def advance(self, t_ns: int, sit: Situation) -> list[CommandChange]:
        """Expire approvals and retry or fail unacknowledged commands due at or before ``t_ns``, in time
        order."""
        out: list[CommandChange] = []
        while True:
            due = self.next_deadline()
            if due is None or due > t_ns:
                return out
            for c in list(self.commands.values()):
                if c.status == "awaiting_approval" and c.expires_at_ns == due:
                    c.reason = "no approval within approval_timeout_s"
                    out.append(self._to(c, "expired", due))
                elif c.status == "emitted" and c.ack_deadline_ns == due:
                    out += self._retry(c, due, sit)

    def _retry(self, c: Command, t_ns: int, sit: Situation) -> list[CommandChange]:
        act = self.actuators[c.actuator]
        if c.attempt >= act.max_retries:
            c.ack_deadline_ns = None
            c.reason = f"no device ack after {c.attempt + 1} attempt(s)"
            return [self._to(c, "failed", t_ns)]
        lock = act.envelope.interlock(sit)
        if lock is not None:
            c.ack_deadline_ns = None
            c.blocked_by = {"check": "interlock", "rule": lock.name,
                            "message": f"retry blocked: interlock {lock.name!r} holds: {lock.describe()}"}
            return [self._to(c, "blocked", t_ns)]
        c.attempt += 1
        c.ack_deadline_ns = t_ns + act.ack_timeout_ns
        return [self._to(c, "emitted", t_ns)]


def command_record(ctx: FlowContext, ch: CommandChange, asset: str, line: str,
                   lineage: dict) -> dict[str, Any]:
    """An ``aiotstream.command/1`` record for one command state change."""
    c = ch.command
    return {
        "schema": "aiotstream.command/1",
        "id": make_id("command", c.command_id, ch.status, c.attempt, ch.at_ns),
        "command_id": c.command_id,
        "status": ch.status,
        "asset": asset, "line": line,
        "actuator": c.actuator, "unit": c.unit, "rule": c.rule, "mode": c.mode,
        "value": None if math.isnan(c.value) else c.value,
        "previous_value": c.previous_value,
        "action": {c.action[0]: c.action[1]},
        "trigger": c.trigger,
        "attempt": c.attempt,
        "requested_at": iso_ns(c.requested_at_ns), "requested_at_ns": c.requested_at_ns,
        "expires_at_ns": c.expires_at_ns,
        "at": iso_ns(ch.at_ns), "at_ns": ch.at_ns,
        "approved_by": c.approved_by or None,
        "acked_value": c.acked_value,
        "blocked_by": c.blocked_by,
        "clamped_by": list(c.clamped_by),
        "reason": c.reason or None,
        "by": (ch.cause.by or None) if ch.cause is not None else None,
        **lineage,
    }

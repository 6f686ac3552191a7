"""The effects step: alert and command changes of one entity -> outputs and KPI counts, for every flow.

An entity is whatever has its own alert book and controller: a plant asset
(:class:`aiotstream.pdm.asset.AssetAnalyzer`) or a building zone
(:class:`aiotstream.energy.zone.ZoneState`). Both hand their changes to these
functions, so an alert opening, an escalation, a command failing or being
acknowledged has the same consequences in both flows:

* every change is counted in the entity's KPI period (``alerts_opened``,
  ``alerts_<severity>``, ``ack_delay_s``, ``labels_<label>``,
  ``commands_<status>``, ...);
* every change but a suppression becomes an ``alert`` / ``command`` output with
  the lineage of what caused it;
* an alert opening, clearing or changing severity lets the control rules that
  watch alerts propose commands (through the actuator's safety envelope);
* a command that fails raises a ``command_failed`` alert; one that is
  acknowledged resolves the actuator's ``command_failed`` alert;
* feedback messages (maintenance, ack, clear, label, approve, reject, device
  acks) go to the schedule, the book or the controller; a refusal is a dead
  letter with its reason.

What differs between entities is behind the small :class:`Entity` protocol:
where a count goes (the asset's KPI tracker or the zone's interval periods),
what an alert change means besides (the plant's failure accounting and label
learning) and how the entity sees the situation its interlocks check.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import numpy as np

from aiotstream.config import ALERT_TYPE_COMMAND_FAILED
from aiotstream.decisions.alerts import AlertBook, AlertChange, AlertState, alert_record
from aiotstream.decisions.control import PENDING, CommandChange, Controller, Situation, command_record
from aiotstream.decisions.maintenance import MaintenanceSchedule
from aiotstream.decisions.runtime import DecisionRuntime
from aiotstream.lineage import FlowContext
from aiotstream.records import DeadLetter, Feedback, Output
from aiotstream.runstats import STATS, Share

ALERT_COUNTS = {"opened": "alerts_opened", "cleared": "alerts_cleared", "acknowledged": "alerts_acknowledged",
                "escalated": "alerts_escalated", "suppressed": "alerts_suppressed"}
"""The KPI total each alert event adds one to."""


class Entity(Protocol):
    """What the effects step needs of a plant asset or a building zone."""

    book: AlertBook
    control: Controller
    schedule: MaintenanceSchedule

    @property
    def key(self) -> str:
        """The entity's id: the outputs' key and ``asset`` field."""
        ...

    @property
    def group(self) -> str:
        """The line (plant) or floor (building) the entity belongs to: the outputs' ``line`` field."""
        ...

    @property
    def ctx(self) -> FlowContext: ...

    def count(self, name: str, n: float, t_ns: int) -> None:
        """Add ``n`` to the KPI total ``name`` of the period the decision falls in."""
        ...

    def situation(self, t_ns: int) -> Situation:
        """What the interlocks see at ``t_ns``: metrics, open alerts, machine state, maintenance."""
        ...

    def on_alert_change(self, ch: AlertChange) -> bool | None:
        """The entity's own consequence of a change (failure accounting, learning a label); for a ``labelled``
        change, whether the model learned the label (None: no model that learns labels)."""
        ...

    def deadletter(self, dl: DeadLetter) -> Output: ...


class RuntimeEntity:
    """Mixin for an entity kept with a :class:`~aiotstream.decisions.runtime.DecisionRuntime` as ``rt``:
    its lineage context and dead letters come from there."""

    rt: DecisionRuntime

    @property
    def ctx(self) -> FlowContext:
        return self.rt.ctx

    def deadletter(self, dl: DeadLetter) -> Output:
        return self.rt.deadletter(dl)


def on_values(e: Entity, t_ns: int, values: Iterable[tuple[str, float]], window: tuple[int, int],
              explain: Callable[[], list[dict]] = list, x: np.ndarray | None = None) -> list[AlertChange]:
    """Feed each ``(alert type, value)`` of one window or interval to the entity's alert book, in order."""
    changes: list[AlertChange] = []
    for alert_type, v in values:
        changes += e.book.on_value(alert_type, t_ns, v, explain, x, window)
    return changes


def annotate_opened(changes: Iterable[AlertChange], detail: dict[str, Any]) -> None:
    """Add ``detail`` to the alerts that ``changes`` open (what the operator needs to judge them)."""
    for ch in changes:
        if ch.event == "opened":
            ch.alert.detail.update(detail)


def alert_outputs(e: Entity, changes: list[AlertChange], lineage: dict) -> list[Output]:
    """Count and emit alert changes; an alert opening, clearing or changing severity runs the alert rules."""
    outs: list[Output] = []
    moved = False
    for ch in changes:
        a, t = ch.alert, ch.at_ns
        key = ALERT_COUNTS.get(ch.event)
        if key:
            e.count(key, 1, t)
        if ch.event == "opened":
            e.count(f"alerts_{a.severity}", 1, t)
        elif ch.event == "acknowledged":
            e.count("ack_delay_s", t - a.opened_at_ns, t)
        elif ch.event == "labelled":
            e.count(f"labels_{a.label}", 1, t)
        learned = e.on_alert_change(ch)
        if ch.event == "suppressed":
            continue
        moved = moved or ch.event in ("opened", "cleared", "severity_changed")
        outs.append(Output("alert", e.key, alert_record(ch, e.key, e.group, lineage, learned)))
    if moved and e.control.rules:
        t = changes[-1].at_ns
        outs.extend(command_outputs(e, e.control.on_alerts(t, open_alerts(e.book), e.situation(t)), lineage))
    return outs


def open_alerts(book: AlertBook) -> dict[str, tuple[str, str]]:
    """The book's open alerts as the controller's alert rules read them: type -> (severity, alert id)."""
    current: dict[str, AlertState] = book.current
    return {k: (a.severity, a.alert_id) for k, a in current.items()}


def report_open(book: AlertBook, control: Controller, alerts: Share, commands: Share) -> None:
    """An entity's part of the metrics' open alerts by severity and pending commands by status (looked at only
    when it has any, or had: nothing to do for most entities and batches)."""
    current = book.current
    if current or alerts.now:
        by: dict[str, int] = {}
        for a in current.values():
            by[a.severity] = by.get(a.severity, 0) + 1
        alerts.update(by)
    cmds = control.commands
    if cmds or commands.now:
        by = {}
        for c in cmds.values():
            if c.status in PENDING:
                by[c.status] = by.get(c.status, 0) + 1
        commands.update(by)


def command_outputs(e: Entity, changes: list[CommandChange], lineage: dict) -> list[Output]:
    """Count and emit command changes; a failed command raises ``command_failed``, an acked one resolves
    it."""
    outs: list[Output] = []
    for ch in changes:
        c, t = ch.command, ch.at_ns
        status = "retried" if ch.status == "emitted" and c.attempt > 0 else ch.status
        e.count(f"commands_{status}", 1, t)
        if ch.status == "blocked":  # the metrics' blocked commands by envelope check and rule
            why = c.blocked_by or {}
            STATS.level("blocked_commands", {(str(why.get("check")), str(why.get("rule"))): 1})
        outs.append(Output("command", e.key, command_record(e.ctx, ch, e.key, e.group, lineage)))
        if ch.status == "failed":
            detail = {"command_id": c.command_id, "actuator": c.actuator, "rule": c.rule, "reason": c.reason,
                      "attempts": c.attempt + 1}
            outs.extend(alert_outputs(e, e.book.raise_event(ALERT_TYPE_COMMAND_FAILED, t, "critical", detail),
                                      lineage))
        elif ch.status == "acked":
            resolved = e.book.resolve(ALERT_TYPE_COMMAND_FAILED, t, "command_acked",
                                      lambda a, act=c.actuator: a.detail.get("actuator") == act)
            outs.extend(alert_outputs(e, resolved, lineage))
    return outs


def timer_outputs(e: Entity, t_ns: int, lineage: dict) -> list[Output]:
    """The alert timers (escalation, end of maintenance) and command timers (approval expiry, ack timeouts)
    due by ``t_ns``."""
    outs = alert_outputs(e, e.book.advance(t_ns), lineage)
    outs.extend(command_outputs(e, e.control.advance(t_ns, e.situation(t_ns)), lineage))
    return outs


def feedback_outputs(e: Entity, fb: Feedback, t_ns: int, lineage: dict, max_ns: int, max_windows: int,
                     forget_before_ns: int | None) -> list[Output]:
    """Apply one feedback message at ``t_ns``: a maintenance window (bounded by ``max_ns`` and
    ``max_windows``), an alert ack/clear/label, or a command approval/rejection/device ack."""
    if fb.type == "maintenance":
        assert fb.window_id is not None and fb.start_ns is not None and fb.end_ns is not None
        problem = e.schedule.offer(fb.window_id, fb.start_ns, fb.end_ns, max_ns, max_windows,
                                   forget_before_ns)
        return [] if problem is None else [reject(e, fb, problem.reason, problem.message)]
    if fb.type in ("ack", "clear", "label"):
        changes, problem = e.book.feedback(fb)
        if problem is not None:
            return [reject(e, fb, problem.reason, problem.message)]
        return alert_outputs(e, changes, lineage)
    cmd_changes, cmd_problem = e.control.feedback(fb, t_ns, e.situation(t_ns))
    if cmd_problem is not None:
        return [reject(e, fb, *cmd_problem)]
    return command_outputs(e, cmd_changes, lineage)


def reject(e: Entity, fb: Feedback, reason: str, message: str) -> Output:
    """A feedback message that cannot be applied: a dead letter with the reason."""
    return e.deadletter(DeadLetter(fb.raw or b"", fb.pos, reason, message, asset=e.key))

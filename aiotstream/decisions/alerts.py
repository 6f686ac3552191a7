"""Alerts: the open/clear condition policy and the per-asset alert lifecycle.

:class:`AlertPolicy` decides when a condition holds. An alert opens when the
value is at or beyond ``open_threshold`` in ``open_windows`` of the last
``open_of`` windows (N of M; consecutive when M = N), and clears when it is
short of ``clear_threshold`` in ``clear_windows`` of the last ``clear_of``
windows; values in between keep the current state (hysteresis). After a
clear, no new alert opens for ``cooldown_ns`` of event time.

>>> p = AlertPolicy(open_threshold=0.9, clear_threshold=0.6, open_windows=1, clear_windows=2, cooldown_ns=10)
>>> [e.kind for t, s in [(1, .2), (2, .95), (3, .97), (4, .7), (5, .5), (6, .4), (7, .99), (20, .99)]
...  for e in p.update(t, s)]
['opened', 'cleared', 'opened']

:class:`AlertBook` keeps one asset's alerts through their lifecycle::

                 ack (operator)
      open ──────────────────────> acknowledged
        │  \\                            │
        │   escalated (unacknowledged   │
        │   past escalate_after)        │
        └── condition clears, or ───────┴──> cleared ── label (any time, once)
            operator clear

There is at most one open (or acknowledged) alert per asset and type: the
policy cannot open twice, and event alerts (``command_failed``) count repeats
on the open one. Each opening is a new alert with its own id: the id is
derived from the asset, the type, the opening time and the type's opening
sequence number (0, 1, 2, ... kept in the book's state, so a replay from a
snapshot repeats it). The opening time alone is not enough: an alert can
clear and a new one open at the same event time (a ``command_failed``
resolved and failing again within one batch, or an operator clear with no
cool-down while the condition holds).

While a maintenance window is in progress, alerts that would open are
suppressed (counted, not emitted); if the condition still holds when the
window ends, the alert opens then. Escalation waits for the end of
maintenance too.
"""
from __future__ import annotations

import copy
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aiotstream.config import ALERT_TYPE_ANOMALY, SEVERITIES
from aiotstream.decisions.maintenance import MaintenanceSchedule
from aiotstream.lineage import iso_ns, make_id
from aiotstream.records import Feedback, Problem


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A change of a condition's state."""

    kind: str  # "opened" | "cleared"
    alert_seq: int  # per asset and type: 0, 1, 2, ...
    opened_at_ns: int
    at_ns: int
    score: float
    peak_score: float


class AlertPolicy:
    """The open/clear state machine for one asset and alert type.

    ``direction="below"`` mirrors the thresholds: it opens at or below
    ``open_threshold`` and clears above ``clear_threshold``.
    """

    def __init__(self, open_threshold: float, clear_threshold: float, open_windows: int = 1,
                 clear_windows: int = 3, cooldown_ns: int = 0, *, open_of: int | None = None,
                 clear_of: int | None = None, direction: str = "above"):
        if direction not in ("above", "below"):
            raise ValueError(f"direction must be 'above' or 'below', got {direction!r}")
        self.sign = 1.0 if direction == "above" else -1.0
        self.open_threshold = open_threshold
        self.clear_threshold = clear_threshold
        self.open_windows = open_windows
        self.clear_windows = clear_windows
        self.open_of = open_of or open_windows
        self.clear_of = clear_of or clear_windows
        if self.open_of < open_windows or self.clear_of < clear_windows:
            raise ValueError("N of M debounce needs N <= M")
        self.cooldown_ns = cooldown_ns
        self.is_open = False
        self.alert_seq = -1
        self.opened_at_ns = 0
        self.peak = 0.0  # the most extreme value of the open alert (raw, not signed)
        # the last open_of (clear_of) windows' comparisons, oldest first: lists trimmed in update (a deque
        # keeps a block of 64 slots, 760 B, however short its maxlen: 3 KB an asset for its two policies);
        # a policy from a snapshot taken before keeps its bounded deques, which trim themselves
        self._hits: list[bool] | deque[bool] = []
        self._lows: list[bool] | deque[bool] = []
        self._cooldown_until = -1

    def update(self, t_ns: int, value: float) -> list[AlertEvent]:
        """Feed one window's value (t_ns = its event time, e.g. the window end)."""
        s = self.sign
        if self.is_open:
            if s * value > s * self.peak:
                self.peak = value
            lows = self._lows
            lows.append(s * value < s * self.clear_threshold)
            if len(lows) > self.clear_of:
                del lows[0]
            if sum(lows) >= self.clear_windows:
                self._close(t_ns)
                return [AlertEvent("cleared", self.alert_seq, self.opened_at_ns, t_ns, value, self.peak)]
            return []
        hits = self._hits
        hits.append(s * value >= s * self.open_threshold)
        if len(hits) > self.open_of:
            del hits[0]
        if sum(hits) >= self.open_windows and t_ns >= self._cooldown_until:
            self.is_open = True
            hits.clear()
            self.alert_seq += 1
            self.opened_at_ns = t_ns
            self.peak = value
            return [AlertEvent("opened", self.alert_seq, t_ns, t_ns, value, value)]
        return []

    def _close(self, t_ns: int) -> None:
        self.is_open = False
        self._lows.clear()
        self._hits.clear()
        self._cooldown_until = t_ns + self.cooldown_ns

    def force_clear(self, t_ns: int) -> None:
        """An operator cleared the alert: close it; the cool-down starts now."""
        if self.is_open:
            self._close(t_ns)


@dataclass(frozen=True, slots=True)
class AlertRuleSpec:
    """One alert type of an asset, resolved from the config."""

    type: str
    signal: str | None  # None for event alerts (command_failed)
    direction: str = "above"
    open_threshold: float | None = None
    clear_threshold: float | None = None
    critical_threshold: float | None = None
    severity: str = "warning"
    open_windows: int = 1
    open_of: int | None = None
    clear_windows: int = 3
    clear_of: int | None = None
    cooldown_ns: int = 0
    needs_warm_model: bool = False

    def severity_of(self, peak: float) -> str:
        """``critical`` once the peak reaches the critical threshold, else the rule's base severity."""
        c = self.critical_threshold
        if c is not None and (peak >= c if self.direction == "above" else peak <= c):
            return "critical"
        return self.severity


@dataclass(slots=True)
class AlertState:
    """One alert, as the lifecycle knows it."""

    alert_id: str
    alert_type: str
    seq: int
    status: str  # open | acknowledged | cleared
    severity: str
    opened_at_ns: int
    score: float | None
    peak_score: float | None
    open_threshold: float | None
    clear_threshold: float | None
    explanation: list[dict]
    detail: dict[str, Any]
    x: np.ndarray | None = None  # the feature row of the window that opened it (for labels)
    window: tuple[int, int] | None = None  # the window that opened it
    acknowledged_at_ns: int | None = None
    acknowledged_by: str = ""
    cleared_at_ns: int | None = None
    cleared_by: str = ""
    escalation_level: int = 0
    next_escalation_ns: int | None = None
    label: str | None = None
    fault_type: str | None = None
    labelled_by: str = ""
    labelled_at_ns: int | None = None
    occurrences: int = 1


@dataclass(frozen=True, slots=True)
class AlertChange:
    """A lifecycle event: ``opened``, ``acknowledged``, ``escalated``, ``severity_changed``, ``cleared``,
    ``labelled`` (each becomes an alert record) or ``suppressed`` (counted only)."""

    event: str
    alert: AlertState  # a copy, as it was right after the event
    at_ns: int
    cause: Feedback | None = None


@dataclass(slots=True)
class _Suppressed:
    since_ns: int
    score: float
    explanation: list[dict]
    x: np.ndarray | None
    window: tuple[int, int] | None
    detail: dict[str, Any] = field(default_factory=dict)


class AlertBook:
    """Every alert of one asset: conditions, lifecycle, escalation, suppression, feedback.

    Times are event time (ns). ``advance(t)`` fires what is due by ``t``
    (escalations, the end of a maintenance window); ``next_deadline()`` says
    when that is.
    """

    def __init__(self, asset: str, site: str, config_hash: str, specs: list[AlertRuleSpec],
                 schedule: MaintenanceSchedule, escalate_after_ns: int = 0, max_escalations: int = 1,
                 history: int = 100):
        self.asset = asset
        self.site = site
        self.config_hash = config_hash
        self.specs = {s.type: s for s in specs}
        self.schedule = schedule
        self.escalate_after_ns = escalate_after_ns
        self.max_escalations = max_escalations
        self.history = history
        self.policies = {
            s.type: AlertPolicy(s.open_threshold, s.clear_threshold, s.open_windows, s.clear_windows,
                                s.cooldown_ns, open_of=s.open_of, clear_of=s.clear_of, direction=s.direction)
            for s in specs if s.signal is not None
        }
        self.current: dict[str, AlertState] = {}  # type -> the open or acknowledged alert
        self.known: OrderedDict[str, AlertState] = OrderedDict()  # alert_id -> alert (current + recent)
        self.suppressed: dict[str, _Suppressed] = {}
        self._seq: dict[str, int] = {}

    # ---- queries -------------------------------------------------------------------------------
    def open_alerts(self) -> dict[str, AlertState]:
        """Alert type -> its open or acknowledged alert."""
        return dict(self.current)

    def next_deadline(self) -> int | None:
        """The earliest event time at which :meth:`advance` has something to do."""
        times = [a.next_escalation_ns for a in self.current.values()
                 if a.status == "open" and a.next_escalation_ns is not None]
        for sup in self.suppressed.values():
            end = self.schedule.end_of(sup.since_ns)
            times.append(end if end is not None else sup.since_ns)
        return min(times) if times else None

    # ---- conditions ------------------------------------------------------------------------------
    def on_value(self, alert_type: str, t_ns: int, value: float, explain: Callable[[], list[dict]],
                 x: np.ndarray | None = None, window: tuple[int, int] | None = None) -> list[AlertChange]:
        """Feed one window's value of a condition alert type (at the window's end time)."""
        spec = self.specs[alert_type]
        policy = self.policies[alert_type]
        changes: list[AlertChange] = []
        for ev in policy.update(t_ns, value):
            if ev.kind == "opened":
                if self.schedule.active(t_ns):
                    sup = _Suppressed(t_ns, value, explain(), x, window)
                    self.suppressed[alert_type] = sup
                    changes.append(AlertChange("suppressed", self._draft(spec, t_ns, value, value, sup),
                                               t_ns))
                else:
                    changes.append(self._open(spec, t_ns, value, value, explain(), x, window, {}))
            else:
                if self.suppressed.pop(alert_type, None) is None and alert_type in self.current:
                    changes.append(self._clear(alert_type, t_ns, "condition", score=value,
                                               peak=ev.peak_score))
        a = self.current.get(alert_type)
        if a is not None and not changes and policy.is_open:
            a.score = value
            a.peak_score = policy.peak
            sev = spec.severity_of(policy.peak)
            if SEVERITIES.index(sev) > SEVERITIES.index(a.severity):
                a.severity = sev
                changes.append(AlertChange("severity_changed", copy.copy(a), t_ns))
        return changes

    def raise_event(self, alert_type: str, t_ns: int, severity: str,
                    detail: dict[str, Any]) -> list[AlertChange]:
        """An event alert (no condition to clear it, e.g. ``command_failed``): open it unless one is open."""
        spec = self.specs[alert_type]
        a = self.current.get(alert_type)
        if a is not None:
            a.occurrences += 1
            a.detail = {**a.detail, "last": detail}
            return []
        if self.schedule.active(t_ns):
            sup = _Suppressed(t_ns, 0.0, [], None, None, detail)
            return [AlertChange("suppressed", self._draft(spec, t_ns, None, None, sup), t_ns)]
        return [self._open(spec, t_ns, None, None, [], None, None, detail, severity)]

    def resolve(self, alert_type: str, t_ns: int, by: str,
                when: Callable[[AlertState], bool]) -> list[AlertChange]:
        """Clear the open event alert of a type if ``when(alert)`` (e.g. the failed actuator answered
        again)."""
        a = self.current.get(alert_type)
        if a is None or not when(a):
            return []
        return [self._clear(alert_type, t_ns, by)]

    # ---- time ------------------------------------------------------------------------------------
    def advance(self, t_ns: int) -> list[AlertChange]:
        """Fire escalations and end-of-maintenance openings due at or before ``t_ns``, in time order."""
        changes: list[AlertChange] = []
        while True:
            due = self.next_deadline()
            if due is None or due > t_ns:
                return changes
            changes.extend(self._fire(due))

    def _fire(self, at: int) -> list[AlertChange]:
        out: list[AlertChange] = []
        for alert_type, sup in list(self.suppressed.items()):
            end = self.schedule.end_of(sup.since_ns)
            if (end if end is not None else sup.since_ns) != at:
                continue
            del self.suppressed[alert_type]
            spec = self.specs[alert_type]
            policy = self.policies.get(alert_type)
            if policy is not None and policy.is_open:  # the condition outlived the maintenance window
                out.append(self._open(spec, at, sup.score, policy.peak, sup.explanation, sup.x, sup.window,
                                      {"after_maintenance": True, "condition_since_ns": sup.since_ns}))
        for a in list(self.current.values()):
            if a.status != "open" or a.next_escalation_ns != at:
                continue
            end = self.schedule.end_of(at)
            if end is not None:  # no escalation during maintenance: try again when it ends
                a.next_escalation_ns = end
                continue
            a.escalation_level += 1
            more = self.escalate_after_ns > 0 and a.escalation_level < self.max_escalations
            a.next_escalation_ns = at + self.escalate_after_ns if more else None
            out.append(AlertChange("escalated", copy.copy(a), at))
        return out

    # ---- feedback --------------------------------------------------------------------------------
    def feedback(self, fb: Feedback) -> tuple[list[AlertChange], Problem | None]:
        """Apply an operator's ack, clear or label (at ``fb.ts_ns``)."""
        if fb.alert_id is not None:
            a = self.known.get(fb.alert_id)
            if a is None:
                return [], Problem("unknown_alert",
                                   f"alert {fb.alert_id} is not an alert of asset {self.asset} (or is older "
                                   f"than the last {self.history} alerts)")
        else:
            a = self.current.get(fb.alert_type or "")
            if a is None:
                return [], Problem("no_open_alert",
                                   f"asset {self.asset} has no open {fb.alert_type!r} alert to {fb.type}")
        if fb.type == "label":
            return self._label(a, fb)
        if a.status == "cleared":
            return [], Problem("alert_not_open",
                               f"alert {a.alert_id} ({a.alert_type}) was cleared already, so it cannot be "
                               f"{'acknowledged' if fb.type == 'ack' else 'cleared'}")
        if fb.type == "ack":
            if a.status == "acknowledged":  # a repeated ack (e.g. redelivered) changes nothing: say so
                return [], Problem("already_acknowledged",
                                   f"alert {a.alert_id} ({a.alert_type}) was acknowledged already by "
                                   f"{a.acknowledged_by or '?'}; this ack changes nothing")
            a.status = "acknowledged"
            a.acknowledged_at_ns = max(fb.ts_ns, a.opened_at_ns)
            a.acknowledged_by = fb.by
            a.next_escalation_ns = None
            return [AlertChange("acknowledged", copy.copy(a), a.acknowledged_at_ns, fb)], None
        # operator clear
        t = max(fb.ts_ns, a.opened_at_ns)
        policy = self.policies.get(a.alert_type)
        if policy is not None:
            policy.force_clear(t)
        return [self._clear(a.alert_type, t, "operator", by=fb.by, cause=fb)], None

    def _label(self, a: AlertState, fb: Feedback) -> tuple[list[AlertChange], Problem | None]:
        if a.label is not None:
            same = "the same label again changes nothing" \
                if (a.label, a.fault_type) == (fb.label, fb.fault_type) \
                else "the first label stands"
            return [], Problem("already_labelled",
                               f"alert {a.alert_id} is labelled {a.label!r} already; {same}")
        a.label, a.fault_type, a.labelled_by = fb.label, fb.fault_type, fb.by
        a.labelled_at_ns = max(fb.ts_ns, a.opened_at_ns)
        return [AlertChange("labelled", copy.copy(a), a.labelled_at_ns, fb)], None

    # ---- internals -------------------------------------------------------------------------------
    def _peek_seq(self, alert_type: str) -> int:
        """The opening sequence number the next alert of a type gets."""
        return self._seq.get(alert_type, -1) + 1

    def _next_seq(self, alert_type: str) -> int:
        n = self._peek_seq(alert_type)
        self._seq[alert_type] = n
        return n

    def alert_id(self, alert_type: str, opened_at_ns: int, seq: int) -> str:
        """The deterministic id of the ``seq``-th alert (0, 1, ...) of a type, opened at a time.

        ``seq`` makes each opening distinct even when two open at the same event time;
        ``opened_at_ns`` keeps ids apart if a book starts afresh (no snapshot) and counts from 0 again.
        """
        return make_id("alert-id", self.site, self.config_hash, self.asset, alert_type, opened_at_ns, seq)

    def _draft(self, spec: AlertRuleSpec, t_ns: int, score: float | None, peak: float | None,
               sup: _Suppressed) -> AlertState:
        """A suppressed alert (counted, never emitted nor opened): the id it would have had; it takes no
        seq."""
        return AlertState(self.alert_id(spec.type, t_ns, self._peek_seq(spec.type)), spec.type, -1,
                          "suppressed",
                          spec.severity_of(peak) if peak is not None else spec.severity, t_ns, score, peak,
                          spec.open_threshold, spec.clear_threshold, sup.explanation, dict(sup.detail),
                          window=sup.window)

    def _open(self, spec: AlertRuleSpec, t_ns: int, score: float | None, peak: float | None,
              explanation: list[dict], x: np.ndarray | None, window: tuple[int, int] | None,
              detail: dict[str, Any], severity: str | None = None) -> AlertChange:
        sev = severity or (spec.severity_of(peak) if peak is not None else spec.severity)
        escalates = self.escalate_after_ns > 0 and self.max_escalations > 0
        esc = t_ns + self.escalate_after_ns if escalates else None
        seq = self._next_seq(spec.type)
        a = AlertState(self.alert_id(spec.type, t_ns, seq), spec.type, seq, "open", sev, t_ns,
                       score, peak, spec.open_threshold, spec.clear_threshold, explanation, detail, x, window,
                       next_escalation_ns=esc)
        self.current[spec.type] = a
        self.known[a.alert_id] = a
        return AlertChange("opened", copy.copy(a), t_ns)

    def _prune(self) -> None:
        """Keep the newest ``history`` cleared alerts (for late labels); open ones are always kept."""
        cleared = [k for k, a in self.known.items() if a.status == "cleared"]
        for k in cleared[: max(0, len(cleared) - self.history)]:
            del self.known[k]

    def _clear(self, alert_type: str, t_ns: int, how: str, *, by: str = "", score: float | None = None,
               peak: float | None = None, cause: Feedback | None = None) -> AlertChange:
        a = self.current.pop(alert_type)
        a.status = "cleared"
        a.cleared_at_ns = t_ns
        a.cleared_by = how if not by else f"{how}:{by}"
        a.next_escalation_ns = None
        if score is not None:
            a.score = score
        if peak is not None:
            a.peak_score = peak
        self._prune()
        return AlertChange("cleared", copy.copy(a), t_ns, cause)


def anomaly_spec(open_threshold: float, clear_threshold: float, critical_threshold: float, open_windows: int,
                 open_of: int | None, clear_windows: int, clear_of: int | None,
                 cooldown_ns: int) -> AlertRuleSpec:
    """The detector-score alert type (``anomaly``), from the ``[alerts]`` table."""
    return AlertRuleSpec(ALERT_TYPE_ANOMALY, "score", "above", open_threshold, clear_threshold,
                         critical_threshold,
                         "warning", open_windows, open_of, clear_windows, clear_of, cooldown_ns,
                         needs_warm_model=True)


def alert_record(ch: AlertChange, asset: str, line: str, lineage: dict,
                 learned: bool | None = None) -> dict[str, Any]:
    """The ``aiotstream.alert/2`` record of one lifecycle change (every flow's alerts have this shape and
    id)."""
    a = ch.alert
    return {
        "schema": "aiotstream.alert/2",
        "id": make_id("alert", a.alert_id, ch.event, ch.at_ns, a.escalation_level, a.severity),
        "alert_id": a.alert_id, "event": ch.event, "status": a.status, "alert_type": a.alert_type,
        "severity": a.severity, "asset": asset, "line": line,
        "score": None if a.score is None else round(a.score, 6),
        "peak_score": None if a.peak_score is None else round(a.peak_score, 6),
        "open_threshold": a.open_threshold, "clear_threshold": a.clear_threshold,
        "opened_at": iso_ns(a.opened_at_ns), "opened_at_ns": a.opened_at_ns,
        "at": iso_ns(ch.at_ns), "at_ns": ch.at_ns,
        "acknowledged_at_ns": a.acknowledged_at_ns, "acknowledged_by": a.acknowledged_by or None,
        "cleared_at": None if a.cleared_at_ns is None else iso_ns(a.cleared_at_ns),
        "cleared_at_ns": a.cleared_at_ns, "cleared_by": a.cleared_by or None,
        "escalation_level": a.escalation_level, "occurrences": a.occurrences,
        "label": None if a.label is None else {"label": a.label, "fault_type": a.fault_type,
                                               "by": a.labelled_by or None, "at_ns": a.labelled_at_ns},
        "learned": learned, "explanation": a.explanation, "detail": a.detail,
        "by": (ch.cause.by or None) if ch.cause is not None else None,
        **lineage,
    }

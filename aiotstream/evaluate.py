"""Score alerts against the simulator's ground truth: fault recall, alert precision, delay.

An opened alert *detects* a fault when it is on the fault's asset and opens
(event time of its window's end) no earlier than the fault's onset and no later
than ``onset + tolerance``. Windows hold frames by the time of their first
sample, so a window's data runs up to one frame past its end: ``lead_ns`` (one
frame's duration) lets an alert whose window ends just before the onset count
when its last frame already contains the fault. An alert is a *true* alert when it opens on a
faulty asset while the fault lasts (onset .. end + tolerance); anything else is
a false alert. ``drift`` alerts (model health, not machine faults) are left out.

>>> truth = [{"asset": "a", "kind": "imbalance", "onset_ns": 10, "end_ns": None}]
>>> alerts = [{"asset": "a", "event": "opened", "opened_at_ns": 12},
...           {"asset": "b", "status": "open", "opened_at_ns": 5},
...           {"asset": "a", "event": "escalated", "status": "open", "opened_at_ns": 12}]
>>> r = score_alerts(truth, alerts, tolerance_ns=5)
>>> r.recall, r.precision, r.false_alerts
(1.0, 0.5, 1)
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Detection:
    recall: float
    precision: float
    faults: int
    detected: int
    alerts: int
    true_alerts: int
    false_alerts: int
    delays_s: dict[str, float] = field(default_factory=dict)  # "asset/kind" -> seconds from onset to alert
    missed: list[str] = field(default_factory=list)


def _is_opening(a: Mapping[str, Any]) -> bool:
    """``aiotstream.alert/2`` records say ``event: opened``; /1 records had only ``status: open``."""
    if a.get("alert_type") == "drift":
        return False
    return a["event"] == "opened" if "event" in a else a.get("status") == "open"


def score_alerts(truth: Iterable[Mapping[str, Any]], alerts: Iterable[Mapping[str, Any]],
                 tolerance_ns: int = 5_000_000_000, lead_ns: int = 0) -> Detection:
    faults = list(truth)
    opened = [a for a in alerts if _is_opening(a)]
    detected, delays, missed = 0, {}, []
    for f in faults:
        hits = [a["opened_at_ns"] for a in opened
                if a["asset"] == f["asset"]
                and f["onset_ns"] - lead_ns <= a["opened_at_ns"] <= f["onset_ns"] + tolerance_ns]
        name = f"{f['asset']}/{f['kind']}"
        if hits:
            detected += 1
            delays[name] = max(0.0, (min(hits) - f["onset_ns"]) / 1e9)
        else:
            missed.append(name)
    true_alerts = 0
    for a in opened:
        t = a["opened_at_ns"]
        if any(a["asset"] == f["asset"] and f["onset_ns"] - lead_ns <= t
               and (f["end_ns"] is None or t <= f["end_ns"] + tolerance_ns) for f in faults):
            true_alerts += 1
    n = len(opened)
    return Detection(
        recall=detected / len(faults) if faults else 1.0,
        precision=true_alerts / n if n else 1.0,
        faults=len(faults), detected=detected, alerts=n, true_alerts=true_alerts,
                     false_alerts=n - true_alerts,
        delays_s=delays, missed=missed,
    )

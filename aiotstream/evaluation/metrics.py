"""Detection metrics: point-wise (as the SKAB leaderboard scores them) and event-wise.

**Point-wise** (SKAB ``core/metrics.py``, from the TSAD library, ``metric='binary'``): per row, the label
(anomaly or not) against the alert (open or not). Confusion counts are summed over every row (of every file:
a micro average), then ``F1 = TP / (TP + (FP + FN) / 2)``, ``FAR = FP / (FP + TN)`` and
``MAR = FN / (FN + TP)``, FAR and MAR in %. With nothing to find and nothing found, F1 is 1; FAR is 0 without
normal rows and MAR 0 without anomalous ones.

>>> c = confusion([1, 1, 1, 0, 0, 0, 0, 1], [1, 0, 1, 1, 0, 0, 0, 0])
>>> c, {k: round(v, 3) for k, v in binary_metrics(c).items()}
({'tp': 2, 'tn': 3, 'fp': 1, 'fn': 2}, {'f1': 0.571, 'far': 25.0, 'mar': 50.0})

**Event-wise**: events (a labelled run of anomalous rows, or a simulator fault) and alerts (a run of alert
rows, or an alert from opening to clearing) are half-open intervals ``[start, end)`` on an asset; ``end``
None runs to the horizon (the end of the data). With ``lead`` and ``tolerance`` (0 for rows) an event's
window is ``[start - lead, end + tolerance)``:

* an event is **detected** when an alert on its asset *opens* in its window (and, with ``max_delay``, by
  ``start + max_delay``); its **delay** is ``max(0, first such opening - start)``. An alert that opened
  before the window and is still open does not detect it: it was a false alert when it opened, and an
  alert that never closes would otherwise "detect" every later fault on its asset;
* an alert is **true** when it opens in the window of some event on its asset, else **false**;
* ``recall = detected / events`` (None without events), ``precision = true alerts / alerts`` (None without
  alerts), and **false alerts per asset per day** = false alerts / (assets x days of data).

>>> r = event_metrics([Interval("a", 10, 20)], [Interval("a", 5, 12), Interval("a", 13, 31)], horizon=100)
>>> r.recall, r.precision, r.delays, r.false_alerts
(1.0, 0.5, [3], 1)

The SKAB harness's event recall (:func:`event_stats`: any alert row inside the labelled segment) counts an
alert run that began before the segment; this one does not, so it is at most the harness's.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aiotstream.units import S

DAY_NS = 86_400 * S


def confusion(true: Any, pred: Any) -> dict[str, int]:
    """Row-wise confusion counts of a boolean label against a boolean prediction (same length)."""
    t = np.asarray(true, bool)
    p = np.asarray(pred, bool)
    if t.shape != p.shape:
        raise ValueError(f"labels and predictions differ in shape: {t.shape} vs {p.shape}")
    return {"tp": int(np.sum(t & p)), "tn": int(np.sum(~t & ~p)), "fp": int(np.sum(~t & p)),
            "fn": int(np.sum(t & ~p))}


def add_counts(total: dict[str, int], counts: dict[str, int]) -> dict[str, int]:
    """Sum confusion counts (the micro average over files)."""
    return {k: total.get(k, 0) + counts[k] for k in ("tp", "tn", "fp", "fn")}


def binary_metrics(counts: dict[str, int]) -> dict[str, float]:
    """SKAB/TSAD ``metric='binary'`` from (summed) confusion counts: F1 unrounded; FAR, MAR in %."""
    tp, tn, fp, fn = counts["tp"], counts["tn"], counts["fp"], counts["fn"]
    f1 = tp / (tp + (fn + fp) / 2) if tp + fn + fp else 1.0
    far = 100.0 * fp / (fp + tn) if fp + tn else 0.0
    mar = 100.0 * fn / (fn + tp) if fn + tp else 0.0
    return {"f1": f1, "far": far, "mar": mar}


def segments(mask: Any) -> list[tuple[int, int]]:
    """``[start, end)`` row ranges of each run of True.

    >>> segments([0, 1, 1, 0, 1])
    [(1, 3), (4, 5)]
    """
    d = np.diff(np.r_[0, np.asarray(mask, bool).astype(np.int8), 0])
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def event_stats(true: Any, pred: Any) -> dict[str, Any]:
    """The SKAB harness's event counts: labelled segments, those with an alert row inside, the delay (rows)
    from each found segment's first row to its first alert row, and alert runs touching no labelled row."""
    true, pred = np.asarray(true, bool), np.asarray(pred, bool)
    segs = segments(true)
    found, delays = 0, []
    for s, e in segs:
        hit = np.flatnonzero(pred[s:e])
        if hit.size:
            found += 1
            delays.append(int(hit[0]))
    false_openings = sum(1 for s, e in segments(pred) if not np.any(true[s:e]))
    return {"events": len(segs), "found": found, "delays": delays, "false_openings": false_openings}


@dataclass(frozen=True, slots=True)
class Interval:
    """``[start, end)`` on ``asset`` (ns or row numbers); ``end`` None: until the horizon. ``kind`` and
    ``ref`` name it in reports (a fault kind, an alert id)."""

    asset: str
    start: int
    end: int | None
    kind: str = ""
    ref: str = ""


@dataclass(slots=True)
class EventReport:
    events: int
    detected: int
    recall: float | None
    alerts: int
    true_alerts: int
    false_alerts: int
    precision: float | None
    delays: list[int | None]  # per event, in the order given; None: missed
    alert_true: list[bool]  # per alert, in the order given
    assets: int
    span: int
    false_alerts_per_asset_per_day: float | None = None
    missed: list[Interval] = field(default_factory=list)

    def delay_summary(self, unit: float = 1.0) -> dict[str, float | None]:
        """Median, 90th percentile and max of the delays of detected events, divided by ``unit``."""
        d = np.array([x for x in self.delays if x is not None], dtype=float) / unit
        if not d.size:
            return {"median": None, "p90": None, "max": None}
        return {"median": float(np.median(d)), "p90": float(np.percentile(d, 90)), "max": float(d.max())}


def event_metrics(truth: Sequence[Interval], alerts: Sequence[Interval], *, horizon: int, lead: int = 0,
                  tolerance: int = 0, max_delay: int | None = None, assets: Iterable[str] | None = None,
                  span: int | None = None, per_day: int = DAY_NS) -> EventReport:
    """Event-wise recall, precision, delays and false alerts (module docstring).

    ``horizon`` ends the open intervals; ``assets`` (default: those named in truth and alerts) and ``span``
    (the data's length, in the intervals' unit; default ``horizon`` minus the earliest start) give the
    false alerts per asset per ``per_day`` units (None when either is 0).

    >>> r = event_metrics([], [Interval("a", 0, 5)], horizon=10, assets=["a", "b"], span=10, per_day=10)
    >>> r.recall, r.precision, r.false_alerts_per_asset_per_day
    (None, 0.0, 0.5)
    """
    by_asset: dict[str, list[Interval]] = {}
    for a in alerts:
        by_asset.setdefault(a.asset, []).append(a)

    def end_of(iv: Interval) -> int:
        return horizon if iv.end is None else iv.end

    delays: list[int | None] = []
    missed: list[Interval] = []
    for e in truth:
        lo = e.start - lead
        hi = end_of(e) + tolerance
        if max_delay is not None:
            hi = min(hi, e.start + max_delay + 1)  # opened at start + max_delay still counts
        hits = [a.start for a in by_asset.get(e.asset, ()) if lo <= a.start < hi]
        if hits:
            delays.append(max(0, min(hits) - e.start))
        else:
            delays.append(None)
            missed.append(e)
    truth_by_asset: dict[str, list[Interval]] = {}
    for e in truth:
        truth_by_asset.setdefault(e.asset, []).append(e)
    alert_true = [any(e.start - lead <= a.start < end_of(e) + tolerance
                      for e in truth_by_asset.get(a.asset, ())) for a in alerts]
    n_true = sum(alert_true)
    names = set(assets) if assets is not None else {iv.asset for iv in (*truth, *alerts)}
    starts = [iv.start for iv in (*truth, *alerts)]
    if span is None:
        span = horizon - min(starts) if starts else 0
    n_false = len(alerts) - n_true
    detected = sum(d is not None for d in delays)
    return EventReport(
        events=len(truth), detected=detected, recall=detected / len(truth) if truth else None,
        alerts=len(alerts), true_alerts=n_true, false_alerts=n_false,
        precision=n_true / len(alerts) if alerts else None, delays=delays, alert_true=alert_true,
        assets=len(names), span=span,
        false_alerts_per_asset_per_day=(n_false / (len(names) * span / per_day)
                                        if names and span > 0 else None),
        missed=missed)


def row_events(label: Any, alert: Any, asset: str = "series") -> tuple[list[Interval], list[Interval]]:
    """Labelled runs and alert runs of one series as row intervals (for :func:`event_metrics`)."""
    truth = [Interval(asset, s, e, "anomaly") for s, e in segments(label)]
    alerts = [Interval(asset, s, e, "alert") for s, e in segments(alert)]
    return truth, alerts

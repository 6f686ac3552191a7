"""Score a simulator run through the flow against its ground truth (``truth.json`` and ``alerts.jsonl``).

Faults are the events (``end_ns`` None: until the end of the run); fault alerts are every alert but
``drift`` ones (model health), from ``opened`` to ``cleared`` (or the end of the run). The window of a fault
starts ``lead_ns`` before its onset (a window's data runs up to one frame past its end, so the window that
ends just before the onset can already hold it) and ends ``tolerance_ns`` after it; a fault counts as
detected when an alert opens in it (by ``onset + max_delay_ns`` if given), and an alert is true when it
opens in a fault's window (:func:`aiotstream.evaluation.metrics.event_metrics`): an alert left open since
before the fault neither detects it nor becomes true.

Beside recall, precision, delays and false alerts per asset per day it reports what the realistic scenario
asks about:

* ``maintenance_resets``: maintenance resets, and those with a fault alert opened on the asset from the
  start of the maintenance to ``reset_window_ns`` after its end (the level shift is not a fault;
  ``with_fault_alert``: any alert, also one that detects a later fault or follows another event), and
  those that raised one themselves (``raised_alert``): a false alert opened from the start of the
  maintenance to ``near_ns`` after its end that no other event on the asset is near (a run-long
  ``sensor_drift`` aside);
* ``drift_on_clean``: drift alerts (``alert_type`` ``drift``) on assets without a fault;
* ``false_alerts_near``: each false alert put against the scenario's events on its asset (``noise_burst``,
  ``dropout``, ``regime_change``, ``maintenance_reset``: open from 5 s before to ``near_ns`` after the event;
  ``sensor_drift``: the whole run), or ``none``.

>>> truth = {"start_ns": 0, "end_ns": 100, "assets": [{"id": "a"}, {"id": "b"}],
...          "faults": [{"asset": "a", "kind": "imbalance", "onset_ns": 10, "end_ns": None}]}
>>> alerts = [{"asset": "a", "alert_id": "1", "event": "opened", "opened_at_ns": 12, "alert_type": "anomaly"}]
>>> r = score_run(truth, alerts, tolerance_ns=0)
>>> r["events"]["recall"], r["events"]["precision"], r["events"]["delay_s"]["median"]
(1.0, 1.0, 2e-09)
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from aiotstream.evaluation.metrics import DAY_NS, Interval, event_metrics
from aiotstream.units import S

NEAR_BEFORE_NS = 5 * S


def alert_intervals(alerts: Iterable[Mapping[str, Any]], drift: bool = False) -> list[Interval]:
    """One interval per alert (by ``alert_id``): opened .. cleared (None: still open). ``drift`` picks the
    drift alerts instead of the fault alerts."""
    opened: dict[str, Interval] = {}
    cleared: dict[str, int] = {}
    for a in alerts:
        if (a.get("alert_type") == "drift") != drift:
            continue
        aid = str(a.get("alert_id") or a.get("id"))
        ev = a.get("event") or ("opened" if a.get("status") == "open" else "")
        if ev == "opened" and aid not in opened:
            kind = str(a.get("alert_type", ""))
            opened[aid] = Interval(a["asset"], int(a["opened_at_ns"]), None, kind, aid)
        elif ev == "cleared" and a.get("cleared_at_ns") is not None:
            cleared[aid] = int(a["cleared_at_ns"])
    out = [Interval(iv.asset, iv.start, cleared.get(k), iv.kind, k) for k, iv in opened.items()]
    return sorted(out, key=lambda iv: (iv.start, iv.asset))


def score_run(truth: Mapping[str, Any], alerts: list[Mapping[str, Any]], *, lead_ns: int = 0,
              tolerance_ns: int = 5 * S, max_delay_ns: int | None = None, reset_window_ns: int = 600 * S,
              near_ns: int = 60 * S) -> dict[str, Any]:
    """Every figure of a simulator run (module docstring); times in the result are seconds."""
    start, end = int(truth["start_ns"]), int(truth["end_ns"])
    assets = [a["id"] for a in truth["assets"]]
    faults = [Interval(f["asset"], int(f["onset_ns"]), f["end_ns"], f["kind"]) for f in truth["faults"]]
    fault_alerts = alert_intervals(alerts)
    rep = event_metrics(faults, fault_alerts, horizon=end, lead=lead_ns, tolerance=tolerance_ns,
                        max_delay=max_delay_ns, assets=assets, span=end - start, per_day=DAY_NS)
    events = list(truth.get("events", []))
    faulty = {f.asset for f in faults}
    # maintenance resets that raised a fault alert
    resets = [e for e in events if e["kind"] == "maintenance_reset"]
    reset_hits = []
    for e in resets:
        lo, hi = int(e["onset_ns"]), int(e["end_ns"]) + reset_window_ns
        n = sum(1 for a in fault_alerts if a.asset == e["asset"] and lo <= a.start < hi)
        if n:
            reset_hits.append({"asset": e["asset"], "onset_s": (lo - start) / S, "alerts": n})
    raised = []  # resets that raised a false alert themselves: no other event near it
    for e in resets:
        lo, hi = int(e["onset_ns"]), int(e["end_ns"]) + near_ns
        n = sum(1 for a, ok in zip(fault_alerts, rep.alert_true)
                if not ok and a.asset == e["asset"] and lo <= a.start < hi
                and not any(o is not e and o["asset"] == a.asset and o["kind"] != "sensor_drift"
                            and _near(o, a.start, end, near_ns) for o in events))
        if n:
            raised.append({"asset": e["asset"], "onset_s": (lo - start) / S, "alerts": n})
    # drift alerts on fault-free assets
    drift = alert_intervals(alerts, drift=True)
    clean = [a for a in assets if a not in faulty]
    drift_clean = [d for d in drift if d.asset not in faulty]
    days = (end - start) / DAY_NS
    # false alerts against the scenario's events
    near: Counter[str] = Counter()
    false_list = []
    for a, ok in zip(fault_alerts, rep.alert_true):
        if ok:
            continue
        kinds = sorted({e["kind"] for e in events
                        if e["asset"] == a.asset and _near(e, a.start, end, near_ns)})
        for k in kinds or ["none"]:
            near[k] += 1
        false_list.append({"asset": a.asset, "opened_s": (a.start - start) / S, "near": kinds})
    delays = rep.delay_summary(unit=S)
    per_kind: dict[str, dict[str, int]] = {}
    for f, d in zip(faults, rep.delays):
        k = per_kind.setdefault(f.kind, {"faults": 0, "detected": 0})
        k["faults"] += 1
        k["detected"] += d is not None
    return {
        "scenario": truth.get("scenario", "easy"),
        "amplitude": truth.get("amplitude", 1.0),
        "assets": len(assets),
        "duration_s": (end - start) / S,
        "events": {"faults": rep.events, "detected": rep.detected, "recall": rep.recall,
                   "alerts": rep.alerts, "true_alerts": rep.true_alerts, "false_alerts": rep.false_alerts,
                   "precision": rep.precision, "delay_s": delays,
                   "false_alerts_per_asset_per_day": rep.false_alerts_per_asset_per_day,
                   "by_kind": per_kind},
        "per_fault": [{"asset": f.asset, "kind": f.kind, "onset_s": (f.start - start) / S,
                       "delay_s": None if d is None else d / S} for f, d in zip(faults, rep.delays)],
        "maintenance_resets": {"resets": len(resets), "with_fault_alert": len(reset_hits),
                               "window_after_s": reset_window_ns / S, "which": reset_hits,
                               "raised_alert": len(raised), "raised_which": raised},
        "drift_on_clean": {"clean_assets": len(clean), "drift_alerts": len(drift_clean),
                           "assets_with_drift": len({d.asset for d in drift_clean}),
                           "per_asset_per_day": (len(drift_clean) / (len(clean) * days)
                                                 if clean and days > 0 else None),
                           "drift_alerts_all_assets": len(drift)},
        "false_alerts_near": dict(sorted(near.items())),
        "false_alerts": false_list,
        "settings": {"lead_s": lead_ns / S, "tolerance_s": tolerance_ns / S,
                     "max_delay_s": None if max_delay_ns is None else max_delay_ns / S,
                     "near_s": near_ns / S},
    }


def _near(e: Mapping[str, Any], t: int, end: int, near_ns: int) -> bool:
    if e["kind"] == "sensor_drift":
        return True
    e_end = end if e["end_ns"] is None else int(e["end_ns"])
    return int(e["onset_ns"]) - NEAR_BEFORE_NS <= t < e_end + near_ns

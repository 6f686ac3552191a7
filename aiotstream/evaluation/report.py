"""``aiotstream evaluate``'s human table (stdout); the JSON holds the same figures and more."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _f(v: float | None, fmt: str = ".3f") -> str:
    return "n/a" if v is None else format(v, fmt)


def _delay(d: Mapping[str, float | None]) -> str:
    return f"median {_f(d['median'], '.1f')} s   p90 {_f(d['p90'], '.1f')} s   max {_f(d['max'], '.1f')} s"


def format_labelled(r: Mapping[str, Any]) -> str:
    pw, ev = r["pointwise"], r["events"]
    per_day = _f(r["false_alerts_per_asset_per_day"], ".2f")
    rows = [
        ("point-wise (SKAB)", (f"F1 {pw['f1']:.3f}   FAR {pw['far']:.2f} %   MAR {pw['mar']:.2f} %   "
                               f"(TP {pw['tp']}, FP {pw['fp']}, FN {pw['fn']}, TN {pw['tn']})")),
        ("event recall", f"{_f(ev['recall'])} ({ev['detected']}/{ev['events']} labelled events)"),
        ("event precision", f"{_f(ev['precision'])} ({ev['true_alerts']}/{ev['alerts']} alerts)"),
        ("detection delay", _delay(ev["delay_s"])),
        ("false alerts", f"{ev['false_alerts']} ({per_day} per asset per day)"),
    ]
    head = f"{r['file']}: {r['rows']:,} rows over {r['span_s'] / 3600:.2f} h; detector: {r['detector']}"
    return "\n".join([head] + [f"  {k:<20} {v}" for k, v in rows])


def format_simulated(r: Mapping[str, Any]) -> str:
    ev, mr, dc = r["events"], r["maintenance_resets"], r["drift_on_clean"]
    kinds = ", ".join(f"{k} {v['detected']}/{v['faults']}" for k, v in sorted(ev["by_kind"].items()))
    near = ", ".join(f"{k} {v}" for k, v in r["false_alerts_near"].items()) or "none"
    per_day = _f(ev["false_alerts_per_asset_per_day"], ".1f")
    rows = [
        ("event recall", f"{_f(ev['recall'])} ({ev['detected']}/{ev['faults']} faults: {kinds or 'none'})"),
        ("alert precision", f"{_f(ev['precision'])} ({ev['true_alerts']}/{ev['alerts']} alerts)"),
        ("detection delay", _delay(ev["delay_s"])),
        ("false alerts", f"{ev['false_alerts']} ({per_day} per asset per day); near: {near}"),
        ("maintenance resets", (f"{mr['with_fault_alert']} of {mr['resets']} with a fault alert (during "
                                f"or {mr['window_after_s']:g} s after); raised by the reset (a false alert "
                                f"during or {r['settings']['near_s']:g} s after, no other event near): "
                                f"{mr.get('raised_alert', '?')}")),
        ("drift on clean data", (f"{dc['drift_alerts']} drift alerts on {dc['assets_with_drift']} of "
                                 f"{dc['clean_assets']} fault-free assets "
                                 f"({_f(dc['per_asset_per_day'], '.1f')} per asset per day)")),
    ]
    head = (f"simulator {r['scenario']!r}, {r['assets']} assets x {r['duration_s']:g} s, faults at "
            f"{r['amplitude']:g}x amplitude")
    return "\n".join([head] + [f"  {k:<20} {v}" for k, v in rows])

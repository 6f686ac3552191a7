"""The worst cases of an evaluation as one PNG: series, scores and alerts (matplotlib, Agg backend).

Worst cases, in this order, up to ``max_cases`` panels: missed events (longest first), detected events with
the longest delays, false alerts (longest first; in a simulator run, maintenance resets that raised an alert
come before them). Each panel shows the series (each channel scaled to its own median and spread, so
channels of different units share an axis), the anomaly score on the right axis, labelled/fault windows in
orange, alerts in red and the simulator's other events in grey.

A plot that cannot be made (matplotlib missing, nothing to show, a write error) returns the reason instead:
evaluating never fails because of the picture.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aiotstream.units import S


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _scaled(v: np.ndarray) -> np.ndarray:
    med = np.nanmedian(v)
    spread = np.nanpercentile(v, 95) - np.nanpercentile(v, 5)
    return (v - med) / (spread if spread > 0 else 1.0)


def plot_labelled(path: str | Path, ts_ns: np.ndarray, x: np.ndarray, columns: Sequence[str],
                  label: np.ndarray, score: np.ndarray, alert: np.ndarray, result: Mapping[str, Any],
                  max_cases: int = 4) -> tuple[str | None, str]:
    """Worst cases of a labelled series; returns ``(path, what)`` or ``(None, why not)``."""
    try:
        cases: list[tuple[str, int, int]] = []
        ev = result["per_event"]
        missed = (e for e in ev if e["delay_rows"] is None)
        for e in sorted(missed, key=lambda e: e["start_row"] - e["end_row"]):
            cases.append(("missed event", e["start_row"], e["end_row"]))
        for e in sorted((e for e in ev if e["delay_rows"] is not None), key=lambda e: -e["delay_rows"]):
            cases.append((f"detected after {e['delay_rows']} rows", e["start_row"], e["end_row"]))
        for s, e in sorted(result["false_alert_rows"], key=lambda r: r[0] - r[1]):
            cases.append(("false alert", s, e))
        # missed first, then the false alerts, then the slowest detections
        order = [c for c in cases if c[0] == "missed event"] + [c for c in cases if c[0] == "false alert"] + \
            [c for c in cases if c[0].startswith("detected")]
        order = order[:max_cases]
        if not order:
            return None, "no plot: no events and no alerts to show"
        plt = _pyplot()
        fig, axes = plt.subplots(len(order), 1, figsize=(11, 2.8 * len(order)), squeeze=False)
        t = (ts_ns - ts_ns[0]) / S
        n = len(t)
        for ax, (what, s, e) in zip(axes[:, 0], order):
            pad = max(60, (e - s) // 2)
            lo, hi = max(0, s - pad), min(n, e + pad)
            for j, c in enumerate(columns):
                ax.plot(t[lo:hi], _scaled(x[:, j])[lo:hi], lw=0.7, label=c)
            _spans(ax, t, label[lo:hi], lo, "tab:orange", 0.25)
            _spans(ax, t, alert[lo:hi], lo, "tab:red", 0.2)
            ax2 = ax.twinx()
            ax2.plot(t[lo:hi], score[lo:hi], color="black", lw=1.0)
            ax2.set_ylim(-0.02, 1.02)
            ax2.set_ylabel("score")
            ax.set_title(f"{what}: rows {s}-{e} (orange: labelled, red: alert)", fontsize=9)
            ax.set_xlabel("s since the first row")
        axes[0, 0].legend(fontsize=6, ncol=min(8, len(columns)), loc="upper left")
        return _save(fig, plt, path, len(order))
    except Exception as exc:  # noqa: BLE001 - the picture never fails the evaluation: say why instead
        return None, f"no plot: {type(exc).__name__}: {exc}"


def _gapped(t: np.ndarray, *ys: np.ndarray) -> tuple[np.ndarray, ...]:
    """NaN between points further apart than 3 median steps, so a gap in the data is not drawn as a line."""
    if len(t) < 3:
        return (t, *ys)
    step = np.diff(t)
    cut = np.flatnonzero(step > 3 * np.median(step)) + 1
    return (np.insert(t.astype(float), cut, np.nan),
            *(np.insert(np.asarray(y, float), cut, np.nan) for y in ys))


def _spans(ax: Any, t: np.ndarray, mask: np.ndarray, offset: int, color: str, alpha: float) -> None:
    from aiotstream.evaluation.metrics import segments

    for s, e in segments(mask):
        ax.axvspan(t[offset + s], t[min(len(t) - 1, offset + e - 1)], color=color, alpha=alpha, lw=0)


def _save(fig: Any, plt: Any, path: str | Path, n: int) -> tuple[str | None, str]:
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=90)
    except OSError as exc:
        return None, f"no plot: cannot write {path}: {exc.strerror or exc}"
    finally:
        plt.close(fig)
    return str(path), f"{n} worst case(s) in {path}"


def plot_simulated(path: str | Path, truth: Mapping[str, Any], alerts: Sequence[Any],
                   scores: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], result: Mapping[str, Any],
                   max_cases: int = 6) -> tuple[str | None, str]:
    """Worst assets of a simulator run. ``alerts``: fault and drift alert intervals
    (:func:`~aiotstream.evaluation.simulated.alert_intervals`); ``scores``: per asset ``(t_ns, score,
    feature)`` of its windows (feature: the first channel's rms)."""
    try:
        start, end = int(truth["start_ns"]), int(truth["end_ns"])
        cases: list[tuple[str, str]] = []
        for f in result["per_fault"]:
            if f["delay_s"] is None:
                cases.append((f["asset"], f"missed {f['kind']} at {f['onset_s']:.0f} s"))
        for r in result["maintenance_resets"]["which"]:
            cases.append((r["asset"],
                          f"maintenance reset at {r['onset_s']:.0f} s raised {r['alerts']} alert(s)"))
        by_asset: dict[str, int] = {}
        for a in result["false_alerts"]:
            by_asset[a["asset"]] = by_asset.get(a["asset"], 0) + 1
        for asset, k in sorted(by_asset.items(), key=lambda kv: -kv[1]):
            cases.append((asset, f"{k} false alert(s)"))
        found = (f for f in result["per_fault"] if f["delay_s"] is not None)
        slow = sorted(found, key=lambda f: -f["delay_s"])
        for f in slow:
            cases.append((f["asset"], f"{f['kind']} detected after {f['delay_s']:.1f} s"))
        seen, order = set(), []
        for asset, what in cases:
            if asset not in seen and asset in scores:
                seen.add(asset)
                order.append((asset, what))
        order = order[:max_cases]
        if not order:
            return None, "no plot: no scored asset to show"
        plt = _pyplot()
        fig, axes = plt.subplots(len(order), 1, figsize=(11, 2.6 * len(order)), squeeze=False)
        for ax, (asset, what) in zip(axes[:, 0], order):
            t, sc, feat = _gapped((scores[asset][0] - start) / S, scores[asset][1], scores[asset][2])
            ax.plot(t, _scaled(feat), lw=0.7, color="tab:blue", label="x.rms (scaled)")
            for f in truth["faults"]:
                if f["asset"] == asset:
                    fe = end if f["end_ns"] is None else f["end_ns"]
                    ax.axvspan((f["onset_ns"] - start) / S, (fe - start) / S, color="tab:orange", alpha=0.25,
                               lw=0)
            for e in truth.get("events", []):
                if e["asset"] == asset and e["kind"] != "sensor_drift":
                    ee = end if e["end_ns"] is None else e["end_ns"]
                    ax.axvspan((e["onset_ns"] - start) / S, (ee - start) / S, color="grey", alpha=0.25, lw=0)
            for a in alerts:
                if a.asset == asset:
                    ae = end if a.end is None else a.end
                    ax.axvspan((a.start - start) / S, (ae - start) / S, color="tab:red", alpha=0.15, lw=0)
                    ax.axvline((a.start - start) / S, color="tab:red", lw=0.8,
                               ls=":" if a.kind == "drift" else "-")
            ax2 = ax.twinx()
            ax2.plot(t, sc, color="black", lw=0.9)
            ax2.set_ylim(-0.02, 1.02)
            ax2.set_ylabel("score")
            ax.set_title(f"{asset}: {what} (orange: fault, grey: other events, red: alerts, dotted: drift)",
                         fontsize=9)
            ax.set_xlabel("s since the start of the run")
        return _save(fig, plt, path, len(order))
    except Exception as exc:  # noqa: BLE001 - the picture never fails the evaluation: say why instead
        return None, f"no plot: {type(exc).__name__}: {exc}"

"""False alarms of the streaming detector on clean synthetic data: alerts per day (issue 17).

``python -m benchmarks.streaming_clean`` runs :class:`aiotstream.models.streaming.StreamingDetector`
with the default configuration over simulated days of data at 1 Hz that contain no fault, and counts
alert openings per day. The issue's bar is at most 1 alert per asset per day in normal operation;
SKAB's anomaly-free file is only 2.77 h long, too short to show a rate of 1/day. Series (``--days``
days each, ``--channels`` channels, one asset, independent seeds):

* ``ar1``: Gaussian AR(1) noise, phi = 0.9 (a slow, autocorrelated channel), cross-correlated channels;
* ``daily``: a clean sine daily cycle (period 86,400 rows, amplitude 10 noise sigmas, a random phase
  per channel) plus white noise: the detector must follow it as a slow drift;
* ``walk``: a Gaussian random walk (a slowly wandering level) with white measurement noise;
* ``shifts``: white noise with a level shift of 5 noise sigmas in one channel every 6 h (maintenance
  resets, not faults). The detector treats a lasting shift like a fault until it has lasted
  ``accept`` rows (then re-baselines and emits a change event), so this series is *expected* to alert,
  once per shift: it is printed to show that, not as a false-alarm figure.

Prints a table and writes JSON to ``benchmarks/results/``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from pathlib import Path

import numpy as np

from aiotstream.models import streaming as S

RESULTS = Path(__file__).resolve().parent / "results"
DAY = 86_400
SERIES = ("ar1", "daily", "walk", "shifts")


def series(kind: str, rows: int, channels: int, seed: int) -> np.ndarray:
    """One clean (fault-free) series of ``rows`` rows at 1 Hz."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(rows, channels))
    offset = rng.uniform(-50.0, 50.0, channels)
    scale = rng.uniform(0.1, 10.0, channels)
    if kind == "ar1":
        mix = rng.normal(size=(channels, channels)) / np.sqrt(channels) + np.eye(channels)
        eps = noise @ mix
        x = np.empty_like(eps)
        x[0] = eps[0]
        for t in range(1, rows):
            x[t] = 0.9 * x[t - 1] + eps[t]
    elif kind == "daily":
        t = np.arange(rows)[:, None]
        x = 10.0 * np.sin(2.0 * np.pi * t / DAY + rng.uniform(0, 2 * np.pi, channels)) + noise
    elif kind == "walk":
        x = np.cumsum(0.05 * rng.normal(size=(rows, channels)), axis=0) + noise
    elif kind == "shifts":
        x = noise.copy()
        for k, t0 in enumerate(range(6 * 3600, rows, 6 * 3600)):
            x[t0:, k % channels] += 5.0 * rng.choice([-1.0, 1.0])
    else:
        raise ValueError(f"series: pick from {SERIES}, got {kind!r}")
    return x * scale + offset


def openings(alert: np.ndarray) -> int:
    a = np.asarray(alert, np.int8)
    return int(np.sum(np.diff(np.r_[0, a]) == 1))


def measure(kind: str, days: float, channels: int, seeds: int, impl: str | None,
            variant: str | None = None) -> dict[str, object]:
    rows = int(days * DAY)
    runs = []
    for seed in range(seeds):
        x = series(kind, rows, channels, seed)
        if variant:  # a candidate of benchmarks.skab_variants (the Python reference with one change)
            from benchmarks.skab_variants import Variant

            det = Variant(channels, variant)
        else:
            det = S.StreamingDetector(channels, impl=impl)
        b = det.update_block(x)
        runs.append({"seed": seed, "alerts": openings(b.alert), "alert_rows": int(b.alert.sum()),
                     "change_events": len(b.events), "min_p": float(b.p.min())})
    total = sum(r["alerts"] for r in runs)
    return {"series": kind, "channels": channels, "days": days, "seeds": seeds, "rows": rows,
            "alerts": total, "alerts_per_day": total / (days * seeds),
            "alert_rows": sum(r["alert_rows"] for r in runs),
            "change_events": sum(r["change_events"] for r in runs), "runs": runs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.streaming_clean", description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=1.0, help="simulated days per run (86,400 rows each)")
    ap.add_argument("--channels", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--seeds", type=int, default=3, help="independent runs per series")
    ap.add_argument("--series", nargs="+", default=list(SERIES), choices=SERIES)
    ap.add_argument("--impl", choices=("python", "compiled"), default=None)
    ap.add_argument("--variant", default=None,
                    help="a candidate of benchmarks.skab_variants instead of the default (Python reference)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    out_rows = []
    print(f"{'series':<8} {'ch':>3} {'days':>5} {'alerts':>7} {'per day':>8} {'alert rows':>10} {'changes':>8}")
    for kind in args.series:
        for n in args.channels:
            r = measure(kind, args.days, n, args.seeds, args.impl, args.variant)
            out_rows.append(r)
            print(f"{kind:<8} {n:>3} {args.days * args.seeds:>5.1f} {r['alerts']:>7} {r['alerts_per_day']:>8.2f} "
                  f"{r['alert_rows']:>10} {r['change_events']:>8}", flush=True)
    out = Path(args.json) if args.json else RESULTS / f"{_dt.date.today().isoformat()}-streaming-clean.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": "python -m benchmarks.streaming_clean " + " ".join(
        argv if argv is not None else sys.argv[1:]), "results": out_rows}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What one call of the predictive-maintenance flow's per-asset step costs, apart from the readings it carries.

    python -m benchmarks.asset_calls [--assets 200] [--rows 6000] [--skip 4000] [--per-call 1,5,25]
                                     [--detector on,off] [--rate-hz 10] [--set PATH=JSON ...] [--json FILE]

The analyze step (``AnalyzerLogic.on_batch``) is called once per asset and activation with that asset's
readings of the poll (``ReadingColumns``). A call costs a fixed part (the step's checks, the window and row
assemblers' bookkeeping, the run summary) and a part per reading (windows closing, KPI accounting, the
streaming detector's rows and its records). Which one dominates depends on how many readings of one asset a
poll carries: 29.6 in ``benchmarks.scalar_ab kafka`` (2,000 keys at 10 Hz, 6 partitions, polls of
10,000), but about one in a plant of many slow sensors (100,000 assets at 1 Hz: a poll of 10,000 readings
holds 10,000 assets).

In process, no broker, no decode, no sink: ``--assets`` one-channel readings-only assets (the pm-readings
benchmark's site; ``--rate-hz`` readings a second, default 10; a random walk plus noise) through
``AnalyzerLogic.on_batch`` in calls of ``--per-call`` readings each, asset after asset (each asset's state
cold by its turn, as in the flow). The
first ``--skip`` rows of each asset are untimed (the default 4,000 fill the detector's rings: steady state);
the next ``--rows - --skip`` are timed, thread CPU and wall. With two or more ``--per-call`` values it fits
``us a reading = a + b / k`` (least squares over k): ``a`` the cost a reading, ``b`` the cost a call.
``--set PATH=JSON`` changes a site setting (``scalar.block_s=60``, ``kpi.periods_s=[60]``): what a setting
costs or saves. One JSON line per measurement on stdout (and appended to ``--json``).
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
from typing import Any

import numpy as np

from aiotstream.cli import one_blas_thread, tune_gc
from aiotstream.config.site import SiteConfig
from aiotstream.dataflow.plant import AnalyzerLogic
from aiotstream.pdm.runtime import SiteRuntime
from aiotstream.records import ReadingColumns
from benchmarks.common import emit_json, with_settings

T0_NS = 1_700_000_000_000_000_000


def site(assets: int, detector: bool) -> dict[str, Any]:
    """The pm-readings benchmark's site (benchmarks.scalar), without its Kafka input."""
    return {"site": {"id": "bench-asset-calls", "name": "asset calls (in process)"},
            "asset_groups": [{"prefix": "s-", "count": assets, "width": 6, "channels": ["v"]}],
            "scalar": {"readings_only": True, "enabled": detector}}


def measure(assets: int, per_call: int, rows: int, skip: int, detector: bool, seed: int = 0,
            rate_hz: float = 10.0, settings: list[str] | None = None) -> dict[str, Any]:
    """One run: every asset fed ``rows`` readings in calls of ``per_call``; the calls from row ``skip`` on
    timed."""
    step_ns = round(1e9 / rate_hz)
    if not 0 <= skip < rows:
        raise SystemExit(f"--skip {skip} must be below --rows {rows}")
    rt = SiteRuntime(SiteConfig.from_dict(with_settings(site(assets, detector), settings or [])))
    names = list(rt.assets)
    logics = [AnalyzerLogic(rt, None, None, None, snapshots=False) for _ in names]
    rng = np.random.default_rng(seed)
    values = (rng.normal(size=(assets, rows)).cumsum(axis=1) * 0.01 + rng.normal(size=(assets, rows))).tolist()
    offset = outputs = 0
    cpu0 = wall0 = None
    start = skip - skip % per_call  # (the timed span starts at a call's first row)
    for r in range(0, rows, per_call):
        if r == start:
            gc.collect()
            cpu0, wall0 = time.thread_time(), time.perf_counter()
        k = min(per_call, rows - r)
        ts = [T0_NS + (r + j) * step_ns for j in range(k)]
        metrics = ["v"] * k
        for name, logic, vals in zip(names, logics, values):
            cols = ReadingColumns(name, "bench", 0, ts, metrics, vals[r:r + k], list(range(offset, offset + k)), True)
            offset += k
            outs, _ = logic.on_batch([[cols]])
            if cpu0 is not None:
                outputs += len(outs)
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0  # type: ignore[operator]
    timed, calls = assets * (rows - start), assets * len(range(start, rows, per_call))
    return {"benchmark": "asset_calls", "detector": "on" if detector else "off", "assets": assets,
            "per_call": per_call, "rate_hz": rate_hz, "settings": settings or [], "rows": rows, "skip": skip,
            "timed_readings": timed, "calls": calls, "outputs": outputs, "readings_per_s": round(timed / wall),
            "cpu_us_a_reading": round(cpu / timed * 1e6, 3), "cpu_us_a_call": round(cpu / calls * 1e6, 3)}


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least squares of ``y = a + b / k`` over ``(k, y)``: ``(a, b)``.

    >>> a, b = fit([(1, 12.0), (5, 4.0), (25, 2.4)]); round(a, 6), round(b, 6)
    (2.0, 10.0)
    """
    x = np.array([[1.0, 1.0 / k] for k, _ in points])
    y = np.array([v for _, v in points])
    (a, b), *_ = np.linalg.lstsq(x, y, rcond=None)
    return float(a), float(b)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.asset_calls", description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=200)
    ap.add_argument("--rows", type=int, default=6000, help="readings per asset in all (default: 6,000)")
    ap.add_argument("--skip", type=int, default=4000,
                    help="untimed readings per asset first (default 4,000: past the detector's 3,600-value rings)")
    ap.add_argument("--per-call", default="1,5,25", help="readings of one asset per call, comma-separated")
    ap.add_argument("--detector", default="on,off", help="the streaming detector ([scalar] enabled): on, off or both")
    ap.add_argument("--rate-hz", type=float, default=10.0,
                    help="readings a second of each asset (default 10, as benchmarks.scalar_ab kafka)")
    ap.add_argument("--set", action="append", default=[], metavar="PATH=JSON",
                    help="a site setting, e.g. scalar.block_s=60 or kpi.periods_s=[60] (repeat)")
    ap.add_argument("--json", help="append each measurement as a JSON line here")
    args = ap.parse_args(argv)
    try:
        ks = [int(k) for k in args.per_call.split(",")]
        dets = [{"on": True, "off": False}[d] for d in args.detector.split(",")]
    except (ValueError, KeyError):
        ap.error("--per-call takes integers, --detector on and/or off (comma-separated)")
    if any(k < 1 for k in ks) or args.assets < 1:
        ap.error("--per-call and --assets must be at least 1")
    if not 0 < args.rate_hz <= 1e6:
        ap.error("--rate-hz must be above 0 (and at most 1e6)")
    tune_gc()
    one_blas_thread()
    for det in dets:
        points = []
        for k in ks:
            m = measure(args.assets, k, args.rows, args.skip, det, rate_hz=args.rate_hz, settings=args.set)
            points.append((k, m["cpu_us_a_reading"]))
            emit_json(m, args.json)
            print(f"detector {m['detector']:3}  {k:4d} a call: {m['cpu_us_a_reading']:7.2f} CPU us a reading "
                  f"({m['readings_per_s']:,} readings/s, {m['cpu_us_a_call']:.1f} us a call)", file=sys.stderr)
        if len(set(ks)) >= 2:
            a, b = fit(points)
            emit_json({"benchmark": "asset_calls", "detector": "on" if det else "off", "fit": "a + b / k",
                       "us_a_reading": round(a, 3), "us_a_call": round(b, 3), "points": points}, args.json)
            print(f"detector {'on' if det else 'off':3}  fit: {a:.2f} us a reading + {b:.2f} us a call",
                  file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Throughput of the streaming detectors (:mod:`aiotstream.models.streaming`) in steady state.

``python -m benchmarks.streaming_throughput`` scores synthetic readings (correlated AR(1) channels, so
the baselines, PCA and every SPOT are live and re-fitting) with the default configuration and prints
rows/s and events/s (rows x channels) for each implementation, channel count and call pattern:

* ``block``: :meth:`StreamingDetector.update_block` on the whole array (what a flow step that
  batches an asset's rows would do);
* ``row``: :meth:`StreamingDetector.update` one row at a time (a flow step per reading row);
* ``assets`` (with ``--assets N``): N detectors in steady state, each given ``--call-rows`` rows in turn,
  round after round, as a flow's step gives each asset the rows of a poll: every call finds its
  detector's rings out of the CPU's caches (2,000 one-channel detectors hold about 300 MB), which the
  other two patterns, one detector whose state stays cached, never see. A change to how the state is
  laid out can look free there and cost here (2026-12-08: the rank test's sorted order as ring
  positions: 0.96-0.99x in ``block``, 0.63x in ``assets``, one channel).

The first ``--skip`` rows (warm-up, and the rings of ``spot_window`` values filled: a SPOT re-fit reads
what its ring holds, so rows before it is full are cheaper) are fed first and not timed. One process,
no I/O, BLAS on one thread (as a flow worker per core should run it: the PCA eigendecomposition
of 32 channels on OpenBLAS's default thread pool is 10x slower on a loaded 2-vCPU machine); the
machine's load changes the figures (the shared dev VM has 2 vCPUs and other jobs). The share of
rows with an alert open is printed: no learning (and no SPOT re-fit) happens while one is open, so
a run that alerts all the time would be too fast to mean anything.
"""
from __future__ import annotations

import os

for _k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads
    os.environ.setdefault(_k, "1")

import argparse
import json
import time

import numpy as np

from aiotstream.models import streaming as S


def readings(rows: int, channels: int, seed: int = 0, phi: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(channels, channels)) / np.sqrt(channels) + np.eye(channels)
    eps = rng.normal(size=(rows, channels)) @ mix
    x = np.empty_like(eps)
    x[0] = eps[0]
    for t in range(1, rows):  # AR(1)
        x[t] = phi * x[t - 1] + eps[t]
    return x * rng.uniform(0.1, 10.0, channels) + rng.uniform(-50, 50, channels)


def measure(impl: str, channels: int, rows: int, skip: int, pattern: str) -> dict[str, float]:
    x = readings(skip + rows, channels)
    det = S.make_pipeline("default", channels, impl=impl)
    det.update_block(x[:skip])
    body = x[skip:]
    t0 = time.perf_counter()
    if pattern == "block":
        alert = det.update_block(body).alert
    else:
        alert = np.array([det.update(r).alert for r in body])
    dt = time.perf_counter() - t0
    return {"impl": impl, "channels": channels, "pattern": pattern, "rows": rows,
            "rows_per_s": rows / dt, "events_per_s": rows * channels / dt, "alert_share": float(alert.mean())}


def measure_assets(impl: str, channels: int, assets: int, call_rows: int, rounds: int, skip: int) -> dict[str, float]:
    """``assets`` detectors past ``skip`` rows each, then ``rounds`` rounds of ``call_rows`` rows to each in
    turn (16 distinct series among them); rows/s over the timed rounds."""
    series = [readings(skip + rounds * call_rows, channels, seed=s) for s in range(min(assets, 16))]
    dets = [S.make_pipeline("default", channels, impl=impl) for _ in range(assets)]
    for i, det in enumerate(dets):
        det.update_block(series[i % len(series)][:skip])
    alerts = 0
    t0 = time.perf_counter()
    for r in range(rounds):
        lo = skip + r * call_rows
        for i, det in enumerate(dets):
            alerts += int(det.update_block(series[i % len(series)][lo:lo + call_rows]).alert.sum())
    dt = time.perf_counter() - t0
    rows = rounds * assets * call_rows
    return {"impl": impl, "channels": channels, "pattern": f"assets {assets} x {call_rows}", "rows": rows,
            "rows_per_s": rows / dt, "events_per_s": rows * channels / dt, "alert_share": alerts / rows}


def _report(r: dict) -> dict:
    """Print one measured case as a line; ``r`` back."""
    print(f"{r['impl']:<9} {r['channels']:>3} channels  {r['pattern']:<5} {r['rows_per_s']:>10,.0f} rows/s "
          f"{r['events_per_s']:>12,.0f} events/s  (alert open on {100 * r['alert_share']:.1f} % of rows)")
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.streaming_throughput", description=__doc__.splitlines()[0])
    ap.add_argument("--channels", default="1,8,32")
    ap.add_argument("--rows", type=int, default=20_000, help="timed rows (compiled); the Python reference gets a tenth")
    ap.add_argument("--skip", type=int, default=4_000,
                    help="untimed rows first (default 4,000: past the default spot_window of 3,600, steady state; "
                         "figures recorded before 2026-12-07 used 1,000)")
    ap.add_argument("--impl", default="python,compiled")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case; the fastest is reported (a loaded machine only slows down)")
    ap.add_argument("--simd", type=int, default=None, metavar="LEVEL",
                    help="the compiled kernel's SIMD level at most: 0 scalar, 1 AVX2, 2 AVX-512 (default: the CPU's best)")
    ap.add_argument("--assets", type=int, default=0,
                    help="also the 'assets' pattern with this many detectors (e.g. 2000; 0: not run)")
    ap.add_argument("--call-rows", type=int, default=30, help="assets: rows a call (30: 10 Hz readings, a 3 s poll)")
    ap.add_argument("--rounds", type=int, default=10, help="assets: timed rounds of calls")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.simd is not None:
        from aiotstream import _streaming
        level = _streaming.set_simd_level(args.simd)
        print(f"SIMD level {level} (asked {args.simd}; this CPU and build: {_streaming.SIMD_LEVEL})")
    out = []
    for impl in args.impl.split(","):
        for c in (int(v) for v in args.channels.split(",")):
            for pattern in ("block", "row"):
                rows = args.rows if impl == "compiled" else max(args.rows // 10, 100)
                r = max((measure(impl, c, rows, args.skip, pattern) for _ in range(args.repeat)),
                        key=lambda m: m["rows_per_s"])
                out.append(_report(r))
            if args.assets and impl == "compiled":  # (the reference is too slow for thousands of detectors)
                out.append(_report(measure_assets(impl, c, args.assets, args.call_rows, args.rounds, args.skip)))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

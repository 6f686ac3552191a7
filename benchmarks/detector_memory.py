"""Per-asset cost of each anomaly detector: memory held, recovery snapshot, time per row.

Issue 21's memory goal is <= 16 MB per 1,000 assets (16 KB per asset) for every default detector.
This measures each detector on its own, as a flow holds one per asset:

* ``held``: what N detectors hold after ``--rows`` rows each, from tracemalloc, per detector; what
  all assets share (the HST trees, built once a process) is built before the count starts and left
  out, as a flow of many assets pays it once.
* ``pickled``: a recovery snapshot's share (the pickled detector), bytes and time to pickle, after the
  warm-up rows; ``pickled_full``: the bytes of one detector fed ``--full-rows`` rows (past its rings'
  length, ``spot_window`` 3,600). A snapshot carries only the part of a ring that has been filled
  (``aiotstream.models.packed``), so a young detector pickles smaller than one in steady state.
* ``row``: time per row once warm (``score_learn`` for the window detectors; ``update`` for the
  scalar streaming detector).

    python -m benchmarks.detector_memory [--assets 50] [--rows 300] [--full-rows 4000] [--json FILE]

The waveform detectors see the default feature set's columns for 3 channels (36 columns); the
scalar streaming detector sees 1 and 8 channels. Rows are Gaussian noise: the state of every
detector here is allocated up front or bounded by its windows, so the figures held do not depend on
the data once the detector is warm.
"""
from __future__ import annotations

import argparse
import pickle
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from aiotstream.features import get_feature_set
from aiotstream.models.online import make_detector
from aiotstream.models.streaming import make_pipeline
from benchmarks.common import save

WINDOW_KINDS = ("calibrated", "zscore", "hst")
SCALAR_CHANNELS = (1, 8)


def measure(build: Callable[[], Any], step: Callable[[Any, np.ndarray], Any], rows: np.ndarray,
            assets: int, full_rows: int = 4000) -> dict[str, Any]:
    """One detector kind: ``build`` makes a detector, ``step`` feeds it one row; ``full_rows`` rows (``rows``
    again and again) go to one more detector, pickled in steady state."""
    warm = len(rows) // 2
    build()  # what a process builds once for all assets (the HST trees) is not an asset's cost
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    dets = []
    for _ in range(assets):
        d = build()
        for r in rows[:warm]:
            step(d, r)
        dets.append(d)
    held = (tracemalloc.get_traced_memory()[0] - before) / assets
    tracemalloc.stop()
    t = time.perf_counter()
    blobs = [pickle.dumps(d, protocol=pickle.HIGHEST_PROTOCOL) for d in dets]
    pickle_s = (time.perf_counter() - t) / assets
    few = dets[: max(1, min(assets, 10))]
    t = time.perf_counter()
    for d in few:
        for r in rows[warm:]:
            step(d, r)
    row_s = (time.perf_counter() - t) / (len(few) * (len(rows) - warm))
    full = build()
    for r in np.resize(rows, (full_rows, rows.shape[1])):
        step(full, r)
    return {"held_bytes_per_asset": round(held), "mb_per_1000_assets": round(held * 1000 / 1e6, 2),
            "pickled_bytes": len(blobs[0]), "pickle_ms": round(pickle_s * 1e3, 3),
            "pickled_full_bytes": len(pickle.dumps(full, protocol=pickle.HIGHEST_PROTOCOL)),
            "us_per_row": round(row_s * 1e6, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--assets", type=int, default=50, help="detectors built and measured per kind (default 50)")
    p.add_argument("--rows", type=int, default=300, help="rows per detector: half to warm up, half timed")
    p.add_argument("--full-rows", type=int, default=4000,
                   help="rows fed to the detector whose steady-state snapshot is measured (default 4,000)")
    p.add_argument("--json", help="result file (default benchmarks/results/<date>-<host>-detector_memory.json)")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    cols = get_feature_set("vibration-basic").columns(["x", "y", "z"])
    wave = rng.normal(1.0, 0.1, (args.rows, len(cols)))
    res: dict[str, Any] = {"assets": args.assets, "rows": args.rows, "full_rows": args.full_rows,
                           "window_columns": len(cols), "detectors": {}}
    print(f"{'detector':<24} {'held/asset':>12} {'MB/1000':>9} {'pickled':>9} {'pickle ms':>10} {'us/row':>8} "
          f"{'pickled full':>13}")
    cases: list[tuple[str, Callable[[], Any], Callable[[Any, np.ndarray], Any], np.ndarray]] = [
        (kind, lambda k=kind: make_detector(k, cols), lambda d, r: d.score_learn(r), wave) for kind in WINDOW_KINDS]
    for ch in SCALAR_CHANNELS:
        cases.append((f"streaming ({ch} channel{'s' if ch > 1 else ''})", lambda c=ch: make_pipeline("default", c),
                      lambda d, r: d.update(r), rng.normal(20.0, 1.0, (args.rows, ch))))
    for name, build, step, rows in cases:
        r = res["detectors"][name] = measure(build, step, rows, args.assets, args.full_rows)
        print(f"{name:<24} {r['held_bytes_per_asset']:>12,} {r['mb_per_1000_assets']:>9} {r['pickled_bytes']:>9,} "
              f"{r['pickle_ms']:>10} {r['us_per_row']:>8} {r['pickled_full_bytes']:>13,}", flush=True)
    print(f"saved {save('detector_memory', res, args.json)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

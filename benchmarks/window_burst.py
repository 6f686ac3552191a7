"""Closing bursts in process: every asset's window closes in the same poll; how long does that poll take?

At a live plant the assets' windows end together, so the poll that carries the frames past a window's end
runs every asset's window close: feature row, detector, drift, KPIs, alert book, records. That burst, not
the average, is what the latency's upper percentiles wait for. This runs the latency benchmark's site
(``--assets`` alike 3-axis 10 kHz assets, 1 s windows, no allowed lateness, waveforms only, the product's
default detector unless ``--model``) without Bytewax or a broker: each asset's frames are the simulator's
first ``--pool-s`` seconds of its signal, cycled (as ``benchmarks.latency`` sends them), encoded and decoded
by the flow's ingest every round, then handed to :class:`~aiotstream.dataflow.plant.AnalyzerLogic` one frame
per asset per round, with a wall clock that advances 102.4 ms a round, the garbage collector tuned as
``aiotstream run`` tunes it. From ``--from-s`` on it times each
round's per-asset step (decoding left out); a round that closes windows is a closing burst.

    python -m benchmarks.window_burst                                   # 667 assets, 40 s, bursts from 25 s
    python -m benchmarks.window_burst --tree /tmp/base --tree . --rounds 3   # checkouts side by side

Prints the median, min and max burst, the median of the rounds that close nothing, the bursts one by one
(plant second, ms), and a digest of the score records (asset, score, anomalous) so that two checkouts can be
seen to decide the same. With ``--tree`` each measurement runs in a child process whose ``aiotstream`` is
that checkout's (its kernels built or copied there), every checkout once a round.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
import types
from datetime import timedelta
from pathlib import Path
from typing import Any


def site(assets: int, model: str, stagger: bool = False) -> dict[str, Any]:
    """benchmarks.latency's site, spelled out (with --tree only aiotstream comes from the tree)."""
    return {
        "site": {"id": "wb", "name": "benchmark wb"},
        "asset_groups": [{"prefix": "p-", "count": assets, "width": 6}],
        "inputs": {"topics": ["wb.waveforms"], "tail": True},
        "window": {"allowed_lateness_s": 0, "idle_close_s": 2, **({"stagger": True} if stagger else {})},
        "model": {"kind": model},
    }


def measure(assets: int, duration_s: float, from_s: float, pool_s: float, model: str,
            stagger: bool = False) -> dict[str, Any]:
    import numpy as np
    import orjson

    from aiotstream.cli import tune_gc
    from aiotstream.codecs.frames import encode_frame
    from aiotstream.config import SiteConfig
    from aiotstream.dataflow import plant
    from aiotstream.dataflow.plant import AnalyzerLogic
    from aiotstream.pdm.ingest import Ingestor
    from aiotstream.pdm.runtime import SiteRuntime
    from aiotstream.records import SourceMessage
    from aiotstream.sim.plant import PlantSimulator

    cfg = SiteConfig.from_dict(site(assets, model, stagger))
    specs = cfg.all_assets()[:assets]
    ids = [a.id for a in specs]
    pool: dict[str, list[Any]] = {}
    for a, _seq, _t0, x in PlantSimulator(specs, duration_s=pool_s, n_faults=0, seed=5).frames():
        pool.setdefault(a, []).append(np.ascontiguousarray(x, dtype=np.float32))
    step = round(1024 / 10_000 * 1e9)
    e0 = 1_700_000_000 * 10**9
    ingest = Ingestor(SiteRuntime(cfg), now_ns=lambda: e0 + 10**13)
    clock = [1000.0]
    plant.time = types.SimpleNamespace(monotonic=lambda: clock[0])  # type: ignore[assignment]
    rt = SiteRuntime(cfg)
    logics = {a: AnalyzerLogic(rt, None, timedelta(seconds=2)) for a in ids}
    tune_gc()  # as `aiotstream run` does (start-up objects frozen, larger thresholds)
    digest = hashlib.sha256()
    bursts: list[tuple[float, float]] = []
    quiet: list[float] = []
    for k in range(int(duration_s * 1e9 // step)):
        clock[0] += step / 1e9
        msgs = [SourceMessage("wb.waveforms", 0, k * assets + i,
                              encode_frame(a, k, e0 + k * step, 10_000.0, pool[a][k % len(pool[a])]))
                for i, a in enumerate(ids)]
        items = ingest.decode_batch(msgs)
        t0 = time.perf_counter()
        closed = 0
        for a, item in items:
            for o in logics[a].on_batch([[item]])[0]:
                if o.kind == "score":
                    closed += 1
                    digest.update(orjson.dumps([o.record["asset"], o.record["score"], o.record["anomalous"]]))
        dt = time.perf_counter() - t0
        second = k * step / 1e9
        if second >= from_s:
            (bursts.append((round(second, 1), round(dt * 1e3, 1))) if closed else quiet.append(dt * 1e3))
    ms = [b for _, b in bursts]
    return {"assets": assets, "duration_s": duration_s, "from_s": from_s, "pool_s": pool_s, "model": model,
            **({"stagger": True} if stagger else {}),
            "timed_total_ms": round(sum(ms) + sum(quiet), 1),  # every timed round's step, closing or not
            "bursts": len(ms), "burst_median_ms": round(statistics.median(ms), 1) if ms else None,
            "burst_min_ms": min(ms, default=None), "burst_max_ms": max(ms, default=None),
            "quiet_median_ms": round(statistics.median(quiet), 2) if quiet else None,
            "scores_digest": digest.hexdigest()[:16], "per_burst": bursts}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=667, help="the latency benchmark's at half load")
    ap.add_argument("--duration", type=float, default=40.0, help="seconds of plant time")
    ap.add_argument("--from-s", type=float, default=25.0, help="time the rounds from this plant second on "
                    "(the detector's warm-up is its first 20 windows)")
    ap.add_argument("--pool-s", type=float, default=4.0, help="seconds of each asset's signal, cycled")
    ap.add_argument("--model", default="calibrated", help="[model] kind of the site (default: the product's)")
    ap.add_argument("--stagger", action="store_true",
                    help="the site with window.stagger: each asset's windows close in a poll of their own within "
                         "the second, so (nearly) every round closes some; compare the max and timed_total_ms")
    ap.add_argument("--tree", action="append", help="checkout to measure (repeat to compare); default: this one")
    ap.add_argument("--rounds", type=int, default=1, help="with --tree: measurements of each checkout")
    ap.add_argument("--json", help="append each measurement as a JSON line here")
    args = ap.parse_args(argv)
    own = ["--assets", str(args.assets), "--duration", str(args.duration), "--from-s", str(args.from_s),
           "--pool-s", str(args.pool_s), "--model", args.model, *(["--stagger"] if args.stagger else [])]
    if not args.tree:
        line = json.dumps(measure(args.assets, args.duration, args.from_s, args.pool_s, args.model, args.stagger))
        print(line, flush=True)
        if args.json:  # (with --tree, tree_rounds appends each checkout's)
            with open(args.json, "a") as fh:
                fh.write(line + "\n")
        return 0
    from benchmarks.common import tree_rounds  # (only here: a child runs this file without the package)

    tree_rounds(__file__, own, [Path(t).resolve() for t in args.tree], args.rounds, args.json, "burst_median_ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

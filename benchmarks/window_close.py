"""The per-asset frame and window-close path on its own, without a broker: what a window's close costs.

The plant simulator's frames (N assets x 3 channels x 10 kHz, 1024-sample frames) are decoded once by the
flow's own ingest; then every asset's frames go through :class:`~aiotstream.dataflow.plant.AnalyzerLogic` one
frame per call, round by round in time (as a live poll hands them over at the burst of a window's end), with a
wall clock that advances 102.4 ms a round (so the expected readings stream stops being waited for, as in the
latency benchmark). Windows of 1 s, no allowed lateness, the product's default detector (``calibrated``;
``--model zscore`` for the figures recorded before 2026-12-07). Each repeat starts from fresh state; the
figure is the best repeat's time (``us_per_window``: that time over the windows, their frames' calls
included), and a digest of the score records (asset, window, score, anomalous, drift,
values) shows whether two checkouts decided the same.

    python -m benchmarks.window_close --assets 100 --duration 30 --repeat 5
    python -m benchmarks.window_close --tree /tmp/base --tree . --rounds 5    # checkouts side by side

With ``--tree`` each measurement runs in a child process whose ``aiotstream`` is that checkout's (its kernels
built or copied there), every checkout once a round; the summary gives each one's median and the per-round
ratios to the first.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
import types
from datetime import timedelta
from pathlib import Path
from typing import Any


def measure(assets: int, duration_s: float, repeat: int, model: str = "calibrated") -> dict[str, Any]:
    """Best time of ``repeat`` runs over the same decoded frames, and what they decided."""
    import orjson

    from aiotstream.config import SiteConfig
    from aiotstream.dataflow import plant
    from aiotstream.dataflow.plant import AnalyzerLogic
    from aiotstream.pdm.ingest import Ingestor
    from aiotstream.pdm.runtime import SiteRuntime
    from aiotstream.records import SourceMessage
    from aiotstream.sim.plant import PlantSimulator

    # (benchmarks.workload.site_dict's site, spelled out: with --tree only aiotstream comes from the tree)
    cfg = SiteConfig.from_dict({
        "site": {"id": "wc", "name": "benchmark wc"},
        "asset_groups": [{"prefix": "p-", "count": assets, "width": 6}],
        "inputs": {"topics": ["wc.waveforms"], "tail": True},
        "window": {"allowed_lateness_s": 0, "idle_close_s": 2},
        "model": {"kind": model},
    })
    sim = PlantSimulator(cfg.all_assets()[:assets], duration_s=duration_s, seed=5, n_faults=0)
    msgs = [SourceMessage("wc.waveforms", 0, i, m.payload) for i, m in enumerate(sim.messages())
            if m.stream == "waveform"]
    by_asset: dict[str, list[Any]] = {}
    for asset, item in Ingestor(SiteRuntime(cfg), now_ns=lambda: sim.end_ns + 10**13).decode_batch(msgs):
        by_asset.setdefault(asset, []).append(item)
    rounds = max(len(v) for v in by_asset.values())
    clock = [0.0]
    plant.time = types.SimpleNamespace(monotonic=lambda: clock[0])  # type: ignore[assignment]
    best, outs = None, []
    for _ in range(repeat):
        logics = {a: AnalyzerLogic(SiteRuntime(cfg), None, timedelta(seconds=2)) for a in by_asset}
        clock[0], outs = 1000.0, []
        t0 = time.perf_counter()
        for k in range(rounds):
            clock[0] += 0.1024
            for a, items in by_asset.items():
                if k < len(items):
                    outs += logics[a].on_batch([[items[k]]])[0]
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    scores = sorted(((o.record["asset"], o.record["window"]["start_ns"], o.record["score"], o.record["anomalous"],
                      o.record["drift"], o.record["values"]) for o in outs if o.kind == "score"),
                    key=lambda r: (r[0], r[1]))
    return {"assets": assets, "duration_s": duration_s, "model": model, "frames": sum(map(len, by_asset.values())),
            "windows": len(scores), "outputs": len(outs), "best_s": round(best or 0.0, 4),
            "us_per_window": round((best or 0.0) / max(1, len(scores)) * 1e6, 1),
            "scores_digest": hashlib.sha256(orjson.dumps(scores)).hexdigest()[:16]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=100)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of plant time")
    ap.add_argument("--repeat", type=int, default=5, help="runs a measurement (its best counts)")
    ap.add_argument("--model", default="calibrated", help="[model] kind of the site (default: the product's)")
    ap.add_argument("--tree", action="append", help="checkout to measure (repeat to compare); default: this one")
    ap.add_argument("--rounds", type=int, default=1, help="with --tree: measurements of each checkout")
    ap.add_argument("--json", help="append each measurement as a JSON line here")
    args = ap.parse_args(argv)
    if not args.tree:
        rec = measure(args.assets, args.duration, args.repeat, args.model)
        print(json.dumps(rec), flush=True)
        return 0
    from benchmarks.common import tree_rounds  # (only here: a child runs this file without the package)

    tree_rounds(__file__, ["--assets", str(args.assets), "--duration", str(args.duration), "--repeat", str(args.repeat),
                           "--model", args.model], [Path(t).resolve() for t in args.tree], args.rounds, args.json,
                "best_s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

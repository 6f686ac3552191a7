"""JSON scalar readings of many one-channel assets through the plant flow's decode and per-asset step, in-process.

The shape of ``benchmarks.scalar_ab kafka`` (``benchmarks.scalar``'s ``pm-readings``: ``--keys`` assets x
``--rate`` Hz x ``--duration`` s of ``{"asset", "ts", "metric", "value"}`` messages over 6 partitions)
without the broker or Bytewax: poll batches of ``--batch`` messages go through
``Ingestor.decode_grouped`` and each asset's list to its ``AssetAnalyzer.on_items``, as the flow's
``analyze`` step gets them (about one reading per asset and batch), then every asset is flushed. The
default ``[scalar]`` detector is on. The garbage collector is tuned as ``aiotstream run`` does. Reports
CPU µs per reading (process time), so a loaded machine changes it less than a wall-clock rate.

``python -m benchmarks.scalar_json`` (``--profile FILE`` for a cProfile).
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scalar_json", description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--profile", default=None)
    ap.add_argument("--json", default=None, help="append the result as one JSON line to this file")
    args = ap.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import numpy as np

    from aiotstream.cli import tune_gc
    from aiotstream.codecs import encode_reading
    from aiotstream.config import SiteConfig
    from aiotstream.pdm.asset import AssetAnalyzer
    from aiotstream.pdm.ingest import Ingestor
    from aiotstream.pdm.runtime import SiteRuntime
    from aiotstream.records import SourceMessage

    names = [f"s-{i:05d}" for i in range(args.keys)]
    cfg = SiteConfig.from_dict({"site": {"id": "bench-scalar-json"}, "assets": [{"id": n} for n in names],
                                "inputs": {"tail": False}})
    rt = SiteRuntime(cfg)
    ing = Ingestor(rt, live=False)
    rng = np.random.default_rng(3)
    start = 1_767_225_600 * 1_000_000_000
    dt = round(1e9 / args.rate)
    msgs: list[SourceMessage] = []
    offsets = [0] * 6
    for s in range(int(args.rate * args.duration)):
        ts = start + s * dt
        for i, (n, v) in enumerate(zip(names, np.round(20.0 + rng.normal(0, 1, args.keys), 3).tolist())):
            p = i % 6
            msgs.append(SourceMessage("bench.scalar", p, offsets[p], encode_reading(n, ts, "temperature", v)))
            offsets[p] += 1
    analyzers: dict[str, AssetAnalyzer] = {}
    outputs = 0

    def go() -> None:
        nonlocal outputs
        for b in range(0, len(msgs), args.batch):
            for x in ing.decode_grouped(msgs[b : b + args.batch]):
                if isinstance(x, tuple):
                    a, items = x
                    z = analyzers.get(a)
                    if z is None:
                        z = analyzers[a] = AssetAnalyzer(rt, a)
                    outputs += len(z.on_items(items, None))
                else:
                    outputs += 1
        for z in analyzers.values():
            outputs += len(z.flush())

    tune_gc()
    c0, t0 = time.process_time(), time.perf_counter()
    if args.profile:
        import cProfile

        cProfile.runctx("go()", globals(), {"go": go}, args.profile)
    else:
        go()
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    res = {"readings": len(msgs), "outputs": outputs, "cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
           "cpu_us_per_reading": round(cpu / len(msgs) * 1e6, 2), "load_avg": os.getloadavg()[0]}
    print(f"{len(msgs):,} JSON readings ({args.keys} assets): {res['cpu_us_per_reading']} CPU µs per reading "
          f"({round(len(msgs) / cpu):,} per CPU s), {outputs:,} outputs; load {res['load_avg']:.1f}")
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

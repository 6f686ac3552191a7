"""Scalar readings through the plant flow with the streaming detector on or off (issue 17), in-process.

A wide Parquet file (``--assets`` assets x ``--channels`` channels x ``--seconds`` rows at 1 Hz, correlated
AR(1) noise) is replayed by the plant dataflow as ``aiotstream replay`` does (``build_flow`` with a
``FileSource``, one worker, no broker); ``[scalar] readings_only = true``. Outputs go to an in-process
sink that only counts them (no JSON encoding, no broker), so the figure is the flow's own cost: decode of
the table rows, windows, the per-asset step, and with ``--detector on`` the rows, the detector and its
records. Events = readings (rows x channels). Long enough (default 1,500 rows per asset) that every
detector calibrates and re-fits (steady state, not only warm-up).

``python -m benchmarks.scalar_flow --detector on``; ``--detector off`` for the flow without it;
``--profile FILE`` writes a cProfile of the run. The garbage collector is tuned as ``aiotstream run`` and
``replay`` tune it (:func:`aiotstream.cli.tune_gc`: start-up objects frozen, larger thresholds), and BLAS runs
on one thread as there (:func:`aiotstream.cli.one_blas_thread`; before 2026-12-05 morning this module set
``OPENBLAS_NUM_THREADS`` after numpy was imported, too late to act); ``--gc default`` keeps CPython's
defaults for both (the figures recorded before 2026-12-04 evening were taken so).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

START = 1_767_225_600 * 1_000_000_000


def make_table(path: Path, assets: int, channels: int, seconds: int, seed: int = 1) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n = assets * seconds
    ts = np.repeat(START + np.arange(seconds, dtype=np.int64) * 1_000_000_000, assets)
    names = [f"a-{i:05d}" for i in range(assets)]
    cols: dict[str, object] = {"ts": ts, "asset": np.tile(np.array(names, dtype=object), seconds)}
    common = rng.normal(size=n)
    for c in range(channels):
        e = 0.6 * common + 0.8 * rng.normal(size=n)
        x = np.empty(n)
        prev = np.zeros(assets)
        for s in range(seconds):  # AR(1) per asset, phi 0.5
            prev = 0.5 * prev + e[s * assets : (s + 1) * assets]
            x[s * assets : (s + 1) * assets] = prev
        cols[f"c{c}"] = 50.0 + 10 * c + x
    pq.write_table(pa.table(cols), path, row_group_size=65_536)
    return n * channels


def site(path: Path, assets: int, channels: int, detector: bool, poll_batch: int = 1000) -> object:
    from aiotstream.config import SiteConfig

    return SiteConfig.from_dict(
        {
            "site": {"id": "bench-scalar-flow"},
            "assets": [{"id": f"a-{i:05d}"} for i in range(assets)],
            "inputs": {
                "tail": False,
                "poll_batch": poll_batch,
                "files": {
                    "paths": [str(path)],
                    "columns": {"ts": "ts", "asset": "asset", "metrics": [f"c{c}" for c in range(channels)]},
                },
            },
            "model": {"drift_detector": "none"},
            "scalar": {"enabled": detector, "readings_only": True},
        }
    )


def run(path: Path, assets: int, channels: int, detector: bool, profile: str | None,
        gc_mode: str = "cli", poll_batch: int = 1000, digest: bool = False) -> dict[str, object]:
    import hashlib
    from collections import Counter

    import orjson

    from aiotstream.dataflow import build_flow
    from aiotstream.dataflow.run import cli_main
    from aiotstream.io.files import CallbackSink
    from aiotstream.io.replay import FileSource

    cfg = site(path, assets, channels, detector, poll_batch)
    kinds: Counter[str] = Counter()

    h = hashlib.sha256()

    def count(items: list) -> None:
        for o in items:
            kinds[o.kind] += 1
            if digest and o.kind != "audit":  # every record in emission order, without wall-clock times
                rec = {k: v for k, v in o.record.items() if k not in ("produced_at", "code_version")}
                h.update(orjson.dumps([o.kind, o.key, rec], option=orjson.OPT_SORT_KEYS))

    assert cfg.inputs.files is not None
    flow = build_flow(
        cfg,
        FileSource(cfg.inputs.files, cfg.inputs.poll_batch),
        CallbackSink(count),
        tail=False,
        snapshots=False,
    )
    if gc_mode == "cli":  # as the CLI's run/replay do, after building the flow
        from aiotstream.cli import one_blas_thread, tune_gc

        tune_gc()
        one_blas_thread()
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    t0, c0 = time.perf_counter(), time.process_time()
    from datetime import timedelta

    cli_main(flow, workers_per_process=1, epoch_interval=timedelta(seconds=10))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if prof is not None:
        prof.disable()
        prof.dump_stats(profile)
    out: dict[str, object] = {"wall_s": wall, "cpu_s": cpu, "outputs": dict(kinds)}
    if digest:
        out["digest"] = h.hexdigest()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scalar_flow", description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=100)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=1500)
    ap.add_argument("--detector", choices=("on", "off"), default="on")
    ap.add_argument("--profile", default=None, help="write a cProfile of the run here")
    ap.add_argument("--gc", choices=("cli", "default"), default="cli",
                    help="cli: tune the garbage collector as `aiotstream run` does (default); default: CPython's")
    ap.add_argument("--poll-batch", type=int, default=1000,
                    help="[inputs] poll_batch: rows per poll of the file (the default configuration's 1000; "
                         "before 2026-12-05 a table's poll batch counted readings: --poll-batch 125 is the "
                         "old default's batching here, 8 readings a row)")
    ap.add_argument("--digest", action="store_true",
                    help="print a sha256 of every output record (without produced_at and code_version, which "
                         "names the tree's commit) in emission order: the "
                         "same on two trees means the same outputs (it slows the run: not for timing). The "
                         "audit record (wall clock) is left out, and the table is written to one fixed path, "
                         "<tmp>/bench-scalar-flow-digest, since the config hash in every id includes it")
    ap.add_argument("--json", default=None, help="append the result as one JSON line to this file")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-scalar-flow-") as tmp:
        path = Path(tmp) / "wide.parquet"
        if args.digest:
            path = Path(tempfile.gettempdir()) / "bench-scalar-flow-digest" / "wide.parquet"
            path.parent.mkdir(exist_ok=True)
        events = make_table(path, args.assets, args.channels, args.seconds)
        r = run(path, args.assets, args.channels, args.detector == "on", args.profile, args.gc, args.poll_batch,
                args.digest)
    res = {
        "detector": args.detector,
        "gc": args.gc,
        "poll_batch": args.poll_batch,
        "assets": args.assets,
        "channels": args.channels,
        "seconds": args.seconds,
        "events": events,
        **r,
        "events_per_s_wall": round(events / r["wall_s"]),
        "events_per_cpu_s": round(events / r["cpu_s"]),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "load_avg": os.getloadavg(),
        "command": "python -m benchmarks.scalar_flow " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print(
        f"{events:,} readings ({args.assets} assets x {args.channels} channels x {args.seconds} s), detector "
        f"{args.detector}, gc {args.gc}: {r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU -> {res['events_per_s_wall']:,} "
        f"events/s (wall), {res['events_per_cpu_s']:,} per CPU s; outputs {r['outputs']}; load "
        f"{res['load_avg'][0]:.1f}" + (f"; digest {r['digest']}" if args.digest else "")
    )
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Where a flow's time goes: a profile of one ``aiotstream run --once`` over a benchmark workload.

    python -m benchmarks.profile_flow [--flow waveform|pm-readings|building] [--sampler py-spy|cprofile]
                                      [--assets N] [--duration S] [--rate-hz R] [--top 25]
                                      [--out FILE]
    python -m benchmarks.profile_flow --read FILE.raw      # summarise a py-spy file again

Same broker, workloads and runner as ``bench e2e`` and ``benchmarks.building`` (benchmarks/flowrun.py
with ``BENCH_PYSPY`` or ``BENCH_PROFILE``). ``py-spy`` (the default; ``pip install py-spy``) samples the
flow process 100 times a second without pausing it, idle time included, so the shares are those of the
real run: it prints the share of samples per thread, where the worker thread (Bytewax's steps) spends
them by dataflow step and by function (own time), and the idle share. ``cprofile`` slows Python-heavy
code down, so read its shares, not its rate.
"""
from __future__ import annotations

import argparse
import io
import os
import pstats
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

STEPS = {  # a frame of the worker's stack -> the dataflow step (or runtime part) it belongs to
    "next_batch": "source (poll, message blocks)",
    "decode_grouped": "decode", "decode_blocks": "decode", "_decode_block": "decode",
    "BuildingIngest.decode": "decode",
    "AnalyzerLogic.on_eof": "end of input (open windows flushed)",
    "ZoneLogic.on_eof": "end of input (open windows flushed)",
    "AnalyzerLogic.on_batch": "analyze (windows, features, detectors, decisions)",
    "AnalyzerLogic.notify_at": "analyze (windows, features, detectors, decisions)",
    "ZoneLogic.on_batch": "zones (intervals, baselines, decisions)",
    "RollupLogic.on_batch": "roll-ups", "write_batch": "sink (encode, produce, wait for the broker)",
    "snapshot": "snapshots",
}
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*)(?::(?P<line>\d+))?\)$")


def _func(frame: str) -> str:
    """``Cls.meth (path/to/mod.py:12)`` -> ``Cls.meth (mod.py)``: one entry per function, not per line."""
    m = _FRAME.match(frame)
    return f"{m['func']} ({Path(m['file']).name})" if m else frame


def summarise(raw: str, top: int = 25) -> str:
    """A report of py-spy's collapsed stacks (``--format raw``: ``thread;frame;frame count`` per line)."""
    threads: Counter[str] = Counter()
    steps: Counter[str] = Counter()
    own: Counter[str] = Counter()
    worker = 0
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        count = int(n)
        threads[frames[0]] += count
        if not any(f.startswith(("_run_module_as_main", "<module>")) for f in frames[:2]):
            continue  # librdkafka's and the metrics server's threads: reported per thread only
        worker += count
        step = next((STEPS[k] for f in frames for k in STEPS if f.startswith(k) or f.split(" (")[0].endswith(
            "." + k)), None)
        if step is None and frames[-1].startswith("_run_flow.<locals>.run"):
            step = "in Bytewax (Rust: scheduling, progress, exchange) or idle"
        steps[step or "other Python"] += count
        own[_func(frames[-1])] += count
    total = sum(threads.values())
    out = [f"{total} samples; threads: " + ", ".join(f"{_func(t)} {n / total:.0%}" for t, n in threads.most_common(6))]
    if worker:
        out.append(f"\nthe worker thread ({worker} samples) by dataflow step:")
        out += [f"  {n / worker:6.1%}  {s}" for s, n in steps.most_common()]
        out.append(f"\nthe worker thread by function (own time), top {top}:")
        out += [f"  {n / worker:6.1%}  {f}" for f, n in own.most_common(top)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flow", choices=["waveform", "pm-readings", "building"], default="waveform")
    ap.add_argument("--sampler", choices=["py-spy", "cprofile"], default="py-spy")
    ap.add_argument("--assets", type=int, default=40, help="waveform assets, or scalar keys / meters (x 50)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of event time")
    ap.add_argument("--model", choices=["calibrated", "zscore", "hst"], default="calibrated",
                    help="waveform flow's model (the product's default; profiles before 2026-12-06 ran zscore)")
    ap.add_argument("--rate-hz", type=float, default=10.0,
                    help="pm-readings: readings a second of each key (1: a plant of slow sensors)")
    ap.add_argument("--epoch-s", type=float, default=1.0)
    ap.add_argument("--poll-batch", type=int, help="pm-readings: inputs.poll_batch (default: the benchmark's, "
                                                   "benchmarks.scalar.POLL_BATCH)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--out", help="keep the profile here (py-spy: collapsed stacks; cprofile: pstats)")
    ap.add_argument("--read", metavar="FILE", help="only summarise this py-spy file")
    args = ap.parse_args(argv)
    if args.read:
        print(summarise(Path(args.read).read_text(), args.top))
        return 0
    from benchmarks.flowrun import pyspy_path

    if args.sampler == "py-spy" and not pyspy_path():
        print("profile_flow: py-spy is not on PATH (pip install py-spy), or use --sampler cprofile",
              file=sys.stderr)
        return 2
    from aiotstream.io.broker import TansuBroker
    from benchmarks import building, scaling
    from benchmarks.scalar import measure_scalar
    from benchmarks.workload import preload_scalars, preload_waveforms

    env = "BENCH_PYSPY" if args.sampler == "py-spy" else "BENCH_PROFILE"
    with tempfile.TemporaryDirectory() as tmp, TansuBroker() as broker:
        prof = Path(args.out or Path(tmp) / "flow.prof").resolve()
        b = broker.bootstrap
        if args.flow == "waveform":
            data = preload_waveforms(b, assets=args.assets, duration_s=args.duration, partitions=6,
                                     slice_assets=1, slice_duration_s=1.0)
        elif args.flow == "pm-readings":
            data = preload_scalars(b, keys=args.assets * 50, rate_hz=args.rate_hz, duration_s=args.duration,
                                   partitions=3)
        else:
            data = building.preload_building(b, keys=args.assets * 50, duration_s=args.duration, partitions=3)
        os.environ[env] = str(prof)
        try:
            if args.flow == "waveform":
                r = scaling.measure(b, Path(tmp), data, 1, epoch_s=args.epoch_s, model=args.model,
                                    label="-profile", partitions=6)
                rate = f"{r['samples_per_s'] / 1e6:.2f} M samples/s"
            elif args.flow == "pm-readings":
                r = measure_scalar(b, Path(tmp), data, "pm-readings", tag="-profile", poll_batch=args.poll_batch)
                rate = f"{r['events_per_s']:,} events/s"
            else:
                r = building.measure(b, Path(tmp), data, label="-profile")
                rate = f"{r['events_per_s']:,} events/s"
        finally:
            del os.environ[env]
        print(f"{args.flow}, {args.assets} x {args.duration:g} s: {rate} while profiled ({args.sampler}), "
              f"{r['cpu_s']:.1f} CPU s")
        if args.sampler == "py-spy":
            print(summarise(prof.read_text(), args.top))
            return 0
        for key in ("cumulative", "tottime"):
            buf = io.StringIO()
            pstats.Stats(str(prof), stream=buf).sort_stats(key).print_stats(args.top)
            print(f"\n--- by {key} ---")
            print("\n".join(line for line in buf.getvalue().splitlines() if line.strip())[:12000])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where the flow's time goes: cProfile of one ``aiotstream run --once`` over the waveform workload.

    python -m benchmarks.profile_flow --assets 40 --duration 60 --model zscore [--top 25] [--out FILE]

Same broker, workload and runner as ``bench e2e`` (benchmarks/flowrun.py with ``BENCH_PROFILE``);
prints the functions with the most cumulative and own time. cProfile slows Python-heavy code
down, so read the shares, not the rate.
"""
from __future__ import annotations

import argparse
import io
import os
import pstats
import sys
import tempfile
from pathlib import Path

from aiotstream.io.broker import TansuBroker
from benchmarks import scaling
from benchmarks.workload import preload_waveforms


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=40)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--model", choices=["zscore", "hst"], default="zscore")
    ap.add_argument("--epoch-s", type=float, default=1.0)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--out", help="keep the pstats file here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, TansuBroker() as broker:
        prof = Path(args.out or Path(tmp) / "flow.prof").resolve()
        data = preload_waveforms(broker.bootstrap, assets=args.assets, duration_s=args.duration, partitions=6,
                                 slice_assets=1, slice_duration_s=1.0)
        os.environ["BENCH_PROFILE"] = str(prof)
        try:
            r = scaling.measure(broker.bootstrap, Path(tmp), data, 1, epoch_s=args.epoch_s, model=args.model,
                                label="-profile", partitions=6)
        finally:
            del os.environ["BENCH_PROFILE"]
        print(f"{args.assets} assets x {args.duration:g} s, model {args.model}, epoch {args.epoch_s:g} s: "
              f"{r['samples_per_s'] / 1e6:.2f} M samples/s under cProfile, {r['cpu_s']:.1f} CPU s")
        for key in ("cumulative", "tottime"):
            buf = io.StringIO()
            pstats.Stats(str(prof), stream=buf).sort_stats(key).print_stats(args.top)
            print(f"\n--- by {key} ---")
            print("\n".join(line for line in buf.getvalue().splitlines() if line.strip())[:12000])
    return 0


if __name__ == "__main__":
    sys.exit(main())

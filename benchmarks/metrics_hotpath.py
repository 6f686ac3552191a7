"""What the metrics' hot-path calls cost a flow, isolated: the same replay run in this process (Bytewax's
``run_main``, one worker) with the metrics-only calls on (A) and turned into no-ops (B), in turn A B A B ...,
timed with ``time.process_time``. The calls are :meth:`RunStats.observe_many`, ``level``, ``watermark`` and
:func:`aiotstream.decisions.effects.report_open`; what stays in B is what the summary line needed anyway (and
the integer adds per decoded record, which cannot be switched off). So (A - B) / B is the instrumentation's
share of the flow's CPU, without the noise of separate processes on a shared machine.

    python -m benchmarks.metrics_hotpath --site S --pairs 7 FILE...
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from unittest import mock


def run(site: str, files: list[str]) -> float:
    from bytewax.testing import run_main

    from aiotstream.config import FileInput, SiteConfig
    from aiotstream.dataflow import build_flow
    from aiotstream.io.files import JsonlSink
    from aiotstream.io.replay import FileSource
    from aiotstream.runstats import STATS

    cfg = SiteConfig.load(site)
    STATS.reset()
    with tempfile.TemporaryDirectory() as out:
        source = FileSource(FileInput(paths=files, speed=0), cfg.inputs.poll_batch)
        flow = build_flow(cfg, source, JsonlSink(out), tail=False, snapshots=False)
        t0 = time.process_time()
        run_main(flow)
        return time.process_time() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", required=True)
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    from aiotstream.decisions import effects
    from aiotstream.runstats import RunStats

    def off() -> ExitStack:
        stack = ExitStack()
        for name in ("observe_many", "level", "watermark"):
            stack.enter_context(mock.patch.object(RunStats, name, lambda *a, **k: None))
        stack.enter_context(mock.patch.object(effects, "report_open", lambda *a, **k: None))
        return stack

    run(args.site, args.files)  # warm-up
    on_s, off_s, ratios = [], [], []
    for i in range(args.pairs):
        a = run(args.site, args.files)
        with off():
            b = run(args.site, args.files)
        on_s.append(a)
        off_s.append(b)
        ratios.append(a / b)
        print(f"pair {i + 1}: metrics calls on {a:.3f} s CPU, off {b:.3f} s; on/off {a / b:.3f}", flush=True)
    print(f"median CPU on {statistics.median(on_s):.3f} s, off {statistics.median(off_s):.3f} s; on/off min "
          f"{min(ratios):.3f} median {statistics.median(ratios):.3f} max {max(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Metrics overhead, side by side: the same ``aiotstream`` flow command from two checkouts, run in turn
A B A B ..., each a whole process timed from outside (its CPU seconds from ``wait4``, and wall seconds).

A is the checkout *without* the instrumentation (``--base``, e.g. ``git archive <commit> | tar -x -C DIR``
with the compiled kernels copied in), run without ``--metrics-port``; B is this checkout with
``--metrics-port 0``, scraped every ``--every`` seconds from this process (as a Prometheus would, harder).
``OUT`` in the command is replaced by a fresh output directory per run.

    python benchmarks/metrics_overhead.py --base /tmp/base --pairs 7 -- replay W.bin R.jsonl --site S --out-dir OUT

Prints one line per run and then: the median CPU and wall seconds of A and B, and the per-pair CPU ratio
B/A (min, median, max): above 1 is what the metrics cost.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def run_once(checkout: Path, cmd: list[str], metrics: bool, every: float) -> tuple[float, float, int]:
    """(CPU s, wall s, scrapes) of one run of ``cmd`` from ``checkout``."""
    with tempfile.TemporaryDirectory() as out:
        argv = [sys.executable, "-m", "aiotstream.cli", *[out if a == "OUT" else a for a in cmd]]
        if metrics:
            argv += ["--metrics-port", "0"]
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=checkout, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        assert proc.stderr is not None
        url: list[str] = []
        scrapes = 0
        done = threading.Event()

        def scrape() -> None:
            nonlocal scrapes
            while not done.wait(every):
                if url:
                    try:
                        with urllib.request.urlopen(url[0], timeout=5) as r:
                            r.read()
                        scrapes += 1
                    except OSError:
                        pass

        t = threading.Thread(target=scrape, daemon=True)
        t.start()
        tail = []
        for line in proc.stderr:
            if not url and (m := re.search(r"metrics on (http://\S+/metrics)", line)):
                url.append(m.group(1))
            tail = (tail + [line])[-3:]
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        done.set()
        t.join(6)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"exit {proc.returncode}: {''.join(tail)}")
        return usage.ru_utime + usage.ru_stime, wall, scrapes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True, help="checkout without the instrumentation (A)")
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("--every", type=float, default=1.0, help="seconds between scrapes of B (default 1)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then the aiotstream arguments")
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    run_once(HERE, cmd, True, args.every)  # warm-up (page cache, imports) for both
    run_once(args.base, cmd, False, args.every)
    a_cpu, b_cpu, a_wall, b_wall, ratios = [], [], [], [], []
    for i in range(args.pairs):
        ca, wa, _ = run_once(args.base, cmd, False, args.every)
        cb, wb, n = run_once(HERE, cmd, True, args.every)
        a_cpu.append(ca)
        b_cpu.append(cb)
        a_wall.append(wa)
        b_wall.append(wb)
        ratios.append(cb / ca)
        print(f"pair {i + 1}: A {ca:.3f} s CPU {wa:.3f} s wall; B {cb:.3f} s CPU {wb:.3f} s wall, {n} scrapes; "
              f"B/A {cb / ca:.3f}", flush=True)
    print(f"median CPU A {statistics.median(a_cpu):.3f} s, B {statistics.median(b_cpu):.3f} s; wall A "
          f"{statistics.median(a_wall):.3f} s, B {statistics.median(b_wall):.3f} s; CPU ratio B/A min "
          f"{min(ratios):.3f} median {statistics.median(ratios):.3f} max {max(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fuzz every input kind through the real code paths: escapes, lost inputs and memory per kind.

::

    python -m benchmarks.fuzz [--kind all|frames|readings|...] [--cases 100000] [--seed 1] [--json OUT]

Each kind runs in its own subprocess (so its peak RSS is its own) and prints one line:
cases, escapes (exceptions that left the dead-letter path) with the first few distinct
ones, lost inputs (in != out + dead letters), invalid records (not valid against the
output schema), peak RSS, RSS growth from the first tenth of the run to its end, and
seconds. The exit code is 1 if any kind had an escape, a lost input or an invalid record.

**Registry.** :data:`KINDS` maps a kind to its runner, a module-level function
``run(kind: str, cases: int, seed: int) -> dict`` returning at least ``kind, cases,
escapes, escape_examples (list[str]), lost, seconds`` (this harness adds the memory
figures). ``frames`` and ``readings`` are in :mod:`benchmarks.fuzz_data`; if
``benchmarks/fuzz_control.py`` exists, its ``KINDS`` dict (configs, control messages,
feedback, acks, manifests) is merged in, and :mod:`benchmarks.fuzz_auth`'s ``signed`` (control, feedback
and ack messages of a site with ``[auth]``, signed well and badly).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.fuzz_data import KINDS as DATA_KINDS

Runner = Callable[[str, int, int], dict[str, Any]]
KINDS: dict[str, Runner] = dict(DATA_KINDS)
try:
    KINDS.update(importlib.import_module("benchmarks.fuzz_control").KINDS)
except ModuleNotFoundError as exc:  # not written yet: the data kinds alone
    if exc.name != "benchmarks.fuzz_control":
        raise
KINDS.update(importlib.import_module("benchmarks.fuzz_auth").KINDS)  # signed messages ([auth])

ROOT = Path(__file__).resolve().parent.parent


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _peak_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


class _Sampler(threading.Thread):
    """RSS every 0.2 s while the runner runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), _rss_kb()))
            self.stop.wait(0.2)


def child(kind: str, cases: int, seed: int) -> dict[str, Any]:
    """Run one kind in this process and add the memory figures."""
    sampler = _Sampler()
    sampler.start()
    t0 = time.monotonic()
    result = KINDS[kind](kind, cases, seed)
    sampler.stop.set()
    sampler.join()
    t1 = time.monotonic()
    s = sampler.samples + [(t1, _rss_kb())]
    early = [kb for t, kb in s if t <= t0 + (t1 - t0) * 0.1] or [s[0][1]]
    result.update(peak_rss_mb=round(_peak_kb() / 1024, 1), rss_early_mb=round(max(early) / 1024, 1),
                  rss_end_mb=round(s[-1][1] / 1024, 1), rss_growth_mb=round((s[-1][1] - max(early)) / 1024, 1))
    return result


def run_kind(kind: str, cases: int, seed: int) -> dict[str, Any]:
    """One kind in a subprocess (stderr passes through for progress); its result."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.fuzz", "--child", kind, "--cases", str(cases),
                           "--seed", str(seed)], stdout=subprocess.PIPE, text=True, cwd=ROOT, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"kind": kind, "cases": 0, "escapes": 1, "lost": 0, "seconds": 0.0,
                "escape_examples": [f"the runner process failed with exit code {proc.returncode}"]}
    return json.loads(lines[-1])


def line(r: dict[str, Any]) -> str:
    out = (f"{r['kind']:<12} cases {r['cases']:>9,}  escapes {r['escapes']:>4}  lost {r['lost']:>4}  "
           f"invalid {r.get('invalid', 0):>4}  peak RSS {r.get('peak_rss_mb', 0):>7.1f} MB  "
           f"growth {r.get('rss_growth_mb', 0):>+6.1f} MB  {r['seconds']:>7.1f} s")
    for e in r.get("escape_examples", [])[:3]:
        out += f"\n    escape: {e}"
    for e in r.get("invalid_examples", [])[:3]:
        out += f"\n    invalid: {e}"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", default="all", help=f"all, or comma-separated: {', '.join(KINDS)}")
    ap.add_argument("--cases", type=int, default=100_000, help="inputs per kind (default 100,000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, help="write the results (and the machine) here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.cases < 1:
        ap.error("--cases must be at least 1")
    if args.child:
        print(json.dumps(child(args.child, args.cases, args.seed)), flush=True)
        return 0
    kinds = list(KINDS) if args.kind == "all" else [k.strip() for k in args.kind.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        ap.error(f"unknown kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
    results = []
    for kind in kinds:
        r = run_kind(kind, args.cases, args.seed)
        results.append(r)
        print(line(r), flush=True)
    if args.json:
        from benchmarks.common import machine

        args.json.write_text(json.dumps({"command": "python -m benchmarks.fuzz " + " ".join(argv or sys.argv[1:]),
                                         "machine": machine(), "results": results}, indent=2))
    bad = any(r["escapes"] or r["lost"] or r.get("invalid", 0) for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""What the decisions layer (alert lifecycle, control, KPI periods and roll-ups) costs in flow throughput.

Runs the whole Bytewax flow in-process (1 worker, simulator source, in-memory sink) on the same
simulated plant, in child processes that alternate between variants so machine noise hits them
alike, and prints frames per wall-clock second and per CPU second of each run, the medians and
their ratios (on a shared machine the CPU figures are the steadier ones):

* ``base``: the code before this layer (a source tree given with ``--base``, e.g. from
  ``git archive 0c4da8b | tar -x -C /tmp/aiot-base`` plus the compiled kernel copied in);
* ``now``: this tree with the default config (what ``base`` ran: KPI period 10 s; plus roll-ups);
* ``heavy``: this tree with two KPI periods and three shifts, two threshold alert rules, two
  actuators with an advisory and an auto rule, and the production model's readings (state and
  part counters) in the input.

Usage: ``python benchmarks/decisions_overhead.py --base /tmp/aiot-base [--repeats 5] [--duration 180]``.
Results are recorded in ``benchmarks/RESULTS.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_ASSETS, FAULTS, SEED = 5, 3, 7

HEAVY = {
    "kpi": {"periods_s": [10, 60], "shifts": [{"name": "A", "start": "06:00", "hours": 8},
                                              {"name": "B", "start": "14:00", "hours": 8},
                                              {"name": "C", "start": "22:00", "hours": 8}]},
    "alerts": {"rules": [{"type": "hot", "signal": "temperature.max", "open_threshold": 60, "clear_threshold": 58},
                         {"type": "rough", "signal": "x.kurtosis", "open_threshold": 6, "clear_threshold": 4}]},
    "control": {
        "actuators": [{"name": "speed", "initial": 1800, "min": 600, "max": 1800, "max_step": 400},
                      {"name": "coolant", "initial": 0, "min": 0, "max": 1}],
        "rules": [{"name": "slow", "actuator": "speed", "when": {"alert_type": "anomaly"},
                   "action": {"delta": -300}, "revert": {"set": 1800}, "mode": "advisory"},
                  {"name": "cool", "actuator": "coolant", "when": {"signal": "temperature.max", "above": 55},
                   "action": {"set": 1}, "revert": {"set": 0}, "mode": "auto"}]},
}

CHILD = r"""
import json, sys, time
from bytewax.testing import TestingSink, run_main
import river.anomaly, river.drift  # imported lazily by the models: keep it out of the timing
from aiotstream.config import default_site
from aiotstream.dataflow import build_flow
from aiotstream.io.simulator import SimulatorSource
from aiotstream.sim.plant import PlantSimulator
variant, n, duration, faults, seed = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
extra = json.loads(sys.argv[6])
kw = {}
if variant == "heavy":
    from aiotstream.sim.plant import ProductionSpec
    kw["production"] = ProductionSpec()
cfg = default_site(n, inputs={"tail": False}, **extra)
sim = PlantSimulator(cfg.all_assets(), duration_s=duration, n_faults=faults, seed=seed, **kw)
msgs = list(sim.messages())
out = []
flow = build_flow(cfg, SimulatorSource(msgs, cfg.site.id), TestingSink(out), tail=False)
t0, c0 = time.perf_counter(), time.process_time()
run_main(flow)
dt, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"frames": sim.n_frames, "messages": len(msgs), "seconds": dt, "cpu": cpu, "outputs": len(out)}))
"""


def run(variant: str, tree: Path, duration_s: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    extra = json.dumps(HEAVY if variant == "heavy" else {})
    proc = subprocess.run([sys.executable, "-c", CHILD, variant, str(N_ASSETS), str(duration_s), str(FAULTS),
                           str(SEED), extra], capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, help="source tree of the code before the decisions layer")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--duration", type=float, default=180.0, help="simulated seconds per run")
    args = ap.parse_args()
    variants = [("base", args.base)] if args.base else []
    variants += [("now", ROOT), ("heavy", ROOT)]
    rates: dict[str, list[float]] = {v: [] for v, _ in variants}
    cpu_rates: dict[str, list[float]] = {v: [] for v, _ in variants}
    for i in range(args.repeats):
        for v, tree in variants:
            r = run(v, tree, args.duration)
            rates[v].append(r["frames"] / r["seconds"])
            cpu_rates[v].append(r["frames"] / r["cpu"])
            print(f"run {i + 1} {v:5s}: {r['frames']:,} frames, {r['messages']:,} messages in {r['seconds']:.3f} s "
                  f"wall, {r['cpu']:.3f} s CPU = {rates[v][-1]:,.0f} frames/s wall, {cpu_rates[v][-1]:,.0f} frames "
                  f"per CPU second ({r['outputs']:,} outputs)", flush=True)
    for label, table in (("wall", rates), ("CPU", cpu_rates)):
        med = {v: statistics.median(x) for v, x in table.items()}
        line = f"{label} medians: " + ", ".join(f"{v} {m:,.0f}" for v, m in med.items())
        if "base" in med:
            line += f"; now/base {med['now'] / med['base']:.3f}, heavy/base {med['heavy'] / med['base']:.3f}"
        print(line + f"; heavy/now {med['heavy'] / med['now']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

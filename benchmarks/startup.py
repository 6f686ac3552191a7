"""How long a flow takes to start for a site of many assets: ``aiotstream replay`` of a few readings.

    python -m benchmarks.startup [--assets 100000] [--rounds 5] [--tree /tmp/base --tree .] [--json FILE]

A site of one asset group (``--assets`` members, one channel, readings only) replays a CSV of 150 readings
of five of its assets as fast as it can, to files: what is left is loading and checking the site, building
the runtime, starting the dataflow and stopping it. Each checkout (``--tree``, this one by default) runs
once per round, in turn, so drift hits them alike; the report gives each run's wall and CPU seconds and
peak RSS (the child's, as :func:`benchmarks.common.wait` measures them) and the median of the per-round
ratios to the first checkout. Each run's outputs but the audit record are compared (without
``produced_at`` and ``code_version``): the checkouts must write the same records, ids included.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import common

T0_NS = 1_796_601_600_000_000_000  # 2026-12-07T00:00:00Z


def _inputs(tmp: Path, assets: int) -> Path:
    csv = tmp / "readings.csv"
    rows = ["ts,asset,metric,value"]
    rows += [f"{T0_NS + i * 100_000_000},s-{a:06d},temperature,{20 + i * 0.01:.2f}"
             for i in range(30) for a in range(1, 6)]
    csv.write_text("\n".join(rows) + "\n")
    site = {"site": {"id": "startup", "name": "start-up benchmark"},
            "asset_groups": [{"prefix": "s-", "count": assets, "width": 6, "channels": ["v"]}],
            "inputs": {"kind": "files", "files": {"paths": [str(csv)]}},
            "scalar": {"readings_only": True}}
    path = tmp / "site.json"
    path.write_text(json.dumps(site))
    return path


def run_once(tree: Path, site: Path, out: Path) -> dict[str, float]:
    cmd = [sys.executable, "-m", "aiotstream.cli", "replay", str(site.parent / "readings.csv"), "--site", str(site),
           "--out-dir", str(out)]
    done = common.wait(common.spawn(cmd, env={"PYTHONPATH": str(tree)}, cwd=tree)).check(f"{tree}: replay")
    s = done.summary()
    return {"wall_s": s["wall_s"], "cpu_s": s["cpu_s"], "peak_rss_mb": s["peak_rss_mb"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--assets", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tree", action="append", help="run from this checkout (repeat to alternate checkouts)")
    ap.add_argument("--json", help="also write the runs and the summary here")
    args = ap.parse_args(argv)
    trees = common.checkouts(args.tree)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        site = _inputs(Path(tmp), args.assets)
        first: dict[str, list[dict[str, Any]]] | None = None
        for rnd in range(args.rounds):
            for k, tree in enumerate(trees):
                out = Path(tmp) / f"out-{rnd}-{k}"
                r = {"round": rnd, "tree": str(tree), "assets": args.assets, **run_once(tree, site, out)}
                got = common.output_records(out)
                first = got if first is None else first
                r["same_outputs"] = got == first
                runs.append(r)
                print(json.dumps(r), flush=True)
    summary: dict[str, Any] = {"machine": common.machine(), "assets": args.assets, "trees": {}}
    for tree in trees:
        mine = [r for r in runs if r["tree"] == str(tree)]
        summary["trees"][str(tree)] = {
            "wall_s_median": statistics.median(r["wall_s"] for r in mine),
            "cpu_s_median": statistics.median(r["cpu_s"] for r in mine),
            "wall_ratio_to_first": statistics.median(
                r["wall_s"] / b["wall_s"] for r, b in zip(mine, [r for r in runs if r["tree"] == str(trees[0])])),
        }
    summary["all_outputs_same"] = all(r["same_outputs"] for r in runs)
    print(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).write_text("\n".join(json.dumps(r) for r in runs + [summary]) + "\n")
    return 0 if summary["all_outputs_same"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

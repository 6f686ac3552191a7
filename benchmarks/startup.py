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
import sys
import tempfile
from pathlib import Path

from benchmarks import common

T0_NS = 1_796_601_600_000_000_000  # 2026-12-07T00:00:00Z


def _inputs(tmp: Path, assets: int) -> Path:
    csv = tmp / "readings.csv"
    rows = ["ts,asset,metric,value"]
    rows += [f"{T0_NS + i * 100_000_000},s-{a:06d},temperature,{20 + i * 0.01:.2f}"
             for i in range(30) for a in range(1, 6)]
    csv.write_text("\n".join(rows) + "\n")
    return common.readings_site(tmp, "startup", "start-up benchmark", assets, csv)


def run_once(tree: Path, site: Path, out: Path) -> dict[str, float]:
    cmd = [sys.executable, "-m", "aiotstream.cli", "replay", str(site.parent / "readings.csv"), "--site", str(site),
           "--out-dir", str(out)]
    done = common.wait(common.spawn(cmd, env={"PYTHONPATH": str(tree)}, cwd=tree)).check(f"{tree}: replay")
    s = done.summary()
    return {"wall_s": s["wall_s"], "cpu_s": s["cpu_s"], "peak_rss_mb": s["peak_rss_mb"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--assets", type=int, default=100_000)
    common.checkout_args(ap, rounds=5)
    args = ap.parse_args(argv)
    trees = common.checkouts(args.tree)
    with tempfile.TemporaryDirectory() as tmp:
        site = _inputs(Path(tmp), args.assets)
        return common.alternate_checkouts(trees, args.rounds, Path(tmp) / "runs",
                                          lambda tree, work: run_once(tree, site, work), {"assets": args.assets},
                                          ("wall_s", "cpu_s"), ("wall_s",), json_path=args.json)


if __name__ == "__main__":
    raise SystemExit(main())

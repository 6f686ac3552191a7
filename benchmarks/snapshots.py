"""What recovery costs a fleet of scalar assets: a replay with ``--recovery``, its snapshots, and a resume.

    python -m benchmarks.snapshots [--assets 2000] [--readings 40] [--rounds 2] [--tree /tmp/base --tree .]
                                   [--json FILE]

A site of one asset group (``--assets`` members, one channel, readings only) replays ``--readings`` readings
of every asset (1 Hz, Gaussian, two decimals) from a CSV to files with ``--recovery`` and 1 s epochs: every
asset is snapshot at the end of each epoch it had input, as in production. Then the same replay runs again
on the same recovery directory: nothing new to read, so what it measures is a resume (every state read and
unpickled, the flow started, every asset snapshot again at the end). Reported per run: wall and CPU
seconds of both, the recovery directory's size on disk, and the live snapshots in its SQLite partitions
(rows and bytes of ``snaps.ser_change``: what the latest epoch holds, per asset). Each checkout
(``--tree``, this one by default) runs once per round, in turn; their output records must be the same
(:func:`benchmarks.common.output_records`).

The default (2,000 assets x 40 readings) is a young fleet, its detectors' rings mostly empty;
``--assets 100 --readings 4000`` fills them (a snapshot in steady state).
"""
from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import common

T0_NS = 1_796_601_600_000_000_000  # 2026-12-07T00:00:00Z


def _inputs(tmp: Path, assets: int, readings: int) -> tuple[Path, Path]:
    rng = random.Random(1)
    csv = tmp / "readings.csv"
    with csv.open("w") as f:
        f.write("ts,asset,metric,value\n")
        for i in range(readings):
            ts = T0_NS + i * 1_000_000_000
            f.writelines(f"{ts},s-{a:06d},v,{50 + rng.gauss(0, 2):.2f}\n" for a in range(assets))
    return csv, common.readings_site(tmp, "snapshots", "recovery snapshot benchmark", assets, csv)


def snapshot_store(rec: Path) -> dict[str, int]:
    """The recovery directory's bytes on disk and its live snapshots (rows, bytes)."""
    rows = size = 0
    for part in sorted(rec.glob("*.sqlite3")):
        con = sqlite3.connect(part)
        try:
            n, b = con.execute("SELECT count(*), coalesce(sum(length(ser_change)), 0) FROM snaps").fetchone()
        finally:
            con.close()
        rows, size = rows + n, size + b
    disk = sum(f.stat().st_size for f in rec.iterdir() if f.is_file())
    return {"recovery_dir_bytes": disk, "snapshot_rows": rows, "snapshot_bytes": size}


def run_once(tree: Path, csv: Path, site: Path, work: Path) -> dict[str, Any]:
    rec = work / "recovery"
    rec.mkdir()
    out: dict[str, Any] = {}
    for phase in ("replay", "resume"):
        cmd = [sys.executable, "-m", "aiotstream.cli", "replay", str(csv), "--site", str(site),
               "--out-dir", str(work / phase), "--recovery", str(rec), "--epoch-s", "1"]
        s = common.wait(common.spawn(cmd, env={"PYTHONPATH": str(tree)}, cwd=tree)).check(
            f"{tree}: {phase}").summary()
        out |= {f"{phase}_wall_s": s["wall_s"], f"{phase}_cpu_s": s["cpu_s"], f"{phase}_peak_rss_mb": s["peak_rss_mb"]}
        if phase == "replay":
            out |= snapshot_store(rec)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--assets", type=int, default=2000)
    ap.add_argument("--readings", type=int, default=40, help="readings per asset (1 Hz)")
    common.checkout_args(ap, rounds=2)
    args = ap.parse_args(argv)
    trees = common.checkouts(args.tree)
    with tempfile.TemporaryDirectory() as tmp:
        csv, site = _inputs(Path(tmp), args.assets, args.readings)

        def run(tree: Path, work: Path) -> dict[str, Any]:
            r = run_once(tree, csv, site, work)
            return {**r, "snapshot_bytes_per_asset": round(r["snapshot_bytes"] / args.assets)}

        return common.alternate_checkouts(
            trees, args.rounds, Path(tmp) / "runs", run, {"assets": args.assets, "readings": args.readings},
            ("replay_wall_s", "replay_cpu_s", "resume_wall_s", "snapshot_bytes", "recovery_dir_bytes"),
            ("replay_wall_s", "resume_wall_s", "snapshot_bytes"), records="replay", json_path=args.json)


if __name__ == "__main__":
    raise SystemExit(main())

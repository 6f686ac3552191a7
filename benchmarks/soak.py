"""Soak: many assets through the real dataflow, RSS sampled as the run goes; RSS must stay flat.

Every asset sends one small frame (1 channel x 32 samples at 32 Hz = one 1-second window)
per round, so each round closes one window per asset: per-asset state (windows, detector,
drift detector, alert policy, KPI period) is exercised for many windows while the number
of assets stays fixed. Bounded state means RSS stops growing once every asset exists and
has warmed up: the check is that RSS grows by at most ``--tolerance`` over the second half.

    python -m benchmarks.soak --assets 100000 --rounds 30 [--model hst]     # by hand, ~15 min
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from datetime import timedelta

import numpy as np
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import run_main

from aiotstream.codecs import encode_frame
from aiotstream.config import SiteConfig
from aiotstream.dataflow import build_flow
from aiotstream.records import SourceMessage
from benchmarks.common import rss_mb, save

T0 = 1_767_225_600_000_000_000


class _Rounds(StatefulSourcePartition[SourceMessage, None]):
    def __init__(self, ids: list[str], rounds: int, batch: int):
        self.it = self._gen(ids, rounds)
        self.batch = batch

    def _gen(self, ids: list[str], rounds: int) -> Iterator[SourceMessage]:
        rng = np.random.default_rng(0)
        offset = 0
        for r in range(rounds):
            noise = rng.normal(0.0, 1.0, (len(ids), 1, 32)).astype(np.float32)
            for i, a in enumerate(ids):
                yield SourceMessage("soak", 0, offset, encode_frame(a, r, T0 + r * 1_000_000_000, 32.0, noise[i]))
                offset += 1

    def next_batch(self) -> list[SourceMessage]:
        out = [m for _, m in zip(range(self.batch), self.it)]
        if not out:
            raise StopIteration()
        return out

    def snapshot(self) -> None:
        return None


class RoundSource(FixedPartitionedSource[SourceMessage, None]):
    def __init__(self, ids: list[str], rounds: int, batch: int = 2000):
        self.args = (ids, rounds, batch)

    def list_parts(self) -> list[str]:
        return ["rounds"]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _Rounds:
        return _Rounds(*self.args)


class _Count(StatelessSinkPartition):
    """Counts outputs; samples RSS each time another ``per_round`` windows have been scored."""

    def __init__(self, counts: dict[str, int], per_round: int, samples: list[tuple[int, float, float]]):
        self.counts = counts
        self.per_round = per_round
        self.samples = samples
        self.t0 = time.perf_counter()

    def write_batch(self, items: list) -> None:
        for o in items:
            self.counts[o.kind] = self.counts.get(o.kind, 0) + 1
            if o.kind == "score" and self.counts["score"] % self.per_round == 0:
                r, t, m = self.counts["score"] // self.per_round, time.perf_counter() - self.t0, rss_mb()
                self.samples.append((r, t, m))
                print(f"  round {r:3d} scored: {t:7.1f} s, RSS {m:8.1f} MB", flush=True)


class CountSink(DynamicSink):
    def __init__(self, counts: dict[str, int], per_round: int, samples: list):
        self.args = (counts, per_round, samples)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Count:
        return _Count(*self.args)


def soak(assets: int, rounds: int, tolerance: float = 0.05, epoch_s: float = 1.0, model: str | None = None) -> dict:
    cfg = SiteConfig.from_dict({
        "site": {"id": "soak"},
        "asset_groups": [{"prefix": "a", "count": assets, "width": 6, "channels": ["x"], "sample_rate_hz": 32}],
        "inputs": {"tail": False}, "window": {"allowed_lateness_s": 0, "wait_for_readings": False},
        # every bound is reached within the run: 10 cleared alerts kept per asset for late labels (the
        # default 100 takes hundreds of rounds to fill, about 2 KB per alert), a 10-window warm-up
        "model": {"warmup_windows": 10, **({"kind": model} if model else {})}, "alerts": {"history": 10},
    })
    ids = [a.id for a in cfg.all_assets()]
    samples: list[tuple[int, float, float]] = []
    counts: dict[str, int] = {}
    t = time.perf_counter()
    run_main(build_flow(cfg, RoundSource(ids, rounds), CountSink(counts, assets, samples), tail=False,
                        snapshots=False),  # as `aiotstream run` without --recovery
             epoch_interval=timedelta(seconds=epoch_s))
    elapsed = time.perf_counter() - t
    half = samples[len(samples) // 2:]
    growth = (half[-1][2] - half[0][2]) / half[0][2]
    return {"assets": assets, "rounds": rounds, "model": cfg.model.kind, "elapsed_s": round(elapsed, 1),
            "outputs": counts, "mb_per_1000_assets": round(samples[-1][2] * 1000 / assets, 2) if samples else None,
            "windows_per_s": round(counts.get("score", 0) / elapsed),
            "rss_mb": [{"round": r, "t_s": round(ts, 1), "rss_mb": round(m, 1)} for r, ts, m in samples],
            "second_half_growth": round(growth, 4), "tolerance": tolerance, "flat": growth <= tolerance}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--assets", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--tolerance", type=float, default=0.05)
    p.add_argument("--model", choices=("calibrated", "zscore", "hst"),
                   help="the window detector (default: the config's default)")
    p.add_argument("--json", help="result file (default benchmarks/results/<date>-<host>-soak.json)")
    p.add_argument("--no-check", action="store_true", help="exit 0 even if RSS grew (memory-curve points)")
    args = p.parse_args(argv)
    print(f"soak: {args.assets:,} assets x {args.rounds} rounds (one window per asset per round)", flush=True)
    res = soak(args.assets, args.rounds, args.tolerance, model=args.model)
    print(f"  detector {res['model']}; RSS at the end {res['mb_per_1000_assets']} MB per 1,000 assets (the whole "
          "process)", flush=True)
    print(f"  {res['outputs']} in {res['elapsed_s']} s ({res['windows_per_s']:,} windows/s); RSS growth over the "
          f"second half {res['second_half_growth']:+.1%} (tolerance {args.tolerance:.0%}): "
          f"{'FLAT' if res['flat'] else 'GROWING'}")
    print(f"  saved {save('soak', res, args.json)}")
    return 0 if res["flat"] or args.no_check else 1


def memory_point(assets: int, rounds: int, tmp: str, timeout_s: float = 600.0) -> dict:
    """One point of RSS against the number of assets: a soak run in its own process.

    Returns the process's peak RSS (from the kernel) and its RSS after the last round.
    """
    import json
    from pathlib import Path

    from benchmarks.common import run_measured

    out = Path(tmp) / f"soak-{assets}.json"
    m = run_measured([sys.executable, "-m", "benchmarks.soak", "--assets", str(assets), "--rounds", str(rounds),
                      "--json", str(out), "--no-check"], timeout=timeout_s).check(f"soak with {assets} assets")
    res = json.loads(out.read_text())
    last = res["rss_mb"][-1]["rss_mb"] if res["rss_mb"] else None
    return {"assets": assets, "rounds": rounds, "peak_rss_mb": round(m.maxrss_mb, 1), "final_rss_mb": last,
            "windows_per_s": res["windows_per_s"], "wall_s": round(m.wall_s, 2), "cpu_s": round(m.cpu_s, 2)}


if __name__ == "__main__":
    sys.exit(main())

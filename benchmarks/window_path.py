"""A window's part of the closing burst, three ways: in context, back to back, and stage by stage.

``benchmarks.window_burst`` times the poll in which every asset's window closes. This asks what that
per-window time is made of and whether running the same work in another order would shorten it:

* **in context**: the analyzer's ``_windows_closed`` timed for every window the burst rounds close from
  ``--from-s`` on (what ``window_burst`` runs, frames in between);
* **back to back**: each asset's analyzer and its closing window are pickled just before one close
  (``--capture-s``, a second past the warm-up that is not a 10 s KPI period's end), and the same calls run
  one after another on unpickled copies (no frame path in between, each asset's own state);
* **stage by stage**: on fresh copies, the feature rows of every asset, then every detector step, then the
  rest of every window with the features and the score handed in (what "a poll's windows in one pass" would
  do without doing less work).

Prints microseconds a window for each, ``--repeats`` of the last two (alternating which goes first) and
their medians. 2026-12-06 (RESULTS.md, eighth session), quiet runs: back to back 58.1 and 60.0, stage by
stage 62.5 and 61.3 (features 6-7, detector 11-12, the rest 40-50): reordering buys nothing.

    python -m benchmarks.window_path                 # 667 assets, capture at 31 s, ~40 s
"""
from __future__ import annotations

import argparse
import gc
import json
import pickle
import statistics
import time
from typing import Any


def measure(assets: int, capture_s: float, duration_s: float, repeats: int) -> dict[str, Any]:
    from aiotstream.config import SiteConfig
    from aiotstream.pdm.asset import AssetAnalyzer
    from aiotstream.pdm.ingest import Ingestor
    from aiotstream.pdm.runtime import SiteRuntime
    from benchmarks import window_burst

    step = round(1024 / 10_000 * 1e9)
    captured: dict[str, tuple[bytes, bytes]] = {}
    timed = {"ns": 0, "windows": 0}
    clock = {"k": 0}
    original = AssetAnalyzer._windows_closed
    capture_k = int(capture_s * 1e9 // step)

    def closed_and_timed(self: AssetAnalyzer, closed: list) -> list:
        if not closed:
            return original(self, closed)
        # past the warm-up, and not at a 10 s KPI period's end (its records are a burst of their own)
        if clock["k"] < capture_k or not closed[-1].end_ns % 10**10:
            return original(self, closed)
        if self.asset_id not in captured:
            captured[self.asset_id] = (pickle.dumps(self), pickle.dumps(closed))
        t = time.perf_counter_ns()
        outs = original(self, closed)
        timed["ns"] += time.perf_counter_ns() - t
        timed["windows"] += len(closed)
        return outs

    ticking = Ingestor.decode_batch

    def decode_and_count(self: Any, msgs: list) -> list:
        clock["k"] = msgs[0].offset // assets if msgs else clock["k"]
        return ticking(self, msgs)

    AssetAnalyzer._windows_closed = closed_and_timed  # type: ignore[method-assign]
    Ingestor.decode_batch = decode_and_count  # type: ignore[method-assign]
    try:
        run = window_burst.measure(assets, duration_s, capture_s, 4.0, "calibrated")
    finally:
        AssetAnalyzer._windows_closed = original  # type: ignore[method-assign]
        Ingestor.decode_batch = ticking  # type: ignore[method-assign]
    cfg = SiteConfig.from_dict(window_burst.site(assets, "calibrated"))

    def copies() -> list[tuple[AssetAnalyzer, list]]:
        rt = SiteRuntime(cfg)
        return [(pickle.loads(a).attach(rt), pickle.loads(c)) for a, c in captured.values()]

    gc.freeze()
    n = len(captured)
    back, stages = [], []
    for r in range(repeats):
        for way in ("back", "stages") if r % 2 == 0 else ("stages", "back"):  # (alternated: no order favoured)
            pairs = copies()
            if way == "back":
                t = time.perf_counter_ns()
                for an, closed in pairs:
                    original(an, closed)
                back.append((time.perf_counter_ns() - t) / n / 1e3)
                continue
            t0 = time.perf_counter_ns()
            xs = [an._features(closed[0]) for an, closed in pairs]
            t1 = time.perf_counter_ns()
            scores = [an.detector.score_learn(x) for (an, _), x in zip(pairs, xs)]
            t2 = time.perf_counter_ns()
            for (an, _), x, s in zip(pairs, xs, scores):  # the rest of the window with both handed in
                an._features = _returns(x)  # type: ignore[method-assign]
                an.detector.score_learn = _returns(s)
            t3 = time.perf_counter_ns()
            for an, closed in pairs:
                original(an, closed)
            t4 = time.perf_counter_ns()
            stages.append({"features": round((t1 - t0) / n / 1e3, 1), "detector": round((t2 - t1) / n / 1e3, 1),
                           "rest": round((t4 - t3) / n / 1e3, 1), "sum": round((t4 - t3 + t2 - t0) / n / 1e3, 1)})
    return {"assets": assets, "captured": n, "capture_s": capture_s, "burst_median_ms": run["burst_median_ms"],
            "in_context_us": round(timed["ns"] / max(timed["windows"], 1) / 1e3, 1),
            "back_to_back_us": [round(b, 1) for b in back], "stage_by_stage_us": stages,
            "median_back_to_back_us": round(statistics.median(back), 1),
            "median_stage_by_stage_us": round(statistics.median(x["sum"] for x in stages), 1)}


def _returns(value: Any) -> Any:
    """A stand-in for a step whose result was computed beforehand."""
    return lambda *_args: value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=667, help="the latency benchmark's at half load")
    ap.add_argument("--capture-s", type=float, default=31.0,
                    help="capture each asset's close from this plant second on (past the 20-window warm-up)")
    ap.add_argument("--duration", type=float, default=42.0, help="seconds of plant time")
    ap.add_argument("--repeats", type=int, default=6, help="of each way, alternating which goes first")
    ap.add_argument("--json", help="append the result as a JSON line here")
    args = ap.parse_args(argv)
    line = json.dumps(measure(args.assets, args.capture_s, args.duration, args.repeats))
    print(line, flush=True)
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

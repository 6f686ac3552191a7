"""How fast the console rebuilds its state at start: output records decoded (orjson) and folded into
:class:`aiotstream.console.state.ConsoleState`, one by one as its consumer thread does (Kafka's fetch not
included). The records are the golden demo outputs (alerts, commands, KPIs, dead letters) plus as many
score records (in a running site most records are scores); best of 5 runs.

    python -m benchmarks.console_fold [--n 200000]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import orjson

from aiotstream.console.state import ConsoleState

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden" / "demo"
FILES = (("alert", "alerts"), ("command", "commands"), ("kpi", "kpis"), ("deadletter", "deadletter"))


def records() -> list[tuple[str, bytes]]:
    out = [(kind, line) for kind, name in FILES
           for line in (GOLDEN / f"{name}.jsonl").read_bytes().splitlines() if line.strip()]
    scores = [orjson.dumps({"schema": "aiotstream.score/1", "asset": f"asset-{i % 5:03d}", "score": (i % 97) / 97,
                            "anomalous": i % 97 > 87, "window": {"end_ns": 1_767_225_600_000_000_000 + i * 10**9},
                            "model": {"name": "baseline", "version": "1", "variant": "champion"}})
              for i in range(len(out))]
    return out + [("score", s) for s in scores]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000, help="records per run")
    args = ap.parse_args()
    recs = records()
    best = float("inf")
    for _ in range(5):
        state = ConsoleState()
        t0 = time.perf_counter()
        done = 0
        while done < args.n:
            for kind, raw in recs:
                state.fold(kind, orjson.loads(raw))
            done += len(recs)
        best = min(best, (time.perf_counter() - t0) / done)
    print(f"{len(recs)} distinct records (half scores), {args.n:,} per run: best {1 / best:,.0f} records/s "
          f"({best * 1e6:.1f} us per record)")


if __name__ == "__main__":
    main()

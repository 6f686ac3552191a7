"""Decode speed of feedback messages (``aiotstream.codecs.decode_feedback``): 100,000 messages, a realistic
mix of every type plus 10 % bad ones, decoded one by one (as the decode step does); best of 5 runs.

    python -m benchmarks.feedback_decode [--n 100000]
"""
from __future__ import annotations

import argparse
import random
import time

import orjson

from aiotstream.codecs import decode_feedback
from aiotstream.errors import DecodeError
from aiotstream.records import Position

T = 1_767_225_600_000_000_000
AID = "0123456789abcdef0123456789abcdef"
GOOD = [
    {"type": "ack", "asset": "pump-001", "alert_id": AID, "by": "ana"},
    {"type": "ack", "asset": "pump-001", "alert_type": "anomaly"},
    {"type": "clear", "asset": "pump-002", "alert_id": AID, "by": "bo", "note": "replaced the bearing"},
    {"type": "label", "asset": "pump-001", "alert_id": AID, "label": "true_fault", "fault_type": "bearing"},
    {"type": "approve", "asset": "pump-003", "command_id": AID, "by": "cy"},
    {"type": "reject", "asset": "pump-003", "command_id": AID},
    {"type": "command_ack", "asset": "pump-003", "command_id": AID},
    {"type": "command_ack", "asset": "pump-003", "command_id": AID, "status": "applied", "value": 1200.0},
    {"type": "maintenance", "line": "line-1", "start": T, "end": T + 3_600_000_000_000, "window_id": "w1"},
]
BAD = [
    {"type": "ack", "asset": "pump-001"},
    {"type": "label", "asset": "pump-001", "alert_id": AID, "label": "maybe"},
    {"type": "command_ack", "asset": "p", "command_id": AID, "value": "high"},
    {"type": "maintenance", "start": T + 10, "end": T},
    {"type": "nudge", "asset": "p"},
]


def messages(n: int, seed: int = 1) -> list[bytes]:
    r = random.Random(seed)
    out = []
    for i in range(n):
        body = r.choice(BAD) if r.random() < 0.1 else r.choice(GOOD)
        out.append(orjson.dumps({"schema": "aiotstream.feedback/1", "ts": T + i, **body}))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    msgs = messages(args.n)
    pos = Position("site.feedback", 0, 0)
    best = float("inf")
    for _ in range(args.repeat):
        bad = 0
        t0 = time.perf_counter()
        for raw in msgs:
            try:
                decode_feedback(raw, pos)
            except DecodeError:
                bad += 1
        best = min(best, time.perf_counter() - t0)
    print(f"{args.n} feedback messages ({bad} bad): best of {args.repeat} {best:.3f} s, "
          f"{best / args.n * 1e6:.2f} us/message, {args.n / best:,.0f} messages/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A poll's frames decoded in process: what the flow's decode step costs a frame, no Bytewax or broker.

Each poll is one :class:`~aiotstream.records.MessageBlock` of ``--assets`` encoded frames (one per asset, 3
channels x 1024 samples at 10 kHz, float32 unless ``--dtype``: about 8 MiB at 700 frames, the default
``inputs.poll_bytes``), made fresh as the consumer makes them (new ``bytes``), then handed to
:meth:`~aiotstream.pdm.ingest.Ingestor.decode_grouped` as the flow's decode step does: header checks,
``take_frames``' one pass over the samples, the partials of ``--set``. Prints the median, min and max
microseconds a frame over the polls after the first five, and a digest of every frame's partials so that
two checkouts can be seen to compute the same floats.

    python -m benchmarks.decode_poll                                   # 700 frames a poll, 100 polls
    python -m benchmarks.decode_poll --tree /tmp/base --tree . --rounds 4   # checkouts side by side

With ``--tree`` each measurement runs in a child process whose ``aiotstream`` is that checkout's (its
kernels built or copied there), every checkout once a round.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from pathlib import Path
from typing import Any


def measure(assets: int, polls: int, dtype: str, feature_set: str) -> dict[str, Any]:
    import numpy as np

    from aiotstream.codecs.frames import encode_frame
    from aiotstream.config import SiteConfig
    from aiotstream.pdm.ingest import Ingestor
    from aiotstream.pdm.runtime import SiteRuntime
    from aiotstream.records import MessageBlock

    cfg = SiteConfig.from_dict({
        "site": {"id": "dp", "name": "benchmark dp"},
        "asset_groups": [{"prefix": "p-", "count": assets, "width": 6}],
        "inputs": {"topics": ["dp.waveforms"], "tail": True},
        "features": {"set": feature_set},
    })
    ids = [a.id for a in cfg.all_assets()[:assets]]
    rng = np.random.default_rng(0)
    signals = [(rng.normal(size=(3, 1024)) * 2.0 + 0.1).astype(dtype) for _ in range(16)]
    step, e0 = round(1024 / 10_000 * 1e9), 1_700_000_000 * 10**9
    ingest = Ingestor(SiteRuntime(cfg), now_ns=lambda: e0 + 10**13)
    digest = hashlib.sha256()
    per_frame: list[float] = []
    for k in range(polls):
        values = [bytes(bytearray(encode_frame(a, k, e0 + k * step, 10_000.0, signals[(i + k) % 16])))
                  for i, a in enumerate(ids)]
        block = MessageBlock("dp.waveforms", 0, values, list(range(k * assets, (k + 1) * assets)))
        t0 = time.perf_counter()
        out = ingest.decode_grouped([block])
        per_frame.append((time.perf_counter() - t0) / assets * 1e6)
        frames = [f for item in out if isinstance(item, tuple) for f in item[1]]
        if len(frames) != assets:
            raise SystemExit(f"poll {k}: {len(frames)} frames decoded of {assets}")
        for f in frames:
            digest.update(f.partials.tobytes())
            if f.spectral is not None:
                digest.update(f.spectral.tobytes())
    timed = per_frame[5:] or per_frame
    return {"assets": assets, "polls": polls, "dtype": dtype, "set": feature_set,
            "us_per_frame": round(statistics.median(timed), 2), "us_min": round(min(timed), 2),
            "us_max": round(max(timed), 2), "scores_digest": digest.hexdigest()[:16]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=700, help="frames a poll (one per asset)")
    ap.add_argument("--polls", type=int, default=100, help="polls; the first five are not timed")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--set", default="vibration-basic", help="features.set (default: the product's)")
    ap.add_argument("--tree", action="append",
                    help="checkout to measure (repeat to compare); default: this one")
    ap.add_argument("--rounds", type=int, default=1, help="with --tree: measurements of each checkout")
    ap.add_argument("--json", help="append each measurement as a JSON line here")
    args = ap.parse_args(argv)
    if not args.tree:
        line = json.dumps(measure(args.assets, args.polls, args.dtype, args.set))
        print(line, flush=True)
        if args.json:  # (with --tree, tree_rounds appends each checkout's)
            with open(args.json, "a") as fh:
                fh.write(line + "\n")
        return 0
    from benchmarks.common import tree_rounds  # (only here: a child runs this file without the package)

    own = ["--assets", str(args.assets), "--polls", str(args.polls), "--dtype", args.dtype, "--set", args.set]
    tree_rounds(__file__, own, [Path(t).resolve() for t in args.tree], args.rounds, args.json, "us_per_frame")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Offline ONNX scoring throughput: rows/s of the trained models at batch 1, 64, 512, 1024 on one thread.

    python -m benchmarks.onnx_offline --rows 20000 [--registry DIR --name pm --version 1.0.0]

Without ``--registry`` it first trains the default models (``aiotstream train``'s code: IsolationForest,
autoencoder float and int8) on healthy simulator data into a temporary registry. The rows scored are
held-out feature rows from the simulator (with faults), tiled up to ``--rows``. Each (model, batch) cell
is the best of ``--repeat`` passes over all rows, through :meth:`OnnxModel.score` (NaN imputation, one
``session.run``, the logistic map), intra-op threads 1, sequential execution. The issue's reference for a
tree ensemble: about 1,600 rows/s one row per call and about 90,000 rows/s in batches of 1,024.

Writes a table to stdout and JSON to ``benchmarks/results/onnx_offline-<date>-<host>.json`` (or ``--json``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

BATCHES = (1, 64, 512, 1024)


def _rows_per_s(model, X: np.ndarray, batch: int, repeat: int) -> float:
    n = len(X)
    best = float("inf")
    model.score(X[: min(batch, n)])  # warm-up (first run allocates)
    for _ in range(repeat):
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            model.score(X[i:i + batch])
        best = min(best, time.perf_counter() - t0)
    return n / best


def main(argv: list[str] | None = None) -> int:
    from aiotstream.config import default_site
    from aiotstream.models.onnx_model import OnnxModel
    from aiotstream.models.registry import ModelRegistry
    from aiotstream.pdm.training import labelled_rows, train_and_publish

    p = argparse.ArgumentParser(prog="python -m benchmarks.onnx_offline", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=20_000, help="rows scored per (model, batch) pass (default 20,000)")
    p.add_argument("--repeat", type=int, default=3, help="passes per cell; the best counts (default 3)")
    p.add_argument("--registry", help="use models from this registry (default: train into a temporary one)")
    p.add_argument("--verify-key", help="Ed25519 public key of --registry (default: accept unsigned/HMAC-less)")
    p.add_argument("--name", default="pm")
    p.add_argument("--version", default="1.0.0", help="V: scores V, V-ae and V-int8 when present")
    p.add_argument("--train-assets", type=int, default=12)
    p.add_argument("--train-duration", type=float, default=60.0)
    p.add_argument("--trees", type=int, default=100)
    p.add_argument("--json", help="write the JSON report here")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    if args.registry:
        reg = ModelRegistry(args.registry, verify_key=Path(args.verify_key) if args.verify_key else None,
                            allow_unsigned=args.verify_key is None)
        train_s = None
    else:
        reg = ModelRegistry(tempfile.mkdtemp(prefix="onnx-bench-"), hmac_key=os.urandom(32))
        train_and_publish(default_site(args.train_assets), reg, args.name, args.version,
                          duration_s=args.train_duration, seed=0, n_estimators=args.trees)
        train_s = time.perf_counter() - t0
    X0, _ = labelled_rows(default_site(8, site_id="bench-held-out"), duration_s=40.0, faults=8, seed=9,
                          warmup_s=5.0)
    reps = -(-args.rows // len(X0))
    X = np.tile(X0, (reps, 1))[: args.rows].astype(np.float32)
    versions = [v for v in (args.version, f"{args.version}-ae", f"{args.version}-int8") if v in reg.versions(args.name)]
    results = []
    print(f"{args.rows:,} rows x {X.shape[1]} features, 1 intra-op thread, best of {args.repeat}")
    print(f"{'model':<28}{'kind':<24}" + "".join(f"{'batch ' + str(b):>14}" for b in BATCHES))
    for v in versions:
        model = OnnxModel.from_artifact(reg.load(args.name, v), threads=1)
        fam = model.manifest.extra.get("family", "?") + (" int8" if model.quantized else " float")
        cells = {b: _rows_per_s(model, X, b, args.repeat) for b in BATCHES}
        results.append({"version": v, "family": model.manifest.extra.get("family"), "quantized": model.quantized,
                        "model_bytes": len(reg.load(args.name, v).onnx_bytes),
                        "rows_per_s": {str(b): round(r, 1) for b, r in cells.items()}})
        print(f"{args.name + '/' + v:<28}{fam:<24}" + "".join(f"{cells[b]:>14,.0f}" for b in BATCHES))
    import onnxruntime

    report = {
        "benchmark": "onnx_offline", "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(), "cpus": os.cpu_count(), "platform": platform.platform(),
        "onnxruntime": onnxruntime.__version__, "rows": args.rows, "features": int(X.shape[1]),
        "repeat": args.repeat, "threads": 1, "train_seconds": None if train_s is None else round(train_s, 1),
        "load_average": list(os.getloadavg()), "results": results,
        "reference_tree_ensemble_rows_per_s": {"1": 1600, "1024": 90000},
    }
    out = Path(args.json) if args.json else (Path(__file__).parent / "results" /
                                             f"onnx_offline-{datetime.now(UTC):%Y-%m-%d}-{socket.gethostname()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

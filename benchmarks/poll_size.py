"""What the Kafka poll size (``inputs.poll_batch``, ``inputs.poll_bytes``) does to the waveform flow, A/B.

The e2e harness's waveform workload (N assets x 3 channels x 10 kHz in 1024-sample frames of 12 KB, plus
their 1 Hz temperature readings) is preloaded into Tansu once; then every variant runs ``aiotstream run
--once`` over it (:func:`benchmarks.scaling.measure`, 1 process, zscore as the e2e's first run, or each
``--model`` in turn), once per round in the same order, so drift on a shared machine hits them alike. A
variant is ``POLL_BATCH[:POLL_BYTES]`` (without bytes: the site's default). Each run reports samples/s per
worker from its first input batch to the end, CPU seconds and peak RSS; the summary gives each variant's
median and its per-round ratios to the first variant.

    python -m benchmarks.poll_size --assets 40 --duration 240 --rounds 5 \\
        --variant 1000:1073741824 --variant 10000      # the old poll (1,000 frames) against the default
    python -m benchmarks.poll_size --assets 40 --duration 900 --rounds 5 --variant 10000 \\
        --model zscore --model calibrated               # the default detector beside zscore

One JSON line per run on stdout (and appended to ``--json``), then the summary line.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import emit_json
from benchmarks.scaling import measure
from benchmarks.workload import delete_topics, output_topics, preload_waveforms


def parse_variant(text: str) -> tuple[int, int | None]:
    """``"1000"`` -> (1000, None); ``"1000:8388608"`` -> (1000, 8388608).

    >>> parse_variant("1000"), parse_variant("10000:65536")
    ((1000, None), (10000, 65536))
    """
    batch, _, nbytes = text.partition(":")
    return int(batch), int(nbytes) if nbytes else None




def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.poll_size", description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=40)
    ap.add_argument("--duration", type=float, default=240.0, help="seconds of plant time (frames per asset / 10)")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--variant", action="append", required=True, help="POLL_BATCH[:POLL_BYTES]; repeat")
    ap.add_argument("--tree", action="append",
                    help="run the flow from this checkout (repeat to alternate checkouts, e.g. a git worktree of "
                         "main with its kernels built); default: this one")
    ap.add_argument("--model", action="append", choices=["zscore", "calibrated", "hst"],
                    help="the window detector; repeat to alternate (default: zscore, as the e2e's first run)")
    ap.add_argument("--json", default=None, help="append each run as a JSON line here")
    args = ap.parse_args(argv)
    from aiotstream.io.broker import TansuBroker
    from benchmarks import common

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    trees = common.checkouts(args.tree)
    models = args.model or ["zscore"]
    # every (tree, model, variant) once a round, in the same order: drift hits them alike
    names = [v + (f" {m}" if len(models) > 1 else "") + (f" @ {t}" if len(trees) > 1 else "")
             for t in trees for m in models for v in args.variant]
    variants = [(t, m, *parse_variant(v)) for t in trees for m in models for v in args.variant]
    runs: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(variants))}
    with tempfile.TemporaryDirectory(prefix="bench-poll-size-") as tmp, TansuBroker() as broker:
        data = preload_waveforms(broker.bootstrap, assets=args.assets, duration_s=args.duration,
                                 partitions=args.partitions, slice_assets=0, slice_duration_s=0.0)
        n = 0
        for rnd in range(args.rounds):
            for i, (tree, model, batch, nbytes) in enumerate(variants):
                n += 1
                d = Path(tmp) / f"r{n}"
                d.mkdir()
                common.run_from(tree)
                r = measure(broker.bootstrap, d, data, 1, model=model, label=f"-poll{n}",
                            partitions=args.partitions, poll_batch=batch, poll_bytes=nbytes)
                delete_topics(broker.bootstrap, output_topics(r["site"]))
                rec = {"round": rnd, "variant": names[i], "tree": str(tree), "model": model,
                       "poll_batch": batch, "poll_bytes": nbytes,
                       "samples_per_s_per_worker": r["samples_per_s_per_worker"],
                       "span_s": r["span_s"], "cpu_s": r["cpu_s"], "peak_rss_mb": r["peak_rss_mb"],
                       "windows": r["windows"], "scores_digest": r["scores_digest"],
                       # the garbage collector's collections, CPU and longest pause (None: an older harness)
                       "gc": (r.get("per_process") or [{}])[0].get("gc"),
                       "load": round(os.getloadavg()[0], 2)}
                runs[i].append(rec)
                emit_json(rec, args.json)
    first = [r["samples_per_s_per_worker"] for r in runs[0]]
    summary = {"summary": True, "frames": data.frames, "samples": data.samples, "variants": [
        {"variant": names[i],
         "median_samples_per_s": statistics.median(r["samples_per_s_per_worker"] for r in rs),
         "median_cpu_s": statistics.median(r["cpu_s"] for r in rs),
         "median_peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rs),
         "ratios_to_first": [round(r["samples_per_s_per_worker"] / f, 3) for r, f in zip(rs, first)],
         "median_ratio_to_first": round(statistics.median(
             r["samples_per_s_per_worker"] / f for r, f in zip(rs, first)), 3)}
        for i, rs in runs.items()]}
    emit_json(summary, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

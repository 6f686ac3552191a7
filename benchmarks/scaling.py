"""Scaling: the waveform flow with 1 process vs 2 processes (one worker each).

``--input kafka`` (the default): the input (N assets x D s of 10 kHz 3-axis frames) is written
to a Tansu broker once; each configuration then runs ``aiotstream run --once`` over it (through
:mod:`benchmarks.flowrun`, which times the flow's source) to its own output topics.
``--input files``: the same workload (same simulator and seed, assets in the partitions the
Kafka producer would give them) is written as replay files, one frame file and one readings file
per partition, and the flows replay them at full speed (``inputs.kind = "files"``, speed 0);
outputs still go to the broker. This leaves the broker's fetch work (it shares the two cores)
out of the input path. In a 2-process run each process reads its share of the files.

Throughput is frames over the span from the first input batch to the end of the run, so process
start-up (imports, connecting) is left out. The spread of the score records' ``produced_at``
gives a second, independent figure. Both runs happen in this one invocation, so their ratio is
measured side by side. Each run also reports how many assets Bytewax routes to each worker
(``asset_split``) and how many input messages each process read. ``benchmarks.e2e`` calls
:func:`run_flow` / :func:`flow_figures` for its own runs.

    python -m benchmarks.scaling --assets 40 --duration 120
    python -m benchmarks.scaling --input files --duration 120
    python -m benchmarks.scaling --input files --duration 480 --files-by-worker

``--files-by-worker`` is an experiment, not a product mode: the files are written so that each one
holds the assets of one of the two workers, and in the 2-process run each process reads only its
own files (``BENCH_FILES_BY_WORKER``), so no frame crosses between the processes.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import orjson

from aiotstream.io.broker import TansuBroker, free_port
from benchmarks.common import save, spawn, wait
from benchmarks.workload import (
    CHANNELS,
    FRAME_SAMPLES,
    WaveformData,
    WaveformFiles,
    asset_split,
    create_topics,
    output_topics,
    preload_waveforms,
    read_records,
    site_dict,
    write_site,
    write_waveform_files,
)

# 40 assets named p-000001 ... are routed 25/15 over 2 workers (Bytewax hashes the key); d-000001 ...
# 20/20. The Kafka mode keeps its historical names, so that its figures stay comparable.
DEFAULT_PREFIX = {"kafka": "p-", "files": "d-"}


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def run_flow(brokers: str, site: Path, processes: int = 1, epoch_s: float = 1.0, workers: int = 1,
             timeout_s: float = 600.0, tmp: Path | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``aiotstream run --once`` for ``site`` as ``processes`` processes; return timings and usage."""
    tmp = tmp or site.parent
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
    children, stats_paths = [], []
    for i in range(processes):
        stats = tmp / f"{site.stem}-p{i}-stats.json"
        stats_paths.append(stats)
        cmd = [sys.executable, "-m", "benchmarks.flowrun", str(stats), "run", "--site", str(site),
               "--brokers", brokers, "--once", "--epoch-s", str(epoch_s), "-w", str(workers)]
        if processes > 1:
            cmd += ["-i", str(i), "-a", addresses]
        children.append(spawn(cmd, env))
    measured = [wait(c, timeout_s).check(f"aiotstream run (process {i})") for i, c in enumerate(children)]
    stats = [orjson.loads(p.read_bytes()) for p in stats_paths]
    firsts = [s["t_first"] for s in stats if s["t_first"] is not None]
    span = max(s["t_done"] for s in stats) - min(firsts)
    return {
        "processes": processes, "workers_per_process": workers, "epoch_s": epoch_s,
        "messages": sum(s["messages"] for s in stats), "input_bytes": sum(s["bytes"] for s in stats),
        "messages_per_process": [s["messages"] for s in stats],
        "span_s": round(span, 3),
        "startup_s": round(max(s["t_first"] - s["t_start"] for s in stats if s["t_first"] is not None), 3),
        "wall_s": round(max(m.wall_s for m in measured), 3),
        "cpu_s": round(sum(m.cpu_s for m in measured), 3),
        "peak_rss_mb": round(max(m.maxrss_mb for m in measured), 1),
        "per_process": [{**m.summary(), **_timeline(st, min(firsts))} for m, st in zip(measured, stats)],
    }


def _timeline(stats: dict[str, Any], t0: float) -> dict[str, Any]:
    """When a process read its first and last input batch and when it finished, in s from the run's first batch."""
    return {k: round(stats[src] - t0, 3) if stats.get(src) is not None else None
            for k, src in (("first_batch_s", "t_first"), ("last_batch_s", "t_last"), ("done_s", "t_done"))}


def score_figures(brokers: str, site_id: str) -> dict[str, Any]:
    """Windows, frames and the produced_at estimator from the score (and alert) records of a run."""
    scores = [r for _, r in read_records(brokers, f"{site_id}.scores")]
    alerts = [r for _, r in read_records(brokers, f"{site_id}.alerts")]
    out: dict[str, Any] = {"windows": len(scores), "frames_in_windows": sum(r.get("frames", 0) for r in scores),
                           "alerts": len(alerts)}
    if len(scores) >= 2:
        stamped = sorted((_ts(r["produced_at"]), r.get("frames", 0)) for r in scores)
        spread = stamped[-1][0] - stamped[0][0]
        # the first window's frames were processed before the first stamp: count the others
        frames_after = sum(f for _, f in stamped[1:])
        if spread > 0:
            out["produced_at_spread_s"] = round(spread, 3)
            out["frames_per_s_by_produced_at"] = round(frames_after / spread)
    return out


def flow_figures(run: dict[str, Any], frames: int, readings: int = 0) -> dict[str, Any]:
    """Rates of a waveform run: frames and samples per second, in total and per worker."""
    workers = run["processes"] * run["workers_per_process"]
    fps = frames / run["span_s"]
    sps = fps * CHANNELS * FRAME_SAMPLES
    return {"frames_per_s": round(fps), "samples_per_s": round(sps), "samples_per_s_per_worker": round(sps / workers),
            "frames_per_s_per_worker": round(fps / workers), "workers": workers,
            "cpu_s_per_m_samples": round(run["cpu_s"] / (frames * CHANNELS * FRAME_SAMPLES / 1e6), 4),
            "messages_expected": frames + readings}


def waveform_site(tmp: Path, site_id: str, data: WaveformData | WaveformFiles, model: str = "hst",
                  **kw: Any) -> Path:
    """A site config for the waveform workload: reading its topics, or replaying its files at full speed."""
    if isinstance(data, WaveformFiles):
        cfg = site_dict(site_id, len(data.assets), [], model=model, prefix=data.asset_prefix, **kw)
        cfg["inputs"] = {**cfg["inputs"], "kind": "files",
                         "files": {"paths": [str(p) for p in data.frame_files + data.reading_files], "speed": 0}}
    else:
        cfg = site_dict(site_id, len(data.assets), [data.topic, data.readings_topic], model=model,
                        prefix=data.asset_prefix, **kw)
    return write_site(tmp, cfg)


def measure(brokers: str, tmp: Path, data: WaveformData | WaveformFiles, processes: int, *, epoch_s: float = 1.0,
            model: str = "hst", label: str = "", partitions: int = 3, by_worker: bool = False) -> dict[str, Any]:
    """One measured run of our flow over the preloaded waveform data (topics or files); ``by_worker``: files
    written by owner, each process reading its own (``BENCH_FILES_BY_WORKER``)."""
    site_id = f"bench-ours{label}-{processes}p"
    site = waveform_site(tmp, site_id, data, model=model, partitions=partitions)
    create_topics(brokers, output_topics(site_id), partitions)
    env = {"BENCH_FILES_BY_WORKER": str(processes)} if by_worker and processes > 1 else None
    run = run_flow(brokers, site, processes, epoch_s, tmp=tmp, env=env)
    res = {**run, **flow_figures(run, data.frames, data.readings), **score_figures(brokers, site_id),
           "model": model, "site": site_id, "asset_split": asset_split(data.assets, processes)}
    if res["messages"] != data.frames + data.readings:
        raise RuntimeError(f"{site_id}: the flow read {res['messages']} messages, "
                           f"{data.frames + data.readings} were produced")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", choices=["kafka", "files"], default="kafka",
                    help="kafka: read topics preloaded on the broker; files: replay frame files (full speed)")
    ap.add_argument("--assets", type=int, default=40)
    ap.add_argument("--prefix", help="asset id prefix (default: p- for kafka, d- for files: split 20/20 at 40)")
    ap.add_argument("--duration", type=float, default=120.0)
    ap.add_argument("--partitions", type=int, default=8, help="input topic partitions, or files of each kind")
    ap.add_argument("--epoch-s", type=float, default=1.0)
    ap.add_argument("--model", choices=["hst", "zscore"], default="hst")
    ap.add_argument("--files-by-worker", action="store_true",
                    help="experiment (files): every file holds the assets of one worker of 2, and each process "
                         "reads its own, so no frame crosses processes")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if args.files_by_worker and args.input != "files":
        ap.error("--files-by-worker needs --input files")
    prefix = args.prefix or DEFAULT_PREFIX[args.input]
    with TemporaryDirectory() as tmp, TansuBroker() as broker:
        data: WaveformData | WaveformFiles
        if args.input == "files":
            print(f"writing {args.assets} assets x {args.duration:g} s of frames to {2 * args.partitions} files ...",
                  flush=True)
            data = write_waveform_files(Path(tmp) / "input", assets=args.assets, duration_s=args.duration,
                                        partitions=args.partitions, asset_prefix=prefix,
                                        by_worker=2 if args.files_by_worker else 0)
        else:
            print(f"writing {args.assets} assets x {args.duration:g} s of frames to the broker ...", flush=True)
            data = preload_waveforms(broker.bootstrap, assets=args.assets, duration_s=args.duration,
                                     partitions=args.partitions, slice_assets=1, slice_duration_s=1.0,
                                     asset_prefix=prefix)
        runs = []
        for n in (1, 2):
            r = measure(broker.bootstrap, Path(tmp), data, n, epoch_s=args.epoch_s, model=args.model,
                        by_worker=args.files_by_worker)
            runs.append(r)
            print(f"  {n} process(es): {r['frames_per_s']:,} frames/s ({r['samples_per_s'] / 1e6:.1f} M samples/s) "
                  f"over {r['span_s']} s, {r['wall_s']} s wall, {r['cpu_s']} CPU s; assets per worker "
                  f"{r['asset_split']}, messages read per process {r['messages_per_process']}", flush=True)
    ratio = runs[1]["frames_per_s"] / runs[0]["frames_per_s"]
    print(f"  2 processes / 1 process = {ratio:.2f}x")
    out = save("scaling" if args.input == "kafka" else "scaling-files",
               {"input": args.input, "files_by_worker": args.files_by_worker, "workload": data.summary(), "runs": runs,
                "ratio_2_over_1": round(ratio, 3)},
               args.json)
    print(f"  saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

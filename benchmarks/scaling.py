"""Scaling: the waveform flow with 1 process vs 2 processes (one worker each).

``--input kafka`` (the default): the input (N assets x D s of 10 kHz 3-axis frames) is written
to a Tansu broker once; each configuration then runs ``aiotstream run --once`` over it (through
:mod:`benchmarks.flowrun`, which times the flow's source) to its own output topics.
``--input files``: the same workload (same simulator and seed, same partitions) is written as
replay files, one frame file and one readings file per partition, and the flows replay them at
full speed (``inputs.kind = "files"``, speed 0). This leaves the broker's fetch work (it shares
the two cores) out of the input path. ``--output files`` also writes the outputs as JSONL files
instead of the broker's topics, so that only the flow runs on the two cores, as with a broker on
other machines. In a 2-process run each process reads its share of the partitions.

``--partitioner aiotstream`` (the default) puts each asset in the partition that the process owning
it reads (co-partitioning, :mod:`aiotstream.routing`), as ``aiotstream simulate`` does;
``--partitioner kafka`` uses librdkafka's default (CRC32 of the key), as a producer that knows
nothing of the cluster would, and about half the frames then cross between the processes. Each
run reports ``items_crossed``: frames and readings analyzed by another process than the one
that read them.

Throughput is frames over the span from the first input batch to the end of the run, so process
start-up (imports, connecting) is left out. The spread of the score records' ``produced_at``
gives a second, independent figure. Both runs happen in this one invocation, so their ratio is
measured side by side. Each run also reports how many assets Bytewax routes to each worker
(``asset_split``), how many input messages each process read, and per process the thread CPU time
of each Python step (``step_cpu_s``) and the sink's wall time. ``benchmarks.e2e`` calls
:func:`run_flow` / :func:`flow_figures` for its own runs.

    python -m benchmarks.scaling --assets 40 --duration 120
    python -m benchmarks.scaling --input files --duration 480
    python -m benchmarks.scaling --input files --output files --duration 480
    python -m benchmarks.scaling --input files --duration 480 --partitioner kafka
"""
from __future__ import annotations

import argparse
import hashlib
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
    PARTITIONERS,
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
             timeout_s: float = 600.0, tmp: Path | None = None, out_dir: Path | None = None) -> dict[str, Any]:
    """Run ``aiotstream run --once`` for ``site`` as ``processes`` processes; return timings and usage.
    ``out_dir``: outputs as JSONL files there instead of the broker's topics."""
    tmp = tmp or site.parent
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
    children, stats_paths = [], []
    for i in range(processes):
        stats = tmp / f"{site.stem}-p{i}-stats.json"
        stats_paths.append(stats)
        cmd = [sys.executable, "-m", "benchmarks.flowrun", str(stats), "run", "--site", str(site),
               "--brokers", brokers, "--once", "--epoch-s", str(epoch_s), "-w", str(workers)]
        if out_dir is not None:
            cmd += ["--out-dir", str(out_dir)]
        if processes > 1:
            cmd += ["-i", str(i), "-a", addresses]
        children.append(spawn(cmd))
    measured = [wait(c, timeout_s).check(f"aiotstream run (process {i})") for i, c in enumerate(children)]
    stats = [orjson.loads(p.read_bytes()) for p in stats_paths]
    analyzed, crossed = items_crossed(stats)
    firsts = [s["t_first"] for s in stats if s["t_first"] is not None]
    span = max(s["t_done"] for s in stats) - min(firsts)
    return {
        "processes": processes, "workers_per_process": workers, "epoch_s": epoch_s,
        "messages": sum(s["messages"] for s in stats), "input_bytes": sum(s["bytes"] for s in stats),
        "messages_per_process": [s["messages"] for s in stats],
        "items_analyzed": analyzed, "items_crossed": crossed,
        "span_s": round(span, 3),
        "startup_s": round(max(s["t_first"] - s["t_start"] for s in stats if s["t_first"] is not None), 3),
        "wall_s": round(max(m.wall_s for m in measured), 3),
        "cpu_s": round(sum(m.cpu_s for m in measured), 3),
        "peak_rss_mb": round(max(m.maxrss_mb for m in measured), 1),
        "per_process": [{**m.summary(), **_timeline(st, min(firsts)), "step_cpu_s": st.get("step_cpu_s"),
                         "step_cpu_sampled": st.get("step_cpu_sampled"),
                         "analyze_calls": (st.get("analyze_calls") or [None])[0],
                         "sink": st.get("sink"), "gc": st.get("gc")}
                        for m, st in zip(measured, stats)],
    }


def items_crossed(stats: list[dict[str, Any]]) -> tuple[int, int]:
    """``(items analyzed, items analyzed by another process than the one that decoded them)`` from each
    process's ``benchmarks.flowrun`` counts; an asset is analyzed by one process, so what that process did not
    decode itself crossed."""
    analyzed = sum(n for s in stats for n in s["analyzed"].values())
    local = sum(min(n, s["decoded"].get(a, 0)) for s in stats for a, n in s["analyzed"].items())
    return analyzed, analyzed - local


def _timeline(stats: dict[str, Any], t0: float) -> dict[str, Any]:
    """When a process read its first and last input batch and when it finished, in s from the run's first batch."""
    return {k: round(stats[src] - t0, 3) if stats.get(src) is not None else None
            for k, src in (("first_batch_s", "t_first"), ("last_batch_s", "t_last"), ("done_s", "t_done"))}


def _jsonl(directory: Path, kind: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for path in sorted(directory.glob(f"{kind}*.jsonl"))
            for line in path.read_bytes().splitlines() if line.strip()]


def scores_digest(scores: list[dict[str, Any]]) -> str:
    """What a run decided, as 16 hex digits: each window's (asset, start, score, anomalous, drift, values), in
    order, so two checkouts' runs over the same data can be told identical or not.

    >>> scores_digest([]) == scores_digest([]) != scores_digest([{"asset": "a", "window": {"start_ns": 1}}])
    True
    """
    rows = sorted(((r.get("asset"), (r.get("window") or {}).get("start_ns"), r.get("score"), r.get("anomalous"),
                    r.get("drift"), r.get("values")) for r in scores), key=lambda t: (str(t[0]), t[1] or 0))
    return hashlib.sha256(orjson.dumps(rows, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def score_figures(brokers: str, site_id: str, out_dir: Path | None = None) -> dict[str, Any]:
    """Windows, frames and the produced_at estimator from the score (and alert) records of a run (on the
    broker, or in ``out_dir``)."""
    if out_dir is None:
        scores = [r for _, r in read_records(brokers, f"{site_id}.scores")]
        alerts = [r for _, r in read_records(brokers, f"{site_id}.alerts")]
    else:
        scores, alerts = _jsonl(out_dir, "scores"), _jsonl(out_dir, "alerts")
    out: dict[str, Any] = {"windows": len(scores), "frames_in_windows": sum(r.get("frames", 0) for r in scores),
                           "alerts": len(alerts), "scores_digest": scores_digest(scores)}
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
            model: str = "hst", label: str = "", partitions: int = 3, poll_batch: int = 1000,
            output: str = "kafka", poll_bytes: int | None = None) -> dict[str, Any]:
    """One measured run of our flow over the preloaded waveform data (topics or files), its outputs to the
    broker (``output="kafka"``) or to JSONL files."""
    site_id = f"bench-ours{label}-{processes}p"
    site = waveform_site(tmp, site_id, data, model=model, partitions=partitions, poll_batch=poll_batch,
                         poll_bytes=poll_bytes)
    out_dir = tmp / f"{site_id}-out" if output == "files" else None
    if out_dir is None:
        create_topics(brokers, output_topics(site_id), partitions)
    run = run_flow(brokers, site, processes, epoch_s, tmp=tmp, out_dir=out_dir)
    res = {**run, **flow_figures(run, data.frames, data.readings), **score_figures(brokers, site_id, out_dir),
           "model": model, "site": site_id, "output": output, "asset_split": asset_split(data.assets, processes)}
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
    ap.add_argument("--poll-batch", type=int, default=1000, help="inputs.poll_batch: messages per poll and partition")
    ap.add_argument("--partitioner", choices=PARTITIONERS, default="aiotstream",
                    help="aiotstream: each asset in the partition its owner reads (default); kafka: librdkafka's "
                         "CRC32 of the key, so about half the frames cross between the processes")
    ap.add_argument("--output", choices=["kafka", "files"], default="kafka",
                    help="kafka: outputs to the broker's topics (default; the broker shares the cores); files: JSONL "
                         "files, as with a broker on other machines")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    prefix = args.prefix or DEFAULT_PREFIX[args.input]
    with TemporaryDirectory() as tmp, TansuBroker() as broker:
        data: WaveformData | WaveformFiles
        if args.input == "files":
            print(f"writing {args.assets} assets x {args.duration:g} s of frames to {2 * args.partitions} files ...",
                  flush=True)
            data = write_waveform_files(Path(tmp) / "input", assets=args.assets, duration_s=args.duration,
                                        partitions=args.partitions, asset_prefix=prefix,
                                        partitioner=args.partitioner)
        else:
            print(f"writing {args.assets} assets x {args.duration:g} s of frames to the broker ...", flush=True)
            data = preload_waveforms(broker.bootstrap, assets=args.assets, duration_s=args.duration,
                                     partitions=args.partitions, slice_assets=1, slice_duration_s=1.0,
                                     asset_prefix=prefix, partitioner=args.partitioner)
        runs = []
        for n in (1, 2):
            r = measure(broker.bootstrap, Path(tmp), data, n, epoch_s=args.epoch_s, model=args.model,
                        poll_batch=args.poll_batch, output=args.output)
            runs.append(r)
            print(f"  {n} process(es): {r['frames_per_s']:,} frames/s ({r['samples_per_s'] / 1e6:.1f} M samples/s) "
                  f"over {r['span_s']} s, {r['wall_s']} s wall, {r['cpu_s']} CPU s; assets per worker "
                  f"{r['asset_split']}, messages read per process {r['messages_per_process']}, "
                  f"{r['items_crossed']:,} of {r['items_analyzed']:,} items crossed processes", flush=True)
    ratio = runs[1]["frames_per_s"] / runs[0]["frames_per_s"]
    print(f"  2 processes / 1 process = {ratio:.2f}x")
    out = save("scaling" if args.input == "kafka" else "scaling-files",
               {"input": args.input, "output": args.output, "partitioner": args.partitioner, "workload": data.summary(), "runs": runs,
                "ratio_2_over_1": round(ratio, 3)},
               args.json)
    print(f"  saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

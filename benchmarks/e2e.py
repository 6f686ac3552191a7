"""End-to-end benchmark: our flows and their peers side by side, same workload, same broker, same run.

    aiotstream bench e2e [--json FILE] [--markdown FILE] [--plot FILE] [--quick]
    python -m benchmarks [same options]

One Tansu broker (loopback, memory storage) for the whole run; the workloads are written to it
once and every contender reads them from there:

1. waveform: N assets x 3 channels x 10 kHz in 1024-sample frames -> the predictive-maintenance
   flow (``aiotstream run --once``) -> output topics. 1 process with the default model (zscore),
   1 process with River HalfSpaceTrees (the peers' model), 2 processes (scaling).
2. peers on the same frames: a plain numpy batch job (the limit), Bytewax written per item as
   its docs go (on a slice: it is ~100x slower), Quix Streams + River (own venv).
3. scalar: JSON readings at thousands of keys through ``--scalar-flow``.
4. latency at half the measured 1-process rate: paced producer, tailing flow, p50/p95/p99.
5. memory: RSS against the number of assets (soak-style runs in their own processes).

Rates leave process start-up out: they run from a contender's first input batch to the end of
its work. CPU seconds and peak RSS come from the kernel (wait4) for each process. The results
go to ``benchmarks/results/<date>-<machine>.json`` (plus .md and .png beside it, unless given).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiotstream.io.broker import TansuBroker
from benchmarks import common, latency, scaling, soak
from benchmarks.peers import quixenv
from benchmarks.scalar import SCALAR_FLOWS, measure_scalar
from benchmarks.workload import (
    CHANNELS,
    FRAME_SAMPLES,
    RATE_HZ,
    WaveformData,
    create_topics,
    preload_scalars,
    preload_waveforms,
    read_records,
)

TARGETS = {
    "waveform_samples_per_s_per_worker": 20e6,
    "ratio_vs_bytewax_items": 20.0,
    "ratio_vs_quix": 5.0,
    "scalar_events_per_s_per_worker": 250e3,
    "latency_p99_ms": 250.0,
}


@dataclass
class Sizes:
    assets: int = 40
    duration_s: float = 60.0
    partitions: int = 6
    slice_assets: int = 2
    slice_duration_s: float = 8.0
    scalar_keys: int = 2000
    scalar_rate_hz: float = 10.0
    scalar_duration_s: float = 10.0
    latency_duration_s: float = 20.0
    latency_warmup_s: float = 6.0
    latency_max_assets: int = 400
    latency_runs: tuple[tuple[float, int | None], ...] = ((0.05, 10), (0.05, None), (1.0, None))
    memory_assets: tuple[int, ...] = (500, 2000, 8000)
    memory_rounds: int = 3


QUICK = Sizes(assets=3, duration_s=4.0, partitions=2, slice_assets=1, slice_duration_s=1.0, scalar_keys=50,
              scalar_rate_hz=5.0, scalar_duration_s=4.0, latency_duration_s=5.0, latency_warmup_s=2.0,
              latency_max_assets=20, latency_runs=((0.1, 10),), memory_assets=(50, 200), memory_rounds=2)


class Progress:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        print(f"[{time.perf_counter() - self.t0:6.1f} s] {msg}", flush=True)


def _rate(stats: dict[str, Any], samples: int) -> dict[str, Any]:
    span = stats["t_done"] - stats["t_first"]
    sps = samples / span
    return {"span_s": round(span, 3), "samples_per_s": round(sps), "samples_per_s_per_worker": round(sps),
            "frames_per_s": round(sps / (CHANNELS * FRAME_SAMPLES)),
            "startup_s": round(stats["t_first"] - stats["t_start"], 3) if "t_start" in stats else None}


def run_numpy(brokers: str, tmp: Path, data: WaveformData) -> dict[str, Any]:
    stats_path = tmp / "numpy.json"
    m = common.run_measured([sys.executable, "-m", "benchmarks.peers.numpy_batch", "--brokers", brokers,
                             "--topic", data.topic, "--stats", str(stats_path)], timeout=600).check("numpy peer")
    st = json.loads(stats_path.read_text())
    return {"peer": "numpy batch", "input": data.topic, "frames": st["frames"], "samples": st["samples"],
            "windows": st["windows"], "fetch_s": round(st["fetch_s"], 3), "decode_s": round(st["decode_s"], 3),
            "compute_s": round(st["compute_s"], 3),
            "compute_samples_per_s": round(st["samples"] / st["compute_s"]),
            "decode_compute_samples_per_s": round(st["samples"] / (st["decode_s"] + st["compute_s"])),
            **_rate(st, st["samples"]), **m.summary()}


def run_bytewax_items(brokers: str, tmp: Path, data: WaveformData) -> dict[str, Any]:
    out = "bench-peer-bytewax.scores"
    create_topics(brokers, [out], 3)
    stats_path = tmp / "bytewax-items.json"
    m = common.run_measured([sys.executable, "-m", "benchmarks.peers.bytewax_items", "--brokers", brokers,
                             "--topic", data.slice_topic, "--out", out, "--stats", str(stats_path)],
                            timeout=900).check("Bytewax per-item peer")
    st = json.loads(stats_path.read_text())
    outs = read_records(brokers, out)
    return {"peer": "Bytewax per item + River", "input": data.slice_topic, "frames": st["messages"],
            "samples": st["samples"], "windows": len(outs), "late_readings": st.get("late", 0),
            **_rate(st, st["samples"]), **m.summary()}


def run_quix(brokers: str, tmp: Path, data: WaveformData, python: Path) -> dict[str, Any]:
    out = "bench-peer-quix.scores"
    create_topics(brokers, [out], 3)
    stats_path = tmp / "quix.json"
    per_asset = data.frames // len(data.assets)
    last_t0_s = (per_asset - 1) * FRAME_SAMPLES / RATE_HZ
    expect = len(data.assets) * int(last_t0_s)  # each asset's last window stays open in Quix
    m = common.run_measured([str(python), str(common.ROOT / "benchmarks" / "peers" / "quix_river.py"),
                             "--brokers", brokers, "--topic", data.topic, "--out", out, "--stats", str(stats_path),
                             "--expect-windows", str(expect), "--idle-s", "10"], timeout=900).check("Quix peer")
    st = json.loads(stats_path.read_text())
    outs = read_records(brokers, out)
    return {"peer": "Quix Streams + River", "input": data.topic, "frames": st["messages"], "samples": st["samples"],
            "windows": len(outs), "windows_expected": expect, "guarantee": st["guarantee"],
            "changelog": st["changelog"], **_rate(st, st["samples"]), **m.summary()}


def _ratio(a: float | None, b: float | None) -> float | None:
    return float(f"{a / b:.3g}") if a and b else None


def summarise(res: dict[str, Any]) -> dict[str, Any]:
    """Headline figures, ratios and where we stand against the issue's targets."""
    w = res.get("waveform", {})
    ours = (w.get("ours_1p") or {}).get("samples_per_s_per_worker")
    ours_hst = (w.get("ours_1p_hst") or {}).get("samples_per_s_per_worker")
    peers = res.get("peers", {})
    get = lambda k, f="samples_per_s_per_worker": (peers.get(k) or {}).get(f)
    ratios = {
        "ours_vs_bytewax_items": _ratio(ours, get("bytewax_items")),
        "ours_vs_quix": _ratio(ours, get("quix")),
        "ours_vs_numpy_fetch_decode_compute": _ratio(ours, get("numpy")),
        "ours_vs_numpy_compute_only": _ratio(ours, get("numpy", "compute_samples_per_s")),
        "ours_hst_vs_bytewax_items": _ratio(ours_hst, get("bytewax_items")),
        "ours_hst_vs_quix": _ratio(ours_hst, get("quix")),
        "two_processes_vs_one": _ratio((w.get("ours_2p") or {}).get("samples_per_s"), (w.get("ours_1p") or {}).get("samples_per_s")),
    }
    lat = res.get("latency", {}).get("runs", [])
    tuned = next((r for r in lat if r.get("score", {}).get("n")), None)
    scalar = (res.get("scalar") or {}).get("events_per_s_per_worker")
    standing = {
        "waveform_samples_per_s_per_worker": {"target": TARGETS["waveform_samples_per_s_per_worker"], "measured": ours},
        "ratio_vs_bytewax_items": {"target": TARGETS["ratio_vs_bytewax_items"], "measured": ratios["ours_vs_bytewax_items"]},
        "ratio_vs_quix": {"target": TARGETS["ratio_vs_quix"], "measured": ratios["ours_vs_quix"]},
        "scalar_events_per_s_per_worker": {"target": TARGETS["scalar_events_per_s_per_worker"], "measured": scalar},
        "latency_p99_ms": {"target": TARGETS["latency_p99_ms"],
                           "measured": tuned["score"].get("p99_ms") if tuned else None,
                           "at": {"epoch_s": tuned["epoch_s"], "fetch_wait_max_ms": tuned["fetch_wait_max_ms"]}
                           if tuned else None},
    }
    for k, s in standing.items():
        m = s["measured"]
        s["met"] = None if m is None else (m < s["target"] if k == "latency_p99_ms" else m >= s["target"])
    return {"ratios": ratios, "targets": standing}


def main(argv: list[str] | None = None, parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> int:
    """``parser_class``: the CLI passes its own (one-line errors)."""
    from aiotstream.cli import count, number, out_file

    ap = parser_class(prog="aiotstream bench e2e", description=__doc__.splitlines()[0])
    ap.add_argument("--json", metavar="FILE", help="results JSON (default benchmarks/results/<date>-<machine>.json)")
    ap.add_argument("--markdown", metavar="FILE", help="report in Markdown (default: beside the JSON, .md)")
    ap.add_argument("--plot", metavar="FILE", help="PNG of throughput, latency, memory (default: beside the JSON)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks that the harness works, figures mean nothing")
    ap.add_argument("--assets", type=count(1, 100_000), help="waveform assets (default 40)")
    ap.add_argument("--duration", type=number(0, 86_400, above=True), help="waveform seconds of event time (default 60)")
    ap.add_argument("--scalar-flow", choices=sorted(SCALAR_FLOWS), default="pm-readings",
                    help="flow for the scalar workload (default pm-readings; building: the energy flow)")
    ap.add_argument("--skip", default="", help="comma-separated sections to leave out: "
                    "hst,scaling,numpy,bytewax,quix,scalar,latency,memory")
    ap.add_argument("--quix-python", help="python of an existing Quix Streams environment "
                    "(default: benchmarks/.venv-quix, created on first use)")
    ap.add_argument("--update-readme", metavar="README", help="also replace the results block of this README "
                    "(between <!-- results:begin --> and <!-- results:end -->)")
    args = ap.parse_args(argv)
    for option in ("json", "markdown", "plot"):  # before minutes of work, not after
        if getattr(args, option):
            out_file(getattr(args, option), f"--{option}")
    sizes = replace(QUICK if args.quick else Sizes())
    if args.assets:
        sizes.assets = args.assets
    if args.duration:
        sizes.duration_s = args.duration
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    stamp = datetime.now(UTC)
    json_path = Path(args.json) if args.json else common.RESULTS / f"{stamp:%Y-%m-%d}-{common.machine_name()}.json"
    md_path = Path(args.markdown) if args.markdown else json_path.with_suffix(".md")
    png_path = Path(args.plot) if args.plot else json_path.with_suffix(".png")
    say = Progress()
    res: dict[str, Any] = {
        "benchmark": "e2e", "date": stamp.isoformat(timespec="seconds"), "machine": common.machine(),
        "git": common.git_rev(), "quick": args.quick,
        "command": "aiotstream bench e2e " + " ".join(sys.argv[1:] if argv is None else argv),
        "sizes": {k: v for k, v in vars(sizes).items()}, "errors": {},
    }

    def section(name: str, fn, *a, **kw):
        try:
            return fn(*a, **kw)
        except Exception as exc:  # noqa: BLE001 - a failed contender is reported, the others still run
            res["errors"][name] = f"{type(exc).__name__}: {exc}"[:4000]
            say(f"  {name} FAILED: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            return None

    quix_python: Path | None = None
    if "quix" not in skip:
        quix_python = Path(args.quix_python) if args.quix_python else section("quix_env", quixenv.ensure, log=say)

    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmpdir, TansuBroker() as broker:
        tmp, b = Path(tmpdir), broker.bootstrap
        say(f"broker (Tansu, memory storage) on {b}; writing {sizes.assets} assets x {sizes.duration_s:g} s of "
            f"3 x 10 kHz frames ...")
        data = preload_waveforms(b, assets=sizes.assets, duration_s=sizes.duration_s, partitions=sizes.partitions,
                                 slice_assets=sizes.slice_assets, slice_duration_s=sizes.slice_duration_s)
        res["workload"] = {"waveform": data.summary()}
        say(f"  {data.frames:,} frames ({data.samples / 1e6:,.1f} M samples, {data.bytes / 1e6:,.0f} MB) + "
            f"{data.readings:,} readings in {data.produce_s:.1f} s")
        wave: dict[str, Any] = {}
        res["waveform"] = wave

        def ours(key: str, processes: int, model: str) -> None:
            r = section(key, scaling.measure, b, tmp, data, processes, model=model, label=f"-{model}",
                        partitions=sizes.partitions)
            if r:
                wave[key] = r
                say(f"  {r['samples_per_s_per_worker'] / 1e6:7.2f} M samples/s per worker ({r['frames_per_s']:,} "
                    f"frames/s, {processes} process(es), {model}); {r['cpu_s']:.1f} CPU s, peak RSS "
                    f"{r['peak_rss_mb']:.0f} MB, {r['windows']:,} windows, {r['alerts']} alerts")

        say("waveform, ours: aiotstream run --once, 1 process, default model (zscore) ...")
        ours("ours_1p", 1, "zscore")
        if "hst" not in skip:
            say("waveform, ours: 1 process, River HalfSpaceTrees (the peers' model) ...")
            ours("ours_1p_hst", 1, "hst")
        if "scaling" not in skip:
            say("waveform, ours: 2 processes x 1 worker ...")
            ours("ours_2p", 2, "zscore")

        peers: dict[str, Any] = {}
        res["peers"] = peers
        if "numpy" not in skip:
            say("peer: numpy batch over the same frames (fetch, decode, compute) ...")
            r = section("numpy", run_numpy, b, tmp, data)
            if r:
                peers["numpy"] = r
                say(f"  compute {r['compute_samples_per_s'] / 1e6:.1f} M samples/s; with fetch and decode "
                    f"{r['samples_per_s'] / 1e6:.1f} M samples/s")
        if "bytewax" not in skip:
            say(f"peer: Bytewax per item + River on the slice ({data.slice_frames} frames) ...")
            r = section("bytewax_items", run_bytewax_items, b, tmp, data)
            if r:
                peers["bytewax_items"] = r
                say(f"  {r['samples_per_s'] / 1e6:.3f} M samples/s, {r['windows']} windows, "
                    f"{r['late_readings']} late readings")
        if "quix" not in skip and quix_python is not None:
            say("peer: Quix Streams + River (own venv) ...")
            r = section("quix", run_quix, b, tmp, data, quix_python)
            if r:
                peers["quix"] = r
                say(f"  {r['samples_per_s'] / 1e6:.2f} M samples/s, {r['windows']}/{r['windows_expected']} windows")

        if "scalar" not in skip:
            keys, rate, dur = sizes.scalar_keys, sizes.scalar_rate_hz, sizes.scalar_duration_s
            say(f"scalar: {keys:,} keys x {rate:g} Hz x {dur:g} s of JSON readings -> {args.scalar_flow} ...")
            preload = SCALAR_FLOWS[args.scalar_flow].preload or preload_scalars
            sd = preload(b, keys=keys, rate_hz=rate, duration_s=dur, partitions=sizes.partitions)
            res["workload"]["scalar"] = sd.summary()
            r = section("scalar", measure_scalar, b, tmp, sd, args.scalar_flow, partitions=sizes.partitions)
            if r:
                res["scalar"] = r
                say(f"  {r['events_per_s_per_worker']:,} events/s per worker; {r['cpu_s']:.1f} CPU s, peak RSS "
                    f"{r['peak_rss_mb']:.0f} MB")

        if "latency" not in skip and wave.get("ours_1p"):
            offered = 0.5 * wave["ours_1p"]["samples_per_s"]
            lat_runs = []
            res["latency"] = {"offered_samples_per_s": round(offered), "runs": lat_runs}
            for i, (epoch, fetch_wait) in enumerate(sizes.latency_runs):
                say(f"latency at half load ({offered / 1e6:.1f} M samples/s), epoch {epoch:g} s, "
                    f"fetch.wait.max.ms {fetch_wait or 'default (500)'} ...")
                r = section(f"latency_{i}", latency.run_latency, b, tmp, offered_samples_per_s=offered,
                            epoch_s=epoch, fetch_wait_ms=fetch_wait, duration_s=sizes.latency_duration_s,
                            warmup_s=sizes.latency_warmup_s, max_assets=sizes.latency_max_assets, tag=str(i),
                            partitions=sizes.partitions)
                if r:
                    lat_runs.append(r)
                    s = r["score"]
                    say(f"  {r['assets']} assets x {r['speed']:g} real time: p50 {s.get('p50_ms')} ms, p95 "
                        f"{s.get('p95_ms')} ms, p99 {s.get('p99_ms')} ms over {s.get('n', 0)} windows")

    if "memory" not in skip:
        points = []
        res["memory"] = {"method": "benchmarks.soak in its own process: every asset sends one 1 s window per "
                                   "round; RSS after the last round (all assets' state held) and the process's "
                                   "peak (VmHWM)", "points": points}
        with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmpdir:
            for n in sizes.memory_assets:
                say(f"memory: {n:,} assets x {sizes.memory_rounds} rounds ...")
                r = section(f"memory_{n}", soak.memory_point, n, sizes.memory_rounds, tmpdir)
                if r:
                    points.append(r)
                    say(f"  RSS {r['final_rss_mb']:.0f} MB after the last round, peak {r['peak_rss_mb']:.0f} MB")
        if len(points) >= 2:
            a, z = points[0], points[-1]
            res["memory"]["mb_per_1000_assets"] = round((z["final_rss_mb"] - a["final_rss_mb"])
                                                        / (z["assets"] - a["assets"]) * 1000, 2)

    res["summary"] = summarise(res)
    res["elapsed_s"] = round(time.perf_counter() - say.t0, 1)
    res["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]  # other work on the machine skews figures
    from benchmarks import report

    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(res, indent=2) + "\n")
    plotted = section("plot", report.plot, res, png_path)
    md = report.markdown(res, png_path if plotted else None, md_path.parent)
    md_path.write_text(md)
    if args.update_readme:
        readme = Path(args.update_readme)
        report.update_readme(readme, report.markdown(res, png_path if plotted else None, readme.parent))
    say(f"done in {res['elapsed_s']} s: {json_path}, {md_path}" + (f", {png_path}" if plotted else ""))
    for k, s in res["summary"]["targets"].items():
        print(f"  {k:36s} target {s['target']:>12,g}  measured {s['measured']!s:>14}  "
              f"{'met' if s['met'] else 'NOT met' if s['met'] is not None else 'n/a'}")
    if res["errors"]:
        print(f"  errors in: {', '.join(res['errors'])}", file=sys.stderr)
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

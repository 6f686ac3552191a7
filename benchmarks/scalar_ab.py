"""What the streaming detector on scalar readings (issue 17, ``[scalar]``) costs the existing workloads, A/B.

``waveform``: simulated files (``aiotstream simulate --out-dir``: 3 x 10 kHz frames + 1 Hz temperature) through
``aiotstream run --once`` with a files input, timed by :mod:`benchmarks.flowrun` (rate from the first batch
to the end; the analyze step's CPU), ``[scalar]`` on (the default) and off, alternating rounds.

``kafka``: :func:`benchmarks.scalar.measure_scalar` (the e2e harness's scalar section: JSON readings
preloaded into Tansu, ``aiotstream run --once``) for ``pm-readings`` (detector on) and
``pm-readings-nodetect``, alternating, on the same preloaded readings; or any flows, poll batches and
checkouts (``--tree``), every combination once per round.

    python -m benchmarks.scalar_ab waveform --assets 20 --duration 400 --rounds 4
    python -m benchmarks.scalar_ab waveform --vary model    # window detector: calibrated (on) vs zscore (off)
    python -m benchmarks.scalar_ab kafka --keys 2000 --rate 10 --duration 10
    python -m benchmarks.scalar_ab kafka --duration 150 --flows pm-readings --poll-batch 1000 10000 \
        --tree /tmp/base --tree .      # two checkouts (a worktree of main, this one) side by side

One JSON line per run on stdout (and appended to ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import emit_json

REPO = Path(__file__).resolve().parent.parent




def waveform(args: argparse.Namespace) -> None:
    from aiotstream.config import default_site

    env = dict(os.environ, PYTHONPATH=str(REPO), OPENBLAS_NUM_THREADS="1")
    with tempfile.TemporaryDirectory(prefix="bench-scalar-ab-") as tmp:
        t = Path(tmp)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "aiotstream.cli",
                "simulate",
                "--assets",
                str(args.assets),
                "--duration",
                str(args.duration),
                "--faults",
                "2",
                "--seed",
                "5",
                "--out-dir",
                str(t / "in"),
            ],
            check=True,
            env=env,
            cwd=REPO,
            capture_output=True,
        )
        frames = json.loads((t / "in" / "truth.json").read_text())["counts"]["frames"]
        cfg = default_site(
            args.assets,
            inputs={
                "tail": False,
                "kind": "files",
                "files": {"paths": [str(t / "in" / "waveforms.bin"), str(t / "in" / "readings.jsonl")]},
            },
        )
        base = cfg.model_dump(mode="json", exclude_defaults=True)
        base.pop("scalar", None)
        base["inputs"]["kind"] = "files"
        base.pop("model", None)
        if args.vary == "model":  # the window detector: calibrated (the default, "on") against zscore ("off")
            variants = (("on", {}), ("off", {"model": {"kind": "zscore"}}))
        else:
            variants = (("on", {}), ("off", {"scalar": {"enabled": False}}))
        for name, extra in variants:
            (t / f"site-{name}.json").write_text(json.dumps({**base, **extra}))
        for i in range(args.rounds):
            for name in ("on", "off") if i % 2 == 0 else ("off", "on"):
                st = t / f"stats-{name}-{i}.json"
                p = subprocess.run(
                    [
                        "/usr/bin/time",
                        "-f",
                        "%U %S %M",
                        sys.executable,
                        "-m",
                        "benchmarks.flowrun",
                        str(st),
                        "run",
                        "--site",
                        str(t / f"site-{name}.json"),
                        "--once",
                        "--out-dir",
                        str(t / f"out-{name}-{i}"),
                    ],
                    cwd=REPO,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if p.returncode != 0:
                    raise RuntimeError(p.stderr[-2000:])
                u, sy, rss = p.stderr.strip().splitlines()[-1].split()
                r = json.loads(st.read_text())
                n = frames or r["messages"]
                span = r["t_done"] - r["t_first"]
                emit_json(
                    {
                        "workload": "waveform",
                        args.vary: name,
                        "round": i,
                        "frames": n,
                        "frames_per_s": round(n / span),
                        "span_s": round(span, 3),
                        "analyze_cpu_s": round(r["step_cpu_s"]["analyze"], 3),
                        "cpu_s": round(float(u) + float(sy), 2),
                        "peak_rss_mb": int(rss) // 1024,
                        "load": round(os.getloadavg()[0], 2),
                    },
                    args.json,
                )


def kafka(args: argparse.Namespace) -> None:
    from aiotstream.io.broker import TansuBroker
    from benchmarks import common, scalar
    from benchmarks.workload import preload_scalars

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    trees = common.checkouts(args.tree)
    # every (tree, flow, poll batch) in each round, in the same order: drift hits all of them alike
    variants = [(t, f, pb) for t in trees for f in args.flows.split(",") for pb in args.poll_batch]
    for _, f, _ in variants:
        if f not in scalar.SCALAR_FLOWS:
            raise SystemExit(f"--flows: unknown flow {f!r} (one of {', '.join(scalar.SCALAR_FLOWS)})")
    with tempfile.TemporaryDirectory(prefix="bench-scalar-ab-") as tmp, TansuBroker() as broker:
        sd = preload_scalars(
            broker.bootstrap, keys=args.keys, rate_hz=args.rate, duration_s=args.duration, partitions=args.partitions
        )
        i = 0
        for rnd in range(args.rounds):
            for tree, flow, pb in variants:
                d = Path(tmp) / f"r{i}"
                d.mkdir()
                i += 1
                # the flow runs from ``tree`` (spawn: cwd and PYTHONPATH); the site is this checkout's, with
                # the poll batch asked for
                common.run_from(tree)
                r = scalar.measure_scalar(broker.bootstrap, d, sd, flow, partitions=args.partitions, tag=f"-{i}",
                                          poll_batch=pb, settings=args.set)
                emit_json(
                    {
                        "workload": "kafka-scalar",
                        "tree": str(tree),
                        "round": rnd,
                        "poll_batch": pb,
                        **{
                            k: r[k]
                            for k in (
                                "events_per_s_per_worker",
                                "cpu_us_per_event",
                                "peak_rss_mb",
                                "messages",
                                "span_s",
                                "cpu_s",
                            )
                        },
                        "flow": flow,
                        "settings": args.set,
                        "keys": args.keys,
                        "rate_hz": args.rate,
                        "duration_s": args.duration,
                        # (one call per asset and activation of the analyze step: its fixed cost is spread
                        # over the readings a call carries; None from a tree whose harness did not count)
                        "readings_per_call": _per_call(r),
                        # where the worker's CPU went (the harness's step timing) and what the garbage
                        # collector took of it (collections by generation, CPU s)
                        "step_cpu_s": _first(r, "step_cpu_s"),
                        "gc": _first(r, "gc"),
                        "load": round(os.getloadavg()[0], 2),
                    },
                    args.json,
                )


def _first(run: dict, key: str) -> Any:
    """``key`` of the run's first (here: only) process's figures, seconds rounded to ms; None from an older
    harness."""
    return _ms((run.get("per_process") or [{}])[0].get(key))


def _ms(v: Any) -> Any:
    """Floats in ``v`` (a dict, list or number) rounded to 3 places."""
    if isinstance(v, float):
        return round(v, 3)
    if isinstance(v, dict):
        return {k: _ms(x) for k, x in v.items()}
    return [_ms(x) for x in v] if isinstance(v, list) else v


def _per_call(run: dict) -> float | None:
    """Readings per call of the analyze step in a :func:`benchmarks.scalar.measure_scalar` run."""
    calls = [p.get("analyze_calls") for p in run.get("per_process", [])]
    if not calls or None in calls or not sum(calls):
        return None
    return round(run["messages"] / sum(calls), 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scalar_ab", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    w = sub.add_parser("waveform")
    w.add_argument("--assets", type=int, default=20)
    w.add_argument("--duration", type=float, default=400.0)
    w.add_argument("--rounds", type=int, default=4)
    w.add_argument("--vary", choices=("scalar", "model"), default="scalar",
                   help="scalar: [scalar] on/off; model: [model] kind calibrated/zscore")
    k = sub.add_parser("kafka")
    k.add_argument("--keys", type=int, default=2000)
    k.add_argument("--rate", type=float, default=10.0)
    k.add_argument("--duration", type=float, default=10.0)
    k.add_argument("--rounds", type=int, default=2)
    k.add_argument("--partitions", type=int, default=6)
    k.add_argument("--flows", default="pm-readings,pm-readings-nodetect",
                   help="comma-separated benchmarks.scalar flows to alternate")
    k.add_argument("--set", action="append", default=[], metavar="PATH=JSON",
                   help="a setting of the flows' sites, e.g. scalar.block_s=60 or kpi.periods_s=[60] (repeat)")
    k.add_argument("--poll-batch", type=int, nargs="+", default=[10_000],
                   help="inputs.poll_batch values to alternate (default: 10,000, as benchmarks.scalar's sites)")
    k.add_argument("--tree", action="append",
                   help="run the flow from this checkout (repeat to alternate checkouts, e.g. a git worktree of "
                        "main with its built kernels; default: this one)")
    for p in (w, k):
        p.add_argument("--json", default=None, help="append each run as a JSON line here")
    args = ap.parse_args(argv)
    (waveform if args.what == "waveform" else kafka)(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

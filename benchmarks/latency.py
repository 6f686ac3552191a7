"""Latency at a fixed offered load: a paced producer, the flow tailing the topic, a consumer timing outputs.

* The producer writes frames in (scaled) real time: frame ``k`` of every asset (1024 samples at
  10 kHz, event time ``E0 + k * 102.4 ms``) is sent when its last sample has "happened", at wall
  time ``W0 + (k + 1) * 102.4 ms / speed``. Each asset's frames are the plant simulator's first
  ``pool_s`` seconds (default 4) of its signal, cycled. Until 2026-12-06's sixth session that was one
  second: ten frames whose windows repeat almost exactly, so the detector learnt a scale of almost
  nothing and, at the 28th second, every asset opened a critical alert in the same window: those
  windows were the p95 and p99 of every run with the calibrated detector (667 of the 12,673
  measured). The calibrated detector's warm-up is its first 20 windows: for its steady state, measure
  after it (``--duration 40 --warmup 22``; longer runs fill Tansu's memory, 80 MB/s at half load).
  Assets and speed are chosen so that the offered load is the requested samples/s, rounded up to
  whole assets (``speed`` is 1, plain real time, unless that would need more than ``max_assets``
  assets). ``W0 = E0``, a whole second: at speed 1 event time is
  wall time, as on a live plant. For every asset and window it notes the wall-clock time at which it
  sent the window's last frame.
* The flow (``aiotstream run`` without ``--once``) tails the topic, with ``--epoch-s`` as given.
  Its site config sets ``allowed_lateness_s = 0`` (the watermark may pass a window's end as soon
  as a frame beyond it arrives), waveform input only, ``idle_close_s = 2`` (so the absent readings
  stream stops holding the watermark back after 2 s).
* A consumer in this process reads ``<site>.scores`` and ``<site>.alerts`` as they arrive
  (``fetch.wait.max.ms`` 5; ``poll``, which returns as soon as a record is there: until 2026-12-06 it
  used ``consume(1000, 0.05)``, which returns only after 50 ms unless 1,000 records came, so every figure
  measured to the consumer before then is up to 50 ms high, 25 on average).
  Latency = receive time of a window's score (or alert) record minus the time the producer sent
  that window's last frame. Windows in the first ``warmup_s`` of event time are left out.
  ``score_from_window_end`` times the same records from the window's end (the sensor timestamp of its
  last sample, on the wall clock); it includes the wait for the frame that carries that sample.
* The flow runs with ``--metrics-port``; its own ``aiotstream_output_latency_seconds{kind="score"}``
  (window end to on the broker) is scraped after the warm-up and at the end, and the difference gives
  ``flow_histogram``: the same windows as the benchmark's, p50/p95/p99 interpolated within the buckets
  (at speed 1 only). It should agree with ``score_from_window_end`` less this consumer's fetch.

Tansu answers a fetch only when ``fetch.wait.max.ms`` runs out, not as soon as data arrives, so
every consumer adds half that on average (measured: p50 153 ms at librdkafka's default of 500 ms,
25 ms at 10 ms). The flow's consumer uses the default unless ``fetch_wait_ms`` is given.
"""
from __future__ import annotations

import math
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from aiotstream.codecs import encode_frame
from aiotstream.io.broker import free_port
from aiotstream.io.kafka_client import arrived
from aiotstream.routing import partition_for
from aiotstream.sim.plant import PlantSimulator
from aiotstream.windows import stagger_offset
from benchmarks.common import spawn, stop
from benchmarks.workload import (
    CHANNELS,
    FRAME_SAMPLES,
    RATE_HZ,
    create_topics,
    delete_topics,
    output_topics,
    site_dict,
    write_site,
)

ASSET_SAMPLES_PER_S = CHANNELS * RATE_HZ  # one asset in real time


def percentiles(values: list[float]) -> dict[str, Any]:
    """p50/p95/p99 (ms) of latencies given in seconds.

    >>> percentiles([0.1, 0.2, 0.3])["p50_ms"]
    200.0
    """
    if not values:
        return {"n": 0}
    a = np.asarray(values) * 1e3
    return {"n": int(a.size), "p50_ms": round(float(np.percentile(a, 50)), 1),
            "p95_ms": round(float(np.percentile(a, 95)), 1), "p99_ms": round(float(np.percentile(a, 99)), 1),
            "max_ms": round(float(a.max()), 1), "mean_ms": round(float(a.mean()), 1)}


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' ``histogram_quantile``: the ``q`` quantile of cumulative ``(le, count)`` buckets (``+Inf``
    last), interpolated linearly inside its bucket (from 0 in the first); the top finite bound when it falls in
    ``+Inf``; None without observations.

    >>> histogram_quantile(0.5, [(0.1, 0.0), (0.25, 10.0), (float("inf"), 10.0)])
    0.175
    >>> histogram_quantile(0.99, [(0.1, 5.0), (0.25, 5.0), (float("inf"), 10.0)]), histogram_quantile(0.5, [])
    (0.25, None)
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower
            return lower + (le - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = le, count
    return lower


def scrape_histograms(url: str, wanted: dict[str, dict[str, str]]) -> dict[str, list[tuple[float, float]]]:
    """The cumulative ``(le, count)`` buckets of each histogram ``name`` in ``wanted`` (name -> labels it must
    have) on one /metrics page."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    samples = [s for fam in text_string_to_metric_families(text) for s in fam.samples]
    return {name: sorted((float(s.labels["le"]), s.value) for s in samples if s.name == f"{name}_bucket"
                         and all(s.labels.get(k) == v for k, v in labels.items()))
            for name, labels in wanted.items()}


def histogram_delta(first: list[tuple[float, float]], last: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """What ``last`` counted after ``first`` (two scrapes of one cumulative histogram).

    >>> histogram_delta([(1.0, 2.0), (float("inf"), 3.0)], [(1.0, 5.0), (float("inf"), 9.0)])
    [(1.0, 3.0), (inf, 6.0)]
    """
    before = dict(first)
    return [(le, n - before.get(le, 0.0)) for le, n in last]


def flow_histogram(scrapes: dict[str, dict[str, list[tuple[float, float]]]], speed: float) -> dict[str, Any]:
    """The flow's own figures for the measured windows: its ``output_latency_seconds{kind="score"}`` (window
    end to on the broker) and, under ``close``, ``window_close_latency_seconds`` (window end to its close,
    before the sink), each counted between the scrape after the warm-up and the one at the end, p50/p95/p99
    by :func:`histogram_quantile` (so within a bucket, linearly). Only at speed 1: faster than real time,
    event time is not wall time."""
    if speed != 1.0:
        return {"n": 0, "why": f"speed {speed:g}: the flow's histogram is in event time"}
    if set(scrapes) != {"warm-up", "end"}:
        return {"n": 0, "why": f"scrapes missing: got {sorted(scrapes)}"}

    def summary(name: str) -> dict[str, Any]:
        d = histogram_delta(scrapes["warm-up"][name], scrapes["end"][name])
        out: dict[str, Any] = {"n": int(d[-1][1]) if d else 0, "buckets": d}
        for q in (50, 95, 99):
            v = histogram_quantile(q / 100, d)
            out[f"p{q}_ms"] = None if v is None else round(v * 1e3, 1)
        return out
    return {**summary("aiotstream_output_latency_seconds"),
            "close": summary("aiotstream_window_close_latency_seconds")}


def plan(offered_samples_per_s: float, max_assets: int) -> tuple[int, float]:
    """Assets and time speed-up that offer ``offered_samples_per_s``.

    >>> plan(3_000_000, 400)
    (100, 1.0)
    >>> plan(30_000_000, 400), plan(2_000_000, 400)
    ((400, 2.5), (67, 1.0))
    """
    assets = max(1, math.ceil(offered_samples_per_s / ASSET_SAMPLES_PER_S))
    if assets <= max_assets:  # real time (whole assets: the load rounds up), so event time is wall time
        return assets, 1.0
    return max_assets, offered_samples_per_s / (max_assets * ASSET_SAMPLES_PER_S)


class _Receiver(threading.Thread):
    def __init__(self, brokers: str, topics: list[str], partitions: int):
        super().__init__(daemon=True)
        self.c = Consumer({"bootstrap.servers": brokers, "group.id": f"bench-latency-{time.time_ns()}",
                           "enable.auto.commit": False, "fetch.wait.max.ms": 5, "fetch.min.bytes": 1})
        self.c.assign([TopicPartition(t, p, 0) for t in topics for p in range(partitions)])
        self.got: list[tuple[float, str, bytes]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():  # (why arrived, not consume(n, t): the module docstring)
            msgs = arrived(self.c, 1000, 0.05)
            now = time.time()  # (the first as it came; the rest were already in the queue: no later than now)
            for m in msgs:
                if m.error() is None:
                    self.got.append((now, m.topic(), m.value()))
        self.c.close()


def run_latency(brokers: str, tmp: Path, *, offered_samples_per_s: float, epoch_s: float, duration_s: float = 20.0,
                warmup_s: float = 6.0, max_assets: int = 400, tag: str = "", partitions: int = 3,
                startup_s: float = 5.0, model: str = "calibrated", fetch_wait_ms: int | None = None,
                model_table: dict[str, Any] | None = None, window: dict[str, Any] | None = None,
                poll_batch: int | None = None, poll_bytes: int | None = None,
                poll_default: bool = False, stand_in: str = "flow", processes: int = 1,
                pool_s: float = 4.0, stagger: bool = False) -> dict[str, Any]:
    """One latency run of the site's ``model`` (default: the product's, calibrated; zscore until 2026-12-06);
    ``fetch_wait_ms`` sets the flow consumer's ``fetch.wait.max.ms`` (through
    ``AIOTSTREAM_KAFKA_FETCH_WAIT_MAX_MS``; None leaves librdkafka's default of 500 ms). ``model_table``
    replaces the site's ``[model]`` (e.g. ONNX; then the score records' ``latency.added_ms``, what
    batching added, is summarised too) and ``window`` adds window settings. The site reads
    ``poll_batch`` (default: the benchmarks' 1,000, :func:`~benchmarks.workload.site_dict`) and
    ``poll_bytes`` messages a poll; ``poll_default``: neither is set, the product's defaults apply.
    ``stand_in``: ``flow`` (``aiotstream run``), or ``echo`` / ``echo-flush``, :mod:`benchmarks.latency_echo`
    in its place (the broker's floor: no processing, one small record per closed window). ``processes``: the
    flow as a cluster of that many processes (one worker each; the frames co-partitioned, as aiotstream's own
    producers put them, so no frame crosses between processes); its histograms are the processes' summed.
    ``pool_s``: seconds of each asset's simulated signal the producer cycles (module docstring). ``stagger``:
    the site's ``window.stagger`` (each asset's windows at its own offset within the second; every figure is
    then taken per asset's own window, its end included)."""
    assets, speed = plan(offered_samples_per_s, max_assets)
    site_id = f"bench-lat{tag}"
    topic = f"{site_id}.waveforms"
    cfg = site_dict(site_id, assets, [topic], model=model, tail=True, partitions=partitions,
                    window={"allowed_lateness_s": 0, "idle_close_s": 2, **({"stagger": True} if stagger else {}),
                            **(window or {})})
    if model_table is not None:
        cfg["model"] = model_table
    if poll_batch is not None:
        cfg["inputs"]["poll_batch"] = poll_batch
    if poll_bytes is not None:
        cfg["inputs"]["poll_bytes"] = poll_bytes
    if poll_default:
        cfg["inputs"].pop("poll_batch", None)
        cfg["inputs"].pop("poll_bytes", None)
    site = write_site(tmp, cfg)
    create_topics(brokers, [topic, *output_topics(site_id)], partitions)
    ids = [f"p-{i:06d}" for i in range(1, assets + 1)]
    parts = [partition_for(a, partitions) for a in ids]  # co-partitioned, as aiotstream's own producers
    offsets = [stagger_offset(a, 1_000_000_000) if stagger else 0 for a in ids]  # where each asset's windows start
    sim = PlantSimulator(assets, duration_s=pool_s, n_faults=0, seed=5)
    pool: dict[int, list[np.ndarray]] = {}
    for a, _seq, _t0, x in sim.frames():  # ~10 frames a second of real signal per asset, cycled
        pool.setdefault(int(a.rsplit("-", 1)[1]), []).append(np.ascontiguousarray(x, dtype=np.float32))
    frames = [pool[i] for i in range(assets)]

    env = {"AIOTSTREAM_KAFKA_FETCH_WAIT_MAX_MS": str(fetch_wait_ms)} if fetch_wait_ms is not None else {}
    metrics_urls = []
    if stand_in == "flow":
        addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
        flows = []
        for i in range(processes):
            metrics_port = free_port()
            metrics_urls.append(f"http://127.0.0.1:{metrics_port}/metrics")
            flows.append(spawn([sys.executable, "-m", "aiotstream.cli", "run", "--site", str(site), "--brokers",
                                brokers, "--epoch-s", str(epoch_s), "--metrics-port", str(metrics_port),
                                *(["-i", str(i), "-a", addresses] if processes > 1 else [])], env=env))
    elif stand_in in ("echo", "echo-flush"):
        if processes != 1:
            raise ValueError("the echo stand-in runs as one process")
        flows = [spawn([sys.executable, "-m", "benchmarks.latency_echo", "--brokers", brokers, "--topic", topic,
                      "--out", f"{site_id}.scores", "--partitions", str(partitions),
                      *(["--flush"] if stand_in == "echo-flush" else [])], env=env)]
    else:
        raise ValueError(f"stand_in {stand_in!r}: flow, echo or echo-flush")
    recv = _Receiver(brokers, [f"{site_id}.scores", f"{site_id}.alerts"], partitions)
    recv.start()
    time.sleep(startup_s)  # imports, connecting, Bytewax start-up: not part of the latency
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 0, "enable.idempotence": True,
                         "queue.buffering.max.kbytes": 262144})
    step_ns = round(FRAME_SAMPLES / RATE_HZ * 1e9)
    # event time on the wall clock: the plant starts at the next whole second and (at speed 1) a sample's
    # timestamp is when it happens, so the flow's own output latency histogram (wall clock minus event time)
    # measures what this benchmark does
    e0 = (time.time_ns() // 1_000_000_000 + 1) * 1_000_000_000
    time.sleep(max(0.0, e0 / 1e9 - time.time()))
    w0 = e0 / 1e9
    n_frames = int(duration_s * speed * 1e9 // step_ns)
    first_window = e0 + round(warmup_s * 1e9)
    last_window = (e0 + (n_frames - 1) * step_ns) // 1_000_000_000 * 1_000_000_000
    t_end = e0 + (n_frames - 1) * step_ns  # each asset's last window (closed by the idle flush) starts at:
    last_start = {a: t_end - (t_end - off) % 1_000_000_000 for a, off in zip(ids, offsets, strict=True)}
    scrapes: dict[str, dict[str, list[tuple[float, float]]]] = {}

    def scrape(when: str) -> None:
        got: dict[str, dict[float, float]] = {}
        for url in metrics_urls:  # (none for a stand-in)
            try:
                one = scrape_histograms(url, {"aiotstream_output_latency_seconds": {"kind": "score"},
                                              "aiotstream_window_close_latency_seconds": {}})
            except OSError as exc:
                print(f"latency: no scrape of {url} ({when}): {exc}", file=sys.stderr)
                return
            for name, buckets in one.items():  # a cluster's histogram: its processes' counts added
                acc = got.setdefault(name, {})
                for le, n in buckets:
                    acc[le] = acc.get(le, 0.0) + n
        if got:
            scrapes[when] = {name: sorted(acc.items()) for name, acc in got.items()}
    # the warm-up's windows are all out 0.6 s after the first measured window opens (that one ends 1 s after)
    first_scrape = threading.Timer(w0 + (first_window - e0) / 1e9 / speed + 0.6 - time.time(), scrape,
                                   ("warm-up",))
    first_scrape.start()
    sent: dict[tuple[str, int], float] = {}
    behind = []
    for k in range(n_frames):
        due = w0 + (k + 1) * step_ns / 1e9 / speed
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        else:
            behind.append(-pause)
        t0 = e0 + k * step_ns
        for i, a in enumerate(ids):
            win = t0 - (t0 - offsets[i]) % 1_000_000_000  # the start of the asset's window the frame is in
            payload = encode_frame(a, k, t0, RATE_HZ, frames[i][k % len(frames[i])])
            while True:
                try:
                    producer.produce(topic, value=payload, key=a.encode(), partition=parts[i])
                    break
                except BufferError:
                    producer.poll(0.01)
            sent[(a, win)] = time.time()
        producer.poll(0)
    produce_wall = time.time() - w0
    producer.flush(30)
    # every measured window is out well before the last one (left out) closes on idle_close_s (2 s)
    time.sleep(1.0)
    first_scrape.join()
    scrape("end")
    time.sleep(max(2.0, 2 * epoch_s))  # let the last windows out
    recv.halt.set()
    recv.join(10)
    measured = [stop(f) for f in flows]
    delete_topics(brokers, [topic, *output_topics(site_id)])  # the broker holds them in memory

    score_lat, alert_lat, late_windows, from_end = [], [], 0, []
    by_window: dict[int, list[float]] = {}
    to_created, created_to_recv, added, scored = [], [], [], []
    for t_recv, t, raw in recv.got:
        rec = orjson.loads(raw)
        w = (rec.get("window") or {}).get("start_ns")
        end = last_start.get(rec.get("asset"), last_window)
        if "latency" in rec and not t.endswith(".alerts") and w is not None and first_window <= w < end:
            added.append(rec["latency"]["added_ms"] / 1e3)  # what batching added (ONNX), warm-up left out
            scored.append(rec["latency"]["scored_ms"] / 1e3)
        key = (rec.get("asset"), w)
        if w is None or key not in sent or w < first_window or w >= end:
            continue  # warm-up, or the last window (closed by the idle flush, not by data)
        lat = t_recv - sent[key]
        (alert_lat if t.endswith(".alerts") else score_lat).append(lat)
        if not t.endswith(".alerts"):
            from_end.append(t_recv - (w0 + (w + 1_000_000_000 - e0) / 1e9 / speed))  # the window's end on the wall
            by_window.setdefault(w, []).append(lat)
            created = rec.get("produced_at")
            if created:
                c = datetime.fromisoformat(created).timestamp()
                to_created.append(c - sent[key])
                created_to_recv.append(t_recv - c)
    expected = assets * max(0, (last_window - first_window) // 1_000_000_000)
    return {
        "epoch_s": epoch_s, "fetch_wait_max_ms": fetch_wait_ms if fetch_wait_ms is not None else 500,
        "assets": assets, "speed": round(speed, 3),
        "offered_samples_per_s": round(offered_samples_per_s),
        "achieved_samples_per_s": round(n_frames * assets * CHANNELS * FRAME_SAMPLES / produce_wall),
        "duration_s": duration_s, "warmup_s": warmup_s, "model": model, "pool_s": pool_s, "stagger": stagger,
        "producer_behind_max_ms": round(max(behind, default=0.0) * 1e3, 1),
        "windows_expected": int(expected), "score": percentiles(score_lat),
        "score_from_window_end": percentiles(from_end),
        "flow_histogram": flow_histogram(scrapes, speed),
        "split": {"sent_to_created": percentiles(to_created), "created_to_received": percentiles(created_to_recv)}, "alert": percentiles(alert_lat),
        **({"batching_added": percentiles(added), "batching_scored": percentiles(scored)} if added else {}),
        "flow": measured[0].summary() if len(measured) == 1 else {
            "cpu_s": round(sum(m.cpu_s for m in measured), 3), "processes": [m.summary() for m in measured]},
        "processes": processes, "late_windows": late_windows,
        "per_window": [{"t_s": (w - e0) / 1e9, "n": len(v), "p50_ms": round(float(np.median(v)) * 1e3, 1),
                        "max_ms": round(max(v) * 1e3, 1)} for w, v in sorted(by_window.items())],
        "stand_in": stand_in,
        "settings": {"allowed_lateness_s": 0, "idle_close_s": 2, "inputs": "waveforms only",
                     "poll_batch": cfg["inputs"].get("poll_batch", "default"),
                     "poll_bytes": cfg["inputs"].get("poll_bytes", "default")},
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.latency --offered 20e6 --fetch-wait default,10 --repeat 5``: the latency runs of
    ``bench e2e`` on their own, at a given load, each configuration once per round (A B A B ...), medians of
    the rounds with min, max and spread (:mod:`benchmarks.repeats`)."""
    import argparse
    import tempfile

    from aiotstream.io.broker import TansuBroker
    from benchmarks import repeats
    from benchmarks.common import machine, save
    from benchmarks.poll_size import parse_variant

    ap = argparse.ArgumentParser(description="latency at a fixed offered load, configurations interleaved")
    ap.add_argument("--offered", type=float, required=True, help="samples/s (half of the measured peak: the goal)")
    ap.add_argument("--epoch-s", default="1", help="comma-separated --epoch-s values (default 1)")
    ap.add_argument("--fetch-wait", default="default,10",
                    help="comma-separated flow fetch.wait.max.ms values, 'default' = librdkafka's 500")
    ap.add_argument("--poll", default="1000",
                    help="comma-separated POLL_BATCH[:POLL_BYTES] values for the flow's inputs, 'default' = "
                         "the product's (10,000 messages, 8 MiB); default 1000 (the other benchmarks')")
    ap.add_argument("--stand-in", default="flow",
                    help="comma-separated: flow (aiotstream run), echo, echo-flush (benchmarks.latency_echo: the "
                         "broker's floor, without and with a wait for each poll batch's acknowledgement)")
    ap.add_argument("--processes", default="1", help="comma-separated flow process counts (a cluster of N)")
    ap.add_argument("--model", default="calibrated",
                    help="comma-separated [model] kinds of the flow's site (default: the product's default, "
                         "calibrated; the RESULTS.md sections before 2026-12-06's fifth session used zscore)")
    ap.add_argument("--stagger", default="off",
                    help="comma-separated off/on: the flow's site without or with window.stagger (each asset's "
                         "windows at its own offset within the second)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of plant time a run")
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds of it left out")
    ap.add_argument("--pool-s", type=float, default=4.0,
                    help="seconds of each asset's simulated signal the producer cycles (1 until 2026-12-06)")
    ap.add_argument("--max-assets", type=int, default=1000, help="beyond this the plant runs faster than real time")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--tree", action="append",
                    help="run the flow from this checkout (repeat to alternate checkouts, e.g. a git worktree of "
                         "main with its kernels built); default: this one")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    from benchmarks import common

    trees = common.checkouts(args.tree)
    models = args.model.split(",")
    staggers = [{"off": False, "on": True}[v] for v in args.stagger.split(",")]
    configs = [(float(e), None if f == "default" else int(f), p, t, s, int(n), m, g) for t in trees
               for e in args.epoch_s.split(",") for f in args.fetch_wait.split(",") for p in args.poll.split(",")
               for s in args.stand_in.split(",") for n in (args.processes.split(",") if s == "flow" else ["1"])
               for m in (models if s == "flow" else models[:1])
               for g in (staggers if s == "flow" else [False])]  # (the echo stand-in keeps whole seconds)
    at_start = machine()
    runs: dict[str, list[dict[str, Any] | None]] = {
        f"epoch {e:g} s, fetch wait {f or 'default'}, poll {p}" + (f", {s}" if s != "flow" else "")
        + (f", {n} processes" if n > 1 else "") + (f", {m}" if len(models) > 1 and s == "flow" else "")
        + (", staggered" if g else "") + (f" @ {t}" if len(trees) > 1 else ""): []
        for e, f, p, t, s, n, m, g in configs}
    with TansuBroker() as b, tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.repeat):
            for i, ((epoch, fetch, poll, tree, stand_in, procs, model, stagger), name) in enumerate(
                    zip(configs, runs, strict=True)):
                batch, nbytes = (None, None) if poll == "default" else parse_variant(poll)
                common.run_from(tree)
                r = run_latency(b.bootstrap, Path(tmp), offered_samples_per_s=args.offered, epoch_s=epoch,
                                fetch_wait_ms=fetch, duration_s=args.duration, warmup_s=args.warmup,
                                max_assets=args.max_assets, partitions=args.partitions, tag=f"-{rnd}-{i}",
                                poll_batch=batch, poll_bytes=nbytes, poll_default=poll == "default",
                                stand_in=stand_in, processes=procs, model=model, pool_s=args.pool_s,
                                stagger=stagger)
                r.pop("per_window", None)
                r["tree"] = str(tree)
                runs[name].append(r)
                fh = r["flow_histogram"]
                print(f"round {rnd + 1} of {args.repeat}, {name}: p50 {r['score']['p50_ms']} / p99 "
                      f"{r['score']['p99_ms']} ms from the last frame's send; from the window end p50 "
                      f"{r['score_from_window_end']['p50_ms']} / p99 {r['score_from_window_end']['p99_ms']} ms; "
                      f"flow histogram p50 {fh.get('p50_ms')} / p99 {fh.get('p99_ms')} ms", flush=True)
    summary = {}
    for name, rs in runs.items():
        def col(*path: str, rs: list[dict[str, Any] | None] = rs) -> list[float | None]:
            out = []
            for r in rs:
                for p in path:
                    r = (r or {}).get(p)
                out.append(r)
            return out
        summary[name] = {f"{what}_{q}_ms": repeats.figure(col(*path, f"{q}_ms"))
                         for what, path in (("sent", ("score",)), ("window_end", ("score_from_window_end",)),
                                            ("flow_histogram", ("flow_histogram",)),
                                            ("flow_close", ("flow_histogram", "close")))
                         for q in ("p50", "p99")}
    for name, figs in summary.items():
        print(name + ": " + "; ".join(f"{k} {v['median']} (spread {v['spread']})" for k, v in figs.items()))
    out = save("latency", {"machine": at_start, "loadavg_at_end": machine()["loadavg_at_start"],
                           "command": "python -m benchmarks.latency " + " ".join(sys.argv[1:] if argv is None
                                                                                   else argv),
                           "summary": summary, "runs": runs}, args.json)
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run ``aiotstream run ...`` in this process with its Kafka (or file) source timed, and write the timings.

    python -m benchmarks.flowrun STATS.json run --site S --brokers B --once [-i I -a A] [--epoch-s E]

The flow, its source, sink, topics and runner are exactly what ``aiotstream run`` uses: the CLI
is called as it is, with ``aiotstream.io.kafka.kafka_source`` and ``aiotstream.io.replay.file_source``
wrapped so that each partition notes when its first and last non-empty poll batch arrived and how
many messages it delivered. ``t_done`` is taken when the CLI returns (``--once``: every input read,
every window flushed, every output on the broker). Each process also counts, per asset, the items
(frames, readings) its decode step read and its analyze step received (``decoded``, ``analyzed``), so the
harness can tell how many crossed between processes. ``BENCH_PROFILE=FILE`` also writes a cProfile
of the run; ``BENCH_PYSPY=FILE`` instead samples it with py-spy (``pip install py-spy``), which slows it
far less: collapsed stacks, read with ``python -m benchmarks.profile_flow --read FILE``. The harness
turns these into a rate that leaves process start-up (imports, connecting, Bytewax setup) out, and takes
CPU time and peak RSS from the kernel.
"""
from __future__ import annotations

import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from aiotstream.records import MessageBlock

STATS: dict[str, Any] = {"t_start": time.time(), "messages": 0, "bytes": 0, "t_first": None, "t_last": None}


class _TimedPartition(StatefulSourcePartition):
    def __init__(self, inner: StatefulSourcePartition):
        self.inner = inner

    def next_batch(self) -> list:
        batch = self.inner.next_batch()
        if batch:
            now = time.time()
            if STATS["t_first"] is None:
                STATS["t_first"] = now
            STATS["t_last"] = now
            STATS["messages"] += sum(getattr(m, "count", 1) for m in batch)  # a MessageBlock holds many
            STATS["bytes"] += sum(m.nbytes if type(m) is MessageBlock else len(getattr(m, "value", None) or b"")
                                  for m in batch)
        return batch

    def next_awake(self):
        return self.inner.next_awake()

    def snapshot(self) -> Any:
        return self.inner.snapshot()

    def close(self) -> None:
        self.inner.close()


class TimedSource(FixedPartitionedSource):
    """Wraps a fixed-partitioned source (the flow's KafkaSource or FileSource); partitions note their batch times."""

    def __init__(self, inner: FixedPartitionedSource):
        self.inner = inner

    def list_parts(self) -> list[str]:
        return self.inner.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _TimedPartition:
        return _TimedPartition(self.inner.build_part(step_id, for_part, resume_state))


def _count_items() -> None:
    """Count, per asset, what this process decodes and what it analyzes (items that reach the analyze step of
    the process that owns their asset; one ``Counter`` update per asset per poll batch), and the thread CPU
    time of each Python step (``step_cpu_s``: read, decode, analyze, rollup, sink), the sink's calls and wall
    time (the Kafka sink waits for the broker), and the cyclic GC's collections and CPU time. What a process
    used beyond these steps is start-up and the Bytewax runtime.

    The analyze step is called once per asset and activation (in pm-readings about 30 readings a call, in a
    plant of slow sensors about one; ``analyze_calls`` counts them), and a thread CPU clock read is a system
    call (about 1.2 us here, against 0.07 for ``perf_counter``): timing every call cost 2.3 us a call, a
    share of the run that grows as the calls carry fewer readings. So that step's CPU is measured
    on a random sample of its calls, one in ``BENCH_STEP_CPU_EVERY`` (default 16; 1 times every call, as
    before 2026-12-07's sixth session), each sampled call's time multiplied by that: an unbiased estimate
    (``step_cpu_sampled`` names the steps so measured). The other steps run once per poll batch: timed
    whole."""
    import gc
    from collections import Counter

    from aiotstream.dataflow.plant import AnalyzerLogic
    from aiotstream.dataflow.rollup import RollupLogic
    from aiotstream.io.files import _JsonlPartition
    from aiotstream.io.kafka import _OutputPartition
    from aiotstream.io.replay import _FilePartition
    from aiotstream.pdm.ingest import Ingestor

    decoded: Counter[str] = Counter()
    analyzed: Counter[str] = Counter()
    cpu = STATS["step_cpu_s"] = {"read": 0.0, "decode": 0.0, "analyze": 0.0, "rollup": 0.0, "sink": 0.0}
    sink = STATS["sink"] = {"calls": 0, "wall_s": 0.0}
    STATS["decoded"], STATS["analyzed"] = decoded, analyzed
    decode, on_batch = Ingestor.decode_grouped, AnalyzerLogic.on_batch

    def counted_decode(self: Any, batch: list) -> list:
        out = decode(self, batch)
        for x in out:
            if type(x) is tuple:  # (asset, [items]); dead letters are Output records
                decoded[x[0]] += len(x[1])
        return out

    every = int(os.environ.get("BENCH_STEP_CPU_EVERY", "16"))
    if every < 1:
        raise SystemExit(f"BENCH_STEP_CPU_EVERY={every}: give 1 (every call timed) or more")
    STATS["step_cpu_sampled"] = {"analyze": every} if every > 1 else {}
    sampled = _sampled_cpu(on_batch, cpu, "analyze", every)

    calls = STATS["analyze_calls"] = [0]  # (readings a call = messages / calls: what a call's fixed cost is
    # spread over)

    def counted_batch(self: Any, values: list) -> Any:
        calls[0] += 1
        for group in values:
            if group:
                analyzed[group[0].asset or ""] += len(group)
        return sampled(self, values)

    # the collector's collections and CPU by generation, and its longest pause (a full collection walks every
    # tracked object of the process: what a flow's per-asset state costs it)
    gcs = STATS["gc"] = {"collections": [0, 0, 0], "cpu_s": 0.0, "cpu_s_by_generation": [0.0, 0.0, 0.0],
                         "longest_s": 0.0}
    started: list[float] = []

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            started.append(time.thread_time())
        elif started:
            took = time.thread_time() - started.pop()
            gen = info["generation"]
            gcs["cpu_s"] += took
            gcs["collections"][gen] += 1
            gcs["cpu_s_by_generation"][gen] += took
            gcs["longest_s"] = max(gcs["longest_s"], took)

    gc.callbacks.append(on_gc)
    Ingestor.decode_grouped = _timed(counted_decode, cpu, "decode")  # type: ignore[method-assign]
    AnalyzerLogic.on_batch = counted_batch  # type: ignore[method-assign]
    for cls, name, step in ((RollupLogic, "on_batch", "rollup"), (_FilePartition, "next_batch", "read")):
        setattr(cls, name, _timed(getattr(cls, name), cpu, step))
    for cls in (_OutputPartition, _JsonlPartition):
        cls.write_batch = _timed(cls.write_batch, cpu, "sink", sink)  # type: ignore[method-assign]


def _timed(fn: Any, cpu: dict[str, float], step: str, wall: dict[str, Any] | None = None) -> Any:
    """``fn`` adding the thread CPU time of its calls to ``cpu[step]`` (and, given ``wall``, counting its calls
    and their wall time in ``wall["calls"]`` and ``wall["wall_s"]``)."""
    clock = time.thread_time

    def timed(*args: Any) -> Any:
        t, w = clock(), time.perf_counter()
        try:
            return fn(*args)
        finally:
            cpu[step] += clock() - t
            if wall is not None:
                wall["wall_s"] += time.perf_counter() - w
                wall["calls"] += 1

    return timed


def _sampled_cpu(fn: Any, cpu: dict[str, float], step: str, every: int, seed: int = 0) -> Any:
    """``fn`` adding an estimate of the thread CPU time of its calls to ``cpu[step]``: each call is timed with
    probability ``1 / every``, independently (the gaps between timed calls drawn from the geometric
    distribution, so an untimed call costs a decrement and a test), and a timed call counts ``every`` times.
    ``every`` 1: every call timed (:func:`_timed`)."""
    if every == 1:
        return _timed(fn, cpu, step)
    clock = time.thread_time
    draw = random.Random(seed).random
    scale = math.log1p(-1.0 / every)
    gap = [int(math.log(1.0 - draw()) / scale)]  # untimed calls before the next timed one

    def sampled(*args: Any) -> Any:
        if gap[0]:
            gap[0] -= 1
            return fn(*args)
        gap[0] = int(math.log(1.0 - draw()) / scale)
        t = clock()
        try:
            return fn(*args)
        finally:
            cpu[step] += (clock() - t) * every

    return sampled


def pyspy_path() -> str | None:
    """py-spy on PATH, else beside this Python (a venv's bin/ when its python is run by path)."""
    import shutil

    beside = Path(sys.executable).with_name("py-spy")
    return shutil.which("py-spy") or (str(beside) if beside.is_file() else None)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    stats_path, cli_argv = Path(argv[0]), argv[1:]
    # River (and scipy, through river.drift) is imported lazily when the first asset's detector is
    # built, i.e. after the first input: 1.5-3.5 s inside the timed span. It is start-up; import it here.
    import river.anomaly
    import river.drift  # noqa: F401

    from aiotstream import cli
    from aiotstream.io import kafka, replay

    original, original_files = kafka.kafka_source, replay.file_source
    kafka.kafka_source = lambda *a, **kw: TimedSource(original(*a, **kw))
    replay.file_source = lambda *a, **kw: TimedSource(original_files(*a, **kw))  # inputs.kind = "files"
    _count_items()
    STATS["t_imported"] = time.time()
    sampler = None
    if os.environ.get("BENCH_PYSPY"):  # BENCH_PYSPY=FILE: py-spy samples this process (100 Hz, without
        import subprocess  # pausing it) from here to the end; collapsed stacks to FILE

        sampler = subprocess.Popen([pyspy_path() or "py-spy", "record", "--pid", str(os.getpid()),
                                    "--rate", "100", "--nonblocking", "--format", "raw",
                                    "--output", os.environ["BENCH_PYSPY"]],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # attached before the flow starts
    profile_to = os.environ.get("BENCH_PROFILE")
    if profile_to:  # BENCH_PROFILE=FILE: cProfile the run, stats to FILE (read with pstats)
        import cProfile

        prof = cProfile.Profile()
        code = prof.runcall(cli.main, cli_argv)
        prof.dump_stats(profile_to)
    else:
        code = cli.main(cli_argv)
    STATS["t_done"] = time.time()
    if sampler is not None:
        import signal

        sampler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        sampler.wait(60)
    STATS["exit"] = code
    stats_path.write_bytes(orjson.dumps(STATS))
    return code


if __name__ == "__main__":
    sys.exit(main())

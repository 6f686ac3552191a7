"""Run ``aiotstream run ...`` in this process with its Kafka (or file) source timed, and write the timings.

    python -m benchmarks.flowrun STATS.json run --site S --brokers B --once [-i I -a A] [--epoch-s E]

The flow, its source, sink, topics and runner are exactly what ``aiotstream run`` uses: the CLI
is called as it is, with ``aiotstream.io.kafka.kafka_source`` and ``aiotstream.io.replay.file_source``
wrapped so that each partition notes when its first and last non-empty poll batch arrived and how
many messages it delivered. ``t_done`` is taken when the CLI returns (``--once``: every input read,
every window flushed, every output on the broker). ``BENCH_PROFILE=FILE`` also writes a cProfile of
the run; ``BENCH_FILES_BY_WORKER=n`` makes each process read only the files holding its own assets
(an experiment: see ``benchmarks.scaling --files-by-worker``). The harness turns these into a rate that leaves process start-up (imports, connecting,
Bytewax setup) out, and takes CPU time and peak RSS from the kernel.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

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
            STATS["bytes"] += sum(len(getattr(m, "value", None) or b"") for m in batch)
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


def _owned_files(self: Any) -> list[str]:
    """``BENCH_FILES_BY_WORKER``: process ``i`` of ``n`` (one worker each) lists the files ``*-<k>.*`` with
    ``k % n == i``, which hold exactly the assets Bytewax routes to it: no frame crosses processes."""
    i, n = self.process
    return [p for p in self.paths if n <= 1 or int(Path(p).stem.rsplit("-", 1)[1]) % n == i]


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
    by_worker = int(os.environ.get("BENCH_FILES_BY_WORKER", "0"))
    if by_worker:  # files written with write_waveform_files(by_worker=n): each process reads the ones it owns
        replay.FileSource.list_parts = _owned_files  # type: ignore[method-assign]
    STATS["t_imported"] = time.time()
    profile_to = os.environ.get("BENCH_PROFILE")
    if profile_to:  # BENCH_PROFILE=FILE: cProfile the run, stats to FILE (read with pstats)
        import cProfile

        prof = cProfile.Profile()
        code = prof.runcall(cli.main, cli_argv)
        prof.dump_stats(profile_to)
    else:
        code = cli.main(cli_argv)
    STATS["t_done"] = time.time()
    STATS["exit"] = code
    stats_path.write_bytes(orjson.dumps(STATS))
    return code


if __name__ == "__main__":
    sys.exit(main())

"""Helpers the broker tests share: read a whole topic, run the CLI, compare outputs."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import AdminClient

OUTPUT_KINDS = ("alerts", "commands", "kpis", "scores", "deadletter")


def kafka_site_file(tmp: Path, prefix: str, assets: int) -> tuple[Path, str]:
    """A minimal Kafka site (``assets`` assets on one line, topics ``<id>.waveforms`` and ``<id>.readings``) with a
    fresh id starting ``prefix``, written as JSON under ``tmp``: its path and the id."""
    sid = f"{prefix}-{uuid.uuid4().hex[:8]}"
    path = tmp / f"{sid}.json"
    path.write_bytes(orjson.dumps({
        "site": {"id": sid}, "assets": [{"id": f"asset-{i:03d}", "line": "l1"} for i in range(assets)],
        "inputs": {"topics": [f"{sid}.waveforms", f"{sid}.readings"]}}))
    return path, sid


def wait_for(what: str, cond: Callable[[], object], limit_s: float, step: float = 0.02) -> Any:
    """``cond()``'s first truthy value, polled every ``step`` s; AssertionError naming ``what`` after
    ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(step)
    raise AssertionError(f"no {what} within {limit_s} s")


def read_topic(brokers: str, topic: str, timeout: float = 30.0) -> list[Message]:
    """Every message of a topic, all partitions, from the beginning to the end."""
    meta = AdminClient({"bootstrap.servers": brokers}).list_topics(topic, timeout=10)
    parts = list(meta.topics[topic].partitions)
    c = Consumer({"bootstrap.servers": brokers, "group.id": "test-reader", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    out: list[Message] = []
    done: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(done) < len(parts) and time.monotonic() < deadline:
        for m in c.consume(1000, timeout=0.5):
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    done.add(m.partition())
                    continue
                raise RuntimeError(m.error())
            out.append(m)
    c.close()
    assert len(done) == len(parts), f"did not reach the end of {topic} in {timeout} s"
    return out


def read_outputs(brokers: str, site: str) -> dict[str, list[dict[str, Any]]]:
    """The JSON records of every output topic of a site."""
    return {k: [orjson.loads(m.value()) for m in read_topic(brokers, f"{site}.{k}")] for k in OUTPUT_KINDS}


def read_jsonl_outputs(directory: Path, kinds: tuple[str, ...] = OUTPUT_KINDS) -> dict[str, list[dict[str, Any]]]:
    """The records a JsonlSink wrote (all workers' files) by output kind (by file name: ``audit`` for the
    audit trail)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for kind in kinds:
        recs = []
        for path in sorted(directory.glob(f"{kind}*.jsonl")):
            recs += [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
        out[kind] = recs
    return out


def cli(*args: str) -> list[str]:
    """The argv that runs ``aiotstream`` with this interpreter."""
    return [sys.executable, "-m", "aiotstream.cli", *args]


def start_flow(site: Path, brokers: str, log: Path, *extra: str) -> subprocess.Popen:
    """``aiotstream run`` (tailing, 1 s epochs) in the background, its output in ``log``; end it with
    :func:`stop_flow`."""
    with log.open("w") as logf:
        return subprocess.Popen(cli("run", "--site", str(site), "--brokers", brokers, "--epoch-s", "1", *extra),
                                stdout=logf, stderr=subprocess.STDOUT)


def stop_flow(proc: subprocess.Popen) -> int:
    """Ctrl-C the flow, as an operator would; kill it if it has not stopped within 30 s. Its exit code."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)


def produce_all(producer: Any, topic: str, pairs: Any) -> int:
    """Produce ``(key, value)`` pairs, waiting for room when the local queue is full; how many."""
    n = 0
    for key, value in pairs:
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
    return n


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cli(*args), capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def stable(record: Any) -> Any:
    """A record without the measurements that legitimately differ between runs and replays:
    ``produced_at`` and the model latencies in KPI records (wall-clock timings)."""
    if isinstance(record, dict):
        return {k: stable(v) for k, v in record.items() if k != "produced_at" and "latency" not in k}
    return record


def by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Records keyed by id, each reduced to its deterministic part (see :func:`stable`)."""
    return {r["id"]: stable(r) for r in records}


class Follow:
    """Reads output topics from the beginning while a flow runs; records by kind (the topics' dict keys)."""

    def __init__(self, brokers: str, topics: dict[str, str], group: str = "it-follow", fetch_wait_ms: int = 500):
        """``fetch_wait_ms``: Tansu answers a fetch only when it runs out, so it is how late a record is seen."""
        meta = AdminClient({"bootstrap.servers": brokers}).list_topics(timeout=10)
        self.kinds = {t: k for k, t in topics.items()}
        self.c = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False,
                           "fetch.wait.max.ms": fetch_wait_ms})
        self.c.assign([TopicPartition(t, p, 0) for t in topics.values() for p in meta.topics[t].partitions])
        self.records: dict[str, list[dict]] = {k: [] for k in topics}

    def poll(self) -> None:
        for m in self.c.consume(500, timeout=0.2):
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(m.error())
                continue
            self.records[self.kinds[m.topic()]].append(orjson.loads(m.value()))

    def summary(self) -> object:
        return {k: len(v) for k, v in self.records.items()}

    def wait_for(self, what: str, found: Callable[[], object], proc: subprocess.Popen, log: Path,
                 limit_s: float = 120.0) -> object:
        """Poll until ``found()`` is truthy (and return it); fail if the flow exits or ``limit_s`` passes."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            self.poll()
            got = found()
            if got:
                return got
            if proc.poll() is not None:
                raise AssertionError(f"the flow exited ({proc.returncode}) before {what}: {log.read_text()[-3000:]}")
        raise AssertionError(f"no {what} within {limit_s} s; so far: {self.summary()}; flow log: "
                             f"{log.read_text()[-3000:]}")

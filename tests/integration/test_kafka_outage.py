"""Kafka outages: the Tansu broker the test started (its data in a moto S3 store, so it outlives the broker
process) is stopped mid-run and started again; the flow reconnects by itself, every message produced before,
during (kept by the producer) and after the outage is read once, the log says what happened in a few lines,
and the source stops quickly while the broker is away (next_batch, close, SIGINT/SIGTERM to ``aiotstream run``).
"""
from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.testing import TestingSink, run_main
from confluent_kafka import Producer
from conftest import TappedPartition
from support import cli, wait_for

from aiotstream.codecs import encode_reading
from aiotstream.config import SiteConfig, default_site
from aiotstream.dataflow import build_flow
from aiotstream.io.broker import S3Store, TansuBroker
from aiotstream.io.kafka import ensure_topics, input_topics, kafka_source
from aiotstream.io.kafka_consumer import WatchedPartition, broker_health
from aiotstream.io.outage import LibrdkafkaLog
from aiotstream.records import MessageBlock, Output
from aiotstream.runstats import STATS

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ASSETS = ("m-1", "m-2", "m-3")
BACK_WITHIN_S = 10.0  # messages produced after the broker is back reach the flow within this


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    log = tmp_path_factory.mktemp("tansu-s3") / "tansu.log"
    with S3Store() as store, TansuBroker(store=store, log_path=log) as b:
        yield b


@pytest.fixture
def up(broker: TansuBroker) -> Iterator[TansuBroker]:
    """The broker, running again after the test whatever the test did to it."""
    yield broker
    if broker.proc is None:
        broker.start()


def site(name: str) -> SiteConfig:
    return default_site(1, site_id=name, inputs={"tail": True, "topics": [f"{name}.readings"], "poll_batch": 100},
                        kpi={"period_s": 1}, assets=[{"id": a, "channels": ["x"]} for a in ASSETS])


class Producing:
    """A producer of power readings (and some malformed messages) that keeps what it could not deliver yet,
    like a device gateway; every delivered message's (partition, offset) is recorded."""

    def __init__(self, brokers: str, topic: str):
        self.topic = topic
        self.p = Producer({"bootstrap.servers": brokers, "logger": LibrdkafkaLog(), "linger.ms": 5,
                           "message.timeout.ms": 120_000})
        self.delivered: list[tuple[int, int, bool]] = []  # partition, offset, good
        self.errors: list[str] = []

    def send(self, n: int, bad_every: int = 10) -> None:
        now = time.time_ns()
        for i in range(n):
            asset = ASSETS[i % len(ASSETS)]
            good = i % bad_every != 5
            value = encode_reading(asset, now + i * 1_000_000, "power_kw", 10.0 + i % 7) if good else b"{not json"

            def report(err: Any, msg: Any, good: bool = good) -> None:
                if err is not None:
                    self.errors.append(str(err))
                else:
                    self.delivered.append((msg.partition(), msg.offset(), good))

            self.p.produce(self.topic, value=value, key=asset.encode(), on_delivery=report)
        self.p.poll(0)

    def flush(self, timeout: float) -> None:
        left = self.p.flush(timeout)
        assert left == 0 and not self.errors, f"{left} message(s) undelivered, errors {self.errors[:3]}"


class Tap(FixedPartitionedSource):
    """The Kafka source: records (topic, partition, offset) of each message handed to the flow, keeps the
    partitions, and ends when ``stop`` is set and a partition has been idle for 0.5 s."""

    def __init__(self, inner: FixedPartitionedSource, stop: threading.Event):
        self.inner, self.stop = inner, stop
        self.seen: list[tuple[str, int, int]] = []
        self.parts: list[WatchedPartition] = []

    def list_parts(self) -> list[str]:
        return self.inner.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> StatefulSourcePartition:
        part = self.inner.build_part(step_id, for_part, resume_state)
        self.parts.append(part)
        idle_since = time.monotonic()

        def take(part: StatefulSourcePartition) -> list[Any]:
            nonlocal idle_since
            batch = part.next_batch()
            for m in batch:
                if type(m) is MessageBlock:  # (the flow's source: one block per poll batch)
                    self.seen.extend((m.topic, m.partition, o) for o in m.offsets)
                    self.seen.extend((e.msg.topic, e.msg.partition, e.msg.offset) for e in m.errors)
                    continue
                m = getattr(m, "msg", m)  # a consumer error carries its message
                self.seen.append((m.topic, m.partition, m.offset))
            if batch:
                idle_since = time.monotonic()
            elif self.stop.is_set() and time.monotonic() - idle_since > 0.5:
                raise StopIteration()
            return batch

        return TappedPartition(part, take)


def test_broker_restart_mid_run_loses_nothing_and_stays_quiet(up: TansuBroker, caplog: pytest.LogCaptureFixture,
                                                              capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.INFO)
    name = f"ko-{uuid.uuid4().hex[:8]}"
    cfg = site(name)
    b = up.bootstrap
    ensure_topics(b, input_topics(cfg), partitions=2)
    topic = f"{name}.readings"
    prod = Producing(b, topic)
    capfd.readouterr()  # the test's own topic creation (librdkafka logs an admin client's end on stderr)
    STATS.reset()
    stop = threading.Event()
    src = Tap(kafka_source(cfg, b, tail=True), stop)
    health = broker_health(b)
    errors: list[BaseException] = []
    marks: dict[str, float] = {}

    def script() -> None:
        try:
            prod.send(300)
            prod.flush(30)
            wait_for("the messages produced before the outage", lambda: len(src.seen) >= 300, 60)
            up.stop()
            marks["down"] = time.monotonic()
            prod.send(200)  # while the broker is down: the producer keeps them
            wait_for("the source to notice", lambda: health.is_down, 30)
            time.sleep(3.0)
            up.start()
            marks["up"] = time.monotonic()
            prod.flush(60)
            prod.send(100)
            prod.flush(30)
            wait_for(f"every message, {BACK_WITHIN_S} s after the broker was back",
                     lambda: len(src.seen) >= 600, marks["up"] + BACK_WITHIN_S - time.monotonic())
            # consumers without data say they are back in their next statistics (every second)
            wait_for("every consumer connected again", lambda: not health.is_down, 10)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)
        finally:
            stop.set()

    t = threading.Thread(target=script)
    t.start()
    out: list[Output] = []
    run_main(build_flow(cfg, src, TestingSink(out), tail=True), epoch_interval=timedelta(seconds=0.5))
    t.join(120)
    if errors:
        raise errors[0]

    # every message delivered to the broker was read exactly once
    assert Counter((p, o) for t_, p, o in src.seen if t_ == topic) == Counter((p, o) for p, o, _ in prod.delivered)
    good = sum(1 for *_, g in prod.delivered if g)
    bad = len(prod.delivered) - good
    assert (good, bad) == (540, 60)
    # made = ingested + dead-lettered; the KPIs count each power reading once
    assert STATS.get("inputs", topic) == 600
    assert Counter(o.record["reason"] for o in out if o.kind == "deadletter") == Counter({"bad_json": bad})
    kpis = [o.record for o in out if o.kind == "kpi" and o.record["scope"] == "asset"]
    assert sum(k["totals"]["power_samples"] for k in kpis) == good
    assert STATS.get("losses") == 0

    # the log: one warning when lost, one info when back, nothing from librdkafka on stderr
    text = [r.getMessage() for r in caplog.records if r.name.startswith("aiotstream")]
    assert sum("connection lost" in m for m in text) == 1, text
    assert sum("still down" in m for m in text) <= 1, text
    assert sum(" back after " in m for m in text) == 1, text
    assert not [m for m in text if "consumer error" in m], text
    assert not [r for r in caplog.records if r.exc_info], text
    err = capfd.readouterr().err
    assert "rdkafka#" not in err and "Traceback" not in err, err[-3000:]


@pytest.mark.parametrize("blocks", [False, True])
def test_next_batch_and_close_are_quick_while_the_broker_is_away(up: TansuBroker, blocks: bool) -> None:
    name = f"kq-{uuid.uuid4().hex[:8]}"
    cfg = site(name)
    ensure_topics(up.bootstrap, input_topics(cfg), partitions=1)
    src = kafka_source(cfg, up.bootstrap, tail=True, blocks=blocks)
    parts = [src.build_part("input", p, None) for p in src.list_parts()]
    for p in parts:
        p.next_batch()
    up.stop()
    worst, end = 0.0, time.monotonic() + 3.0
    while time.monotonic() < end:
        for p in parts:
            t = time.monotonic()
            p.next_batch()
            worst = max(worst, time.monotonic() - t)
        time.sleep(0.01)
    assert worst < 0.5
    t = time.monotonic()
    for p in parts:
        p.close()
    assert time.monotonic() - t < 2.0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_run_stops_on_signal_while_the_broker_is_away(up: TansuBroker, sig: signal.Signals, tmp_path: Path) -> None:
    """``aiotstream run`` on a Kafka site exits within 5 s of SIGINT/SIGTERM while librdkafka reconnects,
    without a traceback."""
    name = f"ks-{uuid.uuid4().hex[:8]}"
    cfg = site(name)
    path = tmp_path / "site.json"
    path.write_bytes(orjson.dumps(cfg.model_dump(mode="json")))
    ensure_topics(up.bootstrap, input_topics(cfg), partitions=1)
    prod = Producing(up.bootstrap, f"{name}.readings")
    prod.send(50)
    prod.flush(30)
    err = tmp_path / "stderr.log"
    out = tmp_path / "out"
    with err.open("wb") as errf:
        proc = subprocess.Popen(cli("run", "--site", str(path), "--brokers", up.bootstrap, "--out-dir", str(out)),
                                stdout=subprocess.DEVNULL, stderr=errf)
    try:
        wait_for("the flow's first outputs", lambda: any(f.stat().st_size for f in out.glob("*.jsonl")), 60, 0.1)
        up.stop()
        wait_for("the flow to notice", lambda: b"connection lost" in err.read_bytes(), 30, step=0.1)
        t = time.monotonic()
        proc.send_signal(sig)
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running 5 s after {sig.name}; stderr: {err.read_text()[-2000:]}") from None
        assert time.monotonic() - t <= 5.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = err.read_text()
    assert "Traceback" not in text and "rdkafka#" not in text, text[-3000:]

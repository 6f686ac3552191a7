"""Issue 15 #2 on a real broker (Tansu): no input and no output record can stop the flow.

Before: an input over ~740 kB was dead-lettered whole (base64), the dead letter was over the producer's
1 MB ``message.max.bytes``, ``produce`` raised ``MSG_SIZE_TOO_LARGE`` (only BufferError was caught), the
flow died, and every restart replayed the same input and died again. A record the broker refused for good
(an invalid topic) was retried five times and then stopped the flow too.
"""
from __future__ import annotations

import base64
import hashlib
import uuid

import orjson
import pytest
from confluent_kafka import Producer
from support import read_topic, run_cli

from aiotstream.config import SiteConfig
from aiotstream.io.kafka import KafkaOutputSink, ensure_topics, output_topics
from aiotstream.io.simulator import write_to_kafka
from aiotstream.pdm.runtime import SiteRuntime
from aiotstream.records import Output
from aiotstream.runstats import STATS
from aiotstream.schemas import validator
from aiotstream.sim.plant import PlantSimulator

pytestmark = pytest.mark.integration

KAFKA_LIMIT = 1_000_000  # librdkafka's default message.max.bytes, which the flow's producer keeps


def _site_toml(site: str) -> str:
    return f"""
[site]
id = "{site}"
[[assets]]
id = "pump-001"
[inputs]
tail = false
[kpi]
period_s = 5
"""


def test_inputs_over_a_megabyte_are_dead_lettered_small_and_the_flow_runs_to_the_end(kafka_broker: str,
                                                                                    tmp_path) -> None:
    site = f"lim-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "site.toml"
    path.write_text(_site_toml(site))
    cfg = SiteConfig.load(path)
    ensure_topics(kafka_broker, [f"{site}.waveforms", f"{site}.readings"], partitions=1)
    sim = PlantSimulator(cfg.all_assets(), duration_s=6.0, n_faults=0, seed=2)
    write_to_kafka(sim.messages(), kafka_broker, f"{site}.waveforms", f"{site}.readings")
    huge = b'{"asset": "pump-001", "ts": 1, "metric": "t", "value": 1, "x": "' + b"a" * 1_300_000 + b'"}'
    bad = orjson.dumps({"asset": "pump-001", "ts": sim.start_ns, "metric": "t", "value": "v" * 800_000})
    p = Producer({"bootstrap.servers": kafka_broker, "message.max.bytes": str(4 << 20)})
    for raw in (huge, bad):
        p.produce(f"{site}.readings", value=raw, key=b"pump-001")
    assert p.flush(30) == 0

    proc = run_cli("run", "--site", str(path), "--brokers", kafka_broker, "--once", "--epoch-s", "1")
    assert "Traceback" not in proc.stderr

    dead = read_topic(kafka_broker, f"{site}.deadletter")
    assert all(len(m.value()) <= KAFKA_LIMIT for m in dead)
    recs = {r["reason"]: r for r in (orjson.loads(m.value()) for m in dead)}
    assert set(recs) == {"too_large", "bad_reading"}
    big = recs["too_large"]
    assert big["payload_size"] == len(huge) and big["payload_truncated"] is True
    assert big["payload_sha256"] == hashlib.sha256(huge).hexdigest()
    assert base64.b64decode(big["payload_b64"]) == huge[:1024]
    assert recs["bad_reading"]["payload_size"] == len(bad) and recs["bad_reading"]["payload_truncated"] is True
    v = validator("deadletter")
    for r in recs.values():
        assert next(iter(v.iter_errors(r)), None) is None
    scores = read_topic(kafka_broker, f"{site}.scores")
    assert len(scores) == 6  # the good data went through: one score per one-second window


def _records(cfg: SiteConfig) -> list[Output]:
    rt = SiteRuntime(cfg)
    base = rt.ctx.block(inputs=[], window=None, features=None, model=None)
    return [Output("alert", "pump-001", {"schema": "aiotstream.alert/2", "id": uuid.uuid4().hex, "asset": "pump-001",
                                         **base}),
            Output("score", "pump-001", {"schema": "aiotstream.score/1", "id": uuid.uuid4().hex, **base,
                                         "asset": "pump-001", "score": 0.5}),
            Output("score", "pump-001", {"schema": "aiotstream.score/1", "id": uuid.uuid4().hex, **base,
                                         "asset": "pump-001", "score": float("nan")}),
            Output("score", "pump-001", {"schema": "aiotstream.score/1", "id": uuid.uuid4().hex, **base,
                                         "asset": "pump-001", "values": {f"c{i}": 1.5 for i in range(80_000)}})]


def test_a_record_the_broker_refuses_or_that_is_too_large_becomes_a_dead_letter_and_the_batch_goes_on(
        kafka_broker: str) -> None:
    """One record goes to a topic the broker refuses for good (TOPIC_EXCEPTION), one is NaN, one is over the
    producer's limit: none of them stops the batch; each is a dead letter naming it; the good one arrives."""
    site = f"lim-{uuid.uuid4().hex[:8]}"
    cfg = SiteConfig.from_dict({"site": {"id": site}, "assets": [{"id": "pump-001"}]})
    topics = output_topics(cfg)
    ensure_topics(kafka_broker, [topics["score"], topics["deadletter"]], partitions=1)
    sink = KafkaOutputSink(cfg, kafka_broker)
    sink.topics = {**topics, "alert": "not a topic!"}
    part = sink.build("out", 0, 1)
    part.MAX_ATTEMPTS = 2
    alert, good, nan, big = _records(cfg)
    before = STATS.snapshot()
    part.write_batch([alert, good, nan, big])
    part.close()
    got = [orjson.loads(m.value()) for m in read_topic(kafka_broker, topics["score"])]
    assert [r["id"] for r in got] == [good.record["id"]]
    dead = {r["reason"]: r for r in (orjson.loads(m.value()) for m in read_topic(kafka_broker, topics["deadletter"]))}
    assert set(dead) == {"delivery_failed", "non_finite_output", "output_too_large"}
    assert dead["delivery_failed"]["output_id"] == alert.record["id"]
    assert "not a topic!" in dead["delivery_failed"]["message"]
    assert dead["non_finite_output"]["output_id"] == nan.record["id"]
    assert dead["output_too_large"]["output_id"] == big.record["id"]
    assert dead["output_too_large"]["payload_size"] > KAFKA_LIMIT
    v = validator("deadletter")
    for r in dead.values():
        assert next(iter(v.iter_errors(r)), None) is None
    after = STATS.snapshot()
    assert after["outputs"].get("deadletter", 0) - before["outputs"].get("deadletter", 0) == 3
    assert after["losses"] == before["losses"]


def test_a_dead_letter_that_cannot_be_delivered_either_is_counted_as_a_loss_not_raised(kafka_broker: str) -> None:
    site = f"lim-{uuid.uuid4().hex[:8]}"
    cfg = SiteConfig.from_dict({"site": {"id": site}, "assets": [{"id": "pump-001"}]})
    topics = output_topics(cfg)
    ensure_topics(kafka_broker, [topics["score"]], partitions=1)
    sink = KafkaOutputSink(cfg, kafka_broker)
    sink.topics = {**topics, "alert": "not a topic!", "deadletter": "nor this one!"}
    part = sink.build("out", 0, 1)
    part.MAX_ATTEMPTS = 2
    alert, good, _, _ = _records(cfg)
    before = STATS.get("losses", "delivery_failed")
    part.write_batch([alert, good])  # returns: the flow keeps running
    part.close()
    assert STATS.get("losses", "delivery_failed") - before == 1
    assert [orjson.loads(m.value())["id"] for m in read_topic(kafka_broker, topics["score"])] == [good.record["id"]]


def test_the_sink_times_each_output_from_its_event_time_to_the_broker_by_kind(kafka_broker: str) -> None:
    """``output_latency_seconds{kind}``: when the batch is on the broker minus each record's event time (a
    score's window end, an alert's at_ns); a dead letter (no event time) is not timed."""
    import time

    from aiotstream.runstats import BUCKETS
    site = f"lat-{uuid.uuid4().hex[:8]}"
    cfg = SiteConfig.from_dict({"site": {"id": site}, "assets": [{"id": "pump-001"}]})
    topics = output_topics(cfg)
    ensure_topics(kafka_broker, [topics["score"], topics["alert"], topics["deadletter"]], partitions=1)
    part = KafkaOutputSink(cfg, kafka_broker).build("out", 0, 1)
    alert, score, nan, _ = _records(cfg)
    now_ns = time.time_ns()
    alert.record["at_ns"] = now_ns - 40_000_000  # 40 ms old
    score.record["window"] = {"start_ns": now_ns - 3 * 10**9, "end_ns": now_ns - 2 * 10**9}  # 2 s old
    nan.record["window"] = None  # its dead letter carries no event time either
    key = "output_latency_seconds"
    before = {k: list(v) for k, v in STATS.histograms().items() if k[0] == key}
    t0 = time.time()
    part.write_batch([alert, score, nan])
    took = time.time() - t0
    part.close()
    after = {k: v for k, v in STATS.histograms().items() if k[0] == key}
    bounds = BUCKETS[key]

    def added(kind: str) -> tuple[list[int], float]:
        old = before.get((key, (kind,)), [0] * (len(bounds) + 1) + [0.0])
        new = after[(key, (kind,))]
        return [b - a for a, b in zip(old[:-1], new[:-1], strict=True)], new[-1] - old[-1]

    counts, total = added("score")
    assert sum(counts) == 1 and 2.0 <= total <= 2.0 + took + 0.01  # ms resolution of the event time
    assert counts[bounds.index(2.5)] == 1 or took > 0.5  # the 2.5 s bucket unless delivery took > 0.5 s
    counts, total = added("alert")
    assert sum(counts) == 1 and 0.039 <= total <= 0.04 + took + 0.01
    assert (key, ("deadletter",)) not in after or added("deadletter")[0] == [0] * (len(bounds) + 1)

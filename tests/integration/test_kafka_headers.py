"""Downstream friendliness (issue 18): every output message on the broker carries headers saying what it is
(kind, schema and its major version, site, content type, data classification from ``[governance]``) and the record's event time as its Kafka
timestamp, so consumers can route and window without parsing the JSON. Real parts: the session's Tansu
broker, the simulator, ``aiotstream run --once``, read back with confluent-kafka."""
from __future__ import annotations

from pathlib import Path

import orjson
from confluent_kafka import TIMESTAMP_CREATE_TIME
from support import kafka_site_file, read_topic, run_cli

from aiotstream.io.kafka import event_time_ms

KINDS = {"scores": "score", "alerts": "alert", "kpis": "kpi", "deadletter": "deadletter"}


def test_every_output_message_has_its_headers_and_its_event_time_as_timestamp(kafka_broker: str,
                                                                             tmp_path: Path) -> None:
    site, sid = kafka_site_file(tmp_path, "hdr", 2)
    cfg = orjson.loads(site.read_bytes())
    site.write_bytes(orjson.dumps({**cfg, "model": {"warmup_windows": 5, "drift_detector": "none"},
                                   "governance": {"classification": {"alert": "confidential"}}}))
    run_cli("simulate", "--site", str(site), "--brokers", kafka_broker, "--duration", "45", "--faults", "2",
            "--malformed", "5")
    run_cli("run", "--site", str(site), "--brokers", kafka_broker, "--once")
    seen = {}
    for topic, kind in KINDS.items():
        msgs = read_topic(kafka_broker, f"{sid}.{topic}")
        seen[kind] = len(msgs)
        for m in msgs:
            rec = orjson.loads(m.value())
            headers = dict(m.headers() or [])
            assert headers == {"kind": kind.encode(), "schema": rec["schema"].encode(),
                               "schema-version": rec["schema"].rsplit("/", 1)[1].encode(), "site": sid.encode(),
                               "content-type": b"application/json",
                               "classification": b"confidential" if kind == "alert" else b"internal"}, headers
            ts_type, ts = m.timestamp()
            assert ts_type == TIMESTAMP_CREATE_TIME
            if kind == "deadletter":  # no event time: the producer's clock, i.e. now, not the simulated day
                assert ts > 1_780_000_000_000, ts
            else:  # the event time: the alert's at_ns, else the window's end, in ms
                want = rec["at_ns"] if kind == "alert" else rec["window"]["end_ns"]
                assert ts == want // 1_000_000 == event_time_ms(rec), (kind, ts, want)
    assert seen["score"] > 0 and seen["kpi"] > 0 and seen["alert"] > 0 and seen["deadletter"] == 5, seen

"""aiotstream.io.metrics: the exposition text of a run's counters (parsed with prometheus_client's own parser),
and the real HTTP server's /metrics, /healthz and /readyz on a loopback port."""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
import weakref

import pytest
from bytewax.testing import TestingSource
from prometheus_client.parser import text_string_to_metric_families

from aiotstream.errors import AiotError
from aiotstream.io import outage as outage_module
from aiotstream.io.metrics import MetricsServer, RunCollector, readiness
from aiotstream.io.outage import OutageLog, connections
from aiotstream.io.stop import SOURCE_BUILT, STOP, Stoppable
from aiotstream.runstats import BUCKETS, RunStats


class _Quiet:
    def warning(self, *a: object) -> None: ...
    def info(self, *a: object) -> None: ...


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _stats() -> RunStats:
    s = RunStats()
    s.add_many("inputs", {"p.readings": 120, "p.waveforms": 30})
    s.add_many("deadletters", {"bad_json": 4, "unknown_asset": 1})
    s.add_many("outputs", {"score": 25, "deadletter": 5})
    s.add("losses", "mqtt_seq_gap", 2)
    s.add("dropped", "duplicate_frame", 3)
    s.set("gauges", "active_suppressions", 7)
    s.level("input_records", {"frame": 30, "reading": 115})
    s.level("open_alerts", {"critical": 2})
    s.level("pending_commands", {"awaiting_approval": 1})
    s.level("blocked_commands", {("interlock", "hot"): 3})
    s.observe("batch_size", 7, ("decode",))
    s.observe("batch_size", 20_000, ("decode",))
    s.observe("inference_latency_seconds", 0.0003, ("zscore", "1"))
    s.observe("window_close_latency_seconds", 0.3)
    return s


def _histogram(name: str, labels: tuple, bounds: tuple, values: list[float]) -> dict:
    """The samples Prometheus expects for a histogram of ``values``: cumulative buckets, count and sum."""
    out = {(f"{name}_bucket", tuple(sorted((*labels, ("le", le))))): sum(v <= b for v in values)
           for b, le in zip([*bounds, float("inf")], [*map(str, map(float, bounds)), "+Inf"])}
    out[(f"{name}_count", labels)] = len(values)
    out[(f"{name}_sum", labels)] = sum(values)
    return out


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def test_the_exposition_has_every_group_by_label_and_the_connection_state() -> None:
    server = MetricsServer(port=0, stats=_stats(), info={"version": "0.1.0", "site": "p", "config_hash": "abc"},
                           ready=lambda: (True, "ready"), sources=lambda: {"Kafka b:9092": True, "MQTT m:1883": False},
                           process=False)
    from prometheus_client import generate_latest

    got = _samples(generate_latest(server.registry).decode())
    assert got == {
        ("aiotstream_inputs_total", (("source", "p.readings"),)): 120,
        ("aiotstream_inputs_total", (("source", "p.waveforms"),)): 30,
        ("aiotstream_deadletters_total", (("reason", "bad_json"),)): 4,
        ("aiotstream_deadletters_total", (("reason", "unknown_asset"),)): 1,
        ("aiotstream_outputs_total", (("kind", "deadletter"),)): 5,
        ("aiotstream_outputs_total", (("kind", "score"),)): 25,
        ("aiotstream_losses_total", (("cause", "mqtt_seq_gap"),)): 2,
        ("aiotstream_dropped_total", (("cause", "duplicate_frame"),)): 3,
        ("aiotstream_active_suppressions", ()): 7,
        ("aiotstream_source_up", (("source", "Kafka b:9092"),)): 1,
        ("aiotstream_source_up", (("source", "MQTT m:1883"),)): 0,
        ("aiotstream_ready", ()): 1,
        ("aiotstream_build_info", (("config_hash", "abc"), ("site", "p"), ("version", "0.1.0"))): 1,
        ("aiotstream_input_records_total", (("kind", "frame"),)): 30,
        ("aiotstream_input_records_total", (("kind", "reading"),)): 115,
        **{("aiotstream_open_alerts", (("severity", sev),)): n for sev, n in (("info", 0), ("warning", 0),
                                                                              ("critical", 2))},
        ("aiotstream_pending_commands", (("status", "awaiting_approval"),)): 1,
        ("aiotstream_pending_commands", (("status", "emitted"),)): 0,
        ("aiotstream_blocked_commands_total", (("check", "interlock"), ("rule", "hot"))): 3,
        **_histogram("aiotstream_batch_size", (("stage", "decode"),), BUCKETS["batch_size"], [7, 20_000]),
        **_histogram("aiotstream_inference_latency_seconds", (("model", "zscore"), ("version", "1")),
                     BUCKETS["inference_latency_seconds"], [0.0003]),
        **_histogram("aiotstream_window_close_latency_seconds", (), BUCKETS["window_close_latency_seconds"], [0.3]),
    }


def test_the_collector_reads_the_counters_at_each_scrape() -> None:
    stats = RunStats()
    c = RunCollector(stats, ready=lambda: (False, "x"), sources=dict)
    first = {m.name: m for m in c.collect()}
    assert first["aiotstream_inputs"].samples == [] and first["aiotstream_ready"].samples[0].value == 0
    stats.add("inputs", "file", 9)
    (sample,) = next(m for m in c.collect() if m.name == "aiotstream_inputs").samples
    assert (sample.name, sample.labels, sample.value) == ("aiotstream_inputs_total", {"source": "file"}, 9)


def test_the_server_answers_metrics_and_probes_and_closes_its_port() -> None:
    state = {"ready": (False, "input not connected: Kafka b:9092")}
    with MetricsServer(port=0, stats=_stats(), ready=lambda: state["ready"], sources=dict) as server:
        code, ctype, text = _get(f"{server.url}/metrics")
        assert (code, ctype) == (200, "text/plain; version=0.0.4; charset=utf-8")  # what every Prometheus reads
        got = _samples(text)
        assert got[("aiotstream_inputs_total", (("source", "p.readings"),))] == 120
        assert ("process_resident_memory_bytes", ()) in got and ("aiotstream_ready", ()) in got
        assert _get(f"{server.url}/healthz")[0] == 200
        code, ctype, body = _get(f"{server.url}/readyz")
        assert (code, ctype) == (503, "application/json") and body.count("\n") == 1
        assert json.loads(body) == {"ready": False, "reason": "input not connected: Kafka b:9092"}
        state["ready"] = (True, "ready")
        assert _get(f"{server.url}/readyz")[:2] == (200, "application/json")
        assert _get(f"{server.url}/nope")[0] == 404
        port = server.port
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_a_port_in_use_or_an_address_not_here_is_one_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(AiotError, match=f"--metrics-port {port} on 127.0.0.1 is already in use"):
            MetricsServer(port=port, process=False).start()
    with pytest.raises(AiotError, match="--metrics-host 203.0.113.7 --metrics-port 0: cannot listen there"):
        MetricsServer(host="203.0.113.7", port=0, process=False).start()
    with pytest.raises(AiotError, match="--metrics-host no.such.host.invalid: not a host name"):
        MetricsServer(host="no.such.host.invalid", port=0, process=False).start()


def test_readiness_needs_a_built_source_and_every_connection_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # connections other tests of this process registered (sources still referenced) are not this run's
    monkeypatch.setattr(outage_module, "_CONNECTIONS", weakref.WeakKeyDictionary())
    STOP.clear()
    SOURCE_BUILT.clear()
    assert readiness()[0] is False and readiness()[1].startswith("the flow has not started")
    src = Stoppable(TestingSource([1, 2, 3]))
    (part,) = src.list_parts()
    src.build_part("input", part, None)  # what Bytewax does once it has the resume state
    assert SOURCE_BUILT.is_set()
    outage = OutageLog(_Quiet(), "OPC UA opc.tcp://unit-test:4840")
    assert connections()["OPC UA opc.tcp://unit-test:4840"] is False  # not connected yet
    assert readiness() == (False, "input not connected: OPC UA opc.tcp://unit-test:4840")
    outage.ok()
    assert connections()["OPC UA opc.tcp://unit-test:4840"] is True and readiness() == (True, "ready")
    outage.failed("socket closed", attempt=False)
    assert readiness()[0] is False
    outage.ok()
    STOP.request()
    try:
        assert readiness() == (False, "stopping (SIGINT)")
    finally:
        STOP.clear()
        SOURCE_BUILT.clear()
    del outage
    import gc

    gc.collect()
    assert "OPC UA opc.tcp://unit-test:4840" not in connections()  # held weakly: gone with its source


def test_the_recovery_write_age_is_the_newest_partition_file_s(tmp_path) -> None:
    import os
    import time

    c = RunCollector(RunStats(), ready=lambda: (True, "ready"), sources=dict, recovery=tmp_path)
    assert c.recovery_age_s() is None  # nothing written yet: no sample
    assert "aiotstream_recovery_write_age_seconds" not in {m.name for m in c.collect()}
    now = time.time()
    for name, ago in (("part-0.sqlite3", 500), ("part-0.sqlite3-wal", 100), ("part-2.sqlite3", 300)):
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (now - ago, now - ago))
    (tmp_path / "other.txt").write_bytes(b"x")  # not a partition: ignored
    (m,) = [m for m in c.collect() if m.name == "aiotstream_recovery_write_age_seconds"]
    assert 100 <= m.samples[0].value < 100 + 600  # the newest file, -wal included; a generous bound for a slow box


def test_bytewax_s_own_metrics_are_served_from_its_dataflow_api_when_it_is_on(tmp_path) -> None:
    """A loopback server answering with a page Bytewax 0.21's dataflow API served (tests/data, captured from a
    replay with BYTEWAX_DATAFLOW_API_ENABLED=1): its bytewax_* families appear in our /metrics, once."""
    import http.server
    import threading
    from pathlib import Path

    from aiotstream.io.metrics import bytewax_api_port

    page = (Path(__file__).parent.parent / "data" / "bytewax-dataflow-api-metrics.txt").read_bytes()

    class Api(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *a: object) -> None: ...

    api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    try:
        port = bytewax_api_port({"BYTEWAX_DATAFLOW_API_ENABLED": "1", "BYTEWAX_DATAFLOW_API_PORT": str(api.server_port)})
        with MetricsServer(port=0, stats=_stats(), ready=lambda: (True, "ready"), sources=dict,
                           bytewax_port=port) as server:
            code, _, text = _get(f"{server.url}/metrics")
    finally:
        api.shutdown()
        api.server_close()
    assert code == 200
    got = _samples(text)
    inp = {dict(labels)["step_id"].rsplit(".", 1)[-1]: v for (name, labels), v in got.items()
           if name == "bytewax_item_inp_count_total"}
    assert inp["decode"] == 1338 and inp["sink"] == 152
    assert any(name == "bytewax_snapshot_duration_seconds_bucket" for name, _ in got)
    assert not any(name.startswith("otel_") for name, _ in got)
    assert sum(1 for line in text.splitlines() if line.startswith("# TYPE process_cpu_seconds_total")) == 1
    assert got[("aiotstream_inputs_total", (("source", "p.readings"),))] == 120  # ours still there


def test_without_bytewax_s_api_the_scrape_still_answers() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with MetricsServer(port=0, stats=_stats(), ready=lambda: (True, "ready"), sources=dict, process=False,
                       bytewax_port=dead) as server:
        code, _, text = _get(f"{server.url}/metrics")
    assert code == 200 and "aiotstream_inputs_total" in text and "bytewax_" not in text

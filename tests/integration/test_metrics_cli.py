"""The metrics server of ``run`` and ``replay``, scraped while the CLI runs in a child process.

Real parts only: a Tansu broker of the test's own (started after the flow, so the flow first waits for it),
the simulator writing N messages of which M malformed, a mosquitto the test stops and starts, the CLI with
``--metrics-port``, Prometheus text parsed with prometheus_client's parser. What is checked: /readyz goes
503 -> 200 (and back to 503 while the MQTT broker is away), /healthz answers, the inputs counted equal what
the simulator made and the dead letters the malformed count, the consumer lag reaches 0, SIGTERM stops the
flow and closes the port. No timing is asserted: the waits are deadlines for something to appear.
"""
from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
from prometheus_client.parser import text_string_to_metric_families
from support import cli, kafka_site_file, run_cli

from aiotstream.io.broker import TansuBroker, free_port

ASSETS = 3


def _site(tmp: Path) -> tuple[Path, str]:
    return kafka_site_file(tmp, "met", ASSETS)


def _n(text: str) -> int:
    return int(text.replace(",", ""))


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""  # not listening (yet, or any more)


def _scrape(base: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """metric sample name -> {sorted labels: value}."""
    code, text = _get(f"{base}/metrics")
    assert code == 200, (code, text)
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def _total(m: dict, name: str) -> float:
    return sum(m.get(name, {}).values())


def _scrape_when(base: str, name: str, at_least: float) -> Callable[[], object]:
    """A check for :func:`_wait_until`: the scrape once the metric's total has reached ``at_least``."""

    def check() -> object:
        got = _scrape(base)
        return got if _total(got, name) >= at_least else None

    return check


def _lag_when_caught_up(base: str, topics: set[str]) -> Callable[[], object]:
    """A check for :func:`_wait_until`: the consumer lag samples once every topic has some (each partition
    reports after its first statistics callback) and all are 0."""

    def check() -> object:
        lag = _scrape(base).get("bytewax_kafka_consumer_lag", {})
        seen = {dict(labels)["topic"] for labels in lag}
        return lag if seen == topics and not any(lag.values()) else None

    return check


def _wait_until(what: str, found: Callable[[], object], proc: subprocess.Popen, log: Path,
                limit_s: float = 180.0) -> object:
    deadline = time.monotonic() + limit_s
    while True:
        got = found()
        if got:
            return got
        if proc.poll() is not None:
            raise AssertionError(f"exited ({proc.returncode}) before {what}: {log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {what} within {limit_s} s: {log.read_text()[-3000:]}")
        time.sleep(0.2)


def _sigterm(proc: subprocess.Popen, log: Path) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"still running 30 s after SIGTERM: {log.read_text()[-3000:]}") from None
    err = log.read_text()
    assert rc == 143, (rc, err[-3000:])
    assert "Traceback" not in err and "panicked" not in err, err[-3000:]
    return err


def _closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_a_kafka_run_counts_what_the_simulator_sent_and_is_ready_once_its_broker_answers(tmp_path: Path) -> None:
    site, sid = _site(tmp_path)
    kafka_port, port = free_port(), free_port()
    out, log = tmp_path / "out", tmp_path / "run.log"
    with log.open("w") as f:  # the flow first, its broker not there yet: it waits for it (--broker-wait)
        proc = subprocess.Popen(cli("run", "--site", str(site), "--brokers", f"127.0.0.1:{kafka_port}",
                                    "--broker-wait", "120", "--out-dir", str(out), "--metrics-port", str(port)),
                                stdout=subprocess.DEVNULL, stderr=f)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until("/healthz", lambda: _get(f"{base}/healthz")[0] == 200, proc, log)
        code, body = _get(f"{base}/readyz")
        assert code == 503 and json.loads(body)["ready"] is False, (code, body)
        assert "has not started" in json.loads(body)["reason"]
        assert _scrape(base)["aiotstream_ready"][()] == 0
        with TansuBroker(port=kafka_port, log_path=tmp_path / "tansu.log") as broker:
            made = run_cli("simulate", "--site", str(site), "--brokers", broker.bootstrap, "--duration", "20",
                           "--faults", "0", "--malformed", "37").stderr
            m = re.search(r": ([\d,]+) frames, ([\d,]+) readings, \d+ fault\(s\), ([\d,]+) malformed", made)
            assert m, made
            n, bad = _n(m.group(1)) + _n(m.group(2)) + _n(m.group(3)), _n(m.group(3))
            assert bad == 37
            _wait_until("/readyz 200", lambda: _get(f"{base}/readyz")[0] == 200, proc, log)
            metrics = _wait_until(f"{n} inputs counted", _scrape_when(base, "aiotstream_inputs_total", n), proc, log)
            assert isinstance(metrics, dict)
            by_source = metrics["aiotstream_inputs_total"]
            assert set(by_source) == {(("source", f"{sid}.readings"),), (("source", f"{sid}.waveforms"),)}
            assert _total(metrics, "aiotstream_inputs_total") == n
            # the dead letters are counted when the sink has written them: at the end of their epoch
            metrics = _wait_until(f"{bad} dead letters", _scrape_when(base, "aiotstream_deadletters_total", bad), proc,
                                  log)
            assert isinstance(metrics, dict)
            assert _total(metrics, "aiotstream_deadletters_total") == bad
            assert metrics["aiotstream_outputs_total"][(("kind", "deadletter"),)] == bad
            assert metrics["aiotstream_outputs_total"][(("kind", "score"),)] > 0
            assert metrics["aiotstream_source_up"] == {(("source", f"Kafka 127.0.0.1:{kafka_port}"),): 1}
            assert metrics["aiotstream_ready"][()] == 1
            ((labels, one),) = metrics["aiotstream_build_info"].items()
            info = dict(labels)
            assert one == 1 and info["site"] == sid and info["command"] == "run" and info["version"]
            assert re.fullmatch(r"[0-9a-f]{16}", info["config_hash"]), info
            assert metrics["process_resident_memory_bytes"][()] > 0
            # Bytewax's Kafka consumer lag (librdkafka's statistics, every second) in the same place: once all is
            # read, every partition with data is at lag 0
            topics = {f"{sid}.readings", f"{sid}.waveforms"}
            lag = _wait_until("consumer lag 0 on both topics", _lag_when_caught_up(base, topics), proc, log)
            assert isinstance(lag, dict) and all(dict(labels)["step_id"].endswith(".input") for labels in lag), lag
            err = _sigterm(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
    last = err.strip().splitlines()[-1]
    assert re.match(rf"stopped \(SIGTERM\): inputs {n:,} .*dead letters {bad} ", last), last
    assert f"metrics on {base}/metrics" in err
    assert _closed(port)


def test_a_replay_serves_probes_on_a_free_port_and_stops_them_with_the_flow(tmp_path: Path) -> None:
    site, _ = _site(tmp_path)
    hist = tmp_path / "hist"
    run_cli("simulate", "--site", str(site), "--out-dir", str(hist), "--duration", "40", "--faults", "0")
    log = tmp_path / "replay.log"
    with log.open("w") as f:
        proc = subprocess.Popen(cli("replay", str(hist / "readings.jsonl"), str(hist / "waveforms.bin"), "--site",
                                    str(site), "--speed", "1", "--out-dir", str(tmp_path / "out"),
                                    "--recovery", str(tmp_path / "rec"), "--metrics-port", "0"),
                                stdout=subprocess.DEVNULL, stderr=f)
    try:
        found = _wait_until("the metrics address in the log",
                            lambda: re.search(r"metrics on (http://127\.0\.0\.1:(\d+))/metrics", log.read_text()),
                            proc, log)
        assert isinstance(found, re.Match)
        base, port = found.group(1), int(found.group(2))
        assert _get(f"{base}/healthz")[0] == 200
        _wait_until("/readyz 200", lambda: _get(f"{base}/readyz")[0] == 200, proc, log)
        seen = _wait_until("inputs counted", lambda: _total(_scrape(base), "aiotstream_inputs_total"), proc, log)
        assert "aiotstream_source_up" not in _scrape(base)  # files: no connection to watch (no samples)
        # with --recovery: the age of the newest write to this process's recovery partitions (every epoch)
        age = _wait_until("a recovery write", lambda: _scrape(base).get("aiotstream_recovery_write_age_seconds"),
                          proc, log)
        assert isinstance(age, dict) and age[()] >= 0
        err = _sigterm(proc, log)  # mid-way: 40 s of event time at real speed
    finally:
        if proc.poll() is None:
            proc.kill()
    m = re.match(r"stopped \(SIGTERM\): inputs ([\d,]+) ", err.strip().splitlines()[-1])
    assert m and float(str(seen)) <= _n(m.group(1)), err[-2000:]
    assert _closed(port)


def test_an_mqtt_run_is_ready_only_while_its_broker_is_connected(tmp_path: Path, own_mosquitto) -> None:
    from mqtt_devices import Devices, Gateway, site

    own_mosquitto.stop()  # the flow starts first: its broker is not there yet
    prefix = f"met{uuid.uuid4().hex[:6]}"
    cfg = site("127.0.0.1", own_mosquitto.port, prefix)
    path = tmp_path / "mqtt-site.json"
    path.write_bytes(orjson.dumps(cfg.model_dump(mode="json")))
    port, log = free_port(), tmp_path / "run.log"
    with log.open("w") as f:
        proc = subprocess.Popen(cli("run", "--site", str(path), "--out-dir", str(tmp_path / "out"), "--epoch-s", "1",
                                    "--metrics-port", str(port)), stdout=subprocess.DEVNULL, stderr=f)
    base, name = f"http://127.0.0.1:{port}", f"MQTT 127.0.0.1:{own_mosquitto.port}"
    up = (("source", name),)

    def readyz() -> tuple[int, str]:
        code, body = _get(f"{base}/readyz")
        return code, json.loads(body)["reason"] if body else ""

    try:
        _wait_until("readyz naming the MQTT broker", lambda: readyz() == (503, f"input not connected: {name}"),
                    proc, log)
        assert _scrape(base)["aiotstream_source_up"] == {up: 0}
        own_mosquitto.start()
        _wait_until("/readyz 200", lambda: readyz()[0] == 200, proc, log)
        assert _scrape(base)["aiotstream_source_up"] == {up: 1}
        dev, gw = Devices(prefix, bad_every=10), Gateway("127.0.0.1", own_mosquitto.port)
        try:
            gw.publish(dev.readings(400), dev)
            assert gw.wait_acked(400, 60) == 400
        finally:
            gw.close()
        # every 10th reading is bad, the 400th too: 40 dead letters mean all 400 were read
        metrics = _wait_until("40 dead letters", _scrape_when(base, "aiotstream_deadletters_total", 40), proc, log)
        assert isinstance(metrics, dict)
        assert metrics["aiotstream_inputs_total"] == {(("source", "mqtt"),): 400}
        assert metrics["aiotstream_deadletters_total"] == {(("reason", "bad_reading"),): 40}
        own_mosquitto.stop()  # down again: not ready, the gauge says which input
        _wait_until("/readyz 503 again", lambda: readyz() == (503, f"input not connected: {name}"), proc, log)
        assert _scrape(base)["aiotstream_source_up"] == {up: 0}
        assert _get(f"{base}/healthz")[0] == 200  # alive all along: liveness must not restart a waiting flow
        _sigterm(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _closed(port)

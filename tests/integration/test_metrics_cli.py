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
from collections import Counter
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


def _served_at(proc: subprocess.Popen, log: Path) -> tuple[str, int]:
    """The address a ``--metrics-port 0`` server logged: (base URL, port)."""
    found = _wait_until("the metrics address in the log",
                        lambda: re.search(r"metrics on (http://127\.0\.0\.1:(\d+))/metrics", log.read_text()),
                        proc, log)
    assert isinstance(found, re.Match)
    return found.group(1), int(found.group(2))


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
    # a site without [auth] that reads its feedback and control topics from Kafka says who can act on it
    assert "no [auth] in the site config" in err and f"{sid}.feedback" in err
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
        base, port = _served_at(proc, log)
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
    assert "no [auth]" not in err  # a replay of files reads no feedback or control topic
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


CONTROL = {  # an approval rule (its commands wait: pending) and an auto rule the envelope blocks (bounds)
    "actuators": [{"name": "speed", "unit": "rpm", "initial": 1800, "min": 600, "max": 1800, "ack_timeout_s": 600},
                  {"name": "coolant", "initial": 0, "min": 0, "max": 1}],
    "rules": [{"name": "slow", "actuator": "speed", "when": {"alert_type": "anomaly"}, "action": {"set": 1200},
               "mode": "approval", "approval_timeout_s": 3600},
              {"name": "flood", "actuator": "coolant", "when": {"alert_type": "anomaly"}, "action": {"set": 5},
               "mode": "auto"}]}


def _outputs(out: Path, name: str) -> list[dict]:
    path = out / f"{name}.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def _open_alerts(out: Path) -> dict[str, int]:
    """Severity -> alerts open at the end of the written alert records (each alert's last record)."""
    last = {a["alert_id"]: a for a in _outputs(out, "alerts")}
    return dict(Counter(a["severity"] for a in last.values() if a["status"] != "cleared"))


def test_every_flow_metric_is_scraped_with_plausible_values_during_a_simulator_run(tmp_path: Path) -> None:
    """Issue 18's list, each metric checked against what the simulator sent and what the flow wrote."""
    from aiotstream.sim.plant import DEFAULT_START_NS

    site, sid = _site(tmp_path)
    cfg = orjson.loads(site.read_bytes())
    site.write_bytes(orjson.dumps({**cfg, "model": {"warmup_windows": 10, "drift_detector": "none"},
                                   "control": CONTROL}))
    port, out, log = free_port(), tmp_path / "out", tmp_path / "run.log"
    duration = 60
    with TansuBroker(port=free_port(), log_path=tmp_path / "tansu.log") as broker:
        made = run_cli("simulate", "--site", str(site), "--brokers", broker.bootstrap, "--duration", str(duration),
                       "--faults", "3", "--malformed", "23").stderr
        m = re.search(r": ([\d,]+) frames, ([\d,]+) readings, \d+ fault\(s\), ([\d,]+) malformed", made)
        assert m, made
        frames, readings, bad = _n(m.group(1)), _n(m.group(2)), _n(m.group(3))
        n = frames + readings + bad
        with log.open("w") as f:
            proc = subprocess.Popen(cli("run", "--site", str(site), "--brokers", broker.bootstrap, "--out-dir", str(out),
                                        "--recovery", str(tmp_path / "rec"), "--metrics-port", str(port)),
                                    stdout=subprocess.DEVNULL, stderr=f)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_until("/readyz 200", lambda: _get(f"{base}/readyz")[0] == 200, proc, log)
            _wait_until(f"{bad} dead letters", _scrape_when(base, "aiotstream_deadletters_total", bad), proc, log)
            scores = _wait_until("every window scored", lambda: len(_outputs(out, "scores")) >= 3 * (duration - 2),
                                 proc, log)
            assert scores
            topics = {f"{sid}.readings", f"{sid}.waveforms"}
            lag = _wait_until("consumer lag 0 on both topics", _lag_when_caught_up(base, topics), proc, log)
            # the gauges agree with the records written so far once an epoch has passed over both
            _wait_until("open alerts as written", lambda: {
                k[0][1]: v for k, v in _scrape(base)["aiotstream_open_alerts"].items() if v} == _open_alerts(out),
                proc, log)
            got = _scrape(base)
            err = _sigterm(proc, log)
        finally:
            if proc.poll() is None:
                proc.kill()
    now = time.time()
    # inputs by source (the simulator's count) and by kind (what decoded); dead letters: the injected ones
    assert _total(got, "aiotstream_inputs_total") == n
    kinds = {dict(k)["kind"]: v for k, v in got["aiotstream_input_records_total"].items()}
    assert kinds == {"frame": frames, "reading": readings}, kinds
    assert _total(got, "aiotstream_deadletters_total") == bad
    written = Counter(d["reason"] for d in _outputs(out, "deadletter"))
    assert {dict(k)["reason"]: v for k, v in got["aiotstream_deadletters_total"].items()} == written
    # outputs by kind: what the sink wrote
    for kind, name in (("score", "scores"), ("alert", "alerts"), ("command", "commands"), ("kpi", "kpis")):
        assert got["aiotstream_outputs_total"][(("kind", kind),)] == len(_outputs(out, name)) > 0, kind
    # alerts open by severity, pending and blocked commands: as the records say
    open_now = {dict(k)["severity"]: v for k, v in got["aiotstream_open_alerts"].items()}
    assert set(open_now) >= {"info", "warning", "critical"} and sum(open_now.values()) > 0
    commands = _outputs(out, "commands")
    last = {c["command_id"]: c["status"] for c in commands}
    assert got["aiotstream_pending_commands"][(("status", "awaiting_approval"),)] == \
        sum(s == "awaiting_approval" for s in last.values()) > 0
    blocked = Counter((c["blocked_by"]["check"], c["blocked_by"]["rule"]) for c in commands if c["status"] == "blocked")
    assert blocked and {tuple(v for _, v in k): v for k, v in got["aiotstream_blocked_commands_total"].items()} == \
        dict(blocked)
    # histograms: a window close per score, a decode batch per poll, a model call per window
    windows = len(_outputs(out, "scores"))
    assert got["aiotstream_window_close_latency_seconds_count"][()] >= windows
    decode = (("stage", "decode"),)
    assert got["aiotstream_batch_size_count"][decode] > 0 and got["aiotstream_batch_size_sum"][decode] == n
    ((labels, calls),) = got["aiotstream_inference_latency_seconds_count"].items()
    assert dict(labels) == {"model": "baseline", "version": "1"}, labels  # [model] name and version
    assert calls >= sum(1 for s in _outputs(out, "scores") if s["frames"] > 0) > 0
    assert 0 < got["aiotstream_inference_latency_seconds_sum"][labels] < calls  # under a second a call
    # watermark lag: wall clock minus the newest and oldest asset's closed windows, in the simulated minute
    lags = {dict(k)["which"]: v for k, v in got["aiotstream_watermark_lag_seconds"].items()}
    start_s = DEFAULT_START_NS / 1e9
    assert now - start_s - duration - 30 < lags["newest"] <= lags["oldest"] < now - start_s, lags
    # Kafka consumer lag per partition (Bytewax's), the recovery snapshot age, readiness
    assert lag and all(v == 0 for v in lag.values())
    assert 0 <= got["aiotstream_recovery_write_age_seconds"][()] < 600
    assert got["aiotstream_ready"][()] == 1
    assert "stopped (SIGTERM)" in err
    # the start line names the config and the models it starts with (issue 18 item 3)
    assert re.search(rf"running predictive-maintenance for site '{sid}' \(config_hash [0-9a-f]{{16}}, model "
                     r"baseline@1 \(calibrated\), code ", err), err[:2000]


def test_detect_serves_metrics_while_it_scores_a_file_and_stops_them_with_it(tmp_path: Path) -> None:
    """``detect --metrics-port``: the readings of the file are counted while it is scored, probes answer,
    and the port closes when the command returns."""
    import numpy as np

    rows = 300_000  # several seconds of scoring: the scrape below has time to see the inputs counted
    rng = np.random.default_rng(3)
    csv = tmp_path / "export.csv"
    t0 = 1_767_225_600
    with csv.open("w") as f:
        f.write("ts,a,b\n")
        for i, (a, b) in enumerate(rng.normal(size=(rows, 2)).round(4)):
            f.write(f"{t0 + i},{a},{b}\n")
    log = tmp_path / "detect.log"
    with log.open("w") as f:
        proc = subprocess.Popen(cli("detect", str(csv), "--timestamp-column", "ts", "--value-columns", "a,b",
                                    "--out", str(tmp_path / "scores.csv"), "--metrics-port", "0"),
                                stdout=subprocess.DEVNULL, stderr=f)
    try:
        base, port = _served_at(proc, log)
        assert _get(f"{base}/healthz")[0] == 200
        got = _wait_until("readings counted", _scrape_when(base, "aiotstream_inputs_total", 1), proc, log)
        assert isinstance(got, dict) and 0 < _total(got, "aiotstream_inputs_total") <= 2 * rows
        assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _closed(port)
    assert sum(1 for _ in (tmp_path / "scores.csv").open()) == rows + 1

"""The MQTT source and its broker's outages, on a mosquitto the test starts on its own loopback port: the flow
reconnects and resubscribes by itself, data published after the broker is back arrives within 10 s, the counts
stay exact (what a crashed broker could not keep is reported as lost), the log says what happened in a few
lines without tracebacks, and a deliberate stop is prompt in every connection state and logs no reconnect."""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import pytest
from mqtt_devices import Devices, Gateway, Recording, run_flow, site, wait_until

from aiotstream.io.mqtt import MqttSource
from aiotstream.runstats import STATS

pytestmark = pytest.mark.integration
BACK_WITHIN_S = 10.0  # data published after the broker is back reaches the flow within this
LOGGER = "aiotstream.io.mqtt"


def losses() -> dict[str, int]:
    return {k: v for k, v in STATS.snapshot()["losses"].items() if v}


def mqtt_lines(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= level]


def test_a_broker_restart_mid_run_heals_by_itself_loses_nothing_and_logs_three_lines(
        own_mosquitto, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.INFO)
    STATS.reset()
    cfg = site("127.0.0.1", own_mosquitto.port, "outage")
    dev = Devices("outage")
    marks: dict[str, float] = {}

    def device(rec: Recording, stop: threading.Event) -> None:
        gw = Gateway("127.0.0.1", own_mosquitto.port)
        try:
            gw.publish(dev.readings(400), dev, rate=400)
            own_mosquitto.stop()  # SIGTERM: mosquitto saves the session and its queue
            marks["down"] = time.monotonic()
            gw.publish(dev.readings(1200), dev, rate=400)  # the gateway keeps them until it is back
            own_mosquitto.start()
            marks["back"] = time.monotonic()
            marks["after"] = len(dev.made)  # index of the first reading published after the restart
            gw.publish(dev.readings(400), dev, rate=400)
            assert gw.wait_acked(len(dev.made), 60) >= len(dev.made)
            wait_until(lambda: rec.unique() >= set(dev.made), 60, "every reading reaching the flow")
        finally:
            gw.close()

    rec, out = run_flow(cfg, device)
    first_after = dev.made[marks["after"]]
    when = next(t for m, t in zip(rec.seen, rec.times, strict=True)
                if (m.topic.removeprefix("mqtt:"), m.value) == first_after)
    print(f"down {marks['back'] - marks['down']:.1f} s; the first reading published after the restart reached "
          f"the flow {when - marks['back']:.2f} s after the broker was back")
    assert when - marks["back"] <= BACK_WITHIN_S
    # exact counts: everything made reached the flow (QoS 1, persistent session, the gateway's own resends)
    assert rec.unique() == set(dev.made)
    assert STATS.get("inputs", "mqtt") == rec.count()
    assert {o.record["reason"] for o in out if o.kind == "deadletter"} <= {"late"}  # redelivered duplicates only
    assert losses() == {}
    # the log: one warning when lost, at most one line per 30 s while down, one info line when back
    lines = mqtt_lines(caplog)
    lost = [x for x in lines if " lost (" in x]
    back = [x for x in lines if " back after " in x]
    down_lines = [x for x in lines if "not reachable" in x or "refused" in x]
    assert len(lost) == 1 and len(back) == 1, lines
    assert len(down_lines) <= 1 + (marks["back"] - marks["down"]) // 30, lines
    assert "session present: True" in back[0]
    assert not [r for r in caplog.records if r.exc_info], "a traceback in the log"
    assert "Traceback" not in capfd.readouterr().err


@pytest.fixture
def unsaved_mosquitto(tmp_path: Path):
    """The shipped config, but saving to disk only on a clean stop: a crash loses everything since start."""
    from conftest import MOSQUITTO, MosquittoBroker

    if MOSQUITTO is None:
        pytest.skip("the mosquitto binary is missing (apt-get install -y mosquitto)")
    broker = MosquittoBroker(tmp_path / "mosquitto", settings={"autosave_interval": "3600"}).start()
    try:
        yield broker
    finally:
        broker.stop()


def test_what_a_crashed_broker_could_not_keep_is_reported_as_lost(unsaved_mosquitto) -> None:
    """SIGKILL while messages wait in the broker's queue for the flow: they are gone (the broker had not
    saved them), and so is the session. The flow reconnects, subscribes again and counts exactly what went
    missing: readings made = ingested + lost (mqtt_seq_gap), plus one mqtt_session_lost."""
    broker = unsaved_mosquitto
    STATS.reset()
    cfg = site("127.0.0.1", broker.port, "crash", receive_maximum=300)
    dev = Devices("crash")

    def device(rec: Recording, stop: threading.Event) -> None:
        gw = Gateway("127.0.0.1", broker.port)
        try:
            n = 6_000
            rec.paused.set()  # the flow takes nothing: all but the in-flight window waits in the broker's queue
            gw.publish(dev.readings(n), dev)
            assert gw.wait_acked(n) == n
            broker.kill()
            broker.start()
            rec.paused.clear()
            wait_until(lambda: losses().get("mqtt_session_lost") == 1, 20, "the flow noticing the lost session")
            gw.publish(dev.trailer(), dev)  # after the gateway's own reconnect
            assert gw.wait_acked(len(dev.made), 60) >= len(dev.made)
            wait_until(lambda: len(set(dev.made)) - len(rec.unique()) == losses().get("mqtt_seq_gap"), 30,
                       "the gaps counted")
        finally:
            gw.close()

    rec, _ = run_flow(cfg, device)
    lost = len(set(dev.made)) - len(rec.unique())
    print(f"made {len(dev.made)}, ingested {len(rec.unique())}, lost in the crash {lost}; losses {losses()}")
    assert lost >= 6_000 - 300  # at most the in-flight window had reached the flow's client
    assert rec.unique() <= set(dev.made)
    assert losses() == {"mqtt_seq_gap": lost, "mqtt_session_lost": 1}


@pytest.fixture
def down_broker(tmp_path: Path):
    """A mosquitto on its own port that a test starts when it wants (and that is stopped afterwards)."""
    from conftest import MOSQUITTO, MosquittoBroker

    if MOSQUITTO is None:
        pytest.skip("the mosquitto binary is missing (apt-get install -y mosquitto)")
    broker = MosquittoBroker(tmp_path / "mosquitto")
    try:
        yield broker
    finally:
        broker.stop()


def partition(broker, prefix: str, ready: threading.Event | None = None):
    cfg = site("127.0.0.1", broker.port, prefix)
    assert cfg.inputs.mqtt is not None
    src = MqttSource(cfg.inputs.mqtt, cfg.site.id, stop=threading.Event(), ready=ready)
    return src.build_part("input", src.list_parts()[0], None), cfg.inputs.mqtt.client_id


def poll(part, seconds: float) -> float:
    """Call next_batch for ``seconds``; return the longest call."""
    longest = 0.0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.monotonic()
        part.next_batch()
        longest = max(longest, time.monotonic() - t)
        time.sleep(0.005)
    return longest


def timed_close(part) -> float:
    proc = part.proc
    t = time.monotonic()
    part.close()
    took = time.monotonic() - t
    assert proc is None or proc.poll() is not None, "the MQTT client process is still running"
    return took


@pytest.mark.parametrize("state", ["connecting", "connected", "reconnecting"])
def test_a_deliberate_stop_is_prompt_in_every_state_and_logs_no_reconnect(
        state: str, down_broker, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    ready = threading.Event()
    if state != "connecting":
        down_broker.start()
    part, client_id = partition(down_broker, f"stop-{state}", ready)
    if state != "connecting":
        assert ready.wait(10)
    if state == "reconnecting":
        down_broker.stop()
        wait_until(lambda: (part.next_batch(), any(" lost (" in x for x in mqtt_lines(caplog)))[-1], 10,
                   "the source noticing the broker is gone")
    assert poll(part, 1.0) <= 0.5
    before = len(mqtt_lines(caplog, logging.WARNING))
    assert timed_close(part) <= 2.0
    if state != "reconnecting":
        assert not [x for x in mqtt_lines(caplog) if " lost (" in x or "reconnect" in x]
    # nothing after the stop: no warning, and no reconnect attempt even once the broker is there again
    log_file = down_broker.workdir / "mosquitto.log"
    if down_broker.proc is None:
        down_broker.start()
    time.sleep(3.0)
    assert len(mqtt_lines(caplog, logging.WARNING)) == before
    connects = [x for x in log_file.read_text().splitlines() if f" as {client_id} " in x]
    assert len(connects) == (0 if state == "connecting" else 1), connects


def test_the_mqtt_client_process_ends_with_the_flow_process_and_ignores_ctrl_c(down_broker) -> None:
    """Ctrl-C goes to the whole process group: the child leaves it to the flow. A flow process that dies
    without close() takes the child with it (it sees its pipe close) and the broker keeps the session."""
    import signal

    down_broker.start()
    ready = threading.Event()
    part, _ = partition(down_broker, "orphan", ready)
    assert ready.wait(10)
    proc = part.proc
    assert proc is not None
    os.kill(proc.pid, signal.SIGINT)
    time.sleep(0.5)
    assert proc.poll() is None, "SIGINT ended the MQTT client process"
    for c in (part.data, part.ctl):
        c.close()  # what the operating system does when the flow process dies
    part.closed = True
    proc.wait(timeout=5)
    assert proc.returncode == 0

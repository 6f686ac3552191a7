"""MQTT ingest under load and across flow restarts, on a real mosquitto with the shipped deploy/mosquitto.conf:
a burst faster than the flow loses nothing; where a broker limit is reached anyway, the loss is counted exactly
(sequence gaps and the broker's own drop counter) in the run's STATS; a restart with the persistent session
gets everything published while the flow was away."""
from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from bytewax.recovery import RecoveryConfig, init_db_dir
from mqtt_devices import (
    Devices,
    Gateway,
    Recording,
    close_the_tail,
    run_flow,
    site,
    wait_for_count,
    wait_until,
)

from aiotstream.records import Output
from aiotstream.runstats import STATS

pytestmark = pytest.mark.integration

# The broker sends the flow at most RECEIVE_MAX messages ahead of its acknowledgements (ack = "epoch" flow
# control); whatever else a burst brings waits in the broker's queue for the flow.
RECEIVE_MAX = 500


def losses() -> dict[str, int]:
    return {k: v for k, v in STATS.snapshot()["losses"].items() if v}


def dead_letters(out: list[Output]) -> Counter[str]:
    return Counter(o.record["reason"] for o in out if o.kind == "deadletter")


def check_accounting(dev: Devices, rec: Recording, out: list[Output], lost: int = 0) -> None:
    """published = ingested + dead-lettered + lost: each message made reached the flow once or more (QoS 1
    is at least once), every message the flow took was decoded, and the malformed ones (only they) are dead
    letters; a duplicate may also be a "late" dead letter."""
    made = set(dev.made)
    assert len(made) == len(dev.made)
    got = rec.unique()
    assert got <= made, f"{len(got - made)} message(s) nobody published"
    assert len(made) - len(got) == lost, f"{len(made) - len(got)} lost, {lost} expected"
    assert STATS.get("inputs", "mqtt") == rec.count()  # the decoder saw every message the source handed on
    dead = dead_letters(out)
    duplicates = rec.count() - len(got)
    expected_bad = sum(1 for t, p in got if b'"n/a"' in p)
    assert dead["bad_reading"] >= expected_bad and dead["bad_reading"] <= expected_bad + duplicates, dead
    assert set(dead) <= {"bad_reading", "late"} and dead["late"] <= duplicates, (dead, duplicates)


def burst(n: int, own_mosquitto, tmp_prefix: str, settings: dict | None = None) -> None:
    STATS.reset()
    cfg = site("127.0.0.1", own_mosquitto.port, tmp_prefix, receive_maximum=RECEIVE_MAX, **(settings or {}))
    dev = Devices(tmp_prefix, bad_every=997)
    backlog: list[int] = []

    def device(rec: Recording, stop: threading.Event) -> None:
        gw = Gateway("127.0.0.1", own_mosquitto.port)
        try:
            # the flow takes nothing while the gateway publishes (its steady rate is 0 for the burst: a long
            # GC pause, a slow snapshot), so all but RECEIVE_MAX in flight wait in the broker's queue
            rec.paused.set()
            t0 = time.monotonic()
            gw.publish(dev.readings(n), dev)
            assert gw.wait_acked(n) == n, "the broker did not acknowledge every message"
            published_s = time.monotonic() - t0
            backlog.append(n - rec.count())
            rec.paused.clear()
            took = wait_for_count(rec, n, "the burst")
            print(f"burst of {n}: published and acknowledged in {published_s:.1f} s, then taken in {took:.1f} s")
        finally:
            gw.close()

    rec, out = run_flow(cfg, device)
    print(f"taken {rec.count()} ({rec.count() - len(rec.unique())} duplicates)")
    # the broker queued more than mosquitto's default queue (1000 messages per client) would have held
    assert backlog[0] == n and n - RECEIVE_MAX > 2 * 1000
    check_accounting(dev, rec, out)
    assert losses() == {}


def test_a_burst_faster_than_the_flow_loses_nothing_with_the_shipped_broker_config(own_mosquitto) -> None:
    burst(12_000, own_mosquitto, "burst")


@pytest.mark.slow
def test_a_five_times_larger_burst_loses_nothing_either(own_mosquitto) -> None:
    burst(60_000, own_mosquitto, "burst5")


@pytest.fixture
def small_queue_mosquitto(tmp_path: Path):
    """mosquitto's own default queue limit (1000 messages per client), $SYS counters every second."""
    from conftest import MOSQUITTO, MosquittoBroker

    if MOSQUITTO is None:
        pytest.skip("the mosquitto binary is missing (apt-get install -y mosquitto)")
    broker = MosquittoBroker(tmp_path / "mosquitto", settings={"max_queued_messages": "1000",
                                                               "sys_interval": "1"}).start()
    try:
        yield broker
    finally:
        broker.stop()


def test_when_the_broker_queue_overflows_anyway_the_loss_is_counted_exactly(small_queue_mosquitto) -> None:
    """With mosquitto's default queue the same kind of burst loses messages, and the run says how many: the
    gaps in the devices' sequence numbers and the growth of the broker's drop counter both equal what was
    published and acknowledged but never arrived."""
    broker = small_queue_mosquitto
    STATS.reset()
    n = 8_000
    cfg = site("127.0.0.1", broker.port, "overflow", receive_maximum=RECEIVE_MAX)
    dev = Devices("overflow")

    def device(rec: Recording, stop: threading.Event) -> None:
        gw = Gateway("127.0.0.1", broker.port)
        try:
            gw.publish(dev.readings(n), dev)
            assert gw.wait_acked(n) == n
            # drained: nothing more arrives; then one more reading per topic shows the gaps at the end
            wait_until(lambda: (c := rec.count(), time.sleep(1.0), rec.count() == c)[-1], 120,
                       "the flow draining the broker's queue")
            close_the_tail(gw, dev, rec)
            wait_until(lambda: len(dev.made) - len(rec.unique()) == losses().get("mqtt_seq_gap"), 30,
                       "every gap counted")
            lost = len(dev.made) - len(rec.unique())
            wait_until(lambda: losses().get("mqtt_broker_dropped") == lost, 15,
                       f"the broker's $SYS drop counter to reach {lost}")
        finally:
            gw.close()

    rec, out = run_flow(cfg, device)
    lost = len(dev.made) - len(rec.unique())
    print(f"published {len(dev.made)}, lost {lost}; summary: {STATS.summary()}")
    assert lost > 1000
    check_accounting(dev, rec, out, lost=lost)
    assert losses() == {"mqtt_seq_gap": lost, "mqtt_broker_dropped": lost}
    # two kinds of evidence for the same lost messages: the total counts them once
    assert STATS.summary().endswith(f"known losses {lost:,} (mqtt_broker_dropped {lost:,}, mqtt_seq_gap {lost:,} "
                                    "[mqtt_broker_dropped and mqtt_seq_gap overlap: counted once])")


def test_a_restart_with_the_persistent_session_gets_everything_published_while_the_flow_was_away(
        own_mosquitto) -> None:
    """5,000 readings published while the flow is down (five times mosquitto's default queue) all arrive
    after it starts again with the same client id."""
    STATS.reset()
    cfg = site("127.0.0.1", own_mosquitto.port, "restart")
    dev = Devices("restart")
    gw = Gateway("127.0.0.1", own_mosquitto.port)
    try:
        def first(rec: Recording, stop: threading.Event) -> None:
            gw.publish(dev.readings(80), dev)
            wait_for_count(rec, 80, "the first run")

        rec1, _ = run_flow(cfg, first)
        away = dev.readings(5_000)
        gw.publish(away, dev)
        assert gw.wait_acked(len(dev.made)) == len(dev.made)

        def second(rec: Recording, stop: threading.Event) -> None:
            wait_for_count(rec, 5_000, "the second run, taking what was published while the flow was away")
            gw.publish(dev.trailer(), dev)
            wait_for_count(rec, 5_008, "the trailer")

        rec2, out2 = run_flow(cfg, second)
    finally:
        gw.close()
    assert set(away) <= rec2.unique(), f"{len(set(away) - rec2.unique())} of 5,000 lost across the restart"
    assert rec1.unique() | rec2.unique() == set(dev.made)
    assert losses() == {}
    assert set(dead_letters(out2)) <= {"late"}


def test_beyond_the_queue_limit_a_restart_reports_what_the_broker_dropped(small_queue_mosquitto,
                                                                           tmp_path: Path) -> None:
    """The documented limit: the broker queues at most max_queued_messages for a session that is away. With
    recovery on, the restarted flow knows the last sequence numbers and drop counter, so it reports the
    rest as lost: exactly what was published and never arrived."""
    broker = small_queue_mosquitto
    STATS.reset()
    recovery_dir = tmp_path / "recovery"
    recovery_dir.mkdir()
    init_db_dir(recovery_dir, 1)
    cfg = site("127.0.0.1", broker.port, "limit")
    dev = Devices("limit")
    gw = Gateway("127.0.0.1", broker.port)
    try:
        def first(rec: Recording, stop: threading.Event) -> None:
            gw.publish(dev.readings(80), dev)
            wait_for_count(rec, 80, "the first run")
            time.sleep(2.0)  # a few epochs: the snapshot holds the sequence numbers and the drop baseline

        rec1, _ = run_flow(cfg, first, recovery=RecoveryConfig(str(recovery_dir)))
        gw.publish(dev.readings(5_000), dev)
        assert gw.wait_acked(len(dev.made)) == len(dev.made)

        def second(rec: Recording, stop: threading.Event) -> None:
            wait_for_count(rec, 1000, "the second run, taking the 1,000 the broker queued")
            gw.publish(dev.trailer(), dev)
            wait_until(lambda: losses().get("mqtt_seq_gap") == 4000, 30, "the gaps counted")
            wait_until(lambda: losses().get("mqtt_broker_dropped") == 4000, 15, "the broker's drops counted")

        rec2, _ = run_flow(cfg, second, recovery=RecoveryConfig(str(recovery_dir)))
    finally:
        gw.close()
    got = rec1.unique() | rec2.unique()
    assert len(set(dev.made)) - len(got) == 4000
    assert losses() == {"mqtt_seq_gap": 4000, "mqtt_broker_dropped": 4000}

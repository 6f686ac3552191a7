"""The device side of the MQTT tests: a gateway that publishes as fast as the broker lets it, per-topic
sequence numbers, and a flow runner that records what the source handed on (and when)."""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.testing import TestingSink, run_main
from conftest import TappedPartition
from paho.mqtt.enums import CallbackAPIVersion

from aiotstream.config import SiteConfig, default_site
from aiotstream.dataflow import build_flow
from aiotstream.io.mqtt import MqttSource
from aiotstream.records import DeviceMessage, Output

T0 = time.time_ns() - 3600 * 10**9  # event time of the first reading: an hour ago (inside every window bound)


def site(host: str, port: int, prefix: str, assets: int = 4, **mqtt_settings: Any) -> SiteConfig:
    """``assets`` assets, JSON readings on ``<prefix>/<asset>/<metric>`` with a ``seq`` per topic."""
    base = default_site(assets, inputs={"tail": False})
    data = base.model_dump(mode="json")
    data["inputs"]["kind"] = "mqtt"
    data["inputs"]["poll_batch"] = 1000
    data["inputs"]["mqtt"] = {
        "host": host, "port": port, "client_id": f"aiotstream-test-{prefix}", "reconnect_max_s": 2,
        "session_expiry_s": 600,
        "subscriptions": [{"filter": f"{prefix}/+/+", "format": "json", "asset": "{1}", "metric": "{2}",
                           "seq": "seq"}],
        **mqtt_settings,
    }
    return SiteConfig.from_dict(data)


@dataclass
class Devices:
    """Readings for ``assets`` x (temperature, pressure): topic -> next sequence number; every ``bad_every``-th
    reading has a value that is not a number (valid JSON with its seq: a ``bad_reading`` dead letter)."""

    prefix: str
    assets: int = 4
    bad_every: int = 0
    seq: dict[str, int] = field(default_factory=dict)
    made: list[tuple[str, bytes]] = field(default_factory=list)

    def topics(self) -> list[str]:
        return [f"{self.prefix}/asset-{a:03d}/{m}" for a in range(self.assets) for m in ("temperature", "pressure")]

    def readings(self, n: int) -> list[tuple[str, bytes]]:
        """The next ``n`` readings, round robin over the topics."""
        topics = self.topics()
        out = []
        for i in range(n):
            t = topics[i % len(topics)]
            k = self.seq.get(t, 0)
            self.seq[t] = k + 1
            bad = self.bad_every and (len(self.made) + len(out)) % self.bad_every == self.bad_every - 1
            value: Any = "n/a" if bad else 20.0 + (k % 50) * 0.1
            out.append((t, orjson.dumps({"ts": T0 + k * 10_000_000, "value": value, "seq": k})))
        return out

    def trailer(self) -> list[tuple[str, bytes]]:
        """One more reading per topic: a gap at the end of a topic shows once a later number arrives."""
        return self.readings(len(self.topics()))


class Gateway:
    """An MQTT 5 publisher that keeps up to 1000 QoS 1 messages in flight (what the shipped broker config
    allows a publisher) and counts the broker's PUBACKs. paho keeps unacknowledged messages and sends them
    again after its own reconnects, as a device gateway would."""

    def __init__(self, host: str, port: int, qos: int = 1):
        self.qos = qos
        self.acked = 0
        self.cond = threading.Condition()
        self.connected = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"gw-{uuid.uuid4().hex[:10]}",
                             protocol=mqtt.MQTTv5)
        self.c.max_inflight_messages_set(1000)
        self.c.reconnect_delay_set(0.2, 1)
        self.c.on_connect = lambda *_: self.connected.set()
        self.c.on_publish = self._on_publish
        self.c.connect_async(host, port)
        self.c.loop_start()
        assert self.connected.wait(10), "the gateway did not connect"

    def _on_publish(self, _c: Any, _u: Any, _mid: int, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            with self.cond:
                self.acked += 1
                self.cond.notify_all()

    def publish(self, msgs: Sequence[tuple[str, bytes]], devices: Devices | None = None,
                rate: float = 0.0) -> None:
        """Publish in order (at most 30,000 waiting, as packet ids run to 65,535); ``rate`` > 0 paces it."""
        start = time.monotonic()
        for i, (topic, payload) in enumerate(msgs):
            if rate:
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            with self.cond:
                while self.sent - self.acked >= 30_000:
                    self.cond.wait(1)
            info = self.c.publish(topic, payload, qos=self.qos)
            assert info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN), info.rc  # NO_CONN: queued
            if devices is not None:
                devices.made.append((topic, payload))

    @property
    def sent(self) -> int:
        return len(self.c._out_messages) + self.acked  # paho keeps no public count

    def wait_acked(self, n: int, timeout_s: float = 120) -> int:
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while self.acked < n and time.monotonic() < deadline:
                self.cond.wait(0.5)
            return self.acked

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


class Recording(FixedPartitionedSource[DeviceMessage, Any]):
    """Wraps a source; keeps every message it hands to the dataflow with the time it did."""

    def __init__(self, inner: MqttSource):
        self.inner = inner
        self.paused = threading.Event()  # set: the flow takes nothing (a long GC pause, a slow snapshot)
        self.seen: list[DeviceMessage] = []
        self.times: list[float] = []
        self.lock = threading.Lock()

    def list_parts(self) -> list[str]:
        return self.inner.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> StatefulSourcePartition:
        def take(part: StatefulSourcePartition) -> list[DeviceMessage]:
            if self.paused.is_set():
                return []
            batch = part.next_batch()
            if batch:
                now = time.monotonic()
                with self.lock:
                    self.seen.extend(batch)
                    self.times.extend([now] * len(batch))
            return batch

        return TappedPartition(self.inner.build_part(step_id, for_part, resume_state), take)

    def count(self) -> int:
        with self.lock:
            return len(self.seen)

    def unique(self) -> set[tuple[str, bytes]]:
        with self.lock:
            return {(m.topic.removeprefix("mqtt:"), m.value) for m in self.seen}


def run_flow(cfg: SiteConfig, device: Callable[[Recording, threading.Event], None], *, idle_stop_s: float = 2.0,
             epoch_s: float = 0.5, recovery: Any = None) -> tuple[Recording, list[Output]]:
    """Run the predictive-maintenance flow on the MQTT source until ``device`` has set the stop event and the
    source has been idle for ``idle_stop_s``; ``device(recording, stop)`` runs in a thread once subscribed."""
    mq = cfg.inputs.mqtt
    assert mq is not None
    stop, ready = threading.Event(), threading.Event()
    rec = Recording(MqttSource(mq, cfg.site.id, cfg.inputs.poll_batch, stop=stop, idle_stop_s=idle_stop_s,
                               ready=ready))
    errors: list[BaseException] = []

    def dev() -> None:
        try:
            assert ready.wait(30), "the source did not subscribe within 30 s"
            device(rec, stop)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)
        finally:
            stop.set()

    th = threading.Thread(target=dev, daemon=True)
    th.start()
    out: list[Output] = []
    run_main(build_flow(cfg, rec, TestingSink(out), tail=False, snapshots=recovery is not None),
             epoch_interval=timedelta(seconds=epoch_s), recovery_config=recovery)
    th.join(timeout=60)
    if errors:
        raise errors[0]
    return rec, out


def wait_until(cond: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll ``cond`` every 50 ms; return the seconds it took; fail naming ``what`` after ``timeout_s``."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s:g} s")
        time.sleep(0.05)
    return time.monotonic() - t0


def wait_for_count(rec: Recording, n: int, what: str, stall_s: float = 10.0, timeout_s: float = 180.0) -> float:
    """Wait until the flow has taken ``n`` messages (return the seconds it took); fail once nothing new
    arrived for ``stall_s``."""
    t0 = last_change = time.monotonic()
    last = rec.count()
    while (c := rec.count()) < n:
        now = time.monotonic()
        if c != last:
            last, last_change = c, now
        if now - last_change > stall_s or now - t0 > timeout_s:
            raise AssertionError(f"{what}: the flow took {c:,} of {n:,}; nothing more for {now - last_change:.0f} s")
        time.sleep(0.05)
    return time.monotonic() - t0


def close_the_tail(gw: Gateway, dev: Devices, rec: Recording, rounds: int = 10) -> None:
    """Publish one more reading per topic until a whole round reaches the flow: then every earlier reading that
    went missing lies before a number the flow has seen, so each shows as a gap (a round published while the
    broker's queue was still full may be dropped itself)."""
    for _ in range(rounds):
        trailer = dev.trailer()
        gw.publish(trailer, dev)
        assert gw.wait_acked(len(dev.made), 60) >= len(dev.made)
        try:
            wait_until(lambda t=set(trailer): t <= rec.unique(), 10, "a round of trailers")
            return
        except AssertionError:
            continue
    raise AssertionError(f"no round of trailers reached the flow in {rounds} tries")

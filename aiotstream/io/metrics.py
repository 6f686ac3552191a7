"""Prometheus metrics and health probes for a running flow: one small HTTP server (a thread) per process.

``aiotstream run`` and ``replay`` start it with ``--metrics-port`` (``--metrics-host``, default 127.0.0.1;
0.0.0.0 in a pod). It serves

``/metrics``  the Prometheus text format: the run's counters (:data:`aiotstream.runstats.STATS`), the
              sources' connection state, build and site information, and the process's own (CPU, memory,
              file descriptors, garbage collector);
``/healthz``  200 while the process is alive (a liveness probe);
``/readyz``   200 once the flow is reading: its source partitions are built (so Bytewax has read the recovery
              store, if any, and handed each partition its resume state) and every input connection
              (Kafka, MQTT, OPC UA) is up; else 503 with a one-line JSON reason. 503 again while a
              connection is down and once a stop is requested.

**Nothing on the hot path.** The counters are the ones the run keeps anyway for its summary line (a batch at
a time, under one lock), and the histograms take one call per poll batch, per asset's batch of closed
windows or per model call; :class:`RunCollector` reads :meth:`~aiotstream.runstats.RunStats.snapshot` when
Prometheus scrapes, so a flow that is never scraped pays nothing, and a scrape costs one dictionary copy.

Metric names (counters get ``_total`` in the exposition)::

    aiotstream_inputs_total{source}          messages read, by source (topic; mqtt, opcua, file)
    aiotstream_deadletters_total{reason}     dead letters written, by reason code
    aiotstream_outputs_total{kind}           records delivered by the main sink, by kind
    aiotstream_losses_total{cause}           inputs known lost before the flow (mqtt_broker_dropped and
                                             mqtt_seq_gap see the same messages from two sides: do not add
                                             them)
    aiotstream_dropped_total{cause}          inputs dropped on purpose, not dead-lettered (e.g. duplicates)
    aiotstream_<gauge>                       each value of the run's ``gauges`` group (active_suppressions
    ...)
    aiotstream_input_records_total{kind}     records decoded, by kind (frame, reading, feedback, control)
    aiotstream_open_alerts{severity}         alerts open or acknowledged now (each entity adds its share)
    aiotstream_pending_commands{status}      commands awaiting_approval, or emitted and awaiting the ack
    aiotstream_blocked_commands_total{check,rule}   commands the safety envelope blocked
    aiotstream_watermark_lag_seconds{which}  wall clock minus the closed-window event time of the newest and
                                             the oldest asset
    aiotstream_window_close_latency_seconds  histogram: wall clock at a window's close minus its end
    aiotstream_output_latency_seconds{kind}  histogram: wall clock when an output is on the broker minus its
                                             event time (Kafka sink)
    aiotstream_batch_size{stage}             histogram: messages per poll batch (decode), rows per model call
                                             (score)
    aiotstream_inference_latency_seconds{model,version}   histogram: seconds per model call
    aiotstream_source_up{source}             1 while an input connection is up, 0 while down or connecting
    aiotstream_ready                         1 when /readyz answers 200
    aiotstream_recovery_write_age_seconds    with --recovery: seconds since this process last wrote its
    recovery
                                             partitions (snapshots and epoch commits, every epoch): stalls
                                             show
    aiotstream_build_info{version,commit,code,site,config_hash,flow,command,process}   always 1
    bytewax_kafka_consumer_lag{step_id,topic,partition}   Bytewax's: offsets behind each Kafka partition's end
    process_*, python_*                      the process's CPU, memory, files, GC (prometheus_client's
    defaults)

Bytewax's own metrics (per-step item counts and durations, from Rust) are served by Bytewax on its dataflow
API when the environment has ``BYTEWAX_DATAFLOW_API_ENABLED=1`` (port 3030, or ``BYTEWAX_DATAFLOW_API_PORT``);
then :class:`BytewaxApi` re-serves its ``bytewax_*`` families here at scrape time (docs/operations.md).
"""
from __future__ import annotations

import errno
import gzip
import logging
import os
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import orjson
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from aiotstream.config import SEVERITIES
from aiotstream.errors import AiotError
from aiotstream.io.outage import connections
from aiotstream.io.stop import CLOSE_MAX_S, SOURCE_BUILT, STOP
from aiotstream.runstats import BUCKETS, STATS, RunStats

log = logging.getLogger("aiotstream.io.metrics")
PREFIX = "aiotstream"

COUNTERS: dict[str, tuple[str, str]] = {
    "inputs": ("source", "Messages read, by source (Kafka topic; mqtt, opcua, file)."),
    "deadletters": ("reason", "Dead letters written, by reason code."),
    "outputs": ("kind", "Records delivered by the main sink, by kind (dead letters included as deadletter)."),
    "losses": ("cause",
               ("Inputs known to be lost before they reached the flow, by cause (mqtt_broker_dropped and "
                "mqtt_seq_gap count the same messages seen from two sides).")),
    "dropped": ("cause", "Inputs dropped on purpose and not dead-lettered, by cause."),
}
"""The RunStats groups exported as counters: group -> (label name, help)."""

HISTOGRAMS: dict[str, tuple[tuple[str, ...], str]] = {
    "window_close_latency_seconds": ((), ("Wall-clock time at a window's close (its decisions made) minus "
                                          "the window's end in event time.")),
    "output_latency_seconds": (("kind",), ("Wall-clock time when an output is on the broker (its batch's "
                                           "delivery confirmed) minus its event time: an alert's or "
                                           "command's at_ns, a score's or KPI period's window end. Kafka "
                                           "sink only.")),
    "batch_size": (("stage",), ("Items per batch: messages per poll batch (decode), rows per model call "
                                "(score).")),
    "inference_latency_seconds": (("model", "version"),
                                  ("Seconds per model call: an online detector scoring one window, or one "
                                   "ONNX call over a batch of rows.")),
}
"""The RunStats histograms exported: name -> (label names, help)."""
PENDING_STATUSES = ("awaiting_approval", "emitted")
"""Command statuses counted as pending (awaiting an approval, or emitted and awaiting the device's ack)."""


def metric_name(key: str) -> str:
    """A gauge key as a Prometheus metric name: ``aiotstream_`` + the key with anything else than
    ``[a-zA-Z0-9_]`` as ``_``.

    >>> metric_name("active_suppressions"), metric_name("queue depth/mqtt")
    ('aiotstream_active_suppressions', 'aiotstream_queue_depth_mqtt')
    """
    return f"{PREFIX}_{re.sub(r'[^a-zA-Z0-9_]', '_', key)}"


def readiness() -> tuple[bool, str]:
    """Whether the flow is ready, and why not (one line for /readyz).

    >>> STOP.request(); readiness(); STOP.clear()
    (False, 'stopping (SIGINT)')
    """
    if STOP.is_set():
        return False, f"stopping ({STOP.reason})"
    if not SOURCE_BUILT.is_set():
        return False, ("the flow has not started (waiting for brokers, recovery or the cluster's "
                       "other processes)")
    down = sorted(name for name, up in connections().items() if not up)
    if down:
        return False, f"input not connected: {', '.join(down)}"
    return True, "ready"


class RunCollector(Collector):
    """The run's counters, the sources' connection state, readiness and build information, read at scrape
    time (a custom collector: nothing is counted twice, nothing runs per message)."""

    def __init__(self, stats: RunStats = STATS, info: Mapping[str, str] | None = None,
                 ready: Callable[[], tuple[bool, str]] = readiness,
                 sources: Callable[[], Mapping[str, bool]] = connections, recovery: Path | None = None):
        self.stats = stats
        self.info = dict(info or {})
        self.ready = ready
        self.sources = sources
        self.recovery = recovery

    def recovery_age_s(self) -> float | None:
        """Seconds since a recovery partition file of this process (``part-N.sqlite3`` and its journal) was
        last written, or None without recovery or before the first write."""
        if self.recovery is None:
            return None
        mtimes = []
        for p in self.recovery.glob("part-*.sqlite3*"):
            try:
                mtimes.append(p.stat().st_mtime)
            except OSError:  # a journal file gone between listing and stat
                continue
        return max(0.0, time.time() - max(mtimes)) if mtimes else None

    def collect(self) -> Iterator[Metric]:
        snap = self.stats.snapshot()
        for group, (label, doc) in COUNTERS.items():
            c = CounterMetricFamily(f"{PREFIX}_{group}", doc, labels=[label])
            for key, value in sorted(snap.get(group, {}).items()):
                c.add_metric([key], value)
            yield c
        for key, value in sorted(snap.get("gauges", {}).items()):
            yield GaugeMetricFamily(metric_name(key), f"The run's {key} gauge.", value=value)
        yield from self.collect_flow()
        up = GaugeMetricFamily(f"{PREFIX}_source_up",
                               "1 while an input connection is up, 0 while it is "
                               "down or connecting.", labels=["source"])
        for name, is_up in sorted(self.sources().items()):
            up.add_metric([name], 1 if is_up else 0)
        yield up
        yield GaugeMetricFamily(f"{PREFIX}_ready", "1 when /readyz answers 200.",
                                value=1 if self.ready()[0] else 0)
        age = self.recovery_age_s()
        if age is not None:
            yield GaugeMetricFamily(f"{PREFIX}_recovery_write_age_seconds",
                                    "Seconds since this process last wrote its recovery partitions "
                                    "(snapshots, epoch commits).", value=age)
        if self.info:
            yield InfoMetricFamily(f"{PREFIX}_build",
                                   "Package version, git commit, site and config of the run.",
                                   value=self.info)


    def collect_flow(self) -> Iterator[Metric]:
        """What only the metrics show: records by kind, open alerts, pending and blocked commands, the
        watermark lag and the histograms."""
        levels = self.stats.levels()
        c = CounterMetricFamily(f"{PREFIX}_input_records", "Records decoded from the inputs, by kind "
                                "(frame, reading, feedback, control).", labels=["kind"])
        for key, value in sorted(levels["input_records"].items()):
            c.add_metric([str(key)], value)
        yield c
        g = GaugeMetricFamily(f"{PREFIX}_open_alerts", "Alerts open or acknowledged now, by severity.",
                              labels=["severity"])
        opened = levels["open_alerts"]
        for sev in dict.fromkeys([*SEVERITIES, *sorted(map(str, opened))]):
            g.add_metric([sev], opened.get(sev, 0))
        yield g
        g = GaugeMetricFamily(f"{PREFIX}_pending_commands", "Commands awaiting an approval "
                              "(awaiting_approval) or the device's ack (emitted), by status.",
                              labels=["status"])
        pending = levels["pending_commands"]
        for status in PENDING_STATUSES:
            g.add_metric([status], pending.get(status, 0))
        yield g
        c = CounterMetricFamily(f"{PREFIX}_blocked_commands", "Commands the safety envelope blocked, by "
                                "its check (interlock, min, max, max_step, max_rate, min_interval, value) "
                                "and rule (the interlock's name, else the setting).",
                                labels=["check", "rule"])
        for key, value in sorted(levels["blocked_commands"].items(), key=str):
            check, rule = key if isinstance(key, tuple) else (str(key), "")
            c.add_metric([check, rule], value)
        yield c
        marks = self.stats.watermarks()
        if marks:
            now = time.time()
            g = GaugeMetricFamily(f"{PREFIX}_watermark_lag_seconds",
                                  "Wall clock minus the event time up to which windows are closed: of the "
                                  "asset furthest ahead (newest) and of the one furthest behind (oldest).",
                                  labels=["which"])
            g.add_metric(["newest"], now - max(marks) / 1e9)
            g.add_metric(["oldest"], now - min(marks) / 1e9)
            yield g
        hists = self.stats.histograms()
        for name, (labels, doc) in HISTOGRAMS.items():
            h = HistogramMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels))
            bounds = BUCKETS[name]
            for (hname, values), counts in sorted(hists.items()):
                if hname != name:
                    continue
                total, buckets = 0, []
                for le, n in zip([*map(str, map(float, bounds)), "+Inf"], counts[:-1]):
                    total += int(n)
                    buckets.append((le, total))
                h.add_metric(list(values), buckets, sum_value=counts[-1])
            yield h


class GlobalRegistry(Collector):
    """prometheus_client's process-wide ``REGISTRY``: its default process, platform and GC collectors, and
    what
    libraries register there; Bytewax's Kafka source keeps ``bytewax_kafka_consumer_lag{step_id,topic,
    partition}`` in it (the partition's last stable offset minus the next offset to read, from librdkafka's
    statistics every second)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


class BytewaxApi(Collector):
    """Bytewax's own metrics (per step: items in and out, batch and snapshot durations; from its Rust side),
    re-served from its dataflow API on this process (``http://127.0.0.1:PORT/metrics``) at scrape time, so one
    scrape target has everything. Only its ``bytewax_*`` families are taken (the page repeats this process's
    Python registry, which :class:`GlobalRegistry` serves already); nothing if the API does not answer within
    ``timeout_s``."""

    SKIP = frozenset({"bytewax_kafka_consumer_lag"})  # the Python registry's, served by GlobalRegistry

    def __init__(self, port: int, timeout_s: float = 1.0):
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.timeout_s = timeout_s

    def collect(self) -> Iterator[Metric]:
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout_s) as r:
                text = r.read().decode("utf-8", "replace")
        except (OSError, ValueError) as exc:
            log.debug("Bytewax's dataflow API at %s did not answer: %s", self.url, exc)
            return
        try:
            families = list(text_string_to_metric_families(text))
        except ValueError as exc:  # a format this parser does not read: leave them out, keep ours
            log.debug("Bytewax's metrics at %s not parsed: %s", self.url, exc)
            return
        for fam in families:
            if fam.name.startswith("bytewax_") and fam.name not in self.SKIP:
                yield fam


def bytewax_api_port(env: Mapping[str, str]) -> int | None:
    """The port of Bytewax's dataflow API if the environment turns it on (``BYTEWAX_DATAFLOW_API_ENABLED``;
    ``BYTEWAX_DATAFLOW_API_PORT``, default 3030), else None.

    >>> bytewax_api_port({}), bytewax_api_port({"BYTEWAX_DATAFLOW_API_ENABLED": "1"})
    (None, 3030)
    >>> bytewax_api_port({"BYTEWAX_DATAFLOW_API_ENABLED": "true", "BYTEWAX_DATAFLOW_API_PORT": "3391"})
    3391
    """
    if not env.get("BYTEWAX_DATAFLOW_API_ENABLED"):
        return None
    try:
        return int(env.get("BYTEWAX_DATAFLOW_API_PORT", "3030"))
    except ValueError:
        return None


def _handler(server: MetricsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "aiotstream"

        def _send(self, code: int, body: bytes, ctype: str, head: bool, gz: bool = False) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            if gz:
                body = gzip.compress(body)
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _answer(self, head: bool) -> None:
            path = self.path.split("?", 1)[0]
            # the format the scraper asks for (Accept); the classic text one by default
            if path == "/metrics":
                encode, ctype = choose_encoder(self.headers.get("Accept", ""))
                self._send(200, encode(server.registry), ctype, head,
                           gz=gzip_accepted(self.headers.get("Accept-Encoding", "")))
            elif path == "/healthz":
                self._send(200, b'{"alive":true}\n', "application/json", head)
            elif path == "/readyz":
                ok, why = server.ready()
                body = orjson.dumps({"ready": ok, "reason": why}) + b"\n"
                self._send(200 if ok else 503, body, "application/json", head)
            else:
                self._send(404, b"not found: try /metrics, /healthz or /readyz\n",
                           "text/plain; charset=utf-8", head)

        def do_GET(self) -> None:
            self._answer(head=False)

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def log_message(self, fmt: str, *args: Any) -> None:  # one line per request: debug only
            log.debug("%s %s", self.address_string(), fmt % args)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` (port 0: a free one) in a daemon thread.
    :meth:`start` binds (an :class:`~aiotstream.errors.AiotError` naming the option when it cannot);
    :meth:`stop` (or leaving the ``with`` block) closes it within :data:`~aiotstream.io.stop.CLOSE_MAX_S`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, info: Mapping[str, str] | None = None,
                 stats: RunStats = STATS, ready: Callable[[], tuple[bool, str]] = readiness,
                 sources: Callable[[], Mapping[str, bool]] = connections, process: bool = True,
                 recovery: Path | None = None, bytewax_port: int | None = None):
        self.host, self.port = host, port
        self.ready = ready
        self.collector = RunCollector(stats, info, ready, sources, recovery)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        if process:  # CPU, memory, open files, start time, Python, GC; Bytewax's consumer lag
            self.registry.register(GlobalRegistry())
        if bytewax_port is not None:  # Bytewax's dataflow API is on: its per-step metrics here too
            self.registry.register(BytewaxApi(bytewax_port))
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> Self:
        cls = _Server6 if ":" in self.host else _Server
        try:
            self._httpd = cls((self.host, self.port), _handler(self))
        except socket.gaierror as exc:
            raise AiotError(f"--metrics-host {self.host}: not a host name or address of this machine "
                            f"({exc.strerror})") from None
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise AiotError(f"--metrics-port {self.port} on {self.host} is already in use; pick another, "
                                "or --metrics-port 0 for a free one") from None
            raise AiotError(f"--metrics-host {self.host} --metrics-port {self.port}: cannot listen there: "
                            f"{exc.strerror or exc}") from None
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="aiotstream-metrics", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        # serve_forever returns within its poll interval (0.1 s: the flow's exit waits for it)
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(CLOSE_MAX_S)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(host: str, port: int, info: Mapping[str, str], recovery: Path | None = None) -> MetricsServer:
    """Start the process's metrics server for a new run (forgetting an earlier run's started flag) and log
    where it listens: one info line. ``recovery``: the run's recovery directory, if any."""
    SOURCE_BUILT.clear()
    server = MetricsServer(host, port, info, recovery=recovery,
                           bytewax_port=bytewax_api_port(os.environ)).start()
    log.info("metrics on %s/metrics; probes %s/healthz and %s/readyz", server.url, server.url, server.url)
    return server

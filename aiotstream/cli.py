"""``aiotstream``: validate | broker | simulate | run | replay | detect | demo | evaluate | bench | train |
console | schema.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad config, 130 stopped by SIGINT (Ctrl-C), 143
stopped
by SIGTERM. Every failure ends in one line on stderr (``AIOTSTREAM_DEBUG=1`` adds the traceback and leaves
Bytewax's own error output alone); ``run``, ``replay`` and ``demo`` end with the run's summary line
(:mod:`aiotstream.runstats`) and where the outputs are, however they stop (:mod:`aiotstream.io.stop`).

Adding a subcommand: a ``cmd_<name>(args) -> int`` function and a ``_add_<name>(sub)`` that registers its
parser (with the checked argument types below: :func:`count`, :func:`number`, :func:`port`), listed in
:data:`SUBCOMMANDS`; check paths with :func:`in_file` / :func:`out_dir` / :func:`out_file` before starting
work, and raise :class:`UsageError` (exit 2) or :class:`~aiotstream.errors.AiotError` (exit 1) with a message
that names the argument and the fix. ``tests/integration/test_cli_errors.py`` walks every subcommand found in
the parser with bad arguments: add rows for the new one there.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, Self

import orjson
from pydantic import ValidationError

from aiotstream import code_version, logs, progress
from aiotstream.config import SiteConfig, default_site
from aiotstream.errors import AiotError, ConfigError
from aiotstream.ids import ID_PATTERN
from aiotstream.routing import Placement

DEMO_CYCLE_S = 2.0  # the demo plant's ideal cycle time per part
DEBUG_ENV = "AIOTSTREAM_DEBUG"


class UsageError(AiotError):
    """A bad command-line argument found after parsing (a path, a combination): exit code 2."""


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


# ---- checked argument types ---------------------------------------------------------------------------
def count(lo: int = 1, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in ``[lo, hi]``.

    >>> count(1)("3"), count(0, 5)("0")
    (3, 0)
    >>> count(1)("0")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be at least 1 (got 0)
    """

    def parse(text: str) -> int:
        try:
            v = int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if v < lo or (hi is not None and v > hi):
            rng = f"at least {lo}" if hi is None else f"from {lo} to {hi}"
            raise argparse.ArgumentTypeError(f"must be {rng} (got {v})")
        return v

    parse.__name__ = "count"  # argparse names the type in some messages
    return parse


def number(lo: float | None = None, hi: float | None = None, *,
           above: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number, ``>= lo`` (``> lo`` with ``above``) and ``<= hi``.

    >>> number(0, above=True)("1.5"), number(0)("0")
    (1.5, 0.0)
    >>> number(0, above=True)("0")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be greater than 0 (got 0)
    >>> number()("nan")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be a finite number (got 'nan')
    """

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"must be a finite number (got {text!r})")
        if lo is not None and (v <= lo if above else v < lo):
            raise argparse.ArgumentTypeError(f"must be {'greater than' if above else 'at least'} "
                                             f"{lo:g} (got {v:g})")
        if hi is not None and v > hi:
            raise argparse.ArgumentTypeError(f"must be at most {hi:g} (got {v:g})")
        return v

    parse.__name__ = "number"
    return parse


port = count(0, 65535)
"""A TCP port; 0 = pick a free one."""


class ArgParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``aiotstream run: argument --epoch-s: must be greater than 0 (got -1)``
    and exit code 2, without the usage block (``--help`` shows that)."""

    def error(self, message: str) -> Any:  # argparse's signature is NoReturn
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


# ---- paths, checked before any work starts ---------------------------------------------------------------
def in_file(path: str, what: str) -> Path:
    """An existing, readable file (not a directory), else UsageError naming ``what`` (the option)."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{what} {path}: no such file")
    if p.is_dir():
        raise UsageError(f"{what} {path}: is a directory; give a file")
    if not os.access(p, os.R_OK):
        raise UsageError(f"{what} {path}: not readable")
    return p


def in_dir(path: str, what: str) -> Path:
    """An existing directory to read, else UsageError naming ``what`` (the option)."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{what} {path}: no such directory")
    if not p.is_dir():
        raise UsageError(f"{what} {path}: is a file; give a directory")
    return p


def out_dir(path: str, what: str) -> Path:
    """A directory to write into: created if missing; UsageError if it is a file or cannot be written."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{what} {path}: is a file; give a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot create the directory: {exc.strerror}") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path}: the directory is not writable")
    return p


def out_file(path: str, what: str) -> Path:
    """A file to write: not a directory, in a directory that exists and is writable."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{what} {path}: is a directory; give a file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{what} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UsageError(f"{what} {path}: not writable")
    return p


# ---- commands -------------------------------------------------------------------------------------------
def _load_site(args: argparse.Namespace) -> SiteConfig:
    if getattr(args, "site", None):
        in_file(args.site, "--site")
        return SiteConfig.load(args.site)
    return default_site(getattr(args, "assets", 5))


def cmd_validate(args: argparse.Namespace) -> int:
    status = 0
    for path in args.files:
        try:
            cfg = SiteConfig.load(path)
        except ConfigError as exc:
            print(_config_error_text(exc), file=sys.stderr)
            status = 2
            continue
        n = len(cfg.all_assets())
        print(f"{path}: OK: site {cfg.site.id!r}, {n} asset(s), config_hash {cfg.config_hash}")
    return status


def cmd_broker(args: argparse.Namespace) -> int:
    from aiotstream.io.broker import TansuBroker

    broker = TansuBroker(port=args.port)
    try:
        broker.start()
        print(f"Kafka-protocol broker (Tansu, memory storage) on {broker.bootstrap}", flush=True)
        print(f"bootstrap.servers={broker.bootstrap}    (Ctrl-C stops it; its data goes with it)", flush=True)
        while broker.proc is not None and broker.proc.poll() is None:
            time.sleep(0.2)
        print(f"aiotstream broker: the broker on {broker.bootstrap} exited ({broker.exit_reason()})",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt as stop:  # SIGINT, or SIGTERM (Terminated): stop the child first
        broker.stop()
        signum = getattr(stop, "signum", signal.SIGINT)
        print(f"broker on {broker.bootstrap} stopped ({signal.Signals(signum).name}); its topics are gone",
              file=sys.stderr)
        return 128 + int(signum)
    finally:
        broker.stop()


def _spec_item(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of ``--spec``: the value as JSON (lists become tuples), else as text.

    >>> _spec_item("regimes=[1.0]"), _spec_item("drift_until_s=150")
    (('regimes', (1.0,)), ('drift_until_s', 150))
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        v = orjson.loads(value)
    except orjson.JSONDecodeError:
        v = value
    return key.strip(), tuple(v) if isinstance(v, list) else v


def _simulator(args: argparse.Namespace, cfg: SiteConfig, production: bool = False):
    from aiotstream.sim.plant import ProductionSpec, malformed_messages
    from aiotstream.sim.realistic import RealisticSpec, make_simulator

    spec = ProductionSpec(cycle_time_s=DEMO_CYCLE_S) if production else None
    scenario = getattr(args, "scenario", "easy")  # demo and bench: always easy
    amplitude = getattr(args, "amplitude", None)
    amplitude = amplitude if amplitude is not None else (0.25 if scenario == "realistic" else 1.0)
    extra: dict[str, Any] = {}
    fields = dict(getattr(args, "spec", None) or [])
    if scenario == "realistic" and getattr(args, "day_s", None):
        fields["day_s"] = args.day_s
    if fields:
        if scenario != "realistic":
            raise UsageError("--spec sets the realistic scenario's numbers: use --simulate realistic")
        try:
            extra["spec"] = RealisticSpec(**fields)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"--spec: {exc}") from None
    try:
        sim = make_simulator(scenario, cfg.all_assets(), duration_s=args.duration, n_faults=args.faults,
                             seed=args.seed, production=spec, amplitude=amplitude, **extra)
    except ValueError as exc:  # e.g. a run too short for its faults: say so without a traceback
        raise AiotError(f"simulate: {exc} (--duration, --faults)") from None
    bad = malformed_messages(args.malformed, assets=[a.id for a in cfg.all_assets()], start_ns=sim.start_ns,
                             seed=args.seed) if args.malformed else []
    return sim, bad


def cmd_simulate(args: argparse.Namespace) -> int:
    from aiotstream.io.simulator import interleave

    cfg = _load_site(args)
    if args.truth:
        out_file(args.truth, "--truth")
    if args.out_dir:
        out_dir(args.out_dir, "--out-dir")
    elif args.file_partitions:
        raise UsageError("--file-partitions needs --out-dir")
    brokers = args.brokers or ",".join(cfg.inputs.brokers)
    if not args.out_dir:  # before simulating anything: is there a broker to write to?
        from aiotstream.io.kafka import ensure_topics

        wave_topic, read_topic = cfg.inputs.topics[0], cfg.inputs.topics[-1]
        ensure_topics(brokers, [wave_topic, read_topic], partitions=args.partitions,
                      wait_s=_broker_wait(args), security=cfg.inputs.kafka)
    sim, bad = _simulator(args, cfg)
    print(f"simulating {len(sim.assets)} asset(s) x {args.duration:g} s ({args.scenario}): {sim.n_frames:,} "
          f"frames, {sim.n_readings:,} readings, {len(sim.faults)} fault(s), {len(bad)} malformed",
          file=sys.stderr)
    if args.truth:
        sim.write_truth(args.truth)
    total = sim.n_frames + sim.n_readings + len(bad)
    if args.out_dir:
        with progress.bar("simulate", total=sim.n_frames + sim.n_readings) as b:
            counts = sim.write_files(args.out_dir, partitions=args.file_partitions,
                                     messages=progress.counted(sim.messages(), b))
        print(f"wrote {counts} to {args.out_dir}", file=sys.stderr)
        return 0
    from aiotstream.io.simulator import write_to_kafka

    t0 = time.monotonic()
    try:
        with progress.bar("simulate", total=total) as b:
            # on a terminal the bar says how far it is; elsewhere a line every 10,000 messages
            counts = write_to_kafka(progress.counted(interleave(sim.messages(), bad), b), brokers, wave_topic,
                                    read_topic, progress=not progress.enabled(), security=cfg.inputs.kafka)
    except RuntimeError as exc:  # messages the broker did not take (write_to_kafka waited 60 s for them)
        raise AiotError(f"simulate: {exc}") from None
    print(f"produced {counts} to {brokers} ({wave_topic}, {read_topic}) in {time.monotonic() - t0:.1f} s",
          file=sys.stderr)
    return 0


def _parquet_output(args: argparse.Namespace, cfg: SiteConfig) -> Any:
    parquet = cfg.outputs.parquet
    if getattr(args, "parquet_dir", None):
        from aiotstream.config import ParquetOutput

        parquet = ParquetOutput(**{**(parquet.model_dump() if parquet else {}),
                                   "directory": args.parquet_dir})
    return parquet


def _prepare_flow(args: argparse.Namespace, cfg: SiteConfig, brokers: str, kafka_in: bool) -> None:
    """Before a run/replay's flow starts: check what can be checked (cluster arguments, output and recovery
    directories), start the metrics server (``--metrics-port``), then wait for the broker (when the flow reads
    or writes Kafka)."""
    if args.addresses is not None:
        addrs = args.addresses.split(";")
        bad = [a for a in addrs if not re.fullmatch(r"[^:;\s]+:\d{1,5}", a)]
        if bad:
            raise UsageError(f"-a/--addresses: {bad[0]!r} is not host:port (give every process's host:port, "
                             "separated by ';')")
        if args.process_id is None:
            raise UsageError("-a/--addresses needs -i/--process-id (this process's index in that list)")
        if args.process_id >= len(addrs):
            raise UsageError(f"-i/--process-id {args.process_id} is not an index into the {len(addrs)} "
                             "address(es) of -a")
    if args.out_dir:
        out_dir(args.out_dir, "--out-dir")
    parquet = _parquet_output(args, cfg)
    if parquet is not None:
        out_dir(parquet.directory, "--parquet-dir" if args.parquet_dir else "[outputs.parquet] directory")
    if args.recovery:
        out_dir(args.recovery, "--recovery")
    if getattr(args, "lineage_file", None):
        out_file(args.lineage_file, "--lineage-file")
    _start_metrics(args, cfg)
    if kafka_in or not args.out_dir:
        from aiotstream.io.kafka import wait_for_brokers

        wait_for_brokers(brokers, _broker_wait(args), cfg.inputs.kafka)


def _start_metrics(args: argparse.Namespace, cfg: SiteConfig | None) -> None:
    """With ``--metrics-port``: the metrics and probes server (aiotstream.io.metrics), up before the wait for
    brokers so that probes answer (healthz 200, readyz 503) from the start; :func:`_serving_metrics` stops
    it. ``cfg`` None: a command without a site of its own (``detect``)."""
    if args.metrics_port is None:
        if args.metrics_host is not None:
            raise UsageError("--metrics-host needs --metrics-port")
        return
    from aiotstream import __version__, build_commit
    from aiotstream.io.metrics import serve

    site = {"site": cfg.site.id, "config_hash": cfg.config_hash, "flow": cfg.site.flow} if cfg is not None \
        else {"site": args.command, "config_hash": "", "flow": "plant"}
    info = {"version": __version__, "commit": build_commit() or "unknown", "code": code_version(), **site,
            "command": args.command, "process": str(getattr(args, "process_id", None) or 0)}
    recovery = getattr(args, "recovery", None)
    args.metrics_server = serve(args.metrics_host or "127.0.0.1", args.metrics_port, info,
                                recovery=Path(recovery) if recovery else None)


def _serving_metrics(cmd: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A flow command whose metrics server (if :func:`_start_metrics` started one) stops when it returns,
    however it ends: the server lives as long as the flow."""

    @functools.wraps(cmd)
    def wrapped(args: argparse.Namespace) -> int:
        args.metrics_server = None
        try:
            return cmd(args)
        finally:
            if args.metrics_server is not None:
                args.metrics_server.stop()

    return wrapped


def _sinks(args: argparse.Namespace, cfg: SiteConfig, brokers: str) -> tuple[Any, list[Any], str]:
    """Main sink (JSONL dir or Kafka topics) and the extra ones (Parquet lake, MQTT device topics)."""
    from aiotstream.io.kafka import KafkaOutputSink, ensure_topics, output_topics, topic_configs

    if args.out_dir:
        from aiotstream.io.files import JsonlSink

        sink, where = JsonlSink(args.out_dir), f"{args.out_dir}/*.jsonl"
    else:
        ensure_topics(brokers, list(output_topics(cfg).values()), partitions=cfg.outputs.partitions,
                      wait_s=_broker_wait(args), configs=topic_configs(cfg), security=cfg.inputs.kafka)
        sink, where = KafkaOutputSink(cfg,
                                      brokers), f"Kafka {brokers}: " + ", ".join(output_topics(cfg).values())
    also: list[Any] = []
    parquet = _parquet_output(args, cfg)
    if parquet is not None:
        from aiotstream.io.parquet import ParquetSink

        also.append(ParquetSink(parquet, cfg.site.id, classification={
            k: cfg.governance.classification_of(k) for k in parquet.kinds}))
        where += f" + {', '.join(parquet.kinds)} as Parquet in {parquet.directory}"
    if cfg.outputs.mqtt is not None:
        from aiotstream.io.mqtt import MqttSink

        m = cfg.outputs.mqtt
        also.append(MqttSink(m, cfg.site.id))
        where += f" + {', '.join(m.kinds)} over MQTT to {m.host}:{m.port} {m.topic}"
    if cfg.outputs.opcua is not None:
        if args.out_dir:
            raise UsageError("[outputs.opcua] writes commands to a PLC and acknowledges them on Kafka: it "
                             "needs the Kafka outputs, not --out-dir")
        from aiotstream.io.opcua_write import OpcUaCommandSink

        writer = OpcUaCommandSink(cfg, brokers)
        also.append(writer)
        where += f" + commands written to OPC UA {cfg.outputs.opcua.endpoint} (acks on {writer.ack_topic})"
    return sink, also, where


GC_THRESHOLDS = (1_000_000, 10, 100)


def tune_gc() -> None:
    """Garbage-collect less often while a flow runs.

    A flow keeps hundreds of thousands of long-lived objects (per-asset
    windows, detectors, alert and KPI state; until 2026-12-05 also 12,775
    HalfSpaceTrees node objects per HST asset) and allocates many short-lived
    ones per window; with CPython's default thresholds (700, 10, 10) the collector ran
    often enough to take 17% of a waveform run (py-spy --native). Freezing what
    exists at start-up (modules, the flow) and raising the thresholds gave
    +34% and +48% frames/s in two side-by-side runs of the 40-asset scaling
    workload. Cyclic garbage still gets
    collected, just in larger, rarer sweeps.

    The youngest generation's threshold is a million allocations (100,000 until 2026-12-07): a poll of
    10,000 readings from as many slow sensors makes containers by the hundred thousand (each asset's
    columns, outputs, records), so at 100,000 the collector ran about twice a poll over what was alive of
    them (up to 660,000 objects) and took 14 % of a 20,000-asset run's CPU; at a million, 2 %
    (benchmarks/RESULTS.md). The flows make almost no cyclic garbage (724 objects collected in a minute
    of that run), so collecting ten times less often holds no more memory; a flow that made cycles by the
    million would hold them a little longer.
    """
    import gc

    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


BLAS_THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def one_blas_thread() -> bool:
    """Run BLAS (numpy's OpenBLAS) on the calling thread only while a flow runs, unless the environment
    sets a thread count (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``: then it
    decides). Returns whether it limited anything.

    A flow's linear algebra is small (the streaming detector's PCA: an eigendecomposition of a channels x
    channels matrix every 25 rows); OpenBLAS's pool woke for each and its threads spun on cores that belong
    to Bytewax workers (``blas_thread_server`` 1.4 % of a scalar flow's samples under perf, on a CPU that
    the workers need). Results do not change: each call is the same computation on one thread (no BLAS
    routine of these sizes splits its work). ONNX Runtime has its own thread pool (``[model]``), untouched.
    """
    if any(os.environ.get(k) for k in BLAS_THREAD_ENV):
        return False
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")
    return True




# ---- running a flow: one way to start, four ways to stop ------------------------------------------------
class QuietRustPanics:
    """While Bytewax runs, stderr (fd 2) goes through a pipe and a thread passes it on line by line, except a
    Rust panic report and everything after it until the run returns.

    Bytewax 0.21.1 reports an exception in the dataflow by panicking (``unwrap_any!``), and Rust's panic
    hook writes ``thread '<unnamed>' panicked at src/...`` (with a backtrace under ``RUST_BACKTRACE``) to
    fd 2 directly, before Python sees the error; the CLI then says in one line what failed. Everything else
    (log lines, warnings) passes unchanged. ``AIOTSTREAM_DEBUG=1`` turns the filter off.
    """

    PANIC = re.compile(rb"^thread '[^']*' panicked at ")

    def __init__(self) -> None:
        self.real: int | None = None
        self.dropped = 0

    def __enter__(self) -> Self:
        if _debug():
            return self
        sys.stderr.flush()
        self.real = os.dup(2)
        r, w = os.pipe()
        os.dup2(w, 2)
        os.close(w)
        self._r = r
        self._thread = threading.Thread(target=self._pump, name="aiotstream-stderr", daemon=True)
        self._thread.start()
        return self

    def _pump(self) -> None:
        assert self.real is not None
        buf, dropping = b"", False
        while chunk := os.read(self._r, 65536):
            *lines, buf = (buf + chunk).split(b"\n")
            keep = []
            for line in lines:
                dropping = dropping or bool(self.PANIC.match(line))
                if dropping:
                    self.dropped += 1
                else:
                    keep.append(line + b"\n")
            if keep:
                self._write(b"".join(keep))
        if buf and not dropping:
            self._write(buf)

    def _write(self, data: bytes) -> None:
        """Pass on; if the real stderr is gone (a closed pipe), keep draining so writers never block."""
        try:
            os.write(self.real, data)  # type: ignore[arg-type]
        except OSError:
            self.dropped += data.count(b"\n")

    def write(self, text: str) -> None:
        """Write to the real stderr now (the watchdog's last line before it exits the process)."""
        os.write(self.real if self.real is not None else 2, text.encode())

    def __exit__(self, *exc: object) -> None:
        if self.real is None:
            return
        sys.stderr.flush()
        os.dup2(self.real, 2)  # closes the pipe's last write end: the thread reads to its end
        self._thread.join(timeout=5)
        os.close(self._r)
        os.close(self.real)
        self.real = None


def _root_cause(exc: BaseException) -> str:
    """The first line of the innermost of our own errors (``AiotError``: it names the thing and the fix) under
    Bytewax's wrappers, else of the innermost cause.

    >>> try:
    ...     try:
    ...         raise AiotError("3 output(s) could not be delivered")
    ...     except AiotError as e:
    ...         raise RuntimeError("(src/worker.rs:1): error in step") from e
    ... except RuntimeError as outer:
    ...     _root_cause(outer)
    '3 output(s) could not be delivered'
    """
    seen: set[int] = set()
    ours: BaseException | None = None
    while id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, AiotError):
            ours = exc
        nxt = exc.__cause__ or exc.__context__
        if nxt is None:
            break
        exc = nxt
    exc = ours or exc
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, AiotError) else f"{type(exc).__name__}: {text}".rstrip(": ")


def execute_flow(command: str, run: Callable[[], None], where: str) -> int:
    """Run a dataflow (``run`` calls Bytewax) and end with one line on stderr, whichever way it stops:

    * end of input: ``done: <summary>; outputs in <where>`` (exit 0);
    * SIGINT/SIGTERM: ``stopped (SIGINT): ...`` (exit 130/143): the signal only requests a stop
      (:mod:`aiotstream.io.stop`); the sources end, the flow finishes its epoch and closes its sinks;
    * an error: ``aiotstream <command>: failed: <cause>; <summary>; outputs in <where>`` (exit 1);
    * no clean finish within ``GRACE_S`` of a signal (or a second signal): the watchdog prints the
      summary and what may be missing, and exits with the signal's code.
    """
    from aiotstream.io.stop import GRACE_S, STOP, exit_code, signals_stop_the_flow
    from aiotstream.runstats import STATS

    STOP.clear()
    STATS.reset()
    error: BaseException | None = None
    with QuietRustPanics() as quiet:
        def on_force(signum: int) -> None:
            quiet.write(f"stopped ({signal.Signals(signum).name}): the flow did not finish within "
                        f"{GRACE_S:g} s of the signal, so outputs of the last epoch may be missing (with "
                        f"--recovery a restart produces them again); {STATS.summary()}; outputs in {where}\n")

        with signals_stop_the_flow(on_force):
            try:
                run()
            except Exception as exc:  # reported below in one line, with the summary
                if _debug():
                    raise
                error = exc
    summary = f"{STATS.summary()}; outputs in {where}"
    if error is not None:
        during = f" (while stopping on {STOP.reason})" if STOP.is_set() else ""
        print(f"aiotstream {command}: failed{during}: {_root_cause(error)}; {summary}", file=sys.stderr)
        return 1
    if STOP.is_set():
        print(f"stopped ({STOP.reason}): {summary}", file=sys.stderr)
        return exit_code(STOP.signum or signal.SIGINT)
    print(f"done: {summary}", file=sys.stderr)
    return 0


def _run_flow(args: argparse.Namespace, cfg: SiteConfig, source: Any, tail: bool, src_text: str,
              brokers: str) -> int:
    from aiotstream.config import FLOW_ENERGY
    from aiotstream.dataflow import build_building_flow, build_flow
    from aiotstream.dataflow.run import cli_main, recovery_config
    from aiotstream.io.stop import stoppable

    if cfg.site.flow == FLOW_ENERGY:  # site.flow picks the flow; the building flow's own builder
        build_flow = build_building_flow

    sink, also, where = _sinks(args, cfg, brokers)
    # without --recovery nothing reads the per-epoch state snapshots, so they are not taken
    flow = build_flow(cfg, stoppable(source), sink, tail=tail, also=also, snapshots=bool(args.recovery))
    print(f"running {cfg.site.flow} for site {cfg.site.id!r} (config_hash {cfg.config_hash}, "
          f"{model_versions(cfg)}, code {code_version()}): {src_text} -> {where}"
          + ("" if tail else " (until the end of the input)"), file=sys.stderr, flush=True)
    addresses = args.addresses.split(";") if args.addresses else None
    recovery = None
    if args.recovery:
        n_procs = len(addresses or [None])
        recovery = recovery_config(Path(args.recovery), args.recovery_partitions or args.workers * n_procs,
                                   args.backup_s, process_id=args.process_id or 0, processes=n_procs)
        print(f"recovery: {args.recovery} (snapshot every {args.epoch_s:g} s)", file=sys.stderr, flush=True)
    tune_gc()
    one_blas_thread()

    failure: list[str] = []

    def run() -> None:
        # replay (a bounded input): a bar of the inputs read so far, on a terminal; closed before the summary
        from aiotstream.runstats import STATS

        watch = progress.Watch(args.command, lambda: STATS.get("inputs"), unit="input") \
            if args.command == "replay" else contextlib.nullcontext()
        try:
            with watch:
                cli_main(flow, workers_per_process=args.workers, process_id=args.process_id,
                         addresses=addresses, epoch_interval=timedelta(seconds=args.epoch_s),
                         recovery_config=recovery)
        except Exception as exc:
            failure.append(_root_cause(exc))
            raise

    lineage = _flow_lineage(args, cfg, source, brokers)
    if lineage is not None:
        lineage.start()
    rc = execute_flow(args.command, run, where)
    if lineage is not None:  # a stop on a signal is the normal end of a tailing flow: COMPLETE
        lineage.finish(failure[0] if failure else (f"exit code {rc}" if rc == 1 else None))
    return rc


def _flow_lineage(args: argparse.Namespace, cfg: SiteConfig, source: Any, brokers: str) -> Any:
    """The OpenLineage run of a flow (aiotstream.lineage_events): its input datasets (the source's topics,
    subscriptions, nodes or files) and output datasets (topics or JSONL files, Parquet, MQTT)."""
    from aiotstream.lineage_events import Dataset, file_datasets, flow_run, kafka_datasets, make_client

    client = make_client(cfg, getattr(args, "lineage_file", None), brokers)
    if client is None:
        return None
    from aiotstream.io.kafka import input_topics, output_topics

    kind = cfg.inputs.kind
    paths = getattr(source, "paths", None)
    if paths is not None:
        inputs = file_datasets(paths)
    elif kind == "kafka":
        inputs = kafka_datasets(brokers, input_topics(cfg))
    elif kind == "mqtt" and cfg.inputs.mqtt is not None:
        m = cfg.inputs.mqtt
        inputs = [Dataset(f"mqtt://{m.host}:{m.port}", s.filter) for s in m.subscriptions]
    elif kind == "opcua" and cfg.inputs.opcua is not None:
        o = cfg.inputs.opcua
        inputs = [Dataset(o.endpoint, n.node_id) for n in o.nodes]
    else:
        inputs = file_datasets(cfg.inputs.files.paths if cfg.inputs.files else [])
    if args.out_dir:
        from aiotstream.io.files import FILE_NAMES

        outputs = file_datasets(Path(args.out_dir) / f"{FILE_NAMES[k]}.jsonl" for k in output_topics(cfg))
    else:
        outputs = kafka_datasets(brokers, output_topics(cfg).values())
    parquet = _parquet_output(args, cfg)
    if parquet is not None:
        outputs += file_datasets(Path(parquet.directory) / k for k in parquet.kinds)
    if cfg.outputs.mqtt is not None:
        m = cfg.outputs.mqtt
        outputs += [Dataset(f"mqtt://{m.host}:{m.port}", m.topic)]
    return flow_run(cfg, client, inputs, outputs)


DEMO_WITHIN_S = 10
"""The demo counts a fault as detected when an alert opens within this many seconds of its onset."""


def model_versions(cfg: SiteConfig) -> str:
    """The models a run starts with, for its start line: ``model <name>@<version> (<kind>)``, and for ONNX
    sites the canary (with its share of the assets) and the shadow.

    >>> from aiotstream.config import SiteConfig
    >>> model_versions(SiteConfig.model_validate({"site": {"id": "p"}, "assets": [{"id": "a", "line": "l"}]}))
    'model baseline@1 (calibrated)'
    """
    m = cfg.model
    text = f"model {m.name}@{m.version} ({m.kind})"
    o = m.onnx
    if o is not None and o.canary:
        text += f", canary {o.canary} on {o.canary_fraction:.0%} of the assets"
    if o is not None and o.shadow:
        text += f", shadow {o.shadow}"
    return text


def _cluster_place(args: argparse.Namespace) -> Placement:
    """This process's place from ``-i``/``-a``/``-w``; process 0 of 1 outside a cluster."""
    return Placement.of((args.process_id or 0, len(args.addresses.split(";")) if args.addresses else 1,
                         args.workers))


@_serving_metrics
def cmd_run(args: argparse.Namespace) -> int:
    cfg = _load_site(args)
    brokers = args.brokers or ",".join(cfg.inputs.brokers)
    kind = cfg.inputs.kind
    tail = not args.once
    _prepare_flow(args, cfg, brokers, kafka_in=kind == "kafka")
    process = _cluster_place(args)
    if kind in ("kafka", "mqtt") or cfg.auth is not None:  # feedback and control come from a broker: say
        # whether they are authenticated (a file replay or an OPC UA input carries no such message)
        from aiotstream.auth import warn_without_auth

        warn_without_auth(cfg)
    if kind == "kafka":
        from aiotstream.io.kafka import ensure_topics, input_topics, kafka_source

        ensure_topics(brokers, input_topics(cfg), partitions=cfg.outputs.partitions,
                      wait_s=_broker_wait(args), security=cfg.inputs.kafka)
        source: Any = kafka_source(cfg, brokers, tail=tail, process=process)  # (a MessageBlock per poll)
        text = f"Kafka {brokers} {', '.join(input_topics(cfg))}"
    elif kind == "mqtt":
        from aiotstream.io.mqtt import mqtt_source

        source, m = mqtt_source(cfg), cfg.inputs.mqtt
        text = f"MQTT {m.host}:{m.port} {', '.join(s.filter for s in m.subscriptions)}"  # type: ignore[union-attr]
    elif kind == "opcua":
        from aiotstream.io.opcua import opcua_source

        source, o = opcua_source(cfg), cfg.inputs.opcua
        text = f"OPC UA {o.endpoint} ({len(o.nodes)} nodes)"  # type: ignore[union-attr]
    else:
        from aiotstream.io.replay import file_source

        source, tail = file_source(cfg, process=process), False
        text = f"files {', '.join(cfg.inputs.files.paths)}"  # type: ignore[union-attr]
    return _run_flow(args, cfg, source, tail, text, brokers)


@_serving_metrics
def cmd_replay(args: argparse.Namespace) -> int:
    from aiotstream.config import FileInput
    from aiotstream.io.replay import FileSource

    cfg = _load_site(args)
    base = cfg.inputs.files.model_dump() if cfg.inputs.files else {}
    update: dict[str, Any] = {"paths": args.files, "speed": args.speed}
    if args.format:
        update["format"] = args.format
    if args.payload:
        update["payload"] = args.payload
    try:
        files = FileInput.model_validate({**base, **update})
    except ValidationError as exc:
        raise ConfigError("aiotstream replay", [(".".join(map(str, e["loc"])), e["msg"])
                                                for e in exc.errors()]) \
            from None
    brokers = args.brokers or ",".join(cfg.inputs.brokers)
    source = FileSource(files, cfg.inputs.poll_batch, process=_cluster_place(args))  # checks every file
    _prepare_flow(args, cfg, brokers, kafka_in=False)
    speed = "as fast as possible" if args.speed == 0 else f"x{args.speed:g}"
    return _run_flow(args, cfg, source, False, f"{len(source.paths)} file(s), {speed}", brokers)


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open("rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def cmd_demo(args: argparse.Namespace) -> int:
    from aiotstream.dataflow import build_flow
    from aiotstream.dataflow.run import cli_main
    from aiotstream.evaluate import score_alerts
    from aiotstream.io.files import JsonlSink
    from aiotstream.io.simulator import SimulatorSource, interleave
    from aiotstream.io.stop import stoppable

    cfg = default_site(args.assets, inputs={"tail": False}, features={"set": args.features},
                       assets=[{"id": f"asset-{i:03d}", "line": f"line-{i % 2 + 1}",
                                "ideal_cycle_time_s": DEMO_CYCLE_S}
                               for i in range(args.assets)])
    out = out_dir(args.out, "--out")
    for old in out.glob("*.jsonl"):
        old.unlink()
    print(f"[1/3] simulating {args.assets} asset(s) x {args.duration:g} s of 3-axis vibration at 10 kHz (+ "
          f"temperature, machine state, part counters), {args.faults} fault(s), {args.malformed} malformed "
          f"message(s), seed {args.seed}", flush=True)
    t0 = time.perf_counter()
    sim, bad = _simulator(args, cfg, production=True)
    messages = list(interleave(sim.messages(), bad))
    sim.write_truth(out / "truth.json")
    print(f"      {sim.n_frames:,} frames, {sim.n_readings:,} readings in {time.perf_counter() - t0:.1f} s",
          flush=True)
    print(f"[2/3] running the predictive-maintenance flow (Bytewax, 1 worker, features {args.features}) ...",
          flush=True)
    # imported lazily by the models and kernels; keep their import time out of the figure
    import river.anomaly
    import river.drift
    import scipy.fft

    del river, scipy

    flow = build_flow(cfg, stoppable(SimulatorSource(messages, cfg.site.id)), JsonlSink(out), tail=False,
                      snapshots=False)
    tune_gc()
    t1 = time.perf_counter()
    rc = execute_flow("demo",
                      lambda: cli_main(flow, workers_per_process=1, epoch_interval=timedelta(seconds=5)),
                      f"{out}/*.jsonl")
    elapsed = time.perf_counter() - t1
    if rc != 0:
        return rc

    alerts = _read_jsonl(out / "alerts.jsonl")
    kpis = _read_jsonl(out / "kpis.jsonl")
    scores = _read_jsonl(out / "scores.jsonl")
    dead = _read_jsonl(out / "deadletter.jsonl")
    asset_kpis = [k for k in kpis if k["scope"] == "asset"]
    frames = sum(k["totals"]["frames"] for k in asset_kpis)
    samples = frames * 3 * 1024
    frame_ns = round(1024 / 10_000 * 1e9)  # a window's data runs up to one frame past its end
    # found = an alert opens within 10 s of the onset: the calibrated detector asks a level change (a
    # temperature drift) to last 8 windows before it alerts (docs/detection.md, "Window features")
    det = score_alerts([f.to_dict() for f in sim.faults], alerts, tolerance_ns=DEMO_WITHIN_S * 1_000_000_000,
                       lead_ns=frame_ns)
    reasons = Counter(d["reason"] for d in dead)
    print(f"[3/3] summary (outputs in {out}/: alerts.jsonl commands.jsonl kpis.jsonl scores.jsonl "
          "deadletter.jsonl truth.json)")
    print(f"  throughput : {frames:,} frames in {elapsed:.2f} s = {frames / elapsed:,.0f} frames/s "
          f"({samples / elapsed / 1e6:,.1f} M samples/s, 1 worker, including decode and windowing)")
    print(f"  windows    : {len(scores):,} scored, "
          f"{sum(k['totals']['anomalous_windows'] for k in asset_kpis):,} anomalous; {len(kpis):,} KPI "
          "records (asset, line, site)")
    print(f"  alerts     : {det.alerts} opened, {sum(a['event'] == 'cleared' for a in alerts)} cleared")
    print(f"  faults     : {det.faults} injected, {det.detected} detected within {DEMO_WITHIN_S} s -> fault "
          f"recall {det.recall:.0%}; alert precision {det.precision:.0%} ({det.false_alerts} false)")
    for f in sim.faults:
        name = f"{f.asset}/{f.kind}"
        d = det.delays_s.get(name)
        print(f"    - {name:32s} onset +{(f.onset_ns - sim.start_ns) / 1e9:6.1f} s  "
              + (f"alert after {d:.1f} s" if d is not None else "MISSED"))
    print(_site_kpi_line(kpis, cfg.kpi.periods_s[0]))
    print(f"  dead letters: {len(dead):,} "
          f"({', '.join(f'{k} {v}' for k, v in reasons.most_common()) or 'none'})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Detection figures for a labelled file or a simulator run (aiotstream.evaluation)."""
    if (args.file is None) == (args.simulate is None):
        raise UsageError("give a labelled FILE or --simulate SCENARIO (one of them)")
    json_out = out_file(args.json, "--json") if args.json else None
    plot_out = None if args.no_plot else out_file(args.plot, "--plot")
    if args.file is not None:
        result = _evaluate_file(args, plot_out)
    else:
        result = _evaluate_simulation(args, plot_out)
        if result is None:
            return 1
    if json_out is not None:
        opts = orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
        json_out.write_bytes(orjson.dumps(result, option=opts) + b"\n")
        print(f"  json: {json_out}")
    return 0


def _evaluate_file(args: argparse.Namespace, plot_out: Path | None) -> dict[str, Any]:
    from aiotstream.evaluation.labelled import (
        EvaluationError,
        evaluate_labelled,
        load_labelled,
        read_predictions,
        run_detector,
    )
    from aiotstream.evaluation.plot import plot_labelled
    from aiotstream.evaluation.report import format_labelled

    path = in_file(args.file, "FILE")
    if not args.timestamp_column or not args.value_columns:
        raise UsageError("a labelled FILE needs --timestamp-column and --value-columns")
    cols = [c.strip() for c in args.value_columns.split(",") if c.strip()]
    try:
        series = load_labelled(path, args.timestamp_column, cols, args.label_column, args.timestamp_unit,
                               args.delimiter)
        if args.predictions:
            pred = in_file(args.predictions, "--predictions")
            _ts, score, alert = read_predictions(pred, len(series.label))
            which = f"predictions from {args.predictions}"
        else:
            score, alert, which = run_detector(series)
        result = evaluate_labelled(series, score, alert, max_delay_s=args.max_delay_s)
    except EvaluationError as exc:
        raise UsageError(str(exc)) from None
    result = {"mode": "labelled", "file": str(path), "detector": which, "columns": cols, **result}
    print(format_labelled(result))
    if plot_out is not None:
        where, text = plot_labelled(plot_out, series.ts_ns, series.x, cols, series.label, score, alert,
                                    result)
        result["plot"] = {"path": where, "note": text}
        print(f"  plot: {text}")
    return result


def _evaluate_simulation(args: argparse.Namespace, plot_out: Path | None) -> dict[str, Any] | None:
    import numpy as np

    from aiotstream.dataflow import build_flow
    from aiotstream.dataflow.run import cli_main
    from aiotstream.evaluation.plot import plot_simulated
    from aiotstream.evaluation.report import format_simulated
    from aiotstream.evaluation.simulated import alert_intervals, score_run
    from aiotstream.io.files import JsonlSink
    from aiotstream.io.simulator import SimulatorSource
    from aiotstream.io.stop import stoppable
    from aiotstream.units import S

    n = args.assets
    if args.site:  # the site's detection (model, alerts, drift) on its own assets
        data = _load_site(args).model_dump(mode="json")
        data["inputs"] = {**data["inputs"], "tail": False}
        data["outputs"] = {k: v for k, v in data.get("outputs", {}).items()
                           if k not in ("parquet", "mqtt", "opcua")}
        if isinstance(data["model"].get("onnx"), dict):  # no lake here: the model loop has nothing to read
            data["model"]["onnx"].pop("loop", None)
        cfg = SiteConfig.from_dict(data, source=f"<evaluate view of {args.site}>")
        n = len(cfg.all_assets())
    else:
        cfg = default_site(n, inputs={"tail": False},
                           assets=[{"id": f"asset-{i:03d}", "line": f"line-{i % 2 + 1}"} for i in range(n)])
    out = out_dir(args.out, "--out")
    for old in out.glob("*.jsonl"):
        old.unlink()
    args.scenario, args.duration = args.simulate, args.duration_s
    args.faults = args.faults if args.faults is not None else max(1, n // 2)
    if args.faults > n:
        raise UsageError(f"--faults {args.faults}: more faults than --assets {n} (one fault per asset)")
    sim, _bad = _simulator(args, cfg)
    truth = sim.truth_dict()
    sim.write_truth(out / "truth.json")
    print(f"simulating {n} asset(s) x {args.duration_s:g} s ({args.simulate}, faults at "
          f"{sim.fault_amplitude:g}x) into the flow: {truth['counts']['messages']:,} messages, "
          f"{len(sim.faults)} fault(s)", file=sys.stderr, flush=True)
    # the simulator's messages are made as the flow reads them (a long run is never held in memory)
    flow = build_flow(cfg, stoppable(SimulatorSource(sim.messages, cfg.site.id)), JsonlSink(out), tail=False,
                      snapshots=False)
    tune_gc()
    rc = execute_flow("evaluate",
                      lambda: cli_main(flow, workers_per_process=1, epoch_interval=timedelta(seconds=5)),
                      f"{out}/*.jsonl")
    if rc != 0:
        return None
    alerts = _read_jsonl(out / "alerts.jsonl")
    frame_ns = round(sim.frame_samples / sim.assets[0].sample_rate_hz * S)
    result = score_run(truth, alerts, lead_ns=frame_ns, tolerance_ns=round(args.tolerance_s * S),
                       max_delay_ns=None if args.max_delay_s is None else round(args.max_delay_s * S),
                       reset_window_ns=round(args.reset_window_s * S))
    result = {"mode": "simulate", "seed": args.seed, "outputs": str(out), **result}
    print(format_simulated(result))
    if plot_out is not None:
        per: dict[str, list[tuple[int, float, float]]] = {}
        for r in _read_jsonl(out / "scores.jsonl"):
            vals = r.get("values") or {}
            feat = next((v for k, v in vals.items() if k.endswith(".rms")), float("nan"))
            row = (int(r["window"]["end_ns"]), float(r["score"]), float(feat))
            per.setdefault(r["asset"], []).append(row)
        scores = {a: tuple(np.array(c) for c in zip(*sorted(rows))) for a, rows in per.items()}
        ivs = alert_intervals(alerts) + alert_intervals(alerts, drift=True)
        where, text = plot_simulated(plot_out, truth, ivs, scores, result)
        result["plot"] = {"path": where, "note": text}
        print(f"  plot: {text}")
    return result


def cmd_bench_kernels(args: argparse.Namespace) -> int:
    """Kernel throughput vs twin vs plain numpy vs memory bandwidth, one thread, in a child process."""
    from aiotstream.bench import ONE_THREAD_ENV

    argv = ["--windows", str(args.windows), "--samples", str(args.samples), "--repeat", str(args.repeat),
            "--scalar-updates", str(args.scalar_updates)]
    if args.json:
        argv += ["--json", str(out_file(args.json, "--json"))]
    # its own session: a terminal's Ctrl-C reaches only this process, which stops the child and says so
    with subprocess.Popen([sys.executable, "-m", "aiotstream.bench", *argv],
                          env={**os.environ, **ONE_THREAD_ENV},
                          start_new_session=True) as child:
        try:
            return child.wait()
        finally:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    child.kill()


def _site_kpi_line(kpis: list[dict], period_s: float) -> str:
    """The site's KPIs over the whole run, from the summed totals of its period records."""
    from aiotstream.kpi import derive, from_public, merge, new_totals

    total = new_totals()
    for k in kpis:
        if k["scope"] == "site" and k["period"]["length_s"] == period_s:
            total = merge(total, from_public(k["totals"]))
    d = derive(total)

    def fmt(v: float | None, pct: bool = False, unit: str = "") -> str:
        return "n/a" if v is None else (f"{v:.0%}" if pct else f"{v:.1f}{unit}")

    return (f"  site KPIs  : OEE {fmt(d['oee'], True)} (availability {fmt(d['availability'], True)}, "
            f"performance {fmt(d['performance'], True)}, quality {fmt(d['quality'], True)}); MTTR "
            f"{fmt(d['mttr_s'], unit=' s')}, MTBF {fmt(d['mtbf_s'], unit=' s')}; alerts "
            f"{total['alerts_warning']} warning / {total['alerts_critical']} critical")


def _benchmark(name: str) -> Any:
    """``benchmarks/<name>.py`` of the source checkout: ``bench e2e`` and ``bench mqtt`` are thin calls to it
    (the harnesses start their contenders as ``python -m benchmarks.<name>`` from the checkout)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "benchmarks" / f"{name}.py").exists():
        raise AiotError(f"bench {name} needs a source checkout (no benchmarks/ beside {root / 'aiotstream'})")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(f"benchmarks.{name}")


def cmd_bench_e2e(args: argparse.Namespace) -> int:
    """The end-to-end benchmark (``benchmarks/e2e.py``)."""
    return int(_benchmark("e2e").main(args.e2e_args, parser_class=ArgParser))


def cmd_bench_mqtt(args: argparse.Namespace) -> int:
    """The MQTT ingest benchmark (``benchmarks/mqtt.py``)."""
    return int(_benchmark("mqtt").main(args.mqtt_args, parser_class=ArgParser))


def _train_lineage(args: argparse.Namespace, cfg: SiteConfig) -> Any:
    """The OpenLineage run of a training (START now): its input is the simulated healthy data of the site's
    assets (seed, duration), its outputs the published model versions (set when they are published)."""
    from aiotstream.lineage_events import Dataset, flow_run, make_client

    if args.lineage_file:
        out_file(args.lineage_file, "--lineage-file")
    client = make_client(cfg, args.lineage_file)
    data = Dataset("aiotstream-simulator",
                   f"{cfg.site.id}/healthy/seed={args.seed}/duration={args.duration:g}")
    if getattr(args, "dataset", None):  # train --dataset: the recorded dataset is the input
        data = Dataset(f"file://{Path(args.datasets).resolve()}", args.dataset)
    run = flow_run(cfg, client, [data], [], job=f"train.{cfg.site.id}.{args.name}", job_kind="BATCH")
    return run.start() if run is not None else None


def cmd_train(args: argparse.Namespace) -> int:
    """Train the default models on healthy simulator data and publish them, signed, to a registry."""
    try:
        from aiotstream.models.registry import ModelRegistry, generate_keypair
        from aiotstream.pdm.training import train_and_publish
    except ImportError as exc:
        raise AiotError(f"train needs the train extra (pip install 'aiotstream[train]'): {exc}") from None

    cfg = _load_site(args)
    for option in ("signing_key", "hmac_key_file", "signing_key_passphrase_file"):
        if getattr(args, option):
            in_file(getattr(args, option), "--" + option.replace("_", "-"))
    if args.signing_key_passphrase_file and not args.signing_key:
        raise UsageError("--signing-key-passphrase-file is the passphrase of --signing-key: give both")
    if args.new_key:
        out_dir(args.new_key, "--new-key")
    out_dir(args.registry, "--registry")
    if args.signing_key is None and args.hmac_key_file is None and not args.new_key and not args.unsigned:
        raise AiotError("no signing key: give --signing-key (Ed25519 PEM), --new-key DIR or --hmac-key-file, "
                        "or --unsigned for development (sites refuse unsigned models by default)")
    if args.assets is not None and args.assets > len(cfg.all_assets()):
        raise UsageError(f"--assets {args.assets}: the site has only {len(cfg.all_assets())} asset(s)")
    if args.new_key:
        priv, pub = generate_keypair(args.new_key)
        print(f"new Ed25519 key pair: {priv} (keep it at the training side) and {pub} (give it to the sites)",
              file=sys.stderr)
        args.signing_key = str(priv)
    hmac_key = None
    if args.hmac_key_file:
        hmac_key = Path(args.hmac_key_file).read_bytes().strip()
        if not hmac_key:
            raise UsageError(f"--hmac-key-file {args.hmac_key_file}: the file is empty")
    signing_key = None
    if args.signing_key:  # loaded (and decrypted) before hours of training, not after
        from aiotstream.models.registry import load_signing_key
        from aiotstream.secretfiles import read_secret_bytes

        passphrase = read_secret_bytes(args.signing_key_passphrase_file, "--signing-key-passphrase-file") \
            if args.signing_key_passphrase_file else None
        signing_key = load_signing_key(Path(args.signing_key), passphrase)
    store = None
    if args.dataset or args.datasets:  # train on a recorded dataset instead of simulator data
        if not (args.dataset and args.datasets):
            raise UsageError("--dataset ID and --datasets DIR go together (the id and the store holding it)")
        if args.assets is not None:
            raise UsageError("--assets is for simulator data; a dataset's assets were chosen when it was "
                             "made (dataset create --asset)")
        from aiotstream.datasets import DatasetStore

        store = DatasetStore(args.datasets)
        args.dataset = store.resolve(args.dataset)
    reg = ModelRegistry(args.registry, allow_unsigned=True, datasets=store)
    lineage = _train_lineage(args, cfg)
    t0 = time.perf_counter()
    try:
        with progress.bar("train", total=2, unit="step") as b:  # simulating + features, fitting + publishing
            def stage(what: str) -> None:
                if what == "fitting":
                    b.update(1)
                b.set_description_str(f"train: {what}")

            if store is not None:
                from aiotstream.pdm.training import train_from_dataset

                manifests = train_from_dataset(cfg, reg, store, args.dataset, args.name, args.version,
                                               seed=args.seed, signing_key=signing_key, hmac_key=hmac_key,
                                               n_estimators=args.trees, stage=stage)
            else:
                manifests = train_and_publish(cfg, reg, args.name, args.version, n_assets=args.assets,
                                              duration_s=args.duration, seed=args.seed,
                                              signing_key=signing_key,
                                              hmac_key=hmac_key, n_estimators=args.trees, stage=stage)
            b.update(1)
    except BaseException as exc:
        if lineage is not None:
            lineage.finish(_root_cause(exc) if isinstance(exc, Exception) else type(exc).__name__)
        raise
    if lineage is not None:
        from aiotstream.lineage_events import file_datasets

        lineage.outputs = file_datasets(reg.path(m.name, m.version) for m in manifests)
        lineage.facet["models"] = [{"role": "trained", "name": m.name, "version": m.version,
                                    "kind": "onnx", "sha256": m.sha256} for m in manifests]
        lineage.finish()
    for m in manifests:
        sig = m.signature["alg"] if m.signature else "UNSIGNED"
        print(f"{reg.path(m.name, m.version)}: {m.extra.get('family')}{' int8' if m.quantized else ''}, "
              f"{len(m.feature_names)} features, {m.metrics['train_rows']} training windows, sha256 "
              f"{m.sha256[:16]}..., {sig}")
    print(f"trained in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    """The operator's web console for a site (:mod:`aiotstream.console`) until Ctrl-C."""
    import ipaddress

    import uvicorn

    from aiotstream.console.app import build_app
    from aiotstream.console.feed import Feed
    from aiotstream.console.state import ConsoleState
    from aiotstream.io.kafka import wait_for_brokers

    cfg = _load_site(args)
    brokers = args.brokers or ",".join(cfg.inputs.brokers)
    auth = _console_auth(cfg, args)
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback and not auth:
        print(f"aiotstream console: listening on {args.host}, beyond this machine, and the site has no "
              "[auth] (no sign-in, unsigned actions): put it behind an authenticating proxy or a firewall",
              file=sys.stderr)
    elif not loopback and not args.secure_cookie:
        print(f"aiotstream console: listening on {args.host}, beyond this machine: serve it over HTTPS (a "
              "TLS proxy) and give --secure-cookie, or passwords and sessions cross the network in clear",
              file=sys.stderr)
    import socket

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:  # before the broker: a port in use is said at once
        sock.bind((args.host, args.port))
    except OSError as exc:
        sock.close()
        import errno

        if exc.errno == errno.EADDRINUSE:
            raise AiotError(f"--port {args.port} on {args.host} is already in use") from None
        why = exc.strerror or exc
        raise AiotError(f"--host {args.host} --port {args.port}: cannot listen: {why}") from None
    try:
        wait_for_brokers(brokers, _broker_wait(args), cfg.inputs.kafka)
        state = ConsoleState()
        feed = Feed(cfg, brokers, state).start()
    except BaseException:
        sock.close()
        raise
    app = build_app(cfg, state, feed, refresh_s=args.refresh_s, registry=args.registry, **auth)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                                           access_log=False, lifespan="off"))
    where = sock.getsockname()[1]
    print(f"console for site {cfg.site.id} on http://{args.host}:{where}/ (Kafka {brokers}); Ctrl-C stops it",
          file=sys.stderr, flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        feed.close()
    return 0


def _console_auth(cfg: SiteConfig, args: argparse.Namespace) -> dict[str, Any]:
    """The console's sign-in and signer for a site with [auth] (``build_app``'s keywords); {} without."""
    given = [o for o, v in (("--key", args.key), ("--key-passphrase-file", args.key_passphrase_file),
                            ("--session-secret-file", args.session_secret_file)) if v]
    if cfg.auth is None:
        if given:
            raise UsageError(f"{given[0]}: the site has no [auth], so the console signs nothing and has no "
                             "sign-in (see docs/security.md)")
        return {}
    from aiotstream.console.signin import SignIn, console_signer
    from aiotstream.secretfiles import read_secret

    if not args.key:
        raise UsageError(f"the site has [auth]: give the console's signing key (--key FILE, of principal "
                         f"{args.principal}; see docs/console.md)")
    signin = SignIn.from_principals(cfg.auth.principals)
    if not signin.users:
        raise AiotError("the site's [auth] has no principal with a password_hash_file: nobody could sign in "
                        "to the console (make one with `aiotstream auth hash-password`)")
    signer = console_signer(cfg.auth, args.principal, in_file(args.key, "--key").as_posix(),
                            args.key_passphrase_file)
    secret = None
    if args.session_secret_file:
        secret = read_secret(in_file(args.session_secret_file, "--session-secret-file").as_posix(),
                             "--session-secret-file")
        if len(secret.encode()) < 32:
            raise UsageError("--session-secret-file: the secret needs at least 32 bytes (its first line)")
    return {"signin": signin, "signer": signer, "session_secret": secret, "secure_cookie": args.secure_cookie}


def cmd_schema(args: argparse.Namespace) -> int:
    from aiotstream.schemas import schema_text

    text = schema_text(args.which)
    if not args.out:
        sys.stdout.write(text)
        return 0
    out_file(args.out, "--out")
    Path(args.out).write_text(text)
    print(f"wrote the {args.which} JSON Schema to {args.out}", file=sys.stderr)
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from aiotstream.audit import read_jsonl, read_kafka, verify

    if args.file and (args.brokers or args.site):
        raise UsageError("give FILE or --brokers/--site, not both")
    if args.file:
        with in_file(args.file, "FILE").open("rb") as f:
            rep = verify(read_jsonl(f))
        where = args.file
    else:
        if not args.site:
            raise UsageError("give FILE (a JSONL export) or --site (and --brokers) to read the audit topic")
        if Path(args.site).exists() or Path(args.site).suffix in (".toml", ".yaml", ".yml", ".json"):
            cfg = _load_site(args)
            brokers, where = args.brokers or ",".join(cfg.inputs.brokers), cfg.audit_topic()
        elif not re.fullmatch(ID_PATTERN, args.site):
            raise UsageError(f"--site {args.site}: neither a site config file nor a site id")
        elif not args.brokers:
            raise UsageError(f"--site {args.site} is a site id: give --brokers too")
        else:
            brokers, where = args.brokers, f"{args.site}.audit"
        rep = verify(read_kafka(brokers, where, _broker_wait(args)))
    if rep.problem is not None:
        print(f"aiotstream audit verify: {where}: broken: {rep.problem}", file=sys.stderr)
        return 1
    if not rep.entries:
        print(f"aiotstream audit verify: {where}: no audit entries", file=sys.stderr)
        return 1
    print(f"{where}: {rep.summary()}")
    return 0


def cmd_auth_hash_password(args: argparse.Namespace) -> int:
    """``auth hash-password``: an argon2 hash of a password read from stdin (asked twice, without echo, on a
    terminal), for a principal's ``password_hash_file`` (console sign-in). The password is never printed."""
    import getpass

    from aiotstream.console.signin import MAX_PASSWORD, hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("the two passwords differ")
    else:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if len(password) < args.min_length:
        raise UsageError(f"the password has {len(password)} characters: give at least {args.min_length} "
                         "(--min-length)")
    if len(password) > MAX_PASSWORD:
        raise UsageError(f"the password is longer than {MAX_PASSWORD} characters")
    print(hash_password(password))
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """Delete the site's Parquet partitions older than their kind's ``[governance] retention``."""
    from datetime import UTC, datetime

    from aiotstream.governance import prune

    cfg = _load_site(args)
    lake = Path(args.lake)
    if not lake.exists():
        raise UsageError(f"--lake {args.lake}: no such directory")
    if not lake.is_dir():
        raise UsageError(f"--lake {args.lake}: is a file; give the lake's directory")
    retention = {k: cfg.governance.retention_s(k) for k in cfg.governance.retention}
    gone = prune(lake, cfg.site.id, retention, datetime.now(UTC), dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for p in gone:
        keep = cfg.governance.retention[p.kind]  # type: ignore[index]
        print(f"{verb} {p.path} ({p.kind}, {p.day.isoformat()}, retention {keep})")
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(cfg.governance.retention.items())) or "none"
    print(f"prune {cfg.site.id}: {verb} {len(gone)} partition(s) in {lake} (retention: {kinds})",
          file=sys.stderr)
    return 0


MAX_SIGN_BYTES = 1 << 20  # a control, feedback or ack message to sign: far less in practice


def cmd_auth_keygen(args: argparse.Namespace) -> int:
    """A new Ed25519 key pair for a principal: ``<dir>/<id>.pem`` (private, mode 0600, encrypted with the
    passphrase file's first line if given) and ``<dir>/<id>.pub`` (for ``public_key_file``)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from aiotstream.config.auth import PRINCIPAL_PATTERN
    from aiotstream.secretfiles import read_secret_bytes

    if not re.fullmatch(PRINCIPAL_PATTERN, args.principal):
        raise UsageError(f"--principal {args.principal!r}: 1..64 of letters, digits, '.', '_', '@', '-'")
    passphrase = None
    if args.passphrase_file:
        passphrase = read_secret_bytes(str(in_file(args.passphrase_file, "--passphrase-file")),
                                       "--passphrase-file")
    d = out_dir(args.out_dir, "--out-dir")
    private, public = d / f"{args.principal}.pem", d / f"{args.principal}.pub"
    for f in (private, public):
        if f.exists() and not args.force:
            raise UsageError(f"--out-dir {args.out_dir}: {f.name} exists (--force replaces it)")
    k = Ed25519PrivateKey.generate()
    enc = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others, not even
    with os.fdopen(fd, "wb") as f:  # for a moment
        os.fchmod(f.fileno(), 0o600)
        f.write(pem)
    public.write_bytes(k.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    print(f"wrote {private} (private key, mode 0600{', encrypted' if passphrase else ''}) and {public}",
          file=sys.stderr)
    print(f'[[auth.principals]]\nid = "{args.principal}"\nroles = []  # operator, engineer, model_admin, '
          f'device, governance, console\npublic_key_file = "{public}"')
    return 0


def cmd_auth_sign(args: argparse.Namespace) -> int:
    """Sign a JSON message (stdin) as a principal; the message with its ``auth`` object on stdout."""
    from aiotstream.auth import load_signing_key, sign
    from aiotstream.config.auth import PRINCIPAL_PATTERN

    for opt, v in (("--principal", args.principal), ("--on-behalf-of", args.on_behalf_of)):
        if v is not None and not re.fullmatch(PRINCIPAL_PATTERN, v):
            raise UsageError(f"{opt} {v!r}: 1..64 of letters, digits, '.', '_', '@', '-'")
    if args.passphrase_file and args.alg != "ed25519":
        raise UsageError("--passphrase-file is for an encrypted Ed25519 key (--alg ed25519)")
    key = load_signing_key(str(in_file(args.key, "--key")), args.alg, "--key",
                           str(in_file(args.passphrase_file, "--passphrase-file")) if args.passphrase_file
                           else None)
    data = sys.stdin.buffer.read(MAX_SIGN_BYTES + 1)
    if len(data) > MAX_SIGN_BYTES:
        raise UsageError(f"the message on stdin is larger than {MAX_SIGN_BYTES // 1024} KiB")
    try:
        msg = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"the message on stdin is not JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise UsageError(f"the message on stdin must be a JSON object, got {type(msg).__name__}")
    acting = args.on_behalf_of or args.principal
    if msg.get("by") is not None and msg["by"] != acting:
        raise UsageError(f"the message says by {str(msg['by'])[:64]!r}; a signed message is by its principal "
                         f"({acting}): leave 'by' out or set it to {acting}")
    try:
        signed = sign(msg, args.principal, key, alg=args.alg, on_behalf_of=args.on_behalf_of)
    except TypeError as exc:
        raise UsageError(f"the message cannot be signed: {exc}") from None
    sys.stdout.buffer.write(orjson.dumps(signed) + b"\n")
    return 0


# ---- the parser -----------------------------------------------------------------------------------------
def _add_auth(sub: Any) -> None:
    a = sub.add_parser("auth", help="signed control, feedback and ack messages, console passwords ([auth], "
                       "docs/security.md)")
    asub = a.add_subparsers(dest="auth_command", required=True)
    k = asub.add_parser("keygen", help="a new Ed25519 key pair for a principal: DIR/ID.pem (private, 0600) "
                        "and DIR/ID.pub (its public_key_file); prints the [[auth.principals]] table")
    k.add_argument("--out-dir", required=True, metavar="DIR", help="where the two files go")
    k.add_argument("--principal", required=True, metavar="ID", help="the principal's id")
    k.add_argument("--passphrase-file", metavar="FILE",
                   help="encrypt the private key with this secret file's first line")
    k.add_argument("--force", action="store_true", help="replace existing key files")
    k.set_defaults(func=cmd_auth_keygen)
    s = asub.add_parser("sign", help="sign a JSON message from stdin as a principal (the signed message on "
                        "stdout)")
    s.add_argument("--principal", required=True, metavar="ID", help="who signs")
    s.add_argument("--key", required=True, metavar="FILE",
                   help="its Ed25519 private key (PEM) or, with --alg hmac-sha256, its HMAC secret file")
    s.add_argument("--alg", choices=("ed25519", "hmac-sha256"), default="ed25519",
                   help="signature algorithm (default ed25519; as the principal's key in [auth])")
    s.add_argument("--passphrase-file", metavar="FILE",
                   help="secret file with the passphrase of an encrypted private key")
    s.add_argument("--on-behalf-of", metavar="ID", help="a console signs for this principal")
    s.set_defaults(func=cmd_auth_sign)
    _add_auth_hash_password(asub)


def _add_auth_hash_password(asub: Any) -> None:
    h = asub.add_parser("hash-password", help="print an argon2 hash of a password read from stdin (its first "
                        "line; asked twice without echo on a terminal): a principal's password_hash_file")
    h.add_argument("--min-length", type=count(1, 1024), default=12,
                   help="refuse a shorter password (default 12 characters)")
    h.set_defaults(func=cmd_auth_hash_password)


def _add_audit(sub: Any) -> None:
    a = sub.add_parser("audit", help="the audit trail: check its hash chains")
    asub = a.add_subparsers(dest="audit_command", required=True)
    v = asub.add_parser("verify", help="check every chain of the audit trail (a JSONL file, or the site's "
                        "<site>.audit topic from the beginning); exit 1 naming the first broken link")
    v.add_argument("file", nargs="?", metavar="FILE", help="audit.jsonl written by the file sink (--out-dir)")
    v.add_argument("--site", help="site config file, or site id (with --brokers): read its audit topic")
    v.add_argument("--brokers", help="Kafka bootstrap servers (default: the site's inputs.brokers)")
    _broker_wait_arg(v)
    v.set_defaults(func=cmd_audit_verify)


def _add_prune(sub: Any) -> None:
    p = sub.add_parser("prune", help="delete the Parquet lake's date partitions older than the site's "
                                     "[governance] retention (by the partition's date, not file times)")
    p.add_argument("--site", required=True, help="site config file (.toml, .yaml/.yml or .json)")
    p.add_argument("--lake", required=True, metavar="DIR",
                   help="the lake's directory ([outputs.parquet] directory: <kind>/site=<id>/date=<day>/)")
    p.add_argument("--dry-run", action="store_true", help="print what would be removed; remove nothing")
    p.set_defaults(func=cmd_prune)


def _add_schema(sub: Any) -> None:
    from aiotstream.schemas import NAMES

    s = sub.add_parser("schema", help="print the JSON Schema of the output records or of the site config")
    s.add_argument("which", choices=NAMES, help="outputs: every output record (by its schema field); site: a "
                   "site config file")
    s.add_argument("--out", metavar="FILE", help="write it to FILE instead of stdout")
    s.set_defaults(func=cmd_schema)


def _add_validate(sub: Any) -> None:
    v = sub.add_parser("validate",
                       help="check site config files; print every bad field's path (exit 2 if any)")
    v.add_argument("files", nargs="+", metavar="FILE")
    v.set_defaults(func=cmd_validate)


def _add_broker(sub: Any) -> None:
    b = sub.add_parser("broker", help="run the development Kafka-protocol broker (Tansu) on loopback")
    b.add_argument("--port", type=port, default=9092, help="0 picks a free port (default 9092)")
    b.set_defaults(func=cmd_broker)


def _broker_wait_arg(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--broker-wait", type=number(0, 3600, above=True), metavar="S",
                    help="seconds to wait for a Kafka broker to answer at start (default 10: "
                         "aiotstream.io.kafka.BROKER_WAIT_S)")


def _broker_wait(args: argparse.Namespace) -> float:
    from aiotstream.io.kafka import BROKER_WAIT_S

    return BROKER_WAIT_S if args.broker_wait is None else float(args.broker_wait)


def _sim_args(sp: argparse.ArgumentParser, duration: float) -> None:
    sp.add_argument("--duration", type=number(0, 86_400, above=True), default=duration,
                    help="seconds of event time (up to a day)")
    sp.add_argument("--faults", type=count(0, 100_000), default=3,
                    help="faults to inject (each on its own asset)")
    sp.add_argument("--malformed", type=count(0, 10_000_000), default=0, help="malformed messages to mix in")
    sp.add_argument("--seed", type=count(0, 2**32 - 1), default=7)


def _scenario_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--scenario", choices=("easy", "realistic"), default="easy",
                    help="easy (default): stationary noise plus faults; realistic: load cycles and regimes, "
                         "sensor drift, noise bursts, dropouts, maintenance resets "
                         "(aiotstream.sim.realistic)")
    sp.add_argument("--amplitude", type=number(0, 10, above=True), default=None,
                    help="fault size relative to easy's (default: 1 for easy, 0.25 for realistic)")
    sp.add_argument("--day-s", type=number(0, 10 * 86_400, above=True), default=None, metavar="S",
                    help="realistic: length of a day of the load cycles, in seconds of event time (default "
                         "86400; shorter compresses the daily and weekly cycles into the run)")


def _add_simulate(sub: Any) -> None:
    s = sub.add_parser("simulate", help="simulate a plant into Kafka or files, with ground truth")
    s.add_argument("--site", help="site config (default: the embedded demo plant)")
    s.add_argument("--assets", type=count(1, 100_000), default=5, help="assets when no --site is given")
    s.add_argument("--brokers", help="bootstrap servers (default: the site's inputs.brokers)")
    s.add_argument("--partitions", type=count(1, 1024), default=3,
                   help="partitions for input topics it creates; each asset goes to the partition whose "
                        "reader owns it in a cluster whose worker count divides the topic's partitions "
                        "(aiotstream.routing)")
    s.add_argument("--out-dir", help="write waveforms.bin, readings.jsonl, truth.json here instead of Kafka")
    s.add_argument("--file-partitions", type=count(0, 1024), default=0, metavar="P",
                   help="with --out-dir: waveforms-part<k>.bin and readings-part<k>.jsonl for k < P, each "
                        "asset in the partition whose reader owns it in a cluster whose worker "
                        "count divides P")
    s.add_argument("--truth", help="also write the ground truth JSON here")
    _sim_args(s, 60.0)
    _scenario_args(s)
    _broker_wait_arg(s)
    s.set_defaults(func=cmd_simulate)


def _lineage_arg(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--lineage-file", metavar="FILE",
                    help="append OpenLineage run events (START, COMPLETE/FAIL) to this JSONL file "
                         "(instead of the site's [lineage] transport)")


def _flow_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--brokers", help="Kafka bootstrap servers (default: the site's inputs.brokers)")
    sp.add_argument("--out-dir", help="write outputs as JSONL files instead of Kafka topics")
    sp.add_argument("--parquet-dir", help="also write scores/KPIs as Parquet here (site=/date= partitions)")
    _lineage_arg(sp)
    sp.add_argument("-w", "--workers", type=count(1, 1024), default=1, help="workers per process")
    sp.add_argument("-i", "--process-id", type=count(0, 1023),
                    help="this process's id in a cluster (with -a)")
    sp.add_argument("-a", "--addresses", help="all processes' host:port, separated by ';'")
    sp.add_argument("--epoch-s", type=number(0, 3600, above=True), default=1.0,
                    help="Bytewax epoch length in seconds (default 1): how often progress is committed; with "
                         "--recovery the snapshot interval. Outputs do not wait for it (the same latency was "
                         "measured at 0.02 s and 1 s)")
    sp.add_argument("--recovery", metavar="DIR",
                    help="keep input offsets and all state in recovery partitions here; resume from them")
    sp.add_argument("--recovery-partitions", type=count(1, 100_000),
                    help="partitions to create in a new recovery dir (default: workers x processes)")
    sp.add_argument("--backup-s", type=number(0, 10 * 365 * 86_400), default=0.0,
                    help="keep superseded snapshots this long (set to your off-machine backup interval)")
    sp.add_argument("--metrics-port", type=port, metavar="PORT",
                    help="serve Prometheus /metrics and the /healthz, /readyz probes on this port while the "
                         "flow runs (0: a free one, logged; default: off)")
    sp.add_argument("--metrics-host", metavar="HOST",
                    help="address the metrics server listens on (default 127.0.0.1; 0.0.0.0 in a pod)")
    _broker_wait_arg(sp)


def _add_run(sub: Any) -> None:
    r = sub.add_parser("run", help="run the flow for a site from its [inputs] (kafka, mqtt, opcua or files)")
    r.add_argument("--site", required=True, help="site config file (.toml, .yaml/.yml or .json)")
    r.add_argument("--once", action="store_true",
                   help="stop at the end of the input topics instead of tailing")
    _flow_args(r)
    r.set_defaults(func=cmd_run)


def _add_replay(sub: Any) -> None:
    rp = sub.add_parser("replay",
                        help="replay CSV/JSONL/Parquet/frame files through the flow, paced by event time")
    rp.add_argument("files", nargs="+", metavar="FILE", help="files or globs")
    rp.add_argument("--site", required=True,
                    help="site config file (its [inputs.files] gives columns/format)")
    rp.add_argument("--speed", type=number(0, 1e6), default=0.0,
                    help="0: as fast as possible (default); 1: real time; N: N x")
    rp.add_argument("--format", choices=["auto", "csv", "jsonl", "parquet", "frames"],
                    help="default: by extension")
    rp.add_argument("--payload",
                    help="format of JSONL lines without [inputs.files.columns] (json, gateway-json, ...)")
    _flow_args(rp)
    rp.set_defaults(func=cmd_replay)


@_serving_metrics
def cmd_detect(args: argparse.Namespace) -> int:
    """A historian export through the flow's streaming detector (see :mod:`aiotstream.detect`)."""
    from aiotstream.detect import detect_file, terminal_progress, write_detection

    values = [c.strip() for c in args.value_columns.split(",") if c.strip()]
    out = Path(args.out)
    if out.is_dir():
        raise AiotError(f"--out {out}: is a directory; name the output file (.csv or .parquet)")
    if not out.parent.is_dir():
        raise AiotError(f"--out {out}: directory {out.parent} does not exist")
    _start_metrics(args, None)
    d = detect_file(args.file, args.timestamp_column, values, args.asset_column,
                    progress=None if args.quiet else terminal_progress())
    write_detection(d, out, args.asset_column)
    opened = sum(1 for a in d.alerts if a.get("event") == "opened")
    print(f"aiotstream detect: {len(d):,} rows, {int(d.alert.sum()):,} with an alert open, {opened} alert(s) "
          f"opened; wrote {out}")
    return 0


def _add_detect(sub: Any) -> None:
    d = sub.add_parser("detect", help="score a CSV/Parquet export through the flow's streaming detector: "
                                      "timestamp, anomaly_score, alert per row")
    d.add_argument("file", metavar="FILE", help="CSV (any of , ; tab |) or Parquet")
    d.add_argument("--timestamp-column", required=True, metavar="T",
                   help="event time: ISO 8601 text, a timestamp column, or numbers since the epoch (s, ms, "
                        "us or ns, by their size)")
    d.add_argument("--value-columns", required=True, metavar="A,B,C", help="the channels, comma-separated")
    d.add_argument("--asset-column", default=None, help="one detector per asset (default: one asset)")
    d.add_argument("--out", required=True, metavar="OUT", help="OUT.csv, or OUT.parquet")
    d.add_argument("--quiet", action="store_true", help="no progress line on a terminal")
    d.add_argument("--metrics-port", type=port, metavar="PORT",
                   help="serve Prometheus /metrics and the /healthz, /readyz probes on this port while the "
                        "file is scored (0: a free one, logged; default: off)")
    d.add_argument("--metrics-host", metavar="HOST", help="address the metrics server listens on (default "
                                                         "127.0.0.1)")
    d.set_defaults(func=cmd_detect)


def _add_demo(sub: Any) -> None:
    d = sub.add_parser("demo", help="simulator -> flow -> ./out/*.jsonl, with a detection summary")
    d.add_argument("--assets", type=count(1, 10_000), default=5)
    d.add_argument("--out", default="out")
    _sim_args(d, 90.0)
    d.add_argument("--features", default="vibration-basic", help="feature set (default vibration-basic)")
    d.set_defaults(func=cmd_demo, malformed=200)


def _add_evaluate(sub: Any) -> None:
    e = sub.add_parser("evaluate",
                       help="detection figures (point-wise F1/FAR/MAR as SKAB, event recall/precision, "
                            "delay, false alerts per asset per day, a plot of the worst cases) for a "
                            "labelled CSV/Parquet file or a simulator run through the flow")
    e.add_argument("file", nargs="?", metavar="FILE", help="labelled CSV (',' or ';') or Parquet file")
    e.add_argument("--timestamp-column", metavar="T", help="FILE: the time column")
    e.add_argument("--value-columns", metavar="A,B", help="FILE: the sensor columns, comma-separated")
    e.add_argument("--label-column", default="anomaly", help="FILE: the 0/1 label column (default anomaly)")
    e.add_argument("--timestamp-unit", choices=("ns", "us", "ms", "s", "iso"), default="s",
                   help="FILE: unit of a numeric time column (default s; time text and Parquet timestamps "
                        "are read as they are)")
    e.add_argument("--delimiter", help="FILE: CSV delimiter (default: ';' or ',', from the header line)")
    e.add_argument("--predictions", metavar="PRED.csv",
                   help="FILE: the output of `aiotstream detect` for FILE (timestamp, anomaly_score, alert); "
                        "default: run the default detector here")
    e.add_argument("--simulate", choices=("easy", "realistic"),
                   help="evaluate a simulator run of this scenario")
    e.add_argument("--assets", type=count(1, 10_000), default=5, help="--simulate: assets (default 5)")
    e.add_argument("--site", help="--simulate: a site config whose assets, model and alert rules to evaluate "
                                  "(an ONNX site's champion, say); default: the built-in site of --assets "
                                  "assets")
    e.add_argument("--spec", type=_spec_item, action="append", metavar="KEY=VALUE",
                   help="--simulate realistic: one of the scenario's numbers (aiotstream.sim.realistic."
                        "RealisticSpec), e.g. drift_fraction=0.3 or regimes=[1.0]; repeatable")
    e.add_argument("--duration-s", type=number(0, 86_400, above=True), default=120.0,
                   help="--simulate: seconds of event time (default 120)")
    e.add_argument("--faults", type=count(0, 10_000), help="--simulate: faults, one per asset (default: half "
                                                           "the assets)")
    e.add_argument("--amplitude", type=number(0, 10, above=True),
                   help="--simulate: fault size relative to easy's (default 1 for easy, 0.25 for realistic)")
    e.add_argument("--day-s", type=number(0, 10 * 86_400, above=True), metavar="S",
                   help="--simulate realistic: length of a day of the load cycles (default 86400)")
    e.add_argument("--seed", type=count(0, 2**32 - 1), default=7)
    e.add_argument("--out", default="evaluate-out", help="--simulate: the flow's outputs go here "
                                                         "(default evaluate-out)")
    e.add_argument("--tolerance-s", type=number(0, 3600), default=5.0,
                   help="--simulate: an alert up to this long after a fault's end still belongs to it "
                        "(default 5)")
    e.add_argument("--max-delay-s", type=number(0, 86_400),
                   help="a fault counts as detected only if an alert opens by onset + this (default: "
                        "anywhere in the fault)")
    e.add_argument("--reset-window-s", type=number(0, 86_400), default=600.0,
                   help="--simulate: alerts opened up to this long after a maintenance reset count against "
                        "it (default 600)")
    e.add_argument("--json", metavar="OUT.json", help="write every figure as JSON here")
    e.add_argument("--plot", default="evaluate.png", metavar="PNG",
                   help="the worst cases as a PNG (default evaluate.png)")
    e.add_argument("--no-plot", action="store_true", help="no plot")
    e.set_defaults(func=cmd_evaluate, malformed=0)


def _add_bench(sub: Any) -> None:
    bench = sub.add_parser("bench", help="benchmarks (run by hand; results go to benchmarks/)")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, metavar="{kernels,e2e}")
    bk = bench_sub.add_parser("kernels",
                              help="feature kernels vs numpy twin vs best numpy vs memory bandwidth "
                                   "(samples/s and ratios, one thread, one run)")
    bk.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    bk.add_argument("--windows", type=count(1, 10_000_000), default=20_000,
                    help="windows per set (default 20,000)")
    bk.add_argument("--samples", type=count(2, 1 << 20), default=1024,
                    help="samples per window (default 1024)")
    bk.add_argument("--repeat", type=count(1, 1000), default=5,
                    help="interleaved rounds; the best counts (default 5)")
    bk.add_argument("--scalar-updates", type=count(1, 1_000_000_000), default=200_000,
                    help="scalar-basic updates (default 200,000)")
    bk.set_defaults(func=cmd_bench_kernels)
    be = bench_sub.add_parser("e2e", add_help=False, prefix_chars="\0",
                              help="flows and peers (Bytewax per item, Quix Streams, numpy batch) side by "
                                   "side on one broker: throughput, latency, scaling, memory; --help "
                                   "for its options")
    be.add_argument("e2e_args", nargs="*", help="options of benchmarks/e2e.py (see --help)")
    be.set_defaults(func=cmd_bench_e2e)
    bm = bench_sub.add_parser("mqtt", add_help=False, prefix_chars="\0",
                              help="MQTT ingest against a bare paho subscriber (throughput, QoS 0 and 1), or "
                                   "the live burst scenario (burst); --help for its options")
    bm.add_argument("mqtt_args", nargs="*", help="options of benchmarks/mqtt.py (see --help)")
    bm.set_defaults(func=cmd_bench_mqtt)


def _add_train(sub: Any) -> None:
    t = sub.add_parser("train",
                       help="train the default ONNX models (IsolationForest; autoencoder float + int8) on "
                            "healthy simulator data and publish them, signed, to a model registry")
    t.add_argument("--site", required=True,
                   help="site config: its assets' channels and feature set give the columns")
    t.add_argument("--registry", required=True,
                   help="registry directory (<name>/<version>/model.onnx + manifest)")
    t.add_argument("--name", required=True, help="model name")
    t.add_argument("--version", required=True,
                   help="version V: publishes V, V-ae and V-int8 (never overwritten)")
    t.add_argument("--signing-key", help="Ed25519 private key (PEM, may be encrypted) to sign the manifests "
                                         "with")
    t.add_argument("--signing-key-passphrase-file", metavar="FILE",
                   help="secret file whose first line is the passphrase of an encrypted --signing-key")
    t.add_argument("--new-key", metavar="DIR", help="make a new Ed25519 key pair in DIR and sign with it")
    t.add_argument("--hmac-key-file", help="sign with HMAC-SHA256 using the secret in this file instead")
    t.add_argument("--unsigned", action="store_true", help="publish unsigned (development only)")
    _lineage_arg(t)
    t.add_argument("--assets", type=count(1, 100_000),
                   help="train on the first N assets of the site (default: all)")
    t.add_argument("--duration", type=number(0, 86_400, above=True), default=120.0,
                   help="seconds of healthy simulated data (default 120)")
    t.add_argument("--seed", type=count(0, 2**32 - 1), default=0, help="simulator and model seed (default 0)")
    t.add_argument("--trees", type=count(1, 100_000), default=100, help="IsolationForest trees (default 100)")
    t.add_argument("--dataset", metavar="ID", help="train on the healthy windows of this recorded dataset "
                                                   "(`aiotstream dataset create`) instead of simulator data")
    t.add_argument("--datasets", metavar="DIR", help="the dataset store that holds --dataset")
    t.set_defaults(func=cmd_train)


def _add_console(sub: Any) -> None:
    c = sub.add_parser("console",
                       help="the operator's web console for a site: alerts, commands, models, KPIs")
    c.add_argument("--site", required=True, help="site config file (.toml, .yaml/.yml or .json)")
    c.add_argument("--brokers", help="Kafka bootstrap servers (default: the site's inputs.brokers)")
    c.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    c.add_argument("--port", type=port, default=8080, help="TCP port (default 8080; 0 picks a free one)")
    c.add_argument("--refresh-s", type=number(0.2, 3600), default=2.0,
                   help="how often an open page refreshes its tables (default 2 s)")
    c.add_argument("--registry", metavar="DIR",
                   help="model registry whose versions get a model card page (/models/<name>/<version>; "
                        "default: an ONNX site's model.onnx.registry)")
    a = c.add_argument_group("sign-in and signing (sites with [auth]; see docs/console.md)")
    a.add_argument("--principal", default="console", metavar="ID",
                   help="the console's own principal in [auth] (role console; default 'console'): it signs "
                        "every action on behalf of the signed-in user")
    a.add_argument("--key", metavar="FILE",
                   help="the console principal's signing key: its Ed25519 private key (PEM; from `aiotstream "
                        "auth keygen`) or, for an HMAC principal, its secret file. Required with [auth]")
    a.add_argument("--key-passphrase-file", metavar="FILE", help="passphrase of an encrypted --key")
    a.add_argument("--session-secret-file", metavar="FILE",
                   help="signs the session cookie (first line, at least 32 bytes); default: a new random "
                        "secret at each start (a restart signs everybody out either way)")
    a.add_argument("--secure-cookie", action="store_true",
                   help="send the session cookie over HTTPS only (behind a TLS proxy)")
    _broker_wait_arg(c)
    c.set_defaults(func=cmd_console)


def _add_retrain(sub: Any) -> None:
    r = sub.add_parser("retrain", help="the model loop: retrain on drift from recorded data, judge the "
                                       "candidate in shadow and canary, promote or roll back "
                                       "([model.onnx.loop])")
    r.add_argument("--site", required=True, help="site config file with [model.onnx.loop]")
    r.add_argument("--brokers", help="Kafka bootstrap servers (default: the site's inputs.brokers)")
    r.add_argument("--principal", default="model-loop",
                   help="who the promotions are from (with [auth]: a principal with the model_admin role)")
    r.add_argument("--key", help="with [auth]: the principal's signing key (Ed25519 PEM, or the HMAC secret "
                                 "file with --alg hmac-sha256)")
    r.add_argument("--alg", choices=("ed25519", "hmac-sha256"), default="ed25519",
                   help="the signing key's algorithm (default ed25519)")
    r.add_argument("--signing-key", help="Ed25519 private key (PEM) the trained models are signed with")
    r.add_argument("--state", help="state file (JSON): a restarted service resumes the loop it was in")
    r.add_argument("--candidate", metavar="VERSION",
                   help="judge this published version (shadow, canary, verdict) without training one")
    r.add_argument("--once", action="store_true", help="exit when one loop has ended (a Kubernetes Job)")
    _broker_wait_arg(r)
    r.set_defaults(func=cmd_retrain)


def cmd_retrain(args: argparse.Namespace) -> int:
    """The model loop service (aiotstream.retrain)."""
    from aiotstream import auth
    from aiotstream.models.registry import ModelRegistry, load_signing_key
    from aiotstream.retrain import run_service

    cfg = _load_site(args)
    o = cfg.model.onnx
    if o is None or o.loop is None:
        raise UsageError(f"site {cfg.site.id} has no [model.onnx.loop] table (model.kind = \"onnx\" with "
                         "[model.onnx.loop] datasets = \"<dir>\")")
    brokers = args.brokers or ",".join(cfg.inputs.brokers)
    if cfg.auth is not None:
        if not args.key:
            raise UsageError("the site has [auth]: give --principal and --key (a model_admin's signing key) "
                             "so the flow accepts the loop's promotions")
        key = auth.load_signing_key(args.key, args.alg, "--key")

        def signer(msg: dict[str, Any]) -> dict[str, Any]:
            return auth.sign(msg, args.principal, key, alg=args.alg)
    else:
        def signer(msg: dict[str, Any]) -> dict[str, Any]:
            return msg
    from aiotstream.models.scoring import hmac_key_of

    hmac_key = hmac_key_of(o)
    signing_key = load_signing_key(Path(in_file(args.signing_key, "--signing-key"))) if args.signing_key \
        else None
    if signing_key is None and hmac_key is None and not o.allow_unsigned:
        raise UsageError("the site refuses unsigned models: give --signing-key (or set "
                         "model.onnx.hmac_key_env)")
    from aiotstream.datasets import DatasetStore

    registry = ModelRegistry(o.registry, verify_key=o.verify_key, hmac_key=hmac_key,
                             allow_unsigned=o.allow_unsigned, datasets=DatasetStore(o.loop.datasets))
    loop = run_service(cfg, brokers=brokers, registry=registry, signer=signer, principal=args.principal,
                       signing_key=signing_key, hmac_key=hmac_key,
                       state_path=out_file(args.state, "--state") if args.state else None,
                       candidate=args.candidate, once=args.once, broker_wait_s=_broker_wait(args))
    for ev in list(loop.finished)[len(loop.finished) - min(loop.ended, len(loop.finished)):]:
        keys = ("event", "candidate", "champion", "reason", "dataset")
        print(orjson.dumps({k: ev.get(k) for k in keys}).decode())
    return 0


def _add_model(sub: Any) -> None:
    m = sub.add_parser("model", help="model versions in a registry: their cards")
    msub = m.add_subparsers(dest="model_command", required=True, metavar="COMMAND")
    c = msub.add_parser("card", help="a model version's card: its data, gate, canary verdicts and the "
                                     "one-line answer to why it is live (Markdown, or --json)")
    c.add_argument("ref", metavar="NAME@VERSION", help="the model version, e.g. pm@1.0.0+d3fa2c1d0e9b8-ae")
    c.add_argument("--registry", required=True, help="registry directory")
    c.add_argument("--datasets", help="dataset store, to describe the dataset the model was trained on")
    c.add_argument("--json", action="store_true", help="the card as JSON")
    c.set_defaults(func=cmd_model_card)


def cmd_model_card(args: argparse.Namespace) -> int:
    """Print a model card (aiotstream.models.card): from the manifest as stored, the card log, the dataset."""
    from aiotstream.models.card import CardLog, card_markdown, model_card
    from aiotstream.models.registry import ModelRegistry

    name, sep, version = args.ref.rpartition("@")
    if not sep or not name or not version:
        raise UsageError(f"{args.ref!r}: give the model as NAME@VERSION")
    in_dir(args.registry, "--registry")
    manifest = ModelRegistry(args.registry, allow_unsigned=True).manifest(name, version)
    dataset = None
    ds_id = manifest.extra.get("dataset") if isinstance(manifest.extra, dict) else None
    if args.datasets and isinstance(ds_id, str):
        from aiotstream.datasets import DatasetStore

        store = DatasetStore(in_dir(args.datasets, "--datasets"))
        dataset = store.get(ds_id).to_dict() if store.exists(ds_id) else None
    card = model_card(manifest, dataset=dataset, events=CardLog(args.registry).events(name, version))
    print(orjson.dumps(card, option=orjson.OPT_INDENT_2).decode() if args.json else card_markdown(card))
    return 0


SUBCOMMANDS: list[Callable[[Any], None]] = [_add_validate, _add_broker, _add_simulate, _add_run, _add_replay,
                                            _add_detect, _add_demo, _add_evaluate, _add_bench, _add_train,
                                            _add_console, _add_schema, _add_audit, _add_prune, _add_auth,
                                            _add_retrain, _add_model]
"""Each registers one subcommand on the subparsers object; a new subcommand adds its function here."""


# ---- aiotstream dataset (issue #20: recorded data as versioned datasets) ----------------------------------
def _dataset_store(args: argparse.Namespace, create: bool = False) -> Any:
    from aiotstream.datasets import DatasetStore

    if create:
        return DatasetStore(out_dir(args.datasets, "--datasets"))
    p = Path(args.datasets)
    if p.exists() and not p.is_dir():
        raise UsageError(f"--datasets {args.datasets}: is a file; give the datasets' directory")
    return DatasetStore(p)


def _dataset_time(text: str | None, what: str) -> int | None:
    from aiotstream.datasets import parse_time_ns

    if text is None:
        return None
    try:
        return parse_time_ns(text)
    except ValueError as exc:
        raise UsageError(f"{what} {exc}") from None


def _dataset_row(m: Any) -> list[str]:
    y = m.labels["y"]
    tr = m.time_range
    return [m.id, m.created, m.site, str(m.rows["score"]), str(m.rows.get("alert", 0)), str(len(m.assets)),
            f"{tr['start']} .. {tr['end']}", f"{y['1']}/{y['0']}/{y['-1']}", m.note]


def _print_table(head: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _print_json(obj: Any) -> None:
    print(orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())


def _print_manifest(m: Any) -> None:
    from aiotstream.lineage import iso_ns

    sel = m.selection
    print(f"dataset {m.id} (site {m.site}, created {m.created}{', note: ' + m.note if m.note else ''})")
    print(f"  selection: assets {', '.join(sel['assets']) if sel['assets'] else 'all'}; window start in "
          f"[{iso_ns(sel['start_ns']) if sel['start_ns'] is not None else '-inf'}, "
          f"{iso_ns(sel['end_ns']) if sel['end_ns'] is not None else '+inf'}); lake {sel['lake']}")
    print(f"  rows: {m.rows['score']} score, {m.rows.get('alert', 0)} alert (duplicates dropped: "
          f"{m.duplicates_dropped.get('score', 0)} score, {m.duplicates_dropped.get('alert', 0)} alert)")
    print(f"  time: {m.time_range['start']} .. {m.time_range['end']}")
    print(f"  assets: {', '.join(f'{a} ({n})' for a, n in m.assets.items())}")
    print(f"  features ({len(m.feature_columns)}): {', '.join(m.feature_columns)}")
    lab = m.labels
    print(f"  labels ({lab['rule']}): " + ", ".join(f"{k} {v}" for k, v in lab["counts"].items()) +
          ("" if lab["alerts_recorded"] else "; the lake has no alert records: every window counts as "
                                               "healthy"))
    for name, f in m.files.items():
        print(f"  {name}: {f['rows']} rows, {f['bytes']} bytes, sha256 {f['sha256']}")
    print(f"  classification: {m.classification}")


def cmd_dataset_create(args: argparse.Namespace) -> int:
    """Copy a selection of the lake's score windows (and the alerts that label them) into a new dataset."""
    from aiotstream.ids import is_valid_id

    store = _dataset_store(args, create=True)
    lake = Path(args.lake)
    if not lake.is_dir():
        raise UsageError(f"--lake {args.lake}: no such directory (give the [outputs.parquet] directory)")
    site = args.site
    if Path(site).is_file():
        site = SiteConfig.load(site).site.id
    elif not is_valid_id(site):
        raise UsageError(f"--site {site!r}: neither a site config file nor a site id")
    start, end = _dataset_time(args.start, "--from"), _dataset_time(args.end, "--to")
    m = store.create(lake, site=site, assets=args.asset, start_ns=start, end_ns=end, note=args.note)
    if args.json:
        _print_json(m.to_dict())
    else:
        _print_manifest(m)
    return 0


def cmd_dataset_list(args: argparse.Namespace) -> int:
    """The datasets of a store, oldest first."""
    ms = _dataset_store(args).list()
    if args.json:
        _print_json([m.to_dict() for m in ms])
    else:
        _print_table(["id", "created", "site", "scores", "alerts", "assets", "time", "y 1/0/-1", "note"],
                     [_dataset_row(m) for m in ms])
    return 0


def cmd_dataset_show(args: argparse.Namespace) -> int:
    """A dataset's manifest (as stored, not verified: ``dataset verify`` checks it)."""
    store = _dataset_store(args)
    m = store.get(store.resolve(args.id))
    if args.json:
        _print_json(m.to_dict())
    else:
        _print_manifest(m)
    return 0


def cmd_dataset_diff(args: argparse.Namespace) -> int:
    """What differs between two datasets (rows, time range, assets, columns, schema, labels)."""
    store = _dataset_store(args)
    d = store.diff(store.resolve(args.a), store.resolve(args.b))
    if args.json:
        _print_json(d)
        return 0
    print(f"{d['a']} -> {d['b']}{' (the same dataset)' if d['same'] else ''}")
    for k, r in d["rows"].items():
        print(f"  {k} rows: {r['a']} -> {r['b']} ({r['change']:+d})")
    ta, tb = d["time_range"]["a"], d["time_range"]["b"]
    print(f"  time: {ta['start']} .. {ta['end']} -> {tb['start']} .. {tb['end']}")
    a = d["assets"]
    print(f"  assets: added {a['added'] or 'none'}, removed {a['removed'] or 'none'}, rows changed "
          f"{a['rows_changed'] or 'none'}")
    cols = d["columns"]
    print(f"  feature columns: added {cols['added'] or 'none'}, removed {cols['removed'] or 'none'}")
    print(f"  schema: {d['schema'] or 'same'}")
    print(f"  labels: {d['labels']['a']} -> {d['labels']['b']}")
    return 0


def cmd_dataset_verify(args: argparse.Namespace) -> int:
    """Rehash every file of a dataset and recompute its id (exit 1 naming the file that changed)."""
    store = _dataset_store(args)
    m = store.verify(store.resolve(args.id))
    if args.json:
        _print_json({"id": m.id, "ok": True, "files": m.files})
    else:
        print(f"dataset {m.id}: ok ({len(m.files)} file(s) rehashed, id recomputed)")
    return 0


def cmd_dataset_prune(args: argparse.Namespace) -> int:
    """Delete datasets older than --older-than that no model in the --registry directories names."""
    from aiotstream.config.governance import retention_seconds
    from aiotstream.datasets import referenced
    from aiotstream.models.registry import ModelRegistry

    try:
        older = retention_seconds(args.older_than)
    except ValueError as exc:
        raise UsageError(f"--older-than {exc}") from None
    if older is None:
        raise UsageError("--older-than forever: nothing would ever be pruned; give a duration such as 90d")
    keep: set[str] = set()
    for r in args.registry:
        if not Path(r).is_dir():
            raise UsageError(f"--registry {r}: no such directory")
        keep |= referenced(ModelRegistry(r, allow_unsigned=True))
    store = _dataset_store(args)
    gone = store.prune(time.time_ns(), older, keep, dry_run=args.dry_run)
    if args.json:
        _print_json({"removed": gone, "dry_run": args.dry_run, "kept_referenced": sorted(keep)})
    else:
        verb = "would remove" if args.dry_run else "removed"
        for i in gone:
            print(f"{verb} {store.root / i}")
        print(f"dataset prune: {verb} {len(gone)} dataset(s) older than {args.older_than} in {store.root}; "
              f"{len(keep)} named by models kept", file=sys.stderr)
    return 0


def _add_dataset(sub: Any) -> None:
    d = sub.add_parser("dataset", help="recorded data as versioned datasets: content-addressed, immutable "
                                       "copies of the Parquet lake's score windows with operator labels")
    ds = d.add_subparsers(dest="dataset_command", required=True, metavar="COMMAND")

    def common(p: Any) -> None:
        p.add_argument("--datasets", required=True, metavar="DIR", help="the dataset store's directory")
        p.add_argument("--json", action="store_true", help="print JSON instead of a readable summary")

    c = ds.add_parser("create", help="copy a selection of the lake (site, assets, window time) into a "
                                     "dataset (the same selection of the same data gives the same id)")
    common(c)
    c.add_argument("--lake", required=True, metavar="DIR", help="the lake ([outputs.parquet] directory)")
    c.add_argument("--site", required=True, help="site id, or the site config file")
    c.add_argument("--asset", action="append", metavar="ID", help="an asset to keep (repeat; default: all)")
    c.add_argument("--from", dest="start", metavar="TIME",
                   help="first window start (ISO 8601, UTC unless an offset is given, or ns); default: open")
    c.add_argument("--to", dest="end", metavar="TIME", help="windows must start before this (exclusive)")
    c.add_argument("--note", default="", help="a note kept in the manifest (not part of the id)")
    c.set_defaults(func=cmd_dataset_create)
    ls = ds.add_parser("list", help="the store's datasets, oldest first")
    common(ls)
    ls.set_defaults(func=cmd_dataset_list)
    sh = ds.add_parser("show", help="a dataset's manifest")
    common(sh)
    sh.add_argument("id", help="dataset id (or its first 6+ hex digits)")
    sh.set_defaults(func=cmd_dataset_show)
    df = ds.add_parser("diff", help="what differs between two datasets")
    common(df)
    df.add_argument("a", help="dataset id")
    df.add_argument("b", help="dataset id")
    df.set_defaults(func=cmd_dataset_diff)
    v = ds.add_parser("verify", help="rehash every file and recompute the id (exit 1 naming what changed)")
    common(v)
    v.add_argument("id", help="dataset id (or its first 6+ hex digits)")
    v.set_defaults(func=cmd_dataset_verify)
    pr = ds.add_parser("prune", help="delete datasets older than --older-than unless a model names them")
    common(pr)
    pr.add_argument("--older-than", required=True, metavar="DURATION",
                    help="age by the manifest's created time: '90d', '36h', ... (as [governance] retention)")
    pr.add_argument("--registry", action="append", required=True, metavar="DIR",
                    help="a model registry whose models' datasets are kept (repeat for several)")
    pr.add_argument("--dry-run", action="store_true", help="print what would be removed; remove nothing")
    pr.set_defaults(func=cmd_dataset_prune)


SUBCOMMANDS.append(_add_dataset)


class _Version(argparse.Action):
    """``--version``: ``aiotstream 0.1.0+g<commit>`` (asks git only when used)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(f"aiotstream {code_version()}")
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    p = ArgParser(prog="aiotstream", description=__doc__.splitlines()[0])
    p.add_argument("--version", action=_Version, help="print the package version and the build's git commit")
    p.add_argument("--log-level", choices=logs.LEVELS, default=os.environ.get("AIOTSTREAM_LOG_LEVEL", "info"),
                   help="aiotstream's own log lines from this level up, on stderr (default info, or "
                   "$AIOTSTREAM_LOG_LEVEL); other libraries print warnings and errors only")
    p.add_argument("--log-format", choices=logs.FORMATS, default="text",
                   help="text (default): time, level, logger, message; json: one object per line")
    sub = p.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return p


def _config_error_text(exc: ConfigError) -> str:
    """A config error: one line when there is one problem, else the problems one per line (``validate``)."""
    if len(exc.problems) == 1:
        path, msg = exc.problems[0]
        return f"{exc.source}: {path}: {msg}"
    return str(exc)


_STOP_NOTES = {
    "run": " before the flow started: nothing was read or written",
    "replay": " before the flow started: nothing was read or written",
    "demo": " before the flow started: nothing was read or written",
    "simulate": ": what was written so far stays (topics or --out-dir)",
    "train": ": nothing was published (a model is published only when complete)",
}
"""What a signal outside a flow leaves behind, by command (during a flow, execute_flow says it)."""


def main(argv: list[str] | None = None) -> int:
    from aiotstream.io.stop import exit_code, raise_on_sigterm

    if threading.current_thread() is threading.main_thread():
        raise_on_sigterm()
    parser = build_parser()
    args = parser.parse_args(argv)
    name = args.command + "".join(f" {getattr(args, f'{group}_command')}"
                                  for group in ("bench", "audit", "auth", "dataset", "model")
                                  if getattr(args, f"{group}_command", None))
    if args.log_level not in logs.LEVELS:  # a default from the environment escapes argparse's choices
        parser.error(f"AIOTSTREAM_LOG_LEVEL={args.log_level!r}: choose from {', '.join(logs.LEVELS)}")
    undo_logs = logs.configure(args.log_level, args.log_format)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(_config_error_text(exc), file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"aiotstream {name}: {exc} (see aiotstream {name} --help)", file=sys.stderr)
        return 2
    except AiotError as exc:
        print(f"aiotstream: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}",
              file=sys.stderr)
        return 1
    # SIGINT or SIGTERM before or after a flow (during one, see execute_flow)
    except KeyboardInterrupt as exc:
        signum = int(getattr(exc, "signum", signal.SIGINT))
        note = _STOP_NOTES.get(args.command, "")
        print(f"aiotstream {name}: stopped ({signal.Signals(signum).name}){note}", file=sys.stderr)
        return exit_code(signum)
    except OSError as exc:
        if _debug():
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"aiotstream {name}: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except Exception as exc:  # the last resort: one line, never a traceback (unless debugging)
        if _debug():
            raise
        print(f"aiotstream {name}: internal error: {_root_cause(exc)} (set {DEBUG_ENV}=1 for the traceback; "
              "please report it)", file=sys.stderr)
        return 1
    finally:
        undo_logs()


if __name__ == "__main__":  # python -m aiotstream.cli: run the imported module's main, so that its classes
    from aiotstream.cli import main as _main  # (UsageError) are the ones other modules import

    sys.exit(_main())

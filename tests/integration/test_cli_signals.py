"""SIGINT and SIGTERM stop every command cleanly: within 5 s, in every state, with the summary line, exit code
130/143, no panic or traceback, everything the flow produced on disk (or on the broker), children stopped.

Real parts only: the Tansu broker of the session (or one of the test's own, for the outage), the CLI in a child
process, the outputs read back from the files and topics. The bound of 5 s is the contract of
:mod:`aiotstream.io.stop` (a watchdog ends a run 4 s after the signal), not a speed measurement.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson
import pytest
from support import OUTPUT_KINDS, Follow, by_id, cli, kafka_site_file, read_jsonl_outputs, read_topic, run_cli

from aiotstream.io.broker import TansuBroker, free_port
from aiotstream.io.stop import GRACE_S

STOP_BOUND_S = 5.0
ASSETS, DURATION_S = 3, 20
EVERY_KIND = (*OUTPUT_KINDS, "scalar_scores", "audit")  # the summary counts every output: the streaming
# detector's scalar scores and the audit trail's config load too
SUMMARY = re.compile(r"^stopped \((SIGINT|SIGTERM)\): inputs ([\d,]+) .*; outputs ([\d,]+)\b.*; outputs in (.+)$")


def _site(tmp: Path) -> tuple[Path, str]:
    return kafka_site_file(tmp, "sig", ASSETS)


def _simulate(*args: str) -> int:
    """``aiotstream simulate``; how many messages (frames + readings) it made."""
    err = run_cli("simulate", *args, "--faults", "0").stderr
    m = re.search(r": ([\d,]+) frames, ([\d,]+) readings", err)
    assert m, err
    return _n(m.group(1)) + _n(m.group(2))


@pytest.fixture
def kafka_site(tmp_path: Path, kafka_broker: str) -> tuple[Path, str, int]:
    """A site whose input topics hold DURATION_S of simulated data for ASSETS assets (and how many messages)."""
    site, sid = _site(tmp_path)
    made = _simulate("--site", str(site), "--brokers", kafka_broker, "--duration", str(DURATION_S))
    return site, sid, made


def _start(*args: str, log: Path) -> subprocess.Popen:
    with log.open("w") as f:
        return subprocess.Popen(cli(*args), stdout=subprocess.DEVNULL, stderr=f)


def _wait_until(what: str, found, proc: subprocess.Popen, log: Path, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    while not found():
        if proc.poll() is not None:
            raise AssertionError(f"exited ({proc.returncode}) before {what}: {log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {what} within {limit_s} s: {log.read_text()[-3000:]}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen, sig: int, log: Path) -> tuple[int, float, str]:
    """Signal the process; its exit code, seconds from the signal to its exit, its stderr."""
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        rc = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"still running 30 s after {signal.Signals(sig).name}: {log.read_text()[-3000:]}")
    return rc, time.monotonic() - t0, log.read_text()


def _check_clean_stop(rc: int, took: float, err: str, sig: int) -> re.Match:
    assert rc == 128 + sig, (rc, err[-3000:])
    assert took < STOP_BOUND_S, (took, err[-3000:])
    for bad in ("Traceback", "panicked", "CONFWARN", "did not finish"):
        assert bad not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    m = SUMMARY.match(last)
    assert m and m.group(1) == signal.Signals(sig).name, last
    return m


def _n(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_tailing_kafka_run_stops_cleanly_with_its_outputs_on_disk(tmp_path: Path, kafka_broker: str,
                                                                    kafka_site: tuple[Path, str, int], sig: int) -> None:
    site, _, made = kafka_site
    out, log = tmp_path / "out", tmp_path / "run.log"
    proc = _start("run", "--site", str(site), "--brokers", kafka_broker, "--out-dir", str(out), log=log)
    _wait_until("a first score", lambda: (out / "scores.jsonl").exists() and (out / "scores.jsonl").stat().st_size,
                proc, log)
    m = _check_clean_stop(*_stop(proc, sig, log), sig)
    assert m.group(4) == f"{out}/*.jsonl"  # not the broker: --out-dir was given
    records = read_jsonl_outputs(out, EVERY_KIND)
    assert sum(map(len, records.values())) == _n(m.group(3))  # everything the flow produced is on disk
    # nothing read is lost at the stop: open windows and KPI periods were flushed, so the asset KPI records
    # account for every frame the summary says was read (how far the flow had got depends on the machine)
    frames_read = re.search(r"\.waveforms ([\d,]+)", m.group(0))
    assert frames_read, m.group(0)
    kpis = [k for k in records["kpis"] if k["scope"] == "asset"]
    assert sum(k["totals"]["frames"] for k in kpis) == _n(frames_read.group(1)) > 0
    assert 0 < _n(m.group(2)) <= made


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_tailing_run_to_kafka_stops_cleanly_with_its_outputs_on_the_broker(
        tmp_path: Path, kafka_broker: str, kafka_site: tuple[Path, str, int], sig: int) -> None:
    site, sid, _ = kafka_site
    log = tmp_path / "run.log"
    proc = _start("run", "--site", str(site), "--brokers", kafka_broker, log=log)
    _wait_until("the flow running", lambda: "running" in log.read_text(), proc, log)
    follow = Follow(kafka_broker, {"score": f"{sid}.scores"}, group=f"it-{sid}")
    follow.wait_for("a first score", lambda: follow.records["score"], proc, log)
    m = _check_clean_stop(*_stop(proc, sig, log), sig)
    assert m.group(4).startswith(f"Kafka {kafka_broker}: {sid}.alerts")
    on_broker = sum(len(read_topic(kafka_broker, f"{sid}.{k}")) for k in ("alerts", "kpis", "scores", "scalar_scores", "deadletter", "audit"))
    assert on_broker == _n(m.group(3))
    kpis = [orjson.loads(r.value()) for r in read_topic(kafka_broker, f"{sid}.kpis")]
    frames_read = re.search(r"\.waveforms ([\d,]+)", m.group(0))
    assert frames_read and sum(k["totals"]["frames"] for k in kpis if k["scope"] == "asset") == \
        _n(frames_read.group(1)) > 0  # every frame read is accounted for in the flushed KPI periods


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("to_kafka", [False, True])
def test_a_paced_replay_stops_cleanly_midway(tmp_path: Path, kafka_broker: str, sig: int, to_kafka: bool) -> None:
    site, sid = _site(tmp_path)
    made = _simulate("--site", str(site), "--out-dir", str(tmp_path / "hist"), "--duration", str(DURATION_S))
    files = [str(tmp_path / "hist" / "waveforms.bin"), str(tmp_path / "hist" / "readings.jsonl")]
    out, log = tmp_path / "out", tmp_path / "replay.log"
    where = ["--brokers", kafka_broker] if to_kafka else ["--out-dir", str(out)]
    proc = _start("replay", *files, "--site", str(site), "--speed", "1", *where, log=log)  # 20 s of wall time
    _wait_until("the replay running", lambda: "running" in log.read_text(), proc, log)
    if to_kafka:
        follow = Follow(kafka_broker, {"score": f"{sid}.scores"}, group=f"it-{sid}")
        follow.wait_for("a first score", lambda: follow.records["score"], proc, log)
    else:
        _wait_until("a first score", lambda: (out / "scores.jsonl").exists()
                    and (out / "scores.jsonl").stat().st_size, proc, log)
    m = _check_clean_stop(*_stop(proc, sig, log), sig)
    assert 0 < _n(m.group(2)) < made  # stopped midway
    if to_kafka:
        got = sum(len(read_topic(kafka_broker, f"{sid}.{k}")) for k in ("alerts", "kpis", "scores", "scalar_scores", "deadletter", "audit"))
    else:
        got = sum(map(len, read_jsonl_outputs(out, EVERY_KIND).values()))
    assert got == _n(m.group(3)) > 0


def test_a_replay_stopped_and_resumed_from_recovery_equals_one_never_stopped(tmp_path: Path) -> None:
    # with --recovery a stop keeps the open windows in the snapshot instead of flushing them: the resumed run
    # continues them, and the outputs are those of a run that was never stopped (same ids, same payloads)
    site, _ = _site(tmp_path)
    made = _simulate("--site", str(site), "--out-dir", str(tmp_path / "hist"), "--duration", "30")
    files = [str(tmp_path / "hist" / "waveforms.bin"), str(tmp_path / "hist" / "readings.jsonl")]
    run_cli("replay", *files, "--site", str(site), "--out-dir", str(tmp_path / "whole"))
    out, rec, log = tmp_path / "parts", tmp_path / "rec", tmp_path / "replay.log"
    proc = _start("replay", *files, "--site", str(site), "--speed", "2", "--out-dir", str(out), "--recovery",
                  str(rec), log=log)
    _wait_until("a first score", lambda: (out / "scores.jsonl").exists() and (out / "scores.jsonl").stat().st_size,
                proc, log)
    m = _check_clean_stop(*_stop(proc, signal.SIGINT, log), signal.SIGINT)
    first = _n(m.group(2))
    assert 0 < first < made
    done = run_cli("replay", *files, "--site", str(site), "--out-dir", str(out), "--recovery", str(rec))
    assert f"done: inputs {made - first:,} " in done.stderr  # resumed where it stopped, none twice
    whole, parts = read_jsonl_outputs(tmp_path / "whole"), read_jsonl_outputs(out)
    for kind in ("scores", "kpis", "alerts", "deadletter"):
        assert by_id(parts[kind]) == by_id(whole[kind]), kind
        assert len(parts[kind]) == len(whole[kind]), kind


def test_a_run_stops_within_bounds_while_its_broker_is_down(tmp_path: Path) -> None:
    site, _ = _site(tmp_path)
    out, log = tmp_path / "out", tmp_path / "run.log"
    with TansuBroker(log_path=tmp_path / "tansu.log") as broker:
        _simulate("--site", str(site), "--brokers", broker.bootstrap, "--duration", "10")
        proc = _start("run", "--site", str(site), "--brokers", broker.bootstrap, "--out-dir", str(out), log=log)
        _wait_until("a first score", lambda: (out / "scores.jsonl").exists()
                    and (out / "scores.jsonl").stat().st_size, proc, log)
        broker.stop()  # reconnecting from here on
        time.sleep(2.0)
        m = _check_clean_stop(*_stop(proc, signal.SIGTERM, log), signal.SIGTERM)
    assert sum(map(len, read_jsonl_outputs(out, EVERY_KIND).values())) == _n(m.group(3))


def test_a_run_stops_while_still_waiting_for_its_broker(tmp_path: Path) -> None:
    site, _ = _site(tmp_path)
    log = tmp_path / "run.log"
    proc = _start("run", "--site", str(site), "--brokers", f"127.0.0.1:{free_port()}", "--broker-wait", "60",
                  log=log)
    time.sleep(2.0)
    rc, took, err = _stop(proc, signal.SIGINT, log)
    assert (rc, err.strip()) == (130, ("aiotstream run: stopped (SIGINT) before the flow started: nothing was read "
                                      "or written")), err
    assert took < STOP_BOUND_S


def test_an_error_in_the_flow_ends_in_one_line_with_the_summary(tmp_path: Path) -> None:
    # the fourth way to stop: a Parquet file damaged past its first block (the start is checked before the flow)
    import pyarrow as pa
    import pyarrow.parquet as pq

    site, _ = _site(tmp_path)
    n, path = 200_000, tmp_path / "damaged.parquet"
    pq.write_table(pa.table({"asset": ["asset-000"] * n, "ts": pa.array(range(n), pa.int64()), "metric": ["t"] * n,
                             "value": [1.0] * n}), path, row_group_size=50_000, compression="zstd")
    off = pq.ParquetFile(path).metadata.row_group(3).column(3).data_page_offset
    data = bytearray(path.read_bytes())
    data[off + 20:off + 60] = bytes(b ^ 0xFF for b in data[off + 20:off + 60])
    path.write_bytes(bytes(data))
    proc = subprocess.run(cli("replay", str(path), "--site", str(site), "--out-dir", str(tmp_path / "o")),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "panicked" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()
    assert len(last) == 2 and last[0].startswith("running "), proc.stderr
    assert re.fullmatch(rf"aiotstream replay: failed: replay {re.escape(str(path))}: cannot read on from row 131072: "
                        r".+; inputs 131,072 \(file 131,072\);.*; outputs in .+/o/\*\.jsonl", last[1]), last[1]


WEDGED_SINK = textwrap.dedent("""
    import sys, time
    from datetime import timedelta
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.inputs import DynamicSource, StatelessSourcePartition
    from bytewax.outputs import DynamicSink, StatelessSinkPartition
    from bytewax.run import cli_main
    from aiotstream.cli import execute_flow
    from aiotstream.io.stop import STOP, stoppable

    class Ticks(StatelessSourcePartition):
        def next_batch(self):
            time.sleep(0.05)
            return [1]

    class Source(DynamicSource):
        def build(self, step_id, worker_index, worker_count):
            return Ticks()

    class Wedged(StatelessSinkPartition):  # a sink whose server went away: it never returns after the stop
        def write_batch(self, items):
            print("ready", flush=True)
            while STOP.is_set():
                time.sleep(1)

    class Sink(DynamicSink):
        def build(self, step_id, worker_index, worker_count):
            return Wedged()

    flow = Dataflow("wedged")
    op.output("out", op.input("in", flow, stoppable(Source())), Sink())
    sys.exit(execute_flow("run", lambda: cli_main(flow, epoch_interval=timedelta(seconds=0.2)), "nowhere"))
""")


def test_the_watchdog_ends_a_run_that_cannot_finish(tmp_path: Path) -> None:
    log = tmp_path / "wedged.log"
    with log.open("w") as f:
        proc = subprocess.Popen([sys.executable, "-c", WEDGED_SINK], stdout=subprocess.PIPE, stderr=f, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    rc, took, err = _stop(proc, signal.SIGINT, log)
    assert rc == 130 and GRACE_S <= took < STOP_BOUND_S, (rc, took, err)
    assert err.strip().splitlines() == [
        (f"stopped (SIGINT): the flow did not finish within {GRACE_S:g} s of the signal, so outputs of the last "
        "epoch may be missing (with --recovery a restart produces them again); inputs 0; outputs 0; known losses "
        "none; outputs in nowhere")], err


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the broker's child")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_the_broker_command_leaves_no_broker_behind(tmp_path: Path, sig: int) -> None:
    # regression: SIGTERM to `aiotstream broker` left the Tansu child running (an orphan); SIGKILL cannot be
    # handled, so the child is told by the kernel (PR_SET_PDEATHSIG)
    proc = subprocess.Popen(cli("broker", "--port", "0"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("Kafka-protocol broker (Tansu, memory storage) on 127.0.0.1:"), line
    (child,) = _children(proc.pid)
    assert _alive(child)
    proc.send_signal(sig)
    rc = proc.wait(30)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), f"tansu (pid {child}) outlived `aiotstream broker` ({signal.Signals(sig).name})"
    if sig != signal.SIGKILL:
        assert rc == 128 + sig
        err = proc.stderr.read() if proc.stderr else ""
        assert err.strip() == f"broker on {line.split()[-1]} stopped ({signal.Signals(sig).name}); its topics are gone"


def test_no_confwarn_from_the_kafka_clients(tmp_path: Path, kafka_broker: str, kafka_site: tuple[Path, str, int]) -> None:
    # regression: every run printed two CONFWARN lines (consumer properties given to Bytewax's AdminClient)
    site, _, made = kafka_site
    proc = subprocess.run(cli("run", "--site", str(site), "--brokers", kafka_broker, "--once", "--out-dir",
                              str(tmp_path / "o")), capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "CONFWARN" not in proc.stderr and "%4|" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"done: inputs {made:,} ")

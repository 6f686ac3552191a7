"""What the benchmark scripts share: machine description, RSS, measured child processes, result files."""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiotstream.io.broker import preexec_die_with_parent

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent



def checkouts(trees: list[str] | None) -> list[Path]:
    """The checkouts a benchmark's repeated ``--tree`` names (this one when none), each checked to be one."""
    paths = [Path(t).resolve() for t in (trees or [str(ROOT)])]
    for t in paths:
        if not (t / "aiotstream" / "__init__.py").is_file():
            raise SystemExit(f"--tree {t}: not an aiotstream checkout (build its kernels there, or copy them)")
    return paths


def emit_json(rec: dict[str, Any], path: str | None) -> None:
    """Print ``rec`` as one JSON line (flushed) and append it to ``path`` if given."""
    line = json.dumps(rec)
    print(line, flush=True)
    if path:
        with open(path, "a") as fh:
            fh.write(line + "\n")


def with_settings(cfg: dict[str, Any], settings: list[str]) -> dict[str, Any]:
    """``cfg`` with each ``path=JSON`` of ``settings`` set (a dotted path into the site's tables).

    >>> with_settings({"scalar": {"readings_only": True}}, ["scalar.block_s=60", "kpi.periods_s=[60]"])
    {'scalar': {'readings_only': True, 'block_s': 60}, 'kpi': {'periods_s': [60]}}
    """
    for item in settings:
        path, sep, raw = item.partition("=")
        if not sep or not path:
            raise SystemExit(f"--set {item!r}: give path=value, e.g. scalar.block_s=60")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw  # (a bare word: a string)
        *tables, key = path.split(".")
        node = cfg
        for t in tables:
            node = node.setdefault(t, {})
        node[key] = value
    return cfg


def tree_rounds(script: str | Path, args: list[str], trees: list[Path], rounds: int, json_path: str | None,
                key: str) -> dict[str, Any]:
    """``script`` (this checkout's file) in a child process per checkout with ``args``, ``aiotstream`` from the
    checkout (``PYTHONPATH``, its kernels built or copied there), every checkout once a round. Each
    measurement (the child's last line, JSON) is printed and appended to ``json_path`` with its round and
    checkout; so is the summary returned: per checkout the median of ``key``, its per-round ratios to the
    first checkout's and their median, and the score digests its runs gave."""
    runs: dict[Path, list[dict[str, Any]]] = {t: [] for t in trees}

    for rnd in range(rounds):
        for t in trees:
            out = subprocess.run([sys.executable, str(Path(script).resolve()), *args], cwd=t,
                                 env=dict(os.environ, PYTHONPATH=str(t)), capture_output=True, text=True,
                                 check=True).stdout
            rec = {"round": rnd, "tree": str(t), **json.loads(out.strip().splitlines()[-1])}
            runs[t].append(rec)
            emit_json(rec, json_path)
    first = [r[key] for r in runs[trees[0]]]
    summary = {"summary": True, "trees": [
        {"tree": str(t), f"median_{key}": statistics.median(r[key] for r in rs),
         "ratios_to_first": [round(r[key] / f, 3) for r, f in zip(rs, first, strict=True)],
         "median_ratio_to_first": round(statistics.median(r[key] / f for r, f in zip(rs, first, strict=True)), 3),
         "scores_digests": sorted({r["scores_digest"] for r in rs})}
        for t, rs in runs.items()]}
    emit_json(summary, json_path)
    return summary


def run_from(tree: Path) -> None:
    """Flows spawned from now on (:func:`spawn`: cwd and PYTHONPATH) run ``tree``'s aiotstream."""
    global ROOT
    ROOT = tree
    os.environ["PYTHONPATH"] = str(tree)

def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1e6, 1)
                break
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {"host": socket.gethostname(), "cpus": os.cpu_count(), "cpu": cpu, "mem_gb": mem_gb,
            "python": platform.python_version(), "platform": platform.platform(), "loadavg_at_start": load}


def machine_name() -> str:
    """Short machine label for result file names: ``<host>-<n>cpu``."""
    return f"{socket.gethostname()}-{os.cpu_count()}cpu"


def rss_mb(pid: int | None = None) -> float:
    """Resident set size of a process (default: this one) in MB."""
    with open(f"/proc/{pid or 'self'}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def save(name: str, result: dict[str, Any], path: str | None = None) -> Path:
    """Write a result JSON to ``path`` or ``benchmarks/results/<date>-<host>-<name>.json``."""
    result = {"benchmark": name, "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
              "command": " ".join([Path(sys.executable).name, *sys.argv]), **result}
    out = Path(path) if path else RESULTS / f"{datetime.now(UTC):%Y-%m-%d}-{socket.gethostname()}-{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return out


def readings_site(tmp: Path, site_id: str, name: str, assets: int, csv: Path) -> Path:
    """``tmp/site.json``: a site of one asset group (``s-000000`` ... , ``assets`` members, one channel,
    readings only) that replays ``csv`` (``ts,asset,metric,value``)."""
    site = {"site": {"id": site_id, "name": name},
            "asset_groups": [{"prefix": "s-", "count": assets, "width": 6, "channels": ["v"]}],
            "inputs": {"kind": "files", "files": {"paths": [str(csv)]}},
            "scalar": {"readings_only": True}}
    path = tmp / "site.json"
    path.write_text(json.dumps(site))
    return path


def output_records(out: Path) -> dict[str, list[dict[str, Any]]]:
    """Every output file's records in ``out`` (``--out-dir``) but the audit trail (its wall clock and code
    version differ by run), without ``produced_at`` (the wall clock) and ``code_version`` (the checkout's):
    what two runs of the same inputs must write alike, ids included."""
    return {f.name: [{k: v for k, v in json.loads(line).items() if k not in ("produced_at", "code_version")}
                     for line in f.read_text().splitlines()]
            for f in sorted(out.glob("*.jsonl")) if f.name != "audit.jsonl"}


def checkout_args(ap: argparse.ArgumentParser, rounds: int) -> None:
    """``--rounds``, ``--tree`` and ``--json`` of a benchmark that runs through :func:`alternate_checkouts`."""
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--tree", action="append", help="run from this checkout (repeat to alternate checkouts)")
    ap.add_argument("--json", help="also write the runs and the summary here")


def alternate_checkouts(trees: list[Path], rounds: int, tmp: Path, run: Callable[[Path, Path], dict[str, Any]],
                        info: dict[str, Any], medians: tuple[str, ...], ratios: tuple[str, ...],
                        records: str = "", json_path: str | None = None) -> int:
    """``run(tree, work)`` for each checkout once per round, in turn (drift hits them alike), each in a new
    ``work`` directory under ``tmp``; its output records (:func:`output_records` of ``work / records``) must
    equal the first run's. Prints each run (``info`` and what ``run`` returned) and a summary: per checkout
    the medians of ``medians`` and the medians of the per-round ratios to the first checkout of
    ``ratios``; writes the runs and the summary to ``json_path`` as JSON lines. 0 when every run wrote the
    same records, else 1."""
    runs: list[dict[str, Any]] = []
    first: dict[str, list[dict[str, Any]]] | None = None
    for rnd in range(rounds):
        for k, tree in enumerate(trees):
            work = tmp / f"run-{rnd}-{k}"
            work.mkdir(parents=True)
            r = {"round": rnd, "tree": str(tree), **info, **run(tree, work)}
            got = output_records(work / records)
            first = got if first is None else first
            r["same_outputs"] = got == first
            runs.append(r)
            print(json.dumps(r), flush=True)
    summary: dict[str, Any] = {"machine": machine(), **info, "trees": {}}
    base = [r for r in runs if r["tree"] == str(trees[0])]
    for tree in trees:
        mine = [r for r in runs if r["tree"] == str(tree)]
        summary["trees"][str(tree)] = {
            **{f"{k}_median": statistics.median(r[k] for r in mine) for k in medians},
            **{f"{k}_ratio_to_first": statistics.median(r[k] / b[k] for r, b in zip(mine, base)) for k in ratios}}
    summary["all_outputs_same"] = all(r["same_outputs"] for r in runs)
    print(json.dumps(summary, indent=1))
    if json_path:
        Path(json_path).write_text("\n".join(json.dumps(r) for r in runs + [summary]) + "\n")
    return 0 if summary["all_outputs_same"] else 1


def git_rev() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=False, cwd=ROOT).stdout.strip()
    except OSError:
        return ""


# ---- child processes measured by the kernel (wait4) ----------------------------------------------


@dataclass(slots=True)
class Measured:
    """A finished child process: wall time, CPU seconds (kernel rusage) and peak RSS (its VmHWM)."""

    cmd: list[str]
    returncode: int
    wall_s: float
    cpu_user_s: float
    cpu_sys_s: float
    maxrss_mb: float
    stdout: str = ""
    stderr: str = ""

    @property
    def cpu_s(self) -> float:
        return self.cpu_user_s + self.cpu_sys_s

    def check(self, what: str) -> Measured:
        if self.returncode != 0:
            raise RuntimeError(f"{what} failed (exit {self.returncode}): {' '.join(self.cmd)}\n"
                               f"{self.stderr[-3000:]}")
        return self

    def summary(self) -> dict[str, Any]:
        return {"wall_s": round(self.wall_s, 3), "cpu_s": round(self.cpu_s, 3),
                "cpu_user_s": round(self.cpu_user_s, 3), "cpu_sys_s": round(self.cpu_sys_s, 3),
                "peak_rss_mb": round(self.maxrss_mb, 1)}


@dataclass
class Child:
    """A child started by :func:`spawn`; its output goes to temporary files (no pipe can fill up)."""

    cmd: list[str]
    proc: subprocess.Popen
    t0: float
    out: Any
    err: Any
    done: Measured | None = field(default=None)

    @property
    def pid(self) -> int:
        return self.proc.pid


def spawn(cmd: list[str], env: dict[str, str] | None = None, cwd: str | Path | None = None) -> Child:
    out = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - open for the child's lifetime, closed by wait()
    err = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - as above
    full_env = dict(os.environ, **(env or {}))
    full_env.setdefault("PYTHONPATH", str(ROOT))
    t0 = time.perf_counter()
    # a benchmark stopped by a signal (or killed) leaves no flow running behind it
    proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=full_env, cwd=str(cwd or ROOT), text=True,
                            preexec_fn=preexec_die_with_parent())  # noqa: PLW1509 - prctl only
    return Child(cmd, proc, t0, out, err)


def _vm_hwm_mb(pid: int) -> float | None:
    """Peak RSS (VmHWM) of a running process's own address space, in MB; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        return None
    return None


def _read(f: Any) -> str:
    f.seek(0)
    text = f.read()
    f.close()
    return text


def wait(child: Child, timeout: float | None = None) -> Measured:
    """Wait for ``child`` (killing it after ``timeout`` s) and return what the kernel measured."""
    if child.done is not None:
        return child.done
    deadline = None if timeout is None else time.monotonic() + timeout
    # The kernel's ru_maxrss of a child also counts this (parent) process's RSS at the fork, so peak
    # RSS is taken from the child's own VmHWM, read while it runs (every 20 ms).
    hwm = 0.0
    while True:
        m = _vm_hwm_mb(child.pid)
        if m is not None and m > hwm:
            hwm = m
        pid, status, ru = os.wait4(child.pid, os.WNOHANG)
        if pid == child.pid:
            break
        if deadline is not None and time.monotonic() > deadline:
            child.proc.kill()
            pid, status, ru = os.wait4(child.pid, 0)
            status = -signal.SIGKILL << 8 if not os.WIFSIGNALED(status) else status
            break
        time.sleep(0.02)
    wall = time.perf_counter() - child.t0
    code = os.waitstatus_to_exitcode(status)
    child.proc.returncode = code  # we reaped it ourselves; keep Popen from trying again
    child.done = Measured(child.cmd, code, wall, ru.ru_utime, ru.ru_stime, hwm or ru.ru_maxrss * 1024 / 1e6,
                          _read(child.out), _read(child.err))
    return child.done


def stop(child: Child, grace_s: float = 10.0) -> Measured:
    """Ask ``child`` to stop (SIGINT, as Ctrl-C would), kill it after ``grace_s``; return its measurements."""
    if child.done is None and child.proc.poll() is None:
        child.proc.send_signal(signal.SIGINT)
    return wait(child, timeout=grace_s)


def run_measured(cmd: list[str], timeout: float | None = None, env: dict[str, str] | None = None) -> Measured:
    return wait(spawn(cmd, env), timeout)


def self_usage() -> dict[str, float]:
    """CPU seconds and peak RSS of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": ru.ru_maxrss * 1024 / 1e6}

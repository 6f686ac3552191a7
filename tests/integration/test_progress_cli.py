"""The CLI's progress bars: on when the command's stderr is a terminal (a pty here), off in a pipe (what tests,
CI and log collectors see), so the log keeps its one line per event."""
from __future__ import annotations

import os
import pty
import subprocess
import threading
from pathlib import Path

from support import cli, kafka_site_file

ENV = {k: v for k, v in os.environ.items() if k != "AIOTSTREAM_PROGRESS"}


def _on_a_terminal(argv: list[str]) -> tuple[int, bytes]:
    """Run ``argv`` with stderr on a new pty; its exit code and everything it drew there."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=slave, env=ENV)
    os.close(slave)
    got: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer has gone
                return
            if not chunk:
                return
            got.append(chunk)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    rc = proc.wait(300)
    t.join(10)
    os.close(master)
    return rc, b"".join(got)


def test_simulate_and_replay_draw_a_bar_on_a_terminal_and_none_in_a_pipe(tmp_path: Path) -> None:
    site, _ = kafka_site_file(tmp_path, "bar", 4)
    sim = cli("simulate", "--site", str(site), "--out-dir", str(tmp_path / "h"), "--duration", "120", "--faults", "0")
    rc, drawn = _on_a_terminal(sim)
    assert rc == 0 and b"simulate" in drawn and b"%|" in drawn and b"\r" in drawn, drawn[-2000:]
    piped = subprocess.run(sim, capture_output=True, env=ENV, timeout=300, check=True)
    assert b"\r" not in piped.stderr and b"%|" not in piped.stderr, piped.stderr[-2000:]
    assert piped.stderr.count(b"\n") == 2  # the announcement and what was written: nothing else

    replay = cli("replay", str(tmp_path / "h" / "readings.jsonl"), str(tmp_path / "h" / "waveforms.bin"), "--site",
                 str(site), "--out-dir", str(tmp_path / "o"), "--speed", "20")
    rc, drawn = _on_a_terminal(replay)
    assert rc == 0 and b"replay" in drawn and b"input" in drawn and b"\r" in drawn, drawn[-2000:]
    assert b"done: inputs" in drawn
    piped = subprocess.run(replay, capture_output=True, env=ENV, timeout=300, check=True)
    assert b"\r" not in piped.stderr, piped.stderr[-2000:]
    assert piped.stderr.decode().splitlines()[-1].startswith("done: inputs")


def test_bench_kernels_draws_a_bar_of_its_rounds_on_a_terminal_only() -> None:
    small = ("--windows", "200", "--samples", "256", "--repeat", "2", "--scalar-updates", "2000")
    rc, drawn = _on_a_terminal(cli("bench", "kernels", *small))
    assert rc == 0 and b"bench kernels" in drawn and b"/6 " in drawn and b"round" in drawn, drawn[-2000:]
    assert b"spectral: round 2/2" in drawn  # the round lines still print, above the bar
    piped = subprocess.run(cli("bench", "kernels", *small), capture_output=True, env=ENV, timeout=300, check=True)
    assert b"\r" not in piped.stderr and b"bench kernels" not in piped.stderr, piped.stderr[-2000:]
    assert b"spectral: round 2/2" in piped.stderr

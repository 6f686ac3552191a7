"""Progress bars (issue 18 item 3): drawn on a terminal (a real pty here), never in a pipe, a file or a test's
captured stream, so logs stay clean; AIOTSTREAM_PROGRESS=0 turns them off on a terminal too."""
from __future__ import annotations

import io
import os
import pty
import time

import pytest

from aiotstream import progress


def _drain(fd: int, quiet_s: float = 0.3) -> bytes:
    """What the terminal's other side has got, once nothing more has come for ``quiet_s``."""
    out = b""
    os.set_blocking(fd, False)
    last = time.monotonic()
    while time.monotonic() - last < quiet_s:
        try:
            chunk = os.read(fd, 65536)
        except (BlockingIOError, OSError):
            time.sleep(0.01)
            continue
        if not chunk:
            break
        out += chunk
        last = time.monotonic()
    return out


def test_no_bar_without_a_terminal(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(progress.ENV, raising=False)
    r, w = os.pipe()
    with os.fdopen(w, "w") as pipe, (tmp_path / "log").open("w") as file:
        for stream in (io.StringIO(), pipe, file):
            assert not progress.enabled(stream)
            b = progress.bar("simulate", total=3, stream=stream)
            assert isinstance(b, progress.NullBar)
            for x in progress.counted(range(2500), b):
                pass
            b.close()
    with os.fdopen(r, "rb") as pipe_r:
        assert pipe_r.read() == b""
    assert (tmp_path / "log").read_text() == ""


def test_a_bar_on_a_terminal_and_none_when_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(progress.ENV, raising=False)
    master, slave = pty.openpty()
    term = os.fdopen(slave, "w")
    try:
        assert progress.enabled(term)
        with progress.bar("simulate", total=5000, stream=term) as b:
            assert not isinstance(b, progress.NullBar)
            assert sum(1 for _ in progress.counted(range(5000), b)) == 5000
            assert b.n == 5000
        term.flush()
        drawn = _drain(master).decode(errors="replace")
        assert "simulate" in drawn and "/5.00k" in drawn and "\r" in drawn, drawn
        monkeypatch.setenv(progress.ENV, "0")
        assert not progress.enabled(term)
        assert isinstance(progress.bar("simulate", stream=term), progress.NullBar)
    finally:
        term.close()
        os.close(master)


def test_a_watch_follows_a_count_from_another_thread_on_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(progress.ENV, raising=False)
    master, slave = pty.openpty()
    saved = os.dup(2)
    os.dup2(slave, 2)  # stderr is the terminal, as for an operator's shell
    count = {"n": 0}
    try:
        with progress.Watch("replay", lambda: count["n"], unit="input", every_s=0.01):
            for _ in range(50):
                count["n"] += 1000
                time.sleep(0.005)
            deadline = time.monotonic() + 10
            seen = b""
            while b"replay" not in seen and time.monotonic() < deadline:
                seen += _drain(master)
                time.sleep(0.02)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(slave)
    seen += _drain(master)
    os.close(master)
    assert b"replay" in seen and b"input" in seen, seen

"""Frame files (``.bin``: 4-byte length + frame) are read as they go, from any resume row, torn tails included."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from aiotstream.codecs import encode_frame
from aiotstream.config import FileInput
from aiotstream.io.replay import read_chunks

T0 = 1_767_225_600_000_000_000


def _frames(n: int) -> list[bytes]:
    rng = np.random.default_rng(5)
    return [encode_frame(f"a-{i % 3}", i, T0 + i * 102_400_000, 10_000.0,
                         rng.normal(size=(3, 64)).astype(np.float32)) for i in range(n)]


def _write(path: Path, frames: list[bytes], tail: bytes = b"") -> Path:
    path.write_bytes(b"".join(struct.pack("<I", len(f)) + f for f in frames) + tail)
    return path


def _read(path: Path, start: int = 0) -> list[tuple[int, bytes, int]]:
    out = []
    for chunk in read_chunks(str(path), FileInput(paths=[str(path)]), start):
        assert chunk.messages is not None and len(chunk.ts) == len(chunk.messages) <= 1024
        out += [(m.offset, m.value, int(t)) for m, t in zip(chunk.messages, chunk.ts)]
    return out


def test_every_frame_in_order_with_its_row_and_event_time(tmp_path: Path) -> None:
    frames = _frames(2500)  # three chunks
    got = _read(_write(tmp_path / "w.bin", frames))
    assert [r for r, _, _ in got] == list(range(2500))
    assert [v for _, v, _ in got] == frames
    assert [t for _, _, t in got] == [T0 + i * 102_400_000 for i in range(2500)]
    assert _read(_write(tmp_path / "w.bin", frames), start=2040) == got[2040:]  # resume: no row twice
    assert _read(tmp_path / "w.bin", start=2500) == []


@pytest.mark.parametrize("tail", [b"\x07\x00", struct.pack("<I", 500) + b"\x01" * 30])
def test_a_torn_tail_is_handed_on_as_its_own_row(tmp_path: Path, tail: bytes) -> None:
    frames = _frames(3)
    got = _read(_write(tmp_path / "t.bin", frames, tail))
    assert [v for _, v, _ in got[:3]] == frames
    row, raw, ts = got[3]
    assert row == 3 and raw == (tail if len(tail) < 4 else tail[4:])
    assert ts == (-1 if len(raw) < 28 else int.from_bytes(raw[20:28], "little", signed=True))
    assert len(got) == 4
    assert _read(tmp_path / "t.bin", start=3) == [got[3]]

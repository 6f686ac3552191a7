"""The frames of a Kafka poll batch taken by the compiled decoder (``_kernels.take_frames``) are the Python path's.

The plant flow's decoder hands a block's binary frames to one kernel call that decodes and checks them (the
header, the asset, the event time, the shape, the sample rate, every sample finite and within
``inputs.max_abs_value``) and groups them by asset; any message it does not take goes through
``Ingestor._message`` as before, which decodes it or says why not. Whatever a block holds (the fuzz's frames,
damaged or not, among readings, in any order) and whatever the range limit, the items each asset gets and the
dead letters must be those of the Python path alone, and the kernel must take every frame that path accepts.
"""
from __future__ import annotations

import struct
from functools import cache
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiotstream.codecs import encode_frame
from aiotstream.config import SiteConfig
from aiotstream.pdm.ingest import Ingestor
from aiotstream.pdm.runtime import SiteRuntime
from aiotstream.records import Frame, MessageBlock, Output
from aiotstream.runstats import STATS
from benchmarks.fuzz_data import (
    ASSETS,
    BASE_NS,
    RATE,
    S,
    _frame_specs,
    _reading_specs,
    fuzz_config,
    render_frame,
    render_reading,
)

NOW_NS = BASE_NS + 600 * S
F32_1E12 = float(np.float32(1e12))  # 999,999,995,904: 1e12 as numpy compares a float32 sample with it
LIMITS = (1e12, 1e3, 32_767.0, 32_768.0, F32_1E12, float(np.nextafter(np.float32(1e3), np.float32(np.inf))), 1e100)


@cache
def _rt(max_abs: float, max_bytes: int = 262_144) -> SiteRuntime:
    d = fuzz_config().model_dump(mode="json", exclude_unset=True)
    d["inputs"]["max_abs_value"] = max_abs
    d["inputs"]["max_message_bytes"] = max_bytes
    return SiteRuntime(SiteConfig.from_dict(d))


def _decode(msgs: list[Any], max_abs: float, fast: bool, calls: list[int] | None = None, max_bytes: int = 262_144
            ) -> tuple[dict[str, list[tuple]], list[dict], dict[str, Any]]:
    """Items per asset in the order the decoder gave them (frames by header, samples and raw bytes), dead
    letters and the run summary's counts; ``calls`` counts the messages that went through ``_message``."""
    STATS.reset()
    ing = Ingestor(_rt(max_abs, max_bytes), now_ns=lambda: NOW_NS, live=False)
    ing._fast_frames = fast
    if calls is not None:
        inner = ing._message

        def counted(*a: Any, **k: Any) -> int:
            calls.append(1)
            return inner(*a, **k)
        ing._message = counted  # type: ignore[method-assign]
    out = ing.decode_grouped(msgs)
    items: dict[str, list[tuple]] = {}
    dead = []
    for x in out:
        if isinstance(x, Output):
            dead.append({k: v for k, v in x.record.items() if k != "produced_at"})
            continue
        asset, got = x
        items[asset] = [("frame", i.asset, i.seq, type(i.seq), i.t0_ns, i.sample_rate_hz, i.pos, i.raw,
                         i.partials.tobytes(), None if i.spectral is None else i.spectral.tobytes())
                        if isinstance(i, Frame) else (type(i).__name__, repr(i)) for i in got]
    counts = {k: dict(STATS.snapshot().get(k, {})) for k in ("input_records", "inputs", "dropped")}
    return items, dead, counts


def _frame(asset: str, k: int, x: np.ndarray, rate: float = RATE, t0: int | None = None) -> bytes:
    return encode_frame(asset, k, BASE_NS + k * 25_600_000 if t0 is None else t0, rate, x)


@st.composite
def _blocks(draw: st.DrawFn) -> list[bytes]:
    """Mostly frames (the fuzz's, with its faults: bytes, header fields, ids, times, values, NaN and inf),
    some plain frames of each dtype near the range limit, a few readings among them."""
    raws, clock = [], BASE_NS
    for _ in range(draw(st.integers(1, 24))):
        clock += 25_000_000
        kind = draw(st.sampled_from(("fuzz",) * 3 + ("edge", "reading")))
        if kind == "fuzz":
            raws.append(render_frame(draw(_frame_specs()), clock))
        elif kind == "reading":
            raws.append(render_reading(draw(_reading_specs()), clock))
        else:  # a well-formed frame whose largest magnitude sits at a limit's float32 or float64 neighbour
            dt = draw(st.sampled_from((np.float32, np.float64, np.int16)))
            edge = draw(st.sampled_from(LIMITS[:-1] + (3e38, 1.0)))
            step = draw(st.sampled_from((-1, 0, 1)))
            sign = draw(st.sampled_from((1, -1)))
            if dt is np.int16:
                v: float = max(min(sign * (int(min(edge, 32_767)) + step), 32_767), -32_768)
            else:
                v = sign * float(np.nextafter(dt(edge), dt(np.inf * step)) if step else dt(edge))
            x = np.zeros((3, 64), dt)
            x[draw(st.integers(0, 2)), draw(st.integers(0, 63))] = v
            rate = draw(st.sampled_from((RATE, RATE * (1 + 1e-6), RATE * (1 + 1.01e-6), RATE * (1 - 1e-6))))
            raws.append(_frame(draw(st.sampled_from(ASSETS)), draw(st.integers(0, 50)), x, rate, clock))
    return raws


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_blocks(), st.sampled_from(LIMITS))
def test_a_block_of_frames_decodes_as_the_python_path_decodes_it(raws: list[bytes], max_abs: float) -> None:
    block = [MessageBlock("fz.waveforms", 1, raws, list(range(40, 40 + len(raws))))]
    assert _decode(block, max_abs, fast=True) == _decode(block, max_abs, fast=False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
@pytest.mark.parametrize("max_abs", [1e12, 1e3, 1e100])
def test_the_kernel_takes_every_frame_the_python_path_accepts(dtype: type, max_abs: float) -> None:
    """Every sample's magnitude up to the limit itself (1e3: a float32 and a float64; int16 frames are not
    range-checked from 32,768 on)."""
    rng = np.random.default_rng(3)
    top = 32_767 if dtype is np.int16 and max_abs > 32_767 else 1e3
    raws = []
    for k in range(20):
        for a in ASSETS:
            x = np.clip(rng.standard_normal((3, 128)) * 300, -top, top).astype(dtype)
            x[k % 3, k] = top if k % 2 else -top
            raws.append(_frame(a, k, x))
    block = [MessageBlock("fz.waveforms", 0, raws, list(range(len(raws))))]
    calls: list[int] = []
    fast = _decode(block, max_abs, fast=True, calls=calls)
    assert fast == _decode(block, max_abs, fast=False)
    assert [len(v) for v in fast[0].values()] == [20, 20, 20] and fast[1] == []
    # not one went the Python way (int16 under 32,768: the ingest's own range check, every one)
    assert len(calls) == (60 if dtype is np.int16 and max_abs < 32_768 else 0)


def test_a_frame_the_kernel_leaves_goes_the_python_way_in_its_place() -> None:
    """Bad frames and a reading amid good ones: each is handed on once, the good ones keep the block's order."""
    x = np.ones((3, 64), np.float32)
    nan = x.copy()
    nan[1, 5] = np.nan
    big = x.copy()
    big[2, 7] = np.nextafter(np.float32(F32_1E12), np.float32(np.inf))  # the next float32 past 1e12
    raws = [_frame("asset-000", 0, x), _frame("asset-000", 1, nan), _frame("asset-001", 2, x),
            _frame("unknown-asset", 3, x), _frame("asset-000", 4, big), _frame("asset-000", 5, x, rate=RATE * 1.001),
            b'{"asset":"asset-001","ts":%d,"metric":"temperature","value":1.5}' % (BASE_NS + 1),
            _frame("asset-000", 6, np.ones((2, 64), np.float32)), _frame("asset-001", 7, x),
            _frame("asset-002", 8, x, t0=NOW_NS + 10**15)]
    block = [MessageBlock("fz.waveforms", 0, raws, list(range(100, 100 + len(raws))))]
    calls: list[int] = []
    items, dead, _ = _decode(block, 1e12, fast=True, calls=calls)
    assert len(calls) == 7
    assert [d["reason"] for d in dead] == ["non_finite", "unknown_asset", "out_of_range", "sample_rate_mismatch",
                                           "shape_mismatch", "future_timestamp"]
    assert [i[2] for i in items["asset-000"]] == [0]
    # (a block that is not all plain readings: its reading goes the per-message way too, between the frames)
    assert [i[0] if i[0] != "frame" else i[2] for i in items["asset-001"]] == [2, "Reading", 7]
    assert (items, dead) == _decode(block, 1e12, fast=False)[:2]


def test_a_taken_frame_is_made_as_decode_frame_makes_it() -> None:
    """The samples a read-only view of the message's bytes in its dtype, the header's types, the position."""
    from aiotstream.codecs import decode_frame
    from aiotstream.records import Position
    x = np.arange(3 * 5, dtype=np.float64).reshape(3, 5)
    raw = encode_frame("asset-002", 2**64 - 1, BASE_NS, RATE, x)
    ing = Ingestor(_rt(1e12), now_ns=lambda: NOW_NS, live=False)
    frames: list[Frame] = []
    groups: dict[str, list] = {}
    ing._block(MessageBlock("fz.waveforms", 4, [raw], [9]), NOW_NS, lambda i: None, lambda o: None, groups,
               frames, {"frame": 0, "reading": 0, "feedback": 0, "control": 0})
    ref = decode_frame(raw, Position("fz.waveforms", 4, 9))
    (f,) = frames
    assert groups == {"asset-002": [f]}
    for name in ("asset", "seq", "t0_ns", "sample_rate_hz", "pos", "raw", "partials", "spectral"):
        assert getattr(f, name) == getattr(ref, name) and type(getattr(f, name)) is type(getattr(ref, name)), name
    for s in (f.samples, ref.samples):
        assert s.dtype == np.dtype("<f8") and s.shape == (3, 5) and not s.flags.writeable and s.base is raw
    assert f.samples.tobytes() == ref.samples.tobytes()


def test_a_header_read_where_it_lies_field_by_field() -> None:
    """Each header field past its bound, one at a time: the kernel leaves the frame, the Python path says why."""
    good = _frame("asset-000", 1, np.ones((3, 64), np.float32))
    cases = {"channels": (6, "<H", 65), "n_samples": (8, "<I", (1 << 20) + 1), "rate": (12, "<d", 1e6 * 1.0000001),
             "t0": (20, "<q", -1), "asset_len": (36, "<H", 129), "version": (4, "<B", 2), "dtype": (5, "<B", 4)}
    for name, (at, fmt, value) in cases.items():
        raw = bytearray(good)
        struct.pack_into(fmt, raw, at, value)
        block = [MessageBlock("fz.waveforms", 0, [bytes(raw)], [0])]
        calls: list[int] = []
        got = _decode(block, 1e12, fast=True, calls=calls)
        assert calls == [1], name
        assert got == _decode(block, 1e12, fast=False), name
        assert got[0] == {} and len(got[1]) == 1, name


def test_a_frame_over_the_size_limit_is_left_to_the_python_path() -> None:
    """A well-formed frame of more than ``inputs.max_message_bytes`` is a dead letter ``too_large``, the one at the
    limit is taken."""
    x = np.ones((3, 82), np.float32)  # 984 B of samples + 38 + 9: 1,031 B
    small = _frame("asset-000", 1, x[:, :80])  # 1,007 B
    big = _frame("asset-000", 2, x)
    assert len(small) <= 1024 < len(big)
    block = [MessageBlock("fz.waveforms", 0, [small, big], [0, 1])]
    calls: list[int] = []
    got = _decode(block, 1e12, fast=True, calls=calls, max_bytes=1024)
    assert calls == [1]
    assert got == _decode(block, 1e12, fast=False, max_bytes=1024)
    assert [i[2] for i in got[0]["asset-000"]] == [1] and [d["reason"] for d in got[1]] == ["too_large"]

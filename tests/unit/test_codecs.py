"""Binary waveform frames v1 and JSON readings: round trips, every rejection reason, fuzzing."""
from __future__ import annotations

import math
import struct

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aiotstream.codecs import decode_any, decode_frame, decode_reading, encode_frame, encode_reading
from aiotstream.errors import DecodeError
from aiotstream.ids import ID_PATTERN, is_valid_id
from aiotstream.records import Frame, Position, Reading

POS = Position("site.waveforms", 2, 41)

# The v1 header, written out here from the layout table in the codecs docstring (not imported):
# magic 4s, version u8, dtype u8, channels u16, n_samples u32, rate f64, t0 i64, seq u64, asset_len u16
HEAD = struct.Struct("<4sBBHIdqQH")
assert HEAD.size == 38  # 4 + 1 + 1 + 2 + 4 + 8 + 8 + 8 + 2
ITEMSIZE = {1: 4, 2: 8, 3: 2}
DT = {1: "<f4", 2: "<f8", 3: "<i2"}


def frame_bytes(*, magic: bytes = b"AIOW", version: int = 1, code: int = 1, channels: int = 2, n: int = 3,
                rate: float = 1000.0, t0: int = 5_000, seq: int = 7, asset: bytes = b"pump-1",
                alen: int | None = None, samples: bytes | None = None) -> bytes:
    """Hand-built frame; by default a valid 2 x 3 float32 frame with ascending sample values."""
    if samples is None:
        samples = np.arange(channels * n, dtype=DT.get(code, "<f4")).tobytes()
    head = HEAD.pack(magic, version, code, channels, n, rate, t0, seq, len(asset) if alen is None else alen)
    return head + asset + samples


def reason(fn, raw) -> str:
    with pytest.raises(DecodeError) as ei:
        fn(raw, POS)
    assert str(ei.value)  # every rejection says what is wrong in words
    return ei.value.reason


# ---------------------------------------------------------------------------------------------
# frames: round trip
# ---------------------------------------------------------------------------------------------
def test_hand_built_frame_decodes() -> None:
    raw = frame_bytes()
    f = decode_any(raw, POS)
    assert isinstance(f, Frame)
    assert (f.asset, f.seq, f.t0_ns, f.sample_rate_hz, f.pos) == ("pump-1", 7, 5_000, 1000.0, POS)
    # channel-major: channel 0 = 0, 1, 2; channel 1 = 3, 4, 5
    assert f.samples.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert f.raw == raw
    # end = t0 + n / rate = 5_000 ns + 3 / 1000 s = 5_000 + 3_000_000 ns
    assert f.end_ns == 3_005_000


def test_encoded_layout_matches_the_documented_header() -> None:
    samples = np.array([[1, -2], [3, 4], [5, 6]], dtype=np.int16)
    raw = encode_frame("é-1", 99, 123_456, 25_600.0, samples)
    aid = "é-1".encode()  # 4 bytes: é is 2 bytes in UTF-8
    assert raw[:38] == HEAD.pack(b"AIOW", 1, 3, 3, 2, 25_600.0, 123_456, 99, len(aid))
    assert raw[38:38 + len(aid)] == aid
    assert len(raw) == 38 + 4 + 3 * 2 * 2
    assert raw[42:] == samples.astype("<i2").tobytes()


@settings(max_examples=60, deadline=None)
@given(
    code=st.sampled_from([1, 2, 3]),
    shape=st.tuples(st.integers(1, 8), st.integers(1, 40)),
    data=st.data(),
    asset=st.from_regex(ID_PATTERN, fullmatch=True),
    seq=st.integers(0, 2**64 - 1),
    t0=st.integers(0, 2**63 - 1),
    rate=st.floats(min_value=1e-3, max_value=1_000_000.0, allow_nan=False),
)
def test_frame_round_trip(code: int, shape: tuple[int, int], data: st.DataObject, asset: str, seq: int, t0: int,
                          rate: float) -> None:
    dtype = np.dtype(DT[code])
    if dtype.kind == "f":
        elements = st.floats(allow_nan=False, allow_infinity=False, width=dtype.itemsize * 8)
    else:
        elements = st.integers(-(2**15), 2**15 - 1)
    arr = data.draw(hnp.arrays(dtype, shape, elements=elements))
    raw = encode_frame(asset, seq, t0, rate, arr)
    assert len(raw) == 38 + len(asset.encode()) + arr.size * dtype.itemsize
    f = decode_any(raw, POS)
    assert isinstance(f, Frame)
    assert (f.asset, f.seq, f.t0_ns, f.sample_rate_hz) == (asset, seq, t0, rate)
    assert f.samples.dtype == dtype and f.samples.shape == shape
    np.testing.assert_array_equal(f.samples, arr)


def test_one_dimensional_samples_are_one_channel() -> None:
    raw = encode_frame("a", 0, 0, 10.0, np.array([1.5, 2.5], dtype=np.float64))
    f = decode_frame(raw, POS)
    assert f.samples.shape == (1, 2)
    assert f.samples.tolist() == [[1.5, 2.5]]


def test_big_endian_input_round_trips() -> None:
    arr = np.array([[1.0, -2.5], [3.25, 1e6]], dtype=">f4")
    f = decode_frame(encode_frame("a", 0, 0, 10.0, arr), POS)
    assert f.samples.dtype == np.dtype("<f4")
    np.testing.assert_array_equal(f.samples, arr.astype("<f4"))


def test_max_channels_round_trip() -> None:
    arr = np.arange(64 * 2, dtype=np.float32).reshape(64, 2)
    f = decode_frame(encode_frame("a", 0, 0, 10.0, arr), POS)
    np.testing.assert_array_equal(f.samples, arr)


def test_encode_rejects_unsupported_dtype_and_shape() -> None:
    with pytest.raises(ValueError):
        encode_frame("a", 0, 0, 10.0, np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError):
        encode_frame("a", 0, 0, 10.0, np.zeros((2, 2, 2), dtype=np.float32))


# ---------------------------------------------------------------------------------------------
# frames: every rejection reason
# ---------------------------------------------------------------------------------------------
def test_empty() -> None:
    assert reason(decode_any, b"") == "empty"
    assert reason(decode_any, None) == "empty"


def test_unknown_format() -> None:
    assert reason(decode_any, b"\x00\x01\x02") == "unknown_format"
    assert reason(decode_any, b"hello") == "unknown_format"
    # bad magic: decode_any dispatches on the magic, so a frame with other magic is just unknown
    assert reason(decode_any, frame_bytes(magic=b"AIOX")) == "unknown_format"


def test_bad_magic_via_decode_frame() -> None:
    assert reason(decode_frame, frame_bytes(magic=b"AIOX")) == "bad_magic"
    assert reason(decode_frame, frame_bytes(magic=b"WOIA")) == "bad_magic"


def test_truncated_header() -> None:
    assert reason(decode_any, b"AIOW") == "truncated_header"
    assert reason(decode_any, frame_bytes()[:37]) == "truncated_header"  # one byte short of the header
    assert reason(decode_frame, b"") == "truncated_header"


@pytest.mark.parametrize("version", [0, 2, 255])
def test_unsupported_version(version: int) -> None:
    assert reason(decode_any, frame_bytes(version=version)) == "unsupported_version"


@pytest.mark.parametrize("code", [0, 4, 255])
def test_bad_dtype(code: int) -> None:
    assert reason(decode_any, frame_bytes(code=code, samples=b"\x00" * 24)) == "bad_dtype"


@pytest.mark.parametrize(("channels", "n"), [(0, 3), (2, 0), (65, 1), (1, (1 << 20) + 1)])
def test_bad_shape(channels: int, n: int) -> None:
    assert reason(decode_any, frame_bytes(channels=channels, n=n, samples=b"")) == "bad_shape"


@pytest.mark.parametrize("rate", [0.0, -1.0, math.nan, math.inf, -math.inf, 1_000_000.5, 2e6])
def test_bad_sample_rate(rate: float) -> None:
    assert reason(decode_any, frame_bytes(rate=rate)) == "bad_sample_rate"


def test_highest_sample_rate_is_accepted() -> None:
    assert decode_any(frame_bytes(rate=1_000_000.0), POS).sample_rate_hz == 1_000_000.0


@pytest.mark.parametrize("t0", [-1, -(2**63)])
def test_bad_timestamp_frame(t0: int) -> None:
    assert reason(decode_any, frame_bytes(t0=t0)) == "bad_timestamp"


@settings(max_examples=300, deadline=None)
@given(asset=st.text(min_size=1, max_size=140).filter(lambda a: not is_valid_id(a)))
def test_an_asset_id_that_is_not_a_plain_id_is_refused_in_every_message_kind(asset: str) -> None:
    """Issue 15 #4: ``evil/#``, ``a/+/b``, spaces, unicode: refused in frames, readings and feedback (one pattern,
    aiotstream.ids), so it never reaches a topic, a key or a file name."""
    raw_id = asset.encode("utf-8", "surrogatepass")
    if 1 <= len(raw_id) <= 128:
        assert reason(decode_any, frame_bytes(asset=raw_id)) == "bad_asset_id"
    assert reason(decode_any, _reading(asset=asset)) == "bad_asset_id"
    fb = {"schema": "aiotstream.feedback/1", "type": "ack", "asset": asset, "alert_type": "anomaly", "ts": 1}
    if len(asset) <= 128:
        assert reason(decode_any, orjson.dumps(fb)) == "bad_asset_id"
    mnt = {"schema": "aiotstream.feedback/1", "type": "maintenance", "line": asset, "start": 1, "end": 2, "ts": 1}
    if len(asset) <= 128:
        assert reason(decode_any, orjson.dumps(mnt)) == "bad_line_id"


@pytest.mark.parametrize("asset", ["evil/#", "a/+/b", "#", "+", "a b", "$SYS", "pump\x00", "../x", "é"])
def test_topic_injection_ids_are_dead_letter_reasons(asset: str) -> None:
    assert reason(decode_any, frame_bytes(asset=asset.encode())) == "bad_asset_id"
    assert reason(decode_any, _reading(asset=asset)) == "bad_asset_id"


def test_bad_asset_id() -> None:
    assert reason(decode_any, frame_bytes(asset=b"")) == "bad_asset_id"  # length 0
    assert reason(decode_any, frame_bytes(asset=b"a" * 129)) == "bad_asset_id"  # longer than 128
    assert reason(decode_any, frame_bytes(asset=b"\xff\xfe")) == "bad_asset_id"  # not UTF-8
    assert reason(decode_any, frame_bytes(asset=b"ab\xc3")) == "bad_asset_id"  # cut multi-byte sequence
    assert decode_any(frame_bytes(asset=b"a" * 128), POS).asset == "a" * 128


def test_length_mismatch() -> None:
    raw = frame_bytes()  # 38 + 6 + 2*3*4 = 68 bytes
    assert len(raw) == 68
    assert reason(decode_any, raw[:-1]) == "length_mismatch"
    assert reason(decode_any, raw[:39]) == "length_mismatch"
    assert reason(decode_any, raw + b"\x00") == "length_mismatch"
    # header says 4 bytes of asset id but only the 6-byte id plus samples follow: 2 bytes too many
    assert reason(decode_any, frame_bytes(alen=4)) == "length_mismatch"
    # declares float64 (8 B/sample) but carries float32 payload
    assert reason(decode_any, frame_bytes(code=2, samples=np.zeros(6, "<f4").tobytes())) == "length_mismatch"


@pytest.mark.parametrize(("code", "bad"), [(1, math.nan), (1, math.inf), (2, math.nan), (2, math.inf), (2, -math.inf)])
def test_non_finite_samples(code: int, bad: float) -> None:
    values = np.arange(6, dtype=DT[code])
    values[4] = bad
    assert reason(decode_any, frame_bytes(code=code, samples=values.tobytes())) == "non_finite"


def test_int16_extremes_are_fine() -> None:
    values = np.array([-32768, 32767, 0, 1, -1, 2], dtype="<i2")
    f = decode_any(frame_bytes(code=3, samples=values.tobytes()), POS)
    assert f.samples.tolist() == [[-32768, 32767, 0], [1, -1, 2]]


# ---------------------------------------------------------------------------------------------
# readings
# ---------------------------------------------------------------------------------------------
def _reading(**fields) -> bytes:
    obj = {"asset": "pump-1", "ts": 1_000, "metric": "temperature", "value": 41.5}
    obj.update(fields)
    return orjson.dumps({k: v for k, v in obj.items() if v is not _DROP})


_DROP = object()


def test_reading_round_trip() -> None:
    raw = encode_reading("pump-1", 1_700_000_000_000_000_000, "temperature", 41.5)
    r = decode_any(raw, POS)
    assert isinstance(r, Reading)
    assert (r.asset, r.ts_ns, r.metric, r.value, r.pos, r.raw) == (
        "pump-1", 1_700_000_000_000_000_000, "temperature", 41.5, POS, raw)


def test_reading_with_leading_whitespace_and_int_value() -> None:
    r = decode_any(b'\n {"asset": "a", "ts": 0, "metric": "current", "value": 3}', POS)
    assert isinstance(r, Reading)
    assert r.value == 3.0 and isinstance(r.value, float) and r.ts_ns == 0


@pytest.mark.parametrize("raw", [b"{not json", b'{"asset": "a",', b"[1, 2", b'{"value": NaN}', b" "])
def test_bad_json(raw: bytes) -> None:
    assert reason(decode_any, raw) == "bad_json"


def test_bad_json_invalid_utf8() -> None:
    assert reason(decode_reading, b'{"asset": "\xff"}') == "bad_json"


@pytest.mark.parametrize(
    "raw",
    [
        b"[1, 2]",  # not an object
        b'["asset", "ts"]',
        _reading(asset=_DROP),  # missing fields
        _reading(value=_DROP, metric=_DROP),
        b"{}",
        _reading(asset=5),  # not a string
        _reading(asset=""),
        _reading(asset=None),
        _reading(metric=""),
        _reading(metric=3),
        _reading(value=True),  # bool is not a number here
        _reading(value="41.5"),  # string
        _reading(value=None),
        _reading(value=[1.0]),
    ],
)
def test_bad_reading(raw: bytes) -> None:
    assert reason(decode_any, raw) == "bad_reading"


@pytest.mark.parametrize("ts", [-1, 1.5, 1000.0, True, False, "1000", None])
def test_bad_timestamp_reading(ts: object) -> None:
    assert reason(decode_any, _reading(ts=ts)) == "bad_timestamp"


@pytest.mark.parametrize("value", [b"1e400", b"-1e400"])
def test_non_finite_reading(value: bytes) -> None:
    # 1e400 is valid JSON (RFC 8259 number grammar); as a double it is inf, which is exactly what
    # the decoder's non_finite check exists for.
    raw = b'{"asset": "a", "ts": 1, "metric": "m", "value": ' + value + b"}"
    assert reason(decode_any, raw) == "non_finite"


def test_largest_finite_reading_value_is_accepted() -> None:
    r = decode_any(b'{"asset": "a", "ts": 1, "metric": "m", "value": 1.7976931348623157e308}', POS)
    assert r.value == 1.7976931348623157e308


# ---------------------------------------------------------------------------------------------
# fuzzing: only DecodeError, never anything else
# ---------------------------------------------------------------------------------------------
def _decode_or_decodeerror(raw: bytes) -> None:
    try:
        out = decode_any(raw, POS)
    except DecodeError as exc:
        assert isinstance(exc.reason, str) and exc.reason
        return
    assert isinstance(out, (Frame, Reading))


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(raw: bytes) -> None:
    _decode_or_decodeerror(raw)


@FUZZ
@given(st.binary(max_size=160))
def test_fuzz_random_bytes_after_magic(tail: bytes) -> None:
    _decode_or_decodeerror(b"AIOW" + tail)


@FUZZ
@given(st.binary(max_size=120))
def test_fuzz_random_bytes_after_brace(tail: bytes) -> None:
    _decode_or_decodeerror(b"{" + tail)


_VALID_FRAMES = [
    encode_frame("pump-001", 12, 1_700_000_000_000_000_000, 10_000.0, np.linspace(-1, 1, 24, dtype=np.float32)
                 .reshape(3, 8)),
    encode_frame("m", 0, 0, 1.0, np.array([[1, 2, 3]], dtype=np.int16)),
    encode_frame("x-9", 5, 10, 512.0, np.ones((2, 4), dtype=np.float64)),
]


@FUZZ
@given(
    which=st.sampled_from(range(len(_VALID_FRAMES))),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), min_size=1, max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 10_000)),
)
def test_fuzz_mutated_valid_frame(which: int, flips: list[tuple[int, int]], cut: int | None) -> None:
    raw = bytearray(_VALID_FRAMES[which])
    for pos, bit in flips:
        raw[pos % len(raw)] ^= 1 << bit
    data = bytes(raw)
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    _decode_or_decodeerror(data)


@FUZZ
@given(which=st.sampled_from(range(len(_VALID_FRAMES))), extra=st.binary(min_size=1, max_size=16),
       cut=st.integers(1, 80))
def test_fuzz_truncated_or_extended_frame_is_rejected(which: int, extra: bytes, cut: int) -> None:
    raw = _VALID_FRAMES[which]
    # any truncation or extension of a valid frame must be rejected (the length no longer adds up)
    with pytest.raises(DecodeError):
        decode_any(raw[: max(len(raw) - cut, 0)], POS)
    with pytest.raises(DecodeError) as ei:
        decode_any(raw + extra, POS)
    assert ei.value.reason == "length_mismatch"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    obj=st.recursive(
        st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=8),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(
            st.sampled_from(["asset", "ts", "metric", "value", "x"]), children, max_size=5),
        max_leaves=12,
    )
)
def test_fuzz_json_shapes(obj: object) -> None:
    import json

    raw = json.dumps(obj).encode()
    if raw[:1] not in b"{[":
        raw = b" " + raw
    _decode_or_decodeerror(raw)

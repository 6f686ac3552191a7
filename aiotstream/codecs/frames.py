"""Binary waveform frame v1 (all little-endian)::

    offset size  field
    0      4     magic          b"AIOW"
    4      1     version        u8, 1
    5      1     dtype          u8: 1 = float32, 2 = float64, 3 = int16
    6      2     channels       u16, 1..64
    8      4     n_samples      u32, 1..1_048_576 (per channel)
    12     8     sample_rate    f64 Hz, finite, 0 < rate <= 1_000_000
    20     8     t0_ns          i64 event time of the first sample, ns since the Unix epoch
    28     8     seq            u64 frame sequence number per asset
    36     2     asset_id_len   u16, 1..128
    38     L     asset_id       UTF-8
    38+L   ...   samples        channels x n_samples, channel-major (C order of (channels, n))

The decoder checks every field and that the total length is exactly
``38 + L + channels * n_samples * itemsize``; anything else is a
:class:`~aiotstream.errors.DecodeError` with a reason code, which the flow turns
into a dead letter.

>>> import numpy as np
>>> raw = encode_frame("pump-1", 3, 1_000, 10_000.0, np.zeros((3, 4), np.float32))
>>> f = decode_frame(raw, Position("t", 0, 9))
>>> (f.asset, f.seq, f.samples.shape)
('pump-1', 3, (3, 4))
"""
from __future__ import annotations

import math
import struct

import numpy as np

from aiotstream._kernels import sample_range
from aiotstream.errors import DecodeError
from aiotstream.ids import MAX_ID, check_id
from aiotstream.records import Frame, Position

MAGIC = b"AIOW"
VERSION = 1
_HEAD = struct.Struct("<4sBBHIdqQH")
HEADER_SIZE = _HEAD.size  # 38
DTYPES: dict[int, np.dtype] = {1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i2")}
DTYPE_CODES = {v: k for k, v in DTYPES.items()}
MAX_CHANNELS = 64
MAX_SAMPLES = 1 << 20
MAX_SAMPLE_RATE = 1_000_000.0
MAX_ASSET_ID = MAX_ID
MAX_TS_NS = (1 << 63) - 1  # event times are int64 ns, as in the frame header


def encode_frame(asset_id: str, seq: int, t0_ns: int, sample_rate_hz: float, samples: np.ndarray) -> bytes:
    """Encode ``samples`` (channels, n) as a binary waveform frame v1."""
    arr = np.asarray(samples)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"samples must be (channels, n), got shape {arr.shape}")
    dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    code = DTYPE_CODES.get(np.dtype(dt).newbyteorder("<"))
    if code is None:
        raise ValueError(f"samples dtype {arr.dtype} not supported: use float32, float64 or int16")
    aid = asset_id.encode()
    head = _HEAD.pack(MAGIC, VERSION, code, arr.shape[0], arr.shape[1], float(sample_rate_hz), int(t0_ns),
                      int(seq), len(aid))
    return head + aid + np.ascontiguousarray(arr, dtype=DTYPES[code]).tobytes()


def decode_frame(raw: bytes, pos: Position) -> Frame:
    """Decode and validate one binary frame; raise DecodeError(reason) if it does not add up."""
    n = len(raw)
    if n < HEADER_SIZE:
        raise DecodeError("truncated_header",
                          f"frame is {n} bytes, shorter than the {HEADER_SIZE}-byte header")
    magic, version, code, channels, n_samples, rate, t0_ns, seq, alen = _HEAD.unpack_from(raw, 0)
    if magic != MAGIC:
        raise DecodeError("bad_magic", f"frame magic is {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise DecodeError("unsupported_version", f"frame version {version} is not supported (only {VERSION})")
    dtype = DTYPES.get(code)
    if dtype is None:
        raise DecodeError("bad_dtype", f"dtype code {code} is unknown (1=float32, 2=float64, 3=int16)")
    if not 1 <= channels <= MAX_CHANNELS:
        raise DecodeError("bad_shape", f"channels = {channels}, must be 1..{MAX_CHANNELS}")
    if not 1 <= n_samples <= MAX_SAMPLES:
        raise DecodeError("bad_shape", f"n_samples = {n_samples}, must be 1..{MAX_SAMPLES}")
    if not (math.isfinite(rate) and 0 < rate <= MAX_SAMPLE_RATE):
        raise DecodeError("bad_sample_rate",
                          f"sample rate {rate!r} Hz must be finite and in (0, {MAX_SAMPLE_RATE:g}]")
    if t0_ns < 0:
        raise DecodeError("bad_timestamp", f"t0_ns = {t0_ns} is before the Unix epoch")
    if not 1 <= alen <= MAX_ASSET_ID:
        raise DecodeError("bad_asset_id", f"asset id length {alen} must be 1..{MAX_ASSET_ID}")
    expected = HEADER_SIZE + alen + channels * n_samples * dtype.itemsize
    if n != expected:
        raise DecodeError(
            "length_mismatch",
            f"frame is {n} bytes but its header declares {expected} ({channels} ch x {n_samples} samples x "
            f"{dtype.itemsize} B + {HEADER_SIZE + alen} B header)",
        )
    try:
        asset = check_id(raw[HEADER_SIZE:HEADER_SIZE + alen].decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DecodeError("bad_asset_id", f"asset id is not UTF-8: {exc}") from None
    # a read-only (channels, n) view of raw, in one call (frombuffer and reshape: two arrays, 2-4x the time)
    samples = np.ndarray((channels, n_samples), dtype, raw, HEADER_SIZE + alen)
    if dtype.kind == "f":
        bad = sample_range(samples)[0]  # (one compiled pass: the non-finite count, min, max)
        if bad:
            raise DecodeError("non_finite", f"{bad} of {samples.size} samples are NaN or Inf")
    return Frame(asset, int(seq), int(t0_ns), float(rate), samples, pos, raw=raw)

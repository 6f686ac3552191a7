"""What the peers share: frame decoding, the window features in plain numpy, River, stats files.

Nothing here imports aiotstream: a user of another tool would write their own frame decoder,
and the Quix Streams peer runs in a virtual environment without aiotstream in it.
"""
from __future__ import annotations

import json
import struct
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HEAD = struct.Struct("<4sBBHIdqQH")  # binary frame v1 header (see README: "Binary waveform frame v1")
DTYPES = {1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i2")}
CHANNELS = ("x", "y", "z")
FEATURES = ("mean", "std", "rms", "min", "max", "p2p", "crest", "skewness", "kurtosis")
WINDOW_NS = 1_000_000_000
# River HalfSpaceTrees as aiotstream's [model] defaults: n_trees 25, height 8, window_size 50, seed 42
HST = {"n_trees": 25, "height": 8, "window_size": 50, "seed": 42}


def decode_frame(raw: bytes) -> tuple[str, int, float, np.ndarray]:
    """``(asset, t0_ns, sample_rate_hz, samples (channels, n))`` of a binary frame v1."""
    magic, _version, code, channels, n, rate, t0_ns, _seq, alen = HEAD.unpack_from(raw, 0)
    if magic != b"AIOW":
        raise ValueError(f"not a frame v1: {raw[:4]!r}")
    asset = raw[HEAD.size:HEAD.size + alen].decode()
    samples = np.frombuffer(raw, DTYPES[code], channels * n, HEAD.size + alen).reshape(channels, n)
    return asset, t0_ns, rate, samples


def features_from_samples(x: np.ndarray) -> dict[str, float]:
    """The 9 time features per channel of a window's samples ``(channels, n)``, as a River-style dict."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=1)
    d = x - mean[:, None]
    m2 = (d * d).mean(axis=1)
    std = np.sqrt(m2)
    rms = np.sqrt((x * x).mean(axis=1))
    mn, mx = x.min(axis=1), x.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = np.where(m2 > 0, (d ** 3).mean(axis=1) / m2 ** 1.5, 0.0)
        kurt = np.where(m2 > 0, (d ** 4).mean(axis=1) / (m2 * m2), 0.0)
        crest = np.where(rms > 0, np.maximum(np.abs(mn), np.abs(mx)) / rms, 0.0)
    cols = (mean, std, rms, mn, mx, mx - mn, crest, skew, kurt)
    return {f"{c}.{f}": float(v[i]) for i, c in enumerate(CHANNELS) for f, v in zip(FEATURES, cols)}


def power_sums(x: np.ndarray) -> list[float]:
    """Mergeable per-channel sums of one frame: ``[n, S1, S2, S3, S4, min, max]`` per channel, flat."""
    x = np.asarray(x, dtype=np.float64)
    x2 = x * x
    s = np.stack([np.full(x.shape[0], x.shape[1], np.float64), x.sum(1), x2.sum(1), (x2 * x).sum(1),
                  (x2 * x2).sum(1), x.min(1), x.max(1)], axis=1)
    return s.ravel().tolist()


def merge_power_sums(a: list[float], b: list[float]) -> list[float]:
    """Merge two flat power-sum lists (sums add, min/max combine)."""
    out = []
    for c in range(0, len(a), 7):
        out += [a[c] + b[c], a[c + 1] + b[c + 1], a[c + 2] + b[c + 2], a[c + 3] + b[c + 3], a[c + 4] + b[c + 4],
                min(a[c + 5], b[c + 5]), max(a[c + 6], b[c + 6])]
    return out


def features_from_power_sums(s: list[float] | np.ndarray) -> dict[str, float]:
    """The same 9 features per channel from merged power sums."""
    p = np.asarray(s, dtype=np.float64).reshape(-1, 7)
    n, s1, s2, s3, s4, mn, mx = p.T
    mean = s1 / n
    m2 = s2 / n - mean ** 2
    m3 = s3 / n - 3 * mean * s2 / n + 2 * mean ** 3
    m4 = s4 / n - 4 * mean * s3 / n + 6 * mean ** 2 * s2 / n - 3 * mean ** 4
    m2 = np.maximum(m2, 0.0)
    std = np.sqrt(m2)
    rms = np.sqrt(s2 / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = np.where(m2 > 0, m3 / m2 ** 1.5, 0.0)
        kurt = np.where(m2 > 0, m4 / (m2 * m2), 0.0)
        crest = np.where(rms > 0, np.maximum(np.abs(mn), np.abs(mx)) / rms, 0.0)
    cols = (mean, std, rms, mn, mx, mx - mn, crest, skew, kurt)
    return {f"{c}.{f}": float(v[i]) for i, c in enumerate(CHANNELS) for f, v in zip(FEATURES, cols)}


def preload_river() -> None:
    """Import River before the first input, so its import time counts as start-up (as for aiotstream)."""
    import river.anomaly
    import river.preprocessing  # noqa: F401


def river_model() -> Any:
    """River's documented anomaly pipeline: min-max scaling into HalfSpaceTrees."""
    from river import anomaly, preprocessing

    return preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(**HST)


def score_record(asset: str, window_start_ns: int, samples: int, score: float) -> bytes:
    return json.dumps({"asset": asset, "window_start_ns": window_start_ns, "samples": samples,
                       "score": round(score, 6), "produced_at": time.time()}).encode()


class Stats:
    """Timing notes a peer writes for the harness: first input seen, last input done, counts."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.d: dict[str, Any] = {"t_start": time.time(), "t_first": None, "t_last": None, "messages": 0,
                                  "samples": 0, "windows": 0}

    def seen(self, messages: int = 1, samples: int = 0) -> None:
        now = time.time()
        if self.d["t_first"] is None:
            self.d["t_first"] = now
        self.d["t_last"] = now
        self.d["messages"] += messages
        self.d["samples"] += samples

    def write(self, **extra: Any) -> None:
        self.d.update(extra)
        self.path.write_text(json.dumps(self.d))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)

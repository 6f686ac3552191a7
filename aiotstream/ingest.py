"""Decode a poll batch: bytes -> validated frames/readings (keyed by asset) + dead letters.

One call per poll batch, not per message: frames of the same shape, dtype and
sample rate are stacked and reduced to per-channel partials by one call of each
kernel the feature set needs (time domain; spectral for spectral sets; GIL
released), and the samples are dropped, so nothing high-rate travels further as
Python objects.
"""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from aiotstream.analysis import Output, SiteRuntime
from aiotstream.codecs import decode_any
from aiotstream.errors import DecodeError
from aiotstream.features import FeatureSet, frame_partials_batch
from aiotstream.lineage import iso_ns
from aiotstream.records import DeadLetter, Frame, Position, Reading


class Ingestor:
    """Turns raw source messages into ``(asset, Frame | Reading)`` pairs and dead-letter outputs."""

    def __init__(self, rt: SiteRuntime, now_ns: Callable[[], int] = time.time_ns):
        self.rt = rt
        self.now_ns = now_ns
        self.max_future_ns = round(rt.config.window.max_future_s * 1e9)

    def _reject(self, raw: bytes, pos: Position, reason: str, message: str, asset: str | None = None) -> Output:
        return self.rt.deadletter(DeadLetter(raw, pos, reason, message, asset=asset))

    def decode_batch(self, msgs: Iterable[Any]) -> list[tuple[str, Frame | Reading] | Output]:
        out: list[tuple[str, Frame | Reading] | Output] = []
        frames: list[Frame] = []
        horizon = self.now_ns() + self.max_future_ns
        assets = self.rt.assets
        for msg in msgs:
            if hasattr(msg, "err"):  # bytewax KafkaError: the consumer could not deliver this message
                inner = msg.msg
                pos = Position(inner.topic or "?", inner.partition if inner.partition is not None else -1,
                               inner.offset if inner.offset is not None else -1)
                out.append(self._reject(inner.value or b"", pos, "source_error", str(msg.err)))
                continue
            raw = msg.value or b""
            pos = Position(msg.topic or "?", msg.partition if msg.partition is not None else -1,
                           msg.offset if msg.offset is not None else -1)
            try:
                item = decode_any(raw, pos)
            except DecodeError as exc:
                out.append(self._reject(raw, pos, exc.reason, str(exc)))
                continue
            asset = assets.get(item.asset)
            if asset is None:
                out.append(self._reject(raw, pos, "unknown_asset",
                                        f"asset {item.asset!r} is not in the site config "
                                        f"({self.rt.config.site.id}); add it to [[assets]]", asset=item.asset))
                continue
            t = item.t0_ns if isinstance(item, Frame) else item.ts_ns
            if t > horizon:
                out.append(self._reject(raw, pos, "future_timestamp",
                                        f"event time {iso_ns(t)} is more than {self.rt.config.window.max_future_s:g} s "
                                        f"ahead of this worker's clock", asset=item.asset))
                continue
            if isinstance(item, Frame):
                n_ch = item.samples.shape[0]  # type: ignore[union-attr]
                if n_ch != len(asset.channels):
                    out.append(self._reject(raw, pos, "shape_mismatch",
                                            f"frame has {n_ch} channel(s), the config says {len(asset.channels)} "
                                            f"({', '.join(asset.channels)})", asset=item.asset))
                    continue
                if abs(item.sample_rate_hz - asset.sample_rate_hz) > 1e-6 * asset.sample_rate_hz:
                    out.append(self._reject(raw, pos, "sample_rate_mismatch",
                                            f"frame sample rate {item.sample_rate_hz:g} Hz, the config says "
                                            f"{asset.sample_rate_hz:g} Hz", asset=item.asset))
                    continue
                frames.append(item)
            out.append((item.asset, item))
        if frames:
            attach_partials(frames, self.rt.feature_set, {a: cfg.rpm for a, cfg in assets.items()})
        return out


def attach_partials(frames: list[Frame], feature_set: FeatureSet, rpm: dict[str, float]) -> None:
    """Compute every frame's partials for ``feature_set``; drop the samples.

    One kernel call (per kernel) per group of frames with the same shape,
    dtype and sample rate; ``rpm`` maps asset id to running speed (for the
    1x/2x spectral columns).
    """
    groups: dict[tuple[int, int, str, float], list[Frame]] = defaultdict(list)
    for f in frames:
        s = f.samples
        assert s is not None
        groups[(s.shape[0], s.shape[1], s.dtype.str, f.sample_rate_hz)].append(f)
    for (_, _, dt, rate), group in groups.items():
        target = np.float64 if dt.endswith("f8") else np.float32
        batch = np.stack([f.samples for f in group]).astype(target, copy=False)  # (F, C, N), C-contiguous
        speeds = np.array([rpm.get(f.asset, np.nan) for f in group]) if feature_set.spectral else None
        time_part, spec = frame_partials_batch(batch, rate, speeds, feature_set)
        for i, f in enumerate(group):
            f.partials = time_part[i]
            f.spectral = spec[i] if spec is not None else None
            f.samples = None

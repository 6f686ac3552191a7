"""Decode a poll batch: bytes -> validated frames/readings/feedback (keyed by asset) + dead letters.

One call per poll batch, not per message: frames of the same shape are stacked
and reduced to per-channel moments by one kernel call (GIL released), and the
samples are dropped, so nothing high-rate travels further as Python objects.
"""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import numpy as np

from aiotstream.analysis import Output, SiteRuntime
from aiotstream.codecs import decode_any
from aiotstream.errors import DecodeError
from aiotstream.features import frame_moments
from aiotstream.lineage import iso_ns
from aiotstream.records import DeadLetter, Feedback, Frame, Position, Reading


class Ingestor:
    """Turns raw source messages into ``(asset, Frame | Reading)`` pairs and dead-letter outputs."""

    def __init__(self, rt: SiteRuntime, now_ns: Callable[[], int] = time.time_ns):
        self.rt = rt
        self.now_ns = now_ns
        self.max_future_ns = round(rt.config.window.max_future_s * 1e9)

    def _reject(self, raw: bytes, pos: Position, reason: str, message: str, asset: str | None = None) -> Output:
        return self.rt.deadletter(DeadLetter(raw, pos, reason, message, asset=asset))

    def route_feedback(self, fb: Feedback, raw: bytes) -> list[tuple[str, Feedback] | Output]:
        """Key feedback by asset; copy a line- or site-wide maintenance message to every asset it covers."""
        if fb.asset is not None:
            if fb.asset not in self.rt.assets:
                return [self._reject(raw, fb.pos, "unknown_asset", f"feedback names asset {fb.asset!r}, which is not "
                                     f"in the site config ({self.rt.config.site.id})", asset=fb.asset)]
            return [(fb.asset, fb)]
        if fb.line is not None:
            members = self.rt.lines.get(fb.line)
            if members is None:
                return [self._reject(raw, fb.pos, "unknown_line", f"maintenance names line {fb.line!r}, which no "
                                     f"asset of site {self.rt.config.site.id} is on "
                                     f"({', '.join(sorted(self.rt.lines))})")]
        else:
            members = set(self.rt.assets)
        return [(a, replace(fb, asset=a)) for a in sorted(members)]

    def decode_batch(self, msgs: Iterable[Any]) -> list[tuple[str, Frame | Reading | Feedback] | Output]:
        out: list[tuple[str, Frame | Reading | Feedback] | Output] = []
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
            if isinstance(item, Feedback):
                if item.ts_ns > horizon:
                    out.append(self._reject(raw, pos, "future_timestamp",
                                            f"feedback time {iso_ns(item.ts_ns)} is more than "
                                            f"{self.rt.config.window.max_future_s:g} s ahead of this worker's clock",
                                            asset=item.asset))
                else:
                    out.extend(self.route_feedback(item, raw))
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
            attach_moments(frames)
        return out


def attach_moments(frames: list[Frame]) -> None:
    """Compute every frame's per-channel moments, one kernel call per frame shape; drop the samples."""
    groups: dict[tuple[int, int, str], list[Frame]] = defaultdict(list)
    for f in frames:
        s = f.samples
        assert s is not None
        groups[(s.shape[0], s.shape[1], s.dtype.str)].append(f)
    for (_, _, dt), group in groups.items():
        target = np.float64 if dt.endswith("f8") else np.float32
        batch = np.stack([f.samples for f in group]).astype(target, copy=False)  # (F, C, N), C-contiguous
        moments = frame_moments(batch)
        for f, m in zip(group, moments):
            f.moments = m
            f.samples = None

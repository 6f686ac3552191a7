"""The records that flow through aiotstream, in one place.

High-rate data never becomes one Python object per sample: a waveform frame
carries its samples as one numpy array (and, after the feature step, only the
per-channel moments the windows need).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class RawMessage(Protocol):
    """What every source hands to the decoder (bytewax's KafkaSourceMessage fits)."""

    @property
    def topic(self) -> str | None: ...
    @property
    def partition(self) -> int | None: ...
    @property
    def offset(self) -> int | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class SourceMessage:
    """A raw input message with its position, for sources other than Kafka.

    >>> SourceMessage("sim.waveforms", 0, 7, b"...").offset
    7
    """

    topic: str
    partition: int
    offset: int
    value: bytes
    key: bytes | None = None


@dataclass(frozen=True, slots=True)
class Position:
    """Where an input came from: topic/partition/offset (or file/-1/row)."""

    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class Frame:
    """One waveform frame: one asset, C channels x N samples starting at t0.

    ``samples`` is ``(channels, n)``; after the feature step it is dropped
    (set to None) and ``moments`` holds ``(channels, 7)`` moment sums.
    """

    asset: str
    seq: int
    t0_ns: int
    sample_rate_hz: float
    samples: np.ndarray | None
    pos: Position
    moments: np.ndarray | None = None
    raw: bytes | None = None  # the encoded frame, kept until windowing in case it must be dead-lettered

    @property
    def n_samples(self) -> int:
        if self.samples is not None:
            return int(self.samples.shape[-1])
        assert self.moments is not None
        return int(self.moments[0, 0])

    @property
    def end_ns(self) -> int:
        """Event time just after the last sample."""
        return self.t0_ns + round(self.n_samples * 1e9 / self.sample_rate_hz)


@dataclass(frozen=True, slots=True)
class Reading:
    """One scalar reading (temperature, current, ...)."""

    asset: str
    ts_ns: int
    metric: str
    value: float
    pos: Position
    raw: bytes | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Input that could not be used, kept whole with the reason why."""

    raw: bytes
    pos: Position
    reason: str
    message: str
    asset: str | None = None
    extra: dict = field(default_factory=dict)


FEEDBACK_TYPES = ("ack", "clear", "label", "approve", "reject", "command_ack", "maintenance")
"""What a feedback message can say: see :func:`aiotstream.codecs.decode_feedback`."""


@dataclass(frozen=True, slots=True)
class Feedback:
    """An operator or device message about an alert, a command or a maintenance window.

    ``ts_ns`` is when it was sent (event time). After routing, ``asset`` is
    the asset it applies to (a line- or site-wide maintenance message is
    copied to every asset it covers).
    """

    type: str
    asset: str | None
    ts_ns: int
    pos: Position
    alert_id: str | None = None
    alert_type: str | None = None
    command_id: str | None = None
    label: str | None = None
    fault_type: str | None = None
    status: str | None = None
    value: float | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    line: str | None = None
    window_id: str | None = None
    by: str = ""
    note: str = ""
    raw: bytes | None = None

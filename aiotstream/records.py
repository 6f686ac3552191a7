"""The records that flow through aiotstream, in one place.

High-rate data never becomes one Python object per sample: a waveform frame
carries its samples as one numpy array (and, after the feature step, only the
per-channel partial sums the windows need).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from aiotstream.kpi import PeriodResult

KINDS = ("alert", "command", "kpi", "score", "deadletter", "model", "scalar", "audit")
"""The output kinds; each has its topic (``<site>.<kind>s``; ``<site>.deadletter``, ``<site>.scalar_scores``,
``<site>.audit``) and its JSONL file."""


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a feedback message could not be applied (it becomes a dead letter with this reason)."""

    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Output:
    """One output record on its way to a sink: kind picks the topic, key is the asset id.

    ``partial`` carries an asset KPI period's exact totals to the roll-up step;
    sinks write only ``record``.

    >>> Output("alert", "pump-1", {"event": "opened"}).kind
    'alert'
    """

    kind: str
    key: str
    record: dict[str, Any]
    partial: PeriodResult | None = None


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
class DecodeHints:
    """How to decode the messages of one subscription / node / file (shared, not per message).

    ``fmt`` names the payload format (see :data:`aiotstream.codecs.iot.FORMATS`);
    ``missing_ts`` says what a payload without an event time gets: ``"reject"``
    (a ``bad_timestamp`` dead letter) or ``"arrival"`` (the time the source
    received it); ``metric_names`` renames payload metric names.
    """

    fmt: str = "auto"
    missing_ts: str = "reject"
    metric_names: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class DeviceMessage:
    """A raw message from a device-facing source (MQTT, OPC UA, file rows) with its routing.

    ``asset``/``metric`` come from the source's mapping (topic levels, node
    table); the payload may name them too (a mismatch is a dead letter).
    ``arrival_ns`` is the wall-clock time the source received the message.

    >>> DeviceMessage("mqtt:plant/p1/t", -1, 3, b"21.5", DecodeHints("value"), "p1", "t", 5).hints.fmt
    'value'
    """

    topic: str
    partition: int
    offset: int
    value: bytes
    hints: DecodeHints
    asset: str | None = None
    metric: str | None = None
    arrival_ns: int | None = None
    key: bytes | None = None


@dataclass(frozen=True, slots=True, init=False)
class Position:
    """Where an input came from: topic/partition/offset (or file/-1/row).

    Frozen like the other records, with a hand-written ``__init__`` that sets the slots directly: one is
    made per input (per table row), and the generated frozen ``__init__`` (``object.__setattr__`` by name
    per field) costs twice as much. Equality, hash, repr and pickling are the dataclass's.

    >>> Position("t", 0, 5) == Position(topic="t", partition=0, offset=5)
    True
    """

    topic: str
    partition: int
    offset: int

    def __init__(self, topic: str, partition: int, offset: int) -> None:
        _pos_topic(self, topic)
        _pos_partition(self, partition)
        _pos_offset(self, offset)


_pos_topic, _pos_partition, _pos_offset = (Position.__dict__[f].__set__
                                           for f in ("topic", "partition", "offset"))


@dataclass(slots=True)
class Frame:
    """One waveform frame: one asset, C channels x N samples starting at t0.

    ``samples`` is ``(channels, n)``; after the feature step it is dropped
    (set to None): ``partials`` holds the ``(channels, 11)`` time-domain
    partials and, for spectral feature sets, ``spectral`` the ``(channels,
    7 + bands)`` spectral partials (see :mod:`aiotstream.features`).
    """

    asset: str
    seq: int
    t0_ns: int
    sample_rate_hz: float
    samples: np.ndarray | None
    pos: Position
    partials: np.ndarray | None = None
    raw: bytes | None = None  # the encoded frame, kept until windowing in case it must be dead-lettered
    spectral: np.ndarray | None = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle as one flat tuple, arrays as their bytes: frames cross between the processes of a cluster
        (Bytewax pickles what it exchanges), and this pickles and loads a decoded frame in about half the time
        of the default (a slots state dict, numpy's own reduce for each array, a dataclass for the
        position)."""
        pos = self.pos
        return _frame_from_pickle, (self.asset, self.seq, self.t0_ns, self.sample_rate_hz,
                                    _pack(self.samples),
                                    pos.topic, pos.partition, pos.offset, _pack(self.partials), self.raw,
                                    _pack(self.spectral))

    @property
    def n_samples(self) -> int:
        if self.samples is not None:
            return int(self.samples.shape[-1])
        assert self.partials is not None
        return int(self.partials[0, 0])

    @property
    def end_ns(self) -> int:
        """Event time just after the last sample."""
        return self.t0_ns + round(self.n_samples * 1e9 / self.sample_rate_hz)


def _pack(a: np.ndarray | None) -> Any:
    """A plain numeric array as ``(bytes, dtype, shape)``; anything else (None, object or record arrays) as
    is."""
    if a is None or type(a) is not np.ndarray or a.dtype.kind not in "biufc":
        return a
    return a.tobytes(), a.dtype.str, a.shape


def _unpack(x: Any) -> Any:
    if type(x) is not tuple:
        return x
    data, dtype, shape = x
    return np.frombuffer(bytearray(data), dtype=dtype).reshape(shape)  # a bytearray, so the array is writable


def _frame_from_pickle(asset: str, seq: int, t0_ns: int, rate: float, samples: Any, topic: str,
                       partition: int,
                       offset: int, partials: Any, raw: bytes | None, spectral: Any) -> Frame:
    return Frame(asset, seq, t0_ns, rate, _unpack(samples), Position(topic, partition, offset),
                 _unpack(partials),
                 raw, _unpack(spectral))


@dataclass(frozen=True, slots=True, init=False)
class Reading:
    """One scalar reading (temperature, current, ...).

    ``status`` is the source's quality code, OPC UA style: 0 is good, the top
    two bits give the severity (``0b01`` uncertain, ``0b10`` bad). Only
    sources that know the quality (OPC UA with ``bad_quality = "flag"``) set it.
    Its ``__init__`` sets the slots directly, as :class:`Position`'s (one per reading).

    >>> p = Position("f", -1, 0)
    >>> Reading("a", 1, "t", 2.0, p) == Reading("a", 1, "t", 2.0, p, None, 0)
    True
    """

    asset: str
    ts_ns: int
    metric: str
    value: float
    pos: Position
    raw: bytes | None = None
    status: int = 0

    def __init__(self, asset: str, ts_ns: int, metric: str, value: float, pos: Position,
                 raw: bytes | None = None, status: int = 0) -> None:
        _r_asset(self, asset)
        _r_ts(self, ts_ns)
        _r_metric(self, metric)
        _r_value(self, value)
        _r_pos(self, pos)
        _r_raw(self, raw)
        _r_status(self, status)

    @property
    def bad(self) -> bool:
        """True when the status code's severity is Bad (top bit set)."""
        return bool(self.status & 0x8000_0000)


_r_asset, _r_ts, _r_metric, _r_value, _r_pos, _r_raw, _r_status = (
    Reading.__dict__[f].__set__ for f in ("asset", "ts_ns", "metric", "value", "pos", "raw", "status"))


class ReadingColumns:
    """One asset's table readings from one :class:`ReadingRows` block, as columns (no object per value).

    Reading ``i`` is ``Reading(asset, ts_ns[i], metrics[i], values[i], Position(topic, partition,
    offsets[i]), raws[i])`` (good quality; ``raws`` the Kafka messages' bytes, None for table rows, which
    have none), in the block's order: :meth:`readings` makes exactly those objects. The decoders (table rows,
    Kafka blocks of JSON readings) hand these to the per-asset step, which takes them in one pass when it can
    (the windows and the scalar rows read the columns) and otherwise turns them back into readings.

    >>> c = ReadingColumns("a", "f", -1, [5], ["t"], [2.0], [7])
    >>> c.readings() == [Reading("a", 5, "t", 2.0, Position("f", -1, 7))], len(c)
    (True, 1)
    """

    __slots__ = ("asset", "in_order", "metrics", "offsets", "partition", "raws", "topic", "ts_ns", "values")

    in_order: bool
    """The maker knows that ``ts_ns`` and ``offsets`` are both in order (non-decreasing; False: not known,
    the taker checks). The decoder knows it once per block of rows: a block whose times and row numbers are
    in order has them in order in every asset's columns (each a subsequence of the block's)."""

    def __init__(self, asset: str, topic: str, partition: int, ts_ns: list[int], metrics: list[str],
                 values: list[float], offsets: list[int], in_order: bool = False,
                 raws: list[bytes] | None = None) -> None:
        self.asset = asset
        self.in_order = in_order
        self.topic = topic
        self.partition = partition
        self.ts_ns = ts_ns
        self.metrics = metrics
        self.values = values
        self.offsets = offsets
        self.raws = raws

    def __len__(self) -> int:
        return len(self.ts_ns)

    def __repr__(self) -> str:
        return f"ReadingColumns({self.asset!r}, {self.topic!r}, {self.partition}, {len(self)} readings)"

    def __getstate__(self) -> tuple:
        return (self.asset, self.topic, self.partition, self.ts_ns, self.metrics, self.values, self.offsets,
                self.in_order, self.raws)

    def __setstate__(self, state: tuple) -> None:
        (self.asset, self.topic, self.partition, self.ts_ns, self.metrics, self.values,
         self.offsets) = state[:7]
        self.in_order = len(state) > 7 and state[7]  # (a state from before the flag: not known)
        self.raws = state[8] if len(state) > 8 else None

    def readings(self) -> list[Reading]:
        """The readings these columns stand for, in order."""
        a, topic, part = self.asset, self.topic, self.partition
        if self.raws is not None:
            return [Reading(a, t, m, v, Position(topic, part, o), r)
                    for t, m, v, o, r in zip(self.ts_ns, self.metrics, self.values, self.offsets, self.raws)]
        return [Reading(a, t, m, v, Position(topic, part, o))
                for t, m, v, o in zip(self.ts_ns, self.metrics, self.values, self.offsets)]


def expand_columns(items: list) -> list:
    """``items`` with every :class:`ReadingColumns` replaced by its readings (the others as they are)."""
    out: list = []
    for x in items:
        if type(x) is ReadingColumns:
            out.extend(x.readings())
        else:
            out.append(x)
    return out


@dataclass(slots=True)
class ReadingRows:
    """A block of table rows (CSV / Parquet / JSONL with a column mapping) as columns, for the batch path.

    Row ``i`` is a reading ``(assets[i], ts_ns[i], metrics[i], values[i])`` at
    row number ``rows[i]`` of the file named by ``topic``; ``rejects`` are rows
    that could not be parsed: ``(row, raw bytes, reason, message)``.
    """

    topic: str
    partition: int
    rows: np.ndarray  # int64 row numbers
    assets: list[str]
    ts_ns: np.ndarray  # int64
    metrics: list[str]
    values: np.ndarray  # float64
    rejects: list[tuple[int, bytes, str, str]] = field(default_factory=list)
    # ``(rows.tolist(), ts_ns.tolist())`` made by the reader (None: the decoder makes them from the arrays). A
    # wide table's reader makes them once per file batch with one int per file row, shared by the row's
    # readings, instead of one object per reading each poll batch; whoever sets ``rows`` or ``ts_ns``
    # afterwards sets this to None
    lists: tuple[list[int], list[int]] | None = None

    def __len__(self) -> int:
        return len(self.assets)


DEADLETTER_PREFIX_BYTES = 1_024
"""What a dead letter keeps of an input it cannot keep whole (with the input's length and sha256)."""
DEADLETTER_MESSAGE_CHARS = 1_000
"""A dead letter's message is cut to this many characters (it may quote the input)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Input that could not be used, kept whole with the reason why (``truncate``: keep only a prefix, e.g.
    for an input over the size limit; see :meth:`aiotstream.decisions.runtime.DecisionRuntime.deadletter`)."""

    raw: bytes
    pos: Position
    reason: str
    message: str
    asset: str | None = None
    extra: dict = field(default_factory=dict)
    truncate: bool = False


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
    reset: bool = False  # maintenance: the machine was reset (its detectors re-baseline at ``end_ns``)


@dataclass(frozen=True, slots=True)
class ModelSwitch:
    """A model promotion that passed its checks, copied to every asset (from ``<site>.control``).

    ``variant``: ``champion`` (every asset decides with ``ref`` from now on;
    a canary ends), ``canary`` (the assets whose share is below ``fraction``
    decide with ``ref``) or ``shadow`` (``ref`` scores beside the champion;
    None stops the shadow).
    """

    asset: str
    variant: str
    ref: str | None
    fraction: float
    ts_ns: int
    pos: Position


class MessageBlock:
    """One poll batch of one topic partition: ``values[i]`` is at ``offsets[i]``; ``errors`` are Bytewax
    ``KafkaError`` items for messages the consumer flagged. ``count`` is the number of messages."""

    __slots__ = ("errors", "offsets", "partition", "topic", "values")

    def __init__(self, topic: str, partition: int, values: list[bytes], offsets: list[int],
                 errors: list[Any] | None = None):
        self.topic = topic
        self.partition = partition
        self.values = values
        self.offsets = offsets
        self.errors = errors or []

    @property
    def count(self) -> int:
        return len(self.values) + len(self.errors)

    @property
    def nbytes(self) -> int:
        """The values' bytes (what byte-counting wrappers read: benchmarks.flowrun), without joining them."""
        return sum(map(len, self.values))

    def __reduce__(self) -> tuple:
        return (MessageBlock, (self.topic, self.partition, self.values, self.offsets, self.errors))

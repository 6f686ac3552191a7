"""Fuzz kinds ``frames`` and ``readings``: hypothesis strategies and runners over the real decode -> analyze path.

A *case* is one input message. Strategies draw poll batches of messages: valid
ones, and ones with wrong types, extreme headers and values (1e308, float32's
max, NaN, subnormals), extreme and random event times (0, 1, 1970, 2^63-1,
beyond), mutated, truncated and extended bytes, injection ids (``evil/#``),
huge and deeply nested JSON, duplicates (a message sent again) and random order
within a batch. A :class:`Harness` feeds them through
:class:`~aiotstream.pdm.ingest.Ingestor` and one :class:`~aiotstream.pdm.asset.AssetAnalyzer`
per asset, as the dataflow does (no Bytewax), and accounts for every message:

* **escapes**: exceptions that left the dead-letter path (the decode or analyze step raised);
* **lost**: messages with no dead letter whose items did not all reach a window (nor were
  dropped on purpose as duplicates), plus any difference between the items accepted into
  windows and the items the closed windows hold (sliding windows are not used here, so each
  item is in exactly one);
* **invalid**: emitted records that do not validate against ``outputs.schema.json`` once written
  as JSON (orjson writes NaN as null), or that a sink would have to replace.

The unit tests (``tests/unit/test_fuzz_data.py``) run the same strategies; ``python -m
benchmarks.fuzz`` runs the runners at 100,000 cases per kind and measures memory.
"""
from __future__ import annotations

import json
import struct
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from aiotstream.codecs import MAGIC
from aiotstream.config import SiteConfig
from aiotstream.io.sinkguard import problem
from aiotstream.pdm.asset import AssetAnalyzer
from aiotstream.pdm.ingest import Ingestor
from aiotstream.pdm.runtime import SiteRuntime
from aiotstream.records import DecodeHints, DeviceMessage, Feedback, Output, SourceMessage
from aiotstream.runstats import STATS
from aiotstream.schemas import validator

S = 1_000_000_000
BASE_NS = 1_767_225_600 * S  # 2026-01-01: the fuzz's own event-time origin
ASSETS = ("asset-000", "asset-001", "asset-002")
RATE = 10_000.0
METRICS = ("temperature", "state", "parts_total", "parts_good", "power_kw", "baseline_power_kw", "vibration")
BAD_IDS = ("evil/#", "a/+/b", "#", "+", "", " ", "asset-000/x", "../asset-000", "a" * 129, "\u00e9t\u00e9",
           "asset-000\x00", "$SYS", "unknown-asset")
HEAD = struct.Struct("<4sBBHIdqQH")
EXTREME_TIMES = (0, 1, 1_000, -1, 2**31, 2**53 + 1, 2**62, 2**63 - 1, 2**63, 2**64 - 1, 10**19, 10**30)
EXTREME_VALUES = (0.0, -0.0, 5e-324, 1e-300, 1.0, -1.0, 1e11, -1e11, 1e12, 1e13, 3.4028234663852886e38,
                  -3.4028234663852886e38, 1e300, 1e308, -1e308, 1.7976931348623157e308, float("nan"), float("inf"),
                  float("-inf"))


def fuzz_config() -> SiteConfig:
    """Three 3-axis assets at 10 kHz, 1 s tumbling windows, 5 s KPI periods, frames and readings independent."""
    return SiteConfig.from_dict({
        "site": {"id": "fz"},
        "assets": [{"id": a, "line": f"line-{i % 2}", "ideal_cycle_time_s": 2.0} for i, a in enumerate(ASSETS)],
        "inputs": {"tail": False, "max_message_bytes": 262_144},
        "window": {"wait_for_readings": False, "max_past_s": 3_600},
        "model": {"warmup_windows": 3},
        "kpi": {"periods_s": [5], "max_gap_s": 60},
    })


# ---- frames ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FrameSpec:
    """One frame message to render: header fields, how to make the samples, how to damage the bytes."""

    asset: str
    seq: int
    t_rel_ns: int  # added to the harness's moving clock
    t_abs: int | None  # an absolute event time (extreme) instead
    code: int  # dtype code in the header (1 f32, 2 f64, 3 i16; others are bad)
    channels: int
    n: int
    rate: float
    scale: float
    specials: tuple[tuple[int, float], ...]  # (flat index, value) written over the samples
    mutation: tuple[str, int, int]  # (kind, position, value)
    repeat: int  # >= 0: send message #repeat of the batch again instead (a retransmit)


FRAME_FAULTS = ("none",) * 16 + ("asset", "seq", "time", "time", "dtype", "channels", "n", "rate", "values",
                                  "specials", "specials", "bytes", "bytes", "bytes")
"""What a frame spec gets wrong (one thing at most): mostly nothing, so windows fill and close."""


@st.composite
def _frame_specs(draw: st.DrawFn) -> FrameSpec:
    fault = draw(st.sampled_from(FRAME_FAULTS))
    t_abs = None
    t_rel = draw(st.integers(-2 * S, 2 * S))
    if fault == "time":
        t_abs = draw(st.sampled_from(EXTREME_TIMES) | st.integers(0, 2**63 - 1) | st.none())
        if t_abs is None:  # days away from the clock: too old, too new, or far in the past of a replay
            t_rel = draw(st.integers(-40 * 86_400 * S, 40 * 86_400 * S))
    return FrameSpec(
        asset=draw(st.sampled_from(BAD_IDS) | st.text(max_size=20)) if fault == "asset" else draw(st.sampled_from(ASSETS)),
        seq=draw(st.integers(0, 2**64 - 1)) if fault == "seq" else draw(st.integers(0, 60)),
        t_rel_ns=t_rel, t_abs=t_abs,
        code=draw(st.integers(0, 255)) if fault == "dtype" else draw(st.sampled_from((1, 1, 2, 3))),
        channels=draw(st.integers(0, 70)) if fault == "channels" else 3,
        n=draw(st.integers(0, 1 << 21)) if fault == "n" else draw(st.sampled_from((64, 128, 256))),
        rate=draw(st.floats()) if fault == "rate" else RATE,
        scale=draw(st.sampled_from((1e13, 1e300, 1e-300, 1e12))) if fault == "values"
        else draw(st.sampled_from((1.0,) * 6 + (1e-30, 1e3, 1e11))),
        specials=tuple(draw(st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(EXTREME_VALUES)), min_size=1,
                                     max_size=3))) if fault == "specials" else (),
        mutation=draw(st.tuples(st.sampled_from(("truncate", "extend", "flip", "length", "magic", "version",
                                                 "asset_len")), st.integers(0, 4096), st.integers(0, 255)))
        if fault == "bytes" else ("none", 0, 0),
        repeat=draw(st.sampled_from((-1,) * 8 + (0, 1, 2))),
    )


def render_frame(spec: FrameSpec, clock_ns: int) -> bytes:
    """The spec as bytes: a frame v1 (the header written field by field, so any value fits), then damage."""
    t0 = spec.t_abs if spec.t_abs is not None else clock_ns + spec.t_rel_ns
    t0 = max(-(2**63), min(2**63 - 1, t0))
    dtype = {1: np.float32, 2: np.float64, 3: np.int16}.get(spec.code, np.float32)
    rng = np.random.default_rng(spec.seq % 2**32)
    c, n = min(spec.channels, 64), min(spec.n, 512)
    with np.errstate(all="ignore"):
        x = rng.standard_normal((c, n)) * spec.scale
        flat = x.reshape(-1)
        for i, v in spec.specials:
            if flat.size:
                flat[i % flat.size] = v
        samples = (np.clip(x, -32768, 32767) if dtype is np.int16 else x).astype(dtype).tobytes()
    aid = spec.asset.encode("utf-8", "surrogatepass")
    seq = spec.seq % 2**64
    head = HEAD.pack(MAGIC, 1, spec.code, spec.channels % 65536, spec.n, spec.rate, t0, seq, len(aid) % 65536)
    raw = bytearray(head + aid + samples)
    kind, pos, val = spec.mutation
    if kind == "truncate":
        del raw[pos % (len(raw) + 1):]
    elif kind == "extend":
        raw += bytes([val]) * (pos % 64 + 1)
    elif kind == "flip" and raw:
        raw[pos % len(raw)] ^= val or 1
    elif kind == "length":
        struct.pack_into("<I", raw, 8, (spec.n + val - 128) % 2**32)
    elif kind == "magic":
        raw[pos % 4] = val
    elif kind == "version":
        raw[4] = val
    elif kind == "asset_len":
        struct.pack_into("<H", raw, 36, val * 3)
    return bytes(raw)


# ---- readings --------------------------------------------------------------------------------------
_JSON_LEAF = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)
_JSON_ANY = st.recursive(_JSON_LEAF, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
    st.text(max_size=6), kids, max_size=3), max_leaves=8)


@dataclass(frozen=True, slots=True)
class ReadingSpec:
    """One reading message: its JSON fields (or a replacement body), transport and damage."""

    fields: tuple[tuple[str, Any], ...]  # key -> value; "ts" as ("rel", ns) or ("abs", value) is resolved later
    body: str  # "object", "array", "scalar", "nested", "huge", "garbage", "feedback"
    transport: str  # "kafka" or a device format: json, gateway-json, sparkplug-json, onem2m, value, auto
    mapped_asset: str | None
    mutation: tuple[str, int, int]
    repeat: int


READING_FAULTS = ("none",) * 14 + ("asset", "ts", "ts", "metric", "value", "value", "types", "extra", "body",
                                    "body", "bytes", "bytes", "transport", "transport", "transport")


@st.composite
def _reading_specs(draw: st.DrawFn) -> ReadingSpec:
    fault = draw(st.sampled_from(READING_FAULTS))
    asset: Any = draw(st.sampled_from(ASSETS))
    ts: Any = ("rel", draw(st.integers(-2 * S, 2 * S)))
    metric: Any = draw(st.sampled_from(METRICS[:2] * 4 + METRICS))
    value: Any = draw(st.floats(-100.0, 100.0) | st.sampled_from((0, 1, 2, 3)) | st.integers(0, 10**6))
    if fault == "asset":
        asset = draw(st.sampled_from(BAD_IDS) | _JSON_LEAF)
    elif fault == "ts":
        ts = draw(st.tuples(st.just("abs"), st.sampled_from(EXTREME_TIMES) | _JSON_LEAF)
                  | st.tuples(st.just("rel"), st.integers(-40 * 86_400 * S, 40 * 86_400 * S)))
    elif fault == "metric":
        metric = draw(_JSON_LEAF | st.text(min_size=200, max_size=300))
    elif fault == "value":
        value = draw(st.sampled_from(EXTREME_VALUES) | st.integers(-(2**70), 2**70) | st.sampled_from((4, -1, 2.5)))
    elif fault == "types":
        asset, metric, value = draw(_JSON_ANY), draw(_JSON_ANY), draw(_JSON_ANY)
    fields = {"asset": asset, "ts": ts, "metric": metric, "value": value}
    if fault == "extra":
        fields[draw(st.sampled_from(("extra", "ts_ms", "schema")))] = draw(_JSON_ANY)
    transport = "kafka"
    mapped = None
    if fault == "transport":
        transport = draw(st.sampled_from(("json", "gateway-json", "sparkplug-json", "onem2m", "value", "auto")))
        mapped = draw(st.none() | st.sampled_from(ASSETS) | st.sampled_from(BAD_IDS))
    return ReadingSpec(
        fields=tuple(fields.items()),
        body=draw(st.sampled_from(("array", "scalar", "nested", "huge", "garbage", "feedback"))) if fault == "body"
        else "object",
        transport=transport, mapped_asset=mapped,
        mutation=draw(st.tuples(st.sampled_from(("truncate", "extend", "flip", "space")), st.integers(0, 4096),
                                st.integers(0, 255))) if fault == "bytes" else ("none", 0, 0),
        repeat=draw(st.sampled_from((-1,) * 8 + (0, 1))))


def _dumps(obj: Any) -> bytes:
    """JSON with what orjson refuses too: integers beyond 64 bits, NaN / Infinity literals."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return json.dumps(obj, default=repr).encode("utf-8", "surrogatepass")


def render_reading(spec: ReadingSpec, clock_ns: int) -> bytes:
    d: dict[str, Any] = {}
    for k, v in spec.fields:
        if k == "ts":
            v = clock_ns + v[1] if v[0] == "rel" else v[1]
        d[k] = v
    if spec.body == "array":
        obj: Any = [d, d]
    elif spec.body == "scalar":
        obj = d.get("value")
    elif spec.body == "nested":
        raw = b'{"asset": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"
        obj = None
    elif spec.body == "huge":
        raw = _dumps({**d, "pad": "x" * 300_000})  # over the fuzz config's 256 KiB input limit
        obj = None
    elif spec.body == "garbage":
        raw = bytes((spec.mutation[1] * 7 + i * 13) % 256 for i in range(spec.mutation[2] % 64))
        obj = None
    elif spec.body == "feedback":
        obj = {"schema": "aiotstream.feedback/1", "type": "ack", "asset": d.get("asset"), "alert_type": "anomaly",
               "ts": d.get("ts")}
    else:
        obj = d
    if spec.body not in ("nested", "huge", "garbage"):
        raw = _dumps(obj)
    if spec.transport == "gateway-json" and isinstance(obj, dict):
        raw = _dumps({"asset": d.get("asset"), "ts": d.get("ts"), "values": {str(d.get("metric")): d.get("value")}})
    elif spec.transport == "sparkplug-json" and isinstance(obj, dict):
        ts = d.get("ts")
        raw = _dumps({"timestamp": ts // 1_000_000 if isinstance(ts, int) else ts,
                      "metrics": [{"name": d.get("metric"), "value": d.get("value")}]})
    elif spec.transport == "onem2m" and isinstance(obj, dict):
        raw = _dumps({"m2m:sgn": {"nev": {"rep": {"m2m:cin": {"con": {"value": d.get("value"), "ts": d.get("ts")}}}},
                                  "sur": f"/cse/{d.get('asset')}/{d.get('metric')}/sub"}})
    elif spec.transport == "value":
        raw = repr(d.get("value")).encode("utf-8", "surrogatepass")
    kind, pos, val = spec.mutation
    b = bytearray(raw)
    if kind == "truncate":
        del b[pos % (len(b) + 1):]
    elif kind == "extend":
        b += bytes([val]) * (pos % 16 + 1)
    elif kind == "flip" and b:
        b[pos % len(b)] ^= val or 1
    elif kind == "space":
        b[:0] = b" \n\t"
    return bytes(b)


# ---- batches ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Batch:
    """A poll batch: the specs in send order (after a random permutation)."""

    kind: str
    specs: tuple[Any, ...]
    order: tuple[int, ...]


def batches(kind: str, max_size: int = 12) -> st.SearchStrategy[Batch]:
    """Poll batches of ``kind`` (``frames`` or ``readings``) in random order, with duplicates."""
    spec = _frame_specs() if kind == "frames" else _reading_specs()
    return st.lists(spec, min_size=1, max_size=max_size).flatmap(
        lambda specs: st.permutations(range(len(specs))).map(lambda order: Batch(kind, tuple(specs), tuple(order))))


# ---- the harness -----------------------------------------------------------------------------------
@dataclass
class Harness:
    """Decode and analyze batches as the dataflow does (one analyzer per asset), accounting for every message."""

    kind: str
    validate: bool = True
    step_ns: int = 50_000_000  # the clock moves on by this much per message
    cfg: SiteConfig = field(default_factory=fuzz_config)
    cases: int = 0
    escapes: int = 0
    escape_examples: Counter = field(default_factory=Counter)
    lost: int = 0
    invalid: int = 0
    invalid_examples: Counter = field(default_factory=Counter)
    outputs: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)

    rt: SiteRuntime | None = None  # shared by harnesses of one config (tests make one per example)

    def __post_init__(self) -> None:
        self.rt = self.rt or SiteRuntime(self.cfg)
        self.clock_ns = BASE_NS
        self.ingest = Ingestor(self.rt, now_ns=lambda: self.clock_ns + 60 * S)
        self.analyzers: dict[str, AssetAnalyzer] = {}
        self.accepted = 0  # items the windows took
        self.windowed = 0  # items the closed windows held
        self.offset = 0
        self.validators = {k: validator(k) for k in ("alert", "command", "kpi", "score", "deadletter", "model")} \
            if self.validate else {}

    def _analyzer(self, asset: str) -> AssetAnalyzer:
        a = self.analyzers.get(asset)
        if a is None:
            a = self.analyzers[asset] = AssetAnalyzer(self.rt, asset)
            add, close = a.windows.add, a.windows._close

            def counted_add(items: list, now_s: float | None = None) -> Any:
                closed, late = add(items, now_s)
                self.accepted += len(items) - len(late)
                self._taken.update(i.pos.offset for i in items)
                self._taken.subtract(i.pos.offset for i in late)
                return closed, late

            def counted_close(start: int) -> Any:
                w = close(start)
                self.windowed += w.n_frames + sum(len(v) for v in w.readings.values())
                return w

            a.windows.add, a.windows._close = counted_add, counted_close  # type: ignore[method-assign]
        return a

    def messages(self, batch: Batch) -> list[Any]:
        """Render a batch as source messages (Kafka-like, or device messages for other transports)."""
        out: list[Any] = []
        raws: list[bytes] = []
        for k in batch.order:
            spec = batch.specs[k]
            self.clock_ns += self.step_ns
            if 0 <= spec.repeat < len(raws):
                raw = raws[spec.repeat]
            elif batch.kind == "frames":
                raw = render_frame(spec, self.clock_ns)
            else:
                raw = render_reading(spec, self.clock_ns)
            raws.append(raw)
            self.offset += 1
            transport = getattr(spec, "transport", "kafka")
            if transport == "kafka":
                topic = "fz.waveforms" if batch.kind == "frames" else "fz.readings"
                out.append(SourceMessage(topic, 0, self.offset, raw))
            else:
                out.append(DeviceMessage(f"mqtt:fz/{spec.mapped_asset}", -1, self.offset, raw,
                                         DecodeHints(transport, "arrival"), spec.mapped_asset,
                                         "temperature" if transport == "value" else None, self.clock_ns))
        return out

    def feed(self, batch: Batch) -> None:
        msgs = self.messages(batch)
        self.cases += len(msgs)
        self._taken: Counter = Counter()
        offsets = {m.offset for m in msgs}
        dead: set[int] = set()
        items_of: Counter = Counter()
        outs: list[Output] = []
        dropped0 = STATS.get("dropped", "duplicate_frame")
        empty0 = STATS.get("dropped", "no_telemetry")
        try:
            decoded = self.ingest.decode_grouped(msgs)
            for x in decoded:
                if isinstance(x, Output):
                    outs.append(x)
                    continue
                asset, items = x
                for it in items:
                    items_of[it.pos.offset] += 1
                    if isinstance(it, Feedback):  # applied in event-time order, maybe later: the control plane's
                        self._taken[it.pos.offset] += 1
                # tailing, with the fuzz clock as the wall clock: a stream that never shows up (frames for the
                # readings kind) stops holding the windows after idle_close_s, as in a deployed flow; a bounded
                # replay would hold them, and every reading, to the end of the input
                outs += self._analyzer(asset).on_items(items, self.clock_ns / 1e9)
        except Exception as exc:  # noqa: BLE001 - an escape is what this counts
            self._escape(exc)
            self.lost += len(msgs)
            return
        dups = STATS.get("dropped", "duplicate_frame") - dropped0
        empty = STATS.get("dropped", "no_telemetry") - empty0
        for o in outs:
            self._check(o)
            if o.kind == "deadletter":
                src = o.record["source"]
                if src["offset"] in offsets:
                    dead.add(src["offset"])
        # a message with a dead letter is accounted for; else each of its items must be in a window, except
        # retransmitted frames and messages without telemetry, dropped on purpose (and counted in STATS)
        lost_items = sum(max(0, items_of[off] - self._taken[off]) for off in offsets if off not in dead)
        no_items = sum(1 for off in offsets if off not in dead and items_of[off] == 0)
        self.lost += max(0, lost_items - dups) + max(0, no_items - empty)

    def finish(self) -> None:
        """End of input: flush every asset, then compare what the windows took with what they held."""
        try:
            for a in self.analyzers.values():
                for o in a.flush():
                    self._check(o)
        except Exception as exc:  # noqa: BLE001
            self._escape(exc)
        self.lost += abs(self.accepted - self.windowed)

    def _escape(self, exc: BaseException) -> None:
        self.escapes += 1
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        self.escape_examples[f"{type(exc).__name__}: {str(exc)[:120]} ({frame.filename.rsplit('/', 1)[-1]}:"
                             f"{frame.lineno})"] += 1

    def _check(self, o: Output) -> None:
        self.outputs[o.kind] += 1
        if o.kind == "deadletter":
            self.reasons[o.record["reason"]] += 1
        bad = problem(o.record)
        if bad is not None:
            self.invalid += 1
            self.invalid_examples[f"{o.kind}: not JSON-safe at {bad[0]} ({bad[1][:20]})"] += 1
            return
        v = self.validators.get(o.kind)
        if v is not None:
            err = next(iter(v.iter_errors(orjson.loads(orjson.dumps(o.record)))), None)
            if err is not None:
                self.invalid += 1
                self.invalid_examples[f"{o.kind}: {err.message[:100]} at {list(err.path)}"] += 1

    def result(self, seconds: float) -> dict[str, Any]:
        return {"kind": self.kind, "cases": self.cases, "escapes": self.escapes,
                "escape_examples": [f"{n}x {e}" for e, n in self.escape_examples.most_common(5)],
                "lost": self.lost, "seconds": round(seconds, 2), "invalid": self.invalid,
                "invalid_examples": [f"{n}x {e}" for e, n in self.invalid_examples.most_common(5)],
                "outputs": dict(self.outputs), "deadletter_reasons": dict(self.reasons.most_common()),
                "duplicates_dropped": STATS.get("dropped", "duplicate_frame")}


def run(kind: str, cases: int, seed: int) -> dict[str, Any]:
    """Runner contract of :mod:`benchmarks.fuzz`: feed ``cases`` messages of ``kind``; the counts as a dict."""
    h = Harness(kind)
    strategy = batches(kind)
    chunk = 0
    t0 = time.perf_counter()
    tty = sys.stderr.isatty()
    last = 0.0
    while h.cases < cases:
        # hypothesis keeps what it generated for the life of one @given run: run it in chunks so that its own
        # memory does not grow with the number of cases (what is measured is the flow's)
        @settings(max_examples=500, database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @hypothesis_seed(seed * 100_003 + chunk)
        @given(strategy)
        def step(batch: Batch) -> None:
            if h.cases < cases:
                h.feed(batch)

        step()
        chunk += 1
        if tty and time.perf_counter() - last > 0.5:
            last = time.perf_counter()
            print(f"\r  {kind}: {h.cases:,}/{cases:,} cases, {h.escapes} escapes, {h.lost} lost", end="",
                  file=sys.stderr, flush=True)
    h.finish()
    if tty:
        print(file=sys.stderr)
    return h.result(time.perf_counter() - t0)


KINDS = {"frames": run, "readings": run}

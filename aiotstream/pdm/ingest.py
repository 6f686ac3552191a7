"""Decode a poll batch: bytes -> validated frames/readings/feedback (keyed by asset) + dead letters.

One call per poll batch, not per message: frames of the same shape, dtype and
sample rate are stacked and reduced to per-channel partials by one call of each
kernel the feature set needs (time domain; spectral for spectral sets; GIL
released), and the samples are dropped, so nothing high-rate travels further as
Python objects.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import replace
from itertools import groupby
from typing import Any

import numpy as np
import orjson

from aiotstream._kernels import frame_partials_each, sample_range, take_frames
from aiotstream.auth import (
    Refusal,
    Refused,
    admit,
    decode_payload_signed,
    decode_signed,
    refusal_extra,
    site_verifier,
)
from aiotstream.codecs.feedback import decode_erase, is_erase
from aiotstream.codecs.frames import DTYPES
from aiotstream.codecs.readings import group_columns, plain_readings
from aiotstream.errors import DecodeError
from aiotstream.features import FeatureSet, frame_partials_batch
from aiotstream.governance import Erasure
from aiotstream.ids import ID_HINT, is_valid_id
from aiotstream.lineage import iso_ns
from aiotstream.pdm.rollout import Rollout
from aiotstream.pdm.runtime import SiteRuntime
from aiotstream.records import (
    DeadLetter,
    Feedback,
    Frame,
    MessageBlock,
    Output,
    Position,
    Reading,
    ReadingColumns,
    ReadingRows,
    SourceMessage,
)
from aiotstream.runstats import STATS, count_inputs

log = logging.getLogger(__name__)
_I64_MAX = (1 << 63) - 1
_FRAME_DTYPES = (None, DTYPES[1], DTYPES[2], DTYPES[3])  # take_frames: a frame's dtype code -> its dtype


class Ingestor:
    """Turns raw source messages into ``(asset, Frame | Reading)`` pairs and dead-letter outputs.

    A message is decoded by :func:`~aiotstream.codecs.decode_any` (Kafka,
    simulator), or, when it carries :class:`~aiotstream.records.DecodeHints`
    (MQTT, OPC UA, file lines), in the format they name; a gateway message can
    give many readings. :class:`~aiotstream.records.ReadingRows` (table files)
    and the plain JSON readings of a :class:`~aiotstream.records.MessageBlock`
    (a Kafka poll batch) are checked column-wise.
    """

    def __init__(self, rt: SiteRuntime, now_ns: Callable[[], int] = time.time_ns, live: bool | None = None):
        """``live`` (default: ``inputs.tail``): the flow is tailing, so a message that a device source stamped
        with its arrival time may be judged against it (``window.max_past_s``); a bounded run (a test, a
        replay of recorded MQTT traffic) is not."""
        self.rt = rt
        self.now_ns = now_ns
        cfg = rt.config
        self.live = cfg.inputs.tail if live is None else live
        self.max_future_ns = round(cfg.window.max_future_s * 1e9)
        self.max_past_ns = round(cfg.window.max_past_s * 1e9)
        self.max_bytes = cfg.inputs.max_message_bytes
        self.max_abs = cfg.inputs.max_abs_value
        self.source_errors = 0
        self._rpm = {a: c.rpm for a, c in rt.assets.items()}  # running speed for the spectral 1x/2x bands
        self.control_topics = frozenset(rt.config.control_topics())
        self.rollout = Rollout(rt, now_ns)  # model promotions on the control topics
        self.verifier = site_verifier(cfg, now_ns)  # [auth]: signed control, feedback and ack messages
        # the site's assets as take_frames looks a frame's id up: UTF-8 bytes -> (id, channels, sample rate);
        # valid ids only (any other goes the Python path, which says why)
        self._known_frames = {a.encode(): (a, len(c.channels), float(c.sample_rate_hz))
                              for a, c in rt.assets.items() if is_valid_id(a)}

    def _reject(self, raw: bytes, pos: Position, reason: str, message: str, asset: str | None = None,
                item: int | None = None, truncate: bool = False,
                extra: dict[str, Any] | None = None) -> Output:
        extra = dict(extra or {}) if item is None else {**(extra or {}), "item": item}
        return self.rt.deadletter(DeadLetter(raw, pos, reason, message, asset=asset, extra=extra,
                                             truncate=truncate))

    def route_feedback(self, fb: Feedback, raw: bytes) -> list[tuple[str, Feedback] | Output]:
        """Key feedback by asset; copy a line- or site-wide maintenance message to every asset it covers."""
        if fb.asset is not None:
            if fb.asset not in self.rt.assets:
                return [self._reject(raw, fb.pos, "unknown_asset",
                                     f"feedback names asset {fb.asset!r}, which is not in the site config "
                                     f"({self.rt.config.site.id})", asset=fb.asset)]
            return [(fb.asset, fb)]
        if fb.line is not None:
            members = self.rt.lines.get(fb.line)
            if members is None:
                return [self._reject(raw, fb.pos, "unknown_line",
                                     f"maintenance names line {fb.line!r}, which no asset of site "
                                     f"{self.rt.config.site.id} is on ({', '.join(sorted(self.rt.lines))})")]
        else:
            members = set(self.rt.assets)
        return [(a, replace(fb, asset=a)) for a in sorted(members)]

    def decode_batch(self, msgs: Iterable[Any]) -> list[tuple[str, Frame | Reading] | Output]:
        """Decode a poll batch; items and dead letters in input order."""
        out: list[tuple[str, Frame | Reading] | Output] = []
        self._decode(msgs, lambda it: out.append((it.asset, it)), out.append)
        return out

    def decode_grouped(self, msgs: Iterable[Any]) -> list[tuple[str, list[Frame | Reading]] | Output]:
        """Decode a poll batch and group it per asset in the same step: one ``(asset, items)`` per asset.

        This is what crosses to the per-asset step, so scalar telemetry moves as
        one list per asset and poll batch, not one object per reading.
        """
        groups: dict[str, list[Frame | Reading]] = {}
        dead: list[tuple[str, list[Frame | Reading]] | Output] = []

        def add(it: Frame | Reading) -> None:
            g = groups.get(it.asset)
            if g is None:
                groups[it.asset] = [it]
            else:
                g.append(it)

        self._decode(msgs, add, dead.append, groups)
        dead.extend(groups.items())
        return dead

    def _decode(self, msgs: Iterable[Any], emit: Callable[[Frame | Reading | Feedback], None],
                reject: Callable[[Output], None],
                groups: dict[str, list[Frame | Reading]] | None = None) -> None:
        """``groups``: the per-asset lists ``emit`` appends to, if it does only that (table rows then go
        straight into them)."""
        frames: list[Frame] = []
        no_items = 0
        horizon = self.now_ns() + self.max_future_ns
        msgs = msgs if isinstance(msgs, list) else list(msgs)
        inputs = count_inputs(msgs)
        STATS.observe("batch_size", inputs, ("decode",))  # messages, not blocks
        kinds = {"frame": 0, "reading": 0, "feedback": 0, "control": 0}  # integer adds, one per record
        for msg in msgs:
            if isinstance(msg, ReadingRows):
                kinds["reading"] += self._rows(msg, horizon, emit, reject, groups)
            elif type(msg) is MessageBlock:
                no_items += self._block(msg, horizon, emit, reject, groups, frames, kinds)
            else:
                no_items += self._message(msg, horizon, emit, reject, frames, kinds)
        kinds["frame"] = len(frames)
        STATS.level("input_records", {k: n for k, n in kinds.items() if n})
        if frames:
            attach_partials(frames, self.rt.feature_set, self._rpm)
        if no_items:
            STATS.add("dropped", "no_telemetry", no_items)

    def _message(self, msg: Any, horizon: int, emit: Callable[[Frame | Reading | Feedback], None],
                 reject: Callable[[Output], None], frames: list[Frame], kinds: dict[str, int]) -> int:
        """One source message (or consumer error): its items emitted, its frames also kept in ``frames``
        (for :func:`attach_partials`), dead letters rejected, ``kinds`` counted; 1 if it held no telemetry."""
        if hasattr(msg, "err"):  # bytewax KafkaError: the consumer could not deliver this message
            inner = msg.msg
            if inner.value is None or inner.offset is None or inner.offset < 0:
                # an operational error (broker down, transport): no message is lost, librdkafka retries
                self.source_errors += 1
                if self.source_errors in (1, 10, 100) or self.source_errors % 1000 == 0:
                    log.warning("Kafka consumer error #%d (retrying): %s", self.source_errors, msg.err)
                return 0
            pos = Position(inner.topic or "?", inner.partition if inner.partition is not None else -1,
                           inner.offset)
            reject(self._reject(inner.value, pos, "source_error", str(msg.err)))
            return 0
        raw = msg.value or b""
        pos = Position(msg.topic or "?", msg.partition if msg.partition is not None else -1,
                       msg.offset if msg.offset is not None else -1)
        if len(raw) > self.max_bytes:  # not decoded at all; the dead letter keeps a prefix and the sha256
            reject(self._reject(raw, pos, "too_large", f"message is {len(raw):,} bytes, over "
                                f"inputs.max_message_bytes ({self.max_bytes:,})",
                                asset=getattr(msg, "asset", None), truncate=True))
            return 0
        if pos.topic in self.control_topics:
            kinds["control"] += 1
            if self.verifier is not None:
                self._signed_control(raw, pos, emit, reject)
            elif not self._erasure(raw, pos, emit, reject):
                self.rollout.promote(raw, pos, emit, reject)
            return 0
        hints = getattr(msg, "hints", None)
        try:
            items: list[Frame | Reading] = [decode_signed(raw, pos, self.verifier)] if hints is None \
                else decode_payload_signed(raw, pos, hints, msg.asset, msg.metric, msg.arrival_ns,
                                           self.verifier)
        except DecodeError as exc:
            reject(self._reject(raw, pos, exc.reason, str(exc), asset=getattr(msg, "asset", None),
                                extra=refusal_extra(exc)))
            return 0
        if not items:  # e.g. a Sparkplug payload of string metrics or nulls only: no telemetry in it
            return 1
        multi = len(items) > 1
        arrival = getattr(msg, "arrival_ns", None) if self.live else None  # MQTT, OPC UA stamp one
        for i, item in enumerate(items):
            if isinstance(item, Feedback):
                kinds["feedback"] += 1
                self._feedback(item, raw, pos, horizon, emit, reject)
                continue
            why = self._check(item, horizon, arrival)
            if why is not None:
                reject(self._reject(raw, pos, why[0], why[1], asset=item.asset,
                                    item=i if multi else None))
                continue
            if isinstance(item, Frame):
                frames.append(item)
            else:
                kinds["reading"] += 1
            emit(item)
        return 0

    def _block(self, blk: MessageBlock, horizon: int, emit: Callable[[Frame | Reading | Feedback], None],
               reject: Callable[[Output], None], groups: dict[str, list[Frame | Reading]] | None,
               frames: list[Frame], kinds: dict[str, int]) -> int:
        """A Kafka poll batch (:class:`~aiotstream.records.MessageBlock`); 1 per message without telemetry.

        With ``groups`` (see :meth:`_decode`), the plain JSON readings of a block go to their asset's list as
        one :class:`~aiotstream.records.ReadingColumns` per asset, checked column-wise (no Reading per value;
        the messages' bytes go along for the dead letters of the per-asset step). Every other message (a
        frame, feedback, a reading the columns do not take) goes through :meth:`_message`, which decodes it
        or says why not, as it would without blocks; with ``groups``, the frames that it would accept as they
        are are taken by :func:`~aiotstream._kernels.take_frames` without it (the same frames, in order)."""
        no_items = 0
        for err in blk.errors:
            no_items += self._message(err, horizon, emit, reject, frames, kinds)
        vals = blk.values
        if not vals:
            return no_items
        rest: Iterable[int] = range(len(vals))
        if groups is not None and blk.topic not in self.control_topics:
            took = self._plain_readings(blk, horizon, groups)
            if took is not None:
                kinds["reading"] += took[0]
                rest = took[1]
        topic, part, offsets = blk.topic, blk.partition, blk.offsets

        def one(k: int) -> int:
            msg = SourceMessage(topic, part, offsets[k], vals[k])
            return self._message(msg, horizon, emit, reject, frames, kinds)

        if groups is None or not self._fast_frames or blk.topic in self.control_topics:
            return no_items + sum(map(one, rest))
        # the frames take_frames takes (decoded, checked and grouped as _message and emit would), every other
        # message through _message, in the block's order
        rest = rest if type(rest) is list else list(rest)
        j, n = 0, len(rest)
        pos_topic, pos_part, until = topic or "?", -1 if part is None else part, min(horizon, _I64_MAX)
        while True:
            j = take_frames(vals, offsets, rest, j, pos_topic, pos_part, self._known_frames, self.max_bytes,
                            until, self.max_abs, groups, frames, Frame, Position, _FRAME_DTYPES, np.ndarray)
            if j == n:
                return no_items
            no_items += one(rest[j])
            j += 1

    _fast_frames = True  # (False: every frame through _message, for the tests' comparisons)

    def _plain_readings(self, blk: MessageBlock, horizon: int, groups: dict[str, list[Frame | Reading]]
                        ) -> tuple[int, list[int]] | None:
        """The block's plain readings (:func:`~aiotstream.codecs.readings.plain_readings`) that :meth:`_check`
        accepts added to ``groups`` as columns: (how many, the indices of the other messages, in order); None
        when the block is not all plain readings (nothing added)."""
        vals = blk.values
        plain = plain_readings(vals, self.max_bytes)
        if plain is None:
            return None
        assets, metrics, tss, T, V = plain
        n = len(vals)
        ok = (T >= 0) & (T <= horizon) & (np.abs(V) <= self.max_abs)
        ok &= np.fromiter(map(self.rt.assets.__contains__, assets), dtype=bool, count=n)
        if "" in set(metrics):
            ok &= np.fromiter(map(bool, metrics), dtype=bool, count=n)
        if ok.all():
            good: list[int] | None = None  # (all)
            rest: list[int] = []
            Tg = T
        else:
            good = np.flatnonzero(ok).tolist()
            rest = np.flatnonzero(~ok).tolist()
            Tg = T[ok]
        offsets = blk.offsets
        # event times and offsets in order in the block (a producer's usual case): so in each asset's columns
        # (their subsequences)
        in_order = len(Tg) < 2 or bool((Tg[1:] >= Tg[:-1]).all()) and offsets == sorted(offsets)
        topic, part = blk.topic, blk.partition
        # (V.tolist(): floats, as decode_reading makes them)
        for a, (ts, ms, vs, os, rs) in group_columns(assets, good, (tss, metrics, V.tolist(), offsets,
                                                                     vals)).items():
            groups.setdefault(a, []).append(ReadingColumns(a, topic, part, ts, ms, vs, os, in_order, rs))
        return n - len(rest), rest

    def _signed_control(self, raw: bytes, pos: Position, emit: Callable[[Any], None],
                        reject: Callable[[Output], None]) -> None:
        """A control message on a site with ``[auth]``: checked by the verifier (signature, freshness, role
        ``model_admin`` for promotions, ``governance`` for erasures), then decoded without its ``auth`` and
        with ``by`` the acting principal; a refusal is dead-lettered with its reason and claimed principal.
        A message that is not a JSON object goes the promotion path, which says why it is malformed."""
        assert self.verifier is not None
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            self.rollout.promote(raw, pos, emit, reject)
            return
        got = admit(self.verifier, obj)
        if isinstance(got, Refusal):
            reject(self._reject(raw, pos, got.reason, got.message, extra=refusal_extra(Refused(got))))
            return
        clean = orjson.dumps(got[0])
        if not self._erasure(clean, pos, emit, reject, original=raw):
            self.rollout.promote(clean, pos, emit, reject, original=raw)

    def _erasure(self, raw: bytes, pos: Position, emit: Callable[[Any], None],
                 reject: Callable[[Output], None], original: bytes | None = None) -> bool:
        """An erasure request on the control topic (``{"type": "erase", ...}``): handed to the flow's
        governance step, or dead-lettered (``bad_control``) when malformed or not enabled. False when the
        message is not one (a promotion). ``original``: the message as it came (what a dead letter keeps)
        when ``raw`` is the verified message without its ``auth``."""
        kept = raw if original is None else original
        if b"erase" not in raw:
            return False
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return False  # the promotion path says why
        if not is_erase(obj):
            return False
        if not self.rt.config.governance.erasure:
            reject(self._reject(kept, pos, "bad_control", "erasure requests are not enabled on this site "
                                "([governance] erasure = false)"))
            return True
        try:
            req = decode_erase(raw)
        except DecodeError as exc:
            reject(self._reject(kept, pos, exc.reason, str(exc)))
            return True
        emit(Erasure(req.subject, req.by or "", req.ts or 0, f"{pos.topic}:{pos.partition}:{pos.offset}"))
        return True

    def _feedback(self, fb: Feedback, raw: bytes, pos: Position, horizon: int,
                  emit: Callable[[Frame | Reading | Feedback], None],
                  reject: Callable[[Output], None]) -> None:
        """Feedback goes to the asset(s) it is about; one from the future is dead-lettered."""
        if fb.ts_ns > horizon:
            reject(self._reject(raw, pos, "future_timestamp",
                                f"feedback time {iso_ns(fb.ts_ns)} is more than "
                                f"{self.rt.config.window.max_future_s:g} s ahead of this worker's clock",
                                asset=fb.asset))
            return
        if fb.value is not None and abs(fb.value) > self.max_abs:
            reject(self._reject(raw, pos, "out_of_range", f"value {fb.value!r} is beyond +-{self.max_abs:g} "
                                "(inputs.max_abs_value)", asset=fb.asset))
            return
        for routed in self.route_feedback(fb, raw):
            if isinstance(routed, Output):
                reject(routed)
            else:
                emit(routed[1])

    def _check(self, item: Frame | Reading, horizon: int,
               arrival_ns: int | None = None) -> tuple[str, str] | None:
        """Why the item cannot be used with this site's config (reason, message), or None.

        Event time: not more than ``window.max_future_s`` ahead of this worker's clock, and, for a message a
        live source stamped with its arrival time, not more than ``window.max_past_s`` behind that (files and
        Kafka backlogs are judged per asset instead, against the asset's own clock: see
        :meth:`aiotstream.pdm.asset.AssetAnalyzer.on_items`). Values within ``inputs.max_abs_value``.
        """
        asset = self.rt.assets.get(item.asset)
        if asset is None:
            return ("unknown_asset",
                    (f"asset {item.asset!r} is not in the site config ({self.rt.config.site.id}); add "
                     "it to [[assets]]"))
        t = item.t0_ns if isinstance(item, Frame) else item.ts_ns
        if t > horizon:
            return ("future_timestamp",
                    (f"event time {iso_ns(t)} is more than {self.rt.config.window.max_future_s:g} s ahead of "
                     "this worker's clock"))
        if arrival_ns is not None and t < arrival_ns - self.max_past_ns:
            return ("too_old", (f"event time {iso_ns(t)} is more than {self.rt.config.window.max_past_s:g} s "
                                f"(window.max_past_s) before the message arrived ({iso_ns(arrival_ns)})"))
        lim = self.max_abs
        if isinstance(item, Frame):
            n_ch = item.samples.shape[0]  # type: ignore[union-attr]
            if n_ch != len(asset.channels):
                return ("shape_mismatch",
                        (f"frame has {n_ch} channel(s), the config says {len(asset.channels)} "
                         f"({', '.join(asset.channels)})"))
            if abs(item.sample_rate_hz - asset.sample_rate_hz) > 1e-6 * asset.sample_rate_hz:
                return ("sample_rate_mismatch",
                        (f"frame sample rate {item.sample_rate_hz:g} Hz, the config says "
                         f"{asset.sample_rate_hz:g} Hz"))
            x = item.samples
            assert x is not None
            # int16 always fits
            if x.dtype.kind == "f" or lim < 32_768:
                lo, hi = extremes(x)
                if not (hi > lim or lo < -lim):
                    return None
                return ("out_of_range", (f"a sample's magnitude is beyond {lim:g} (inputs.max_abs_value; min "
                                         f"{lo:g}, max {hi:g})"))
        elif abs(item.value) > lim:
            return ("out_of_range", f"value {item.value!r} is beyond +-{lim:g} (inputs.max_abs_value)")
        return None

    def _rows(self, block: ReadingRows, horizon: int, emit: Callable[[Frame | Reading], None],
              reject: Callable[[Output], None], groups: dict[str, list[Frame | Reading]] | None = None
              ) -> int:
        """Table rows: range checks on whole columns, then one Reading per good row; how many. With
        ``groups`` (see :meth:`_decode`) and every row in range, the readings go straight to their asset's
        list (rows of one asset usually come together: its list is kept for the next row)."""
        topic, part = block.topic, block.partition
        for row, raw, reason, message in block.rejects:
            reject(self._reject(raw, Position(topic, part, row), reason, message))
        n = len(block)
        if n == 0:
            return 0
        bad = 0
        ts, values = block.ts_ns, block.values
        with np.errstate(invalid="ignore"):
            ok = (np.abs(values) <= self.max_abs) & (ts >= 0) & (ts <= horizon)  # NaN compares False
        assets_known = self.rt.assets
        if block.lists is not None:  # (the reader's: the same ints)
            rows, ts_l = block.lists
        else:
            rows, ts_l = block.rows.tolist(), ts.tolist()
        val_l = values.tolist()
        good = ok.all()
        if good and groups is not None:  # one ReadingColumns per asset of the block, no object per value
            cols: dict[str, ReadingColumns] = {}
            metrics_l = block.metrics
            # times and row numbers in order in the block (a table's usual case): so in each asset's columns
            # (their subsequences), found once here instead of once per asset in the per-asset step
            in_order = n < 2 or bool((ts[1:] >= ts[:-1]).all() and (block.rows[1:] >= block.rows[:-1]).all())
            i = 0
            for a, run in groupby(block.assets):  # runs of rows of one asset, as slices
                j = i + len(list(run))
                if a not in assets_known:
                    for k in range(i, j):
                        bad += 1
                        reject(self._unknown_row(a, ts_l[k], metrics_l[k], val_l[k],
                                                 Position(topic, part, rows[k]), rows[k]))
                    i = j
                    continue
                col = cols.get(a)
                if col is None:  # (the asset's first run in the block: its columns are the run's slices)
                    col = cols[a] = ReadingColumns(a, topic, part, ts_l[i:j], metrics_l[i:j], val_l[i:j],
                                                   rows[i:j], in_order)
                    groups.setdefault(a, []).append(col)  # (once per asset and block)
                else:
                    col.ts_ns.extend(ts_l[i:j])
                    col.metrics.extend(metrics_l[i:j])
                    col.values.extend(val_l[i:j])
                    col.offsets.extend(rows[i:j])
                i = j
            return n - bad
        for i, (a, m) in enumerate(zip(block.assets, block.metrics)):
            pos = Position(topic, part, rows[i])
            if not good and not ok[i]:
                t, v = ts_l[i], val_l[i]
                raw = encode_row(a, t, m, v)
                if not np.isfinite(v):
                    reject(self._reject(raw, pos, "non_finite", f"row {rows[i]}: value {v!r} is not finite",
                                        a))
                elif abs(v) > self.max_abs:
                    reject(self._reject(raw, pos, "out_of_range", f"row {rows[i]}: value {v!r} is beyond "
                                        f"+-{self.max_abs:g} (inputs.max_abs_value)", a))
                elif t < 0:
                    reject(self._reject(raw, pos, "bad_timestamp",
                                        f"row {rows[i]}: time {t} is before the epoch", a))
                else:
                    reject(self._reject(raw, pos, "future_timestamp",
                                        f"row {rows[i]}: event time {iso_ns(t)} is more than "
                                        f"{self.rt.config.window.max_future_s:g} s ahead of "
                                        "this worker's clock", a))
                bad += 1
                continue
            if a not in assets_known:
                bad += 1
                reject(self._unknown_row(a, ts_l[i], m, val_l[i], pos, rows[i]))
                continue
            emit(Reading(a, ts_l[i], m, val_l[i], pos))
        return n - bad

    def _unknown_row(self, a: str, t: int, m: str, v: float, pos: Position, row: int) -> Output:
        """The dead letter of a table row whose asset is not in the config (or not an id at all)."""
        if not is_valid_id(a):
            return self._reject(encode_row(a, t, m, v), pos, "bad_asset_id",
                                f"row {row}: asset {a[:64]!r} is not a valid id: {ID_HINT}")
        return self._reject(encode_row(a, t, m, v), pos, "unknown_asset",
                            f"asset {a!r} is not in the site config ({self.rt.config.site.id}); add "
                            "it to [[assets]]", a)


def extremes(x: np.ndarray) -> tuple[Any, Any]:
    """``(x.min(), x.max())``, numpy scalars of ``x``'s dtype (so they compare as numpy compares them: NaN
    when a sample is NaN), from one compiled pass (:func:`~aiotstream._kernels.sample_range`) where it can.

    >>> extremes(np.array([[1.5, -2.0], [np.inf, 0.0]], np.float32))
    (np.float32(-2.0), np.float32(inf))
    >>> extremes(np.array([3, -7], np.int16)), extremes(np.array([1.0, np.nan]))
    ((np.int16(-7), np.int16(3)), (np.float64(nan), np.float64(nan)))
    """
    try:
        _, lo, hi = sample_range(x)
    except (TypeError, ValueError):  # another dtype or layout: numpy's own
        return x.min(), x.max()
    t = x.dtype.type
    return t(lo), t(hi)


def encode_row(asset: str, ts_ns: int, metric: str, value: float) -> bytes:
    """A table row as a JSON reading (what its dead letter keeps); NaN/Inf as strings.

    >>> encode_row("m1", 5, "kw", float("nan"))
    b'{"asset":"m1","ts":5,"metric":"kw","value":"nan"}'
    """
    v: float | str = value if np.isfinite(value) else str(value)
    return orjson.dumps({"asset": asset, "ts": ts_ns, "metric": metric, "value": v})


_NATIVE_FLOATS = frozenset(np.dtype(t).str for t in (np.float32, np.float64))  # (native order: "<f4", "<f8")


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
        if not feature_set.spectral and dt in _NATIVE_FLOATS:  # (time partials only: no stack, same floats)
            time_part, spec = frame_partials_each([f.samples for f in group]), None
        else:
            target = np.float64 if dt.endswith("f8") else np.float32
            # (F, C, N), C-contiguous: one concatenate of the (C, N) arrays (np.stack makes a view of each
            # first)
            c, n = group[0].samples.shape  # type: ignore[union-attr]
            batch = np.concatenate([f.samples for f in group]).reshape(len(group), c, n)
            batch = batch.astype(target, copy=False)
            speeds = np.array([rpm.get(f.asset, np.nan) for f in group]) if feature_set.spectral else None
            time_part, spec = frame_partials_batch(batch, rate, speeds, feature_set)
        for i, f in enumerate(group):
            f.partials = time_part[i]
            f.spectral = spec[i] if spec is not None else None
            f.samples = None

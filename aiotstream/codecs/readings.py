"""JSON readings, and :func:`decode_any`: a frame, a reading or a feedback message by its first bytes.

JSON reading: ``{"asset": str, "ts": int (ns since epoch), "metric": str, "value": number}``.
A JSON object with a ``schema`` key is feedback (:mod:`aiotstream.codecs.feedback`), one
without is a reading, so both may share a topic.

>>> decode_reading(encode_reading("pump-1", 5, "temperature", 41.5), Position("t", 0, 1)).value
41.5
"""
from __future__ import annotations

import math
from operator import itemgetter
from typing import NamedTuple

import numpy as np
import orjson

from aiotstream._kernels import dict_codes as _dict_codes
from aiotstream._kernels import group_columns as _group_columns
from aiotstream._kernels import plain_reading_columns
from aiotstream.codecs.feedback import _feedback, _load_json
from aiotstream.codecs.frames import MAGIC, MAX_TS_NS, decode_frame
from aiotstream.errors import DecodeError
from aiotstream.ids import check_id
from aiotstream.records import Feedback, Frame, Position, Reading


def encode_reading(asset_id: str, ts_ns: int, metric: str, value: float) -> bytes:
    """Encode one scalar reading as JSON."""
    return orjson.dumps({"asset": asset_id, "ts": int(ts_ns), "metric": metric, "value": value})


def decode_reading(raw: bytes, pos: Position) -> Reading:
    """Decode and validate one JSON reading; raise DecodeError(reason) if it is not one."""
    return _reading(_load_json(raw), raw, pos)


def _reading(obj: object, raw: bytes, pos: Position) -> Reading:
    if not isinstance(obj, dict):
        raise DecodeError("bad_reading", f"a reading must be a JSON object, got {type(obj).__name__}")
    missing = [k for k in ("asset", "ts", "metric", "value") if k not in obj]
    if missing:
        raise DecodeError("bad_reading", f"reading lacks field(s) {', '.join(missing)}")
    asset, ts, metric, value = obj["asset"], obj["ts"], obj["metric"], obj["value"]
    if not isinstance(asset, str) or not asset:
        raise DecodeError("bad_reading", "field 'asset' must be a non-empty string")
    check_id(asset)
    if not isinstance(metric, str) or not metric:
        raise DecodeError("bad_reading", "field 'metric' must be a non-empty string")
    if isinstance(ts, bool) or not isinstance(ts, int) or not 0 <= ts <= MAX_TS_NS:
        raise DecodeError("bad_timestamp",
                          f"field 'ts' must be integer ns since the epoch (0..2^63-1), got {ts!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DecodeError("bad_reading", f"field 'value' must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise DecodeError("non_finite", f"value {value!r} is not finite")
    return Reading(asset, ts, metric, value, pos, raw=raw)


OBJECT_START = frozenset(b"{ \n\t")
"""The first bytes of a message that :func:`decode_any` reads as a JSON object (``[`` starts an array, which
is no reading; orjson would also take a leading ``\\r``, which decode_any refuses as ``unknown_format``)."""
_JSON_START = OBJECT_START | {ord("[")}  # what decode_any parses as JSON


class PlainReadings(NamedTuple):
    """A block of plain JSON readings as columns (see :func:`plain_readings`)."""

    assets: list[str]
    metrics: list[str]
    ts: list[int]
    T: np.ndarray  # the times, int64
    V: np.ndarray  # the values, float64


def plain_readings(raws: list[bytes], max_bytes: int, compiled: bool = True) -> PlainReadings | None:
    """A block of messages (a Kafka poll batch) that are all plain JSON readings, parsed as columns; None if
    any message is not one, so the caller decodes each by :func:`decode_any`, which says why.

    A plain reading is a JSON object of exactly ``asset``, ``ts``, ``metric`` and ``value``, starting as
    decode_any takes JSON and at most ``max_bytes`` long, with a string asset and metric, an int time that
    fits int64 and an int or float value (``type(...) is``: a bool is neither, as decode_reading has it).
    What is checked per message, and so left to the caller, is every range: the time (0..horizon), the
    value (``inputs.max_abs_value``), the asset (known, so a valid id) and the metric (non-empty); a message
    that fails one goes through decode_any and the caller's own checks, as it would alone. JSON has no NaN
    or infinity (orjson refuses ``1e400``), so the values are finite.

    ``compiled``: in one pass of :func:`aiotstream._kernels.plain_reading_columns`; False: its twin, the
    Python below, which the tests compare it with (slower: several passes, and every parsed dict kept
    until the end; benchmarks/RESULTS.md).

    >>> c = plain_readings([encode_reading("p1", 5, "temp", 41.5), encode_reading("p2", 6, "temp", 3)], 4096)
    >>> c.assets, c.ts, c.V.tolist()
    (['p1', 'p2'], [5, 6], [41.5, 3.0])
    >>> plain_readings([encode_reading("p1", 5, "temp", 41.5), b'{"asset": "p1"}'], 4096) is None
    True
    """
    if compiled:
        cols = plain_reading_columns(raws, max_bytes, orjson.loads)
        return None if cols is None else PlainReadings(*cols)
    try:
        if not set(map(itemgetter(0), raws)) <= OBJECT_START or max(map(len, raws)) > max_bytes:
            return None
        objs = list(map(orjson.loads, raws))  # (one loads per value: faster than one of the joined list)
        if set(map(type, objs)) != {dict} or set(map(len, objs)) != {4}:
            return None
        assets = [o["asset"] for o in objs]
        metrics = [o["metric"] for o in objs]
        tss = [o["ts"] for o in objs]
        values = [o["value"] for o in objs]
    except (orjson.JSONDecodeError, KeyError, TypeError, IndexError, ValueError):  # (max() of no raws)
        return None
    if set(map(type, assets)) != {str} or set(map(type, metrics)) != {str} \
            or set(map(type, tss)) != {int} or not set(map(type, values)) <= {int, float}:
        return None
    try:
        T = np.array(tss, dtype=np.int64)
    except OverflowError:  # a time past int64: decode_reading says why
        return None
    return PlainReadings(assets, metrics, tss, T, np.array(values, dtype=np.float64))


def group_columns(keys: list[str], take: list[int] | None, cols: tuple[list, ...], compiled: bool = True
                  ) -> dict[str, list[list]]:
    """``cols`` (lists as long as ``keys``) grouped by key over the indices ``take`` (in the order given;
    None: all, in order): ``{key: [[col[k] for k in the key's indices] for col in cols]}``, the keys in the
    order of their first index. A block's readings grouped by asset (one
    :class:`~aiotstream.records.ReadingColumns` per asset) without a Python loop step per reading:
    ``compiled`` runs :func:`aiotstream._kernels.group_columns`, False its twin below. A column of another
    length or an index out of range raises ``ValueError``.

    >>> group_columns(["a", "b", "a"], None, ([1, 2, 3], ["x", "y", "z"]))
    {'a': [[1, 3], ['x', 'z']], 'b': [[2], ['y']]}
    >>> group_columns(["a", "b", "a"], [2, 1], ([1, 2, 3],))
    {'a': [[3]], 'b': [[2]]}
    """
    if compiled:
        return _group_columns(keys, take, cols)
    n = len(keys)
    if any(type(c) is not list or len(c) != n for c in cols):
        raise ValueError("group_columns: every column must be a list as long as the keys")
    out: dict[str, list[list]] = {}
    for k in range(n) if take is None else take:
        if not 0 <= k < n:
            raise ValueError(f"group_columns: index {k} out of range for {n} keys")
        lists = out.get(keys[k])
        if lists is None:
            out[keys[k]] = [[c[k]] for c in cols]
        else:
            for got, c in zip(lists, cols):
                got.append(c[k])
    return out


def dict_codes(keys: list, table: dict, compiled: bool = True) -> np.ndarray:
    """``table.get(key, -1)`` for every key as an int64 array: a block's asset and metric names to the flow's
    codes. ``compiled`` runs :func:`aiotstream._kernels.dict_codes` (one lookup per run of the same key
    object, about 4-10 ns a key against 45 for ``np.fromiter`` of ``dict.get``), False its twin below. A code
    that is not an int raises ``TypeError``, one beyond int64 ``OverflowError``, an unhashable key
    ``dict.get``'s ``TypeError``.

    >>> dict_codes(["z1", "z9", "z1"], {"z1": 0, "z2": 1}).tolist()
    [0, -1, 0]
    """
    if compiled:
        return _dict_codes(keys, table)
    codes = [table.get(k, -1) for k in keys]
    for k, c in zip(keys, codes):
        if not isinstance(c, int):
            raise TypeError(f"dict_codes: the code of {k!r} is a {type(c).__name__}, not an int")
    return np.array(codes, dtype=np.int64)


def decode_any(raw: bytes | None, pos: Position) -> Frame | Reading | Feedback:
    """Decode a frame, a reading or a feedback message, told apart by their first bytes / a ``schema`` key."""
    if not raw:
        raise DecodeError("empty", "message has no value")
    if raw[:4] == MAGIC:
        return decode_frame(raw, pos)
    if raw[0] in _JSON_START:
        obj = _load_json(raw)
        if isinstance(obj, dict) and "schema" in obj:
            return _feedback(obj, raw, pos)
        return _reading(obj, raw, pos)
    raise DecodeError("unknown_format", f"message starts with {raw[:8]!r}: neither a frame v1 nor JSON")

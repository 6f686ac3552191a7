"""What every sink writes: a record as JSON that is finite and fits the sink, or a dead letter saying why not.

Sinks never write a record as it comes: :func:`encode` checks it first.

* **Finite.** orjson writes NaN and infinity as ``null``, which the output schema
  does not allow where it says number, and an integer beyond 64 bits cannot be
  written at all. Such a record (a bug, since inputs are bounded by
  ``inputs.max_abs_value``) is replaced by a dead letter ``non_finite_output`` /
  ``unserialisable_output`` naming the field.
* **Fits.** A record larger than the sink's limit (Kafka: the producer's
  ``message.max.bytes``; MQTT: the broker's maximum packet size) is replaced by a
  dead letter ``output_too_large``.

The replacement keeps the record's lineage (site, inputs, window, model) and a
1 KiB prefix of the record with its length and sha256. If not even that fits,
:func:`encode` returns None and the sink logs the record and counts it under
``losses`` in the run summary: the flow keeps running.

* **Exact size.** orjson (3.12 and later) returns each record in a buffer of at least 4 KB, which it
  never shrinks; a sink holds a batch's encoded records until the broker has them (for the retries and
  dead letters), and a batch of 60,000 small records (a site of 20,000 slow sensors closing its KPI
  periods) held 0.5 GB that way. :func:`encode` hands out copies of the exact size (about 70 ns a record).

>>> out = Output("score", "p1", {"schema": "aiotstream.score/1", "id": "0" * 32, "site": "s",
...                               "score": float("nan")})
>>> fixed, data = encode(out)
>>> fixed.kind, fixed.record["reason"], fixed.record["message"]  # doctest: +NORMALIZE_WHITESPACE
('deadletter', 'non_finite_output',
 'score record 00000000000000000000000000000000 has a non-finite number at score (nan)')
"""
from __future__ import annotations

import base64
import hashlib
import logging
import math
from typing import Any

import orjson

from aiotstream._kernels import bad_number
from aiotstream.ids import safe_id
from aiotstream.lineage import make_id
from aiotstream.records import DEADLETTER_PREFIX_BYTES, Output
from aiotstream.runstats import STATS

log = logging.getLogger(__name__)

_INT64 = (-(1 << 63), (1 << 64) - 1)  # what orjson writes (u64 included)
_LINEAGE = ("site", "flow", "flow_version", "config_hash", "code_version", "inputs", "window", "features",
            "model",
            "produced_at")


def problem(obj: Any, path: str = "", compiled: bool = True) -> tuple[str, str] | None:
    """``(path, value)`` of the first number in ``obj`` that JSON cannot carry as a number, or None.
    ``compiled``: the search in C (:func:`aiotstream._kernels.bad_number`, about 9x faster on a KPI record);
    False: its twin, :func:`_find`.

    >>> problem({"a": [1.0, {"b": float("inf")}]}), problem({"n": 1 << 70}), problem({"ok": [1, 2.5, None]})
    (('a[1].b', 'inf'), ('n', '1180591620717411303424'), None)
    """
    found = bad_number(obj, _find) if compiled else _find(obj)
    if found is None:
        return None
    steps, value = found
    for step in reversed(steps):  # (outermost last): the path is built only for a record that has a problem
        path = f"{path}[{step}]" if type(step) is int else (f"{path}.{step}" if path else step)
    return path, value


def _find(obj: Any) -> tuple[list[str | int], str] | None:
    """:func:`problem` without the path strings (every output goes through it): the steps from the bad number
    out to ``obj`` (innermost first; a key as str, a list index as int) and the number's text."""
    t = type(obj)
    if t is float:
        return None if math.isfinite(obj) else ([], repr(obj))
    if t is dict:
        lo, hi = _INT64
        for k, v in obj.items():
            tv = type(v)
            if tv is str or v is None or tv is bool or (tv is float and math.isfinite(v)) \
                    or (tv is int and lo <= v <= hi):
                continue
            f = _find(v)
            if f is not None:
                f[0].append(str(k))
                return f
        return None
    if t is list or t is tuple:
        if len(obj) > 4:  # (a record's rows: scores, times, flags) checked in C when all of one type
            kinds = set(map(type, obj))
            if len(kinds) == 1:
                k = kinds.pop()
                # a sum of floats is finite only if every one is (NaN and infinity carry through; an overflow
                # of finite ones is a false alarm that the walk below clears)
                if (k is float and math.isfinite(sum(obj))) \
                        or (k is int and _INT64[0] <= min(obj) and max(obj) <= _INT64[1]) or k is str:
                    return None
        for i, v in enumerate(obj):
            f = _find(v)
            if f is not None:
                f[0].append(i)
                return f
        return None
    if t is int:
        return None if _INT64[0] <= obj <= _INT64[1] else ([], str(obj))
    return None


def _printable(obj: Any) -> Any:
    """A copy that JSON can carry: non-finite floats and huge integers as strings (for the dead letter's
    payload)."""
    t = type(obj)
    if t is float and not math.isfinite(obj):
        return repr(obj)
    if t is int and not _INT64[0] <= obj <= _INT64[1]:
        return str(obj)
    if t is dict:
        return {str(k): _printable(v) for k, v in obj.items()}
    if t is list or t is tuple:
        return [_printable(v) for v in obj]
    return obj


def replacement(out: Output, reason: str, message: str, body: bytes) -> Output:
    """A dead letter standing in for ``out`` (which cannot be written as it is): its lineage, a prefix of
    ``body``
    (the record as JSON) with the length and sha256."""
    rec = out.record
    site = str(rec.get("site") or "")
    lineage = {k: rec[k] for k in _LINEAGE if k in rec}
    asset = safe_id(rec.get("asset"))
    dl = {
        "schema": "aiotstream.deadletter/1",
        "id": make_id("deadletter", site, out.kind, str(rec.get("id")), reason),
        "reason": reason,
        "message": message,
        "asset": asset,
        "source": {"topic": f"output:{out.kind}", "partition": -1, "offset": -1},
        "payload_b64": base64.b64encode(body[:DEADLETTER_PREFIX_BYTES]).decode("ascii"),
        "payload_size": len(body),
        "payload_truncated": True,
        "payload_sha256": hashlib.sha256(body).hexdigest(),
        **lineage,
        "output_id": rec.get("id"),
        "output_kind": out.kind,
    }
    return Output("deadletter", asset or "", dl)


def dumps(obj: Any) -> bytes:
    """``orjson.dumps(obj)`` in a bytes object of its own size (see the module docstring: a two-item join
    copies, where ``bytes(b)`` would return ``b`` itself)."""
    return b"".join((orjson.dumps(obj), b""))


def encode(out: Output, limit: int | None = None) -> tuple[Output, bytes] | None:
    """The record to write for ``out`` and its JSON bytes (at most ``limit``); a replacement dead letter when
    ``out`` is not finite or too large; None when not even that fits (log it, count it as a loss)."""
    rec = out.record
    bad = problem(rec)
    if bad is None:
        data = dumps(rec)
        if limit is None or len(data) <= limit:
            return out, data
        reason, message = "output_too_large", (f"{out.kind} record {rec.get('id')} is {len(data):,} bytes, "
                                               f"over the sink's limit of {limit:,} bytes")
    else:
        data = orjson.dumps(_printable(rec))
        non_finite = bad[1] in ("nan", "inf", "-inf")
        reason = "non_finite_output" if non_finite else "unserialisable_output"
        what = "a non-finite number" if non_finite else "an integer JSON cannot carry"
        message = f"{out.kind} record {rec.get('id')} has {what} at {bad[0]} ({bad[1][:40]})"
    fixed = replacement(out, reason, message, data)
    fdata = dumps(fixed.record)
    if limit is not None and len(fdata) > limit:
        return None
    log.error("%s: written as a dead letter instead", message)
    return fixed, fdata


def count_loss(out: Output, cause: str, why: str) -> None:
    """Log a record that could not be written in any form and count it under ``losses``."""
    log.error("%s record %s lost: %s", out.kind, out.record.get("id"), why)
    STATS.add("losses", cause)

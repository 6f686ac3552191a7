"""File replay: CSV, JSONL, Parquet and length-prefixed frame files as a Bytewax source, paced by event time.

One file is one partition; the resume state is the next row number, so a
recovered flow continues where it stopped. In a cluster of ``n`` processes,
process ``i`` lists only its share of the files (:func:`file_share`), since
Bytewax, given every file by every process, hands them out alternately in name
order (``p00.bin, p00.jsonl, p01.bin, ...`` put every ``.bin`` on process 0 of
2). Files named ``<name>-part<k>.<ext>`` hold partition ``k`` of a
co-partitioned stream (``aiotstream simulate --file-partitions``): when the
cluster's workers divide the partition count they go to the process that owns
their assets (:mod:`aiotstream.routing`); other files are dealt by size. Every
process must see the same files.
Positions: ``topic = "file:<path>"``, ``partition = -1``, ``offset`` = row
number from 0 (data rows, without a CSV header; frames count in a ``.bin``),
so a window's lineage names the file and its row range.

* **Table files** (CSV, Parquet, and JSONL with a ``[columns]`` table) are read
  a block at a time with pyarrow (JSONL with orjson) and handed on as
  :class:`~aiotstream.records.ReadingRows` (columns, not one object per row).
  Long tables have asset/ts/metric/value columns; wide tables list ``metrics``
  columns. ``ts_unit``: ``ns``/``us``/``ms``/``s`` numbers or ``iso`` text. A
  row whose cells cannot be read becomes a dead letter (the row as JSON).
* **JSONL without [columns]**: each line is one message in ``payload`` format
  (JSON reading, gateway batch, oneM2M, ...), like an MQTT payload.
* **Frames** (``.bin``): ``PlantSimulator.write_files``' waveforms.bin, 4-byte
  little-endian length + binary frame v1.

**Pacing** (``speed``): 0 replays as fast as possible; otherwise a row with
event time ``t`` is released at ``start + (t - t_first) / speed`` of wall time,
``t_first`` being the earliest first event time over all files (so files stay
aligned) and ``start`` the partition's start. Rows earlier than the ones before
them go at once.
"""
from __future__ import annotations

import glob
import math
import os
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain, repeat
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from aiotstream.config import FileColumns, FileInput, SiteConfig
from aiotstream.errors import AiotError
from aiotstream.io.stop import NEXT_BATCH_MAX_S
from aiotstream.records import DecodeHints, DeviceMessage, ReadingRows, SourceMessage
from aiotstream.routing import Placement, file_partition, reader_process
from aiotstream.units import S

TOPIC_PREFIX = "file:"
_LEN = struct.Struct("<I")
_UNIT = {"ns": 1, "us": S // 1_000_000, "ms": S // 1_000, "s": S}  # nanoseconds per unit
BLOCK_ROWS = 65_536


class Pacer:
    """When rows are due: ``start + (t - t_first) / speed`` on an injectable monotonic clock.

    >>> now = [100.0]
    >>> p = Pacer(speed=2.0, t_first_ns=0, clock=lambda: now[0])
    >>> p.due_s(4_000_000_000)  # 4 s of event time at 2x: 2 s after the start
    102.0
    >>> p.count_due(np.array([0, 1_000_000_000, 4_000_000_000]))  # at the start only t_first is due
    1
    >>> now[0] = 100.5; p.count_due(np.array([0, 1_000_000_000, 4_000_000_000]))  # 0.5 s x 2 = 1 s of data
    2
    >>> now[0] = 102.0; p.count_due(np.array([4_000_000_000]))
    1
    """

    def __init__(self, speed: float, t_first_ns: int, clock: Callable[[], float] = time.monotonic):
        if speed < 0 or not math.isfinite(speed):
            raise ValueError(f"speed must be >= 0 and finite, got {speed}")
        self.speed = speed
        self.t_first_ns = t_first_ns
        self.clock = clock
        self.start = clock()

    def due_s(self, t_ns: int) -> float:
        if self.speed == 0:
            return self.start
        return self.start + (t_ns - self.t_first_ns) / 1e9 / self.speed

    def count_due(self, ts_ns: np.ndarray) -> int:
        """How many leading rows are due now (all of them at speed 0)."""
        if self.speed == 0 or len(ts_ns) == 0:
            return len(ts_ns)
        horizon = self.t_first_ns + (self.clock() - self.start) * self.speed * 1e9
        late = np.flatnonzero(np.asarray(ts_ns, dtype=np.float64) > horizon)
        return int(late[0]) if len(late) else len(ts_ns)

    def wait_s(self, t_ns: int) -> float:
        return max(0.0, self.due_s(t_ns) - self.clock())


def expand_paths(patterns: list[str]) -> list[str]:
    """Files named or matched by globs, sorted, each once; AiotError if a pattern matches no file or names a
    directory (directories a glob matches are left out)."""
    out: list[str] = []
    for pat in patterns:
        if any(c in pat for c in "*?["):
            hits = [h for h in sorted(glob.glob(pat)) if not Path(h).is_dir()]
        elif Path(pat).is_dir():
            raise AiotError(f"replay: {pat!r} is a directory; give files or a glob such as "
                            f"{pat.rstrip('/')}/*.csv")
        else:
            hits = [pat] if Path(pat).exists() else []
        if not hits:
            raise AiotError(f"replay: {pat!r} matches no file")
        out.extend(h for h in hits if h not in out)
    return out


def check_file(path: str, cfg: FileInput) -> None:
    """Read the start of a file as its format says, before the flow starts: AiotError (one line naming the
    file, the format and the fix) if it is not that format or lacks a mapped column. Rows that cannot be read
    later on are dead letters; a file that cannot be read at all is this error."""
    fmt = file_format(path, cfg.format)
    if not os.access(path, os.R_OK):
        raise AiotError(f"replay: cannot read {path!r} (permissions)")
    if fmt in ("csv", "jsonl"):
        with open(path, "rb") as f:
            head = f.read(4096)
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if b"\0" in head or exc.start < len(head) - 3:  # not a multi-byte character cut at the end
                raise AiotError(f"replay: {path!r} is not {fmt} text (binary data at byte {exc.start}; check "
                                "--format / [inputs.files] format)") from None
    try:
        next(iter(read_chunks(path, cfg)), None)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = first[:300].encode("ascii", "backslashreplace").decode()
        raise AiotError(f"replay: {path!r} cannot be read as {fmt}: {first} (check --format / [inputs.files] "
                        "format and columns)") from None


def file_share(paths: list[str], sizes: list[int], place: Placement) -> list[str]:
    """The files process ``place.process`` reads, every file by exactly one process, in the order of
    ``paths``.

    When every file is numbered (``<name>-part<k>.<ext>``, :func:`~aiotstream.routing.file_partition`) and the
    cluster's ``W`` workers divide the number of partitions, partition ``k`` goes to the process of worker
    ``k % W``, which owns every asset a co-partitioning writer put in it. Otherwise: largest first, each to
    the process with the fewest bytes so far (the lower index on a tie), so the byte totals differ by at most
    the largest file.

    >>> paths = ["p00.bin", "p00.jsonl", "p01.bin", "p01.jsonl"]
    >>> sizes = [900, 10, 800, 120]
    >>> file_share(paths, sizes, Placement(0, 2)), file_share(paths, sizes, Placement(1, 2))
    (['p00.bin', 'p00.jsonl'], ['p01.bin', 'p01.jsonl'])
    >>> parts = [f"{kind}-part{k}.{ext}" for kind, ext in (("waveforms", "bin"), ("readings", "jsonl"))
    ...          for k in range(4)]
    >>> file_share(parts, [1] * 8, Placement(1, 2))
    ['waveforms-part1.bin', 'waveforms-part3.bin', 'readings-part1.jsonl', 'readings-part3.jsonl']
    """
    place = Placement.of(place)
    numbered = [file_partition(p) for p in paths]
    if all(k is not None for k in numbered) and (max(numbered) + 1) % place.total_workers == 0:  # type: ignore[type-var]
        return [p for p, k in zip(paths, numbered) if reader_process(k, place) == place.process]  # type: ignore[arg-type]
    load = [0] * place.processes
    mine: set[str] = set()
    for size, path in sorted(zip(sizes, paths), key=lambda sp: (-sp[0], sp[1])):
        to = min(range(place.processes), key=lambda i: (load[i], i))
        load[to] += size
        if to == place.process:
            mine.add(path)
    return [p for p in paths if p in mine]


def file_format(path: str, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    suffix = Path(path).suffix.lower()
    known = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
             ".bin": "frames"}
    if suffix not in known:
        raise AiotError(f"replay: cannot tell the format of {path!r} from its extension; set format")
    return known[suffix]


# ---- chunks -----------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Chunk:
    """Rows ready to hand on: table rows (``rows``) or messages; ``ts`` for pacing, ``first`` row number."""

    first: int
    ts: np.ndarray
    rows: ReadingRows | None = None
    messages: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.ts)


_INT64_MAX = int(np.iinfo(np.int64).max)


def _scaled(v: np.ndarray, mult: int) -> np.ndarray:
    """Whole numbers of a unit -> int64 ns, exactly (integer arithmetic, no float64 on the way: ns since the
    epoch need 61 bits, float64 keeps 53); -1 where the result would not fit in int64.

    >>> _scaled(np.array([1_767_225_600_123_456_789, -5]), 1).tolist()
    [1767225600123456789, -5]
    >>> _scaled(np.array([1_767_225_600_123, 2**62]), 1_000_000).tolist()
    [1767225600123000000, -1]
    """
    v = np.asarray(v, dtype=np.int64)
    if mult == 1:
        return v.copy()
    lim = _INT64_MAX // mult
    out = np.full(len(v), -1, dtype=np.int64)
    ok = (v >= -lim) & (v <= lim)
    out[ok] = v[ok] * mult
    return out


def _ints(arr: pa.Array) -> np.ndarray:
    """An integer column as int64, -1 where null or above int64 (uint64)."""
    if pa.types.is_unsigned_integer(arr.type) and arr.type.bit_width == 64:
        arr = pc.if_else(pc.greater(arr, pa.scalar(_INT64_MAX, arr.type)), None, arr)
    return pc.fill_null(arr.cast(pa.int64()), -1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def _ts_column(arr: pa.Array, unit: str) -> np.ndarray:
    """A time column as int64 ns since the epoch; -1 where null or unreadable (the ingestor dead-letters those
    rows). Exact for whole numbers (``ts_unit`` ns/us/ms/s), Arrow ``timestamp[s|ms|us|ns]`` columns with or
    without a time zone (stored as UTC; their own unit counts), and digit strings; fractions (float columns,
    ``"1.5"``) go through float64, ISO text through Arrow's parser.

    >>> _ts_column(pa.array([1_767_225_600_123_456_789, None]), "ns").tolist()
    [1767225600123456789, -1]
    >>> _ts_column(pa.array(["1767225600123456789", "1.5", "x"]), "ns").tolist()
    [1767225600123456789, 2, -1]
    >>> ts = pa.array([1_767_225_600_123_456], pa.timestamp("us", tz="Europe/Berlin"))
    >>> _ts_column(ts, "ms").tolist()
    [1767225600123456000]
    """
    if pa.types.is_timestamp(arr.type):
        return _scaled(_ints(arr.cast(pa.int64())), _UNIT[arr.type.unit])
    if pa.types.is_date(arr.type):
        return _scaled(_ints(pc.cast(arr, pa.timestamp("s")).cast(pa.int64())), _UNIT["s"])
    mult = _UNIT.get(unit, 1)
    if pa.types.is_integer(arr.type):
        v = _ints(arr)
        out = _scaled(v, mult)
        out[pc.is_null(arr).to_numpy(zero_copy_only=False)] = -1
        return out
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        if unit == "iso":
            try:
                return pc.fill_null(pc.cast(pc.cast(arr, pa.timestamp("ns", tz="UTC")), pa.int64()), -1) \
                    .to_numpy(zero_copy_only=False).astype(np.int64)
            except pa.ArrowInvalid:
                return np.array([_iso_ns(s) for s in arr.to_pylist()], dtype=np.int64)
        try:  # whole numbers, the common case: exact and vectorised
            return _ts_column(pc.cast(pc.utf8_trim_whitespace(arr), pa.int64()), unit)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return np.array([_text_ns(s, mult) for s in arr.to_pylist()], dtype=np.int64)
    try:
        f = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return np.full(len(arr), -1, dtype=np.int64)
    out = np.full(len(f), -1, dtype=np.int64)
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.round(f * mult)
        ok = np.isfinite(scaled) & (np.abs(scaled) < 2.0**63 - 1024)
    out[ok] = scaled[ok].astype(np.int64)
    return out


def _text_ns(s: Any, mult: int) -> int:
    """One cell of a text time column: a whole number exactly, else a number through float64; -1 if
    neither."""
    if not isinstance(s, str):
        return -1
    try:
        v = int(s.strip(), 10)
    except ValueError:
        f = _num(s)
        if f is None or not math.isfinite(f) or abs(f * mult) >= 2.0**63 - 1024:
            return -1
        return round(f * mult)
    return v * mult if -_INT64_MAX <= v * mult <= _INT64_MAX else -1


def _iso_ns(s: Any) -> int:
    if not isinstance(s, str):
        return -1
    try:
        dt = datetime.fromisoformat(s)  # 3.11 reads a trailing Z
    except ValueError:
        return -1
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


def _num(s: Any) -> float | None:
    if s is None or isinstance(s, bool):
        return None
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def _value_column(arr: pa.Array) -> np.ndarray:
    """Values as float64; NaN where null or not a number (the ingestor dead-letters those rows)."""
    try:
        return pc.cast(arr, pa.float64()).fill_null(math.nan).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return np.array([v if (v := _num(s)) is not None else math.nan for s in arr.to_pylist()],
                        dtype=np.float64)


def _str_column(batch: pa.RecordBatch, name: str, default: str, n: int) -> list[str]:
    if name not in batch.schema.names:
        return [default] * n
    arr = batch.column(name)
    if isinstance(arr, pa.Array) and pa.types.is_string(arr.type) and not arr.null_count:
        # text with no nulls (the usual asset and metric columns): the same values with no per-value test
        # and one str object per distinct value (dictionary-encoded; taken through numpy), as an asset's
        # or metric's values are few: half the time of the general line below
        d = arr.dictionary_encode()
        return np.array(d.dictionary.to_pylist(), dtype=object)[d.indices.to_numpy()].tolist()
    return ["" if v is None else str(v) for v in arr.to_pylist()]


def _each_k_times(values: list, k: int) -> list:
    """``[v for v in values for _ in range(k)]``, in C loops."""
    return list(chain.from_iterable(zip(*repeat(values, k))))


def table_rows(batch: pa.RecordBatch, first_row: int, topic: str, cols: FileColumns,
               lists: bool = True) -> ReadingRows:
    """A pyarrow record batch -> ReadingRows (long: metric/value columns; wide: one reading per metric
    column; ``lists``: a wide table's ``ReadingRows.lists`` made too, for a caller that keeps its row
    numbers).

    >>> b = pa.RecordBatch.from_pydict({"asset": ["m1", "m1"], "ts": [1, 2], "metric": ["kw", "kw"],
    ...                                 "value": [1.5, None]})
    >>> r = table_rows(b, 10, "file:x.csv", FileColumns())
    >>> r.rows.tolist(), r.assets, r.values.tolist()[0]
    ([10, 11], ['m1', 'm1'], 1.5)
    """
    n = batch.num_rows
    names = batch.schema.names
    missing = [c for c in ([cols.ts] + (cols.metrics or [cols.metric, cols.value])) if c not in names]
    if cols.asset not in names and not cols.default_asset:
        missing.append(cols.asset)
    if missing:
        raise AiotError(f"replay {topic.removeprefix(TOPIC_PREFIX)}: column(s) {', '.join(missing)} not "
                        f"found (columns: {', '.join(names)}); map them in [inputs.files.columns]")
    rows = np.arange(first_row, first_row + n, dtype=np.int64)
    assets = _str_column(batch, cols.asset, cols.default_asset, n)
    ts = _ts_column(batch.column(cols.ts), cols.ts_unit)
    if not cols.metrics:
        return ReadingRows(topic, -1, rows, assets, ts, _str_column(batch, cols.metric, "", n),
                           _value_column(batch.column(cols.value)))
    k = len(cols.metrics)
    # each row's asset, row number and time k times, the same object k times (a third of the time of a
    # comprehension; the decoder's lists, ReadingRows.lists, with one int a row instead of one a reading)
    return ReadingRows(topic, -1, np.repeat(rows, k), _each_k_times(assets, k), np.repeat(ts, k),
                       list(cols.metrics) * n,
                       np.stack([_value_column(batch.column(m)) for m in cols.metrics], axis=1).reshape(-1),
                       lists=(_each_k_times(rows.tolist(), k), _each_k_times(ts.tolist(), k)) if lists
                       else None)


def _slice_rows(r: ReadingRows, a: int, b: int) -> ReadingRows:
    return ReadingRows(r.topic, r.partition, r.rows[a:b], r.assets[a:b], r.ts_ns[a:b], r.metrics[a:b],
                       r.values[a:b], r.rejects if a == 0 else [],
                       None if r.lists is None else (r.lists[0][a:b], r.lists[1][a:b]))


# ---- readers (each yields chunks from a start row) --------------------------------------------------
def _table_chunks(batches: Iterable[Any], topic: str, cols: FileColumns, start: int) -> Iterator[_Chunk]:
    """Arrow record batches as chunks of rows, skipping the rows before ``start`` (the resume point)."""
    row = 0
    for batch in batches:
        if row + batch.num_rows <= start:
            row += batch.num_rows
            continue
        if row < start:
            batch = batch.slice(start - row)
            row = start
        rows = table_rows(batch, row, topic, cols)
        yield _Chunk(row, rows.ts_ns, rows=rows)
        row += batch.num_rows


def _read_parquet(path: str, topic: str, cols: FileColumns, start: int) -> Iterator[_Chunk]:
    import pyarrow.parquet as pq

    yield from _table_chunks(pq.ParquetFile(path).iter_batches(batch_size=BLOCK_ROWS), topic, cols, start)


def _read_csv(path: str, topic: str, cols: FileColumns, start: int) -> Iterator[_Chunk]:
    """CSV a block at a time. Every mapped column is read as text and converted per column
    (:func:`_ts_column`, :func:`_value_column`): Arrow's type inference looks at the first block only, so a
    later block with ``n/a`` in a number column would otherwise stop the replay. A line with the wrong number
    of fields becomes a dead letter (``bad_reading``) whose offset is the first data row of its block (the
    streaming reader does not say which line it was)."""
    import pyarrow.csv as pcsv

    ragged: list[str] = []

    def skip_ragged(row: Any) -> str:
        ragged.append(f"a line with {row.actual_columns} field(s) where the header has "
                      f"{row.expected_columns}: "
                      + str(row.text)[:200])
        return "skip"

    text_cols = {c: pa.string() for c in [cols.asset, cols.metric, cols.ts, cols.value, *cols.metrics]}
    convert = pcsv.ConvertOptions(column_types=text_cols, strings_can_be_null=True)
    reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=1 << 22),
                           parse_options=pcsv.ParseOptions(invalid_row_handler=skip_ragged),
                           convert_options=convert)
    with reader:  # closed also when a bad header stops the replay: its read-ahead thread must not outlive
        # the process's exit (C++ "terminate called without an active exception" on stderr)
        for chunk in _table_chunks(reader, topic, cols, start):
            if ragged:
                assert chunk.rows is not None
                chunk.rows.rejects = list(chunk.rows.rejects) + [
                    (chunk.first, msg.split(": ", 1)[-1].encode(), "bad_reading", f"{Path(path).name}: {msg}")
                    for msg in ragged]
                ragged.clear()
            yield chunk


def _read_jsonl_table(path: str, topic: str, cols: FileColumns, start: int) -> Iterator[_Chunk]:
    wanted = [cols.asset, cols.ts] + (cols.metrics or [cols.metric, cols.value])
    with open(path, "rb") as f:
        row = -1
        buf: list[dict[str, Any]] = []
        first = start
        rejects: list[tuple[int, bytes, str, str]] = []
        for line in f:
            if not line.strip():
                continue
            row += 1
            if row < start:
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                rejects.append((row, line.rstrip(b"\n"), "bad_json", f"row {row}: {exc}"))
                obj = None
            if obj is not None and not isinstance(obj, dict):
                rejects.append((row, line.rstrip(b"\n"), "bad_reading",
                                f"row {row}: a line must be a JSON object"))
                obj = None
            buf.append({c: (obj.get(c) if obj else None) for c in wanted} | {"__ok": obj is not None})
            if len(buf) >= BLOCK_ROWS:
                yield _jsonl_chunk(buf, first, topic, cols, rejects)
                first, buf, rejects = row + 1, [], []
        if buf or rejects:
            yield _jsonl_chunk(buf, first, topic, cols, rejects)


def _jsonl_chunk(buf: list[dict[str, Any]], first: int, topic: str, cols: FileColumns,
                 rejects: list[tuple[int, bytes, str, str]]) -> _Chunk:
    ok = [i for i, r in enumerate(buf) if r.pop("__ok")]
    good = [buf[i] for i in ok]
    table = pa.RecordBatch.from_pylist(good) if good else None
    if table is None:
        rows = ReadingRows(topic, -1, np.zeros(0, np.int64), [], np.zeros(0, np.int64), [], np.zeros(0))
    else:
        for c in (cols.asset, cols.metric):
            if c in table.schema.names and not pa.types.is_string(table.schema.field(c).type):
                table = table.set_column(table.schema.get_field_index(c), c,
                                         pc.cast(table.column(c), pa.string()))
        # (its rows renumbered below: no lists from table_rows, the decoder makes them)
        rows = table_rows(table, 0, topic, cols, lists=False)
        k = max(1, len(cols.metrics))
        rows.rows = np.repeat(np.asarray(ok, dtype=np.int64) + first, k)
    rows.rejects = rejects
    return _Chunk(first, rows.ts_ns, rows=rows)


def _read_jsonl_messages(path: str, topic: str, hints: DecodeHints, start: int,
                         need_ts: bool) -> Iterator[_Chunk]:
    with open(path, "rb") as f:
        row = -1
        msgs: list[DeviceMessage] = []
        ts: list[int] = []
        for line in f:
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            row += 1
            if row < start:
                continue
            msgs.append(DeviceMessage(topic, -1, row, line, hints))
            ts.append(_line_ts(line) if need_ts else 0)
            if len(msgs) >= 4096:
                yield _Chunk(msgs[0].offset, np.array(ts, dtype=np.int64), messages=msgs)
                msgs, ts = [], []
        if msgs:
            yield _Chunk(msgs[0].offset, np.array(ts, dtype=np.int64), messages=msgs)


def _line_ts(line: bytes) -> int:
    """Event time of a JSON line for pacing (``ts`` ns or ``ts_ms``); -1 (due at once) if it has none."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return -1
    if isinstance(obj, dict):
        ts = obj.get("ts")
        if isinstance(ts, int) and not isinstance(ts, bool):
            return ts
        ms = obj.get("ts_ms", obj.get("timestamp"))
        if isinstance(ms, (int, float)) and not isinstance(ms, bool):
            return round(ms * 1e6)
    return -1


def _read_frames(path: str, topic: str, start: int) -> Iterator[_Chunk]:
    """A frame file 1,024 frames at a time, read as it goes (a whole file in memory at once cost a 480 s,
    40-asset replay 2.9 GB of RSS and seconds of page faults before the first window)."""
    row = 0
    msgs: list[SourceMessage] = []
    ts: list[int] = []
    with open(path, "rb", buffering=1 << 20) as f:
        while head := f.read(4):
            if len(head) < 4:
                raw = head  # a torn tail: handed on whole, the decoder dead-letters it
            elif row < start:
                f.seek(_LEN.unpack(head)[0], 1)
                row += 1
                continue
            else:
                raw = f.read(_LEN.unpack(head)[0])  # shorter at a torn end: dead-lettered the same way
            if row >= start:
                msgs.append(SourceMessage(topic, -1, row, raw))
                ts.append(int.from_bytes(raw[20:28], "little", signed=True) if len(raw) >= 28 else -1)
                if len(msgs) >= 1024:
                    yield _Chunk(msgs[0].offset, np.array(ts, dtype=np.int64), messages=msgs)
                    msgs, ts = [], []
            row += 1
    if msgs:
        yield _Chunk(msgs[0].offset, np.array(ts, dtype=np.int64), messages=msgs)


def read_chunks(path: str, cfg: FileInput, start: int = 0) -> Iterator[_Chunk]:
    """The chunks of one file from row ``start`` on."""
    topic = TOPIC_PREFIX + path
    fmt = file_format(path, cfg.format)
    cols = cfg.columns or FileColumns()
    if fmt == "parquet":
        return _read_parquet(path, topic, cols, start)
    if fmt == "csv":
        return _read_csv(path, topic, cols, start)
    if fmt == "frames":
        return _read_frames(path, topic, start)
    if cfg.columns is not None:
        return _read_jsonl_table(path, topic, cols, start)
    return _read_jsonl_messages(path, topic, DecodeHints(cfg.payload, cfg.missing_ts), start, cfg.speed > 0)


def first_event_ns(path: str, cfg: FileInput) -> int | None:
    for chunk in read_chunks(path, cfg):
        valid = chunk.ts[chunk.ts >= 0]
        if len(valid):
            return int(valid[0])
    return None


# ---- the source ---------------------------------------------------------------------------------------
class _FilePartition(StatefulSourcePartition[Any, int]):
    def __init__(self, path: str, cfg: FileInput, batch: int, start: int, t_first: int | None,
                 clock: Callable[[], float]):
        self.path = path
        self.chunks = read_chunks(path, cfg, start)
        self.next_row = start
        self.batch = batch
        # a table's batch counts rows (the file's messages, as a JSONL line of several readings counts once):
        # a wide table's row is one reading per metric column, so a batch of readings could end inside a
        # row, and a resume from the next row number would lose the rest of it
        cols = cfg.columns
        self.per_row = len(cols.metrics) if cols is not None and cols.metrics else 1
        self.pacer = Pacer(cfg.speed, t_first or 0, clock) if cfg.speed > 0 and t_first is not None else None
        self.cur: _Chunk | None = None
        self.pos = 0
        self.wake: datetime | None = None

    def next_batch(self) -> list[Any]:
        self.wake = None
        if self.cur is None or self.pos >= len(self.cur):
            try:
                self.cur = next(self.chunks, None)  # StopIteration at the end of the file is raised below
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, UnicodeDecodeError) as exc:
                # a file damaged past its start: the run stops here, saying where (a resume starts at that
                # row)
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise AiotError(f"replay {self.path}: cannot read on from row {self.next_row}: "
                                f"{first[:300].encode('ascii', 'backslashreplace').decode()}") from exc
            self.pos = 0
            if self.cur is None:
                raise StopIteration()
            if len(self.cur) == 0:  # only rejected rows
                rows = self.cur.rows
                self.cur = None
                return [rows] if rows is not None and rows.rejects else []
        c, a = self.cur, self.pos
        b = min(len(c), a + self.batch * (self.per_row if c.rows is not None else 1))
        if self.pacer is not None:
            ts = c.ts[a:b]
            n = self.pacer.count_due(np.where(ts < 0, self.pacer.t_first_ns, ts))
            if n == 0:
                wait = self.pacer.wait_s(int(ts[0]))
                # never further ahead than the stop contract allows (aiotstream.io.stop)
                self.wake = datetime.now(UTC) + timedelta(seconds=min(wait, NEXT_BATCH_MAX_S))
                return []
            b = a + n
        self.pos = b
        if c.rows is not None:
            part = _slice_rows(c.rows, a, b)
            self.next_row = int(part.rows[-1]) + 1 if len(part) else self.next_row
            return [part]
        assert c.messages is not None
        msgs = c.messages[a:b]
        self.next_row = msgs[-1].offset + 1
        return msgs

    def next_awake(self) -> datetime | None:
        return self.wake

    def snapshot(self) -> int:
        return self.next_row

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()


class FileSource(FixedPartitionedSource[Any, int]):
    """Replays files (see the module doc); one partition per file, resume state = next row.

    ``process=(i, n[, w])``: this is process ``i`` of a cluster of ``n`` (``w`` workers each); it lists only
    its :func:`file_share`.
    """

    def __init__(self, cfg: FileInput, batch: int = 1000, clock: Callable[[], float] = time.monotonic,
                 process: tuple[int, ...] = (0, 1)):
        self.cfg = cfg
        self.paths = expand_paths(cfg.paths)
        self.place = Placement.of(process)
        for p in self.paths:
            check_file(p, cfg)
        self.batch = batch
        self.clock = clock
        self.t_first: int | None = None
        if cfg.speed > 0:
            firsts = [t for p in self.paths if (t := first_event_ns(p, cfg)) is not None]
            self.t_first = min(firsts) if firsts else None

    def list_parts(self) -> list[str]:
        if self.place.processes <= 1:
            return list(self.paths)
        return file_share(self.paths, [os.stat(p).st_size for p in self.paths], self.place)

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _FilePartition:
        return _FilePartition(for_part, self.cfg, self.batch, resume_state or 0, self.t_first, self.clock)


def file_source(config: SiteConfig, paths: list[str] | None = None, speed: float | None = None,
                process: tuple[int, ...] = (0, 1)) -> Any:
    """A FileSource from ``[inputs.files]`` (paths/speed may be overridden, e.g. by ``aiotstream replay``);
    ``process=(i, n[, w])`` in a cluster (see :class:`FileSource`)."""
    cfg = config.inputs.files or FileInput(paths=paths or ["-"])
    update: dict[str, Any] = {}
    if paths:
        update["paths"] = paths
    if speed is not None:
        update["speed"] = speed
    if update:
        cfg = FileInput.model_validate({**cfg.model_dump(), **update})
    return FileSource(cfg, config.inputs.poll_batch, process=process)

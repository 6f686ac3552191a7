"""Parquet sink for the data lake: scores / KPIs partitioned by site and date (hive style).

Layout::

    <directory>/<kind>/site=<site id>/date=<YYYY-MM-DD>/part-<partition>-<run>-<n>.parquet

* ``date`` is the UTC date of the window start (event time), so a replay lands
  in the same partitions; records without a window use ``produced_at``.
* One row per output record, without ``site`` (a partition key: hive readers
  such as ``pyarrow.dataset(..., partitioning="hive")`` put ``site`` and ``date``
  back as columns, and a copy in the file would clash). Top-level scalars become columns (numbers that
  the output schema declares ``number`` are always float64, so files agree);
  nested values (``values``, ``inputs``, ``window``, ``model``, ...) are JSON
  text columns; ``window_start_ns`` / ``window_end_ns`` are added as int64.
* Rows are buffered per (kind, date) and written when the Bytewax epoch ends
  (the sink partition's snapshot) or when a buffer reaches
  ``max_rows_per_file``, so files per day are bounded by epochs per day (x
  kinds x partitions) and by size. A file is written to ``.tmp`` then renamed:
  readers never see half a file. ``<run>`` is fixed for a run (from the resume
  state after a recovery), ``<n>`` counts files, so reruns never overwrite.
* Limits: a Parquet byte array (and an Arrow string) holds at most 2 GiB - 1,
  so no record's JSON may be larger (:data:`MAX_RECORD_BYTES`); records go
  through :func:`aiotstream.io.sinkguard.encode` first, and one that is not
  finite or too large is left out here (the main sink writes its dead letter).
* Each file's key-value metadata ``aiotstream.classification`` holds the kind's data classification
  (``[governance] classification``, default ``internal``); ``aiotstream prune`` deletes partitions older
  than the kind's ``[governance] retention``.
* Delivery: at least once with recovery on (an epoch's rows are on disk
  before its snapshot is taken); after a crash the replayed epoch's rows come
  again in new files and the deterministic ``id`` column lets readers drop them.
"""
from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from aiotstream.config import ParquetOutput
from aiotstream.io.sinkguard import encode
from aiotstream.records import Output
from aiotstream.schemas import load_schema

PARTITION_KEYS = ("site", "date")
MAX_RECORD_BYTES = (1 << 31) - 1 - 4_096  # a Parquet BYTE_ARRAY value / an Arrow string: int32 lengths


@cache
def number_fields(kind: str) -> frozenset[str]:
    """Top-level fields the output schema types as ``number`` for ``kind`` (stored as float64).

    >>> "score" in number_fields("score"), "frames" in number_fields("score")
    (True, False)
    """
    defs = load_schema()["$defs"]
    out: set[str] = set()

    def walk(d: dict[str, Any]) -> None:
        for name, prop in d.get("properties", {}).items():
            if isinstance(prop, dict) and prop.get("type") == "number":
                out.add(name)
        for sub in d.get("allOf", []):
            ref = sub.get("$ref", "")
            if ref.startswith("#/$defs/"):
                walk(defs[ref.removeprefix("#/$defs/")])

    if kind in defs:
        walk(defs[kind])
    return frozenset(out)


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    """One output record as a flat row: scalars as they are, nested values as JSON text.

    >>> flatten({"id": "a", "score": 0.5, "window": {"start_ns": 1, "end_ns": 2}})["window_end_ns"]
    2
    """
    row: dict[str, Any] = {}
    for k, v in record.items():
        if k in PARTITION_KEYS:
            continue
        row[k] = orjson.dumps(v).decode() if isinstance(v, (dict, list)) else v
    w = record.get("window")
    row["window_start_ns"] = w.get("start_ns") if isinstance(w, dict) else None
    row["window_end_ns"] = w.get("end_ns") if isinstance(w, dict) else None
    return row


def record_date(record: dict[str, Any]) -> str:
    """UTC date of the window start (event time), else of ``produced_at``, else (audit entries) of the
    event time or the wall time the entry was made.

    >>> record_date({"window": {"start_ns": 1_767_225_600_000_000_000}})
    '2026-01-01'
    >>> record_date({"event_ns": None, "wall_ns": 1_767_225_600_000_000_000})
    '2026-01-01'
    """
    w = record.get("window")
    if isinstance(w, dict) and isinstance(w.get("start_ns"), int):
        return datetime.fromtimestamp(w["start_ns"] / 1e9, tz=UTC).strftime("%Y-%m-%d")
    t = record.get("event_ns") if isinstance(record.get("event_ns"), int) else record.get("wall_ns")
    if isinstance(t, int) and not isinstance(t, bool) and "produced_at" not in record:
        return datetime.fromtimestamp(t / 1e9, tz=UTC).strftime("%Y-%m-%d")
    produced = record.get("produced_at")
    return produced[:10] if isinstance(produced, str) and len(produced) >= 10 else "unknown"


def to_table(kind: str, rows: list[dict[str, Any]]) -> pa.Table:
    table = pa.Table.from_pylist(rows)
    floats = number_fields(kind)
    for i, f in enumerate(table.schema):
        if f.name in floats and (pa.types.is_integer(f.type) or pa.types.is_null(f.type)):
            table = table.set_column(i, f.name, table.column(i).cast(pa.float64()))
    return table


class _ParquetPartition(StatefulSinkPartition[Output, tuple[int, int]]):
    def __init__(self, cfg: ParquetOutput, site: str, part: str, resume: tuple[int, int] | None,
                 classification: dict[str, str] | None = None):
        self.cfg = cfg
        self.classification = classification or {}
        self.site = site
        self.part = part
        self.run, self.n = resume if resume is not None else (time.time_ns() // 1000, 0)
        self.kinds = frozenset(cfg.kinds)
        self.buffers: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.root = Path(cfg.directory)

    def write_batch(self, values: list[Output]) -> None:
        for item in values:
            if item.kind not in self.kinds:
                continue
            enc = encode(item, MAX_RECORD_BYTES)
            if enc is None or enc[0] is not item:
                continue  # not finite or too large: the main sink writes its dead letter
            out = enc[0]
            key = (out.kind, record_date(out.record))
            buf = self.buffers.setdefault(key, [])
            buf.append(flatten(out.record))
            if len(buf) >= self.cfg.max_rows_per_file:
                self._write(key, buf)
                self.buffers[key] = []

    def _write(self, key: tuple[str, str], rows: list[dict[str, Any]]) -> Path:
        kind, date = key
        d = self.root / kind / f"site={self.site}" / f"date={date}"
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"part-{self.part}-{self.run}-{self.n:06d}.parquet"
        self.n += 1
        tmp = path.with_suffix(".parquet.tmp")
        comp = None if self.cfg.compression == "none" else self.cfg.compression
        table = to_table(kind, rows).replace_schema_metadata(
            {"aiotstream.classification": self.classification.get(kind, "internal")})
        pq.write_table(table, tmp, compression=comp)
        os.replace(tmp, path)
        return path

    def flush(self) -> None:
        for key, rows in self.buffers.items():
            if rows:
                self._write(key, rows)
        self.buffers.clear()

    def snapshot(self) -> tuple[int, int]:
        self.flush()  # the epoch's rows are on disk before its snapshot counts
        return (self.run, self.n)

    def close(self) -> None:
        self.flush()


class ParquetSink(FixedPartitionedSink[Output, tuple[int, int]]):
    """Scores/KPIs (``cfg.kinds``) as Parquet files; see the module doc for the layout.

    ``partitions`` sink partitions (outputs are routed by asset id); each writes its own files.
    """

    def __init__(self, cfg: ParquetOutput, site_id: str, partitions: int = 1,
                 classification: dict[str, str] | None = None):
        self.cfg = cfg
        self.classification = classification
        self.site = site_id
        self.partitions = partitions

    def list_parts(self) -> list[str]:
        return [f"p{i}" for i in range(self.partitions)]

    def build_part(self, step_id: str, for_part: str,
                   resume_state: tuple[int, int] | None) -> _ParquetPartition:
        return _ParquetPartition(self.cfg, self.site, for_part, resume_state, self.classification)

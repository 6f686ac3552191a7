"""``aiotstream detect``: a historian export (CSV or Parquet) through the plant flow's streaming detector.

The file is replayed by the same dataflow as ``aiotstream replay`` (:func:`aiotstream.dataflow.build_flow`
with a :class:`~aiotstream.io.replay.FileSource`), with the site's default settings (``[scalar]``: the
defaults of :class:`aiotstream.models.streaming.DetectorConfig`); the per-row scores are read back from the
flow's ``aiotstream.scalar/1`` records. Nothing here scores: this module only builds the site, runs
the flow and joins its records to the input rows.

Python API (``aiotstream evaluate`` builds on it)::

    from aiotstream.detect import detect_file, detect_table
    r = detect_file("pump.csv", "datetime", ["Temperature", "Pressure"])   # -> Detection
    r.ts_ns, r.score, r.alert, r.asset                                       # one entry per input row

Each input row gets the score and alert of its asset's row at its timestamp (rows with the same timestamp
are one detector row; the last value of a repeated channel counts). A row with no readable value has no
detector row: its score is 0 and its alert that of the asset's previous row.
"""
from __future__ import annotations

import math
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from aiotstream.errors import AiotError
from aiotstream.ids import ID_HINT, is_valid_id

__all__ = ["Detection", "detect_file", "detect_table", "write_detection"]

DEFAULT_ASSET = "asset"


@dataclass
class Detection:
    """Per input row (in file order): event time, asset, ``score`` = 1 - p in [0, 1], ``alert`` 1 while the
    detector's alert is open; plus the flow's other records (alerts with explanations, change events)."""

    ts_ns: np.ndarray            # int64
    asset: list[str]
    score: np.ndarray            # float64
    alert: np.ndarray            # int8
    timestamps: list[Any]        # the timestamp cells as read (for the output file)
    records: list[dict]          # the flow's aiotstream.scalar/1 records
    alerts: list[dict]           # the flow's alert records

    def __len__(self) -> int:
        return len(self.ts_ns)


def _delimiter(path: Path) -> str:
    """The CSV's field separator, from its header line (historian exports use ``,``, ``;`` or tabs)."""
    with path.open("rb") as f:
        head = f.readline(65_536).decode("utf-8", "replace")
    counts = {d: head.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _read(path: Path, text_columns: Sequence[str] = ()) -> tuple[pa.Table, str]:
    """The table and its CSV delimiter ("" for Parquet); ``text_columns`` are read as text from a CSV (as
    the replay reads them)."""
    if not path.exists():
        raise AiotError(f"{path}: no such file")
    if path.is_dir():
        raise AiotError(f"{path}: is a directory, not a CSV or Parquet file")
    if path.stat().st_size == 0:
        raise AiotError(f"{path}: the file is empty")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path), ""
        if suffix in (".csv", ".txt"):
            import pyarrow.csv as pcsv

            delim = _delimiter(path)
            import csv

            with path.open("rb") as f:
                line = f.readline(65_536).decode("utf-8-sig", "replace")
            header = next(csv.reader([line], delimiter=delim), [])  # quoted names too
            types = {c: pa.string() for c in text_columns if c in header}
            return pcsv.read_csv(path, parse_options=pcsv.ParseOptions(delimiter=delim),
                                 convert_options=pcsv.ConvertOptions(strings_can_be_null=True,
                                                                     column_types=types)), delim
    except (pa.ArrowInvalid, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AiotError(f"{path}: cannot read: {first[:200]}") from None
    raise AiotError(f"{path}: unknown file type {suffix or '(no suffix)'!r}: use .csv or .parquet")


def _check(table: pa.Table, where: str, ts: str, values: Sequence[str], asset: str | None) -> None:
    if not values:
        raise AiotError("--value-columns: name at least one column")
    dup = sorted({v for v in values if list(values).count(v) > 1})
    if dup:
        raise AiotError(f"--value-columns: {', '.join(dup)} listed more than once")
    names = table.schema.names
    missing = [c for c in [ts, *values, *([asset] if asset else [])] if c not in names]
    if missing:
        raise AiotError(f"{where}: column(s) {', '.join(missing)} not found (columns: {', '.join(names)})")
    if table.num_rows == 0:
        raise AiotError(f"{where}: the file has a header but no rows")


def _ts_unit(arr: pa.ChunkedArray) -> str:
    """Numbers are seconds since the epoch unless they only fit as ms/us/ns; text is ISO 8601."""
    t = arr.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "ns"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        try:  # numbers written as text (CSV): by their magnitude, as below
            v = np.abs(np.asarray(arr.drop_null().cast(pa.float64())))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return "iso"
    else:
        v = np.abs(np.asarray(arr.drop_null().cast(pa.float64())))
    big = float(v.max()) if len(v) else 0.0
    return "s" if big < 1e11 else "ms" if big < 1e14 else "us" if big < 1e17 else "ns"


def _timestamps(table: pa.Table, ts: str, unit: str, where: str) -> np.ndarray:
    from aiotstream.io.replay import _ts_column

    col = table.column(ts).combine_chunks()
    out = _ts_column(col, unit)
    bad = np.flatnonzero(out < 0)
    if len(bad):
        r = int(bad[0])
        raise AiotError(f"{where}: row {r + 1}: cannot read timestamp {col[r].as_py()!r} in column {ts!r}"
                        + (" (ISO 8601 text or numbers of seconds since the epoch)" if unit in ("iso", "s")
                           else ""))
    return out


def _in_time_order(codes: np.ndarray, ts_ns: np.ndarray) -> bool:
    """Whether each asset's rows come in non-decreasing time (``codes``: the asset of each row)."""
    idx = np.argsort(codes, kind="stable")
    c, t = codes[idx], ts_ns[idx]
    return bool(np.all((np.diff(t) >= 0) | (np.diff(c) != 0)))


class _Collect:
    """The flow's scalar and alert records as they come (in-process, one worker)."""

    def __init__(self, progress: Callable[[int], None] | None) -> None:
        self.records: list[dict] = []
        self.alerts: list[dict] = []
        self.progress = progress
        self.rows = 0

    def __call__(self, items: list[Any]) -> None:
        for o in items:
            rec = o.record
            if o.kind == "scalar":
                self.records.append(rec)
                self.rows += rec["rows"]
            elif o.kind == "alert":
                self.alerts.append(rec)
        if self.progress is not None:
            self.progress(self.rows)


def _site(path: Path, ts: str, unit: str, values: Sequence[str], asset: str | None,
          assets: list[str]) -> Any:
    from aiotstream.config import SiteConfig

    cols: dict[str, Any] = {"ts": ts, "ts_unit": unit, "metrics": list(values)}
    if asset:
        cols["asset"] = asset
    else:
        cols["default_asset"] = DEFAULT_ASSET
    return SiteConfig.from_dict({
        "site": {"id": "detect", "name": f"aiotstream detect {path.name}"},
        "assets": [{"id": a} for a in assets],
        "inputs": {"tail": False, "files": {"paths": [str(path)], "columns": cols}},
        # a historian export may span years and hold gaps: no window is too old, no gap too long
        "window": {"max_past_s": 315_360_000},
        "scalar": {"readings_only": True},
        "kpi": {"max_gap_s": 604_800},
        "model": {"drift_detector": "none"},
    }, source="aiotstream detect")


def detect_file(path: str | Path, timestamp_column: str, value_columns: Sequence[str],
                asset_column: str | None = None, *, progress: Callable[[int, int], None] | None = None
                ) -> Detection:
    """Run a CSV or Parquet file through the flow (defaults) and return one score and alert per input row.

    ``progress(rows_scored, rows_total)`` is called as the flow's records come in.
    Raises :class:`~aiotstream.errors.AiotError` (one line) for a missing file or column, an empty file
    or an unreadable timestamp.
    """
    path = Path(path)
    table, delim = _read(path, [timestamp_column, *([asset_column] if asset_column else [])])
    if delim in ("", ","):  # the replay reads the file itself
        return _detect(table, path, str(path), timestamp_column, list(value_columns), asset_column, progress)
    # another delimiter: the replay gets the same table as Parquet (its CSV reader takes commas)
    import pyarrow.parquet as pq

    _check(table, str(path), timestamp_column, value_columns, asset_column)
    with tempfile.TemporaryDirectory(prefix="aiot-detect-") as tmp:
        pq_path = Path(tmp) / (path.stem + ".parquet")
        pq.write_table(table, pq_path)
        return _detect(table, pq_path, str(path), timestamp_column, list(value_columns), asset_column,
                       progress)


def detect_table(table: pa.Table | Any, timestamp_column: str, value_columns: Sequence[str],
                 asset_column: str | None = None, *, progress: Callable[[int, int], None] | None = None
                 ) -> Detection:
    """:func:`detect_file` for an in-memory table (a ``pyarrow.Table`` or a pandas ``DataFrame``): it is
    written to a temporary Parquet file and replayed by the same flow."""
    import pyarrow.parquet as pq

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    with tempfile.TemporaryDirectory(prefix="aiot-detect-") as tmp:
        path = Path(tmp) / "table.parquet"
        pq.write_table(table, path)
        return _detect(table, path, "<table>", timestamp_column, list(value_columns), asset_column, progress)


def _detect(table: pa.Table, path: Path, where: str, ts: str, values: list[str], asset: str | None,
            progress: Callable[[int, int], None] | None) -> Detection:
    from aiotstream.dataflow import build_flow
    from aiotstream.dataflow.run import cli_main
    from aiotstream.io.files import CallbackSink
    from aiotstream.io.replay import FileSource

    _check(table, where, ts, values, asset)
    unit = _ts_unit(table.column(ts))
    ts_ns = _timestamps(table, ts, unit, where)
    n = table.num_rows
    if asset:
        names = ["" if a is None else str(a) for a in table.column(asset).to_pylist()]
        bad = next((i for i, a in enumerate(names) if not is_valid_id(a)), None)
        if bad is not None:
            raise AiotError(f"{where}: row {bad + 1}: {names[bad]!r} in column {asset!r} is not a valid "
                            f"asset id: {ID_HINT}")
        assets = sorted(set(names))
    else:
        names, assets = [DEFAULT_ASSET] * n, [DEFAULT_ASSET]
    codes = np.unique(np.asarray(names, dtype=object), return_inverse=True)[1] if asset else np.zeros(n, int)
    sink = _Collect((lambda done: progress(done, n)) if progress is not None else None)
    with tempfile.TemporaryDirectory(prefix="aiot-detect-") as tmp:
        if not _in_time_order(codes, ts_ns):
            # an asset's rows out of time order would be late for its windows (dead letters): the replay
            # gets them sorted by asset and time (stable); the scores are joined back by (asset, time)
            import pyarrow.parquet as pq

            order = np.lexsort((np.arange(n), ts_ns, codes))
            path = Path(tmp) / "sorted.parquet"
            pq.write_table(table.take(pa.array(order)), path)
        cfg = _site(path, ts, unit, values, asset, assets)
        assert cfg.inputs.files is not None
        source = FileSource(cfg.inputs.files, cfg.inputs.poll_batch)
        flow = build_flow(cfg, source, CallbackSink(sink), tail=False, snapshots=False)
        cli_main(flow, workers_per_process=1, epoch_interval=timedelta(seconds=10))
    # join: (asset, ts) -> (score, alert) of the detector's row
    per_asset: dict[str, list[dict]] = {}
    for r in sink.records:
        per_asset.setdefault(r["asset"], []).append(r)
    by: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for a in assets:
        recs = sorted(per_asset.get(a, []), key=lambda r: r["row_ts_ns"][0])
        if recs:
            by[a] = (np.concatenate([np.asarray(r["row_ts_ns"], np.int64) for r in recs]),
                     np.concatenate([np.asarray(r["row_score"], np.float64) for r in recs]),
                     np.concatenate([np.asarray(r["row_alert"], np.int8) for r in recs]))
    score = np.zeros(n)
    alert = np.zeros(n, np.int8)
    groups = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[groups], np.arange(len(assets) + 1))
    for k, a in enumerate(assets):
        rows = groups[bounds[k]:bounds[k + 1]]
        if a not in by:
            continue
        t, s, al = by[a]
        i = np.searchsorted(t, ts_ns[rows])
        ic = np.minimum(i, len(t) - 1)
        hit = (i < len(t)) & (t[ic] == ts_ns[rows])
        score[rows[hit]] = s[ic[hit]]
        # a row without a detector row: no evidence (score 0); the alert stays as it was
        prev = np.maximum(np.searchsorted(t, ts_ns[rows], side="right") - 1, 0)
        have = np.searchsorted(t, ts_ns[rows], side="right") > 0
        alert[rows] = np.where(hit, al[ic], np.where(have, al[prev], 0))
    return Detection(ts_ns, names, score, alert, table.column(ts).to_pylist(), sink.records, sink.alerts)


def write_detection(d: Detection, out: str | Path, asset_column: str | None = None) -> None:
    """``timestamp, [asset,] anomaly_score, alert`` per input row: Parquet when ``out`` ends in .parquet,
    else CSV."""
    cols: dict[str, Any] = {"timestamp": pa.array([None if isinstance(t, float) and math.isnan(t) else t
                                                   for t in d.timestamps])}
    if asset_column:
        cols["asset"] = pa.array(d.asset, pa.string())
    cols["anomaly_score"] = pa.array(d.score, pa.float64())
    cols["alert"] = pa.array(d.alert, pa.int8())
    table = pa.table(cols)
    out = Path(out)
    try:
        if out.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, out)
        else:
            import pyarrow.csv as pcsv

            pcsv.write_csv(table, out)
    except (OSError, pa.ArrowInvalid) as exc:
        raise AiotError(f"--out {out}: cannot write: {exc}") from None


def terminal_progress(stream: Any = None) -> Callable[[int, int], None] | None:
    """A one-line progress display on a terminal (None when stderr is not one)."""
    stream = stream or sys.stderr
    if not stream.isatty():
        return None
    last = [-1]

    def show(done: int, total: int) -> None:
        pct = int(100 * min(done, total) / max(total, 1))
        if pct != last[0]:
            last[0] = pct
            stream.write(f"\raiotstream detect: {pct:3d}% ({done:,} of {total:,} rows)")
            stream.flush()
            if done >= total:
                stream.write("\n")

    return show

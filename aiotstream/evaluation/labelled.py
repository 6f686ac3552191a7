"""Evaluate a detector on a labelled table (CSV or Parquet): point-wise F1/FAR/MAR, event-wise recall and
precision, detection delay, false alerts per day.

The predictions are one row per input row (``timestamp, anomaly_score, alert``): a file written by
``aiotstream detect`` (``--predictions``), or made here by :func:`run_detector`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from aiotstream.errors import AiotError
from aiotstream.evaluation.metrics import (
    binary_metrics,
    confusion,
    event_metrics,
    row_events,
)
from aiotstream.units import S


class EvaluationError(AiotError):
    """A labelled file or a predictions file that cannot be evaluated (names the file, column and fix)."""


@dataclass(slots=True)
class LabelledSeries:
    path: str
    ts_ns: np.ndarray  # (rows,) int64
    x: np.ndarray  # (rows, channels) float64, NaN where missing
    label: np.ndarray  # (rows,) bool
    columns: list[str]
    timestamp_column: str = ""


def read_table(path: str | Path, delimiter: str | None = None) -> pa.Table:
    """A CSV (``,`` or ``;``, sniffed from the header unless given) or Parquet file as an Arrow table."""
    p = Path(path)
    if p.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return pq.read_table(p)
    import pyarrow.csv as pcsv

    if delimiter is None:
        with p.open("r", encoding="utf-8", errors="replace") as fh:
            head = fh.readline()
        delimiter = ";" if head.count(";") > head.count(",") else ","
    try:
        return pcsv.read_csv(p, parse_options=pcsv.ParseOptions(delimiter=delimiter))
    except pa.ArrowInvalid as exc:
        raise EvaluationError(f"{p}: not a readable CSV: {exc}") from None


def _column(table: pa.Table, name: str, path: str, option: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise EvaluationError(f"{path}: no column {name!r} ({option}); the file has "
                              f"{', '.join(table.column_names)}")
    return table.column(name)


def timestamps_ns(arr: pa.ChunkedArray | pa.Array, unit: str = "s") -> np.ndarray:
    """A time column as int64 ns (Arrow timestamps, ISO text, or numbers in ``unit``); -1 where unreadable."""
    from aiotstream.io.replay import _ts_column

    a = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    return _ts_column(a, unit)


def load_labelled(path: str | Path, timestamp_column: str, value_columns: list[str], label_column: str,
                  timestamp_unit: str = "s", delimiter: str | None = None) -> LabelledSeries:
    t = read_table(path, delimiter)
    p = str(path)
    ts = timestamps_ns(_column(t, timestamp_column, p, "--timestamp-column"), timestamp_unit)
    if len(ts) and (ts < 0).any():
        bad = int(np.flatnonzero(ts < 0)[0])
        raise EvaluationError(f"{p}: row {bad}: timestamp {t.column(timestamp_column)[bad]} is not a time "
                              f"(--timestamp-unit {timestamp_unit}: ns, us, ms, s or iso)")
    cols = []
    for c in value_columns:
        a = _column(t, c, p, "--value-columns")
        try:
            cols.append(np.asarray(a.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise EvaluationError(f"{p}: column {c!r} is not numeric") from None
    x = np.column_stack(cols) if cols else np.zeros((len(ts), 0))
    lab = _column(t, label_column, p, "--label-column")
    try:
        y = np.asarray(lab.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise EvaluationError(f"{p}: label column {label_column!r} must be 0/1 numbers") from None
    return LabelledSeries(p, ts, x, np.nan_to_num(y) > 0.5, list(value_columns), timestamp_column)


def read_predictions(path: str | Path, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``aiotstream detect``'s output: ``timestamp``, ``anomaly_score``, ``alert``, one row per input row."""
    t = read_table(path)
    p = str(path)
    for c in ("anomaly_score", "alert"):
        _column(t, c, p, "--predictions")
    if t.num_rows != rows:
        raise EvaluationError(f"{p}: {t.num_rows} prediction rows for {rows} input rows: give the file "
                              "`aiotstream detect` wrote for this input")
    score = np.asarray(t.column("anomaly_score").cast(pa.float64()).to_numpy(zero_copy_only=False))
    alert = np.asarray(t.column("alert").cast(pa.float64()).to_numpy(zero_copy_only=False)) > 0.5
    ts = (timestamps_ns(t.column("timestamp")) if "timestamp" in t.column_names
          else np.full(rows, -1, np.int64))
    return ts, np.nan_to_num(score), alert


def run_detector(series: LabelledSeries) -> tuple[np.ndarray, np.ndarray, str]:
    """Scores and alerts for every row, online from the first row, with the default settings.

    The one place that picks the code path: ``aiotstream.detect.detect_file`` when it is importable (the
    file through the flow, as ``aiotstream detect`` runs it: ``detect_file(path, timestamp_column,
    value_columns)`` returning ``.score`` and ``.alert`` per input row), else the streaming detector
    directly. Returns ``(score, alert, which)``.
    """
    try:
        from aiotstream.detect import detect_file  # type: ignore[import-not-found,attr-defined]
    except ImportError:
        detect_file = None
    why = "aiotstream.detect not importable"
    if detect_file is not None:
        d = detect_file(series.path, series.timestamp_column, series.columns)
        score = np.asarray(d.score, dtype=np.float64)
        alert = np.asarray(d.alert).astype(bool)
        if len(score) != len(series.label) or len(alert) != len(series.label):
            raise EvaluationError(f"{series.path}: aiotstream.detect gave {len(score)} rows for "
                                  f"{len(series.label)}")
        return score, alert, "aiotstream.detect.detect_file (the flow, as `aiotstream detect`)"
    from aiotstream.models.streaming import StreamingDetector

    score, alert = StreamingDetector(series.x.shape[1]).run(series.x)
    return (np.asarray(score, np.float64), np.asarray(alert, bool),
            f"aiotstream.models.streaming.StreamingDetector(n_channels).run ({why})")


def evaluate_labelled(series: LabelledSeries, score: np.ndarray, alert: np.ndarray,
                      max_delay_s: float | None = None) -> dict[str, Any]:
    """Every figure for one labelled series and its predictions (row-aligned)."""
    n = len(series.label)
    if len(alert) != n or len(score) != n:
        raise EvaluationError(f"{len(alert)} predictions for {n} rows")
    counts = confusion(series.label, alert)
    truth, alerts = row_events(series.label, alert)
    ts = series.ts_ns
    span_ns = int(ts[-1] - ts[0]) if n > 1 else 0
    dt = float(np.median(np.diff(ts))) if n > 1 else 0.0
    max_rows = None if max_delay_s is None or dt <= 0 else int(max_delay_s * S / dt)
    rep = event_metrics(truth, alerts, horizon=n, max_delay=max_rows, span=n)
    delays_s = [None if d is None else float(ts[e.start + d] - ts[e.start]) / S
                for e, d in zip(truth, rep.delays)]
    d = np.array([x for x in delays_s if x is not None])
    days = span_ns / (86_400 * S)
    return {
        "rows": n,
        "span_s": span_ns / S,
        "pointwise": {**binary_metrics(counts), **counts},
        "events": {
            "events": rep.events, "detected": rep.detected, "recall": rep.recall,
            "alerts": rep.alerts, "true_alerts": rep.true_alerts, "false_alerts": rep.false_alerts,
            "precision": rep.precision,
            "delay_rows": rep.delay_summary(),
            "delay_s": ({"median": float(np.median(d)), "p90": float(np.percentile(d, 90)),
                         "max": float(d.max())} if d.size else {"median": None, "p90": None, "max": None}),
            "max_delay_s": max_delay_s,
        },
        "false_alerts_per_asset_per_day": rep.false_alerts / days if days > 0 else None,
        "per_event": [{"start_row": e.start, "end_row": e.end, "delay_rows": dl, "delay_s": ds,
                       "start": int(ts[e.start])}
                      for e, dl, ds in zip(truth, rep.delays, delays_s)],
        "false_alert_rows": [[a.start, a.end] for a, ok in zip(alerts, rep.alert_true) if not ok],
    }

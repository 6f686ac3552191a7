"""A table file's poll batch counts its rows (the file's messages), so a batch ends at a row's end.

A wide table's row carries one reading per metric column. A poll batch counted in readings could end inside
a row; the source's resume state is the next row number, so a resume from that snapshot lost the rest of
the row's readings. Counted in rows (``[inputs] poll_batch``: messages read per partition at a time, as a
JSONL line of several readings counts once), every batch ends at a row's end and a resume loses nothing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.config import FileColumns, FileInput
from aiotstream.io.replay import _FilePartition
from aiotstream.records import ReadingRows

T0 = 1_767_225_600 * 1_000_000_000


def _write(path: Path, rows: int, metrics: list[str], fmt: str) -> None:
    cols: dict[str, object] = {"asset": [f"a{i % 3}" for i in range(rows)],
                               "ts": [T0 + i * 1_000_000_000 for i in range(rows)]}
    for j, m in enumerate(metrics):
        cols[m] = [float(i * 10 + j) for i in range(rows)]
    table = pa.table(cols)
    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        pcsv.write_csv(table, path)


def _drain(part: _FilePartition, batches: int | None = None) -> list[ReadingRows]:
    out: list[ReadingRows] = []
    while batches is None or len(out) < batches:
        try:
            got = part.next_batch()
        except StopIteration:
            break
        out.extend(r for r in got if isinstance(r, ReadingRows) and len(r))
    return out


def _readings(batches: list[ReadingRows]) -> list[tuple[int, str, float]]:
    return [(int(r), m, float(v)) for b in batches for r, m, v in zip(b.rows, b.metrics, b.values)]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_wide_tables_poll_batch_is_rows_and_a_resume_loses_no_reading(tmp_path: Path, fmt: str) -> None:
    metrics = ["x", "y", "z"]
    path = tmp_path / f"wide.{fmt}"
    _write(path, 50, metrics, fmt)
    cfg = FileInput(paths=[str(path)], columns=FileColumns(metrics=metrics))
    whole = _readings(_drain(_FilePartition(str(path), cfg, 4, 0, None, lambda: 0.0)))
    assert len(whole) == 150
    part = _FilePartition(str(path), cfg, 4, 0, None, lambda: 0.0)
    first = _drain(part, 1)
    assert len(first[0]) == 4 * 3  # four rows of three readings
    assert sorted(set(first[0].rows.tolist())) == [0, 1, 2, 3]
    resumed = _FilePartition(str(path), cfg, 4, part.snapshot(), None, lambda: 0.0)
    assert _readings(first) + _readings(_drain(resumed)) == whole


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 40), k=st.integers(1, 5), batch=st.integers(1, 12), stop=st.integers(1, 6))
def test_resuming_after_any_batch_replays_every_reading_once(tmp_path_factory: pytest.TempPathFactory,
                                                            rows: int, k: int, batch: int, stop: int) -> None:
    metrics = [f"m{j}" for j in range(k)]
    path = tmp_path_factory.mktemp("rb") / "wide.parquet"
    _write(path, rows, metrics, "parquet")
    cfg = FileInput(paths=[str(path)], columns=FileColumns(metrics=metrics))
    whole = _readings(_drain(_FilePartition(str(path), cfg, batch, 0, None, lambda: 0.0)))
    part = _FilePartition(str(path), cfg, batch, 0, None, lambda: 0.0)
    head = _drain(part, stop)
    for b in head:  # every batch holds whole rows: k readings of each, at most `batch` rows
        counts = np.unique(b.rows, return_counts=True)[1]
        assert set(counts.tolist()) == {k} and len(counts) <= batch
    tail = _drain(_FilePartition(str(path), cfg, batch, part.snapshot(), None, lambda: 0.0))
    assert _readings(head) + _readings(tail) == whole


def test_a_long_tables_poll_batch_is_still_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "long.parquet"
    pq.write_table(pa.table({"asset": ["a"] * 10, "ts": [T0 + i for i in range(10)],
                             "metric": ["kw"] * 10, "value": [float(i) for i in range(10)]}), path)
    cfg = FileInput(paths=[str(path)], columns=FileColumns())
    first = _drain(_FilePartition(str(path), cfg, 4, 0, None, lambda: 0.0), 1)
    assert first[0].rows.tolist() == [0, 1, 2, 3]

"""aiotstream.detect (the function behind ``aiotstream detect``) on synthetic tables: one row out per row in,
whatever the row order, duplicate timestamps, holes and timestamp format; the scores are the detector's."""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from aiotstream.detect import detect_table
from aiotstream.models.streaming import make_pipeline

S = 1_000_000_000
T0 = 1_767_225_600


def frame(rows: int = 900, seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=rows)
    x = np.stack([20 + base + 0.3 * rng.normal(size=rows), 5 + 0.5 * base + 0.2 * rng.normal(size=rows)], axis=1)
    x[600:680, 1] += 3.0  # a fault on channel b
    return np.arange(rows) + T0, x


def table(t: np.ndarray, x: np.ndarray, ts_kind: str = "iso") -> pa.Table:
    if ts_kind == "iso":
        ts = pa.array([np.datetime_as_string(np.datetime64(int(v), "s")) for v in t])
    elif ts_kind == "seconds":
        ts = pa.array(t.astype(np.int64))
    else:
        ts = pa.array((t * 1000).astype(np.int64))  # ms
    return pa.table({"time": ts, "a": x[:, 0], "b": x[:, 1]})


@pytest.fixture(scope="module")
def straight() -> tuple[np.ndarray, np.ndarray, object]:
    t, x = frame()
    return t, x, detect_table(table(t, x), "time", ["a", "b"])


def test_scores_are_the_detectors_and_the_fault_alerts(straight: tuple) -> None:
    t, x, d = straight
    assert len(d) == len(t) and d.ts_ns.tolist() == (t * S).tolist()
    want_s, want_a = make_pipeline("default", 2).run(x)
    np.testing.assert_array_equal(d.score, want_s)
    np.testing.assert_array_equal(d.alert.astype(bool), want_a)
    assert d.alert[600:700].any() and not d.alert[:590].any()
    opened = [a for a in d.alerts if a["event"] == "opened"]
    assert opened and opened[0]["explanation"][0]["feature"] == "b"


@pytest.mark.parametrize("ts_kind", ["seconds", "ms"])
def test_numeric_timestamps_give_the_same_scores(straight: tuple, ts_kind: str) -> None:
    t, x, d = straight
    got = detect_table(table(t, x, ts_kind), "time", ["a", "b"])
    np.testing.assert_array_equal(got.ts_ns, d.ts_ns)
    np.testing.assert_array_equal(got.score, d.score)


def test_rows_out_of_time_order_are_scored_as_if_sorted(straight: tuple) -> None:
    t, x, d = straight
    perm = np.random.default_rng(9).permutation(len(t))
    got = detect_table(table(t[perm], x[perm]), "time", ["a", "b"])
    np.testing.assert_array_equal(got.score, d.score[perm])  # each input row keeps its own score
    np.testing.assert_array_equal(got.alert, d.alert[perm])


def test_duplicate_timestamps_and_holes() -> None:
    t, x = frame(rows=400)
    x[50:60, 0] = math.nan  # holes in a
    tt = np.insert(t, 100, t[100])  # row 100 twice (a repeat of the same reading)
    xx = np.insert(x, 100, x[100], axis=0)
    d = detect_table(table(tt, xx), "time", ["a", "b"])
    assert len(d) == len(tt)
    assert d.score[100] == d.score[101]  # one detector row for one timestamp
    want_s, _ = make_pipeline("default", 2).run(x)
    np.testing.assert_array_equal(np.delete(d.score, 101), want_s)


def test_asset_column_and_progress() -> None:
    t, x = frame(rows=300)
    tab = pa.table({"time": pa.array(np.concatenate([t, t]).astype(np.int64)),
                    "pump": ["p-1"] * len(t) + ["p-2"] * len(t),
                    "a": np.concatenate([x[:, 0], x[:, 0] + 100]), "b": np.concatenate([x[:, 1], x[:, 1]])})
    seen: list[tuple[int, int]] = []
    d = detect_table(tab, "time", ["a", "b"], "pump", progress=lambda done, total: seen.append((done, total)))
    assert d.asset == tab.column("pump").to_pylist()
    np.testing.assert_array_equal(d.score[:300], make_pipeline("default", 2).run(x)[0])
    assert seen and seen[-1] == (600, 600)


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_csv_files_of_any_separator_give_the_tables_scores(straight: tuple, tmp_path, sep: str) -> None:
    """A comma CSV is replayed by the file source itself, other separators through a Parquet copy: the same
    scores either way, and the output file has one row per input row."""
    import csv

    import pyarrow.csv as pcsv

    from aiotstream.detect import detect_file, write_detection

    t, x, d = straight
    src = tmp_path / "in.csv"
    pcsv.write_csv(table(t, x), src, pcsv.WriteOptions(delimiter=sep, quoting_style="none"))
    got = detect_file(src, "time", ["a", "b"])
    np.testing.assert_array_equal(got.score, d.score)
    out = tmp_path / "out.csv"
    write_detection(got, out)
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(t) and rows[0]["timestamp"] == np.datetime_as_string(np.datetime64(int(t[0]), "s"))
    assert [int(r["alert"]) for r in rows] == got.alert.tolist()

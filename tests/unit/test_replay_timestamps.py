"""File replay reads event times exactly: int64 ns (the default unit) and Arrow timestamps of any unit, with or
without a time zone, never through float64 (which keeps 53 bits; ns since 1970 need 61)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.config import FileInput
from aiotstream.errors import AiotError
from aiotstream.io.replay import _ts_column, expand_paths, read_chunks

I64 = np.iinfo(np.int64).max
T_NS = st.integers(2**53 + 1, I64)  # where float64 loses ns
UNITS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


@settings(max_examples=1000, deadline=None)
@given(st.lists(T_NS, min_size=1, max_size=20))
def test_int64_ns_columns_and_digit_strings_are_exact(ts: list[int]) -> None:
    assert _ts_column(pa.array(ts, pa.int64()), "ns").tolist() == ts
    assert _ts_column(pa.array([str(t) for t in ts]), "ns").tolist() == ts
    assert _ts_column(pa.array([str(t) for t in ts] + ["x"]), "ns").tolist() == ts + [-1]  # one bad cell


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(sorted(UNITS)), st.sampled_from([None, "UTC", "Europe/Berlin", "America/New_York"]),
       st.lists(st.integers(0, I64), min_size=1, max_size=10))
def test_arrow_timestamps_of_every_unit_and_zone_are_exact(unit: str, tz: str | None, whole: list[int]) -> None:
    # any value a timestamp[unit] column can hold: exact in ns, or -1 (dead-lettered) past what ns can say
    # (after 2262); regression: a timestamp[ms|us] past 2262 stopped the replay (Arrow's cast to ns overflowed)
    arr = pa.array(whole, pa.timestamp(unit, tz=tz))
    want = [w * UNITS[unit] if w * UNITS[unit] <= I64 else -1 for w in whole]
    assert _ts_column(arr, "ms").tolist() == want  # the column's own unit counts, not ts_unit


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(sorted(UNITS)), st.integers(-(2**63), I64))
def test_whole_numbers_in_any_unit_scale_exactly_or_are_rejected(unit: str, v: int) -> None:
    got = _ts_column(pa.array([v], pa.int64()), unit).tolist()[0]
    want = v * UNITS[unit]
    if want < 0:
        assert got < 0  # before the epoch: the ingestor dead-letters it (bad_timestamp), whatever the value
    else:
        assert got == (want if want <= I64 else -1)


def test_nulls_and_unreadable_cells_are_minus_one_for_the_ingestor_to_dead_letter() -> None:
    assert _ts_column(pa.array([None, 5], pa.int64()), "ns").tolist() == [-1, 5]
    assert _ts_column(pa.array([2**64 - 1, 7], pa.uint64()), "ns").tolist() == [-1, 7]
    assert _ts_column(pa.array([1.5, float("nan"), 1e300]), "s").tolist() == [1_500_000_000, -1, -1]
    assert _ts_column(pa.array([None], pa.timestamp("ns")), "ns").tolist() == [-1]


def _files(tmp: Path, ts: list[int]) -> dict[str, Path]:
    n = len(ts)
    base = {"asset": ["a1"] * n, "metric": ["kw"] * n, "value": [float(i) for i in range(n)]}
    out = {}
    t = pa.table({**base, "ts": pa.array(ts, pa.int64())})
    pcsv.write_csv(t, tmp / "ns.csv")
    pq.write_table(t, tmp / "ns.parquet")
    out["csv"], out["parquet"] = tmp / "ns.csv", tmp / "ns.parquet"
    for unit in ("ns", "us", "ms"):
        for tz in (None, "UTC", "Asia/Kolkata"):
            col = pa.array([x // UNITS[unit] for x in ts], pa.timestamp(unit, tz=tz))
            p = tmp / f"ts-{unit}-{tz or 'naive'}.parquet".replace("/", "_")
            pq.write_table(pa.table({**base, "ts": col}), p)
            out[p.stem] = p
    return out


def test_csv_and_parquet_files_replay_event_times_exactly(tmp_path: Path) -> None:
    # regression: int64 ns in CSV/Parquet crashed the replay (pyarrow refused the float64 cast above 2^53)
    ts = [1_767_225_600_123_456_789 + i * 1_000_000_007 for i in range(5)]
    for name, path in _files(tmp_path, ts).items():
        unit = name.split("-")[1] if name.startswith("ts-") else "ns"
        want = [t // UNITS[unit] * UNITS[unit] for t in ts]
        got = np.concatenate([c.ts for c in read_chunks(str(path), FileInput(paths=[str(path)], columns={}))])
        assert got.tolist() == want, name


def test_a_directory_is_not_a_file_to_replay(tmp_path: Path) -> None:
    with pytest.raises(AiotError, match="is a directory"):
        expand_paths([str(tmp_path)])
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.csv").write_text("asset,ts,metric,value\n")
    assert expand_paths([str(tmp_path / "*")]) == [str(tmp_path / "a.csv")]  # a glob skips directories

"""``aiotstream replay`` of CSV and Parquet whose times are int64 ns (the default unit) or Arrow timestamps of
any unit, with or without a time zone: the run finishes, and the exact ns come out in the dead letters that
keep a row (no float64 on the way: these values are above 2^53)."""
from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from support import read_jsonl_outputs, run_cli

T0 = 1_767_225_600_123_456_789  # 2026-01-01T00:00:00.123456789Z
UNITS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def _table(ts: pa.Array) -> pa.Table:
    n = len(ts)
    # asset-000 is in the site; "ghost" is not, so its rows are dead letters that keep asset, ts, metric, value
    return pa.table({"asset": ["asset-000", "ghost"] * (n // 2), "ts": ts, "metric": ["temperature"] * n,
                     "value": [20.0 + i for i in range(n)]})


def _dead_ts(out: Path) -> list[int]:
    """The event times the dead letters that keep a row hold (the ghost's rows, rows after 2262 too far ahead)."""
    dead = read_jsonl_outputs(out)["deadletter"]
    assert {d["reason"] for d in dead} <= {"unknown_asset", "future_timestamp", "bad_timestamp"}, dead
    return sorted(orjson.loads(base64.b64decode(d["payload_b64"]))["ts"] for d in dead
                  if d["reason"] != "bad_timestamp")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("site") / "site.toml"
    p.write_text('[site]\nid = "ns"\n\n[[assets]]\nid = "asset-000"\nline = "l1"\n\n[inputs]\ntail = false\n')
    return p


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_int64_ns_files_replay_with_exact_times(tmp_path: Path, site: Path, kind: str) -> None:
    # regression: both crashed (Arrow refused the float64 cast of int64 values above 2^53)
    ts = [T0 + i * 1_000_000_007 for i in range(6)]
    path = tmp_path / f"r.{kind}"
    (pcsv.write_csv if kind == "csv" else pq.write_table)(_table(pa.array(ts, pa.int64())), path)
    r = run_cli("replay", str(path), "--site", str(site), "--out-dir", str(tmp_path / "o"))
    assert "done: inputs 6 " in r.stderr, r.stderr
    assert _dead_ts(tmp_path / "o") == ts[1::2]


@pytest.mark.parametrize("unit", ["ns", "us", "ms"])
@pytest.mark.parametrize("tz", [None, "UTC", "Asia/Kolkata"])
def test_arrow_timestamp_files_replay_with_exact_times(tmp_path: Path, site: Path, unit: str, tz: str | None) -> None:
    whole = [(T0 + i * 1_000_000_007) // UNITS[unit] for i in range(4)]
    whole += [2**62 if unit == "ns" else 32_503_680_000 * 10**9 // UNITS[unit]] * 2  # 2116 in ns, else year 3000
    path = tmp_path / "r.parquet"
    pq.write_table(_table(pa.array(whole, pa.timestamp(unit, tz=tz))), path)
    r = run_cli("replay", str(path), "--site", str(site), "--out-dir", str(tmp_path / "o"))
    assert "done: inputs 6 " in r.stderr, r.stderr
    want = sorted(w * UNITS[unit] for w in whole[1:4:2])
    if unit == "ns":  # 2^62 ns (2116) fits: both rows are dead letters (too far ahead) that keep it exactly
        want = sorted([*want, 2**62, 2**62])
    assert _dead_ts(tmp_path / "o") == want
    dead = read_jsonl_outputs(tmp_path / "o")["deadletter"]
    # year 3000 in us/ms is past what int64 ns can hold (2262): a dead letter (bad_timestamp), not a crash
    assert sum(d["reason"] == "bad_timestamp" for d in dead) == (0 if unit == "ns" else 2)

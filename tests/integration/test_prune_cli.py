"""``aiotstream prune`` (issue 19 item 3): the Parquet lake keeps each kind's partitions for its ``[governance]
retention``, judged by the partition's date (never by file times). Real parts: Parquet files written by the
flow's own sink, the CLI in a subprocess."""
from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow.parquet as pq
from support import run_cli

from aiotstream.config import ParquetOutput
from aiotstream.io.parquet import _ParquetPartition
from aiotstream.records import Output

SITE = "prune-site"


def _write(lake: Path, kind: str, day: datetime) -> Path:
    start = int(day.timestamp() * 1e9)
    part = _ParquetPartition(ParquetOutput(directory=str(lake), kinds=[kind]), SITE, "p0", None,
                             {"score": "confidential"})
    part.write_batch([Output(kind, "a", {"schema": f"aiotstream.{kind}/1", "id": "x" * 32, "site": SITE,
                                         "score": 1.0, "window": {"start_ns": start, "end_ns": start + 1}})])
    part.flush()
    d = lake / kind / f"site={SITE}" / f"date={day.date().isoformat()}"
    assert d.is_dir()
    meta = pq.read_schema(next(d.glob("*.parquet"))).metadata
    assert meta[b"aiotstream.classification"] == (b"confidential" if kind == "score" else b"internal")
    return d


def test_prune_removes_partitions_older_than_the_retention_by_their_date(tmp_path: Path) -> None:
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    lake = tmp_path / "lake"
    old_score = _write(lake, "score", today - timedelta(days=10))
    new_score = _write(lake, "score", today - timedelta(days=2))
    old_kpi = _write(lake, "kpi", today - timedelta(days=10))  # kpi has no retention: kept
    # file times say the opposite of the dates: prune must go by the date
    year_ago = time.time() - 365 * 86400
    for f in new_score.iterdir():
        os.utime(f, (year_ago, year_ago))
    for f in old_score.iterdir():
        os.utime(f, None)
    site = tmp_path / "site.json"
    site.write_bytes(orjson.dumps({"site": {"id": SITE}, "assets": [{"id": "a", "line": "l"}],
                                   "governance": {"retention": {"score": "7d"}}}))

    dry = run_cli("prune", "--site", str(site), "--lake", str(lake), "--dry-run")
    assert f"would remove {old_score} (score" in dry.stdout
    assert str(new_score) not in dry.stdout and str(old_kpi) not in dry.stdout
    assert old_score.is_dir()  # a dry run removes nothing

    done = run_cli("prune", "--site", str(site), "--lake", str(lake))
    day = old_score.name.removeprefix("date=")
    assert done.stdout.strip().splitlines() == [f"removed {old_score} (score, {day}, retention 7d)"]
    assert "removed 1 partition(s)" in done.stderr
    assert not old_score.exists() and new_score.is_dir() and old_kpi.is_dir()

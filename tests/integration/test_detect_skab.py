"""``aiotstream detect`` end to end on a SKAB file (real pump-testbed data): the CLI writes one row per input
row, and the flow path gives the offline detector's scores (same equations, same rows) and so its F1.

Skipped, naming the directory, when ``../shared/datasets/skab`` is not beside the checkout (the data is
GPL-3.0 and not part of the project; see benchmarks/skab.py)."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from benchmarks import skab

ROOT = Path(__file__).resolve().parents[2]
DATA = skab.data_dir(None)
FILE = DATA / "valve1" / "8.csv"

pytestmark = pytest.mark.skipif(not FILE.is_file(), reason=f"SKAB data missing: {FILE} (../shared/datasets/skab "
                                                           "beside the checkout; see benchmarks/skab.py)")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "aiotstream.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600, check=False)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_detect_on_a_skab_file_matches_the_offline_detector(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"scores{suffix}"
    proc = cli("detect", str(FILE), "--timestamp-column", "datetime", "--value-columns", ",".join(skab.CHANNELS),
               "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    f = skab.load_file(FILE, "valve1/8")
    if suffix == ".csv":
        with out.open() as fh:
            rows = list(csv.DictReader(fh))
        ts = [r["timestamp"] for r in rows]
        score = np.array([float(r["anomaly_score"]) for r in rows])
        alert = np.array([int(r["alert"]) for r in rows], bool)
    else:
        t = pq.read_table(out)
        assert t.column_names == ["timestamp", "anomaly_score", "alert"]
        ts = [str(v) for v in t.column("timestamp").to_pylist()]
        score = t.column("anomaly_score").to_numpy()
        alert = t.column("alert").to_numpy().astype(bool)
    assert len(score) == len(f.x)  # one row per input row, in file order
    assert [s.replace(" ", "T") for s in ts] == [str(x) for x in f.time]
    assert ((score >= 0) & (score <= 1)).all()
    # the same detector offline (benchmarks/skab.py's default) on the same rows
    want_s, want_a = skab.DETECTORS["streaming"](f.x.shape[1]).run(f.x)
    np.testing.assert_allclose(score, want_s, rtol=1e-12, atol=1e-15)
    f1 = skab.binary_metrics(skab.confusion(f.anomaly, alert))["f1"]
    want_f1 = skab.binary_metrics(skab.confusion(f.anomaly, np.asarray(want_a, bool)))["f1"]
    assert abs(f1 - want_f1) < 1e-9 and f1 > 0.7, (f1, want_f1)
    assert "with an alert open" in proc.stdout


def test_detect_with_an_asset_column_scores_each_asset_apart(tmp_path: Path) -> None:
    """Two SKAB files stacked as two assets: each asset's scores are its own file's."""
    import pyarrow as pa

    a, b = skab.load_file(FILE), skab.load_file(DATA / "valve1" / "9.csv")
    cols = {c: np.concatenate([a.x[:, i], b.x[:, i]]) for i, c in enumerate(skab.CHANNELS)}
    table = pa.table({"time": [str(t) for t in a.time] + [str(t) for t in b.time],
                      "pump": ["pump-a"] * len(a.x) + ["pump-b"] * len(b.x), **cols})
    src = tmp_path / "two.parquet"
    pq.write_table(table, src)
    out = tmp_path / "two.csv"
    proc = cli("detect", str(src), "--timestamp-column", "time", "--value-columns", ",".join(skab.CHANNELS),
               "--asset-column", "pump", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["asset"] for r in rows] == table.column("pump").to_pylist()
    for name, f in (("pump-a", a), ("pump-b", b)):
        got = np.array([float(r["anomaly_score"]) for r in rows if r["asset"] == name])
        want, _ = skab.DETECTORS["streaming"](f.x.shape[1]).run(f.x)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)

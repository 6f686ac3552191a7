"""The e2e benchmark harness, run in its --quick configuration, so that it cannot rot.

No timing is asserted: the test checks that every section ran against the real broker, that each
contender read the whole workload and produced the windows it should, and that the report files
come out. The Quix Streams peer needs its own virtual environment (a pip install from PyPI); its
test runs when ``benchmarks/.venv-quix`` exists and is skipped, saying so, when it does not.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import e2e
from benchmarks.peers import quixenv

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_quick_report_has_every_section(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    code = e2e.main(["--quick", "--skip", "quix", "--json", str(out)])
    res = json.loads(out.read_text())
    assert code == 0, res["errors"]
    q = e2e.QUICK
    wl = res["workload"]["waveform"]
    windows = q.assets * int(-(-q.duration_s // 1))
    assert wl["frames"] == q.assets * int(q.duration_s * 10_000 // 1024)
    for key, processes in (("ours_1p", 1), ("ours_1p_hst", 1), ("ours_2p", 2)):
        r = res["waveform"][key]
        assert r["processes"] == processes
        assert r["messages"] == wl["frames"] + wl["readings"]  # the flow read all of it
        assert r["frames_in_windows"] == wl["frames"] and r["windows"] == windows
        assert r["samples_per_s_per_worker"] > 0 and r["cpu_s"] > 0 and r["peak_rss_mb"] > 50
    peers = res["peers"]
    assert peers["numpy"]["frames"] == wl["frames"] and peers["numpy"]["windows"] == windows
    bw = peers["bytewax_items"]
    assert bw["frames"] == wl["slice"]["frames"] and bw["samples"] == wl["slice"]["samples"]
    assert bw["windows"] >= q.slice_assets * q.slice_duration_s and bw["late_readings"] == 0
    sc = res["scalar"]
    assert sc["messages"] == res["workload"]["scalar"]["events"] == q.scalar_keys * q.scalar_rate_hz * q.scalar_duration_s
    lat = res["latency"]["runs"]
    assert len(lat) == len(q.latency_runs) and lat[0]["score"]["n"] > 0
    assert lat[0]["score"]["n"] <= lat[0]["windows_expected"]
    assert [p["assets"] for p in res["memory"]["points"]] == list(q.memory_assets)
    assert set(res["summary"]["targets"]) == set(e2e.TARGETS)
    md = out.with_suffix(".md").read_text()
    assert "### Waveform throughput" in md and "### Latency at half load" in md and "Bytewax per item" in md
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(not quixenv.ready(), reason="benchmarks/.venv-quix is missing: `python -m benchmarks` creates "
                    "it (pip install quixstreams from PyPI); the Quix peer test runs once it exists")
def test_quick_quix_peer_reads_everything(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    code = e2e.main(["--quick", "--skip", "hst,scaling,numpy,bytewax,scalar,latency,memory", "--json", str(out)])
    res = json.loads(out.read_text())
    assert code == 0, res["errors"]
    qx, wl = res["peers"]["quix"], res["workload"]["waveform"]
    # Quix stops once every window it can emit is out; only frames of each asset's last (never closed)
    # window may be left unread
    assert 0 <= wl["frames"] - qx["frames"] <= wl["assets"] * 10
    assert qx["samples"] == qx["frames"] * 3 * 1024
    assert qx["windows"] == qx["windows_expected"] > 0

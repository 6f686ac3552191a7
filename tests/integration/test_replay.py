"""File replay (simulator files, CSV, Parquet, JSONL) through the flow, the Parquet sink's layout, pacing."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from bytewax.testing import TestingSink, run_main
from support import by_id, read_jsonl_outputs, run_cli

from aiotstream.config import FileInput, ParquetOutput, SiteConfig, default_site
from aiotstream.dataflow import build_flow
from aiotstream.io.broker import free_port
from aiotstream.io.parquet import ParquetSink
from aiotstream.io.replay import FileSource, _FilePartition
from aiotstream.records import Output
from aiotstream.routing import worker_of
from aiotstream.schemas import validator
from aiotstream.sim.plant import PlantSimulator
from benchmarks.scaling import items_crossed
from benchmarks.workload import site_dict, write_site, write_waveform_files

ROOT = Path(__file__).resolve().parents[2]
CFG = default_site(3, inputs={"tail": False}, kpi={"period_s": 5})
T0 = 1_767_225_600_000_000_000


def run(cfg: SiteConfig, src: FileSource, *also) -> list[Output]:
    out: list[Output] = []
    run_main(build_flow(cfg, src, TestingSink(out), tail=False, also=also), epoch_interval=timedelta(seconds=1))
    return out


def test_simulator_files_replay_to_scores_kpis_and_parquet(tmp_path: Path) -> None:
    sim = PlantSimulator(CFG.all_assets(), duration_s=12.0, n_faults=0, seed=2)
    sim.write_files(tmp_path / "in")
    lake = tmp_path / "lake"
    cfg = FileInput(paths=[str(tmp_path / "in" / "waveforms.bin"), str(tmp_path / "in" / "readings.jsonl")])
    out = run(CFG, FileSource(cfg, batch=100), ParquetSink(ParquetOutput(directory=str(lake)), CFG.site.id))

    v = validator()
    for o in out:
        err = next(iter(v.iter_errors(o.record)), None)
        assert err is None, f"{o.kind}: {err.message}"
    kinds = Counter(o.kind for o in out)
    assert kinds["deadletter"] == 0
    assert kinds["score"] == 3 * 12
    kpis = [o.record for o in out if o.kind == "kpi" and o.record["scope"] == "asset"]
    assert sum(k["totals"]["frames"] for k in kpis) == sim.n_frames
    # lineage: file path and row ranges; every frame row of the file is covered exactly by the KPI spans
    spans = [i for k in kpis for i in k["inputs"] if i["topic"].endswith("waveforms.bin")]
    assert all(i["kind"] == "file" and i["partition"] == -1 for i in spans)
    assert min(i["first_offset"] for i in spans) == 0 and max(i["last_offset"] for i in spans) == sim.n_frames - 1

    # the lake: kind/site=/date=/part-*.parquet, one row per score/KPI, ids as emitted
    files = sorted(lake.rglob("*.parquet"))
    assert files and not list(lake.rglob("*.tmp"))
    assert {f.relative_to(lake).parts[:3] for f in files} == {
        ("score", f"site={CFG.site.id}", "date=2026-01-01"), ("kpi", f"site={CFG.site.id}", "date=2026-01-01")}
    scores = ds.dataset(lake / "score", format="parquet", partitioning="hive").to_table()
    assert sorted(scores.column("id").to_pylist()) == sorted(o.record["id"] for o in out if o.kind == "score")
    assert scores.schema.field("score").type == pa.float64()
    assert orjson.loads(scores.column("values")[0].as_py())  # nested values as JSON text
    assert len(pq.read_table(lake / "kpi").column("id")) == kinds["kpi"]


def test_csv_parquet_and_jsonl_tables_with_bad_rows(tmp_path: Path) -> None:
    cfg = default_site(2, inputs={"tail": False}, kpi={"period_s": 1})
    ts = [T0 + i * 250_000_000 for i in range(8)]
    (tmp_path / "m.csv").write_text("meter,time,kw\n" + "".join(
        f"asset-{i % 2:03d},{t // 1_000_000},{'n/a' if i == 3 else i * 1.5}\n" for i, t in enumerate(ts)))
    pq.write_table(pa.table({"meter": ["asset-000", "asset-001", "ghost"], "time": [ts[0] // 10**6] * 3,
                             "kw": [1.0, 2.0, 3.0], "temp": [20.0, None, 22.0]}), tmp_path / "w.parquet")
    (tmp_path / "m.jsonl").write_bytes(b'{"meter": "asset-000", "time": %d, "kw": 4.5}\nnot json\n' % (ts[1] // 10**6))
    cols = {"asset": "meter", "ts": "time", "ts_unit": "ms", "metrics": ["kw"]}
    out = run(cfg, FileSource(FileInput(paths=[str(tmp_path / "m.csv"), str(tmp_path / "m.jsonl")],
                                        columns=cols)))
    wide = run(cfg, FileSource(FileInput(paths=[str(tmp_path / "w.parquet")], columns={**cols, "metrics": ["kw", "temp"]})))

    dead = [o.record for o in out + wide if o.kind == "deadletter"]
    got = Counter((d["reason"], d["source"]["topic"].rsplit("/", 1)[-1], d["source"]["offset"]) for d in dead)
    assert got == Counter({("non_finite", "m.csv", 3): 1, ("bad_json", "m.jsonl", 1): 1,
                           ("non_finite", "w.parquet", 1): 1,  # the null temp of asset-001
                           ("unknown_asset", "w.parquet", 2): 2})  # ghost's two metrics
    assert orjson.loads(next(__import__("base64").b64decode(d["payload_b64"]) for d in dead
                             if d["reason"] == "unknown_asset"))["asset"] == "ghost"
    kpis = [o.record for o in out if o.kind == "kpi" and o.record["scope"] == "asset"]
    csv_rows = {(i["first_offset"], i["last_offset"]) for k in kpis for i in k["inputs"] if i["topic"].endswith(".csv")}
    assert csv_rows and min(a for a, _ in csv_rows) == 0 and max(b for _, b in csv_rows) == 7
    assert {k["asset"] for k in kpis} == {"asset-000", "asset-001"}


def test_pacing_releases_rows_by_event_time_on_an_injected_clock(tmp_path: Path) -> None:
    lines = [orjson.dumps({"asset": "asset-000", "ts": T0 + i * 10**9, "metric": "t", "value": i}) for i in range(5)]
    (tmp_path / "r.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    now = [1000.0]
    cfg = FileInput(paths=[str(tmp_path / "r.jsonl")], speed=2.0)
    src = FileSource(cfg, batch=10, clock=lambda: now[0])
    part = src.build_part("in", src.list_parts()[0], None)
    assert isinstance(part, _FilePartition)
    assert [m.offset for m in part.next_batch()] == [0]  # only the first row is due at the start
    assert part.next_batch() == [] and part.next_awake() is not None
    now[0] += 1.0  # 1 s of wall time at 2x = 2 s of event time
    assert [m.offset for m in part.next_batch()] == [1, 2]
    assert part.snapshot() == 3
    resumed = src.build_part("in", src.list_parts()[0], 3)
    now[0] += 10.0
    assert [m.offset for m in resumed.next_batch()] == [3, 4]  # resumes after the snapshot's row, none twice
    with pytest.raises(StopIteration):
        resumed.next_batch()
    assert np.isclose(src.t_first, T0)


def _replay_cluster(files: list[str], site: Path, out: Path, stats: Path, processes: int, workers: int) -> list[dict]:
    """``aiotstream replay`` as a cluster, each process through ``benchmarks.flowrun`` (which counts, per asset,
    the items the process decoded and the items it analyzed); returns each process's counts."""
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
    procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.flowrun", str(stats / f"p{i}.json"), "replay",
                               *files, "--site", str(site), "-i", str(i), "-a", addresses, "-w", str(workers),
                               "--out-dir", str(out)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}) for i in range(processes)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    return [orjson.loads((stats / f"p{i}.json").read_bytes()) for i in range(processes)]


@pytest.mark.parametrize(("processes", "workers", "partitioner"),
                         [(2, 1, "aiotstream"), (2, 2, "aiotstream"), (2, 1, "kafka")])
def test_a_cluster_replays_each_file_once_with_the_same_outputs(tmp_path: Path, processes: int, workers: int,
                                                                partitioner: str) -> None:
    # frames and readings in 4 files each; one process, then a cluster whose processes list their file_share:
    # every frame analyzed once, the same windows and KPIs as alone. Co-partitioned files (the default) are read
    # by the process that owns their assets, so nothing crosses between the processes, with 1 or 2 workers each
    # (worker g is worker g % w of process g // w); CRC32-partitioned ones are not
    data = write_waveform_files(tmp_path / "in", assets=8, duration_s=8.0, partitions=4, asset_prefix="d-",
                                partitioner=partitioner)
    site = write_site(tmp_path, site_dict("rep2", 8, [], prefix="d-"))
    files = [str(p) for p in data.frame_files + data.reading_files]
    assert {worker_of(a, processes * workers) // workers for a in data.assets} == set(range(processes))
    run_cli("replay", *files, "--site", str(site), "--out-dir", str(tmp_path / "one"))
    stats = _replay_cluster(files, site, tmp_path / "two", tmp_path, processes, workers)
    one, two = read_jsonl_outputs(tmp_path / "one"), read_jsonl_outputs(tmp_path / "two")
    kpis = [k for k in two["kpis"] if k["scope"] == "asset"]
    assert sum(k["totals"]["frames"] for k in kpis) == data.frames  # none twice, none left out
    assert not two["deadletter"]
    for kind in ("scores", "kpis"):
        assert len(two[kind]) == len(one[kind]) > 0
        assert by_id(two[kind]) == by_id(one[kind]), kind
    analyzed, crossed = items_crossed(stats)
    assert analyzed == data.frames + data.readings
    assert all(s["decoded"] for s in stats)  # both processes read
    if partitioner == "aiotstream":
        assert crossed == 0
    else:
        assert crossed > data.frames // 10  # CRC32 puts some assets on the other process's partitions

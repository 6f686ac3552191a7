"""How a cluster shares work: replay files dealt over the processes, the worker Bytewax routes an asset to,
co-partitioned files read by the process that owns their assets, and frames pickled across processes coming
back exactly."""
from __future__ import annotations

import pickle
from pathlib import Path

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSource, cluster_main
from hypothesis import given
from hypothesis import strategies as st

from aiotstream.codecs import decode_frame, encode_frame
from aiotstream.config import FileInput
from aiotstream.io.replay import FileSource, file_share
from aiotstream.records import Frame, Position
from aiotstream.routing import Placement, file_partition, worker_of
from aiotstream.sim.plant import PlantSimulator, read_waveform_file
from benchmarks.workload import asset_split, write_waveform_files


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=30), st.integers(1, 5))
def test_every_file_has_exactly_one_reader_and_bytes_are_balanced(sizes: list[int], n: int) -> None:
    paths = [f"f{i:02d}.bin" for i in range(len(sizes))]
    shares = [file_share(paths, sizes, Placement(i, n)) for i in range(n)]
    assert sorted(p for s in shares for p in s) == paths  # none twice, none left out
    for s in shares:
        assert s == [p for p in paths if p in s]  # in the given order
    size_of = dict(zip(paths, sizes))
    loads = [sum(size_of[p] for p in s) for s in shares]
    assert max(loads) - min(loads) <= max(sizes)  # greedy, largest first: within one file


def test_frame_files_are_not_all_given_to_one_process(tmp_path: Path) -> None:
    # what Bytewax does alone when every process lists every file: alternate in name order, which gives
    # process 0 of 2 every .bin here
    for k in range(4):
        (tmp_path / f"p{k:02d}.bin").write_bytes(b"\0" * 10_000)
        (tmp_path / f"p{k:02d}.jsonl").write_bytes(b"{}\n")
    cfg = FileInput(paths=[str(tmp_path / "*")])
    whole = FileSource(cfg).list_parts()
    assert len(whole) == 8
    shares = [FileSource(cfg, process=(i, 2)).list_parts() for i in range(2)]
    assert sorted(shares[0] + shares[1]) == sorted(whole)
    assert [sum(p.endswith(".bin") for p in s) for s in shares] == [2, 2]
    part = FileSource(cfg, process=(1, 2)).build_part("in", shares[0][0], None)  # any listed file can be built
    part.close()


class _WorkerSink(DynamicSink):
    def __init__(self, seen: list[tuple[int, str]]):
        self.seen = seen

    def build(self, step_id: str, worker_index: int, worker_count: int) -> StatelessSinkPartition:
        seen = self.seen

        class _Part(StatelessSinkPartition):
            def write_batch(self, items: list) -> None:
                seen.extend((worker_index, k) for k, _ in items)

        return _Part()


def test_worker_of_is_where_bytewax_sends_a_key() -> None:
    keys = [f"p-{i:06d}" for i in range(1, 41)] + [f"asset-{i}" for i in range(20)] + ["", "x" * 23]
    seen: list[tuple[int, str]] = []
    flow = Dataflow("routing")
    s = op.input("in", flow, TestingSource(keys))
    keyed = op.key_on("key", s, lambda k: k)
    counted = op.stateful_map("count", keyed, lambda n, _: ((n or 0) + 1, None))
    op.output("out", counted, _WorkerSink(seen))
    cluster_main(flow, [], 0, worker_count_per_proc=2)
    assert sorted(seen) == sorted((worker_of(k, 2), k) for k in keys)
    assert asset_split([f"p-{i:06d}" for i in range(1, 41)], 2) == [25, 15]  # the split RESULTS.md reports


def _frame(**kw: object) -> Frame:
    rng = np.random.default_rng(3)
    f = decode_frame(encode_frame("p-000007", 12, 1_700_000_000_123_456_789, 10_000.0,
                                  rng.normal(size=(3, 1024)).astype(np.float32)), Position("bench.waveforms", 5, 99))
    for k, v in kw.items():
        setattr(f, k, v)
    return f


def _assert_same(a: Frame, b: Frame) -> None:
    assert type(b) is Frame
    for name in Frame.__slots__:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, np.ndarray):
            assert isinstance(y, np.ndarray) and y.dtype == x.dtype and y.shape == x.shape
            assert x.tobytes() == y.tobytes()  # bit for bit, NaN included
            assert y.flags.writeable
        else:
            assert type(y) is type(x) and y == x, name


def test_a_frame_comes_back_from_pickle_exactly() -> None:
    raw = _frame()
    assert raw.samples is not None and raw.raw is not None
    _assert_same(raw, pickle.loads(pickle.dumps(raw)))
    # as it crosses processes: partials (and spectral partials) instead of samples, the raw frame kept
    partials = np.arange(33, dtype=np.float64).reshape(3, 11)
    partials[1, 2] = np.nan
    spectral = np.linspace(-1, 1, 3 * 15).reshape(3, 15)[:, ::-1]  # not C-contiguous
    done = _frame(samples=None, partials=partials, spectral=spectral)
    for protocol in (4, pickle.HIGHEST_PROTOCOL):
        back = pickle.loads(pickle.dumps([("p-000007", [done, done])], protocol=protocol))
        _assert_same(done, back[0][1][0])
        back[0][1][0].partials[0, 0] = 7.0  # writable, and not shared with the original
        assert done.partials[0, 0] == 0.0
    # nothing to pack: None everywhere, and an object array is pickled as it is
    bare = _frame(samples=np.array([None, 1], dtype=object), raw=None)
    back = pickle.loads(pickle.dumps(bare))
    assert back.raw is None and back.partials is None and back.samples.tolist() == [None, 1]


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4))
def test_numbered_files_go_to_the_process_that_owns_their_assets(n: int, w: int, per_worker: int) -> None:
    # partition k of P (a multiple of the n x w workers) holds the assets partition_for puts there; the process
    # listing it must be the one whose worker Bytewax routes those assets to
    parts = n * w * per_worker
    paths = [f"in/{kind}-part{k:02d}.{ext}" for kind, ext in (("waveforms", "bin"), ("readings", "jsonl"))
             for k in range(parts)]
    shares = [file_share(paths, [1] * len(paths), Placement(i, n, w)) for i in range(n)]
    assert sorted(p for s in shares for p in s) == sorted(paths)
    assert {len(s) for s in shares} == {2 * w * per_worker}  # even
    for i, share in enumerate(shares):
        for path in share:
            k = file_partition(path)
            assert k is not None
            assert k % (n * w) // w == i  # worker k % W, on process i


def test_simulated_partition_files_hold_only_their_readers_assets(tmp_path: Path) -> None:
    from aiotstream.config import default_site

    cfg = default_site()
    sim = PlantSimulator(cfg.all_assets(), duration_s=1.0, n_faults=0, warmup_s=0.5, seed=3)
    counts = sim.write_files(tmp_path, partitions=4)
    files = sorted(str(p) for p in tmp_path.glob("*-part*.*"))
    assert len(files) == 8 and counts["frames"] > 0
    for n, w in ((2, 1), (2, 2)):  # 2 processes of 1 worker, of 2 workers
        for i in range(n):
            for path in file_share(files, [1] * 8, Placement(i, n, w)):
                if path.endswith(".bin"):
                    for raw in read_waveform_file(path):
                        assert worker_of(decode_frame(raw, Position("f", -1, 0)).asset, n * w) // w == i
    frames = sum(1 for p in files if p.endswith(".bin") for _ in read_waveform_file(p))
    assert frames == counts["frames"]  # every frame in exactly one file


def test_benchmark_files_follow_the_partitioner(tmp_path: Path) -> None:
    owned = write_waveform_files(tmp_path / "a", assets=6, duration_s=1.0, partitions=4, asset_prefix="d-")
    crc = write_waveform_files(tmp_path / "k", assets=6, duration_s=1.0, partitions=4, asset_prefix="d-",
                               partitioner="kafka")
    for data, co_partitioned in ((owned, True), (crc, False)):
        mismatched = set()
        seen = set()
        for k, path in enumerate(data.frame_files):
            assert file_partition(str(path)) == k
            for raw in read_waveform_file(path):
                asset = decode_frame(raw, Position("f", -1, 0)).asset
                seen.add(asset)
                if worker_of(asset, 2) != k % 2:
                    mismatched.add(asset)
        assert seen == set(data.assets)
        assert (not mismatched) == co_partitioned  # CRC32 puts some of these 6 assets with the other worker

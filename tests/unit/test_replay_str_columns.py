"""Table rows' text columns (asset, metric) read through the dictionary (a string column with no nulls) are
the values the general line gives (``"" if None else str(v)`` per value): same strings, same order, plain
``str``; nulls, other types (numbers, large strings), a missing column (the default) and empty batches go
the general way. A wide table's assets, each repeated once per metric column, are the comprehension's."""
from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.config import FileColumns
from aiotstream.io.replay import _str_column, table_rows

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6)


def _general(batch: pa.RecordBatch, name: str, default: str, n: int) -> list[str]:
    """The code before (the reference)."""
    if name in batch.schema.names:
        return ["" if v is None else str(v) for v in batch.column(name).to_pylist()]
    return [default] * n


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.lists(st.one_of(TEXT, st.sampled_from(["m1", "m2", "kw"])), max_size=40),
                 st.lists(st.one_of(st.none(), TEXT), max_size=20),
                 st.lists(st.one_of(st.none(), st.integers(-5, 5)), max_size=20)),
       st.sampled_from([None, pa.string(), pa.large_string()]))
def test_text_columns_equal_the_general_line(values: list, typ: pa.DataType | None) -> None:
    if typ is not None and any(isinstance(v, int) for v in values):
        typ = None
    arr = pa.array(values, typ) if typ is not None or values else pa.array(values, pa.string())
    whole = pa.RecordBatch.from_arrays([arr], names=["asset"])
    for batch in (whole, whole.slice(len(values) // 3)):  # (a resume reads a batch from a row on: a slice)
        n = batch.num_rows
        for name, default in (("asset", ""), ("other", "d")):
            got, want = _str_column(batch, name, default, n), _general(batch, name, default, n)
            assert got == want and all(type(v) is str for v in got)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a1", "a2", "b"]), max_size=30), st.integers(1, 4))
def test_wide_rows_repeat_each_asset_once_per_metric(assets: list[str], k: int) -> None:
    n = len(assets)
    metrics = [f"c{i}" for i in range(k)]
    data = {"asset": pa.array(assets, pa.string()), "ts": pa.array(range(n), pa.int64())}
    data.update({m: pa.array([float(i) for i in range(n)]) for m in metrics})
    rows = table_rows(pa.RecordBatch.from_pydict(data), 7, "file:x", FileColumns(metrics=metrics))
    assert rows.assets == [a for a in assets for _ in range(k)]
    assert all(type(a) is str for a in rows.assets) and rows.metrics == metrics * n


def _site(assets: list[str]) -> object:
    from aiotstream.config import SiteConfig
    return SiteConfig.from_dict({"site": {"id": "s"}, "assets": [{"id": a} for a in assets],
                                 "inputs": {"files": {"paths": ["x.parquet"]}}})


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a1", "a2", "ghost", "a1"]), st.integers(-3, 3),
                          st.sampled_from([1.0, 2.5, float("nan"), 1e200])), max_size=40),
       st.integers(1, 3), st.integers(0, 2), st.lists(st.integers(0, 40), max_size=3))
def test_the_readers_lists_are_the_arrays_and_decode_the_same(rows: list, k: int, first: int,
                                                             cuts: list[int]) -> None:
    """A wide table's ReadingRows carry ``lists`` equal to ``(rows.tolist(), ts_ns.tolist())`` (also sliced
    as the source slices poll batches); the decoder gives the same groups and dead letters with them as
    without them (times out of order, unknown assets, non-finite and out-of-range values included)."""
    from aiotstream.io.replay import _slice_rows
    from aiotstream.pdm.ingest import Ingestor
    from aiotstream.pdm.runtime import SiteRuntime

    start = 1_767_225_600 * 10**9
    n = len(rows)
    metrics = [f"c{i}" for i in range(k)]
    data = {"asset": pa.array([a for a, _, _ in rows], pa.string()),
            "ts": pa.array([start + dt * 10**9 for _, dt, _ in rows], pa.int64())}
    data.update({m: pa.array([v + i for _, _, v in rows]) for i, m in enumerate(metrics)})
    whole = table_rows(pa.RecordBatch.from_pydict(data), first, "file:x", FileColumns(metrics=metrics))
    bounds = sorted({0, len(whole), *[min(c * k, len(whole)) for c in cuts]})
    rt = SiteRuntime(_site(["a1", "a2"]))
    for a, b in zip(bounds, bounds[1:] or [len(whole)]):
        part = _slice_rows(whole, a, b)
        assert part.lists is not None and part.lists == (part.rows.tolist(), part.ts_ns.tolist())
        assert all(type(v) is int for v in part.lists[0] + part.lists[1])
        plain = _slice_rows(whole, a, b)
        plain.lists = None
        got = Ingestor(rt, now_ns=lambda: start + 10**6 * 10**9).decode_grouped([part])
        want = Ingestor(rt, now_ns=lambda: start + 10**6 * 10**9).decode_grouped([plain])
        assert _view(got) == _view(want)
    assert n == 0 or len(whole) == n * k


def _view(out: list) -> list:
    """Decoder output as comparable values (columns and readings by their fields, dead letters by reason)."""
    from aiotstream.records import ReadingColumns
    res = []
    for o in out:
        if isinstance(o, tuple):
            res.append((o[0], [(c.ts_ns, c.metrics, [repr(v) for v in c.values], c.offsets, c.in_order)
                               if isinstance(c, ReadingColumns) else repr(c) for c in o[1]]))
        else:
            res.append(repr(o)[:300])
    return res


def test_a_jsonl_tables_row_numbers_and_lists_agree(tmp_path) -> None:
    """The JSONL reader renumbers rows after table_rows (rejected lines skip numbers): the lists go (None)
    or agree with the arrays."""
    from aiotstream.config import FileInput
    from aiotstream.io.replay import read_chunks

    p = tmp_path / "t.jsonl"
    p.write_text('{"asset": "a1", "ts": 5, "c0": 1.0}\nnot json\n{"asset": "a1", "ts": 6, "c0": 2.0}\n')
    cfg = FileInput(paths=[str(p)], columns=FileColumns(metrics=["c0"]))
    (chunk,) = read_chunks(str(p), cfg)
    r = chunk.rows
    assert r.rows.tolist() == [0, 2] and [x[0] for x in r.rejects] == [1]
    assert r.lists is None or r.lists == (r.rows.tolist(), r.ts_ns.tolist())

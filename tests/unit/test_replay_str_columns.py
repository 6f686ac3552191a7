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
    batch = pa.RecordBatch.from_arrays([arr], names=["asset"])
    n = len(values)
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

"""Table readings as columns (:class:`aiotstream.records.ReadingColumns`, no object per value) give the plant
flow exactly the outputs of the per-reading path they replace.

Random blocks of table rows (two files, assets interleaved, an unknown asset, times out of order, late and far
too old rows, out-of-range values that send a block down the row-by-row path, a KPI state metric the timeline
follows, feedback between blocks; tumbling and sliding windows, the scalar detector on and off) run through
``build_flow`` twice: as the decoder makes them now, and with the decoder's column path turned off (every row a
:class:`~aiotstream.records.Reading`, as before). Every output (records, dead letters, KPIs) must be equal.
"""
from __future__ import annotations

import re
from contextlib import contextmanager

import numpy as np
import orjson
import pytest
from bytewax.testing import TestingSink, TestingSource, run_main
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.config import SiteConfig
from aiotstream.dataflow import build_flow
from aiotstream.pdm.asset import AssetAnalyzer
from aiotstream.pdm.ingest import Ingestor
from aiotstream.records import Output, ReadingColumns, ReadingRows, SourceMessage

S = 1_000_000_000
START = 1_767_225_600 * S


def site(sliding: bool, detector: bool) -> SiteConfig:
    return SiteConfig.from_dict({
        "site": {"id": "cols"},
        "assets": [{"id": "pump-1"}, {"id": "pump-2"}, {"id": "pump-3"}],
        "inputs": {"tail": False, "max_abs_value": 1000.0},
        "window": {"length_s": 2.0 if sliding else 1.0, "hop_s": 1.0, "max_past_s": 60.0},
        "kpi": {"periods_s": [30]},
        "scalar": {"enabled": detector, "readings_only": True, "block_s": 5},
    })


row = st.tuples(st.sampled_from(["pump-1", "pump-2", "pump-3", "ghost"]),  # ghost: not in the config
                st.integers(-3, 2),  # time step from the previous row (negative: out of order)
                st.integers(1, 3),  # how many of the metrics the row has (one reading each, same time)
                st.floats(-50, 50, allow_nan=False),
                st.integers(0, 60))  # 1 in 61: a value out of range (the block goes row by row)


def blocks_of(spec: list[list[tuple]], jumps: list[int], clean_blocks: set[int] | frozenset[int] = frozenset()
              ) -> list:
    """ReadingRows blocks (file f0 or f1 alternately), a feedback message after the second; the blocks
    ``clean_blocks`` are made clean (see below)."""
    out: list = []
    t = START + 100 * S
    n = 0
    for b, rows in enumerate(spec):
        t += jumps[b % len(jumps)] * S  # a jump back of more than max_past_s: far too old rows
        assets, ts, metrics, values = [], [], [], []
        clean = b in clean_blocks
        for a, dt, width, v, odd in rows:
            if clean:  # in time order, in range, no timeline metric: the column path can take it
                dt, odd = abs(dt), max(odd, 1)
            t += dt * S // 2
            names = ("temp", "current", "pressure" if clean else "state")[:width]
            for j, m in enumerate(names):
                assets.append(a)
                ts.append(t)
                metrics.append(m)
                values.append(5000.0 if odd == 0 else (float(int(v) % 3) if m == "state" else v + j))
        k = len(ts)
        rownums = np.arange(n, n + k, dtype=np.int64)  # odd blocks: row numbers backwards (spans' minimum)
        out.append(ReadingRows(f"f{b % 2}", -1, rownums[::-1].copy() if b % 2 else rownums, assets,
                               np.array(ts, dtype=np.int64), metrics, np.array(values, dtype=np.float64)))
        n += k
        if b == 1:
            out.append(SourceMessage("cols.feedback", 0, b, orjson.dumps({
                "schema": "aiotstream.feedback/1", "type": "ack", "asset": "pump-1",
                "alert_type": "scalar_anomaly", "ts": t, "by": "ana"})))
    return out


def run(cfg: SiteConfig, msgs: list) -> list[tuple]:
    out: list[Output] = []
    run_main(build_flow(cfg, TestingSource(msgs, batch_size=3), TestingSink(out), tail=False))
    # (the wall clock masked as in the golden tests; the audit trail's config record is all wall clock)
    return [(o.kind, o.key, _WALL.sub(rb'"\1":"*"', orjson.dumps(o.record, option=orjson.OPT_SORT_KEYS)))
            for o in out if o.kind != "audit"]


_WALL = re.compile(rb'"(produced_at)":"[^"]*"')


@contextmanager
def per_reading():
    """The column path off: the decoder emits one Reading per row (its path before the columns)."""
    orig = Ingestor._rows

    def rows(self, block, horizon, emit, reject, groups=None):  # type: ignore[no-untyped-def]
        return orig(self, block, horizon, emit, reject, None)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(Ingestor, "_rows", rows)
        yield


@contextmanager
def counting(calls: list[bool]):
    """Record whether each ``_on_columns`` call took its batch (True) or handed it back (False)."""
    orig = AssetAnalyzer._on_columns

    def spy(self, cols, now_s):  # type: ignore[no-untyped-def]
        got = orig(self, cols, now_s)
        calls.append(got is not None)
        return got
    with pytest.MonkeyPatch.context() as m:
        m.setattr(AssetAnalyzer, "_on_columns", spy)
        yield


@settings(max_examples=40, deadline=None)
@given(spec=st.lists(st.lists(row, min_size=1, max_size=40), min_size=1, max_size=6),
       jumps=st.lists(st.sampled_from([0, 0, 0, 3, -90]), min_size=1, max_size=3),
       clean=st.sets(st.integers(0, 5)), sliding=st.booleans(), detector=st.booleans())
def test_columns_give_the_outputs_of_one_reading_per_row(spec, jumps, clean, sliding, detector) -> None:
    cfg = site(sliding, detector)
    msgs = blocks_of(spec, jumps, clean)
    fast = run(cfg, msgs)
    with per_reading():
        slow = run(cfg, msgs)
    assert fast == slow
    assert fast  # (dead letters and KPIs at least)


def test_the_column_path_is_taken_for_clean_tables() -> None:
    """A clean table (every row in range, in time order, no timeline metric): every batch goes through
    ``_on_columns``; the outputs are those of the per-reading path, alerts included."""
    spec = [[("pump-1", 1, 2, 1.0 + (i % 7), 1), ("pump-2", 0, 3, 3.0 if i != 150 else 40.0, 1)]
            for i in range(300)]
    msgs = blocks_of([[r for rs in spec[i:i + 20] for r in rs] for i in range(0, 300, 20)], [0], set(range(15)))
    msgs = [m for m in msgs if isinstance(m, ReadingRows)]
    cfg = site(False, True)
    calls: list[bool] = []
    with counting(calls):
        fast = run(cfg, msgs)
    assert calls and all(calls)
    with per_reading():
        assert run(cfg, msgs) == fast
    assert any(k == "scalar" for k, _, _ in fast)


def test_reading_columns_pickle_and_expand() -> None:
    import pickle

    from aiotstream.records import Position, Reading, expand_columns

    c = ReadingColumns("a", "f", -1, [5, 6], ["t", "p"], [1.0, 2.0], [0, 1])
    back = pickle.loads(pickle.dumps(c))
    assert back.readings() == c.readings() == [Reading("a", 5, "t", 1.0, Position("f", -1, 0)),
                                               Reading("a", 6, "p", 2.0, Position("f", -1, 1))]
    assert back.in_order is False
    assert pickle.loads(pickle.dumps(ReadingColumns("a", "f", -1, [5], ["t"], [1.0], [0], True))).in_order is True
    old = ReadingColumns.__new__(ReadingColumns)  # (a state pickled before the flag: 7 fields)
    old.__setstate__(("a", "f", -1, [5], ["t"], [1.0], [0]))
    assert old.in_order is False and old.readings() == [Reading("a", 5, "t", 1.0, Position("f", -1, 0))]
    r = Reading("a", 7, "t", 3.0, Position("k", 0, 9))
    assert expand_columns([r, c, r]) == [r, *c.readings(), r]

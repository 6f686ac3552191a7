"""The analyze step's short way for a replay's batch of columns (``AnalyzerLogic.on_batch`` straight to
``AssetAnalyzer._on_columns``, ``notify_at`` None at once) gives what the general entry gives.

Random batches of one asset's table readings as columns (in and out of time order, steps back, late and far
too old readings, a metric the KPI timeline follows, several partitions, tumbling and sliding windows, the
scalar detector on and off) go to two analyzers: one through ``AnalyzerLogic.on_batch`` of a replay (no
idle timer, no ONNX models), the other through ``AssetAnalyzer.on_items`` of the readings the columns stand
for (one :class:`~aiotstream.records.Reading` each: the general path). Every batch's outputs, the windows
left open and the asset's clock must be equal, and so must the flushes at the end.
"""
from __future__ import annotations

import re

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aiotstream.config import SiteConfig
from aiotstream.dataflow.plant import AnalyzerLogic
from aiotstream.pdm.asset import AssetAnalyzer
from aiotstream.pdm.runtime import SiteRuntime
from aiotstream.records import ReadingColumns, expand_columns

S = 1_000_000_000
START = 1_767_225_600 * S
_WALL = re.compile(rb'"(produced_at)":"[^"]*"')


def _site(sliding: bool, detector: bool) -> SiteConfig:
    return SiteConfig.from_dict({
        "site": {"id": "calls"},
        "assets": [{"id": "pump-1"}],
        "inputs": {"tail": False},
        "window": {"length_s": 2.0 if sliding else 1.0, "hop_s": 1.0, "max_past_s": 30.0,
                   "allowed_lateness_s": 0.5},
        "kpi": {"periods_s": [10]},
        "scalar": {"enabled": detector, "readings_only": True, "block_s": 5},
    })


def _outs(outs: list) -> list[tuple]:
    return [(o.kind, o.key, _WALL.sub(rb'"\1":"*"', orjson.dumps(o.record, option=orjson.OPT_SORT_KEYS)))
            for o in outs]


def _state(a: AssetAnalyzer) -> tuple:
    w = a.windows
    return (a.clock_ns, w.closed_end_ns, dict(w.progress), {s: acc.offsets for s, acc in w.open.items()},
            a.kpi.accounted_ns, len(a.queue))


# a batch: (partition, step back at its start (s), rows: (time step (quarter s), channels, state metric?),
# row numbers backwards?)
batch = st.tuples(st.integers(0, 1), st.sampled_from([0, 0, 0, 1, 3, 60]),
                  st.lists(st.tuples(st.integers(-1, 6), st.sampled_from([1, 2, 2, 2, 3]), st.integers(0, 12)), min_size=1,
                           max_size=8), st.booleans())


@settings(max_examples=120, deadline=None)
# a batch that steps back closes windows it opens and closes (before the open one it closes): in start order
@example(batches=[(0, 0, [(4, 2, 5)], False), (0, 3, [(0, 2, 5), (6, 2, 5), (6, 2, 5), (6, 2, 5)], False)],
         sliding=False, detector=False)
@given(batches=st.lists(batch, min_size=1, max_size=25), sliding=st.booleans(), detector=st.booleans())
def test_on_batch_of_columns_matches_on_items_of_the_readings(batches, sliding, detector) -> None:
    cfg = _site(sliding, detector)
    rt_fast, rt_ref = SiteRuntime(cfg), SiteRuntime(cfg)
    logic = AnalyzerLogic(rt_fast, None, None, None, snapshots=False)
    ref = AssetAnalyzer(rt_ref, "pump-1")
    t, off = START, 0
    for b, (part, back, rows, backwards) in enumerate(batches):
        t -= back * S
        ts, metrics, values, offs = [], [], [], []
        for dt, width, odd in rows:
            t += dt * S // 4
            names = ("current", "pressure", "temperature")[:width]  # (temperature: a value the windows keep)
            if odd == 0:  # a metric the KPI timeline follows: the batch goes reading by reading
                names = ("state",)
            for k, m in enumerate(names):
                ts.append(t)
                metrics.append(m)
                values.append(1.0 if m == "state" else 0.1 * ((b * 7 + k * 3 + off) % 11))
                offs.append(off)
                off += 1
        if backwards:  # (an input span's first offset is then its last reading's)
            offs.reverse()
        cols = ReadingColumns("pump-1", f"file:t{part}", -1, ts, metrics, values, offs)
        got, retain = logic.on_batch([[cols]])
        assert retain is False and logic.notify_at() is None
        want = ref.on_items(expand_columns([cols]), None)
        assert _outs(got) == _outs(want), b
        assert logic.analyzer is not None and _state(logic.analyzer) == _state(ref)
    assert logic.analyzer is not None
    assert _outs(logic.on_eof()[0]) == _outs(ref.flush(kpi=True))


# ---- the decoder's in_order flag (times and row numbers of a block in order: so each asset's columns) ----

def _cols_site() -> SiteConfig:
    return SiteConfig.from_dict({
        "site": {"id": "calls"},
        "assets": [{"id": "pump-1"}, {"id": "pump-2"}],
        "inputs": {"tail": False},
        "window": {"length_s": 1.0, "hop_s": 1.0, "max_past_s": 30.0, "allowed_lateness_s": 0.5},
        "kpi": {"periods_s": [10]},
    })


@settings(max_examples=150, deadline=None)
@example(rows=[("pump-1", 0, 0), ("pump-2", -1, 0), ("pump-1", 2, 0)], rows_back=False)  # the block's out
@example(rows=[("pump-1", 0, 0), ("pump-2", 0, 0), ("pump-1", 1, 0)], rows_back=True)  # of order, no asset's
@given(rows=st.lists(st.tuples(st.sampled_from(["pump-1", "pump-2", "ghost"]), st.integers(-2, 3),
                               st.integers(0, 3)), min_size=1, max_size=30),
       rows_back=st.booleans())
def test_decoder_in_order_flag_is_the_block_order(rows, rows_back) -> None:
    """A block's columns say in_order exactly when the block's times and row numbers are both in order (a
    block out of order says False even where an asset's own columns happen to be in order: the per-asset step
    checks those), and in_order is then true of every asset's columns (fails if the flag is set from the times
    alone, or for a block out of order)."""
    import numpy as np

    from aiotstream.pdm.ingest import Ingestor
    from aiotstream.records import ReadingRows

    rt = SiteRuntime(_cols_site())
    assets, ts, metrics, rownums = [], [], [], []
    t = START
    for k, (a, dt, jump) in enumerate(rows):
        t += dt * S // 4
        assets.append(a)
        ts.append(t)
        metrics.append("current")
        rownums.append(-k if rows_back else k + jump)  # (row numbers may skip, as a file with rejects)
    block = ReadingRows("file:t", -1, np.array(rownums, dtype=np.int64), assets, np.array(ts, dtype=np.int64),
                        metrics, np.full(len(ts), 1.5))
    out = Ingestor(rt, now_ns=lambda: START + 10**6 * S).decode_grouped([block])
    got = [g for g in out if isinstance(g, tuple)]
    assert got or set(assets) == {"ghost"}
    whole = ts == sorted(ts) and rownums == sorted(rownums)
    for _, items in got:
        for c in items:
            assert type(c) is ReadingColumns
            assert c.in_order is whole
            if c.in_order:
                assert c.ts_ns == sorted(c.ts_ns) and c.offsets == sorted(c.offsets)


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(batch, min_size=1, max_size=25), sliding=st.booleans(), detector=st.booleans())
def test_on_batch_of_flagged_columns_matches_unflagged(batches, sliding, detector) -> None:
    """Columns flagged in order (as the decoder flags a block in order) give the outputs of the same columns
    unflagged (the per-asset step's own checks), and those of the readings."""
    cfg = _site(sliding, detector)
    logics = [AnalyzerLogic(SiteRuntime(cfg), None, None, None, snapshots=False) for _ in range(2)]
    ref = AssetAnalyzer(SiteRuntime(cfg), "pump-1")
    t, off = START, 0
    for b, (part, back, rows, _) in enumerate(batches):
        t -= back * S
        ts, metrics, values, offs = [], [], [], []
        for dt, width, odd in rows:
            t += abs(dt) * S // 4  # (in time order within the batch; a batch may step back from the last)
            names = ("current", "pressure", "temperature")[:width] if odd else ("state",)
            for k, m in enumerate(names):
                ts.append(t)
                metrics.append(m)
                values.append(1.0 if m == "state" else 0.1 * ((b * 7 + k * 3 + off) % 11))
                offs.append(off)
                off += 1
        got = []
        for flag, logic in zip((True, False), logics):
            cols = ReadingColumns("pump-1", f"file:t{part}", -1, list(ts), list(metrics), list(values), list(offs),
                                  flag)
            got.append(_outs(logic.on_batch([[cols]])[0]))
        want = _outs(ref.on_items(expand_columns([ReadingColumns("pump-1", f"file:t{part}", -1, ts, metrics,
                                                                 values, offs)]), None))
        assert got[0] == got[1] == want, b
        assert _state(logics[0].analyzer) == _state(logics[1].analyzer) == _state(ref)
    assert _outs(logics[0].on_eof()[0]) == _outs(logics[1].on_eof()[0]) == _outs(ref.flush(kpi=True))

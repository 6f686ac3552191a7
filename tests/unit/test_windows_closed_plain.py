"""``AssetAnalyzer._windows_closed``'s plain check (a readings-only window with no scalar rows due and no KPI
period ending: the KPI steps in one, ``KpiTracker.readings_window``) decides as the general steps would.

Two analyzers take the same random batches of whole rows as table columns (the scalar detector's tail; now
and then a row of fewer channels, which leaves the tail for the pending rows), at steps that cross scalar
blocks (``block_s`` 3) and KPI periods (10 s), steps back, gaps, several windows per batch: one as configured,
the other with the plain check off (``_kpi_lengths`` None: ``add_window``, the scalar rows' due test with
``ScalarScorer.first_ns()`` and ``advance_close`` for every window). Every batch's outputs and the asset's
state must be equal, and so must the flushes.
"""
from __future__ import annotations

import re

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aiotstream.config import SiteConfig
from aiotstream.dataflow.plant import AnalyzerLogic
from aiotstream.pdm.runtime import SiteRuntime
from aiotstream.records import ReadingColumns

S = 1_000_000_000
START = 1_767_225_600 * S
_WALL = re.compile(rb'"(produced_at)":"[^"]*"')
_CH = ("c0", "c1", "c2")


def _site() -> SiteConfig:
    return SiteConfig.from_dict({
        "site": {"id": "plain"},
        "assets": [{"id": "pump-1"}],
        "inputs": {"tail": False},
        "window": {"length_s": 1.0, "hop_s": 1.0, "max_past_s": 30.0, "allowed_lateness_s": 0.5},
        "kpi": {"periods_s": [10]},
        "scalar": {"enabled": True, "readings_only": True, "block_s": 3},
    })


def _outs(outs: list) -> list[tuple]:
    return [(o.kind, o.key, _WALL.sub(rb'"\1":"*"', orjson.dumps(o.record, option=orjson.OPT_SORT_KEYS)))
            for o in outs]


def _state(lg: AnalyzerLogic) -> tuple:
    a = lg.analyzer
    return (a.clock_ns, a.windows.closed_end_ns, a.kpi.accounted_ns, sorted(a.kpi.periods),
            a.scalar.first_ns(), len(a.scalar.ready))


# a batch: rows, each (time step (quarter s), channels of the row)
batch_st = st.lists(st.tuples(st.sampled_from([4, 4, 4, 4, 0, 2, 8, 20, -4]), st.sampled_from([3, 3, 3, 3, 2])),
                    min_size=1, max_size=4)


@settings(max_examples=150, deadline=None)
@example(batches=[[(4, 3)]] * 30)  # the replay's steady state: a whole row per batch, blocks and periods due
@example(batches=[[(4, 3)]] * 4 + [[(4, 2)]] + [[(4, 3)]] * 12)  # a row off the tail, pending rows after it
@given(batches=st.lists(batch_st, min_size=1, max_size=40))
def test_plain_check_decides_as_the_general_steps(batches) -> None:
    cfg = _site()
    fast = AnalyzerLogic(SiteRuntime(cfg), None, None, None, snapshots=False)
    ref = AnalyzerLogic(SiteRuntime(cfg), None, None, None, snapshots=False)
    t, off = START, 0
    for b, rows in enumerate(batches):
        ts, metrics, values, offs = [], [], [], []
        for step, width in rows:
            t = max(START, t + step * S // 4)
            for m in _CH[:width]:
                ts.append(t)
                metrics.append(m)
                values.append(float(off % 7) - 3.0 + 0.25 * (off % 3))
                offs.append(off)
                off += 1
        order = ts == sorted(ts)
        got = []
        for lg in (fast, ref):
            c = ReadingColumns("pump-1", "tbl", -1, list(ts), list(metrics), list(values), list(offs), order)
            made = lg.analyzer is None
            got.append(_outs(lg.on_batch([[c]])[0]))  # (the first makes the analyzer)
            if made and lg is ref:
                lg.analyzer._kpi_lengths = None  # the plain check off: the general steps from the next batch
        assert got[0] == got[1], b
        assert _state(fast) == _state(ref), b
    assert _outs(fast.on_eof()[0]) == _outs(ref.on_eof()[0])

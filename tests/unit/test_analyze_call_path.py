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

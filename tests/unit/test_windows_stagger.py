"""Staggered windows (``window.stagger``): an asset's windows start at its own offset within the hop.

A window assembler with offset ``d`` must do to inputs at times ``t + d`` exactly what one without an offset
does to the same inputs at times ``t``, shifted by ``d``: the same windows (each ``d`` later) with the same
inputs, values, frames and sequence ranges, the same late inputs, the same progress and watermark. That is
checked on random batches of frames, readings and readings as columns (live and replayed, tumbling and
sliding, late data), through every path the assembler has (``add``, ``add_columns``, the replay's in-order
path), and for offsets that are and are not multiples of anything.
"""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.records import ReadingColumns, expand_columns
from aiotstream.windows import ClosedWindow, ReadingsWindow, WindowAssembler, stagger_offset
from tests.unit.test_windows_fastpath import B, S, _frame, _items

frame_or_reading = st.tuples(st.booleans(), st.integers(0, 40), st.integers(0, 2), st.sampled_from(["t", "p"]),
                             st.floats(-5, 5), st.booleans(), st.integers(0, 50))
column_row = st.tuples(st.integers(0, 40), st.sampled_from(["t", "p"]), st.floats(-5, 5), st.integers(0, 50))
batch = st.one_of(st.tuples(st.just("items"), st.lists(frame_or_reading, max_size=20)),
                  st.tuples(st.just("columns"), st.lists(st.tuples(st.integers(0, 2), st.lists(column_row, max_size=10)),
                                                         min_size=1, max_size=2)))


def _key(w: ClosedWindow | ReadingsWindow, shift: int) -> tuple:
    return (type(w).__name__, w.start_ns - shift, w.end_ns - shift, [p.tolist() for p in w.partials], w.inputs,
            getattr(w, "first_seq", None), getattr(w, "last_seq", None), getattr(w, "readings", None))


def _drive(w: WindowAssembler, batches: list, shift: int, clock: bool, lean: bool = False) -> list:
    """What ``w`` does with ``batches`` at times moved by ``shift``, told back at the unshifted times."""
    out: list = []
    seq = 0
    for b, (kind, rows) in enumerate(batches):
        now = float(b) if clock else None
        if kind == "items":
            items, seq = _items(rows, seq, shift)
            closed, late = w.add(items, now)
            out.append(("add", [_key(c, shift) for c in closed], [items.index(x) for x in late]))
        else:
            cols = [ReadingColumns("a", "rd", part, [B + t * S // 4 + shift for t, _, _, _ in r],
                                   [m for _, m, _, _ in r], [v for _, _, v, _ in r], [o for _, _, _, o in r])
                    for part, r in rows]
            got = w.add_columns(cols, now, lean=lean) if any(cols) else None
            if got is None:
                items = expand_columns(cols)
                closed, late = w.add(items, now)
                out.append(("fell back", [_key(c, shift) for c in closed], [items.index(x) for x in late]))
            else:
                out.append(("columns", [_key(c, shift) for c in got], []))
        out.append(({k: v - shift for k, v in w.progress.items()}, dict(w.last_arrival),
                    None if w.watermark_ns is None else w.watermark_ns - shift,
                    None if w.closed_end_ns is None else w.closed_end_ns - shift,
                    sorted(s - shift for s in w.open)))
    out.append([_key(c, shift) for c in w.flush()])
    return out


@settings(max_examples=400, deadline=None)
@given(batches=st.lists(batch, min_size=1, max_size=8),
       shape=st.sampled_from([(1, 1), (2, 1), (3, 1), (4, 2), (2, 2), (4, 4)]), lateness=st.sampled_from([0, 1, 3]),
       clock=st.booleans(), keep=st.sampled_from([None, frozenset({"t"}), frozenset()]), lean=st.booleans(),
       offset=st.data())
def test_an_offset_shifts_every_window_and_nothing_else(batches, shape, lateness, clock, keep, lean, offset) -> None:
    length, hop = shape[0] * S // 2, shape[1] * S // 2
    d = offset.draw(st.one_of(st.integers(1, hop - 1), st.sampled_from([1, hop // 4, hop // 2, hop - 1])))

    def make(off: int) -> WindowAssembler:
        w = WindowAssembler(length, hop, lateness * S // 4, asset="a", expected=("readings",) if clock else (),
                            offset_ns=off)
        w.keep_readings = keep
        return w

    assert _drive(make(d), batches, d, clock, lean) == _drive(make(0), batches, 0, clock, lean)


def test_a_late_reading_among_columns_is_found_at_the_offset() -> None:
    """Readings as columns whose oldest lies in a window that closed, by the offset's windows (with windows at
    multiples of the hop it would not be): the batch goes to ``add``, which returns that reading as late."""
    w = WindowAssembler(S, S, 0, asset="a", offset_ns=3 * S // 4)
    w.add_columns([ReadingColumns("a", "rd", 0, [10 * S], ["p"], [1.0], [1])])  # opens [9.75, 10.75)
    closed = w.add_columns([ReadingColumns("a", "rd", 0, [11 * S], ["p"], [2.0], [2])])
    assert [(c.start_ns, c.end_ns) for c in closed] == [(9 * S + 3 * S // 4, 10 * S + 3 * S // 4)]
    # 10.5 s: late at this offset ([9.75, 10.75) has closed), not at multiples of the hop ([10, 11) is open)
    cols = [ReadingColumns("a", "rd", 0, [10 * S + S // 2, 11 * S + S // 10], ["p", "p"], [3.0, 4.0], [3, 4])]
    assert w.add_columns(cols) is None
    closed, late = w.add(expand_columns(cols))
    assert closed == [] and [r.ts_ns for r in late] == [10 * S + S // 2]


def test_the_lean_path_opens_the_next_window_at_the_offset() -> None:
    """A replayed table's next row in a window of its own (the lean shortcut): the window it opens starts at the
    offset, and the one before it closes as a lean window at the offset too."""
    w = WindowAssembler(S, S, 0, asset="a", expected=("readings",), offset_ns=S // 10)
    w.keep_readings = frozenset()
    assert w.add_columns([ReadingColumns("a", "rd", 0, [10 * S], ["p"], [1.0], [1])], lean=True) == []
    assert sorted(w.open) == [9 * S + S // 10]
    got = w.add_columns([ReadingColumns("a", "rd", 0, [11 * S + S // 2], ["p"], [2.0], [2])], lean=True)
    assert [(type(c).__name__, c.start_ns, c.end_ns, c.inputs) for c in got] == \
        [("ReadingsWindow", 9 * S + S // 10, 10 * S + S // 10, (("rd", 0, 1, 1),))]
    assert sorted(w.open) == [11 * S + S // 10]


def test_a_staggered_window_starts_at_the_assets_offset() -> None:
    """With hop 1 s and offset 0.25 s a frame at 10.1 s is in [9.25, 10.25); one at 10.3 s opens [10.25,
    11.25) and closes the first once the watermark passes 10.25 s; sliding windows (2 s, hop 1 s) start at the
    offset too; an offset outside the hop is refused."""
    import pytest

    w = WindowAssembler(S, S, 0, asset="a", offset_ns=S // 4)
    assert w.add([_frame(1, 10 * S + S // 10, 0, 1)]) == ([], [])
    closed, late = w.add([_frame(2, 10 * S + 3 * S // 10, 0, 2)])
    assert [(c.start_ns, c.end_ns) for c in closed] == [(9 * S + S // 4, 10 * S + S // 4)] and late == []
    assert sorted(w.open) == [10 * S + S // 4]
    sliding = WindowAssembler(2 * S, S, 0, asset="a", offset_ns=S // 4)
    sliding.add([_frame(1, 10 * S + S // 10, 0, 1)])
    assert sorted(sliding.open) == [8 * S + S // 4, 9 * S + S // 4]
    late_frame = _frame(3, 9 * S + S // 2, 0, 3)  # in [9.25, 10.25), closed already
    assert w.add([late_frame]) == ([], [late_frame])
    for bad in (-1, S):
        with pytest.raises(ValueError, match="offset"):
            WindowAssembler(S, S, 0, offset_ns=bad)


def test_the_offset_is_the_asset_ids_and_spread_over_the_hop() -> None:
    """The same id, the same offset (a CRC, not Python's salted hash: every process and run agree); whole
    thousandths of the hop; 1,000 ids cover the hop's tenths evenly enough that no tenth holds more than twice
    its share (what spreads a plant's closing work)."""
    ids = [f"pump-{i:04d}" for i in range(1000)]
    offsets = [stagger_offset(a, S) for a in ids]
    assert offsets == [stagger_offset(a, S) for a in ids]
    assert all(0 <= o < S and o % (S // 1000) == 0 for o in offsets)
    tenths = np.bincount([o * 10 // S for o in offsets], minlength=10)
    assert tenths.max() < 200 and tenths.min() > 50
    assert stagger_offset("pump-0001", 1024) < 1024


def test_a_window_assembler_pickled_before_offsets_starts_at_multiples_of_the_hop() -> None:
    import pickle

    old = WindowAssembler(S, S, 0, asset="a")
    assert "offset_ns" not in old.__dict__  # (no offset: the class default, as a snapshot from before has it)
    back = pickle.loads(pickle.dumps(old))
    back.add([_frame(1, 10 * S + S // 10, 0, 1)])
    assert sorted(back.open) == [10 * S]


def _plant(stagger: bool) -> tuple[list, dict[str, int]]:
    """Three simulated pumps' frames (25 s, 10 kHz) through the analyze step of a site with or without
    staggered windows, to the end of input: the outputs, and the frames sent per asset."""
    from aiotstream.codecs.frames import encode_frame
    from aiotstream.config import SiteConfig
    from aiotstream.dataflow.plant import AnalyzerLogic
    from aiotstream.pdm.ingest import Ingestor
    from aiotstream.pdm.runtime import SiteRuntime
    from aiotstream.records import SourceMessage
    from aiotstream.sim.plant import PlantSimulator

    cfg = SiteConfig.from_dict({
        "site": {"id": "st"}, "asset_groups": [{"prefix": "p-", "count": 3, "width": 2}],
        "inputs": {"topics": ["st.waveforms"], "tail": False},
        "window": {"allowed_lateness_s": 0, "stagger": stagger}, "kpi": {"periods_s": [10]}})
    rt = SiteRuntime(cfg)
    ingest = Ingestor(rt)
    specs = cfg.all_assets()
    logics = {a.id: AnalyzerLogic(rt, None, None, None, snapshots=False) for a in specs}
    outs: list = []
    sent: dict[str, int] = {}
    for k, (a, seq, t0, x) in enumerate(PlantSimulator(specs, duration_s=25, n_faults=0, seed=5).frames()):
        sent[a] = sent.get(a, 0) + 1
        msg = SourceMessage("st.waveforms", 0, k, encode_frame(a, seq, t0, 10_000.0,
                                                                np.ascontiguousarray(x, dtype=np.float32)))
        for asset, item in ingest.decode_batch([msg]):
            outs += logics[asset].on_batch([[item]])[0]
    for logic in logics.values():
        outs += logic.on_eof()[0]
    return outs, sent


def test_a_staggered_site_scores_every_frame_in_windows_at_each_assets_offset() -> None:
    """End to end through the analyze step: with ``window.stagger`` each asset's score records' windows start
    at its own offset within the hop (and the three offsets differ), without it at whole seconds; either way
    every frame sent is in exactly one scored window, and the KPI periods stay on their own grid (whole 10 s)
    with every frame counted."""
    for stagger in (False, True):
        outs, sent = _plant(stagger)
        scores = [o.record for o in outs if o.kind == "score"]
        kpis = [o.record for o in outs if o.kind == "kpi"]
        offsets = {a: stagger_offset(a, S) if stagger else 0 for a in sent}
        assert len(set(offsets.values())) == (3 if stagger else 1)
        assert scores and all((r["window"]["start_ns"] - offsets[r["asset"]]) % S == 0 for r in scores)
        assert all(r["window"]["end_ns"] - r["window"]["start_ns"] == S for r in scores)
        for a, n in sent.items():
            assert sum(r["frames"] for r in scores if r["asset"] == a) == n, (stagger, a)
            assert sum(r["totals"]["frames"] for r in kpis if r["asset"] == a) == n, (stagger, a)
        assert kpis and all(r["period"]["start_ns"] % (10 * S) == 0 for r in kpis)

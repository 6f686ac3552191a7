"""RowAssembler's tail takes a set of several whole rows with one store of their values and one of their
offsets (the rows checked first, one by one); a row that is not a whole new one stops the tail there and the
rest goes the general way. The rows, spans, blocks and the offsets' order flag must be those of the paths of
before (``_use_tail = False``).

Sets of one to five rows (a poll batch's rows of an asset), one row of a set now and then spoiled (its
channels in another order, its time repeated from the row before, its time behind the tail or at the tail's
newest, its last channel a second later than the others), flagged in
order or not, offsets rising or falling back from set to set (or backwards within one, not flagged), steps in between and at the end.
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aiotstream.config import ScalarConfig
from aiotstream.pdm.scalar import ScalarScorer
from aiotstream.records import ReadingColumns
from tests.unit.test_scalar_tail import _blocks_equal, _pending

S = 1_000_000_000
CHANNELS = ["a", "b", "c"]

# a set: (rows, the spoiled row (-1: none; beyond the rows: none), how, offset jump, flagged in order)
set_st = st.tuples(st.integers(1, 5), st.sampled_from([-1, -1, -1, 0, 1, 2, 4]),
                   st.sampled_from(["order", "repeat", "stale", "split", "behind"]), st.sampled_from([1, 1, 1, 0, -7]),
                   st.sampled_from([True, True, True, False]))
op_st = st.one_of(set_st.map(lambda s: ("cols", s)), set_st.map(lambda s: ("cols", s)),
                  st.tuples(st.integers(-2, 3), st.booleans()).map(lambda s: ("step", s)))


@settings(max_examples=300, deadline=None)
@example(ops=[("cols", (1, -1, "order", 1, True)), ("step", (1, True))]
         + [("cols", (3, 1, "order", 1, True)), ("cols", (4, -1, "order", 1, True))], seed=0)
# a set whose first row is at the tail's newest time (its other rows newer, times in order): not a new row
@example(ops=[("cols", (1, -1, "order", 1, True)), ("step", (1, True)), ("cols", (2, -1, "order", 1, True)),
              ("cols", (3, 0, "behind", 1, True)), ("step", (3, True))], seed=0)
@given(ops=st.lists(op_st, min_size=1, max_size=30), seed=st.integers(0, 2**32 - 1))
def test_several_rows_a_set_onto_the_tail_equal_the_rows_of_before(ops: list, seed: int) -> None:
    cfg = ScalarConfig(settle_rows=2, block_s=3.0)
    new, old = ScalarScorer(cfg), ScalarScorer(cfg)
    old.rows._use_tail = False
    rng = np.random.default_rng(seed)
    t, off = 5, 0
    for kind, spec in ops:
        if kind == "step":
            dt, force = spec
            _blocks_equal(new.step((t + dt) * S, force), old.step((t + dt) * S, force))
            continue
        rows, bad, how, jump, flag = spec
        times, metrics = [], []
        for r in range(rows):
            tr, names = t + r, list(CHANNELS)
            if r == bad:
                if how == "order":
                    names.reverse()
                elif how == "repeat" and r:
                    tr = t + r - 1
                elif how == "stale":
                    tr = t - 3
            row = [tr] * len(names)
            if r == bad and how == "split":  # its last channel a second later (times still in order)
                row[-1] = tr + 1
            elif r == bad and how == "behind":  # the row at the tail's newest time (not newer)
                row = [t - 1] * len(names)
            times += row
            metrics += names
        off = max(0, off + jump)
        offs = list(range(off, off + len(times)))
        off += len(times)
        if not flag and rng.random() < 0.5:  # offsets out of order within the set (never flagged)
            offs.reverse()
        t = max(t, max(times) + 1)
        vals = [float(v) for v in rng.normal(50.0, 3.0, len(times))]
        in_order = flag and times == sorted(times) and offs == sorted(offs)  # (the flag never lies)
        for sc in (new, old):
            sc.add_columns([ReadingColumns("a", "top", 0, [x * S for x in times], list(metrics), list(vals),
                                           list(offs), in_order)])
        a = new.rows
        if a._tt and a._tsorted:
            assert a._to == sorted(a._to)
        assert _pending(new.rows) == _pending(old.rows)
        assert [x for x, _ in new.ready] == [x for x, _ in old.ready] and new.spans == old.spans
    _blocks_equal(new.step(math.inf, final=True), old.step(math.inf, final=True))

"""RowAssembler's tail keeps whether its offsets are in order (``_tsorted``) so that a block's input span is
read off the ends of its offsets instead of min() and max() over them. Column sets flagged ``in_order``
(the decoder's flag: times and offsets non-decreasing within the set) with offsets mostly rising from set
to set, sometimes falling back (a set whose first offset is below the tail's last), sometimes not flagged,
with whole rows one to three a set, repeated and stale times, NaN, single readings, steps (some forced,
several blocks a call) and snapshots: the blocks, their spans and the pending rows equal those of the
paths of before (``_use_tail = False``: no tail, spans from ``pending``)."""
from __future__ import annotations

import math
import pickle
from itertools import pairwise

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.config import ScalarConfig
from aiotstream.pdm.scalar import ScalarScorer
from aiotstream.records import ReadingColumns
from tests.unit.test_scalar_tail import _blocks_equal, _pending

S = 1_000_000_000
CHANNELS = ["a", "b", "c"]

# (rows, time step, offset jump (negative: below the tail's last), flagged in order, a row's time repeated)
cols = st.tuples(st.just("cols"), st.sampled_from([1, 1, 1, 2, 3]), st.sampled_from([1, 1, 1, 0, -1]),
                 st.sampled_from([1] * 6 + [0, -1, -5, -40]), st.sampled_from([True] * 5 + [False]),
                 st.sampled_from([False] * 9 + [True]))
step = st.tuples(st.just("step"), st.sampled_from([-4, -2, -1, 0, 0, 0, 1, 30]),
                 st.sampled_from([False, False, False, True]))
add = st.tuples(st.just("add"), st.integers(-3, 1), st.sampled_from(CHANNELS))
snapshot = st.just(("snapshot",))
op = st.integers(0, 31).flatmap(lambda i: cols if i < 22 else step if i < 29 else add if i < 31 else snapshot)


def _set(spec: tuple, clock: list[int], rng: np.random.Generator) -> ReadingColumns:
    _, rows, dt, jump, flag, dup = spec
    t0 = clock[0] + dt
    times = [t0 + r for r in range(rows) for _ in CHANNELS]
    if dup and rows > 1:  # a row's time repeated: not whole rows (the general path)
        times[-1] = times[0]
    clock[1] = max(0, clock[1] + jump)  # the set's first offset (below the last one's with a negative jump)
    offs = list(range(clock[1], clock[1] + len(times)))
    clock[1] += len(times)
    vals = [float(v) for v in rng.normal(50.0, 3.0, len(times))]
    if rng.random() < 0.05:
        vals[rng.integers(len(vals))] = math.nan
    clock[0] = max(clock[0], max(times) + 1)
    in_order = flag and all(a <= b for a, b in pairwise(times))  # (the flag never lies)
    return ReadingColumns("a", "top", 0, [t * S for t in times], CHANNELS * rows, vals, offs, in_order)


@settings(max_examples=300, deadline=None)
@given(st.lists(op, min_size=10, max_size=80), st.sampled_from([(3, 4.0), (5, 0.0), (2, 2.0), (8, 3.0)]),
       st.integers(0, 2**32 - 1))
def test_spans_from_offsets_in_order_equal_those_of_before(ops: list, cfg_args: tuple, seed: int) -> None:
    settle, block_s = cfg_args
    cfg = ScalarConfig(settle_rows=settle, block_s=block_s)
    new, old = ScalarScorer(cfg), ScalarScorer(cfg)
    old.rows._use_tail = False
    rng = np.random.default_rng(seed)
    clock = [5, 0]
    for o in ops:
        if o[0] == "add":
            _, dt, m = o
            t = clock[0] + dt
            clock[0] = max(clock[0], t + 1)
            v, pos = float(rng.normal(50.0, 3.0)), ("top", 0, clock[1] + 3)  # (an offset ahead of the sets')
            assert new.add(t * S, m, v, pos) == old.add(t * S, m, v, pos)
        elif o[0] == "step":
            _, dt, force = o
            _blocks_equal(new.step((clock[0] + dt) * S, force), old.step((clock[0] + dt) * S, force))
        elif o[0] == "snapshot":
            new = pickle.loads(pickle.dumps(new))
            old = pickle.loads(pickle.dumps(old))
            old.rows._use_tail = False
        else:
            c = _set(o, clock, rng)
            new.add_columns([c])
            old.add_columns([c])
        a = new.rows
        if a._tt and a._tsorted:  # the flag never claims an order that is not there
            assert a._to == sorted(a._to)
        assert _pending(new.rows) == _pending(old.rows)
        assert [t for t, _ in new.ready] == [t for t, _ in old.ready] and new.spans == old.spans
    _blocks_equal(new.step(math.inf, final=True), old.step(math.inf, final=True))


def test_rows_in_order_keep_the_flag_and_a_fall_back_clears_it() -> None:
    """The benchmark's case keeps the ends (no min/max pass); a set below the tail's last offset, or one not
    known in order, clears the flag, and the span is still the least and greatest offset."""
    sc = ScalarScorer(ScalarConfig(settle_rows=2, block_s=100.0))
    for r in range(5):
        sc.add_columns([ReadingColumns("a", "top", 0, [r * S] * 3, list(CHANNELS), [1.0, 2.0, 3.0],
                                       [10 + 3 * r, 11 + 3 * r, 12 + 3 * r], True)])
        if r == 0:  # (row 0, its channels new, is pending: the tail starts once it is taken)
            sc.step(S, force=True)
    assert sc.rows._tt == [S, 2 * S, 3 * S, 4 * S] and sc.rows._tsorted
    sc.add_columns([ReadingColumns("a", "top", 0, [5 * S] * 3, list(CHANNELS), [1.0, 2.0, 3.0], [4, 30, 31],
                                   True)])
    assert not sc.rows._tsorted
    sc.step(math.inf, force=True)
    assert sc.rows._tsorted and not sc.rows._tt  # (an empty tail: in order again)

"""ScalarScorer with RowAssembler's tail (whole rows in time order kept as flat lists, scored as one array
with no row object: ``ScalarScorer.step``'s first path) gives exactly the blocks of the paths of before
(``_use_tail = False``: every row through ``pending``, ``_take`` and ``rows_array``). Random mixes of
column sets (mostly whole rows in channel order, one or two a set, also partial, out-of-order, repeated,
stale ones, a second partition, a new channel), single readings, steps at random times (some forced),
and recovery snapshots (pickle) taken anywhere must give both the same blocks: times, readings (bits),
scores, alerts, p, z, channel p, lead, change events, baseline level and var, input spans, channels.
A snapshot holds the state of before (no tail attribute), so the code before loads it and this code
loads the code before's."""
from __future__ import annotations

import math
import pickle

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.config import ScalarConfig
from aiotstream.pdm.scalar import RowAssembler, ScalarScorer, ScoredBlock
from aiotstream.records import ReadingColumns

S = 1_000_000_000
CHANNELS = ["a", "b", "c"]
ORDERS = [CHANNELS] * 8 + [["a", "b"], ["b", "a", "c"], ["a", "b", "c", "e"], ["c"]]
TAIL = ("_tt", "_tv", "_to", "_tsorted", "_tkey", "_bad_t")

# (dt, order, rows, skew, partition): rows at clock + dt, + dt + 1 .. (mostly 1 or 2 of them, dt 0: in order)
whole = st.tuples(st.sampled_from([0] * 6 + [-2, -1, 1]), st.sampled_from(ORDERS), st.sampled_from([1, 1, 1, 2, 3]),
                  st.one_of(st.none(), st.none(), st.none(), st.tuples(st.integers(0, 8), st.sampled_from([-1, 1]))),
                  st.sampled_from([0] * 8 + [1]))
# the usual: whole rows in order, in the order of the channels so far (a new channel too, once it is one)
plain = st.tuples(st.just("plain"), st.sampled_from([1, 1, 1, 2]), st.one_of(
    *[st.none()] * 7, st.tuples(st.integers(0, 5), st.sampled_from([-1, 1]))))  # (one reading's time off by 1)
step = st.tuples(st.just("step"), st.sampled_from([-4, -2, -1, 0, 0, 0, 1]), st.sampled_from([False, False, False, True]))
add = st.tuples(st.just("add"), st.integers(-3, 1), st.sampled_from(CHANNELS * 3 + ["e"]))
snapshot = st.just(("snapshot",))
# (one_of picks its branches alike: the usual rows by weight, so runs of them reach the tail's paths)
op = st.integers(0, 31).flatmap(lambda i: plain if i < 20 else whole if i < 22 else step if i < 28 else
                                add if i < 30 else snapshot)


def _columns(spec: tuple, clock: list[int], rng: np.random.Generator) -> ReadingColumns:
    dt, order, k, skew, part = spec
    pairs = [(clock[0] + dt + r, m) for r in range(k) for m in order]
    if skew is not None and skew[0] < len(pairs):
        t, m = pairs[skew[0]]
        pairs[skew[0]] = (t + skew[1], m)
    vals = [float(v) for v in rng.normal(50.0, 3.0, len(pairs))]
    if rng.random() < 0.05:
        vals[0] = math.nan
    offs = []
    for _ in pairs:
        clock[1] += 1
        offs.append((clock[1] * 7) % 29 + 100 * clock[1] // 29)  # offsets out of order within a row too
    clock[0] = max(clock[0], max(t for t, _ in pairs) + 1)
    return ReadingColumns("a", "top", part, [t * S for t, _ in pairs], [m for _, m in pairs], vals, offs)


def _blocks_equal(got: list[ScoredBlock], want: list[ScoredBlock]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.ts.dtype == w.ts.dtype and g.ts.tolist() == w.ts.tolist()
        assert g.x.dtype == w.x.dtype and g.x.shape == w.x.shape
        assert g.x.tobytes() == w.x.tobytes()  # bit for bit (NaN included)
        assert g.channels == w.channels and g.restarted == w.restarted and g.rows_before == w.rows_before
        assert g.spans == w.spans
        for a in ("score", "alert", "p", "z", "channel_p", "lead"):
            ga, wa = getattr(g.result, a), getattr(w.result, a)
            assert ga.dtype == wa.dtype and ga.shape == wa.shape and ga.tobytes() == wa.tobytes(), a
        assert g.events == w.events
        assert g.level.tobytes() == w.level.tobytes() and g.var.tobytes() == w.var.tobytes()


def _pending(a: RowAssembler) -> list:
    """The rows waiting, as the code before keeps them (a snapshot's state)."""
    st_ = a.__getstate__()
    assert not set(TAIL) & set(st_)
    return sorted((t, {i: repr(v) for i, v in (r.items() if type(r) is dict else enumerate(r))})
                  for t, r in st_["pending"].items())  # (repr: NaN equal to NaN, -0.0 not to 0.0)


@settings(max_examples=300, deadline=None)
@given(st.lists(op, min_size=10, max_size=80), st.sampled_from([(3, 4.0), (5, 0.0), (2, 2.0), (8, 3.0)]),
       st.integers(0, 2**32 - 1))
def test_the_tail_gives_the_blocks_of_before(ops: list, cfg_args: tuple, seed: int) -> None:
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
            clock[0], clock[1] = max(clock[0], t + 1), clock[1] + 1
            v, pos = float(rng.normal(50.0, 3.0)), ("top", 0, 100_000 + clock[1])
            assert new.add(t * S, m, v, pos) == old.add(t * S, m, v, pos)
        elif o[0] == "step":
            _, dt, force = o
            _blocks_equal(new.step((clock[0] + dt) * S, force), old.step((clock[0] + dt) * S, force))
        elif o[0] == "snapshot":
            new = pickle.loads(pickle.dumps(new))
            assert new.rows._tt == [] and new.rows._use_tail
            old = pickle.loads(pickle.dumps(old))
            old.rows._use_tail = False
        else:
            if o[0] == "plain":
                o = (0, list(new.rows.channels) or CHANNELS, o[1], o[2], 0)
            c = _columns(o, clock, rng)
            new.add_columns([c])
            old.add_columns([c])
        assert not (new.rows._tt and new.rows.pending)
        assert new.first_ns() == old.first_ns() and new.rows.last_ns == old.rows.last_ns
        assert _pending(new.rows) == _pending(old.rows)
        assert [t for t, _ in new.ready] == [t for t, _ in old.ready] and new.spans == old.spans
    _blocks_equal(new.step(math.inf, final=True), old.step(math.inf, final=True))


def test_in_order_whole_rows_take_the_tail_and_a_snapshot_keeps_the_state_of_before() -> None:
    """The benchmark's rows (whole, in order, one partition) stay on the tail and go to the detector from
    it; a snapshot taken with rows on the tail has only the attributes of before, and loads and resumes
    bit for bit (as does a state without the tail's attributes: a snapshot of the code before)."""
    cfg = ScalarConfig(settle_rows=4, block_s=3.0)
    rng = np.random.default_rng(1)
    sets = []
    for r in range(60):
        vals = [float(v) for v in rng.normal(50.0, 3.0, 3)]
        sets.append(ReadingColumns("a", "top", 0, [r * S] * 3, list(CHANNELS), vals, [3 * r + 2, 3 * r, 3 * r + 1]))
    ref = ScalarScorer(cfg)
    ref.rows._use_tail = False
    want = []
    for r, c in enumerate(sets):
        ref.add_columns([c])
        want.extend(ref.step(r * S))
    want.extend(ref.step(math.inf, final=True))

    sc = ScalarScorer(cfg)
    got = []
    for r, c in enumerate(sets[:31]):
        sc.add_columns([c])
        got.extend(sc.step(r * S))
        assert r < 2 or (sc.rows._tt and not sc.rows.pending)  # on the tail (row 0: its channels new)
    assert sc.rows._tt  # rows on the tail at the snapshot
    state = sc.rows.__getstate__()
    assert set(state) == set(ref.rows.__dict__) - set(TAIL) - {"_use_tail"}
    blob = pickle.dumps(sc)
    for variant in ("new", "before"):
        sc2 = pickle.loads(blob)
        if variant == "before":  # the code before pickles an assembler's __dict__ (no tail attribute)
            before = {k: v for k, v in state.items()}
            a = RowAssembler.__new__(RowAssembler)
            a.__setstate__(pickle.loads(pickle.dumps(before)))  # what unpickling it calls here
            sc2.rows = a
        out = list(got)
        for r, c in enumerate(sets[31:], 31):
            sc2.add_columns([c])
            out.extend(sc2.step(r * S))
        out.extend(sc2.step(math.inf, final=True))
        _blocks_equal(out, want)


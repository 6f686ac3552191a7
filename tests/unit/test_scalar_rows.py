"""Rows of an asset's scalar readings (aiotstream.pdm.scalar): assembly by timestamp, the channel-order
policy, blocks through the streaming detector equal to one run over the same rows, and pickling."""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.config import ScalarConfig
from aiotstream.models.streaming import make_pipeline
from aiotstream.pdm.scalar import RowAssembler, ScalarScorer, rows_array

S = 1_000_000_000


def rows_of(asm: RowAssembler, before: float = math.inf) -> tuple[list[int], list[list[float]]]:
    ts, x = asm.take(before)
    return ts.tolist(), [[None if math.isnan(v) else v for v in r] for r in x.tolist()]


def test_channels_of_one_timestamp_form_one_row_in_first_seen_order() -> None:
    a = RowAssembler()
    for t, m, v in [(1, "temp", 20.0), (1, "current", 3.0), (2, "current", 3.1), (2, "temp", 20.5)]:
        assert a.add(t, m, v)
    assert a.channels == ["temp", "current"]
    assert rows_of(a) == ([1, 2], [[20.0, 3.0], [20.5, 3.1]])


def test_out_of_order_readings_come_out_in_time_order_and_only_when_final() -> None:
    a = RowAssembler()
    for t, m, v in [(5, "a", 5.0), (3, "a", 3.0), (4, "b", 40.0), (3, "b", 30.0), (9, "a", 9.0)]:
        a.add(t, m, v)
    assert rows_of(a, before=5) == ([3, 4], [[3.0, 30.0], [None, 40.0]])
    assert rows_of(a, before=9) == ([5], [[5.0, None]])  # 9 is not final yet
    assert rows_of(a) == ([9], [[9.0, None]])


def test_a_late_channel_widens_later_rows_and_earlier_rows_have_it_missing() -> None:
    a = RowAssembler()
    a.add(1, "a", 1.0)
    assert rows_of(a, 2) == ([1], [[1.0]])
    a.add(2, "a", 2.0)
    a.add(2, "b", 20.0)
    assert rows_of(a) == ([2], [[2.0, 20.0]])
    assert a.channels == ["a", "b"]


def test_duplicate_timestamp_keeps_the_last_value_and_nan_stays_missing() -> None:
    a = RowAssembler()
    a.add(1, "a", 1.0)
    a.add(1, "a", 1.5)  # a repeat of (ts, metric): the last value counts
    a.add(1, "b", math.nan)
    assert rows_of(a) == ([1], [[1.5, None]])


def test_a_reading_for_a_row_already_handed_out_is_refused_and_counted() -> None:
    a = RowAssembler()
    a.add(5, "a", 1.0)
    rows_of(a, 6)
    assert not a.add(5, "a", 2.0) and not a.add(4, "a", 2.0)
    assert a.stale == 2
    assert rows_of(a) == ([], [])


def test_excluded_metrics_and_the_channel_limit() -> None:
    a = RowAssembler(max_channels=2, exclude={"machine_state"})
    assert not a.add(1, "machine_state", 1.0)
    assert a.add(1, "a", 1.0) and a.add(1, "b", 2.0)
    assert not a.add(1, "c", 3.0)  # over the limit: ignored (counted in the run summary)
    assert a.channels == ["a", "b"]


readings = st.lists(st.tuples(st.integers(0, 30), st.sampled_from(["a", "b", "c", "d"]),
                              st.floats(-1e6, 1e6, allow_nan=False)), min_size=0, max_size=120)


@settings(max_examples=200, deadline=None)
@given(readings, st.lists(st.integers(0, 31), max_size=5), st.randoms(use_true_random=False))
def test_fuzz_rows_equal_a_plain_dict_of_the_readings_whatever_the_order_and_cuts(
        items: list[tuple[int, str, float]], cuts: list[int], rnd: object) -> None:
    """Any arrival order of readings, taken at any cut points that respect finality (a reading arrives
    before its row is taken), gives the rows of a plain {ts: {metric: last value}} of the readings."""
    want: dict[int, dict[str, float]] = {}
    for t, m, v in items:  # the reference: the last value per (ts, metric) in arrival order
        want.setdefault(t, {})[m] = v
    # a random arrival order across (ts, metric) keys; a key's own readings keep their order
    prio = {(t, m): rnd.random() for t, m, _ in items}  # type: ignore[attr-defined]
    arrivals = sorted(enumerate(items), key=lambda e: (prio[e[1][:2]], e[0]))
    a = RowAssembler()
    got_ts: list[int] = []
    got: list[np.ndarray] = []
    for cut in sorted(cuts) + [math.inf]:
        # every reading with a time before the cut has arrived by then (the watermark)
        now = [e for e in arrivals if e[1][0] < cut]
        arrivals = [e for e in arrivals if e[1][0] >= cut]
        for _, (t, m, v) in now:
            a.add(t, m, v)
        ts, x = a.take(cut)
        got_ts += ts.tolist()
        got += list(x)
    assert got_ts == sorted(want)
    width = len(a.channels)
    assert set(a.channels) == {m for _, m, _ in items}
    for t, row in zip(got_ts, got, strict=True):
        full = np.full(width, np.nan)
        full[: len(row)] = row
        expect = np.full(width, np.nan)
        for m, v in want[t].items():
            expect[a.index[m]] = v
        np.testing.assert_array_equal(full, expect)


@settings(max_examples=100, deadline=None)
@given(readings)
def test_add_readings_of_a_batch_equals_add_one_by_one(items: list[tuple[int, str, float]]) -> None:
    from aiotstream.records import Frame, Position, Reading

    # two partitions, offsets out of order (the spans keep min and max)
    rs = [Reading("a", t, m, v, Position("top", k % 2, (k * 7) % 11)) for k, (t, m, v) in enumerate(items)]
    one, batch = RowAssembler(max_channels=3, exclude={"d"}), RowAssembler(max_channels=3, exclude={"d"})
    for r in rs[: len(rs) // 2]:
        one.add(r.ts_ns, r.metric, r.value, (r.pos.topic, r.pos.partition, r.pos.offset))
    # a Bad-quality reading and a frame in the batch are skipped
    bad = [Reading("a", t, m, -1.0, Position("top", 5, 99), status=0x8000_0000) for t, m, _ in items[:2]]
    batch.add_readings(bad + rs[: len(rs) // 2] + [Frame("a", 0, 0, 1.0, None, Position("w", 0, 0))])
    sa: dict = {}
    sb: dict = {}
    assert rows_of_spans(one, 15, sa) == rows_of_spans(batch, 15, sb) and sa == sb
    for r in rs[len(rs) // 2:]:
        one.add(r.ts_ns, r.metric, r.value, (r.pos.topic, r.pos.partition, r.pos.offset))
    batch.add_readings(rs[len(rs) // 2:])
    assert rows_of_spans(one, math.inf, sa) == rows_of_spans(batch, math.inf, sb) and sa == sb
    assert one.channels == batch.channels and one.stale == batch.stale


def rows_of_spans(a: RowAssembler, before: float, spans: dict) -> list:
    return a.take_rows(before, spans)


def _stream(rows: int, n: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, n)).cumsum(axis=0) * 0.05 + rng.normal(size=(rows, n))
    x[rows // 2: rows // 2 + 40, 0] += 12.0  # a fault on channel 0
    return x


def _feed(sc: ScalarScorer, x: np.ndarray, names: list[str], step: int) -> tuple[np.ndarray, np.ndarray]:
    """Readings one metric per record, closed every ``step`` rows (the windows), in blocks of block_s."""
    scores, alerts = [], []
    for start in range(0, len(x), step):
        for r in range(start, min(start + step, len(x))):
            for j in reversed(range(len(names))):  # metrics of one timestamp in any order
                if not math.isnan(x[r, j]):
                    sc.add(r * S, names[j], float(x[r, j]))
        for b in sc.step((start + step) * S):
            scores.append(b.result.score)
            alerts.append(b.result.alert)
    for b in sc.step(math.inf, force=True):
        scores.append(b.result.score)
        alerts.append(b.result.alert)
    return np.concatenate(scores), np.concatenate(alerts)


@pytest.mark.parametrize("step", [1, 7, 100])
def test_scorer_blocks_give_the_detector_run_over_the_same_rows(step: int) -> None:
    x = _stream(1200, 3)
    x[10:20, 2] = np.nan  # holes: missing channels
    names = ["t", "i", "p"]
    cfg = ScalarConfig(block_s=5)
    sc = ScalarScorer(cfg)
    score, alert = _feed(sc, x, names, step)
    assert sc.rows.channels == ["p", "i", "t"]  # first seen first: _feed sends a row's metrics backwards
    want_s, want_a = make_pipeline("default", 3, cfg.detector_config()).run(x[:, ::-1])
    np.testing.assert_array_equal(score, want_s)
    np.testing.assert_array_equal(alert, want_a)
    assert alert.any()  # the fault opened the detector's alert


def test_a_channel_first_seen_after_settling_restarts_the_detector_with_it() -> None:
    cfg = ScalarConfig(settle_rows=30, block_s=0)
    sc = ScalarScorer(cfg)
    for r in range(40):
        sc.add(r * S, "a", float(r % 3))
    blocks = sc.step(40 * S)
    assert blocks and blocks[0].channels == ["a"] and sc.width == 1
    sc.add(40 * S, "a", 1.0)
    sc.add(40 * S, "b", 5.0)
    (b,) = sc.step(41 * S)
    assert b.restarted == ["b"] and b.channels == ["a", "b"] and sc.width == 2
    assert sc.detector is not None and sc.detector.baseline.rows == 1  # a fresh warm-up


def test_before_settling_late_channels_join_without_a_restart() -> None:
    sc = ScalarScorer(ScalarConfig(settle_rows=30, block_s=0))
    for r in range(30):
        sc.add(r * S, "a", 1.0 + r % 2)
        if r >= 10:
            sc.add(r * S, "b", 2.0 + r % 3)
    (b,) = sc.step(30 * S)
    assert b.channels == ["a", "b"] and b.restarted == [] and len(b.ts) == 30
    assert np.isnan(b.x[:10, 1]).all()


def test_scorer_pickles_mid_stream_and_resumes_bit_for_bit() -> None:
    x = _stream(900, 2, seed=5)
    names = ["a", "b"]
    cfg = ScalarConfig(block_s=3)
    whole, _ = _feed(ScalarScorer(cfg), x, names, 10)
    sc = ScalarScorer(cfg)
    first, _ = _feed(sc, x[:500], names, 10)
    sc2 = pickle.loads(pickle.dumps(sc))  # a recovery snapshot
    rest = []
    for r in range(500, 900):
        for j, m in enumerate(names):
            sc2.add(r * S, m, float(x[r, j]))
    for b in sc2.step(math.inf, force=True):
        rest.append(b.result.score)
    np.testing.assert_array_equal(np.concatenate([first, *rest]), whole)


def test_scalar_config_defaults_are_the_detectors_and_bad_values_name_the_field() -> None:
    from aiotstream.config import SiteConfig
    from aiotstream.errors import ConfigError
    from aiotstream.models.streaming import DetectorConfig

    assert ScalarConfig().detector_config() == DetectorConfig()
    base = {"site": {"id": "s"}, "assets": [{"id": "a"}]}
    with pytest.raises(ConfigError, match=r"scalar\.risk"):
        SiteConfig.from_dict({**base, "scalar": {"risk": 0}})
    with pytest.raises(ConfigError, match=r"scalar: .*close_risk"):
        SiteConfig.from_dict({**base, "scalar": {"risk": 0.2, "close_risk": 0.1}})
    # a [scalar] table at its defaults leaves the config hash as it was before the table existed
    assert SiteConfig.from_dict({**base, "scalar": {}}).config_hash == SiteConfig.from_dict(base).config_hash
    assert SiteConfig.from_dict({**base, "scalar": {"risk": 1e-3}}).config_hash != \
        SiteConfig.from_dict(base).config_hash


def test_due_says_when_a_step_can_have_work() -> None:
    sc = ScalarScorer(ScalarConfig(block_s=10))
    assert not sc.due(100 * S, None)  # nothing waits
    sc.add(5 * S, "a", 1.0)
    sc.add(3 * S, "a", 1.0)  # out of order: the earliest row counts
    assert sc.first_ns() == 3 * S
    assert not sc.due(12 * S, None) and sc.due(14 * S, None)  # rows may span block_s by then
    assert sc.due(6 * S, 6 * S)  # a KPI period ends by then: its rows must be scored now
    assert sc.step(6 * S) == []  # final rows 3 s and 5 s wait for their block ...
    assert sc.first_ns() == 3 * S and sc.rows.first_ns() is None
    assert sc.step(6 * S, force=True) == []  # ... forced, they are held until settle_rows (30) anyway
    assert sc.first_ns() is None and not sc.due(100 * S, None)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 4).flatmap(lambda n: st.tuples(st.just(n), st.lists(
    st.dictionaries(st.integers(0, max(n - 1, 0)), st.floats(allow_nan=True), max_size=n), max_size=6))))
def test_rows_array_equals_filling_a_nan_array_cell_by_cell(case: tuple[int, list[dict[int, float]]]) -> None:
    """Full rows in channel order take a lean path; rows with gaps or another key order the cell-by-cell
    one: the same arrays either way."""
    n, dicts = case
    rows = [(1_000 + k, d) for k, d in enumerate(dicts)]
    want = np.full((len(rows), n), np.nan)
    for r, (_, vals) in enumerate(rows):
        for i, v in vals.items():
            want[r, i] = v
    ts, x = rows_array(rows, n)
    assert ts.dtype == np.int64 and ts.tolist() == [t for t, _ in rows]
    assert x.shape == want.shape and x.dtype == np.float64
    np.testing.assert_array_equal(x, want)


@settings(max_examples=100, deadline=None)
@given(readings, st.integers(1, 4), st.booleans(), st.sampled_from([{"d"}, set()]))
def test_add_columns_equals_add_readings(items: list[tuple[int, str, float]], parts: int, in_order: bool,
                                         exclude: set[str]) -> None:
    """Readings as columns (one set per partition, cut anywhere) make the rows, spans and stale counts
    that ``add_readings`` makes of the same readings; in time order (taken row by row) or not."""
    from aiotstream.records import ReadingColumns, expand_columns

    if in_order:
        items = sorted(items, key=lambda it: it[0])
    cols = []
    for p in range(parts):  # partition p takes every parts-th reading; offsets out of order
        mine = [(k, it) for k, it in enumerate(items) if k % parts == p]
        cols.append(ReadingColumns("a", "top", p, [t for _, (t, _, _) in mine], [m for _, (_, m, _) in mine],
                                   [v for _, (_, _, v) in mine], [(k * 7) % 11 for k, _ in mine]))
    one = RowAssembler(max_channels=3, exclude=set(exclude))
    col = RowAssembler(max_channels=3, exclude=set(exclude))
    half = len(cols) // 2
    one.add_readings(expand_columns(cols[:half]))
    col.add_columns(cols[:half])
    sa: dict = {}
    sb: dict = {}
    assert rows_of_spans(one, 15, sa) == rows_of_spans(col, 15, sb) and sa == sb
    one.add_readings(expand_columns(cols[half:]))
    col.add_columns(cols[half:])
    assert rows_of_spans(one, math.inf, sa) == rows_of_spans(col, math.inf, sb) and sa == sb
    assert one.channels == col.channels and one.stale == col.stale


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 4).flatmap(lambda n: st.tuples(st.just(n), st.lists(st.one_of(
    st.dictionaries(st.integers(0, max(n - 1, 0)), st.floats(allow_nan=True), max_size=n),
    st.lists(st.floats(allow_nan=True), max_size=n)), max_size=6))))
def test_rows_array_of_list_rows_equals_their_dicts(case: tuple[int, list]) -> None:
    """A row kept as the list of its values (a full row taken whole from columns; shorter when channels were
    added after it) is the dict ``{i: value}`` of them: the same arrays, mixed with dict rows or not."""
    n, raw = case
    rows = [(1_000 + k, r) for k, r in enumerate(raw)]
    as_dicts = [(t, r if isinstance(r, dict) else dict(enumerate(r))) for t, r in rows]
    ts, x = rows_array(rows, n)
    want_ts, want = rows_array(as_dicts, n)
    assert ts.tolist() == want_ts.tolist() and x.shape == want.shape
    np.testing.assert_array_equal(x, want)


def test_full_rows_from_columns_take_more_readings_as_dicts() -> None:
    """A full row taken whole from columns (kept as a list) takes a later reading of its time (a new channel
    or a repeated one) as the dict of before would."""
    from aiotstream.records import ReadingColumns

    a = RowAssembler()
    a.add_columns([ReadingColumns("a", "top", 0, [1, 1, 2, 2], ["x", "y", "x", "y"], [1.0, 2.0, 3.0, 4.0],
                                  [0, 1, 2, 3])])
    a.add_columns([ReadingColumns("a", "top", 0, [1, 2], ["x", "y"], [5.0, 6.0], [4, 5])])  # whole again
    a.add(2, "z", 7.0, ("top", 1, 9))  # a new channel into a list row
    spans: dict = {}
    assert a.take_rows(10, spans) == [(1, {0: 5.0, 1: 2.0}), (2, {0: 3.0, 1: 6.0, 2: 7.0})]
    assert spans == {("top", 0): (0, 5), ("top", 1): (9, 9)}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.floats(allow_nan=True), st.floats(-1e-300, 0.0)),
                          st.floats(allow_nan=True, allow_infinity=True)), min_size=1, max_size=6))
def test_a_blocks_scale_of_one_channel_is_the_baselines_scale(cells: list[tuple[float, float]]) -> None:
    """``ScoredBlock.scale_of`` (a block's explanation computes the scale of the channels it names) gives
    ``RobustBaseline.scale()``'s value bit for bit, NaN, negative and infinite state included."""
    from aiotstream.models.streaming import RobustBaseline
    from aiotstream.pdm.scalar import ScoredBlock

    base = RobustBaseline(len(cells))
    base.var[:] = [v for v, _ in cells]
    base.level[:] = [lv for _, lv in cells]
    with np.errstate(invalid="ignore"):
        want = base.scale()
    b = ScoredBlock(np.zeros(0, np.int64), np.zeros((0, len(cells))), [], None,  # type: ignore[arg-type]
                    level=base.level.copy(), var=base.var.copy())
    got = np.array([b.scale_of(i) for i in range(len(cells))])
    assert got.tobytes() == want.tobytes() or np.array_equal(got, want, equal_nan=True)


_cell = st.sampled_from([0.0, -0.0, 1.5, -1.5, 2.0, -3.25, 1e-300, math.nan, math.inf])


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 6).flatmap(lambda n: st.tuples(
    st.lists(_cell, min_size=n, max_size=n), st.lists(_cell, min_size=n, max_size=n),
    st.lists(_cell, min_size=n, max_size=n), st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n),
    st.integers(0, 4), st.integers(-1, 5))))
def test_a_blocks_explanation_is_the_detectors_explain_made_json_safe(case: tuple) -> None:
    """``AssetAnalyzer._scalar_explain`` (lists, Python's sort, the scale of the channels it names) gives what
    ``BlockResult.explain`` with the baseline's whole scale and ``_clean`` gave: the same channels in the
    same order (ties of |z| in channel order, NaN z as numpy orders it, the rank test's ``lead`` channel
    first when there is one), the same values, NaN as None."""
    from types import SimpleNamespace

    from aiotstream.models.streaming import BlockResult, RobustBaseline
    from aiotstream.pdm.asset import AssetAnalyzer, _clean
    from aiotstream.pdm.scalar import ScoredBlock

    z, x, level, p, top, lead = case
    n = len(z)
    lead = min(lead, n - 1)  # -1: no lead (the rank test did not give the row's smallest p)
    res = BlockResult(np.zeros(1), np.zeros(1, bool), np.ones(1), np.array([z]), np.array([p]),
                      lead=np.array([lead], np.int64))
    base = RobustBaseline(n)
    base.level[:] = level
    base.var[:] = [abs(v) for v in x]
    with np.errstate(invalid="ignore", over="ignore"):
        scale = base.scale()
    names = [f"c{i}" for i in range(n)]
    b = ScoredBlock(np.zeros(1, np.int64), np.array([x]), names, res, level=base.level.copy(),
                    var=base.var.copy())
    c = 3.0
    want = []
    with np.errstate(invalid="ignore", over="ignore"):
        for name, zz, pp in res.explain(0, names, top):
            i = names.index(name)
            lvl, sc = float(level[i]), float(scale[i])
            want.append({"feature": name, "value": float(x[i]), "z": round(zz, 6), "p": pp,
                         "baseline_low": lvl - c * sc, "baseline_high": lvl + c * sc})
        me = SimpleNamespace(scalar=SimpleNamespace(cfg=SimpleNamespace(huber_c=c)))
        got = AssetAnalyzer._scalar_explain(me, b, 0, top)  # type: ignore[arg-type]
    assert repr(got) == repr(_clean(want))  # (repr: -0.0 and 0.0 apart, as in the JSON)

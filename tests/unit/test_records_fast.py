"""The record builders' inlined paths against the code they replaced (kept here as the reference):
derive() with oee()/ratio() inline and its one finiteness check of the sum."""
from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.config import KPI_NAMES
from aiotstream.kpi.totals import TOTALS, derive, new_totals, oee, ratio, savings
from aiotstream.units import S


def derive_reference(t: dict) -> dict:
    """derive() as it was before the ratios were inlined."""
    perf_defined = t["parts_without_ideal"] == 0
    a, p, q, o = oee(t["run_s"], t["planned_s"], t["ideal_run_s"] if perf_defined else 0, t["parts_total"],
                     t["parts_good"])
    if not perf_defined or t["parts_total"] == 0:
        p, o = None, None
    energy = baseline = saved = pct = None
    if t["power_samples"]:
        energy = t["energy_kwh"]
    if t["baseline_samples"]:
        baseline = t["baseline_kwh"]
    if energy is not None and baseline is not None:
        saved, pct = savings(energy, baseline)
    labels = t["labels_true_fault"] + t["labels_false_alarm"]
    mttr = ratio(t["repair_s"], t["repairs"])
    mtbf = ratio(t["operating_s"], t["failures"])
    mtta = ratio(t["ack_delay_s"], t["alerts_acknowledged"])
    latency = ratio(t["model_latency_s"], t["model_calls"])
    out = {
        "availability": a, "performance": p, "quality": q, "oee": o,
        "mttr_s": None if mttr is None else mttr / S,
        "mtbf_s": None if mtbf is None else mtbf / S,
        "mtta_s": None if mtta is None else mtta / S,
        "false_alarm_rate": ratio(t["labels_false_alarm"], labels),
        "anomaly_rate": ratio(t["anomalous_windows"], t["scored_windows"]),
        "model_latency_ms": None if latency is None else latency / 1e6,
        "energy_kwh": energy, "baseline_kwh": baseline, "savings_kwh": saved, "savings_pct": pct,
    }
    assert tuple(out) == KPI_NAMES
    return {k: (v if v is None or math.isfinite(v) else None) for k, v in out.items()}


def exact(d: dict) -> list:
    """A dict's items with each value's type and repr (0.0 vs -0.0 vs 0, NaN, order of keys)."""
    return [(k, type(v).__name__, repr(v)) for k, v in d.items()]


def outcome(f, t):
    try:
        return exact(f(t))
    except Exception as e:  # noqa: BLE001 (the same exception type is the expected behaviour)
        return type(e).__name__


# small and boundary numbers, ints and floats, zeros of both signs, NaN, inf, subnormals, huge values
_floats = st.one_of(st.sampled_from([0.0, -0.0, 1.0, -1.0, 5e-324, -5e-324, 1e308, -1e308, math.inf, -math.inf,
                                     math.nan, 0.5, 1e-300]),
                    st.floats(allow_nan=True, allow_infinity=True))
_ints = st.one_of(st.sampled_from([0, 1, -1, 2, S, 10 * S, 3]), st.integers(-10**20, 10**20),
                  st.sampled_from([10**400, -10**400]))
_value = st.one_of(_floats, _ints)
_NAMES = sorted(TOTALS)


@st.composite
def totals(draw) -> dict:
    t = new_totals()
    for k in draw(st.lists(st.sampled_from(_NAMES), max_size=30)):
        t[k] = draw(_value)
    return t


@settings(max_examples=3000, deadline=None)
@given(totals())
def test_derive_matches_reference(t):
    assert outcome(derive, t) == outcome(derive_reference, t)


@given(totals(), st.sampled_from(_NAMES))
def test_derive_missing_key_raises_as_before(t, missing):
    whole = outcome(derive_reference, t)  # the totals alone may fail: 10**400 overflows a float
    del t[missing]
    got, want = outcome(derive, t), outcome(derive_reference, t)
    if isinstance(whole, str):  # then which error comes first (KeyError, OverflowError) is evaluation order
        assert got in ("KeyError", whole) and want in ("KeyError", whole)
    else:
        assert got == want


def test_derive_cases():
    t = new_totals()
    t.update(run_s=8 * S, planned_s=10 * S, ideal_run_s=4 * S, parts_total=10, parts_good=9)
    assert exact(derive(t)) == exact(derive_reference(t))
    t.update(planned_s=5e-324)  # finite totals, an infinite ratio: None
    assert derive(t)["availability"] is None and exact(derive(t)) == exact(derive_reference(t))
    t.update(power_samples=1, energy_kwh=math.nan, baseline_samples=1, baseline_kwh=2.0)
    assert exact(derive(t)) == exact(derive_reference(t))


# ---- KpiTracker.add_many with _at / when / _period inline --------------------------------------------
def add_many_reference(tr, sums: dict, maxima: dict, t_ns: int, *, exact_time: bool = False) -> None:
    """KpiTracker.add_many as it was: through the _at generator and when()."""
    for p in tr._at(t_ns if exact_time else tr.when(t_ns)):
        tot = p.totals
        for k, v in sums.items():
            tot[k] += v
        for k, v in maxima.items():
            tot[k] = max(tot[k], v)


def _tracker():
    from aiotstream.kpi.periods import Shifts, Tumbling
    from aiotstream.kpi.tracker import KpiTracker

    # a tumbling scheme, and shifts with gaps between them (period_of None: the scheme is skipped)
    return KpiTracker("a", "l", [Tumbling(10 * S), Shifts([("early", 6 * 60, 4.0), ("late", 14 * 60, 4.0)])])


_op = st.tuples(
    st.integers(0, 2 * 86_400) .map(lambda s: 1_767_225_600 * S + s * S // 4),  # out of order, repeats
    st.booleans(),  # exact_time
    st.dictionaries(st.sampled_from(["scalar_rows", "scalar_alert_rows", "baseline_changes"]),
                    st.one_of(st.integers(0, 30), st.floats(0, 5)), max_size=3),
    st.dictionaries(st.sampled_from(["scalar_max_score", "max_score"]),
                    st.one_of(st.floats(allow_nan=True), st.integers(-2, 2)), max_size=2),
    st.one_of(st.none(), st.integers(0, 2 * 86_400).map(lambda s: 1_767_225_600 * S + s * S // 3)),  # accounted
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_op, max_size=25))
def test_add_many_matches_reference(ops):
    fast, ref = _tracker(), _tracker()
    for t, exact_time, sums, maxima, accounted in ops:
        fast.accounted_ns = ref.accounted_ns = accounted
        fast.add_many(sums, maxima, t, exact_time=exact_time)
        add_many_reference(ref, sums, maxima, t, exact_time=exact_time)
    assert list(fast.periods) == list(ref.periods)
    for key, p in fast.periods.items():
        q = ref.periods[key]
        assert (p.scheme, p.start, p.end, p.label) == (q.scheme, q.start, q.end, q.label)
        assert exact(p.totals) == exact(q.totals)


# ---- lineage set in the record (FlowContext.block_into, lineage_of) ------------------------------------
def test_block_into_sets_what_block_gives_in_its_order():
    from aiotstream.lineage import LINEAGE_FIELDS, FlowContext, lineage_of

    ctx = FlowContext("s", "f", "1", "h")
    inputs, window, features, model = [{"topic": "t"}], {"start_ns": 1}, {"set": "x"}, None
    want = {"a": 1, "b": 2}
    want.update(ctx.block(inputs=inputs, window=window, features=features, model=model))
    got = ctx.block_into({"a": 1, "b": 2}, inputs=inputs, window=window, features=features, model=model)
    assert list(got) == list(want) == ["a", "b", *LINEAGE_FIELDS]
    assert got["inputs"] is inputs and got["window"] is window and got["features"] is features
    assert {k: v for k, v in got.items() if k != "produced_at"} == {k: v for k, v in want.items()
                                                                    if k != "produced_at"}
    assert len(got["produced_at"]) == len(want["produced_at"]) == 27
    lin = lineage_of(got)
    assert list(lin) == list(LINEAGE_FIELDS) and all(lin[k] is got[k] for k in LINEAGE_FIELDS)


SCALAR_KEYS = ["schema", "id", "asset", "line", "channels", "rows", "row_ts_ns", "row_score", "row_alert",
               "max_score", "min_p", "alert_rows", "restarted", "changes", "top", "site", "flow", "flow_version",
               "config_hash", "code_version", "inputs", "window", "features", "model", "produced_at"]
KPI_KEYS = ["schema", "id", "scope", "asset", "line", "period", "assets_expected", "assets_reported", "complete",
            "revision", "totals", "kpis", "site", "flow", "flow_version", "config_hash", "code_version", "inputs",
            "window", "features", "model", "produced_at"]


def test_scalar_and_kpi_records_keep_their_fields_order_and_alerts_the_blocks_lineage():
    """Through the plant flow (the scalar flow's test site, its injected fault): every record's fields in
    the order they had before the lineage was set in place, and the scalar alerts carry the lineage of the
    scalar record of the block that raised them (its inputs, window, produced_at)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
    from test_scalar_flow import messages, run, site  # type: ignore[import-not-found]

    from aiotstream.lineage import LINEAGE_FIELDS

    outputs = run(site(), messages())
    scalars = [o.record for o in outputs if o.kind == "scalar"]
    kpis = [o.record for o in outputs if o.kind == "kpi"]
    assert scalars and kpis
    assert all(list(r) == SCALAR_KEYS for r in scalars)
    assert all(list(r) == KPI_KEYS for r in kpis)
    alerts = [o.record for o in outputs if o.kind == "alert" and o.record["alert_type"] == "scalar_anomaly"
              and o.record["event"] in ("opened", "cleared")]
    assert len(alerts) >= 2
    for a in alerts:
        owners = [r for r in scalars if r["asset"] == a["asset"] and r["window"] == a["window"]]
        assert len(owners) == 1
        assert {k: a[k] for k in LINEAGE_FIELDS} == {k: owners[0][k] for k in LINEAGE_FIELDS}


# ---- RollupBook.add streamlined, merge_spans without min/max calls -----------------------------------
def merge_spans_reference(spans):
    acc = {}
    for t, p, a, b in spans:
        s = acc.setdefault((t, p), [a, b])
        s[0], s[1] = min(s[0], a), max(s[1], b)
    return tuple(sorted((t, p, a, b) for (t, p), (a, b) in acc.items()))


@given(st.lists(st.tuples(st.sampled_from(["t", "u", "file:/x"]), st.integers(-1, 2), st.integers(-5, 50),
                          st.integers(-5, 50)), max_size=30))
def test_merge_spans_matches_reference(spans):
    from aiotstream.kpi.record import merge_spans

    assert merge_spans(spans) == merge_spans_reference(spans)
    assert merge_spans(iter(spans)) == merge_spans_reference(spans)  # (any iterable)


def _reference_book():
    from aiotstream.kpi.rollup import RollupBook, _Pending, _start

    class ReferenceBook(RollupBook):
        def add(self, r, now_s=0.0):  # RollupBook.add as it was
            key = (r.scheme, r.start_ns)
            prog = (r.scheme, r.asset)
            end = max(self.progress.get(prog, r.end_ns), r.end_ns)
            self.progress[prog] = end
            self.newest[r.scheme] = max(self.newest.get(r.scheme, end), end)
            for k, q in self.pending.items():
                if k[0] == r.scheme and q.first.end_ns <= end:
                    self._missing(k).discard(r.asset)
            if key in self.done:
                return []
            p = self.pending.get(key)
            if p is None:
                p = self.pending[key] = _Pending(r, {}, now_s)
            p.parts[r.asset] = r
            self._missing(key).discard(r.asset)
            out = []
            if p.revision >= 0:
                out.append(self._emit(key, final=self._final(key)))
            keys = [k for k in self.pending if k[0] == r.scheme]
            if len(keys) > 1:
                keys.sort(key=_start)
            for k in keys:
                if self.pending[k].revision < 0 and self._final(k):
                    out.append(self._emit(k, final=True))
            self._forget()
            return out

    return ReferenceBook


_report = st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from([("10s", 10), ("20s", 20)]),
                    st.integers(0, 12), st.integers(0, 3))
_book_op = st.one_of(
    st.tuples(st.just("add"), _report, st.floats(0, 100)),
    st.tuples(st.just("expire"), st.floats(0, 100), st.floats(0, 30)),  # early (incomplete) emissions
    st.tuples(st.just("forget_missing"), st.none(), st.none()),  # a resume from a snapshot without `missing`
)


def _book_state(book):
    return (sorted((k, p.revision, sorted(p.parts), None if p.missing is None else sorted(p.missing))
                   for k, p in book.pending.items()),
            list(book.done), sorted(book.progress.items()), sorted(book.newest.items()))


@settings(max_examples=500, deadline=None)
@given(st.sets(st.sampled_from(["a", "b", "c"]), max_size=3), st.lists(_book_op, max_size=40),
       st.integers(1, 3))
def test_rollup_book_add_matches_reference(expected, ops, keep):
    from aiotstream.kpi.rollup import RollupBook
    from aiotstream.kpi.tracker import PeriodResult

    fast, ref = RollupBook("line", "l", expected, keep_periods=keep), _reference_book()("line", "l", expected,
                                                                                        keep_periods=keep)
    for op, x, y in ops:
        if op == "add":
            (asset, (scheme, length), k, v) = x
            r = PeriodResult(scheme, length * S, k * length * S, (k + 1) * length * S, "", asset, "l",
                             {**new_totals(), "windows": v}, (("t", 0, k, k + v),))
            assert fast.add(r, y) == ref.add(r, y)
        elif op == "expire":
            assert fast.expire(x, y) == ref.expire(x, y)
        else:
            for book in (fast, ref):
                for p in book.pending.values():
                    p.missing = None
        assert _book_state(fast) == _book_state(ref)
    assert fast.flush() == ref.flush()

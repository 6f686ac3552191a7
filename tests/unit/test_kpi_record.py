"""``kpi_record`` (built by plain branches and in place, once per asset and period) gives exactly the record the
generic construction gave: the same keys in the same order, the same values and types, for every scope and
for entity periods and roll-ups alike (``produced_at``, the wall clock, aside)."""
from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.kpi import PeriodResult, RollupResult, kpi_record
from aiotstream.kpi.totals import TOTALS, derive, new_totals, public_totals, variant_kpis
from aiotstream.lineage import FlowContext, inputs_block, make_id, window_block
from aiotstream.units import S


def _reference(ctx: FlowContext, r: PeriodResult | RollupResult, *, scope: str, model_sha: str,
               features: dict | None, model: dict | None) -> dict[str, Any]:
    """kpi_record as it was before (the generic construction)."""
    asset = r.asset if scope == "asset" else None
    line = r.line if scope in ("asset", "line") else None
    scope_id = {"asset": r.asset, "line": r.line, "site": ctx.site}[scope]
    rollup = r if isinstance(r, RollupResult) else None
    revision = rollup.revision if rollup else 0
    return {
        "schema": "aiotstream.kpi/2",
        "id": make_id("kpi", ctx.site, ctx.config_hash, model_sha, scope, scope_id, r.scheme, r.start_ns,
                      revision),
        "scope": scope, "asset": asset, "line": line,
        "period": {"scheme": r.scheme, "label": r.label or None,
                   "length_s": None if r.length_ns is None else r.length_ns / S,
                   "start_ns": r.start_ns, "end_ns": r.end_ns},
        "assets_expected": rollup.expected if rollup else 1,
        "assets_reported": len(rollup.assets) if rollup else 1,
        "complete": rollup.complete if rollup else True,
        "revision": revision,
        "totals": public_totals(r.totals),
        "kpis": derive(r.totals),
        **({"variants": v} if (v := variant_kpis(r.totals)) is not None else {}),
        **ctx.block(inputs=inputs_block(r.spans), window=window_block(r.start_ns, r.end_ns),
                    features=features,
                    model=model),
    }


def _same(a: dict, b: dict) -> None:
    a, b = dict(a), dict(b)
    assert a.pop("produced_at") and b.pop("produced_at")
    assert repr(list(a.items())) == repr(list(b.items()))  # (order, types, -0.0 too)


_totals = st.dictionaries(st.sampled_from(sorted(TOTALS)),
                          st.one_of(st.integers(0, 10**13), st.integers(0, 10**4).map(lambda q: q * S),
                                    st.floats(0, 1e6)), max_size=10).map(lambda d: {**new_totals(), **d})
_spans = st.lists(st.tuples(st.sampled_from(["file:/x.parquet", "plant.readings", "mqtt:a/b"]),
                            st.integers(-1, 3), st.integers(0, 100), st.integers(100, 200)), max_size=3)


@settings(max_examples=200, deadline=None)
@given(_totals, _spans, st.sampled_from(["asset", "line", "site"]), st.booleans(),
       st.sampled_from([(None, "B"), (10 * S, ""), (3600 * S, "")]), st.integers(0, 10**6),
       st.integers(0, 3), st.booleans(), st.booleans())
def test_kpi_record_is_the_generic_record(totals: dict, spans: list, scope: str, rollup: bool,
                                          length_label: tuple, start_s: int, revision: int, complete: bool,
                                          blocks: bool) -> None:
    length, label = length_label
    start = start_s * S
    end = start + (length or 8 * 3600 * S)
    ctx = FlowContext("site-1", "plant", "3", "cfg", code_version="v")
    if rollup:
        r: PeriodResult | RollupResult = RollupResult("10s", length, start, end, label, None,
                                                      "line-1" if scope == "line" else None, totals,
                                                      tuple(spans), ("a-1", "a-2"), 3, complete, revision)
    else:
        r = PeriodResult("10s", length, start, end, label, "a-1", "line-1", totals, tuple(spans))
    model = {"name": "m", "version": "1", "sha256": "f" * 64} if blocks else None
    features = {"set": "x"} if blocks else None
    kw = {"scope": scope, "model_sha": "f" * 64, "features": features, "model": model}
    _same(kpi_record(ctx, r, **kw), _reference(ctx, r, **kw))  # type: ignore[arg-type]

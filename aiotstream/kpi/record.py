"""The ``aiotstream.kpi/2`` record of an entity's or a roll-up's period."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiotstream.kpi.totals import derive, public_totals, variant_kpis
from aiotstream.kpi.tracker import PeriodResult
from aiotstream.lineage import FlowContext, inputs_block, make_id, window_block
from aiotstream.units import S


# ---- records ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RollupResult:
    scheme: str
    length_ns: int | None
    start_ns: int
    end_ns: int
    label: str
    asset: str | None
    line: str | None
    totals: dict[str, int | float]
    spans: tuple[tuple[str, int, int, int], ...]
    assets: tuple[str, ...]
    expected: int
    complete: bool
    revision: int


def merge_spans(spans: Iterable[tuple[str, int, int, int]]) -> tuple[tuple[str, int, int, int], ...]:
    """Union of input spans per (topic, partition).

    >>> merge_spans([("t", 0, 5, 9), ("t", 0, 2, 6), ("u", 1, 0, 0)])
    (('t', 0, 2, 9), ('u', 1, 0, 0))
    """
    acc: dict[tuple[str, int], list[int]] = {}
    get = acc.get
    # (a roll-up's: every asset's span. min and max as the comparisons they make, without their calls, and no
    # new list for a span whose (topic, partition) is there already)
    for t, p, a, b in spans:
        s = get((t, p))
        if s is None:
            acc[(t, p)] = [a, b]
        else:
            if a < s[0]:  # noqa: PLR1730 (min(s[0], a))
                s[0] = a
            if b > s[1]:  # noqa: PLR1730 (max(s[1], b))
                s[1] = b
    return tuple(sorted((t, p, a, b) for (t, p), (a, b) in acc.items()))


def kpi_record(ctx: FlowContext, r: PeriodResult | RollupResult, *, scope: str, model_sha: str,
               features: dict | None, model: dict | None) -> dict[str, Any]:
    """An ``aiotstream.kpi/2`` record for an asset's period or a roll-up (once per asset and period: the
    scope's fields by plain branches, the record built once and extended in place)."""
    if scope == "asset":
        asset, line, scope_id = r.asset, r.line, r.asset
    elif scope == "line":
        asset, line, scope_id = None, r.line, r.line
    else:
        asset, line, scope_id = None, None, {"site": ctx.site}[scope]  # (an unknown scope: KeyError)
    if isinstance(r, RollupResult):
        revision, expected, reported, complete = r.revision, r.expected, len(r.assets), r.complete
    else:  # an entity's own period
        revision, expected, reported, complete = 0, 1, 1, True
    length = r.length_ns
    totals = r.totals
    rec: dict[str, Any] = {
        "schema": "aiotstream.kpi/2",
        "id": make_id("kpi", ctx.site, ctx.config_hash, model_sha, scope, scope_id, r.scheme, r.start_ns,
                      revision),
        "scope": scope, "asset": asset, "line": line,
        "period": {"scheme": r.scheme, "label": r.label or None,
                   "length_s": None if length is None else length / S,
                   "start_ns": r.start_ns, "end_ns": r.end_ns},
        "assets_expected": expected,
        "assets_reported": reported,
        "complete": complete,
        "revision": revision,
        "totals": public_totals(totals),
        "kpis": derive(totals),
    }
    v = variant_kpis(totals)
    if v is not None:
        rec["variants"] = v
    return ctx.block_into(rec, inputs=inputs_block(r.spans), window=window_block(r.start_ns, r.end_ns),
                          features=features, model=model)

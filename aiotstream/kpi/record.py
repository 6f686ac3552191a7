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
    for t, p, a, b in spans:
        s = acc.setdefault((t, p), [a, b])
        s[0], s[1] = min(s[0], a), max(s[1], b)
    return tuple(sorted((t, p, a, b) for (t, p), (a, b) in acc.items()))


def kpi_record(ctx: FlowContext, r: PeriodResult | RollupResult, *, scope: str, model_sha: str,
               features: dict | None, model: dict | None) -> dict[str, Any]:
    """An ``aiotstream.kpi/2`` record for an asset's period or a roll-up."""
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

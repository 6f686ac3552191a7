"""KPIs: :mod:`~aiotstream.kpi.totals` (additive totals and the KPIs derived from them: OEE, MTTR, MTBF,
energy, savings), :mod:`~aiotstream.kpi.periods` (tumbling periods, shifts), :mod:`~aiotstream.kpi.tracker`
(one entity's accounting per period), :mod:`~aiotstream.kpi.record` (the ``kpi/2`` record) and
:mod:`~aiotstream.kpi.rollup` (exact line and site roll-ups). ``from aiotstream.kpi import ...`` gives
every name; snapshots that name ``aiotstream.kpi.<class>`` load through these exports."""
from __future__ import annotations

from aiotstream.kpi.periods import PeriodScheme, Shifts, Tumbling, make_schemes
from aiotstream.kpi.record import RollupResult, kpi_record, merge_spans
from aiotstream.kpi.rollup import RollupBook, RollupSite, math_is_close, rollup_inputs, rollup_keys
from aiotstream.kpi.totals import (
    FLOAT_TOTALS,
    NS_PER_HOUR,
    STATE_CODES,
    TIME_TOTALS,
    TOTALS,
    derive,
    from_public,
    merge,
    new_totals,
    oee,
    public_totals,
    ratio,
    savings,
    split_trapezoid,
    trapezoid_kwh,
    variant_kpis,
)
from aiotstream.kpi.tracker import KpiTracker, PeriodResult

__all__ = [
    "FLOAT_TOTALS",
    "NS_PER_HOUR",
    "STATE_CODES",
    "TIME_TOTALS",
    "TOTALS",
    "KpiTracker",
    "PeriodResult",
    "PeriodScheme",
    "RollupBook",
    "RollupResult",
    "RollupSite",
    "Shifts",
    "Tumbling",
    "derive",
    "from_public",
    "kpi_record",
    "make_schemes",
    "math_is_close",
    "merge",
    "merge_spans",
    "new_totals",
    "oee",
    "public_totals",
    "ratio",
    "rollup_inputs",
    "rollup_keys",
    "savings",
    "split_trapezoid",
    "trapezoid_kwh",
    "variant_kpis",
]

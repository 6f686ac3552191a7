"""``AssetAnalyzer._scalar_explain`` orders the channels without numpy (a reversed stable sort of ``|z|``)
and writes a block's ``row_alert`` as ``[0] * rows`` when no row alerts: the channels must come in the
order of :meth:`~aiotstream.models.streaming.BlockResult.explain` (``argsort(-|z|, kind="stable")``, the
lead first), ties, signed zeros, infinities and NaN included, for every row and ``top``."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.models.streaming import BlockResult
from aiotstream.pdm.asset import AssetAnalyzer
from aiotstream.pdm.scalar import ScoredBlock

# few distinct magnitudes, so ties (and +-0) are common
_z = st.one_of(st.sampled_from([0.0, -0.0, 1.5, -1.5, 2.0, -2.0, 3.25, math.inf, -math.inf]),
               st.floats(-8, 8), st.sampled_from([math.nan]))


@settings(max_examples=500, deadline=None)
@given(st.integers(1, 9).flatmap(lambda n: st.tuples(
    st.lists(st.lists(_z, min_size=n, max_size=n), min_size=1, max_size=3),
    st.lists(st.integers(-1, n - 1), min_size=3, max_size=3), st.integers(1, 10))))
def test_the_explanations_channels_come_in_block_result_explains_order(case: tuple) -> None:
    zs, leads, top = case
    rows, n = len(zs), len(zs[0])
    z = np.array(zs)
    lead = np.array(leads[:rows], np.int64)
    cp = np.linspace(0.1, 0.9, rows * n).reshape(rows, n)
    res = BlockResult(np.zeros(rows), np.zeros(rows, bool), np.ones(rows), z, cp, lead=lead)
    names = [f"c{i}" for i in range(n)]
    b = ScoredBlock(np.arange(rows, dtype=np.int64), np.ones((rows, n)), names, res, level=np.zeros(n),
                    var=np.ones(n))
    me = SimpleNamespace(scalar=SimpleNamespace(cfg=SimpleNamespace(huber_c=3.0)))
    for r in range(rows):
        with np.errstate(all="ignore"):
            got = AssetAnalyzer._scalar_explain(me, b, r, top)  # type: ignore[arg-type]
        want = res.explain(r, names, top)
        assert [e["feature"] for e in got] == [w[0] for w in want]

"""``AssetAnalyzer._scalar_explain`` computes the scale of the channels it names inline from the block's
``var`` and ``level`` lists: the normal band must be the one ``ScoredBlock.scale_of`` gives, bit for bit,
for negative, tiny, NaN and infinite state too (and with a block that carries ``scale`` itself)."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.models.streaming import BlockResult
from aiotstream.pdm.asset import AssetAnalyzer
from aiotstream.pdm.scalar import ScoredBlock

_cell = st.one_of(st.sampled_from([0.0, -0.0, 1.5, -1.5, 1e-300, -1e-300, 1e-20, math.nan, math.inf, -math.inf]),
                  st.floats(allow_nan=True, allow_infinity=True))


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 6).flatmap(lambda n: st.tuples(
    st.lists(_cell, min_size=n, max_size=n), st.lists(_cell, min_size=n, max_size=n),
    st.lists(st.floats(-5, 5), min_size=n, max_size=n), st.integers(1, 6), st.booleans())))
def test_the_explanations_band_is_level_plus_minus_c_scale_of(case: tuple) -> None:
    var, level, z, top, given_scale = case
    n = len(var)
    res = BlockResult(np.zeros(1), np.zeros(1, bool), np.ones(1), np.array([z]), np.full((1, n), 0.5))
    lv, vr = np.array(level), np.array(var)
    scale = np.array([abs(v) for v in var]) if given_scale else None
    b = ScoredBlock(np.zeros(1, np.int64), np.zeros((1, n)), [f"c{i}" for i in range(n)], res, level=lv,
                    scale=scale, var=vr)
    c = 3.0
    me = SimpleNamespace(scalar=SimpleNamespace(cfg=SimpleNamespace(huber_c=c)))
    with np.errstate(all="ignore"):
        got = AssetAnalyzer._scalar_explain(me, b, 0, top)  # type: ignore[arg-type]
    assert len(got) == min(top, n)
    for e in got:
        i = int(e["feature"][1:])
        sc = b.scale_of(i)
        lo, hi = float(lv[i]) - c * sc, float(lv[i]) + c * sc
        assert repr((e["baseline_low"], e["baseline_high"])) == repr(
            (None if math.isnan(lo) else lo, None if math.isnan(hi) else hi))

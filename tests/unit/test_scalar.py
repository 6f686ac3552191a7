"""ScalarState (EWMA, rolling stats over a ring buffer, rate of change) vs its plain-Python twin.

Tolerance: ``rtol = 1e-12`` with ``atol = 1e-12 * max|value|`` (the same
formulas; only the summation order differs). NaN behaviour: a non-finite value
leaves the key's state alone and gives a NaN output row.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.features import SCALAR_FEATURES, ScalarState, get_feature_set
from aiotstream.features.reference import ScalarStateTwin

S = 1_000_000_000


def assert_rows_close(got: np.ndarray, want: np.ndarray, scale: float) -> None:
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    g, w = got[ok], want[ok]
    with np.errstate(invalid="ignore", over="ignore"):  # huge values may overflow to the same inf in both
        close = (g == w) | (np.abs(g - w) <= 1e-12 * np.abs(w) + 1e-12 * scale)
    assert close.all(), f"got {g[~close]}, want {w[~close]}"


values = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 1.0, 1e300, -1e300, 1e-300, np.nan, np.inf]),
)


@settings(max_examples=80, deadline=None)
@given(
    window=st.integers(1, 8),
    mode=st.sampled_from(["alpha", "halflife"]),
    updates=st.lists(st.tuples(st.integers(0, 4), values, st.integers(-2, 5)), min_size=0, max_size=60),
    split=st.integers(0, 60),
)
def test_matches_twin_in_any_batching(window: int, mode: str, updates: list, split: int) -> None:
    """Random keys (repeated within a batch), values incl. NaN/Inf/huge, time steps incl. 0 and negative."""
    kw = {"alpha": 0.3} if mode == "alpha" else {"halflife_s": 2.5}
    st_, twin = ScalarState(window, capacity=1, **kw), ScalarStateTwin(window, **kw)
    keys = [f"k{k}" for k, _, _ in updates]
    vals = [v for _, v, _ in updates]
    ts = np.cumsum([dt * S // 2 for _, _, dt in updates]).tolist() if updates else []
    idx = st_.index(keys)
    assert len(set(keys)) == st_.n_keys
    got = np.concatenate([st_.update(idx[:split], vals[:split], ts[:split]),
                          st_.update(idx[split:], vals[split:], ts[split:])])
    want = twin.update(idx, vals, ts)
    finite = [abs(v) for v in vals if np.isfinite(v)]
    assert_rows_close(got, want, max(finite, default=1.0))


def test_known_sequence() -> None:
    s = ScalarState(window=3, alpha=0.5)
    idx = s.index(["a", "b", "a", "a", "a"])
    out = s.update(idx, [1.0, 100.0, 3.0, 5.0, 7.0], [0, 0, S, 2 * S, 4 * S])
    cols = {c: i for i, c in enumerate(SCALAR_FEATURES)}
    a = out[[0, 2, 3, 4]]
    assert a[:, cols["ewma"]].tolist() == [1.0, 2.0, 3.5, 5.25]
    assert a[:, cols["mean"]].tolist() == [1.0, 2.0, 3.0, 5.0]  # the last row: window [3, 5, 7]
    assert a[:, cols["min"]].tolist() == [1.0, 1.0, 1.0, 3.0]
    assert a[:, cols["max"]].tolist() == [1.0, 3.0, 5.0, 7.0]
    assert a[3, cols["std"]] == pytest.approx(np.std([3.0, 5.0, 7.0]))
    assert np.isnan(a[0, cols["roc"]]) and a[1:, cols["roc"]].tolist() == [2.0, 2.0, 1.0]
    assert out[1].tolist()[:5] == [100.0, 100.0, 0.0, 100.0, 100.0]  # key b is independent


def test_time_aware_ewma_and_bad_times() -> None:
    s = ScalarState(window=4, halflife_s=10.0)
    idx = s.index(["m"] * 4)
    out = s.update(idx, [0.0, 8.0, 8.0, 4.0], [0, 10 * S, 10 * S, 5 * S])
    assert out[1, 0] == pytest.approx(4.0)  # one half-life: halfway
    assert out[2, 0] == pytest.approx(4.0)  # dt = 0: weight 0
    assert out[3, 0] == pytest.approx(4.0)  # dt < 0: weight 0
    assert np.isnan(out[2, 5]) and np.isnan(out[3, 5])  # no rate of change without forward time


def test_nan_leaves_state_alone_and_constant_window_is_exact() -> None:
    s = ScalarState(window=5, alpha=0.1)
    idx = s.index(["x"] * 4)
    out = s.update(idx, [0.1, np.nan, 0.1, np.inf], [0, S, 2 * S, 3 * S])
    assert np.isnan(out[1]).all() and np.isnan(out[3]).all()
    assert out[2, 1] == 0.1 and out[2, 2] == 0.0  # mean exact, std 0
    assert out[2, 5] == 0.0  # roc against the last *applied* value, over 2 s
    assert s.count[0] == 2


def test_growth_snapshot_and_errors() -> None:
    s = ScalarState(window=2, alpha=1.0, capacity=1)
    idx = s.index([f"k{i}" for i in range(50)])
    assert idx.tolist() == list(range(50)) and s.ring.shape[0] >= 50
    s.update(idx, np.arange(50.0), np.zeros(50, dtype=np.int64))
    clone = pickle.loads(pickle.dumps(s))
    a = s.update(idx[:3], [1.0, 2.0, 3.0], [S, S, S])
    b = clone.update(idx[:3], [1.0, 2.0, 3.0], [S, S, S])
    np.testing.assert_array_equal(a, b)
    assert s.update([], [], []).shape == (0, 6)
    with pytest.raises(ValueError, match="exactly one"):
        ScalarState(3)
    with pytest.raises(ValueError, match="exactly one"):
        ScalarState(3, alpha=0.5, halflife_s=1.0)
    with pytest.raises(ValueError, match="alpha"):
        ScalarState(3, alpha=0.0)
    with pytest.raises(ValueError, match="window"):
        ScalarState(0, alpha=0.5)
    with pytest.raises(ValueError, match="key indices"):
        s.update([50], [1.0], [0])
    with pytest.raises(ValueError, match="one length"):
        s.update([0, 1], [1.0], [0])


def test_scalar_basic_set_names_the_columns() -> None:
    fs = get_feature_set("scalar-basic")
    assert fs.kind == "scalar" and fs.per_channel == SCALAR_FEATURES
    assert fs.columns(["power_kw"]) == [f"power_kw.{c}" for c in SCALAR_FEATURES]

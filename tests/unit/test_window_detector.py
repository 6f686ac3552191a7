"""The calibrated window detector (aiotstream/models/window.py) against a plain-Python loop of its equations,
and each of its mechanisms: Student's t tail, load factor, transitions (change events, temperatures
re-baselined), persistence by feature group, shape evidence attributed to a larger energy change; and the
scalar detector's hold and re-level during a load change (aiotstream/pdm/scalar.py, streaming.py)."""
from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy import stats

from aiotstream.config import ScalarConfig, default_site
from aiotstream.models.online import make_detector
from aiotstream.models.streaming import _compiled, _scale_consistency, make_pipeline
from aiotstream.models.window import AMPLITUDE, SHAPE, CalibratedWindowDetector, student_sf2
from aiotstream.pdm.scalar import ScalarScorer

FEATS = ("mean", "std", "rms", "min", "max", "p2p", "crest", "skewness", "kurtosis", "zcr", "impulse", "shape")
COLS = [f"{c}.{f}" for c in "xyz" for f in FEATS] + ["temperature.mean", "temperature.max"]
TYPICAL = {"mean": 0.0, "std": 0.34, "rms": 0.34, "min": -1.1, "max": 1.1, "p2p": 2.2, "crest": 4.0,
           "skewness": 0.0, "kurtosis": 2.9, "zcr": 0.4, "impulse": 5.0, "shape": 1.25}
SPREAD = {"mean": 0.003, "std": 0.004, "rms": 0.004, "min": 0.05, "max": 0.05, "p2p": 0.08, "crest": 0.2,
          "skewness": 0.03, "kurtosis": 0.05, "zcr": 0.005, "impulse": 0.3, "shape": 0.003}


def rows(n: int, seed: int = 0, gain: np.ndarray | None = None, temp: np.ndarray | None = None) -> np.ndarray:
    """``n`` plausible healthy feature rows; ``gain`` (n,) scales every amplitude, ``temp`` (n,) adds to the
    temperature."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, len(COLS)))
    g = np.ones(n) if gain is None else gain
    for j, col in enumerate(COLS):
        ch, f = col.split(".")
        if ch == "temperature":
            out[:, j] = 50.0 + 0.05 * rng.standard_normal(n) + (0.0 if temp is None else temp)
            continue
        v = TYPICAL[f] + SPREAD[f] * rng.standard_normal(n)
        out[:, j] = v * g if f in AMPLITUDE else v
    out[:, COLS.index("temperature.max")] = out[:, COLS.index("temperature.mean")]
    return out


def run(d: CalibratedWindowDetector, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p, alert) per row."""
    p, a = np.ones(len(x)), np.zeros(len(x), bool)
    for i, r in enumerate(x):
        d.score_learn(r)
        p[i], a[i] = d.p, d.alert
    return p, a


# ---- against a plain loop -------------------------------------------------------------------------------

class SlowReference:
    """The detector's equations, one value at a time in plain Python (math, statistics, scipy.stats.t), for
    rows without missing values."""

    def __init__(self, cols: list[str], warmup: int = 20, halflife: float = 600.0, c: float = 3.0):
        self.cols, self.warmup, self.c = cols, warmup, c
        self.alpha = 1.0 - 0.5 ** (1.0 / halflife)
        self.kappa = _scale_consistency(c)
        self.amp = [col.split(".")[0] in "xyz" and col.split(".")[1] in AMPLITUDE for col in cols]
        self.rms = [i for i, col in enumerate(cols) if col.endswith(".rms")]
        self.shape = [col.split(".")[0] in "xyz" and col.split(".")[1] in SHAPE for col in cols]
        self.seen: list[list[float]] = []
        self.level: list[float] = []
        self.var: list[float] = []
        self.learned: list[float] = []

    def step(self, x: list[float]) -> tuple[list[float], float]:
        y = [math.log(abs(v) + 1e-12) if a else v for v, a in zip(x, self.amp)]
        if len(self.seen) < self.warmup:
            self.seen.append(y)
            if len(self.seen) == self.warmup:
                cols = list(zip(*self.seen))
                self.level = [statistics.fmean(c) for c in cols]
                self.var = [statistics.variance(c) for c in cols]
                self.learned = [float(self.warmup)] * len(cols)
            return [0.0] * len(x), 1.0
        g = statistics.median(y[i] - self.level[i] for i in self.rms)
        y = [v - g if a else v for v, a in zip(y, self.amp)]
        z = []
        for j, v in enumerate(y):
            sc = math.sqrt(self.var[j]) + 1e-9 * (1.0 + abs(self.level[j]))
            z.append((v - self.level[j]) / sc)
        p = []
        for j, zj in enumerate(z):
            dof = max(min(self.learned[j], 2.0 / self.alpha) - 1.0, 1.0)
            p.append(min(1.0, 2.0 * float(stats.t.sf(abs(zj), dof))))
        p_all = min(1.0, len(z) * min(p))
        for j, zj in enumerate(z):  # rows of these tests open no alert: every one is learnt
            sc = math.sqrt(self.var[j]) + 1e-9 * (1.0 + abs(self.level[j]))
            az = abs(zj)
            w = (self.c / az) ** 2 if az > self.c else 1.0
            rho = self.c ** 4 / az ** 2 if az > self.c else zj * zj
            self.level[j] += self.alpha * w * (y[j] - self.level[j])
            self.var[j] += self.alpha * (rho * sc * sc / self.kappa - self.var[j])
            self.learned[j] += 1
        return z, p_all


def test_scores_match_a_plain_python_loop() -> None:
    x = rows(200, seed=1)
    x[150:153, COLS.index("y.kurtosis")] += 0.2  # a few rows beyond huber_c: the down-weighting runs
    d = CalibratedWindowDetector(COLS)
    ref = SlowReference(COLS)
    for r in x:
        d.score_learn(r)
        z, p = ref.step(r.tolist())
        assert not d.alert
        np.testing.assert_allclose(d.z, z, rtol=1e-9, atol=1e-9)
        assert d.p == pytest.approx(p, rel=1e-7, abs=1e-300)
    np.testing.assert_allclose(d.level, ref.level, rtol=1e-12)
    np.testing.assert_allclose(d.var, ref.var, rtol=1e-9)


@pytest.mark.parametrize("dof", [1.0, 4.0, 19.0, 200.0, 1199.0])
def test_student_tail_matches_scipy(dof: float) -> None:
    z = np.array([-40.0, -5.0, -1.0, 0.0, 0.3, 2.0, 4.4, 9.0, 1e6])
    want = np.minimum(1.0, 2.0 * stats.t.sf(np.abs(z), dof))
    np.testing.assert_allclose(student_sf2(z, np.full(z.size, dof)), want, rtol=1e-10, atol=1e-300)


def test_the_tail_is_wider_while_the_scale_is_young() -> None:
    d = CalibratedWindowDetector(COLS)
    run(d, rows(20))
    young = float(d.tail(np.array([5.0] * len(COLS)))[0])
    run(d, rows(1000, seed=2))
    old = float(d.tail(np.array([5.0] * len(COLS)))[0])
    assert young > 10 * old
    assert old == pytest.approx(math.erfc(5.0 / math.sqrt(2.0)), rel=0.3)


# ---- the load factor and transitions ---------------------------------------------------------------------

def test_load_factor_is_the_median_log_rms_offset() -> None:
    d = CalibratedWindowDetector(COLS)
    x = rows(60)
    run(d, x)
    r = x[-1].copy()
    idx = [COLS.index(f"{c}.rms") for c in "xyz"]
    r[idx] = r[idx] * np.array([1.3, 1.1, 1.2])
    y = d.transform(r)
    want = statistics.median(float(y[i] - d.level[i]) for i in idx)
    assert d.load_factor(y) == pytest.approx(want)


def test_a_load_change_with_its_temperature_is_a_change_event_not_an_alert() -> None:
    n = 200
    step = np.r_[np.zeros(80), np.linspace(0, 1, 30), np.ones(n - 110)]
    x = rows(n, seed=3, gain=1.0 + 0.2 * step, temp=2.0 * step)  # vibration +20 %, temperature +2 degC
    d = CalibratedWindowDetector(COLS)
    trans = []
    for r in x:
        d.score_learn(r)
        assert not d.alert
        trans.append(d.transition)
    assert d.changes == 1
    assert any(trans[80:120]) and not any(trans[:80]) and not trans[-1]
    # the temperature was re-baselined at its new level
    assert d.level[COLS.index("temperature.mean")] == pytest.approx(52.0, abs=0.1)


def test_without_the_load_factor_the_same_change_alerts() -> None:
    n = 200
    step = np.r_[np.zeros(80), np.linspace(0, 1, 30), np.ones(n - 110)]
    x = rows(n, seed=3, gain=1.0 + 0.2 * step, temp=2.0 * step)
    keep = [i for i, c in enumerate(COLS) if not c.startswith(("y.", "z."))]  # one vibration channel
    d = CalibratedWindowDetector([COLS[i] for i in keep])  # no common mode: g is 0
    x = x[:, keep]
    _, alert = run(d, x)
    assert alert.any()


def test_temperature_drift_at_a_steady_load_alerts() -> None:
    n = 200
    x = rows(n, seed=4, temp=np.r_[np.zeros(100), 0.075 * np.arange(1, n - 99)])
    d = CalibratedWindowDetector(COLS)
    _, alert = run(d, x)
    assert not alert[:100].any()
    first = int(np.argmax(alert))
    assert alert.any() and 100 < first < 125
    assert d.changes == 0


def test_one_channel_scaled_is_not_the_load() -> None:
    x = rows(150, seed=5)
    x[100:, COLS.index("x.rms")] *= 1.25
    x[100:, COLS.index("x.std")] *= 1.25
    d = CalibratedWindowDetector(COLS)
    _, alert = run(d, x)
    assert not alert[:100].any() and alert[100:].any()


# ---- persistence ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("length,opens", [(5, False), (7, False), (12, True)])
def test_an_energy_excursion_opens_only_when_it_lasts(length: int, opens: bool) -> None:
    x = rows(150, seed=6)
    for f in ("std", "rms", "p2p"):
        x[100:100 + length, COLS.index(f"y.{f}")] *= 2.5  # broadband noise on one channel
    x[100:100 + length, COLS.index("y.zcr")] += 0.1
    d = CalibratedWindowDetector(COLS)
    _, alert = run(d, x)
    assert not alert[:100].any()
    assert alert.any() == opens


def test_a_shape_change_opens_after_shape_after_windows() -> None:
    x = rows(150, seed=7)
    x[100:104, COLS.index("z.kurtosis")] += 1.0  # impulsive: 20 of its sigmas, the amplitude barely moves
    x[100:104, COLS.index("z.crest")] += 2.0
    d = CalibratedWindowDetector(COLS)
    _, alert = run(d, x)
    assert not alert[:102].any() and alert[102]


def test_intermittent_shape_evidence_opens_at_3_of_6_windows() -> None:
    x = rows(150, seed=12)
    for i in (100, 102, 105):  # alarm, quiet, alarm, quiet, quiet, alarm
        x[i, COLS.index("y.kurtosis")] += 1.0
    d = CalibratedWindowDetector(COLS)
    _, alert = run(d, x)
    assert not alert[:105].any() and alert[105]
    e = CalibratedWindowDetector(COLS)
    y = rows(150, seed=12)
    for i in (100, 103, 106):  # 3 alarms, never 3 within 6 windows
        y[i, COLS.index("y.kurtosis")] += 1.0
    assert not run(e, y)[1].any()


def test_a_shape_change_with_a_larger_energy_change_waits_like_one() -> None:
    x = rows(150, seed=7)
    x[100:104, COLS.index("z.kurtosis")] += 1.0
    for f in ("std", "rms"):
        x[100:104, COLS.index(f"z.{f}")] *= 3.0  # the energy moved more than the shape, in its own scales
    d = CalibratedWindowDetector(COLS)
    _, alert = run(d, x)
    assert not alert.any()


def test_an_alert_closes_after_close_after_quiet_windows() -> None:
    x = rows(200, seed=8)
    x[100:120, COLS.index("x.kurtosis")] += 1.0
    d = CalibratedWindowDetector(COLS)
    p, alert = run(d, x)
    assert alert[110] and not alert[140:].any()
    closed = int(np.argmin(alert[102:])) + 102  # the first row with the alert closed
    assert closed >= 121  # at least close_after (2) quiet windows after the last of the 20
    assert (p[closed - 1:closed + 1] >= d.close_risk).all()
    assert p[closed - 2] < d.close_risk or closed == 121


def test_missing_values_are_neither_scored_nor_learnt() -> None:
    x = rows(100, seed=9)
    x[40:60, COLS.index("temperature.mean")] = np.nan
    d = CalibratedWindowDetector(COLS)
    p, alert = run(d, x)
    assert np.isfinite(p).all() and not alert.any()
    e = CalibratedWindowDetector(COLS)
    e.score_learn(np.full(len(COLS), np.nan))
    assert e.p == 1.0


def test_explanations_name_the_feature_with_its_band() -> None:
    x = rows(150, seed=10)
    x[100:, COLS.index("y.kurtosis")] += 1.0
    d = CalibratedWindowDetector(COLS)
    run(d, x[:104])
    top = d.explain(x[103], 2)
    assert top[0]["feature"] == "y.kurtosis" and top[0]["z"] > 10
    assert top[0]["baseline_low"] < 2.9 < top[0]["baseline_high"] < x[103, COLS.index("y.kurtosis")]


def test_an_imbalance_is_explained_before_and_after_the_load_factor() -> None:
    x = rows(150, seed=11)
    for c in "xy":  # radial channels up, the axial one not
        for f in ("std", "rms"):
            x[100:, COLS.index(f"{c}.{f}")] *= 1.3
    d = CalibratedWindowDetector(COLS)
    run(d, x[:110])
    ex = {e["feature"]: e for e in d.explain(x[109], 6)}
    assert ex["z.rms"]["z"] < -5 and abs(ex["z.rms"]["z_before_load"]) < 5  # low only against the load
    assert ex["z.rms"]["load_factor"] == pytest.approx(1.3, rel=0.05)
    assert "x.kurtosis" not in ex or "z_before_load" not in ex["x.kurtosis"]
    row = d.transform(x[109])
    sc = d.scale()
    i = COLS.index("x.rms")
    assert (row[i] - d.level[i]) / sc[i] > 10  # x.rms itself, before the load factor, is far up


def test_a_pickled_detector_resumes_bit_for_bit() -> None:
    import pickle

    n = 300
    step = np.r_[np.zeros(150), np.linspace(0, 1, 30), np.ones(n - 180)]
    x = rows(n, seed=13, gain=1.0 + 0.2 * step, temp=2.0 * step)  # a transition in the second half
    x[250:, COLS.index("z.kurtosis")] += 1.0
    a = CalibratedWindowDetector(COLS)
    sa = [a.score_learn(r) for r in x]
    b = CalibratedWindowDetector(COLS)
    sb = [b.score_learn(r) for r in x[:160]]
    b = pickle.loads(pickle.dumps(b))
    sb += [b.score_learn(r) for r in x[160:]]
    assert sa == sb and a.alert == b.alert and a.changes == b.changes == 1


def test_detectors_of_the_same_columns_share_their_fixed_arrays_read_only() -> None:
    """The arrays fixed by the columns and settings (index arrays, masks, multipliers) are one read-only
    array for every detector holding equal ones (3 KB an asset of a site), again after a resume; another
    column set or shape-feature set has its own; sharing changes no score."""
    import pickle

    from aiotstream.models.window import _CONFIG_ARRAYS

    x = rows(200, seed=3, gain=1.0 + 0.3 * (np.arange(200) > 120))
    a, b = CalibratedWindowDetector(COLS), CalibratedWindowDetector(list(COLS))
    other = CalibratedWindowDetector(COLS[:-2])  # (no temperature columns)
    fewer = CalibratedWindowDetector(COLS, shape_features=frozenset({"crest"}))
    for name in _CONFIG_ARRAYS:
        va, vb = getattr(a, name), getattr(b, name)
        assert va is vb and not va.flags.writeable, name
        if va.size:
            with pytest.raises(ValueError, match="read-only"):
                va[...] = va
    assert a.shape is not fewer.shape and a.shape.sum() > fewer.shape.sum()
    assert a.rms_idx is other.rms_idx and a.g_mult is not other.g_mult  # (equal values share; others not)
    sa = [a.score_learn(r) for r in x[:100]]
    c = pickle.loads(pickle.dumps(a))
    assert all(getattr(c, name) is getattr(b, name) for name in _CONFIG_ARRAYS)
    sa += [a.score_learn(r) for r in x[100:]]
    sc = [c.score_learn(r) for r in x[100:]]
    own = CalibratedWindowDetector(COLS)
    for name in _CONFIG_ARRAYS:  # (a detector with private, writeable copies: the code before)
        setattr(own, name, np.array(getattr(own, name)))
    so = [own.score_learn(r) for r in x]
    assert sa == so and sa[100:] == sc and a.alert == own.alert == c.alert


def test_it_is_the_flow_default() -> None:
    assert default_site(1).model.kind == "calibrated"
    assert isinstance(make_detector("calibrated", COLS), CalibratedWindowDetector)


# ---- the scalar detector during a load change -------------------------------------------------------------

IMPLS = ["python"] + (["compiled"] if _compiled is not None else [])


@pytest.mark.parametrize("impl", IMPLS)
def test_relevel_rebaselines_at_the_smoothed_value_and_closes_the_alert(impl: str) -> None:
    rng = np.random.default_rng(0)
    x = 20.0 + 0.1 * rng.standard_normal((400, 1))
    x[350:] += 3.0
    det = make_pipeline("default", 1, impl=impl)
    b = det.update_block(x)
    assert b.alert[-1]
    events = det.relevel()
    assert [e.channel for e in events] == [0]
    assert det.baseline.level[0] == pytest.approx(det.baseline.fast[0])
    assert not det.hyst.is_open
    after = det.update_block(23.0 + 0.1 * rng.standard_normal((50, 1)))
    assert not after.alert.any()


def test_relevel_gives_the_same_state_in_both_impls() -> None:
    if _compiled is None:
        pytest.skip("aiotstream._streaming is not built: python setup.py build_ext --inplace")
    rng = np.random.default_rng(1)
    x = 20.0 + 0.1 * rng.standard_normal((500, 2))
    x[300:, 0] += 3.0
    a, b = make_pipeline("default", 2, impl="python"), make_pipeline("default", 2, impl="compiled")
    ra = [a.update_block(x[:320])]
    rb = [b.update_block(x[:320])]
    a.relevel(), b.relevel()
    ra.append(a.update_block(x[320:]))
    rb.append(b.update_block(x[320:]))
    for u, v in zip(ra, rb):
        np.testing.assert_array_equal(u.alert, v.alert)
        np.testing.assert_allclose(u.p, v.p, rtol=1e-12)
    np.testing.assert_allclose(a.baseline.level, b.baseline.level, rtol=1e-12)


def _scorer(n: int = 400) -> tuple[ScalarScorer, np.ndarray, list[tuple[int, float]]]:
    sc = ScalarScorer(ScalarConfig(block_s=0))
    rng = np.random.default_rng(2)
    ts = (np.arange(n) * 1_000_000_000).astype(np.int64)
    v = 50.0 + 0.05 * rng.standard_normal(n)
    v[300:330] += np.linspace(0, 2.0, 30)  # a load change's temperature ramp
    v[330:] += 2.0
    return sc, ts, list(zip(ts.tolist(), v.tolist()))


def _feed(sc: ScalarScorer, data: list[tuple[int, float]], upto: int) -> list:
    for i, (t, val) in enumerate(data):
        if t < upto:
            sc.add(t, "temperature", val, ("demo.readings", 0, i))
    return sc.step(upto, force=True)


def test_the_scalar_detector_alerts_on_the_ramp_without_a_hold() -> None:
    sc, ts, data = _scorer()
    blocks = _feed(sc, data, int(ts[-1]) + 1)
    assert any(b.result.alert.any() for b in blocks)


def test_the_scalar_detector_is_held_during_a_load_change_and_relevelled_at_its_end() -> None:
    sc, ts, data = _scorer()
    s = 1_000_000_000
    out = _feed(sc, data, 300 * s)
    # the window detector sees the load move in the window ending at 306 s, before the rows up to it are
    # scored (the flow's order); the hold reaches back its settle windows (rows already scored stay scored)
    sc.condition(True, 306 * s, 295 * s)
    out += _feed(sc, data, 345 * s)
    sc.condition(False, 345 * s, 0)  # settled
    out += _feed(sc, data, int(ts[-1]) + 1)
    alert = np.concatenate([b.result.alert for b in out])
    times = np.concatenate([b.ts for b in out])
    assert not alert.any(), times[alert]
    changes = [e for b in out for e in b.resets]
    assert len(changes) == 1 and changes[0].new_level == pytest.approx(52.0, abs=0.2)
    assert all(b.spans for b in out)  # both parts of the block split at the change's end name their inputs
    assert not sc.holds  # done with
    # the detector itself was re-baselined: a later drift still alerts
    later = [(int(ts[-1]) + (k + 1) * s, 52.0 + 0.05 * k) for k in range(60)]
    blocks = _feed(sc, later, later[-1][0] + 1)
    assert any(b.result.alert.any() for b in blocks)


def test_a_block_is_split_where_the_change_ends_and_both_parts_name_their_inputs() -> None:
    sc, ts, data = _scorer()
    s = 1_000_000_000
    sc.condition(True, 306 * s, 295 * s)
    sc.condition(False, 345 * s, 0)
    out = _feed(sc, data, int(ts[-1]) + 1)  # one block over all the rows: split at 345 s
    assert len(out) >= 2 and int(out[-1].ts[0]) == 345 * s
    assert not np.concatenate([b.result.alert for b in out]).any()
    assert all(b.spans for b in out)  # the second part had none before (its record failed the schema)
    assert len(out[-1].resets) == 1


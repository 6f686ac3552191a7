"""aiotstream.models.streaming against slow references (plain loops, batch numpy, scipy) and SKAB."""
from __future__ import annotations

import dataclasses
import itertools
import math
import pickle

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from aiotstream.models import streaming as S

SMALL = S.DetectorConfig(warmup=5, halflife=50.0, accept=10_000, spot_init=20, spot_refit=5,
                         spot_window=200, refresh=3)


# ---------------------------------------------------------------------------------------------------
# robust baseline


def _baseline_reference(x: np.ndarray, cfg: S.DetectorConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The baseline's equations, one channel and one row at a time in plain Python floats."""
    rows, n = x.shape
    alpha = 1.0 - 0.5 ** (1.0 / cfg.halflife)
    kappa = S._scale_consistency(cfg.huber_c)
    c = cfg.huber_c
    zs = np.zeros((rows, n))
    levels, varis = np.zeros(n), np.zeros(n)
    for j in range(n):
        count, level, m2, var, fast = 0, 0.0, 0.0, 0.0, 0.0
        for t in range(rows):
            v = float(x[t, j])
            if not math.isfinite(v):
                continue
            if count < cfg.warmup:
                count += 1
                d = v - level
                level += d / count
                m2 += d * (v - level)
                if count == cfg.warmup:
                    var = m2 / (cfg.warmup - 1)
                    fast = level
                continue
            count += 1
            s = max(math.sqrt(var), 1e-9 * (1.0 + abs(level)))
            fast += cfg.smooth * (v - fast)
            d = fast - level
            z = d / s
            zs[t, j] = z
            az = abs(z)
            w = (c / az) ** 2 if az > c else 1.0
            rho = c ** 4 / az ** 2 if az > c else z * z
            level += alpha * w * d
            a_s = max(alpha, 1.0 / (count - cfg.warmup + 1.0))
            var += a_s * (rho * s * s / kappa - var)
        levels[j], varis[j] = level, (var if count >= cfg.warmup else m2)
    return zs, levels, varis


def test_scale_consistency_matches_scipy_quad() -> None:
    c = 3.0
    ref = 2 * (integrate.quad(lambda z: z * z * stats.norm.pdf(z), 0, c)[0]
               + integrate.quad(lambda z: c ** 4 / (z * z) * stats.norm.pdf(z), c, np.inf)[0])
    assert S._scale_consistency(c) == pytest.approx(ref, rel=1e-6)


def test_baseline_matches_plain_python_reference_with_outliers_and_missing_values() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 3)) * [1.0, 5.0, 0.01] + [10.0, -3.0, 0.0]
    x[300:340, 0] += 8.0                      # a fault: down-weighted rows
    x[rng.random(x.shape) < 0.05] = np.nan    # missing values
    x[100, 1] = np.inf
    base = S.RobustBaseline(3, SMALL)
    got = np.array([base.update(r)[0] for r in x])
    ref_z, ref_level, ref_var = _baseline_reference(x, SMALL)
    np.testing.assert_allclose(got, ref_z, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(base.level, ref_level, rtol=1e-9)
    np.testing.assert_allclose(base.var, ref_var, rtol=1e-9)


def test_baseline_scale_is_the_standard_deviation_of_the_ewma_chart_on_white_noise() -> None:
    cfg = S.DetectorConfig(warmup=30, halflife=2000.0)
    rng = np.random.default_rng(2)
    base = S.RobustBaseline(1, cfg)
    for v in rng.normal(5.0, 2.0, size=20_000):
        base.update(np.array([v]))
    lam = cfg.smooth
    expect = 2.0 * math.sqrt(lam / (2.0 - lam))  # sd of an EWMA of iid noise of sd 2
    assert base.scale()[0] == pytest.approx(expect, rel=0.1)
    assert base.level[0] == pytest.approx(5.0, abs=0.1)


def test_baseline_rebaselines_after_a_persistent_shift_and_emits_one_change_event() -> None:
    cfg = S.DetectorConfig(warmup=20, halflife=500.0, accept=150)
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 1.0, size=1500)
    x[500:] += 20.0  # e.g. a maintenance reset: a new level for good
    base = S.RobustBaseline(1, cfg)
    zs, events = [], []
    for i, v in enumerate(x):
        z, ev = base.update(np.array([v]))
        zs.append(z[0])
        events += [(i, e) for e in ev]
    zs = np.abs(np.array(zs))
    assert len(events) == 1
    row, ev = events[0]
    assert 500 + cfg.accept - 5 <= row <= 500 + cfg.accept + 20
    assert ev.channel == 0 and abs(ev.old_level) < 3.0 and ev.new_level == pytest.approx(20.0, abs=2.0)
    assert np.median(zs[510:row]) > 5.0          # the shift is seen while it is new
    assert np.percentile(zs[row + 100:], 99) < 5.0  # and is normal afterwards: no freeze


def test_baseline_constant_channel_and_missing_channel() -> None:
    base = S.RobustBaseline(2, SMALL)
    for _ in range(50):
        z, _ = base.update(np.array([7.0, np.nan]))
        assert np.all(np.isfinite(z)) and z[1] == 0.0
    z, _ = base.update(np.array([7.5, np.nan]))  # a constant channel moves: very far, but finite
    assert np.isfinite(z[0]) and abs(z[0]) > 1e3
    assert base.count[1] == 0


def test_missing_values_in_one_channel_leave_the_others_untouched() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 2))
    holes = x.copy()
    holes[rng.random(400) < 0.3, 0] = np.nan
    a, b = S.RobustBaseline(2, SMALL), S.RobustBaseline(2, SMALL)
    za = np.array([a.update(r)[0] for r in x])
    zb = np.array([b.update(r)[0] for r in holes])
    np.testing.assert_array_equal(za[:, 1], zb[:, 1])
    # channel 0 with holes = channel 0 fed only its present rows
    c = S.RobustBaseline(1, SMALL)
    keep = np.isfinite(holes[:, 0])
    zc = np.array([c.update(np.array([v]))[0][0] for v in holes[keep, 0]])
    np.testing.assert_allclose(zb[keep, 0], zc, rtol=1e-12)


# ---------------------------------------------------------------------------------------------------
# multivariate


def test_multivariate_matches_batch_covariance_and_pca_reference() -> None:
    cfg = S.DetectorConfig(warmup=10, halflife=40.0, refresh=7, huber_c=1e6)  # no down-weighting
    rng = np.random.default_rng(5)
    mix = rng.normal(size=(4, 4))
    e = rng.normal(size=(200, 4)) @ mix
    mv = S.MultivariateDetector(4, cfg)
    n_last = 10 + 7 * 20  # a refresh happens after this row
    for r in e[:n_last]:
        mv.update(r)
    alpha = 1.0 - 0.5 ** (1.0 / cfg.halflife)
    w = cfg.warmup
    c = np.mean([np.outer(r, r) for r in e[:w]], axis=0)
    for t in range(w, n_last):
        c = (1 - alpha) * c + alpha * np.outer(e[t], e[t])
    # the same, in closed form: sum of geometric weights
    weights = alpha * (1 - alpha) ** np.arange(n_last - w - 1, -1, -1)
    c_closed = (1 - alpha) ** (n_last - w) * np.mean([np.outer(r, r) for r in e[:w]], axis=0) + np.einsum(
        "t,ti,tj->ij", weights, e[w:n_last], e[w:n_last])
    np.testing.assert_allclose(c, c_closed, rtol=1e-10)
    np.testing.assert_allclose(mv.cov, c, rtol=1e-10)
    lam = max(cfg.shrink_min, 4 / (min(n_last, 1 / alpha) + 4))
    s = (1 - lam) * c + lam * np.diag(np.diag(c))
    s = s + 1e-9 * np.trace(s) / 4 * np.eye(4)
    vals, vecs = np.linalg.eigh(s)
    vals, vecs = vals[::-1], vecs[:, ::-1]
    k = int(np.searchsorted(np.cumsum(vals) / vals.sum(), cfg.explained) + 1)
    k = min(k, 3)
    x = e[n_last]
    y = vecs[:, :k].T @ x
    t2_ref = float(np.sum(y * y / vals[:k])) / k
    q_ref = float(x @ x - y @ y) / float(np.sum(vals[k:]))
    t2, q = mv.update(x)
    assert t2 == pytest.approx(t2_ref, rel=1e-8)
    assert q == pytest.approx(q_ref, rel=1e-8)


def test_multivariate_q_sees_a_broken_correlation_that_no_channel_sees() -> None:
    cfg = S.DetectorConfig(warmup=30, halflife=500.0)
    rng = np.random.default_rng(6)
    a = rng.normal(size=3000)
    e = np.c_[a, a + 0.05 * rng.normal(size=3000)]
    e[2500:, 1] = -e[2500:, 0]  # same marginals, sign of the correlation flipped
    mv = S.MultivariateDetector(2, cfg)
    q = np.array([mv.update(r)[1] for r in e])
    assert np.median(q[2500:2600]) > 20 * np.median(q[1000:2500])


# ---------------------------------------------------------------------------------------------------
# extreme value theory


def _gpd_loglik(y: np.ndarray, xi: float, sigma: float) -> float:
    return float(np.sum(stats.genpareto.logpdf(y, xi, loc=0, scale=sigma)))


@pytest.mark.parametrize("xi_true", [0.0, 0.15, 0.4])
def test_fit_gpd_is_the_maximum_likelihood_fit_of_scipy(xi_true: float) -> None:
    y = stats.genpareto.rvs(xi_true, scale=2.0, size=3000, random_state=np.random.default_rng(7))
    xi, sigma = S.fit_gpd(y)
    c_ref, _, s_ref = stats.genpareto.fit(y, floc=0)
    assert xi == pytest.approx(c_ref, abs=0.02)
    assert sigma == pytest.approx(s_ref, rel=0.03)
    # and at least as likely as scipy's optimum (both are MLEs of the same likelihood)
    assert _gpd_loglik(y, xi, sigma) >= _gpd_loglik(y, c_ref, s_ref) - 0.05
    q = 1e-3
    assert stats.genpareto.isf(q, xi, scale=sigma) == pytest.approx(
        stats.genpareto.isf(q, c_ref, scale=s_ref), rel=0.05)


def test_fit_gpd_bounded_below_gives_an_exponential_for_a_light_tail() -> None:
    y = np.random.default_rng(8).uniform(0, 1, size=2000)  # xi = -1: bounded
    xi, sigma = S.fit_gpd(y, xi_min=0.0)
    assert xi == pytest.approx(0.0, abs=0.02)
    assert sigma > 0


def test_gpd_sf_matches_scipy() -> None:
    y = np.linspace(0, 20, 50)
    for xi in (-0.3, 0.0, 0.5):
        np.testing.assert_allclose(S.gpd_sf(y, xi, 1.7), stats.genpareto.sf(y, xi, scale=1.7), atol=1e-12)


def test_spot_tail_probability_is_calibrated_on_a_known_distribution() -> None:
    cfg = S.DetectorConfig(spot_init=1000, spot_window=5000, spot_refit=100, risk=1e-3)
    spot = S.SpotCalibrator(cfg)
    rng = np.random.default_rng(9)
    x = rng.standard_exponential(40_000)  # P(X > v) = exp(-v)
    p = np.array([spot.update(v) for v in x])
    for v in (5.0, 7.0, 9.0):
        assert spot.tail(v) == pytest.approx(math.exp(-v), rel=0.5)
    alarms = np.mean(p[5000:] < cfg.risk)  # the false-alarm rate the user asked for
    assert 0.4 * cfg.risk < alarms < 2.5 * cfg.risk
    assert spot.tail(spot.quantile(1e-4)) == pytest.approx(1e-4, rel=1e-6)


# ---------------------------------------------------------------------------------------------------
# hysteresis and the detector


def test_hysteresis_opens_after_k_and_closes_after_m() -> None:
    h = S.Hysteresis(open_after=3, close_after=2)
    seq = [1, 1, 0, 1, 1, 1, 0, 1, 0, 0, 0]
    got = [h.update(bool(a)) for a in seq]
    assert got == [False, False, False, False, False, True, True, True, True, False, False]


def test_detector_alerts_on_a_step_fault_and_explains_it_by_the_channel() -> None:
    rng = np.random.default_rng(10)
    n = 3000
    base = rng.normal(size=(n, 3))
    x = np.c_[base[:, 0], base[:, 0] + 0.1 * base[:, 1], 50 + base[:, 2]]
    x[2000:2300, 2] += 6.0
    det = S.make_pipeline("default", 3)
    res = [det.update(r) for r in x]
    alert = np.array([r.alert for r in res])
    assert not alert[:2000].any()
    assert alert[2000:2300].mean() > 0.8
    first = 2000 + int(np.argmax(alert[2000:]))
    assert int(np.argmax(np.abs(res[first].z))) == 2
    name, z, p = res[first].explain(["a", "b", "c"])[0]
    assert name == "c" and z > 4 and p < 1e-4


finite_rows = st.integers(1, 4).flatmap(lambda c: st.lists(
    st.lists(st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                       st.sampled_from([0.0, 1.0, -1.0, 1e-300, 1e300])), min_size=c, max_size=c),
    min_size=1, max_size=80))


@settings(max_examples=150, deadline=None)
@given(rows=finite_rows, constant=st.booleans())
def test_score_is_a_finite_probability_for_any_finite_input(rows: list[list[float]], constant: bool) -> None:
    x = np.array(rows, dtype=np.float64)
    if constant:
        x[:, 0] = 3.0
    det = S.StreamingDetector(x.shape[1], SMALL)
    for r in x:
        out = det.update(r)
        assert 0.0 <= out.score <= 1.0 and math.isfinite(out.score)
        assert np.all(np.isfinite(out.z))
    assert np.all(np.isfinite(det.baseline.level)) and np.all(np.isfinite(det.baseline.var))


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.lists(st.one_of(st.floats(-1e3, 1e3), st.just(math.nan), st.just(math.inf)),
                              min_size=2, max_size=2), min_size=1, max_size=60))
def test_missing_values_never_break_the_score(rows: list[list[float]]) -> None:
    det = S.StreamingDetector(2, SMALL)
    for r in rows:
        out = det.update(np.array(r))
        assert 0.0 <= out.score <= 1.0


# ---------------------------------------------------------------------------------------------------
# SKAB end to end (the data is not part of the project)


def _skab_root():
    from benchmarks import skab

    root = skab.data_dir(None)
    return skab, root if (root / "valve1" / "8.csv").is_file() else None


def test_skab_file_end_to_end() -> None:
    skab, root = _skab_root()
    if root is None:
        pytest.skip("SKAB data missing: ../shared/datasets/skab (see benchmarks/skab.py)")
    f = skab.load_file(root / "valve1" / "8.csv", "valve1/8")
    score, alert = S.make_pipeline("default", f.x.shape[1]).run(f.x)
    assert np.all((score >= 0) & (score <= 1))
    seg = skab.segments(f.anomaly)
    assert len(seg) == 1
    s, e = seg[0]
    assert alert[s:e].mean() > 0.5                 # the fault is alerted for most of its length
    assert alert[:s].mean() < 0.05                 # and the normal part before it is quiet
    assert skab.binary_metrics(skab.confusion(f.anomaly, alert))["f1"] > 0.7


def test_skab_metric_code_reproduces_the_published_t2_baseline() -> None:
    skab, root = _skab_root()
    if root is None:
        pytest.skip("SKAB data missing: ../shared/datasets/skab (see benchmarks/skab.py)")
    on = {"tp": 0, "tn": 0, "fp": 0, "fn": 0}
    lb = dict(on)
    for path in skab.experiment_files(root):
        f = skab.load_file(path)
        _, alert = skab.T2Offline(8).run(f.x)
        for k, v in skab.confusion(f.anomaly, alert).items():
            on[k] += v
        for k, v in skab.confusion(f.anomaly[400:], alert[400:]).items():
            lb[k] += v
    m = skab.binary_metrics(lb)  # SKAB README: T-squared F1 0.66, FAR 19.21 %, MAR 42.6 %
    assert round(m["f1"], 2) == 0.66 and abs(m["far"] - 19.21) < 0.05 and abs(m["mar"] - 42.6) < 0.05
    m = skab.binary_metrics(on)  # the older all-rows notebook output: 0.65, 8.71 %, 43.9 %
    assert round(m["f1"], 2) == 0.65 and abs(m["far"] - 8.71) < 0.05 and abs(m["mar"] - 43.9) < 0.05


def test_binary_metrics_formulas() -> None:
    from benchmarks import skab

    c = skab.confusion(np.array([1, 1, 1, 0, 0, 0, 0, 1]), np.array([1, 0, 1, 1, 0, 0, 0, 0]))
    assert c == {"tp": 2, "tn": 3, "fp": 1, "fn": 2}
    m = skab.binary_metrics(c)
    assert m["f1"] == pytest.approx(2 / (2 + 1.5))
    assert m["far"] == pytest.approx(25.0) and m["mar"] == pytest.approx(50.0)


def test_spot_bank_equals_independent_calibrators() -> None:
    cfg = S.DetectorConfig(spot_init=50, spot_window=300, spot_refit=10, risk=1e-3)
    rng = np.random.default_rng(11)
    x = np.abs(rng.standard_t(4, size=(2000, 3))) * [1.0, 3.0, 0.1]
    x[1500:1520, 1] += 100.0  # alarms: not learned
    bank = S.SpotBank(3, cfg)
    singles = [S.SpotCalibrator(cfg) for _ in range(3)]
    for t, row in enumerate(x):
        learn = not (1700 <= t < 1710)  # an open alert: nothing learned
        got = bank.update(row, learn)
        ref = [sp.update(float(v), learn) for sp, v in zip(singles, row, strict=True)]
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-300)
    assert np.all(np.isfinite(bank.t))


def test_skab_harness_cli_on_a_small_synthetic_checkout(tmp_path, capsys) -> None:
    """The harness end to end without the real data: SKAB's CSV layout, made up numbers."""
    import json

    from benchmarks import skab

    rng = np.random.default_rng(12)
    header = "datetime;" + ";".join(skab.CHANNELS) + ";anomaly;changepoint\n"
    t0 = np.datetime64("2020-03-09T10:00:00")

    def write(path, n, fault):
        x = rng.normal(size=(n, 8)) + 10.0
        y = np.zeros(n)
        if fault:
            x[fault[0]:fault[1], 3] += 8.0
            y[fault[0]:fault[1]] = 1.0
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [f"{str(t0 + np.timedelta64(i, 's')).replace('T', ' ')};" + ";".join(f"{v:.6f}" for v in x[i])
                + f";{y[i]:.1f};0.0\n" for i in range(n)]
        path.write_text(header + "".join(rows))

    for g in skab.GROUPS:
        write(tmp_path / "data" / g / "0.csv", 900, (600, 750))
    write(tmp_path / "data" / "anomaly-free" / "anomaly-free.csv", 1500, None)
    out = tmp_path / "out.json"
    assert skab.main(["--detector", "streaming", "--data", str(tmp_path), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["files"] == 3 and res["anomaly_free"]["rows"] == 1500
    on = res["online"]
    assert on["tp"] + on["fn"] == 3 * 150 and on["tp"] + on["tn"] + on["fp"] + on["fn"] == 2700
    assert res["events"]["found"] == 3  # an 8-sigma step on one channel is found in every file
    assert set(res["groups"]) == set(skab.GROUPS)  # per group: the three add up to the total
    for k in ("tp", "tn", "fp", "fn"):
        assert sum(res["groups"][g][k] for g in skab.GROUPS) == on[k]
    printed = capsys.readouterr().out
    assert "online, all rows from row 0" in printed and "online, valve2" in printed
    assert skab.main(["--data", str(tmp_path / "nowhere")]) == 2


# ---------------------------------------------------------------------------------------------------
# the compiled per-row update (ext/_streaming.pyx) against its reference, the Python classes above


def _compiled():
    if S._compiled is None:
        pytest.skip("aiotstream._streaming is not built (python setup.py build_ext --inplace)")
    return S._compiled


# p differs from the reference by rounding only (libm's log1p/exp/pow against numpy's SIMD ones,
# in the SPOT fits and tails): a few 1e-16 relative measured on SKAB and on random data
P_TOL = {"rtol": 1e-12, "atol": 1e-15}


def _same(ref: S.BlockResult, got: S.BlockResult, names: list[str] | None = None) -> None:
    np.testing.assert_array_equal(got.alert, ref.alert)
    np.testing.assert_allclose(got.p, ref.p, **P_TOL)
    np.testing.assert_allclose(got.score, ref.score, **P_TOL)
    np.testing.assert_array_equal(got.z, ref.z)  # the baseline rounds exactly as numpy does
    np.testing.assert_allclose(got.channel_p, ref.channel_p, **P_TOL)
    np.testing.assert_array_equal(got.lead, ref.lead)  # the rank test's lead channel
    assert [(e.row, e.channel) for e in got.events] == [(e.row, e.channel) for e in ref.events]
    for a, b in zip(got.events, ref.events, strict=True):
        assert a.old_level == b.old_level and a.new_level == b.new_level
    for row in range(0, len(ref.p), max(1, len(ref.p) // 7)):
        g, r = got.explain(row, names), ref.explain(row, names)
        assert [n for n, _, _ in g] == [n for n, _, _ in r]
        np.testing.assert_allclose([p for _, _, p in g], [p for _, _, p in r], **P_TOL)


# small windows so that warm-up, every refit, PCA refreshes and change events happen within a few
# hundred rows
TINY = S.DetectorConfig(warmup=5, halflife=30.0, accept=25, spot_init=20, spot_refit=5, spot_window=60,
                        refresh=3, open_after=2, close_after=3)


@st.composite
def plant_rows(draw):
    """Rows that look like a plant: noise with level shifts, NaN rows and holes, constant channels."""
    seed = draw(st.integers(0, 2**32 - 1))
    rows = draw(st.integers(1, 300))
    n = draw(st.integers(1, 5))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, n)) * rng.uniform(0.01, 10, n) + rng.uniform(-100, 100, n)
    if rows > 4 and n > 1:
        x[:, 1] += 0.9 * x[:, 0]  # correlated channels
    for _ in range(draw(st.integers(0, 3))):  # level shifts (faults or resets)
        j, t0 = int(rng.integers(n)), int(rng.integers(rows))
        x[t0:t0 + int(rng.integers(1, rows + 1)), j] += rng.normal() * 20 * x[:, j].std()
    if draw(st.booleans()):
        x[:, int(rng.integers(n))] = 3.0  # a constant channel
    if draw(st.booleans()):
        x[rng.random(rows) < 0.05] = np.nan  # whole rows missing
        x[rng.random(x.shape) < 0.05] = np.nan  # holes
        x[rng.random(x.shape) < 0.01] = np.inf
    kind = draw(st.sampled_from(["default", "channels", "multivariate"]))
    return x, kind


@settings(max_examples=60, deadline=None)
@given(data=plant_rows())
def test_compiled_equals_python_reference(data) -> None:
    _compiled()
    x, kind = data
    ref = S.make_pipeline(kind, x.shape[1], TINY, impl="python").update_block(x)
    got = S.make_pipeline(kind, x.shape[1], TINY, impl="compiled").update_block(x)
    _same(ref, got)


@settings(max_examples=60, deadline=None)
@given(data=plant_rows(), cuts=st.lists(st.integers(0, 300), max_size=8))
def test_compiled_blocks_of_any_size_give_the_one_block_result(data, cuts) -> None:
    _compiled()
    x, kind = data
    one = S.make_pipeline(kind, x.shape[1], TINY, impl="compiled").update_block(x)
    det = S.make_pipeline(kind, x.shape[1], TINY, impl="compiled")
    edges = [0, *sorted(c for c in cuts if c <= len(x)), len(x)]
    parts = [det.update_block(x[a:b]) for a, b in itertools.pairwise(edges)]
    for f in ("p", "alert", "z", "channel_p"):
        np.testing.assert_array_equal(np.concatenate([getattr(b, f) for b in parts]), getattr(one, f))
    assert [e for b in parts for e in b.events] == one.events
    # and row by row through update()
    det = S.make_pipeline(kind, x.shape[1], TINY, impl="compiled")
    rows = [det.update(r) for r in x]
    np.testing.assert_array_equal([r.p for r in rows], one.p)
    np.testing.assert_array_equal([r.alert for r in rows], one.alert)


def test_compiled_equals_python_with_default_config_and_change_events() -> None:
    _compiled()
    cfg = S.DetectorConfig(accept=300)
    rng = np.random.default_rng(13)
    x = rng.normal(size=(4000, 4)) + [0.0, 5.0, -2.0, 100.0]
    x[:, 1] += x[:, 0]
    x[1500:, 2] += 15.0  # a reset: re-baselined after `accept` rows
    x[3000:3100, 3] += 6.0  # a fault
    x[rng.random(x.shape) < 0.01] = np.nan
    ref = S.make_pipeline("default", 4, cfg, impl="python").update_block(x)
    got = S.make_pipeline("default", 4, cfg, impl="compiled").update_block(x)
    assert ref.events and ref.alert.any()
    _same(ref, got, ["a", "b", "c", "d"])


def test_compiled_gpd_and_spot_fits_equal_the_reference() -> None:
    C = _compiled()
    rng = np.random.default_rng(14)
    for xi_min in (0.0, -0.5):
        for y in (stats.genpareto.rvs(0.2, scale=2.0, size=400, random_state=rng), rng.uniform(0, 1, 50),
                  rng.standard_exponential(9), np.full(30, 2.5)):
            np.testing.assert_allclose(C.fit_gpd(y, xi_min), S.fit_gpd(y, xi_min), rtol=1e-12)
    cfg = S.DetectorConfig()
    for arr in (np.abs(rng.normal(size=3600)), np.abs(rng.standard_t(3, size=777)), np.full(300, 1.0),
                np.array([4.0])):
        bank = S.SpotBank(1, cfg)
        bank.buf[: len(arr), 0] = arr
        bank.fill[0] = len(arr)
        bank._fit(0)
        ref = (bank.t[0], bank.rate[0], bank.xi[0], bank.sigma[0])
        np.testing.assert_allclose(C.spot_fit(arr, cfg.spot_level, cfg.xi_min), ref, rtol=1e-12)


def test_impl_choice() -> None:
    with pytest.raises(ValueError, match="impl"):
        S.StreamingDetector(2, impl="fortran")
    assert S.StreamingDetector(2, impl="python").impl == "python"
    if S._compiled is not None:
        assert S.StreamingDetector(2).impl == "compiled"  # the default once built


def test_skab_file_compiled_equals_python() -> None:
    _compiled()
    skab, root = _skab_root()
    if root is None:
        pytest.skip("SKAB data missing: ../shared/datasets/skab (see benchmarks/skab.py)")
    f = skab.load_file(root / "valve1" / "8.csv", "valve1/8")
    for kind in ("default", "channels", "multivariate"):
        ref = S.make_pipeline(kind, 8, impl="python").update_block(f.x)
        got = S.make_pipeline(kind, 8, impl="compiled").update_block(f.x)
        _same(ref, got, list(skab.CHANNELS))


@pytest.mark.parametrize("level", [0, 1, 2])
def test_compiled_every_log1p_path_equals_the_reference(level: int) -> None:
    """Scalar libm, AVX2 and AVX-512 libmvec log1p in the GPD fits (each where the CPU and build have it)."""
    C = _compiled()
    if C.set_simd_level(level) != level:
        C.set_simd_level(C.SIMD_LEVEL)
        pytest.skip(f"log1p path {level} not available on this CPU/build (best: {C.SIMD_LEVEL})")
    try:
        rng = np.random.default_rng(15)
        x = rng.normal(size=(1500, 3)) @ rng.normal(size=(3, 3)) + [1.0, 2.0, 3.0]
        x[900:960, 1] += 5.0
        cfg = S.DetectorConfig(spot_init=100, spot_window=400, spot_refit=10)
        ref = S.make_pipeline("default", 3, cfg, impl="python").update_block(x)
        got = S.make_pipeline("default", 3, cfg, impl="compiled").update_block(x)
        _same(ref, got)
        y = stats.genpareto.rvs(0.1, size=1000, random_state=rng)
        np.testing.assert_allclose(C.fit_gpd(y, 0.0), S.fit_gpd(y, 0.0), rtol=1e-12)
    finally:
        C.set_simd_level(C.SIMD_LEVEL)


@pytest.mark.parametrize("impl", ["python", "compiled"])
@pytest.mark.parametrize("n", [1, 3])
def test_a_pickled_detector_goes_on_where_it_stopped(impl: str, n: int) -> None:
    """A snapshot mid-stream (a flow's recovery) and restored: the same results as without it."""
    import pickle

    if impl == "compiled":
        _compiled()
    rng = np.random.default_rng(16)
    x = rng.normal(size=(800, n)) + [0.0, 10.0, -5.0][:n]
    x[600:650, 0] += 6.0
    whole = S.make_pipeline("default", n, TINY, impl=impl).update_block(x)
    det = S.make_pipeline("default", n, TINY, impl=impl)
    first = det.update_block(x[:401])
    det = pickle.loads(pickle.dumps(det))
    if impl == "compiled":  # the state the kernel keeps is in the reference's objects too
        ref = S.make_pipeline("default", n, TINY, impl="python")
        ref.update_block(x[:401])
        assert (det.mv.k, det.mv.q_expect) == (ref.mv.k, ref.mv.q_expect)
        np.testing.assert_array_equal(det.mv.basis, ref.mv.basis)
    rest = det.update_block(x[401:])
    np.testing.assert_array_equal(np.r_[first.p, rest.p], whole.p)
    np.testing.assert_array_equal(np.r_[first.alert, rest.alert], whole.alert)
    assert whole.alert.any()


def test_compiled_quantile_is_numpys_exactly() -> None:
    """The SPOT threshold: np.quantile's value, bit for bit, through both selection paths (the sampled
    bracket and its fallback when the sample is unrepresentative) and with ties."""
    C = _compiled()
    rng = np.random.default_rng(17)
    cases = [rng.normal(size=n) for n in (1, 2, 7, 100, 511, 512, 3600)]
    cases += [rng.integers(0, 4, 2000).astype(float), np.full(1000, 2.5), np.sort(rng.exponential(size=3000))]
    for n in (512, 3600):  # every sampled position holds a top value: the bracket misses
        a = rng.normal(size=n)
        a[(np.arange(64) * n) // 64] = 100.0 + rng.random(64)
        cases.append(a)
    for a in cases:
        for level in (0.1, 0.5, 0.9, 0.999):
            assert C.spot_fit(a, level, 0.0)[0] == np.quantile(a, level)


# ---------------------------------------------------------------------------------------------------
# degenerate statistics: a constant statistic is no evidence (it used to pin p below close_risk, so an
# alert, once open, never closed and learning stopped)


def _ar1(rows: int, channels: int, phi: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    eps = rng.normal(size=(rows, channels))
    x = np.empty_like(eps)
    x[0] = eps[0]
    for t in range(1, rows):
        x[t] = phi * x[t - 1] + eps[t]
    return x * rng.uniform(0.1, 10.0, channels) + rng.uniform(-50, 50, channels)


def _openings_closings(alert: np.ndarray) -> tuple[int, int]:
    d = np.diff(np.concatenate([[0], alert.astype(int)]))
    return int((d == 1).sum()), int((d == -1).sum())


@pytest.mark.parametrize("impl", ["python", "compiled"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_single_channel_alerts_close_again(impl: str, seed: int) -> None:
    if impl == "compiled":
        _compiled()
    x = _ar1(6000, 1, 0.9, seed)
    det = S.make_pipeline("default", 1, impl=impl)
    b = det.update_block(x)
    opened, closed = _openings_closings(b.alert)
    assert b.p[1000:].max() >= S.DetectorConfig().close_risk  # p can reach the closing level
    assert closed >= opened - 1  # every alert but possibly one still open at the end closes
    assert b.alert.mean() < 0.05  # stationary noise: alert rows are a small fraction
    assert "q" not in det.use and det.tests == 3  # Q is 0 on every row with one channel (channel, T2, rank)


def test_single_channel_q_alone_is_an_error() -> None:
    with pytest.raises(ValueError, match="2 channels"):
        S.StreamingDetector(1, use=("q",), impl="python")
    assert S.make_pipeline("multivariate", 1, impl="python").use == ("t2",)


@pytest.mark.parametrize("impl", ["python", "compiled"])
@pytest.mark.parametrize("n", [2, 3])
def test_a_constant_channel_among_others_does_not_pin_p(impl: str, n: int) -> None:
    # with 2 channels, one constant, the residual subspace is the constant channel's axis: Q is
    # exactly 0 on every row (as with one channel); its constant |z| is 0 as well
    if impl == "compiled":
        _compiled()
    x = _ar1(6000, n, 0.9, 5)
    x[:, 1] = 7.0  # a constant channel
    live = x[:, 0]
    live[3000:3100] += 8.0 * live[:3000].std()  # a fault: an alert opens in it and closes after it
    b = S.make_pipeline("default", n, impl=impl).update_block(x)
    assert b.alert[3000:3100].any()
    assert not b.alert[3400:].any()
    opened, closed = _openings_closings(b.alert)
    assert closed == opened
    assert b.p[1000:3000].max() >= S.DetectorConfig().close_risk
    assert b.alert.mean() < 0.05
    assert (b.channel_p[:, 1] == 1.0).all()  # the constant channel is never evidence


def test_a_constant_window_gives_no_evidence_for_any_value() -> None:
    cfg = S.DetectorConfig(spot_init=20)
    cal = S.SpotCalibrator(cfg)
    bank = S.SpotBank(2, cfg)
    rng = np.random.default_rng(0)
    for _ in range(20):
        cal.update(0.0)
        bank.update(np.array([0.0, 1.0 + rng.random()]))
    assert cal.calibrated and (cal.rate, cal.xi, cal.sigma) == S.DEGENERATE
    assert (bank.rate[0], bank.xi[0], bank.sigma[0]) == S.DEGENERATE and bank.sigma[1] < math.inf
    for v in (-1.0, 0.0, 1e-12, 5.0, 1e12):
        assert cal.tail(v) == 1.0
        assert bank.tail(np.array([v, 0.0]))[0] == 1.0
    assert cal.quantile(1e-4) == math.inf  # no value is an alarm
    # a window that is not constant any more is fitted again
    for v in np.random.default_rng(1).normal(size=cfg.spot_refit):
        cal.update(abs(float(v)))
    assert cal.sigma < math.inf and cal.tail(1e3) < 1e-6
    if S._compiled is not None:
        for arr in (np.zeros(300), np.full(250, 2.5)):
            assert S._compiled.spot_fit(arr, cfg.spot_level, cfg.xi_min)[1:] == S.DEGENERATE


# ---------------------------------------------------------------------------------------------------
# T-squared's chi-squared floor


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 8, 13, 32])
def test_chi2_sf_matches_scipy_and_the_compiled_twin(k: int) -> None:
    xs = np.r_[0.0, np.geomspace(1e-8, 1400.0, 400)]
    got = np.array([S.chi2_sf(float(x), k) for x in xs])
    ref = stats.chi2.sf(xs, k)
    ok = ref > 1e-280
    np.testing.assert_allclose(got[ok], ref[ok], rtol=1e-11)
    assert np.all(got[~ok] < 1e-270) and S.chi2_sf(-1.0, k) == 1.0 and S.chi2_sf(math.nan, k) == 1.0
    if S._compiled is not None:
        comp = np.array([S._compiled.chi2_sf(float(x), k) for x in xs])
        np.testing.assert_allclose(comp, got, rtol=1e-14, atol=0.0)


def test_a_wandering_level_is_not_a_fault() -> None:
    """One channel, one day at 1 Hz: a Gaussian random walk (a slowly wandering level) under white
    measurement noise. No fault, so at most the issue's 1 alert per asset per day. Before T-squared got
    the chi-squared floor, its SPOT tail, fitted on quiet stretches, made 3 alerts of this day."""
    from benchmarks.streaming_clean import DAY, openings, series

    x = series("walk", DAY, 1, seed=0)
    b = S.StreamingDetector(1).update_block(x)
    assert openings(b.alert) <= 1


def test_q_floor_is_an_upper_bound_of_the_gaussian_tail_of_q() -> None:
    """q_unit against a batch eigendecomposition of the shrunk covariance, and the floor
    P(chi2_{p-k} >= Q / l_max) against the tail of Q simulated for Gaussian rows of that covariance."""
    rng = np.random.default_rng(5)
    p = 6
    mix = rng.normal(size=(p, p)) + 2.0 * np.eye(p)
    mv = S.MultivariateDetector(p, S.DetectorConfig(warmup=5, refresh=1000))
    for r in rng.normal(size=(800, p)) @ mix.T / 3.0:
        mv.update(r)
    mv._refresh()
    n_eff = min(mv.count, 1.0 / mv.alpha)
    lam = max(mv.cfg.shrink_min, p / (n_eff + p))
    s = (1.0 - lam) * mv.cov + lam * np.diag(np.diag(mv.cov))
    s += 1e-9 * np.trace(s) / p * np.eye(p)
    vals, vecs = np.linalg.eigh(s)
    vals, vecs = vals[::-1], vecs[:, ::-1]
    k = mv.k
    assert 0 < k < p
    resid = vals[k:]
    assert mv.q_unit == pytest.approx(resid.sum() / resid.max(), rel=1e-9)
    # Q of Gaussian rows with covariance s: the floor never claims a smaller tail than simulated
    e = rng.multivariate_normal(np.zeros(p), s, size=200_000)
    y = e @ vecs[:, :k]
    q = np.maximum((e * e).sum(axis=1) - (y * y).sum(axis=1), 0.0) / mv.q_expect
    for x in np.quantile(q, [0.9, 0.99, 0.999, 0.9999]):
        assert S.chi2_sf(x * mv.q_unit, p - k) >= np.mean(q >= x) * 0.9  # 0.9: Monte-Carlo error


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_clean_daily_cycle_is_not_a_fault(seed: int) -> None:
    """8 channels with a daily sine cycle (10 noise sigmas, a phase per channel) under white noise,
    3 simulated days at 1 Hz: at most the issue's 1 alert per asset per day. Before the chi-squared
    floors, T-squared's and Q's tails fitted on one part of the cycle made 29-34 alerts of seeds 1, 2."""
    if S._compiled is None:
        pytest.skip("259,200 rows need the compiled kernel (python setup.py build_ext --inplace)")
    from benchmarks.streaming_clean import DAY, openings, series

    x = series("daily", 3 * DAY, 8, seed)
    b = S.StreamingDetector(8, impl="compiled").update_block(x)
    assert openings(b.alert) <= 3


# ---------------------------------------------------------------------------------------------------
# the compiled SPOT re-fit's shortcuts (_streaming.set_fast_fits): bit for bit the work they skip


@st.composite
def spot_windows(draw):
    """Windows a SPOT re-fit sees, and some it should not: |z|-like, heavy tails (xi beyond 1: the grid's
    cut), ties, a tiny spread far from 0 (np.std's bound), a top cluster of near-equal values (np.std's
    floor on sigma binds), constant."""
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.sampled_from([1, 5, 30, 200, 511, 512, 1500, 3600]))
    kind = draw(st.sampled_from(["abs", "pareto", "ties", "far", "cluster", "constant", "exp", "gpd",
                                 "decades"]))
    rng = np.random.default_rng(seed)
    if kind == "abs":
        a = np.abs(rng.normal(size=n)) * rng.uniform(1e-3, 1e3)
    elif kind == "exp":  # xi near 0: the profile flat near theta = 0, its first grid points near ties
        a = rng.exponential(10.0 ** rng.uniform(-6, 6), size=n) + rng.uniform(-1e3, 1e3)
    elif kind == "gpd":  # every shape the bound of a skipped grid point must hold for, beyond 1 too
        a = stats.genpareto.rvs(rng.uniform(-0.4, 1.5), size=n, random_state=rng)
    elif kind == "decades":  # values over 300 decades (the bound's moments of y / max y); the kernel
        a = 10.0 ** rng.uniform(-150, 150, size=n)  # keeps none beyond 1e150 (MAX_ABS): squares stay finite
    elif kind == "pareto":
        a = rng.pareto(rng.uniform(0.2, 3.0), size=n)
    elif kind == "ties":
        a = rng.integers(0, 5, n).astype(float)
    elif kind == "far":
        a = 1e6 + rng.normal(size=n) * 10.0 ** rng.uniform(-9, -3)
    elif kind == "cluster":
        a = rng.uniform(0.0, 1.0, n)
        top = rng.random(n) < rng.uniform(0.12, 0.3)
        a[top] = 1000.0 + 1e-9 * rng.random(int(top.sum()))
    else:
        a = np.full(n, rng.normal())
    level = draw(st.sampled_from([0.5, 0.9, 0.99]))
    xi_min = draw(st.sampled_from([0.0, -0.3, -0.5]))
    return a, level, xi_min


def _both_fits(fn, *args):
    C = _compiled()
    prev = C.set_fast_fits(False)
    try:
        slow = fn(*args)
    finally:
        C.set_fast_fits(prev)
    return slow, fn(*args)


@settings(max_examples=300, deadline=None)
@given(w=spot_windows(), simd=st.sampled_from([0, 1, 2]))
def test_compiled_spot_fit_shortcuts_change_no_bit(w, simd: int) -> None:
    """On every log1p path the CPU has (the cut beyond xi = 1 relies only on their error being small)."""
    C = _compiled()
    a, level, xi_min = w
    C.set_simd_level(simd)
    try:
        slow, fast = _both_fits(C.spot_fit, a, level, xi_min)
        assert np.array(fast).tobytes() == np.array(slow).tobytes(), (slow, fast)
        slow, fast = _both_fits(C.fit_gpd, a, xi_min)
        assert np.array(fast).tobytes() == np.array(slow).tobytes(), (slow, fast)
    finally:
        C.set_simd_level(C.SIMD_LEVEL)


@st.composite
def excesses(draw):
    """Excesses a GPD fit may be handed, drawn as floats rather than from a distribution: any positive
    finite values (subnormal to 1e300), few distinct ones, or one scale with a drawn spread."""
    kind = draw(st.sampled_from(["floats", "few", "scaled"]))
    if kind == "floats":
        return np.array(draw(st.lists(st.floats(min_value=5e-324, max_value=1e300), min_size=1,
                                      max_size=60)))
    if kind == "few":
        vals = draw(st.lists(st.floats(min_value=1e-12, max_value=1e12), min_size=1, max_size=3))
        return np.array(draw(st.lists(st.sampled_from(vals), min_size=10, max_size=400)))
    base = draw(st.floats(min_value=1e-200, max_value=1e200))
    spread = draw(st.lists(st.floats(min_value=1.0, max_value=1e6), min_size=10, max_size=400))
    return base * np.array(spread)


@settings(max_examples=500, deadline=None)
@given(y=excesses(), xi_min=st.sampled_from([0.0, -0.2, -0.5]), simd=st.sampled_from([0, 1, 2]))
def test_compiled_gpd_fit_skips_no_best_on_any_excesses(y, xi_min: float, simd: int) -> None:
    """The grid points a fast fit leaves out by their bound (_gpd_bound) were never a grid's first
    best: the same (xi, sigma) bits as the fit that evaluates all of them, on any positive floats."""
    C = _compiled()
    C.set_simd_level(simd)
    try:
        slow, fast = _both_fits(C.fit_gpd, y, xi_min)
        assert np.array(fast).tobytes() == np.array(slow).tobytes(), (slow, fast)
    finally:
        C.set_simd_level(C.SIMD_LEVEL)


@settings(max_examples=300, deadline=None)
@given(y=excesses(), known=st.lists(st.integers(0, 79), min_size=1, max_size=12),
       simd=st.sampled_from([0, 1, 2]))
def test_compiled_gpd_bound_is_never_below_the_profile(y, known: list[int], simd: int) -> None:
    """The bound a fast fit skips by is above the log-likelihood the fit would compute, at thetas
    from far below the grid to beyond it, whichever points are known: near theta = 0 the two agree to
    rounding, so a bound without its slack for rounding fails here."""
    C = _compiled()
    mean = float(np.mean(y))
    with np.errstate(over="ignore"):
        thetas = np.geomspace(1e-9, 10.0, 200) / mean
    thetas = thetas[np.isfinite(thetas) & (thetas > 0)]
    assume(thetas.size)  # (excesses near the smallest subnormal: every theta overflows)
    known_t = thetas[[min(k * 2, thetas.size - 1) for k in known]]
    C.set_simd_level(simd)
    try:
        bound, ll = C.gpd_bounds(y, known_t, thetas)
    finally:
        C.set_simd_level(C.SIMD_LEVEL)
    bad = ~(bound >= ll)
    assert not bad.any(), (thetas[bad], bound[bad], ll[bad])


@pytest.mark.parametrize("phi", [0.0, 0.9])
def test_compiled_detector_with_fast_fits_is_the_slow_one_bit_for_bit(phi: float) -> None:
    """A whole detector fed 7,000 rows (its rings full, every SPOT bank re-fitted about 130 times) with
    the fast fits and without: the same p, alerts and state, bit for bit."""
    from benchmarks.streaming_throughput import readings

    C = _compiled()
    x = readings(7000, 2, seed=5, phi=phi)
    x[5000:5200, 0] += 8.0  # a fault: alarm rows, an alert open (no learning), the tail re-fitted after
    outs = []
    for fast in (False, True):
        prev = C.set_fast_fits(fast)
        try:
            det = S.make_pipeline("default", 2, impl="compiled")
            b = det.update_block(x)
            outs.append((b.p.tobytes(), b.alert.tobytes(), pickle.dumps(det)))
        finally:
            C.set_fast_fits(prev)
    assert outs[0][2] == outs[1][2]
    assert outs[0] == outs[1]
    assert np.frombuffer(outs[1][1], bool)[5000:5300].any()


def test_compiled_spot_fit_shortcuts_are_taken_and_the_std_floor_still_binds() -> None:
    """The cases the equivalence above relies on happen: fewer log1p passes (reused grid points, the cut
    beyond xi = 1), and a window whose sigma is np.std's floor gets it (computed: it could bind)."""
    C = _compiled()
    rng = np.random.default_rng(18)
    for a in (np.abs(rng.normal(size=3600)), rng.pareto(0.4, size=3600)):
        passes = []
        for fast in (False, True):
            prev = C.set_fast_fits(fast)
            try:
                before = C.gpd_passes()
                C.spot_fit(a, 0.9, 0.0)
                passes.append(C.gpd_passes() - before)
            finally:
                C.set_fast_fits(prev)
        assert passes[1] < passes[0] / 3, passes  # (the bounds: 122 -> 5 and 123 -> 17 passes here)
    a = rng.uniform(0.0, 1.0, 1000)
    a[850:] = 1000.0 + 1e-9 * rng.random(150)
    t, _rate, _xi, sigma = C.spot_fit(a, 0.9, 0.0)
    assert sigma == 1e-6 * np.std(a) and sigma > 1e-9 * (1.0 + abs(t))


@st.composite
def pca_states(draw):
    """A MultivariateDetector's state at a refresh: correlations of a few channels, some near-singular,
    tiny or huge, a zero matrix (no trace); counts below and above 1 / alpha."""
    seed = draw(st.integers(0, 2**32 - 1))
    p = draw(st.integers(2, 12))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["random", "low_rank", "scaled", "zero", "diag"]))
    if kind == "zero":
        cov = np.zeros((p, p))
    elif kind == "diag":
        cov = np.diag(rng.uniform(0.0, 3.0, p))
    else:
        r = rng.integers(1, p + 1) if kind == "low_rank" else p + 3
        a = rng.normal(size=(r, p)) * rng.uniform(0.1, 3.0, p)
        cov = a.T @ a / r
        if kind == "scaled":
            cov *= 10.0 ** rng.uniform(-8, 8)
    cfg = S.DetectorConfig(halflife=draw(st.sampled_from([3600.0, 50.0, 7.0])),
                           shrink_min=draw(st.sampled_from([0.01, 0.0, 0.5])),
                           explained=draw(st.sampled_from([0.9, 0.5, 0.999, 1.0])))
    count = draw(st.integers(1, 20_000))
    if draw(st.booleans()):  # explained exactly at one of the shares: k then depends on every bit of it
        n_eff = min(count, 1.0 / (1.0 - 0.5 ** (1.0 / cfg.halflife)))
        lam = max(cfg.shrink_min, p / (n_eff + p))
        s = (1.0 - lam) * cov + lam * np.diag(np.diag(cov))
        tr = float(np.trace(s))
        if tr > 0.0:
            vals = np.linalg.eigh(s + (1e-9 * tr / p) * np.eye(p))[0][::-1]
            share = np.cumsum(vals) / np.sum(vals)
            cfg = dataclasses.replace(cfg, explained=float(share[draw(st.integers(0, p - 1))]))
    return cov, cfg, count


@settings(max_examples=300, deadline=None)
@given(state=pca_states())
def test_compiled_pca_refresh_is_the_numpy_refresh_bit_for_bit(state) -> None:
    C = _compiled()
    cov, cfg, count = state
    mvs = []
    for _ in range(2):
        mv = S.MultivariateDetector(cov.shape[0], cfg)
        mv.cov[:] = cov
        mv.count = count
        mv.k, mv.basis, mv.inv_vals, mv.q_expect, mv.q_unit = 7, np.ones((1, 1)), np.ones(3), 2.5, 0.25
        mvs.append(mv)
    mvs[0]._refresh()
    C.pca_refresh(mvs[1])
    ref, got = mvs
    assert (got.k, got.q_expect, got.q_unit) == (ref.k, ref.q_expect, ref.q_unit)
    for f in ("basis", "inv_vals"):
        a, b = getattr(ref, f), getattr(got, f)
        assert a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes(), f
    assert np.array(got.q_expect).tobytes() == np.array(ref.q_expect).tobytes()
    assert np.array(got.q_unit).tobytes() == np.array(ref.q_unit).tobytes()


@st.composite
def sliding_windows(draw):
    """A statistic's successive SPOT windows: a ring whose oldest values are replaced a few (or many) at a
    time, while it fills or full; values with ties or not."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    size = draw(st.integers(512, 4000))
    kind = draw(st.sampled_from(["normal", "ties", "exp", "shifting"]))
    def values(k):
        if kind == "ties":
            return rng.integers(0, 6, k).astype(float)
        if kind == "exp":
            return rng.exponential(size=k)
        return rng.normal(size=k)
    fill = draw(st.integers(512, size))
    buf = values(size)
    windows = []
    pos = fill % size
    for step in draw(st.lists(st.integers(1, 400), min_size=1, max_size=12)):
        windows.append(buf[:fill].copy())
        new = values(step) + (rng.normal() * 5 if kind == "shifting" else 0.0)
        for v in new:
            buf[pos] = v
            pos = (pos + 1) % size
            fill = min(fill + 1, size)
    windows.append(buf[:fill].copy())
    return windows, draw(st.sampled_from([0.1, 0.5, 0.9, 0.999]))


@settings(max_examples=200, deadline=None)
@given(w=sliding_windows())
def test_compiled_quantile_through_a_kept_bracket_is_numpys_exactly(w) -> None:
    C = _compiled()
    windows, level = w
    assert C.quantiles_hinted(windows, level) == [np.quantile(a, level) for a in windows]


def test_compiled_quantile_bracket_is_kept_and_used() -> None:
    C = _compiled()
    rng = np.random.default_rng(19)
    a = rng.normal(size=3600)
    windows = []
    for i in range(10):
        a = a.copy()
        a[i * 50:(i + 1) * 50] = rng.normal(size=50)
        windows.append(a)
    before = C.quantile_hint_hits()
    assert C.quantiles_hinted(windows, 0.9) == [np.quantile(x, 0.9) for x in windows]
    assert C.quantile_hint_hits() - before == 9  # every fit after the first


@settings(max_examples=30, deadline=None)
@given(a=plant_rows(), b=plant_rows(), block=st.integers(1, 40))
def test_compiled_detectors_of_one_thread_share_work_buffers_without_sharing_results(a, b, block) -> None:
    """Every compiled detector of a thread fits in the same scratch buffers (115 KB each before, at the
    default window): two detectors fed in turn, block by block, give what each gives alone."""
    _compiled()
    (xa, ka), (xb, kb) = a, b
    alone = [S.make_pipeline(k, x.shape[1], TINY, impl="compiled").update_block(x) for x, k in ((xa, ka), (xb, kb))]
    da = S.make_pipeline(ka, xa.shape[1], TINY, impl="compiled")
    db = S.make_pipeline(kb, xb.shape[1], TINY, impl="compiled")
    parts: tuple[list, list] = ([], [])
    for i in range(0, max(len(xa), len(xb)), block):
        for det, x, out in ((da, xa, parts[0]), (db, xb, parts[1])):
            if i < len(x):
                out.append(det.update_block(x[i:i + block]))
    for one, got in zip(alone, parts):
        for f in ("p", "alert", "z", "channel_p"):
            np.testing.assert_array_equal(np.concatenate([getattr(g, f) for g in got]), getattr(one, f))
        assert [e for g in got for e in g.events] == one.events


def test_compiled_detectors_in_two_threads_give_their_one_thread_results() -> None:
    """The fits run without the GIL: each thread has its own work buffers, and a detector moved to another
    thread takes that thread's (as a flow's worker may resume a snapshot built elsewhere)."""
    import threading

    _compiled()
    cfg = S.DetectorConfig(warmup=20, spot_init=50, spot_refit=5, spot_window=400, refresh=10)
    rng = np.random.default_rng(5)
    xs = [rng.normal(size=(3000, 3)) * (i + 1) + 10 * i for i in range(4)]
    want = [S.make_pipeline("default", 3, cfg, impl="compiled").update_block(x).p for x in xs]
    dets = [S.make_pipeline("default", 3, cfg, impl="compiled") for _ in xs]  # built here, run there
    got: dict[int, list[np.ndarray]] = {i: [] for i in range(len(xs))}

    def work(idx: list[int]) -> None:
        for start in range(0, 3000, 50):  # small blocks: the threads take turns often
            for i in idx:
                got[i].append(dets[i].update_block(xs[i][start:start + 50]).p)

    threads = [threading.Thread(target=work, args=([0, 1],)), threading.Thread(target=work, args=([2, 3],))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, w in enumerate(want):
        np.testing.assert_array_equal(np.concatenate(got[i]), w)


@settings(max_examples=40, deadline=None)
@given(data=plant_rows(), cut=st.integers(0, 300))
def test_without_q_the_mv_calibrator_has_one_column_and_the_results_of_two(data, cut: int) -> None:
    """Without Q (one channel, or a ``use`` without it) the compiled T-squared calibrator keeps one column:
    the same results and the same T-squared state as the two-column ring of before (which snapshots from
    before hold: one such, pickled mid-stream, goes on as before)."""
    import pickle

    _compiled()
    x, kind = data
    n = x.shape[1]
    det = S.make_pipeline(kind, n, TINY, impl="compiled")
    if det.mv_spots is None:
        return
    with_q = "q" in det.use
    assert det.mv_spots.buf.shape == (TINY.spot_window, 2 if with_q else 1)
    if with_q:
        return
    old = S.make_pipeline(kind, n, TINY, impl="compiled")
    old.mv_spots = S.SpotBank(2, TINY)  # the layout of before
    old._kernel = old._make_kernel()
    cut = min(cut, len(x))
    a = det.update_block(x[:cut])
    b = old.update_block(x[:cut])
    old = pickle.loads(pickle.dumps(old))  # a snapshot of the old layout, resumed
    a2, b2 = det.update_block(x[cut:]), old.update_block(x[cut:])
    for f in ("p", "alert", "z", "channel_p"):
        np.testing.assert_array_equal(np.r_[getattr(a, f), getattr(a2, f)], np.r_[getattr(b, f), getattr(b2, f)])
    assert a.events + a2.events == b.events + b2.events
    m, o = det.mv_spots, old.mv_spots
    np.testing.assert_array_equal(m.buf[:, 0], o.buf[:, 0])
    for f in ("pos", "fill", "since", "t", "rate", "xi", "sigma"):
        np.testing.assert_array_equal(getattr(m, f)[0], getattr(o, f)[0])
    assert not o.buf[:, 1].any() and o.fill[1] == 0  # (the second column was never touched)


def test_a_one_channel_detector_holds_and_pickles_29_kb_less() -> None:
    import pickle

    _compiled()
    det = S.make_pipeline("default", 1, impl="compiled")
    old = S.make_pipeline("default", 1, impl="compiled")
    old.mv_spots = S.SpotBank(2, old.cfg)
    old._kernel = old._make_kernel()
    # (rings filled: a snapshot leaves out a ring's unfilled rows, aiotstream.models.packed)
    x = np.random.default_rng(3).normal(size=(2 * old.cfg.spot_window, 1))
    det.update_block(x)
    old.update_block(x)
    assert det.mv_spots.fill[0] == old.mv_spots.fill[0] == old.cfg.spot_window
    saved = len(pickle.dumps(old)) - len(pickle.dumps(det))
    assert saved >= 8 * old.cfg.spot_window  # one column of spot_window float64 values
    assert old.mv_spots.buf.nbytes - det.mv_spots.buf.nbytes == 8 * old.cfg.spot_window


def test_the_kernel_holds_its_state_arrays_without_a_memoryview_each() -> None:
    """The kernel reads the detector's arrays through pointers it took once (and holds the arrays): what
    it allocates of its own is its few work arrays, not a memoryview per state array (about 0.5 KB each,
    31 KB a one-channel detector before). Its pointers stay good when the detector lets go of them."""
    import gc
    import tracemalloc

    _compiled()
    det = S.make_pipeline("default", 1, impl="compiled")
    x = np.random.default_rng(5).normal(size=(400, 1))
    twin = pickle.loads(pickle.dumps(det))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        kernels = [det._make_kernel() for _ in range(20)]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    per_kernel = sum(s.size_diff for s in after.compare_to(before, "filename")) / len(kernels)
    assert per_kernel < 8_000, per_kernel
    # the kernel's own references keep the arrays alive: a detector whose state attributes are
    # replaced (the old arrays dropped by it) still runs on the arrays its kernel took
    det._kernel = kernels[-1]
    del kernels
    arrays = (det.baseline, det.channel_spots, det.mv, det.mv_spots, det.rank, det.rank_spots)
    kept = [(o, dict(vars(o))) for o in arrays]
    for o, _ in kept:
        for k, v in list(vars(o).items()):
            if isinstance(v, np.ndarray):
                setattr(o, k, v.copy())
    a = det.update_block(x)
    for o, state in kept:  # (the arrays the kernel ran on, back in place for the comparison)
        vars(o).update(state)
    b = twin.update_block(x)
    for f in ("p", "alert", "z", "channel_p"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    for o, t in zip(arrays, (twin.baseline, twin.channel_spots, twin.mv, twin.mv_spots, twin.rank,
                             twin.rank_spots), strict=True):
        for k, v in vars(t).items():
            if isinstance(v, np.ndarray) and k != "basis" and k != "inv_vals":
                np.testing.assert_array_equal(getattr(o, k), v, err_msg=k)


@pytest.mark.parametrize(("where", "bad", "needle"), [
    ("baseline", ("level", np.zeros(1, np.float32)), "baseline.level: expected a writeable, C-contiguous 1-d float64"),
    ("baseline", ("count", np.zeros(1)), "baseline.count: expected a writeable, C-contiguous 1-d int64"),
    ("rank", ("ring", np.zeros((1, 3600))[:, ::-1]), "rank.ring: expected a writeable, C-contiguous 2-d"),
    ("rank", ("srt", np.zeros((1, 100))), "rank.srt: shape (1, 100), expected (1, 3600)"),
    ("rank_spots", ("buf", np.zeros((3600, 2))), "rank bank buf: shape (3600, 2), expected (3600, 1)"),
    ("channel_spots", ("sigma", np.ones(1).view(np.int64)), "channel bank sigma: expected"),
    ("mv", ("cov", np.zeros((2, 2))), "mv.cov: shape (2, 2), expected (1, 1)"),
    ("baseline", ("fast", np.zeros(2)), ("baseline.fast: expected a writeable, C-contiguous 1-d float64 ndarray "
                                         "of length 1, got ndarray float64 (2,)")),
    ("rank", ("lag", np.zeros(0)), "rank.lag: expected a writeable, C-contiguous 1-d float64 ndarray of length 1"),
    ("mv_spots", ("since", np.zeros(2, np.int64)), ("mv bank since: expected a writeable, C-contiguous 1-d int64 "
                                                    "ndarray of length 1")),
])
def test_the_kernel_refuses_state_arrays_it_cannot_read_naming_them(where: str, bad: tuple, needle: str) -> None:
    """An array of another type, order or shape is refused when the kernel binds it (its pointers would
    read it wrong), with the array's name; a read-only one too (the kernel writes its state)."""
    _compiled()
    det = S.make_pipeline("default", 1, impl="compiled")
    setattr(getattr(det, where), *bad)
    with pytest.raises(ValueError) as e:
        det._make_kernel()
    assert needle in str(e.value)
    det = S.make_pipeline("default", 1, impl="compiled")
    det.baseline.var.flags.writeable = False
    with pytest.raises(ValueError, match="baseline.var: expected a writeable"):
        det._make_kernel()


def test_the_kernel_refuses_rows_and_outputs_of_the_wrong_shape() -> None:
    """``run_block``'s rows must be (rows, n) float64 in C order and each output hold as many rows (the
    kernel writes every row's entries through pointers: a short output was written past its end)."""
    _compiled()
    n = 2
    det = S.make_pipeline("default", n, TINY, impl="compiled")
    k = det._kernel
    x = np.zeros((4, n))

    def outs(rows: int = 4, cols: int = n) -> list:
        return [np.empty(rows), np.empty(rows, np.uint8), np.empty((rows, cols)), np.empty((rows, cols)),
                np.empty(rows, np.int64)]

    with pytest.raises(ValueError, match=r"x: expected a C-contiguous \(rows, 2\) float64"):
        k.run_block(np.zeros((4, 3)), *outs(), det, S.ChangeEvent)
    with pytest.raises(ValueError, match=r"x: expected"):
        k.run_block(np.zeros((n, 4)).T, *outs(), det, S.ChangeEvent)
    for i, name in enumerate(("p_out", "alert_out", "z_out", "cp_out", "lead_out")):
        o = outs()
        o[i] = outs(rows=3)[i]
        with pytest.raises(ValueError, match=f"{name}: shape .*too small for 4 rows of 2 channels"):
            k.run_block(x, *o, det, S.ChangeEvent)
    o = outs()
    o[2] = np.empty((4, 3))
    with pytest.raises(ValueError, match="z_out"):
        k.run_block(x, *o, det, S.ChangeEvent)
    with pytest.raises(ValueError, match="start 5 is not within the 4 rows"):
        k.run(x, 5, *outs())
    assert k.run_block(x, *outs(rows=6), det, S.ChangeEvent) == []  # (longer outputs: their first rows)

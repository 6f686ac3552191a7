"""Online detectors for scalar and multivariate readings that learn from the first row (issue 17).

No labels, one default configuration for every series. The classes below are numpy, one row at a
time, and are the reference; ``aiotstream._streaming`` (``ext/_streaming.pyx``) runs the same
equations on their state arrays, a block of rows per call, and is what :class:`StreamingDetector`
uses when it is built (``impl="compiled"``; ``impl="python"`` for the reference). The pieces, in
the order a row goes through them (:class:`StreamingDetector` wires them):

1. :class:`RobustBaseline`, per channel: an EWMA control chart (Roberts 1959) of the deviation from
   a slow robust level: ``fast <- fast + lambda (x - fast)``, ``d = fast - level``, ``z = d / scale``,
   where ``scale`` is the robust EWMA RMS of ``d`` itself. Scaling the chart by its own spread (not
   by the one-step noise) keeps slow, autocorrelated channels (temperatures) comparable with noisy
   ones and still accumulates small sustained shifts. Outlying rows are down-weighted (Huber-type
   weights on the level, redescending on the scale) but never ignored, and a shift that persists for
   ``accept`` rows is taken as the new normal: the channel re-baselines and a :class:`ChangeEvent` is
   emitted. So it never freezes.
2. :class:`MultivariateDetector`: online PCA of the exponentially weighted, shrunk second moment of
   ``z`` with Hotelling's T-squared in the principal subspace and the Q statistic (squared prediction
   error) in the residual subspace, each divided by its expectation.
3. :class:`SpotCalibrator`, one per statistic (each channel's ``|z|`` via :class:`SpotBank`,
   T-squared, Q): streaming
   peaks-over-threshold (SPOT, Siffer et al., KDD 2017): a generalized Pareto tail fitted by maximum
   likelihood (Grimshaw's profile likelihood) above an initial quantile; it turns a statistic into
   its tail probability ``p``. A channel's ``p`` is never below the two-sided Gaussian tail of its
   ``|z|`` (a thin tail fitted on a quiet hour must not make a 2-sigma row an alarm), and T-squared's
   never below the chi-squared tail (k degrees of freedom, the subspace's dimension) of its value
   times k, for the same reason (:func:`chi2_sf`); Q's never below ``P(chi2_{p-k} >= Q / l)``, ``l``
   the largest residual eigenvalue (an upper bound of Q's Gaussian tail: Q is a sum of ``p - k``
   squared scores weighted by eigenvalues of at most ``l``). The detector's
   p-value is Bonferroni over the statistics (one per channel, T-squared and Q; no Q with one
   channel), a statistic whose SPOT window is constant gives p = 1 (``DEGENERATE``), and
   the output score is ``1 - p`` in [0, 1]: a row scores 0.9999 when normal operation gives a value
   at least that extreme once in 10,000 rows.
4. :class:`RankTest`, per channel: the Mann-Whitney statistic of its last ``close_after`` values
   against a reference of its older values (mid-ranks, tie-corrected, inflated for the reference's
   lag-1 autocorrelation); one test over the channels, the largest ``|z|``, with its own
   :class:`SpotCalibrator`, never below ``n`` Gaussian tails. It joins the Bonferroni (one more test),
   and when it gives a row's smallest p its channel leads the row's explanation.
5. :class:`Hysteresis`: an alert opens after ``open_after`` consecutive rows with ``p < risk`` and
   closes after ``close_after`` consecutive rows with ``p >= close_risk``.

Missing values: NaN, +/-inf and magnitudes above 1e150 are *missing*. A missing channel is neither
scored (its ``z`` is 0) nor learned from; the other channels of the row go on. A row with every channel
missing scores like a normal row and changes no state except the row counter. Any finite input gives
finite state and a score in [0, 1] (residuals are clipped to +/-1e6 scales).

Every default and why is in ``docs/detection.md``; figures on SKAB come from ``benchmarks/skab.py``.
"""
from __future__ import annotations

import functools
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from aiotstream.models.packed import pack, unpack

__all__ = ["BlockResult", "ChangeEvent", "DetectorConfig", "Hysteresis", "MultivariateDetector",
           "RankTest", "RobustBaseline", "RowResult", "SpotBank", "SpotCalibrator", "StreamingDetector",
           "chi2_sf", "fit_gpd", "gpd_sf", "make_pipeline"]

Z_CLIP = 1e6  # standardized residuals are clipped here so that any finite input stays finite
MAX_ABS = 1e150  # larger magnitudes are missing values: not a reading, and their squares overflow


_erfc = np.frompyfunc(math.erfc, 1, 1)


@functools.lru_cache(maxsize=16)  # a 400,001-point integral (~17 ms): once per c, not once per asset
def _scale_consistency(c: float) -> float:
    """E[rho(Z)] for Z ~ N(0, 1), rho(z) = z^2 for |z| <= c, c^4 / z^2 beyond: makes the robust scale
    estimate the standard deviation of Gaussian residuals (a numerical integral, once)."""
    z = np.linspace(0.0, 40.0, 400_001)
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    zz = np.maximum(z * z, 1e-300)
    rho = np.where(z <= c, z * z, c ** 4 / zz)
    y = rho * pdf
    return float(2.0 * np.sum((y[1:] + y[:-1]) * 0.5 * np.diff(z)))


_INV_GAMMA_3_2 = 2.0 / math.sqrt(math.pi)  # 1 / Gamma(3/2)


def chi2_sf(x: float, k: int) -> float:
    """P(chi-squared with k degrees of freedom >= x), k >= 1 an integer: the closed forms of the
    regularized upper incomplete gamma Q(k/2, x/2) (a finite Poisson sum for even k; erfc plus a
    finite sum for odd k). Underflows to 0 beyond x ~ 1,500 (k up to a few hundred: p < 1e-250
    there). The compiled kernel does the same operations in the same order."""
    if not x > 0.0:
        return 1.0
    h = 0.5 * x
    if k % 2 == 0:
        term = math.exp(-h)
        total = term
        for j in range(1, k // 2):
            term *= h / j
            total += term
    else:
        total = math.erfc(math.sqrt(h))
        if k > 1:
            term = math.exp(-h) * math.sqrt(h) * _INV_GAMMA_3_2
            total += term
            for j in range(1, (k - 1) // 2):
                term *= h / (j + 0.5)
                total += term
    return min(total, 1.0)


@dataclass(frozen=True)
class DetectorConfig:
    """One default configuration for every series; rows are samples (1 Hz on SKAB)."""

    warmup: int = 30            # rows per channel before it is scored (mean and std of these seed it)
    halflife: float = 3600.0    # rows; baseline level, scale and correlation memory (1 h at 1 Hz)
    huber_c: float = 3.0        # residuals beyond c scales are down-weighted
    accept: int = 3600          # rows a shift must persist before it is the new normal (1 h at 1 Hz)
    shift_k: float = 4.0        # a channel is "shifted" while its fast mean is > k scales from the level
    smooth: float = 0.25        # EWMA chart lambda (weight of the newest row in the fast mean)
    explained: float = 0.9      # PCA: share of the variance kept in the principal subspace
    refresh: int = 25           # rows between eigendecompositions
    shrink_min: float = 0.01    # minimum shrinkage of the correlation towards its diagonal
    spot_init: int = 250        # rows of each statistic that calibrate the first tail fit
    spot_level: float = 0.9     # initial threshold quantile of SPOT (its peaks feed the GPD fit)
    risk: float = 1e-4          # p below this is an alarm row (expected false alarm rows per row)
    close_risk: float = 0.1     # an open alert closes once p stays above this
    open_after: int = 3         # consecutive alarm rows to open an alert
    close_after: int = 10       # consecutive quiet rows to close it; also the rank test's window
    spot_window: int = 3600     # SPOT learns from the last this many non-alarm values (1 h at 1 Hz)
    spot_refit: int = 50        # learned rows between threshold re-fits
    xi_min: float = 0.0         # lower bound of the GPD shape (no bounded tails)


@dataclass(frozen=True)
class ChangeEvent:
    """A channel's level moved for good: the baseline was re-seeded at ``new_level``."""

    row: int
    channel: int
    old_level: float
    new_level: float


# ---------------------------------------------------------------------------------------------------


class RobustBaseline:
    """Per-channel robust level and scale (see module docstring, step 1)."""

    def __init__(self, n_channels: int, config: DetectorConfig | None = None) -> None:
        cfg = config or DetectorConfig()
        self.cfg = cfg
        self.n = n_channels
        self.alpha = 1.0 - 0.5 ** (1.0 / cfg.halflife)
        self.lam = cfg.smooth
        self.kappa = _scale_consistency(cfg.huber_c)
        self.count = np.zeros(n_channels, np.int64)   # valid values seen per channel
        self.level = np.zeros(n_channels)
        self.var = np.zeros(n_channels)               # scale^2 (Welford M2 during warm-up)
        self.fast = np.zeros(n_channels)
        self.shifted = np.zeros(n_channels, np.int64)  # consecutive rows the fast mean was shifted
        self.rows = 0

    def scale(self) -> np.ndarray:
        """The scale used to standardize: sqrt(var), floored so a constant channel still divides."""
        return np.maximum(np.sqrt(self.var), 1e-9 * (1.0 + np.abs(self.level)))

    def _seed(self, x: np.ndarray) -> np.ndarray | None:
        """Count the row; channels still warming up learn it (Welford mean and variance of the first values
        seed level and scale). Returns the channels past their warm-up with a valid value, or None if none
        are."""
        self.rows += 1
        ok = np.isfinite(x) & (np.abs(x) <= MAX_ABS)
        if not ok.any():
            return None
        cfg = self.cfg
        warm = ok & (self.count < cfg.warmup)
        if warm.any():
            self.count[warm] += 1
            d = x[warm] - self.level[warm]
            self.level[warm] += d / self.count[warm]
            self.var[warm] += d * (x[warm] - self.level[warm])
            done = warm & (self.count == cfg.warmup)
            if done.any():
                self.var[done] /= max(cfg.warmup - 1, 1)
                self.fast[done] = self.level[done]
        live = ok & ~warm
        return live if live.any() else None

    def update(self, x: np.ndarray) -> tuple[np.ndarray, list[ChangeEvent]]:
        """Standardized deviation of each channel for this row (0 while warming up or missing)."""
        x = np.asarray(x, dtype=np.float64)
        z = np.zeros(self.n)
        events: list[ChangeEvent] = []
        live = self._seed(x)
        if live is None:
            return z, events
        cfg = self.cfg
        self.count[live] += 1
        s = self.scale()[live]
        lv = self.level[live]
        xl = np.clip(x[live], lv - Z_CLIP * s, lv + Z_CLIP * s)
        fast = self.fast[live] + self.lam * (xl - self.fast[live])
        self.fast[live] = fast
        d = fast - lv
        zl = np.clip(d / s, -Z_CLIP, Z_CLIP)
        z[live] = zl
        c = cfg.huber_c
        az = np.abs(zl)
        big = az > c
        w_loc = np.where(big, (c / np.maximum(az, c)) ** 2, 1.0)
        rho = np.where(big, c ** 4 / np.maximum(az, c) ** 2, zl * zl)
        self.level[live] = lv + self.alpha * w_loc * d
        # scale: a running mean until 1/alpha rows, then the EWMA (bias-corrected start)
        a_s = np.maximum(self.alpha, 1.0 / (self.count[live] - cfg.warmup + 1.0))
        self.var[live] += a_s * (rho * s * s / self.kappa - self.var[live])
        # level shifts: the smoothed deviation beyond k scales for `accept` rows -> re-baseline
        idx = np.flatnonzero(live)
        self.shifted[idx] = np.where(az > cfg.shift_k, self.shifted[idx] + 1, 0)
        for i in idx[self.shifted[idx] >= cfg.accept]:
            events.append(ChangeEvent(self.rows - 1, int(i), float(self.level[i]), float(self.fast[i])))
            self.level[i] = self.fast[i]
            self.shifted[i] = 0
        return z, events


@functools.lru_cache(maxsize=64)
def _identity(p: int) -> np.ndarray:
    """``np.eye(p)``, made once per size (read-only: shared by every detector of that width)."""
    eye = np.eye(p)
    eye.flags.writeable = False
    return eye


class MultivariateDetector:
    """Online PCA on standardized residuals: T-squared and Q, each over its expectation."""

    q_unit = 0.0  # (class default: a detector pickled before Q's floor existed resumes without one)

    def __init__(self, n_channels: int, config: DetectorConfig | None = None) -> None:
        cfg = config or DetectorConfig()
        self.cfg = cfg
        self.p = n_channels
        self.alpha = 1.0 - 0.5 ** (1.0 / cfg.halflife)
        self.cov = np.zeros((n_channels, n_channels))
        self.count = 0
        self.basis = np.zeros((n_channels, 0))
        self.inv_vals = np.zeros(0)
        self.q_expect = 1.0
        # Q / E[Q] times this is Q over the largest residual eigenvalue: under Gaussian data Q is a sum
        # of p - k squared scores weighted by those eigenvalues, so P(Q >= x) <= P(chi2_{p-k} >= that)
        # (0 until the first refresh: no floor)
        self.q_unit = 0.0
        self.k = 0
        c = cfg.huber_c
        self.t2_ok = n_channels + c * math.sqrt(2.0 * n_channels)  # chi2_p mean + c sd

    def _refresh(self) -> None:
        # the numpy operations of the plain formulas (np.diag(np.diag(cov)), np.eye, np.trace, np.cumsum,
        # np.sum, np.searchsorted), called as array methods and with the identity cached: the same
        # ufuncs and reductions in the same order, so bit for bit the same, with less call overhead (an
        # 8 x 8 refresh is mostly call overhead)
        p = self.p
        n_eff = min(self.count, 1.0 / self.alpha)
        lam = max(self.cfg.shrink_min, p / (n_eff + p))
        cov = self.cov
        diag = np.zeros((p, p))
        diag.flat[:: p + 1] = cov.diagonal()
        s = (1.0 - lam) * cov + lam * diag
        tr = float(s.trace())
        if not tr > 0.0:
            self.k = 0
            self.basis = np.zeros((p, 0))
            return
        s = s + (1e-9 * tr / p) * _identity(p)
        vals, vecs = np.linalg.eigh(s)
        vals, vecs = vals[::-1], vecs[:, ::-1]
        share = vals.cumsum() / vals.sum()
        k = int(share.searchsorted(self.cfg.explained)) + 1
        k = min(k, p - 1) if p > 1 else 1
        self.k = k
        self.basis = vecs[:, :k].copy()
        self.inv_vals = 1.0 / vals[:k]
        self.q_expect = max(float(vals[k:].sum()), 1e-6 * tr) if p > 1 else 1.0
        self.q_unit = self.q_expect / float(vals[k]) if p > 1 and vals[k] > 0.0 else 0.0

    def update(self, e: np.ndarray) -> tuple[float, float]:
        """(T-squared / k, Q / E[Q]) of this row, then learn it; (0, 0) while warming up."""
        e = np.nan_to_num(np.asarray(e, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        self.count += 1
        t2 = q = 0.0
        w = 1.0
        if self.count > self.cfg.warmup and self.k > 0:
            # the sums in a fixed order (not BLAS's): Q is a difference of two sums that cancel when
            # the residual subspace is empty, and the compiled kernel must round exactly the same
            y = np.zeros(self.k)
            for j in range(self.p):
                y += self.basis[j] * e[j]
            t2_full = yy = ee = 0.0
            for ym, iv in zip(y.tolist(), self.inv_vals.tolist(), strict=True):
                t2_full += ym * (ym * iv)
                yy += ym * ym
            for ej in e.tolist():
                ee += ej * ej
            q = max(ee - yy, 0.0)
            t2 = t2_full / self.k
            q = q / self.q_expect
            m = t2_full + q * self.q_expect  # ~ chi2 with about p dof under normal operation
            if m > self.t2_ok:
                r = self.t2_ok / m
                w = r * r  # not r ** 2: CPython's float ** 2 is libm pow, which may differ in the last bit
        a = self.alpha if self.count > self.cfg.warmup else 1.0 / self.count
        self.cov += (a * w) * (np.outer(e, e) - self.cov)
        if self.count >= self.cfg.warmup and (self.count - self.cfg.warmup) % self.cfg.refresh == 0:
            self._refresh()
        return min(t2, 1e12), min(q, 1e12)


# ---------------------------------------------------------------------------------------------------
# extreme value theory


def gpd_sf(y: np.ndarray | float, xi: float, sigma: float) -> np.ndarray | float:
    """Survival function of the generalized Pareto distribution (location 0) at y >= 0."""
    y = np.maximum(np.asarray(y, dtype=np.float64), 0.0)
    if abs(xi) < 1e-9:
        out = np.exp(-y / sigma)
    else:
        base = np.maximum(1.0 + xi * y / sigma, 0.0)
        with np.errstate(divide="ignore"):
            out = np.where(base > 0.0, base ** (-1.0 / xi), 0.0)
    return float(out) if out.ndim == 0 else out


def _profile_loglik(thetas: np.ndarray, y: np.ndarray, xi_min: float) -> np.ndarray:
    """Grimshaw's profile log-likelihood of the GPD at each theta = xi / sigma (-inf where invalid)."""
    n = y.size
    with np.errstate(invalid="ignore", divide="ignore"):
        xi = np.log1p(np.outer(thetas, y)).mean(axis=1)
        sig = xi / thetas
        ll = -n * np.log(sig) - n * (1.0 + xi)
    bad = ~np.isfinite(ll) | (sig <= 0) | (xi < xi_min) | (xi > 1.0) | (thetas == 0)
    return np.where(bad, -np.inf, ll)


def fit_gpd(y: np.ndarray, xi_min: float = -0.5) -> tuple[float, float]:
    """Maximum-likelihood GPD (xi, sigma) of excesses y > 0 by Grimshaw's profile likelihood.

    With theta = xi / sigma, the MLE of xi given theta is mean(log(1 + theta y)) and the profile
    log-likelihood is ``-n log(xi / theta) - n (1 + xi)``. It is evaluated on a log-spaced grid of
    theta on (-1 / max(y), 0) and (0, 6 / mean(y)), refined twice around the best point, and compared
    with the exponential (xi = 0) fit. xi is bounded to [xi_min, 1] (xi_min >= -0.5).
    """
    y = np.asarray(y, dtype=np.float64)
    y = y[np.isfinite(y) & (y > 0)]
    n = y.size
    if n == 0:
        return 0.0, 1.0
    mean = float(y.mean())
    if n < 10:
        return 0.0, max(mean, 1e-12)
    xi_min = max(xi_min, -0.5)
    lo = -1.0 / float(y.max())
    neg = lo * (1.0 - np.geomspace(1e-6, 1.0 - 1e-6, 40)) if xi_min < 0 else np.zeros(0)
    grid = np.concatenate([np.sort(neg), np.geomspace(1e-6, 6.0, 40) / mean])
    best_ll, best = -n * math.log(mean) - n, 0.0
    for _ in range(3):
        ll = _profile_loglik(grid, y, xi_min)
        i = int(np.argmax(ll))
        if ll[i] > best_ll:
            best_ll, best = float(ll[i]), float(grid[i])
        a = grid[max(i - 1, 0)]
        b = grid[min(i + 1, grid.size - 1)]
        if a < 0.0 < b:  # do not cross theta = 0
            a, b = (a, -1e-12) if grid[i] < 0 else (1e-12, b)
        grid = np.linspace(a, b, 41)
    if best == 0.0:
        return 0.0, mean
    xi = float(np.mean(np.log1p(best * y)))
    return xi, xi / best


# A statistic whose whole window is one value (Q with no residual subspace, |z| of a constant channel)
# has no tail to fit: a threshold tail (rate 1/window beyond a 1e-9 sigma) would call every row, or
# every later value, "rare" and pin the detector's p near tests / window, so an alert could never
# close. Such a fit gives p = 1 (no evidence) for any value instead: rate 1 and an infinite scale make
# both branches of the tail exp(0) = 1 (the compiled kernel stores the same three numbers). The next
# refit after the statistic moves (spot_refit learned rows; every row is learned at p = 1) fits it.
DEGENERATE = (1.0, 0.0, math.inf)  # (rate, xi, sigma)


def _degenerate(arr: np.ndarray) -> bool:
    return bool(arr.size) and float(arr.min()) == float(arr.max())


class SpotCalibrator:
    """Peaks-over-threshold on a sliding window: a statistic -> its tail probability in normal operation.

    SPOT (Siffer et al. 2017) fixes its peaks threshold ``t`` on the first ``n_init`` values and then
    adds every non-alarm value above ``t`` to the peaks. Here the detector's own statistics settle
    while the baselines learn, so a threshold frozen on the first rows stays too high (or too low)
    for good. This variant keeps the last ``spot_window`` learned values and, every ``spot_refit``
    learned rows, re-sets ``t`` to their ``spot_level`` quantile and refits the GPD to the excesses.
    Alarm rows (``p < risk``) and rows while an alert is open are not learned, as in SPOT.
    The shape is bounded below by ``xi_min`` (0 by default): a fitted bounded tail (xi < 0) would give
    probability 0 to anything beyond its end point, which on a few hundred peaks is an artefact.
    """

    def __init__(self, config: DetectorConfig | None = None) -> None:
        cfg = config or DetectorConfig()
        self.cfg = cfg
        self.window: deque[float] = deque(maxlen=cfg.spot_window)
        self.t = math.inf           # peaks threshold (a quantile of the window)
        self.rate = 0.0             # share of the window above t
        self.xi, self.sigma = 0.0, 1.0
        self.since = 0              # learned values since the last fit

    @property
    def calibrated(self) -> bool:
        return self.t < math.inf

    def _fit(self) -> None:
        arr = np.fromiter(self.window, float, len(self.window))
        t = float(np.quantile(arr, self.cfg.spot_level))
        y = arr[arr > t] - t
        self.t = t
        self.rate = max(y.size, 1) / arr.size
        xi, sigma = fit_gpd(y, xi_min=self.cfg.xi_min) if y.size else (0.0, 0.0)
        spread = float(np.std(arr))
        self.xi, self.sigma = xi, max(sigma, 1e-9 * (1.0 + abs(t)), 1e-6 * spread)
        if _degenerate(arr):
            self.rate, self.xi, self.sigma = DEGENERATE
        self.since = 0

    def tail(self, x: float) -> float:
        """P(statistic >= x) under the fitted model (1.0 before calibration)."""
        if not self.calibrated:
            return 1.0
        if x > self.t:
            return float(self.rate * gpd_sf(x - self.t, self.xi, self.sigma))
        # below the peaks threshold: continuous, monotone, not calibrated (never an alarm)
        return float(min(1.0, self.rate * math.exp(min((self.t - x) / self.sigma, 700.0))))

    def quantile(self, risk: float) -> float:
        """The statistic value whose tail probability is ``risk`` (SPOT's z_q)."""
        r = risk / self.rate
        if abs(self.xi) < 1e-9:
            return self.t - self.sigma * math.log(r)
        return self.t + self.sigma / self.xi * (r ** (-self.xi) - 1.0)

    def update(self, x: float, learn: bool = True) -> float:
        """Tail probability of x, then (if ``learn`` and x is not itself an alarm) learn it."""
        x = float(x) if math.isfinite(x) else 0.0
        p = self.tail(x)
        if learn and p >= self.cfg.risk:
            self.window.append(x)
            self.since += 1
            if (not self.calibrated and len(self.window) >= self.cfg.spot_init) or (
                    self.calibrated and self.since >= self.cfg.spot_refit):
                self._fit()
        return p


class SpotBank:
    """``n`` independent :class:`SpotCalibrator` s (one per channel) updated together, vectorized.

    Same results as a list of calibrators (tested): a ring buffer per column replaces the deques, the
    tail probabilities are computed for all channels at once, and only the columns due for a refit
    are refitted.
    """

    def __init__(self, n: int, config: DetectorConfig | None = None) -> None:
        cfg = config or DetectorConfig()
        self.cfg = cfg
        self.n = n
        self.buf = np.zeros((cfg.spot_window, n))
        self.pos = np.zeros(n, np.int64)
        self.fill = np.zeros(n, np.int64)
        self.since = np.zeros(n, np.int64)
        self.t = np.full(n, np.inf)
        self.rate = np.zeros(n)
        self.xi = np.zeros(n)
        self.sigma = np.ones(n)
        self._cols = np.arange(n)

    def __getstate__(self) -> dict:
        # a young bank's ring is mostly the zeros it was allocated with: a snapshot carries the rows it
        # has filled (aiotstream.models.packed; the same bits on load, a full ring as before)
        return {**self.__dict__, "buf": pack(self.buf, 0.0)}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.buf = unpack(self.buf)

    def tail(self, x: np.ndarray) -> np.ndarray:
        """P(statistic >= x) per column (1.0 before calibration)."""
        t, sig, xi = self.t, self.sigma, self.xi
        cal = t < np.inf
        tt = np.where(cal, t, 0.0)
        y = np.maximum(x - tt, 0.0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            base = np.maximum(1.0 + xi * y / sig, 0.0)
            safe_xi = np.where(np.abs(xi) < 1e-9, 1.0, xi)
            gp = np.where(base > 0.0, base ** (-1.0 / safe_xi), 0.0)
            sf = np.where(np.abs(xi) < 1e-9, np.exp(-y / sig), gp)
            below = np.minimum(1.0, self.rate * np.exp(np.minimum((tt - x) / sig, 700.0)))
        p = np.where(x > tt, self.rate * sf, below)
        return np.where(cal, p, 1.0)

    def _fit(self, i: int) -> None:
        arr = self.buf[: self.fill[i], i]
        t = float(np.quantile(arr, self.cfg.spot_level))
        y = arr[arr > t] - t
        self.t[i] = t
        self.rate[i] = max(y.size, 1) / arr.size
        xi, sigma = fit_gpd(y, xi_min=self.cfg.xi_min) if y.size else (0.0, 0.0)
        self.xi[i] = xi
        self.sigma[i] = max(sigma, 1e-9 * (1.0 + abs(t)), 1e-6 * float(np.std(arr)))
        if _degenerate(arr):
            self.rate[i], self.xi[i], self.sigma[i] = DEGENERATE
        self.since[i] = 0

    def update(self, x: np.ndarray, learn: bool = True) -> np.ndarray:
        """Tail probabilities of x (one per column), then learn the columns that are not alarms."""
        x = np.where(np.isfinite(x), x, 0.0)
        p = self.tail(x)
        if learn:
            m = p >= self.cfg.risk
            if m.any():
                cols = self._cols[m]
                self.buf[self.pos[cols], cols] = x[cols]
                self.pos[cols] = (self.pos[cols] + 1) % self.cfg.spot_window
                self.fill[cols] = np.minimum(self.fill[cols] + 1, self.cfg.spot_window)
                self.since[cols] += 1
                cal = self.t < np.inf
                due = m & np.where(cal, self.since >= self.cfg.spot_refit, self.fill >= self.cfg.spot_init)
                for i in np.flatnonzero(due):
                    self._fit(int(i))
        return p


# ---------------------------------------------------------------------------------------------------
# the rank test (issue 17, branch rank; docs/detection.md "The rank test")


class RankTest:
    """Per channel, a two-sample rank test of its last ``w = close_after`` values (the test window)
    against a reference of its older values: the Mann-Whitney statistic with mid-ranks, the
    tie-corrected variance, inflated for the reference's lag-1 autocorrelation.

    The reference holds the values that left the test window and had arrived while no alert was open,
    or while one had been open for ``accept`` rows or more (``learn`` when the value entered the window:
    a lasting change is the new normal, as the chart's change event says, so an alert the rank test
    holds does not stay open for good), at most ``spot_window`` of them: a chronological
    ring (for the autocorrelation) and the same values sorted (for the ranks), with the tie total
    ``sum(t^3 - t)`` over the sorted copy's groups of equal values (an integer: kept exactly). A
    channel is scored once its test window is full and its reference has ``warmup`` values.

    ``z = (U - w R / 2) / sqrt(var * infl)``: U counts, over the w test values, the reference values
    below plus half the equal ones; ``var = w R / 12 ((N + 1) - ties / (N (N - 1)))``, N = w + R, ties
    over the pooled values; ``infl = 1 + 2 sum_{k<w} (1 - k/w) r^k`` (the variance of a w-row mean of
    an AR(1) over that of w independent rows), r the reference's lag-1 autocorrelation clipped to
    [0, 1]. r comes from sums kept as the ring changes (of ``y = x - shift``: the values, the squares,
    the products of chronological neighbours); at every wrap of the ring they are recomputed from it
    in chronological order with ``shift`` = its mean, so rounding does not accumulate and a large
    offset does not cancel. The compiled kernel does the same operations in the same order.

    Missing values (module docstring) are neither tested nor learned. :meth:`reset` empties a
    channel's reference (a change event or :meth:`StreamingDetector.relevel`: the new level is normal).
    """

    def __init__(self, n_channels: int, config: DetectorConfig | None = None) -> None:
        cfg = config or DetectorConfig()
        if cfg.close_after < 1 or cfg.spot_window < 1:
            raise ValueError("close_after and spot_window must be >= 1")
        n, w, size = n_channels, cfg.close_after, cfg.spot_window
        self.n, self.w, self.size, self.warmup = n, w, size, max(cfg.warmup, 1)
        self.win = np.zeros((n, w))                   # the test window per channel (a ring)
        self.win_learn = np.zeros((n, w), np.uint8)   # 1: the value arrived while no alert was open
        self.win_pos = np.zeros(n, np.int64)
        self.win_fill = np.zeros(n, np.int64)
        self.ring = np.zeros((n, size))               # the reference, chronological (a ring)
        self.pos = np.zeros(n, np.int64)
        self.fill = np.zeros(n, np.int64)
        self.srt = np.zeros((n, size))                # the reference sorted: srt[j, :fill[j]]
        self.ties = np.zeros(n, np.int64)             # sum over srt's tie groups of t^3 - t
        self.shift = np.zeros(n)
        self.s1 = np.zeros(n)                         # sum of y = x - shift over the reference
        self.s2 = np.zeros(n)                         # sum of y^2
        self.lag = np.zeros(n)                        # sum of y_i y_(i+1) over chronological neighbours

    def __getstate__(self) -> dict:
        # A snapshot without what the state implies: the reference's unfilled tail (zeros, as allocated)
        # and its sorted copy, which is the reference sorted (srt[j, :fill[j]], zeros after it): rebuilt
        # on load, the same bits (aiotstream.models.packed for the tails).
        state = {**self.__dict__, "ring": pack(self.ring, 0.0, axis=1)}
        state["srt"] = None if self._srt_derivable() else pack(self.srt, 0.0, axis=1)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.ring = unpack(self.ring)
        self.srt = self._sorted_reference() if self.srt is None else unpack(self.srt)

    def _sorted_reference(self) -> np.ndarray:
        # (any sort gives the same bits here, see _srt_derivable; numpy's stable one is the fastest on
        # 3,600 floats: 57 us against 82)
        srt = np.zeros_like(self.ring)
        for j, f in enumerate(self.fill.tolist()):
            srt[j, :f] = np.sort(self.ring[j, :f], kind="stable")
        return srt

    def _srt_derivable(self) -> bool:
        """Whether :meth:`_sorted_reference` gives ``srt`` back bit for bit: each channel's reference is
        ``ring[j, :fill[j]]`` (a reset starts it again at 0) and ``srt[j, :fill[j]]`` holds it sorted (the
        invariant :meth:`_learn` and the kernel keep, checked: :func:`_sorted_copy_of`), zeros after it (not
        so after a reset: kept whole then). Equal finite values have equal bits but for 0.0 and -0.0,
        whose order a sort may not keep: a reference holding a -0.0 is kept whole too."""
        check = _compiled.sorted_copy_of if _compiled is not None else _sorted_copy_of
        return bool(check(self.ring, self.srt, self.fill))

    def reset(self, j: int) -> None:
        """Empty channel j's reference (its test window is kept)."""
        self.pos[j] = self.fill[j] = self.ties[j] = 0
        self.shift[j] = self.s1[j] = self.s2[j] = self.lag[j] = 0.0

    def update(self, x: np.ndarray, learn: bool) -> np.ndarray:
        """Each channel's z for this row (0 where it is not scored), after moving the value that
        leaves the test window into the reference (if it arrived while no alert was open)."""
        z = np.zeros(self.n)
        w = self.w
        for j, v in enumerate(np.asarray(x, dtype=np.float64).tolist()):
            if not (math.isfinite(v) and abs(v) <= MAX_ABS):
                continue  # missing: neither tested nor learned
            k = int(self.win_pos[j])
            if self.win_fill[j] == w:
                if self.win_learn[j, k]:
                    self._learn(j, float(self.win[j, k]))
            else:
                self.win_fill[j] += 1
            self.win[j, k] = v
            self.win_learn[j, k] = learn
            self.win_pos[j] = (k + 1) % w
            if self.win_fill[j] == w and self.fill[j] >= self.warmup:
                z[j] = self._z(j)
        return z

    def _learn(self, j: int, v: float) -> None:
        size, f, p = self.size, int(self.fill[j]), int(self.pos[j])
        ring, srt = self.ring[j], self.srt[j]
        if f == 0:
            self.shift[j] = v
        sh = float(self.shift[j])
        y = v - sh
        if f == size:  # the oldest leaves: its sums, its neighbour product, its place in the sorted copy
            old = float(ring[p])
            yo = old - sh
            self.s1[j] -= yo
            self.s2[j] -= yo * yo
            if size > 1:
                self.lag[j] -= yo * (float(ring[(p + 1) % size]) - sh)
            lo = int(np.searchsorted(srt[:f], old, "left"))
            c = int(np.searchsorted(srt[:f], old, "right")) - lo
            self.ties[j] -= 3 * c * c - 3 * c  # c^3 - c - ((c - 1)^3 - (c - 1))
            srt[lo:f - 1] = srt[lo + 1:f]
            f -= 1
        lo = int(np.searchsorted(srt[:f], v, "left"))
        hi = int(np.searchsorted(srt[:f], v, "right"))
        c = hi - lo
        self.ties[j] += 3 * c * c + 3 * c  # (c + 1)^3 - (c + 1) - (c^3 - c)
        srt[hi + 1:f + 1] = srt[hi:f]
        srt[hi] = v
        if f > 0 and size > 1:  # f: values left after the oldest went (the newest of them is before p)
            self.lag[j] += (float(ring[(p - 1) % size]) - sh) * y
        self.s1[j] += y
        self.s2[j] += y * y
        ring[p] = v
        self.pos[j] = (p + 1) % size
        self.fill[j] = min(int(self.fill[j]) + 1, size)
        if self.fill[j] == size and self.pos[j] == 0:
            self._resum(j)

    def _resum(self, j: int) -> None:
        """The sums recomputed from the full ring (chronological: it just wrapped), about its mean."""
        vals = self.ring[j].tolist()
        t = 0.0
        for v in vals:
            t += v
        sh = t / self.size
        s1 = s2 = lag = 0.0
        prev = 0.0
        for i, v in enumerate(vals):
            y = v - sh
            s1 += y
            s2 += y * y
            if i:
                lag += prev * y
            prev = y
        self.shift[j], self.s1[j], self.s2[j], self.lag[j] = sh, s1, s2, lag

    def autocorrelation(self, j: int) -> float:
        """The reference's lag-1 autocorrelation from the kept sums, clipped to [0, 1] (0 with fewer than
        2 values or no spread beyond rounding)."""
        f = int(self.fill[j])
        if f < 2:
            return 0.0
        s1, s2 = float(self.s1[j]), float(self.s2[j])
        m = s1 / f
        den = s2 - s1 * m
        if not den > 1e-9 * s2:
            return 0.0
        sh = float(self.shift[j])
        first = float(self.ring[j, int(self.pos[j]) if f == self.size else 0]) - sh
        last = float(self.ring[j, (int(self.pos[j]) - 1) % self.size]) - sh
        r = (float(self.lag[j]) - m * (2.0 * s1 - first - last) + (f - 1) * m * m) / den
        return min(max(r, 0.0), 1.0)

    def _z(self, j: int) -> float:
        w, f = self.w, int(self.fill[j])
        srt = self.srt[j, :f]
        vals = sorted(self.win[j].tolist())
        two_u = 0
        ties = int(self.ties[j])
        i = 0
        while i < w:  # each group of equal test values: its place among the reference's values
            v, m = vals[i], 1
            while i + m < w and vals[i + m] == v:
                m += 1
            lo = int(np.searchsorted(srt, v, "left"))
            c = int(np.searchsorted(srt, v, "right")) - lo
            two_u += m * (2 * lo + c)
            cm = c + m
            ties += cm * cm * cm - cm - (c * c * c - c)
            i += m
        big_n = w + f
        var = (w * f) / 12.0 * ((big_n + 1) - ties / (big_n * (big_n - 1)))
        if not var > 0.0:
            return 0.0
        r = self.autocorrelation(j)
        acc, rk = 0.0, 1.0
        for k in range(1, w):
            rk *= r
            acc += (1.0 - k / w) * rk
        infl = 1.0 + 2.0 * acc
        return (0.5 * two_u - 0.5 * (w * f)) / math.sqrt(var * infl)


class Hysteresis:
    """Open after ``open_after`` consecutive alarm rows, close after ``close_after`` quiet rows.
    ``open_rows``: rows the alert has been open (0 while closed)."""

    open_rows = 0  # (class default: a hysteresis pickled before it counted them)

    def __init__(self, open_after: int = 3, close_after: int = 10) -> None:
        self.open_after = open_after
        self.close_after = close_after
        self.is_open = False
        self.run = 0
        self.open_rows = 0

    def update(self, alarm: bool, quiet: bool | None = None) -> bool:
        """``alarm``: this row would open; ``quiet``: this row counts towards closing (default
        ``not alarm``). Returns whether the alert is open after this row."""
        quiet = (not alarm) if quiet is None else quiet
        if self.is_open:
            self.run = self.run + 1 if quiet else 0
            if self.run >= self.close_after:
                self.is_open, self.run = False, 0
        else:
            self.run = self.run + 1 if alarm else 0
            if self.run >= self.open_after:
                self.is_open, self.run = True, 0
        self.open_rows = self.open_rows + 1 if self.is_open else 0
        return self.is_open


# ---------------------------------------------------------------------------------------------------


@dataclass
class RowResult:
    score: float                       # 1 - p, in [0, 1]
    alert: bool                        # an alert is open after this row
    p: float                           # tail probability (Bonferroni over the statistics used)
    z: np.ndarray                      # standardized deviation per channel (explanation)
    events: list[ChangeEvent] = field(default_factory=list)
    channel_p: np.ndarray | None = None  # each channel's tail probability (explanation)
    lead: int = -1                     # the channel whose rank test gave the row's smallest p (-1: none)

    def explain(self, names: list[str] | None = None, top: int = 3) -> list[tuple[str, float, float]]:
        """The channels that drive this row, most extreme first: (name, z, p). When the rank test gave
        the row's smallest p, its channel (``lead``) comes first, with that p."""
        return _explain(self.z, self.channel_p, names, top, self.lead)


def _explain(z: np.ndarray, channel_p: np.ndarray | None, names: list[str] | None,
             top: int, lead: int = -1) -> list[tuple[str, float, float]]:
    order = np.argsort(-np.abs(z), kind="stable")
    if lead >= 0:
        order = np.r_[lead, order[order != lead]]
    order = order[:top]
    p = channel_p if channel_p is not None else np.ones_like(z)
    return [((names[i] if names else str(int(i))), float(z[i]), float(p[i])) for i in order]


@dataclass
class BlockResult:
    """:meth:`StreamingDetector.update_block` for ``rows`` rows: one entry (or row) per input row."""

    score: np.ndarray                  # (rows,) 1 - p
    alert: np.ndarray                  # (rows,) bool
    p: np.ndarray                      # (rows,)
    z: np.ndarray                      # (rows, channels)
    channel_p: np.ndarray              # (rows, channels)
    events: list[ChangeEvent] = field(default_factory=list)
    lead: np.ndarray | None = None     # (rows,) RowResult.lead

    def explain(self, row: int, names: list[str] | None = None,
                top: int = 3) -> list[tuple[str, float, float]]:
        """:meth:`RowResult.explain` of one row of the block."""
        return _explain(self.z[row], self.channel_p[row], names, top,
                        -1 if self.lead is None else int(self.lead[row]))


try:  # the compiled per-row update (ext/_streaming.pyx); the Python code below is its reference
    from aiotstream import _streaming as _compiled
except ImportError:  # not built: `python setup.py build_ext --inplace`
    _compiled = None

IMPLS = ("python", "compiled")
DEFAULT_IMPL = "compiled" if _compiled is not None else "python"


class StreamingDetector:
    """Per-asset online detector: baseline -> EWMA chart -> T-squared/Q, rank test -> SPOT -> hysteresis.

    ``use``: which statistics feed the score: ``("channels", "t2", "q", "rank")`` by default; ``"q"`` is
    dropped with one channel (no residual subspace: Q is identically 0). ``"rank"``: one test, the
    largest channel's :class:`RankTest` ``|z|``, its own SPOT tail, never below ``n`` Gaussian tails
    (Bonferroni's bound over the channels).
    ``impl``: ``"python"`` (the reference: the classes above, one row at a time) or ``"compiled"``
    (``aiotstream._streaming``: the same equations over the same state arrays, a block of rows per
    call; equal to the reference to rounding, tested). The default is ``"compiled"`` when the
    extension is built.
    """

    STATS = ("channels", "t2", "q", "rank")

    def __init__(self, n_channels: int, config: DetectorConfig | None = None,
                 use: tuple[str, ...] = STATS, impl: str | None = None) -> None:
        cfg = config or DetectorConfig()
        unknown = set(use) - set(self.STATS)
        if unknown or not use:
            raise ValueError(f"use: pick from {self.STATS}, got {use}")
        if n_channels == 1 and "q" in use:
            # one channel: the PCA keeps it whole, the residual subspace is empty and Q is 0 on every
            # row. Not a test (it would only widen Bonferroni); nothing left to score is an error.
            use = tuple(k for k in use if k != "q")
            if not use:
                raise ValueError("use: Q needs at least 2 channels (one channel has no residual subspace)")
        impl = impl or DEFAULT_IMPL
        if impl not in IMPLS:
            raise ValueError(f"impl: pick from {IMPLS}, got {impl!r}")
        if impl == "compiled" and _compiled is None:
            raise ImportError("aiotstream._streaming is not built; run `python setup.py build_ext --inplace`")
        self.cfg = cfg
        self.use = tuple(use)
        self.impl = impl
        self.n = n_channels
        self.baseline = RobustBaseline(n_channels, cfg)
        self.mv = MultivariateDetector(n_channels, cfg) if {"t2", "q"} & set(use) else None
        self.spots = {k: SpotCalibrator(cfg) for k in self.use if k != "channels"}
        self.channel_spots = SpotBank(n_channels, cfg) if "channels" in self.use else None
        self.rank = RankTest(n_channels, cfg) if "rank" in self.use else None
        self.tests = len(self.spots) + (n_channels if self.channel_spots else 0)  # Bonferroni
        self.channel_p = np.ones(n_channels)
        self.hyst = Hysteresis(cfg.open_after, cfg.close_after)
        self._kernel = None
        if impl == "compiled":
            # T-squared and Q calibrators as one two-column ring buffer (fitted in arrival order,
            # like the deques of the reference's SpotCalibrators, which this impl does not use); without
            # Q (one channel, or not in ``use``) one column: the kernel reads and writes the second only
            # for Q, and it was 29 KB of zeros in every one-channel asset's memory and snapshot
            self.spots = {}
            self.mv_spots = SpotBank(2 if "q" in self.use else 1, cfg) if self.mv is not None else None
            # the rank test's calibrator as a one-column ring (fitted in arrival order, like mv_spots)
            self.rank_spots = SpotBank(1, cfg) if self.rank is not None else None
            self._kernel = self._make_kernel()
            self._x1 = np.zeros((1, n_channels))
            self._p1 = np.ones(1)
            self._a1 = np.zeros(1, np.uint8)
            self._l1 = np.full(1, -1, np.int64)

    def _make_kernel(self) -> object:
        return _compiled.Ensemble(self.cfg, self.n, self.baseline.kappa, self.baseline, self.channel_spots,
                                  self.mv, self.mv_spots, "t2" in self.use, "q" in self.use, self.tests,
                                  self.rank, self.rank_spots)

    def __getstate__(self) -> dict:
        # the kernel only points at the state arrays below (its scalars are synced after every call):
        # pickle those and bind a new kernel to them on load (e.g. a flow's recovery snapshot)
        return {**self.__dict__, "_kernel": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "rank" not in state:
            # a snapshot from before the rank test: a detector with the per-channel tests gains it with an
            # empty state (as a new detector would have it: scored once its reference has warmup values)
            self.rank = None
            if "channels" in self.use:
                self.use = (*self.use, "rank")
                self.rank = RankTest(self.n, self.cfg)
                self.tests += 1
                if self.impl != "compiled":
                    self.spots["rank"] = SpotCalibrator(self.cfg)
            if self.impl == "compiled":
                self.rank_spots = SpotBank(1, self.cfg) if self.rank is not None else None
                self._l1 = np.full(1, -1, np.int64)  # update()'s one-row lead buffer
        if self.impl == "compiled":
            if _compiled is None:
                raise ImportError("aiotstream._streaming is not built; run `python setup.py "
                                  "build_ext --inplace`")
            self._kernel = self._make_kernel()

    def relevel(self) -> list[ChangeEvent]:
        """Re-baseline every warm channel at its current smoothed value (``level <- fast``) and close the
        alert: the operating condition changed and its new level is normal (issue 17: a change event, not
        an alert). Scale, correlation and tail calibration are kept. Works for both impls (the kernel
        reads these arrays in place). Returns one :class:`ChangeEvent` per re-baselined channel."""
        b = self.baseline
        events = [ChangeEvent(b.rows, int(i), float(b.level[i]), float(b.fast[i]))
                  for i in np.flatnonzero(b.count >= self.cfg.warmup)]
        for e in events:
            b.level[e.channel] = b.fast[e.channel]
            if self.rank is not None:  # the rank test's reference: the old level is no longer normal
                self.rank.reset(e.channel)
        b.shifted[:] = 0
        self.hyst.is_open, self.hyst.run, self.hyst.open_rows = False, 0, 0
        return events

    def update(self, x: np.ndarray) -> RowResult:
        """Score one row (channels,) and learn it."""
        if self._kernel is not None:  # one-row buffers reused: the call costs more than the kernel here
            x1 = self._x1
            x1[0] = x
            z = np.zeros((1, self.n))
            cp = np.ones((1, self.n))
            events = self._run_compiled(x1, self._p1, self._a1, z, cp, self._l1)
            p = float(self._p1[0])
            if self.channel_spots is not None:
                self.channel_p = cp[0].copy()
            return RowResult(1.0 - p, bool(self._a1[0]), p, z[0], events, cp[0], int(self._l1[0]))
        e, events = self.baseline.update(x)
        learn = not self.hyst.is_open
        if self.rank is not None:
            for ev in events:  # a re-baselined channel: its rank reference starts again too
                self.rank.reset(ev.channel)
        p_min = 1.0
        if self.channel_spots is not None:
            a = np.abs(e)
            # never more extreme than a Gaussian deviation of the same size (module docstring, 3)
            gauss = _erfc(a / math.sqrt(2.0)).astype(np.float64)
            cp = np.maximum(self.channel_spots.update(a, learn), gauss)
            self.channel_p = cp
            p_min = float(cp.min())
        if self.mv is not None:
            # the subspace T-squared and Q are computed in (a refresh after this row may change it)
            k, q_unit = self.mv.k, self.mv.q_unit
            t2, q = self.mv.update(e)
            if "t2" in self.spots:
                # never more extreme than T-squared of Gaussian data, chi-squared with k dof (module
                # docstring, 3): the same floor as the channels', for the same reason
                p_t2 = self.spots["t2"].update(t2, learn)
                if k > 0:
                    p_t2 = max(p_t2, chi2_sf(t2 * k, k))
                p_min = min(p_min, p_t2)
            if "q" in self.spots:
                p_q = self.spots["q"].update(q, learn)
                if k > 0 and q_unit > 0.0:  # the floor of a weighted sum of p - k squared scores
                    p_q = max(p_q, chi2_sf(q * q_unit, self.n - k))
                p_min = min(p_min, p_q)
        cp_row = self.channel_p.copy()
        lead = -1
        if self.rank is not None:
            # one test over the channels: the largest |z|, its own tail, floored at n Gaussian tails;
            # the reference also learns once an alert has lasted accept rows (RankTest docstring)
            zr = np.abs(self.rank.update(x, learn or self.hyst.open_rows >= self.cfg.accept))
            zm = float(zr.max())
            p_r = max(self.spots["rank"].update(zm, learn), min(1.0, self.n * math.erfc(zm / math.sqrt(2.0))))
            if p_r < p_min:  # the row's smallest p: its channel leads the explanation, with that p
                lead = int(np.argmax(zr))
                cp_row[lead] = min(cp_row[lead], p_r)
                p_min = p_r
            if self.channel_spots is not None:
                self.channel_p = cp_row
        p = min(1.0, self.tests * p_min)
        alert = self.hyst.update(p < self.cfg.risk, quiet=p >= self.cfg.close_risk)
        return RowResult(1.0 - p, alert, p, e, events, cp_row.copy(), lead)

    def update_block(self, x: np.ndarray) -> BlockResult:
        """Score a block of rows (rows, channels) in order and learn them; any split of a stream into
        blocks gives the same results as one block."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n:
            raise ValueError(f"expected (rows, {self.n}) readings, got shape {x.shape}")
        rows = len(x)
        events: list[ChangeEvent] = []
        if self._kernel is None:
            p = np.ones(rows)
            alert = np.zeros(rows, np.uint8)
            z = np.zeros((rows, self.n))
            cp = np.ones((rows, self.n))
            lead = np.full(rows, -1, np.int64)
            for i in range(rows):
                r = self.update(x[i])
                p[i], alert[i], z[i], events = r.p, r.alert, r.z, events + r.events
                cp[i] = r.channel_p
                lead[i] = r.lead
        else:  # the kernel writes every entry of every row (the lead's -1 too): no fill needed
            p = np.empty(rows)
            alert = np.empty(rows, np.uint8)
            z = np.empty((rows, self.n))
            cp = np.empty((rows, self.n))
            lead = np.empty(rows, np.int64)
            events = self._run_compiled(x, p, alert, z, cp, lead)
            if rows and self.channel_spots is not None:
                self.channel_p = cp[-1].copy()
        return BlockResult(1.0 - p, alert.view(np.bool_), p, z, cp, events, lead)

    def _run_compiled(self, x: np.ndarray, p: np.ndarray, alert: np.ndarray, z: np.ndarray,
                      cp: np.ndarray, lead: np.ndarray) -> list[ChangeEvent]:
        """The kernel over all rows of x, with the PCA refreshes and change events in between: the loop
        (``Ensemble.run`` until the rows are done; after a run, its change events and a refresh due,
        ``self.mv._refresh()`` and ``set_basis``; this detector's scalars synced with the kernel's
        before and after) is ``Ensemble.run_block``, compiled: one call per block."""
        return self._kernel.run_block(x, p, alert, z, cp, lead, self, ChangeEvent)

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score a (rows, channels) array: (score, alert) arrays."""
        x = np.asarray(x, dtype=np.float64)
        if self._kernel is not None:
            b = self.update_block(x)
            return b.score, b.alert
        score = np.zeros(len(x))
        alert = np.zeros(len(x), bool)
        for i in range(len(x)):
            r = self.update(x[i])
            score[i], alert[i] = r.score, r.alert
        return score, alert


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer on uint64 values (wrapping), as ``_streaming._mix64``."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _sorted_copy_of(ring: np.ndarray, srt: np.ndarray, fill: np.ndarray) -> bool:
    """Whether every row ``j`` of ``srt`` is ``ring[j, :fill[j]]`` sorted with zero bits after it, and that
    reference holds no -0.0 (the numpy twin of ``_streaming.sorted_copy_of``): the order is checked, the
    values by the wrapping sums of their mixed bits (order-free; another multiset changes them with near
    certainty). Linear, no sort: it runs for every snapshot of every touched asset.

    >>> r, f = np.array([[3.0, 1.0, 2.0, 0.0]]), np.array([3])
    >>> [_sorted_copy_of(r, np.array([s]), f) for s in ([1.0, 2.0, 3.0, 0.0], [1.0, 2.0, 4.0, 0.0])]
    [True, False]
    """
    if srt.shape != ring.shape or len(fill) < len(ring):
        return False
    bits, sbits = ring.view(np.uint64), srt.view(np.uint64)
    for j, f in enumerate(fill[:len(ring)].tolist()):
        if not 0 <= f <= ring.shape[1]:
            return False
        s = srt[j, :f]
        if sbits[j, f:].any() or (bits[j, :f] == 0x8000000000000000).any() or not (s[1:] >= s[:-1]).all():
            return False
        if _mix64(bits[j, :f]).sum(dtype=np.uint64) != _mix64(sbits[j, :f]).sum(dtype=np.uint64):  # (wraps)
            return False
    return True


def make_pipeline(kind: str, n_channels: int, config: DetectorConfig | None = None,
                  impl: str | None = None) -> StreamingDetector:
    """``default`` (all statistics), ``channels`` (the per-channel tests only: each channel against its own
    past, the EWMA charts and the rank test) or ``multivariate`` (T-squared, Q: the channels' relations)."""
    use = {"default": StreamingDetector.STATS, "channels": ("channels", "rank"),
           "multivariate": ("t2", "q")}[kind]
    return StreamingDetector(n_channels, config, use, impl)

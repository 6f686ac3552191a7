"""The calibrated window detector (issue 17): waveform window features -> a tail probability, an alert
with persistence, and operating-condition changes as change events, not alerts.

The z-score detector (:mod:`aiotstream.models.online`) alerts when one feature is 9.2 of its standard
deviations off (a score of 0.9): a raw threshold tuned to a stationary simulator. On a plant whose load
changes, whose sensors pick up interference bursts and whose machines are reset, it alerts on all of
those (``aiotstream evaluate --simulate realistic``: precision 0.36, see docs/detection.md). This
detector scores the same feature row the principled way the scalar streaming detector does
(:mod:`aiotstream.models.streaming`), with what waveform windows need on top:

1. **Robust baseline per feature**: level and scale from the first ``warmup`` windows (mean and sample
   variance), then an exponentially weighted update (``halflife`` windows) with Huber weights on the
   level and a redescending ``rho`` on the scale (:class:`~aiotstream.models.streaming.RobustBaseline`'s
   rules, same consistency constant), never while an alert is open. ``z = (y - level) / scale``.
2. **Operating condition from the asset's own signals.** Amplitude features (``std rms min max p2p`` of a
   vibration channel) are scored as ``log |value|``; a change of load or speed multiplies every channel's
   amplitude by the same factor, so the **load factor** ``g`` of a window is the median over the
   channels of ``log rms - its baseline``, and every amplitude feature is scored after subtracting ``g``
   (powers, ``band_*`` ``e1x`` ``e2x``, after ``2 g``). Shape features (crest, kurtosis, ...) do not
   depend on the amplitude. A fault that changes some channels, or the shape, still shows; a change
   that scales all channels alike is the operating condition, not a fault (with one vibration channel
   there is no common mode and ``g`` is 0).
3. **Transitions re-baseline, with a change event.** Columns that are not a vibration channel's
   (temperatures, process values) follow the load by an unknown law. While ``g`` moves away from its
   recent reference by more than ``change_k`` of its own spread (and for ``settle`` windows after), the
   detector is in a *transition*: those columns are not scored and their level follows them (a
   re-baseline); the start of each transition is a change event (``changes`` counts them, ``transition``
   says whether one is on). The flow holds the asset's scalar detector alarms meanwhile.
4. **Calibrated probability.** Each feature's two-sided tail of Student's t with the scale's effective
   sample size (:meth:`CalibratedWindowDetector.tail`: a scale learnt from 20 windows is uncertain; the
   Gaussian tail once it has a few hundred), Bonferroni over the features: ``p = min(1, m * min_i p_i)``;
   the score is ``1 - p``.
5. **Persistence.** A window is an alarm window of a group when the group's ``p < risk`` (1e-3). An alert
   opens when ``shape_after`` (3) of the last ``shape_of`` (6) windows are alarm windows of the shape
   features (crest, kurtosis, impulse, shape factor), or ``level_after`` (8) of the last ``level_of`` (8) of
   the others (levels: amplitudes, zero-crossing rate, mean, skewness, temperatures), and closes after
   ``close_after`` (2) windows with ``p >= close_risk`` (0.01; the alert book's ``clear_windows`` add
   theirs). Additive broadband interference and load change a channel's energy, not the shape of its
   distribution, so a level excursion must last longer than an interference burst (a few seconds) before it
   is a fault; an impulsive or a stuck signal changes the shape and opens at once. A channel's shape
   evidence counts for the fast opening only when its shape moved more than its energy (``std``, ``rms``)
   rose: noise added to a tone-dominated channel moves its crest and shape factor a little and its energy a
   lot.

Defaults and the figures behind them are in docs/detection.md (*Window features*). One configuration
for every asset; nothing is fitted per dataset.

>>> rng = np.random.default_rng(0)
>>> cols = ["x.rms", "y.rms", "z.rms", "x.kurtosis"]
>>> d = CalibratedWindowDetector(cols)
>>> for _ in range(60):
...     _ = d.score_learn(np.r_[1 + 0.01 * rng.standard_normal(3), 3 + 0.1 * rng.standard_normal()])
>>> [d.score_learn(np.r_[1.3 + 0.01 * rng.standard_normal(3), 3.0]) for _ in range(10)][-1] < 0.5  # load
True
>>> d.alert, d.changes
(False, 1)
"""
from __future__ import annotations

import math
import weakref

import numpy as np

from aiotstream.models.streaming import _scale_consistency

try:  # the compiled step past the warm-up (ext/_streaming.pyx); score_learn's Python code is its reference
    from aiotstream._streaming import calibrated_step as _compiled_step
except ImportError:  # not built: `python setup.py build_ext --inplace`
    _compiled_step = None

AMPLITUDE = frozenset({"std", "rms", "min", "max", "p2p"})
"""Features of a vibration channel that scale with its amplitude (scored as log |value| - g)."""
POWER_PREFIXES = ("band_", "e1x", "e2x")
"""Spectral powers of a channel: scale with the amplitude squared (log |value| - 2 g)."""
SHAPE = frozenset({"crest", "kurtosis", "impulse", "shape"})
"""Features of a channel's distribution that no amplitude change moves: the fast-opening group. Not
``skewness``: impulses of either sign (bearing impacts, spikes) do not move it, and its estimator's spread
grows when broadband noise is added to a tone-dominated signal (interference), as an energy feature's
does."""
ENERGY = frozenset({"std", "rms"})
"""A channel's energy: what its shape's change is compared with
(:meth:`CalibratedWindowDetector._fast_columns`); not ``min max p2p``, which spikes move."""


def student_sf2(z: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """Two-sided tail ``P(|T| >= |z|)`` of Student's t with ``dof`` degrees of freedom (scipy's ``stdtr``,
    a ufunc: vectorized, no Python loop)."""
    from scipy.special import stdtr

    return np.minimum(1.0, 2.0 * stdtr(dof, -np.abs(z)))


# the detector's arrays fixed by its columns and settings (index arrays, masks, multipliers): the same for
# every asset of a site, so every detector holding equal ones holds one read-only array (3 KB an asset
# of 55 in the waveform soak); the table forgets an array once no detector holds it
_CONFIG_ARRAYS = ("rms_idx", "g_mult", "log_cols", "shape", "channel", "amp_cols", "process", "_log_idx",
                  "_proc_idx", "_shape_idx", "_level_idx", "_ch_shape", "_ch_amp", "_shape_ch")
_SHARED: weakref.WeakValueDictionary[tuple, np.ndarray] = weakref.WeakValueDictionary()


def _shared(a: np.ndarray) -> np.ndarray:
    """The one read-only array equal to ``a`` (same dtype, shape and bytes), made of a copy of ``a`` the
    first time."""
    key = (a.dtype.str, a.shape, a.tobytes())
    got = _SHARED.get(key)
    if got is None:
        got = np.array(a, copy=True)
        got.flags.writeable = False
        _SHARED[key] = got
    return got


def _padded(groups: list[np.ndarray], pad: int) -> np.ndarray:
    """Index arrays of unequal length as one (groups, longest) array padded with ``pad``."""
    width = max((len(g) for g in groups), default=0)
    out = np.full((len(groups), max(width, 1)), pad, dtype=np.intp)
    for i, g in enumerate(groups):
        out[i, : len(g)] = g
    return out


class CalibratedWindowDetector:
    """The calibrated window detector (module docstring). ``columns`` are the window feature columns
    (``<channel>.<feature>``; a column whose prefix names no channel with an ``rms`` column, e.g.
    ``temperature.mean``, is a condition-dependent level)."""

    name = "calibrated"
    version = "1"
    _compiled = True  # (False: every window by the Python reference, for the tests' comparisons)

    def __init__(self, columns: list[str], warmup: int = 20, halflife: float = 600.0, huber_c: float = 3.0,
                 risk: float = 1e-3, close_risk: float = 0.01, shape_after: int = 3, level_after: int = 8,
                 close_after: int = 2, change_k: float = 4.0, settle: int = 10, load_halflife: float = 10.0,
                 shape_features: frozenset[str] = SHAPE, shape_of: int = 6, level_of: int | None = None,
                 lead_vs: frozenset[str] = ENERGY):
        self.columns = list(columns)
        n = len(self.columns)
        parts = [c.split(".", 1) if "." in c else [c, ""] for c in self.columns]
        vib = {p[0] for p in parts if p[1] == "rms"}
        self.rms_idx = np.array([i for i, p in enumerate(parts) if p[1] == "rms"], dtype=np.intp)
        use_load = len(self.rms_idx) >= 2
        self.g_mult = np.array([(1.0 if p[1] in AMPLITUDE else 2.0 if p[1].startswith(POWER_PREFIXES)
                                 else 0.0) if p[0] in vib else 0.0 for p in parts])
        self.log_cols = self.g_mult > 0
        if not use_load:
            self.g_mult[:] = 0.0
        self.shape = np.array([p[0] in vib and p[1] in shape_features for p in parts])
        chans = sorted(vib)
        self.channel = np.array([chans.index(p[0]) if p[0] in vib else -1 for p in parts], dtype=np.intp)
        self.n_channels = len(chans)
        self.amp_cols = self.g_mult > 0
        self.process = np.array([p[0] not in vib for p in parts])  # follows the load by an unknown law
        self.warmup, self.huber_c = int(warmup), float(huber_c)
        self.alpha = 1.0 - 0.5 ** (1.0 / halflife)
        self.kappa = _scale_consistency(self.huber_c)
        self.risk, self.close_risk = float(risk), float(close_risk)
        self.shape_after, self.level_after = int(shape_after), int(level_after)
        self.close_after = int(close_after)
        self.change_k, self.settle = float(change_k), int(settle)
        self.g_alpha = 1.0 - 0.5 ** (1.0 / load_halflife)
        self.tests = max(n, 1)
        # index arrays for the per-window path (a handful of numpy calls on ~40 values: their count is the
        # cost, so masks are turned into indices once here)
        self._log_idx = np.flatnonzero(self.log_cols)
        self._use_load = bool(self.g_mult.any())
        self._proc_idx = np.flatnonzero(self.process)
        self._shape_idx = np.flatnonzero(self.shape)
        self._level_idx = np.flatnonzero(~self.shape)
        # per channel, its shape and its amplitude columns, padded with n (|z| of 0 there)
        self._ch_shape = _padded([np.flatnonzero(self.shape & (self.channel == c))
                                  for c in range(len(chans))], n)
        energy = np.array([p[0] in vib and p[1] in lead_vs for p in parts])
        self._ch_amp = _padded([np.flatnonzero(energy & (self.channel == c)) for c in range(len(chans))], n)
        # persistence as k of the last n windows (n = k: consecutive)
        self.shape_of = max(int(shape_of), self.shape_after)
        self.level_of = max(int(level_of or level_after), self.level_after)
        self._hist_shape: list[bool] = []
        self._hist_level: list[bool] = []

        self._shape_ch = self.channel[self._shape_idx]
        # |z| at or under this cannot matter: its Gaussian tail (below any Student tail) times m is >= 1
        from scipy.special import erfcinv

        self._z_cut = float(math.sqrt(2.0) * erfcinv(min(1.0, 1.0 / self.tests)))
        self._share_config()
        self._warm_all = False
        self._az = np.zeros(n + 1)  # |z| and a trailing 0 (per-window scratch)
        self._up = np.zeros(n + 1)  # max(z, 0) and a trailing 0
        # state
        self.count = np.zeros(n, np.int64)  # values seen per column during its warm-up (Welford)
        self.level = np.zeros(n)
        self.var = np.zeros(n)              # scale^2 (Welford M2 during the warm-up)
        self.learned = np.zeros(n)          # values the scale has learnt from (its effective sample size)
        self.n = 0
        self.g_ref = 0.0                    # the load factor's recent reference
        self.g_var = math.nan               # its spread (NaN until the warm-up ends)
        self._g_rows: list[np.ndarray] = []  # the rms columns during the warm-up (the spread of g)
        self.hold = 0                       # windows left in the current transition
        self.changes = 0                    # transitions (change events) so far
        self.alert = False
        self._quiet = self._run_shape = self._run_level = 0
        self.p = 1.0
        self.g = 0.0
        self.z = np.zeros(n)

    def _share_config(self) -> None:
        for name in _CONFIG_ARRAYS:
            setattr(self, name, _shared(getattr(self, name)))

    def __setstate__(self, state: dict) -> None:
        # a snapshot holds its own copies: shared again on load (the same values; attributes a snapshot from
        # before some of them existed lacks are left to the class defaults, as before)
        self.__dict__.update(state)
        if all(isinstance(state.get(name), np.ndarray) for name in _CONFIG_ARRAYS):
            self._share_config()

    # ---- the Detector protocol ----------------------------------------------------------------------
    @property
    def warm(self) -> bool:
        return self.n >= self.warmup

    @property
    def transition(self) -> bool:
        """Whether the operating condition is changing (or settling) at the latest window."""
        return self.hold > 0

    def transform(self, x: np.ndarray) -> np.ndarray:
        """The scored scale of each feature: log |value| for amplitudes and powers, the value otherwise;
        NaN (and non-finite values) stay missing."""
        return self._transform(x)[0]

    def _transform(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(y, which values are present; None: all of them)."""
        y = np.array(x, dtype=np.float64)
        ok = np.isfinite(y)
        present = None
        if not ok.all():
            y[~ok] = np.nan
            present = ok
        li = self._log_idx
        if li.size:
            with np.errstate(divide="ignore", invalid="ignore"):
                y[li] = np.log(np.abs(y[li]) + 1e-12)
        return y, present

    def load_factor(self, y: np.ndarray) -> float:
        """``g``: the median over the vibration channels of log rms minus its baseline (0 without two)."""
        if not self._use_load:
            return 0.0
        idx = self.rms_idx
        d = (y[idx] - self.level[idx]).tolist()
        warm = (self.count[idx] >= self.warmup).tolist()
        vals = sorted(v for v, w in zip(d, warm) if w and not math.isnan(v))
        k = len(vals)
        if not k:
            return math.nan
        return vals[k // 2] if k % 2 else 0.5 * (vals[k // 2 - 1] + vals[k // 2])

    def _fast_columns(self, az: np.ndarray, z: np.ndarray) -> np.ndarray:
        """The columns of the fast-opening group this window (``az``: ``|z|`` with a trailing 0): the shape
        features of the channels whose shape moved more than their energy rose (largest ``|z|`` of the
        shape features above the largest rise, in scales, of ``std``/``rms``). A shape change that comes
        with a larger rise of energy on the same channel (interference added to a tone-dominated signal,
        the edges of a burst inside a window) is evidence about that energy and waits as long. Additive
        interference only adds energy: a channel whose energy collapsed (a stuck or dead sensor) keeps its
        shape evidence fast."""
        if not self._shape_idx.size:
            return self._shape_idx
        up = self._up
        np.maximum(z, 0.0, out=up[:-1])  # up[-1] stays 0 (the padding)
        lead = az[self._ch_shape].max(axis=1) > up[self._ch_amp].max(axis=1)
        if lead.all():
            return self._shape_idx
        return self._shape_idx[lead[self._shape_ch]]

    def _not(self, fast: np.ndarray) -> np.ndarray:
        """Every other column (the level group this window)."""
        if fast.size == self._shape_idx.size:
            return self._level_idx
        mask = np.ones(len(self.level), bool)
        mask[fast] = False
        return np.flatnonzero(mask)

    def _group_p(self, az: np.ndarray, cols: np.ndarray, m: int) -> float:
        """Bonferroni ``min(1, m min p_i)`` over ``cols``: Student's tail of the largest ``|z|`` when the
        columns share their degrees of freedom (the usual case: no value missing), else of each column
        beyond the Gaussian cut (below it ``m p_i >= 1`` whatever the tail)."""
        if not cols.size:
            return 1.0
        a = az[cols]
        j = int(a.argmax())
        if a[j] <= self._z_cut:
            return 1.0
        dof = self.learned[cols]
        if dof.min() == dof.max():
            d1 = max(min(float(dof[0]), 2.0 / self.alpha) - 1.0, 1.0)
            return min(1.0, m * float(student_sf2(a[j], d1)))
        cand = a > self._z_cut
        d = np.maximum(np.minimum(dof[cand], 2.0 / self.alpha) - 1.0, 1.0)
        return min(1.0, m * float(student_sf2(a[cand], d).min()))

    def dof(self) -> np.ndarray:
        """Degrees of freedom of each feature's tail: values learnt, at most ``2 / alpha``, minus one."""
        return np.maximum(np.minimum(self.learned, 2.0 / self.alpha) - 1.0, 1.0)

    def tail(self, z: np.ndarray) -> np.ndarray:
        """Each feature's two-sided tail probability: Student's t with the scale's effective sample size
        minus one as degrees of freedom (:meth:`dof`), so a scale estimated from the 20 warm-up windows
        does not make a 4-sigma window "impossible"; close to the Gaussian ``erfc(|z| / sqrt 2)`` once a few
        hundred windows are learnt."""
        return student_sf2(z, self.dof())

    def scale(self) -> np.ndarray:
        return np.sqrt(np.maximum(self.var, 0.0)) + 1e-9 * (1.0 + np.abs(self.level))

    def _seed(self, y: np.ndarray, present: np.ndarray | None = None) -> np.ndarray | None:
        """Welford warm-up of the columns that have fewer than ``warmup`` values; returns the live ones
        (None: every column)."""
        ok = ~np.isnan(y) if present is None and not self._warm_all else present
        if self._warm_all:
            return ok
        assert ok is not None
        w = ok & (self.count < self.warmup)
        if w.any():
            self.count[w] += 1
            d = y[w] - self.level[w]
            self.level[w] += d / self.count[w]
            self.var[w] += d * (y[w] - self.level[w])
            done = w & (self.count == self.warmup)
            self.var[done] /= max(self.warmup - 1, 1)
            self.learned[w] += 1
        self._warm_all = bool(self.count.min() >= self.warmup) if len(self.count) else True
        live = ok & ~w
        return None if live.all() else live

    def score_learn(self, x: np.ndarray) -> float:
        if self._compiled and _compiled_step is not None and self.n >= self.warmup:
            # the same step past the warm-up, ~4x faster (None: a row it leaves to this code, untouched)
            from scipy.special import stdtr

            score = _compiled_step(self, np.array(x, dtype=np.float64), stdtr, np.log)
            if score is not None:
                return score
        y, present = self._transform(x)
        self.n += 1
        if self.n <= self.warmup:
            self._seed(y, present)
            if self._use_load:
                self._g_rows.append(y[self.rms_idx])
                if self.n == self.warmup:  # the load factor's spread over the warm-up, at the final baseline
                    rows = np.array(self._g_rows) - self.level[self.rms_idx]
                    with np.errstate(all="ignore"):
                        g_w = np.nanmedian(rows, axis=1) if rows.size else np.zeros(0)
                    g_w = g_w[np.isfinite(g_w)]
                    self.g_var = float(np.var(g_w, ddof=1)) if g_w.size > 1 else math.nan
                    self._g_rows = []
            self.p, self.z = 1.0, np.zeros(len(y))
            return 0.0
        live = self._seed(y, present)  # None: every column
        g = self.load_factor(y)
        if not math.isfinite(g):
            g = self.g_ref
        self.g = g
        if self._use_load:
            y -= self.g_mult * g
        sc = self.scale()
        d = y - self.level
        if live is not None:
            d[~live] = 0.0
        z = d / sc
        # operating-condition transition: the load factor leaves its recent reference
        moving = bool(self._use_load and self.g_var > 0
                      and abs(g - self.g_ref) > self.change_k * math.sqrt(self.g_var))
        if moving:
            if self.hold == 0:
                self.changes += 1
            self.hold = self.settle
        held = self.hold > 0
        if held and self._proc_idx.size:
            z[self._proc_idx] = 0.0
        self.z = z
        m = self.tests
        az = self._az
        np.abs(z, out=az[:-1])  # az[-1] stays 0: the padding of the per-channel index arrays
        fast_cols = self._fast_columns(az, z)
        p_shape = self._group_p(az, fast_cols, m)
        p_level = self._group_p(az, self._not(fast_cols), m)
        self.p = min(p_shape, p_level)
        hs, hl = self._hist_shape, self._hist_level
        hs.append(p_shape < self.risk)
        hl.append(p_level < self.risk)
        if len(hs) > self.shape_of:
            del hs[0]
        if len(hl) > self.level_of:
            del hl[0]
        self._run_shape, self._run_level = sum(hs), sum(hl)
        if self.alert:
            self._quiet = self._quiet + 1 if self.p >= self.close_risk else 0
            if self._quiet >= self.close_after:
                self.alert, self._quiet = False, 0
                hs.clear()
                hl.clear()
                self._run_shape = self._run_level = 0
        elif self._run_shape >= self.shape_after or self._run_level >= self.level_after:
            self.alert, self._quiet = True, 0
        # learning
        if not self.alert:
            c, a = self.huber_c, self.alpha
            zz = z * z
            big = zz > c * c
            if big.any():
                az2 = np.maximum(zz, c * c)
                w_loc = np.where(big, (c * c) / az2, 1.0)
                rho = np.where(big, c ** 4 / az2, zz)
            else:
                w_loc, rho = 1.0, zz
            upd = a * (rho * sc * sc / self.kappa - self.var)
            if live is None:
                self.level += a * w_loc * d
                self.var += upd
                self.learned += 1
            else:
                self.level[live] += (a * w_loc * d)[live] if big.any() else a * d[live]
                self.var[live] += upd[live]
                self.learned[live] += 1
            if not moving:  # the load factor's spread is learnt from steady windows only
                dg = g - self.g_ref
                self.g_var += a * (min(dg * dg, c * c * self.g_var) - self.g_var)
            self.g_ref += (0.5 if moving else self.g_alpha) * (g - self.g_ref)
        if held and self._proc_idx.size:  # condition-dependent levels follow the new condition (re-baselined)
            pi = self._proc_idx
            if live is not None:
                pi = pi[live[pi]]
            self.level[pi] = y[pi]
        if self.hold > 0 and not moving:
            self.hold -= 1
        return 1.0 - self.p

    def learn_label(self, x: np.ndarray, is_fault: bool) -> bool:
        """An operator's ``false_alarm`` label: the window that opened the alert is normal, so every
        feature's scale widens until the window is within ``huber_c`` scales of its level (at the window's
        load factor); a ``true_fault`` teaches nothing (alert windows were kept out of the baseline).
        Returns whether a scale changed.

        >>> rng = np.random.default_rng(1)
        >>> d = CalibratedWindowDetector(["a.rms", "b.rms", "t"])
        >>> for _ in range(40):
        ...     _ = d.score_learn(np.r_[1 + 0.01 * rng.standard_normal(2), 5 + 0.1 * rng.standard_normal()])
        >>> odd = np.array([1.0, 1.0, 6.0])
        >>> _ = d.score_learn(odd); before = d.p
        >>> d.learn_label(odd, is_fault=False), before < d.risk, (d.score_learn(odd), d.p)[1] > d.risk
        (True, True, True)
        """
        if is_fault or not self.warm:
            return False
        y, _ = self._transform(x)
        g = self.load_factor(y)
        y = y - self.g_mult * (g if math.isfinite(g) else self.g_ref)
        d = y - self.level
        need = (d / self.huber_c) ** 2
        widen = np.isfinite(need) & (self.count >= self.warmup) & (need > self.var)
        self.var[widen] = need[widen]
        return bool(widen.any())

    def explain(self, x: np.ndarray, k: int = 3) -> list[dict]:
        """The ``k`` features furthest from their baseline (in the last scored window's ``z``), with the
        value and the normal band (level +/- huber_c scales, in the feature's own units, at the window's
        load). An amplitude also gets ``z_before_load`` (its deviation with the load factor left in) and
        ``load_factor`` (``exp(g)``, squared for powers): with radial channels up and the axial one not
        (an imbalance), the common mode rises and the axial channel's ``z`` is the largest (low), while
        ``z_before_load`` shows the radial ones high."""
        x = np.asarray(x, dtype=np.float64)
        z = self.z
        top = np.argsort(-np.abs(z), kind="stable")[:k]
        sc = self.scale()
        out = []
        for i in top:
            lo = self.level[i] - self.huber_c * sc[i] + self.g_mult[i] * self.g
            hi = self.level[i] + self.huber_c * sc[i] + self.g_mult[i] * self.g
            if self.log_cols[i]:
                lo, hi = math.exp(lo), math.exp(hi)
                if x[i] < 0:  # a negative amplitude (min): its magnitude was scored
                    lo, hi = -hi, -lo
            e = {"feature": self.columns[i], "value": float(x[i]), "z": round(float(z[i]), 2),
                 "baseline_low": float(lo), "baseline_high": float(hi)}
            if self.g_mult[i] > 0:  # an amplitude: also how far it is before the load factor is taken out
                e["z_before_load"] = round(float(z[i] + self.g_mult[i] * self.g / sc[i]), 2)
                e["load_factor"] = round(math.exp(self.g_mult[i] * self.g), 4)
            out.append(e)
        return out

"""Candidate changes to the streaming detector's defaults, measured on SKAB per group (not adopted).

``python -m benchmarks.skab_variants [NAME ...]`` runs the Python reference
(:class:`aiotstream.models.streaming.StreamingDetector`, ``impl="python"``) with one candidate change
at a time, each stated as the general rule it stands for, and prints online F1/FAR/MAR overall and per
SKAB group (valve1, valve2, other), alert openings on ``anomaly-free.csv``, and where the errors are:
fault rows before the first alert (``onset``), fault rows after it without an alert (``tail``), rows of
faults never alerted (``missed``), false alert rows before and after each fault (``fp_pre``,
``fp_post``). The candidates are subclasses written here, not options of the product: none of them
helped every group without raising false alarms (see docs/detection.md, "Issue 17's bar per group")
until branch skab-new's ``rank`` and ``rank-max``; ``rank-max`` is now the product's rank test, so the
reference here includes it, and the ``rank*`` candidates add a second rank test on top of it (the table
of docs/detection.md, "Candidates of branch skab-new", was measured before, at git 1ae042b).

Candidates (each one rule; parameters taken from an existing default, not fitted):

* ``cauchy``: the Cauchy combination (Liu & Xie 2020) of the tests' p-values instead of Bonferroni,
  over the evidence half (p clipped to 0.5: a test with no evidence adds nothing; the tail of a sum of
  heavy-tailed terms is set by its largest term, so the clip does not change small p-values). More
  powerful when several channels move together; equal to Bonferroni when one channel does.
* ``cusum-100``, ``cusum-1000``: a CUSUM on the row's surprise ``-ln p`` with reference ``ln 100`` or
  ``ln 1000``, ``S = max(0, S - ln p - k)``; ``min(p, exp(-S))`` is the row's p (a sustained small shift
  accumulates).
* ``cusum-open-100``: the same CUSUM may open an alert, but closing looks at the row's own p.
* ``scale-steady``: a row the baseline down-weights (``|z| > huber_c``) updates the scale at the
  steady-state rate ``1 - 2^(-1/halflife)``, not at the start-up running mean's ``1/n`` (in a short
  history a fault's rows would otherwise widen the scale; SKAB valve1/0: 3x during its fault).
* ``scale-alert``: while an alert is open the scale learns at the steady-state rate only.
* ``level-startup``: the level learns with the same bias-corrected start (running mean) as the scale.
* ``close-decay``: an open alert also counts a row as quiet when its surprise has fallen below half of
  the episode's peak (an after-effect that decays is not new evidence).
* ``gauss-prior``: before a channel's tail is fitted (the first ``spot_init`` rows), its p is the
  Gaussian tail of ``|z|`` instead of 1.

Branch skab-f1's candidates (``NEW``; parts joined by ``+`` combine, ``noop`` is the harness with no
change, equal to the reference row for row). Each new statistic is one more Bonferroni test (or ``n``),
calibrated like the channels: its own SPOT tail (window, refits and learning gate of the defaults),
never below a Gaussian tail:

* ``loo``: cross-channel regression. Each channel's residual from its (ridge, exponentially forgetting:
  the PCA's shrunk correlation) regression on the other channels' charts, over its residual sd:
  ``(P e)_j / sqrt(P_jj)`` with ``P`` the inverse of that correlation, refreshed with the PCA; ``n``
  tests.
* ``slow-60``: a second EWMA chart per channel spanning 60 rows (``lambda = 2/61``), scaled by its own
  spread like the first; ``n`` tests.
* ``slow-60-max``: the same 60-row charts as one test (the largest ``|z|``, its own SPOT tail, floor ``n``
  Gaussian tails).
* ``trend-60``: a lag feature, the slope: a 60-row EWMA chart of each channel's signed one-row change
  ``x_t - x_(t-1)``, one test (the largest ``|z|``, as ``slow-60-max``).
* ``disp``: a dispersion chart per channel: the baseline's EWMA chart (same defaults) of the one-row
  innovation ``|x_t - x_(t-1)|``, one-sided (more dispersion only); ``n`` tests.
* ``disp-max``: the same charts, one test: the largest channel's ``z`` with its own SPOT tail, floored at
  ``n`` Gaussian tails (Bonferroni's bound). ``disp-max-2``: two-sided (less dispersion too: a stuck
  sensor). ``disp-max-sq``: squared innovations. ``disp-max-fast``: the innovation from the location
  chart's fast mean instead of the previous row. ``disp-med``: the median of the last 5 innovations (a
  single spike moves 2 of them). ``disp-win``: innovations winsorized at ``huber_c`` times the chart's
  level. ``disp-log``: the log of the innovation (a spike k times the usual adds ln k).
* ``chan-max``: the channels as one test (the largest ``|z|``, its own SPOT tail, floor ``n`` Gaussian
  tails) instead of ``n``: calibrated under their dependence instead of Bonferroni's bound.
* ``close-smooth``: an open alert counts a row as quiet when the surprise ``-ln p`` smoothed with the
  chart's ``lambda`` is below ``-ln close_risk`` (a flickering p does not close it).

Branch skab-new's candidates (``SKAB_NEW``; they combine with ``+`` like skab-f1's):

* ``rank``: a distribution-free two-sample rank test per channel: the Mann-Whitney statistic of the last
  ``close_after`` rows against a reference of the channel's older rows (the rows that left the test window
  while no alert was open, at most ``spot_window`` of them; scored once there are ``warmup``), mid-ranks and
  the tie-corrected variance (a whole-unit channel has few values), the variance inflated for the
  reference's lag-1 autocorrelation ``r >= 0`` (AR(1): ``1 + 2 sum_k (1 - k/w) r^k``, the variance of a
  w-row mean over that of w independent rows). ``|z|`` is calibrated like a channel's: its own SPOT tail,
  floored at the Gaussian tail; ``n`` tests. A single spike moves one rank of w, so the statistic's tail in
  normal operation does not carry the channel's spikes. ``rank-max``: the same, one test (the largest
  channel's ``|z|``, floor ``n`` Gaussian tails). ``rank-N``: a test window of N rows (``rank-30``: the
  ``warmup``; a w-row rank statistic stays under about ``sqrt(3 w)``, 5.5 for w = 10, near the alarm level; a little
  more with many ties).
* ``ar``: temporal prediction residuals: an online AR(1) per channel (mean, variance and lag-1
  covariance as exponentially forgetting means with the baseline's halflife and its bias-corrected start);
  the one-step innovation ``x_t - m - phi (x_(t-1) - m)`` goes through the channels' chart (RobustBaseline,
  the same defaults); ``n`` tests. ``ar-max``: one test.
* ``scale-gate``: the scale learns only from rows of a quiet detector (no alert open and no alarm row,
  ``p < risk``, in the last ``close_after`` rows) that are not part of a sustained excursion of the channel
  (``|z| > huber_c`` on ``open_after`` rows in a row or more); the level and the re-baseline after ``accept``
  rows are the default's.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

from aiotstream.models import streaming as S
from benchmarks import skab

_erfc = np.frompyfunc(math.erfc, 1, 1)


class _Baseline(S.RobustBaseline):
    """RobustBaseline with the learning-rate variants (``mode``); the equations otherwise identical."""

    mode = "none"
    alert_open = False
    quiet_rows = 0   # scale-gate: rows since the detector's last alarm row or open alert (set by Variant)
    exc: np.ndarray  # scale-gate: consecutive rows each channel's |z| was above huber_c

    def update(self, x: np.ndarray) -> tuple[np.ndarray, list[S.ChangeEvent]]:
        if self.mode == "none":
            return super().update(x)
        x = np.asarray(x, dtype=np.float64)
        z = np.zeros(self.n)
        events: list[S.ChangeEvent] = []
        live = self._seed(x)
        if live is None:
            return z, events
        cfg = self.cfg
        self.count[live] += 1
        s = self.scale()[live]
        lv = self.level[live]
        xl = np.clip(x[live], lv - S.Z_CLIP * s, lv + S.Z_CLIP * s)
        fast = self.fast[live] + self.lam * (xl - self.fast[live])
        self.fast[live] = fast
        d = fast - lv
        zl = np.clip(d / s, -S.Z_CLIP, S.Z_CLIP)
        z[live] = zl
        c = cfg.huber_c
        az = np.abs(zl)
        big = az > c
        w_loc = np.where(big, (c / np.maximum(az, c)) ** 2, 1.0)
        rho = np.where(big, c ** 4 / np.maximum(az, c) ** 2, zl * zl)
        start = np.maximum(self.alpha, 1.0 / (self.count[live] - cfg.warmup + 1.0))
        a_l = start if self.mode == "level-startup" else self.alpha
        self.level[live] = lv + a_l * w_loc * d
        a_s = start
        if self.mode == "scale-gate":  # learn the scale from quiet rows outside sustained excursions only
            idx = np.flatnonzero(live)
            self.exc[idx] = np.where(big, self.exc[idx] + 1, 0)
            gate = (self.quiet_rows >= cfg.close_after) & (self.exc[idx] < cfg.open_after)
            a_s = np.where(gate, a_s, 0.0)
        if self.mode == "scale-steady":
            a_s = np.where(big, self.alpha, a_s)
        elif self.mode == "scale-alert" and self.alert_open:
            a_s = np.full_like(a_s, self.alpha)
        self.var[live] += a_s * (rho * s * s / self.kappa - self.var[live])
        idx = np.flatnonzero(live)
        self.shifted[idx] = np.where(az > cfg.shift_k, self.shifted[idx] + 1, 0)
        for i in idx[self.shifted[idx] >= cfg.accept]:
            events.append(S.ChangeEvent(self.rows - 1, int(i), float(self.level[i]), float(self.fast[i])))
            self.level[i] = self.fast[i]
            self.shifted[i] = 0
        return z, events


class Variant(S.StreamingDetector):
    """The reference detector with one candidate change (see the module docstring)."""

    def __init__(self, n: int, name: str) -> None:
        super().__init__(n, impl="python")
        self.name = name
        self.baseline = _Baseline(n, self.cfg)
        if name in ("scale-steady", "scale-alert", "level-startup"):
            self.baseline.mode = name
        parts = set(name.split("+"))
        if "scale-gate" in parts:
            self.baseline.mode = "scale-gate"
            self.baseline.exc = np.zeros(n, np.int64)
            self.baseline.quiet_rows = self.cfg.close_after
        rank = [q for q in parts if q in ("rank", "rank-max") or (q.startswith("rank-") and q[5:].isdigit())]
        # (not self.rank: that is the product's RankTest, in the reference since branch rank)
        self.rank_cand = bool(rank)
        if self.rank_cand:  # rank-N: a test window of N rows instead of close_after
            w = int(rank[0][5:]) if rank[0][5:].isdigit() else self.cfg.close_after
            self.r_recent: list[deque] = [deque() for _ in range(n)]  # (value, learnable) of the last w rows
            self.r_buf = np.zeros((self.cfg.spot_window, n))  # the reference: a ring per channel
            self.r_pos = np.zeros(n, np.int64)
            self.r_fill = np.zeros(n, np.int64)
            self.r_sorted = [np.zeros(0) for _ in range(n)]  # the same reference, sorted (for the ranks)
            self.r_ties = [0] * n  # sum over its tie groups of t^3 - t
            self.r_spots = S.SpotBank(n, self.cfg)
            self.r_max_spot = S.SpotCalibrator(self.cfg)
            self.r_max = "rank-max" in parts
            self.r_w = w
        self.ar = "ar" in parts or "ar-max" in parts
        if self.ar:
            self.ar_max = "ar-max" in parts
            self.ar_n = np.zeros(n, np.int64)
            self.ar_m = np.zeros(n)
            self.ar_v = np.zeros(n)
            self.ar_c = np.zeros(n)
            self.ar_prev = np.full(n, np.nan)
            self.ar_base = _Baseline(n, self.cfg)
            self.ar_spots = S.SpotBank(n, self.cfg)
            self.ar_max_spot = S.SpotCalibrator(self.cfg)
        self.cusum = {"cusum-100": 100.0, "cusum-1000": 1000.0, "cusum-open-100": 100.0}.get(name)
        self.s = 0.0
        self.peak = 0.0
        parts = set(name.split("+"))  # candidates of this session combine with "+"
        self.slow = None
        for part in parts:
            if part.startswith("slow-") and part != "slow-60-max":  # slow-N: a second EWMA chart spanning N rows (lambda 2/(N+1))
                self.slow = _Baseline(n, S.DetectorConfig(smooth=2.0 / (float(part[5:]) + 1.0)))
                self.slow_spots = S.SpotBank(n, self.cfg)
        self.slow_max = "slow-60-max" in parts
        if self.slow_max:
            self.slow = _Baseline(n, S.DetectorConfig(smooth=2.0 / 61.0))
            self.smax_spot = S.SpotCalibrator(self.cfg)
        self.trend = "trend-60" in parts
        if self.trend:  # the slope: a 60-row EWMA chart of the signed one-row change
            self.tbase = _Baseline(n, S.DetectorConfig(smooth=2.0 / 61.0))
            self.tmax_spot = S.SpotCalibrator(self.cfg)
            self.tprev = np.full(n, np.nan)
        self.close_smooth = "close-smooth" in parts
        self.ev = 0.0
        self.chan_max = "chan-max" in parts
        if self.chan_max:
            self.cmax_spot = S.SpotCalibrator(self.cfg)
        self.loo = "loo" in parts
        if self.loo:
            self.loo_spots = S.SpotBank(n, self.cfg)
            self.prec: np.ndarray | None = None
        disp = [q for q in parts if q.startswith("disp")]
        self.disp = disp[0] if disp else None
        if self.disp is not None:
            self.vbase = _Baseline(n, self.cfg)  # the EWMA chart of |dx| (same defaults as the channels')
            self.v_spots = S.SpotBank(n, self.cfg)
            self.vmax_spot = S.SpotCalibrator(self.cfg)
            self.prev = np.full(n, np.nan)
            self.hist: list[np.ndarray] = []

    def update(self, x: np.ndarray) -> S.RowResult:
        cfg = self.cfg
        self.baseline.alert_open = self.hyst.is_open
        e, events = self.baseline.update(x)
        learn = not self.hyst.is_open
        ps: list[float] = []
        a = np.abs(e)
        gauss = _erfc(a / math.sqrt(2.0)).astype(np.float64)
        cp = np.maximum(self.channel_spots.update(a, learn), gauss)
        if self.name == "gauss-prior":
            cp = np.where(self.channel_spots.t < np.inf, cp, gauss)
            cp = np.where(self.baseline.count > cfg.warmup, cp, 1.0)
        self.channel_p = cp
        if self.chan_max:  # one test: the largest |z|, its own tail (floor: n Gaussian tails)
            am = float(a.max())
            ps.append(max(self.cmax_spot.update(am, learn), min(1.0, self.n * math.erfc(am / math.sqrt(2.0)))))
        else:
            ps += cp.tolist()
        k, q_unit = self.mv.k, self.mv.q_unit
        t2, q = self.mv.update(e)
        p_t2 = self.spots["t2"].update(t2, learn)
        ps.append(max(p_t2, S.chi2_sf(t2 * k, k)) if k > 0 else p_t2)
        if "q" in self.spots:
            p_q = self.spots["q"].update(q, learn)
            if k > 0 and q_unit > 0.0:  # Q's chi-squared floor, as the reference
                p_q = max(p_q, S.chi2_sf(q * q_unit, self.n - k))
            ps.append(p_q)
        if self.slow_max:
            zs, _ = self.slow.update(x)
            ps.append(self._max_test(np.abs(zs), self.smax_spot, learn))
        elif self.slow is not None:
            zs, _ = self.slow.update(x)
            a_s = np.abs(zs)
            g_s = _erfc(a_s / math.sqrt(2.0)).astype(np.float64)
            ps += np.maximum(self.slow_spots.update(a_s, learn), g_s).tolist()
        if self.loo:
            u = self._loo(e)
            self._loo_learn()
            a_u = np.abs(u)
            g_u = _erfc(a_u / math.sqrt(2.0)).astype(np.float64)
            ps += np.maximum(self.loo_spots.update(a_u, learn), g_u).tolist()
        if self.disp is not None:
            ps += self._dispersion(x, learn)
        if self.rank_cand:
            zr = self._rank_z(x, learn)
            if self.r_max:
                ps.append(self._max_test(zr, self.r_max_spot, learn))
            else:
                g_r = _erfc(zr / math.sqrt(2.0)).astype(np.float64)
                ps += np.maximum(self.r_spots.update(zr, learn), g_r).tolist()
        if self.ar:
            za = np.abs(self._ar_innovation_z(x))
            if self.ar_max:
                ps.append(self._max_test(za, self.ar_max_spot, learn))
            else:
                g_a = _erfc(za / math.sqrt(2.0)).astype(np.float64)
                ps += np.maximum(self.ar_spots.update(za, learn), g_a).tolist()
        if self.trend:
            xv = np.asarray(x, dtype=np.float64)
            dx = xv - self.tprev
            self.tprev = np.where(np.isfinite(xv) & (np.abs(xv) <= S.MAX_ABS), xv, self.tprev)
            zt, _ = self.tbase.update(dx)
            ps.append(self._max_test(np.abs(zt), self.tmax_spot, learn))
        if self.rank is not None:  # the product's rank test (in the default since branch rank): one test
            for ev in events:
                self.rank.reset(ev.channel)
            zr = np.abs(self.rank.update(x, learn or self.hyst.open_rows >= cfg.accept))
            ps.append(self._max_test(zr, self.spots["rank"], learn))
        m = len(ps)
        if self.name == "cauchy":
            pc = np.clip(np.array(ps), 1e-300, 0.5)
            t = float(np.sum(np.where(pc < 1e-15, 1.0 / (pc * math.pi), np.tan((0.5 - pc) * math.pi)))) / m
            p = min(1.0, 0.5 - math.atan(t) / math.pi if t < 1e15 else 1.0 / (t * math.pi))
        else:
            p = min(1.0, m * min(ps))
        alarm_p = p
        if self.cusum is not None:
            self.s = max(0.0, self.s - math.log(max(p, 1e-300)) - math.log(self.cusum))
            alarm_p = min(p, math.exp(-self.s))
            if self.name != "cusum-open-100":
                p = alarm_p
        quiet = p >= cfg.close_risk
        if self.name == "close-decay":
            ev = -math.log(max(p, 1e-300))
            if self.hyst.is_open:
                self.peak = max(self.peak, ev)
                quiet = quiet or (p >= cfg.risk and ev < 0.5 * self.peak)
            else:
                self.peak = ev
        if self.close_smooth:  # quiet when the surprise smoothed like the chart (lambda) is below -ln close_risk
            ev = -math.log(max(p, 1e-300))
            self.ev = ev if not self.hyst.is_open else self.ev + cfg.smooth * (ev - self.ev)
            quiet = self.ev < -math.log(cfg.close_risk)
        alert = self.hyst.update(alarm_p < cfg.risk, quiet=quiet)
        b = self.baseline  # scale-gate: rows since the last alarm row or open alert (read by the next row)
        b.quiet_rows = 0 if (alarm_p < cfg.risk or alert) else b.quiet_rows + 1
        return S.RowResult(1.0 - p, alert, p, e, events, self.channel_p.copy())

    def _rank_z(self, x: np.ndarray, learn: bool) -> np.ndarray:
        """``rank``: each channel's |Mann-Whitney z| of its last w rows against its reference (docstring)."""
        w = self.r_w
        z = np.zeros(self.n)
        xv = np.asarray(x, dtype=np.float64)
        for j in range(self.n):
            v = xv[j]
            if not (math.isfinite(v) and abs(v) <= S.MAX_ABS):
                continue  # a missing value: neither tested nor learned
            rec = self.r_recent[j]
            rec.append((v, learn))
            if len(rec) > w:
                old, ok = rec.popleft()
                if ok:  # into the reference ring (chronological order kept for the autocorrelation)
                    if self.r_fill[j] == self.cfg.spot_window:  # the oldest leaves the sorted copy
                        self._sorted_remove(j, float(self.r_buf[self.r_pos[j], j]))
                    self._sorted_insert(j, old)
                    self.r_buf[self.r_pos[j], j] = old
                    self.r_pos[j] = (self.r_pos[j] + 1) % self.cfg.spot_window
                    self.r_fill[j] = min(self.r_fill[j] + 1, self.cfg.spot_window)
            if len(rec) < w or self.r_fill[j] < self.cfg.warmup:
                continue
            col = self.r_buf[:, j]
            ref = (col[: self.r_fill[j]] if self.r_fill[j] < self.cfg.spot_window
                   else np.concatenate((col[self.r_pos[j]:], col[: self.r_pos[j]])))
            z[j] = mann_whitney_z(np.fromiter((a for a, _ in rec), np.float64, w), ref,
                                  self.r_sorted[j], self.r_ties[j])
        return np.abs(z)

    def _sorted_insert(self, j: int, v: float) -> None:
        """The reference kept sorted too, with its tie total sum(t^3 - t) (integers: exact)."""
        srt = self.r_sorted[j]
        lo, hi = np.searchsorted(srt, v, "left"), np.searchsorted(srt, v, "right")
        c = int(hi - lo)
        self.r_ties[j] += 3 * c * c + 3 * c  # (c+1)^3 - (c+1) - (c^3 - c)
        self.r_sorted[j] = np.insert(srt, hi, v)

    def _sorted_remove(self, j: int, v: float) -> None:
        srt = self.r_sorted[j]
        lo, hi = np.searchsorted(srt, v, "left"), np.searchsorted(srt, v, "right")
        c = int(hi - lo)
        self.r_ties[j] -= 3 * c * c - 3 * c  # c^3 - c - ((c-1)^3 - (c-1))
        self.r_sorted[j] = np.delete(srt, lo)

    def _ar_innovation_z(self, x: np.ndarray) -> np.ndarray:
        """``ar``: the chart's z of each channel's one-step AR(1) innovation (docstring)."""
        xv = np.asarray(x, dtype=np.float64)
        ok = np.isfinite(xv) & (np.abs(xv) <= S.MAX_ABS)
        pair = ok & np.isfinite(self.ar_prev)
        u = np.full(self.n, np.nan)
        phi = np.where(self.ar_v > 0.0, np.clip(self.ar_c / np.where(self.ar_v > 0.0, self.ar_v, 1.0), -1.0, 1.0),
                       0.0)
        ready = pair & (self.ar_n >= self.cfg.warmup)
        u[ready] = (xv - self.ar_m - phi * (self.ar_prev - self.ar_m))[ready]
        # learn: exponentially forgetting moments, the baseline's bias-corrected start
        self.ar_n[pair] += 1
        a = np.maximum(self.baseline.alpha, 1.0 / np.maximum(self.ar_n, 1))
        dm = np.where(pair, xv - self.ar_m, 0.0)
        dp = np.where(pair, self.ar_prev - self.ar_m, 0.0)
        self.ar_m = np.where(pair, self.ar_m + a * dm, self.ar_m)
        self.ar_v = np.where(pair, self.ar_v + a * (dp * dp - self.ar_v), self.ar_v)
        self.ar_c = np.where(pair, self.ar_c + a * (dm * dp - self.ar_c), self.ar_c)
        self.ar_prev = np.where(ok, xv, self.ar_prev)
        zu, _ = self.ar_base.update(u)
        return zu



    def _max_test(self, z: np.ndarray, spot: S.SpotCalibrator, learn: bool) -> float:
        """One test for n charts: the largest z, its own SPOT tail, floored at n Gaussian tails."""
        zm = float(z.max())
        return max(spot.update(zm, learn), min(1.0, self.n * math.erfc(zm / math.sqrt(2.0))))

    def _dispersion(self, x: np.ndarray, learn: bool) -> list[float]:
        """The dispersion candidates' p-values (module docstring): an EWMA chart of each channel's
        one-row innovation ``|x_t - x_{t-1}|`` (RobustBaseline, the channels' defaults), one-sided."""
        kind = self.disp
        xv = np.asarray(x, dtype=np.float64)
        if kind == "disp-max-fast":  # the innovation from the location chart's fast mean before this row
            inn = np.where(self.baseline.count > self.cfg.warmup, np.abs(xv - self.prev), np.nan)
            self.prev = self.baseline.fast.copy()
        else:
            inn = np.abs(xv - self.prev)
            self.prev = np.where(np.isfinite(xv) & (np.abs(xv) <= S.MAX_ABS), xv, self.prev)
        if kind == "disp-med":  # the median of the last 5 |dx|: one spike moves 2 of them
            self.hist = (self.hist + [inn])[-5:]
            inn = np.median(np.array(self.hist), axis=0) if len(self.hist) == 5 else np.full(self.n, np.nan)
        elif kind == "disp-win":  # winsorized at huber_c times the chart's level: a spike adds little
            warm = self.vbase.count >= self.cfg.warmup
            inn = np.where(warm, np.minimum(inn, self.cfg.huber_c * self.vbase.level), inn)
        elif kind == "disp-max-sq":
            inn = inn * inn
        elif kind == "disp-log":  # the log: a spike k times the typical |dx| adds ln k, not k
            inn = np.log(inn + 1e-9 * (1.0 + np.abs(np.nan_to_num(xv))))
        zv, _ = self.vbase.update(inn)
        zv = np.abs(zv) if kind == "disp-max-2" else np.maximum(zv, 0.0)  # more dispersion only
        if kind == "disp":  # one test per channel
            g_v = _erfc(zv / math.sqrt(2.0)).astype(np.float64)
            return np.maximum(self.v_spots.update(zv, learn), g_v).tolist()
        return [self._max_test(zv, self.vmax_spot, learn)]  # one test for the largest channel

    def _loo(self, e: np.ndarray) -> np.ndarray:
        """Each channel's residual from its regression on the others, over its residual sd: with P the
        inverse of the (shrunk) correlation the PCA keeps, ``(P e)_j / sqrt(P_jj)`` (0 before the first
        refresh)."""
        if self.prec is None:
            return np.zeros(self.n)
        return (self.prec @ e) / np.sqrt(np.diag(self.prec))

    def _loo_learn(self) -> None:
        mv = self.mv
        if mv.count >= self.cfg.warmup and (mv.count - self.cfg.warmup) % self.cfg.refresh == 0:
            p = self.n
            n_eff = min(mv.count, 1.0 / mv.alpha)
            lam = max(self.cfg.shrink_min, p / (n_eff + p))
            c = (1.0 - lam) * mv.cov + lam * np.diag(np.diag(mv.cov))
            tr = float(np.trace(c))
            if tr > 0.0:
                self.prec = np.linalg.inv(c + (1e-9 * tr / p) * np.eye(p))



def mann_whitney_z(test: np.ndarray, ref: np.ndarray, srt: np.ndarray | None = None,
                   ref_ties: int | None = None) -> float:
    """Mann-Whitney z of ``test`` (w values, the newest last) against ``ref`` (R values, oldest first):
    U = sum over the test values of (ref values below + half the equal ones), centred at wR/2, over the
    tie-corrected standard deviation, divided by the square root of the AR(1) variance inflation of a
    w-row mean, r the reference's lag-1 autocorrelation (clipped at 0). ``srt`` and ``ref_ties``: ``ref``
    sorted and its sum of ``t^3 - t`` over tie groups, if the caller keeps them (the same result: U is a
    sum of halves and the tie total an integer, both exact)."""
    w, big_r = len(test), len(ref)
    if srt is None:
        srt = np.sort(ref)
        b = np.diff(np.r_[0, np.flatnonzero(np.diff(srt)) + 1, big_r]).astype(np.int64) if big_r else np.zeros(0)
        ref_ties = int(np.sum(b ** 3 - b))
    lo = np.searchsorted(srt, test, "left")
    hi = np.searchsorted(srt, test, "right")
    u = float(np.sum(lo + 0.5 * (hi - lo)))
    n = w + big_r
    vals, m = np.unique(test, return_counts=True)  # the test's values join the ref's tie groups
    c = np.searchsorted(srt, vals, "right") - np.searchsorted(srt, vals, "left")
    cm = c + m
    ties = float(ref_ties + int(np.sum(cm ** 3 - cm - (c ** 3 - c))))
    var = w * big_r / 12.0 * ((n + 1) - ties / (n * (n - 1)))
    if not var > 0.0:
        return 0.0
    c = ref - ref.mean()
    den = float(c @ c)
    r = max(0.0, float(c[1:] @ c[:-1]) / den) if den > 0.0 else 0.0
    k = np.arange(1, w)
    infl = 1.0 + 2.0 * float(np.sum((1.0 - k / w) * r ** k))
    return (u - 0.5 * w * big_r) / math.sqrt(var * infl)


PARTS = ("loo", "slow-60", "disp", "disp-max", "disp-max-2", "disp-max-sq", "disp-max-fast", "disp-med",
         "disp-win", "disp-log", "chan-max", "close-smooth", "slow-60-max", "trend-60", "noop") + (
         "rank", "rank-max", "ar", "ar-max", "scale-gate")  # this session's; combine with "+"
NAMES = ("reference", "cauchy", "cusum-100", "cusum-1000", "cusum-open-100", "scale-steady", "scale-alert",
         "level-startup", "close-decay", "gauss-prior")
NEW = ("loo", "slow-60", "disp", "disp-max", "disp-max-2", "disp-max-sq", "disp-max-fast", "disp-med", "disp-win",
       "disp-log", "chan-max", "chan-max+disp-max", "close-smooth", "disp-max+close-smooth", "slow-60-max",
       "trend-60")  # branch skab-f1
SKAB_NEW = ("rank", "rank-max", "ar", "ar-max", "scale-gate")  # branch skab-new


def evaluate(name: str, root: Path) -> dict[str, object]:
    groups: dict[str, dict[str, int]] = {}
    where = {"onset": 0, "tail": 0, "missed": 0, "fp_pre": 0, "fp_post": 0}
    for path in skab.experiment_files(root):
        f = skab.load_file(path)
        det = S.StreamingDetector(8, impl="python") if name == "reference" else Variant(8, name)
        alert = np.asarray(det.run(f.x)[1], bool)
        c = skab.confusion(f.anomaly, alert)
        for g in ("all", path.parent.name):
            acc = groups.setdefault(g, {"tp": 0, "tn": 0, "fp": 0, "fn": 0})
            for k in c:
                acc[k] += c[k]
        for s, e in skab.segments(f.anomaly):
            hit = np.flatnonzero(alert[s:e])
            if hit.size:
                where["onset"] += int(hit[0])
                where["tail"] += int((~alert[s + hit[0]:e]).sum())
            else:
                where["missed"] += e - s
        s, e = skab.segments(f.anomaly)[0]
        where["fp_pre"] += int(alert[:s].sum())
        where["fp_post"] += int(alert[e:].sum())
    free = skab.load_file(root / "anomaly-free" / "anomaly-free.csv")
    det = S.StreamingDetector(8, impl="python") if name == "reference" else Variant(8, name)
    free_alert = np.asarray(det.run(free.x)[1], bool)
    return {"variant": name, "groups": {g: {**skab.binary_metrics(c), **c} for g, c in groups.items()},
            "where": where, "anomaly_free_openings": len(skab.segments(free_alert))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.skab_variants", description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=list(NAMES + NEW + SKAB_NEW),
                    help=f"from {NAMES + NEW + SKAB_NEW}, or parts of {PARTS} joined by '+'")
    ap.add_argument("--data", default=None)
    args = ap.parse_args(argv)
    for name in args.names:  # every name before any work (and before looking for the data)
        if name not in NAMES and not all(p in PARTS or p.startswith("slow-") or (p.startswith("rank-") and p[5:].isdigit())
                                         for p in name.split("+")):
            print(f"error: unknown variant {name!r}", file=sys.stderr)
            return 2
    root = skab.data_dir(args.data)
    if not (root / "anomaly-free" / "anomaly-free.csv").is_file():
        print(f"error: SKAB data not found under {root} (use --data)", file=sys.stderr)
        return 2
    for name in args.names:
        t0 = time.perf_counter()
        r = evaluate(name, root)
        cells = "  ".join(f"{g} {c['f1']:.3f}/{c['far']:.2f}/{c['mar']:.2f}" for g, c in r["groups"].items())
        print(f"{name:<15} F1/FAR/MAR {cells}  anomaly-free alerts {r['anomaly_free_openings']}  {r['where']} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

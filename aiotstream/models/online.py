"""Online anomaly detectors behind one :class:`Detector` protocol, and drift on the score and on features.

Both detectors keep a warm-up: the first ``warmup`` rows only teach the model
(score 0, ``warm`` False). After that they score each row in [0, 1] and learn
only from rows that do not look anomalous (``score < learn_below``), so a
fault that lasts does not become the new normal.

``ZScoreDetector`` (default): per-feature running mean/variance (Welford, with
the count capped so old history fades: an exponential memory of ``memory``
rows); the score is ``1 - exp(-z_max / z_scale)`` of the largest absolute
z-score. It is exact, cheap, and explains itself (the features that deviate
most, with their baseline ranges).

``HalfSpaceTreesDetector``: River's ``anomaly.HalfSpaceTrees`` algorithm on
features scaled to [0, 1] by the ranges seen during warm-up, with the trees in
flat arrays shared by all assets (:mod:`aiotstream.models.hst`: River's scores
exactly, 25.5 KB of masses per asset instead of River's 3.8 MB of node objects).

A feature may be missing from a row (NaN, e.g. no temperature reading in a
window): it is neither scored nor learnt from.

Drift: :class:`DriftWatch` runs one River detector (ADWIN, Page-Hinkley or
KSWIN) on the anomaly score; :class:`FeatureDrift` runs one per watched
feature column and says which fired.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> d = ZScoreDetector(["a", "b"], warmup=50)
>>> for row in rng.normal(0, 1, (50, 2)):
...     _ = d.score_learn(row)
>>> d.warm, d.score_learn(np.array([0.1, -0.2])) < 0.5, d.score_learn(np.array([0.0, 40.0])) > 0.99
(True, True, True)
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np

from aiotstream.errors import ModelError
from aiotstream.models.detector import Detector
from aiotstream.models.hst import FlatHalfSpaceTrees
from aiotstream.models.packed import pack, unpack

try:  # the drift test's fast path compiled (ext/_streaming.pyx); ShiftDrift's numpy code is its reference
    from aiotstream._streaming import shift_test as _shift_test
except ImportError:  # (a checkout whose kernels are not built)
    _shift_test = None


class ZScoreDetector:
    """Largest absolute z-score over the features against a fading per-feature baseline."""

    name = "zscore"
    version = "1"

    def __init__(self, columns: list[str], warmup: int = 20, z_scale: float = 4.0, learn_below: float = 0.6,
                 memory: int = 1000, rel_floor: float = 1e-3, relearn_after: int | None = None):
        self.columns = list(columns)
        self.shift = SustainedShift(relearn_after if relearn_after is not None else RELEARN_FACTOR * warmup)
        self.warmup = warmup
        self.z_scale = z_scale
        self.learn_below = learn_below
        self.memory = max(memory, warmup)  # the capped count must still reach the warm-up
        self.rel_floor = rel_floor
        k = len(self.columns)
        self.n = 0
        self.counts = np.zeros(k)
        self.mean = np.zeros(k)
        self.m2 = np.zeros(k)

    @property
    def warm(self) -> bool:
        return self.n >= self.warmup

    def _learn(self, x: np.ndarray) -> None:
        seen = ~np.isnan(x)  # a missing feature (NaN) teaches nothing
        self.n = min(self.n + 1, self.memory)
        self.counts[seen] = np.minimum(self.counts[seen] + 1, self.memory)
        c = np.maximum(self.counts, 1)
        delta = np.where(seen, x - self.mean, 0.0)
        self.mean += delta / c
        self.m2 += delta * np.where(seen, x - self.mean, 0.0)
        full = seen & (self.counts == self.memory)  # keep an exponential memory: scale the sum with the count
        self.m2[full] *= (self.memory - 1) / self.memory

    def std(self) -> np.ndarray:
        var = self.m2 / np.maximum(self.counts - 1, 1)
        floor = self.rel_floor * np.abs(self.mean) + 1e-9
        return np.maximum(np.sqrt(np.maximum(var, 0.0)), floor)

    def zscores(self, x: np.ndarray) -> np.ndarray:
        """|x - mean| / std per feature; 0 for missing features and ones not yet warm."""
        z = np.abs(x - self.mean) / self.std()
        return np.where(np.isnan(z) | (self.counts < self.warmup), 0.0, z)

    def score_learn(self, x: np.ndarray) -> float:
        x = np.asarray(x, dtype=np.float64)
        if not self.warm:
            self._learn(x)
            return 0.0
        z = float(self.zscores(x).max())
        score = 1.0 - math.exp(-z / self.z_scale)
        if score < self.learn_below:
            self._learn(x)
        rows = self.shift.update(x, score >= self.learn_below)
        if rows is not None:  # a sustained shift: the rows above the gate are the new normal
            self.rebaseline(rows)
        return score

    def rebaseline(self, rows: list[np.ndarray]) -> None:
        """Forget the baseline and learn it again from ``rows`` (the recent ones that did not fit it)."""
        self.n = 0
        self.counts[:] = 0.0
        self.mean[:] = 0.0
        self.m2[:] = 0.0
        for r in rows:
            self._learn(r)

    def learn_label(self, x: np.ndarray, is_fault: bool) -> bool:
        """A false alarm joins the baseline (it widens to cover the row); a true fault teaches nothing,
        because the baseline already left out the windows that looked anomalous.

        >>> d = ZScoreDetector(["a"], warmup=2)
        >>> _ = [d.score_learn(np.array([v])) for v in (0.0, 1.0, 0.0, 1.0)]
        >>> before = d.score_learn(np.array([5.0]))
        >>> d.learn_label(np.array([5.0]), is_fault=False), d.score_learn(np.array([5.0])) < before
        (True, True)
        """
        if is_fault or not self.warm:
            return False
        self._learn(np.asarray(x, dtype=np.float64))
        return True

    def explain(self, x: np.ndarray, k: int = 3) -> list[dict]:
        x = np.asarray(x, dtype=np.float64)
        z = self.zscores(x)
        sd = self.std()
        top = np.argsort(-z, kind="stable")[:k]
        return [
            {"feature": self.columns[i], "value": float(x[i]), "z": round(float(z[i]), 2),
             "baseline_low": float(self.mean[i] - 3 * sd[i]),
             "baseline_high": float(self.mean[i] + 3 * sd[i])}
            for i in top
        ]


class HalfSpaceTreesDetector:
    """River HalfSpaceTrees on warm-up-scaled features, its raw score standardised against its own normal.

    River's raw score (1 - mass / max mass) sits at 0.66-0.92 for normal rows (and is 0 for the whole first
    ``window_size`` rows), so it is not a probability-like score and a gate at 0.6 on it stops learning. So
    the detector warms up in three steps, scoring 0 meanwhile: ``warmup`` rows fix the feature scaling; the
    trees learn until their first reference window is complete (``window_size`` rows); then ``warmup`` more
    rows teach a fading baseline of the raw score's surprise ``-log(1 - raw)``. After that the score is
    ``1 - exp(-z / 4)`` of the surprise's one-sided z against that baseline (as the z-score detector's);
    rows below the gate are learnt.
    """

    name = "hst"
    version = "2"

    def __init__(self, columns: list[str], warmup: int = 20, n_trees: int = 25, height: int = 8,
                 window_size: int = 50, seed: int = 42, learn_below: float = 0.6, z_scale: float = 4.0,
                 relearn_after: int | None = None):
        self.columns = list(columns)
        self.warmup = warmup
        self.learn_below = learn_below
        self.z_scale = z_scale
        self.window_size = window_size
        self._settings = (n_trees, height, window_size, seed)
        self._buffer: list[np.ndarray] = []
        self._lo: np.ndarray | None = None
        self._span: np.ndarray | None = None
        self.model = FlatHalfSpaceTrees(self.columns, *self._settings)
        self._learnt = 0  # rows the trees learnt (their first reference window is complete at window_size)
        self._raw = ZScoreDetector(["hst_raw"], warmup=warmup, relearn_after=0)
        self.shift = SustainedShift(relearn_after if relearn_after is not None else RELEARN_FACTOR * warmup)
        self._baseline = ZScoreDetector(columns, warmup=warmup)  # only for explanations

    @property
    def warm(self) -> bool:
        return self._lo is not None and self._learnt >= self.window_size and self._raw.warm

    def _scaled(self, x: np.ndarray) -> np.ndarray:
        assert self._lo is not None and self._span is not None
        return np.clip(np.nan_to_num((x - self._lo) / self._span, nan=0.5), 0.0, 1.0)

    def _learn(self, feats: np.ndarray) -> None:
        self.model.learn(feats)
        self._learnt += 1

    def _restart(self, rows: list[np.ndarray]) -> None:
        """Warm up again from ``rows`` (a sustained shift): new scaling, trees and raw-score baseline."""
        self._lo = self._span = None
        self._buffer = []
        self.model = FlatHalfSpaceTrees(self.columns, *self._settings)
        self._learnt = 0
        self._raw = ZScoreDetector(["hst_raw"], warmup=self.warmup, relearn_after=0)
        for r in rows:
            self._warm_up(r)

    def _warm_up(self, x: np.ndarray) -> None:
        if self._lo is None:
            self._buffer.append(x)
            if len(self._buffer) >= self.warmup:
                rows = np.vstack(self._buffer)
                lo, hi = np.nan_to_num(np.nanmin(rows, axis=0)), np.nan_to_num(np.nanmax(rows, axis=0))
                pad = np.maximum(hi - lo, 1e-9 + 1e-3 * np.abs(hi))
                self._lo, self._span = lo - pad, (hi - lo) + 2 * pad  # normal data sits in the middle third
                for row in rows:
                    self._learn(self._scaled(row))
                self._buffer = []
            return
        feats = self._scaled(x)
        if self._learnt >= self.window_size:  # the trees have a reference window: their score means something
            self._raw.score_learn(_hst_surprise(self.model.score(feats)))
        self._learn(feats)

    def score_learn(self, x: np.ndarray) -> float:
        x = np.asarray(x, dtype=np.float64)
        self._baseline.score_learn(x)
        if not self.warm:
            self._warm_up(x)
            return 0.0
        feats = self._scaled(x)
        raw = _hst_surprise(self.model.score(feats))
        z = max(float((raw[0] - self._raw.mean[0]) / self._raw.std()[0]), 0.0)
        score = 1.0 - math.exp(-z / self.z_scale)
        gated = score >= self.learn_below
        if not gated:
            self._learn(feats)
            self._raw._learn(raw)
        rows = self.shift.update(x, gated)
        if rows is not None:
            self._restart(rows)
        return score

    def learn_label(self, x: np.ndarray, is_fault: bool) -> bool:
        """A false alarm is learnt as a normal row (trees and the explanation baseline); a true fault is
        not."""
        if is_fault or not self.warm:
            return False
        x = np.asarray(x, dtype=np.float64)
        self._learn(self._scaled(x))
        self._baseline.learn_label(x, False)
        return True

    def explain(self, x: np.ndarray, k: int = 3) -> list[dict]:
        return self._baseline.explain(x, k)

    def __setstate__(self, state: dict) -> None:
        """A snapshot from before :class:`FlatHalfSpaceTrees` holds River's model: the same trees, masses and
        window position carry over, so a restored flow scores on exactly as it would have."""
        model = state.get("model")
        if model is not None and not isinstance(model, FlatHalfSpaceTrees):
            state["model"] = FlatHalfSpaceTrees.from_river(model, state["columns"])
        self.__dict__.update(state)


def _hst_surprise(raw: float) -> np.ndarray:
    """River's score is 1 - mass share; -log of the mass share spreads the anomalous end (mass near 0)."""
    return np.array([-math.log(max(1.0 - float(raw), 1e-4))])


RELEARN_FACTOR = 6
"""A detector re-baselines after ``RELEARN_FACTOR * warmup`` windows of a sustained shift (see
:class:`SustainedShift`)."""


class SustainedShift:
    """The learning gate's way out: when at least 90% of the last ``after`` rows were above the gate (not
    learnt), the baseline no longer describes the asset (a level shift, a new regime), so :meth:`update`
    returns those rows for the detector to re-baseline on; ``after`` 0 never does. ``rebaselines`` counts
    them.

    >>> s = SustainedShift(10)
    >>> [s.update(np.array([1.0]), True) is not None for _ in range(10)][-2:]
    [False, True]
    """

    def __init__(self, after: int):
        self.after = int(after)
        self._rows: deque[np.ndarray | None] = deque(maxlen=max(self.after, 1))
        self._gated = 0
        self.rebaselines = 0

    def update(self, x: np.ndarray, gated: bool) -> list[np.ndarray] | None:
        if self.after <= 0:
            return None
        if len(self._rows) == self._rows.maxlen and self._rows[0] is not None:
            self._gated -= 1
        self._rows.append(np.array(x, dtype=np.float64) if gated else None)
        self._gated += gated
        if len(self._rows) < self.after or self._gated < 0.9 * self.after:
            return None
        rows = [r for r in self._rows if r is not None]
        self._rows.clear()
        self._gated = 0
        self.rebaselines += 1
        return rows


def make_detector(kind: str, columns: list[str], **settings: float) -> Detector:
    """Build a detector by its config name (``calibrated``, ``zscore`` or ``hst``)."""
    if kind == "calibrated":
        from aiotstream.models.window import CalibratedWindowDetector

        return CalibratedWindowDetector(columns, warmup=int(settings.get("warmup", 20)))
    if kind == "zscore":
        return ZScoreDetector(columns, warmup=int(settings.get("warmup", 20)))
    if kind == "hst":
        return HalfSpaceTreesDetector(columns, warmup=int(settings.get("warmup", 20)),
                                      n_trees=int(settings.get("n_trees", 25)),
                                      height=int(settings.get("height", 8)),
                                      window_size=int(settings.get("window_size", 50)),
                                      seed=int(settings.get("seed", 42)))
    raise ModelError(f"unknown detector kind {kind!r}: use 'calibrated', 'zscore' or 'hst'")


DRIFT_DETECTORS = ("adwin", "page_hinkley", "kswin")


def make_drift_detector(kind: str, delta: float = 0.002, seed: int | None = None, window_size: int = 100,
                        stat_size: int = 30):
    """A River drift detector by its config name; ``delta`` is ADWIN's and Page-Hinkley's ``delta`` and
    KSWIN's ``alpha`` (the Kolmogorov-Smirnov test's significance level)."""
    from river import drift

    if kind == "adwin":
        return drift.ADWIN(delta=delta)
    if kind == "page_hinkley":
        return drift.PageHinkley(delta=delta)
    if kind == "kswin":
        if stat_size >= window_size:
            raise ModelError(f"kswin: stat_size ({stat_size}) must be smaller than window_size "
                             f"({window_size})")
        return drift.KSWIN(alpha=delta, window_size=window_size, stat_size=stat_size, seed=seed)
    raise ModelError(f"unknown drift detector {kind!r}: use one of {', '.join(DRIFT_DETECTORS)}")


class DriftWatch:
    """A River drift detector on the anomaly score (ADWIN, Page-Hinkley or KSWIN).

    >>> w = DriftWatch("adwin", delta=0.002)
    >>> flags = [w.update(0.1) for _ in range(300)] + [w.update(0.8) for _ in range(300)]
    >>> any(flags[:300]), any(flags[300:])
    (False, True)
    """

    def __init__(self, kind: str = "adwin", delta: float = 0.002, seed: int | None = 42,
                 window_size: int = 100,
                 stat_size: int = 30):
        self.kind = kind
        self.detector = make_drift_detector(kind, delta, seed, window_size, stat_size)

    def update(self, score: float) -> bool:
        self.detector.update(score)
        return bool(self.detector.drift_detected)


class FeatureDrift:
    """One River drift detector per watched feature column; :meth:`update` returns the features whose
    detector fired on this row. A missing value (NaN) is skipped for that feature.

    >>> import numpy as np
    >>> fd = FeatureDrift(["a", "b"], ["b"], "kswin", delta=1e-4, seed=1)
    >>> rng = np.random.default_rng(0)
    >>> fired = [fd.update(np.array([0.0, v])) for v in rng.normal(0, 1, 300)]
    >>> fired += [fd.update(np.array([0.0, v])) for v in rng.normal(3, 1, 100)]
    >>> any(fired[:300]), ["b"] in fired[300:]
    (False, True)
    """

    def __init__(self, columns: list[str], watched: list[str], detector: str = "kswin", delta: float = 0.002,
                 seed: int | None = 42, window_size: int = 100, stat_size: int = 30):
        self.columns = list(columns)
        unknown = [w for w in watched if w not in self.columns]
        if unknown:
            raise ModelError(f"drift features {unknown} are not feature columns (e.g. "
                             f"{', '.join(self.columns[:4])}, ...)")
        self.watched = list(dict.fromkeys(watched))
        self.kind = detector
        self.index = [self.columns.index(w) for w in self.watched]
        # each feature its own seed, so KSWIN's reference samples differ per feature but repeat per run
        self.detectors = [make_drift_detector(detector, delta, None if seed is None else seed + i,
                                              window_size,
                                              stat_size) for i in range(len(self.watched))]

    def update(self, x: np.ndarray) -> list[str]:
        fired = []
        for name, i, d in zip(self.watched, self.index, self.detectors):
            v = float(x[i])
            if math.isnan(v):
                continue
            d.update(v)
            if d.drift_detected:
                fired.append(name)
        return fired


class ShiftDrift:
    """Drift on the features: a recent window's median against the range of a longer reference window.

    Per watched feature, the last ``recent`` values (their median) are compared with the ``reference``
    values before them. A feature drifts when the recent median lies outside the reference's 1st-99th
    percentile range by more than ``margin`` robust standard deviations of the reference (IQR / 1.349)
    and by more than ``min_change`` of the reference median's magnitude. A slow trend or cycle cannot trip
    it: the reference already holds the values just before the recent window, so a smooth change moves the
    recent median past the reference's edge by far less than the reference's own spread; a step of a few
    noise widths does, within ``recent / 2`` windows. A feature that fired is quiet for ``recent +
    reference / 20`` windows, until the new level makes up 5% of its reference (then it is inside the
    range). The test runs every ``every`` rows; ``last`` holds what the latest firing features moved by.

    >>> rng = np.random.default_rng(0)
    >>> d = ShiftDrift(["a", "b"])
    >>> t = np.arange(2000)
    >>> cycle = 10 + 3 * np.sin(2 * np.pi * t / 500) + rng.normal(0, 0.3, t.size)
    >>> rows = np.c_[cycle, rng.normal(5, 1, t.size)]
    >>> rows[1500:, 1] += 8
    >>> fired = [(i, d.update(r)) for i, r in enumerate(rows)]
    >>> [(i, f) for i, f in fired if f]
    [(1519, ['b'])]
    """

    _fast = True  # (False: every test by the general path, for the tests' comparisons)
    # (class defaults: a drift watch pickled before these existed takes the general steps)
    _every_column = False  # watched are all the columns, in their order: a row is stored as it comes
    _quiet_rows: int | None = None  # an upper bound of _quiet (None: not known yet); 0: nothing to count down

    def __init__(self, columns: list[str], watched: list[str] | None = None, reference: int = 240,
                 recent: int = 30, margin: float = 3.0, min_change: float = 0.25, every: int = 5):
        self.columns = list(columns)
        unknown = [w for w in (watched or []) if w not in self.columns]
        if unknown:
            raise ModelError(f"drift features {unknown} are not feature columns")
        self.watched = list(dict.fromkeys(watched)) if watched else list(self.columns)
        self.index = np.array([self.columns.index(w) for w in self.watched], dtype=np.intp)
        self.reference, self.recent = reference, recent
        self.margin, self.min_change, self.every = margin, min_change, every
        # the ring of the last reference + recent rows (NaN where none came yet), made at the first row: an
        # asset whose windows have no features (readings only) never has one (30 KB of its memory)
        self._buf: np.ndarray | None = None
        self.n = 0
        self._quiet = np.zeros(len(self.index), dtype=np.int64)  # rows left before a feature may fire again
        self._quiet_rows = 0
        self._every_column = self.watched == self.columns
        self.last: list[dict] = []

    def update(self, x: np.ndarray) -> list[str]:
        buf = self._buf
        if buf is None:
            buf = self._buf = np.full((self.reference + self.recent, len(self.index)), np.nan)
        size = buf.shape[0]
        if self._every_column and len(x) == len(self.index):  # (every window of every asset: no gather)
            buf[self.n % size] = x
        else:
            buf[self.n % size] = np.asarray(x, dtype=np.float64)[self.index]
        self.n += 1
        left = self._quiet_rows
        if left is None:
            left = int(self._quiet.max()) if len(self._quiet) else 0
        if left > 0:  # (a feature fired in the last rows: count down)
            np.maximum(self._quiet - 1, 0, out=self._quiet)
            left -= 1
        self._quiet_rows = left
        if self.n < 2 * self.recent or self.n % self.every:
            return []
        if self._fast and _shift_test is not None:  # (compiled: the test where the fast path below applies)
            hits = _shift_test(buf, self.n, self.recent, self._quiet, self.margin, self.min_change, _QS)
            if hits is not None:
                return self._fire(hits) if hits else []
        if self.n < size:
            rows = buf[: self.n]
        else:  # oldest first
            k = self.n % size
            rows = np.concatenate((buf[k:], buf[:k])) if k else buf
        # (an infinite feature value makes inf - inf in the quantiles and the sd: NaN, which compares false,
        # as the compiled test finds; numpy would warn of it on every test of that window's rows)
        with np.errstate(invalid="ignore", over="ignore"):
            ref, rec = np.sort(rows[:-self.recent], axis=0), np.sort(rows[-self.recent:], axis=0)  # NaN last
            if self._fast and _complete_or_empty(rows):
                # every value there (the usual case), or none in a column (a feature that never comes, e.g.
                # a temperature the site does not send: NaN quantiles, no test, as the general path finds):
                # the same quantile positions in every column, one gather each
                lo, q1, med, q3, hi = _full_quantiles(ref, _QS)
                now = _full_quantiles(rec, _MEDIAN)[0]
                n_ref, n_rec = len(ref), len(rec)
            else:
                n_ref, n_rec = np.sum(~np.isnan(ref), axis=0), np.sum(~np.isnan(rec), axis=0)
                lo, q1, med, q3, hi = _sorted_quantiles(ref, n_ref, _QS)
                now = _sorted_quantiles(rec, n_rec, _MEDIAN)[0]
            enough = (n_ref >= self.recent) & (n_rec >= self.recent // 2)  # no values: no test
            sd = np.maximum((q3 - q1) / 1.349, 1e-9 + 1e-6 * np.abs(med))
            need = np.maximum(self.margin * sd, self.min_change * np.abs(med))
            out = enough & (self._quiet == 0) & ((now > hi + need) | (now < lo - need))
        if not out.any():
            return []
        return self._fire([(i, float(med[i]), float(lo[i]), float(hi[i]), float(now[i]),
                            float((now[i] - med[i]) / sd[i])) for i in np.flatnonzero(out)])

    def __getstate__(self) -> dict:
        # the ring is allocated whole (NaN) and fills one window at a time: a young watch's snapshot
        # carries only the rows it has filled (aiotstream.models.packed: the same bits on load)
        return {**self.__dict__, "_buf": None if self._buf is None else pack(self._buf, np.nan)}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._buf = unpack(self._buf)

    def _fire(self, hits: list[tuple]) -> list[str]:
        """The features that fired, each ``(index, reference median, low, high, recent median, shift in
        sds)``: quiet from now on, and described in ``last``."""
        self._quiet[[h[0] for h in hits]] = self._quiet_rows = self.recent + self.reference // 20
        self.last = [{"feature": self.watched[i], "reference_median": med, "reference_low": lo,
                      "reference_high": hi, "recent_median": now, "shift_sd": round(shift, 2)}
                     for i, med, lo, hi, now, shift in hits]
        return [self.watched[h[0]] for h in hits]


_QS = np.array([0.01, 0.25, 0.5, 0.75, 0.99])
_MEDIAN = np.array([0.5])


def _complete_or_empty(rows: np.ndarray) -> bool:
    """Whether every column of ``rows`` has all its values or none (NaN throughout).

    >>> _complete_or_empty(np.array([[1.0, np.nan], [2.0, np.nan]]))
    True
    >>> _complete_or_empty(np.array([[1.0], [np.nan]]))
    False
    """
    missing = np.isnan(rows)
    if not missing.any():
        return True
    counts = missing.sum(axis=0)
    return bool(((counts == 0) | (counts == len(rows))).all())


def _full_quantiles(a: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """:func:`_sorted_quantiles` of ``a`` (sorted along axis 0) with no NaN in it: every column has
    ``len(a)`` values, so every column's quantile lies at the same place (the same operations, the same
    floats).

    >>> a = np.sort(np.array([[3.0, 1.0], [1.0, 2.0], [2.0, 5.0], [4.0, 0.0]]), axis=0)
    >>> bool((_full_quantiles(a, _QS) == _sorted_quantiles(a, np.array([4, 4]), _QS)).all())
    True
    """
    pos = qs * max(len(a) - 1, 0)
    below = np.floor(pos).astype(np.intp)
    above = np.minimum(below + 1, max(len(a) - 1, 0))
    lo, hi = a[below], a[above]
    return lo + (hi - lo) * (pos - below)[:, None]


def _sorted_quantiles(a: np.ndarray, n: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """Quantiles ``qs`` (linear, as ``np.quantile``) per column of ``a``, sorted along axis 0 with its NaN
    last and ``n`` values per column: ``(len(qs), columns)``; NaN where a column has none. ``np.sort`` once
    is about 50x cheaper than ``np.nanquantile`` per call.

    >>> a = np.sort(np.array([[3.0, np.nan], [1.0, 2.0], [2.0, np.nan], [4.0, np.nan]]), axis=0)
    >>> _sorted_quantiles(a, np.array([4, 1]), np.array([0.5, 1.0])).tolist()
    [[2.5, 2.0], [4.0, 2.0]]
    """
    pos = np.outer(qs, np.maximum(n - 1, 0))
    below = np.floor(pos).astype(np.intp)
    above = np.minimum(below + 1, np.maximum(n - 1, 0))
    frac = pos - below
    lo = np.take_along_axis(a, below, axis=0)
    hi = np.take_along_axis(a, above, axis=0)
    out = lo + (hi - lo) * frac
    out[:, n == 0] = np.nan
    return out

"""Plain-numpy twins of the feature kernels, for tests and benchmarks only.

Nothing in the streaming path imports this module. The functions here are
written for obviousness, not speed: they make full-size float64 temporaries,
go over the data several times and compute every feature from its textbook
definition, independently of the kernels' partial sums. They follow the same
contracts (and the same degenerate-case rules) as the kernels, so the tests
can compare the fast path against an independent computation.

Tolerances (kernel vs twin; checked by ``tests/unit/test_kernels.py`` and
``tests/unit/test_spectral_scalar.py``). With ``eps = 2.2e-16``, ``N``
samples per row, ``A = max|x|`` and ``s = max|x - mean|``:

* Time partials (:func:`frame_partials`): ``n``, ``min``, ``max``,
  ``zero_crossings``, ``first``, ``last`` exactly equal; ``mean`` within
  ``1e-9 * A``; ``m_k`` within ``1e-9 * N * s**k + N * ((s + e)**k - s**k)``
  with ``e = 4 N eps A`` (the effect of a rounded mean); ``abs_sum`` within
  ``1e-12 * N * A``. The kernel accumulates in float64 for both input dtypes,
  so the twin runs on the input cast to float64.
* Time features (:func:`time_features`, also for a window's merged
  partials vs the twin on the concatenated samples): ``rtol = 1e-7`` with
  ``atol = 1e-7 * A`` for the features in signal units (mean, std, rms, min,
  max, p2p) and ``atol = 1e-7`` for the dimensionless ones; ``zcr`` exactly.
* Spectral (:func:`spectral_partials`, :func:`spectral_features`,
  :func:`window_spectral_features`): float32 input is transformed in float32
  by the kernel (the twin always uses float64), so powers (band powers,
  total, 1x/2x) agree within ``1e-5 * total + 1e-5 * |value|`` for float32
  and ``1e-10 * total + 1e-10 * |value|`` for float64; ``centroid`` within
  ``1e-5`` (float32) / ``1e-9`` (float64) of the Nyquist frequency; the
  ``dominant`` frequency is equal unless the twin's power at the kernel's
  choice is within the same power tolerance of the twin's peak (a near tie).
* Scalar streams (:class:`ScalarStateTwin`): ``rtol = 1e-12``, ``atol =
  1e-12 * max|value|``.

NaN behaviour (the same in kernel and twin):

* Time domain: a row with a NaN sample gives NaN in every partial but ``n``;
  a row with +/-Inf keeps ``n``, ``min``, ``max``, ``zero_crossings``,
  ``first``, ``last`` exact and gets NaN central sums. Either way every one of
  the row's 12 features is NaN, and merging carries the NaN into the window
  (the decoder rejects non-finite frames before they get here).
* Spectral: a row with a NaN or Inf sample (or whose sum overflows) gives
  NaN in every partial but ``count`` and NaN in every feature.
* Scalar: a NaN or Inf value leaves the key's state alone; its output row is NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "ScalarStateTwin",
    "frame_moments",
    "frame_partials",
    "moment_features",
    "spectral_features",
    "spectral_partials",
    "time_features",
    "window_spectral_features",
]


def _as_float64_rows(x: np.ndarray, what: str) -> np.ndarray:
    """Validate ``x`` as float32/float64 ``(..., N)`` with ``N >= 1``; return a float64 copy/view."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{what} expects a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"{what} expects dtype float32 or float64, got {x.dtype}")
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"{what} expects shape (..., N) with N >= 1, got {x.shape}")
    return x.astype(np.float64, copy=False)


# --------------------------------------------------------------------------- time domain
def frame_moments(x: np.ndarray) -> np.ndarray:
    """Numpy twin of the moment kernel: ``(..., N) -> (..., 7)`` = ``n, mean, m2, m3, m4, min, max``.

    ``m_k = sum((x - mean)**k)`` computed in float64. A constant row (finite
    ``min == max``) gives ``mean = min`` and zero central sums exactly; a row
    with NaN gives NaN everywhere but ``n``. Any number of leading axes.

    >>> frame_moments(np.array([[1.0, 2.0, 3.0, 6.0]])).tolist()
    [[4.0, 3.0, 14.0, 18.0, 98.0, 1.0, 6.0]]
    """
    x64 = _as_float64_rows(x, "frame_moments")
    n = x64.shape[-1]
    lo = x64.min(axis=-1)
    hi = x64.max(axis=-1)
    with np.errstate(invalid="ignore", over="ignore"):
        mean = x64.mean(axis=-1)
        d = x64 - mean[..., None]
        m2 = (d**2).sum(axis=-1)
        m3 = (d**3).sum(axis=-1)
        m4 = (d**4).sum(axis=-1)
    const = (lo == hi) & np.isfinite(lo)
    mean = np.where(const, lo, mean)
    m2, m3, m4 = (np.where(const, 0.0, m) for m in (m2, m3, m4))
    return np.stack([np.full(mean.shape, float(n)), mean, m2, m3, m4, lo, hi], axis=-1)


def _crossings(x64: np.ndarray) -> np.ndarray:
    """Adjacent pairs whose signs differ (``x >= 0`` is non-negative), per row."""
    nonneg = x64 >= 0
    return np.count_nonzero(nonneg[..., 1:] != nonneg[..., :-1], axis=-1).astype(np.float64)


def frame_partials(x: np.ndarray) -> np.ndarray:
    """Twin of :func:`aiotstream._kernels.frame_partials`: ``(..., N) -> (..., 11)``.

    The moments of :func:`frame_moments`, then ``sum(|x|)``, the number of
    sign changes between adjacent samples, ``x[0]`` and ``x[N-1]``; a row
    with NaN gives NaN in every column but ``n``.

    >>> frame_partials(np.array([[1.0, -2.0, 3.0, 6.0]])).tolist()
    [[4.0, 2.0, 34.0, 0.0, 514.0, -2.0, 6.0, 12.0, 2.0, 1.0, 6.0]]
    """
    x64 = _as_float64_rows(x, "frame_partials")
    mom = frame_moments(x64)
    extra = np.stack([np.abs(x64).sum(axis=-1), _crossings(x64), x64[..., 0], x64[..., -1]], axis=-1)
    out = np.concatenate([mom, extra], axis=-1)
    out[np.isnan(x64).any(axis=-1), 1:] = np.nan
    return out


def time_features(samples: np.ndarray) -> np.ndarray:
    """The 12 time-domain features computed directly from raw samples: ``(..., N) -> (..., 12)``.

    Columns: ``mean, std, rms, min, max, p2p, crest, skewness, kurtosis, zcr,
    impulse, shape`` with population std (ddof=0), ``rms = sqrt(mean(x**2))``,
    Pearson kurtosis (normal = 3), ``zcr`` = sign changes between adjacent
    samples / (N - 1), ``impulse = max|x| / mean|x|``, ``shape = rms /
    mean|x|``. Degenerate cases as in the kernel: a constant row has std,
    skewness and kurtosis 0; ``rms == 0`` gives crest 0; ``mean|x| == 0``
    gives impulse and shape 0; ``N == 1`` gives zcr 0; a row with a NaN or Inf
    sample is all NaN.

    >>> time_features(np.array([[1.0, -1.0, 1.0, -1.0]])).round(3).tolist()
    [[0.0, 1.0, 1.0, -1.0, 1.0, 2.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0]]
    """
    x = _as_float64_rows(samples, "time_features")
    n = x.shape[-1]
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        mean = np.mean(x, axis=-1)
        lo = np.min(x, axis=-1)
        hi = np.max(x, axis=-1)
        const = (lo == hi) & np.isfinite(lo)
        mean = np.where(const, lo, mean)
        std = np.where(const, 0.0, np.std(x, axis=-1))
        peak = np.maximum(np.abs(lo), np.abs(hi))
        # rms = sqrt(mean(x**2)), computed as peak * sqrt(mean((x / peak)**2)) so that neither
        # tiny (subnormal) nor huge values under- or overflow in x**2
        unit = np.where((peak > 0) & np.isfinite(peak), peak, 1.0)
        rms = unit * np.sqrt(np.mean((x / unit[..., None]) ** 2, axis=-1))
        d = x - mean[..., None]
        var = std**2
        degenerate = var == 0
        safe_var = np.where(degenerate, 1.0, var)
        skew = np.where(degenerate, 0.0, np.mean(d**3, axis=-1) / safe_var**1.5)
        kurt = np.where(degenerate, 0.0, np.mean(d**4, axis=-1) / safe_var**2)
        crest = np.where(rms == 0, 0.0, peak / np.where(rms == 0, 1.0, rms))
        zcr = _crossings(x) / (n - 1) if n > 1 else np.zeros(mean.shape)
        mabs = np.mean(np.abs(x), axis=-1)
        impulse = np.where(mabs == 0, 0.0, peak / np.where(mabs == 0, 1.0, mabs))
        shape = np.where(mabs == 0, 0.0, rms / np.where(mabs == 0, 1.0, mabs))
        out = np.stack([mean, std, rms, lo, hi, hi - lo, crest, skew, kurt, zcr, impulse, shape], axis=-1)
    out[~np.isfinite(x).all(axis=-1)] = np.nan
    return out


def moment_features(samples: np.ndarray) -> np.ndarray:
    """The first 9 time features (those of ``features_from_moments``): ``(..., N) -> (..., 9)``."""
    return time_features(samples)[..., :9]


# --------------------------------------------------------------------------- spectral
def _power_spectra(x: np.ndarray, sample_rate_hz: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-sided power spectra of the rows: ``(P (..., nk), f (nk,), bad rows (...))``.

    ``d = (x - mean) * hann``; ``P_k = c_k |rfft(d)_k|**2 / (N sum(w**2))``,
    ``c_k = 2`` except 1 for the Nyquist bin of even ``N``; ``P_0 = 0`` (DC
    dropped). Constant rows give exact zeros; rows with NaN/Inf are flagged.
    """
    x64 = _as_float64_rows(x, "spectral")
    n = x64.shape[-1]
    nk = n // 2 + 1
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
    with np.errstate(invalid="ignore", over="ignore"):
        total = x64.sum(axis=-1)
        bad = ~np.isfinite(total) | ~np.isfinite(x64).all(axis=-1)
        lo, hi = x64.min(axis=-1), x64.max(axis=-1)
        const = (lo == hi) | bad
        d = (x64 - (total / n)[..., None]) * w
    d[const] = 0.0
    spec = np.fft.rfft(d, axis=-1)
    s2 = float(np.sum(w * w))
    c = np.full(nk, 2.0)
    if n % 2 == 0:
        c[-1] = 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        power = (spec.real**2 + spec.imag**2) * c / (n * s2) if s2 > 0 else np.zeros(spec.shape)
    power[..., 0] = 0.0
    freqs = np.arange(nk, dtype=np.float64) * sample_rate_hz / n
    return power, freqs, bad


def _spectral_columns(power: np.ndarray, freqs: np.ndarray, bad: np.ndarray, n: int, sample_rate_hz: float,
                      bands: Sequence[Sequence[float]], rpm: np.ndarray | float | None,
                      halfwidth: float, count: np.ndarray | float, peak: np.ndarray,
                      peak_hz: np.ndarray) -> np.ndarray:
    """Partial columns from (summed) power spectra ``(..., nk)``."""
    k = np.arange(freqs.size)
    nonzero_bin = k >= 1
    total = power.sum(axis=-1)
    fsum = (power * freqs).sum(axis=-1)
    lead = power.shape[:-1]
    if rpm is None:
        e1 = e2 = np.full(lead, np.nan)
    else:
        r = np.broadcast_to(np.asarray(rpm, dtype=np.float64), lead)[..., None]
        tol = halfwidth * sample_rate_hz / n
        e1 = np.where((np.abs(freqs - 1.0 * r / 60.0) <= tol) & nonzero_bin, power, 0.0).sum(axis=-1)
        e2 = np.where((np.abs(freqs - 2.0 * r / 60.0) <= tol) & nonzero_bin, power, 0.0).sum(axis=-1)
    cols = [np.broadcast_to(np.asarray(count, dtype=np.float64), lead), total, fsum, peak, peak_hz, e1, e2]
    for lo, hi in bands:
        mask = (freqs >= lo) & (freqs < hi) & nonzero_bin
        cols.append(power[..., mask].sum(axis=-1))
    out = np.stack(cols, axis=-1)
    out[bad, 1:] = np.nan
    return out


def _peak(power: np.ndarray, freqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Largest bin (k >= 1) and its frequency per row; 0 Hz when the spectrum is all zero."""
    if freqs.size < 2:
        zeros = np.zeros(power.shape[:-1])
        return zeros, zeros.copy()
    body = power[..., 1:]
    k = np.argmax(body, axis=-1)
    peak = np.take_along_axis(body, k[..., None], axis=-1)[..., 0]
    return peak, np.where(peak > 0, freqs[1:][k], 0.0)


def spectral_partials(x: np.ndarray, sample_rate_hz: float, bands: Sequence[Sequence[float]],
                      rpm: np.ndarray | float | None = None,
                      harmonic_halfwidth_bins: float = 2.0) -> np.ndarray:
    """Twin of :func:`aiotstream._kernels.frame_spectra`: ``(..., N) -> (..., 7 + B)``.

    >>> t = np.arange(1000) / 1000.0
    >>> s = spectral_partials(np.sin(2 * np.pi * 50 * t)[None], 1000.0, [[40, 60]], rpm=3000)
    >>> [round(v, 6) for v in s[0].tolist()]
    [1.0, 0.5, 25.0, 0.333333, 50.0, 0.5, 0.0, 0.5]
    """
    power, freqs, bad = _power_spectra(x, sample_rate_hz)
    peak, peak_hz = _peak(power, freqs)
    return _spectral_columns(power, freqs, bad, x.shape[-1], sample_rate_hz, bands, rpm,
                             harmonic_halfwidth_bins, 1.0, peak, peak_hz)


def _features_from_columns(cols: np.ndarray, n_bands: int) -> np.ndarray:
    count, total, fsum, _, peak_hz, e1, e2 = (cols[..., i] for i in range(7))
    bands = cols[..., 7:7 + n_bands] / count[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid = np.where(total == 0, 0.0, fsum / np.where(total == 0, 1.0, total))
    return np.concatenate([bands, np.stack([centroid, peak_hz, e1 / count, e2 / count], axis=-1)], axis=-1)


def spectral_features(x: np.ndarray, sample_rate_hz: float, bands: Sequence[Sequence[float]],
                      rpm: np.ndarray | float | None = None,
                      harmonic_halfwidth_bins: float = 2.0) -> np.ndarray:
    """Twin of :func:`aiotstream._kernels.spectral_features`: ``(..., N) -> (..., B + 4)``.

    Band powers, centroid (Hz), dominant frequency (Hz), 1x and 2x power of
    each row's own spectrum.
    """
    cols = spectral_partials(x, sample_rate_hz, bands, rpm, harmonic_halfwidth_bins)
    return _features_from_columns(cols, len(bands))


def window_spectral_features(frames: np.ndarray, sample_rate_hz: float, bands: Sequence[Sequence[float]],
                             rpm: np.ndarray | float | None = None,
                             harmonic_halfwidth_bins: float = 2.0) -> np.ndarray:
    """Spectral features of windows made of frames, by the Welch rule: ``(F, ..., N) -> (..., B + 4)``.

    The frames' power spectra (axis 0, in time order) are averaged; band
    powers, 1x/2x power and the centroid come from the average spectrum; the
    dominant frequency is that of the largest bin of any single frame (the
    earliest frame, then the lowest bin, on a tie; 0 Hz if all are zero). A
    frame with NaN/Inf makes the window NaN.
    """
    power, freqs, bad = _power_spectra(frames, sample_rate_hz)
    mean_power = power.mean(axis=0)
    lead = mean_power.shape[:-1]
    if freqs.size < 2:
        peak_hz = np.zeros(lead)
    else:
        body = np.moveaxis(power[..., 1:], 0, -2).reshape(lead + (-1,))  # (..., F * (nk - 1)), frame-major
        flat = np.argmax(body, axis=-1)
        peak = np.take_along_axis(body, flat[..., None], axis=-1)[..., 0]
        peak_hz = np.where(peak > 0, freqs[1:][flat % (freqs.size - 1)], 0.0)
    cols = _spectral_columns(mean_power, freqs, bad.any(axis=0), frames.shape[-1], sample_rate_hz, bands, rpm,
                             harmonic_halfwidth_bins, 1.0, np.zeros(lead), peak_hz)
    return _features_from_columns(cols, len(bands))


# --------------------------------------------------------------------------- scalar streams
class ScalarStateTwin:
    """Twin of :class:`aiotstream.features.ScalarState`: plain Python, one update at a time.

    >>> tw = ScalarStateTwin(window=3, alpha=0.5)
    >>> tw.update([0, 0], [1.0, 3.0], [0, 10**9])[:, 0].tolist()
    [1.0, 2.0]
    """

    def __init__(self, window: int, *, alpha: float | None = None, halflife_s: float | None = None) -> None:
        self.window = window
        self.alpha = alpha
        self.halflife_s = halflife_s
        self.state: dict[int, dict] = {}

    def update(self, idx: Sequence[int], values: Sequence[float], ts_ns: Sequence[int]) -> np.ndarray:
        rows = []
        for k, v, t in zip(idx, values, ts_ns):
            k, v, t = int(k), float(v), int(t)
            if not np.isfinite(v):
                rows.append([np.nan] * 6)
                continue
            st = self.state.setdefault(k, {"values": [], "ewma": None, "last": None})
            if st["ewma"] is None:
                st["ewma"] = v
            else:
                if self.halflife_s is not None:
                    dt = (t - st["last"][1]) / 1e9
                    a = 1.0 - 2.0 ** (-dt / self.halflife_s) if dt > 0 else 0.0
                else:
                    a = self.alpha
                st["ewma"] = st["ewma"] + a * (v - st["ewma"])
            if st["last"] is None or t <= st["last"][1]:
                roc = np.nan
            else:
                roc = (v - st["last"][0]) / ((t - st["last"][1]) / 1e9)
            st["last"] = (v, t)
            st["values"] = (st["values"] + [v])[-self.window:]
            vals = np.asarray(st["values"])
            with np.errstate(over="ignore", invalid="ignore"):  # huge values: inf, as in the kernel
                rows.append([st["ewma"], vals.mean(), vals.std(), vals.min(), vals.max(), roc])
        return np.asarray(rows, dtype=np.float64).reshape(-1, 6)

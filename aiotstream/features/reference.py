"""Plain-numpy twins of the feature kernels, for tests and benchmarks only.

Nothing in the streaming path imports this module.  The functions here are
written for obviousness, not speed: they make full-size float64 temporaries and
go over the data several times.  They follow the same contracts (and the same
degenerate-case rules) as :func:`aiotstream.features.frame_moments` and
:func:`aiotstream.features.features_from_moments`, so the tests can compare the
fast path against an independent computation.
"""

from __future__ import annotations

import numpy as np

__all__ = ["features", "frame_moments"]


def _as_float64_rows(x: np.ndarray, what: str) -> np.ndarray:
    """Validate ``x`` as float32/float64 ``(..., N)`` with ``N >= 1``; return a float64 copy/view."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{what} expects a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"{what} expects dtype float32 or float64, got {x.dtype}")
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"{what} expects shape (..., N) with N >= 1, got {x.shape}")
    return x.astype(np.float64, copy=False)


def frame_moments(x: np.ndarray) -> np.ndarray:
    """Numpy twin of the kernel: ``(..., N) -> (..., 7)`` = ``n, mean, m2, m3, m4, min, max``.

    ``m_k = sum((x - mean)**k)`` computed in float64.  Same special rows as the
    kernel: a constant row (finite ``min == max``) gives ``mean = min`` and
    zero central sums exactly; a row with NaN gives NaN everywhere but ``n``.
    Unlike the kernel this accepts any number of leading axes and any layout.

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


def features(samples: np.ndarray) -> np.ndarray:
    """The 9 time-domain features computed directly from raw samples: ``(..., N) -> (..., 9)``.

    Columns: ``mean, std, rms, min, max, p2p, crest, skewness, kurtosis`` with
    population std (ddof=0), ``rms = sqrt(mean(x**2))``, Pearson kurtosis
    (normal = 3).  Degenerate cases as in ``features_from_moments``: a constant
    row has std 0, skewness 0, kurtosis 0; ``rms == 0`` gives crest 0.  float32
    input is cast to float64 first.

    >>> features(np.array([[1.0, -1.0, 1.0, -1.0]])).round(3).tolist()
    [[0.0, 1.0, 1.0, -1.0, 1.0, 2.0, 1.0, 0.0, 1.0]]
    """
    x = _as_float64_rows(samples, "features")
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        mean = np.mean(x, axis=-1)
        lo = np.min(x, axis=-1)
        hi = np.max(x, axis=-1)
        const = (lo == hi) & np.isfinite(lo)
        mean = np.where(const, lo, mean)
        std = np.where(const, 0.0, np.std(x, axis=-1))
        rms = np.sqrt(np.mean(x**2, axis=-1))
        d = x - mean[..., None]
        var = std**2
        degenerate = var == 0
        safe_var = np.where(degenerate, 1.0, var)
        skew = np.where(degenerate, 0.0, np.mean(d**3, axis=-1) / safe_var**1.5)
        kurt = np.where(degenerate, 0.0, np.mean(d**4, axis=-1) / safe_var**2)
        peak = np.maximum(np.abs(lo), np.abs(hi))
        crest = np.where(rms == 0, 0.0, peak / np.where(rms == 0, 1.0, rms))
    return np.stack([mean, std, rms, lo, hi, hi - lo, crest, skew, kurt], axis=-1)

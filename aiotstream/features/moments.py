"""The 7-column moment algebra in numpy: merge and reduce moment sums, 9 features from them.

This is the original moments API (``n, mean, m2, m3, m4, min, max``; see
:func:`aiotstream._kernels.frame_moments`), kept for its callers and as an
independent numpy implementation of the merge formulas that the compiled
:func:`aiotstream._kernels.reduce_partials` also uses. The streaming path uses
the 11-column *partials* (:mod:`aiotstream.features`), which add ``sum|x|``,
zero crossings and the first/last sample so that all 12 time features merge.
A moments array is any float64 array whose last axis has length 7; an *empty*
accumulator (:func:`empty_moments`) has ``n = 0``, zero mean and central sums,
``min = +inf`` and ``max = -inf``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aiotstream._kernels import MOMENT_COLUMNS, frame_moments  # noqa: F401  (the doctests use it)

__all__ = ["MOMENT_FEATURES", "empty_moments", "features_from_moments", "merge_moments", "reduce_moments"]

#: The 9 features :func:`features_from_moments` derives (the first 9 time features).
MOMENT_FEATURES: tuple[str, ...] = ("mean", "std", "rms", "min", "max", "p2p", "crest", "skewness",
                                    "kurtosis")

_N, _MEAN, _M2, _M3, _M4, _MIN, _MAX = range(7)


def _as_moments(m: np.ndarray, what: str) -> np.ndarray:
    """Return ``m`` as a float64 array with a last axis of length 7, or raise."""
    arr = np.asarray(m, dtype=np.float64)
    if arr.ndim < 1 or arr.shape[-1] != 7:
        raise ValueError(
            f"{what}: expected a moments array of shape (..., 7) ({', '.join(MOMENT_COLUMNS)}); got "
            f"shape {arr.shape}"
        )
    return arr


def empty_moments(shape_prefix: int | Sequence[int] = ()) -> np.ndarray:
    """Empty accumulators of shape ``shape_prefix + (7,)``: the identity of :func:`merge_moments`.

    >>> empty_moments(2).tolist()
    [[0.0, 0.0, 0.0, 0.0, 0.0, inf, -inf], [0.0, 0.0, 0.0, 0.0, 0.0, inf, -inf]]
    >>> empty_moments((3, 4)).shape
    (3, 4, 7)
    """
    prefix = (int(shape_prefix),) if isinstance(shape_prefix, (int, np.integer)) else tuple(shape_prefix)
    out = np.zeros(prefix + (7,), dtype=np.float64)
    out[..., _MIN] = np.inf
    out[..., _MAX] = -np.inf
    return out


def _merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise merge of two validated, same-shape float64 moment arrays."""
    na, ma, a2, a3, a4 = (a[..., k] for k in range(5))
    nb, mb, b2, b3, b4 = (b[..., k] for k in range(5))
    n = na + nb
    with np.errstate(all="ignore"):
        safe_n = np.where(n == 0, 1.0, n)
        delta = mb - ma
        wb = nb / safe_n  # weight of b; na/n == 1 - wb
        nab = na * nb / safe_n  # na*nb/n
        delta2 = delta * delta
        mean = ma + delta * wb
        m2 = a2 + b2 + delta2 * nab
        m3 = a3 + b3 + delta * delta2 * nab * (na - nb) / safe_n + 3.0 * delta * (na * b2 - nb * a2) / safe_n
        m4 = (
            a4
            + b4
            + delta2 * delta2 * nab * (na * na - na * nb + nb * nb) / (safe_n * safe_n)
            + 6.0 * delta2 * (na * na * b2 + nb * nb * a2) / (safe_n * safe_n)
            + 4.0 * delta * (na * b3 - nb * a3) / safe_n
        )
    out = np.stack(
        [n, mean, m2, m3, m4, np.minimum(a[..., _MIN], b[..., _MIN]), np.maximum(a[..., _MAX], b[..., _MAX])],
        axis=-1,
    )
    out = np.where((nb == 0)[..., None], a, out)
    return np.where((na == 0)[..., None], b, out)


def merge_moments(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exactly combine two moment arrays of identical shape ``(..., 7)``.

    Uses the pairwise formulas of Chan et al. / Pébay for central sums up to
    4th order; ``min``/``max`` are the min of mins and max of maxes (NaN
    propagates).  Where one side has ``n == 0`` the other side is returned
    unchanged, so :func:`empty_moments` is an identity element.  The result
    equals (up to rounding) the moments of the concatenated samples.

    >>> x = np.array([[1.0, 2.0, 3.0, 6.0]])
    >>> both = merge_moments(frame_moments(x[:, :1]), frame_moments(x[:, 1:]))
    >>> np.allclose(both, frame_moments(x))
    True
    >>> bool((merge_moments(empty_moments(1), frame_moments(x)) == frame_moments(x)).all())
    True
    """
    a64 = _as_moments(a, "merge_moments(a)")
    b64 = _as_moments(b, "merge_moments(b)")
    if a64.shape != b64.shape:
        raise ValueError(f"merge_moments: shapes differ: {a64.shape} vs {b64.shape}")
    return _merge(a64, b64)


def reduce_moments(m: np.ndarray, axis: int = 0) -> np.ndarray:
    """Merge moments along ``axis`` (an axis of ``m`` other than the last, moment axis).

    E.g. ``(F, C, 7) -> (C, 7)`` with ``axis=0`` merges the F frames of a
    window.  A vectorised pairwise tree of :func:`merge_moments` calls
    (``ceil(log2(F))`` numpy-level steps); an axis of length 0 gives empty
    accumulators.

    >>> x = np.arange(12.0).reshape(3, 1, 4)  # 3 frames, 1 channel, 4 samples
    >>> merged = reduce_moments(frame_moments(x), axis=0)
    >>> np.allclose(merged, frame_moments(x.reshape(1, 1, 12))[0])
    True
    """
    work = _as_moments(m, "reduce_moments")
    if work.ndim < 2:
        raise ValueError(f"reduce_moments: need at least one axis besides the moment axis; got {work.shape}")
    ax = int(axis)
    if not -work.ndim <= ax < work.ndim:
        raise ValueError(f"reduce_moments: axis {axis} out of range for shape {work.shape}")
    ax %= work.ndim
    if ax == work.ndim - 1:
        raise ValueError("reduce_moments: axis is the moment axis (last, length 7); pick another axis")
    work = np.moveaxis(work, ax, 0)
    if work.shape[0] == 0:
        return empty_moments(work.shape[1:-1])
    while work.shape[0] > 1:
        pairs = work.shape[0] // 2
        merged = _merge(work[0 : 2 * pairs : 2], work[1 : 2 * pairs : 2])
        if work.shape[0] % 2:
            merged = np.concatenate([merged, work[-1:]], axis=0)
        work = merged
    return np.array(work[0], dtype=np.float64, copy=True)


def features_from_moments(m: np.ndarray) -> np.ndarray:
    """Time-domain features from moments: ``(..., 7) -> (..., 9)`` in :data:`MOMENT_FEATURES` order.

    ``mean``; ``std = sqrt(m2/n)`` (population, ddof=0);
    ``rms = sqrt(mean**2 + m2/n)`` (computed as ``hypot(mean, std)``);
    ``min``; ``max``; ``p2p = max - min``; ``crest = max(|min|, |max|) / rms``;
    ``skewness = sqrt(n) * m3 / m2**1.5``; ``kurtosis = n * m4 / m2**2``
    (Pearson: 3 for a normal distribution, *not* excess kurtosis).

    Degenerate cases (no warnings are emitted):

    * ``m2 == 0`` (constant row): skewness = 0 and kurtosis = 0;
    * ``rms == 0`` (all-zero row): crest = 0;
    * ``n == 0`` (empty accumulator): every feature is NaN;
    * NaN moments give NaN features.

    >>> m = frame_moments(np.array([[1.0, -1.0, 1.0, -1.0], [2.0, 2.0, 2.0, 2.0]]))
    >>> features_from_moments(m).tolist()
    [[0.0, 1.0, 1.0, -1.0, 1.0, 2.0, 1.0, 0.0, 1.0], [2.0, 0.0, 2.0, 2.0, 2.0, 0.0, 1.0, 0.0, 0.0]]
    """
    mom = _as_moments(m, "features_from_moments")
    n, mean, m2, m3, m4, lo, hi = (mom[..., k] for k in range(7))
    with np.errstate(all="ignore"):
        present = n > 0
        var = np.divide(m2, n, out=np.full(n.shape, np.nan), where=present)
        std = np.sqrt(var)
        rms = np.hypot(mean, std)
        peak = np.maximum(np.abs(lo), np.abs(hi))
        crest = np.divide(peak, rms, out=np.zeros(n.shape), where=rms != 0)
        spread = m2 != 0
        # sqrt(n)*m3/m2**1.5 == (m3/m2)/std and n*m4/m2**2 == (m4/m2)/var,
        # written this way so large m2 does not overflow m2**1.5 / m2**2.
        skew = np.divide(m3 / np.where(spread, m2, 1.0), std, out=np.zeros(n.shape), where=spread)
        kurt = np.divide(m4 / np.where(spread, m2, 1.0), var, out=np.zeros(n.shape), where=spread)
    out = np.stack([mean, std, rms, lo, hi, hi - lo, crest, skew, kurt], axis=-1)
    out[~present] = np.nan
    return out

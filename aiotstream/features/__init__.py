"""Time-domain features for windows of sensor samples.

The pipeline is moments first, features last:

1. :func:`frame_moments` (Cython kernel) reduces each frame ``(F, C, N)`` to
   moments ``(F, C, 7)`` = ``n, mean, m2, m3, m4, min, max`` with central *sums*
   ``m_k = sum((x - mean)**k)``.
2. :func:`merge_moments` / :func:`reduce_moments` combine the moments of the
   frames that make up a window exactly (Chan / Pébay pairwise update), so a
   window never needs its raw samples kept around.
3. :func:`features_from_moments` / :func:`window_features` turn merged moments
   into the 9 :data:`TIME_FEATURES`, laid out as described by a versioned
   :class:`FeatureSet` from :data:`FEATURE_SETS`.

Everything here is vectorised numpy on top of the kernel (no per-row Python
loops).  A moments array is any float64 array whose last axis has length 7; an
*empty* accumulator (see :func:`empty_moments`) has ``n = 0``, zero mean and
central sums, ``min = +inf`` and ``max = -inf``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

try:
    from aiotstream._kernels import MOMENT_COLUMNS, frame_moments
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "aiotstream._kernels is not built; run `python setup.py build_ext --inplace` "
        "(or `make unit`, which does it)"
    ) from exc

__all__ = [
    "FEATURE_SETS",
    "MOMENT_COLUMNS",
    "TIME_FEATURES",
    "FeatureSet",
    "empty_moments",
    "features_from_moments",
    "frame_moments",
    "get_feature_set",
    "merge_moments",
    "reduce_moments",
    "window_features",
]

#: The per-channel time-domain features, in the column order produced by
#: :func:`features_from_moments`.
TIME_FEATURES: tuple[str, ...] = (
    "mean",
    "std",
    "rms",
    "min",
    "max",
    "p2p",
    "crest",
    "skewness",
    "kurtosis",
)

_N, _MEAN, _M2, _M3, _M4, _MIN, _MAX = range(7)


def _as_moments(m: np.ndarray, what: str) -> np.ndarray:
    """Return ``m`` as a float64 array with a last axis of length 7, or raise."""
    arr = np.asarray(m, dtype=np.float64)
    if arr.ndim < 1 or arr.shape[-1] != 7:
        raise ValueError(
            f"{what}: expected a moments array of shape (..., 7) "
            f"({', '.join(MOMENT_COLUMNS)}); got shape {arr.shape}"
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
    """Time-domain features from moments: ``(..., 7) -> (..., 9)`` in :data:`TIME_FEATURES` order.

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


@dataclass(frozen=True, slots=True)
class FeatureSet:
    """A named, versioned layout of per-channel feature columns.

    ``per_channel`` is a tuple of names from :data:`TIME_FEATURES` (unique, in
    the order they appear in each channel's block).  Bump ``version`` whenever
    the columns or their definitions change: models and lineage records refer
    to a feature set by :attr:`ref`.

    >>> fs = FeatureSet("demo", 2, ("mean", "rms"))
    >>> fs.ref
    'demo/2'
    >>> fs.columns(["x", "y"])
    ['x.mean', 'x.rms', 'y.mean', 'y.rms']
    """

    name: str
    version: int
    per_channel: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ValueError(f"FeatureSet.name must be a non-empty str without '/'; got {self.name!r}")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"FeatureSet.version must be an int >= 1; got {self.version!r}")
        if not isinstance(self.per_channel, tuple) or not self.per_channel:
            raise TypeError(f"FeatureSet.per_channel must be a non-empty tuple; got {self.per_channel!r}")
        unknown = [f for f in self.per_channel if f not in TIME_FEATURES]
        if unknown:
            raise ValueError(f"FeatureSet {self.name!r}: unknown features {unknown}; known: {TIME_FEATURES}")
        if len(set(self.per_channel)) != len(self.per_channel):
            raise ValueError(f"FeatureSet {self.name!r}: duplicate features in {self.per_channel}")

    @property
    def ref(self) -> str:
        """``"name/version"``, the identifier stored with models and lineage."""
        return f"{self.name}/{self.version}"

    def columns(self, channels: Sequence[str]) -> list[str]:
        """Column names ``f"{channel}.{feature}"``, channel-major (all features of channel 0 first)."""
        if isinstance(channels, str):
            raise TypeError("FeatureSet.columns expects a sequence of channel names, not a single str")
        names = list(channels)
        bad = [c for c in names if not isinstance(c, str) or not c]
        if bad:
            raise TypeError(f"FeatureSet.columns: channel names must be non-empty str; got {bad}")
        if len(set(names)) != len(names):
            raise ValueError(f"FeatureSet.columns: duplicate channel names in {names}")
        return [f"{channel}.{feature}" for channel in names for feature in self.per_channel]

    def indices(self) -> tuple[int, ...]:
        """Positions of :attr:`per_channel` within :data:`TIME_FEATURES`."""
        return tuple(TIME_FEATURES.index(f) for f in self.per_channel)


#: Registry of known feature sets, keyed by name.
FEATURE_SETS: dict[str, FeatureSet] = {
    fs.name: fs for fs in (FeatureSet("vibration-basic", 1, TIME_FEATURES),)
}


def get_feature_set(name: str) -> FeatureSet:
    """Look up a registered :class:`FeatureSet` by name.

    >>> get_feature_set("vibration-basic").ref
    'vibration-basic/1'
    """
    try:
        return FEATURE_SETS[name]
    except KeyError:
        raise KeyError(f"unknown feature set {name!r}; known: {sorted(FEATURE_SETS)}") from None


def window_features(m: np.ndarray, feature_set: FeatureSet | None = None) -> np.ndarray:
    """Flat feature row of one window from its merged moments: ``(C, 7) -> (C * k,)``.

    The column order is that of ``feature_set.columns(channels)`` (channel-major);
    by default all 9 :data:`TIME_FEATURES` (``k = 9``, i.e. ``vibration-basic/1``).

    >>> frames = frame_moments(np.array([[[1.0, 3.0], [0.0, 0.0]]]))  # 1 frame, 2 channels
    >>> window_features(reduce_moments(frames, axis=0)).shape
    (18,)
    >>> window_features(frames[0], FeatureSet("demo", 1, ("mean", "max"))).tolist()
    [2.0, 3.0, 0.0, 0.0]
    """
    mom = _as_moments(m, "window_features")
    if mom.ndim != 2:
        raise ValueError(f"window_features: expected merged moments of shape (C, 7); got {mom.shape}")
    feats = features_from_moments(mom)
    if feature_set is not None and feature_set.per_channel != TIME_FEATURES:
        feats = feats[:, list(feature_set.indices())]
    return feats.reshape(-1)

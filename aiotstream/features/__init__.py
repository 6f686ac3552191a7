"""Features for windows of sensor samples, over the compiled kernels (:mod:`aiotstream._kernels`).

The streaming path is partials first, features last:

1. Once per poll batch, :func:`frame_partials_batch` reduces all frames of one
   shape ``(F, C, N)`` to per-frame *partials* in one kernel call each:
   time-domain partials ``(F, C, 11)`` (:data:`PARTIAL_COLUMNS`: count, mean,
   central sums m2..m4, min, max, sum|x|, zero crossings, first and last
   sample) and, for spectral sets, spectral partials ``(F, C, 7 + B)`` (band
   powers, centroid sums, peak, 1x/2x power). The samples are then dropped.
   (The flow's ingest gives a time-domain set's frames to
   ``_kernels.frame_partials_each`` as they lie instead of stacking them: the
   same floats, without a copy of the poll.)
2. When a window closes, :func:`window_features` merges its frames' partials
   exactly, in time order (:func:`reduce_partials`, :func:`reduce_spectral`)
   and derives the set's columns (:func:`features_from_partials`,
   :func:`spectral_features_from_partials`).

The time features of a window equal those of its frames' concatenated
samples (within the tolerances in :mod:`aiotstream.features.reference`). The
spectral features of a multi-frame window follow Welch: the frames' power
spectra are averaged, and the dominant frequency is the peak of the
largest single-frame bin (earliest frame on a tie) -- the twin applies the
same rule to the same frames.

For a batch of whole windows (no merging) use the direct kernels
:func:`time_features` and :func:`spectral_features`. Feature sets and their
registry live in :mod:`aiotstream.features.sets`, per-key scalar statistics
in :mod:`aiotstream.features.scalar`, the original 7-column moment algebra in
:mod:`aiotstream.features.moments`, and the numpy twins of every kernel in
:mod:`aiotstream.features.reference` (tests and benchmarks only).
"""

from __future__ import annotations

import numpy as np

try:
    from aiotstream._kernels import (
        MOMENT_COLUMNS,
        PARTIAL_COLUMNS,
        SPECTRAL_PARTIAL_COLUMNS,
        features_from_partials,
        frame_moments,
        frame_partials,
        frame_spectra,
        hann,
        reduce_partials,
        reduce_spectral,
        spectral_features,
        spectral_features_from_partials,
        time_features,
        window_row,
    )
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "aiotstream._kernels is not built; run `python setup.py build_ext --inplace` (or `make "
        "unit`, which does it)"
    ) from exc

from aiotstream.features.moments import (
    MOMENT_FEATURES,
    empty_moments,
    features_from_moments,
    merge_moments,
    reduce_moments,
)
from aiotstream.features.scalar import ScalarState
from aiotstream.features.sets import (
    DEFAULT_BANDS,
    FEATURE_SETS,
    HARMONIC_HALFWIDTH_BINS,
    SCALAR_FEATURES,
    SPECTRAL_FEATURES,
    TIME_FEATURES,
    FeatureSet,
    band_name,
    band_problems,
    get_feature_set,
)

__all__ = [
    "DEFAULT_BANDS",
    "FEATURE_SETS",
    "HARMONIC_HALFWIDTH_BINS",
    "MOMENT_COLUMNS",
    "MOMENT_FEATURES",
    "PARTIAL_COLUMNS",
    "SCALAR_FEATURES",
    "SPECTRAL_FEATURES",
    "SPECTRAL_PARTIAL_COLUMNS",
    "TIME_FEATURES",
    "FeatureSet",
    "ScalarState",
    "band_name",
    "band_problems",
    "empty_moments",
    "features_from_moments",
    "features_from_partials",
    "frame_moments",
    "frame_partials",
    "frame_partials_batch",
    "frame_spectra",
    "get_feature_set",
    "hann",
    "merge_moments",
    "reduce_moments",
    "reduce_partials",
    "reduce_spectral",
    "spectral_features",
    "spectral_features_from_partials",
    "time_columns_kept",
    "time_features",
    "window_features",
    "window_row",
]


def frame_partials_batch(samples: np.ndarray, sample_rate_hz: float, rpm: np.ndarray | float | None,
                         feature_set: FeatureSet) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-frame partials of a stack of frames ``(F, C, N)`` for ``feature_set``: one kernel call each.

    Returns ``(time partials (F, C, 11), spectral partials (F, C, 7 + B) or
    None)``; the spectral ones only for a spectral set. ``rpm`` is one
    running speed per frame ``(F,)`` (its asset's) or a scalar.

    >>> x = np.zeros((2, 3, 64), np.float32)
    >>> t, s = frame_partials_batch(x, 10_000.0, 1800.0, get_feature_set("vibration-spectral"))
    >>> t.shape, s.shape
    ((2, 3, 11), (2, 3, 11))
    """
    time_part = frame_partials(samples)
    if not feature_set.spectral:
        return time_part, None
    r = np.asarray(rpm, dtype=np.float64) if rpm is not None else None
    if r is not None and r.ndim == 1:
        r = r[:, None]  # one speed per frame, the same for its channels
    spec = frame_spectra(samples, sample_rate_hz, feature_set.bands, rpm=r,
                         harmonic_halfwidth_bins=HARMONIC_HALFWIDTH_BINS)
    return time_part, spec


def time_columns_kept(feature_set: FeatureSet) -> np.ndarray | None:
    """The positions of a time-domain set's features among the kernels' 12 (:data:`TIME_FEATURES`) as an
    intp array, None when it has all of them in their order: :func:`window_row`'s ``keep`` (the site runtime
    finds it once: ``SiteRuntime.time_keep``).

    >>> time_columns_kept(get_feature_set("vibration-basic")) is None
    True
    >>> time_columns_kept(FeatureSet("demo", 1, ("max", "mean"))).tolist()
    [4, 0]
    """
    idx = feature_set.indices()
    return None if idx == tuple(range(len(TIME_FEATURES))) else np.array(idx, dtype=np.intp)


def window_features(partials: np.ndarray, feature_set: FeatureSet | None = None,
                    spectral: np.ndarray | None = None) -> np.ndarray:
    """Flat feature row of one window from its merged partials: ``(C, 11)[, (C, 7+B)] -> (C * k,)``.

    ``partials`` are the window's merged time-domain partials
    (:func:`reduce_partials` of its frames, in time order); ``spectral`` the
    merged spectral partials (:func:`reduce_spectral`), required when
    ``feature_set`` is spectral. The column order is that of
    ``feature_set.columns(channels)`` (channel-major); the default set is
    ``vibration-basic``.

    >>> frames = frame_partials(np.array([[[1.0, 3.0], [0.0, 0.0]]]))  # 1 frame, 2 channels
    >>> window_features(reduce_partials(frames)).shape
    (24,)
    >>> window_features(frames[0], FeatureSet("demo", 1, ("mean", "max"))).tolist()
    [2.0, 3.0, 0.0, 0.0]
    """
    fs = feature_set if feature_set is not None else FEATURE_SETS["vibration-basic"]
    part = np.asarray(partials, dtype=np.float64)
    if part.ndim != 2 or part.shape[1] != len(PARTIAL_COLUMNS):
        raise ValueError(f"window_features: expected merged partials of shape (C, {len(PARTIAL_COLUMNS)}); "
                         f"got {part.shape}")
    if fs.kind != "waveform":
        raise ValueError(f"window_features: feature set {fs.ref} is not a waveform set")
    feats = features_from_partials(part)
    if fs.spectral:
        if spectral is None:
            raise ValueError(f"window_features: feature set {fs.ref} needs the window's spectral partials")
        spec = np.asarray(spectral, dtype=np.float64)
        want = len(SPECTRAL_PARTIAL_COLUMNS) + len(fs.bands)
        if spec.shape != (part.shape[0], want):
            raise ValueError(f"window_features: expected spectral partials of shape ({part.shape[0]}, "
                             f"{want}) for {len(fs.bands)} band(s); got {spec.shape}")
        feats = np.concatenate([feats, spectral_features_from_partials(spec)], axis=1)
    if fs.per_channel != fs.all_columns:
        feats = feats[:, list(fs.indices())]
    return feats.reshape(-1)

"""Feature sets: named, versioned layouts of feature columns, and their registry.

A site config names a set (``[features] set = "vibration-spectral"``) and,
for spectral sets, optionally its bands. The *names and order* of a set's
columns are part of its version: change either and the version must change,
because models and lineage records refer to a set by ``name/version``
(``tests/unit/test_kernels.py`` pins every registered layout). Band edges are
configurable, so they travel with the version in the lineage block
(:meth:`FeatureSet.lineage`).

Registered sets (per channel, channel-major columns ``f"{channel}.{feature}"``):

* ``vibration-basic`` v2: the 12 :data:`TIME_FEATURES`.
  (v1 had the first 9; v2 added ``zcr``, ``impulse``, ``shape``.)
* ``vibration-spectral`` v1: the 12 time features, then one ``band_<lo>_<hi>``
  column per band, then ``centroid``, ``dominant``, ``e1x``, ``e2x``
  (:data:`SPECTRAL_FEATURES`). Default bands: :data:`DEFAULT_BANDS`.
* ``scalar-basic`` v1 (kind ``scalar``, per metric): ``ewma``, ``mean``,
  ``std``, ``min``, ``max``, ``roc`` (:data:`SCALAR_FEATURES`), from
  :class:`aiotstream.features.ScalarState`.

This module holds data and checks only (no kernels), so the config loader can
validate against it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_BANDS",
    "FEATURE_SETS",
    "HARMONIC_HALFWIDTH_BINS",
    "SCALAR_FEATURES",
    "SPECTRAL_FEATURES",
    "TIME_FEATURES",
    "FeatureSet",
    "band_name",
    "band_problems",
    "get_feature_set",
]

#: The 12 per-channel time-domain features, in the kernels' column order.
TIME_FEATURES: tuple[str, ...] = (
    "mean", "std", "rms", "min", "max", "p2p", "crest", "skewness", "kurtosis", "zcr", "impulse", "shape",
)
#: Spectral features that follow the band columns.
SPECTRAL_FEATURES: tuple[str, ...] = ("centroid", "dominant", "e1x", "e2x")
#: Features of a scalar stream (per metric).
SCALAR_FEATURES: tuple[str, ...] = ("ewma", "mean", "std", "min", "max", "roc")
#: Default bands (Hz) of ``vibration-spectral``: running-speed harmonics, gear mesh,
#: mid, bearing resonances (for 10 kHz sensors; assets sampled slower need their own).
DEFAULT_BANDS: tuple[tuple[float, float], ...] = ((0.0, 200.0), (200.0, 1000.0), (1000.0, 3000.0),
                                                  (3000.0, 5000.0))
#: Half-width, in FFT bins, of the 1x / 2x running-speed bands (the Hann main lobe).
HARMONIC_HALFWIDTH_BINS = 2.0

WAVEFORM = "waveform"
SCALAR = "scalar"


def _num(v: float) -> str:
    text = f"{v:g}"
    return text.replace(".", "p").replace("-", "m").replace("+", "")


def band_name(lo: float, hi: float) -> str:
    """Column name of the band ``[lo, hi)`` Hz (no dots, so ``channel.feature`` stays unambiguous).

    >>> band_name(0, 200), band_name(2.5, 1e4)
    ('band_0_200', 'band_2p5_10000')
    """
    return f"band_{_num(lo)}_{_num(hi)}"


def band_problems(bands: Sequence[Sequence[float]], nyquist_hz: dict[str, float] | None = None,
                  path: str = "bands") -> list[tuple[str, str]]:
    """Problems with a band list, as ``(path, message)`` pairs (empty when it is fine).

    Bands must be a non-empty list of ``[lo, hi]`` Hz with ``0 <= lo < hi``,
    ordered and not overlapping (``hi`` of one <= ``lo`` of the next), and
    with ``hi`` at most the Nyquist frequency of every asset in
    ``nyquist_hz`` (asset id -> sample rate / 2).

    >>> band_problems([[0, 100], [50, 200]])  # doctest: +NORMALIZE_WHITESPACE
    [('bands[1]', '[50.0, 200.0] starts below the end of bands[0] (100.0): bands must be ordered and
    must not overlap')]
    >>> band_problems([[0, 6000]], {"pump-1": 5000.0})
    [('bands[0]', 'upper edge 6000.0 Hz is above the Nyquist frequency of asset pump-1 (5000 Hz)')]
    """
    problems: list[tuple[str, str]] = []
    if len(bands) == 0:
        return [(path, "must hold at least one [lo, hi] band (leave it out to use the set's default bands)")]
    prev_hi: float | None = None
    for i, band in enumerate(bands):
        where = f"{path}[{i}]"
        if len(band) != 2:
            problems.append((where, f"must be a [lo, hi] pair in Hz; got {list(band)}"))
            continue
        lo, hi = float(band[0]), float(band[1])
        if not (math.isfinite(lo) and math.isfinite(hi)):
            problems.append((where, f"edges must be finite numbers; got {[lo, hi]}"))
            continue
        if lo < 0 or lo >= hi:
            problems.append((where, f"needs 0 <= lo < hi; got {[lo, hi]}"))
            continue
        if prev_hi is not None and lo < prev_hi:
            msg = f"{[lo, hi]} starts below the end of {path}[{i - 1}] ({prev_hi}): "
            problems.append((where, msg + "bands must be ordered and must not overlap"))
        prev_hi = hi
        if nyquist_hz:
            asset, nyq = min(nyquist_hz.items(), key=lambda kv: kv[1])  # the slowest asset bounds the bands
            if hi > nyq:
                msg = f"upper edge {hi} Hz is above the Nyquist frequency of asset {asset} ({nyq:g} Hz)"
                problems.append((where, msg))
    return problems


_SPECTRAL_SET = frozenset(SPECTRAL_FEATURES)


@dataclass(frozen=True, slots=True)
class FeatureSet:
    """A named, versioned layout of feature columns.

    ``per_channel`` lists the features of one channel (waveform sets) or one
    metric (scalar sets), in column order. Band columns, if any, must be
    exactly ``band_name(lo, hi)`` for each of ``bands``, in order. Bump
    ``version`` whenever the columns or their definitions change.

    >>> fs = FeatureSet("demo", 2, ("mean", "rms"))
    >>> fs.ref, fs.columns(["x", "y"])
    ('demo/2', ['x.mean', 'x.rms', 'y.mean', 'y.rms'])
    """

    name: str
    version: int
    per_channel: tuple[str, ...]
    kind: str = WAVEFORM
    bands: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ValueError(f"FeatureSet.name must be a non-empty str without '/'; got {self.name!r}")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"FeatureSet.version must be an int >= 1; got {self.version!r}")
        if not isinstance(self.per_channel, tuple) or not self.per_channel:
            raise TypeError(f"FeatureSet.per_channel must be a non-empty tuple; got {self.per_channel!r}")
        if len(set(self.per_channel)) != len(self.per_channel):
            raise ValueError(f"FeatureSet {self.name!r}: duplicate features in {self.per_channel}")
        if self.kind == SCALAR:
            if self.bands:
                raise ValueError(f"FeatureSet {self.name!r}: a scalar set has no bands")
            known: tuple[str, ...] = SCALAR_FEATURES
        elif self.kind == WAVEFORM:
            bands = tuple((float(lo), float(hi)) for lo, hi in self.bands)
            object.__setattr__(self, "bands", bands)
            problems = band_problems(bands) if bands else []
            if problems:
                raise ValueError(f"FeatureSet {self.name!r}: " + "; ".join(f"{p}: {m}" for p, m in problems))
            names = tuple(band_name(lo, hi) for lo, hi in bands)
            given = tuple(f for f in self.per_channel if f.startswith("band_"))
            if given and given != names:
                raise ValueError(f"FeatureSet {self.name!r}: band columns {given} do not match bands {bands} "
                                 f"(expected {names})")
            if bands and not given:
                raise ValueError(f"FeatureSet {self.name!r}: bands given but no band columns in per_channel")
            known = TIME_FEATURES + names + SPECTRAL_FEATURES
        else:
            raise ValueError(f"FeatureSet.kind must be {WAVEFORM!r} or {SCALAR!r}; got {self.kind!r}")
        unknown = [f for f in self.per_channel if f not in known]
        if unknown:
            raise ValueError(f"FeatureSet {self.name!r}: unknown features {unknown}; known: {known}")

    @property
    def ref(self) -> str:
        """``"name/version"``, the identifier stored with models."""
        return f"{self.name}/{self.version}"

    @property
    def spectral(self) -> bool:
        """Whether any column needs the spectral kernel (bands, centroid, ...). (Band columns are there
        exactly when bands are, as ``__post_init__`` checks; one set operation, not a scan of the names: it is
        read several times per window.)"""
        return self.kind == WAVEFORM and (bool(self.bands) or not _SPECTRAL_SET.isdisjoint(self.per_channel))

    @property
    def all_columns(self) -> tuple[str, ...]:
        """Every per-channel column the kernels produce for this set, in kernel order."""
        if self.kind == SCALAR:
            return SCALAR_FEATURES
        if not self.spectral:
            return TIME_FEATURES
        return TIME_FEATURES + tuple(band_name(lo, hi) for lo, hi in self.bands) + SPECTRAL_FEATURES

    def indices(self) -> tuple[int, ...]:
        """Positions of :attr:`per_channel` within :attr:`all_columns`."""
        cols = self.all_columns
        return tuple(cols.index(f) for f in self.per_channel)

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

    def with_bands(self, bands: Sequence[Sequence[float]]) -> FeatureSet:
        """The same set with other band edges (same name and version: the bands go into lineage).

        >>> get_feature_set("vibration-spectral").with_bands([[0, 50], [50, 400]]).per_channel[12:]
        ('band_0_50', 'band_50_400', 'centroid', 'dominant', 'e1x', 'e2x')
        """
        if not self.spectral:
            raise ValueError(f"feature set {self.ref} has no bands (only spectral sets take bands)")
        new = tuple((float(lo), float(hi)) for lo, hi in bands)
        problems = band_problems(new)
        if problems:
            raise ValueError("; ".join(f"{p}: {m}" for p, m in problems))
        old_names = {band_name(lo, hi) for lo, hi in self.bands}
        cols: list[str] = []
        for f in self.per_channel:
            if f in old_names:
                if not any(c.startswith("band_") for c in cols):
                    cols.extend(band_name(lo, hi) for lo, hi in new)
            else:
                cols.append(f)
        return FeatureSet(self.name, self.version, tuple(cols), self.kind, new)

    def lineage(self) -> dict:
        """The ``features`` block of output lineage: set, version and, for spectral sets, the bands.

        >>> get_feature_set("vibration-basic").lineage()
        {'set': 'vibration-basic', 'version': 2}
        """
        block: dict = {"set": self.name, "version": self.version}
        if self.spectral:
            block["bands"] = [[lo, hi] for lo, hi in self.bands]
        return block


#: Registry of known feature sets, keyed by name.
FEATURE_SETS: dict[str, FeatureSet] = {
    fs.name: fs
    for fs in (
        FeatureSet("vibration-basic", 2, TIME_FEATURES),
        FeatureSet("vibration-spectral", 1,
                   TIME_FEATURES + tuple(band_name(lo, hi) for lo, hi in DEFAULT_BANDS) + SPECTRAL_FEATURES,
                   bands=DEFAULT_BANDS),
        FeatureSet("scalar-basic", 1, SCALAR_FEATURES, kind=SCALAR),
    )
}


def get_feature_set(name: str, bands: Sequence[Sequence[float]] | None = None) -> FeatureSet:
    """Look up a registered :class:`FeatureSet` by name, optionally with other bands.

    >>> get_feature_set("vibration-basic").ref
    'vibration-basic/2'
    >>> get_feature_set("vibration-spectral", [[0, 1000]]).lineage()["bands"]
    [[0.0, 1000.0]]
    """
    try:
        fs = FEATURE_SETS[name]
    except KeyError:
        raise KeyError(f"unknown feature set {name!r}; known: {sorted(FEATURE_SETS)}") from None
    return fs if bands is None else fs.with_bands(bands)

# cython: language_level=3
"""Compiled feature kernels for :mod:`aiotstream`.

Every kernel takes a whole batch in one call and runs without the GIL: a
C-contiguous ``float32`` or ``float64`` array of shape ``(rows, N)`` or
``(rows, channels, N)`` (windows or frames, [channels,] samples).  ``float32``
input is read in place and promoted to ``double`` sample by sample, so all
accumulation is in double precision whatever the input dtype.  Thin Python
wrappers validate the input and allocate the output; the inner loops live in
``ext/kernels_core.h`` (vectorised with ``#pragma omp simd``; see there why).

Kernels
-------
Time domain (:data:`TIME_FEATURES`, 12 per row):

* :func:`frame_partials` -> ``(..., 11)`` :data:`PARTIAL_COLUMNS` per row,
  mergeable exactly (:func:`reduce_partials`); :func:`features_from_partials`
  turns (merged) partials into the 12 features; :func:`time_features` does
  both in one pass for a batch of windows.
* :func:`frame_moments` -> ``(..., 7)``: the first seven partial columns (the
  original moment kernel, kept for its callers).

Spectral (:func:`frame_spectra`, :func:`spectral_features`): mean removal,
Hann window, FFT and band/centroid/peak/harmonic pass in the kernel (its own
radix-2 FFT over 8 rows at a time for power-of-two lengths; ``scipy.fft.rfft``,
one thread, for other lengths).

Half-Space Trees (:func:`hst_score`, :func:`hst_learn`): River's walks over trees kept in flat
arrays (``aiotstream.models.hst``, whose numpy path is their twin).

Output records (:func:`bad_number`): the first number JSON cannot carry in a record about to be written (its
twin: the Python path of :func:`aiotstream.io.sinkguard.problem`). :func:`rounded_list`: a row of values as
the list a record carries, each ``round(v, ndigits)`` exactly as Python rounds it, NaN as None (its twin: that
list comprehension).

Decoded frames (:func:`sample_range`): a frame's non-finite count, min and max in one pass, for the decoder's
finite check and the ingest's range check (its twin: ``np.isfinite``, ``x.min()``, ``x.max()``).

Blocks of JSON readings (:func:`plain_reading_columns`): a Kafka poll batch's plain readings as columns in one
pass (its twin: the Python path of :func:`aiotstream.codecs.readings.plain_readings`); :func:`group_columns`
groups those columns by asset (its twin: the Python path of :func:`aiotstream.codecs.readings.group_columns`).

Scalar streams (:func:`scalar_update`): EWMA, rolling mean/std/min/max over a
ring buffer per key, rate of change, for a batch of (key, value, time) updates.

The plain-numpy twins used by the tests and the benchmark are in
``aiotstream.features.reference``; tolerances and NaN rules are documented
there and in each function below.
"""

import math

import numpy as np

cimport cython

cimport numpy as cnp
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_GetItemWithError, PyDict_Next
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from libc.math cimport HUGE_VAL, NAN, ceil, cos, exp2, fabs, floor, isfinite, M_PI, nextafter, rint, sqrt
from libc.stdlib cimport calloc, free
from libc.string cimport memcmp, memcpy

cnp.import_array()

__all__ = [
    "AVX2_ACTIVE",
    "LANE_FFT_DEFAULT",
    "MOMENT_COLUMNS",
    "PARTIAL_COLUMNS",
    "SCALAR_COLUMNS",
    "SPECTRAL_FEATURES",
    "SPECTRAL_PARTIAL_COLUMNS",
    "TIME_FEATURES",
    "bad_number",
    "features_from_partials",
    "frame_moments",
    "frame_partials",
    "frame_spectra",
    "hann",
    "hst_learn",
    "hst_score",
    "plain_reading_columns",
    "reduce_partials",
    "reduce_spectral",
    "rounded_list",
    "sample_range",
    "scalar_update",
    "spectral_features",
    "spectral_features_from_partials",
    "time_features",
]

#: Names of the 7 columns returned by :func:`frame_moments`, in order.
MOMENT_COLUMNS = ("n", "mean", "m2", "m3", "m4", "min", "max")
#: Names of the 11 columns returned by :func:`frame_partials`, in order.
PARTIAL_COLUMNS = MOMENT_COLUMNS + ("abs_sum", "zero_crossings", "first", "last")
#: The 12 time-domain features, in the column order of :func:`time_features`.
TIME_FEATURES = (
    "mean", "std", "rms", "min", "max", "p2p", "crest", "skewness", "kurtosis",
    "zcr", "impulse", "shape",
)
#: Fixed leading columns of :func:`frame_spectra` (one column per band follows).
SPECTRAL_PARTIAL_COLUMNS = ("count", "total", "fsum", "peak", "peak_hz", "e1x", "e2x")
#: Spectral features after the per-band columns, in order (see :func:`spectral_features`).
SPECTRAL_FEATURES = ("centroid", "dominant", "e1x", "e2x")
#: Whether this build runs its AVX2 variants on this CPU (``target_clones``; GCC on x86-64 Linux).
AVX2_ACTIVE = bool(aiot_avx2_active())
#: Whether :func:`frame_spectra` uses its own lane FFT for power-of-two lengths by default
#: (``transform="auto"``): only where it is faster than scipy's, i.e. with AVX2.
LANE_FFT_DEFAULT = AVX2_ACTIVE
#: Output columns of :func:`scalar_update`.
SCALAR_COLUMNS = ("ewma", "mean", "std", "min", "max", "roc")

cdef extern from "kernels_core.h" nogil:
    enum:
        AIOT_P_COLS
        AIOT_F_COLS
        AIOT_S_BANDS
    void aiot_row_partials_f(const float* p, Py_ssize_t n, double* out)
    void aiot_row_partials_d(const double* p, Py_ssize_t n, double* out)
    void aiot_merge_partials(double* a, const double* b)
    void aiot_features_from_partials(const double* p, double* f)
    enum:
        AIOT_LANES
    int aiot_avx2_active()
    void aiot_range_f(const void* p, Py_ssize_t n, Py_ssize_t* bad, double* lo, double* hi)
    void aiot_range_d(const void* p, Py_ssize_t n, Py_ssize_t* bad, double* lo, double* hi)
    void aiot_range_s(const void* p, Py_ssize_t n, Py_ssize_t* bad, double* lo, double* hi)
    double aiot_spec_prepare_f(const float* p, Py_ssize_t n, const double* w, float* buf, Py_ssize_t stride)
    double aiot_spec_prepare_d(const double* p, Py_ssize_t n, const double* w, double* buf, Py_ssize_t stride)
    void aiot_spec_power_f(const float* X, Py_ssize_t n, Py_ssize_t nk, double* tmp)
    void aiot_spec_power_d(const double* X, Py_ssize_t n, Py_ssize_t nk, double* tmp)
    void aiot_spec_from_power(const double* tmp, Py_ssize_t nk, double norm, double scale2, const double* freqs,
                              Py_ssize_t nbands, const Py_ssize_t* band_lo, const Py_ssize_t* band_hi,
                              Py_ssize_t h1a, Py_ssize_t h1b, Py_ssize_t h2a, Py_ssize_t h2b, double* out)
    float* aiot_fft_lanes_f(float* a, float* b, Py_ssize_t m, const float* tw)
    double* aiot_fft_lanes_d(double* a, double* b, Py_ssize_t m, const double* tw)
    void aiot_fft_lanes_f_partials(const float* Z, Py_ssize_t m, const double* pw, const double* freqs,
                                   const double* g, const Py_ssize_t* band_of, Py_ssize_t nbands,
                                   const Py_ssize_t* h, double* bacc, double* power, double** out)
    void aiot_fft_lanes_d_partials(const double* Z, Py_ssize_t m, const double* pw, const double* freqs,
                                   const double* g, const Py_ssize_t* band_of, Py_ssize_t nbands,
                                   const Py_ssize_t* h, double* bacc, double* power, double** out)
    void aiot_merge_spectral(double* a, const double* b, Py_ssize_t ncols)
    void aiot_spectral_features(const double* p, Py_ssize_t nbands, double* f)


# --------------------------------------------------------------------------- validation
def _batch(x, str what):
    """Validate a sample batch; return ``(rows (R, N) view, is_f32, lead shape)``."""
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{what} expects a numpy.ndarray of dtype float32 or float64 "
            f"with shape (W, N) or (W, C, N); got {type(x).__name__}"
        )
    dtype = x.dtype
    is_f32 = dtype == np.dtype(np.float32)
    if not is_f32 and dtype != np.dtype(np.float64):
        raise TypeError(f"{what} expects dtype float32 or float64 (native byte order); got dtype {dtype.str!r}")
    if x.ndim != 2 and x.ndim != 3:
        raise ValueError(
            f"{what} expects a 2-D (W, N) or 3-D (W, C, N) array; got {x.ndim}-D array of shape {x.shape}"
        )
    if x.shape[x.ndim - 1] < 1:
        raise ValueError(f"{what} expects N >= 1 samples per row (last axis); got shape {x.shape}")
    if not x.flags.c_contiguous:
        raise ValueError(
            f"{what} expects a C-contiguous array (use numpy.ascontiguousarray); "
            f"got strides {x.strides} for shape {x.shape}"
        )
    n = x.shape[x.ndim - 1]
    return x.reshape(-1, n), is_f32, x.shape[:x.ndim - 1]


def _columns(p, int width, str what, bint at_least=False):
    """Validate a float64 C-contiguous ``(..., width)`` array (``width`` or more with ``at_least``)."""
    if not isinstance(p, np.ndarray) or p.dtype != np.dtype(np.float64):
        raise TypeError(f"{what} expects a float64 numpy.ndarray; got {getattr(p, 'dtype', type(p).__name__)}")
    if p.ndim < 1 or (p.shape[p.ndim - 1] < width if at_least else p.shape[p.ndim - 1] != width):
        raise ValueError(
            f"{what} expects shape (..., {width}{'+' if at_least else ''}); got {p.shape}"
        )
    return np.ascontiguousarray(p)


# --------------------------------------------------------------------------- time domain
cdef void _partials_f(const float[:, ::1] x, double[:, ::1] out) noexcept nogil:
    cdef Py_ssize_t r
    for r in range(x.shape[0]):
        aiot_row_partials_f(&x[r, 0], x.shape[1], &out[r, 0])


cdef void _partials_d(const double[:, ::1] x, double[:, ::1] out) noexcept nogil:
    cdef Py_ssize_t r
    for r in range(x.shape[0]):
        aiot_row_partials_d(&x[r, 0], x.shape[1], &out[r, 0])


def frame_partials(x):
    """Per-row time-domain partials: ``(..., N) -> (..., 11)`` float64, :data:`PARTIAL_COLUMNS`.

    ``x`` must be a C-contiguous ``numpy.ndarray`` of dtype ``float32`` or
    ``float64`` with shape ``(F, N)`` or ``(F, C, N)`` and ``N >= 1`` (``F``
    and ``C`` may be 0); anything else raises ``TypeError`` (not an array,
    wrong dtype) or ``ValueError`` (shape, ``N == 0``, not C-contiguous).

    Columns: ``n``; ``mean``; central *sums* ``m2, m3, m4`` (``sum((x -
    mean)**k)``); ``min``; ``max``; ``abs_sum = sum(|x|)``;
    ``zero_crossings`` = number of adjacent pairs ``(x[i-1], x[i])`` whose
    signs differ, where a sample is non-negative when ``x >= 0`` (so 0.0 and
    -0.0 are non-negative); ``first = x[0]``; ``last = x[N-1]``.  First, last
    and the crossing count make the crossings of the *concatenation* of runs
    exactly mergeable (:func:`reduce_partials`).

    Algorithm (per row, double accumulation): a vectorised pass for sum,
    ``sum|x|``, min, max; a pass for sign changes; a pass for the central sums
    with the corrected two-pass re-centring (Chan, Golub & LeVeque).  The row
    stays in L1 cache between passes, so memory is read once.

    Special rows: constant rows (``min == max``, finite; includes ``N == 1``)
    give ``mean == min`` and ``m2 == m3 == m4 == 0`` exactly.  A row holding a
    NaN gives NaN in every column but ``n``.  +/-Inf samples follow IEEE
    arithmetic (``mean`` +/-Inf or NaN, central sums NaN, min/max/first/last
    exact).  Values beyond ~1e77 overflow ``d**4`` to Inf.

    >>> frame_partials(np.array([[1.0, -2.0, 3.0, 6.0]])).tolist()
    [[4.0, 2.0, 34.0, 0.0, 514.0, -2.0, 6.0, 12.0, 2.0, 1.0, 6.0]]
    """
    rows, is_f32, lead = _batch(x, "frame_partials")
    result = np.empty((rows.shape[0], AIOT_P_COLS), dtype=np.float64)
    cdef double[:, ::1] out = result
    cdef const float[:, ::1] xf
    cdef const double[:, ::1] xd
    if is_f32:
        xf = rows
        with nogil:
            _partials_f(xf, out)
    else:
        xd = rows
        with nogil:
            _partials_d(xd, out)
    return result.reshape(lead + (AIOT_P_COLS,))


def frame_partials_each(list frames):
    """:func:`frame_partials` of a list of equally shaped ``(C, N)`` sample arrays, without stacking them
    first: ``[(C, N)] * F -> (F, C, 11)`` float64, the same floats as ``frame_partials(np.stack(frames))``.

    Every array float32, or every one float64, in native byte order, of one shape with ``N >= 1`` (anything
    else raises ``TypeError`` or ``ValueError`` naming the array's index); one that is not C-contiguous is
    copied first. An array whose samples are not aligned for their type (a decoded frame's samples start at
    any byte) is read through a copy of one row at a time. The stack is a copy of every frame of a poll
    (megabytes that are written and read again); each frame here is read once, where it lies.

    >>> x = [np.array([[1.0, -2.0, 3.0, 6.0]]), np.array([[0.0, 0.0, 1.0, 1.0]])]
    >>> bool((frame_partials_each(x) == frame_partials(np.stack(x))).all())
    True
    """
    cdef Py_ssize_t f = len(frames), i, r, c, n
    if f == 0:
        raise ValueError("frame_partials_each expects at least one array")
    first = frames[0]
    if not isinstance(first, np.ndarray):
        raise TypeError(f"frame_partials_each expects numpy.ndarrays; item 0 is {type(first).__name__}")
    cdef cnp.ndarray arr = first
    cdef int t = cnp.PyArray_TYPE(arr)
    if t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64 or not cnp.PyArray_ISNOTSWAPPED(arr):
        raise TypeError(f"frame_partials_each expects float32 or float64 samples (native order); item 0 is "
                        f"{first.dtype.str!r}")
    if cnp.PyArray_NDIM(arr) != 2 or cnp.PyArray_DIM(arr, 1) < 1:
        raise ValueError(f"frame_partials_each expects (C, N) arrays with N >= 1; item 0 has shape "
                         f"{first.shape}")
    c, n = cnp.PyArray_DIM(arr, 0), cnp.PyArray_DIM(arr, 1)
    cdef size_t item = 4 if t == cnp.NPY_FLOAT32 else 8
    ptrs = np.empty(f, dtype=np.uintp)
    cdef size_t[::1] at = ptrs
    copies = []  # (the contiguous copies of the arrays that are not, alive until the pass is done)
    for i in range(f):
        a = frames[i]
        if not isinstance(a, np.ndarray):
            raise TypeError(f"frame_partials_each expects numpy.ndarrays; item {i} is {type(a).__name__}")
        arr = a
        if cnp.PyArray_TYPE(arr) != t or not cnp.PyArray_ISNOTSWAPPED(arr):
            raise TypeError(f"frame_partials_each expects one dtype; item {i} is {a.dtype.str!r}, item 0 "
                            f"{first.dtype.str!r}")
        if cnp.PyArray_NDIM(arr) != 2 or cnp.PyArray_DIM(arr, 0) != c or cnp.PyArray_DIM(arr, 1) != n:
            raise ValueError(f"frame_partials_each expects one shape; item {i} has {a.shape}, item 0 "
                             f"{first.shape}")
        if not cnp.PyArray_IS_C_CONTIGUOUS(arr):  # (rare: a view made by hand; decoded frames never are)
            arr = np.ascontiguousarray(a)
            copies.append(arr)
        at[i] = <size_t>cnp.PyArray_DATA(arr)
    result = np.empty((f, c, AIOT_P_COLS), dtype=np.float64)
    cdef double[:, :, ::1] out = result
    row = np.empty(n, dtype=first.dtype)  # (aligned: numpy's allocations are)
    cdef char* tmp = <char*>cnp.PyArray_DATA(row)
    cdef const char* p
    cdef const char* q
    cdef size_t rowbytes = n * item
    with nogil:
        for i in range(f):
            p = <const char*>at[i]
            for r in range(c):
                if <size_t>p % item:
                    memcpy(tmp, p, rowbytes)
                    q = <const char*>tmp
                else:
                    q = p
                if item == 4:
                    aiot_row_partials_f(<const float*>q, n, &out[i, r, 0])
                else:
                    aiot_row_partials_d(<const double*>q, n, &out[i, r, 0])
                p += rowbytes
    return result


def frame_moments(x):
    """Per-row moments of a batch of frames: ``(..., N) -> (..., 7)`` float64.

    The first seven columns of :func:`frame_partials` (``n, mean, m2, m3, m4,
    min, max``; same input rules, same special rows); see
    :func:`aiotstream.features.merge_moments` to combine them.

    >>> import numpy as np
    >>> frame_moments(np.array([[1.0, 2.0, 3.0, 6.0]])).tolist()
    [[4.0, 3.0, 14.0, 18.0, 98.0, 1.0, 6.0]]
    >>> frame_moments(np.zeros((5, 3, 8), dtype=np.float32)).shape
    (5, 3, 7)
    """
    rows, _, lead = _batch(x, "frame_moments")
    return np.ascontiguousarray(frame_partials(x)[..., :7])


cdef void _time_features_f(const float[:, ::1] x, double[:, ::1] out) noexcept nogil:
    cdef Py_ssize_t r
    cdef double part[AIOT_P_COLS]
    for r in range(x.shape[0]):
        aiot_row_partials_f(&x[r, 0], x.shape[1], part)
        aiot_features_from_partials(part, &out[r, 0])


cdef void _time_features_d(const double[:, ::1] x, double[:, ::1] out) noexcept nogil:
    cdef Py_ssize_t r
    cdef double part[AIOT_P_COLS]
    for r in range(x.shape[0]):
        aiot_row_partials_d(&x[r, 0], x.shape[1], part)
        aiot_features_from_partials(part, &out[r, 0])


def time_features(x):
    """The 12 time-domain features of each row: ``(..., N) -> (..., 12)`` float64.

    Same input rules as :func:`frame_partials`; equal to
    ``features_from_partials(frame_partials(x))`` (bit for bit) without the
    intermediate array.  Columns (:data:`TIME_FEATURES`), with ``d = x - mean``:

    ``mean``; ``std = sqrt(mean(d**2))`` (population, ddof=0);
    ``rms = sqrt(mean(x**2))`` (as ``hypot(mean, std)``); ``min``; ``max``;
    ``p2p = max - min``; ``crest = max|x| / rms``;
    ``skewness = mean(d**3) / std**3``; ``kurtosis = mean(d**4) / std**4``
    (Pearson: 3 for a normal distribution); ``zcr`` = zero crossings /
    (N - 1) (see :func:`frame_partials`; a fraction of adjacent pairs, times
    the sample rate for crossings per second); ``impulse = max|x| /
    mean|x|``; ``shape = rms / mean|x|``.

    Degenerate rows (no warnings): ``std == 0`` gives skewness = kurtosis =
    0; ``rms == 0`` gives crest = 0; ``mean|x| == 0`` gives impulse = shape =
    0; ``N == 1`` gives zcr = 0.  A row with a NaN or Inf sample gives NaN in
    every column.

    >>> time_features(np.array([[1.0, -1.0, 1.0, -1.0]])).tolist()
    [[0.0, 1.0, 1.0, -1.0, 1.0, 2.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0]]
    """
    rows, is_f32, lead = _batch(x, "time_features")
    result = np.empty((rows.shape[0], AIOT_F_COLS), dtype=np.float64)
    cdef double[:, ::1] out = result
    cdef const float[:, ::1] xf
    cdef const double[:, ::1] xd
    if is_f32:
        xf = rows
        with nogil:
            _time_features_f(xf, out)
    else:
        xd = rows
        with nogil:
            _time_features_d(xd, out)
    return result.reshape(lead + (AIOT_F_COLS,))


def features_from_partials(p):
    """Time-domain features from (merged) partials: ``(..., 11) -> (..., 12)``.

    ``p`` is a float64 array of :data:`PARTIAL_COLUMNS` rows (e.g. from
    :func:`reduce_partials`).  Formulas and degenerate cases as in
    :func:`time_features`; a row with ``n == 0`` (empty accumulator) gives NaN.

    >>> features_from_partials(frame_partials(np.array([[2.0, 2.0]])))[0, :3].tolist()
    [2.0, 0.0, 2.0]
    """
    arr = _columns(p, AIOT_P_COLS, "features_from_partials")
    rows = arr.reshape(-1, AIOT_P_COLS)
    result = np.empty((rows.shape[0], AIOT_F_COLS), dtype=np.float64)
    cdef const double[:, ::1] src = rows
    cdef double[:, ::1] out = result
    cdef Py_ssize_t r
    with nogil:
        for r in range(src.shape[0]):
            aiot_features_from_partials(&src[r, 0], &out[r, 0])
    return result.reshape(arr.shape[:arr.ndim - 1] + (AIOT_F_COLS,))


def reduce_partials(p):
    """Merge partials along the first axis, in order: ``(F, ..., 11) -> (..., 11)``.

    Row ``f`` is taken to hold the samples that come right after those of row
    ``f - 1`` (frames of a window in time order), so zero crossings across
    each boundary are counted and the result equals :func:`frame_partials` of
    the concatenated samples (up to rounding).  Rows with ``n == 0`` are
    skipped (identity); ``F == 0`` gives an empty accumulator (``n = 0``,
    everything else 0 except ``min = +inf``, ``max = -inf``).

    >>> x = np.array([[1.0, -2.0, 3.0, 6.0]])
    >>> parts = np.stack([frame_partials(x[:, :1]), frame_partials(x[:, 1:])])
    >>> np.allclose(reduce_partials(parts), frame_partials(x))
    True
    """
    arr = _columns(p, AIOT_P_COLS, "reduce_partials")
    if arr.ndim < 2:
        raise ValueError(f"reduce_partials expects shape (F, ..., {AIOT_P_COLS}); got {arr.shape}")
    rows = arr.reshape(arr.shape[0], math.prod(arr.shape[1:arr.ndim - 1]), AIOT_P_COLS)
    result = np.zeros((rows.shape[1], AIOT_P_COLS), dtype=np.float64)
    result[:, 5] = np.inf
    result[:, 6] = -np.inf
    cdef const double[:, :, ::1] src = rows
    cdef double[:, ::1] out = result
    cdef Py_ssize_t f, r
    with nogil:
        for r in range(src.shape[1]):
            for f in range(src.shape[0]):
                aiot_merge_partials(&out[r, 0], &src[f, r, 0])
    return result.reshape(arr.shape[1:])


def window_row(parts, keep, double extra0, double extra1):
    """The feature row of a window of time-domain partials, in one pass: what
    ``np.concatenate([window_features(reduce_partials(np.array(parts)), fs), [extra0, extra1]])`` gives for a
    time-domain feature set ``fs`` (``keep``: ``fs.indices()`` as an intp array, or None for all 12 features
    of each channel), to the bit: the frames merged in order, then each channel's features, channel-major.

    ``parts``: the window's frames' partials (a list or tuple), each a C-contiguous float64 ``(C, 11)`` array of
    the same ``C``. Returns None for anything else (no frames, another shape or dtype): the caller takes the
    general path.

    >>> p = [frame_partials(np.array([[1.0, -2.0]])), frame_partials(np.array([[3.0, 6.0]]))]
    >>> row = window_row(p, None, 20.0, 21.0)
    >>> row.tolist() == np.concatenate([features_from_partials(reduce_partials(np.array(p))).reshape(-1),
    ...                                 [20.0, 21.0]]).tolist()
    True
    """
    cdef Py_ssize_t nf = len(parts), f, r, k, c, nk
    if nf == 0:
        return None
    cdef object first = parts[0]
    if type(first) is not np.ndarray or cnp.PyArray_NDIM(<cnp.ndarray>first) != 2:
        return None
    c = cnp.PyArray_DIMS(<cnp.ndarray>first)[0]
    if c == 0:
        return None
    cdef const Py_ssize_t[::1] kv
    if keep is None:
        nk = AIOT_F_COLS
    else:
        kv = keep
        nk = kv.shape[0]
        for k in range(nk):
            if not 0 <= kv[k] < AIOT_F_COLS:
                return None
    acc_arr = np.zeros((c, AIOT_P_COLS), dtype=np.float64)
    cdef double[:, ::1] acc = acc_arr
    for r in range(c):
        acc[r, 5] = HUGE_VAL
        acc[r, 6] = -HUGE_VAL
    cdef cnp.ndarray part
    cdef const double* src
    for f in range(nf):
        obj = parts[f]
        if type(obj) is not np.ndarray:
            return None
        part = <cnp.ndarray>obj
        # (the array's own checks, without a memoryview per frame: ten frames a window)
        if cnp.PyArray_TYPE(part) != cnp.NPY_FLOAT64 or not cnp.PyArray_ISNOTSWAPPED(part) \
                or not cnp.PyArray_IS_C_CONTIGUOUS(part) or cnp.PyArray_NDIM(part) != 2 \
                or cnp.PyArray_DIMS(part)[0] != c or cnp.PyArray_DIMS(part)[1] != AIOT_P_COLS:
            return None
        src = <const double*>cnp.PyArray_DATA(part)
        for r in range(c):
            aiot_merge_partials(&acc[r, 0], src + r * AIOT_P_COLS)
    out_arr = np.empty(c * nk + 2, dtype=np.float64)
    cdef double[::1] out = out_arr
    cdef double feats[AIOT_F_COLS]
    for r in range(c):
        aiot_features_from_partials(&acc[r, 0], feats)
        if keep is None:
            for k in range(AIOT_F_COLS):
                out[r * nk + k] = feats[k]
        else:
            for k in range(nk):
                out[r * nk + k] = feats[kv[k]]
    out[c * nk] = extra0
    out[c * nk + 1] = extra1
    return out_arr


# --------------------------------------------------------------------------- spectral
_HANN_CACHE = {}


def hann(Py_ssize_t n):
    """The periodic Hann window of length ``n`` used by the spectral kernels (float64, cached).

    ``w[i] = 0.5 - 0.5 * cos(2 * pi * i / n)`` (``scipy.signal.get_window("hann", n)``).

    >>> hann(4).round(12).tolist()
    [0.0, 0.5, 1.0, 0.5]
    """
    if n < 1:
        raise ValueError(f"hann: n must be >= 1, got {n}")
    w = _HANN_CACHE.get(n)
    if w is None:
        w = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
        w.flags.writeable = False
        if len(_HANN_CACHE) > 64:
            _HANN_CACHE.clear()
        _HANN_CACHE[n] = w
    return w


def _band_bins(bands, double fs, Py_ssize_t n):
    """Validate ``bands`` ((B, 2) Hz, ordered, non-overlapping) -> (lo bins, hi bins) int arrays."""
    b = np.asarray(bands, dtype=np.float64)
    if b.size == 0:
        b = b.reshape(0, 2)
    if b.ndim != 2 or b.shape[1] != 2:
        raise ValueError(f"bands must be a sequence of [lo_hz, hi_hz] pairs; got shape {b.shape}")
    if not np.isfinite(b).all():
        raise ValueError(f"bands must be finite; got {b.tolist()}")
    for i in range(b.shape[0]):
        if not 0.0 <= b[i, 0] < b[i, 1]:
            raise ValueError(f"bands[{i}] = {b[i].tolist()}: need 0 <= lo < hi")
        if i and b[i, 0] < b[i - 1, 1]:
            raise ValueError(f"bands[{i}] = {b[i].tolist()} overlaps or precedes bands[{i - 1}] = "
                             f"{b[i - 1].tolist()}: bands must be ordered and must not overlap")
    nk = n // 2 + 1
    freqs = np.arange(nk, dtype=np.float64) * fs / n  # bin k at k * fs / n Hz (as the twin computes it)
    lo = np.searchsorted(freqs[1:], b[:, 0], side="left") + 1  # first bin with f >= lo (DC dropped)
    hi = np.searchsorted(freqs[1:], b[:, 1], side="left") + 1  # first bin with f >= hi (exclusive)
    return np.ascontiguousarray(lo, dtype=np.intp), np.ascontiguousarray(hi, dtype=np.intp)


cdef inline void _harmonic_bins(double rpm, double h, double hw, double fs, Py_ssize_t n, Py_ssize_t nk,
                                Py_ssize_t* a, Py_ssize_t* b) noexcept nogil:
    """Bins k in [1, nk) with |k*fs/n - h*rpm/60| <= hw*fs/n, as [a, b); a = -1 for a NaN rpm."""
    cdef double fh = h * rpm / 60.0
    cdef double tol = hw * fs / n
    cdef double centre
    cdef Py_ssize_t k, k0, k1
    a[0] = 0
    b[0] = 0
    if not (rpm == rpm):
        a[0] = -1
        return
    if not isfinite(fh):
        return
    centre = fh * n / fs
    k0 = <Py_ssize_t>floor(centre - hw) - 2
    k1 = <Py_ssize_t>ceil(centre + hw) + 2
    if k0 < 1:
        k0 = 1
    if k1 > nk - 1:
        k1 = nk - 1
    for k in range(k0, k1 + 1):
        if fabs(<double>k * fs / n - fh) <= tol:
            if b[0] == 0:
                a[0] = k
            b[0] = k + 1


def frame_spectra(x, sample_rate_hz, bands, rpm=None, harmonic_halfwidth_bins=2.0, transform="auto",
                  chunk_rows=None):
    """Per-row spectral partials: ``(..., N) -> (..., 7 + B)`` float64.

    Each row (a frame or a window of ``N`` samples at ``sample_rate_hz``) is
    reduced to its one-sided power spectrum and then to additive partials.
    Steps per row:

    1. ``d = (x - mean(x)) * hann(N)`` (periodic Hann, :func:`hann`), in the
       kernel, into a float32 buffer for float32 input (float64 otherwise),
       scaled by an exact power of two so the FFT cannot overflow;
    2. ``X = rfft(d)``: for a power-of-two ``N >= 16`` the kernel's own FFT
       (``transform="lanes"``: 8 rows at a time, vectorised across rows, all
       without the GIL), otherwise ``scipy.fft.rfft`` (``transform="scipy"``,
       one call per chunk of rows, ``workers=1``); ``"auto"`` picks the lanes
       where they are faster (power-of-two ``N`` and :data:`LANE_FFT_DEFAULT`,
       i.e. an AVX2 CPU), scipy otherwise;
    3. in the kernel, one pass over ``X``: ``P_k = c_k |X_k|**2 / (N *
       sum(w**2))`` for bins ``k = 1 .. N//2`` at ``f_k = k * fs / N`` Hz
       (DC dropped; ``c_k = 2``, 1 for the Nyquist bin of an even ``N``), so
       ``sum(P_k)`` is the window-weighted variance of the row (signal
       units squared).

    Columns (:data:`SPECTRAL_PARTIAL_COLUMNS` then one per band):
    ``count`` (1: the number of spectra), ``total = sum P_k``,
    ``fsum = sum f_k P_k``, ``peak = max P_k``, ``peak_hz`` (the lowest
    ``f_k`` with ``P_k == peak``; 0 when the spectrum is all zero),
    ``e1x``/``e2x`` = ``sum P_k`` over bins with ``|f_k - h * rpm / 60| <=
    harmonic_halfwidth_bins * fs / N`` for ``h = 1, 2`` (NaN when ``rpm`` is
    None), then per band ``[lo, hi)`` Hz: ``sum P_k`` over ``lo <= f_k < hi``.

    ``bands``: ``(B, 2)`` Hz, each ``0 <= lo < hi``, ordered and not
    overlapping (``B`` may be 0).  ``rpm``: None, a number, or an array
    broadcastable to ``x.shape[:-1]`` (one running speed per row, e.g. per
    asset).  A row with NaN/Inf (or whose sum overflows) gives NaN in every
    column but ``count``; a constant row gives zeros.

    >>> t = np.arange(1000) / 1000.0
    >>> s = frame_spectra(np.sin(2 * np.pi * 50 * t)[None], 1000.0, [[40, 60], [100, 500]], rpm=3000)
    >>> [round(v, 6) for v in s[0].tolist()]
    [1.0, 0.5, 25.0, 0.333333, 50.0, 0.5, 0.0, 0.5, 0.0]
    """
    rows, is_f32, lead = _batch(x, "frame_spectra")
    cdef double fs = float(sample_rate_hz)
    if not (fs > 0.0 and isfinite(fs)):
        raise ValueError(f"frame_spectra: sample_rate_hz must be finite and > 0; got {sample_rate_hz!r}")
    cdef double hw = float(harmonic_halfwidth_bins)
    if not (hw >= 0.0 and isfinite(hw)):
        raise ValueError(f"frame_spectra: harmonic_halfwidth_bins must be finite and >= 0; got {hw!r}")
    cdef Py_ssize_t n = rows.shape[1]
    cdef Py_ssize_t nk = n // 2 + 1
    cdef Py_ssize_t R = rows.shape[0]
    if n >= 2**31 - 1:
        raise ValueError(f"frame_spectra: rows of {n} samples are too long (at most 2**31 - 2)")
    band_lo, band_hi = _band_bins(bands, fs, n)
    cdef Py_ssize_t nb = band_lo.shape[0]
    cdef Py_ssize_t ncols = AIOT_S_BANDS + nb
    if rpm is None:
        rpm_rows = np.full(R, np.nan)
    else:
        try:
            rpm_rows = np.ascontiguousarray(
                np.broadcast_to(np.asarray(rpm, dtype=np.float64), lead).reshape(-1))
        except ValueError:
            raise ValueError(f"frame_spectra: rpm of shape {np.shape(rpm)} does not broadcast to "
                             f"the rows' shape {lead}") from None
    result = np.empty((R, ncols), dtype=np.float64)
    if R == 0:
        return result.reshape(lead + (ncols,))
    pow2 = n >= 16 and (n & (n - 1)) == 0
    if transform not in ("auto", "lanes", "scipy"):
        raise ValueError(f"frame_spectra: transform must be 'auto', 'lanes' or 'scipy'; got {transform!r}")
    if transform == "lanes" and not pow2:
        raise ValueError(f"frame_spectra: transform='lanes' needs a power-of-two N >= 16; got N = {n}")
    cdef bint lanes = pow2 and (transform == "lanes" or (transform == "auto" and LANE_FFT_DEFAULT))

    w = hann(n)
    s2 = float(np.dot(w, w))
    cdef double norm = 1.0 / (n * s2) if s2 > 0.0 else 0.0
    freq_arr = np.arange(nk, dtype=np.float64) * fs / n  # bin k at k * fs / n Hz, as the twin computes it
    tmp_arr = np.zeros(nk, dtype=np.float64)
    hb = np.empty((R, 4), dtype=np.intp)
    cdef const double[::1] wv = w
    cdef const double[::1] fq = freq_arr
    cdef const Py_ssize_t[::1] blo = band_lo
    cdef const Py_ssize_t[::1] bhi = band_hi
    cdef const double[::1] rpmv = rpm_rows
    cdef double[::1] tmp = tmp_arr
    cdef double[:, ::1] out = result
    cdef Py_ssize_t[:, ::1] hbv = hb
    cdef const Py_ssize_t* blo_p = &blo[0] if nb else NULL
    cdef const Py_ssize_t* bhi_p = &bhi[0] if nb else NULL
    cdef Py_ssize_t r
    with nogil:
        for r in range(R):
            _harmonic_bins(rpmv[r], 1.0, hw, fs, n, nk, &hbv[r, 0], &hbv[r, 1])
            _harmonic_bins(rpmv[r], 2.0, hw, fs, n, nk, &hbv[r, 2], &hbv[r, 3])
    if lanes:
        _spectra_lanes(rows, is_f32, n, norm, wv, fq, band_lo, band_hi, hbv, out)
    else:
        _spectra_scipy(rows, is_f32, n, norm, wv, fq, nb, blo_p, bhi_p, hbv, tmp, out, chunk_rows)
    return result.reshape(lead + (ncols,))


def _twiddles(Py_ssize_t m, Py_ssize_t n, dtype):
    """(complex-FFT twiddles W_m^k, k < m, as dtype; unpack twiddles W_n^k, k <= m, as float64)."""
    k = np.arange(m)
    tw = np.empty(2 * m, dtype=np.float64)
    tw[0::2] = np.cos(2.0 * np.pi * k / m)
    tw[1::2] = -np.sin(2.0 * np.pi * k / m)
    j = np.arange(m + 1)
    pw = np.empty(2 * (m + 1), dtype=np.float64)
    pw[0::2] = np.cos(2.0 * np.pi * j / n)
    pw[1::2] = -np.sin(2.0 * np.pi * j / n)
    return np.ascontiguousarray(tw.astype(dtype)), pw


cdef void _spectra_lanes(rows, bint f32, Py_ssize_t n, double norm, const double[::1] wv, const double[::1] fq,
                         band_lo, band_hi, Py_ssize_t[:, ::1] hbv, double[:, ::1] out):
    """All rows through the lane FFT, AIOT_LANES rows at a time, without the GIL."""
    cdef Py_ssize_t m = n // 2, nk = n // 2 + 1, R = rows.shape[0], nb = band_lo.shape[0]
    cdef Py_ssize_t start, cnt, i, j
    cdef int l
    cdef double g[AIOT_LANES]
    cdef Py_ssize_t h[4 * AIOT_LANES]
    cdef double* outp[AIOT_LANES]
    dtype = np.float32 if f32 else np.float64
    tw, pw = _twiddles(m, n, dtype)
    band_of_arr = np.full(nk, -1, dtype=np.intp)
    for b in range(nb):
        band_of_arr[band_lo[b]:band_hi[b]] = b
    bufs = np.zeros((2, 2 * m * AIOT_LANES), dtype=dtype)
    bacc_arr = np.zeros(max(1, nb) * AIOT_LANES, dtype=np.float64)
    power_arr = np.zeros(nk * AIOT_LANES, dtype=np.float64)
    cdef double[::1] power = power_arr
    cdef const double[::1] pwv = pw
    cdef const Py_ssize_t[::1] band_of = band_of_arr
    cdef double[::1] bacc = bacc_arr
    cdef const float[:, ::1] xf
    cdef const double[:, ::1] xd
    cdef float[:, ::1] bf
    cdef double[:, ::1] bd
    cdef const float[::1] twf
    cdef const double[::1] twd
    cdef float* zf
    cdef double* zd
    if f32:
        xf = rows
        bf = bufs
        twf = tw
    else:
        xd = rows
        bd = bufs
        twd = tw
    with nogil:
        start = 0
        while start < R:
            cnt = AIOT_LANES if R - start >= AIOT_LANES else R - start
            for l in range(AIOT_LANES):
                if l < cnt:
                    if f32:
                        g[l] = norm * aiot_spec_prepare_f(&xf[start + l, 0], n, &wv[0], &bf[0, l], AIOT_LANES)
                    else:
                        g[l] = norm * aiot_spec_prepare_d(&xd[start + l, 0], n, &wv[0], &bd[0, l], AIOT_LANES)
                    for j in range(4):
                        h[4 * l + j] = hbv[start + l, j]
                    outp[l] = &out[start + l, 0]
                else:  # padding lane of the last block: zeros in, nothing out
                    for i in range(n):
                        if f32:
                            bf[0, i * AIOT_LANES + l] = 0.0
                        else:
                            bd[0, i * AIOT_LANES + l] = 0.0
                    g[l] = 0.0
                    for j in range(4):
                        h[4 * l + j] = 0
                    outp[l] = NULL
            if f32:
                zf = aiot_fft_lanes_f(&bf[0, 0], &bf[1, 0], m, &twf[0])
                aiot_fft_lanes_f_partials(zf, m, &pwv[0], &fq[0], g, &band_of[0], nb, h, &bacc[0], &power[0], outp)
            else:
                zd = aiot_fft_lanes_d(&bd[0, 0], &bd[1, 0], m, &twd[0])
                aiot_fft_lanes_d_partials(zd, m, &pwv[0], &fq[0], g, &band_of[0], nb, h, &bacc[0], &power[0], outp)
            start += cnt


cdef void _spectra_scipy(rows, bint f32, Py_ssize_t n, double norm, const double[::1] wv, const double[::1] fq,
                         Py_ssize_t nb, const Py_ssize_t* blo, const Py_ssize_t* bhi, Py_ssize_t[:, ::1] hbv,
                         double[::1] tmp, double[:, ::1] out, chunk_rows):
    """Rows through scipy.fft.rfft, a chunk of rows per call (any N)."""
    from scipy.fft import rfft  # imported on first use (scipy.fft takes ~0.1 s to import)

    cdef Py_ssize_t nk = n // 2 + 1, R = rows.shape[0]
    cdef Py_ssize_t chunk = int(chunk_rows) if chunk_rows else max(1, min(R, (1 << 18) // n))
    cdef Py_ssize_t start, m, r
    buf = np.empty((chunk, n), dtype=np.float32 if f32 else np.float64)
    scale_arr = np.empty(chunk, dtype=np.float64)
    cdef double[::1] scale2 = scale_arr
    cdef const float[:, ::1] xf
    cdef const double[:, ::1] xd
    cdef float[:, ::1] bf
    cdef double[:, ::1] bd
    cdef const float[:, ::1] Xf
    cdef const double[:, ::1] Xd
    if f32:
        xf = rows
        bf = buf
    else:
        xd = rows
        bd = buf
    start = 0
    while start < R:
        m = min(chunk, R - start)
        with nogil:
            if f32:
                for r in range(m):
                    scale2[r] = aiot_spec_prepare_f(&xf[start + r, 0], n, &wv[0], &bf[r, 0], 1)
            else:
                for r in range(m):
                    scale2[r] = aiot_spec_prepare_d(&xd[start + r, 0], n, &wv[0], &bd[r, 0], 1)
        spec = rfft(buf[:m], axis=-1, workers=1, overwrite_x=True)
        spec_real = spec.view(np.float32 if f32 else np.float64)
        if f32:
            Xf = spec_real
        else:
            Xd = spec_real
        with nogil:
            for r in range(m):
                if f32:
                    aiot_spec_power_f(&Xf[r, 0], n, nk, &tmp[0])
                else:
                    aiot_spec_power_d(&Xd[r, 0], n, nk, &tmp[0])
                aiot_spec_from_power(&tmp[0], nk, norm, scale2[r], &fq[0], nb, blo, bhi,
                                     hbv[start + r, 0], hbv[start + r, 1], hbv[start + r, 2], hbv[start + r, 3],
                                     &out[start + r, 0])
        start += m


def reduce_spectral(s):
    """Merge spectral partials along the first axis, in order: ``(F, ..., 7+B) -> (..., 7+B)``.

    Sums add (Welch-style averaging of the frames' power spectra happens in
    :func:`spectral_features_from_partials`, which divides by ``count``); the
    peak is the largest of the frames' peaks, the earliest frame winning a
    tie, with its frequency; NaN propagates.  ``F == 0`` gives an empty
    accumulator (all zero, ``count = 0``).
    """
    arr = _columns(s, AIOT_S_BANDS, "reduce_spectral", at_least=True)
    if arr.ndim < 2:
        raise ValueError(f"reduce_spectral expects shape (F, ..., 7+B); got {arr.shape}")
    ncols = arr.shape[arr.ndim - 1]
    rows = arr.reshape(arr.shape[0], math.prod(arr.shape[1:arr.ndim - 1]), ncols)
    result = np.zeros((rows.shape[1], ncols), dtype=np.float64)
    cdef const double[:, :, ::1] src = rows
    cdef double[:, ::1] out = result
    cdef Py_ssize_t f, r, nc = ncols
    with nogil:
        for r in range(src.shape[1]):
            for f in range(src.shape[0]):
                aiot_merge_spectral(&out[r, 0], &src[f, r, 0], nc)
    return result.reshape(arr.shape[1:])


def spectral_features_from_partials(s):
    """Spectral features from (merged) spectral partials: ``(..., 7+B) -> (..., B+4)``.

    Per band the mean band power over the merged spectra (``band / count``),
    then ``centroid = fsum / total`` Hz (0 for an all-zero spectrum),
    ``dominant = peak_hz``, ``e1x = e1x / count``, ``e2x = e2x / count``.
    ``count == 0`` gives NaN.
    """
    arr = _columns(s, AIOT_S_BANDS, "spectral_features_from_partials", at_least=True)
    ncols = arr.shape[arr.ndim - 1]
    nb = ncols - AIOT_S_BANDS
    rows = arr.reshape(-1, ncols)
    result = np.empty((rows.shape[0], nb + 4), dtype=np.float64)
    cdef const double[:, ::1] src = rows
    cdef double[:, ::1] out = result
    cdef Py_ssize_t r, nbands = nb
    with nogil:
        for r in range(src.shape[0]):
            aiot_spectral_features(&src[r, 0], nbands, &out[r, 0])
    return result.reshape(arr.shape[:arr.ndim - 1] + (nb + 4,))


def spectral_features(x, sample_rate_hz, bands, rpm=None, harmonic_halfwidth_bins=2.0):
    """Spectral features of each row (one FFT per row): ``(..., N) -> (..., B + 4)``.

    ``spectral_features_from_partials(frame_spectra(x, ...))``: per band the
    band power (signal units squared), then ``centroid`` (Hz), ``dominant``
    (Hz, the lowest frequency of the largest bin; DC excluded), ``e1x`` and
    ``e2x`` (power within ``harmonic_halfwidth_bins`` bins of 1x and 2x the
    running speed ``rpm / 60`` Hz).  See :func:`frame_spectra` for the
    spectrum, the input rules and the NaN rules.

    >>> t = np.arange(1000) / 1000.0
    >>> f = spectral_features(np.sin(2 * np.pi * 50 * t)[None], 1000.0, [[40, 60]], rpm=3000)
    >>> [round(v, 6) for v in f[0].tolist()]
    [0.5, 50.0, 50.0, 0.5, 0.0]
    """
    return spectral_features_from_partials(
        frame_spectra(x, sample_rate_hz, bands, rpm=rpm, harmonic_halfwidth_bins=harmonic_halfwidth_bins))


# --------------------------------------------------------------------------- scalar streams
cdef void _scalar_rows(const Py_ssize_t[::1] idx, const double[::1] vals, const long long[::1] ts,
                       double[::1] ewma, double[:, ::1] ring, long long[::1] head, long long[::1] count,
                       double[::1] last_v, long long[::1] last_t, double alpha, double halflife_ns,
                       double[:, ::1] out) noexcept nogil:
    cdef Py_ssize_t i, j, k, W = ring.shape[1], m
    cdef double v, a, s, mean, d, ss, lo, hi, dt
    cdef long long c
    for i in range(idx.shape[0]):
        k = idx[i]
        v = vals[i]
        if not isfinite(v):
            for j in range(6):
                out[i, j] = NAN
            continue
        c = count[k]
        # EWMA: the first value seeds it
        if c == 0:
            ewma[k] = v
        else:
            if halflife_ns > 0.0:
                dt = <double>(ts[i] - last_t[k])
                a = 1.0 - exp2(-dt / halflife_ns) if dt > 0.0 else 0.0
            else:
                a = alpha
            ewma[k] = ewma[k] + a * (v - ewma[k])
        # rate of change per second since the previous value of this key
        if c == 0 or ts[i] <= last_t[k]:
            out[i, 5] = NAN
        else:
            out[i, 5] = (v - last_v[k]) / ((<double>(ts[i] - last_t[k])) * 1e-9)
        last_v[k] = v
        last_t[k] = ts[i]
        # ring buffer of the last W values
        ring[k, head[k]] = v
        head[k] = head[k] + 1
        if head[k] == W:
            head[k] = 0
        count[k] = c + 1
        m = W if c + 1 > W else <Py_ssize_t>(c + 1)
        s = 0.0
        lo = ring[k, 0]
        hi = ring[k, 0]
        for j in range(m):  # the first m slots hold the values while the ring is filling
            s += ring[k, j]
            lo = ring[k, j] if ring[k, j] < lo else lo
            hi = ring[k, j] if ring[k, j] > hi else hi
        mean = s / m
        ss = 0.0
        for j in range(m):
            d = ring[k, j] - mean
            ss += d * d
        if lo == hi:
            mean = lo
            ss = 0.0
        out[i, 0] = ewma[k]
        out[i, 1] = mean
        out[i, 2] = sqrt(ss / m)
        out[i, 3] = lo
        out[i, 4] = hi


def scalar_update(idx, values, ts_ns, ewma, ring, head, count, last_value, last_ts_ns, alpha, halflife_ns):
    """Apply a batch of scalar updates to per-key state arrays in place; return ``(M, 6)`` outputs.

    The state arrays are owned by :class:`aiotstream.features.ScalarState`
    (use that; this is its kernel): ``ewma (K,)``, ``ring (K, W)``, ``head
    (K,)``, ``count (K,)``, ``last_value (K,)``, ``last_ts_ns (K,)``.  Update
    ``i`` applies ``values[i]`` at ``ts_ns[i]`` to key ``idx[i]``, in order, so
    a key may appear several times in one batch; output row ``i`` is the
    state right after update ``i``: :data:`SCALAR_COLUMNS`.  ``idx`` must be
    valid (the caller checks).  Non-finite values leave the state alone and
    give a NaN row.
    """
    cdef const Py_ssize_t[::1] iv = idx
    cdef const double[::1] vv = values
    cdef const long long[::1] tv = ts_ns
    cdef double[::1] ev = ewma
    cdef double[:, ::1] rv = ring
    cdef long long[::1] hv = head
    cdef long long[::1] cv = count
    cdef double[::1] lv = last_value
    cdef long long[::1] ltv = last_ts_ns
    result = np.empty((iv.shape[0], 6), dtype=np.float64)
    cdef double[:, ::1] out = result
    cdef double a = alpha
    cdef double hl = halflife_ns
    with nogil:
        _scalar_rows(iv, vv, tv, ev, rv, hv, cv, lv, ltv, a, hl, out)
    return result


# --------------------------------------------------------------------------- Half-Space Trees

ctypedef fused mass_t:
    unsigned char
    unsigned short
    unsigned int


cdef int _hst_same_trees(const Py_ssize_t[:, ::1] fv, const double[:, ::1] tv, Py_ssize_t mass_rows,
                         Py_ssize_t mass_cols, str what) except -1:
    """Refuse trees and masses of different shapes (the walks index them without bounds checks)."""
    if tv.shape[0] != fv.shape[0] or tv.shape[1] != fv.shape[1] or mass_rows != fv.shape[0] \
            or mass_cols != 2 * fv.shape[1] + 1:
        raise ValueError(f"{what}: feature, threshold and the masses do not describe the same trees")
    return 0


def hst_score(feature, threshold, mass_t[:, ::1] r_mass, x, double size_limit):
    """The mass sum of River's ``HalfSpaceTrees.score_one`` for row ``x``: an integer.

    The trees are in heap order (node ``i`` has children ``2i + 1`` and ``2i + 2``):
    ``feature (T, I)`` (column index, ``intp``) and ``threshold (T, I)`` (``float64``) of the
    ``I = 2^h - 1`` inner nodes, ``r_mass (T, 2^(h+1) - 1)`` (uint8, uint16 or uint32). Each tree
    goes down from its root, left when ``x[feature] < threshold`` (right otherwise, NaN
    included, as River), adding ``r_mass x 2^depth`` of each node it passes, and stops after the
    first inner node whose mass is below ``size_limit``. The numpy twin is
    ``aiotstream.models.hst.FlatHalfSpaceTrees`` with ``impl="numpy"``; ``feature`` must index
    ``x`` (the caller checks).
    """
    cdef const Py_ssize_t[:, ::1] fv = feature
    cdef const double[:, ::1] tv = threshold
    cdef const double[::1] xv = x
    cdef Py_ssize_t trees = fv.shape[0], inner = fv.shape[1], t, node
    cdef long long total = 0, pw, r
    cdef bint stopped
    _hst_same_trees(fv, tv, r_mass.shape[0], r_mass.shape[1], "hst_score")
    with nogil:
        for t in range(trees):
            node = 0
            pw = 1
            stopped = False
            while node < inner:
                r = r_mass[t, node]
                total += r * pw
                if r < size_limit:
                    stopped = True
                    break
                if xv[fv[t, node]] < tv[t, node]:
                    node = 2 * node + 1
                else:
                    node = 2 * node + 2
                pw <<= 1
            if not stopped:
                total += r_mass[t, node] * pw
    return total


def hst_learn(feature, threshold, mass_t[:, ::1] l_mass, x):
    """River's ``HalfSpaceTrees.learn_one`` walk for row ``x``: one more unit of ``l_mass`` on every
    node of each tree's root-to-leaf path (the trees as in :func:`hst_score`), in place. The caller
    keeps the masses below their type's maximum (the window pivot does)."""
    cdef const Py_ssize_t[:, ::1] fv = feature
    cdef const double[:, ::1] tv = threshold
    cdef const double[::1] xv = x
    cdef Py_ssize_t trees = fv.shape[0], inner = fv.shape[1], t, node
    _hst_same_trees(fv, tv, l_mass.shape[0], l_mass.shape[1], "hst_learn")
    with nogil:
        for t in range(trees):
            node = 0
            while node < inner:
                l_mass[t, node] += 1
                if xv[fv[t, node]] < tv[t, node]:
                    node = 2 * node + 1
                else:
                    node = 2 * node + 2
            l_mass[t, node] += 1


# --------------------------------------------------------------------------- blocks of JSON readings


cdef extern from "Python.h":
    double PyOS_string_to_double(const char *s, char **endptr, PyObject *overflow_exception) except? -1.0
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t *size) except NULL
    object PyUnicode_DecodeASCII(const char *s, Py_ssize_t size, const char *errors)


cdef enum:
    _STR_SLOTS = 4096  # at most, a block's distinct asset and metric names (a power of two; half of it is used)


ctypedef struct _StrSlot:
    size_t hash
    Py_ssize_t size
    const char* data  # the str's own bytes (its owner: the table's ``keep`` list)
    PyObject* obj


cdef struct _StrTable:
    _StrSlot* slots  # a power of two of them, at most _STR_SLOTS, by the block's size (a poll of one message
    size_t mask      # does not clear 128 KB)
    Py_ssize_t used


cdef object _table_str(_StrTable* t, list keep, const char* p, Py_ssize_t size):
    """The ASCII ``p[:size]`` as a ``str``: the same object for the same bytes within one block (a block's
    names repeat: one object per asset, not per reading), a new one once the table is half full."""
    cdef size_t h = 14695981039346656037ULL  # FNV-1a
    cdef Py_ssize_t i
    cdef const char* d
    for i in range(size):
        h = (h ^ <unsigned char>p[i]) * 1099511628211ULL
    cdef size_t at = h & t.mask
    while t.slots[at].obj is not NULL:
        if t.slots[at].hash == h and t.slots[at].size == size and memcmp(t.slots[at].data, p, size) == 0:
            return <object>t.slots[at].obj
        at = (at + 1) & t.mask
    s = PyUnicode_DecodeASCII(p, size, NULL)
    if <size_t>t.used <= t.mask // 2:
        keep.append(s)
        d = PyUnicode_AsUTF8AndSize(s, &i)  # (an ASCII str's own bytes: no copy)
        t.slots[at].hash = h
        t.slots[at].size = size
        t.slots[at].data = d
        t.slots[at].obj = <PyObject*>s
        t.used += 1
    return s


cdef double _POW10[23]
for _k in range(23):
    _POW10[_k] = float(10 ** _k)  # (exact doubles up to 10**22)

cdef extern from "float.h":
    int LDBL_MANT_DIG

cdef long double _POW10L[28]
_POW10L[0] = 1
for _k in range(1, 28):
    _POW10L[_k] = _POW10L[_k - 1] * 10  # (in long double: exact up to 10**27 = 2**27 * 5**27, 5**27 < 2**63)


cdef inline bint _wide_decimal(unsigned long long mant, int exp10, double* out) noexcept nogil:
    """``mant * 10**exp10`` (``mant`` < 2**64, ``|exp10|`` <= 27) as the nearest double, through one long
    double operation on exact operands: the product or quotient is rounded once, to ``r``; rounding ``r``
    to a double again gives the nearest double to the exact value unless ``r`` is exactly halfway between
    two doubles (halfway points have 54 bits, so ``r`` lands on one only if the exact value rounds to it;
    otherwise ``r`` and the exact value lie on the same side of every halfway point). False (the caller
    parses it otherwise) there, and where long double has fewer than 64 bits of mantissa."""
    cdef long double r, mid
    cdef double d, other
    if LDBL_MANT_DIG < 64:
        return False
    r = <long double>mant * _POW10L[exp10] if exp10 >= 0 else <long double>mant / _POW10L[-exp10]
    d = <double>r
    if <long double>d != r:
        other = nextafter(d, HUGE_VAL if r > <long double>d else -HUGE_VAL)
        mid = (<long double>d + <long double>other) / 2
        if mid == r:
            return False
    out[0] = d
    return True


cdef inline const char* _ws(const char* p, const char* end) noexcept nogil:
    while p < end and (p[0] == 32 or p[0] == 10 or p[0] == 13 or p[0] == 9):
        p += 1
    return p


cdef inline const char* _key(const char* p, const char* end, const char* key, Py_ssize_t n) noexcept nogil:
    """After optional whitespace, ``key`` (a quoted name and its colon's whitespace): the byte after the
    colon and its whitespace, or NULL."""
    p = _ws(p, end)
    if end - p < n or memcmp(p, key, n) != 0:
        return NULL
    p = _ws(p + n, end)
    if p >= end or p[0] != 58:  # :
        return NULL
    return _ws(p + 1, end)


cdef inline const char* _plain_str(const char* p, const char* end, const char** start) noexcept nogil:
    """A JSON string of printable ASCII without escapes at ``p``: its closing quote (the text from
    ``start``), or NULL (anything else: an escape, a control or non-ASCII byte, no closing quote)."""
    cdef unsigned char c
    if p >= end or p[0] != 34:
        return NULL
    p += 1
    start[0] = p
    while p < end:
        c = <unsigned char>p[0]
        if c == 34:
            return p
        if c < 32 or c == 92 or c >= 127:
            return NULL
        p += 1
    return NULL


cdef inline const char* _str_field(const char* p, const char* end, const char* key, Py_ssize_t n,
                                   const char** start, Py_ssize_t* size) noexcept nogil:
    """``key`` (:func:`_key`), its string value (:func:`_plain_str`: the text from ``start``, ``size`` bytes)
    and a comma: the byte after the comma, or NULL."""
    cdef const char* q
    p = _key(p, end, key, n)
    if p is NULL:
        return NULL
    q = _plain_str(p, end, start)
    if q is NULL:
        return NULL
    size[0] = q - start[0]
    return _after(q + 1, end, 44)  # ,


cdef inline const char* _after(const char* p, const char* end, char c) noexcept nogil:
    """After optional whitespace, the byte ``c``: the byte after it, or NULL."""
    p = _ws(p, end)
    if p >= end or p[0] != c:
        return NULL
    return p + 1


cdef inline const char* _digits(const char* p, const char* end, unsigned long long* u, int* count
                                ) noexcept nogil:
    """A JSON int's digits (``0``, or a non-zero digit and more; no leading zero): the byte after them, their
    value (while at most 19 digits) and count; NULL if none."""
    cdef unsigned long long v = 0
    cdef int n = 0
    if p >= end or p[0] < 48 or p[0] > 57:
        return NULL
    if p[0] == 48:
        u[0] = 0
        count[0] = 1
        return p + 1
    while p < end and 48 <= p[0] <= 57:
        if n < 19:
            v = v * 10 + <unsigned long long>(p[0] - 48)
        n += 1
        p += 1
    u[0] = v
    count[0] = n
    return p


cdef const char* _fast_reading(const char* p, const char* end, const char** a, Py_ssize_t* alen,
                               const char** m, Py_ssize_t* mlen, long long* ts, double* value) except? NULL:
    """The message ``p[:end]`` when it is a plain reading in the usual shape: the JSON object
    ``{"asset": str, "ts": int, "metric": str, "value": number}`` in that key order, any JSON whitespace
    between tokens, the strings printable ASCII without escapes, the time within int64, the value an int of
    at most 18 digits or a finite float (at most 63 characters if only ``float(str)`` reads it). Returns
    ``end`` and the fields (the strings as spans of ``p``), or NULL for anything else, which the caller
    parses with ``orjson.loads``: so this path takes nothing orjson would not, and gives what orjson gives:
    the value correctly rounded
    (at most 15-16 digits: Clinger's exact path; up to 19 digits within 10**+-27: one long double operation,
    :func:`_wide_decimal`; else Python's own correctly rounded ``float(str)``), an int value converted as
    ``float(int)``."""
    cdef unsigned long long u
    cdef int n, neg, is_float
    cdef const char* num
    cdef long long iv
    cdef unsigned long long mant
    cdef int exact, exp10, e, eneg
    cdef char buf[64]
    p = _after(p, end, 123)  # {
    if p is NULL:
        return NULL
    p = _str_field(p, end, b'"asset"', 7, a, alen)
    if p is NULL:
        return NULL
    p = _key(p, end, b'"ts"', 4)
    if p is NULL:
        return NULL
    neg = p < end and p[0] == 45  # -
    p = _digits(p + neg, end, &u, &n)
    if p is NULL or n > 19 or (p < end and (p[0] == 46 or p[0] == 101 or p[0] == 69)):  # . e E: a float
        return NULL
    if neg:
        if u > 9223372036854775808ULL:
            return NULL
        ts[0] = <long long>(0ULL - u)  # (two's complement: -2**63 too)
    else:
        if u > 9223372036854775807ULL:
            return NULL
        ts[0] = <long long>u
    p = _after(p, end, 44)
    if p is NULL:
        return NULL
    p = _str_field(p, end, b'"metric"', 8, m, mlen)
    if p is NULL:
        return NULL
    p = _key(p, end, b'"value"', 7)
    if p is NULL:
        return NULL
    num = p
    neg = p < end and p[0] == 45
    p = _digits(p + neg, end, &u, &n)
    if p is NULL:
        return NULL
    # the decimal digits as mant * 10**exp10 (Clinger's fast path below when mant < 2**53, |exp10| <= 22)
    mant = u
    exact = n <= 19
    exp10 = 0
    is_float = 0
    if p < end and p[0] == 46:  # a fraction: at least one digit
        p += 1
        if p >= end or p[0] < 48 or p[0] > 57:
            return NULL
        while p < end and 48 <= p[0] <= 57:
            if mant < 1000000000000000000ULL:  # (below 10**18: one more digit fits in 64 bits)
                mant = mant * 10 + <unsigned long long>(p[0] - 48)
                exp10 -= 1
            elif p[0] != 48:
                exact = 0
            p += 1
        is_float = 1
    if p < end and (p[0] == 101 or p[0] == 69):  # an exponent: a sign, at least one digit
        p += 1
        eneg = 0
        if p < end and (p[0] == 43 or p[0] == 45):
            eneg = p[0] == 45
            p += 1
        if p >= end or p[0] < 48 or p[0] > 57:
            return NULL
        e = 0
        while p < end and 48 <= p[0] <= 57:
            if e < 100000:
                e = e * 10 + (p[0] - 48)
            p += 1
        exp10 += -e if eneg else e
        is_float = 1
    if is_float:
        if exact and mant < 9007199254740992ULL and -22 <= exp10 <= 22:
            # both exact doubles, so one correctly rounded operation: the nearest double, as float(str)
            value[0] = <double>mant * _POW10[exp10] if exp10 >= 0 else <double>mant / _POW10[-exp10]
            if neg:
                value[0] = -value[0]
        elif exact and -27 <= exp10 <= 27 and _wide_decimal(mant, exp10, value):
            # (16-19 digits: a full double's 17, a float32 printed as a double)
            if neg:
                value[0] = -value[0]
        else:
            if p - num >= 64:
                return NULL
            memcpy(buf, num, p - num)
            buf[p - num] = 0
            value[0] = PyOS_string_to_double(buf, NULL, NULL)
        if not isfinite(value[0]):  # (orjson refuses a float past the double range)
            return NULL
    else:
        if n > 18:  # (orjson's ints past 64 bits are floats; float(int) of a long one: left to orjson)
            return NULL
        iv = <long long>u
        value[0] = <double>(-iv if neg else iv)  # (an int's -0 is 0: +0.0, as float(0))
    p = _after(p, end, 125)  # }
    if p is NULL or _ws(p, end) != end:
        return NULL
    return end


def plain_reading_columns(list raws, Py_ssize_t max_bytes, loads):
    """``raws`` (bytes) as the columns ``(assets, metrics, ts, T int64, V float64)`` when every one is a plain
    JSON reading, else None; ``loads`` parses one value (``orjson.loads``). The twin of, and the same rules as,
    the Python path of :func:`aiotstream.codecs.readings.plain_readings`: first every message's size
    (1..``max_bytes``) and first byte (``{``, space, newline or tab), then each parsed value a dict of exactly
    ``asset``, ``metric`` (``str``), ``ts`` (``int``, within int64) and ``value`` (``int`` or ``float``;
    exact types: a bool is neither). A value ``loads`` refuses (``ValueError``) is no plain reading.

    A message in the usual shape (the four keys in that order, printable ASCII names; ``_fast_reading`` says
    exactly which) is read here without ``loads``: no dict and no objects but the time's int, and one ``str``
    per distinct asset or metric name in the block. Every other message goes through ``loads``. The tests
    hold both paths to the twin."""
    cdef Py_ssize_t n = len(raws), k, size
    cdef unsigned char c
    cdef object raw
    cdef long long tv
    if n == 0:
        return None
    for k in range(n):
        raw = raws[k]
        if type(raw) is not bytes:
            return None
        size = PyBytes_GET_SIZE(raw)
        if size == 0 or size > max_bytes:
            return None
        c = <unsigned char>PyBytes_AS_STRING(raw)[0]
        if c != 123 and c != 32 and c != 10 and c != 9:  # { space newline tab
            return None
    cdef list assets = [None] * n, metrics = [None] * n, tss = [None] * n
    T = np.empty(n, dtype=np.int64)
    V = np.empty(n, dtype=np.float64)
    cdef long long[::1] Tv = T
    cdef double[::1] Vv = V
    cdef const char* start
    cdef const char* sa
    cdef const char* sm
    cdef Py_ssize_t alen, mlen
    cdef double vd
    cdef list keep = []  # (the names' owner while the table points at them)
    cdef _StrTable table
    cdef size_t cap = 16
    while cap < 4 * <size_t>n and cap < _STR_SLOTS:  # (two names a message, the table at most half full)
        cap *= 2
    table.slots = <_StrSlot*>calloc(cap, sizeof(_StrSlot))
    if table.slots is NULL:
        raise MemoryError()
    table.mask, table.used = cap - 1, 0
    try:
        for k in range(n):
            raw = raws[k]
            start = PyBytes_AS_STRING(raw)
            if _fast_reading(start, start + PyBytes_GET_SIZE(raw), &sa, &alen, &sm, &mlen, &tv, &vd) is not NULL:
                assets[k] = _table_str(&table, keep, sa, alen)
                metrics[k] = _table_str(&table, keep, sm, mlen)
                tss[k] = tv
                Tv[k] = tv
                Vv[k] = vd
                continue
            if not _loaded(raw, loads, assets, metrics, tss, Tv, Vv, k):
                return None
    finally:
        free(table.slots)
    return assets, metrics, tss, T, V


cdef bint _loaded(object raw, object loads, list assets, list metrics, list tss, long long[::1] Tv,
                  double[::1] Vv, Py_ssize_t k) except -1:
    """Message ``k`` parsed by ``loads`` into the columns; False if it is no plain reading."""
    cdef object obj, a, m, t, v
    cdef PyObject* got
    cdef int overflow = 0
    cdef long long tv
    try:
        obj = loads(raw)
    except ValueError:  # (orjson.JSONDecodeError)
        return False
    if type(obj) is not dict or len(<dict>obj) != 4:
        return False
    got = PyDict_GetItem(obj, "asset")
    if got is NULL or type(<object>got) is not str:
        return False
    a = <object>got
    got = PyDict_GetItem(obj, "metric")
    if got is NULL or type(<object>got) is not str:
        return False
    m = <object>got
    got = PyDict_GetItem(obj, "ts")
    if got is NULL or type(<object>got) is not int:
        return False
    t = <object>got
    tv = PyLong_AsLongLongAndOverflow(t, &overflow)
    if overflow != 0:  # past int64
        return False
    got = PyDict_GetItem(obj, "value")
    if got is NULL:
        return False
    v = <object>got
    if type(v) is float:
        Vv[k] = PyFloat_AS_DOUBLE(v)
    elif type(v) is int:
        Vv[k] = float(v)  # (orjson's ints fit a double's range)
    else:
        return False
    assets[k] = a
    metrics[k] = m
    tss[k] = t
    Tv[k] = tv
    return True


@cython.boundscheck(False)
@cython.wraparound(False)
def group_columns(list keys, list take, tuple cols):
    """``cols`` (lists as long as ``keys``) grouped by key: ``{key: [[col[k] for k in its indices] for col in
    cols]}`` over the indices ``take`` (ints in 0..len(keys)-1, in the order given; None: all, in order); keys
    in the order of their first index. The twin of :func:`aiotstream.codecs.readings.group_columns` (its
    Python path): the per-reading loop of a block's grouping by asset. One dict lookup a reading finds its
    key's slot; then every output list is made at its final size and filled, with no append. A column of
    another length or an index out of range raises ``ValueError``."""
    cdef Py_ssize_t n = len(keys), m = len(cols), k, j, i, s, count, nslots = 0
    cdef dict where = {}
    cdef list order = [], col, lists, got_list
    cdef object key, item
    cdef PyObject* got
    for j in range(m):
        if type(cols[j]) is not list or len(<list>cols[j]) != n:
            raise ValueError("group_columns: every column must be a list as long as the keys")
    count = n if take is None else len(take)
    idx = np.empty(count, dtype=np.intp)
    slot = np.empty(count, dtype=np.intp)
    sizes = np.zeros(count + 1, dtype=np.intp)
    cdef Py_ssize_t[::1] idx_v = idx, slot_v = slot, size_v = sizes
    for i in range(count):  # each index's key's slot (first seen, first slot), and each slot's size
        if take is None:
            k = i
        else:
            k = take[i]
            if k < 0 or k >= n:
                raise ValueError(f"group_columns: index {k} out of range for {n} keys")
        idx_v[i] = k
        key = keys[k]
        got = PyDict_GetItem(where, key)
        if got is NULL:
            s = nslots
            nslots += 1
            where[key] = s
            order.append(key)
        else:
            s = <Py_ssize_t><object>got
        slot_v[i] = s
        size_v[s] += 1
    cdef list per_slot = [None] * nslots  # slot -> its m lists, made at their size
    for s in range(nslots):
        lists = PyList_New(m)
        for j in range(m):
            got_list = PyList_New(size_v[s])
            Py_INCREF(got_list)
            PyList_SET_ITEM(lists, j, got_list)
        per_slot[s] = lists
        size_v[s] = 0  # (now the fill position)
    for i in range(count):
        s = slot_v[i]
        k = idx_v[i]
        lists = <list>per_slot[s]
        for j in range(m):
            item = (<list>cols[j])[k]
            Py_INCREF(item)
            PyList_SET_ITEM(<list>lists[j], size_v[s], item)
        size_v[s] += 1
    return {order[s]: per_slot[s] for s in range(nslots)}


def dict_codes(list keys, dict table):
    """``table.get(key, -1)`` for every key, as an int64 array: a block's names (assets, metrics) to the
    flow's codes (every value of ``table`` an int within int64, else ``TypeError`` or ``OverflowError`` when
    it is read). The twin of :func:`aiotstream.codecs.readings.dict_codes` (its Python path). A key that is
    the same object as the one before reuses its code without a lookup: the block parser makes one ``str``
    per distinct name, so a run of one asset's readings costs one lookup. A key that cannot be hashed raises
    ``dict.get``'s ``TypeError``."""
    cdef Py_ssize_t n = len(keys), k
    out = np.empty(n, dtype=np.int64)
    cdef long long[::1] o = out
    cdef long long code = -1
    cdef object key, last = None
    cdef PyObject* got
    for k in range(n):
        key = keys[k]
        if k == 0 or key is not last:
            got = PyDict_GetItemWithError(table, key)  # (NULL with an error set: raised, as dict.get's)
            if got is NULL:
                code = -1
            elif isinstance(<object>got, int):
                code = <object>got
            else:
                raise TypeError(f"dict_codes: the code of {key!r} is a {type(<object>got).__name__}, "
                                "not an int")
            last = key
        o[k] = code
    return out


cdef object _I64_MIN = -(1 << 63)
cdef object _U64_MAX = (1 << 64) - 1


def bad_number(obj, fallback):
    """None when every ``float`` in ``obj`` (through nested ``dict``, ``list`` and ``tuple``; exact types, as a
    bool is no int) is finite and every ``int`` lies in -2**63..2**64-1 (what orjson writes); else the first
    other one as ``(steps, text)``: the dict keys (as ``str``) and list indices from it out to ``obj``,
    innermost first, and its ``repr`` (float) or ``str`` (int). The twin of
    :func:`aiotstream.io.sinkguard._find`; a container nested deeper than 64 levels is handed to ``fallback``
    (that function), whose recursion is Python's."""
    return _bad_number(obj, 64, fallback)


cdef inline bint _carried(object v):
    """The common leaves JSON carries as they are (a string, null, a bool, a finite float): no call for them."""
    cdef type t = type(v)
    if t is float:
        return isfinite(PyFloat_AS_DOUBLE(v))
    return t is str or v is None or t is bool


cdef object _bad_number(object obj, int depth, object fallback):
    cdef type t = type(obj)
    cdef Py_ssize_t pos = 0, i, n
    cdef PyObject* key
    cdef PyObject* val
    cdef object f, v
    cdef int overflow = 0
    if t is float:
        return None if isfinite(PyFloat_AS_DOUBLE(obj)) else ([], repr(obj))
    if t is int:
        PyLong_AsLongLongAndOverflow(obj, &overflow)
        return None if overflow == 0 or _I64_MIN <= obj <= _U64_MAX else ([], str(obj))
    if t is dict:
        if depth == 0:
            return fallback(obj)
        while PyDict_Next(obj, &pos, &key, &val):
            if _carried(<object>val):
                continue
            f = _bad_number(<object>val, depth - 1, fallback)
            if f is not None:
                f[0].append(str(<object>key))
                return f
        return None
    if t is list or t is tuple:
        if depth == 0:
            return fallback(obj)
        n = len(obj)
        for i in range(n):
            v = obj[i]
            if _carried(v):
                continue
            f = _bad_number(v, depth - 1, fallback)
            if f is not None:
                f[0].append(i)
                return f
        return None
    return None


cdef double _TWO52 = 4503599627370496.0  # 2**52: from here on a double has no fractional bits


def rounded_list(x, int ndigits):
    """``[None if math.isnan(v) else round(v, ndigits) for v in x.tolist()]`` for a 1-D float array, the same
    floats bit for bit, about 5x faster (a score record's 38 feature values: 15-16 -> 2.6-3.0 us).

    Python's ``round`` rounds the exact binary value half to even by way of its decimal digits, then reads the
    digits back. Here ``y = v * 10**ndigits`` (one correctly rounded product) is rounded with ``rint``, and
    ``rint(y) / 10**ndigits`` (one correctly rounded division of two exact numbers) is the double nearest the
    decimal Python reads back. While ``|y| < 2**52`` every half ``m + 0.5`` is a double, so the product cannot
    round across one, only onto one: ``rint(y)`` is the exact value's rounding unless ``y`` is a half, and
    those values (and ``|y| >= 2**52``, inf included) take Python's ``round`` itself. ``0 <= ndigits <= 15``,
    so that ``10**ndigits`` is exact."""
    if not 0 <= ndigits <= 15:
        raise ValueError(f"rounded_list: ndigits must be 0..15, not {ndigits}")
    cdef const double[::1] v = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    cdef Py_ssize_t i, n = v.shape[0]
    cdef double scale = float(10 ** ndigits), a, y, r  # (exact: an int's power, then converted)
    cdef list out = [None] * n
    for i in range(n):
        a = v[i]
        if a != a:  # NaN: None
            continue
        y = a * scale
        if fabs(y) < _TWO52:
            r = rint(y)  # (the default rounding mode: to nearest, ties to even)
            if fabs(y - r) != 0.5:  # (exact: y and r are that close)
                out[i] = r / scale
                continue
        out[i] = round(a, ndigits)
    return out


def sample_range(x):
    """``(non-finite samples, min, max)`` of a frame's samples in one vectorised pass: ``float32``,
    ``float64`` or ``int16`` in native byte order, C-contiguous (aligned or not: a decoded frame's samples
    start at any byte), at least one sample. ``min`` and ``max`` are numpy's ``x.min()`` and ``x.max()`` as
    floats: NaN when a sample is NaN, the infinities count. The decoder's finite check and the ingest's range
    check read one pass each instead of three (``np.isfinite(x).all()``, ``x.max()``, ``x.min()``)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"sample_range expects a numpy.ndarray; got {type(x).__name__}")
    cdef cnp.ndarray arr = x
    cdef Py_ssize_t n = cnp.PyArray_SIZE(arr), bad = 0
    cdef double lo = 0.0, hi = 0.0
    cdef int t = cnp.PyArray_TYPE(arr)
    cdef const void* p
    if n == 0 or not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError("sample_range expects a non-empty C-contiguous numpy.ndarray")
    if t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64 and t != cnp.NPY_INT16 or not cnp.PyArray_ISNOTSWAPPED(arr):
        raise TypeError(f"sample_range expects float32, float64 or int16 samples (native order); got {x.dtype}")
    p = cnp.PyArray_DATA(arr)
    with nogil:
        if t == cnp.NPY_FLOAT32:
            aiot_range_f(p, n, &bad, &lo, &hi)
        elif t == cnp.NPY_FLOAT64:
            aiot_range_d(p, n, &bad, &lo, &hi)
        else:
            aiot_range_s(p, n, &bad, &lo, &hi)
    if bad and (lo != lo or hi != hi or (x != x).any()):  # a NaN among the non-finite: numpy's min and max
        return bad, NAN, NAN
    return bad, lo, hi


cdef unsigned short _ONE = 1
cdef bint _LITTLE = (<unsigned char*>&_ONE)[0] == 1  # the frame header is little-endian: read it as it lies


def take_frames(list vals, list offsets, list rest, Py_ssize_t j, str topic, object partition, dict known,
                Py_ssize_t max_bytes, long long horizon, double max_abs, dict groups, list frames,
                object frame_cls, object position_cls, tuple dtypes, object ndarray):
    """Binary waveform frames of a Kafka poll batch, decoded and checked in one pass each: the common case
    of :meth:`aiotstream.pdm.ingest.Ingestor._message` for a frame (:func:`aiotstream.codecs.frames.decode_frame`
    and the ingest's :meth:`~aiotstream.pdm.ingest.Ingestor._check`) without a Python call per check.

    Takes ``vals[rest[i]]`` for i = j, j+1, ... while each is a frame v1 that both would accept: every
    header field in range and the length exact, the asset id one of ``known`` (its UTF-8 bytes ->
    ``(asset, channels, sample rate)`` of the site's assets whose ids are valid), ``t0_ns <= horizon``, the
    channel count and sample rate the config's, every sample finite and within ``max_abs`` (int16 only when
    ``max_abs >= 32768``, where the ingest does not look), at most ``max_bytes``. Each taken frame is made as
    ``decode_frame`` makes it (``frame_cls(asset, seq, t0, rate, view, position_cls(topic, partition, offset), None, raw)``,
    the samples a read-only view of ``raw``), appended to ``frames`` and to its asset's list in ``groups``.
    Returns the index into ``rest`` of the first message it did not take (``len(rest)``: all taken); the
    caller hands that one to the Python path, which decodes it or says why not (the same reason as ever),
    and calls again after it. One pass over the samples (the non-finite count, min and max) serves both
    checks, where the Python path reads them twice."""
    cdef Py_ssize_t n_rest = len(rest), n, alen, off, count
    cdef const unsigned char* p
    cdef unsigned short ch, alen16
    cdef unsigned int ns
    cdef unsigned char code
    cdef double rate, cfg_rate, lo = 0.0, hi = 0.0
    cdef long long t0
    cdef unsigned long long seq
    cdef Py_ssize_t bad = 0
    cdef object raw, info, asset, view, frame, g, o
    if not _LITTLE:
        return j
    while j < n_rest:
        raw = vals[<Py_ssize_t>rest[j]]
        if type(raw) is not bytes:
            return j
        n = PyBytes_GET_SIZE(raw)
        if n > max_bytes or n < 38:
            return j
        p = <const unsigned char*>PyBytes_AS_STRING(raw)
        if memcmp(p, b"AIOW", 4) != 0 or p[4] != 1:
            return j
        code = p[5]
        if code < 1 or code > 3:
            return j
        memcpy(&ch, p + 6, 2)
        memcpy(&ns, p + 8, 4)
        memcpy(&rate, p + 12, 8)
        memcpy(&t0, p + 20, 8)
        memcpy(&seq, p + 28, 8)
        memcpy(&alen16, p + 36, 2)
        alen = alen16
        if not (1 <= ch <= 64 and 1 <= ns <= (1 << 20) and isfinite(rate) and 0 < rate <= 1_000_000.0
                and 0 <= t0 <= horizon and 1 <= alen <= 128):
            return j
        off = 38 + alen
        count = <Py_ssize_t>ch * ns
        if n != off + count * (4 if code == 1 else 8 if code == 2 else 2):
            return j
        info = known.get(raw[38:off])
        if info is None:
            return j
        cfg_rate = (<tuple>info)[2]
        if ch != <Py_ssize_t>(<tuple>info)[1] or fabs(rate - cfg_rate) > 1e-6 * cfg_rate:
            return j
        if code == 3:
            if max_abs < 32768:
                return j
        else:
            # (a float32 sample: the ingest compares it with max_abs rounded to float32. No float32 lies
            # strictly between the two, so this comparison differs from that one only for a sample equal to
            # max_abs rounded up, which it leaves to the Python path, which takes it)
            if code == 1:
                aiot_range_f(p + off, count, &bad, &lo, &hi)
            else:
                aiot_range_d(p + off, count, &bad, &lo, &hi)
            if bad or hi > max_abs or lo < -max_abs:
                return j
        asset = (<tuple>info)[0]
        o = offsets[<Py_ssize_t>rest[j]]
        view = ndarray((ch, ns), dtypes[code], raw, off)
        frame = frame_cls(asset, seq, t0, rate, view, position_cls(topic, partition, -1 if o is None else o),
                          None, raw)
        frames.append(frame)
        g = groups.get(asset)
        if g is None:
            groups[asset] = [frame]
        else:
            (<list>g).append(frame)
        j += 1
    return j

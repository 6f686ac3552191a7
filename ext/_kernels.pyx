# cython: language_level=3
"""Compiled numeric kernels for :mod:`aiotstream`.

The only kernel so far is :func:`frame_moments`, the per-frame statistics that
every time-domain feature is derived from.  The typed loops run without the GIL
over typed memoryviews; a thin Python-level wrapper validates the input and
allocates the output.  ``float32`` input is read in place (no copy, no cast of
the whole array) and every sample is promoted to ``double`` as it is read, so
all accumulation happens in double precision whatever the input dtype.

The companion pure-numpy implementation used by the tests and benchmarks is
``aiotstream.features.reference.frame_moments``.
"""

import numpy as np

from libc.math cimport NAN, isfinite

__all__ = ["frame_moments", "MOMENT_COLUMNS"]

#: Names of the 7 columns returned by :func:`frame_moments`, in order.
MOMENT_COLUMNS = ("n", "mean", "m2", "m3", "m4", "min", "max")

ctypedef fused real_t:
    float
    double


cdef inline void _row_moments(const real_t* p, Py_ssize_t n, double* out) noexcept nogil:
    """Moments of one row ``p[0:n]`` (``n >= 1``) written to ``out[0:7]``."""
    cdef Py_ssize_t i
    cdef double v0, v1, v2, v3
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    cdef double lo0, lo1, hi0, hi1
    cdef double mean, total, lo, hi, nd = <double>n

    # ---- pass 1: sum (4 independent accumulators), min, max ----------------
    lo0 = lo1 = hi0 = hi1 = <double>p[0]
    i = 0
    while i + 4 <= n:
        v0 = <double>p[i]
        v1 = <double>p[i + 1]
        v2 = <double>p[i + 2]
        v3 = <double>p[i + 3]
        s0 += v0
        s1 += v1
        s2 += v2
        s3 += v3
        # "a < b ? a : b" form: maps to minsd/maxsd, ignores NaN (handled below)
        lo0 = v0 if v0 < lo0 else lo0
        lo1 = v1 if v1 < lo1 else lo1
        hi0 = v0 if v0 > hi0 else hi0
        hi1 = v1 if v1 > hi1 else hi1
        lo0 = v2 if v2 < lo0 else lo0
        lo1 = v3 if v3 < lo1 else lo1
        hi0 = v2 if v2 > hi0 else hi0
        hi1 = v3 if v3 > hi1 else hi1
        i += 4
    while i < n:
        v0 = <double>p[i]
        s0 += v0
        lo0 = v0 if v0 < lo0 else lo0
        hi0 = v0 if v0 > hi0 else hi0
        i += 1
    total = (s0 + s1) + (s2 + s3)
    lo = lo1 if lo1 < lo0 else lo0
    hi = hi1 if hi1 > hi0 else hi0

    out[0] = nd
    if total != total:
        # NaN sum: either a NaN sample (-> whole row NaN) or +Inf and -Inf
        # samples (-> IEEE result, computed by the generic path below).
        for i in range(n):
            if p[i] != p[i]:
                out[1] = NAN
                out[2] = NAN
                out[3] = NAN
                out[4] = NAN
                out[5] = NAN
                out[6] = NAN
                return
    out[5] = lo
    out[6] = hi
    if lo == hi and isfinite(lo):
        # constant row (includes n == 1): exact answer, no rounding residue
        out[1] = lo
        out[2] = 0.0
        out[3] = 0.0
        out[4] = 0.0
        return
    mean = total / nd

    # ---- pass 2: central sums around `mean` (2 lanes) -----------------------
    cdef double d0, d1, q0, q1
    cdef double a1 = 0.0, b1 = 0.0      # sum d      (lanes a, b)
    cdef double a2 = 0.0, b2 = 0.0      # sum d^2
    cdef double a3 = 0.0, b3 = 0.0      # sum d^3
    cdef double a4 = 0.0, b4 = 0.0      # sum d^4
    i = 0
    while i + 2 <= n:
        d0 = <double>p[i] - mean
        d1 = <double>p[i + 1] - mean
        q0 = d0 * d0
        q1 = d1 * d1
        a1 += d0
        b1 += d1
        a2 += q0
        b2 += q1
        a3 += q0 * d0
        b3 += q1 * d1
        a4 += q0 * q0
        b4 += q1 * q1
        i += 2
    if i < n:
        d0 = <double>p[i] - mean
        q0 = d0 * d0
        a1 += d0
        a2 += q0
        a3 += q0 * d0
        a4 += q0 * q0
    cdef double S1 = a1 + b1, S2 = a2 + b2, S3 = a3 + b3, S4 = a4 + b4
    cdef double c
    if isfinite(mean):
        # Corrected two-pass (Chan, Golub & LeVeque): `mean` carries the
        # rounding error of the first-pass sum; c = sum(d)/n estimates it.
        # Re-centre the sums exactly on mean + c (binomial shift, using
        # S1 = n*c).  c is O(eps * |mean|), so the shift terms are tiny.
        c = S1 / nd
        S4 = S4 - 4.0 * c * S3 + 6.0 * c * c * S2 - 3.0 * nd * c * c * c * c
        S3 = S3 - 3.0 * c * S2 + 2.0 * nd * c * c * c
        S2 = S2 - nd * c * c
        if S2 < 0.0:
            S2 = 0.0
        mean = mean + c
    out[1] = mean
    out[2] = S2
    out[3] = S3
    out[4] = S4


cdef void _moments_rows(const real_t[:, ::1] x, double[:, ::1] out) noexcept nogil:
    cdef Py_ssize_t r
    cdef Py_ssize_t rows = x.shape[0]
    cdef Py_ssize_t n = x.shape[1]
    for r in range(rows):
        _row_moments(&x[r, 0], n, &out[r, 0])


def frame_moments(x):
    """Per-row moments of a batch of frames: ``(..., N) -> (..., 7)`` float64.

    ``x`` must be a C-contiguous ``numpy.ndarray`` of dtype ``float32`` or
    ``float64`` (native byte order) with shape ``(F, N)`` or ``(F, C, N)``
    (frames, [channels,] samples) and ``N >= 1``; ``F`` and ``C`` may be 0.
    Anything else raises ``TypeError`` (not an array, wrong dtype) or
    ``ValueError`` (wrong shape, ``N == 0``, not C-contiguous).

    Returns a new float64 array of shape ``x.shape[:-1] + (7,)`` whose columns
    are ``n, mean, m2, m3, m4, min, max`` with ``m_k = sum((x - mean)**k)``
    (central *sums*, not divided by ``n``; see
    :func:`aiotstream.features.merge_moments` to combine them).

    Algorithm: two passes per row, accumulating in double (pass 1: sum, min,
    max; pass 2: sums of ``d, d**2, d**3, d**4`` with ``d = x - mean``, then
    the corrected two-pass re-centring on ``mean + sum(d)/n``).  The GIL is
    released for the whole batch.

    Special rows:

    * constant rows (``min == max``, finite; includes ``N == 1``) give
      ``mean == min`` and ``m2 == m3 == m4 == 0`` exactly;
    * a row containing NaN gives NaN for ``mean, m2, m3, m4, min, max``
      (``n`` is still the number of samples); other rows are unaffected;
    * +/-Inf samples give whatever IEEE arithmetic gives (``mean`` is +/-Inf,
      or NaN when both signs occur; central sums are then NaN; ``min``/``max``
      are exact).  Callers are expected to reject non-finite frames upstream
      (the decoder does); the result for such rows is not meaningful.
    * values beyond ~1e77 overflow ``d**4`` to Inf.

    >>> import numpy as np
    >>> frame_moments(np.array([[1.0, 2.0, 3.0, 6.0]])).tolist()
    [[4.0, 3.0, 14.0, 18.0, 98.0, 1.0, 6.0]]
    >>> frame_moments(np.zeros((5, 3, 8), dtype=np.float32)).shape
    (5, 3, 7)
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(
            "frame_moments expects a numpy.ndarray of dtype float32 or float64 "
            f"with shape (F, N) or (F, C, N); got {type(x).__name__}"
        )
    dtype = x.dtype
    is_f32 = dtype == np.dtype(np.float32)
    if not is_f32 and dtype != np.dtype(np.float64):
        raise TypeError(
            "frame_moments expects dtype float32 or float64 (native byte order); "
            f"got dtype {dtype.str!r}"
        )
    if x.ndim != 2 and x.ndim != 3:
        raise ValueError(
            "frame_moments expects a 2-D (F, N) or 3-D (F, C, N) array; "
            f"got {x.ndim}-D array of shape {x.shape}"
        )
    if x.shape[x.ndim - 1] < 1:
        raise ValueError(
            f"frame_moments expects N >= 1 samples per row (last axis); got shape {x.shape}"
        )
    if not x.flags.c_contiguous:
        raise ValueError(
            "frame_moments expects a C-contiguous array (use numpy.ascontiguousarray); "
            f"got strides {x.strides} for shape {x.shape}"
        )

    cdef Py_ssize_t n = x.shape[x.ndim - 1]
    rows = x.reshape(-1, n)  # a view: x is C-contiguous
    result = np.empty((rows.shape[0], 7), dtype=np.float64)
    cdef double[:, ::1] out = result
    cdef const float[:, ::1] xf
    cdef const double[:, ::1] xd
    if is_f32:
        xf = rows
        with nogil:
            _moments_rows(xf, out)
    else:
        xd = rows
        with nogil:
            _moments_rows(xd, out)
    return result.reshape(x.shape[:x.ndim - 1] + (7,))

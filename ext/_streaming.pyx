# cython: language_level=3
"""Compiled per-row update of the default streaming ensemble (:mod:`aiotstream.models.streaming`).

:class:`Ensemble` runs a block of rows (``(rows, channels)`` float64) through the same equations as
the Python reference (``StreamingDetector(..., impl="python")``), in the same order, on state held
in the reference's own numpy arrays (``RobustBaseline``, ``SpotBank`` and ``MultivariateDetector``
attributes), so the two implementations can be compared and swapped mid-stream:

* per-channel robust baseline and EWMA chart, change events;
* one SPOT per channel ``|z|`` (ring buffers of ``SpotBank``) with the Gaussian floor;
* the chi-squared floors of T-squared's and Q's tail probabilities (``_chi2_sf``);
* T-squared and Q in the current PCA basis, the exponentially weighted covariance update;
* SPOT for T-squared and Q (a two-column ring buffer, fitted in chronological order like the
  reference's deques);
* the rank test (``RankTest``): per channel a test window, a chronological reference ring and its
  sorted copy (binary search and memmove), the tie total, the kept sums of the lag-1
  autocorrelation; U and the pooled ties from per-slot counts the kernel keeps as the window and the
  reference change (``rcL``/``rcE``/``rcM``: not state, rebuilt when stale); one SPOT on the largest channel's ``|z|`` (a one-column ring fitted in arrival
  order) with its floor of n Gaussian tails;
* SPOT re-fits (numpy's linear quantile, Grimshaw's profile likelihood on the same grids, numpy's
  pairwise summation for the means), Bonferroni score, hysteresis.

What stays in Python, between blocks: the PCA eigendecomposition (``MultivariateDetector._refresh``,
every ``refresh`` rows, LAPACK) and turning change events into objects. :meth:`Ensemble.run`
stops after a row that needs either and returns how many rows it consumed; feeding rows in blocks
of any size gives the same result as one block.

Results equal the reference to rounding: libm's ``log1p``/``exp``/``pow`` may differ from numpy's
SIMD versions in the last bit (tests: rtol 1e-12 on scores, identical alerts).
"""

import threading

import numpy as np

from cpython.pythread cimport PyThread_get_thread_ident
from libc.math cimport INFINITY, NAN, erfc, exp, fabs, floor, isfinite, isnan, log, log1p, pow, sqrt
from libc.stdint cimport uint64_t
from libc.string cimport memcpy, memmove
from cpython.mem cimport PyMem_Free, PyMem_Malloc

cimport numpy as cnp

cnp.import_array()

cdef extern from "streaming_simd.h" nogil:
    void aiot_log1p_scaled(double theta, const double* y, double* out, Py_ssize_t n)
    int aiot_simd_level()
    int aiot_set_simd_level(int level)
    void aiot_minmax(const double* a, Py_ssize_t n, Py_ssize_t stride, double* out, double* lo, double* hi)
    Py_ssize_t aiot_bracket(const double* src, double* out, Py_ssize_t n, double lo, double hi, Py_ssize_t* below)
    Py_ssize_t aiot_excess(const double* src, double* out, Py_ssize_t n, double t)

#: 2: AVX-512 vector log1p (glibc libmvec) in the GPD fits, 1: AVX2, 0: scalar libm
SIMD_LEVEL = aiot_simd_level()


def set_simd_level(int level):
    """Use at most this level (0 scalar, 1 AVX2, 2 AVX-512) from now on; returns the level in use.
    For the tests, which run every path the CPU has against the reference."""
    return aiot_set_simd_level(level)

__all__ = ["SIMD_LEVEL", "Ensemble", "bracket_filter", "calibrated_step", "chi2_sf", "excess_filter", "fit_gpd", "gpd_bounds", "kth_between", "min_max", "pca_refresh", "quantile_hint_hits", "quantiles_hinted", "set_fast_fits", "set_simd_level", "sorted_copy_of", "spot_fit"]

cdef bint FAST_FITS = True
cdef long long GPD_PASSES = 0  # log1p passes over the excesses in the GPD fits (for the tests)


def set_fast_fits(bint on):
    """With False, the SPOT re-fits do all the work the reference does (every grid point's log1p pass,
    the best theta's again, np.std of every window); with True (the default) they skip what cannot
    change their results (:func:`_fit_gpd`, :func:`_spot_fit`). Returns the previous setting. For the
    tests, which compare the two bit for bit."""
    global FAST_FITS
    prev = FAST_FITS
    FAST_FITS = on
    return prev


def gpd_passes():
    """How many log1p passes over excesses the GPD fits have made so far (for the tests)."""
    return GPD_PASSES

cdef double Z_CLIP = 1e6
cdef double MAX_ABS = 1e150
cdef double SQRT2 = 1.4142135623730951  # math.sqrt(2.0)
cdef Py_ssize_t PW_BLOCKSIZE = 128
cdef double INV_GAMMA_3_2 = 1.1283791670955126  # 2.0 / math.sqrt(math.pi)


cdef double _chi2_sf(double x, Py_ssize_t k) noexcept nogil:
    """``streaming.chi2_sf``: P(chi-squared_k >= x), the same operations in the same order."""
    cdef double h, term, total
    cdef Py_ssize_t j
    if not x > 0.0:
        return 1.0
    h = 0.5 * x
    if k % 2 == 0:
        term = exp(-h)
        total = term
        for j in range(1, k // 2):
            term *= h / <double>j
            total += term
    else:
        total = erfc(sqrt(h))
        if k > 1:
            term = exp(-h) * sqrt(h) * INV_GAMMA_3_2
            total += term
            for j in range(1, (k - 1) // 2):
                term *= h / (<double>j + 0.5)
                total += term
    return total if total < 1.0 else 1.0


def chi2_sf(double x, Py_ssize_t k):
    """Compiled twin of :func:`aiotstream.models.streaming.chi2_sf` (for the tests)."""
    return _chi2_sf(x, k)


cdef double _pairwise(const double* a, Py_ssize_t n, Py_ssize_t stride) noexcept nogil:
    """numpy's pairwise summation (``loops_utils.h``), so means round as ``np.mean`` does."""
    cdef Py_ssize_t i, j, n2
    cdef double res
    cdef double r[8]
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[i * stride]
        return res
    elif n <= PW_BLOCKSIZE:
        for j in range(8):
            r[j] = a[j * stride]
        i = 8
        while i < n - (n % 8):
            for j in range(8):
                r[j] += a[(i + j) * stride]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        while i < n:
            res += a[i * stride]
            i += 1
        return res
    else:
        n2 = n // 2
        n2 -= n2 % 8
        return _pairwise(a, n2, stride) + _pairwise(a + n2 * stride, n - n2, stride)


cdef double _sum(const double* a, Py_ssize_t n, Py_ssize_t stride) noexcept nogil:
    # np.add.reduce of float64: pairwise over all n from 0.0 (checked bit for bit against np.sum)
    return _pairwise(a, n, stride)


cdef void _select(double* a, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """Quickselect: a[k] becomes the k-th smallest, smaller-or-equal ones before it, larger-or-equal
    after (the callers read only order statistics: the same values whatever the arrangement).

    Lomuto partitions without branches on the compares (their outcomes are random: a branch
    mispredicted about half the time); a part left lopsided (many values equal to the pivot, say) is
    split once more into equal and larger, so ties cannot make it quadratic. Short parts: insertion."""
    cdef Py_ssize_t lo = 0, hi = n - 1, i, j, mid, st, e
    cdef double pivot, tmp, v
    while hi - lo >= 16:
        mid = lo + (hi - lo) // 2
        # median of three to a[mid], then to a[hi]
        if a[mid] < a[lo]:
            tmp = a[mid]; a[mid] = a[lo]; a[lo] = tmp
        if a[hi] < a[lo]:
            tmp = a[hi]; a[hi] = a[lo]; a[lo] = tmp
        if a[hi] < a[mid]:
            tmp = a[hi]; a[hi] = a[mid]; a[mid] = tmp
        pivot = a[mid]
        a[mid] = a[hi]
        a[hi] = pivot
        st = lo
        for i in range(lo, hi):  # a[lo:st] < pivot <= a[st:i]
            v = a[i]
            a[i] = a[st]
            a[st] = v
            st += v < pivot
        a[hi] = a[st]
        a[st] = pivot
        if k == st:
            return
        if k < st:
            hi = st - 1
            continue
        if (st - lo) * 8 < hi - lo:  # lopsided: a[st + 1:e] == pivot, a[e:hi + 1] > pivot
            lo = st + 1
            e = lo
            for i in range(lo, hi + 1):
                v = a[i]
                a[i] = a[e]
                a[e] = v
                e += v <= pivot
            if k < e:
                return
            lo = e
        else:
            lo = st + 1
    for i in range(lo + 1, hi + 1):
        v = a[i]
        j = i - 1
        while j >= lo and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v


cdef Py_ssize_t HINT_D = 96  # ranks kept either side of the quantile's for the next fit's bracket
cdef long long HINT_HITS = 0  # quantiles found within a kept bracket (for the tests)


def quantile_hint_hits():
    """How many quantiles were found within the bracket kept from the statistic's last fit."""
    return HINT_HITS


cdef bint _kth_between(const double* src, double* scratch, Py_ssize_t n, Py_ssize_t k, double lo, double hi,
                       double* a_out, double* b_out, double* hint) noexcept nogil:
    """The k-th and (k+1)-th smallest of src[0:n] (k + 1 < n) when rank k lies within [lo, hi]: one pass
    copies the values between them to scratch, the selection runs on those. Returns False when it does
    not (the values are exact order statistics either way: the bounds only decide the work). With hint
    (not NULL): hint = the values HINT_D ranks below and above the pair (or lo, hi where there are
    fewer between), a bracket for the next fit of a window that changes by a few values."""
    cdef Py_ssize_t i, m, below, kk
    cdef double v, a, b
    # (streaming_simd.h: vector compares and compress where the CPU has them; where a value falls is a
    # coin toss for a branch predictor, a tenth of a window above the bracket and a few values in it)
    m = aiot_bracket(src, scratch, n, lo, hi, &below)
    if not (below <= k < below + m):
        return False
    kk = k - below
    _select(scratch, m, kk)
    a = scratch[kk]
    if kk + 1 < m:
        b = scratch[kk + 1]
        for i in range(kk + 2, m):
            if scratch[i] < b:
                b = scratch[i]
    else:  # the pair's upper value lies above the bracket (rare): the smallest value there
        b = INFINITY
        for i in range(n):
            v = src[i]
            if v > hi and not v < lo and v < b:
                b = v
    a_out[0] = a
    b_out[0] = b
    if hint != NULL:
        if kk - HINT_D >= 0:  # scratch[0:kk] <= a: its (kk - D)-th
            _select(scratch, kk, kk - HINT_D)
            hint[0] = scratch[kk - HINT_D]
        else:
            hint[0] = lo
        if kk + 1 + HINT_D < m:  # scratch[kk + 1:m] >= a: its D-th
            _select(scratch + kk + 1, m - kk - 1, HINT_D)
            hint[1] = scratch[kk + 1 + HINT_D]
        else:
            hint[1] = hi
    return True


cdef bint _kth_bracketed(const double* src, double* scratch, Py_ssize_t n, Py_ssize_t k, double* a_out,
                         double* b_out, double* hint) noexcept nogil:
    """The k-th and (k+1)-th smallest of src[0:n] (k + 1 < n, n >= 64; scratch: n doubles, overwritten,
    not overlapping src).

    Floyd and Rivest's idea: two pivots from a sorted sample of 64 values bracket rank k with high
    probability, one pass copies only the values between them to scratch, and the selection runs on
    those (about a quarter of n). Returns False when the bracket missed (the caller then selects on
    everything)."""
    cdef Py_ssize_t i, j, r, lo_i, hi_i
    cdef double lo, hi, v
    cdef double sample[64]
    for i in range(64):
        v = src[(i * n) // 64]
        j = i - 1
        while j >= 0 and sample[j] > v:
            sample[j + 1] = sample[j]
            j -= 1
        sample[j + 1] = v
    r = (k * 64) // n
    lo_i = r - 8
    hi_i = r + 9
    lo = sample[lo_i] if lo_i >= 0 else -INFINITY
    hi = sample[hi_i] if hi_i <= 63 else INFINITY
    return _kth_between(src, scratch, n, k, lo, hi, a_out, b_out, hint)


cdef double _quantile(const double* arr, Py_ssize_t n, double q, double* scratch, double* hint) noexcept nogil:
    """``np.quantile(arr, q)`` (method 'linear') for finite arr, n >= 1 (exact order statistics, so the
    same value as numpy's whatever the selection algorithm). scratch: n doubles, not overlapping arr.
    hint: NULL, or two doubles kept per statistic between its fits (NaN: none yet), the bracket tried
    first (the last fit's values some ranks either side of its quantile) and updated."""
    cdef Py_ssize_t i, prev
    cdef double vi, g, a, b, d, res
    cdef bint done = False
    global HINT_HITS
    vi = (n - 1) * q
    if vi >= n - 1:
        for i in range(n):
            scratch[i] = arr[i]
        _select(scratch, n, n - 1)
        return scratch[n - 1]
    prev = <Py_ssize_t>floor(vi)
    if n >= 512:  # reads arr, copies a bracket of it (no full copy first)
        if hint != NULL and hint[0] <= hint[1]:
            done = _kth_between(arr, scratch, n, prev, hint[0], hint[1], &a, &b, hint)
            HINT_HITS += done
        if not done:
            done = _kth_bracketed(arr, scratch, n, prev, &a, &b, hint)
    if not done:
        if hint != NULL:
            hint[0] = NAN
            hint[1] = NAN
        for i in range(n):
            scratch[i] = arr[i]
        _select(scratch, n, prev)
        a = scratch[prev]
        b = scratch[prev + 1]
        for i in range(prev + 2, n):
            if scratch[i] < b:
                b = scratch[i]
    g = vi - <double>prev
    d = b - a
    res = a + d * g
    if g >= 0.5:
        res = b - d * (1.0 - g)
    return res


cdef double _profile_ll(double theta, const double* y, Py_ssize_t n, double xi_min, double* tmp,
                        double* xi_out) noexcept nogil:
    """The profile log-likelihood at theta (-inf outside the admissible shapes); xi_out: its xi. The
    log is taken only where the shape is admissible (the result is -inf otherwise either way)."""
    cdef double xi, sig, ll
    global GPD_PASSES
    GPD_PASSES += 1
    aiot_log1p_scaled(theta, y, tmp, n)
    xi = _sum(tmp, n, 1) / n
    xi_out[0] = xi
    sig = xi / theta
    if sig <= 0 or xi < xi_min or xi > 1.0 or theta == 0:
        return -INFINITY
    ll = -(<double>n) * log(sig) - n * (1.0 + xi)
    if not isfinite(ll):
        return -INFINITY
    return ll


cdef enum:
    GRID_N = 40  # the GPD fit's theta grids: GRID_N values each (filled below, after the functions)
cdef double G_NEG[GRID_N]
cdef double G_POS[GRID_N]

# a profile point whose xi is above this is beyond xi's bound 1 by far more than any rounding of the
# log1p's and their mean: every larger theta's xi (mean of log1p(theta y), increasing in theta) is too
cdef double XI_CUT = 1.0 + 1e-6

# The bound that lets a fast fit skip a grid point (_gpd_bound). Every computed value it relies on is
# within a few units in the last place of the exact one: a log1p of the AVX2/AVX-512 paths within 4 ulp,
# numpy's pairwise sums of positive terms within about 25 roundings, log within 1 ulp. GPD_SLACK, a
# relative 1e-12, leaves a factor of hundreds over all of them together.
cdef double GPD_SLACK = 1e-12
cdef enum:
    GPD_TABLE = 168  # every grid point a fit evaluates: 40 (negative) + 40 + 41 + 41 at most


cdef inline Py_ssize_t _table_upper(const double* t, Py_ssize_t m, double v) noexcept nogil:
    """The first index of the sorted t[0:m] whose value is > v (m if none)."""
    cdef Py_ssize_t lo = 0, hi = m, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if t[mid] > v:
            hi = mid
        else:
            lo = mid + 1
    return lo


cdef double _gpd_bound(double th, Py_ssize_t n, const double* tt, const double* tx, Py_ssize_t ne,
                       Py_ssize_t j, double ymax, const double* mom) noexcept nogil:
    """An upper bound of the profile log-likelihood ``_profile_ll`` would compute at theta = th > 0, from
    what the fit knows without a log1p pass; +inf where it knows too little, -inf where xi is surely
    above 1 (the profile is -inf there). A point whose bound is
    below a value the same grid has already reached cannot be the grid's best, so a fast fit skips it.

    ll(theta) = -n log(xi / theta) - n (1 + xi) decreases in xi, so a lower bound L of xi(theta)
    = mean(log1p(theta y)) bounds it. Three, the largest taken, each less GPD_SLACK for rounding:
    xi increases with theta (the evaluated point below, tt[j - 1], tx[j - 1]); xi is concave in theta
    (the chord between the evaluated points either side); and log1p(u) >= u - u^2/2 + u^3/3 - u^4/4
    for u >= 0, with the moments mom[k - 1] = mean((y / ymax)^k) and s = theta ymax (s <= 2: beyond
    it the terms cancel and the bound is weak). j: the first table index above th."""
    cdef double lo = 0.0, x1, x2, t1, c, s, a1, a2, a3, a4, sig, ls, u
    if j > 0 and tt[j - 1] > 0.0:
        t1 = tt[j - 1]
        x1 = tx[j - 1]
        lo = x1 * (1.0 - GPD_SLACK)
        if j < ne:
            x2 = tx[j]
            c = x1 + (x2 - x1) * ((th - t1) / (tt[j] - t1)) - GPD_SLACK * fabs(x2)
            if c > lo:
                lo = c
    s = th * ymax
    if s <= 2.0:
        a1 = s * mom[0]
        a2 = s * s * mom[1] * 0.5
        a3 = s * s * s * mom[2] / 3.0
        a4 = s * s * s * s * mom[3] * 0.25
        c = ((a1 - a2) + (a3 - a4)) - GPD_SLACK * (a1 + a2 + a3 + a4)
        if c > lo:
            lo = c
    if not (lo > 0.0):
        return INFINITY
    if lo > 1.0:  # xi > 1: the profile is -inf there
        return -INFINITY
    sig = lo / th
    ls = log(sig)
    u = -(<double>n) * ls - n * (1.0 + lo)
    return u + GPD_SLACK * ((<double>n) * (fabs(ls) + 2.0 + lo) + fabs(u))


cdef void _gpd_moments(const double* y, Py_ssize_t n, double ymax, double* tmp, double* mom) noexcept nogil:
    """mom[k - 1] = mean((y / ymax)^k), k = 1..4, for :func:`_gpd_bound` (in (0, 1]: nothing overflows)."""
    cdef Py_ssize_t i, k
    for i in range(n):
        tmp[i] = y[i] / ymax
    mom[0] = _sum(tmp, n, 1) / n
    for k in range(1, 4):
        for i in range(n):
            tmp[i] = tmp[i] * (y[i] / ymax)
        mom[k] = _sum(tmp, n, 1) / n


cdef void _fit_gpd(const double* y, Py_ssize_t n, double xi_min, double* tmp, double* out) noexcept nogil:
    """``streaming.fit_gpd`` for excesses y > 0 (finite): out = (xi, sigma).

    The same grids, comparisons and results as the reference, with less log1p work when FAST_FITS is
    on: a theta evaluated before (the refined grid's ends are the previous grid's neighbours of its
    best) reuses its value; a theta at or above one whose xi exceeded 1 (by far more than rounding) is
    -inf without evaluation (xi increases with theta); a positive theta whose log-likelihood provably
    stays below a value its grid has already reached (:func:`_gpd_bound`) is not evaluated, as it
    cannot be the grid's first best (the grid is visited coarse to fine so such values come early);
    and the best theta's xi is kept, not recomputed. The best of each grid is then picked as the
    reference does, first index of the largest value, among the same values."""
    cdef Py_ssize_t i, j, k, m, best_i, it, n_neg, ia, ib, ne = 0, step
    cdef double mean, ymax, lo, best_ll, best, v, a, b, delta, xi, th, best_xi = 0.0, run, r
    cdef double theta_cut = INFINITY
    global GPD_PASSES
    cdef double grid[128]
    cdef double ll[128]
    cdef double xs[128]
    cdef double tt[GPD_TABLE]  # the evaluated thetas, sorted; their xi and log-likelihood
    cdef double tx[GPD_TABLE]
    cdef double tl[GPD_TABLE]
    cdef double mom[4]
    if n == 0:
        out[0] = 0.0
        out[1] = 1.0
        return
    mean = _sum(y, n, 1) / n
    if n < 10:
        out[0] = 0.0
        out[1] = mean if mean > 1e-12 else 1e-12
        return
    if xi_min < -0.5:
        xi_min = -0.5
    ymax = y[0]
    for j in range(1, n):
        if y[j] > ymax:
            ymax = y[j]
    if FAST_FITS:
        _gpd_moments(y, n, ymax, tmp, mom)
    lo = -1.0 / ymax
    m = 0
    if xi_min < 0:
        n_neg = GRID_N
        for j in range(n_neg):
            grid[m] = lo * (1.0 - G_NEG[j])
            m += 1
        # np.sort (insertion sort: 40 values, nearly sorted)
        for i in range(1, m):
            v = grid[i]
            j = i - 1
            while j >= 0 and grid[j] > v:
                grid[j + 1] = grid[j]
                j -= 1
            grid[j + 1] = v
    for j in range(GRID_N):
        grid[m] = G_POS[j] / mean
        m += 1
    best_ll = -(<double>n) * log(mean) - n
    best = 0.0
    for it in range(3):
        if not FAST_FITS:
            for i in range(m):
                ll[i] = _profile_ll(grid[i], y, n, xi_min, tmp, &xs[i])
        else:
            run = -INFINITY
            for k in range(4):  # every 8th grid point from 0, then those halfway between the ones visited:
                step = 8 if k == 0 else 16 >> k  # 4, 12, ...; 2, 6, ...; 1, 3, ... (each point once)
                i = (0 if k == 0 else 8 >> k) - step
                while i + step < m:
                    i += step
                    th = grid[i]
                    j = _table_upper(tt, ne, th)
                    if j > 0 and tt[j - 1] == th:  # equal thetas (+0 and -0 too: both -inf) give equal values
                        ll[i] = tl[j - 1]
                        xs[i] = tx[j - 1]
                    elif th >= theta_cut:
                        ll[i] = -INFINITY
                        xs[i] = INFINITY  # (never read: a -inf point is never the best)
                    elif th > 0.0 and run > -INFINITY and _gpd_bound(th, n, tt, tx, ne, j, ymax, mom) < run:
                        ll[i] = -INFINITY  # below run, which this grid reaches: never its first best
                        xs[i] = NAN
                        continue
                    else:
                        ll[i] = _profile_ll(th, y, n, xi_min, tmp, &xs[i])
                        if xs[i] > XI_CUT and th > 0.0 and th < theta_cut:
                            theta_cut = th
                        if ne < GPD_TABLE:
                            memmove(&tt[j + 1], &tt[j], (ne - j) * sizeof(double))
                            memmove(&tx[j + 1], &tx[j], (ne - j) * sizeof(double))
                            memmove(&tl[j + 1], &tl[j], (ne - j) * sizeof(double))
                            tt[j] = th
                            tx[j] = xs[i]
                            tl[j] = ll[i]
                            ne += 1
                    if ll[i] > run:
                        run = ll[i]
        best_i = 0
        for i in range(m):
            if ll[i] > ll[best_i]:
                best_i = i
        if ll[best_i] > best_ll:
            best_ll = ll[best_i]
            best = grid[best_i]
            best_xi = xs[best_i]
        ia = best_i - 1 if best_i > 0 else 0
        ib = best_i + 1 if best_i + 1 < m else m - 1
        a = grid[ia]
        b = grid[ib]
        if a < 0.0 < b:
            if grid[best_i] < 0:
                b = -1e-12
            else:
                a = 1e-12
        # np.linspace(a, b, 41)
        delta = b - a
        r = delta / 40
        for i in range(41):
            if r == 0:
                grid[i] = (<double>i / 40) * delta + a
            else:
                grid[i] = <double>i * r + a
        grid[40] = b
        m = 41
    if best == 0.0:
        out[0] = 0.0
        out[1] = mean
        return
    if not FAST_FITS:  # the reference's pass at the best theta
        GPD_PASSES += 1
        aiot_log1p_scaled(best, y, tmp, n)
        best_xi = _sum(tmp, n, 1) / n
    # (else: the same theta's xi, kept from its grid point)
    out[0] = best_xi
    out[1] = best_xi / best


cdef void _spot_fit(const double* arr, Py_ssize_t n, Py_ssize_t stride, double level, double xi_min,
                    double* scratch, double* tmp, double* out, double* hint) noexcept nogil:
    """``SpotBank._fit`` / ``SpotCalibrator._fit`` of the values arr[0:n*stride:stride] (n >= 1):
    out = (t, rate, xi, sigma). scratch, tmp: 2 n doubles, n doubles. hint: the statistic's quantile
    bracket (:func:`_quantile`) or NULL."""
    cdef Py_ssize_t i, ny = 0
    cdef double t, mean, sd, sigma, f, lo, hi, mag, bound
    cdef const double* lin = arr
    cdef double gp[2]
    # the window's min and max (streaming.DEGENERATE, np.std's bound below; streaming_simd.h), and a
    # contiguous copy of a strided window (a column of several channels' ring) at scratch + n; a
    # contiguous one is read where it lies (everything below only reads it)
    if stride == 1:
        aiot_minmax(arr, n, 1, NULL, &lo, &hi)
    else:
        aiot_minmax(arr, n, stride, scratch + n, &lo, &hi)
        lin = scratch + n
    t = _quantile(lin, n, level, scratch, hint)
    ny = aiot_excess(lin, scratch, n, t)  # (about 1 value in 10 is kept)
    out[0] = t
    out[1] = (<double>(ny if ny > 1 else 1)) / n
    if ny:
        _fit_gpd(scratch, ny, xi_min, tmp, gp)
    else:
        gp[0] = 0.0
        gp[1] = 0.0
    sigma = gp[1]
    f = 1e-9 * (1.0 + fabs(t))
    if f > sigma:
        sigma = f
    # sigma's floor 1e-6 np.std(arr), computed only when it could bind: np.std <= max |x - mean| <=
    # (hi - lo) + the mean's rounding (far below 1e-10 max |x|), bounded here with room to spare; a
    # constant window (lo == hi) has its sigma replaced below. A NaN bound computes it (as before).
    mag = fabs(lo) if fabs(lo) > fabs(hi) else fabs(hi)
    bound = ((hi - lo) + 1e-10 * mag) * 1.0001
    if lo != hi and (not FAST_FITS or not (1e-6 * bound < sigma)):
        # np.std(arr): sqrt(mean((arr - mean(arr))**2))
        mean = _sum(lin, n, 1) / n
        for i in range(n):
            tmp[i] = (lin[i] - mean) * (lin[i] - mean)
        sd = sqrt(_sum(tmp, n, 1) / n)
        f = 1e-6 * sd
        if f > sigma:
            sigma = f
    out[2] = gp[0]
    out[3] = sigma
    # streaming.DEGENERATE: a window of one value has no tail; p = 1 for any value
    if lo == hi:
        out[1] = 1.0
        out[2] = 0.0
        out[3] = INFINITY


cdef inline double _tail(double x, double t, double rate, double xi, double sig) noexcept nogil:
    """SpotBank.tail / SpotCalibrator.tail for one value."""
    cdef double y, base, sf, e
    if not t < INFINITY:
        return 1.0
    if x > t:
        y = x - t
        if y < 0:
            y = 0.0
        if fabs(xi) < 1e-9:
            sf = exp(-y / sig)
        else:
            base = 1.0 + xi * y / sig
            if base > 0.0:
                sf = pow(base, -1.0 / xi)
            else:
                sf = 0.0
        return rate * sf
    e = (t - x) / sig
    if e > 700.0:
        e = 700.0
    e = rate * exp(e)
    return e if e < 1.0 else 1.0


cdef inline Py_ssize_t _lower(const double* a, Py_ssize_t n, double v) noexcept nogil:
    """np.searchsorted(a[:n], v, "left") (branch-free halving: the compares are unpredictable)"""
    cdef const double* base = a
    cdef Py_ssize_t half
    if n == 0:
        return 0
    while n > 1:
        half = n >> 1
        base = base + half if base[half] < v else base
        n -= half
    return (base - a) + (1 if base[0] < v else 0)


cdef inline Py_ssize_t _upper(const double* a, Py_ssize_t n, double v) noexcept nogil:
    """np.searchsorted(a[:n], v, "right")"""
    cdef const double* base = a
    cdef Py_ssize_t half
    if n == 0:
        return 0
    while n > 1:
        half = n >> 1
        base = base + half if base[half] <= v else base
        n -= half
    return (base - a) + (1 if base[0] <= v else 0)


cdef extern from *:
    void __builtin_prefetch(const void* p) nogil


cdef inline void _lower3(const double* a, Py_ssize_t n, double v0, double v1, double v2,
                         Py_ssize_t* out) noexcept nogil:
    """_lower of three values in lockstep: the three chains of loads overlap (a cold array: each is
    ~12 dependent cache misses)."""
    cdef const double* b0 = a
    cdef const double* b1 = a
    cdef const double* b2 = a
    cdef Py_ssize_t half, h2
    if n == 0:
        out[0] = 0
        out[1] = 0
        out[2] = 0
        return
    while n > 1:
        half = n >> 1
        h2 = (n - half) >> 1  # the next step's two candidates, fetched while this one compares
        __builtin_prefetch(b0 + h2)
        __builtin_prefetch(b0 + half + h2)
        __builtin_prefetch(b1 + h2)
        __builtin_prefetch(b1 + half + h2)
        __builtin_prefetch(b2 + h2)
        __builtin_prefetch(b2 + half + h2)
        b0 = b0 + half if b0[half] < v0 else b0
        b1 = b1 + half if b1[half] < v1 else b1
        b2 = b2 + half if b2[half] < v2 else b2
        n -= half
    out[0] = (b0 - a) + (1 if b0[0] < v0 else 0)
    out[1] = (b1 - a) + (1 if b1[0] < v1 else 0)
    out[2] = (b2 - a) + (1 if b2[0] < v2 else 0)


cdef inline Py_ssize_t _equal_from(const double* a, Py_ssize_t n, Py_ssize_t lo, double v) noexcept nogil:
    """How many of a[lo:n] equal v, lo = _lower(a, n, v) (no second search when none does)."""
    if lo >= n or a[lo] != v:
        return 0
    return _upper(a + lo, n - lo, v)


# The GPD fit's theta grids (as streaming.fit_gpd makes them: the same floats), made once at import: every
# fit reads them and none writes them
for _j, (_neg, _pos) in enumerate(zip(np.geomspace(1e-6, 1.0 - 1e-6, GRID_N).tolist(),
                                      np.geomspace(1e-6, 6.0, GRID_N).tolist(), strict=True)):
    G_NEG[_j] = _neg
    G_POS[_j] = _pos


def fit_gpd(y, double xi_min=-0.5):
    """Compiled twin of :func:`aiotstream.models.streaming.fit_gpd` (for the tests)."""
    cdef double[::1] yy = np.ascontiguousarray(y, dtype=np.float64)
    yy = np.ascontiguousarray(np.asarray(yy)[np.isfinite(yy) & (np.asarray(yy) > 0)])
    cdef double[::1] tmp = np.empty(max(yy.shape[0], 1))
    cdef double out[2]
    if yy.shape[0] == 0:
        return 0.0, 1.0
    _fit_gpd(&yy[0], yy.shape[0], xi_min, &tmp[0], out)
    return out[0], out[1]


def gpd_bounds(y, known, thetas):
    """For the tests: at each theta > 0 of ``thetas``, the bound :func:`_gpd_bound` gives from the
    profile evaluated at the thetas ``known`` (each > 0) alone, and the profile log-likelihood there
    (xi_min 0): two arrays; a fast fit relies on the first never being below the second."""
    cdef double[::1] yy = np.ascontiguousarray(y, dtype=np.float64)
    cdef double[::1] kk = np.unique(np.asarray(known, dtype=np.float64))
    cdef double[::1] th = np.ascontiguousarray(thetas, dtype=np.float64)
    cdef Py_ssize_t n = yy.shape[0], ne = kk.shape[0], i, j
    if n < 1 or ne > GPD_TABLE or not (np.asarray(yy) > 0).all() or not (np.asarray(kk) > 0).all():
        raise ValueError("y > 0, at most GPD_TABLE known thetas > 0")
    cdef double[::1] tmp = np.empty(n)
    cdef double[::1] bound = np.empty(th.shape[0])
    cdef double[::1] ll = np.empty(th.shape[0])
    cdef double tt[GPD_TABLE]
    cdef double tx[GPD_TABLE]
    cdef double mom[4]
    cdef double ymax = np.max(yy), xi
    _gpd_moments(&yy[0], n, ymax, &tmp[0], mom)
    for i in range(ne):
        tt[i] = kk[i]
        _profile_ll(kk[i], &yy[0], n, 0.0, &tmp[0], &tx[i])
    for i in range(th.shape[0]):
        j = _table_upper(tt, ne, th[i])
        bound[i] = _gpd_bound(th[i], n, tt, tx, ne, j, ymax, mom)
        ll[i] = _profile_ll(th[i], &yy[0], n, 0.0, &tmp[0], &xi)
    return np.asarray(bound), np.asarray(ll)


def spot_fit(arr, double level, double xi_min):
    """Compiled twin of the SPOT re-fit: (t, rate, xi, sigma) of a window of values."""
    cdef double[::1] a = np.ascontiguousarray(arr, dtype=np.float64)
    cdef Py_ssize_t n = a.shape[0]
    cdef double[::1] scratch = np.empty(2 * n)
    cdef double[::1] tmp = np.empty(n)
    cdef double out[4]
    _spot_fit(&a[0], n, 1, level, xi_min, &scratch[0], &tmp[0], out, NULL)
    return out[0], out[1], out[2], out[3]


def quantiles_hinted(windows, double q):
    """The quantile of each window in turn through one kept bracket, as a statistic's re-fits take
    them (for the tests: each must be ``np.quantile``'s)."""
    cdef double hint[2]
    cdef double[::1] a
    cdef double[::1] scratch
    hint[0] = NAN
    hint[1] = NAN
    res = []
    for w in windows:
        a = np.ascontiguousarray(w, dtype=np.float64)
        scratch = np.empty(max(a.shape[0], 1))
        res.append(_quantile(&a[0], a.shape[0], q, &scratch[0], hint))
    return res


def bracket_filter(src, double lo, double hi):
    """``(below, kept)``: how many values of src lie below lo, and those neither below lo nor above hi
    (NaN too), in order: a re-fit's pass over its window for a quantile's bracket (for the tests, on
    every SIMD level)."""
    cdef const double[::1] a = np.ascontiguousarray(src, dtype=np.float64)
    cdef Py_ssize_t n = a.shape[0], below = 0, m = 0
    out = np.empty(max(n, 1))
    cdef double[::1] o = out
    if n:
        m = aiot_bracket(&a[0], &o[0], n, lo, hi, &below)
    return below, out[:m].copy()


def kth_between(src, Py_ssize_t k, double lo, double hi):
    """The k-th and (k + 1)-th smallest of src (finite, k + 1 < len(src)) through the bracket [lo, hi],
    or None when rank k does not lie in it: ``_kth_between`` (for the tests)."""
    cdef double[::1] a = np.array(src, dtype=np.float64)
    cdef Py_ssize_t n = a.shape[0]
    cdef double x, y
    if not 0 <= k < n - 1:
        raise ValueError("k + 1 must be below the number of values")
    scratch = np.empty(n)
    cdef double[::1] sc = scratch
    if not _kth_between(&a[0], &sc[0], n, k, lo, hi, &x, &y, NULL):
        return None
    return x, y


def min_max(src, Py_ssize_t stride=1):
    """``(lo, hi, copy)`` of the values src[::stride] (at least one) as a re-fit takes them: their min and
    max, and for stride > 1 the contiguous copy it makes (None for 1). For the tests, on every SIMD level."""
    cdef const double[::1] a = np.ascontiguousarray(src, dtype=np.float64)
    cdef Py_ssize_t n
    cdef double lo, hi
    if stride < 1 or a.shape[0] < 1:
        raise ValueError("at least one value and a stride >= 1")
    n = (a.shape[0] + stride - 1) // stride
    if stride == 1:
        aiot_minmax(&a[0], n, 1, NULL, &lo, &hi)
        return lo, hi, None
    out = np.empty(n)
    cdef double[::1] o = out
    aiot_minmax(&a[0], n, stride, &o[0], &lo, &hi)
    return lo, hi, out


def excess_filter(src, double t):
    """``v - t`` for the values ``v > t`` of src, in order: a re-fit's excesses (for the tests)."""
    cdef const double[::1] a = np.ascontiguousarray(src, dtype=np.float64)
    cdef Py_ssize_t n = a.shape[0], m = 0
    out = np.empty(max(n, 1))
    cdef double[::1] o = out
    if n:
        m = aiot_excess(&a[0], &o[0], n, t)
    return out[:m].copy()


# indices of Ensemble.ist (int64 scalar state shared with the Python objects)
cdef enum:
    I_ROWS = 0
    I_MV_COUNT = 1
    I_OPEN = 2
    I_RUN = 3
    I_K = 4
    I_NEV = 5
    I_REFRESH = 6
    I_REFRESHED_1 = 7
    I_OPEN_ROWS = 8


_WORK = threading.local()


def _work_buffers(Py_ssize_t window):
    """This thread's ``(scratch, tmp)`` for a spot window of ``window`` values, made on first use."""
    bufs = getattr(_WORK, "bufs", None)
    if bufs is None:
        bufs = _WORK.bufs = {}
    got = bufs.get(window)
    if got is None:
        got = bufs[window] = (np.empty(3 * window + 3), np.empty(window + 1))
    return got


cdef bint _arr(object a, int typenum, int ndim, Py_ssize_t n, bint write, void** data, Py_ssize_t* dims):
    """Whether ``a`` is a C-contiguous, native-order ndarray of this type and ``ndim`` (and of ``n`` rows
    unless ``n`` < 0; writeable if ``write``); its data and shape. The detector step's arrays are read
    through these rather than a memoryview each (16 of them a window: ~4 us), and so is :class:`Ensemble`'s
    state. (Equivalent types count as the type: int64 is C's long and long long here.)"""
    if type(a) is not np.ndarray:
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if not cnp.PyArray_EquivTypenums(cnp.PyArray_TYPE(arr), typenum) or cnp.PyArray_NDIM(arr) != ndim \
            or not cnp.PyArray_IS_C_CONTIGUOUS(arr) or not cnp.PyArray_ISNOTSWAPPED(arr) \
            or (write and not cnp.PyArray_ISWRITEABLE(arr)):
        return False
    cdef Py_ssize_t k
    for k in range(ndim):
        dims[k] = cnp.PyArray_DIMS(arr)[k]
    if n >= 0 and dims[0] != n:
        return False
    data[0] = cnp.PyArray_DATA(arr)
    return True


_TYPE_NAMES = {cnp.NPY_FLOAT64: "float64", cnp.NPY_INT64: "int64", cnp.NPY_UINT8: "uint8"}


cdef void* _bind(list keep, object a, int typenum, int ndim, Py_ssize_t* dims, str name,
                 Py_ssize_t rows=-1) except NULL:
    """The data of ``a``, writeable, of this type and ``ndim`` in C order (:func:`_arr`) and of ``rows``
    rows (unless -1), its shape in ``dims``; ``a`` goes to ``keep`` (unless None), whose owner then holds
    it. ``name``: the array's name in the error (empty: the kernel's own)."""
    cdef void* data = NULL
    if not _arr(a, typenum, ndim, rows, True, &data, dims):
        what = f"{type(a).__name__} {getattr(a, 'dtype', '')} {getattr(a, 'shape', '')}".strip()
        size = "" if rows < 0 else f" of length {rows}" if ndim == 1 else f" of {rows} rows"
        raise ValueError(f"{name or 'a work array'}: expected a writeable, C-contiguous {ndim}-d "
                         f"{_TYPE_NAMES.get(typenum, typenum)} ndarray{size}, got {what}")
    if keep is not None:
        keep.append(a)
    return data


cdef int _bank(list keep, bank, str name, Py_ssize_t cols, long long** pos, long long** fill, long long** since,
               double** t, double** rate, double** xi, double** sigma) except -1:
    """A ``SpotBank``'s per-column arrays, ``cols`` values each (its ring, ``buf``, is bound by the caller)."""
    cdef Py_ssize_t dims[2]
    pos[0] = <long long*>_bind(keep, bank.pos, cnp.NPY_INT64, 1, dims, name + " pos", cols)
    fill[0] = <long long*>_bind(keep, bank.fill, cnp.NPY_INT64, 1, dims, name + " fill", cols)
    since[0] = <long long*>_bind(keep, bank.since, cnp.NPY_INT64, 1, dims, name + " since", cols)
    t[0] = <double*>_bind(keep, bank.t, cnp.NPY_FLOAT64, 1, dims, name + " t", cols)
    rate[0] = <double*>_bind(keep, bank.rate, cnp.NPY_FLOAT64, 1, dims, name + " rate", cols)
    xi[0] = <double*>_bind(keep, bank.xi, cnp.NPY_FLOAT64, 1, dims, name + " xi", cols)
    sigma[0] = <double*>_bind(keep, bank.sigma, cnp.NPY_FLOAT64, 1, dims, name + " sigma", cols)
    return 0


cdef int _shape(str name, const Py_ssize_t* dims, Py_ssize_t rows, Py_ssize_t cols, bint at_least=False) \
        except -1:
    """A bound 2-d array is (rows, cols), or has ``cols`` columns at least (``at_least``)."""
    if dims[0] != rows or (dims[1] < cols if at_least else dims[1] != cols):
        raise ValueError(f"{name}: shape ({dims[0]}, {dims[1]}), expected ({rows}, {'>= ' if at_least else ''}{cols})")
    return 0


cdef struct _Io:
    # a block's rows (``rows`` x n) and the outputs of each row, as :meth:`Ensemble.run` takes them
    const double* x
    double* p
    unsigned char* alert
    double* z
    double* cp
    long long* lead
    Py_ssize_t rows


cdef void* _out(object a, int typenum, int ndim, Py_ssize_t rows, Py_ssize_t n, str name) except NULL:
    cdef Py_ssize_t dims[2]
    cdef void* data = _bind(None, a, typenum, ndim, dims, name)
    if dims[0] < rows or (ndim == 2 and dims[1] != n):
        raise ValueError(f"{name}: shape {a.shape}, too small for {rows} rows of {n} channels")
    return data


cdef int _bind_io(_Io* io, Py_ssize_t n, x, p_out, alert_out, z_out, cp_out, lead_out) except -1:
    """``io`` for rows ``x`` ((rows, n) float64, C order) and outputs of at least as many rows: ``p_out``
    float64, ``alert_out`` uint8, ``lead_out`` int64 (rows,); ``z_out``, ``cp_out`` float64 (rows, n)."""
    cdef Py_ssize_t dims[2]
    cdef void* data = NULL
    if not _arr(x, cnp.NPY_FLOAT64, 2, -1, False, &data, dims) or dims[1] != n:
        raise ValueError(f"x: expected a C-contiguous (rows, {n}) float64 ndarray, got "
                         f"{type(x).__name__} {getattr(x, 'dtype', '')} {getattr(x, 'shape', '')}")
    io.x = <const double*>data
    io.rows = dims[0]
    io.p = <double*>_out(p_out, cnp.NPY_FLOAT64, 1, io.rows, n, "p_out")
    io.alert = <unsigned char*>_out(alert_out, cnp.NPY_UINT8, 1, io.rows, n, "alert_out")
    io.z = <double*>_out(z_out, cnp.NPY_FLOAT64, 2, io.rows, n, "z_out")
    io.cp = <double*>_out(cp_out, cnp.NPY_FLOAT64, 2, io.rows, n, "cp_out")
    io.lead = <long long*>_out(lead_out, cnp.NPY_INT64, 1, io.rows, n, "lead_out")
    return 0


cdef class Ensemble:
    """The per-row update over the reference's state arrays (see module docstring).

    ``ist``: int64 scalars [rows, mv_count, alert open, hysteresis run, k, events in the last row,
    refresh due, one-channel refresh done in the kernel (reset by the caller), rows the alert has been open]; ``basis``/``inv_vals``/``q_expect`` are set by :meth:`set_basis` after each
    eigendecomposition.

    The state arrays are read and written through raw pointers into the arrays themselves, which the
    kernel holds (``_keep``, and a slot each for those it rebinds: the basis, its inverse values, the
    work buffers), so they stay alive and in place; each is checked once, when bound (:func:`_bind`: an
    ndarray of the type, the dimensions and C order a typed memoryview would require, writeable where
    the kernel writes). A typed memoryview per array cost 0.5 KB each (its slice in this object and a
    memoryview object), 31 KB of a one-channel detector's 184, and 1.4 us each to bind (90 us a new
    detector). A 2-d array's rows are ``*w`` values apart (its second dimension).
    """

    cdef public object ist_arr
    cdef long long* ist
    cdef tuple _keep  # every array bound once, below (the pointers point into them)
    cdef object basis_arr, inv_arr, scratch_arr, tmp_arr  # (the arrays bound again later)
    # config
    cdef Py_ssize_t n, warmup, accept, open_after, close_after, window, refit, init, refresh, tests
    cdef double alpha, lam, kappa, c, shift_k, risk, close_risk, level_q, xi_min, t2_ok, mv_alpha, shrink_min
    cdef bint use_ch, use_mv, use_t2, use_q, use_rank
    # baseline
    cdef long long* count
    cdef long long* shifted
    cdef double* level
    cdef double* var
    cdef double* fast
    # channel SPOT bank: cbuf (spot_window, cbw)
    cdef double* cbuf
    cdef Py_ssize_t cbw
    cdef long long* cpos
    cdef long long* cfill
    cdef long long* csince
    cdef double* ct
    cdef double* crate
    cdef double* cxi
    cdef double* csigma
    # T2 / Q SPOT bank (column 0: T2, 1: Q): mbuf (spot_window, mbw)
    cdef double* mbuf
    cdef Py_ssize_t mbw
    cdef long long* mpos
    cdef long long* mfill
    cdef long long* msince
    cdef double* mt
    cdef double* mrate
    cdef double* mxi
    cdef double* msigma
    # rank test (RankTest) and its SPOT (a one-column SpotBank): rwin and rwl (n, rw), rring (n, rrw),
    # rsrt (n, rsw)
    cdef Py_ssize_t rw, rmin, rrw, rsw
    cdef double* rwin
    cdef double* rring
    cdef double* rsrt
    cdef unsigned char* rwl
    cdef long long* rwpos
    cdef long long* rwfill
    cdef long long* rpos
    cdef long long* rfill
    cdef long long* rties
    cdef double* rshift
    cdef double* rs1
    cdef double* rs2
    cdef double* rlag
    # the kernel's cache of each channel's counts per test-window slot (not state: rebuilt when
    # stale): L = reference values below the slot's value, E = equal to it, M = test values equal to it
    # (itself included); kept while the reference and the window change by single values, so a row
    # costs O(w) compares and one search instead of a sort and w searches. Valid while rcvalid[j] and
    # the reference's (pos, fill) are still those the kernel left (a Python reset() makes them differ).
    # rcL, rcE, rcM: (max(n, 1), rw), one int64 array of three such blocks
    cdef long long* rcL
    cdef long long* rcE
    cdef long long* rcM
    cdef unsigned char* rcvalid
    cdef long long* rcpos
    cdef long long* rcfill
    # the rank test's SPOT: kbuf (spot_window, kbw)
    cdef double* kbuf
    cdef Py_ssize_t kbw
    cdef long long* kpos
    cdef long long* kfill
    cdef long long* ksince
    cdef double* kt
    cdef double* krate
    cdef double* kxi
    cdef double* ksigma
    # multivariate: cov (n, covw), basis (n, bw)
    cdef double* cov
    cdef double* basis
    cdef double* inv_vals
    cdef Py_ssize_t covw, bw
    cdef double q_expect, q_unit
    # scratch
    cdef double* scratch
    cdef double* tmp
    cdef double* ybuf
    cdef double* e
    cdef unsigned long owner  # the thread whose work buffers scratch and tmp are (see _own)
    # each SPOT's quantile bracket for its next fit (channels, T2, Q, rank; not state: NaN = none): (n + 3, 2)
    cdef double* qhint
    cdef public object ev_ch, ev_old, ev_new
    cdef long long* evc
    cdef double* evo
    cdef double* evn

    def __init__(self, cfg, int n_channels, double kappa, baseline, chan_bank, mv, mv_bank,
                 bint use_t2, bint use_q, int tests, rank=None, rank_bank=None):
        if cfg.refresh < 1 or cfg.spot_window < 1 or cfg.spot_refit < 1:
            raise ValueError("refresh, spot_window and spot_refit must be >= 1")
        cdef list keep = []
        cdef Py_ssize_t dims[2]
        cdef Py_ssize_t nn = max(n_channels, 1)
        self.n = n_channels
        self.warmup = cfg.warmup
        self.accept = cfg.accept
        self.open_after = cfg.open_after
        self.close_after = cfg.close_after
        self.window = cfg.spot_window
        self.refit = cfg.spot_refit
        self.init = cfg.spot_init
        self.refresh = cfg.refresh
        self.tests = tests
        self.alpha = baseline.alpha
        self.lam = baseline.lam
        self.kappa = kappa
        self.c = cfg.huber_c
        self.shift_k = cfg.shift_k
        self.risk = cfg.risk
        self.close_risk = cfg.close_risk
        self.level_q = cfg.spot_level
        self.xi_min = cfg.xi_min
        self.shrink_min = cfg.shrink_min
        self.ist_arr = np.zeros(9, np.int64)
        self.ist = <long long*>_bind(keep, self.ist_arr, cnp.NPY_INT64, 1, dims, "ist")
        self.count = <long long*>_bind(keep, baseline.count, cnp.NPY_INT64, 1, dims, "baseline.count", n_channels)
        self.shifted = <long long*>_bind(keep, baseline.shifted, cnp.NPY_INT64, 1, dims, "baseline.shifted", n_channels)
        self.level = <double*>_bind(keep, baseline.level, cnp.NPY_FLOAT64, 1, dims, "baseline.level", n_channels)
        self.var = <double*>_bind(keep, baseline.var, cnp.NPY_FLOAT64, 1, dims, "baseline.var", n_channels)
        self.fast = <double*>_bind(keep, baseline.fast, cnp.NPY_FLOAT64, 1, dims, "baseline.fast", n_channels)
        self.use_ch = chan_bank is not None
        if self.use_ch:
            self.cbuf = <double*>_bind(keep, chan_bank.buf, cnp.NPY_FLOAT64, 2, dims, "channel bank buf")
            self.cbw = dims[1]
            _shape("channel bank buf", dims, self.window, n_channels)
            _bank(keep, chan_bank, "channel bank", self.cbw, &self.cpos, &self.cfill, &self.csince, &self.ct,
                  &self.crate, &self.cxi, &self.csigma)
        self.use_mv = mv is not None
        self.use_t2 = use_t2
        self.use_q = use_q
        if self.use_mv:
            self.cov = <double*>_bind(keep, mv.cov, cnp.NPY_FLOAT64, 2, dims, "mv.cov")
            self.covw = dims[1]
            _shape("mv.cov", dims, n_channels, n_channels)
            self.t2_ok = mv.t2_ok
            self.mv_alpha = mv.alpha
            self.mbuf = <double*>_bind(keep, mv_bank.buf, cnp.NPY_FLOAT64, 2, dims, "mv bank buf")
            self.mbw = dims[1]
            _shape("mv bank buf", dims, self.window, 2 if use_q else 1, True)  # (Q's column read only for Q)
            _bank(keep, mv_bank, "mv bank", self.mbw, &self.mpos, &self.mfill, &self.msince, &self.mt,
                  &self.mrate, &self.mxi, &self.msigma)
            self.set_basis(mv.basis, mv.inv_vals, mv.k, mv.q_expect, mv.q_unit)
        self.use_rank = rank is not None
        if self.use_rank:
            self.rw = rank.w
            self.rmin = cfg.warmup if cfg.warmup > 1 else 1
            self.rwin = <double*>_bind(keep, rank.win, cnp.NPY_FLOAT64, 2, dims, "rank.win")
            _shape("rank.win", dims, n_channels, self.rw)
            self.rwl = <unsigned char*>_bind(keep, rank.win_learn, cnp.NPY_UINT8, 2, dims, "rank.win_learn")
            _shape("rank.win_learn", dims, n_channels, self.rw)
            self.rwpos = <long long*>_bind(keep, rank.win_pos, cnp.NPY_INT64, 1, dims, "rank.win_pos", n_channels)
            self.rwfill = <long long*>_bind(keep, rank.win_fill, cnp.NPY_INT64, 1, dims, "rank.win_fill", n_channels)
            self.rring = <double*>_bind(keep, rank.ring, cnp.NPY_FLOAT64, 2, dims, "rank.ring")
            self.rrw = dims[1]
            _shape("rank.ring", dims, n_channels, self.window)
            self.rpos = <long long*>_bind(keep, rank.pos, cnp.NPY_INT64, 1, dims, "rank.pos", n_channels)
            self.rfill = <long long*>_bind(keep, rank.fill, cnp.NPY_INT64, 1, dims, "rank.fill", n_channels)
            self.rsrt = <double*>_bind(keep, rank.srt, cnp.NPY_FLOAT64, 2, dims, "rank.srt")
            self.rsw = dims[1]
            _shape("rank.srt", dims, n_channels, self.window)
            self.rties = <long long*>_bind(keep, rank.ties, cnp.NPY_INT64, 1, dims, "rank.ties", n_channels)
            self.rshift = <double*>_bind(keep, rank.shift, cnp.NPY_FLOAT64, 1, dims, "rank.shift", n_channels)
            self.rs1 = <double*>_bind(keep, rank.s1, cnp.NPY_FLOAT64, 1, dims, "rank.s1", n_channels)
            self.rs2 = <double*>_bind(keep, rank.s2, cnp.NPY_FLOAT64, 1, dims, "rank.s2", n_channels)
            self.rlag = <double*>_bind(keep, rank.lag, cnp.NPY_FLOAT64, 1, dims, "rank.lag", n_channels)
            self.rcL = <long long*>_bind(keep, np.zeros((3 * nn, self.rw), np.int64), cnp.NPY_INT64, 2, dims, "")
            self.rcE = self.rcL + nn * self.rw
            self.rcM = self.rcE + nn * self.rw
            self.rcvalid = <unsigned char*>_bind(keep, np.zeros(nn, np.uint8), cnp.NPY_UINT8, 1, dims, "")
            self.rcpos = <long long*>_bind(keep, np.zeros(nn, np.int64), cnp.NPY_INT64, 1, dims, "")
            self.rcfill = <long long*>_bind(keep, np.zeros(nn, np.int64), cnp.NPY_INT64, 1, dims, "")
            self.kbuf = <double*>_bind(keep, rank_bank.buf, cnp.NPY_FLOAT64, 2, dims, "rank bank buf")
            self.kbw = dims[1]
            _shape("rank bank buf", dims, self.window, 1)  # (one column: _fit_rank copies it as one run)
            _bank(keep, rank_bank, "rank bank", self.kbw, &self.kpos, &self.kfill, &self.ksince, &self.kt,
                  &self.krate, &self.kxi, &self.ksigma)
        self.owner = 0
        self._own()
        self.qhint = <double*>_bind(keep, np.full((self.n + 3, 2), np.nan), cnp.NPY_FLOAT64, 2, dims, "")
        self.ybuf = <double*>_bind(keep, np.empty(nn), cnp.NPY_FLOAT64, 1, dims, "")
        self.e = <double*>_bind(keep, np.empty(nn), cnp.NPY_FLOAT64, 1, dims, "")
        self.ev_ch = np.zeros(nn, np.int64)
        self.ev_old = np.zeros(nn)
        self.ev_new = np.zeros(nn)
        self.evc = <long long*>_bind(keep, self.ev_ch, cnp.NPY_INT64, 1, dims, "")
        self.evo = <double*>_bind(keep, self.ev_old, cnp.NPY_FLOAT64, 1, dims, "")
        self.evn = <double*>_bind(keep, self.ev_new, cnp.NPY_FLOAT64, 1, dims, "")
        self._keep = tuple(keep)

    cdef inline void _own(self):
        """Work buffers of this thread: a fit writes ``scratch`` and ``tmp`` before it reads them and keeps
        nothing there, so every detector of a thread shares one pair (3 ``spot_window`` + 4 doubles: 115
        KB at the default 3,600, which each detector held on its own). Checked at every entry point, so a
        detector used from another thread takes that thread's pair."""
        cdef unsigned long me = PyThread_get_thread_ident()
        if me != self.owner:
            self.scratch_arr, self.tmp_arr = _work_buffers(self.window)
            self.scratch = <double*>cnp.PyArray_DATA(<cnp.ndarray>self.scratch_arr)
            self.tmp = <double*>cnp.PyArray_DATA(<cnp.ndarray>self.tmp_arr)
            self.owner = me

    def set_basis(self, basis, inv_vals, int k, double q_expect, double q_unit=0.0):
        cdef Py_ssize_t dims[2]
        b = np.ascontiguousarray(basis, dtype=np.float64)
        if b.ndim != 2 or b.shape[0] != self.n:
            raise ValueError(f"basis: shape {b.shape}, expected ({self.n}, k)")
        if b.shape[1] == 0:
            b = np.zeros((b.shape[0], 1))
        iv = np.ascontiguousarray(inv_vals, dtype=np.float64)
        if iv.ndim != 1:
            raise ValueError(f"inv_vals: shape {iv.shape}, expected (k,)")
        if not 0 <= k <= min(b.shape[1], iv.shape[0]):
            raise ValueError(f"k = {k} for a basis of {b.shape[1]} columns and {iv.shape[0]} inverse values")
        if not iv.shape[0]:
            iv = np.zeros(1)
        self.basis = <double*>_bind(None, b, cnp.NPY_FLOAT64, 2, dims, "basis")
        self.bw = dims[1]
        self.basis_arr = b
        self.inv_vals = <double*>_bind(None, iv, cnp.NPY_FLOAT64, 1, dims, "inv_vals")
        self.inv_arr = iv
        self.ist[I_K] = k
        self.q_expect = q_expect
        self.q_unit = q_unit

    cdef void _fit_chan(self, Py_ssize_t i) noexcept nogil:
        cdef double out[4]
        _spot_fit(self.cbuf + i, self.cfill[i], self.cbw, self.level_q, self.xi_min, self.scratch, self.tmp,
                  out, self.qhint + 2 * i)
        self.ct[i] = out[0]
        self.crate[i] = out[1]
        self.cxi[i] = out[2]
        self.csigma[i] = out[3]
        self.csince[i] = 0

    cdef void _fit_mv(self, Py_ssize_t i) noexcept nogil:
        # the reference keeps a deque: fit the ring buffer in chronological order
        cdef double out[4]
        cdef Py_ssize_t j, m = 0, fill = self.mfill[i], pos = self.mpos[i]
        cdef double* lin = self.tmp
        if fill == self.window:
            for j in range(pos, self.window):
                lin[m] = self.mbuf[j * self.mbw + i]
                m += 1
            for j in range(0, pos):
                lin[m] = self.mbuf[j * self.mbw + i]
                m += 1
        else:
            for j in range(fill):
                lin[m] = self.mbuf[j * self.mbw + i]
                m += 1
        # _spot_fit needs 2 m scratch doubles and m more for its tmp
        _spot_fit(lin, m, 1, self.level_q, self.xi_min, self.scratch, self.scratch + 2 * m, out,
                  self.qhint + 2 * (self.n + i))
        self.mt[i] = out[0]
        self.mrate[i] = out[1]
        self.mxi[i] = out[2]
        self.msigma[i] = out[3]
        self.msince[i] = 0

    cdef double _spot_mv(self, Py_ssize_t i, double x, bint learn) noexcept nogil:
        cdef double p
        if not isfinite(x):
            x = 0.0
        p = _tail(x, self.mt[i], self.mrate[i], self.mxi[i], self.msigma[i])
        if learn and p >= self.risk:
            self.mbuf[self.mpos[i] * self.mbw + i] = x
            self.mpos[i] = self.mpos[i] + 1 if self.mpos[i] + 1 < self.window else 0
            if self.mfill[i] < self.window:
                self.mfill[i] += 1
            self.msince[i] += 1
            if self.mt[i] < INFINITY:
                if self.msince[i] >= self.refit:
                    self._fit_mv(i)
            elif self.mfill[i] >= self.init:
                self._fit_mv(i)
        return p

    cdef void _fit_rank(self) noexcept nogil:
        # the reference keeps a deque (SpotCalibrator): fit the ring in chronological order
        cdef double out[4]
        cdef Py_ssize_t m, fill = self.kfill[0], pos = self.kpos[0]
        cdef double* lin = self.tmp
        # (the ring is one column: its two chronological parts are contiguous)
        if fill == self.window:
            m = self.window - pos
            memcpy(lin, self.kbuf + pos, m * sizeof(double))
            memcpy(lin + m, self.kbuf, pos * sizeof(double))
            m = self.window
        else:
            m = fill
            memcpy(lin, self.kbuf, m * sizeof(double))
        _spot_fit(lin, m, 1, self.level_q, self.xi_min, self.scratch, self.scratch + 2 * m, out,
                  self.qhint + 2 * (self.n + 2))
        self.kt[0] = out[0]
        self.krate[0] = out[1]
        self.kxi[0] = out[2]
        self.ksigma[0] = out[3]
        self.ksince[0] = 0

    cdef double _spot_rank(self, double x, bint learn) noexcept nogil:
        cdef double p
        if not isfinite(x):
            x = 0.0
        p = _tail(x, self.kt[0], self.krate[0], self.kxi[0], self.ksigma[0])
        if learn and p >= self.risk:
            self.kbuf[self.kpos[0]] = x
            self.kpos[0] = self.kpos[0] + 1 if self.kpos[0] + 1 < self.window else 0
            if self.kfill[0] < self.window:
                self.kfill[0] += 1
            self.ksince[0] += 1
            if self.kt[0] < INFINITY:
                if self.ksince[0] >= self.refit:
                    self._fit_rank()
            elif self.kfill[0] >= self.init:
                self._fit_rank()
        return p

    cdef void _rank_reset(self, Py_ssize_t j) noexcept nogil:
        """``RankTest.reset``"""
        self.rcvalid[j] = 0
        self.rpos[j] = 0
        self.rfill[j] = 0
        self.rties[j] = 0
        self.rshift[j] = 0.0
        self.rs1[j] = 0.0
        self.rs2[j] = 0.0
        self.rlag[j] = 0.0

    cdef void _rank_learn(self, Py_ssize_t j, double v, Py_ssize_t skip, bint slot, double nv) noexcept nogil:
        """``RankTest._learn``: v joins channel j's reference (the oldest leaves a full ring). A valid
        count cache follows, except test slot ``skip`` (v's own slot, about to take a new value); with
        ``slot``, that slot's counts for its new value nv too (searched with v's and the oldest's)."""
        cdef Py_ssize_t size = self.window, f = self.rfill[j], p = self.rpos[j], lo, hi, c, ro, i, nl, ne
        cdef double* srt = self.rsrt + j * self.rsw
        cdef double sh, y, old, yo, t, prev, tv, old0
        cdef bint full = f == size
        cdef long long* cl
        cdef long long* ce
        cdef Py_ssize_t idx[3]
        cdef double* ring = self.rring + j * self.rrw
        old0 = ring[p] if full else v
        if slot:
            # v is test slot skip's value: the cache (valid with slot) holds its counts in the reference
            # before this change (lower and equal), so only the oldest and nv are searched
            lo = self.rcL[j * self.rw + skip]
            hi = lo + self.rcE[j * self.rw + skip]
            _lower3(srt, f, old0, old0, nv, idx)  # (idx[1]: the oldest's, idx[2]: nv's; idx[0] a repeat)
        else:
            _lower3(srt, f, v, old0, old0, idx)  # (the third a repeat of the oldest's)
            lo = idx[0]
            hi = lo + _equal_from(srt, f, lo, v)
        if self.rcvalid[j]:
            cl = self.rcL + j * self.rw
            ce = self.rcE + j * self.rw
            if full:
                for i in range(self.rw):
                    if i != skip:
                        tv = self.rwin[j * self.rw + i]
                        cl[i] += (v < tv) - (old0 < tv)
                        ce[i] += (v == tv) - (old0 == tv)
            else:
                for i in range(self.rw):
                    if i != skip:
                        tv = self.rwin[j * self.rw + i]
                        cl[i] += v < tv
                        ce[i] += v == tv
        if f == 0:
            self.rshift[j] = v
        sh = self.rshift[j]
        y = v - sh
        nl = idx[2]
        ne = _equal_from(srt, f, nl, nv) if slot else 0
        if full:
            old = old0
            yo = old - sh
            self.rs1[j] -= yo
            self.rs2[j] -= yo * yo
            if size > 1:
                self.rlag[j] -= yo * (ring[p + 1 if p + 1 < size else 0] - sh)
            ro = idx[1]
            c = _equal_from(srt, f, ro, old)
            self.rties[j] -= 3 * c * c - 3 * c
            # remove srt[ro] and insert v with one move of the values between the two places
            c = hi - lo
            if old == v:
                c -= 1
            if hi > ro:
                memmove(srt + ro, srt + ro + 1, (hi - 1 - ro) * sizeof(double))
                srt[hi - 1] = v
            else:
                memmove(srt + hi + 1, srt + hi, (ro - hi) * sizeof(double))
                srt[hi] = v
            self.rties[j] += 3 * c * c + 3 * c
            f -= 1
        else:
            c = hi - lo
            self.rties[j] += 3 * c * c + 3 * c
            memmove(srt + hi + 1, srt + hi, (f - hi) * sizeof(double))
            srt[hi] = v
        if f > 0 and size > 1:
            self.rlag[j] += (ring[p - 1 if p > 0 else size - 1] - sh) * y
        self.rs1[j] += y
        self.rs2[j] += y * y
        ring[p] = v
        self.rpos[j] = p + 1 if p + 1 < size else 0
        if self.rfill[j] < size:
            self.rfill[j] += 1
        if slot:  # nv's counts in the reference after the change (searched before it)
            self.rcL[j * self.rw + skip] = nl + (v < nv) - (full and old0 < nv)
            self.rcE[j * self.rw + skip] = ne + (v == nv) - (full and old0 == nv)
        self.rcpos[j] = self.rpos[j]
        self.rcfill[j] = self.rfill[j]
        if self.rfill[j] == size and self.rpos[j] == 0:  # RankTest._resum
            t = 0.0
            for c in range(size):
                t += ring[c]
            sh = t / size
            t = 0.0
            y = 0.0
            yo = 0.0
            prev = 0.0
            for c in range(size):
                old = ring[c] - sh
                t += old
                y += old * old
                if c:
                    yo += prev * old
                prev = old
            self.rshift[j] = sh
            self.rs1[j] = t
            self.rs2[j] = y
            self.rlag[j] = yo

    cdef void _rank_recount(self, Py_ssize_t j) noexcept nogil:
        """Channel j's count cache from scratch (its test window is full)."""
        cdef Py_ssize_t w = self.rw, f = self.rfill[j], i, k, lo
        cdef const double* srt = self.rsrt + j * self.rsw
        cdef double v
        cdef long long m
        for i in range(w):
            v = self.rwin[j * self.rw + i]
            lo = _lower(srt, f, v)
            self.rcL[j * self.rw + i] = lo
            self.rcE[j * self.rw + i] = _equal_from(srt, f, lo, v)
            m = 0
            for k in range(w):
                m += self.rwin[j * self.rw + k] == v
            self.rcM[j * self.rw + i] = m
        self.rcpos[j] = self.rpos[j]
        self.rcfill[j] = f
        self.rcvalid[j] = 1

    cdef void _rank_slot(self, Py_ssize_t j, Py_ssize_t k, double out, double v, bint search) noexcept nogil:
        """A valid count cache follows test slot k's value out -> v (after the reference's change; its
        reference counts searched here with ``search``, else by _rank_learn)."""
        cdef Py_ssize_t w = self.rw, f = self.rfill[j], i, lo
        cdef long long m = 1
        cdef long long* cmm = self.rcM + j * self.rw
        cdef double tv
        cdef const double* srt = self.rsrt + j * self.rsw
        for i in range(w):
            if i != k:
                tv = self.rwin[j * self.rw + i]
                cmm[i] -= tv == out
                if tv == v:
                    cmm[i] += 1
                    m += 1
        cmm[k] = m
        if not search:
            return
        lo = _lower(srt, f, v)
        self.rcL[j * self.rw + k] = lo
        self.rcE[j * self.rw + k] = _equal_from(srt, f, lo, v)

    cdef double _rank_z(self, Py_ssize_t j) noexcept nogil:
        """``RankTest._z``: channel j's Mann-Whitney z, its test window against its reference."""
        cdef Py_ssize_t w = self.rw, f = self.rfill[j], size = self.window, i, k
        cdef double var, r, s1, s2, mm, den, first, last, acc, rk, infl
        cdef long long two_u = 0, ties = self.rties[j], c, m, big_n
        cdef long long* cl
        cdef long long* ce
        cdef long long* cmm
        if not self.rcvalid[j] or self.rcpos[j] != self.rpos[j] or self.rcfill[j] != f:
            self._rank_recount(j)
        cl = self.rcL + j * self.rw
        ce = self.rcE + j * self.rw
        cmm = self.rcM + j * self.rw
        for i in range(w):
            # a group of m equal test values with c equal reference values adds m (2 lo + c) to 2U and
            # (c + m)^3 - (c + m) - (c^3 - c) = m (3c^2 + 3cm + m^2 - 1) to the ties: per slot, 1/m of it
            c = ce[i]
            m = cmm[i]
            two_u += 2 * cl[i] + c
            ties += 3 * c * c + 3 * c * m + m * m - 1
        big_n = w + f
        var = (<double>(w * f)) / 12.0 * (<double>(big_n + 1) - (<double>ties) / (<double>(big_n * (big_n - 1))))
        if not var > 0.0:
            return 0.0
        r = 0.0  # RankTest.autocorrelation
        if f >= 2:
            s1 = self.rs1[j]
            s2 = self.rs2[j]
            mm = s1 / f
            den = s2 - s1 * mm
            if den > 1e-9 * s2:
                first = self.rring[j * self.rrw + (self.rpos[j] if f == size else 0)] - self.rshift[j]
                last = self.rring[j * self.rrw + (self.rpos[j] - 1 if self.rpos[j] > 0 else size - 1)] - self.rshift[j]
                r = (self.rlag[j] - mm * (2.0 * s1 - first - last) + (<double>(f - 1)) * mm * mm) / den
                if r < 0.0:
                    r = 0.0
                if r > 1.0:
                    r = 1.0
        acc = 0.0
        rk = 1.0
        for k in range(1, w):
            rk *= r
            acc += (1.0 - (<double>k) / (<double>w)) * rk
        infl = 1.0 + 2.0 * acc
        return (0.5 * (<double>two_u) - 0.5 * (<double>(w * f))) / sqrt(var * infl)

    cdef void _refresh_1(self, long long cnt) noexcept nogil:
        """``MultivariateDetector._refresh`` for one channel, operation for operation (LAPACK's
        eigendecomposition of a 1 x 1 matrix is the matrix itself with eigenvector 1.0)."""
        cdef double n_eff, lam, c, s, tr
        n_eff = 1.0 / self.mv_alpha
        if <double>cnt < n_eff:  # Python's min(count, 1 / alpha)
            n_eff = <double>cnt
        lam = 1.0 / (n_eff + 1)
        if self.shrink_min >= lam:  # Python's max(shrink_min, ...) keeps the first of equals
            lam = self.shrink_min
        c = self.cov[0]
        s = (1.0 - lam) * c + lam * c
        tr = s
        self.ist[I_REFRESHED_1] = 1
        if not tr > 0.0:
            self.ist[I_K] = 0
            return
        s = s + (1e-9 * tr / 1) * 1.0
        self.basis[0] = 1.0
        self.inv_vals[0] = 1.0 / s
        self.q_expect = 1.0
        self.ist[I_K] = 1
        self.ist[I_REFRESHED_1] = 1

    def basis_state(self):
        """(basis, inv_vals, k, q_expect) as the kernel holds them (one channel refreshes in the kernel)."""
        cdef Py_ssize_t k = self.ist[I_K]
        return (self.basis_arr[:, :k].copy(), self.inv_arr[:k].copy(), int(k),
                float(self.q_expect))

    def run(self, x, Py_ssize_t start, p_out, alert_out, z_out, cp_out, lead_out):
        """Rows start.. of x; returns the index after the last row processed. It stops after a row that
        is due a PCA refresh (ist[I_REFRESH] = 1) or that emitted change events (ist[I_NEV] > 0).
        lead_out: the channel whose rank test gave the row's smallest p, else -1 (every row processed
        gets its entry of every output)."""
        cdef _Io io
        _bind_io(&io, self.n, x, p_out, alert_out, z_out, cp_out, lead_out)
        if not 0 <= start <= io.rows:
            raise ValueError(f"start {start} is not within the {io.rows} rows")
        self._own()
        return self._run(&io, start)

    def run_block(self, x, p_out, alert_out, z_out, cp_out, lead_out, det, event):
        """``StreamingDetector._run_compiled``: every row of x, the scalars of ``det`` (the detector: its
        baseline, hyst and mv) in and out, the PCA refreshes (``det.mv._refresh()`` as
        :func:`pca_refresh` does it, then :meth:`set_basis`) and the change events (``event(row, channel, old, new)``, in order) between
        the kernel's runs; returns the events. The same steps as that Python loop, with the outputs'
        buffers taken once per block instead of once per run."""
        cdef long long* ist = self.ist
        cdef _Io io
        _bind_io(&io, self.n, x, p_out, alert_out, z_out, cp_out, lead_out)
        cdef Py_ssize_t i = 0, j, rows = io.rows
        self._own()
        b = det.baseline
        h = det.hyst
        mv = det.mv
        ist[I_ROWS] = b.rows
        ist[I_MV_COUNT] = mv.count if mv is not None else 0
        ist[I_OPEN] = 1 if h.is_open else 0
        ist[I_RUN] = h.run
        ist[I_K] = mv.k if mv is not None else 0
        ist[I_OPEN_ROWS] = h.open_rows
        events = []
        while i < rows:
            i = self._run(&io, i)
            if ist[I_NEV]:  # change events of row i - 1
                for j in range(ist[I_NEV]):
                    events.append(event(ist[I_ROWS] - 1, self.evc[j], self.evo[j], self.evn[j]))
            if mv is not None and ist[I_REFRESH]:  # PCA refresh due after row i - 1: numpy/LAPACK
                mv.count = ist[I_MV_COUNT]
                pca_refresh(mv)  # mv._refresh(), bit for bit
                self.set_basis(mv.basis, mv.inv_vals, mv.k, mv.q_expect, mv.q_unit)
        b.rows = ist[I_ROWS]
        h.is_open = ist[I_OPEN] != 0
        h.run = ist[I_RUN]
        h.open_rows = ist[I_OPEN_ROWS]
        if mv is not None:
            mv.count = ist[I_MV_COUNT]
            if ist[I_REFRESHED_1]:  # one channel: the kernel refreshed the 1 x 1 "PCA" itself
                mv.basis, mv.inv_vals, mv.k, mv.q_expect = self.basis_state()
                ist[I_REFRESHED_1] = 0
        return events

    cdef Py_ssize_t _run(self, const _Io* io, Py_ssize_t start) noexcept:
        cdef Py_ssize_t r, j, m, n = self.n, rows = io.rows, k, nev, jm
        cdef const double* x = io.x
        cdef double* p_out = io.p
        cdef unsigned char* alert_out = io.alert
        cdef double* z_out = io.z
        cdef double* cp_out = io.cp
        cdef long long* lead_out = io.lead
        cdef long long cnt
        cdef double v, d, s, lv, xl, lo, hi, fz, zl, az, w_loc, rho, a_s, p_min, p, a, sp, g
        cdef double t2, q, t2_full, ee, yy, mm, w, aw, zr, zm
        cdef bint any_ok, any_live, learn, cal, alarm, quiet
        cdef double c = self.c, c4 = self.c ** 4
        cdef long long* ist = self.ist
        cdef double* e = self.e
        cdef double* ybuf = self.ybuf
        cdef Py_ssize_t done = rows
        ist[I_NEV] = 0
        ist[I_REFRESH] = 0
        with nogil:
            for r in range(start, rows):
                # ---- RobustBaseline.update
                ist[I_ROWS] += 1
                nev = 0
                any_ok = False
                for j in range(n):
                    z_out[r * n + j] = 0.0
                    v = x[r * n + j]
                    if isfinite(v) and fabs(v) <= MAX_ABS:
                        any_ok = True
                if any_ok:
                    any_live = False
                    for j in range(n):
                        v = x[r * n + j]
                        if not (isfinite(v) and fabs(v) <= MAX_ABS):
                            continue
                        if self.count[j] < self.warmup:
                            self.count[j] += 1
                            d = v - self.level[j]
                            self.level[j] += d / self.count[j]
                            self.var[j] += d * (v - self.level[j])
                            if self.count[j] == self.warmup:
                                self.var[j] /= (self.warmup - 1 if self.warmup - 1 > 1 else 1)
                                self.fast[j] = self.level[j]
                            continue
                        any_live = True
                        self.count[j] += 1
                        lv = self.level[j]
                        s = sqrt(self.var[j])
                        g = 1e-9 * (1.0 + fabs(lv))
                        if g > s:
                            s = g
                        lo = lv - Z_CLIP * s
                        hi = lv + Z_CLIP * s
                        xl = v
                        if xl < lo:
                            xl = lo
                        if xl > hi:
                            xl = hi
                        fz = self.fast[j] + self.lam * (xl - self.fast[j])
                        self.fast[j] = fz
                        d = fz - lv
                        zl = d / s
                        if zl < -Z_CLIP:
                            zl = -Z_CLIP
                        if zl > Z_CLIP:
                            zl = Z_CLIP
                        z_out[r * n + j] = zl
                        az = fabs(zl)
                        if az > c:
                            g = c / (az if az > c else c)
                            w_loc = g * g
                            g = az if az > c else c
                            rho = c4 / (g * g)
                        else:
                            w_loc = 1.0
                            rho = zl * zl
                        self.level[j] = lv + self.alpha * w_loc * d
                        a_s = 1.0 / ((self.count[j] - self.warmup) + 1.0)
                        if self.alpha > a_s:
                            a_s = self.alpha
                        self.var[j] += a_s * (rho * s * s / self.kappa - self.var[j])
                        if az > self.shift_k:
                            self.shifted[j] += 1
                        else:
                            self.shifted[j] = 0
                    if any_live:
                        for j in range(n):
                            if self.shifted[j] >= self.accept:
                                self.evc[nev] = j
                                self.evo[nev] = self.level[j]
                                self.evn[nev] = self.fast[j]
                                nev += 1
                                self.level[j] = self.fast[j]
                                self.shifted[j] = 0
                                if self.use_rank:  # its rank reference starts again too
                                    self._rank_reset(j)
                # ---- StreamingDetector.update
                learn = ist[I_OPEN] == 0
                p_min = 1.0
                if self.use_ch:
                    for j in range(n):
                        a = fabs(z_out[r * n + j])
                        g = erfc(a / SQRT2)
                        p = _tail(a, self.ct[j], self.crate[j], self.cxi[j], self.csigma[j])
                        if learn and p >= self.risk:
                            self.cbuf[self.cpos[j] * self.cbw + j] = a
                            self.cpos[j] = self.cpos[j] + 1 if self.cpos[j] + 1 < self.window else 0
                            if self.cfill[j] < self.window:
                                self.cfill[j] += 1
                            self.csince[j] += 1
                            if self.ct[j] < INFINITY:
                                if self.csince[j] >= self.refit:
                                    self._fit_chan(j)
                            elif self.cfill[j] >= self.init:
                                self._fit_chan(j)
                        if g > p:
                            p = g
                        cp_out[r * n + j] = p
                        if p < p_min:
                            p_min = p
                else:
                    for j in range(n):
                        cp_out[r * n + j] = 1.0
                if self.use_mv:
                    # ---- MultivariateDetector.update
                    ist[I_MV_COUNT] += 1
                    cnt = ist[I_MV_COUNT]
                    for j in range(n):
                        e[j] = z_out[r * n + j]
                    t2 = 0.0
                    q = 0.0
                    w = 1.0
                    k = ist[I_K]
                    if cnt > self.warmup and k > 0:
                        t2_full = 0.0
                        yy = 0.0
                        ee = 0.0
                        for m in range(k):
                            v = 0.0
                            for j in range(n):
                                v += self.basis[j * self.bw + m] * e[j]
                            ybuf[m] = v
                            t2_full += v * (v * self.inv_vals[m])
                            yy += v * v
                        for j in range(n):
                            ee += e[j] * e[j]
                        q = ee - yy
                        if q < 0.0:
                            q = 0.0
                        t2 = t2_full / k
                        q = q / self.q_expect
                        mm = t2_full + q * self.q_expect
                        if mm > self.t2_ok:
                            g = self.t2_ok / mm
                            w = g * g
                    if cnt > self.warmup:
                        aw = self.mv_alpha * w
                    else:
                        aw = (1.0 / cnt) * w
                    for j in range(n):
                        for m in range(n):
                            self.cov[j * self.covw + m] += aw * (e[j] * e[m] - self.cov[j * self.covw + m])
                    if cnt >= self.warmup and (cnt - self.warmup) % self.refresh == 0:
                        if n == 1:
                            self._refresh_1(cnt)  # no LAPACK needed: stay in the kernel
                        else:
                            ist[I_REFRESH] = 1
                    if t2 > 1e12:
                        t2 = 1e12
                    if q > 1e12:
                        q = 1e12
                    if self.use_t2:
                        p = self._spot_mv(0, t2, learn)
                        if k > 0:  # the chi-squared floor (k: the subspace t2 was computed in)
                            g = _chi2_sf(t2 * k, k)
                            if g > p:
                                p = g
                        if p < p_min:
                            p_min = p
                    if self.use_q:
                        p = self._spot_mv(1, q, learn)
                        if k > 0 and self.q_unit > 0.0:  # Q's floor (MultivariateDetector.q_unit)
                            g = _chi2_sf(q * self.q_unit, n - k)
                            if g > p:
                                p = g
                        if p < p_min:
                            p_min = p
                lead_out[r] = -1
                if self.use_rank:
                    # ---- RankTest.update and its one test (the largest |z|)
                    zm = 0.0
                    jm = 0
                    for j in range(n):
                        v = x[r * n + j]
                        zr = 0.0
                        if isfinite(v) and fabs(v) <= MAX_ABS:
                            k = self.rwpos[j]
                            if self.rcvalid[j] and (self.rcpos[j] != self.rpos[j] or self.rcfill[j] != self.rfill[j]):
                                self.rcvalid[j] = 0  # the reference changed outside the kernel
                            if self.rwfill[j] == self.rw:
                                if self.rwl[j * self.rw + k]:
                                    if self.rcvalid[j]:
                                        self._rank_slot(j, k, self.rwin[j * self.rw + k], v, False)
                                        self._rank_learn(j, self.rwin[j * self.rw + k], k, True, v)
                                    else:
                                        self._rank_learn(j, self.rwin[j * self.rw + k], k, False, 0.0)
                                elif self.rcvalid[j]:
                                    self._rank_slot(j, k, self.rwin[j * self.rw + k], v, True)
                            else:
                                self.rwfill[j] += 1
                                self.rcvalid[j] = 0
                            self.rwin[j * self.rw + k] = v
                            self.rwl[j * self.rw + k] = learn or ist[I_OPEN_ROWS] >= self.accept
                            self.rwpos[j] = k + 1 if k + 1 < self.rw else 0
                            if self.rwfill[j] == self.rw and self.rfill[j] >= self.rmin:
                                zr = fabs(self._rank_z(j))
                        if zr > zm:
                            zm = zr
                            jm = j
                    p = self._spot_rank(zm, learn)
                    g = n * erfc(zm / SQRT2)
                    if g > 1.0:
                        g = 1.0
                    if g > p:
                        p = g
                    if p < p_min:
                        lead_out[r] = jm
                        if p < cp_out[r * n + jm]:
                            cp_out[r * n + jm] = p
                        p_min = p
                p = self.tests * p_min
                if p > 1.0:
                    p = 1.0
                p_out[r] = p
                # ---- Hysteresis.update
                alarm = p < self.risk
                quiet = p >= self.close_risk
                if ist[I_OPEN]:
                    ist[I_RUN] = ist[I_RUN] + 1 if quiet else 0
                    if ist[I_RUN] >= self.close_after:
                        ist[I_OPEN] = 0
                        ist[I_RUN] = 0
                else:
                    ist[I_RUN] = ist[I_RUN] + 1 if alarm else 0
                    if ist[I_RUN] >= self.open_after:
                        ist[I_OPEN] = 1
                        ist[I_RUN] = 0
                ist[I_OPEN_ROWS] = ist[I_OPEN_ROWS] + 1 if ist[I_OPEN] else 0
                alert_out[r] = <unsigned char>ist[I_OPEN]
                if nev or ist[I_REFRESH]:
                    ist[I_NEV] = nev
                    done = r + 1
                    break
        return done



try:  # the gufunc behind np.linalg.eigh(a) (UPLO "L"), called by pca_refresh directly
    from numpy.linalg._umath_linalg import eigh_lo as _EIGH_LO
except ImportError:  # pragma: no cover - a numpy without it: np.linalg.eigh itself
    _EIGH_LO = None


cdef inline bint _np_lt(double a, double b) noexcept nogil:
    """numpy's float order for searchsorted: NaN after everything."""
    return a < b or (b != b and a == a)


def pca_refresh(mv):
    """``MultivariateDetector._refresh`` of ``mv`` (two or more channels; one goes to the numpy code),
    its attributes set as that method sets them, with the same numpy eigendecomposition
    (``np.linalg.eigh`` of the same matrix) and the same arithmetic around it in compiled code: the
    shrunk matrix elementwise as numpy's ufuncs compute it, the trace and the sums as numpy's pairwise
    reductions (from 0.0), the cumulative sum in order, the share's binary search as numpy's
    searchsorted; Python's min/max as they pick. Bit for bit the reference (tested)."""
    cdef Py_ssize_t p = mv.p, i, j, k, lo_i, hi_i, mid
    cdef double alpha = mv.alpha, inv_a, n_eff, lam, shrink_min, tr, c, t1, t2, total, explained, q, lv
    cdef long long count
    cdef const double[:, ::1] cov
    cdef double[:, ::1] s
    cdef const double[::1] vals
    cdef const double[:, :] vecs
    cdef double[:, ::1] basis
    cdef double[::1] inv_vals
    cdef double share[256]
    cdef bint finite
    if p < 2 or p > 256 or type(mv.count) is not int:
        mv._refresh()
        return
    cov = np.ascontiguousarray(mv.cov, dtype=np.float64)
    count = mv.count
    cfg = mv.cfg
    shrink_min = cfg.shrink_min
    explained = cfg.explained
    # n_eff = min(count, 1 / alpha); lam = max(shrink_min, p / (n_eff + p))
    inv_a = 1.0 / alpha
    if inv_a < <double>count:
        n_eff = inv_a
        lam = <double>p / (n_eff + <double>p)
    else:
        lam = <double>p / <double>(count + p)  # int / int: the correctly rounded quotient
    if lam > shrink_min:
        pass
    else:
        lam = shrink_min
    s_arr = np.empty((p, p))
    s = s_arr
    for i in range(p):
        for j in range(p):
            t1 = (1.0 - lam) * cov[i, j]
            t2 = lam * (cov[i, i] if i == j else 0.0)
            s[i, j] = t1 + t2
    tr = 0.0 + _pairwise(&s[0, 0], p, p + 1)
    if not tr > 0.0:
        mv.k = 0
        mv.basis = np.zeros((p, 0))
        return
    c = 1e-9 * tr / p
    finite = True
    for i in range(p):
        for j in range(p):
            s[i, j] = s[i, j] + c * (1.0 if i == j else 0.0)
            finite = finite and isfinite(s[i, j])
    if finite and _EIGH_LO is not None:
        # np.linalg.eigh's own LAPACK call (its gufunc: the same results), without its wrapper's checks
        # and error-state context (~3 us of the ~8): a finite symmetric matrix always converges
        w, v = _EIGH_LO(s_arr, signature="d->dd")
    else:  # np.linalg.eigh as the reference calls it (its LinAlgError for NaN or inf too)
        w, v = np.linalg.eigh(s_arr)
    vals = w
    vecs = v
    # reversed: vals[p - 1 - m]; share = cumsum / sum
    total = 0.0 + _pairwise(&vals[p - 1], p, -1)
    lv = vals[p - 1]
    share[0] = lv / total
    for i in range(1, p):
        lv = lv + vals[p - 1 - i]
        share[i] = lv / total
    lo_i = 0
    hi_i = p
    while lo_i < hi_i:
        mid = lo_i + ((hi_i - lo_i) >> 1)
        if _np_lt(share[mid], explained):
            lo_i = mid + 1
        else:
            hi_i = mid
    k = lo_i + 1
    if k > p - 1:
        k = p - 1
    b_arr = np.empty((p, k))
    basis = b_arr
    iv_arr = np.empty(k)
    inv_vals = iv_arr
    for i in range(p):
        for j in range(k):
            basis[i, j] = vecs[i, p - 1 - j]
    for j in range(k):
        inv_vals[j] = 1.0 / vals[p - 1 - j]
    q = 0.0 + _pairwise(&vals[p - 1 - k], p - k, -1)
    t1 = 1e-6 * tr
    if t1 > q:
        q = t1
    mv.k = k
    mv.basis = b_arr
    mv.inv_vals = iv_arr
    mv.q_expect = q
    mv.q_unit = q / vals[p - 1 - k] if vals[p - 1 - k] > 0.0 else 0.0


# ---- the calibrated window detector's step (aiotstream.models.window) --------------------------------

cdef double _CAL_BOUND = 1e100  # |values| and |levels| (and |g_ref|) the step takes
cdef double _CAL_VAR_BOUND = 1e200  # |var| (and g_var) it takes


cdef inline bint _within(const Py_ssize_t* idx, Py_ssize_t count, Py_ssize_t bound) noexcept:
    cdef Py_ssize_t k
    for k in range(count):
        if not 0 <= idx[k] < bound:
            return False
    return True


def calibrated_step(d, y_arr, stdtr, log):
    """One scored window of :class:`~aiotstream.models.window.CalibratedWindowDetector` past its warm-up
    (``d.n >= d.warmup``): what ``score_learn`` does, on the detector's own arrays and attributes, in the same
    order with the same operations, so the state and the score are the reference's to the bit (basic
    arithmetic and ``sqrt`` only, no contraction into FMA; the logarithms through ``log``, numpy's ufunc, one
    call for the row's amplitudes, and the tail probabilities through ``stdtr``, scipy's ufunc, one call for
    both groups: the caller passes them). ``y_arr``: a float64 copy of the row, transformed in place.

    Returns the score, or None before changing the detector when the row is not a row of its columns, or a
    value, a level, a variance or the load factor's state is so large (or not finite) that some step could
    overflow: there the reference's NaN and infinity semantics (numpy's ``maximum``/``argmax``, Python's
    ``min``) decide, so the caller runs the reference."""
    cdef double *level
    cdef double *var
    cdef double *learned
    cdef double *g_mult
    cdef double *y
    cdef long long *count
    cdef Py_ssize_t *rms_idx
    cdef Py_ssize_t *proc_idx
    cdef Py_ssize_t *log_idx
    cdef Py_ssize_t *ch_shape
    cdef Py_ssize_t *ch_amp
    cdef Py_ssize_t n, i, k, nv, n_rms, n_proc, n_log
    cdef Py_ssize_t dims[2]
    cdef Py_ssize_t shape_dims[2]
    cdef Py_ssize_t amp_dims[2]
    if not _arr(d.level, cnp.NPY_FLOAT64, 1, -1, True, <void**>&level, dims):
        return None
    n = dims[0]
    if not (_arr(d.var, cnp.NPY_FLOAT64, 1, n, True, <void**>&var, dims)
            and _arr(d.learned, cnp.NPY_FLOAT64, 1, n, True, <void**>&learned, dims)
            and _arr(d.g_mult, cnp.NPY_FLOAT64, 1, n, False, <void**>&g_mult, dims)
            and _arr(d.count, cnp.NPY_INT64, 1, n, True, <void**>&count, dims)
            and _arr(y_arr, cnp.NPY_FLOAT64, 1, n, True, <void**>&y, dims)
            and _arr(d.rms_idx, cnp.NPY_INTP, 1, -1, False, <void**>&rms_idx, dims)):
        return None
    n_rms = dims[0]
    if not _arr(d._proc_idx, cnp.NPY_INTP, 1, -1, False, <void**>&proc_idx, dims):
        return None
    n_proc = dims[0]
    if not _arr(d._log_idx, cnp.NPY_INTP, 1, -1, False, <void**>&log_idx, dims):
        return None
    n_log = dims[0]
    if not (_arr(d._ch_shape, cnp.NPY_INTP, 2, -1, False, <void**>&ch_shape, shape_dims)
            and _arr(d._ch_amp, cnp.NPY_INTP, 2, shape_dims[0], False, <void**>&ch_amp, amp_dims)):
        return None
    cdef Py_ssize_t n_ch = shape_dims[0] if d._shape_idx.size else 0, w_shape = shape_dims[1], w_amp = amp_dims[1]
    # every index within the row (the channels' tables: or n, their padding), as the detector made them
    if not (_within(rms_idx, n_rms, n) and _within(proc_idx, n_proc, n) and _within(log_idx, n_log, n)
            and _within(ch_shape, shape_dims[0] * w_shape, n + 1) and _within(ch_amp, amp_dims[0] * w_amp, n + 1)):
        return None
    cdef long long warmup = d.warmup
    cdef double huber_c = d.huber_c, alpha = d.alpha, kappa = d.kappa, z_cut = d._z_cut
    cdef double g_ref = d.g_ref, g_var = d.g_var, v, t, g, u
    cdef bint use_load = d._use_load, warm_all = d._warm_all
    # _transform: non-finite values missing (NaN), amplitudes and powers as log(|value| + 1e-12)
    for i in range(n):
        if not isfinite(y[i]):
            y[i] = NAN
    nv = n_log
    cdef double[::1] logs
    if nv:
        logs_arr = np.empty(nv)
        logs = logs_arr
        for k in range(nv):
            logs[k] = fabs(y[log_idx[k]]) + 1e-12
        log(logs_arr, out=logs_arr)
        for k in range(nv):
            y[log_idx[k]] = logs[k]
    if not (0.0 < huber_c <= 1e10):
        return None
    if not (isfinite(g_ref) and fabs(g_ref) <= _CAL_BOUND) or not (g_var != g_var or fabs(g_var) <= _CAL_VAR_BOUND):
        return None
    for i in range(n):
        v = y[i]
        if v == v and not fabs(v) <= _CAL_BOUND:
            return None
        if not (fabs(level[i]) <= _CAL_BOUND and fabs(var[i]) <= _CAL_VAR_BOUND and learned[i] >= 0.0):
            return None
    d.n = d.n + 1

    z_arr = np.empty(n)
    cdef double *z = <double*>cnp.PyArray_DATA(<cnp.ndarray>z_arr)
    # scratch: the per-window d and scale, the tail candidates, the load factor's values; the live mask and the
    # per-column fast flag
    cdef double *dd = <double*>PyMem_Malloc((4 * n + n_rms + 1) * sizeof(double) + 2 * n)
    if dd == NULL:
        raise MemoryError()
    cdef double *sc = dd + n
    cdef double *ca = dd + 2 * n
    cdef double *cd = dd + 3 * n
    cdef double *vals = dd + 4 * n
    cdef unsigned char *live = <unsigned char*>(vals + n_rms + 1)
    cdef unsigned char *fast = live + n
    try:
        return _calibrated_rest(d, n, y, z, z_arr, level, var, learned, g_mult, count, rms_idx, n_rms, proc_idx,
                                n_proc, ch_shape, w_shape, ch_amp, w_amp, n_ch, warmup, huber_c, alpha, kappa,
                                z_cut, g_ref, g_var, use_load, warm_all, dd, sc, ca, cd, vals, live, fast, stdtr)
    finally:
        PyMem_Free(dd)


cdef object _calibrated_rest(d, Py_ssize_t n, double* y, double* z, object z_arr, double* level, double* var,
                             double* learned, double* g_mult, long long* count, Py_ssize_t* rms_idx,
                             Py_ssize_t n_rms, Py_ssize_t* proc_idx, Py_ssize_t n_proc, Py_ssize_t* ch_shape,
                             Py_ssize_t w_shape, Py_ssize_t* ch_amp, Py_ssize_t w_amp, Py_ssize_t n_ch,
                             long long warmup, double huber_c, double alpha, double kappa, double z_cut,
                             double g_ref, double g_var, bint use_load, bint warm_all, double* dd, double* sc,
                             double* ca, double* cd, double* vals, unsigned char* live, unsigned char* fast,
                             object stdtr):
    """:func:`calibrated_step` past its checks, on its arrays' data and its scratch."""
    cdef Py_ssize_t i, j, k, c, nv
    cdef double v, t, g, u
    cdef bint all_warm
    for i in range(n):
        fast[i] = 0
    # _seed: the Welford warm-up of the columns still in theirs (every present value is finite here)
    for i in range(n):
        live[i] = y[i] == y[i]
    if not warm_all:
        all_warm = True
        for i in range(n):
            if live[i] and count[i] < warmup:
                count[i] += 1
                t = y[i] - level[i]
                level[i] += t / <double>count[i]
                var[i] += t * (y[i] - level[i])
                if count[i] == warmup:
                    var[i] /= <double>(warmup - 1 if warmup - 1 > 1 else 1)
                learned[i] += 1
                live[i] = 0
            if count[i] < warmup:
                all_warm = False
        d._warm_all = all_warm if n else True

    # load_factor: the median over the warm rms columns of log rms minus its level (Python's stable sort)
    if not use_load:
        g = 0.0
    else:
        nv = 0
        for k in range(n_rms):
            i = rms_idx[k]
            t = y[i] - level[i]
            if count[i] >= warmup and t == t:
                j = nv
                while j > 0 and vals[j - 1] > t:
                    vals[j] = vals[j - 1]
                    j -= 1
                vals[j] = t
                nv += 1
        if nv == 0:
            g = g_ref
        elif nv % 2:
            g = vals[nv // 2]
        else:
            g = 0.5 * (vals[nv // 2 - 1] + vals[nv // 2])
    d.g = g
    if use_load:
        for i in range(n):
            y[i] = y[i] - g_mult[i] * g
    for i in range(n):
        v = var[i]
        if not v >= 0.0 and v == v:  # np.maximum(var, 0.0)
            v = 0.0
        sc[i] = sqrt(v) + 1e-9 * (1.0 + fabs(level[i]))
        dd[i] = (y[i] - level[i]) if live[i] else 0.0
        z[i] = dd[i] / sc[i]

    # the operating condition's transition
    cdef bint moving = use_load and g_var > 0 and fabs(g - g_ref) > d.change_k * sqrt(g_var)
    cdef long hold = d.hold
    if moving:
        if hold == 0:
            d.changes = d.changes + 1
        hold = d.settle
    cdef bint held = hold > 0
    if held:
        for k in range(n_proc):
            z[proc_idx[k]] = 0.0
    d.z = z_arr

    # the fast-opening group: the shape columns of the channels whose shape moved more than their energy rose
    cdef double top_shape, top_amp
    for c in range(n_ch):
        top_shape = 0.0
        for k in range(w_shape):
            j = ch_shape[c * w_shape + k]
            t = fabs(z[j]) if j < n else 0.0
            if k == 0 or t > top_shape:
                top_shape = t
        top_amp = 0.0
        for k in range(w_amp):
            j = ch_amp[c * w_amp + k]
            t = (z[j] if z[j] >= 0.0 else 0.0) if j < n else 0.0
            if k == 0 or t > top_amp:
                top_amp = t
        if top_shape > top_amp:
            for k in range(w_shape):
                j = ch_shape[c * w_shape + k]
                if j < n:
                    fast[j] = 1

    # each group's largest |z| (numpy's argmax: the first), then the candidates whose tails are needed
    cdef double two_over_alpha = 2.0 / alpha, a_max[2], dof_lo[2], dof_hi[2], dof0[2]
    cdef Py_ssize_t size[2], at[2], grp
    for grp in range(2):
        size[grp] = 0
        a_max[grp] = 0.0
    for i in range(n):
        grp = 0 if fast[i] else 1
        t = fabs(z[i])
        if size[grp] == 0 or t > a_max[grp]:
            a_max[grp] = t
        if size[grp] == 0:
            dof_lo[grp] = dof_hi[grp] = dof0[grp] = learned[i]
        else:
            if learned[i] < dof_lo[grp]:
                dof_lo[grp] = learned[i]
            if learned[i] > dof_hi[grp]:
                dof_hi[grp] = learned[i]
        size[grp] += 1
    nv = 0
    for grp in range(2):
        at[grp] = nv
        if size[grp] == 0 or a_max[grp] <= z_cut:
            continue
        if dof_lo[grp] == dof_hi[grp]:
            t = dof0[grp] if not two_over_alpha < dof0[grp] else two_over_alpha
            t -= 1.0
            ca[nv] = -a_max[grp]
            cd[nv] = t if not 1.0 > t else 1.0
            nv += 1
        else:
            for i in range(n):
                if (fast[i] != 0) != (grp == 0):
                    continue
                u = fabs(z[i])
                if u > z_cut:
                    t = learned[i] if not learned[i] > two_over_alpha else two_over_alpha
                    t -= 1.0
                    ca[nv] = -u
                    cd[nv] = t if not t < 1.0 else 1.0
                    nv += 1
    cdef double p_grp[2]
    cdef double[::1] tail
    cdef double m = <double>d.tests
    if nv:
        cand_a, cand_d = np.empty(nv), np.empty(nv)
        for j in range(nv):
            cand_a[j] = ca[j]
            cand_d[j] = cd[j]
        tail = np.asarray(stdtr(cand_d, cand_a), dtype=np.float64)
    for grp in range(2):
        k = (at[grp + 1] if grp == 0 else nv) - at[grp]
        if k == 0:
            p_grp[grp] = 1.0
            continue
        u = 0.0
        for j in range(at[grp], at[grp] + k):
            t = 2.0 * tail[j]
            if not t <= 1.0:  # np.minimum(1.0, 2 stdtr)
                t = 1.0 if t == t else t
            if j == at[grp] or t < u:
                u = t
        u = m * u
        p_grp[grp] = u if u < 1.0 else 1.0
    cdef double p_shape = p_grp[0], p_level = p_grp[1]
    cdef double p = p_level if p_level < p_shape else p_shape
    d.p = p

    # persistence
    cdef list hs = d._hist_shape, hl = d._hist_level
    hs.append(p_shape < d.risk)
    hl.append(p_level < d.risk)
    if len(hs) > d.shape_of:
        del hs[0]
    if len(hl) > d.level_of:
        del hl[0]
    cdef long run_shape = 0, run_level = 0
    for o in hs:
        if o:
            run_shape += 1
    for o in hl:
        if o:
            run_level += 1
    cdef bint alert = d.alert
    cdef long quiet = d._quiet
    if alert:
        quiet = quiet + 1 if p >= d.close_risk else 0
        if quiet >= d.close_after:
            alert, quiet = False, 0
            hs.clear()
            hl.clear()
            run_shape = run_level = 0
    elif run_shape >= d.shape_after or run_level >= d.level_after:
        alert, quiet = True, 0
    d._run_shape, d._run_level, d.alert, d._quiet = run_shape, run_level, alert, quiet

    # learning (never while an alert is open)
    cdef double cc = huber_c * huber_c, c4 = huber_c ** 4, zz, az2, w_loc, rho
    cdef double dg
    if not alert:
        for i in range(n):
            if not live[i]:
                continue
            zz = z[i] * z[i]
            if zz > cc:
                az2 = zz if zz >= cc else cc
                w_loc = cc / az2
                rho = c4 / az2
            else:
                w_loc = 1.0
                rho = zz
            t = alpha * (rho * sc[i] * sc[i] / kappa - var[i])
            level[i] += alpha * w_loc * dd[i]
            var[i] += t
            learned[i] += 1
        if not moving:
            dg = g - g_ref
            t = dg * dg
            u = cc * g_var
            if u < t:
                t = u
            g_var += alpha * (t - g_var)
            d.g_var = g_var
        g_ref += (0.5 if moving else d.g_alpha) * (g - g_ref)
        d.g_ref = g_ref
    if held:
        for k in range(n_proc):
            i = proc_idx[k]
            if live[i]:
                level[i] = y[i]
    if hold > 0 and not moving:
        hold -= 1
    d.hold = hold
    return 1.0 - p


# ---- the feature drift test (aiotstream.models.online.ShiftDrift) ------------------------------------

cdef inline double _nan_max(double a, double b) noexcept nogil:
    # np.maximum: NaN when either is
    if a != a or b != b:
        return NAN
    return a if a >= b else b


cdef inline double _row_quantile(const double* a, Py_ssize_t n, double q) noexcept nogil:
    # _full_quantiles on one sorted row of n >= 1 values: numpy's linear quantile, its operations
    cdef Py_ssize_t last = n - 1
    cdef double pos = q * <double>last
    cdef Py_ssize_t below = <Py_ssize_t>floor(pos)
    cdef Py_ssize_t above = below + 1 if below + 1 < last else last
    cdef double lo = a[below]
    return lo + (a[above] - lo) * (pos - <double>below)


cdef inline Py_ssize_t _gather(const double** src, double* dst, Py_ssize_t count, Py_ssize_t stride,
                               const double* end, Py_ssize_t wrap) noexcept nogil:
    # count values of a ring's column from src[0] on (stride apart, back by wrap past end) to dst; src[0]
    # moves past them; returns how many were NaN
    cdef Py_ssize_t r, missing = 0
    cdef const double* p = src[0]
    for r in range(count):
        missing += isnan(p[0])
        dst[r] = p[0]
        p += stride
        if p >= end:
            p -= wrap
    src[0] = p
    return missing


def shift_test(buf_arr, Py_ssize_t n, Py_ssize_t recent, quiet_arr, double margin, double min_change, qs_arr):
    """The test of :meth:`~aiotstream.models.online.ShiftDrift.update` where every column of the ring's rows
    has all its values or none (the reference's ``_full_quantiles`` path), on the drift watch's own ring
    ``buf_arr`` (``(reference + recent, columns)`` float64, ``n`` rows written so far) and quiet counts
    ``quiet_arr`` (int64): the same quantiles (numpy's sort, the rows oldest first) and the same comparisons.
    ``qs_arr``: the five reference quantiles (``_QS``).

    Each complete column's reference and recent values are gathered into a row of their own and sorted as
    rows (numpy sorts a contiguous row with its vectorised sort; along the ring's axis 0 it copies each
    column out and back), and the rest is a few operations a column in place of some twenty numpy calls.

    Returns None, having read only, where the reference's general path applies (a column with some values
    missing, arrays of another type or shape, a ring too short for the test): the caller runs it. Else an
    empty tuple when no feature fired, or per firing column ``(index, reference median, reference low,
    reference high, recent median, shift in sds)``."""
    cdef double *buf
    cdef long long *quiet
    cdef double *qs
    cdef Py_ssize_t dims[2]
    cdef Py_ssize_t size, cols, m, start, n_ref, j, c
    if not _arr(buf_arr, cnp.NPY_FLOAT64, 2, -1, False, <void**>&buf, dims):
        return None
    size, cols = dims[0], dims[1]
    if not (_arr(quiet_arr, cnp.NPY_INT64, 1, cols, False, <void**>&quiet, dims)
            and _arr(qs_arr, cnp.NPY_FLOAT64, 1, 5, False, <void**>&qs, dims)):
        return None
    if n < 1 or size < 1 or cols < 1:
        return None
    m = n if n < size else size
    start = 0 if n < size else n % size
    n_ref = m - recent
    if recent < 1 or n_ref < 1:
        return None
    if n_ref < recent:  # the reference's `enough` is false for every column, on either of its paths: no test
        return ()
    cdef const double *src
    cdef double *ref
    cdef double *rec
    cdef cnp.ndarray ref_arr, rec_arr
    cdef cnp.npy_intp sdims[2]
    cdef Py_ssize_t missing, first = start * cols
    cdef const double *end = buf + size * cols
    cdef Py_ssize_t *dest = <Py_ssize_t*>PyMem_Malloc(cols * sizeof(Py_ssize_t))
    if dest == NULL:
        raise MemoryError()
    cdef double lo, q1, med, q3, hi, now, sd, need
    try:
        sdims[0], sdims[1] = cols, n_ref
        ref_arr = <cnp.ndarray>cnp.PyArray_EMPTY(2, sdims, cnp.NPY_FLOAT64, 0)
        sdims[1] = recent
        rec_arr = <cnp.ndarray>cnp.PyArray_EMPTY(2, sdims, cnp.NPY_FLOAT64, 0)
        ref = <double*>cnp.PyArray_DATA(ref_arr)
        rec = <double*>cnp.PyArray_DATA(rec_arr)
        # each column's values, oldest first, to a row of its own (the reference's, the recent ones'); a row of
        # the sorted arrays per complete column (dest: its row, -1 for a column with no values)
        c = 0
        for j in range(cols):
            src = buf + first + j
            missing = _gather(&src, ref + c * n_ref, n_ref, cols, end, size * cols)
            missing += _gather(&src, rec + c * recent, recent, cols, end, size * cols)
            if missing == 0:
                dest[j] = c
                c += 1
            elif missing == m:
                dest[j] = -1
            else:
                return None
        fired = ()
        if c == 0:
            return fired
        if c == cols:
            cnp.PyArray_Sort(ref_arr, 1, cnp.NPY_QUICKSORT)
            cnp.PyArray_Sort(rec_arr, 1, cnp.NPY_QUICKSORT)
        else:  # (the rows of the complete columns)
            cnp.PyArray_Sort(<cnp.ndarray>ref_arr[:c], 1, cnp.NPY_QUICKSORT)
            cnp.PyArray_Sort(<cnp.ndarray>rec_arr[:c], 1, cnp.NPY_QUICKSORT)
        for j in range(cols):  # (`enough` holds: every column has n_ref >= recent values and recent)
            if dest[j] < 0 or quiet[j] != 0:  # (a column with no values: NaN quantiles, no test)
                continue
            src = ref + dest[j] * n_ref
            lo = _row_quantile(src, n_ref, qs[0])
            q1 = _row_quantile(src, n_ref, qs[1])
            med = _row_quantile(src, n_ref, qs[2])
            q3 = _row_quantile(src, n_ref, qs[3])
            hi = _row_quantile(src, n_ref, qs[4])
            now = _row_quantile(rec + dest[j] * recent, recent, 0.5)
            sd = _nan_max((q3 - q1) / 1.349, 1e-9 + 1e-6 * fabs(med))
            need = _nan_max(margin * sd, min_change * fabs(med))
            if now > hi + need or now < lo - need:
                if not fired:
                    fired = []
                fired.append((j, med, lo, hi, now, (now - med) / sd))
        return fired
    finally:
        PyMem_Free(dest)


cdef inline uint64_t _mix64(uint64_t x) noexcept nogil:
    # splitmix64's finalizer: the sum of these over a multiset of values is order-free and changes with
    # near certainty when any value does
    x += 0x9E3779B97F4A7C15ULL
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL
    return x ^ (x >> 31)


def sorted_copy_of(const double[:, ::1] ring, const double[:, ::1] srt, const long long[::1] fill):
    """Whether every row ``j`` of ``srt`` is ``ring[j, :fill[j]]`` sorted, with zero bits after it, and
    that reference holds no -0.0: then a sort of the reference gives ``srt`` back bit for bit
    (``RankTest._srt_derivable``; its numpy twin is ``aiotstream.models.streaming._sorted_copy_of``).
    The order is checked, the values by the wrapping sums of their mixed bits. One pass, no sort."""
    cdef Py_ssize_t j, i, f, size = ring.shape[1]
    cdef uint64_t a, b, h1, h2
    cdef double prev
    if srt.shape[0] != ring.shape[0] or srt.shape[1] != size or fill.shape[0] < ring.shape[0]:
        return False
    for j in range(ring.shape[0]):
        f = fill[j]
        if f < 0 or f > size:
            return False
        h1 = h2 = 0
        for i in range(f):
            memcpy(&a, &ring[j, i], 8)
            memcpy(&b, &srt[j, i], 8)
            if a == 0x8000000000000000ULL:  # -0.0
                return False
            if i and not (srt[j, i] >= prev):  # (NaN: not sorted)
                return False
            prev = srt[j, i]
            h1 += _mix64(a)
            h2 += _mix64(b)
        if h1 != h2:
            return False
        for i in range(f, size):
            memcpy(&b, &srt[j, i], 8)
            if b:
                return False
    return True

/* The SPOT re-fits' loops over arrays, for ext/_streaming.pyx.
 *
 * log1p(theta * y[i]) over an array, for the GPD profile likelihood (about 13 thetas x 360 excesses
 * a fit). With AIOT_MVEC (set by setup.py on x86-64 glibc >= 2.35, which links libmvec) the loop calls
 * glibc's vector log1p (AVX-512 or AVX2, picked at run time; documented max error 4 ulp, like
 * numpy's own SIMD log1p it differs from scalar libm in the last bits); elsewhere the scalar libm
 * log1p. Either way the means over hundreds of values agree with numpy's to ~1e-16 relative.
 *
 * The passes over a statistic's whole window of a re-fit (3,600 values): its min and max
 * (aiot_minmax), the values within a bracket of the quantile's rank (aiot_bracket) and the excesses
 * over the threshold (aiot_excess). Exact on every path (compares and one subtraction): the same
 * values in the same order, whichever level runs. The vector paths compress the kept lanes to the
 * front of a register and store the whole vector at out + m: m is at most the input's index i, so the
 * store stays within out's n values, and its lanes past the kept ones are overwritten or never read. */
#ifndef AIOT_STREAMING_SIMD_H
#define AIOT_STREAMING_SIMD_H
#include <math.h>
#include <stddef.h>

/* out[0:m] = the values of src[0:n] neither below lo nor above hi (NaN too), in order; *below = how
 * many lie below lo. Returns m. out: room for n values, not overlapping src. */
static ptrdiff_t aiot_bracket_scalar(const double *src, double *out, ptrdiff_t n, double lo, double hi,
                                     ptrdiff_t *below) {
    ptrdiff_t m = 0, b = 0;
    for (ptrdiff_t i = 0; i < n; i++) {  /* branch-free: where a value falls is a coin toss */
        double v = src[i];
        int lt = v < lo, gt = (v > hi) & (lt ^ 1);  /* (gt only where not lt: m never goes back) */
        b += lt;
        out[m] = v;
        m += 1 - lt - gt;
    }
    *below = b;
    return m;
}

/* *lo, *hi = the min and max of the n >= 1 values a[0], a[stride], ..., as a loop of `if (v < lo) lo = v`
 * (and v > hi) keeps them: the first value's NaN everywhere, a later NaN nowhere; up to a zero's sign.
 * Copied to out[0:n] too where out is not NULL. Four lanes: one lane's compare-and-keep waits for its
 * last (4 cycles a value on one). */
static void aiot_minmax_scalar(const double *a, ptrdiff_t n, ptrdiff_t stride, double *out, double *lo_out,
                               double *hi_out) {
    double lo[4], hi[4], v;
    ptrdiff_t i = 0;
    int k;
    for (k = 0; k < 4; k++) lo[k] = hi[k] = a[0];
    for (; i + 4 <= n; i += 4)
        for (k = 0; k < 4; k++) {
            v = a[(i + k) * stride];
            if (out) out[i + k] = v;
            lo[k] = v < lo[k] ? v : lo[k];
            hi[k] = v > hi[k] ? v : hi[k];
        }
    for (; i < n; i++) {
        v = a[i * stride];
        if (out) out[i] = v;
        lo[0] = v < lo[0] ? v : lo[0];
        hi[0] = v > hi[0] ? v : hi[0];
    }
    for (k = 1; k < 4; k++) {
        lo[0] = lo[k] < lo[0] ? lo[k] : lo[0];
        hi[0] = hi[k] > hi[0] ? hi[k] : hi[0];
    }
    *lo_out = lo[0];
    *hi_out = hi[0];
}

/* out[0:m] = src[i] - t for the src[i] > t, in order; returns m. out: room for n, not overlapping src. */
static ptrdiff_t aiot_excess_scalar(const double *src, double *out, ptrdiff_t n, double t) {
    ptrdiff_t m = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        double v = src[i];
        out[m] = v - t;
        m += v > t;
    }
    return m;
}

#if defined(AIOT_MVEC) && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
__m256d _ZGVdN4v_log1p(__m256d x);
__m512d _ZGVeN8v_log1p(__m512d x);

__attribute__((target("avx2"))) static void aiot_log1p_scaled_avx2(double theta, const double *y, double *out,
                                                                   ptrdiff_t n) {
    ptrdiff_t i = 0;
    __m256d t = _mm256_set1_pd(theta);
    for (; i + 4 <= n; i += 4)
        _mm256_storeu_pd(out + i, _ZGVdN4v_log1p(_mm256_mul_pd(t, _mm256_loadu_pd(y + i))));
    for (; i < n; i++) out[i] = log1p(theta * y[i]);
}

__attribute__((target("avx512f"))) static void aiot_log1p_scaled_avx512(double theta, const double *y, double *out,
                                                                        ptrdiff_t n) {
    ptrdiff_t i = 0;
    __m512d t = _mm512_set1_pd(theta);
    for (; i + 8 <= n; i += 8)
        _mm512_storeu_pd(out + i, _ZGVeN8v_log1p(_mm512_mul_pd(t, _mm512_loadu_pd(y + i))));
    for (; i < n; i++) out[i] = log1p(theta * y[i]);
}

/* AVX2 has no compress: a table gives, for each 4-lane mask, the 32-bit lanes that gather its kept
 * doubles to the front */
static const int aiot_keep4[16][8] = {
    {0, 1, 0, 1, 0, 1, 0, 1}, {0, 1, 0, 1, 0, 1, 0, 1}, {2, 3, 0, 1, 0, 1, 0, 1}, {0, 1, 2, 3, 0, 1, 0, 1},
    {4, 5, 0, 1, 0, 1, 0, 1}, {0, 1, 4, 5, 0, 1, 0, 1}, {2, 3, 4, 5, 0, 1, 0, 1}, {0, 1, 2, 3, 4, 5, 0, 1},
    {6, 7, 0, 1, 0, 1, 0, 1}, {0, 1, 6, 7, 0, 1, 0, 1}, {2, 3, 6, 7, 0, 1, 0, 1}, {0, 1, 2, 3, 6, 7, 0, 1},
    {4, 5, 6, 7, 0, 1, 0, 1}, {0, 1, 4, 5, 6, 7, 0, 1}, {2, 3, 4, 5, 6, 7, 0, 1}, {0, 1, 2, 3, 4, 5, 6, 7},
};

__attribute__((target("avx2,popcnt"))) static inline void aiot_keep_avx2(double *out, __m256d v, int mask) {
    __m256i idx = _mm256_loadu_si256((const __m256i *)aiot_keep4[mask]);
    _mm256_storeu_pd(out, _mm256_castsi256_pd(_mm256_permutevar8x32_epi32(_mm256_castpd_si256(v), idx)));
}

__attribute__((target("avx2,popcnt"))) static ptrdiff_t aiot_bracket_avx2(const double *src, double *out, ptrdiff_t n,
                                                                        double lo, double hi, ptrdiff_t *below) {
    ptrdiff_t i = 0, m = 0, b = 0, rest;
    __m256d vlo = _mm256_set1_pd(lo), vhi = _mm256_set1_pd(hi);
    for (; i + 4 <= n; i += 4) {
        __m256d v = _mm256_loadu_pd(src + i);
        int lt = _mm256_movemask_pd(_mm256_cmp_pd(v, vlo, _CMP_LT_OQ));
        int in = ~(lt | _mm256_movemask_pd(_mm256_cmp_pd(v, vhi, _CMP_GT_OQ))) & 15;
        aiot_keep_avx2(out + m, v, in);
        b += __builtin_popcount(lt);
        m += __builtin_popcount(in);
    }
    m += aiot_bracket_scalar(src + i, out + m, n - i, lo, hi, &rest);
    *below = b + rest;
    return m;
}

__attribute__((target("avx2,popcnt"))) static ptrdiff_t aiot_excess_avx2(const double *src, double *out, ptrdiff_t n,
                                                                       double t) {
    ptrdiff_t i = 0, m = 0;
    __m256d vt = _mm256_set1_pd(t);
    for (; i + 4 <= n; i += 4) {
        __m256d v = _mm256_loadu_pd(src + i);
        int gt = _mm256_movemask_pd(_mm256_cmp_pd(v, vt, _CMP_GT_OQ));
        aiot_keep_avx2(out + m, _mm256_sub_pd(v, vt), gt);
        m += __builtin_popcount(gt);
    }
    return m + aiot_excess_scalar(src + i, out + m, n - i, t);
}

__attribute__((target("avx512f,popcnt"))) static ptrdiff_t aiot_bracket_avx512(const double *src, double *out,
                                                                             ptrdiff_t n, double lo, double hi,
                                                                             ptrdiff_t *below) {
    ptrdiff_t i = 0, m = 0, b = 0, rest;
    __m512d vlo = _mm512_set1_pd(lo), vhi = _mm512_set1_pd(hi);
    for (; i + 8 <= n; i += 8) {
        __m512d v = _mm512_loadu_pd(src + i);
        __mmask8 lt = _mm512_cmp_pd_mask(v, vlo, _CMP_LT_OQ);
        __mmask8 in = (__mmask8)~(lt | _mm512_cmp_pd_mask(v, vhi, _CMP_GT_OQ));
        _mm512_storeu_pd(out + m, _mm512_maskz_compress_pd(in, v));
        b += __builtin_popcount(lt);
        m += __builtin_popcount(in);
    }
    m += aiot_bracket_scalar(src + i, out + m, n - i, lo, hi, &rest);
    *below = b + rest;
    return m;
}

__attribute__((target("avx512f,popcnt"))) static ptrdiff_t aiot_excess_avx512(const double *src, double *out,
                                                                            ptrdiff_t n, double t) {
    ptrdiff_t i = 0, m = 0;
    __m512d vt = _mm512_set1_pd(t);
    for (; i + 8 <= n; i += 8) {
        __m512d v = _mm512_loadu_pd(src + i);
        __mmask8 gt = _mm512_cmp_pd_mask(v, vt, _CMP_GT_OQ);
        _mm512_storeu_pd(out + m, _mm512_maskz_compress_pd(gt, _mm512_sub_pd(v, vt)));
        m += __builtin_popcount(gt);
    }
    return m + aiot_excess_scalar(src + i, out + m, n - i, t);
}

/* the vector paths' lanes l, h (w each) folded in, then the values a[i:n] past the last whole vector */
static inline void aiot_minmax_lanes(double *l, double *h, int w, const double *a, ptrdiff_t i, ptrdiff_t n,
                                     double *lo_out, double *hi_out) {
    for (int k = 1; k < w; k++) {
        l[0] = l[k] < l[0] ? l[k] : l[0];
        h[0] = h[k] > h[0] ? h[k] : h[0];
    }
    for (; i < n; i++) {
        l[0] = a[i] < l[0] ? a[i] : l[0];
        h[0] = a[i] > h[0] ? a[i] : h[0];
    }
    *lo_out = l[0];
    *hi_out = h[0];
}

/* aiot_minmax_scalar of a contiguous array, no copy: one vector of lanes each (MINPD/MAXPD keep their
 * second operand unless the first is below/above it, as the scalar compare-and-keep) */
__attribute__((target("avx2"))) static void aiot_minmax_avx2(const double *a, ptrdiff_t n, double *lo_out,
                                                           double *hi_out) {
    ptrdiff_t i = 0;
    double l[4], h[4];
    __m256d vlo = _mm256_set1_pd(a[0]), vhi = vlo;
    for (; i + 4 <= n; i += 4) {
        __m256d v = _mm256_loadu_pd(a + i);
        vlo = _mm256_min_pd(v, vlo);
        vhi = _mm256_max_pd(v, vhi);
    }
    _mm256_storeu_pd(l, vlo);
    _mm256_storeu_pd(h, vhi);
    aiot_minmax_lanes(l, h, 4, a, i, n, lo_out, hi_out);
}

__attribute__((target("avx512f"))) static void aiot_minmax_avx512(const double *a, ptrdiff_t n, double *lo_out,
                                                                double *hi_out) {
    ptrdiff_t i = 0;
    double l[8], h[8];
    __m512d vlo = _mm512_set1_pd(a[0]), vhi = vlo;
    for (; i + 8 <= n; i += 8) {
        __m512d v = _mm512_loadu_pd(a + i);
        vlo = _mm512_min_pd(v, vlo);
        vhi = _mm512_max_pd(v, vhi);
    }
    _mm512_storeu_pd(l, vlo);
    _mm512_storeu_pd(h, vhi);
    aiot_minmax_lanes(l, h, 8, a, i, n, lo_out, hi_out);
}

static int aiot_mvec_level = -1;

static inline int aiot_simd_level(void) {
    if (aiot_mvec_level < 0) {
        __builtin_cpu_init();
        aiot_mvec_level = __builtin_cpu_supports("avx512f") ? 2 : (__builtin_cpu_supports("avx2") ? 1 : 0);
    }
    return aiot_mvec_level;
}

/* at most `level` (tests run every path the CPU has); returns the level in use */
static int aiot_set_simd_level(int level) {
    aiot_mvec_level = -1;
    int best = aiot_simd_level();
    aiot_mvec_level = level < best ? (level < 0 ? 0 : level) : best;
    return aiot_mvec_level;
}

static void aiot_log1p_scaled(double theta, const double *y, double *out, ptrdiff_t n) {
    int level = aiot_simd_level();
    if (level == 2) {
        aiot_log1p_scaled_avx512(theta, y, out, n);
    } else if (level == 1) {
        aiot_log1p_scaled_avx2(theta, y, out, n);
    } else {
        for (ptrdiff_t i = 0; i < n; i++) out[i] = log1p(theta * y[i]);
    }
}
static ptrdiff_t aiot_bracket(const double *src, double *out, ptrdiff_t n, double lo, double hi, ptrdiff_t *below) {
    int level = aiot_simd_level();
    if (level == 2) return aiot_bracket_avx512(src, out, n, lo, hi, below);
    if (level == 1) return aiot_bracket_avx2(src, out, n, lo, hi, below);
    return aiot_bracket_scalar(src, out, n, lo, hi, below);
}

static ptrdiff_t aiot_excess(const double *src, double *out, ptrdiff_t n, double t) {
    int level = aiot_simd_level();
    if (level == 2) return aiot_excess_avx512(src, out, n, t);
    if (level == 1) return aiot_excess_avx2(src, out, n, t);
    return aiot_excess_scalar(src, out, n, t);
}
static void aiot_minmax(const double *a, ptrdiff_t n, ptrdiff_t stride, double *out, double *lo, double *hi) {
    int level = stride == 1 && out == NULL ? aiot_simd_level() : 0;
    if (level == 2) aiot_minmax_avx512(a, n, lo, hi);
    else if (level == 1) aiot_minmax_avx2(a, n, lo, hi);
    else aiot_minmax_scalar(a, n, stride, out, lo, hi);
}
#else
static inline int aiot_simd_level(void) { return 0; }
static int aiot_set_simd_level(int level) { (void)level; return 0; }
static void aiot_log1p_scaled(double theta, const double *y, double *out, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) out[i] = log1p(theta * y[i]);
}
static ptrdiff_t aiot_bracket(const double *src, double *out, ptrdiff_t n, double lo, double hi, ptrdiff_t *below) {
    return aiot_bracket_scalar(src, out, n, lo, hi, below);
}
static ptrdiff_t aiot_excess(const double *src, double *out, ptrdiff_t n, double t) {
    return aiot_excess_scalar(src, out, n, t);
}
static void aiot_minmax(const double *a, ptrdiff_t n, ptrdiff_t stride, double *out, double *lo, double *hi) {
    aiot_minmax_scalar(a, n, stride, out, lo, hi);
}
#endif
#endif

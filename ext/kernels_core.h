/* Inner loops of aiotstream._kernels, in C.
 *
 * Why C and not Cython for these few loops: a reduction (sum, min, max) is
 * only vectorised by the compiler when it may reorder it, and the portable
 * way to say so for one loop (without -ffast-math for the whole module, which
 * would break the documented NaN/Inf behaviour) is `#pragma omp simd
 * reduction(...)` (compiled with -fopenmp-simd: no OpenMP runtime, no
 * threads).  Cython cannot emit that pragma.  On x86-64 with GCC the row
 * functions are also built twice (`target_clones`): an AVX2 version picked at
 * load time on CPUs that have it, and the baseline (SSE2) version for every
 * other CPU, so the wheel stays portable (no -march).  Measured on the dev
 * machine (AMD EPYC, 20,000 x 1024 float32): plain Cython two-pass loop
 * 0.5 G samples/s, this file with SSE2 0.7, with the AVX2 clone 1.4.
 *
 * The spectral kernel has its own FFT for power-of-two lengths (below,
 * "batched FFT over lanes"): 8 rows at a time, vectorised across rows.  With
 * scipy's pocketfft per chunk of rows the whole spectral kernel ran at
 * ~240 M samples/s (0.55 x the speed of scipy's transform alone); the lane
 * FFT (radix-4 Stockham) fused with the power/band pass runs at ~440 M
 * samples/s (benchmarks/README.md has the profile and the steps).
 *
 * All accumulation is in double whatever the input type.  Everything here is
 * free of Python: the Cython wrappers validate, allocate and release the GIL.
 */
#ifndef AIOT_KERNELS_CORE_H
#define AIOT_KERNELS_CORE_H

#include <math.h>
#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(AIOT_NO_CLONES)
#define AIOT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define AIOT_CLONES
#endif

/* 1 when the AVX2 clones run on this CPU.  The spectral kernel's own lane FFT
 * beats scipy's pocketfft with AVX2 (8 float32 lanes per register) but not
 * with the SSE2 baseline (measured: ~90 vs ~110-130 M samples/s), so
 * transform="auto" uses it only then. */
static int aiot_avx2_active(void)
{
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(AIOT_NO_CLONES)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
#else
    return 0;
#endif
}

/* ---- time-domain partials ------------------------------------------------ */
/* Column layout of one row's partials (see _kernels.PARTIAL_COLUMNS). */
enum {
    AIOT_P_N, AIOT_P_MEAN, AIOT_P_M2, AIOT_P_M3, AIOT_P_M4, AIOT_P_MIN, AIOT_P_MAX,
    AIOT_P_ABS, AIOT_P_ZC, AIOT_P_FIRST, AIOT_P_LAST, AIOT_P_COLS
};
/* Column layout of the time-domain features (see _kernels.TIME_FEATURES). */
enum {
    AIOT_F_MEAN, AIOT_F_STD, AIOT_F_RMS, AIOT_F_MIN, AIOT_F_MAX, AIOT_F_P2P, AIOT_F_CREST,
    AIOT_F_SKEW, AIOT_F_KURT, AIOT_F_ZCR, AIOT_F_IMPULSE, AIOT_F_SHAPE, AIOT_F_COLS
};

/* Partials of one row p[0:n] (n >= 1) into out[0:AIOT_P_COLS].
 *
 * Pass 1 (vectorised): sum, sum|x|, min, max.  Pass 2: sign changes between
 * adjacent samples (x >= 0 counts as non-negative).  Pass 3 (the row is in L1
 * by now): central sums of d, d^2, d^3, d^4 around the pass-1 mean, then the
 * corrected two-pass re-centring of Chan, Golub & LeVeque on mean + sum(d)/n.
 */
#define AIOT_DEFINE_ROW_PARTIALS(NAME, T)                                                     \
    AIOT_CLONES static void NAME(const T *restrict p, ptrdiff_t n, double *restrict out)      \
    {                                                                                         \
        const double nd = (double)n;                                                          \
        double s = 0.0, a = 0.0, lo = (double)p[0], hi = (double)p[0];                       \
        ptrdiff_t i, zc = 0;                                                                  \
        _Pragma("omp simd reduction(+:s,a) reduction(min:lo) reduction(max:hi)")              \
        for (i = 0; i < n; i++) {                                                             \
            const double v = (double)p[i];                                                    \
            s += v;                                                                           \
            a += fabs(v);                                                                     \
            lo = v < lo ? v : lo;                                                             \
            hi = v > hi ? v : hi;                                                             \
        }                                                                                     \
        out[AIOT_P_N] = nd;                                                                   \
        if (s != s) {                                                                         \
            /* a NaN sample (-> NaN row) or +Inf and -Inf (-> IEEE result below) */          \
            for (i = 0; i < n; i++) {                                                         \
                if (p[i] != p[i]) {                                                           \
                    for (ptrdiff_t k = 1; k < AIOT_P_COLS; k++) out[k] = NAN;                 \
                    return;                                                                   \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
        _Pragma("omp simd reduction(+:zc)")                                                   \
        for (i = 1; i < n; i++) zc += (p[i] >= 0) != (p[i - 1] >= 0);                         \
        out[AIOT_P_MIN] = lo;                                                                 \
        out[AIOT_P_MAX] = hi;                                                                 \
        out[AIOT_P_ABS] = a;                                                                  \
        out[AIOT_P_ZC] = (double)zc;                                                          \
        out[AIOT_P_FIRST] = (double)p[0];                                                     \
        out[AIOT_P_LAST] = (double)p[n - 1];                                                  \
        if (lo == hi && isfinite(lo)) {                                                       \
            /* constant row (includes n == 1): exact, no rounding residue */                  \
            out[AIOT_P_MEAN] = lo;                                                            \
            out[AIOT_P_M2] = out[AIOT_P_M3] = out[AIOT_P_M4] = 0.0;                           \
            return;                                                                           \
        }                                                                                     \
        double mean = s / nd;                                                                 \
        double c1 = 0.0, c2 = 0.0, c3 = 0.0, c4 = 0.0;                                        \
        _Pragma("omp simd reduction(+:c1,c2,c3,c4)")                                          \
        for (i = 0; i < n; i++) {                                                             \
            const double d = (double)p[i] - mean, q = d * d;                                  \
            c1 += d;                                                                          \
            c2 += q;                                                                          \
            c3 += q * d;                                                                      \
            c4 += q * q;                                                                      \
        }                                                                                     \
        if (isfinite(mean)) {                                                                 \
            const double c = c1 / nd;                                                         \
            c4 = c4 - 4.0 * c * c3 + 6.0 * c * c * c2 - 3.0 * nd * c * c * c * c;            \
            c3 = c3 - 3.0 * c * c2 + 2.0 * nd * c * c * c;                                    \
            c2 = c2 - nd * c * c;                                                             \
            if (c2 < 0.0) c2 = 0.0;                                                           \
            mean = mean + c;                                                                  \
        }                                                                                     \
        out[AIOT_P_MEAN] = mean;                                                              \
        out[AIOT_P_M2] = c2;                                                                  \
        out[AIOT_P_M3] = c3;                                                                  \
        out[AIOT_P_M4] = c4;                                                                  \
    }

AIOT_DEFINE_ROW_PARTIALS(aiot_row_partials_f, float)
AIOT_DEFINE_ROW_PARTIALS(aiot_row_partials_d, double)

/* Non-finite count, min and max of the n >= 1 samples of type T at p (the frame decoder's finite check and the
 * ingest's range check). A NaN never wins a comparison, so lo/hi are the other samples' (the caller turns them
 * into NaN when a sample is NaN, as numpy's min and max are); v - v is 0 for a finite sample only. p need not
 * be aligned for T (a decoded frame's samples start right after its header and asset id, at any byte): each
 * sample is read with memcpy, which the compiler turns into an unaligned (vector) load. */
#define AIOT_DEFINE_RANGE(NAME, T)                                                            \
    AIOT_CLONES static void NAME(const void *restrict p, ptrdiff_t n, ptrdiff_t *restrict bad, \
                                 double *restrict lo_out, double *restrict hi_out)            \
    {                                                                                         \
        const unsigned char *restrict b = (const unsigned char *)p;                           \
        T first;                                                                              \
        memcpy(&first, b, sizeof first);                                                      \
        double lo = (double)first, hi = (double)first;                                        \
        ptrdiff_t i, nb = 0;                                                                  \
        _Pragma("omp simd reduction(+:nb) reduction(min:lo) reduction(max:hi)")               \
        for (i = 0; i < n; i++) {                                                             \
            T t;                                                                              \
            memcpy(&t, b + i * (ptrdiff_t)sizeof(T), sizeof t);                               \
            const double v = (double)t;                                                       \
            lo = v < lo ? v : lo;                                                             \
            hi = v > hi ? v : hi;                                                             \
            nb += !(v - v == 0.0);                                                            \
        }                                                                                     \
        *bad = nb;                                                                            \
        *lo_out = lo;                                                                         \
        *hi_out = hi;                                                                         \
    }

AIOT_DEFINE_RANGE(aiot_range_f, float)
AIOT_DEFINE_RANGE(aiot_range_d, double)
AIOT_DEFINE_RANGE(aiot_range_s, short)

static inline double aiot_nanmin(double x, double y)
{
    if (x != x || y != y) return NAN;
    return y < x ? y : x;
}

static inline double aiot_nanmax(double x, double y)
{
    if (x != x || y != y) return NAN;
    return y > x ? y : x;
}

/* a <- a (+) b: exact merge of the partials of two consecutive runs of
 * samples, a's before b's (Chan et al. / Pebay for the central sums; the
 * adjacent pair across the boundary adds a sign change when last(a) and
 * first(b) differ in sign).  An accumulator with n == 0 is the identity. */
static void aiot_merge_partials(double *restrict a, const double *restrict b)
{
    const double na = a[AIOT_P_N], nb = b[AIOT_P_N];
    if (nb == 0.0) return;
    if (na == 0.0) {
        memcpy(a, b, sizeof(double) * AIOT_P_COLS);
        return;
    }
    const double n = na + nb;
    const double ma = a[AIOT_P_MEAN], mb = b[AIOT_P_MEAN];
    const double a2 = a[AIOT_P_M2], a3 = a[AIOT_P_M3], a4 = a[AIOT_P_M4];
    const double b2 = b[AIOT_P_M2], b3 = b[AIOT_P_M3], b4 = b[AIOT_P_M4];
    const double delta = mb - ma, delta2 = delta * delta;
    const double wb = nb / n, nab = na * nb / n;
    a[AIOT_P_N] = n;
    a[AIOT_P_MEAN] = ma + delta * wb;
    a[AIOT_P_M2] = a2 + b2 + delta2 * nab;
    a[AIOT_P_M3] = a3 + b3 + delta * delta2 * nab * (na - nb) / n + 3.0 * delta * (na * b2 - nb * a2) / n;
    a[AIOT_P_M4] = a4 + b4 + delta2 * delta2 * nab * (na * na - na * nb + nb * nb) / (n * n)
                   + 6.0 * delta2 * (na * na * b2 + nb * nb * a2) / (n * n)
                   + 4.0 * delta * (na * b3 - nb * a3) / n;
    a[AIOT_P_MIN] = aiot_nanmin(a[AIOT_P_MIN], b[AIOT_P_MIN]);
    a[AIOT_P_MAX] = aiot_nanmax(a[AIOT_P_MAX], b[AIOT_P_MAX]);
    a[AIOT_P_ABS] = a[AIOT_P_ABS] + b[AIOT_P_ABS];
    a[AIOT_P_ZC] = a[AIOT_P_ZC] + b[AIOT_P_ZC] + (double)((a[AIOT_P_LAST] >= 0) != (b[AIOT_P_FIRST] >= 0));
    a[AIOT_P_LAST] = b[AIOT_P_LAST];
}

/* The 12 time-domain features from (merged) partials; see _kernels.time_features. */
static void aiot_features_from_partials(const double *restrict p, double *restrict f)
{
    const double n = p[AIOT_P_N];
    if (!(n > 0.0)) {
        for (int k = 0; k < AIOT_F_COLS; k++) f[k] = NAN;
        return;
    }
    const double mean = p[AIOT_P_MEAN], m2 = p[AIOT_P_M2], m3 = p[AIOT_P_M3], m4 = p[AIOT_P_M4];
    const double lo = p[AIOT_P_MIN], hi = p[AIOT_P_MAX];
    const double var = m2 / n, std = sqrt(var), rms = hypot(mean, std);
    const double peak = aiot_nanmax(fabs(lo), fabs(hi));
    const double mabs = p[AIOT_P_ABS] / n;
    f[AIOT_F_MEAN] = mean;
    f[AIOT_F_STD] = std;
    f[AIOT_F_RMS] = rms;
    f[AIOT_F_MIN] = lo;
    f[AIOT_F_MAX] = hi;
    f[AIOT_F_P2P] = hi - lo;
    f[AIOT_F_CREST] = rms != 0.0 ? peak / rms : 0.0;
    /* sqrt(n)*m3/m2^1.5 == (m3/m2)/std and n*m4/m2^2 == (m4/m2)/var (no overflow of m2^2) */
    f[AIOT_F_SKEW] = m2 != 0.0 ? (m3 / m2) / std : 0.0;
    f[AIOT_F_KURT] = m2 != 0.0 ? (m4 / m2) / var : 0.0;
    f[AIOT_F_ZCR] = n > 1.0 ? p[AIOT_P_ZC] / (n - 1.0) : 0.0;
    f[AIOT_F_IMPULSE] = mabs != 0.0 ? peak / mabs : 0.0;
    f[AIOT_F_SHAPE] = mabs != 0.0 ? rms / mabs : 0.0;
    if (m2 != m2 || mean != mean) { /* a NaN or Inf sample: every feature NaN */
        for (int k = 0; k < AIOT_F_COLS; k++) f[k] = NAN;
    }
}

/* ---- spectral ------------------------------------------------------------ */
/* Prepare one row for the FFT: buf[i * stride] = (p[i] - mean) * w[i] * 2^-e,
 * where 2^e bounds max|p - mean| (an exact power-of-two scaling, so a float32
 * FFT neither overflows nor underflows whatever the magnitude).  Returns the
 * squared scale 2^(2e) that multiplies the power spectrum of buf, 0.0 for a
 * constant row (buf is all zero) or NaN for a row with a NaN/Inf sample (or
 * whose sum overflows).  stride > 1 writes one lane of a batch of rows laid
 * out sample-major (see aiot_fft_lanes). */
#define AIOT_DEFINE_SPEC_PREPARE(NAME, T)                                                     \
    AIOT_CLONES static double NAME(const T *restrict p, ptrdiff_t n, const double *restrict w, \
                                   T *restrict buf, ptrdiff_t stride)                         \
    {                                                                                         \
        double s = 0.0, lo = (double)p[0], hi = (double)p[0];                                 \
        ptrdiff_t i;                                                                          \
        _Pragma("omp simd reduction(+:s) reduction(min:lo) reduction(max:hi)")                \
        for (i = 0; i < n; i++) {                                                             \
            const double v = (double)p[i];                                                    \
            s += v;                                                                           \
            lo = v < lo ? v : lo;                                                             \
            hi = v > hi ? v : hi;                                                             \
        }                                                                                     \
        const int bad = !isfinite(s) || !isfinite(lo) || !isfinite(hi);                       \
        if (bad || lo == hi) {                                                                \
            for (i = 0; i < n; i++) buf[i * stride] = (T)0;                                   \
            return bad ? NAN : 0.0;                                                           \
        }                                                                                     \
        const double mean = s / (double)n;                                                    \
        const double amp = hi - mean > mean - lo ? hi - mean : mean - lo;                     \
        int e;                                                                                \
        (void)frexp(amp, &e);                                                                 \
        const double inv = ldexp(1.0, -e);                                                    \
        if (stride == 1) {                                                                    \
            _Pragma("omp simd")                                                               \
            for (i = 0; i < n; i++) buf[i] = (T)(((double)p[i] - mean) * (w[i] * inv));      \
        } else {                                                                              \
            for (i = 0; i < n; i++) buf[i * stride] = (T)(((double)p[i] - mean) * (w[i] * inv)); \
        }                                                                                     \
        return ldexp(1.0, 2 * e);                                                             \
    }

AIOT_DEFINE_SPEC_PREPARE(aiot_spec_prepare_f, float)
AIOT_DEFINE_SPEC_PREPARE(aiot_spec_prepare_d, double)

/* sum of v[a:b]; a vectorised reduction (a plain loop is bound by the add latency) */
AIOT_CLONES static double aiot_range_sum(const double *restrict v, ptrdiff_t a, ptrdiff_t b)
{
    double e = 0.0;
    _Pragma("omp simd reduction(+:e)")
    for (ptrdiff_t k = a; k < b; k++) e += v[k];
    return e;
}

/* Spectral partial columns (see _kernels.SPECTRAL_PARTIAL_COLUMNS); bands follow. */
enum {
    AIOT_S_COUNT, AIOT_S_TOTAL, AIOT_S_FSUM, AIOT_S_PEAK, AIOT_S_PEAK_F, AIOT_S_E1, AIOT_S_E2,
    AIOT_S_BANDS
};

/* Spectral partials of one row from its one-sided power spectrum tmp[1:nk]
 * (tmp[k] = c_k |X_k|^2 of the prepared row, c_k = 2 or 1 for the Nyquist
 * bin of an even n; tmp[0] is ignored: DC is dropped), times g = norm *
 * scale2.  freqs[k] = k * fs / n.  band_lo/band_hi: per band the first and
 * one-past-last bin; h1/h2: the 1x and 2x bin ranges [first, last) of this
 * row (first < 0: unknown running speed, the column is NaN).  scale2 is the
 * value returned by aiot_spec_prepare (NaN -> NaN row, 0 -> all-zero row).
 * Each step is its own short loop over tmp (L1-resident) so that every loop
 * vectorises. */
AIOT_CLONES static void aiot_spec_from_power(const double *restrict tmp, ptrdiff_t nk, double norm,
                                             double scale2, const double *restrict freqs,
                                             ptrdiff_t nbands, const ptrdiff_t *restrict band_lo,
                                             const ptrdiff_t *restrict band_hi, ptrdiff_t h1a,
                                             ptrdiff_t h1b, ptrdiff_t h2a, ptrdiff_t h2b,
                                             double *restrict out)
{
    ptrdiff_t k, b;
    out[AIOT_S_COUNT] = 1.0;
    if (scale2 != scale2) {
        for (k = 1; k < AIOT_S_BANDS + nbands; k++) out[k] = NAN;
        return;
    }
    double tot = 0.0, fsum = 0.0, pmax = 0.0;
    _Pragma("omp simd reduction(+:tot,fsum) reduction(max:pmax)")
    for (k = 1; k < nk; k++) {
        const double pk = tmp[k];
        tot += pk;
        fsum += freqs[k] * pk;
        pmax = pk > pmax ? pk : pmax;
    }
    const double g = norm * scale2;
    ptrdiff_t kmax = 0;
    if (pmax > 0.0) { /* the lowest bin holding the peak: a vectorised min-index */
        int kfirst = (int)nk;
        _Pragma("omp simd reduction(min:kfirst)")
        for (k = 1; k < nk; k++) {
            const int kk = tmp[k] == pmax ? (int)k : (int)nk;
            kfirst = kk < kfirst ? kk : kfirst;
        }
        kmax = kfirst;
    }
    out[AIOT_S_TOTAL] = tot * g;
    out[AIOT_S_FSUM] = fsum * g;
    out[AIOT_S_PEAK] = pmax * g;
    out[AIOT_S_PEAK_F] = freqs[kmax];
    out[AIOT_S_E1] = h1a < 0 ? NAN : aiot_range_sum(tmp, h1a, h1b) * g; /* h1a < 0: no rpm */
    out[AIOT_S_E2] = h2a < 0 ? NAN : aiot_range_sum(tmp, h2a, h2b) * g;
    for (b = 0; b < nbands; b++) out[AIOT_S_BANDS + b] = aiot_range_sum(tmp, band_lo[b], band_hi[b]) * g;
}

/* One row's power spectrum from its rfft X[0:nk] (interleaved re, im) into
 * tmp (see aiot_spec_from_power). */
#define AIOT_DEFINE_SPEC_POWER(NAME, T)                                                       \
    AIOT_CLONES static void NAME(const T *restrict X, ptrdiff_t n, ptrdiff_t nk,               \
                                 double *restrict tmp)                                        \
    {                                                                                         \
        ptrdiff_t k;                                                                          \
        _Pragma("omp simd")                                                                   \
        for (k = 1; k < nk; k++) {                                                            \
            const double re = (double)X[2 * k], im = (double)X[2 * k + 1];                    \
            tmp[k] = 2.0 * (re * re + im * im);                                               \
        }                                                                                     \
        if (nk > 1 && 2 * (nk - 1) == n) tmp[nk - 1] *= 0.5; /* Nyquist bin counts once */    \
    }

AIOT_DEFINE_SPEC_POWER(aiot_spec_power_f, float)
AIOT_DEFINE_SPEC_POWER(aiot_spec_power_d, double)

/* ---- batched FFT over lanes ------------------------------------------------ */
/* For power-of-two n the kernel does its own transform, AIOT_LANES rows at a
 * time: element j of a lane-major buffer is AIOT_LANES values (one per row),
 * so every butterfly is a short loop over lanes that vectorises on any SIMD
 * width without shuffles (8 float32 lanes = one AVX2 register).  The real
 * rows of length n are packed as m = n/2 complex values z_j = d_2j + i d_2j+1
 * (so buffer[i * LANES + lane] = d_i, as aiot_spec_prepare writes with
 * stride LANES), transformed by a radix-4 Stockham FFT (plus one radix-2
 * stage when m is not a power of 4; self-sorting: no bit reversal,
 * ping-pong between two buffers), and unpacked to the power of the real
 * FFT's bins 0..m.  Twiddles come from tables computed in double. */
#define AIOT_LANES 8

#define AIOT_DEFINE_FFT_LANES(NAME, T)                                                        \
    AIOT_CLONES static T *NAME(T *restrict a, T *restrict b, ptrdiff_t m, const T *restrict tw) \
    {                                                                                         \
        enum { L = AIOT_LANES };                                                              \
        ptrdiff_t len = m, s = 1, p, q;                                                       \
        T *src = a, *dst = b, *t;                                                             \
        /* radix-4 stages (Stockham, decimation in frequency): W^p, W^2p, W^3p of the current \
         * length are W_m^(p*s), W_m^(2p*s), W_m^(3p*s) from the table tw (k < m) */          \
        while (len >= 4) {                                                                    \
            const ptrdiff_t n1 = len / 4;                                                     \
            for (p = 0; p < n1; p++) {                                                        \
                const T w1r = tw[2 * p * s], w1i = tw[2 * p * s + 1];                         \
                const T w2r = tw[4 * p * s], w2i = tw[4 * p * s + 1];                         \
                const T w3r = tw[6 * p * s], w3i = tw[6 * p * s + 1];                         \
                for (q = 0; q < s; q++) {                                                     \
                    const T *restrict xa = src + 2 * L * (q + s * p);                         \
                    const T *restrict xb = src + 2 * L * (q + s * (p + n1));                  \
                    const T *restrict xc = src + 2 * L * (q + s * (p + 2 * n1));              \
                    const T *restrict xd = src + 2 * L * (q + s * (p + 3 * n1));              \
                    T *restrict y0 = dst + 2 * L * (q + s * (4 * p));                         \
                    T *restrict y1 = dst + 2 * L * (q + s * (4 * p + 1));                     \
                    T *restrict y2 = dst + 2 * L * (q + s * (4 * p + 2));                     \
                    T *restrict y3 = dst + 2 * L * (q + s * (4 * p + 3));                     \
                    _Pragma("omp simd")                                                       \
                    for (int l = 0; l < L; l++) {                                             \
                        const T apcr = xa[l] + xc[l], apci = xa[L + l] + xc[L + l];           \
                        const T amcr = xa[l] - xc[l], amci = xa[L + l] - xc[L + l];           \
                        const T bpdr = xb[l] + xd[l], bpdi = xb[L + l] + xd[L + l];           \
                        const T jr = xd[L + l] - xb[L + l], ji = xb[l] - xd[l]; /* j(b - d) */  \
                        const T u1r = amcr - jr, u1i = amci - ji;                             \
                        const T u2r = apcr - bpdr, u2i = apci - bpdi;                         \
                        const T u3r = amcr + jr, u3i = amci + ji;                             \
                        y0[l] = apcr + bpdr;                                                  \
                        y0[L + l] = apci + bpdi;                                              \
                        y1[l] = u1r * w1r - u1i * w1i;                                        \
                        y1[L + l] = u1r * w1i + u1i * w1r;                                    \
                        y2[l] = u2r * w2r - u2i * w2i;                                        \
                        y2[L + l] = u2r * w2i + u2i * w2r;                                    \
                        y3[l] = u3r * w3r - u3i * w3i;                                        \
                        y3[L + l] = u3r * w3i + u3i * w3r;                                    \
                    }                                                                         \
                }                                                                             \
            }                                                                                 \
            t = src;                                                                          \
            src = dst;                                                                        \
            dst = t;                                                                          \
            len = n1;                                                                         \
            s *= 4;                                                                           \
        }                                                                                     \
        if (len == 2) { /* one radix-2 stage left (m = 2 * 4^k) */                            \
            for (q = 0; q < s; q++) {                                                         \
                const T *restrict x0 = src + 2 * L * q;                                       \
                const T *restrict x1 = src + 2 * L * (q + s);                                 \
                T *restrict y0 = dst + 2 * L * q;                                             \
                T *restrict y1 = dst + 2 * L * (q + s);                                       \
                _Pragma("omp simd")                                                           \
                for (int l = 0; l < L; l++) {                                                 \
                    y0[l] = x0[l] + x1[l];                                                    \
                    y0[L + l] = x0[L + l] + x1[L + l];                                        \
                    y1[l] = x0[l] - x1[l];                                                    \
                    y1[L + l] = x0[L + l] - x1[L + l];                                        \
                }                                                                             \
            }                                                                                 \
            t = src;                                                                          \
            src = dst;                                                                        \
            dst = t;                                                                          \
        }                                                                                     \
        return src;                                                                           \
    }                                                                                         \
                                                                                              \
    /* Unpack the real FFT of each lane from Z and reduce its power spectrum to the spectral \
     * partials in the same pass (the per-lane twin of aiot_spec_from_power): P_k = c_k |X_k|^2 \
     * * g[l] for k = 1..m; band_of[k] = band index of bin k or -1; h[4*l..] = lane l's 1x/2x \
     * bin ranges; out[l] = lane l's output row (NULL: padding lane). */                    \
    AIOT_CLONES static void NAME##_partials(const T *restrict Z, ptrdiff_t m, const double *restrict pw, \
                                            const double *restrict freqs, const double *restrict g, \
                                            const ptrdiff_t *restrict band_of, ptrdiff_t nbands,     \
                                            const ptrdiff_t *restrict h, double *restrict bacc,     \
                                            double *restrict power, double *const *out)       \
    {                                                                                         \
        enum { L = AIOT_LANES };                                                              \
        double tot[L], fsum[L], pmax[L], kmax[L];                                            \
        int l;                                                                                \
        for (l = 0; l < L; l++) tot[l] = fsum[l] = pmax[l] = kmax[l] = 0.0;                    \
        for (ptrdiff_t b = 0; b < nbands * L; b++) bacc[b] = 0.0;                             \
        for (ptrdiff_t k = 1; k <= m; k++) {                                                  \
            const T *restrict zk = Z + 2 * L * (k == m ? 0 : k);                              \
            const T *restrict zm = Z + 2 * L * (m - k);                                       \
            /* the 1/2 of the even/odd split, squared, folded into c_k */                       \
            const double c = pw[2 * k], sn = pw[2 * k + 1], f = k == m ? 0.25 : 0.5;          \
            const double fk = freqs[k], kd = (double)k;                                       \
            double *restrict pk = power + L * k;                                              \
            const T ct = (T)c, st = (T)sn;                                                    \
            _Pragma("omp simd")                                                               \
            for (l = 0; l < L; l++) {                                                         \
                /* the unpack in T (the FFT's own precision), the power and sums in double */   \
                const T er = zk[l] + zm[l], ei = zk[L + l] - zm[L + l];                       \
                const T orr = zk[L + l] + zm[L + l], oi = zm[l] - zk[l];                      \
                const double xr = (double)(er + ct * orr - st * oi);                          \
                const double xi = (double)(ei + ct * oi + st * orr);                          \
                const double p = f * (xr * xr + xi * xi);                                     \
                pk[l] = p;                                                                    \
                tot[l] += p;                                                                  \
                fsum[l] += fk * p;                                                            \
                const int up = p > pmax[l];                                                   \
                pmax[l] = up ? p : pmax[l];                                                   \
                kmax[l] = up ? kd : kmax[l];                                                  \
            }                                                                                 \
            const ptrdiff_t bk = band_of[k];                                                  \
            if (bk >= 0) {                                                                    \
                double *restrict acc = bacc + L * bk;                                         \
                _Pragma("omp simd")                                                           \
                for (l = 0; l < L; l++) acc[l] += pk[l];                                      \
            }                                                                                 \
        }                                                                                     \
        for (l = 0; l < L; l++) {                                                             \
            double *o = out[l];                                                               \
            if (o == NULL) continue;                                                          \
            o[AIOT_S_COUNT] = 1.0;                                                            \
            if (g[l] != g[l]) {                                                               \
                for (ptrdiff_t k = 1; k < AIOT_S_BANDS + nbands; k++) o[k] = NAN;             \
                continue;                                                                     \
            }                                                                                 \
            o[AIOT_S_TOTAL] = tot[l] * g[l];                                                  \
            o[AIOT_S_FSUM] = fsum[l] * g[l];                                                  \
            o[AIOT_S_PEAK] = pmax[l] * g[l];                                                  \
            o[AIOT_S_PEAK_F] = pmax[l] > 0.0 ? freqs[(ptrdiff_t)kmax[l]] : 0.0;               \
            double e1 = 0.0, e2 = 0.0; /* the 1x/2x ranges are a few bins, different per lane */   \
            for (ptrdiff_t k = h[4 * l]; k < h[4 * l + 1]; k++) e1 += power[L * k + l];          \
            for (ptrdiff_t k = h[4 * l + 2]; k < h[4 * l + 3]; k++) e2 += power[L * k + l];     \
            o[AIOT_S_E1] = h[4 * l] < 0 ? NAN : e1 * g[l];                                    \
            o[AIOT_S_E2] = h[4 * l + 2] < 0 ? NAN : e2 * g[l];                                \
            for (ptrdiff_t b = 0; b < nbands; b++) o[AIOT_S_BANDS + b] = bacc[L * b + l] * g[l]; \
        }                                                                                     \
    }

AIOT_DEFINE_FFT_LANES(aiot_fft_lanes_f, float)
AIOT_DEFINE_FFT_LANES(aiot_fft_lanes_d, double)



/* a <- a (+) b for spectral partials (a's frame(s) before b's): sums add; the
 * peak is the larger one (a tie keeps a's, the earlier); NaN propagates. */
static void aiot_merge_spectral(double *restrict a, const double *restrict b, ptrdiff_t ncols)
{
    if (b[AIOT_S_COUNT] == 0.0) return;
    if (a[AIOT_S_COUNT] == 0.0) {
        memcpy(a, b, sizeof(double) * (size_t)ncols);
        return;
    }
    const double pa = a[AIOT_S_PEAK], pb = b[AIOT_S_PEAK];
    if (pa != pa || pb != pb) {
        a[AIOT_S_PEAK] = NAN;
        a[AIOT_S_PEAK_F] = NAN;
    } else if (pb > pa) {
        a[AIOT_S_PEAK] = pb;
        a[AIOT_S_PEAK_F] = b[AIOT_S_PEAK_F];
    }
    a[AIOT_S_COUNT] += b[AIOT_S_COUNT];
    a[AIOT_S_TOTAL] += b[AIOT_S_TOTAL];
    a[AIOT_S_FSUM] += b[AIOT_S_FSUM];
    a[AIOT_S_E1] += b[AIOT_S_E1];
    a[AIOT_S_E2] += b[AIOT_S_E2];
    for (ptrdiff_t k = AIOT_S_BANDS; k < ncols; k++) a[k] += b[k];
}

/* Spectral features from (merged) spectral partials: bands..., centroid,
 * dominant, e1x, e2x (band and harmonic powers averaged over the frames). */
static void aiot_spectral_features(const double *restrict p, ptrdiff_t nbands, double *restrict f)
{
    const double c = p[AIOT_S_COUNT];
    ptrdiff_t b;
    if (!(c > 0.0)) {
        for (b = 0; b < nbands + 4; b++) f[b] = NAN;
        return;
    }
    for (b = 0; b < nbands; b++) f[b] = p[AIOT_S_BANDS + b] / c;
    const double tot = p[AIOT_S_TOTAL];
    f[nbands] = tot != 0.0 ? p[AIOT_S_FSUM] / tot : 0.0;
    f[nbands + 1] = p[AIOT_S_PEAK_F];
    f[nbands + 2] = p[AIOT_S_E1] / c;
    f[nbands + 3] = p[AIOT_S_E2] / c;
    if (tot != tot) {
        for (b = 0; b < nbands + 4; b++) f[b] = NAN;
    }
}

#endif /* AIOT_KERNELS_CORE_H */

"""Indicator kernels: the loops numpy cannot express without drift or an O(n*window) cost.

(Also the inner loops of two statistics numpy can only do through large
temporaries: :func:`block_sums` for the block bootstrap and :func:`cscv_logits` for
the probability of backtest overfitting.)

Every public kernel takes a C-contiguous float64 panel ``x`` of shape
``(n_bars, n_cols)``, processes each column independently along axis 0 and writes
into a caller-allocated ``out`` of the same shape. They are causal: ``out[t]``
depends on ``x[0..t]`` only, and a kernel run on a prefix of the data gives a
prefix of the result, bit for bit. The loops release the GIL. The Python-facing
API, parameter checks and documentation of each formula live in
:mod:`engine.indicators`.
"""

from libc.math cimport INFINITY, NAN, fabs, isfinite, isnan, log, round, sqrt
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free, malloc

cdef extern from *:
    """
    #ifndef ENGINE_DEBUG_BUILD
    #define ENGINE_DEBUG_BUILD 0
    #endif
    """
    const bint ENGINE_DEBUG_BUILD

# The inner loops of cscv_logits, two sets at a time with SSE2 (every x86-64 processor
# has it; elsewhere the plain loops run). Each packed operation is the scalar one on two
# values, rounded the same way (IEEE 754), and a product never feeds an addition in one
# instruction (no FMA), so the keys and counts are those of the plain loops bit for bit.
cdef extern from *:
    """
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif

    /* Keys of sets j0..j1-1: in sample into in_num/in_den[j - j0], out of sample into
       out_num/out_den[j]. */
    static void engine_cscv_keys(const double* ls1, const double* hs1, const double* ls2,
                                 const double* hs2, const double* all1, const double* all2,
                                 Py_ssize_t j0, Py_ssize_t j1, double n_here, double n_out,
                                 double* in_num, double* in_den, double* out_num,
                                 double* out_den) {
        Py_ssize_t j = j0;
        double s1, s2;
    #if defined(__SSE2__)
        const __m128d sign = _mm_set1_pd(-0.0), nh = _mm_set1_pd(n_here),
                      no = _mm_set1_pd(n_out);
        for (; j + 2 <= j1; j += 2) {
            __m128d a1 = _mm_add_pd(_mm_loadu_pd(ls1 + j), _mm_loadu_pd(hs1 + j));
            __m128d a2 = _mm_add_pd(_mm_loadu_pd(ls2 + j), _mm_loadu_pd(hs2 + j));
            _mm_storeu_pd(in_den + (j - j0),
                          _mm_sub_pd(_mm_mul_pd(nh, a2), _mm_mul_pd(a1, a1)));
            _mm_storeu_pd(in_num + (j - j0), _mm_mul_pd(a1, _mm_andnot_pd(sign, a1)));
            a1 = _mm_sub_pd(_mm_loadu_pd(all1 + j), a1);
            a2 = _mm_sub_pd(_mm_loadu_pd(all2 + j), a2);
            _mm_storeu_pd(out_num + j, _mm_mul_pd(a1, _mm_andnot_pd(sign, a1)));
            _mm_storeu_pd(out_den + j, _mm_sub_pd(_mm_mul_pd(no, a2), _mm_mul_pd(a1, a1)));
        }
    #endif
        for (; j < j1; j++) {
            double p, q;
            s1 = ls1[j] + hs1[j];
            s2 = ls2[j] + hs2[j];
            p = n_here * s2;
            q = s1 * s1;
            in_den[j - j0] = p - q;
            in_num[j - j0] = s1 * fabs(s1);
            s1 = all1[j] - s1;
            s2 = all2[j] - s2;
            out_num[j] = s1 * fabs(s1);
            p = n_out * s2;
            q = s1 * s1;
            out_den[j] = p - q;
        }
    }

    /* Whether a key of num/den[0..n-1] beats the standing (top_num, top_den): den > 0
       and, when top_den > 0, num * top_den > top_num * den. */
    static int engine_cscv_beats(const double* num, const double* den, Py_ssize_t n,
                                 double top_num, double top_den) {
        Py_ssize_t j = 0;
        int hit = 0;
    #if defined(__SSE2__)
        const __m128d zero = _mm_setzero_pd(), tn = _mm_set1_pd(top_num),
                      td = _mm_set1_pd(top_den);
        __m128d any = _mm_setzero_pd();
        for (; j + 2 <= n; j += 2) {
            __m128d d = _mm_loadu_pd(den + j);
            __m128d m = _mm_cmpgt_pd(d, zero);
            if (top_den > 0)
                m = _mm_and_pd(m, _mm_cmpgt_pd(_mm_mul_pd(_mm_loadu_pd(num + j), td),
                                               _mm_mul_pd(tn, d)));
            any = _mm_or_pd(any, m);
        }
        hit = _mm_movemask_pd(any) != 0;
    #endif
        for (; j < n; j++)
            hit |= den[j] > 0 && (top_den <= 0 || num[j] * top_den > top_num * den[j]);
        return hit;
    }

    /* Sets whose key out of sample is below the winner's (best_num, best_den), and
       equal to it; with best_den <= 0 (no spread), the sets with none are equal. */
    static void engine_cscv_rank(const double* num, const double* den, Py_ssize_t n,
                                 double best_num, double best_den, Py_ssize_t* below,
                                 Py_ssize_t* equal) {
        Py_ssize_t j = 0, b = 0, e = 0;
    #if defined(__SSE2__)
        const __m128d zero = _mm_setzero_pd(), bn = _mm_set1_pd(best_num),
                      bd = _mm_set1_pd(best_den);
        __m128i vb = _mm_setzero_si128(), ve = _mm_setzero_si128();
        long long lanes[2];
        for (; j + 2 <= n; j += 2) {
            __m128d d = _mm_loadu_pd(den + j);
            if (best_den <= 0) {
                ve = _mm_sub_epi64(ve, _mm_castpd_si128(_mm_cmple_pd(d, zero)));
            } else {
                __m128d x = _mm_mul_pd(_mm_loadu_pd(num + j), bd), y = _mm_mul_pd(bn, d);
                __m128d gt = _mm_cmpgt_pd(d, zero);
                __m128d lo = _mm_or_pd(_mm_cmple_pd(d, zero), _mm_and_pd(gt, _mm_cmplt_pd(x, y)));
                vb = _mm_sub_epi64(vb, _mm_castpd_si128(lo));
                ve = _mm_sub_epi64(ve, _mm_castpd_si128(_mm_and_pd(gt, _mm_cmpeq_pd(x, y))));
            }
        }
        _mm_storeu_si128((__m128i*) lanes, vb);
        b = (Py_ssize_t) (lanes[0] + lanes[1]);
        _mm_storeu_si128((__m128i*) lanes, ve);
        e = (Py_ssize_t) (lanes[0] + lanes[1]);
    #endif
        for (; j < n; j++) {
            double d = den[j];
            if (best_den <= 0) {
                e += d <= 0;
            } else {
                double x = num[j] * best_den, y = best_num * d;
                b += (d <= 0) | ((d > 0) & (x < y));
                e += (d > 0) & (x == y);
            }
        }
        *below = b;
        *equal = e;
    }
    """
    void engine_cscv_keys(const double* ls1, const double* hs1, const double* ls2,
                          const double* hs2, const double* all1, const double* all2,
                          Py_ssize_t j0, Py_ssize_t j1, double n_here, double n_out,
                          double* in_num, double* in_den, double* out_num,
                          double* out_den) noexcept nogil
    int engine_cscv_beats(const double* num, const double* den, Py_ssize_t n,
                          double top_num, double top_den) noexcept nogil
    void engine_cscv_rank(const double* num, const double* den, Py_ssize_t n,
                          double best_num, double best_den, Py_ssize_t* below,
                          Py_ssize_t* equal) noexcept nogil

# True when built with ENGINE_CYTHON_DEBUG=1: every check on (see setup.py).
DEBUG_BUILD = ENGINE_DEBUG_BUILD

# Classes returned by decimal_ticks besides a decimal count 0..8.
cdef enum:
    C_FLOAT = 9     # finite, but not a decimal with <= 8 places (or too large to sum exactly)
    C_NAN = -1
    C_PINF = -2
    C_NINF = -3

cdef enum:
    BLOCK = 16      # columns gathered at once for a column kernel: two cache lines of a row
    CHUNK = 32      # sets cscv_logits checks at once against the standing best

cdef double TWO53 = 9007199254740992.0          # 2**53: doubles hold integers exactly below
cdef int64_t ITWO53 = 9007199254740992
cdef double RND = 6755399441055744.0            # 1.5 * 2**52: (t+RND)-RND == rint(t), |t|<2**51
cdef double SMALL = 11258999.0                  # < 2**50 / 1e8: fast path bound on |v|
cdef double[9] POW10 = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8]
cdef int64_t[9] IPOW10 = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000]
cdef int64_t[9] ILIMIT      # 2**53 // 10**e: a class sum times 10**e stays below 2**53
for _e in range(9):
    ILIMIT[_e] = ITWO53 // IPOW10[_e]


cdef inline void _check(const double[:, ::1] x, double[:, ::1] out, Py_ssize_t window):
    if out.shape[0] != x.shape[0] or out.shape[1] != x.shape[1]:
        raise ValueError(
            f"out has shape ({out.shape[0]}, {out.shape[1]}), "
            f"x has ({x.shape[0]}, {x.shape[1]})"
        )
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")


cdef inline void _kahan_add(double* s, double* c, double v) noexcept nogil:
    # Neumaier's compensated summation: s + c carries the sum; c collects the low
    # bits that s lost, whichever of s and v is larger.
    cdef double t = s[0] + v
    if fabs(s[0]) >= fabs(v):
        c[0] += (s[0] - t) + v
    else:
        c[0] += (v - t) + s[0]
    s[0] = t


cdef inline void _slide(double* s, double* c, double enter, double leave) noexcept nogil:
    # Add enter - leave to the compensated sum s + c. The difference is formed exactly
    # (TwoSum: d + e == enter - leave) off the running chain, so each bar costs one
    # dependent addition on s instead of two.
    cdef double d = enter - leave, z = d - enter, e = (enter - (d - z)) + (-leave - z)
    _kahan_add(s, c, d)
    c[0] += e


# --------------------------------------------------------------------------------------
# Rolling mean: exact on decimal data, compensated otherwise
# --------------------------------------------------------------------------------------

cdef inline signed char decimal_ticks(double v, double limit, int64_t* tick) noexcept nogil:
    """Class of ``v`` for the exact rolling sum, and its integer ticks.

    A value is a decimal with ``d`` places when ``rint(v * 10**d) / 10**d == v`` (``v``
    is then the double nearest to ``k / 10**d``, ``k = rint(v * 10**d)``). Returns
    ``d`` and sets ``tick[0] = k`` for the smallest such ``d`` in 0..8 with
    ``|k| < limit``, except that 2 is returned for every value with at most 2 places
    (the usual prices, so a window of them has one class); C_FLOAT for any other
    finite value, C_NAN, C_PINF or C_NINF otherwise.
    """
    cdef double t
    cdef int d
    cdef int64_t k
    if not isfinite(v):
        if isnan(v):
            return C_NAN
        return C_PINF if v > 0 else C_NINF
    if fabs(v) < SMALL:
        # |v * 10**8| < 2**50: the rint trick is exact, and a decimal with d <= 8
        # places passes the test at 8 places with rint(v * 10**8) == k * 10**(8 - d).
        # One division rejects ordinary floats; the trailing decimal zeros of that
        # integer give the smallest d (the same d as testing d = 0, 1, ... in turn).
        t = (v * 1e8 + RND) - RND
        if t / 1e8 != v:
            return C_FLOAT
        k = <int64_t>t
        if k % 1000000 == 0:
            k //= 1000000
            d = 2
            if fabs(<double>k) >= limit:        # only with enormous windows
                while d > 0 and k % 10 == 0:
                    k //= 10
                    d -= 1
        else:
            d = 8
            if k % 10000 == 0:
                k //= 10000
                d -= 4
            if k % 100 == 0:
                k //= 100
                d -= 2
            if k % 10 == 0:
                k //= 10
                d -= 1
        if fabs(<double>k) >= limit:
            return C_FLOAT
        tick[0] = k
        return <signed char>d
    for d in range(9):
        t = round(v * POW10[d])
        if t / POW10[d] == v:
            if fabs(t) >= limit:
                return C_FLOAT
            tick[0] = <int64_t>t
            return <signed char>d
    return C_FLOAT


cdef inline void _count_special(signed char c, Py_ssize_t sign, Py_ssize_t* other) noexcept nogil:
    # other[0..3]: counts of C_FLOAT, NaN, +inf, -inf values in the window
    if c == C_FLOAT:
        other[0] += sign
    elif c == C_NAN:
        other[1] += sign
    elif c == C_PINF:
        other[2] += sign
    else:
        other[3] += sign


cdef bint rolling_mean_cents(const double* x, Py_ssize_t n, Py_ssize_t window,
                             double* out) noexcept nogil:
    """The rolling mean of a column whose every value has at most 2 decimal places.

    The common case of prices, done in two light passes: a check that each value is
    finite, a decimal with at most 2 places and small enough (the class
    ``decimal_ticks`` gives 2), then one int64 sliding sum of cents. The result is
    the general kernel's, bit for bit: the same exact sum divided once by
    ``window * 100``. Returns False, writing nothing, when a value does not qualify
    (the caller then runs the general kernel).
    """
    cdef double w = <double>window, limit = TWO53 / w, scale = w * 1e2, t, v
    cdef Py_ssize_t i
    cdef int64_t acc = 0
    if not scale < TWO53:
        return False
    for i in range(n):
        v = x[i]
        if not fabs(v) < SMALL:         # NaN and infinities fail too
            return False
        t = (v * 1e2 + RND) - RND
        if t / 1e2 != v or fabs(t) >= limit:
            return False
    for i in range(n):
        acc += <int64_t>((x[i] * 1e2 + RND) - RND)
        if i >= window:
            acc -= <int64_t>((x[i - window] * 1e2 + RND) - RND)
        out[i] = NAN if i < window - 1 else <double>acc / scale
    return True


cdef void rolling_mean_column(const double* x, Py_ssize_t n, Py_ssize_t window,
                              signed char* dec, int64_t* tick, Py_ssize_t mask,
                              double* out) noexcept nogil:
    """Mean of ``x[t-window+1..t]`` into ``out[t]``, for one contiguous column of ``n``.

    A window whose values are all decimals (see decimal_ticks) is summed exactly in
    int64 ticks per decimal class; the class sums are scaled to the window's largest
    class ``top`` and the exact total is divided once by ``window * 10**top``. The
    result is the correctly rounded decimal mean: windows with equal means give equal
    doubles. If that total would reach 2**53 (or a value is not a decimal) the window
    uses a Neumaier-compensated running sum instead. That sum is recomputed from
    scratch when such a window follows ``window`` bars without one (or a NaN/inf
    window) and slid otherwise, so no error accumulates and the restarts cost O(n) in
    all. ``dec``/``tick`` are a ring buffer of ``mask + 1`` (a power of two >= window)
    slots holding the classes and ticks of the window's values.
    """
    cdef Py_ssize_t i, m, n_special = 0, keep = 0
    cdef double w = <double>window, limit = TWO53 / w, fs = 0.0, fc = 0.0
    cdef int64_t[9] s
    cdef Py_ssize_t[9] cnt
    cdef Py_ssize_t[4] other
    cdef bint[9] exact_ok
    cdef int64_t acc, v
    cdef int d, top = 0
    cdef signed char c
    cdef bint exact, running = False
    for d in range(9):
        s[d] = 0
        cnt[d] = 0
        exact_ok[d] = w * POW10[d] < TWO53     # the divisor is an exact double
    for d in range(4):
        other[d] = 0
    for i in range(n):
        if i >= window:     # the value leaving shares its ring slot with the one entering
            m = (i - window) & mask
            c = dec[m]
            if c >= 0 and c < C_FLOAT:
                s[c] -= tick[m]
                cnt[c] -= 1
                while top > 0 and cnt[top] == 0:
                    top -= 1
            else:
                _count_special(c, -1, other)
                n_special -= 1
        m = i & mask
        c = decimal_ticks(x[i], limit, &tick[m])
        dec[m] = c
        if c >= 0 and c < C_FLOAT:
            s[c] += tick[m]
            cnt[c] += 1
            if c > top:
                top = c
        else:
            _count_special(c, 1, other)
            n_special += 1
        if i < window - 1:
            out[i] = NAN
            continue
        if n_special == 0:
            exact = exact_ok[top]
            acc = s[top]
            if cnt[top] != window:      # mixed classes: scale the lower ones up to top
                for d in range(top):
                    v = s[d]
                    if v >= ILIMIT[top - d] or v <= -ILIMIT[top - d]:
                        exact = False
                        break
                    acc += v * IPOW10[top - d]
                exact = exact and -ITWO53 < acc < ITWO53
            if exact:
                out[i] = <double>acc / (w * POW10[top])
                if running:             # keep the compensated sum for a window's length
                    _slide(&fs, &fc, x[i], x[i - window])
                    keep -= 1
                    running = keep > 0
                continue
        elif other[1] > 0 or (other[2] > 0 and other[3] > 0):
            out[i] = NAN
            running = False
            continue
        elif other[2] > 0 or other[3] > 0:
            out[i] = INFINITY if other[2] > 0 else -INFINITY
            running = False
            continue
        if running:
            _slide(&fs, &fc, x[i], x[i - window])
        else:
            fs = 0.0
            fc = 0.0
            for m in range(i - window + 1, i + 1):
                _kahan_add(&fs, &fc, x[m])
            running = True
        keep = window
        out[i] = (fs + fc) / w


cdef inline Py_ssize_t _ring_size(Py_ssize_t window, Py_ssize_t n) noexcept nogil:
    # smallest power of two >= min(window, n), at least 1
    cdef Py_ssize_t cap = 1
    while cap < window and cap < n:
        cap <<= 1
    return cap


cpdef void rolling_mean(const double[:, ::1] x, Py_ssize_t window, double[:, ::1] out):
    """Rolling mean over ``window`` bars; NaN if the window holds a NaN or both infinities.

    The column kernel wants contiguous columns; a panel's columns are strided, so
    blocks of :data:`BLOCK` columns are gathered into a column-major scratch buffer
    (reading whole cache lines of each row) and the means scattered back.
    """
    _check(x, out, window)
    cdef Py_ssize_t n = x.shape[0], k = x.shape[1], i, j0, b, nb
    cdef Py_ssize_t cap = _ring_size(window, n)
    if n == 0 or k == 0:
        return
    cdef bint direct = k == 1
    cdef signed char* dec = <signed char*>malloc(cap * sizeof(signed char))
    cdef int64_t* tick = <int64_t*>malloc(cap * sizeof(int64_t))
    cdef double* col_in = NULL
    cdef double* col_out = NULL
    if not direct:
        col_in = <double*>malloc(BLOCK * n * sizeof(double))
        col_out = <double*>malloc(BLOCK * n * sizeof(double))
    if dec == NULL or tick == NULL or (not direct and (col_in == NULL or col_out == NULL)):
        free(dec)
        free(tick)
        free(col_in)
        free(col_out)
        raise MemoryError()
    with nogil:
        if direct:
            if not rolling_mean_cents(&x[0, 0], n, window, &out[0, 0]):
                rolling_mean_column(&x[0, 0], n, window, dec, tick, cap - 1, &out[0, 0])
        else:
            j0 = 0
            while j0 < k:
                nb = BLOCK if j0 + BLOCK <= k else k - j0
                for i in range(n):
                    for b in range(nb):
                        col_in[b * n + i] = x[i, j0 + b]
                for b in range(nb):
                    if not rolling_mean_cents(col_in + b * n, n, window, col_out + b * n):
                        rolling_mean_column(col_in + b * n, n, window, dec, tick, cap - 1,
                                            col_out + b * n)
                for i in range(n):
                    for b in range(nb):
                        out[i, j0 + b] = col_out[b * n + i]
                j0 += BLOCK
    free(dec)
    free(tick)
    free(col_in)
    free(col_out)


# --------------------------------------------------------------------------------------
# Rolling variance and correlation: sums of deviations from a recent in-window value
# --------------------------------------------------------------------------------------

cdef void _rolling_var_column(const double[:, ::1] x, Py_ssize_t j, Py_ssize_t window,
                              Py_ssize_t ddof, double[:, ::1] out) noexcept nogil:
    # Sums of (x - K) and (x - K)**2 with K = x[r], a value inside the window; they
    # are recomputed from scratch every `window` bars (r = that bar), so K never
    # leaves the window, cancellation stays small and no error accumulates.
    cdef Py_ssize_t n = x.shape[0], i, m, r = -1, last_bad = -1, run = 0
    cdef double w = <double>window, k = 0.0, v, dv, s1 = 0.0, c1 = 0.0, s2 = 0.0, c2 = 0.0
    cdef double t1, var
    for i in range(n):
        v = x[i, j]
        if not isfinite(v):
            last_bad = i
            r = -1
            run = 0
            out[i, j] = NAN
            continue
        run = run + 1 if (run > 0 and v == x[i - 1, j]) else 1
        if i - last_bad < window:
            out[i, j] = NAN
            continue
        if r < 0 or i - r >= window:
            r = i
            k = v
            s1 = c1 = s2 = c2 = 0.0
            for m in range(i - window + 1, i + 1):
                dv = x[m, j] - k
                _kahan_add(&s1, &c1, dv)
                _kahan_add(&s2, &c2, dv * dv)
        else:
            dv = v - k
            _kahan_add(&s1, &c1, dv)
            _kahan_add(&s2, &c2, dv * dv)
            dv = x[i - window, j] - k
            _kahan_add(&s1, &c1, -dv)
            _kahan_add(&s2, &c2, -(dv * dv))
        if run >= window:
            out[i, j] = 0.0             # constant window: exactly zero
            continue
        t1 = s1 + c1
        var = ((s2 + c2) - t1 * t1 / w) / (w - ddof)
        out[i, j] = var if var > 0.0 else 0.0


cpdef void rolling_var(const double[:, ::1] x, Py_ssize_t window, Py_ssize_t ddof,
                       double[:, ::1] out):
    """Rolling variance with ``ddof``; NaN if the window holds a non-finite value."""
    _check(x, out, window)
    if ddof < 0 or ddof >= window:
        raise ValueError(f"need 0 <= ddof < window, got ddof={ddof}, window={window}")
    cdef Py_ssize_t j
    with nogil:
        for j in range(x.shape[1]):
            _rolling_var_column(x, j, window, ddof, out)


cdef void _rolling_corr_column(const double[:, ::1] x, Py_ssize_t jx,
                               const double[:, ::1] y, Py_ssize_t jy, Py_ssize_t window,
                               double[:, ::1] out) noexcept nogil:
    # Same scheme as _rolling_var_column, with five sums of deviations.
    cdef Py_ssize_t n = x.shape[0], i, m, r = -1, last_bad = -1, run_x = 0, run_y = 0
    cdef double w = <double>window, kx = 0.0, ky = 0.0, u, v, du, dv
    cdef double sx = 0.0, cx = 0.0, sy = 0.0, cy = 0.0
    cdef double sxx = 0.0, cxx = 0.0, syy = 0.0, cyy = 0.0, sxy = 0.0, cxy = 0.0
    cdef double tx, ty, vx, vy, cov, rho
    for i in range(n):
        u = x[i, jx]
        v = y[i, jy]
        if not (isfinite(u) and isfinite(v)):
            last_bad = i
            r = -1
            run_x = run_y = 0
            out[i, jx] = NAN
            continue
        run_x = run_x + 1 if (run_x > 0 and u == x[i - 1, jx]) else 1
        run_y = run_y + 1 if (run_y > 0 and v == y[i - 1, jy]) else 1
        if i - last_bad < window:
            out[i, jx] = NAN
            continue
        if r < 0 or i - r >= window:
            r = i
            kx = u
            ky = v
            sx = cx = sy = cy = sxx = cxx = syy = cyy = sxy = cxy = 0.0
            for m in range(i - window + 1, i + 1):
                du = x[m, jx] - kx
                dv = y[m, jy] - ky
                _kahan_add(&sx, &cx, du)
                _kahan_add(&sy, &cy, dv)
                _kahan_add(&sxx, &cxx, du * du)
                _kahan_add(&syy, &cyy, dv * dv)
                _kahan_add(&sxy, &cxy, du * dv)
        else:
            du = u - kx
            dv = v - ky
            _kahan_add(&sx, &cx, du)
            _kahan_add(&sy, &cy, dv)
            _kahan_add(&sxx, &cxx, du * du)
            _kahan_add(&syy, &cyy, dv * dv)
            _kahan_add(&sxy, &cxy, du * dv)
            du = x[i - window, jx] - kx
            dv = y[i - window, jy] - ky
            _kahan_add(&sx, &cx, -du)
            _kahan_add(&sy, &cy, -dv)
            _kahan_add(&sxx, &cxx, -(du * du))
            _kahan_add(&syy, &cyy, -(dv * dv))
            _kahan_add(&sxy, &cxy, -(du * dv))
        if run_x >= window or run_y >= window:
            out[i, jx] = NAN            # a constant window has no correlation
            continue
        tx = sx + cx
        ty = sy + cy
        vx = (sxx + cxx) - tx * tx / w
        vy = (syy + cyy) - ty * ty / w
        if vx <= 0.0 or vy <= 0.0:
            out[i, jx] = NAN
            continue
        cov = (sxy + cxy) - tx * ty / w
        rho = cov / (sqrt(vx) * sqrt(vy))
        out[i, jx] = 1.0 if rho > 1.0 else (-1.0 if rho < -1.0 else rho)


cpdef void rolling_corr(const double[:, ::1] x, const double[:, ::1] y, Py_ssize_t window,
                        double[:, ::1] out):
    """Rolling Pearson correlation of the columns of ``x`` with those of ``y``.

    ``y`` has as many columns as ``x``, or one column that pairs with every column of
    ``x``. NaN where the window holds a non-finite value or either side is constant.
    """
    _check(x, out, window)
    if y.shape[0] != x.shape[0] or (y.shape[1] != x.shape[1] and y.shape[1] != 1):
        raise ValueError(
            f"y has shape ({y.shape[0]}, {y.shape[1]}), x has ({x.shape[0]}, {x.shape[1]})"
        )
    cdef Py_ssize_t j
    cdef bint one = y.shape[1] == 1
    with nogil:
        for j in range(x.shape[1]):
            _rolling_corr_column(x, j, y, 0 if one else j, window, out)


# --------------------------------------------------------------------------------------
# Rolling max / min: van Herk / Gil-Werman blocks
# --------------------------------------------------------------------------------------

cdef void rolling_extreme_column(const double[:, ::1] x, Py_ssize_t j, Py_ssize_t window,
                                 bint find_max, double* h, double[:, ::1] out) noexcept nogil:
    """Max (or min) of ``x[t-window+1..t, j]``; NaN while the window holds a NaN.

    van Herk / Gil-Werman: cut the column into blocks of ``window`` bars. A window
    ending at ``t`` spans the tail of the previous block and the head of ``t``'s block,
    so its extreme is the better of ``h[t-window+1]`` (suffix extreme of the previous
    block) and ``g`` (running prefix extreme of the current block). Three comparisons
    per bar, no data-dependent branches, O(window) scratch ``h``. NaN never wins a
    comparison, so it is ignored in the scan and reported through ``last_nan``.
    """
    cdef Py_ssize_t n = x.shape[0], i, b = 0, e, last_nan = -1
    cdef double worst = -INFINITY if find_max else INFINITY, g, v, m
    for i in range(window):
        h[i] = worst
    while b < n:
        e = b + window if b + window < n else n
        g = worst
        for i in range(b, e):
            v = x[i, j]
            last_nan = i if v != v else last_nan
            if find_max:
                g = v if v > g else g
            else:
                g = v if v < g else g
            if i < b + window - 1:      # the window also covers the previous block's tail
                m = h[i + 1 - b]
                if find_max:
                    m = m if m > g else g
                else:
                    m = m if m < g else g
            else:
                m = g
            out[i, j] = NAN if i - last_nan < window else m
        g = worst
        for i in range(e - 1, b - 1, -1):
            v = x[i, j]
            if find_max:
                g = v if v > g else g
            else:
                g = v if v < g else g
            h[i - b] = g
        b += window


cdef void _rolling_extreme(const double[:, ::1] x, Py_ssize_t window, bint find_max,
                           double[:, ::1] out) except *:
    _check(x, out, window)
    cdef Py_ssize_t j
    if x.shape[0] == 0 or x.shape[1] == 0:
        return
    if window > x.shape[0]:
        window = x.shape[0] + 1     # all NaN; keeps the scratch small
    cdef double* h = <double*>malloc(window * sizeof(double))
    if h == NULL:
        raise MemoryError()
    with nogil:
        for j in range(x.shape[1]):
            rolling_extreme_column(x, j, window, find_max, h, out)
    free(h)


cpdef void rolling_max(const double[:, ::1] x, Py_ssize_t window, double[:, ::1] out):
    """Rolling maximum over ``window`` bars, O(n); NaN while the window holds a NaN."""
    _rolling_extreme(x, window, True, out)


cpdef void rolling_min(const double[:, ::1] x, Py_ssize_t window, double[:, ::1] out):
    """Rolling minimum over ``window`` bars, O(n); NaN while the window holds a NaN."""
    _rolling_extreme(x, window, False, out)


# --------------------------------------------------------------------------------------
# Recursive smoothers
# --------------------------------------------------------------------------------------

cpdef void ema_seeded(const double[:, ::1] x, const double[:, ::1] seed, double alpha,
                      double[:, ::1] out):
    """Exponential moving average ``e[t] = e[t-1] + alpha * (x[t] - e[t-1])``.

    Whenever ``e[t-1]`` is NaN (start, or after a NaN input) the recursion restarts
    from ``seed[t]`` (the caller passes the rolling mean over the seed window, NaN
    until that window is clean).
    """
    _check(x, out, 1)
    if seed.shape[0] != x.shape[0] or seed.shape[1] != x.shape[1]:
        raise ValueError("seed must have the shape of x")
    cdef Py_ssize_t i, j
    cdef double prev, v
    with nogil:
        for j in range(x.shape[1]):
            prev = NAN
            for i in range(x.shape[0]):
                v = x[i, j]
                if isnan(prev):
                    prev = seed[i, j]
                elif isnan(v):
                    prev = NAN
                else:
                    prev = prev + alpha * (v - prev)
                out[i, j] = prev


cdef inline double _rsi_value(double gain, double loss) noexcept nogil:
    if loss == 0.0:
        return 100.0 if gain > 0.0 else 50.0
    return 100.0 - 100.0 / (1.0 + gain / loss)


cpdef void wilder_rsi(const double[:, ::1] x, Py_ssize_t window, double[:, ::1] out):
    """Wilder's RSI; restarts (``window`` fresh changes) after a non-finite change."""
    _check(x, out, window)
    cdef Py_ssize_t i, j, run
    cdef double w = <double>window, d, gain, loss, ag, al
    with nogil:
        for j in range(x.shape[1]):
            run = 0
            ag = al = 0.0
            for i in range(x.shape[0]):
                d = x[i, j] - x[i - 1, j] if i > 0 else NAN
                if not isfinite(d):
                    run = 0
                    ag = al = 0.0
                    out[i, j] = NAN
                    continue
                gain = d if d > 0.0 else 0.0
                loss = -d if d < 0.0 else 0.0
                run += 1
                if run < window:
                    ag += gain
                    al += loss
                    out[i, j] = NAN
                    continue
                if run == window:
                    ag = (ag + gain) / w
                    al = (al + loss) / w
                else:
                    ag = (ag * (w - 1.0) + gain) / w
                    al = (al * (w - 1.0) + loss) / w
                out[i, j] = _rsi_value(ag, al)


# --------------------------------------------------------------------------------------
# Crossings
# --------------------------------------------------------------------------------------

cpdef void cross_signs(const double[:, ::1] diff, signed char[:, ::1] out):
    """+1 where ``diff`` turns positive, -1 where it turns negative, else 0.

    Compared with the last non-zero sign seen in the column: zeros (ties) and NaN
    keep that memory, and the first non-zero sign is not a crossing.
    """
    if out.shape[0] != diff.shape[0] or out.shape[1] != diff.shape[1]:
        raise ValueError("out must have the shape of diff")
    cdef Py_ssize_t i, j, k = diff.shape[1]
    cdef int sign, before
    cdef double d
    # Row by row with one remembered sign per column, reading the panel as it is stored;
    # branch-free, since the signs of market data are close to random.
    cdef int* last = <int*>calloc(k if k else 1, sizeof(int))
    if last == NULL:
        raise MemoryError()
    with nogil:
        for i in range(diff.shape[0]):
            for j in range(k):
                d = diff[i, j]
                sign = (d > 0.0) - (d < 0.0)        # NaN compares false: 0
                before = last[j]
                out[i, j] = <signed char>(sign * (sign * before < 0))
                last[j] = sign if sign != 0 else before
    free(last)


cpdef void cross_signs_by_row(const double[:, ::1] diff, signed char[:, ::1] out):
    """:func:`cross_signs` of ``diff.T``, written to ``out.T``: each row of ``diff`` is
    one series of bars (the layout of :meth:`engine.strategy.parameter_sets.
    ParameterSets.map`'s columns, stored set by set), read in the order it is stored.
    """
    if out.shape[0] != diff.shape[0] or out.shape[1] != diff.shape[1]:
        raise ValueError("out must have the shape of diff")
    cdef Py_ssize_t i, j
    cdef int sign, before
    cdef double d
    with nogil:
        for j in range(diff.shape[0]):
            before = 0
            for i in range(diff.shape[1]):
                d = diff[j, i]
                sign = (d > 0.0) - (d < 0.0)        # NaN compares false: 0
                out[j, i] = <signed char>(sign * (sign * before < 0))
                before = sign if sign != 0 else before


# --------------------------------------------------------------------------------------
# Buy-and-hold reference curve
# --------------------------------------------------------------------------------------

cpdef void hold_curve(const double[:, ::1] close, double part, double[::1] first,
                      double[::1] mark, double[::1] out):
    """Value of ``part`` invested in each column at its first finite close, per row.

    ``out[t] = sum_j part * mark_j(t) / first_j`` with ``mark_j`` the close carried
    forward over NaN, summed over ``j`` in column order; a column counts as ``part``
    (cash) before its first finite close. ``first`` and ``mark`` (one per column,
    NaN when unknown) are read and updated, so a curve can be built chunk by chunk.
    One pass in row order, so a wide panel is read the way it is stored.
    """
    cdef Py_ssize_t n = close.shape[0], k = close.shape[1], i, j
    if out.shape[0] != n:
        raise ValueError(f"out must have {n} rows; got {out.shape[0]}")
    if first.shape[0] != k or mark.shape[0] != k:
        raise ValueError(f"first and mark must have {k} values, one per column")
    cdef double total, c
    with nogil:
        for i in range(n):
            total = 0.0
            for j in range(k):
                c = close[i, j]
                if isfinite(c):
                    mark[j] = c
                    if isnan(first[j]):
                        first[j] = c
                if isnan(first[j]):
                    total += part
                else:
                    total += part * mark[j] / first[j]
            out[i] = total


cpdef void block_sums(const double[:, ::1] prefix, const int64_t[:, ::1] starts,
                      const int64_t[:, ::1] taken, double[:, ::1] out):
    """Sums of blocks of rows, one resample per row of ``starts``.

    ``prefix[j]`` holds the running sums of column ``j`` (``prefix[j, 0] = 0``);
    resample ``r`` is the blocks ``starts[r, q] .. starts[r, q] + taken[r, q] - 1``
    for ``q`` up to the first empty block, and ``out[r, j]`` their sum of column
    ``j``: ``sum_q prefix[j, start + taken] - prefix[j, start]``. The caller
    (:func:`engine.analysis.stats.stationary_block_sums`) draws the blocks and
    keeps every index inside ``prefix``.
    """
    cdef Py_ssize_t r, j, q, start, length
    cdef Py_ssize_t reps = starts.shape[0], per = starts.shape[1], k = prefix.shape[0]
    cdef double acc
    if taken.shape[0] != reps or taken.shape[1] != per:
        raise ValueError(f"taken has shape ({taken.shape[0]}, {taken.shape[1]}), "
                         f"starts has ({reps}, {per})")
    if out.shape[0] != reps or out.shape[1] != k:
        raise ValueError(f"out has shape ({out.shape[0]}, {out.shape[1]}); "
                         f"expected ({reps}, {k})")
    with nogil:
        for r in range(reps):
            for j in range(k):
                acc = 0.0
                for q in range(per):
                    length = taken[r, q]
                    if length == 0:
                        break
                    start = starts[r, q]
                    acc += prefix[j, start + length] - prefix[j, start]
                out[r, j] = acc


cpdef void cscv_logits(const double[::1] n_in, double n_all, const int64_t[::1] low,
                       const int64_t[::1] high, const double[:, ::1] low_s1,
                       const double[:, ::1] low_s2, const double[:, ::1] high_s1,
                       const double[:, ::1] high_s2, const double[::1] all_s1,
                       const double[::1] all_s2, double[::1] scratch, double[::1] out):
    """The CSCV logit of every split (Bailey, Borwein, López de Prado & Zhu 2017).

    Split ``k``'s in-sample half is the blocks of the first half of the blocks in
    the bit mask ``low[k]`` and those of the second half in ``high[k]``; its
    bars number ``n_in[k]`` (``n_all`` in all). ``low_s1[m, j]`` (``low_s2``) is
    set ``j``'s sum of returns (of squares) over the first-half blocks of mask
    ``m``, ``high_s1``/``high_s2`` the same for the second half, ``all_s1``/
    ``all_s2`` over every block. For each split: the best set in sample (the
    first on a tie), its rank among every set's out of sample (ties count half),
    and the logit of the rank over ``n_sets + 1``. Sets are compared by
    ``sign(SR) SR^2``, which orders them as their Sharpe ratios, with no square
    root nor division. ``scratch`` holds ``2 * n_sets`` doubles.
    :func:`engine.analysis.stats.overfitting_from_summaries` lays out the tables.
    """
    cdef Py_ssize_t n_sets = all_s1.shape[0], n_splits = out.shape[0]
    cdef Py_ssize_t k, j, a, b, best, below, equal, j0, j1, hit
    cdef double num, den, top_num, top_den, best_num, best_den
    cdef double relative, n_out, n_here
    cdef const double* ls1
    cdef const double* ls2
    cdef const double* hs1
    cdef const double* hs2
    cdef double* out_num
    cdef double* out_den
    cdef double in_num[CHUNK]
    cdef double in_den[CHUNK]
    if (low.shape[0] != n_splits or high.shape[0] != n_splits or n_in.shape[0] != n_splits
            or scratch.shape[0] < 2 * n_sets or all_s2.shape[0] != n_sets
            or low_s1.shape[1] != n_sets or high_s1.shape[1] != n_sets
            or low_s2.shape[1] != n_sets or high_s2.shape[1] != n_sets):
        raise ValueError("cscv_logits: the tables, masks and sets do not match")
    if n_sets == 0:
        for k in range(n_splits):
            out[k] = NAN
        return
    for k in range(n_splits):
        if not (0 <= low[k] < low_s1.shape[0] and 0 <= low[k] < low_s2.shape[0]
                and 0 <= high[k] < high_s1.shape[0] and 0 <= high[k] < high_s2.shape[0]):
            raise ValueError(f"cscv_logits: split {k}'s masks ({low[k]}, {high[k]}) are "
                             f"outside the tables")
    out_num = &scratch[0]
    out_den = &scratch[n_sets]
    # A set's Sharpe ratio over a half is ordered as num / den with num = s1 |s1| and
    # den = n s2 - s1^2 (sign(SR) SR^2 up to a positive factor of the half), -inf when
    # den <= 0 (no spread). Two keys compare by cross-multiplying: no division.
    with nogil:
        for k in range(n_splits):
            a = low[k]
            b = high[k]
            ls1 = &low_s1[a, 0]
            ls2 = &low_s2[a, 0]
            hs1 = &high_s1[b, 0]
            hs2 = &high_s2[b, 0]
            n_here = n_in[k]
            n_out = n_all - n_here
            # Per run of CHUNK sets: their keys in sample (kept for the run) and out of
            # sample (kept for the rank), then the best set in sample so far, the first
            # on a tie: a set replaces the standing one when its key is larger. Written
            # as one loop over the sets, the compiler turns the replacement into selects
            # that chain every set to the one before; here the run is first checked
            # against the standing set (no chain) and walked set by set only when it
            # holds a larger key. Each comparison made is one the plain loop makes, in
            # its order, so the winner is the same.
            best = 0
            top_num = 0.0
            top_den = 0.0   # 0: -inf
            j0 = 0
            while j0 < n_sets:
                j1 = j0 + CHUNK if j0 + CHUNK < n_sets else n_sets
                engine_cscv_keys(ls1, hs1, ls2, hs2, &all_s1[0], &all_s2[0], j0, j1, n_here,
                                 n_out, in_num, in_den, out_num, out_den)
                hit = engine_cscv_beats(in_num, in_den, j1 - j0, top_num, top_den)
                if hit:
                    for j in range(j1 - j0):
                        den = in_den[j]
                        if den > 0:
                            num = in_num[j]
                            if top_den <= 0 or num * top_den > top_num * den:
                                top_num = num
                                top_den = den
                                best = j0 + j
                j0 = j1
            best_num = out_num[best]
            best_den = out_den[best]
            # The rank of the winner out of sample, counted without branches: which way
            # a comparison goes is a coin toss the processor would mispredict half the
            # time. (A NaN key counts nowhere, as with the comparisons written out.)
            engine_cscv_rank(out_num, out_den, n_sets, best_num, best_den, &below, &equal)
            relative = (<double> below + (<double> equal + 1.0) / 2.0) / (n_sets + 1.0)
            out[k] = log(relative / (1.0 - relative))

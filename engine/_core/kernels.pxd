# Declarations of the indicator kernels (engine/_core/kernels.pyx).
#
# Every kernel reads a C-contiguous float64 panel of shape (n_bars, n_cols), works
# column by column along axis 0 and writes into a caller-allocated ``out`` of the same
# shape. Compiler directives are set once in setup.py, not here.

from libc.stdint cimport int64_t

# Public kernels, callable from Python and cimportable by other Cython modules.
cpdef void rolling_mean(const double[:, ::1] x, Py_ssize_t window, double[:, ::1] out)
cpdef void rolling_var(const double[:, ::1] x, Py_ssize_t window, Py_ssize_t ddof,
                       double[:, ::1] out)
cpdef void rolling_corr(const double[:, ::1] x, const double[:, ::1] y, Py_ssize_t window,
                        double[:, ::1] out)
cpdef void rolling_max(const double[:, ::1] x, Py_ssize_t window, double[:, ::1] out)
cpdef void rolling_min(const double[:, ::1] x, Py_ssize_t window, double[:, ::1] out)
cpdef void ema_seeded(const double[:, ::1] x, const double[:, ::1] seed, double alpha,
                      double[:, ::1] out)
cpdef void wilder_rsi(const double[:, ::1] x, Py_ssize_t window, double[:, ::1] out)
cpdef void cross_signs(const double[:, ::1] diff, signed char[:, ::1] out)
cpdef void cross_signs_by_row(const double[:, ::1] diff, signed char[:, ::1] out)
cpdef void hold_curve(const double[:, ::1] close, double part, double[::1] first,
                      double[::1] mark, double[::1] out)
cpdef void block_sums(const double[:, ::1] prefix, const int64_t[:, ::1] starts,
                      const int64_t[:, ::1] taken, double[:, ::1] out)
cpdef void cscv_logits(const double[::1] n_in, double n_all, const int64_t[::1] low,
                       const int64_t[::1] high, const double[:, ::1] low_s1,
                       const double[:, ::1] low_s2, const double[:, ::1] high_s1,
                       const double[:, ::1] high_s2, const double[::1] all_s1,
                       const double[::1] all_s2, double[::1] scratch, double[::1] out)

# Per-column workers (nogil); the caller owns the scratch buffers.
cdef bint rolling_mean_cents(const double* x, Py_ssize_t n, Py_ssize_t window,
                             double* out) noexcept nogil
cdef void rolling_mean_column(const double* x, Py_ssize_t n, Py_ssize_t window,
                              signed char* dec, int64_t* tick, Py_ssize_t mask,
                              double* out) noexcept nogil
cdef void rolling_extreme_column(const double[:, ::1] x, Py_ssize_t j, Py_ssize_t window,
                                 bint find_max, double* h, double[:, ::1] out) noexcept nogil

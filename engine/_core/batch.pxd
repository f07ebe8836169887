# Many parameter sets of the vectorised path in one compiled pass (engine.sweep, batched).

cdef struct Lot:
    # One row of a set's trade ledger (the model holds at most one lot per set and
    # symbol: entries only while flat, exits close the whole position).
    Py_ssize_t set_index
    bint closed
    double pnl              # closed: gain - costs
    double ret              # closed: pnl / (entry price * quantity)


cdef struct Account:
    # The state of one parameter set's account, with every field the broker's
    # arithmetic reads (cash with its Neumaier carry, the paid totals).
    double cash
    double carry
    double commissions
    double borrow
    Py_ssize_t rejected
    Py_ssize_t in_market    # bars marked with a position
    bint outside            # left the model: the sweep runs this set on the per-set path
    bint pending_any        # orders placed and not yet matched


# numpy's pairwise summation (np.sum of a float64 array), the same association.
cdef double pairwise_sum(const double* a, Py_ssize_t n, Py_ssize_t stride) noexcept nogil

# engine.analysis.stats.set_summaries of one set's returns (a row of 1 + 5 * n_blocks).
cdef void set_summary(const double* r, Py_ssize_t m, const Py_ssize_t* edges,
                      Py_ssize_t n_blocks, double* x1, double* x2, double* x3, double* x4,
                      double* out) noexcept nogil

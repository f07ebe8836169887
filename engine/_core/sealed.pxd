# Sealed arrays: read-only numpy arrays nothing can make writeable or widen.

cimport numpy as cnp


cdef class Seal:
    # The memory owner, kept alive for the arrays sealed by this object; no Python
    # attribute, buffer or pickle state exposes it.
    cdef object owner


cdef Seal seal_of(object owner)
cdef object window(cnp.ndarray array, Py_ssize_t start, Py_ssize_t stop, bint row, Seal seal)
cpdef bint is_sealed(object array)
cpdef object seal(object array)
cpdef object sealed_prefix(object array, Py_ssize_t stop)

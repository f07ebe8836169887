# The event loop, the vectorised loop, and the bounded views a strategy reads.

cimport numpy as cnp

from engine._core.broker cimport Broker
from engine._core.sealed cimport Seal


cdef class Cursor:
    # Index of the last bar a strategy may see; -1 before the first bar. Only the
    # loops move it (readonly: Python code cannot move it forward to peek).
    cdef readonly Py_ssize_t index


cdef class Series:
    cdef const double[:, ::1] values
    cdef readonly Py_ssize_t column     # -1: every column (a row per bar)
    cdef readonly str name
    cdef Cursor cursor
    cdef cnp.ndarray array              # the sealed array behind `values`
    cdef cnp.ndarray shown              # what visible() cuts: `array` or its column
    cdef Seal seal                      # base of every array handed out: hides `array`

    cdef Py_ssize_t position(self, Py_ssize_t key) except -1


cdef class Bar:
    cdef Cursor cursor
    cdef object ts_array
    cdef dict fields
    cdef readonly Py_ssize_t n_symbols


# run_vector and run_vector_exits: the size mode of a size_type, the shapes checked.
cdef int entry_mode(str size_type, const unsigned char[:, ::1] entries,
                    const unsigned char[:, ::1] exits, Py_ssize_t n, Py_ssize_t k) except -1

"""Sealed arrays: read-only numpy arrays that nothing can make writeable or widen.

numpy lets the owner of an array's memory flip ``flags.writeable`` back to True, and
any view leads to that owner through ``.base``; so a read-only flag alone does not
keep a strategy from rewriting the prices the broker fills at, and a view of the
first ``t`` bars still reaches every later bar through ``.base``.

A *sealed* array views the same memory (no copy) but its ``.base`` is a
:class:`Seal`: an opaque object that keeps the memory alive and exposes nothing of it
— no attribute, no buffer, no pickle state. numpy makes an array writeable only when
the end of its ``.base`` chain is an array that owns its memory or an object that
hands out a writeable buffer, so it refuses ``flags.writeable = True`` on a sealed
array and on every view of one. :func:`window` cuts a sealed view to a range of
rows, so that a window of the first ``t`` bars leads to no later bar either.

Raw memory (``ctypes``, ``numpy.lib.stride_tricks.as_strided`` reading past a view's
end) and introspection (``gc``) are outside what this guards; see the execution
rules in :mod:`engine.strategy`.
"""

cimport cython
cimport numpy as cnp
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF

import numpy as np

cnp.import_array()

cdef extern from "numpy/arrayobject.h":
    PyTypeObject NdArrayType "PyArray_Type"
    # Steals the reference to descr; with data given and no NPY_ARRAY_WRITEABLE in
    # flags, the array neither owns its memory nor may write it.
    object new_from_descr "PyArray_NewFromDescr" (
        PyTypeObject* subtype, cnp.PyArray_Descr* descr, int nd, cnp.npy_intp* dims,
        cnp.npy_intp* strides, void* data, int flags, PyObject* obj)

cdef enum:
    MAX_DIMS = 8    # dimensions a sealed array may have (numpy allows 64; prices have 1 or 2)


@cython.final
@cython.auto_pickle(False)
@cython.no_gc
cdef class Seal:
    """The base of sealed arrays: keeps their memory alive and exposes nothing of it.

    It has no attributes, exports no buffer and cannot be pickled or copied, so
    neither numpy nor Python code can reach the memory's owner through it.
    """

    def __reduce__(self):
        raise TypeError("the memory of a sealed array cannot be pickled or copied through "
                        "its base; copy the array itself (numpy.array(x))")

    def __repr__(self):
        return "<sealed memory>"


cdef Seal seal_of(object owner):
    """A new :class:`Seal` keeping ``owner`` (the memory's owner) alive."""
    cdef Seal s = Seal.__new__(Seal)
    s.owner = owner
    return s


cdef object window(cnp.ndarray array, Py_ssize_t start, Py_ssize_t stop, bint row, Seal seal):
    """Rows ``[start, stop)`` of ``array`` (or row ``start`` alone, one dimension
    fewer, when ``row``), read-only, over the same memory, with ``seal`` as base.

    The caller checks ``0 <= start <= stop <= len(array)`` and that ``seal`` keeps
    ``array``'s memory alive.
    """
    cdef int nd = cnp.PyArray_NDIM(array), k
    cdef cnp.npy_intp* dims = cnp.PyArray_DIMS(array)
    cdef cnp.npy_intp* strides = cnp.PyArray_STRIDES(array)
    cdef cnp.npy_intp shape[MAX_DIMS]
    cdef cnp.npy_intp steps[MAX_DIMS]
    cdef char* data = <char*>cnp.PyArray_DATA(array) + start * strides[0]
    cdef cnp.PyArray_Descr* descr = cnp.PyArray_DESCR(array)
    cdef int first = 1 if row else 0
    for k in range(first, nd):
        shape[k - first] = dims[k]
        steps[k - first] = strides[k]
    if not row:
        shape[0] = stop - start
    Py_INCREF(<object>descr)  # stolen by new_from_descr
    out = new_from_descr(&NdArrayType, descr, nd - first, shape, steps, data, 0, NULL)
    cnp.set_array_base(out, seal)
    return out


cpdef bint is_sealed(object array):
    """Whether ``array``'s chain of bases ends at a :class:`Seal` (then no one can
    make it writeable)."""
    base = array
    while isinstance(base, np.ndarray):
        base = cnp.get_array_base(<cnp.ndarray>base)
    return isinstance(base, Seal)


cpdef object seal(object array):
    """``array`` as a sealed array: the same memory, read-only for good.

    Parameters
    ----------
    array : numpy.ndarray
        At least one dimension. Whoever still holds ``array`` itself keeps the
        right to write it; hand out only the sealed array.

    Returns
    -------
    numpy.ndarray
        ``array`` itself when it is sealed already, else a sealed view of it.
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"seal() takes a numpy array; got {type(array).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>array
    if arr.ndim < 1 or arr.ndim > MAX_DIMS:
        raise ValueError(f"seal() takes an array of 1 to {MAX_DIMS} dimensions; got {arr.ndim}")
    if is_sealed(arr):
        return arr
    return window(arr, 0, arr.shape[0], False, seal_of(arr))


cpdef object sealed_prefix(object array, Py_ssize_t stop):
    """The first ``stop`` rows of ``array``, sealed, leading to no later row."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"sealed_prefix() takes a numpy array; got {type(array).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>array
    if arr.ndim < 1 or arr.ndim > MAX_DIMS:
        raise ValueError(f"sealed_prefix() takes an array of 1 to {MAX_DIMS} dimensions; "
                         f"got {arr.ndim}")
    if stop < 0 or stop > arr.shape[0]:
        raise IndexError(f"sealed_prefix(): stop {stop} is outside 0..{arr.shape[0]}")
    return window(arr, 0, stop, False, seal_of(arr))

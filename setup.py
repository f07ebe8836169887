"""Build the Cython core.

Compiler directives are set here, once, for every extension module. Set
``ENGINE_CYTHON_DEBUG=1`` in the environment when building to turn bounds
checking, negative-index wrapping and initialised-variable checks back on
(slower, but an out-of-range index raises instead of corrupting memory)::

    ENGINE_CYTHON_DEBUG=1 pip install -e . --no-build-isolation
"""

import os
from glob import glob

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("ENGINE_CYTHON_DEBUG", "0") not in ("", "0", "false", "no")

DIRECTIVES = {
    "language_level": "3",
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "nonecheck": DEBUG,
    "embedsignature": True,
}

extensions = [
    Extension(
        name=path[:-4].replace(os.sep, "."),
        sources=[path],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O0", "-g"] if DEBUG else ["-O3"],
    )
    for path in sorted(glob(os.path.join("engine", "_core", "*.pyx")))
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=DIRECTIVES,
        annotate=DEBUG,
    ),
)

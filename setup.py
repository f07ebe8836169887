"""Build the Cython core.

Compiler directives are set here, once, for every extension module. Set
``ENGINE_CYTHON_DEBUG=1`` in the environment when building for the debug build:
bounds checks, initialised-view checks and None checks on, Python division semantics
(cdivision off, so a division by zero raises), ``-O0 -g`` and annotated HTML beside
the sources. It is slower, but an index out of range raises ``IndexError`` instead of
corrupting memory. Unset (or ``0``) gives the release build. ``wraparound`` stays off
in both: with it on, ``x[-1]`` would quietly read the last item, so the debug build
would hide negative-index bugs that the release build turns into stray reads; off,
bounds checking rejects them. Both ways of installing honour the variable::

    ENGINE_CYTHON_DEBUG=1 pip install -e .
    ENGINE_CYTHON_DEBUG=1 pip install -e . --no-build-isolation

(the second needs pyproject.toml's build requirements installed in the environment:
``pip install "setuptools>=68" wheel Cython numpy``).

Switching modes rebuilds for real. cythonize regenerates a ``.c`` file only when it
is older than its ``.pyx`` (or was written by another Cython), so on its own a tree
built in one mode kept that mode's C, and its extensions, after the variable
changed. So each build records its directives in ``engine/_core/.cython-mode``
(beside the generated C, ignored by git) and forces cythonize to regenerate every
module when they differ from the recorded ones or the record is missing; the new C
is then newer than the old extensions, so they are recompiled too.

Each module reports its mode as ``DEBUG_BUILD``, from the ``ENGINE_DEBUG_BUILD`` C
macro defined below: ``python -c "import engine._core.kernels as k;
print(k.DEBUG_BUILD)"``. ``tests/test_debug_build.py`` checks it against
``ENGINE_CYTHON_DEBUG`` and, in a debug build, that the checks fire;
``ENGINE_TEST_DEBUG_BUILD=1`` adds a slow test of the switch itself. Run the suite of
a debug build with ``-W error::pytest.PytestUnraisableExceptionWarning``: a check
that fails inside a ``noexcept`` function cannot raise to its caller, Python reports
it as unraisable and the function returns early instead.
"""

import json
import os
from glob import glob

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("ENGINE_CYTHON_DEBUG", "0").strip().lower() not in ("", "0", "false", "no")

DIRECTIVES = {
    "language_level": "3",
    "boundscheck": DEBUG,
    "wraparound": False,    # in both modes: on, x[-1] would wrap instead of raising
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "nonecheck": DEBUG,
    "embedsignature": True,
}

CORE = os.path.join("engine", "_core")
MODE_STAMP = os.path.join(CORE, ".cython-mode")

extensions = [
    Extension(
        name=path[:-4].replace(os.sep, "."),
        sources=[path],
        include_dirs=[numpy.get_include()],
        define_macros=[
            ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
            ("ENGINE_DEBUG_BUILD", "1" if DEBUG else "0"),
        ],
        # -ffp-contract=off: never fuse a*b+c into one rounding (FMA), which compilers
        # do by default where FMA is standard (aarch64): the batched sweep's numbers
        # must equal engine.run's and NumPy's bit for bit on every machine
        extra_compile_args=(["-O0", "-g"] if DEBUG else ["-O3"]) + ["-ffp-contract=off"],
    )
    for path in sorted(glob(os.path.join(CORE, "*.pyx")))
]

# The generated C depends on the directives, which cythonize's timestamps do not see.
mode = json.dumps(DIRECTIVES, sort_keys=True)
try:
    with open(MODE_STAMP) as f:
        mode_changed = f.read() != mode
except OSError:
    mode_changed = True

ext_modules = cythonize(
    extensions,
    compiler_directives=DIRECTIVES,
    annotate=DEBUG,
    force=mode_changed or None,     # None: cythonize's default (CYTHON_FORCE_REGEN)
)
if mode_changed:
    with open(MODE_STAMP, "w") as f:
        f.write(mode)

setup(ext_modules=ext_modules)

"""The debug build of the Cython core (``ENGINE_CYTHON_DEBUG=1``, see setup.py).

Always on: each extension module says which mode it was built in (``DEBUG_BUILD``),
and that mode is the one ``ENGINE_CYTHON_DEBUG`` asks for (False for the normal
build). In a debug build, the checks really are compiled in: an index past either
end of a view raises ``IndexError`` instead of reading or writing stray memory, and
None for a typed view raises. ``ENGINE_TEST_DEBUG_BUILD=1`` adds a slow test (a few
minutes) that builds the core in a temporary copy in release, debug and release mode
again, and checks that each switch of ``ENGINE_CYTHON_DEBUG`` really rebuilds.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine._core import broker, kernels, loop

ROOT = Path(__file__).resolve().parents[1]
MODULES = (broker, kernels, loop)
DEBUG_BUILD = kernels.DEBUG_BUILD

debug_only = pytest.mark.skipif(
    not DEBUG_BUILD, reason="release build: its checks are off (ENGINE_CYTHON_DEBUG=1 builds them)"
)


def debug_requested(env) -> bool:
    """What setup.py reads from ``ENGINE_CYTHON_DEBUG``."""
    return env.get("ENGINE_CYTHON_DEBUG", "0").strip().lower() not in ("", "0", "false", "no")


def test_every_module_reports_the_mode_the_environment_asks_for():
    modes = {module.__name__: module.DEBUG_BUILD for module in MODULES}
    assert all(type(mode) is bool for mode in modes.values()), modes
    assert set(modes.values()) == {debug_requested(os.environ)}, (
        f"the extensions were built with DEBUG_BUILD {modes} but ENGINE_CYTHON_DEBUG is "
        f"{os.environ.get('ENGINE_CYTHON_DEBUG')!r}: rebuild (pip install -e .)"
    )


def test_a_tag_code_out_of_range_is_refused():
    # An int tag is a code into TAG_NAMES, read unchecked when the order is reported:
    # tag=7 crashed the interpreter and tag=100000 returned a stray object. Found by
    # the debug build's bounds checks.
    close = np.ones((3, 1))
    account = broker.Broker(close, close, close, close)
    for tag in (-1, len(broker.TAG_NAMES), 100_000):
        with pytest.raises(ValueError, match="tag code"):
            account.submit(0, 1, 0, 0, 1.0, tag=tag)
    assert account.n_orders == 0
    oid = account.submit(0, 1, 0, 0, 1.0, tag=broker.TAG_NAMES.index("close"))
    assert account.order_info(oid)["tag"] == "close"


@debug_only
def test_an_index_out_of_range_raises_in_a_debug_build():
    close = np.ones((3, 2))
    account = broker.Broker(close, close, close, close)
    # -1 too: negative indices are refused, not wrapped round to the last symbol
    for symbol in (2, -1, 1_000_000):
        with pytest.raises(IndexError):
            account.get_position(symbol)
    cursor = loop.Cursor()
    cursor.index = 2
    view = loop.Series(np.ones((3, 2)), cursor, column=2)
    with pytest.raises(IndexError):
        view[-1]


@debug_only
def test_none_for_a_typed_view_raises_in_a_debug_build():
    with pytest.raises(AttributeError, match="None"):
        kernels.rolling_mean(None, 3, np.zeros((0, 0)))


# ------------------------------------------------------------------ switching modes

PROBE = """
import os
import numpy as np
from engine._core import broker, kernels, loop
assert kernels.__file__.startswith(os.getcwd()), kernels.__file__
modes = {broker.DEBUG_BUILD, kernels.DEBUG_BUILD, loop.DEBUG_BUILD}
assert len(modes) == 1, modes
raised = False
if kernels.DEBUG_BUILD:     # without the checks this would read past the array
    close = np.ones((3, 1))
    try:
        broker.Broker(close, close, close, close).get_position(1)
    except IndexError:
        raised = True
print(modes.pop(), raised)
"""


def build(tree: Path, debug: bool) -> tuple[bool, bool, int]:
    """Build the core in ``tree`` as setup.py does for pip; return its DEBUG_BUILD,
    whether an index past the end raised, and the bounds checks in the generated C."""
    env = {k: v for k, v in os.environ.items() if k != "ENGINE_CYTHON_DEBUG"}
    if debug:
        env["ENGINE_CYTHON_DEBUG"] = "1"
    subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tree, env=env,
                   check=True, capture_output=True)
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=tree, env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    checks = sum(path.read_text().count("__Pyx_RaiseBufferIndexError")
                 for path in (tree / "engine" / "_core").glob("*.c"))
    return out[0] == "True", out[1] == "True", checks


@pytest.mark.skipif(os.environ.get("ENGINE_TEST_DEBUG_BUILD") != "1",
                    reason="builds the core three times, minutes: ENGINE_TEST_DEBUG_BUILD=1")
def test_switching_the_mode_rebuilds(tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "engine", tree / "engine",
                    ignore=shutil.ignore_patterns("*.c", "*.so", "*.html", ".cython-mode",
                                                  "__pycache__"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    assert build(tree, debug=False) == (False, False, 0)
    mode, raised, checks = build(tree, debug=True)
    assert (mode, raised) == (True, True) and checks > 0
    # back to release: the debug C (newer than every .pyx) must not be kept
    assert build(tree, debug=False) == (False, False, 0)

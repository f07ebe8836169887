"""``engine.indicators``, the name strategy files import indicators by.

The indicators live in :mod:`engine.strategy.indicators`; this module is that
module under its public name (the same object, so ``engine.indicators.sma is
engine.strategy.indicators.sma``).
"""

import sys

from engine.strategy import indicators as _indicators

sys.modules[__name__] = _indicators

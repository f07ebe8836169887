"""What a strategy file is written against.

Owns the :class:`~engine.strategy.base.Strategy` base class and ``Signals`` of
the vectorised path (:mod:`~engine.strategy.base`), typed parameters
(:mod:`~engine.strategy.params`), loading a strategy from a file or module
(:mod:`~engine.strategy.plugins`) and the causal indicators
(:mod:`~engine.strategy.indicators`, public as ``engine.indicators``). It may
import :mod:`engine.data`, :mod:`engine._core` and :mod:`engine.errors`; never
the backtest, analysis or anything above them.
"""

from engine._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "Strategy": "engine.strategy.base:Strategy",
    "Signals": "engine.strategy.base:Signals",
    "param": "engine.strategy.params:param",
    "load_strategy": "engine.strategy.plugins:load_strategy",
}, globals())

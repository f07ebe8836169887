"""Market data in: bars, feeds, the panel, synthetic data.

Owns reading and validating bar files and DataFrames (:mod:`~engine.data.bars`),
the timestamps × symbols array layout the core reads (:mod:`~engine.data.panel`),
point-in-time joins of alternative-data feeds (:mod:`~engine.data.feeds`) and
seeded random walks for tests and benchmarks (:mod:`~engine.data.synthetic`).
It may import :mod:`engine.errors` and :mod:`engine._core` only: data knows
nothing of strategies, backtests or reports.
"""

from engine._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "load_bars": "engine.data.bars:load_bars",
    "Panel": "engine.data.panel:Panel",
    "Feed": "engine.data.feeds:Feed",
    "random_walk": "engine.data.synthetic:random_walk",
}, globals())

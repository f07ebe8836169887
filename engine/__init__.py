"""An event-driven backtesting engine with a Cython core.

>>> import engine
>>> result = engine.run("strategies/sma_cross.py")        # doctest: +SKIP
>>> result.metrics["sharpe"]                               # doctest: +SKIP

The subpackages are the architecture, each allowed to import only the ones
below it (``tests/test_architecture.py`` checks it)::

    engine.cli        one module per command of ``python -m engine``
    engine.report     plots, HTML pages, terminal tables, progress, output folders
    engine.research   sweeps (local, Dask), walk-forward, comparisons, the claims audit
    engine.backtest   run, Result, streaming runs, the buy-and-hold benchmark
    engine.analysis   metrics, drawdown/yearly/hit-rate tables, event studies
    engine.strategy   the Strategy base, parameters, plugin loading, indicators
    engine.data       bars, feeds, the panel, synthetic data
    engine._core      the compiled broker, loops and kernels
    engine.errors     the errors user mistakes raise (importable from anywhere)

Heavy modules are imported on first use, so ``python -m engine`` starts fast.
"""

from engine._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "run": "engine.backtest.run:run",
    "stream_run": "engine.backtest.streaming:stream_run",
    "compare": "engine.research.compare:compare",
    "sweep": "engine.research.sweep:sweep",
    "walk_forward": "engine.research.walk_forward:walk_forward",
    "check_signals_batch": "engine.research.check:check_signals_batch",
    "workers": "engine.research.sweep:workers",
    "Result": "engine.backtest.result:Result",
    "Strategy": "engine.strategy.base:Strategy",
    "Signals": "engine.strategy.base:Signals",
    "Feed": "engine.data.feeds:Feed",
    "param": "engine.strategy.params:param",
    "load_bars": "engine.data.bars:load_bars",
    "Panel": "engine.data.panel:Panel",
    "EngineError": "engine.errors:EngineError",
}
# Modules that strategy files import by their old flat names (``from engine import
# benchmark``); kept so that no strategy file needs a change.
_MODULES = {
    "benchmark": "engine.backtest.benchmark",
    "indicators": "engine.strategy.indicators",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, {**_EXPORTS, **_MODULES}, globals())

"""An event-driven backtesting engine with a Cython core.

>>> import engine
>>> result = engine.run("strategies/sma_cross.py")        # doctest: +SKIP
>>> result.metrics["sharpe"]                               # doctest: +SKIP

Heavy modules are imported on first use, so ``python -m engine`` starts fast.
"""

__version__ = "0.1.0"

_LAZY = {
    "run": ("engine.api", "run"),
    "stream_run": ("engine.streaming", "stream_run"),
    "compare": ("engine.comparison", "compare"),
    "sweep": ("engine.sweeps", "sweep"),
    "walk_forward": ("engine.walkforward", "walk_forward"),
    "Result": ("engine.result", "Result"),
    "Strategy": ("engine.strategy", "Strategy"),
    "Signals": ("engine.strategy", "Signals"),
    "Feed": ("engine.feeds", "Feed"),
    "param": ("engine.params", "param"),
    "load_bars": ("engine.data", "load_bars"),
    "Panel": ("engine.panel", "Panel"),
    "EngineError": ("engine.errors", "EngineError"),
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))

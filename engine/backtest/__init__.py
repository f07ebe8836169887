"""Running one backtest.

Owns :func:`~engine.backtest.run.run` (data, feeds and strategy into the compiled
loops), the :class:`~engine.backtest.result.Result` it returns, bounded-memory
runs over large Parquet files (:mod:`~engine.backtest.streaming`), the
buy-and-hold benchmark (:mod:`~engine.backtest.benchmark`) and a plain-Python
reference simulator the tests compare the core with
(:mod:`~engine.backtest.reference`). It may import :mod:`engine.analysis` and
everything below it. It never imports :mod:`engine.report`: a ``Result`` method
that writes files imports the report lazily, at the call.
"""

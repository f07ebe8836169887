"""Numbers from a finished run: metrics, tables, event studies.

Owns every metric formula (:mod:`~engine.analysis.metrics`, the reference for
each convention), the same metrics accumulated chunk by chunk for streamed runs
(:mod:`~engine.analysis.streaming_metrics`), the drawdown, yearly and hit-rate
tables (:mod:`~engine.analysis.tables`) and forward-return event studies
(:mod:`~engine.analysis.event_study`). Its functions take arrays, frames or a
result object and never start a backtest, so it may import
:mod:`engine.strategy` (for a strategy's report hooks), :mod:`engine.data`,
:mod:`engine._core` and :mod:`engine.errors`, and nothing above.
"""

"""Many backtests: sweeps, walk-forward, comparisons, the claims audit.

Owns parameter sweeps on local processes or a Dask cluster
(:mod:`~engine.research.sweep`, :mod:`~engine.research.dask_backend`),
walk-forward optimisation (:mod:`~engine.research.walk_forward`), strategy
comparisons (:mod:`~engine.research.compare`) and the audit of the source notes'
claims (:mod:`engine.research.claims`: the registry of claims, and the
measurements). It builds on :mod:`engine.backtest` and everything below it;
presenting results (terminal, files, HTML) is :mod:`engine.report`'s job.
"""

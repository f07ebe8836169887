"""Presenting results: plots, HTML pages, terminal tables, progress, output folders.

Owns the number formats (:mod:`~engine.report.format`), matplotlib figures
(:mod:`~engine.report.plots`), the self-contained HTML pages
(:mod:`~engine.report.html`), rich terminal tables
(:mod:`~engine.report.terminal`), the claims audit's outputs
(:mod:`~engine.report.claims`), progress bars (:mod:`~engine.report.progress`)
and atomic output folders (:mod:`~engine.report.outputs`). It reads results
(a ``Result``, a comparison or sweep table, a claims table) and may import
:mod:`engine.research` and everything below it, never the broker directly.
"""

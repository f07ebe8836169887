"""The claims audit: every checkable claim of the rule book, measured by running the engine.

Three modules, one concept each: :mod:`~engine.research.claims.model` (settings,
claims, findings, the verdict rules), :mod:`~engine.research.claims.measure`
(the :class:`Lab` that runs the strategy plugins, and one ``measure_*`` function
per kind of claim) and :mod:`~engine.research.claims.registry` (every claim of
``RULES.md`` in order, and :func:`measure_all`). Printing and writing the table
is :mod:`engine.report.claims`.
"""

from engine._lazy import lazy_exports

_MODEL = "engine.research.claims.model"
__getattr__, __dir__ = lazy_exports(__name__, {
    **{name: f"{_MODEL}:{name}" for name in (
        "HOLDS", "FAILS", "INCONCLUSIVE", "UNTESTABLE", "VERDICTS", "CLAIM_COLUMNS",
        "EVIDENCE_COLUMNS", "DATA_PERIODS", "STRATEGIES", "Settings", "Claim", "Finding",
        "settings_text", "settings_dict", "summary", "multiple_testing", "rate_verdict",
        "stance_verdict", "with_settings")},
    "Lab": "engine.research.claims.measure:Lab",
    "rate_finding": "engine.research.claims.measure:rate_finding",
    "signal_mask": "engine.research.claims.measure:signal_mask",
    "event_row": "engine.research.claims.measure:event_row",
    "CLAIMS": "engine.research.claims.registry:CLAIMS",
    "claim": "engine.research.claims.registry:claim",
    "measure_all": "engine.research.claims.registry:measure_all",
}, globals())

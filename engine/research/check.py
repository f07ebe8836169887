"""``engine.check_signals_batch``: a strategy's ``signals_batch`` against its ``signals``
for every set of a grid.

A batched sweep (:mod:`engine.research.batched`) compares the two for every parameter
value in each worker, not for every combination of values; this compares them all,
once, for a strategy's tests.
"""

from __future__ import annotations

from engine.research import batched
from engine.research.sweep_plan import parameter_sets, prepare


def check_signals_batch(strategy, grid=None, *, data=None, samples: int | None = None,
                        seed: int = 0, **run_options) -> int:
    """Compare a strategy's ``signals_batch`` with its ``signals`` for every set of a grid.

    A sweep compares the hook with ``signals`` for every parameter value, not every
    combination of values (that would cost the per-set calls the hook saves). Run this
    once, e.g. in a test of the strategy, to check them all.

    Parameters
    ----------
    strategy, grid, data, samples, seed, **run_options
        As for :func:`engine.sweep`.

    Returns
    -------
    int
        The number of sets compared (sets whose parameters are invalid are skipped).

    Raises
    ------
    engine.errors.StrategyError
        At the first set whose columns differ from its own ``signals`` (or whose own
        ``signals`` raise where ``signals_batch`` gives columns), saying where; or when
        the strategy has no ``signals_batch``.
    """
    from engine._core.broker import Broker
    from engine._core.loop import Cursor
    from engine.errors import StrategyError
    from engine.strategy.base import VectorData
    from engine.strategy.parameter_sets import ParameterSets

    plan = prepare(strategy, parameter_sets(grid, samples, seed), data, run_options)
    cls, name = plan.cls, plan.cls.__name__
    if not cls.has_batch_path():
        raise StrategyError(f"{name} defines no signals_batch (a classmethod) below its "
                            f"signals: there is nothing to compare")
    run_names = batched._run_option_names()
    make = batched.instance_factory(cls)
    compared = 0
    for number, panel in enumerate(plan.panels):
        members = []
        for _, task_panel, params in plan.tasks:
            if task_panel != number:
                continue
            try:
                members.append((params, make(**{k: v for k, v in {**plan.options, **params}
                                                .items() if k not in run_names})))
            except Exception:
                continue
        if not members:
            continue
        sets = ParameterSets([batched._parameters_of(instance) for _, instance in members])
        stacked = batched.batch_arrays(cls.signals_batch(VectorData(panel), sets), panel,
                               len(members), name)
        for j, (params, instance) in enumerate(members):
            shown = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "the defaults"
            instance._bind(panel, Broker(panel.fields["open"], panel.fields["high"],
                                         panel.fields["low"], panel.fields["close"], 1.0),
                           Cursor(), audit="off")
            try:
                own = batched._own_signals(instance, panel, "off")
            except Exception as exc:
                raise StrategyError(
                    f"{name}.signals raises {batched._located(exc)} for the set {shown}, but "
                    f"signals_batch gives it columns: the sweep would give it numbers "
                    f"where engine.run gives an error") from exc
            difference = batched._difference(own, stacked, j, panel, name)
            if difference is not None:
                raise StrategyError(f"{name}.signals_batch disagrees with {name}.signals "
                                    f"for the set {shown}: {difference}")
            compared += 1
    return compared

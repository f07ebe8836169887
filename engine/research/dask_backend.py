"""The Dask backend of :func:`engine.sweep`: the same tasks on an existing cluster.

The calling process (the client) loads, validates and joins the data once, as for
the local backend, then sends the panel to every worker once with
``client.scatter(panels, broadcast=True, hash=False)`` (keys of this sweep only);
each task refers to the scattered panel by key, so no task carries the data. The
data path is therefore read by the client only. The strategy travels as its file
path plus its source text: a worker that can read the same file at that path loads
it, one that cannot (another machine) loads the copy sent along. Workers need the
``engine`` package (the same version) installed, and so does the scheduler (it
unpickles the tasks).

Tasks are the local backend's batches of parameter sets, submitted with
``pure=False``; rows are put back in grid order, so the frame equals the local
backend's. A batch whose worker died (``KilledWorker``, after the scheduler's
retries) or that failed for any reason outside the backtest is left out, and the
sweep warns how many sets are missing; Ctrl-C cancels what is left and keeps
what finished.

``distributed`` is an optional dependency: ``pip install -e ".[dask]"``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from engine.errors import EngineError, ParameterError
from engine.research.sweep_plan import (
    Plan,
    _Interrupted,
    batch_limit,
    batches,
    record,
    run_batch_from_ref,
)


def _client(address):
    try:
        from distributed import Client
    except ImportError:
        raise ParameterError(
            "backend='dask' needs the distributed package: pip install -e \".[dask]\""
        ) from None
    if address is None:
        raise ParameterError("backend='dask' needs address='tcp://host:port' (the scheduler) "
                             "or a distributed.Client")
    if isinstance(address, Client):
        return address, False
    if not isinstance(address, str):
        raise ParameterError(f"address must be 'tcp://host:port' or a distributed.Client; "
                             f"got {type(address).__name__}")
    try:
        return Client(address, timeout="10s", set_as_default=False), True
    except OSError as exc:
        raise ParameterError(f"cannot reach the Dask scheduler at {address}: {exc}") from None


def _workers(client) -> int:
    try:
        return max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
    except TypeError:  # older distributed: no n_workers argument
        return max(1, len(client.scheduler_info()["workers"]))
    except Exception:
        return 1


def run_dask(plan: Plan, address, advance: Callable[[int], None]) -> dict:
    """Run ``plan`` on the Dask cluster at ``address``; row → ``(metrics, error)``."""
    from distributed import as_completed

    client, own = _client(address)
    done: dict = {}
    futures: list = []
    try:
        try:
            # hash=False: keys of this call only. With content-hashed keys, a second
            # sweep of the same data on the same client (a search's next round, a
            # walk-forward after a sweep) shares the first one's keys, and their
            # release as the first call ends cancels its tasks ("lost dependencies").
            panels = client.scatter(list(plan.panels), broadcast=True, hash=False)
        except Exception as exc:
            raise EngineError(
                f"cannot send the data to the Dask workers: {exc}. Every worker needs this "
                f"package installed (pip install -e . in the workers' environment)"
            ) from exc
        token = uuid.uuid4().hex[:12]
        parts = batches(plan.tasks, _workers(client), batch_limit(plan))
        futures = [client.submit(run_batch_from_ref, plan.ref, panels, plan.options, part,
                                 pure=False, key=f"engine-sweep-{token}-{i}")
                   for i, part in enumerate(parts)]
        part_of = {future.key: part for future, part in zip(futures, parts, strict=True)}
        lost, reason = 0, None
        for future in as_completed(futures, loop=client.loop):
            try:
                rows = future.result()
            except Exception as exc:  # a lost worker (KilledWorker), a broken connection
                part = part_of[future.key]
                lost += len(part)
                reason = reason or f"Dask: {type(exc).__name__}: {exc}"
                advance(len(part))
                continue
            advance(record(plan, done, rows))
        if lost:
            raise _Interrupted(done, reason)
        return done
    except KeyboardInterrupt:
        client.cancel(futures)
        raise _Interrupted(done, "interrupted") from None
    finally:
        if own:
            client.close()

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
backend's. A batch whose workers died (``KilledWorker``: every worker the scheduler
gave it to, ``distributed.scheduler.allowed-failures`` + 1 of them, died running it)
is submitted again one set per task, each alone on the cluster once the other tasks
are done (a worker's death fails every task it held, so only a set that dies alone
is named); a set that kills its workers on its own becomes the local backend's
error row,
``the worker process running this set died (on Dask: ...); set: ...``, and lands in
:attr:`~engine.research.sweep_plan.Plan.crashed` (the sweep warns, the CLI exits with
status 3). The client cannot see a Dask worker's exit status or signal: the row names
the last worker's address, whose log says how it died. A batch that failed for any
other reason outside the backtest (a broken connection, lost data) is left out, and
the sweep warns how many sets are missing; Ctrl-C cancels what is left and keeps
what finished.

``distributed`` is an optional dependency: ``pip install -e ".[dask]"``.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable

from engine.errors import EngineError, ParameterError
from engine.research.sweep_plan import (
    Plan,
    _Interrupted,
    batch_limit,
    batches,
    crash_message,
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


#: Times a task runs again after it failed for a reason other than a crash (the
#: workers that held the data died), before its sets count as lost. The data is sent
#: again when the task used its latest sending; the tasks failed by the same death
#: then share the new one.
MAX_RESENDS = 3


def _scatter(client, panels):
    """The panels on every worker, under keys of this call only."""
    try:
        # hash=False: keys of this call only. With content-hashed keys, a second
        # sweep of the same data on the same client (a search's next round, a
        # walk-forward after a sweep) shares the first one's keys, and their
        # release as the first call ends cancels its tasks ("lost dependencies").
        return client.scatter(list(panels), broadcast=True, hash=False)
    except Exception as exc:
        raise EngineError(
            f"cannot send the data to the Dask workers: {exc}. Every worker needs this "
            f"package installed (pip install -e . in the workers' environment)"
        ) from exc


def how_workers_died(exc) -> str:
    """What a crash row says of a ``KilledWorker``."""
    tried = exc.allowed_failures + 1
    last = getattr(exc.last_worker, "address", exc.last_worker)
    workers = "its worker" if tried == 1 else f"each of the {tried} workers that ran it"
    return f"on Dask: {workers} died, the last at {last}, whose log says how"


def run_dask(plan: Plan, address, advance: Callable[[int], None]) -> dict:
    """Run ``plan`` on the Dask cluster at ``address``; row → ``(metrics, error)``."""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    client, own = _client(address)
    done: dict = {}
    futures: list = []
    try:
        data = [_scatter(client, plan.panels)]   # each sending of the data, the last in use
        token = uuid.uuid4().hex[:12]
        part_of: dict = {}
        sent_with: dict = {}      # task key -> the sending of the data it uses (0, 1, ...)
        tries: dict = {}          # id(part) -> times it was submitted again

        def submit(part):
            future = client.submit(run_batch_from_ref, plan.ref, data[-1], plan.options, part,
                                   pure=False, key=f"engine-sweep-{token}-{len(part_of)}")
            part_of[future.key] = part
            sent_with[future.key] = len(data) - 1
            futures.append(future)
            return future

        for part in batches(plan.tasks, _workers(client), batch_limit(plan)):
            submit(part)
        lost, reason = 0, None
        # Sets whose task's worker died: the culprit or a bystander (a worker's death
        # fails every task it held). Each runs again alone, with nothing else in
        # flight, so that a death then names its one set.
        suspects: deque = deque()
        alone: set = set()
        pending = len(futures)
        waiting = as_completed(list(futures), loop=client.loop)
        for future in waiting:
            pending -= 1
            part = part_of[future.key]
            try:
                rows = future.result()
            except KilledWorker as exc:
                if future.key in alone:
                    row, _, params = part[0]
                    done[row] = (None, crash_message(params, how_workers_died(exc)))
                    plan.crashed.append(row)
                    advance(1)
                else:
                    suspects.extend([task] for task in part)
            except Exception as exc:  # a broken connection, lost data
                if tries.get(id(part), 0) < MAX_RESENDS and client.status == "running":
                    # The workers that held the data may all have died (a crashing set
                    # takes its copy of the panels with it): send it again, once for
                    # all the tasks that used that sending, and run the task again.
                    tries[id(part)] = tries.get(id(part), 0) + 1
                    fresh = True
                    if sent_with[future.key] == len(data) - 1:   # not sent since it ran
                        try:
                            data.append(_scatter(client, plan.panels))
                        except EngineError:
                            fresh = False
                    if fresh:
                        again = submit(part)
                        if future.key in alone:
                            alone.add(again.key)
                        waiting.add(again)
                        pending += 1
                        continue
                lost += len(part)
                reason = reason or f"Dask: {type(exc).__name__}: {exc}"
                advance(len(part))
            else:
                advance(record(plan, done, rows))
            if not pending and suspects:
                retry = submit(suspects.popleft())
                alone.add(retry.key)
                waiting.add(retry)
                pending += 1
        if lost:
            raise _Interrupted(done, reason)
        return done
    except KeyboardInterrupt:
        client.cancel(futures)
        raise _Interrupted(done, "interrupted") from None
    finally:
        if own:
            client.close()

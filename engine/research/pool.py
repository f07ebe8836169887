"""The local process pool of sweeps: interpreters that never import the caller's
``__main__``, kept across runs, replaced when one dies.

Why not :mod:`multiprocessing` or :class:`concurrent.futures.ProcessPoolExecutor`:

* Their ``spawn`` workers re-import the caller's ``__main__`` (by its file, or its
  module name), so a script that calls ``engine.sweep`` without an
  ``if __name__ == "__main__":`` guard starts the sweep again in every worker,
  and a class defined in ``python -c``, on stdin or in a notebook cannot be found
  there at all. ``fork`` after polars has started its threads can deadlock.
* A worker that dies (a segfault in a C extension, ``os._exit``) breaks the
  whole executor: every unfinished task fails and the culprit is not named.

So each worker here is ``python -c BOOT``: a new interpreter that imports the
engine and nothing of the caller's program (the caller's ``sys.path`` is handed
over, so that modules beside the script still import). The strategy travels
with the set-up message, pickled with ``cloudpickle``: a class defined in
``__main__`` (a script, ``python -c``, stdin, a notebook cell) goes by value,
an importable one by reference, a strategy file as its path and source.

Messages are pickles framed by their length, over the worker's own stdin and
stdout pipes (the worker points its file descriptors 0 and 1 elsewhere, so a
strategy's ``print`` goes to stderr and cannot corrupt them). The parent waits on
every worker's pipe at once (:mod:`selectors`); a worker whose pipe closes
before it answered has died: its batch is run again one set per task on a
fresh worker, and the set that kills a worker alone becomes an error row naming
the signal or exit status. POSIX only (pipes in :mod:`selectors`).

A :class:`WorkerPool` keeps its workers between runs (the rounds of a search, the
sweeps of a script): each run sends its set-up to the live workers, which replace
their state with it, so only the first run pays for starting interpreters.
:func:`run_pool` is one run on a pool of its own.
"""

from __future__ import annotations

import json
import os
import pickle
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable

from engine.errors import EngineError

#: Bytes of the length that frames each message.
_HEADER = struct.Struct("<Q")
#: Workers that may die before taking their first task before the pool gives up.
MAX_START_FAILURES = 3

#: What a worker interpreter runs: Ctrl-C is the parent's to handle, then the
#: caller's import path, then the loop. Never the caller's ``__main__``.
BOOT = (
    "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "import json, sys; sys.path[:0] = [p for p in json.loads(sys.argv[1]) if p not in sys.path]\n"
    "from engine.research.pool import serve; serve()\n"
)


def how_it_died(returncode: int | None) -> str:
    """``killed by signal SIGSEGV`` or ``exited with status 3``."""
    if returncode is None:
        return "closed its pipe"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"killed by signal {name}"
    return f"exited with status {returncode}"


# --------------------------------------------------------------------------- framing


def _write(stream, payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _read_exactly(fd: int, n: int) -> bytes | None:
    parts, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _read(fd: int):
    """The next message on ``fd``, or None when the other end is gone."""
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    payload = _read_exactly(fd, _HEADER.unpack(header)[0])
    return None if payload is None else pickle.loads(payload)


# --------------------------------------------------------------------------- worker side


def serve() -> None:
    """The worker's loop: set-up and task messages until the parent closes the pipe.

    Set-up: ``("setup", token, function, blob)``, ``blob`` the argument pickled with
    cloudpickle; the worker calls ``state, handle = function(load)``, ``load()``
    giving the argument (so that ``function`` can report a class that does not
    unpickle here the way it reports any other set-up error), answers
    ``("ready", token)``, and keeps ``state`` for the tasks that follow, until the
    next set-up. Task: ``("task", key, argument)``; the answer is
    ``("answer", key, handle(state, argument))``.
    """
    inbox = os.dup(0)
    outbox = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # print() in a strategy goes to stderr, never into the answers
    state = handle = None
    while True:
        message = _read(inbox)
        if message is None:
            return
        if message[0] == "setup":
            _, token, start, blob = message
            state = handle = None  # the last set-up's state goes before the next is built
            state, handle = start(lambda blob=blob: pickle.loads(blob))
            answer = ("ready", token, None)
        else:
            _, key, value = message
            answer = ("answer", key, handle(state, value))
        _write(outbox, pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))


# --------------------------------------------------------------------------- parent side


class _Worker:
    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, "-c", BOOT, json.dumps([p for p in sys.path if p])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
        )
        self.fd = self.process.stdout.fileno()
        self.token = None  # the set-up it was sent last
        self.ready = False  # it answered that set-up
        self.served = False  # it answered a set-up once: it started
        self.broken = False  # a write failed: it is dying, its pipe's EOF comes next
        self.task = None  # (key, tasks) being run

    def _send(self, message) -> bool:
        try:
            _write(self.process.stdin, message)
        except (BrokenPipeError, OSError):
            self.broken = True  # it died already: its pipe reads EOF and the pool sees it
            return False
        return True

    def set_up(self, token: int, setup: bytes) -> None:
        self.token, self.ready = token, False
        self._send(setup)

    def give(self, key, tasks) -> bool:
        self.task = (key, tasks)
        return self._send(pickle.dumps(("task", key, tasks), protocol=pickle.HIGHEST_PROTOCOL))

    def reap(self) -> str:
        """Why it died (waits for the process)."""
        try:
            self.process.stdin.close()
        except OSError:
            pass
        self.process.stdout.close()
        try:
            code = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        return how_it_died(code)

    def stop(self, now: bool) -> None:
        """Close its pipe (it finishes and exits) or kill it; wait for it."""
        try:
            self.process.stdin.close()
        except OSError:
            pass
        if now:
            self.process.kill()
        try:
            self.process.wait(timeout=10 if now else 60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


class WorkerPool:
    """Worker interpreters kept across several :meth:`run` calls.

    Nothing starts until the first :meth:`run` needs workers; then up to ``size``
    workers start and stay, idle between runs, until :meth:`close` (or the end
    of a ``with`` block, also on an exception). Each run sends its set-up (the
    ``start`` function and its argument) to the live workers, which rebuild their
    state from it: a run costs a message per worker, not an interpreter start. A
    run that ends with an exception (Ctrl-C included) kills every worker; the next
    run starts fresh ones. A worker whose parent dies reads the end of its pipe
    and exits, so workers never outlive the process that started them.

    ``shared`` and :meth:`scratch` are for the callers: a dict kept for the pool's
    life, and a temporary folder removed at :meth:`close` (the sweep keeps the
    panels it has written for the workers there, so that a run on the same panels
    writes nothing).
    """

    def __init__(self, size: int, n_jobs: int | None = None):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise EngineError(f"a worker pool needs at least one worker; got {size!r}")
        self.size = size
        #: What the pool was asked for (``-1``: every core), for the calls that use it.
        self.n_jobs = size if n_jobs is None else n_jobs
        self.shared: dict = {}
        self._workers: dict[int, _Worker] = {}  # by the fd of its answers
        self._selector = None
        self._scratch: str | None = None
        self._tokens = 0
        self.closed = False

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, kind, *_) -> None:
        self.close(now=kind is not None and not issubclass(kind, Exception))

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._workers)} running"
        return f"<WorkerPool of {self.size} workers, {state}>"

    @property
    def pids(self) -> list[int]:
        """The process ids of the live workers."""
        return [w.process.pid for w in self._workers.values()]

    def scratch(self) -> str:
        """A temporary folder of this pool (made on first call, removed by :meth:`close`)."""
        self._check_open()
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix="engine-sweep-")
        return self._scratch

    def _check_open(self) -> None:
        if self.closed:
            raise EngineError("this worker pool is closed (its with block has ended); start "
                              "another one")

    def _hire(self) -> _Worker:
        if self._selector is None:
            self._selector = selectors.DefaultSelector()
        worker = _Worker()
        self._workers[worker.fd] = worker
        self._selector.register(worker.fd, selectors.EVENT_READ, worker)
        return worker

    def _drop(self, worker: _Worker) -> None:
        self._selector.unregister(worker.fd)
        del self._workers[worker.fd]

    def run(self, start: Callable, argument, groups: list[list],
            on_answer: Callable[[list, object], None],
            on_crash: Callable[[object, str], None], workers: int | None = None) -> None:
        """Run every group of tasks on at most ``workers`` (default :attr:`size`) workers.

        Parameters
        ----------
        start : callable
            Run in each worker as ``start(load)``, ``load()`` returning ``argument``;
            returns ``(state, handle)``. ``start`` is pickled by reference (an
            importable function), ``argument`` with cloudpickle (by value what is
            defined in ``__main__``).
        groups : list of lists
            The tasks in batches; a worker runs ``handle(state, batch)`` per batch.
        on_answer : callable
            ``on_answer(batch, answer)`` for each batch that came back.
        on_crash : callable
            ``on_crash(task, how)`` for a task that killed its worker when run alone
            (``how``: ``"killed by signal SIGSEGV"``, ``"exited with status 3"``).

        A worker that dies running a batch of several tasks is replaced and the batch
        is run again, one task per batch. ``KeyboardInterrupt`` (or any exception)
        kills the workers and propagates; answers already given were passed to
        ``on_answer``.
        """
        import cloudpickle

        self._check_open()
        self._tokens += 1
        token = self._tokens
        setup = pickle.dumps(
            ("setup", token, start,
             cloudpickle.dumps(argument, protocol=pickle.HIGHEST_PROTOCOL)),
            protocol=pickle.HIGHEST_PROTOCOL)
        limit = min(workers or self.size, self.size)
        queue = deque(groups)
        start_failures = 0

        def enlisted() -> list[_Worker]:
            return [w for w in self._workers.values() if w.token == token]

        def enlist() -> None:
            """Enough workers on this run's set-up: idle ones first, then new ones."""
            crew = enlisted()
            idle = [w for w in self._workers.values() if w.token != token and not w.broken]
            while len(crew) < min(limit, len(queue)):
                worker = idle.pop(0) if idle else self._hire()
                worker.set_up(token, setup)
                crew.append(worker)

        def assign(worker: _Worker) -> None:
            worker.task = None
            if queue and not worker.broken:
                batch = queue.popleft()
                if not worker.give(id(batch), batch):
                    queue.appendleft(batch)  # it died: its EOF comes next
                    worker.task = None

        try:
            enlist()
            while queue or any(w.task is not None for w in self._workers.values()):
                for selected, _ in self._selector.select():
                    worker = selected.data
                    message = _read(worker.fd)
                    if message is None:  # dead: say why, requeue or name its task, replace it
                        self._drop(worker)
                        how = worker.reap()
                        if worker.task is not None:
                            _, batch = worker.task
                            if len(batch) > 1:
                                queue.extendleft(reversed([[task] for task in batch]))
                            else:
                                on_crash(batch[0], how)
                        elif worker.token == token and not worker.ready and not worker.served:
                            start_failures += 1
                            if start_failures >= MAX_START_FAILURES:
                                raise EngineError(
                                    f"the sweep's worker processes could not start ({how}; "
                                    f"their error is printed above on stderr)")
                        enlist()
                        continue
                    kind, key, answer = message
                    if kind == "ready":
                        worker.served = True
                        if key != token:
                            continue  # a set-up of an earlier run, answered late
                        worker.ready = True
                        start_failures = 0
                    else:
                        on_answer(worker.task[1], answer)
                    if worker.token == token:
                        assign(worker)
        except BaseException:
            self._kill()
            raise

    def _kill(self) -> None:
        for worker in list(self._workers.values()):
            self._drop(worker)
            worker.stop(now=True)

    def close(self, now: bool = False) -> None:
        """Stop every worker (close their pipes and wait; kill them with ``now``) and
        remove the scratch folder. Closing twice does nothing."""
        if self.closed:
            return
        self.closed = True
        try:
            if now:
                self._kill()
            else:
                workers = list(self._workers.values())
                for worker in workers:  # every pipe closed first: they exit together
                    try:
                        worker.process.stdin.close()
                    except OSError:
                        pass
                for worker in workers:
                    self._drop(worker)
                    worker.stop(now=False)
        finally:
            if self._selector is not None:
                self._selector.close()
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
            self.shared.clear()


def run_pool(start: Callable, argument, groups: list[list], workers: int,
             on_answer: Callable[[list, object], None],
             on_crash: Callable[[object, str], None]) -> None:
    """:meth:`WorkerPool.run` on a pool of ``workers`` started for this call only."""
    with WorkerPool(workers) as pool:
        pool.run(start, argument, groups, on_answer, on_crash)

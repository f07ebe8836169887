"""The local process pool of sweeps: fresh interpreters, replaced when one dies.

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
"""

from __future__ import annotations

import json
import os
import pickle
import selectors
import signal
import struct
import subprocess
import sys
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
    """The worker's loop: a set-up message, then tasks until the parent closes the pipe.

    Set-up: ``(function, blob)``, ``blob`` the argument pickled with cloudpickle;
    the worker calls ``state, handle = function(load)`` once, ``load()`` giving
    the argument (so that ``function`` can report a class that does not unpickle
    here the way it reports any other set-up error). Task: ``(key, argument)``;
    the answer is ``(key, handle(state, argument))``.
    """
    inbox = os.dup(0)
    outbox = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # print() in a strategy goes to stderr, never into the answers
    setup = _read(inbox)
    if setup is None:
        return
    start, blob = setup
    state, handle = start(lambda: pickle.loads(blob))
    _write(outbox, pickle.dumps(("ready", None), protocol=pickle.HIGHEST_PROTOCOL))
    while True:
        task = _read(inbox)
        if task is None:
            return
        key, value = task
        answer = handle(state, value)
        _write(outbox, pickle.dumps((key, answer), protocol=pickle.HIGHEST_PROTOCOL))


# --------------------------------------------------------------------------- parent side


class _Worker:
    def __init__(self, setup: bytes):
        self.process = subprocess.Popen(
            [sys.executable, "-c", BOOT, json.dumps([p for p in sys.path if p])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
        )
        self.fd = self.process.stdout.fileno()
        self.ready = False
        self.broken = False  # a write failed: it is dying, its pipe's EOF comes next
        self.task = None  # (key, tasks) being run
        try:
            _write(self.process.stdin, setup)
        except (BrokenPipeError, OSError):
            pass  # it died already: its pipe reads EOF and the pool sees it

    def give(self, key, tasks) -> bool:
        self.task = (key, tasks)
        try:
            _write(self.process.stdin, pickle.dumps((key, tasks),
                                                    protocol=pickle.HIGHEST_PROTOCOL))
        except (BrokenPipeError, OSError):
            return False
        return True

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

    def retire(self) -> None:
        """Close its pipe: it finishes and exits (waited for by :meth:`stop`)."""
        try:
            self.process.stdin.close()
        except OSError:
            pass

    def stop(self, now: bool) -> None:
        self.retire()
        if now:
            self.process.kill()
        try:
            self.process.wait(timeout=None if not now else 10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


def run_pool(start: Callable, argument, groups: list[list], workers: int,
             on_answer: Callable[[list, object], None],
             on_crash: Callable[[object, str], None]) -> None:
    """Run every group of tasks on ``workers`` fresh interpreters.

    Parameters
    ----------
    start : callable
        Run once in each worker as ``start(load)``, ``load()`` returning
        ``argument``; returns ``(state, handle)``. ``start`` is pickled by reference
        (an importable function), ``argument`` with cloudpickle (by value what is
        defined in ``__main__``).
    groups : list of lists
        The tasks in batches; a worker runs ``handle(state, batch)`` per batch.
    on_answer : callable
        ``on_answer(batch, answer)`` for each batch that came back.
    on_crash : callable
        ``on_crash(task, how)`` for a task that killed its worker when run alone
        (``how``: ``"killed by signal SIGSEGV"``, ``"exited with status 3"``).

    A worker that dies running a batch of several tasks is replaced and the batch
    is run again, one task per batch. ``KeyboardInterrupt`` kills the workers and
    propagates; answers already given were passed to ``on_answer``.
    """
    import cloudpickle

    setup = pickle.dumps((start, cloudpickle.dumps(argument, protocol=pickle.HIGHEST_PROTOCOL)),
                         protocol=pickle.HIGHEST_PROTOCOL)
    queue = deque(groups)
    selector = selectors.DefaultSelector()
    pool: dict[int, _Worker] = {}
    retired: list[_Worker] = []
    start_failures = 0

    def hire() -> None:
        worker = _Worker(setup)
        pool[worker.fd] = worker
        selector.register(worker.fd, selectors.EVENT_READ, worker)

    def assign(worker: _Worker) -> None:
        if queue:
            batch = queue.popleft()
            if not worker.give(id(batch), batch):
                queue.appendleft(batch)  # it died: its EOF comes next
                worker.task, worker.broken = None, True
        else:
            worker.task = None

    try:
        for _ in range(min(workers, len(queue))):
            hire()
        while pool:
            for selected, _ in selector.select():
                worker = selected.data
                message = _read(worker.fd)
                if message is None:  # dead: say why, requeue or name its task, replace it
                    selector.unregister(worker.fd)
                    del pool[worker.fd]
                    how = worker.reap()
                    if worker.task is not None:
                        _, batch = worker.task
                        if len(batch) > 1:
                            queue.extendleft(reversed([[task] for task in batch]))
                        else:
                            on_crash(batch[0], how)
                    elif not worker.ready:
                        start_failures += 1
                        if start_failures >= MAX_START_FAILURES:
                            raise EngineError(
                                f"the sweep's worker processes could not start ({how}; their "
                                f"error is printed above on stderr)")
                    while len(pool) < min(workers, len(queue)):
                        hire()
                    continue
                key, answer = message
                if key == "ready":
                    worker.ready = True
                    start_failures = 0
                else:
                    on_answer(worker.task[1], answer)
                assign(worker)
                if worker.task is None and not worker.broken:  # nothing left: let it exit
                    selector.unregister(worker.fd)
                    del pool[worker.fd]
                    worker.retire()
                    retired.append(worker)
    except BaseException:
        for worker in pool.values():
            worker.stop(now=True)
        raise
    finally:
        selector.close()
        for worker in retired:
            worker.stop(now=False)

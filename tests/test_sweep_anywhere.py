"""engine.sweep and engine.walk_forward with worker processes, called the ways users
write them, none under ``if __name__ == "__main__":``: a plain script, a script piped
on stdin, ``python -c`` with the strategy class inline, and notebook cells executed in
``__main__`` (no file). Each runs as a subprocess and must give the rows of the same
sweep run in one process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The strategy class, defined in the caller's __main__ (never importable by a worker).
CELL_CLASS = textwrap.dedent("""
    import engine
    from engine import Signals, Strategy, param
    from engine.data.synthetic import random_walk
    from engine.indicators import crossings, sma

    SLOW = 30  # a global of __main__ the method reads: it must travel with the class


    class Inline(Strategy):
        fast: int = param(5, min=1)

        def signals(self, data):
            return Signals(*crossings(sma(data.close, self.fast), sma(data.close, SLOW)))
""")

#: The sweep and the walk-forward with two workers, checked against one process.
CELL_SWEEP = textwrap.dedent("""
    import json

    bars = random_walk(400, seed=1)
    grid = {"fast": [3, 5, 8, 13]}
    table = engine.sweep(Inline, grid, data=bars, n_jobs=2, progress=False)
    alone = engine.sweep(Inline, grid, data=bars, n_jobs=1, progress=False)
    wf = engine.walk_forward(Inline, {"fast": [3, 5]}, train=200, test=100, data=bars,
                             n_jobs=2, progress=False)
    wf_alone = engine.walk_forward(Inline, {"fast": [3, 5]}, train=200, test=100, data=bars,
                                   n_jobs=1, progress=False)
    print(json.dumps({"rows": table.height, "ok": table["error"].null_count(),
                      "same": table.equals(alone, null_equal=True),
                      "windows": wf.windows.height,
                      "wf_same": wf.windows.equals(wf_alone.windows, null_equal=True)}))
""")

SCRIPT = CELL_CLASS + CELL_SWEEP

#: A notebook: each cell executed in __main__'s namespace, as a Jupyter kernel does.
NOTEBOOK = textwrap.dedent(f"""
    import __main__
    cells = {json.dumps([CELL_CLASS, CELL_SWEEP])}
    for number, cell in enumerate(cells, 1):
        exec(compile(cell, f"<cell {{number}}>", "exec"), __main__.__dict__)
""")


def _check(completed: subprocess.CompletedProcess) -> None:
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report == {"rows": 4, "ok": 4, "same": True, "windows": 2, "wf_same": True}


def _python(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=300, **kwargs)


def test_a_plain_script_without_a_main_guard(tmp_path):
    path = tmp_path / "sweep_script.py"
    path.write_text(SCRIPT)
    _check(_python(str(path), cwd=tmp_path))


def test_a_script_piped_on_stdin(tmp_path):
    _check(_python("-", input=SCRIPT, cwd=tmp_path))


def test_python_dash_c_with_the_class_inline(tmp_path):
    _check(_python("-c", SCRIPT, cwd=tmp_path))


@pytest.mark.parametrize("cwd", ["tmp", "root"])
def test_notebook_cells_executed_in_main(tmp_path, cwd):
    _check(_python("-c", NOTEBOOK, cwd=tmp_path if cwd == "tmp" else ROOT))


def test_ctrl_c_keeps_the_finished_rows_with_worker_processes(tmp_path):
    import signal
    import time

    script = textwrap.dedent("""
        import json, sys, time, warnings
        import engine
        from engine import Signals, Strategy, param
        from engine.data.synthetic import random_walk

        class Slow(Strategy):
            n: int = param(0)

            def signals(self, data):
                time.sleep(0.3)
                close = data.close
                return Signals(entries=close > 1e9, exits=close > 1e9)

        print("start", flush=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = engine.sweep(Slow, {"n": list(range(200))}, data=random_walk(100),
                                 n_jobs=2, progress=False, audit="off")
        print(json.dumps({"rows": table.height, "n": table["n"].to_list(),
                          "warnings": [str(w.message) for w in caught]}), flush=True)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    assert child.stdout.readline().strip() == "start"
    time.sleep(6)  # the workers start and finish some sets
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["rows"] < 200 and report["n"] == sorted(report["n"])
    assert report["warnings"] == [
        f"sweep interrupted: {200 - report['rows']} of 200 parameter sets missing"]

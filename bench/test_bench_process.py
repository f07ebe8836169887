"""``python -m engine run`` as a user runs it: a whole process on the bundled S&P 500
(24,777 daily bars), against starting a bare interpreter and one that imports the
data stack (numpy, polars, pyarrow), measured in the same run. DESIGN.md's target
is < 1 s wall."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.conftest import ROOT, record_process

ROUNDS = 5
COMMANDS = {
    "python -c pass (interpreter start-up)": [sys.executable, "-c", "pass"],
    "python -c 'import numpy, polars, pyarrow'": [
        sys.executable, "-c", "import numpy, polars, pyarrow.parquet"],
    "python -m engine run strategies/sma_cross.py": [
        sys.executable, "-m", "engine", "run", "strategies/sma_cross.py"],
    "python -m engine run strategies/fear_contrarian.py": [
        sys.executable, "-m", "engine", "run", "strategies/fear_contrarian.py"],
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_whole_process(benchmark, name):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def launch():
        return subprocess.run(COMMANDS[name], cwd=ROOT, env=env, capture_output=True,
                              text=True, check=False)

    proc = benchmark.pedantic(launch, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert proc.returncode == 0, proc.stderr
    record_process(benchmark, name)

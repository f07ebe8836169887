#!/usr/bin/env bash
# Peer comparison: make bench/peers/.venv (once), install the engine and the peers in
# it, and run compare.py there. Arguments go to compare.py, e.g.
#   bench/peers/run.sh --sizes 10000,100000 --rounds 3
# PEERS_REINSTALL=1 reinstalls into an existing .venv. PEERS_NO_BUILD=1 does not build
# the engine: it links the work tree into the venv (the Cython core must already be
# built in place, e.g. by `pip install -e .` in the development environment) and
# installs only the engine's runtime dependencies.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$HERE/.venv"
PY="$VENV/bin/python"

if [ ! -x "$PY" ] || [ "${PEERS_REINSTALL:-0}" = 1 ]; then
    [ -x "$PY" ] || "${PYTHON:-python3}" -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q -r "$HERE/requirements.txt"
    if [ "${PEERS_NO_BUILD:-0}" = 1 ]; then
        "$PY" - "$ROOT" <<'PYEOF'
import subprocess, sys, sysconfig, tomllib
from pathlib import Path
root = Path(sys.argv[1])
deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
subprocess.run([sys.executable, "-m", "pip", "install", "-q", *deps], check=True)
Path(sysconfig.get_paths()["purelib"], "engine_work_tree.pth").write_text(f"{root}\n")
PYEOF
    else
        "$PY" -m pip install -q -e "$ROOT"
    fi
fi

cd "$ROOT"
exec "$PY" "$HERE/compare.py" "$@"

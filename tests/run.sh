#!/usr/bin/env bash
# Install the pipeline and its test dependencies into .venv (if needed) and run the test suite.
# Usage: bash tests/run.sh [pytest arguments]     (skip reasons are always shown: -ra)
# As root, pytest runs without root's file-permission override (setpriv), as a normal user would.
#
# A torch already in the venv (e.g. the CUDA build the Quick start installed) is kept when it is
# at least MIN_TORCH; only a venv without one gets torch 2.13.0 first, whose wheel here is the CPU
# build (an unpinned torch would pull several GB of CUDA packages).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${STRUCTURE_TOKENS_VENV:-.venv}
MIN_TORCH=2.6
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
VENV=$(cd "$VENV" && pwd)
"$VENV/bin/python" -m pip install --quiet --upgrade pip
if found=$("$VENV/bin/python" - "$MIN_TORCH" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version

try:
    found = version("torch")
except PackageNotFoundError:
    sys.exit(1)
print(found)
release = tuple(int(part) for part in found.split("+")[0].split(".")[:2])
sys.exit(0 if release >= tuple(int(part) for part in sys.argv[1].split(".")) else 1)
PY
); then
  echo "tests/run.sh: keeping torch $found in $VENV"
else
  "$VENV/bin/python" -m pip install --quiet "torch==${TORCH_VERSION:-2.13.0}"
fi
"$VENV/bin/python" -m pip install --quiet -e ".[test,workflow]"
export PATH="$VENV/bin:$PATH"
# Tests run as a cluster user would: as root (CI), drop the capabilities that let root ignore file
# modes, so a read-only output or folder blocks the tests exactly as it blocks a normal user.
AS_USER=()
if [ "$(id -u)" = 0 ]; then
  AS_USER=(setpriv --bounding-set=-dac_override,-dac_read_search --inh-caps=-all)
fi
exec "${AS_USER[@]}" "$VENV/bin/python" -m pytest -ra "$@"

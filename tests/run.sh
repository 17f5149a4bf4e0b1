#!/usr/bin/env bash
# Install the pipeline and its test dependencies into .venv (if needed) and run the test suite.
# Usage: bash tests/run.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and pinned: 2.13.0 has a CPU wheel; an unpinned torch pulls several GB of CUDA packages.
.venv/bin/python -m pip install --quiet "torch==${TORCH_VERSION:-2.13.0}"
.venv/bin/python -m pip install --quiet -e ".[test,workflow]"
export PATH="$PWD/.venv/bin:$PATH"
exec python -m pytest "$@"

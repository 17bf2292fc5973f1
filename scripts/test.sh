#!/usr/bin/env bash
# Set up a virtual environment (CPU torch first, then the package with its test extras)
# and run the test suite. Safe to re-run: an existing .venv is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
# torch first and pinned: an unpinned `torch` would pull a multi-GB CUDA build on a CPU machine.
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[dev]"
python -m pytest -q "$@"

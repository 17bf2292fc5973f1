#!/usr/bin/env bash
# Set up everything the test suite needs and run it. Safe to re-run: an existing
# .venv is reused and installs are no-ops when satisfied.
#
#   bash scripts/test.sh               # the whole suite (what CI runs)
#   bash scripts/test.sh tests/test_grounding.py -x   # extra pytest arguments pass through
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
pip_q() { python -m pip install --quiet --disable-pip-version-check "$@"; }
pip_q --upgrade pip
# torch first and pinned: an unpinned `torch` would pull a multi-GB CUDA build on a CPU machine.
pip_q "torch==2.13.0"
pip_q -e ".[dev,serve,web,train]"
# lmms-eval's declared requirements pull a CUDA torch; the plugin needs only these.
pip_q --no-deps "lmms-eval==0.7.3"
pip_q loguru evaluate sacrebleu tenacity pytablewriter "filelock<4"
# The web-page test drives Debian's headless Chromium (installed once, as root, when missing).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "note: could not install chromium; the browser test will be skipped" >&2
fi
python -m pytest -q "$@"

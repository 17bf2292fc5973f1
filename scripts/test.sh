#!/usr/bin/env bash
# Set up everything the test suite needs and run it (what CI runs).
#
#   bash scripts/test.sh                              # the whole suite
#   bash scripts/test.sh tests/test_grounding.py -x   # extra pytest arguments pass through
set -euo pipefail
cd "$(dirname "$0")/.."
GG_EXTRAS=dev,serve,web,train
. scripts/setup_env.sh
# lmms-eval's declared requirements pull a CUDA torch; the plugin needs only these.
pip_q --no-deps "lmms-eval==0.7.3"
pip_q loguru evaluate sacrebleu tenacity pytablewriter "filelock<4"
# The web-page test drives Debian's headless Chromium (installed once, as root, when missing).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "note: could not install chromium; the browser test will be skipped" >&2
fi
python -m pytest -q "$@"

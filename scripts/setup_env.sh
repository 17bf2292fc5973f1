# Sourced by scripts/test.sh and scripts/quickstart.sh: create/reuse .venv and install the
# package with the extras named in $GG_EXTRAS. Re-running is cheap (installs are no-ops).
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
pip_q() { python -m pip install --quiet --disable-pip-version-check "$@"; }
pip_q --upgrade pip
# torch first and pinned: an unpinned `torch` would pull a multi-GB CUDA build on a CPU machine.
pip_q "torch==2.13.0"
pip_q -e ".[${GG_EXTRAS:-}]"

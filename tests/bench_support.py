"""Run a ``bench/`` script as its README says (a fresh interpreter, in a scratch folder)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_bench(script: str, *args: str, cwd: Path, timeout: int = 300) -> str:
    """``python bench/<script> <args>``; fails the test on a non-zero exit; returns stdout."""
    proc = subprocess.run([sys.executable, str(BENCH / script), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout

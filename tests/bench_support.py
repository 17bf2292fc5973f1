"""Run a ``bench/`` script for its smoke test: in this process, as ``python bench/<script>`` would.

In-process saves a fresh interpreter and a second torch import per bench (seconds each on
a loaded machine). The script runs as ``__main__`` with ``sys.argv`` set, in ``cwd``, its stdout
captured; torch's thread count is restored afterwards (a bench sets its own).

Scripts that need a process of their own are run as one, with the reason in :data:`OWN_PROCESS`.
(``bench/train_throughput.py`` sets OpenMP's wait policy before torch is imported, which an
in-process run cannot do; its smoke test starts it itself.)
"""

from __future__ import annotations

import contextlib
import io
import os
import runpy
import subprocess
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"

#: Scripts run in a fresh interpreter, and why.
OWN_PROCESS = {
    "image_padding_memory.py": "it measures peak RSS in spawned children, which must import its case "
                               "function from the script by name",
    "llm_width_cost.py": "it times training steps of two models and prints their rates to one decimal: "
                         "in a test process whose earlier tests left threads behind, the first rate read 0.0 "
                         "under load",
}


def run_bench(script: str, *args: str, cwd: Path, timeout: int = 300) -> str:
    """``python bench/<script> <args>`` (in this process unless listed in OWN_PROCESS); returns stdout.

    A non-zero exit (``SystemExit`` with a message or code) fails the test.
    """
    if script in OWN_PROCESS:
        proc = subprocess.run([sys.executable, str(BENCH / script), *args],
                              capture_output=True, text=True, timeout=timeout, cwd=cwd)
        assert proc.returncode == 0, proc.stderr[-4000:]
        return proc.stdout
    out, argv, here, threads = io.StringIO(), sys.argv, os.getcwd(), torch.get_num_threads()
    try:
        sys.argv = [str(BENCH / script), *args]
        os.chdir(cwd)
        with contextlib.redirect_stdout(out):
            try:
                runpy.run_path(str(BENCH / script), run_name="__main__")
            except SystemExit as e:
                assert e.code in (None, 0), f"{script} exited with {e.code!r}"
    finally:
        sys.argv = argv
        os.chdir(here)
        torch.set_num_threads(threads)
    return out.getvalue()

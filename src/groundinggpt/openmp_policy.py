"""OpenMP's wait policy for every ``groundinggpt`` command: idle threads sleep, not spin.

torch's CPU kernels run on OpenMP threads. With OpenMP's default policy an idle thread
busy-waits for a while after each parallel region; on a shared or small CPU machine those
spinning threads take the cores the next region (or another process) needs. Measured on a
loaded 2-core machine: tiny-preset training steps 2-30x slower and erratic
(``bench/train_throughput.py``), ``groundinggpt serve`` 6x (1 client) to 15x (16 clients)
slower than with ``OMP_WAIT_POLICY=PASSIVE``. Sleeping waiters cost nothing measurable on
an idle machine.

The runtime (libgomp) reads the variable once, when torch loads it, so it must be set
before the first ``import torch``: the package's ``__init__`` calls :func:`prefer_passive_wait`
before importing anything that imports torch, which covers ``train``, ``serve``, ``chat``,
``web``, ``eval`` and every other sub-command (their entry point imports the package
first). A value already in the environment wins (``OMP_WAIT_POLICY=ACTIVE`` to opt out);
a program that imported torch before ``groundinggpt`` keeps the policy it started with.
"""

from __future__ import annotations

import os

DEFAULT_POLICY = "PASSIVE"


def prefer_passive_wait() -> str:
    """Set ``OMP_WAIT_POLICY`` to PASSIVE unless the environment already names one; return it."""
    return os.environ.setdefault("OMP_WAIT_POLICY", DEFAULT_POLICY)

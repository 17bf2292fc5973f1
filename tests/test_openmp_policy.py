"""Every ``groundinggpt`` command starts torch with OpenMP's PASSIVE wait policy.

libgomp reads ``OMP_WAIT_POLICY`` once, when torch loads it; ``OMP_DISPLAY_ENV=VERBOSE``
makes it print what it read, and its spin count tells the policies apart (0 for PASSIVE,
300000 when unset: the ``OMP_WAIT_POLICY`` line itself reads PASSIVE in both cases).
Setting the variable after ``import torch`` (as the CLI did) leaves the spin count at 300000.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from groundinggpt.openmp_policy import prefer_passive_wait

pytestmark = pytest.mark.timeout(300)


def _spin_count(args: list[str], **env: str) -> int:
    environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    environ.update(OMP_DISPLAY_ENV="VERBOSE", **env)
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=environ, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.findall(r"GOMP_SPINCOUNT = '(\d+)'", proc.stderr)
    if not found:
        pytest.skip("torch's OpenMP runtime is not libgomp (it printed no GOMP_SPINCOUNT)")
    return int(found[0])  # the first runtime loaded is torch's


def test_plain_torch_spins_when_no_policy_is_set():
    # The baseline the CLI fixes: without the variable, idle OpenMP threads spin.
    assert _spin_count(["-c", "import torch"]) > 0


def test_the_cli_loads_torch_with_the_passive_policy():
    # Every sub-command (serve, chat, web, eval, train ...) runs behind this same import of
    # the package, which sets the policy before torch loads; one of them stands for all
    # (each subprocess costs half a minute on the loaded test machine).
    assert _spin_count(["-m", "groundinggpt.cli", "serve", "--help"]) == 0


def test_an_explicit_policy_in_the_environment_wins(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert prefer_passive_wait() == "ACTIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert prefer_passive_wait() == "PASSIVE" and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"

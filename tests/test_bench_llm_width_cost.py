"""Smoke test of bench/llm_width_cost.py: both models train a step and the ratio is printed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "llm_width_cost.py"


def test_llm_width_cost_smoke(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--wide", "128x1", "--steps", "1", "--batch", "2",
                           "--threads", "1"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rates = re.findall(r"\| ([0-9.]+) \|\n", proc.stdout + "\n")
    assert "| miniature 256x4 (pretrained) | 3.1 M |" in proc.stdout and "| 128x1 (random init) |" in proc.stdout
    assert re.search(r"128x1 costs [0-9.]+x the miniature per sample", proc.stdout)
    assert len(rates) == 2 and all(float(r) > 0 for r in rates)

"""Smoke test of bench/image_padding_memory.py: both cases run and the table and ratio are printed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "image_padding_memory.py"


def test_image_padding_memory_smoke(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--width", "6000", "--height", "2"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = dict(re.findall(r"\| (pad first \(before\)|preprocess_image \(now\)) \| ([0-9.]+) \|", proc.stdout))
    assert set(rows) == {"pad first (before)", "preprocess_image (now)"}
    # a 6000x6000 canvas is ~103 MiB: the baseline must show it
    assert float(rows["pad first (before)"]) > 90
    assert re.search(r"peak memory: [0-9.]+x less", proc.stdout)

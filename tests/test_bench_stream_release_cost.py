"""Smoke test of bench/stream_release_cost.py: both cases release the same text and the table is printed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "stream_release_cost.py"


def test_stream_release_cost_smoke(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tokens", "60", "300", "--repeats", "1"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = re.findall(r"^\| (\d+) \| ([0-9.]+) \| ([0-9.]+) \| \d+ \| ([0-9.]+)x \|$", proc.stdout, re.M)
    assert [int(r[0]) for r in rows] == [60, 300]  # (the script exits 1 if the two released different text)
    assert all(float(r[1]) > 0 and float(r[2]) > 0 for r in rows)

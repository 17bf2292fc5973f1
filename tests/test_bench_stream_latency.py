"""Smoke test of bench/stream_latency.py: both cases run and the table is printed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "stream_latency.py"


def test_stream_latency_smoke(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tokens", "16", "--repeats", "1", "--threads", "1"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = dict(re.findall(r"\| (whole answer first \(before\)|streamed \(now\)) \| ([0-9.]+) \|", proc.stdout))
    assert set(rows) == {"whole answer first (before)", "streamed (now)"}
    assert float(rows["streamed (now)"]) > 0
    assert re.search(r"time to first words: [0-9.]+x sooner", proc.stdout)

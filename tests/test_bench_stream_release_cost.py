"""Smoke test of bench/stream_release_cost.py: both cases release the same text and the table is printed."""

from __future__ import annotations

import re

from bench_support import run_bench


def test_stream_release_cost_smoke(tmp_path):
    out = run_bench("stream_release_cost.py", "--tokens", "60", "300", "--repeats", "1", cwd=tmp_path)
    rows = re.findall(r"^\| (\d+) \| ([0-9.]+) \| ([0-9.]+) \| \d+ \| ([0-9.]+)x \|$", out, re.M)
    assert [int(r[0]) for r in rows] == [60, 300]  # (the script exits 1 if the two released different text)
    assert all(float(r[1]) > 0 and float(r[2]) > 0 for r in rows)

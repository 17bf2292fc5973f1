"""Smoke test of bench/image_padding_memory.py: both cases run and the table and ratio are printed."""

from __future__ import annotations

import re

from bench_support import run_bench


def test_image_padding_memory_smoke(tmp_path):
    out = run_bench("image_padding_memory.py", "--width", "6000", "--height", "2", cwd=tmp_path)
    rows = dict(re.findall(r"\| (pad first \(before\)|preprocess_image \(now\)) \| ([0-9.]+) \|", out))
    assert set(rows) == {"pad first (before)", "preprocess_image (now)"}
    # a 6000x6000 canvas is ~103 MiB: the baseline must show it
    assert float(rows["pad first (before)"]) > 90
    assert re.search(r"peak memory: [0-9.]+x less", out)

"""Smoke test of bench/llm_width_cost.py: both models train a step and the ratio is printed."""

from __future__ import annotations

import re

from bench_support import run_bench


def test_llm_width_cost_smoke(tmp_path):
    out = run_bench("llm_width_cost.py", "--wide", "128x1", "--steps", "1", "--batch", "2", "--threads", "1",
                    cwd=tmp_path)
    rates = re.findall(r"\| ([0-9.]+) \|\n", out + "\n")
    assert "| miniature 256x4 (pretrained) | 3.1 M |" in out and "| 128x1 (random init) |" in out
    assert re.search(r"128x1 costs [0-9.]+x the miniature per sample", out)
    assert len(rates) == 2 and all(float(r) > 0 for r in rates)

"""Smoke test of bench/vision_tower_cut.py: both variants run, equal features, the ratios are printed."""

from __future__ import annotations

import json
import re
import sys

from bench_support import run_bench


def test_vision_tower_cut_bench_smoke(tmp_path):
    out = run_bench("vision_tower_cut.py", "--shape", "tiny", "--batch", "2", "--reps", "1", "--threads", "1",
                    "--output", str(tmp_path / "r.json"), cwd=tmp_path)
    assert re.search(r"\| whole \| 4 \|", out) and re.search(r"\| cut \| 3 \|", out)
    speed = re.search(r"speed cut/whole: ([0-9.]+)x", out)
    diff = re.search(r"features max \|diff\| ([0-9.e+-]+)", out)
    assert speed and float(speed.group(1)) > 0
    assert diff and float(diff.group(1)) <= 1e-6
    memory = json.loads((tmp_path / "r.json").read_text())["memory"]
    for variant in ("whole", "cut"):
        assert memory[variant]["forward_peak_kib"] >= 0 and memory[variant]["process_peak_kib"] > 0
        if sys.platform == "linux":  # the build's peak is reset, so the forward's own peak is what is read
            assert memory[variant]["method"] == "VmHWM reset after the build"

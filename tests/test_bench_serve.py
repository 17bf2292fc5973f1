"""Smoke tests of bench/api_overhead.py and bench/serve_load.py: every case runs, the ratios are printed."""

from __future__ import annotations

import re

from bench_support import run_bench


def test_api_overhead_smoke(tmp_path):
    out = run_bench("api_overhead.py", "--tokens", "4", "--rounds", "1", cwd=tmp_path)
    rows = dict(re.findall(r"\| (model\.generate|API|API, HF stop_strings \(before\)) \| (\d+) \|", out))
    assert set(rows) == {"model.generate", "API", "API, HF stop_strings (before)"}
    assert all(int(n) >= 1 for n in rows.values())
    assert re.search(r"API / model\.generate tokens/s: [0-9.]+x", out)


def test_serve_load_smoke(tmp_path):
    out = run_bench("serve_load.py", "--levels", "1", "--max-tokens", "2", "--video-seconds", "2",
                    "--video-size", "160x120", "--stall-images", "2", "--cache", str(tmp_path / "media"),
                    cwd=tmp_path, timeout=600)
    level = re.search(r"^\| 1 \| 8 \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+)x \|", out, re.M)
    assert level and float(level[1]) > 0 and float(level[2]) > 0
    for scheduler in ("static", "continuous"):
        assert re.search(rf"^\| {scheduler} \| [0-9.]+ / [0-9.]+ \| (?:[0-9.]+|nan) / (?:[0-9.]+|nan) \| \d+ \|", out, re.M)
    assert re.search(r"continuous / static requests/s at c=1: [0-9.]+x", out)

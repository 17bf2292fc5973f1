"""Smoke test of bench/data_convert.py: both readers run on a small VG file and the table is printed."""

from __future__ import annotations

import re

from bench_support import run_bench


def test_data_convert_bench_smoke(tmp_path):
    out = run_bench("data_convert.py", "--regions", "3000", "--per-image", "30", cwd=tmp_path, timeout=600)
    rows = re.findall(r"^\| (json.load[^|]*|convert_source[^|]*) \| ([0-9.]+) \|", out, re.M)
    assert [r[0].split()[0] for r in rows] == ["json.load", "convert_source"]
    assert re.search(r"peak memory: [0-9.]+x less than json.load", out)
    assert re.search(r"speed: [0-9,]+ regions per CPU-second", out)
    assert re.search(r"conversion alone \(after the package import, [0-9.]+ CPU s .*\): [0-9,]+ regions per CPU-second", out)

"""Smoke test of bench/stream_latency.py: both cases run and the table is printed."""

from __future__ import annotations

import re

from bench_support import run_bench


def test_stream_latency_smoke(tmp_path):
    out = run_bench("stream_latency.py", "--tokens", "16", "--repeats", "1", "--threads", "1", cwd=tmp_path)
    rows = dict(re.findall(r"\| (whole answer first \(before\)|streamed \(now\)) \| ([0-9.]+) \|", out))
    assert set(rows) == {"whole answer first (before)", "streamed (now)"}
    assert float(rows["streamed (now)"]) > 0
    assert re.search(r"time to first words: [0-9.]+x sooner", out)

"""Smoke test of bench/decode_limits.py at small sizes: every case runs, the limits stop the
ones past them, and the baseline shows the whole-file cost."""

from __future__ import annotations

import re

from bench_support import run_bench


def test_decode_limits_smoke(tmp_path):
    out = run_bench("decode_limits.py", "--flac-seconds", "0.4", "--webm-minutes", "0.1", "--frames", "1",
                    "--side", "4002", cwd=tmp_path, timeout=900)
    rows = re.findall(r"^\| (.+?) \| \d+ \| (whole file \(before\)|blocks \+ limits \(now\)) \| ([0-9.]+) \| "
                      r"[0-9.]+ \| (.+) \|$", out, re.M)
    assert len(rows) == 6, out
    video_now = [r for r in rows if r[0].startswith("1 frames") and r[1].startswith("blocks")]
    # 4002 x 4002 = 16.02 M pixels per frame: over the server's 16 M, refused from the header
    assert video_now and video_now[0][3].startswith("refused: video frames of 4002x4002"), out
    assert re.search(r"^flac: peak memory [0-9.]+x less", out, re.M)

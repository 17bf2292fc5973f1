"""Smoke test of bench/video_decode_long.py: it runs, checks its frames and prints its ratios."""

from __future__ import annotations

from bench_support import run_bench


def test_video_decode_long_bench_runs(tmp_path):
    out = run_bench("video_decode_long.py", "--seconds", "2", "--rounds", "1", "--frames", "8", "--size", "320x240", "--no-decord",
                    "--clips-dir", str(tmp_path / "clips"), cwd=tmp_path, timeout=600)
    assert "frames identical across loaders: long-gop: yes, short-gop: yes" in out
    assert "long-gop: load_video / frame-by-frame (before) =" in out
    assert (tmp_path / "clips" / "long-gop-2s-320x240.mp4").exists()

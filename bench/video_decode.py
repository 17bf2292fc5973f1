#!/usr/bin/env python
"""Loading short clips: ``load_video`` (one swscale context per clip) vs per-frame ``to_image()``.

The baseline decodes the same frames and converts each with PyAV's ``VideoFrame.to_image()``,
which builds a new swscale context per call — what ``load_video`` did before. Both run in this
process on the same files, interleaved, so machine load hits both alike.

    python bench/video_decode.py [--clips 200] [--frames 16] [--size 64] [--sample 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from groundinggpt.media.video import load_video, sample_times, write_video


def baseline(path: Path, num_frames: int, fps: float) -> list:
    """Sequential decode, the frames nearest the sample times, ``to_image()`` each."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    duration = len(frames) / fps
    times = [float(t) for t in sample_times(duration, num_frames)]
    stamps = [f.time for f in frames]
    picks = [frames[int(np.argmin([abs(s - t) for s in stamps]))] for t in times]
    return [f.to_image() for f in picks]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=200)
    p.add_argument("--frames", type=int, default=16, help="frames per clip")
    p.add_argument("--size", type=int, default=64, help="clip side in pixels")
    p.add_argument("--sample", type=int, default=8, help="frames the model samples per clip")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.clips):
            frames = rng.integers(0, 255, (args.frames, args.size, args.size, 3), dtype=np.uint8)
            path = Path(tmp) / f"clip{i}.mp4"
            write_video(path, frames, fps=8.0)
            paths.append(path)
        load_video(paths[0], args.sample), baseline(paths[0], args.sample, 8.0)  # warm-up
        ours = base = 0.0
        for path in paths:
            t = time.perf_counter()
            load_video(path, args.sample)
            ours += time.perf_counter() - t
            t = time.perf_counter()
            baseline(path, args.sample, 8.0)
            base += time.perf_counter() - t
    print(f"| loader | ms per clip ({args.clips} clips, {args.frames} frames {args.size}px, {args.sample} sampled) |")
    print("|---|---:|")
    print(f"| per-frame to_image() (baseline) | {1000 * base / args.clips:.1f} |")
    print(f"| load_video (shared reformatter) | {1000 * ours / args.clips:.1f} |")
    print(f"speed-up: {base / ours:.2f}x")


if __name__ == "__main__":
    main()

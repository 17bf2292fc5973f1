#!/usr/bin/env python
"""Sampling 64 frames of a long 720p clip: ``load_video`` (planned decoding) vs decord vs
the frame-by-frame decoder ``load_video`` used before, on the same files, in one process.

Two 1-minute 1280×720 H.264 clips at 30 fps are encoded once (and kept in ``--clips-dir``):

- ``long-gop``: libx264 defaults for downloaded video — B-frames (``bf=3``), a keyframe only
  at scene cuts or every 250 frames;
- ``short-gop``: no B-frames, a keyframe every 30 frames (as phones and cameras record).

Each round loads every clip three ways, in rotating order, so bursts of load from other jobs
fall on all alike; the table shows the median seconds, frames decoded, and the ratios.
decord picks frame ``floor(n * (2i + 1) / (2M))`` — for these constant-rate clips the frame on
screen at the segment midpoint, which is ``load_video``'s rule — and its frames are checked
identical to ours.

    pip install decord        # the baseline; not a dependency of the package
    python bench/video_decode_long.py [--rounds 3] [--seconds 60] [--frames 64] [--size 1280x720] [--clips-dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from groundinggpt.media import video as video_module
from groundinggpt.media.video import load_video

CLIPS = {  # name -> libx264 options
    "long-gop": {"preset": "veryfast", "bf": "3", "g": "250"},
    "short-gop": {"preset": "veryfast", "bf": "0", "g": "30", "keyint_min": "30"},
}


def make_clip(path: Path, options: dict[str, str], seconds: int, fps: int = 30, width: int = 1280,
              height: int = 720) -> None:
    """Moving blocks over a gradient with a drifting noise layer: cheap to draw, not trivial to code."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) * 255 // (width + height)], -1).astype(np.uint8)
    noise = rng.integers(0, 12, (height, width, 3), dtype=np.uint8)
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options=dict(options))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(seconds * fps):
            frame = base.copy()
            block = height // 4
            x, y = (i * 7) % (width - block), (i * 3) % (height - block)
            frame[y:y + block, x:x + block] = (255, 40, 40)
            x2 = (width - block) - (i * 5) % (width - block)
            frame[height // 2:height // 2 + block // 2, x2:x2 + block // 2] = (40, 200, 60)
            frame += np.roll(noise, i % 50, axis=1)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    tmp.rename(path)


def frame_by_frame(path: Path, num_frames: int):
    """``load_video`` with the packet plan turned off: the decoder it used before."""
    real = video_module.read_packet_index
    video_module.read_packet_index = lambda container, stream: None
    try:
        return load_video(path, num_frames)
    finally:
        video_module.read_packet_index = real


def with_decord(path: Path, num_frames: int) -> np.ndarray:
    import decord

    reader = decord.VideoReader(str(path), num_threads=0)
    n = len(reader)
    return reader.get_batch([n * (2 * i + 1) // (2 * num_frames) for i in range(num_frames)]).asnumpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=60, help="clip length")
    p.add_argument("--frames", type=int, default=64, help="frames sampled per clip")
    p.add_argument("--size", default="1280x720", help="clip width x height")
    p.add_argument("--clips-dir", type=Path, default=Path(tempfile.gettempdir()) / "groundinggpt-bench-video")
    p.add_argument("--no-decord", action="store_true", help="compare with the old decoder only")
    args = p.parse_args()
    use_decord = not args.no_decord
    if use_decord:
        try:
            import decord  # noqa: F401
        except ImportError:
            raise SystemExit("decord is the baseline: `pip install decord` (or pass --no-decord)")
    args.clips_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, options in CLIPS.items():
        width, height = (int(v) for v in args.size.lower().split("x"))
        paths[name] = args.clips_dir / f"{name}-{args.seconds}s-{width}x{height}.mp4"
        if not paths[name].exists():
            print(f"encoding {paths[name]} (once) ...", flush=True)
            make_clip(paths[name], options, args.seconds, width=width, height=height)

    runners = {"load_video": lambda path: load_video(path, args.frames),
               "frame-by-frame (before)": lambda path: frame_by_frame(path, args.frames)}
    if use_decord:
        runners["decord"] = lambda path: with_decord(path, args.frames)
    times = {(clip, how): [] for clip in paths for how in runners}
    decoded, identical = {}, {}
    for round_ in range(args.rounds):
        for clip, path in paths.items():
            order = list(runners)[round_ % len(runners):] + list(runners)[:round_ % len(runners)]
            results = {}
            for how in order:
                start = time.perf_counter()
                results[how] = runners[how](path)
                times[clip, how].append(time.perf_counter() - start)
            ours, before = results["load_video"], results["frame-by-frame (before)"]
            decoded[clip] = (ours.num_decoded_frames, before.num_decoded_frames)
            mine = np.stack([np.asarray(f) for f in ours.frames])
            same = all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(ours.frames, before.frames))
            if use_decord:
                same = same and np.array_equal(mine, results["decord"])
            identical[clip] = identical.get(clip, True) and same

    base = "decord" if use_decord else "frame-by-frame (before)"
    print(f"\n| clip ({args.seconds} s {args.size}, {args.frames} frames) | loader | median s | frames decoded | vs {base} |")
    print("|---|---|---:|---:|---:|")
    for clip in paths:
        reference = statistics.median(times[clip, base])
        for how in runners:
            median = statistics.median(times[clip, how])
            count = {"load_video": decoded[clip][0], "frame-by-frame (before)": decoded[clip][1]}.get(how, "")
            print(f"| {clip} | {how} | {median:.2f} | {count} | {median / reference:.2f}x |")
    print("\nframes identical across loaders: " + ", ".join(f"{c}: {'yes' if ok else 'NO'}" for c, ok in identical.items()))
    for clip in paths:
        ratio = statistics.median(times[clip, "load_video"]) / statistics.median(times[clip, base])
        print(f"{clip}: load_video / {base} = {ratio:.2f} (target <= 0.80)")


if __name__ == "__main__":
    main()

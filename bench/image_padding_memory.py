#!/usr/bin/env python
"""Peak memory of preprocessing a very wide image: ``preprocess_image`` vs padding first.

The baseline is what ``resize_for_clip`` did before images over ``MAX_PADDED_SIDE`` were
shrunk ahead of padding: ``expand_to_square`` on the full image (a ``max(w, h)``-sided
canvas), then the resize to 336. Each case runs in its own child process of this run
(peak RSS is per process), on the same image, so the two figures compare directly.

    python bench/image_padding_memory.py [--width 20000] [--height 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time


def _case(name: str, width: int, height: int, queue) -> None:
    from PIL import Image

    from groundinggpt.media.image import CLIP_MEAN, expand_to_square, mean_to_fill, preprocess_image

    image = Image.new("RGB", (width, height), (200, 30, 30))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if name == "baseline":
        expand_to_square(image, mean_to_fill(CLIP_MEAN)).resize((336, 336), Image.Resampling.BICUBIC)
    else:
        preprocess_image(image)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    queue.put((name, max(peak - before, 0) / 1024, seconds))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=int, default=20000)
    p.add_argument("--height", type=int, default=3)
    args = p.parse_args()
    ctx = mp.get_context("spawn")  # a fresh interpreter per case: its own peak
    queue = ctx.Queue()
    rows = {}
    for name in ("baseline", "preprocess_image"):
        proc = ctx.Process(target=_case, args=(name, args.width, args.height, queue))
        proc.start()
        got = queue.get()
        proc.join()
        rows[got[0]] = got[1:]
    print(f"image {args.width}x{args.height}\n")
    print("| case | peak memory added (MiB) | seconds |\n|---|---|---|")
    labels = {"baseline": "pad first (before)", "preprocess_image": "preprocess_image (now)"}
    for name, (mib, seconds) in rows.items():
        print(f"| {labels[name]} | {mib:.1f} | {seconds:.3f} |")
    base, now = rows["baseline"][0], rows["preprocess_image"][0]
    print(f"\npeak memory: {base / max(now, 1.0):.1f}x less (floor 1 MiB)")


if __name__ == "__main__":
    main()

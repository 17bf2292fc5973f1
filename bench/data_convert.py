"""Streaming Visual Genome conversion against a ``json.load`` baseline, in one run.

Writes a ``region_descriptions.json`` of ``--regions`` regions (``--per-image`` per image)
and its ``image_data.json`` in the published format, then in fresh child processes:

- baseline: ``json.load`` of the whole file, then the same box arithmetic per region
  (no output): what a loader that reads the file whole costs at least;
- streaming: :func:`groundinggpt.data.convert.convert_source` for ``visual-genome``
  (REC task only: the box conversion), validating and writing every sample (the library
  call; ``groundinggpt data convert`` imports the same: neither loads torch or transformers).

Prints records/s by wall time and by CPU time (the child's user + system seconds: on a
shared, loaded machine the wall rate says more about the neighbours) and the peak
resident memory of each (ru_maxrss of the child), and their ratios; and the conversion's
own CPU time, without the one-off import of the package (~0.3 CPU s; ~7.5 before the package
import became lazy and stopped loading torch). Targets of issue 17: peak < 1 GB and >= 50,000
regions/s on 1,000,000 regions.

    python bench/data_convert.py --regions 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CONVERT = r"""
import sys, time
t0 = time.process_time()
from groundinggpt.data.convert import convert_source
t1 = time.process_time()
r = convert_source("visual-genome", sys.argv[1], sys.argv[2], options={"tasks": ["rec"]}, check_media=False,
                   resume=False)
print(r.written, sum(r.rejected.values()), t1 - t0, time.process_time() - t1, int("torch" in sys.modules))
"""

_BASELINE = r"""
import json, sys
images = {d["image_id"]: d for d in json.load(open(sys.argv[2]))}
data = json.load(open(sys.argv[1]))
n = 0
for entry in data:
    img = images[entry["id"]]
    w, h = img["width"], img["height"]
    for r in entry["regions"]:
        box = (r["x"] / w, r["y"] / h, (r["x"] + r["width"]) / w, (r["y"] + r["height"]) / h)
        n += 1
print(n)
"""


def write_vg(root: Path, regions: int, per_image: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    n_images = max(1, regions // per_image)
    words = "man woman dog cat red blue car tree sky shirt table chair window white large small".split()
    with (root / "image_data.json").open("w") as f:
        json.dump([{"image_id": i + 1, "width": 800, "height": 600, "coco_id": None, "flickr_id": None,
                    "url": f"https://cs.stanford.edu/people/rak248/VG_100K/{i + 1}.jpg"} for i in range(n_images)], f)
    rid = 0
    with (root / "region_descriptions.json").open("w") as f:
        f.write("[")
        for i in range(n_images):
            count = per_image if i < n_images - 1 else regions - per_image * (n_images - 1)
            regs = []
            for _ in range(count):
                rid += 1
                x, y = rng.randint(0, 700), rng.randint(0, 500)
                regs.append({"region_id": rid, "width": rng.randint(5, 800 - x), "height": rng.randint(5, 600 - y),
                             "image_id": i + 1, "phrase": " ".join(rng.choices(words, k=4)), "y": y, "x": x})
            f.write(("," if i else "") + json.dumps({"regions": regs, "id": i + 1}))
        f.write("]")


def child(cmd: list[str]) -> tuple[float, float, float, str]:
    """Run ``cmd`` in a fresh process; return (wall s, CPU s, peak RSS MiB of that child, stdout)."""
    script = ("import resource, subprocess, sys, time, json\n"
              "t = time.perf_counter()\n"
              "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
              "dt = time.perf_counter() - t\n"
              "if p.returncode: sys.stderr.write(p.stderr); sys.exit(p.returncode)\n"
              "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
              "print(json.dumps([dt, u.ru_utime + u.ru_stime, u.ru_maxrss / 1024, p.stdout]))\n")
    out = subprocess.run([sys.executable, "-c", script, *cmd], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    dt, cpu, rss, stdout = json.loads(out.stdout)
    return dt, cpu, rss, stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--regions", type=int, default=1_000_000)
    ap.add_argument("--per-image", type=int, default=40, help="regions per image (VG has ~50)")
    ap.add_argument("--keep", help="folder to keep the files in (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        write_vg(root, args.regions, args.per_image)
        size = (root / "region_descriptions.json").stat().st_size / 2**20
        print(f"region_descriptions.json: {args.regions} regions, {size:.0f} MiB (written in {time.perf_counter() - t:.0f} s)")
        base_s, base_cpu, base_mb, base_out = child([sys.executable, "-c", _BASELINE,
                                                     str(root / "region_descriptions.json"), str(root / "image_data.json")])
        assert int(base_out.strip()) == args.regions, base_out
        os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src") + os.pathsep + \
            os.environ.get("PYTHONPATH", "")
        out = root / "vg.jsonl"
        conv_s, conv_cpu, conv_mb, conv_out = child([sys.executable, "-c", _CONVERT, str(root), str(out)])
        written = sum(1 for _ in out.open())
        assert written == args.regions, (written, conv_out)
        n = args.regions
        print()
        print("| reader | wall s | regions/s (wall) | CPU s | regions/s (CPU) | peak RSS MiB |")
        print("|---|---|---|---|---|---|")
        print(f"| json.load + boxes, no output (baseline) | {base_s:.1f} | {n / base_s:,.0f} | {base_cpu:.1f} | "
              f"{n / base_cpu:,.0f} | {base_mb:.0f} |")
        print(f"| convert_source visual-genome (streamed, validated, written) | {conv_s:.1f} | {n / conv_s:,.0f} | "
              f"{conv_cpu:.1f} | {n / conv_cpu:,.0f} | {conv_mb:.0f} |")
        print()
        print(f"peak memory: {base_mb / conv_mb:.1f}x less than json.load")
        print(f"speed: {n / conv_cpu:,.0f} regions per CPU-second ({base_cpu / conv_cpu:.2f}x the baseline's rate), "
              f"{n / conv_s:,.0f} regions/s wall")
        import_cpu, work_cpu = (float(v) for v in conv_out.split()[2:4])
        torch_loaded = conv_out.split()[4] == "1"
        print(f"conversion alone (after the package import, {import_cpu:.1f} CPU s once per process, torch "
              f"{'LOADED' if torch_loaded else 'not loaded'}): {n / work_cpu:,.0f} regions per CPU-second "
              f"({work_cpu:.1f} CPU s)")
        print(f"targets: peak < 1024 MiB: {'met' if conv_mb < 1024 else 'MISSED'}; >= 50,000 regions/s: "
              f"{'met' if n / conv_cpu >= 50_000 else 'MISSED'} by CPU time, "
              f"{'met' if n / conv_s >= 50_000 else 'MISSED'} by wall time, "
              f"{'met' if n / work_cpu >= 50_000 else 'MISSED'} by the conversion's own CPU time")


if __name__ == "__main__":
    main()

"""Vision tower cut after the selected layer vs the whole tower with ``output_hidden_states=True``.

Run::

    python bench/vision_tower_cut.py                    # CLIP ViT-L/14-336 (the 7B preset's tower), batch 2
    python bench/vision_tower_cut.py --shape tiny --batch 8 --reps 5

Both variants in ONE run, on the same random weights and the same pixels:

``whole`` (before)
    ``CLIPVisionModel`` with every layer, called with ``output_hidden_states=True``, features =
    ``hidden_states[-2][:, 1:]`` — what ``GroundingGPTForCausalLM`` did until the cut.
``cut`` (now)
    The same tower after :func:`groundinggpt.models.vision_cut.cut_vision_tower` (the model's
    constructor does this), features = ``last_hidden_state[:, 1:]``.

Printed: the largest absolute difference of the features (must be ≤ 1e-6), the median time of
``--reps`` timed forwards (``torch.no_grad``, as the frozen tower runs in training and at
inference; interleaved, after one warm-up each), the tower's parameter bytes, and the peak
resident memory of one forward. Peak memory is measured in a fresh child process per variant,
so one variant's allocations never hide the other's: on Linux the process's peak (``VmHWM``)
is reset once the tower is built (``/proc/self/clear_refs``) and the forward's peak is
``VmHWM`` after it minus the resident size before it — building a tower (both variants
initialise all 24 layers before the cut) peaks higher than a forward, so a plain
``ru_maxrss`` difference shows 0 for both; elsewhere that difference is what is reported.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time

if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench/train_throughput.py

import torch  # noqa: E402


def vision_config(shape: str):
    from groundinggpt.presets import paper_config, tiny_config

    return copy.deepcopy((paper_config("7b") if shape == "vit-l" else tiny_config()).vision_config)


def build(shape: str, variant: str, seed: int):
    from transformers import CLIPVisionModel

    from groundinggpt.models.vision_cut import cut_vision_tower

    torch.manual_seed(seed)
    tower = CLIPVisionModel(vision_config(shape)).eval()
    if variant == "cut":
        cut_vision_tower(tower, -2)
    return tower


def features(tower, variant: str, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        if variant == "whole":
            return tower(pixels, output_hidden_states=True).hidden_states[-2][:, 1:]
        return tower(pixels).last_hidden_state[:, 1:]


def pixels_for(shape: str, batch: int, seed: int) -> torch.Tensor:
    size = vision_config(shape).image_size
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed + 1))


def child(shape: str, variant: str, batch: int, seed: int) -> dict:
    """Peak resident memory of one forward of a built, warmed-up tower (run in a fresh process)."""
    tower = build(shape, variant, seed)
    px = pixels_for(shape, batch, seed)
    # No warm-up here: memory a warm-up freed would be reused by the measured forward and never show in
    # the peak. One-time costs (thread pools, kernels' scratch) are the same for both variants.
    gc.collect()
    process_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if _reset_peak():
        before = _status_kib("VmRSS")
        out = features(tower, variant, px)
        forward_peak = _status_kib("VmHWM") - before
        method = "VmHWM reset after the build"
    else:
        before = process_peak
        out = features(tower, variant, px)
        forward_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        method = "ru_maxrss difference"
    del out
    return {"forward_peak_kib": max(0, forward_peak), "method": method,
            "process_peak_kib": max(process_peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)}


def _reset_peak() -> bool:
    """Reset the process's peak resident size (Linux); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return _status_kib("VmHWM") > 0
    except (OSError, ValueError):
        return False


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise ValueError(f"{field} not in /proc/self/status")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=("vit-l", "tiny"), default="vit-l")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5, help="timed forwards per variant (median)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", dest="out", default=None, help="write the results as JSON here")
    ap.add_argument("--child", choices=("whole", "cut"), default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(child(args.shape, args.child, args.batch, args.seed)))
        return {}

    towers = {v: build(args.shape, v, args.seed) for v in ("whole", "cut")}
    px = pixels_for(args.shape, args.batch, args.seed)
    feats = {v: features(t, v, px) for v, t in towers.items()}  # also the warm-up
    max_diff = float((feats["whole"] - feats["cut"]).abs().max())
    times: dict[str, list[float]] = {"whole": [], "cut": []}
    for rep in range(args.reps):
        for v in (("whole", "cut") if rep % 2 == 0 else ("cut", "whole")):
            t = time.perf_counter()
            features(towers[v], v, px)
            times[v].append(time.perf_counter() - t)
    params = {v: sum(p.numel() * p.element_size() for p in t.parameters()) for v, t in towers.items()}
    layers = {v: len(t.encoder.layers) for v, t in towers.items()}
    del towers, feats
    memory = {}
    for v in ("whole", "cut"):
        cmd = [sys.executable, os.path.abspath(__file__), "--child", v, "--shape", args.shape,
               "--batch", str(args.batch), "--seed", str(args.seed), "--threads", str(args.threads)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=True)
        memory[v] = json.loads(done.stdout.strip().splitlines()[-1])
    med = {v: statistics.median(ts) for v, ts in times.items()}
    res = {
        "shape": args.shape, "batch": args.batch, "reps": args.reps, "threads": torch.get_num_threads(),
        "max_abs_diff": max_diff, "median_s": med, "speedup": med["whole"] / med["cut"],
        "layers": layers, "param_bytes": params, "memory": memory,
        "forward_peak_ratio": memory["cut"]["forward_peak_kib"] / max(1, memory["whole"]["forward_peak_kib"]),
        "process_peak_ratio": memory["cut"]["process_peak_kib"] / max(1, memory["whole"]["process_peak_kib"]),
        "loadavg": os.getloadavg(),
    }
    lines = [
        f"## Vision tower: cut after layer -2 vs whole tower + output_hidden_states "
        f"({args.shape}, batch {args.batch}, median of {args.reps}, {torch.get_num_threads()} threads, "
        f"load {tuple(round(x, 1) for x in res['loadavg'])})",
        "",
        "| variant | layers run | params (MB) | median forward (ms) | forward peak RSS (MB) | process peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for v in ("whole", "cut"):
        lines.append(f"| {v} | {layers[v]} | {params[v] / 2**20:.1f} | {1000 * med[v]:.1f} | "
                     f"{memory[v]['forward_peak_kib'] / 1024:.1f} | {memory[v]['process_peak_kib'] / 1024:.1f} |")
    lines += ["", f"speed cut/whole: {res['speedup']:.2f}x; forward peak memory cut/whole: "
                  f"{res['forward_peak_ratio']:.2f}x; process peak cut/whole: {res['process_peak_ratio']:.2f}x; "
                  f"features max |diff| {max_diff:.1e} (must be <= 1e-6)"]
    print("\n".join(lines))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=2)
    if max_diff > 1e-6:
        raise SystemExit(f"features differ by {max_diff:.2e} > 1e-6")
    return res


if __name__ == "__main__":
    main()

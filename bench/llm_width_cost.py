#!/usr/bin/env python
"""Training cost per REC sample: the miniature LLM vs a wider one (the quickstart's trade-off).

docs/quickstart.md weighs how many samples a wider LLM needs (measured with
``scripts/diagnose_selection.py``) against what a sample costs on the CPU. This measures the
cost: training steps of stage 2 on REC (tower features cached, LLM + adapter trained, batch 32,
bfloat16 autocast) for the miniature's committed 256×4 LLM and for a WIDTHxLAYERS one, in this
process, on the same batches, interleaved.

    python bench/llm_width_cost.py [--wide 512x6] [--steps 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _diagnose():
    spec = importlib.util.spec_from_file_location("diagnose_selection", ROOT / "scripts" / "diagnose_selection.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wide", default="512x6", help="the other LLM, WIDTHxLAYERS (64-dim heads, random init)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per model (after 2 warm-up steps)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    diag = _diagnose()
    cases = {}
    for name in ("pretrained", args.wide):
        model, processor = diag.build_model(name)
        records, feats = diag.make_split(args.batch * 4, 1, False, (2, 4), "tower", model, None, "cpu")
        ids, labels, mask = diag.encode(records, processor, lambda m: m)
        for n, param in model.named_parameters():
            param.requires_grad = n.startswith(("language_model", "image_adapter"))
        params = [q for q in model.parameters() if q.requires_grad]
        cases[name] = (model, torch.optim.AdamW(params, lr=1e-4), ids, labels, mask, feats,
                       sum(q.numel() for q in model.language_model.parameters()))
    times: dict[str, list[float]] = {name: [] for name in cases}
    for step in range(args.steps + 2):
        for name, (model, opt, ids, labels, mask, feats, _) in cases.items():
            rows = torch.arange(step * args.batch, (step + 1) * args.batch) % ids.shape[0]
            t = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model(input_ids=ids[rows], attention_mask=mask[rows], labels=labels[rows],
                             image_features=feats[rows]).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step >= 2:
                times[name].append(time.perf_counter() - t)
    print(f"batch {args.batch}, sequence {cases['pretrained'][2].shape[1]} tokens, {args.threads} threads, "
          f"median of {args.steps} steps\n")
    print("| LLM | parameters | s / step | samples / s |\n|---|---:|---:|---:|")
    rate = {}
    for name, (*_, n_params) in cases.items():
        step_s = statistics.median(times[name])
        rate[name] = args.batch / step_s
        label = "miniature 256x4 (pretrained)" if name == "pretrained" else f"{name} (random init)"
        print(f"| {label} | {n_params / 1e6:.1f} M | {step_s:.3f} | {rate[name]:.1f} |")
    print(f"\n{args.wide} costs {rate['pretrained'] / rate[args.wide]:.2f}x the miniature per sample")


if __name__ == "__main__":
    main()

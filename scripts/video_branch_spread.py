#!/usr/bin/env python
"""Do the miniature's video tokens differ between clips, and do they carry the frames' order?

Clips of the quickstart world's kind (8 of their 16 frames, as the processor samples them)
go through the committed frozen tower and a freshly initialised video branch; for each
branch variant it prints, as ratios to the norm of the clips' mean token:

- ``clips``: mean deviation of a clip's video tokens from the clips' mean (0: every clip
  gives the same tokens);
- ``order``: mean distance between a clip's tokens and those of the same clip played
  backwards (0: the branch does not know which frame came first);

and the same after ``--train-steps`` of stage 1 on the clips' captions (branch trained,
LLM and tower frozen, as the quickstart's stage 1). Variants: ``legacy`` (the branch before
``video_config.input_norm``: no frame LayerNorm, weights and positions at std 0.02) and
``default`` (today's config)::

    python scripts/video_branch_spread.py --clips 32 --train-steps 100
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

VARIANTS = {
    "legacy": {"input_norm": False, "position_init_std": 0.02, "qformer_initializer_range": 0.02},
    "default": {},
}


def clips(n: int, seed: int):
    """``n`` clips → (normalised pixels ``[n, 8, 3, 64, 64]``, captions)."""
    from groundinggpt.data.synthetic.video import sample_video_scene
    from groundinggpt.miniature.corpus import normalise_pixels

    rng = np.random.default_rng([seed, 16])
    pixels, captions = [], []
    for i in range(n):
        scene = sample_video_scene(rng, f"spread-{i}", 64, 64)
        frames = np.stack(scene.frames()[1::2])  # the middle frame of each of the 8 segments
        pixels.append(normalise_pixels(frames))
        captions.append(scene.caption())
    return torch.stack(pixels), captions


def spread(tokens: torch.Tensor, reversed_tokens: torch.Tensor) -> dict[str, float]:
    """``clips`` and ``order`` ratios of ``[n, Q, D]`` video tokens (see the module docstring)."""
    mean = tokens.mean(0)
    scale = mean.norm(dim=-1).mean()
    clip_dev = (tokens - mean).norm(dim=-1).mean() / scale
    order = (tokens - reversed_tokens).norm(dim=-1).mean() / scale
    return {"clips": round(float(clip_dev), 4), "order": round(float(order), 4)}


def measure(model, features: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        return spread(model.video_branch(features), model.video_branch(features.flip(1)))


def stage1(model, processor, features: torch.Tensor, captions: list[str], steps: int, seed: int) -> float:
    """``steps`` of stage 1 on the clips' captions: only the video branch trains; returns the last loss."""
    from groundinggpt.processor import MediaInfo

    def info(kind, source):
        return None, MediaInfo(kind="video", duration=2.0)

    rows = [processor([{"role": "user", "content": [{"type": "video", "video": "v.mp4"},
                                                      {"type": "text", "text": "Describe the video."}]},
                       {"role": "assistant", "content": c}], add_generation_prompt=False, padding_side="right",
                      return_labels=True, media_loader=info) for c in captions]
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith("video_branch")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        idx = torch.randint(0, len(rows), (8,), generator=gen).tolist()
        width = max(rows[i]["input_ids"].shape[1] for i in idx)
        ids = torch.full((8, width), processor.tokenizer.pad_token_id)
        labels = torch.full((8, width), -100)
        mask = torch.zeros((8, width), dtype=torch.long)
        for k, i in enumerate(idx):
            n = rows[i]["input_ids"].shape[1]
            ids[k, :n], labels[k, :n], mask[k, :n] = rows[i]["input_ids"][0], rows[i]["labels"][0], 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels, video_features=features[idx]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    return round(float(loss), 4)


def run(args: argparse.Namespace) -> dict[str, dict]:
    from groundinggpt.miniature import build_miniature

    pixels, captions = clips(args.clips, args.seed)
    results: dict[str, dict] = {}
    features = None
    for name in args.variants:
        model, processor = build_miniature(args.parts, seed=args.seed, video_config={
            **_miniature_video(), **VARIANTS[name]})
        if features is None:
            with torch.no_grad():
                features = model.encode_videos(pixels)
                pooled = features.mean(2).flatten(1)
                results["frame_features"] = spread(pooled[:, None], pooled.flip(1)[:, None])
        row = {"init": measure(model, features)}
        if args.train_steps:
            row["stage1_loss"] = stage1(model, processor, features, captions, args.train_steps, args.seed)
            row["after_stage1"] = measure(model, features)
        results[name] = row
        print(json.dumps({name: row}), flush=True)
    return results


def _miniature_video() -> dict:
    from groundinggpt.miniature.parts import MINIATURE_OVERRIDES

    return dict(MINIATURE_OVERRIDES["video_config"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=32)
    p.add_argument("--train-steps", type=int, default=0, help="stage-1 steps on the clips' captions (0: none)")
    p.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["legacy", "default"])
    p.add_argument("--parts", default=None, help="parts folder (default: the committed parts)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    print(json.dumps(run(parse_args(argv)), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Do the miniature's video (or audio) tokens differ between clips (sounds), and do they carry order?

Media of the quickstart world's kind go through the committed frozen tower and a freshly
initialised branch; for each branch variant it prints, as ratios to the norm of the media's
mean token:

- ``clips``: mean deviation of one medium's tokens from the mean over the media (0: every
  clip, or every sound, gives the same tokens);
- ``order``: mean distance between a medium's tokens and those of the same medium played
  backwards — a video's frames, or an audio's clips, in reverse order (0: the branch does not
  know which came first);

and the same after ``--train-steps`` of stage 1 on the media's captions (branch trained,
LLM and tower frozen, as the quickstart's stage 1). Variants (:data:`VARIANTS`): ``legacy``
(the branch before ``input_norm``: no LayerNorm on the encoder tokens, weights and positions
at std 0.02), one change at a time from it, and ``default`` (today's config).

Video: 8 of a clip's 16 frames, as the processor samples them. Audio: ``clips`` over the
world's 2-second sounds (one or two shapes' sounds; the processor cuts ImageBind's 3 clips of
2 s from them, which for a 2-second sound are 3 copies of it), ``order`` over 6-second
sequences of three different sounds (3 different clips)::

    python scripts/branch_spread.py --modality video --clips 32 --train-steps 12
    python scripts/branch_spread.py --modality audio --clips 32 --train-steps 12
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

LEGACY = {"input_norm": False, "position_init_std": 0.02, "qformer_initializer_range": 0.02}
#: One change at a time from the legacy branch, then today's default (``None``: 1/sqrt(Q-Former width)).
VARIANTS = {
    "legacy": LEGACY,
    "norm": {**LEGACY, "input_norm": True},
    "init": {**LEGACY, "qformer_initializer_range": None},
    "norm+init": {**LEGACY, "input_norm": True, "qformer_initializer_range": None},
    "norm+init+pos1": {"input_norm": True, "position_init_std": 1.0, "qformer_initializer_range": None},
    "default": {},
}
#: What differs between the two branches: the chat's media part, the model's feature keyword.
MODALITIES = {"video": ("video", "v.mp4", "video_features"), "audio": ("audio", "a.wav", "audio_features")}


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


def sounds(n: int, seed: int) -> tuple[list[np.ndarray], list[str]]:
    """``n`` 2-second sounds of the world's kind (one sound, or two in sequence) and their captions."""
    from groundinggpt.data.synthetic.sound import sample_audio_scene

    rng = np.random.default_rng([seed, 17])
    scenes = [sample_audio_scene(rng, f"spread-{i}", 2.0) for i in range(n)]
    return [s.render() for s in scenes], [s.caption() for s in scenes]


def sequences(n: int, seed: int) -> list[np.ndarray]:
    """``n`` 6-second sequences of three different sounds, 2 s each: three different clips."""
    from groundinggpt.data.synthetic.sound import SOUNDS, AudioScene

    rng = np.random.default_rng([seed, 18])
    out = []
    for i in range(n):
        a, b, c = (list(SOUNDS)[int(k)] for k in rng.choice(len(SOUNDS), size=3, replace=False))
        out.append(AudioScene(f"order-{i}", 6.0, ((a, 0.0, 2.0), (b, 2.0, 4.0), (c, 4.0, 6.0)),
                              int(rng.integers(2**31))).render())
    return out


def spread(tokens: torch.Tensor, reversed_tokens: torch.Tensor) -> dict[str, float]:
    """``clips`` and ``order`` ratios of ``[n, Q, D]`` tokens (see the module docstring)."""
    mean = tokens.mean(0)
    scale = mean.norm(dim=-1).mean()
    clip_dev = (tokens - mean).norm(dim=-1).mean() / scale
    order = (tokens - reversed_tokens).norm(dim=-1).mean() / scale
    return {"clips": round(float(clip_dev), 4), "order": round(float(order), 4)}


def measure(branch, features: torch.Tensor, ordered: torch.Tensor | None = None) -> dict[str, float]:
    """``spread`` of ``features``; with ``ordered``, the ``order`` ratio comes from those media instead."""
    with torch.no_grad():
        result = spread(branch(features), branch(features.flip(1)))
        if ordered is not None:
            tokens = branch(ordered)
            result["order"] = spread(tokens, branch(ordered.flip(1)))["order"]
    return result


def stage1(model, processor, modality: str, features: torch.Tensor, captions: list[str], steps: int,
           seed: int) -> float:
    """``steps`` of stage 1 on the media's captions: only the branch trains; returns the last loss."""
    from groundinggpt.processor import MediaInfo

    kind, name, keyword = MODALITIES[modality]

    def info(_kind, _source):
        return None, MediaInfo(kind=kind, duration=2.0)

    rows = [processor([{"role": "user", "content": [{"type": kind, kind: name},
                                                      {"type": "text", "text": f"Describe the {kind}."}]},
                       {"role": "assistant", "content": c}], add_generation_prompt=False, padding_side="right",
                      return_labels=True, media_loader=info) for c in captions]
    for pname, p in model.named_parameters():
        p.requires_grad = pname.startswith(f"{modality}_branch")
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
        loss = model(input_ids=ids, attention_mask=mask, labels=labels, **{keyword: features[idx]}).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    return round(float(loss), 4)


def _features(model, processor, args: argparse.Namespace):
    """(features, captions, features of the media that measure ``order`` or None, the same ratios of the
    frozen encoder's features: a video's frame tokens mean-pooled, an audio's clip embeddings)."""
    from groundinggpt.miniature.corpus import audio_clip_features

    with torch.no_grad():
        if args.modality == "video":
            pixels, captions = clips(args.clips, args.seed)
            features = model.encode_videos(pixels)
            pooled = features.mean(2)  # [n, frames, C]
            return features, captions, None, spread(pooled.flatten(1)[:, None], pooled.flip(1).flatten(1)[:, None])
        waves, captions = sounds(args.clips, args.seed)
        features = model.encode_audios(audio_clip_features(waves, processor))
        ordered = model.encode_audios(audio_clip_features(sequences(args.clips, args.seed), processor))
        frozen = {"clips": spread(features.flatten(1)[:, None], features.flatten(1)[:, None])["clips"],
                  "order": spread(ordered.flatten(1)[:, None], ordered.flip(1).flatten(1)[:, None])["order"]}
        return features, captions, ordered, frozen


def run(args: argparse.Namespace) -> dict[str, dict]:
    from groundinggpt.miniature import build_miniature

    results: dict[str, dict] = {}
    data = None
    for name in args.variants:
        model, processor = build_miniature(args.parts, seed=args.seed, **{
            f"{args.modality}_config": {**_miniature(args.modality), **VARIANTS[name]}})
        if data is None:
            data = _features(model, processor, args)
            results["encoder_features"] = data[3]
        features, captions, ordered, _ = data
        branch = getattr(model, f"{args.modality}_branch")
        row = {"init": measure(branch, features, ordered)}
        if args.train_steps:
            row["stage1_loss"] = stage1(model, processor, args.modality, features, captions, args.train_steps,
                                        args.seed)
            row["after_stage1"] = measure(branch, features, ordered)
        results[name] = row
        print(json.dumps({name: row}), flush=True)
    return results


def _miniature(modality: str) -> dict:
    """The miniature's own settings of the branch (the video ones differ from the tiny preset's)."""
    from groundinggpt.miniature.parts import MINIATURE_OVERRIDES, miniature_config

    if modality == "video":
        return dict(MINIATURE_OVERRIDES["video_config"])
    audio = miniature_config().audio_config.to_dict()
    keep = ("encoder", "num_clips", "clip_seconds", "num_mel_bins", "target_frames", "max_clips", "num_query_tokens",
            "qformer_hidden_size", "qformer_num_layers", "qformer_num_heads", "qformer_intermediate_size",
            "cross_attention_frequency", "adapter")
    return {k: audio[k] for k in keep}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modality", choices=sorted(MODALITIES), default="video")
    p.add_argument("--clips", type=int, default=32, help="clips (video) or sounds (audio)")
    p.add_argument("--train-steps", type=int, default=0, help="stage-1 steps on the captions (0: none)")
    p.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["legacy", "default"])
    p.add_argument("--parts", default=None, help="parts folder (default: the committed parts)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    print(json.dumps(run(parse_args(argv)), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

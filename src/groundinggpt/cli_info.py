"""``groundinggpt info``: what a preset or a model folder contains (shapes, token counts, parameters)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .loading import add_device_arguments


def describe(model) -> dict:
    """Parameter counts per branch and the placeholder lengths of a model."""
    cfg = model.config
    branches = {name: sum(p.numel() for p in module.parameters()) for name, module in model.named_children()}
    return {
        "parameters": branches,
        "total_parameters": sum(branches.values()),
        "image_tokens": cfg.image_seq_length,
        "video_frames": cfg.video_config.num_frames if cfg.video_config else None,
        "video_tokens": cfg.video_seq_length,
        "audio_clips": cfg.audio_config.num_clips if cfg.audio_config else None,
        "audio_tokens": cfg.audio_seq_length,
        "chat_template": cfg.chat_template,
    }


def run(args: argparse.Namespace) -> int:
    import torch

    from .models import GroundingGPTForCausalLM
    from .presets import build_tiny, paper_config

    if args.model == "tiny":
        model, _ = build_tiny()
    elif args.model in ("groundinggpt-7b", "groundinggpt-13b"):
        with torch.device("meta"):  # shapes only: no memory, no weights
            model = GroundingGPTForCausalLM(paper_config(args.model.rsplit("-", 1)[1]))
    elif Path(args.model).is_dir():
        # The loader's checks and dtype rules; the weights only (a bare model folder has no processor).
        from .loading import check_project_folder, resolve_device, resolve_dtype

        device = resolve_device(args.device)
        path = check_project_folder(args.model)
        model = GroundingGPTForCausalLM.from_pretrained(path, dtype=resolve_dtype(args.dtype, device),
                                                        local_files_only=True).to(device)
    else:
        raise SystemExit(f"--model {args.model!r}: expected tiny, groundinggpt-7b, groundinggpt-13b or a model folder")
    print(json.dumps(describe(model), indent=2))
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="show a preset's or a model folder's branches and parameter counts")
    p.add_argument("--model", default="tiny", help="tiny | groundinggpt-7b | groundinggpt-13b | a model folder")
    add_device_arguments(p)
    p.set_defaults(func=run)

"""Registers ``groundinggpt convert lego`` (the released checkpoint → a project folder)."""

from __future__ import annotations

import argparse
from typing import Any


def _run_lego(args: argparse.Namespace) -> int:
    from .lego import Heads, convert_lego

    convert_lego(args.src, args.vision, args.output,
                 heads=Heads(eva=args.eva_heads, qformer=args.qformer_heads, audio=args.audio_heads))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("convert", help="convert another checkpoint layout into a project model folder")
    kinds = p.add_subparsers(dest="layout", metavar="LAYOUT")
    kinds.required = True
    lego = kinds.add_parser("lego", help="the authors' released GroundingGPT-7B folder (model_type LEGO)",
                            description="Writes a complete project folder: every released tensor mapped or on the "
                                        "documented drop list, CLIP from --vision, a mapped/dropped report beside "
                                        "the weights. Streams one shard at a time.")
    lego.add_argument("src", help="the released folder (config.json with model_type LEGO, shards, tokenizer)")
    lego.add_argument("--vision", required=True,
                      help="a local CLIP ViT-L/14-336 folder (openai/clip-vit-large-patch14-336); not in the release")
    lego.add_argument("--output", required=True, help="the new project folder (must not exist or be empty)")
    lego.add_argument("--eva-heads", type=int, default=None,
                      help="EVA ViT attention heads (default: width / 88, the released head width)")
    lego.add_argument("--qformer-heads", type=int, default=None,
                      help="Q-Former attention heads (default: width / 64, BERT's head width)")
    lego.add_argument("--audio-heads", type=int, default=None,
                      help="ImageBind audio trunk heads (default: width / 64)")
    lego.set_defaults(func=_run_lego)

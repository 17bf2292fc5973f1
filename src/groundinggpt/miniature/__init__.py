"""The miniature pretrained parts: a tiny "CLIP", "ImageBind audio" and "Vicuna".

GroundingGPT starts its three training stages from pretrained parts (CLIP ViT-L/14,
ImageBind-Huge audio, Vicuna-v1.5). The quickstart does the same in miniature: the
``tiny`` shapes, with each part pretrained on the synthetic world's captions and plain
text only — no coordinates, no timestamps, no grounding answers — by
``scripts/pretrain_miniature.py``. The resulting checkpoints are committed
(``groundinggpt/assets/miniature``, float16 safetensors, loaded into float32 models).

Example:
    >>> from groundinggpt.miniature import build_miniature
    >>> model, processor = build_miniature()          # doctest: +SKIP
    >>> processor.config.system_prompt                # doctest: +SKIP
    'A chat between a user and an assistant.'
"""

from __future__ import annotations

from .parts import (
    ASSETS,
    PART_FILES,
    SYSTEM_PROMPT,
    build_miniature,
    load_parts_info,
    miniature_config,
    miniature_processor,
    save_parts,
)

__all__ = [
    "ASSETS", "PART_FILES", "SYSTEM_PROMPT", "build_miniature", "load_parts_info", "miniature_config",
    "miniature_processor", "save_parts",
]

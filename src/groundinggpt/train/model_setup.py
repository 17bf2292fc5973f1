"""The model a stage trains: built from a preset or a saved folder, then the stage's freeze plan.

:func:`prepare_model` is step 2-3 of :func:`groundinggpt.train.run.train`: build (or load) the
model, pick the attention kernel, make exactly the stage's parameters trainable, add LoRA.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .freeze import apply_freeze_plan, freeze_summary, plan_for_stage
from .lora import add_lora
from .recipe import RecipeError, TrainConfig

__all__ = ["MODEL_PARTS", "build_model", "check_model_parts", "prepare_model"]


def build_model(config: TrainConfig, seed: int = 0):
    """``(model, processor)`` from a preset name or a model folder (see :class:`TrainConfig`)."""
    from ..presets import PRESETS, build_preset

    dtype = getattr(torch, config.load_dtype)
    name = config.model
    if name == "tiny":
        model, processor = build_preset("tiny", seed=seed)
        model.to(dtype)
    elif name in PRESETS:
        parts = dict(config.model_parts or {})
        if not parts:
            raise RecipeError(
                f"--model {name} is assembled from local pretrained folders: set groundinggpt.model_parts "
                "to {llm: DIR, vision: DIR, audio: FILE} (e.g. --set model_parts='{llm: ..., vision: ...}')"
            )
        check_model_parts(parts)
        model, processor = build_preset(name, dtype=dtype, **parts)
    elif Path(name).is_dir():
        from ..api import GroundingGPT
        from ..convert.lego import is_lego_folder

        if not (Path(name) / "config.json").is_file() and not is_lego_folder(name):
            raise RecipeError(f"--model {name}: the folder has no config.json (not a saved GroundingGPT model)")
        # The one loader (a released LEGO folder is refused there); the Trainer places the model.
        loaded = GroundingGPT.load(name, device="cpu", dtype=dtype)
        model, processor = loaded.model, loaded.processor
    else:
        raise RecipeError(f"--model {name!r}: expected one of {', '.join(PRESETS)} or a model folder")
    return model, processor


MODEL_PARTS = ("llm", "vision", "audio")


def check_model_parts(parts: dict[str, Any]) -> None:
    """``model_parts`` names exactly the three parts: a misspelt key would otherwise pass
    into the config, and a forgotten ``audio`` would train against a random audio encoder.

    >>> check_model_parts({"llm": "v", "vision": "c", "audoi": "i.pth"})
    Traceback (most recent call last):
    ...
    groundinggpt.train.recipe.RecipeError: model_parts: unknown key(s) ['audoi']; expected llm, vision, audio
    """
    unknown = sorted(set(parts) - set(MODEL_PARTS))
    if unknown:
        raise RecipeError(f"model_parts: unknown key(s) {unknown}; expected {', '.join(MODEL_PARTS)}")
    missing = [k for k in MODEL_PARTS if k not in parts]
    if missing:
        raise RecipeError(
            f"model_parts: missing {', '.join(missing)}"
            + (" (the ImageBind audio checkpoint; give 'audio: null' to train with a random, frozen audio "
               "encoder on purpose)" if missing == ["audio"] else ""))


def prepare_model(config: TrainConfig, seed: int = 0):
    """Build the model and make exactly the stage's parameters trainable.

    Returns:
        ``(model, processor, {"plan", "summary", "lora_parameters"})``.
    """
    from .batching import set_attention

    model, processor = build_model(config, seed=seed)
    set_attention(model, config.attn_implementation)
    plan = plan_for_stage(config.stage)
    apply_freeze_plan(model, plan)
    lora_params = 0
    if config.lora:
        torch.manual_seed(seed)  # LoRA's A matrices are random: same seed, same start
        lora_params = add_lora(model, config.lora_settings)
    info = {"plan": {"stage": config.stage, "trainable": list(plan.trainable), "description": plan.description},
            "summary": freeze_summary(model), "lora_parameters": lora_params}
    return model, processor, info

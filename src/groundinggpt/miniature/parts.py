"""The miniature model: the ``tiny`` shapes, assembled from the committed pretrained parts.

Files in a parts folder (default :data:`ASSETS`)::

    vision.safetensors   the "CLIP" image tower (a CLIPVisionModel state dict), float16
    audio.safetensors    the "ImageBind" audio tower (ImageBindAudioEncoder), float16
    llm.safetensors      the "Vicuna" LLM (LlamaForCausalLM), float16
    parts.json           the configs these were trained with and the pretraining report

:func:`build_miniature` builds a :class:`~groundinggpt.models.GroundingGPTForCausalLM` with
:func:`miniature_config`, loads the three parts into it (as float32) and leaves the branches
(image adapter, video and audio Q-Formers) freshly initialised: stage 1 trains them.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..models import GroundingGPTConfig, GroundingGPTForCausalLM
from ..models.configuration_groundinggpt import GroundingGPTVideoConfig
from ..presets import tiny_config, tiny_tokenizer
from ..processor import GroundingGPTProcessor, ProcessorConfig

__all__ = ["ASSETS", "PART_FILES", "SYSTEM_PROMPT", "MINIATURE_OVERRIDES", "build_miniature", "load_part",
           "load_parts_info", "miniature_config", "miniature_processor", "save_parts"]

#: The committed parts.
ASSETS = Path(str(resources.files("groundinggpt") / "assets" / "miniature"))
PART_FILES = {"vision": "vision.safetensors", "audio": "audio.safetensors", "llm": "llm.safetensors"}
INFO_FILE = "parts.json"

#: The miniature's system prompt (9 tokens; Vicuna's is ~30 with this tokenizer, often more than
#: the rest of a sample). The LLM is pretrained with it, so it is part of the model.
SYSTEM_PROMPT = "A chat between a user and an assistant."

#: How the miniature differs from the ``tiny`` preset's defaults (see docs/quickstart.md).
MINIATURE_OVERRIDES: dict[str, Any] = {
    "image_token_pool": 1,
    "video_config": {"num_frames": 8, "frame_token_pool": 2, "num_query_tokens": 8, "qformer_hidden_size": 64,
                     "qformer_num_layers": 1, "qformer_num_heads": 4, "qformer_intermediate_size": 128,
                     "adapter": "linear"},
}


def miniature_config(**overrides: Any) -> GroundingGPTConfig:
    """The tiny preset's config with :data:`MINIATURE_OVERRIDES` (and ``overrides``) applied."""
    values = dict(MINIATURE_OVERRIDES)
    values.update(overrides)
    video = values.get("video_config")
    if isinstance(video, dict):
        values["video_config"] = GroundingGPTVideoConfig(**video)
    return tiny_config(**values)


def miniature_processor(config: GroundingGPTConfig | None = None) -> GroundingGPTProcessor:
    """The processor of a miniature model: the tiny tokenizer and the short system prompt."""
    config = config or miniature_config()
    return GroundingGPTProcessor(tiny_tokenizer(),
                                 ProcessorConfig.from_model_config(config, system_prompt=SYSTEM_PROMPT))


def _half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (v.detach().to(torch.float16) if v.is_floating_point() else v.detach()).contiguous().clone()
            for k, v in state.items()}


def save_parts(directory: str | Path, *, vision: torch.nn.Module, audio: torch.nn.Module, llm: torch.nn.Module,
               info: dict[str, Any]) -> Path:
    """Write the three parts (float16) and ``parts.json`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, module in (("vision", vision), ("audio", audio), ("llm", llm)):
        save_file(_half(module.state_dict()), str(directory / PART_FILES[name]), metadata={"part": name})
    (directory / INFO_FILE).write_text(json.dumps(info, indent=2, default=str) + "\n", encoding="utf-8")
    return directory


def load_parts_info(directory: str | Path | None = None) -> dict[str, Any]:
    """``parts.json`` of a parts folder (the pretraining report)."""
    path = Path(directory or ASSETS) / INFO_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run scripts/pretrain_miniature.py to create the miniature parts")
    return json.loads(path.read_text(encoding="utf-8"))


def load_part(module: torch.nn.Module, directory: str | Path, name: str) -> None:
    """Load part ``name`` (``vision``, ``audio`` or ``llm``) of the parts folder ``directory`` into ``module``."""
    _load_into(module, Path(directory) / PART_FILES[name], name)


def _load_into(module: torch.nn.Module, path: Path, name: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"miniature {name} part {path} not found: run scripts/pretrain_miniature.py")
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    missing, unexpected = module.load_state_dict(state, strict=False)
    # CLIP's position_ids is a non-persistent buffer in recent transformers versions.
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(f"{path}: does not fit the {name} of this config (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}); rebuild the parts with scripts/pretrain_miniature.py")


def build_miniature(parts: str | Path | None = None, seed: int = 0, load: tuple[str, ...] = ("vision", "audio", "llm"),
                    **overrides: Any) -> tuple[GroundingGPTForCausalLM, GroundingGPTProcessor]:
    """The miniature model with its pretrained parts loaded, and its processor.

    Args:
        parts: folder of the parts (default: the committed :data:`ASSETS`).
        seed: seeds the fresh branches (adapter, Q-Formers).
        load: which parts to load (others stay random: for ablations and tests).
        **overrides: config overrides on top of :func:`miniature_config`.
    """
    directory = Path(parts or ASSETS)
    config = miniature_config(**overrides)
    torch.manual_seed(seed)
    model = GroundingGPTForCausalLM(config)
    targets = {"vision": model.vision_tower, "audio": model.audio_encoder, "llm": model.language_model}
    for name in load:
        if targets[name] is None:
            continue
        _load_into(targets[name], directory / PART_FILES[name], name)
    model.eval()
    return model, miniature_processor(config)

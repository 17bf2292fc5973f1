"""Model presets: the CPU-sized ``tiny`` and the paper's ``groundinggpt-7b`` / ``-13b``.

- ``tiny``: a few M parameters, the committed byte-level tokenizer (one token per
  digit). Random-init here; the synthetic quickstart trains it.
- ``groundinggpt-7b`` / ``groundinggpt-13b``: the paper's shapes — Vicuna-v1.5,
  CLIP ViT-L/14-336 (layer −2, 576 tokens, MLP adapter 1024→D→D), 64 video
  frames → 64 tokens, 3 audio clips → 8 tokens through ImageBind-Huge audio.
  :func:`build_from_pretrained_parts` loads each part from a *local* folder;
  nothing is downloaded.

Example:
    >>> from groundinggpt.presets import build_tiny
    >>> model, processor = build_tiny(seed=0)
    >>> sum(p.numel() for p in model.parameters()) < 10_000_000
    True
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, CLIPVisionConfig, CLIPVisionModel, LlamaConfig

from .modalities import MODALITIES
from .models import GroundingGPTConfig, GroundingGPTForCausalLM
from .models.audio_encoder import load_imagebind_audio_weights
from .models.configuration_groundinggpt import GroundingGPTAudioConfig, GroundingGPTVideoConfig
from .processor import GroundingGPTProcessor, ProcessorConfig

log = logging.getLogger(__name__)

PRESETS = ("tiny", "groundinggpt-7b", "groundinggpt-13b")
#: The placeholder tokens, from the modality table (in its order: their ids follow it).
MEDIA_TOKENS = tuple(m.token for m in MODALITIES)

# Vicuna-v1.5 shapes (LLaMA-2 architecture).
_VICUNA = {
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32),
    "13b": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40),
}
# CLIP ViT-L/14 at 336 px.
_CLIP_L14_336 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                     image_size=336, patch_size=14, projection_dim=768, hidden_act="quick_gelu")


def tiny_tokenizer():
    """The committed tiny tokenizer (byte-level BPE, single-digit tokens, media placeholders)."""
    path = resources.files("groundinggpt") / "assets" / "tiny-tokenizer"
    return AutoTokenizer.from_pretrained(str(path))


def tiny_config(**overrides: Any) -> GroundingGPTConfig:
    """Config of the tiny preset, with placeholder ids taken from the tiny tokenizer."""
    tok = tiny_tokenizer()
    vocab = tok.get_vocab()  # a placeholder the tokenizer lacks (a modality added since) gets no id here
    cfg = {m.token_id_field: vocab[m.token] for m in MODALITIES if m.token in vocab}
    cfg.update(overrides)
    return GroundingGPTConfig(**cfg)


def tiny_processor(config: GroundingGPTConfig | None = None) -> GroundingGPTProcessor:
    return GroundingGPTProcessor(tiny_tokenizer(), ProcessorConfig.from_model_config(config or tiny_config()))


def build_tiny(seed: int = 0, **overrides: Any) -> tuple[GroundingGPTForCausalLM, GroundingGPTProcessor]:
    """A random-init tiny model and its processor (deterministic for a seed)."""
    config = tiny_config(**overrides)
    torch.manual_seed(seed)
    return GroundingGPTForCausalLM(config), tiny_processor(config)


def paper_config(size: str = "7b", text_config: LlamaConfig | None = None,
                 vision_config: CLIPVisionConfig | None = None, vocab_size: int = 32000 + len(MEDIA_TOKENS),
                 **overrides: Any) -> GroundingGPTConfig:
    """The paper's shapes (Section 3.1, Table 9; the authors' code for the Q-Former sizes).

    Args:
        size: ``"7b"`` or ``"13b"`` (Vicuna-v1.5).
        text_config / vision_config: take the shapes from local pretrained configs instead.
        vocab_size: LLaMA's 32000 plus the three media placeholders appended at 32000–32002.
    """
    if size not in _VICUNA:
        raise ValueError(f"size must be one of {sorted(_VICUNA)}, got {size!r}")
    if text_config is None:
        text_config = LlamaConfig(vocab_size=vocab_size, max_position_embeddings=4096, rms_norm_eps=1e-5,
                                  bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False,
                                  **_VICUNA[size])
    vision_config = vision_config or CLIPVisionConfig(**_CLIP_L14_336)
    base = text_config.vocab_size - len(MEDIA_TOKENS)
    values: dict[str, Any] = dict(
        text_config=text_config,
        vision_config=vision_config,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_token_pool=1,  # all 576 patches, as in the paper
        image_adapter="mlp",
        video_config=GroundingGPTVideoConfig(
            num_frames=64, frame_token_pool=4, num_query_tokens=64, qformer_hidden_size=768,
            qformer_num_layers=2, qformer_num_heads=12, qformer_intermediate_size=3072, adapter="linear",
        ),
        audio_config=GroundingGPTAudioConfig(
            encoder={}, num_clips=3, clip_seconds=2.0, max_clips=8, num_query_tokens=8, qformer_hidden_size=768,
            qformer_num_layers=2, qformer_num_heads=12, qformer_intermediate_size=3072, adapter="linear",
        ),
        **{m.token_id_field: base + i for i, m in enumerate(MODALITIES)},
        chat_template="vicuna_v1",
    )
    values.update(overrides)
    return GroundingGPTConfig(**values)


def _check_kind(path: str | Path, part: str, ok: Any, expected: str) -> dict[str, Any]:
    """A folder of the wrong kind loads with random weights and a warning; refuse it instead.
    Returns the folder's config.json."""
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{part} folder {path} has no config.json (expected {expected})")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    model_type = config.get("model_type", "")
    if not ok(model_type):
        raise ValueError(f"{part} folder {path} holds a {model_type!r} model; expected {expected}")
    return config


def _check_size(path: str | Path, config: dict[str, Any], size: str) -> None:
    """The LLM's own shape wins, but a Vicuna of the *other* paper size is a wrong folder, not a
    variant: ``--model groundinggpt-13b`` with a 7B folder would train and save a 7B model
    under the 13B name. Other shapes (a LLaMA variant, a test model) are only logged."""
    shape = {k: config.get(k) for k in ("hidden_size", "num_hidden_layers")}
    wanted = {k: _VICUNA[size][k] for k in shape}
    if shape == wanted:
        return
    for other, dims in _VICUNA.items():
        if shape == {k: dims[k] for k in shape}:
            raise ValueError(f"llm folder {path} holds a Vicuna-{other.upper()}-shaped model (hidden_size "
                             f"{shape['hidden_size']}, {shape['num_hidden_layers']} layers), but the preset is "
                             f"groundinggpt-{size} (hidden_size {wanted['hidden_size']}, "
                             f"{wanted['num_hidden_layers']} layers): use groundinggpt-{other} or the "
                             f"Vicuna-{size.upper()} folder")
    log.warning("llm folder %s has hidden_size %s and %s layers, not Vicuna-%s's %s and %s; its own shape is used",
                path, shape["hidden_size"], shape["num_hidden_layers"], size.upper(), wanted["hidden_size"],
                wanted["num_hidden_layers"])


@contextmanager
def _parts_loaded_whole() -> Iterator[None]:
    """Load the pretrained parts whole even when a ZeRO-3 run is set up.

    Under ZeRO-3 transformers loads every model partitioned (``deepspeed.zero.Init``): the
    parts would then come out as empty shards that cannot be copied into GroundingGPT.
    Loaded whole, as under ZeRO-2, the assembled model is partitioned by
    ``deepspeed.initialize`` instead; only host memory holds each part whole for a moment.
    """
    from transformers.integrations import deepspeed as hf_deepspeed

    ref = hf_deepspeed._hf_deepspeed_config_weak_ref
    ds_config = ref() if ref is not None else None
    if ds_config is None or not hf_deepspeed.is_deepspeed_zero3_enabled():
        yield
        return
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed.set_hf_deepspeed_config(ds_config)


def build_from_pretrained_parts(
    llm: str | Path,
    vision: str | Path,
    audio: str | Path | None = None,
    size: str = "7b",
    dtype: torch.dtype = torch.float32,
    **config_overrides: Any,
) -> tuple[GroundingGPTForCausalLM, GroundingGPTProcessor]:
    """Assemble a paper-shaped model from local pretrained folders (the start of stage 1).

    Args:
        llm: a local Vicuna-v1.5 folder (HF format: config.json, tokenizer, weights).
        vision: a local CLIP ViT-L/14-336 folder (a full CLIP or a CLIPVisionModel checkpoint).
        audio: what :func:`~groundinggpt.models.audio_encoder.load_imagebind_audio_weights`
            accepts: ImageBind-Huge weights (``imagebind_huge.pth``), a checkpoint file holding
            ``audio_encoder.*`` keys, or a folder of checkpoint shards (a GroundingGPT or the
            released LEGO folder); ``None`` leaves the audio encoder random (only for tests).
        size: which Vicuna shape to expect: a folder holding the other size is refused; any
            other shape is logged, and the LLM's own config wins.
        dtype: weights dtype (``torch.bfloat16`` on GPU).
        **config_overrides: passed to :func:`paper_config` (e.g. a smaller ``audio_config``).

    Nothing is fetched from a hub: every ``from_pretrained`` runs with ``local_files_only``.
    """
    for name, path in (("llm", llm), ("vision", vision)):
        if not Path(path).is_dir():
            raise FileNotFoundError(f"{name} folder {path} does not exist (expected a local Hugging Face folder)")
    if audio is not None and not Path(audio).exists():  # before gigabytes of LLM are loaded
        raise FileNotFoundError(f"audio checkpoint {audio} does not exist (expected imagebind_huge.pth, a "
                                "checkpoint file with audio_encoder.* keys, or a folder of such shards)")
    from .convert.lego import is_lego_folder, lego_folder_error

    if is_lego_folder(llm):
        raise lego_folder_error(llm, "llm")
    if size not in _VICUNA:
        raise ValueError(f"size must be one of {sorted(_VICUNA)}, got {size!r}")
    llm_config = _check_kind(llm, "llm", lambda t: not t.startswith("clip"), "a causal language model (Vicuna / LLaMA)")
    _check_size(llm, llm_config, size)
    _check_kind(vision, "vision", lambda t: t in ("clip", "clip_vision_model"), "a CLIP model")
    tokenizer = AutoTokenizer.from_pretrained(llm, local_files_only=True, use_fast=True)
    added = tokenizer.add_tokens(list(MEDIA_TOKENS), special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token
    with _parts_loaded_whole():
        language_model = AutoModelForCausalLM.from_pretrained(llm, local_files_only=True, dtype=dtype)
        if added:
            language_model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
        vision_tower = CLIPVisionModel.from_pretrained(vision, local_files_only=True, dtype=dtype)
    ids = tokenizer.convert_tokens_to_ids(list(MEDIA_TOKENS))
    config = paper_config(size, text_config=language_model.config, vision_config=vision_tower.config,
                          **{m.token_id_field: i for m, i in zip(MODALITIES, ids)}, **config_overrides)
    model = GroundingGPTForCausalLM(config, language_model=language_model)
    model.vision_tower.load_state_dict(vision_tower.state_dict())
    if audio is not None:
        load_imagebind_audio_weights(model.audio_encoder, audio)
    model.to(dtype)
    return model, GroundingGPTProcessor(tokenizer, ProcessorConfig.from_model_config(config))


def build_preset(name: str, **kwargs: Any) -> tuple[GroundingGPTForCausalLM, GroundingGPTProcessor]:
    """``tiny`` builds at once; the paper presets need ``llm=``, ``vision=`` and ``audio=`` folders."""
    if name == "tiny":
        return build_tiny(**kwargs)
    if name in ("groundinggpt-7b", "groundinggpt-13b"):
        missing = [k for k in ("llm", "vision") if k not in kwargs]
        if missing:
            raise ValueError(f"preset {name!r} is built from local folders; missing: {', '.join(missing)}")
        return build_from_pretrained_parts(size=name.rsplit("-", 1)[1], **kwargs)
    raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")

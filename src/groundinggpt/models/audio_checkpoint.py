"""ImageBind audio checkpoints → :class:`~groundinggpt.models.audio_encoder.ImageBindAudioEncoder`.

The official ``imagebind_huge.pth`` and the authors' GroundingGPT checkpoint name the audio
tower's tensors ImageBind's way; this module maps them onto the tower's names (one table plus
the trunk blocks kept verbatim), finds the prefix in front of them and loads them strictly,
naming the config when shapes do not fit.

Checkpoint layout. The official ``imagebind_huge.pth`` is a flat state dict
holding all six modalities; the GroundingGPT checkpoint holds the same tensors
under ``model.audio_encoder.``. Our attribute names are chosen so that the map
from the official names is one short table (``IMAGEBIND_AUDIO_KEY_MAP``; the 12
trunk blocks keep their sub-module names verbatim)::

    official (after the optional prefix)                        ours
    ----------------------------------------------------------  ----------------------
    modality_preprocessors.audio.rgbt_stem.proj.weight          patch_embed.weight
    modality_preprocessors.audio.rgbt_stem.norm_layer.weight    patch_norm.weight
    modality_preprocessors.audio.rgbt_stem.norm_layer.bias      patch_norm.bias
    modality_preprocessors.audio.cls_token                      cls_token
    modality_preprocessors.audio.pos_embedding_helper.pos_embed pos_embed
    modality_trunks.audio.blocks.{i}.{rest}                     blocks.{i}.{rest}
    modality_heads.audio.0.weight                               head_norm.weight
    modality_heads.audio.0.bias                                 head_norm.bias
    modality_heads.audio.2.weight                               head_proj.weight
    modality_postprocessors.audio.1.log_logit_scale             log_logit_scale

where ``{rest}`` is one of ``BLOCK_PARAM_NAMES`` (``norm_1.weight``,
``attn.in_proj_weight``, ``attn.bias_k``, ``mlp.fc1.weight``, ...).

Note the stem key is ``rgbt_stem.proj.weight``, not ``proj.1.weight``: ImageBind's
``PatchEmbedGeneric`` stores a one-layer stem bare (only the vision stem, which
has a ``PadIm2Video`` in front of its Conv3d, is an ``nn.Sequential``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from groundinggpt.errors import GroundingGPTError

if TYPE_CHECKING:
    from .audio_encoder import ImageBindAudioEncoder

__all__ = ["BLOCK_PARAM_NAMES", "CheckpointError", "IMAGEBIND_AUDIO_KEY_MAP", "convert_imagebind_audio_state_dict",
           "detect_imagebind_audio_prefix", "load_imagebind_audio_weights"]


class CheckpointError(GroundingGPTError, ValueError):
    """A checkpoint does not hold the tensors (names or shapes) a model expects."""


# Official key (without prefix) -> our key, for everything outside the trunk blocks.
IMAGEBIND_AUDIO_KEY_MAP: dict[str, str] = {
    "modality_preprocessors.audio.rgbt_stem.proj.weight": "patch_embed.weight",
    "modality_preprocessors.audio.rgbt_stem.norm_layer.weight": "patch_norm.weight",
    "modality_preprocessors.audio.rgbt_stem.norm_layer.bias": "patch_norm.bias",
    "modality_preprocessors.audio.cls_token": "cls_token",
    "modality_preprocessors.audio.pos_embedding_helper.pos_embed": "pos_embed",
    "modality_heads.audio.0.weight": "head_norm.weight",
    "modality_heads.audio.0.bias": "head_norm.bias",
    "modality_heads.audio.2.weight": "head_proj.weight",
    "modality_postprocessors.audio.1.log_logit_scale": "log_logit_scale",
}

# Tensors of one trunk block; the names are the same in ImageBind and here:
# modality_trunks.audio.blocks.{i}.<name>  ->  blocks.{i}.<name>
BLOCK_PARAM_NAMES: tuple[str, ...] = (
    "norm_1.weight",
    "norm_1.bias",
    "attn.in_proj_weight",
    "attn.in_proj_bias",
    "attn.bias_k",
    "attn.bias_v",
    "attn.out_proj.weight",
    "attn.out_proj.bias",
    "norm_2.weight",
    "norm_2.bias",
    "mlp.fc1.weight",
    "mlp.fc1.bias",
    "mlp.fc2.weight",
    "mlp.fc2.bias",
)

_BLOCK_PREFIX = "modality_trunks.audio.blocks."
_BLOCK_KEY = re.compile(r"modality_trunks\.audio\.blocks\.(\d+)\.(.+)")
# Every audio tensor of the ImageBind model lives under one of these.
_AUDIO_SECTIONS = tuple(
    f"modality_{part}.audio." for part in ("preprocessors", "trunks", "heads", "postprocessors")
)
# A key every audio checkpoint has, used to find the prefix in front of the names.
_ANCHOR = _BLOCK_PREFIX + "0.attn.in_proj_weight"


def _preview(keys: Iterable[str], limit: int = 12) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def detect_imagebind_audio_prefix(keys: Iterable[str]) -> str:
    """Find what stands in front of the ImageBind audio names in a checkpoint.

    Args:
        keys: State-dict keys (all of them; other modules' keys are fine).

    Returns:
        ``""`` for ``imagebind_huge.pth``, ``"model.audio_encoder."`` for the
        GroundingGPT checkpoint, or whatever single prefix the keys use.

    Raises:
        CheckpointError: No audio trunk key, or several different prefixes.
    """
    prefixes = {
        key[: -len(_ANCHOR)]
        for key in keys
        if key.endswith(_ANCHOR) and (len(key) == len(_ANCHOR) or key[-len(_ANCHOR) - 1] == ".")
    }
    if len(prefixes) == 1:
        return prefixes.pop()
    if not prefixes:
        raise CheckpointError(
            f"no ImageBind audio weights found: no key ends with {_ANCHOR!r} "
            "(expected e.g. an imagebind_huge.pth state dict or a GroundingGPT checkpoint)"
        )
    raise CheckpointError(
        f"several ImageBind audio encoders in one checkpoint, under prefixes {sorted(prefixes)}; "
        "pass prefix= explicitly"
    )


def convert_imagebind_audio_state_dict(
    state_dict: Mapping[str, Tensor], prefix: str = "", num_blocks: int | None = None
) -> dict[str, Tensor]:
    """Rename ImageBind audio tensors to :class:`ImageBindAudioEncoder`'s names.

    Keys outside ``prefix`` and keys of other modalities (vision, text, ...) or of
    the rest of a GroundingGPT model are ignored. Tensors are not copied.

    Args:
        state_dict: An official-layout state dict (``imagebind_huge.pth``, or a
            GroundingGPT checkpoint whose encoder sits under a prefix).
        prefix: What precedes ``modality_...`` in the keys, e.g.
            ``"model.audio_encoder."``; see :func:`detect_imagebind_audio_prefix`.
        num_blocks: Expected trunk depth; by default, inferred from the highest
            block index present (a mismatch with the model is then caught when
            loading).

    Returns:
        ``{our_key: tensor}``, loadable with ``load_state_dict(..., strict=True)``.

    Raises:
        CheckpointError: An expected audio tensor is missing, or an audio key
            (under ``prefix``) has no counterpart in our encoder.
    """
    audio = {
        key[len(prefix) :]: value
        for key, value in state_dict.items()
        if key.startswith(prefix) and key[len(prefix) :].startswith(_AUDIO_SECTIONS)
    }
    if not audio:
        raise CheckpointError(
            f"no ImageBind audio keys under prefix {prefix!r} "
            f"(looked for {', '.join(s + '*' for s in _AUDIO_SECTIONS)})"
        )

    if num_blocks is None:
        indices = [int(m.group(1)) for k in audio if (m := _BLOCK_KEY.fullmatch(k))]
        num_blocks = max(indices) + 1 if indices else 0
    expected = dict(IMAGEBIND_AUDIO_KEY_MAP)
    for i in range(num_blocks):
        for name in BLOCK_PARAM_NAMES:
            expected[f"{_BLOCK_PREFIX}{i}.{name}"] = f"blocks.{i}.{name}"

    missing = expected.keys() - audio.keys()
    unexpected = audio.keys() - expected.keys()
    if missing or unexpected:
        problems = []
        if missing:
            problems.append(f"missing {len(missing)}: {_preview(prefix + k for k in missing)}")
        if unexpected:
            problems.append(
                f"unexpected {len(unexpected)}: {_preview(prefix + k for k in unexpected)}"
            )
        raise CheckpointError(
            f"ImageBind audio state dict (prefix {prefix!r}, {num_blocks} blocks) does not match "
            "the ImageBind audio tower; " + "; ".join(problems)
        )
    return {ours: audio[official] for official, ours in expected.items()}


def _read_state_dict(path: Path, keep) -> dict[str, Tensor]:
    """Tensors of one checkpoint file whose key passes ``keep`` (all keys are seen)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        # safe_open reads only the requested tensors: the audio tower is ~0.35 GB
        # of a multi-GB GroundingGPT shard.
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys() if keep(k)}
    try:
        # mmap keeps the 4.5 GB imagebind_huge.pth out of RAM except for the
        # audio tensors we actually touch.
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:
        # Legacy (pre-zipfile) checkpoints cannot be memory-mapped.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{path}: expected a state dict (a mapping of tensors), got {type(obj).__name__}"
        )
    return {k: v for k, v in obj.items() if isinstance(v, Tensor) and keep(k)}


def load_imagebind_audio_weights(
    encoder: ImageBindAudioEncoder, path: str | Path, prefix: str | None = None
) -> str:
    """Load ImageBind audio weights from a checkpoint into ``encoder``, strictly.

    Args:
        encoder: The model to fill (any dtype/device; tensors are copied in).
        path: ``imagebind_huge.pth`` (or another ``torch.save``-d state dict),
            a ``.safetensors`` file, or a directory of checkpoint shards
            (``*.safetensors``, else ``*.bin``/``*.pth``/``*.pt``), e.g. a
            GroundingGPT model folder.
        prefix: What precedes ``modality_...`` in the keys; detected when None.

    Returns:
        The prefix that was used.

    Raises:
        FileNotFoundError: ``path`` does not exist or the directory has no shards.
        CheckpointError: Missing/unexpected audio keys, or shapes that do not fit
            ``encoder.config``.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.safetensors")) or sorted(
            p for ext in ("*.bin", "*.pth", "*.pt") for p in path.glob(ext)
        )
        if not files:
            raise FileNotFoundError(f"{path}: no *.safetensors, *.bin, *.pth or *.pt checkpoint files")
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"checkpoint not found: {path}")

    def is_audio(key: str) -> bool:
        # Cheap filter so that LLM and vision tensors are never materialised.
        return any(section in key for section in _AUDIO_SECTIONS)

    state_dict: dict[str, Tensor] = {}
    for file in files:
        state_dict.update(_read_state_dict(file, is_audio))

    if prefix is None:
        prefix = detect_imagebind_audio_prefix(state_dict)
    converted = convert_imagebind_audio_state_dict(
        state_dict, prefix=prefix, num_blocks=encoder.config.depth
    )

    # Check shapes ourselves so that a config mismatch names the config, not just
    # a tensor (load_state_dict's message would list sizes without the cause).
    own = encoder.state_dict()
    bad = [
        f"{key}: checkpoint {list(tensor.shape)} vs model {list(own[key].shape)}"
        for key, tensor in converted.items()
        if tuple(tensor.shape) != tuple(own[key].shape)
    ]
    if bad:
        raise CheckpointError(
            f"{path}: ImageBind audio weights do not fit {encoder.config}; " + "; ".join(bad[:8])
        )
    encoder.load_state_dict(converted, strict=True)
    return prefix

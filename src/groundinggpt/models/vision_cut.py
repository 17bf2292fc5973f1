"""The CLIP vision tower cut at the layer whose output the model uses.

GroundingGPT (like LLaVA) takes the tower's hidden state at ``vision_feature_layer``
(−2: the output of the second-to-last layer). Running the tower with
``output_hidden_states=True`` to pick that entry computes — and keeps in memory for the
backward pass of nothing — every layer after it. :func:`cut_vision_tower` drops those
layers from the encoder's ``nn.ModuleList``, so the tower's ``last_hidden_state`` *is*
the selected hidden state (CLIP applies ``post_layernorm`` only to the pooled CLS output,
never to ``last_hidden_state``).

Where the cut lives: in the model's constructor, from the config, which keeps the full
tower's ``num_hidden_layers`` and the paper's ``vision_feature_layer``. So every way of
building the model cuts the same: a fresh build, ``from_pretrained`` of a folder saved
after the cut (it holds only the kept layers), of a folder saved before it, and the
authors' or OpenAI's full CLIP weights (they hold the dropped layers too). The dropped
layers' weights are accepted and ignored in both loading paths:

- ``PreTrainedModel.from_pretrained`` — a ``_keys_to_ignore_on_load_unexpected`` pattern
  on the tower (``post_init`` of the parent model collects it), so no warning either;
- ``nn.Module.load_state_dict`` (the presets copy a separately loaded CLIP into the
  tower; the miniature loads its part file) — a load pre-hook on the encoder removes
  the dropped layers' keys before the strict check.
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn

__all__ = ["kept_vision_layers", "cut_vision_tower"]


def kept_vision_layers(num_layers: int, feature_layer: int) -> int:
    """How many encoder layers produce hidden state ``feature_layer`` of a ``num_layers`` tower.

    ``hidden_states`` has ``num_layers + 1`` entries (the embeddings, then each layer's output),
    so entry ``i`` (or ``i - (num_layers + 1)`` counted from the end) needs the first ``i`` layers.

    >>> kept_vision_layers(24, -2), kept_vision_layers(24, -1), kept_vision_layers(24, 5)
    (23, 24, 5)
    >>> kept_vision_layers(4, -6)
    Traceback (most recent call last):
    ...
    ValueError: vision_feature_layer=-6 is outside the 5 hidden states of a 4-layer vision tower (expected -5..4)
    """
    states = num_layers + 1
    if not -states <= feature_layer < states:
        raise ValueError(f"vision_feature_layer={feature_layer} is outside the {states} hidden states of a "
                         f"{num_layers}-layer vision tower (expected {-states}..{num_layers})")
    return feature_layer % states


def _encoder(tower: nn.Module) -> nn.Module:
    # transformers 5 flattened CLIPVisionModel (tower.encoder); earlier releases nest it in vision_model.
    inner = getattr(tower, "vision_model", tower)
    return inner.encoder


def cut_vision_tower(tower: nn.Module, feature_layer: int) -> int:
    """Drop the layers of ``tower`` (a ``CLIPVisionModel``) after ``feature_layer``; return how many remain.

    Afterwards ``tower(pixel_values).last_hidden_state`` equals the uncut tower's
    ``hidden_states[feature_layer]``. Loading weights that still hold the dropped layers
    works (see the module docstring). Idempotent: a second call with the same layer is a no-op.
    """
    encoder = _encoder(tower)
    total = int(tower.config.num_hidden_layers)
    keep = kept_vision_layers(total, feature_layer)
    if len(encoder.layers) not in (total, keep):
        raise ValueError(f"vision tower has {len(encoder.layers)} layers; expected its config's {total} "
                         f"(or {keep} once cut)")
    if keep == total or getattr(encoder, "_groundinggpt_kept_layers", None) == keep:
        return len(encoder.layers)
    del encoder.layers[keep:]
    encoder._groundinggpt_kept_layers = keep
    dropped = "|".join(str(i) for i in range(keep, total))
    # Matched (re.search) against the parent model's keys, e.g. vision_tower.encoder.layers.23.mlp.fc1.weight
    # (or vision_model.encoder... in older layouts); no other part of the model has encoder.layers.N keys.
    pattern = rf"(?:^|\.)(?:vision_model\.)?encoder\.layers\.(?:{dropped})\."
    tower._keys_to_ignore_on_load_unexpected = {*(tower._keys_to_ignore_on_load_unexpected or ()), pattern}
    encoder._register_load_state_dict_pre_hook(_DropCutLayers(rf"^layers\.(?:{dropped})\."))
    return keep


class _DropCutLayers:
    """Load pre-hook: remove the dropped layers' keys (a class, not a closure, so the model still pickles)."""

    def __init__(self, pattern: str):
        self.pattern = re.compile(pattern)

    def __call__(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        for key in [k for k in state_dict if k.startswith(prefix) and self.pattern.match(k[len(prefix):])]:
            del state_dict[key]

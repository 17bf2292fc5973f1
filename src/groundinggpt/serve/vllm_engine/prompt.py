"""One prepared conversation → the prompt vLLM takes (token ids + media items).

:meth:`GroundingGPT.prepare <groundinggpt.api.GroundingGPT.prepare>` writes each medium as
``K`` placeholder tokens (``image_seq_length`` ...), the layout the model's
``masked_scatter`` fills. vLLM's multimodal processor instead finds *one* placeholder per
medium in a tokenised prompt and expands it itself (that is how it learns where each
medium's embeddings go, for its encoder cache and its scheduler). So each run of
``n × K`` placeholders becomes ``n`` single placeholders here, and the processor's prompt
update (:mod:`.processing`) writes the ``K`` back: the prompt the LLM sees is the one the
HF path builds, token for token.

The media go as the preprocessed tensors (one item per medium, in prompt order), so vLLM
never decodes a file: decoding, limits and coordinates stay this project's.
"""

from __future__ import annotations

from typing import Any

import torch

from ...modalities import MODALITIES


def placeholder_layout(config: Any) -> dict[int, tuple[str, int]]:
    """``{placeholder id: (modality name, tokens per medium)}`` for the modalities ``config`` has."""
    layout = {}
    for m in MODALITIES:
        if m.config_key is not None and getattr(config, m.config_key, None) is None:
            continue  # this model has no such branch
        length = getattr(config, m.seq_length_field, None)
        if length:
            layout[getattr(config, m.token_id_field)] = (m.name, int(length))
    return layout


def collapse_placeholders(ids: list[int], layout: dict[int, tuple[str, int]]) -> list[int]:
    """Each run of ``n × K`` placeholders of one kind → ``n`` placeholders.

    Raises ``ValueError`` for a run that is not whole media (the processor never writes one).

    >>> collapse_placeholders([1, 7, 7, 7, 7, 2, 7, 7, 3], {7: ("image", 2)})
    [1, 7, 7, 2, 7, 3]
    """
    out: list[int] = []
    i = 0
    while i < len(ids):
        token = ids[i]
        if token not in layout:
            out.append(token)
            i += 1
            continue
        j = i
        while j < len(ids) and ids[j] == token:
            j += 1
        name, length = layout[token]
        if (j - i) % length:
            raise ValueError(f"{j - i} {name} placeholders at position {i}: not whole media of {length} tokens each")
        out.extend([token] * ((j - i) // length))
        i = j
    return out


def vllm_prompt(prepared: Any, config: Any) -> dict[str, Any]:
    """A :class:`~groundinggpt.api.PreparedBatch` of one conversation → a vLLM ``TokensPrompt``
    dict: ``prompt_token_ids`` (padding dropped, placeholders collapsed) and, when the
    conversation has media, ``multi_modal_data`` ``{"image": [tensor, ...], ...}``."""
    inputs = prepared.inputs
    if inputs["input_ids"].shape[0] != 1:
        raise ValueError(f"one conversation per vLLM prompt, got {inputs['input_ids'].shape[0]}")
    ids = inputs["input_ids"][0][inputs["attention_mask"][0].bool()].tolist()
    prompt: dict[str, Any] = {"prompt_token_ids": collapse_placeholders(ids, placeholder_layout(config))}
    media = {m.name: list(torch.unbind(inputs[m.raw_key])) for m in MODALITIES if m.raw_key in inputs}
    if media:
        prompt["multi_modal_data"] = media
    return prompt

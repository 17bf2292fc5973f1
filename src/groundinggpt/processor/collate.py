"""The one collator of the project: encoded conversations → one padded batch."""

from __future__ import annotations

from typing import Any

import torch

from ..modalities import MEDIA_INPUT_NAMES

__all__ = ["IGNORE_INDEX", "collate_rows"]

#: Label of tokens that take no loss (PyTorch's cross-entropy ignore index).
IGNORE_INDEX = -100


def collate_rows(rows: list[dict[str, Any]], pad_token_id: int, padding_side: str = "right") -> dict[str, torch.Tensor]:
    """Encoded conversations → one padded batch: the one collator of the project.

    Each row holds 1-D ``input_ids`` (a list or tensor), optionally ``labels`` and
    ``attention_mask`` of the same length, and media tensors under the modality table's
    keys with a leading count (``pixel_values`` [k, 3, S, S] ...). Text is padded to the
    longest row on ``padding_side`` (``"left"`` for generation, ``"right"`` for training):
    ``input_ids`` with ``pad_token_id``, ``labels`` with -100, ``attention_mask`` with 0. Media
    are concatenated row by row, in order — the order in which the model fills the
    placeholders. Used by :meth:`GroundingGPTProcessor.__call__` and the training
    :class:`~groundinggpt.data.dataset.DataCollator`.

    Example:
        >>> b = collate_rows([{"input_ids": [5, 6, 7]}, {"input_ids": [8]}], pad_token_id=0, padding_side="left")
        >>> b["input_ids"].tolist(), b["attention_mask"].tolist()
        ([[5, 6, 7], [0, 0, 8]], [[1, 1, 1], [0, 0, 1]])
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    longest = max(len(r["input_ids"]) for r in rows)
    input_ids = torch.full((len(rows), longest), pad_token_id, dtype=torch.long)
    attention = torch.zeros((len(rows), longest), dtype=torch.long)
    labels = torch.full((len(rows), longest), IGNORE_INDEX, dtype=torch.long)
    for row, r in enumerate(rows):
        n = len(r["input_ids"])
        sl = slice(longest - n, longest) if padding_side == "left" else slice(0, n)
        input_ids[row, sl] = torch.as_tensor(r["input_ids"], dtype=torch.long)
        attention[row, sl] = torch.as_tensor(r["attention_mask"], dtype=torch.long) if "attention_mask" in r else 1
        if "labels" in r:
            labels[row, sl] = torch.as_tensor(r["labels"], dtype=torch.long)
    batch: dict[str, torch.Tensor] = {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
    for key in MEDIA_INPUT_NAMES:
        present = [r[key] for r in rows if key in r]
        if present:
            batch[key] = torch.cat(present, dim=0)
    return batch

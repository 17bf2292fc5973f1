"""Packing: several training samples per row, so a batch computes (almost) no padding.

A padded batch of conversations of very different lengths spends much of its compute on
pad tokens. :class:`PackingCollator` instead lays the batch's samples end to end in as few
rows as fit ``max_tokens`` each (first-fit decreasing; ``None``: one row holding them all,
what FlashAttention's variable-length kernel wants), and says where each sample starts
through ``position_ids`` alone:

- ``position_ids`` restart at 0 for every sample (so RoPE sees each sample as it would alone);
- ``attention_mask`` is left out: transformers then derives the sample boundaries from the
  restarts (``masking_utils.find_packed_sequence_indices``) and attention never crosses a
  boundary — a block-diagonal causal mask under SDPA / eager / flex attention, the
  variable-length kernel under FlashAttention-2 (the model folds a packed batch into one row
  for it, see ``GroundingGPTForCausalLM.forward``);
- the first label of every sample is ``-100``: in a packed row the previous sample's last
  token would otherwise be trained to predict it (alone, position 0 is never a target);
- a row's unused tail is filled with pad ids and ``-100`` labels, with positions restarting
  at 0, so it is a "sample" of its own that nothing attends to or learns from.

Media stay correct: each medium's features are spliced (``masked_scatter``) into the
placeholders in row-major order, so the media tensors are concatenated in exactly the order
the samples are laid into the rows. The loss and the gradients equal the unpacked batch's
(the same targets, the same per-sample attention), which ``tests/test_packing.py`` checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from ..processor import IGNORE_INDEX
from .dataset import DataCollator

__all__ = ["pack_rows", "PackingCollator", "padding_fraction"]


def pack_rows(lengths: Sequence[int], max_tokens: int | None) -> list[list[int]]:
    """Indices of ``lengths`` grouped into rows of at most ``max_tokens`` tokens (first-fit decreasing).

    Within a row the indices keep their original order; rows come in order of their first
    index. A sample longer than ``max_tokens`` gets a row of its own. ``max_tokens=None``: one row.

    >>> pack_rows([5, 3, 4, 2], 7)
    [[0, 3], [1, 2]]
    >>> pack_rows([5, 3, 4, 2], None)
    [[0, 1, 2, 3]]
    """
    if max_tokens is None:
        return [list(range(len(lengths)))] if len(lengths) else []
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive int or None, got {max_tokens!r}")
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda k: (-lengths[k], k)):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(max_tokens - lengths[i])
    rows = [sorted(r) for r in rows]
    return sorted(rows, key=lambda r: r[0])


def padding_fraction(attention_or_lengths: torch.Tensor | Sequence[int], row_length: int | None = None,
                     rows: int | None = None) -> float:
    """Share of computed token slots that are padding: from a 0/1 mask ``[B, L]``, or from
    real lengths plus the batch's shape (``rows`` × ``row_length``)."""
    if isinstance(attention_or_lengths, torch.Tensor):
        return 1.0 - float(attention_or_lengths.sum()) / max(1, attention_or_lengths.numel())
    return 1.0 - sum(attention_or_lengths) / max(1, rows * row_length)


class PackingCollator:
    """Items of :class:`~groundinggpt.data.dataset.GroundingDataset` → packed rows (see the module docstring).

    Args:
        collator: the padding collator (gives the pad id, drops ``None`` items and replaces an
            all-bad batch the same way; see :class:`~groundinggpt.data.dataset.DataCollator`).
        max_tokens: tokens per row; ``None`` packs the whole batch into one row.

    The batch holds ``input_ids``, ``labels``, ``position_ids`` and the media, and no
    ``attention_mask`` (its absence is what makes transformers read the boundaries from
    ``position_ids``).
    """

    def __init__(self, collator: DataCollator, max_tokens: int | None = None):
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive int or None, got {max_tokens!r}")
        self.collator = collator
        self.max_tokens = max_tokens

    def __call__(self, items: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
        items = list(items)
        good = [x for x in items if x is not None]
        if not good:
            return self._packed(self.collator([None] * len(items)))  # its replacement (or its error)
        self.collator.dropped += len(items) - len(good)
        lengths = [int(x["input_ids"].shape[0]) for x in good]
        rows = [[good[i] for i in row] for row in pack_rows(lengths, self.max_tokens)]
        # One concatenated "item" per row: the padding collator then pads the rows and joins the media
        # row by row, each row's media already in the order of its samples.
        merged = [self._merge(row) for row in rows]
        batch = self.collator(merged)
        return self._packed(batch, [[int(x["input_ids"].shape[0]) for x in row] for row in rows])

    @staticmethod
    def _merge(row: list[dict[str, Any]]) -> dict[str, Any]:
        labels = []
        for x in row:
            lab = x["labels"].clone()
            lab[0] = IGNORE_INDEX  # never a target alone; in a packed row it would be the previous sample's
            labels.append(lab)
        out: dict[str, Any] = {
            "input_ids": torch.cat([x["input_ids"] for x in row]),
            "labels": torch.cat(labels),
            "attention_mask": torch.ones(sum(int(x["input_ids"].shape[0]) for x in row), dtype=torch.long),
        }
        for key in {k for x in row for k in x if k not in out and k not in ("id", "position_ids")}:
            have = [x[key] for x in row if key in x]
            out[key] = torch.cat(have, dim=0)
        if any("id" in x for x in row):
            out["id"] = [x.get("id") for x in row]
        return out

    def _packed(self, batch: dict[str, Any], sample_lengths: list[list[int]] | None = None) -> dict[str, Any]:
        attention = batch.pop("attention_mask")
        if sample_lengths is None:  # one replacement sample, padded as usual: one sample per row
            sample_lengths = [[int(r.sum())] for r in attention]
        width = attention.shape[1]
        positions = torch.zeros_like(batch["input_ids"])
        for r, lengths in enumerate(sample_lengths):
            start = 0
            for n in [*lengths, width - sum(lengths)]:  # the samples, then the padded tail
                positions[r, start:start + n] = torch.arange(n)
                start += n
        batch["position_ids"] = positions
        return batch

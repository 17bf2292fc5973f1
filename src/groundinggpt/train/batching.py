"""How the runner batches: grouped sampling, packing and the attention kernel, from the recipe.

The three settings (``groundinggpt.group_by``, ``packing`` / ``pack_max_tokens``,
``attn_implementation``) are independent: grouping alone already removes most padding (a
batch's samples are alike in length), packing removes what is left and lets rows hold
many short samples, and the kernel decides what packed attention costs (SDPA computes a
block-diagonal mask over the whole row; FlashAttention-2's variable-length kernel only
the blocks).
"""

from __future__ import annotations

from typing import Any

from transformers import Trainer

from ..data.dataset import DataCollator, GroundingDataset
from ..data.grouping import GroupedSampler, estimate_lengths, modality_of
from ..data.packing import PackingCollator
from .recipe import RecipeError, TrainConfig

__all__ = ["make_collator", "GroupedTrainer", "set_attention"]


def make_collator(config: TrainConfig, processor: Any, dataset: GroundingDataset, seed: int):
    """The padding collator, wrapped in :class:`PackingCollator` when ``packing`` is on."""
    collator = DataCollator(processor, dataset=dataset, seed=seed)
    if config.packing:
        return PackingCollator(collator, max_tokens=config.pack_max_tokens)
    return collator


def set_attention(model: Any, implementation: str | None) -> None:
    """Switch the model's attention kernel; a kernel that is not installed is a :class:`RecipeError`."""
    if implementation is None:
        return
    try:
        model.set_attn_implementation(implementation)
    except (ImportError, ValueError) as e:
        raise RecipeError(f"attn_implementation={implementation!r} cannot be used here: {e}") from e


class GroupedTrainer(Trainer):
    """``Trainer`` whose training sampler is a :class:`~groundinggpt.data.grouping.GroupedSampler`.

    Args (keyword, besides the Trainer's):
        group_by: ``"length"`` or ``"modality_length"``.
    """

    def __init__(self, *args: Any, group_by: str = "modality_length", **kwargs: Any):
        if group_by not in ("length", "modality_length"):
            raise ValueError(f"group_by must be 'length' or 'modality_length', got {group_by!r}")
        self.group_by = group_by
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, train_dataset: Any = None) -> GroupedSampler:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        samples = dataset.samples
        lengths = estimate_lengths(samples, dataset.processor)
        modalities = [modality_of(s) for s in samples] if self.group_by == "modality_length" else None
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return GroupedSampler(lengths, self._train_batch_size, modalities=modalities, seed=seed)

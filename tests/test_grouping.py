"""Grouped sampling: one modality per batch, similar lengths, every sample once per epoch."""

from __future__ import annotations

import random

import pytest

from groundinggpt.data.grouping import GroupedSampler, estimate_lengths, modality_of
from groundinggpt.data.schema import Sample


def _mix(n: int, seed: int = 0):
    rng = random.Random(seed)
    kinds = ["image", "video", "audio", "text", "audio+image"]
    modalities = [rng.choice(kinds) for _ in range(n)]
    lengths = [rng.randint(20, 600) for _ in range(n)]
    return lengths, modalities


def _padding(lengths, batches):
    real = sum(lengths[i] for b in batches for i in b)
    computed = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - real / computed


def test_batches_hold_one_modality_and_alike_lengths():
    lengths, modalities = _mix(400)
    sampler = GroupedSampler(lengths, batch_size=8, modalities=modalities, window=10, seed=1)
    order = list(sampler)
    assert sorted(order) == list(range(400))  # every sample once
    batches = [order[k:k + 8] for k in range(0, 400, 8)]  # how the dataloader cuts the stream
    assert batches == sampler.batches()
    mixed = [b for b in batches if len({modalities[i] for i in b}) > 1]
    assert len(mixed) <= 4  # only the pooled remainders at the end (at most one per modality)
    assert all(b in batches[-4:] for b in mixed)
    assert max(lengths[i] for i in batches[0]) == max(lengths)  # the longest batch comes first
    rng = random.Random(0)
    shuffled = list(range(400))
    rng.shuffle(shuffled)
    random_padding = _padding(lengths, [shuffled[k:k + 8] for k in range(0, 400, 8)])
    assert _padding(lengths, batches) < random_padding / 3


def test_epochs_reshuffle_and_a_seed_repeats():
    lengths, modalities = _mix(100)
    a = GroupedSampler(lengths, 4, modalities, seed=3)
    b = GroupedSampler(lengths, 4, modalities, seed=3)
    first = list(a)
    assert first == list(b)
    a.set_epoch(1)
    assert list(a) != first and sorted(a) == sorted(first)


def test_length_only_grouping_mixes_modalities():
    lengths, modalities = _mix(200)
    batches = GroupedSampler(lengths, 8, None, window=25, seed=0).batches()
    assert any(len({modalities[i] for i in b}) > 1 for b in batches)
    assert all(len(b) == 8 for b in batches)


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        GroupedSampler([1, 2], 0)
    with pytest.raises(ValueError, match="3 modalities for 2 samples"):
        GroupedSampler([1, 2], 1, ["a", "b", "c"])


def test_estimated_lengths_follow_the_processor(tiny, image_path):
    _, processor = tiny
    sample = Sample.from_dict({"id": "x", "task": "rec", "stage": 2, "source": "t", "messages": [
        {"role": "user", "content": [{"type": "image", "image": str(image_path)}, {"type": "text", "text": "Where?"}]},
        {"role": "assistant", "content": "Here, at the left edge of the picture."}]}, "t")
    text = Sample.from_dict({"id": "y", "task": "chat", "stage": 2, "source": "t", "messages": [
        {"role": "user", "content": "Where?"}, {"role": "assistant", "content": "Here, at the left edge of the picture."}]},
        "t")
    with_image, without = estimate_lengths([sample, text], processor)
    assert with_image - without == processor.seq_lengths["image"]
    full = processor([[m for m in sample.messages]], add_generation_prompt=False, return_labels=True)
    real = int(full["input_ids"].shape[1])
    assert with_image <= real <= with_image + 40  # chat markup is the only difference
    assert modality_of(sample) == "image" and modality_of(text) == "text"

"""Length- and modality-grouped sampling: batches of samples of similar length and the same media.

A random batch pads every sample to its longest one; on a mix of short grounding answers,
long descriptions, images, videos and audio, that is a fifth or more of the computed tokens
(``bench/train_throughput.py`` prints the figure). :class:`GroupedSampler` orders one epoch so
that each run of ``batch_size`` indices holds samples

- of one *modality* (the set of media kinds a sample holds: ``image``, ``video``,
  ``audio+image``, ``text`` ...) when ``by_modality``: a batch then runs one media branch,
  and its lengths are alike too, since a medium's placeholder count is fixed;
- of similar *length*: each modality's shuffled indices are cut into windows of
  ``window`` batches, each window is sorted by length and cut into batches.

The batches are then shuffled (so the epoch does not go modality by modality, shortest to
longest), with the batch holding the longest sample first: an out-of-memory shows at the
first step, not hours in. Every epoch reshuffles (``set_epoch``, which the Trainer's
dataloader calls), with the same order on every process for a given seed, so distributed
runs shard one agreed sequence of batches.

Lengths come from :func:`estimate_lengths` (text tokens + each medium's placeholder count),
cheap enough for a large data set and exact up to a per-sample constant of chat markup.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

from torch.utils.data import Sampler

from .schema import Sample

__all__ = ["GroupedSampler", "estimate_lengths", "modality_of"]


def modality_of(sample: Sample) -> str:
    """The sample's media kinds, sorted and joined (``"text"`` without media).

    >>> modality_of(Sample.from_dict({"id": "a", "task": "t", "stage": 2, "source": "s", "messages": [
    ...     {"role": "user", "content": [{"type": "video", "video": "v.mp4"}, {"type": "image", "image": "i.png"},
    ...                                  {"type": "text", "text": "?"}]},
    ...     {"role": "assistant", "content": "ok"}]}, "doc"))
    'image+video'
    """
    return "+".join(sorted({kind for kind, _ in sample.media()})) or "text"


def _texts(sample: Sample) -> list[str]:
    out = []
    for message in sample.messages:
        content = message["content"]
        if isinstance(content, str):
            out.append(content)
        else:
            out.extend(str(part.get("text", "")) for part in content if part.get("type") == "text")
    return out


def estimate_lengths(samples: Sequence[Sample], processor: Any) -> list[int]:
    """Each sample's token count without decoding media: its texts' tokens plus its media placeholders."""
    texts = [_texts(s) for s in samples]
    flat = [t for ts in texts for t in ts]
    ids = processor.tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else []
    lengths, k = [], 0
    for s, ts in zip(samples, texts):
        n = sum(len(x) for x in ids[k:k + len(ts)])
        k += len(ts)
        n += sum(int(processor.seq_lengths.get(kind, 0)) for kind, _ in s.media())
        lengths.append(n)
    return lengths


class GroupedSampler(Sampler[int]):
    """One epoch's sample indices, batch by batch grouped by length (and modality); see the module docstring.

    Args:
        lengths: each sample's (estimated) token count.
        batch_size: samples per batch on one device (the Trainer's ``train_batch_size``).
        modalities: each sample's modality key (:func:`modality_of`); ``None`` groups by length only.
        window: batches per sorting window: larger gives closer lengths, smaller more randomness.
        seed: base of every epoch's shuffle (``seed + epoch``).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, modalities: Sequence[str] | None = None,
                 window: int = 50, seed: int = 0):
        if batch_size < 1 or window < 1:
            raise ValueError(f"batch_size and window must be >= 1, got {batch_size} and {window}")
        if modalities is not None and len(modalities) != len(lengths):
            raise ValueError(f"{len(modalities)} modalities for {len(lengths)} samples")
        self.lengths = [int(n) for n in lengths]
        self.modalities = list(modalities) if modalities is not None else ["all"] * len(self.lengths)
        self.batch_size = batch_size
        self.window = window
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def batches(self) -> list[list[int]]:
        """This epoch's batches: all full but the last; mixed modalities only in the trailing ones."""
        rng = random.Random(self.seed + self.epoch)
        groups: dict[str, list[int]] = {}
        for i, m in enumerate(self.modalities):
            groups.setdefault(m, []).append(i)
        batches: list[list[int]] = []
        leftover: list[int] = []
        span = self.batch_size * self.window
        for key in sorted(groups):
            indices = groups[key]
            rng.shuffle(indices)
            for start in range(0, len(indices), span):
                chunk = sorted(indices[start:start + span], key=lambda i: -self.lengths[i])
                full = len(chunk) - len(chunk) % self.batch_size
                batches += [chunk[k:k + self.batch_size] for k in range(0, full, self.batch_size)]
                leftover += chunk[full:]
        rng.shuffle(batches)
        if batches:
            longest = max(range(len(batches)), key=lambda b: max(self.lengths[i] for i in batches[b]))
            batches.insert(0, batches.pop(longest))
        # The dataloader cuts the index stream every batch_size indices: a short batch in the middle
        # would shift every later cut. Each modality's remainder is pooled into batches at the end.
        leftover.sort(key=lambda i: -self.lengths[i])
        batches += [leftover[k:k + self.batch_size] for k in range(0, len(leftover), self.batch_size)]
        return batches

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch

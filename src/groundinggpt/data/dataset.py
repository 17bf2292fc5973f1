"""Samples → model inputs for training: :class:`GroundingDataset`, :class:`DataCollator`, :class:`SkipReport`.

One item is one conversation encoded by the processor (``return_labels=True``, right
padding, no generation prompt): ``input_ids`` / ``labels`` / ``attention_mask`` of shape
``[L]`` and the sample's media with a leading count (``pixel_values`` [k,3,S,S],
``pixel_values_videos`` [k,M,3,S,S], ``input_features`` [k,N,1,F,T]), or — when a
:class:`~groundinggpt.data.feature_cache.FeatureCache` holds every medium of the sample —
the frozen encoders' outputs ``image_features`` / ``video_features`` / ``audio_features``
instead, and nothing is decoded.

Bad data never crashes a long run, in two lines of defence:

1. :meth:`GroundingDataset.validate_media` (before training) opens every medium once
   cheaply — existence plus a header / first-frame decode — and drops the samples whose
   media fail, listing them. Run it in the main process: what it drops is known there.
2. ``__getitem__`` returns ``None`` for a sample whose media still fail to decode or that
   is too long to truncate safely, and records ``(id, reason)`` in ``dataset.skipped``.
   :class:`DataCollator` drops the ``None`` items. With ``num_workers > 0`` each worker
   holds its own copy of the dataset (and the collator runs in the worker too), so the
   main process's ``skipped`` list stays empty: pass ``skip_log=path`` and every process
   appends its skips to that JSONL file; :meth:`SkipReport.from_dataset` merges both.

A batch whose items are *all* ``None`` cannot be skipped by the Hugging Face Trainer,
and a placeholder row with every label ``-100`` gives a NaN loss (``cross_entropy`` with
``reduction="mean"`` over zero targets is 0/0; with ``num_items_in_batch`` it is 0/0 too
when the accumulation window holds nothing else). So the collator, given the dataset,
replaces an all-bad batch with one good sample drawn at random from the dataset (a
duplicate, but a real gradient); without a dataset it raises :class:`DataError`.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset

from .. import jsonsafe
from ..errors import MediaError
from ..media.probe import probe_medium
from ..modalities import FEATURE_KEYS, MEDIA_KINDS, MODALITIES, RAW_KEYS
from ..processor import IGNORE_INDEX, GroundingGPTProcessor, MediaInfo, collate_rows
from .schema import DataError, Sample

if TYPE_CHECKING:
    from .feature_cache import FeatureCache

__all__ = ["GroundingDataset", "DataCollator", "SkipReport", "probe_medium", "RAW_KEYS", "FEATURE_KEYS"]

logger = logging.getLogger(__name__)

REASON_TOO_LONG_MEDIA = "too long: media block would be cut"
REASON_TOO_LONG_NO_ANSWER = "too long: no answer tokens left after truncation"


# ---- skip report ------------------------------------------------------------------------


@dataclass
class SkipReport:
    """Which samples were left out of training, and why.

    Attributes:
        skipped: ``(sample id, reason)`` pairs, in the order they were met (no duplicates).
        total: how many samples the dataset had, if known.
    """

    skipped: list[tuple[str, str]] = field(default_factory=list)
    total: int | None = None
    #: ids of samples cut at ``max_length`` and trained on (their cut-off end is not learnt).
    truncated: set[str] = field(default_factory=set)
    _seen: set[tuple[str, str]] = field(default_factory=set, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pairs, self.skipped = self.skipped, []
        for sample_id, reason in pairs:
            self.add(sample_id, reason)

    def add(self, sample_id: str, reason: str) -> None:
        # The same sample is met again every epoch (and by validate_media and the log): count it once.
        if (sample_id, reason) not in self._seen:
            self._seen.add((sample_id, reason))
            self.skipped.append((sample_id, reason))

    @classmethod
    def from_dataset(cls, dataset: GroundingDataset) -> SkipReport:
        """Everything the dataset skipped: its own list plus the ``skip_log`` workers wrote."""
        report = cls(total=dataset.total, truncated=set(dataset.truncated))
        for sample_id, reason in dataset.skipped:
            report.add(sample_id, reason)
        if dataset.skip_log is not None and Path(dataset.skip_log).is_file():
            for line in Path(dataset.skip_log).read_text(encoding="utf-8").splitlines():
                try:
                    d = jsonsafe.loads(line)
                    if d.get("truncated"):
                        report.truncated.add(str(d["id"]))
                    else:
                        report.add(str(d["id"]), str(d["reason"]))
                except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                    continue  # a torn line from a killed worker: the rest is still useful
        return report

    @staticmethod
    def category(reason: str) -> str:
        """The reason's kind: the text before its first ``':'`` (``"media"``, ``"too long"`` ...)."""
        return reason.split(":", 1)[0].strip()

    def by_reason(self) -> dict[str, int]:
        return dict(Counter(self.category(r) for _, r in self.skipped).most_common())

    def summary(self, limit: int = 10) -> str:
        """A few lines for the log: counts by reason and the first ``limit`` samples."""
        cut = (f"; {len(self.truncated)} samples cut at max_length (their ends are not trained)"
               if self.truncated else "")
        if not self.skipped:
            return "no samples skipped" + cut
        of = f" of {self.total}" if self.total is not None else ""
        lines = [f"skipped {len(self.skipped)}{of} samples: "
                 + ", ".join(f"{k} {n}" for k, n in self.by_reason().items()) + cut]
        lines += [f"  {i}: {r}" for i, r in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"  ... {len(self.skipped) - limit} more")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "skipped_count": len(self.skipped), "by_reason": self.by_reason(),
                "skipped": [{"id": i, "reason": r} for i, r in self.skipped],
                "truncated_count": len(self.truncated), "truncated": sorted(self.truncated)[:100]}

    def write(self, path: str | os.PathLike) -> str:
        """Write the report as JSON; returns :meth:`summary` for logging."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        return self.summary()

    def __str__(self) -> str:
        return self.summary()


# ---- dataset ----------------------------------------------------------------------------------


def _media_token_ids(processor: GroundingGPTProcessor) -> torch.Tensor:
    return torch.tensor([processor.token_ids[k] for k in MEDIA_KINDS])


class GroundingDataset(Dataset):
    """Unified-schema samples → per-sample training tensors (see the module docstring).

    Args:
        samples: the samples (from :func:`~groundinggpt.data.schema.read_jsonl`).
        processor: the model's processor.
        media_root: folder the samples' media paths are relative to.
        max_length: longest sequence kept; longer ones are truncated when the cut falls
            after the last media placeholder, otherwise skipped.
        feature_cache: a configured :class:`~groundinggpt.data.feature_cache.FeatureCache`;
            samples whose media are all cached load features instead of decoding media.
        strict: raise on a bad sample (naming its id) instead of skipping it.
        skip_log: JSONL file every process appends its skips to (for ``num_workers > 0``).

    Raises:
        DataError: a sample has no assistant turn, ends with an unanswered user turn, or has
            more media of a kind than the model takes.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        processor: GroundingGPTProcessor,
        media_root: str | os.PathLike,
        max_length: int | None = None,
        feature_cache: FeatureCache | None = None,
        strict: bool = False,
        skip_log: str | os.PathLike | None = None,
    ):
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be a positive int or None, got {max_length!r}")
        self.samples = [s if isinstance(s, Sample) else Sample.from_dict(s, f"samples[{i}]")
                        for i, s in enumerate(samples)]
        self.processor = processor
        self.media_root = Path(media_root)
        self.max_length = max_length
        self.feature_cache = feature_cache
        self.strict = strict
        self.skip_log = Path(skip_log) if skip_log is not None else None
        self.total = len(self.samples)
        # list.append is atomic under the GIL, so threads may share it; processes cannot (see skip_log).
        self.skipped: list[tuple[str, str]] = []
        self.truncated: set[str] = set()  # ids cut at max_length (kept: the cut was safe)
        # Index → reason of samples already found bad in this process: later epochs skip
        # them without decoding the same corrupt file again.
        self._known_bad: dict[int, str] = {}
        self._media_ids = _media_token_ids(processor)
        self._check_samples()

    def _check_samples(self) -> None:
        problems = []
        limits = {k: (self.processor.config.max_media.get(k, 0) if self.processor.seq_lengths[k] else 0)
                  for k in MEDIA_KINDS}
        for s in self.samples:
            if not s.has_answer:
                problems.append(f"{s.label}: no assistant turn, nothing to train on")
                continue
            if s.messages[-1]["role"] == "user":  # a cut conversation: its last question would be dropped
                problems.append(f"{s.label}: ends with a user turn that has no answer (it would not be trained); "
                                "add the assistant's answer or remove the turn")
            counts = Counter(kind for kind, _ in s.media())
            for kind, n in counts.items():
                if n > limits[kind]:
                    problems.append(f"{s.label}: {n} {kind} parts, but this model takes at most {limits[kind]}")
        if problems:
            shown = "\n  ".join(problems[:20])
            more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise DataError(f"{len(problems)} unusable samples:\n  {shown}{more}", problems)

    def __len__(self) -> int:
        return len(self.samples)

    # ---- paths and skips
    def resolve(self, relative: str) -> Path:
        """A sample's media path on this machine (absolute paths are kept as they are)."""
        return self.media_root / relative

    def _resolved_messages(self, sample: Sample) -> list[dict[str, Any]]:
        out = []
        for message in sample.messages:
            content = message["content"]
            if isinstance(content, list):
                content = [
                    {**part, part["type"]: str(self.resolve(part[part["type"]]))}
                    if part.get("type") in MEDIA_KINDS else part
                    for part in content
                ]
            out.append({**message, "content": content})
        return out

    def _skip(self, sample_id: str, reason: str, index: int | None = None) -> None:
        if index is not None:
            self._known_bad[index] = reason
        self.skipped.append((sample_id, reason))
        logger.warning("skipping sample %r: %s", sample_id, reason)
        self._log({"id": sample_id, "reason": reason})

    def _note_truncated(self, sample_id: str) -> None:
        if sample_id not in self.truncated:  # once per sample, not once per epoch
            self.truncated.add(sample_id)
            self._log({"id": sample_id, "truncated": True})

    def _log(self, record: dict[str, Any]) -> None:
        if self.skip_log is not None:
            line = json.dumps({**record, "pid": os.getpid()}, ensure_ascii=False) + "\n"
            # One O_APPEND write per line: concurrent workers' lines do not interleave.
            fd = os.open(self.skip_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)

    # ---- up-front validation
    def validate_media(self, num_threads: int = 8, progress: bool = False) -> SkipReport:
        """Probe every distinct medium once and drop the samples with a bad one.

        Probing is :func:`probe_medium` (existence + header / first frame), run in
        ``num_threads`` threads since it is I/O bound. The dropped samples are removed
        from ``self.samples``, recorded in ``self.skipped`` and returned.
        """
        media = sorted({(kind, rel) for s in self.samples for kind, rel in s.media()})
        max_pixels = self.processor.config.max_image_pixels

        def probe(item: tuple[str, str]) -> str | None:
            return probe_medium(item[0], self.resolve(item[1]), max_pixels)

        with ThreadPoolExecutor(max_workers=max(1, num_threads)) as pool:
            results = pool.map(probe, media)
            if progress:
                from tqdm.auto import tqdm

                results = tqdm(results, total=len(media), desc="validating media", unit="file")
            bad = {item: reason for item, reason in zip(media, results) if reason is not None}
        report = SkipReport(total=len(self.samples))
        kept = []
        for s in self.samples:
            reason = next((bad[m] for m in s.media() if m in bad), None)
            if reason is None:
                kept.append(s)
            else:
                report.add(s.id, f"media: {reason}")
                self._skip(s.id, f"media: {reason}")
        self.samples = kept
        self._known_bad.clear()  # indices moved
        return report

    # ---- one item
    def _cached_features(self, sample: Sample) -> tuple[dict[str, torch.Tensor], dict[str, MediaInfo]] | None:
        """Every medium's cached features and info, or None if any is missing."""
        if self.feature_cache is None or not sample.media():
            return None
        feats: dict[str, list[torch.Tensor]] = {k: [] for k in MEDIA_KINDS}
        infos: dict[str, MediaInfo] = {}
        for kind, rel in sample.media():
            path = self.resolve(rel)
            try:
                entry = self.feature_cache.get_entry(kind, path)
            except OSError:  # unreadable file: let the decode path report it
                return None
            # The box conversion needs the image size: an entry without it is unusable.
            if entry is None or entry.info is None or (kind == "image" and entry.info.original_size is None):
                return None
            feats[kind].append(entry.features)
            infos[f"{kind}\0{path}"] = entry.info
        return {FEATURE_KEYS[k]: torch.stack(v) for k, v in feats.items() if v}, infos

    def _encode(self, sample: Sample, cached_infos: dict[str, MediaInfo] | None):
        loader = None
        if cached_infos is not None:
            # Media "load" from the cache's MediaInfo: the text, the placeholders and the box
            # conversion are built exactly as for raw media, and no file is decoded.
            def loader(kind: str, source: Any) -> tuple[None, MediaInfo]:
                return None, cached_infos[f"{kind}\0{source}"]

        return self.processor(self._resolved_messages(sample), add_generation_prompt=False,
                              padding_side="right", return_labels=True, media_loader=loader)

    def __getitem__(self, i: int) -> dict[str, Any] | None:
        sample = self.samples[i]
        if i in self._known_bad:
            return None
        cached = self._cached_features(sample)
        try:
            batch = self._encode(sample, cached[1] if cached is not None else None)
        except MediaError as e:
            if self.strict:
                raise MediaError(f"{sample.label}: {e}") from e
            self._skip(sample.id, f"media: {e}", index=i)
            return None
        item: dict[str, Any] = {
            "input_ids": batch["input_ids"][0],
            "labels": batch["labels"][0],
            "attention_mask": batch["attention_mask"][0],
        }
        if self.max_length is not None and item["input_ids"].shape[0] > self.max_length:
            reason = self._truncate(item)
            if reason is not None:
                if self.strict:
                    raise DataError(f"{sample.label}: {reason}")
                self._skip(sample.id, reason, index=i)
                return None
            self._note_truncated(sample.id)
        if cached is not None:
            item.update(cached[0])
        else:
            for key in RAW_KEYS.values():
                if key in batch:
                    item[key] = batch[key]
        item["id"] = sample.id
        return item

    def _truncate(self, item: dict[str, Any]) -> str | None:
        """Cut ``item`` to ``max_length`` in place; return a skip reason if that is unsafe."""
        n, keep = item["input_ids"].shape[0], self.max_length
        positions = torch.isin(item["input_ids"], self._media_ids).nonzero()
        if positions.numel() and int(positions.max()) >= keep:
            # Cutting inside (or before) a media block would leave placeholders without their features.
            return f"{REASON_TOO_LONG_MEDIA} ({n} tokens, max_length {keep})"
        for key in ("input_ids", "labels", "attention_mask"):
            item[key] = item[key][:keep]  # same slice for all three: labels stay aligned
        if not bool((item["labels"] != IGNORE_INDEX).any()):
            return f"{REASON_TOO_LONG_NO_ANSWER} ({n} tokens, max_length {keep})"
        return None


# ---- collator ----------------------------------------------------------------------------------


class DataCollator:
    """Items of :class:`GroundingDataset` → one right-padded training batch.

    ``None`` items are dropped (counted in ``self.dropped``). Text is padded dynamically to
    the batch's longest item: ``input_ids`` with the pad id, ``labels`` with -100,
    ``attention_mask`` with 0. Media tensors are concatenated item by item, in order —
    the order in which the model splices them into the placeholders.

    Args:
        processor: gives the pad id (tokenizer pad, else EOS); or give ``pad_token_id``.
        pad_token_id: overrides the processor's.
        dataset: lets an all-``None`` batch be replaced by a random good sample (see the
            module docstring); without it such a batch raises :class:`DataError`.
        max_tries: samples tried for that replacement before giving up.
        seed: seed of the replacement draw.
        return_ids: also return ``"ids"`` (a list of sample ids; not a model input — off by default).
    """

    def __init__(self, processor: GroundingGPTProcessor | None = None, *, pad_token_id: int | None = None,
                 dataset: GroundingDataset | None = None, max_tries: int = 32, seed: int = 0,
                 return_ids: bool = False):
        if pad_token_id is None:
            if processor is None:
                raise ValueError("give a processor or a pad_token_id")
            tok = processor.tokenizer
            pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.pad_token_id = int(pad_token_id)
        self.dataset = dataset
        self.max_tries = max_tries
        self.return_ids = return_ids
        self.dropped = 0
        self.replaced = 0
        self._rng = random.Random(seed)

    def _replacement(self) -> dict[str, Any]:
        if self.dataset is None or len(self.dataset) == 0:
            raise DataError(
                "every sample of this batch was skipped (bad media or too long) and the collator has no dataset "
                "to draw a replacement from; run GroundingDataset.validate_media() before training, or "
                "pass dataset= to DataCollator"
            )
        for _ in range(self.max_tries):
            item = self.dataset[self._rng.randrange(len(self.dataset))]
            if item is not None:
                self.replaced += 1
                return item
        raise DataError(f"every sample of a batch was skipped and {self.max_tries} random replacements failed too; "
                        "the data is mostly unusable: see the dataset's skip report")

    def __call__(self, items: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
        items = list(items)
        good = [x for x in items if x is not None]
        self.dropped += len(items) - len(good)
        if not items:
            raise DataError("the collator was given an empty list of items")
        if not good:
            good = [self._replacement()]
        for m in MODALITIES:
            with_raw = [x for x in good if m.raw_key in x]
            with_feat = [x for x in good if m.feature_key in x]
            if with_raw and with_feat:
                # The model takes one form per kind; mixing would misalign the splice.
                raise DataError(
                    f"batch mixes cached {m.name} features (sample {with_feat[0].get('id')!r}) with raw {m.name} "
                    f"media (sample {with_raw[0].get('id')!r}): build the feature cache over all samples first "
                    "(FeatureCache.build), or train without a cache"
                )
        batch: dict[str, Any] = collate_rows(good, self.pad_token_id, "right")
        if self.return_ids:
            batch["ids"] = [x.get("id") for x in good]
        return batch

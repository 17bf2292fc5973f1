"""The data layer the trainer consumes.

- :mod:`.schema`: the unified JSONL sample schema (:class:`Sample`, :func:`read_jsonl`,
  :func:`write_jsonl`, :func:`from_llava_style`); documented in ``docs/data.md``.
- :mod:`.dataset`: :class:`GroundingDataset` (one sample → tensors), :class:`DataCollator`
  (items → padded batch), :class:`SkipReport`.
- :mod:`.replay`: :func:`mix_with_replay`, earlier-stage replay with ratio α.
- :mod:`.feature_cache`: :class:`FeatureCache`, the frozen encoders' outputs on disk.
"""

from __future__ import annotations

from .dataset import DataCollator, GroundingDataset, SkipReport, probe_medium
from .feature_cache import CachedFeature, FeatureCache, encoder_fingerprints
from .replay import mix_with_replay
from .schema import KNOWN_TASKS, DataError, Sample, from_llava_style, read_jsonl, write_jsonl

__all__ = [
    "Sample", "DataError", "KNOWN_TASKS", "read_jsonl", "write_jsonl", "from_llava_style",
    "GroundingDataset", "DataCollator", "SkipReport", "probe_medium",
    "mix_with_replay",
    "FeatureCache", "CachedFeature", "encoder_fingerprints",
]

"""The data layer the trainer consumes.

- :mod:`.schema`: the unified JSONL sample schema (:class:`Sample`, :func:`read_jsonl`,
  :func:`write_jsonl`, :func:`from_llava_style`); documented in ``docs/data.md``.
- :mod:`.dataset`: :class:`GroundingDataset` (one sample → tensors), :class:`DataCollator`
  (items → padded batch), :class:`SkipReport`.
- :mod:`.replay`: :func:`mix_with_replay`, earlier-stage replay with ratio α.
- :mod:`.feature_cache`: :class:`FeatureCache`, the frozen encoders' outputs on disk.

The names load on first use (PEP 562 ``__getattr__``): the dataset and the feature cache
need torch, which the converters (``groundinggpt data ...``, :mod:`.convert`) do not.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name → the submodule that defines it
_LAZY: dict[str, str] = {
    "Sample": ".schema", "DataError": ".schema", "KNOWN_TASKS": ".schema", "read_jsonl": ".schema",
    "write_jsonl": ".schema", "from_llava_style": ".schema",
    "GroundingDataset": ".dataset", "DataCollator": ".dataset", "SkipReport": ".dataset", "probe_medium": ".dataset",
    "mix_with_replay": ".replay",
    "FeatureCache": ".feature_cache", "CachedFeature": ".feature_cache", "encoder_fingerprints": ".feature_cache",
}

__all__ = list(_LAZY)

if TYPE_CHECKING:
    from .dataset import DataCollator, GroundingDataset, SkipReport, probe_medium
    from .feature_cache import CachedFeature, FeatureCache, encoder_fingerprints
    from .replay import mix_with_replay
    from .schema import KNOWN_TASKS, DataError, Sample, from_llava_style, read_jsonl, write_jsonl


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

"""Converters from the public datasets of the paper's Table 10 to the project's JSONL schema.

One small module per source; :data:`SOURCES` names them (``groundinggpt data convert
SOURCE ROOT``). Each module has ``STAGE`` (the paper's stage), ``FILES`` (what it reads,
as published) and ``convert(ctx)``, a generator of samples. The conventions that change
numbers are in each module's docstring and in ``docs/data-sources.md``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["SOURCES", "load_source", "stage_of"]

#: registry name -> module (under this package)
SOURCES: dict[str, str] = {
    # stage 1
    "llava-cc3m": "llava_pretrain",
    "valley-pretrain": "valley",
    "wavcaps": "wavcaps",
    # stage 2
    "refcoco": "refcoco",
    "refcoco+": "refcoco",
    "refcocog": "refcoco",
    "visual-genome": "visual_genome",
    "didemo": "didemo",
    "hirest": "hirest",
    "charades-sta": "charades_sta",
    "vggss": "vggss",
    # stage 3
    "llava-mix665k": "llava_mix",
    "flickr30k-entities": "flickr30k",
    "vcr": "vcr",
    "valley-instruct": "valley",
    "videochat-instruct": "videochat",
    "activitynet-captions": "activitynet",
    "clotho": "clotho",
}


def load_source(name: str) -> ModuleType:
    """The converter module of a registry name (``refcoco``, ``didemo`` ...)."""
    try:
        module = SOURCES[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(sorted(SOURCES))}") from None
    return importlib.import_module(f"{__name__}.{module}")


def stage_of(name: str) -> int:
    """The paper's stage of a source (a module serving two sources may name both)."""
    module = load_source(name)
    return getattr(module, "STAGES", {}).get(name, module.STAGE)

"""GroundingGPT: a multimodal LLM that grounds what it says in images, videos and audio.

The package reads as the pipeline it implements::

    media/        decode, sample, pad/resize, fbank          (pure functions)
    processor     chat + media → input_ids, labels, tensors  (placeholder expansion)
    models/       GroundingGPTForCausalLM                    (masked_scatter splice)
    grounding     boxes/spans in text ↔ original-media coordinates
    api           GroundingGPT: from_pretrained, chat, ground, when, sound_source

Importing it is cheap: the names below load on first use (PEP 562 ``__getattr__``), so
``groundinggpt data ...`` and other torch-free tools do not load torch and transformers
(~7 CPU seconds). GroundingGPT is registered with transformers' Auto classes
(AutoConfig, AutoModelForCausalLM, AutoProcessor) as soon as those load
(:mod:`groundinggpt.hf_auto`), so ``import groundinggpt`` then
``AutoModelForCausalLM.from_pretrained(folder)`` works as before. OpenMP's wait policy is set
to PASSIVE before torch loads unless the environment names one
(:mod:`groundinggpt.openmp_policy` says why).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .openmp_policy import prefer_passive_wait

prefer_passive_wait()  # before anything imports torch

from . import hf_auto  # noqa: E402

hf_auto.install()

__version__ = "0.1.0"

#: public name → the module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    "GroundingGPT": ".api", "GenerationSettings": ".api",
    "Box": ".grounding", "Span": ".grounding", "GroundedEntity": ".grounding",
    "GroundingGPTConfig": ".models", "GroundingGPTForCausalLM": ".models",
    "GroundingGPTProcessor": ".processor", "ProcessorConfig": ".processor", "GroundedOutput": ".processor",
}

__all__ = [
    "GroundingGPT", "GenerationSettings", "GroundingGPTConfig", "GroundingGPTForCausalLM",
    "GroundingGPTProcessor", "ProcessorConfig", "GroundedOutput", "Box", "Span", "GroundedEntity",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports on first use
    from .api import GenerationSettings, GroundingGPT
    from .grounding import Box, GroundedEntity, Span
    from .models import GroundingGPTConfig, GroundingGPTForCausalLM
    from .processor import GroundedOutput, GroundingGPTProcessor, ProcessorConfig


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        if name.startswith("_"):
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        try:  # a submodule: `import groundinggpt; groundinggpt.eval.formats` as before
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

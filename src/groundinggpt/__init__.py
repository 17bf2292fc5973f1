"""GroundingGPT: a multimodal LLM that grounds what it says in images, videos and audio.

The package reads as the pipeline it implements::

    media/        decode, sample, pad/resize, fbank          (pure functions)
    processor     chat + media → input_ids, labels, tensors  (placeholder expansion)
    models/       GroundingGPTForCausalLM                    (masked_scatter splice)
    grounding     boxes/spans in text ↔ original-media coordinates
    api           GroundingGPT: from_pretrained, chat, ground, when, sound_source

Importing it registers the model (AutoConfig, AutoModelForCausalLM) and its processor
(AutoProcessor) with transformers' Auto classes, and sets OpenMP's wait
policy to PASSIVE before torch loads unless the environment names one
(:mod:`groundinggpt.openmp_policy` says why).
"""

from .openmp_policy import prefer_passive_wait

prefer_passive_wait()  # before anything below imports torch

from .api import GenerationSettings, GroundingGPT
from .grounding import Box, GroundedEntity, Span
from .models import GroundingGPTConfig, GroundingGPTForCausalLM
from .processor import GroundedOutput, GroundingGPTProcessor, ProcessorConfig

from transformers import AutoProcessor as _AutoProcessor  # noqa: E402

_AutoProcessor.register(GroundingGPTConfig, GroundingGPTProcessor, exist_ok=True)


def _register_released_type() -> None:
    """``AutoConfig`` on the authors' released folder names ``groundinggpt convert lego``."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from .convert.lego import ReleasedLegoConfig

    if "LEGO" not in CONFIG_MAPPING:  # the authors' own package may have registered its class
        CONFIG_MAPPING.register("LEGO", ReleasedLegoConfig, exist_ok=True)


_register_released_type()

__version__ = "0.1.0"

__all__ = [
    "GroundingGPT", "GenerationSettings", "GroundingGPTConfig", "GroundingGPTForCausalLM",
    "GroundingGPTProcessor", "ProcessorConfig", "GroundedOutput", "Box", "Span", "GroundedEntity",
]

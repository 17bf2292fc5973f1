"""GroundingGPT: a multimodal LLM that grounds what it says in images, videos and audio.

The package reads as the pipeline it implements::

    media/        decode, sample, pad/resize, fbank          (pure functions)
    processor     chat + media → input_ids, labels, tensors  (placeholder expansion)
    models/       GroundingGPTForCausalLM                    (masked_scatter splice)
    grounding     boxes/spans in text ↔ original-media coordinates
    api           GroundingGPT: from_pretrained, chat, ground, when, sound_source

Importing it registers the model with transformers' Auto classes, and sets OpenMP's wait
policy to PASSIVE before torch loads unless the environment names one
(:mod:`groundinggpt.openmp_policy` says why).
"""

from .openmp_policy import prefer_passive_wait

prefer_passive_wait()  # before anything below imports torch

from .api import GenerationSettings, GroundingGPT
from .grounding import Box, GroundedEntity, Span
from .models import GroundingGPTConfig, GroundingGPTForCausalLM
from .processor import GroundedOutput, GroundingGPTProcessor, ProcessorConfig

__version__ = "0.1.0"

__all__ = [
    "GroundingGPT", "GenerationSettings", "GroundingGPTConfig", "GroundingGPTForCausalLM",
    "GroundingGPTProcessor", "ProcessorConfig", "GroundedOutput", "Box", "Span", "GroundedEntity",
]

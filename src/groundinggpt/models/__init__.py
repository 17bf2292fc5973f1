"""Model layer: config, the GroundingGPT model and its audio encoder.

Importing this package registers GroundingGPT with the transformers Auto classes,
so ``AutoConfig`` / ``AutoModelForCausalLM.from_pretrained(folder)`` work on a
saved GroundingGPT folder.
"""

from transformers import AutoConfig, AutoModelForCausalLM

from .configuration_groundinggpt import GroundingGPTAudioConfig, GroundingGPTConfig, GroundingGPTVideoConfig
from .modeling_groundinggpt import GroundingGPTForCausalLM, GroundingGPTPreTrainedModel

AutoConfig.register("groundinggpt", GroundingGPTConfig, exist_ok=True)
AutoConfig.register("groundinggpt_video", GroundingGPTVideoConfig, exist_ok=True)
AutoConfig.register("groundinggpt_audio", GroundingGPTAudioConfig, exist_ok=True)
AutoModelForCausalLM.register(GroundingGPTConfig, GroundingGPTForCausalLM, exist_ok=True)

__all__ = [
    "GroundingGPTConfig", "GroundingGPTVideoConfig", "GroundingGPTAudioConfig",
    "GroundingGPTForCausalLM", "GroundingGPTPreTrainedModel",
]

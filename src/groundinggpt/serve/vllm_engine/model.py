"""GroundingGPT as a vLLM model: this project's media front, vLLM's LLaMA.

The language model is vLLM's own ``LlamaForCausalLM`` (paged attention, tensor
parallelism, its kernels), built from ``config.text_config``. The media front — CLIP
tower and image adapter, the video and audio Q-Former branches — is this project's
:class:`~groundinggpt.models.GroundingGPTForCausalLM` itself, built without its LLM, so
the embeddings vLLM merges at the placeholder positions are computed by the same code as
the HF path's ``masked_scatter`` (``project_media``), medium by medium. The front is
replicated on every tensor-parallel rank (it is small next to the LLM).

Weights load from a project model folder unchanged: ``language_model.*`` go to vLLM's
LLaMA (which fuses q/k/v and gate/up as it reads them), the rest to the front, which
refuses a missing or unknown key.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from vllm.model_executor.models.interfaces import SupportsMultiModal
from vllm.model_executor.models.utils import init_vllm_registered_model, maybe_prefix
from vllm.multimodal import MULTIMODAL_REGISTRY

from ...modalities import MODALITIES
from ...models import GroundingGPTForCausalLM
from .processing import GroundingGPTDummyInputs, GroundingGPTMultiModalProcessor, GroundingGPTProcessingInfo

_LM_PREFIX = "language_model."


class _NoLanguageModel(nn.Module):
    """Stands in for the HF LLM inside the front: vLLM's LLaMA is the one that runs."""

    def get_input_embeddings(self) -> None:
        return None

    def get_output_embeddings(self) -> None:
        return None

    def set_input_embeddings(self, value: Any) -> None:
        pass


@MULTIMODAL_REGISTRY.register_processor(GroundingGPTMultiModalProcessor, info=GroundingGPTProcessingInfo,
                                        dummy_inputs=GroundingGPTDummyInputs)
class GroundingGPTForVLLM(nn.Module, SupportsMultiModal):
    """vLLM's model class for ``architectures: ["GroundingGPTForCausalLM"]`` folders."""

    @classmethod
    def get_placeholder_str(cls, modality: str, i: int) -> str | None:
        for m in MODALITIES:
            if modality.startswith(m.name):
                return m.token
        raise ValueError(f"GroundingGPT takes image, video and audio inputs, not {modality!r}")

    def __init__(self, *, vllm_config: Any, prefix: str = ""):
        super().__init__()
        config = vllm_config.model_config.hf_config
        self.config = config
        self.front = GroundingGPTForCausalLM(config, language_model=_NoLanguageModel())
        token_ids = [getattr(config, m.token_id_field) for m in MODALITIES]
        self.configure_mm_token_handling(vocab_size=config.text_config.vocab_size, mm_token_ids=token_ids)
        with self._mark_language_model(vllm_config):
            self.language_model = init_vllm_registered_model(vllm_config=vllm_config, hf_config=config.text_config,
                                                             prefix=maybe_prefix(prefix, "language_model"),
                                                             architectures=["LlamaForCausalLM"])
        self.make_empty_intermediate_tensors = self.language_model.make_empty_intermediate_tensors

    def embed_multimodal(self, **kwargs: object) -> list[torch.Tensor]:
        """The media of a batch → one ``[K, D]`` embedding per medium, in the order given
        (vLLM calls this per modality, items in prompt order)."""
        media = {m.raw_key: kwargs[m.raw_key] for m in MODALITIES if kwargs.get(m.raw_key) is not None}
        out: list[torch.Tensor] = []
        for key, value in media.items():
            batch = torch.stack(list(value)) if isinstance(value, (list, tuple)) else value
            projected = self.front.project_media(**{key: batch})
            for features in projected.values():
                out.extend(features.unbind(0))
        return out

    def forward(self, input_ids: torch.Tensor | None, positions: torch.Tensor, intermediate_tensors: Any = None,
                inputs_embeds: torch.Tensor | None = None, **kwargs: object) -> Any:
        if intermediate_tensors is not None:
            inputs_embeds = None
        return self.language_model.model(input_ids, positions, intermediate_tensors, inputs_embeds=inputs_embeds)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        return self.language_model.compute_logits(hidden_states)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        """A project folder's weights: the LLM's to vLLM's LLaMA, the rest to the front (strict)."""
        front: dict[str, torch.Tensor] = {}

        def llm_weights():
            for name, tensor in weights:
                if name.startswith(_LM_PREFIX):
                    yield name[len(_LM_PREFIX):], tensor
                else:
                    front[name] = tensor

        loaded = {_LM_PREFIX + name for name in self.language_model.load_weights(llm_weights())}
        missing, unexpected = self.front.load_state_dict(front, strict=False)
        if missing or unexpected:
            raise ValueError(f"GroundingGPT media front: weights missing {sorted(missing)[:8]}, "
                             f"unexpected {sorted(unexpected)[:8]} (a project model folder was expected)")
        return loaded | {f"front.{name}" for name, _ in self.front.named_parameters()}


__all__ = ["GroundingGPTForVLLM"]

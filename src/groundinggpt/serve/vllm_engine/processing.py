"""vLLM's multimodal processing for GroundingGPT: preprocessed tensors in, placeholders out.

This project decodes and preprocesses media itself (limits, padding to a square, frame
sampling, fbank; :mod:`groundinggpt.media`), so vLLM gets each medium as the tensor the HF
model takes — one item per medium: an image ``[3, S, S]``, a video ``[M, 3, S, S]``, an
audio ``[N, 1, F, T]`` — and no HF processor is ever called: the items pass straight to the
model as ``pixel_values`` / ``pixel_values_videos`` / ``input_features`` (the modality
table's raw keys). What vLLM still needs from a processor is where each medium's
embeddings go: every single placeholder of the prompt (see :mod:`.prompt`) is replaced by
the medium's ``K`` placeholders, ``K`` = ``image_seq_length`` / ``video_seq_length`` /
``audio_seq_length`` of the model config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from vllm.multimodal.inputs import MultiModalFieldConfig
from vllm.multimodal.parse import ModalityDataItems, MultiModalDataParser
from vllm.multimodal.processing import (BaseDummyInputsBuilder, BaseMultiModalProcessor, BaseProcessingInfo,
                                        PromptReplacement)

from ...modalities import MODALITIES, MODALITY


def medium_shapes(config: Any) -> dict[str, tuple[int, ...]]:
    """The tensor shape of one preprocessed medium of each modality ``config`` has (for vLLM's
    memory profiling with dummy media)."""
    size = config.vision_config.image_size
    shapes = {"image": (3, size, size)}
    if config.video_config is not None:
        frame = config.video_frame_size
        shapes["video"] = (config.video_config.num_frames, 3, frame, frame)
    if config.audio_config is not None:
        a = config.audio_config
        shapes["audio"] = (a.num_clips, 1, a.num_mel_bins, a.target_frames)
    return shapes


def media_lengths(config: Any) -> dict[str, int]:
    """LLM tokens one medium of each modality becomes."""
    return {name: int(getattr(config, MODALITY[name].seq_length_field)) for name in medium_shapes(config)}


class PreprocessedMedia(ModalityDataItems[Sequence[torch.Tensor], torch.Tensor]):
    """A list of preprocessed media of one modality, handed to the model as they are."""

    def get_count(self) -> int:
        return len(self.data)

    def get(self, index: int) -> torch.Tensor:
        return self.data[index]

    def get_processor_data(self) -> Mapping[str, object]:
        return {}  # nothing for an HF processor to do

    def get_passthrough_data(self) -> Mapping[str, object]:
        return {MODALITY[self.modality].raw_key: torch.stack(list(self.data))}


class PreprocessedMediaParser(MultiModalDataParser):
    """Reads ``{"image": [tensor, ...], "video": [...], "audio": [...]}`` (one tensor per medium,
    or one tensor of them stacked); anything else is refused naming the modality and shape."""

    def __init__(self, shapes: Mapping[str, tuple[int, ...]], **kwargs: Any):
        super().__init__(**kwargs)
        self.shapes = dict(shapes)

    def _get_subparsers(self) -> Mapping[str, Any]:
        return {name: (lambda data, name=name: self._parse(name, data)) for name in self.shapes}

    def _parse(self, modality: str, data: Any) -> PreprocessedMedia | None:
        if data is None:
            return None
        shape = self.shapes[modality]
        if isinstance(data, torch.Tensor):
            items = [data] if data.dim() == len(shape) else list(data)
        else:
            items = list(data)
        for i, item in enumerate(items):
            if not isinstance(item, torch.Tensor) or tuple(item.shape[-len(shape) + 1:]) != shape[1:] \
                    or item.dim() != len(shape):
                got = tuple(item.shape) if isinstance(item, torch.Tensor) else type(item).__name__
                raise ValueError(f"{modality} item {i}: expected a preprocessed tensor of shape {shape} "
                                 f"(groundinggpt's processor output), got {got}")
        return PreprocessedMedia(items, modality)


class GroundingGPTProcessingInfo(BaseProcessingInfo):
    def get_supported_mm_limits(self) -> Mapping[str, int | None]:
        return {name: None for name in medium_shapes(self.get_hf_config())}

    def get_mm_max_tokens_per_item(self, seq_len: int, mm_counts: Mapping[str, int]) -> Mapping[str, int]:
        return media_lengths(self.get_hf_config())

    def get_data_parser(self) -> MultiModalDataParser:
        return PreprocessedMediaParser(medium_shapes(self.get_hf_config()))


class GroundingGPTDummyInputs(BaseDummyInputsBuilder[GroundingGPTProcessingInfo]):
    """Media of the real shapes (zeros) for vLLM's memory profiling."""

    def get_dummy_text(self, mm_counts: Mapping[str, int]) -> str:
        return "".join(MODALITY[name].token * n for name, n in mm_counts.items())

    def get_dummy_mm_data(self, seq_len: int, mm_counts: Mapping[str, int], mm_options: Any = None) -> dict:
        shapes = medium_shapes(self.info.get_hf_config())
        return {name: [torch.zeros(shapes[name]) for _ in range(n)] for name, n in mm_counts.items() if n}


class GroundingGPTMultiModalProcessor(BaseMultiModalProcessor[GroundingGPTProcessingInfo]):
    def _get_mm_fields_config(self, hf_inputs: Any, hf_processor_mm_kwargs: Mapping[str, object]
                              ) -> Mapping[str, MultiModalFieldConfig]:
        return {m.raw_key: MultiModalFieldConfig.batched(m.name) for m in MODALITIES}

    def _get_prompt_updates(self, mm_items: Any, hf_processor_mm_kwargs: Mapping[str, object],
                            out_mm_kwargs: Any) -> Sequence[PromptReplacement]:
        config = self.info.get_hf_config()
        updates = []
        for name, length in media_lengths(config).items():
            token_id = getattr(config, MODALITY[name].token_id_field)
            updates.append(PromptReplacement(modality=name, target=[token_id], replacement=[token_id] * length))
        return updates

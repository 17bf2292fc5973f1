"""GroundingGPT: an LLM that reads images, videos and audio through three adapters.

Data flow (one forward at prefill; decoding steps reuse the KV cache and never
re-encode media, see :meth:`GroundingGPTForCausalLM.prepare_inputs_for_generation`)::

    pixel_values         [I, 3, S, S]       → vision tower run up to layer −2 only, no CLS → pool → image adapter → [I, K_I, D]
    pixel_values_videos  [V, M, 3, S, S]    → vision tower per frame → pool → + frame position
                                              → Q-Former (k_V learned queries) → video adapter → [V, k_V, D]
    input_features       [A, N, 1, F, T]    → audio ViT per clip → + clip position
                                              → Q-Former (k_A learned queries) → audio adapter → [A, k_A, D]

The processor has already written exactly K_I / k_V / k_A placeholder tokens for
each medium, so the features are spliced into the token embeddings with
``masked_scatter`` in the order the media appear in the batch (sample by sample,
left to right). Nothing is encoded for a modality the batch does not contain.

The frozen encoders' outputs can also be given directly (``image_features``,
``video_features``, ``audio_features``), which is how the training feature cache
skips the encoders: see :meth:`GroundingGPTForCausalLM.encode_media`.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from ..modalities import MEDIA_INPUT_NAMES, MODALITIES, Modality
from .branches import QFormerBranch, build_adapter, pool_patch_grid
from .configuration_groundinggpt import GroundingGPTConfig

__all__ = ["GroundingGPTForCausalLM", "GroundingGPTPreTrainedModel", "QFormerBranch", "MEDIA_INPUT_NAMES",
           "build_adapter", "pool_patch_grid"]

#: Attention kernels that take packed samples only as one row (variable-length FlashAttention).
FOLDED_PACKING_KERNELS = ("flash_attention_2", "flash_attention_3")


def _causal_lm_class(text_config: Any) -> type:
    """The causal-LM class transformers maps this text config to (LlamaForCausalLM for LLaMA)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    return MODEL_FOR_CAUSAL_LM_MAPPING[type(text_config)]


class GroundingGPTPreTrainedModel(PreTrainedModel):
    config_class = GroundingGPTConfig
    config: GroundingGPTConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    # The LLM and the CLIP tower take these kernels; the Q-Formers and the audio ViT keep their own.
    _supports_flash_attn = True
    _supports_flex_attn = True
    _no_split_modules = ["LlamaDecoderLayer", "CLIPEncoderLayer", "Blip2EncoderLayer", "Blip2QFormerLayer"]

    def _init_weights(self, module: nn.Module) -> None:
        std = 0.02
        if isinstance(module, QFormerBranch):
            module.query_tokens.data.normal_(0.0, std)
            module.position_embedding.weight.data.normal_(0.0, module.position_init_std)
            if module.input_norm is not None:
                module.input_norm.weight.data.fill_(1.0)
                module.input_norm.bias.data.zero_()
        # Adapters keep PyTorch's default Linear init; sub-models (LLM, CLIP, Q-Former,
        # audio ViT) initialise themselves.


class GroundingGPTForCausalLM(GroundingGPTPreTrainedModel, GenerationMixin):
    """The GroundingGPT model: media branches + any causal LM.

    Example:
        >>> import torch
        >>> from groundinggpt.models import GroundingGPTConfig, GroundingGPTForCausalLM
        >>> model = GroundingGPTForCausalLM(GroundingGPTConfig()).eval()
        >>> ids = torch.tensor([[1] + [model.config.image_token_id] * model.config.image_seq_length + [9]])
        >>> out = model(input_ids=ids, pixel_values=torch.randn(1, 3, 64, 64))
        >>> out.logits.shape[:2] == ids.shape
        True
    """

    def __init__(self, config: GroundingGPTConfig, language_model: PreTrainedModel | None = None):
        super().__init__(config)
        # Each modality's modules come from its table entry's builder (models/branches.py), in
        # table order, under the names they are saved with (vision_tower, image_adapter,
        # video_branch ...), so every saved folder loads as it is.
        for modality in MODALITIES:
            for attribute, module in modality.build_function()(config).items():
                setattr(self, attribute, module)
        if tuple(MEDIA_INPUT_NAMES) != getattr(type(self).forward, "_media_parameters", ()):
            _list_media_parameters(type(self).forward)  # a modality registered after import
        if language_model is None:
            # The class's constructor, not AutoModelForCausalLM.from_config: under DeepSpeed
            # ZeRO-3 from_config would build the LLM partitioned (deepspeed.zero.Init) inside
            # a model that is not, and post_init could not initialise it. Built this way it
            # follows this model: partitioned when from_pretrained builds this one so,
            # otherwise whole until deepspeed.initialize partitions everything.
            language_model = _causal_lm_class(config.text_config)(config.text_config)
        self.language_model = language_model
        self.post_init()

    # ---- embeddings plumbing expected by transformers (resize_token_embeddings, generate, PEFT)
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_output_embeddings(value)

    # ---- frozen encoders: media → features (what the feature cache stores)
    def _vision_patch_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] → selected-layer patch features [B, K, C] (CLS dropped unless 'full')."""
        pixel_values = pixel_values.to(dtype=self.vision_tower.dtype)
        # The tower is cut after vision_feature_layer (see __init__): its last hidden state is that layer's.
        feats = self.vision_tower(pixel_values, return_dict=True).last_hidden_state
        if self.config.vision_feature_select_strategy == "default":
            feats = feats[:, 1:]
        return feats

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Frozen part of the image branch: [I, 3, S, S] → [I, K_I, C_vision]."""
        feats = self._vision_patch_features(pixel_values)
        if self.config.vision_feature_select_strategy == "default":
            feats = pool_patch_grid(feats, self.config.image_token_pool)
        return feats

    def encode_videos(self, pixel_values_videos: torch.Tensor) -> torch.Tensor:
        """Frozen part of the video branch: [V, M, 3, S, S] → per-frame tokens [V, M, T, C].

        With the released frame encoder (``eva_blip2``) T is its 32 BLIP-2 queries per frame."""
        videos, frames = pixel_values_videos.shape[:2]
        if self.video_frame_encoder is not None:
            feats = self.video_frame_encoder(pixel_values_videos.flatten(0, 1))
            return feats.reshape(videos, frames, feats.shape[1], feats.shape[2])
        feats = self._vision_patch_features(pixel_values_videos.flatten(0, 1))
        if self.config.vision_feature_select_strategy == "default":
            feats = pool_patch_grid(feats, self.config.video_config.frame_token_pool)
        return feats.reshape(videos, frames, feats.shape[1], feats.shape[2])

    def encode_audios(self, input_features: torch.Tensor) -> torch.Tensor:
        """Frozen part of the audio branch: [A, N, 1, F, T] → per-clip embeddings [A, N, 1, C_audio]."""
        audios, clips = input_features.shape[:2]
        emb = self.audio_encoder(input_features.flatten(0, 1).to(self._audio_dtype()))
        return emb.reshape(audios, clips, 1, emb.shape[-1])

    def _audio_dtype(self) -> torch.dtype:
        return next(self.audio_encoder.parameters()).dtype

    # ---- the branches by modality
    @property
    def branches(self) -> nn.ModuleDict:
        """The trainable branch of each modality this model has, in an ``nn.ModuleDict`` keyed by
        modality name (``model.branches["video"] is model.video_branch``).

        The modules are registered (named, saved, frozen, counted) under their table names
        (``image_adapter``, ``video_branch``, ``audio_branch``), the keys of every saved folder,
        of the freeze plan and of the released-checkpoint converters. This ModuleDict holds the
        same module objects but is not registered as a child of the model: as a child it would
        list every branch twice to ``named_children`` (the freeze plan would then freeze the
        branches it had just set trainable, ``groundinggpt info`` would count them twice), to
        ``Module.apply`` and to DeepSpeed ZeRO-3, which hooks every child recursively (see
        "The model" in ``docs/architecture.md``). Assigning a branch attribute
        (``model.image_adapter = ...``, as PEFT's ``modules_to_save`` or a LoRA merge does)
        updates it.
        """
        return self.__dict__["_branches"]

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in _branch_attributes():
            self._sync_branches()

    def __delattr__(self, name: str) -> None:
        super().__delattr__(name)
        if name in _branch_attributes():
            self._sync_branches()

    def _sync_branches(self) -> None:
        # Kept out of _modules (object.__setattr__): see `branches`.
        found = {m.name: getattr(self, m.branch, None) for m in MODALITIES}
        object.__setattr__(self, "_branches", nn.ModuleDict({k: v for k, v in found.items() if v is not None}))

    def _encode(self, modality: Modality, raw: torch.Tensor) -> torch.Tensor:
        """Run the frozen encoder of ``modality``: its ``encode`` method, else its encoder's forward."""
        if modality.encode is not None:
            return getattr(self, modality.encode)(raw)
        return getattr(self, modality.encoder)(raw)

    def _media_inputs(self, media: dict[str, Any]) -> list[tuple[Modality, torch.Tensor | None, torch.Tensor | None]]:
        """``(modality, raw, features)`` for each modality given in ``media``; unknown keys are errors."""
        unknown = sorted(set(media) - set(MEDIA_INPUT_NAMES))
        if unknown:
            raise TypeError(f"unknown media inputs {unknown}; expected some of {list(MEDIA_INPUT_NAMES)}")
        out = []
        for m in MODALITIES:
            raw, features = media.get(m.raw_key), media.get(m.feature_key)
            if raw is not None or features is not None:
                if m.name not in self.branches:
                    self._require_branch(m.name, None)
                out.append((m, raw, features))
        return out

    @torch.no_grad()
    def encode_media(self, **raw_media: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Run only the frozen encoders; the result can be passed back as ``*_features``.

        Args:
            **raw_media: ``pixel_values`` / ``pixel_values_videos`` / ``input_features``
                (the raw keys of the modality table).

        Returns:
            ``{feature_key: features}`` (``image_features`` ...) for each medium given.
        """
        return {m.feature_key: self._encode(m, raw)
                for m, raw, _ in self._media_inputs(raw_media) if raw is not None}

    # ---- trainable part: features → LLM-width tokens
    def project_media(self, **media: torch.Tensor | None) -> dict[int, torch.Tensor]:
        """Media → LLM-width embeddings, keyed by the placeholder token id they replace.

        Args:
            **media: raw media (``pixel_values`` ...) or the frozen encoders' outputs
                (``image_features`` ...); features win when both are given.
        """
        out: dict[int, torch.Tensor] = {}
        for m, raw, features in self._media_inputs(media):
            if features is None:
                features = self._encode(m, raw)
            branch = self.branches[m.name]
            dtype = next(branch.parameters()).dtype
            out[getattr(self.config, m.token_id_field)] = branch(features.to(dtype))
        return out

    @property
    def image_adapter_dtype(self) -> torch.dtype:
        return next(self.image_adapter.parameters()).dtype

    @staticmethod
    def _require_branch(name: str, branch: nn.Module | None) -> None:
        if branch is None:
            raise ValueError(f"this model has no {name} branch (config.{name}_config is None) but {name} inputs were given")

    def _splice(self, input_ids: torch.Tensor, embeds: torch.Tensor, media: dict[int, torch.Tensor]) -> torch.Tensor:
        hint = "build inputs with GroundingGPTProcessor so each medium is expanded to the right length"
        for token_id in self._media_token_ids():
            if token_id not in media and bool((input_ids == token_id).any()):
                raise ValueError(f"input_ids hold placeholder tokens (id {token_id}) for a medium that was not "
                                 f"given; {hint}")
        for token_id, features in media.items():
            mask = input_ids == token_id
            n_tokens = int(mask.sum())
            n_features = features.shape[0] * features.shape[1]
            if n_tokens != n_features:
                raise ValueError(
                    f"placeholder/feature mismatch for token id {token_id}: {n_tokens} placeholder tokens in "
                    f"input_ids but {features.shape[0]} media × {features.shape[1]} tokens = {n_features} features; "
                    f"{hint}"
                )
            # Each row must hold whole media: equal totals could still split one medium over two rows.
            per_row = mask.sum(dim=1)
            if bool((per_row % features.shape[1]).any()):
                raise ValueError(
                    f"placeholder/feature mismatch for token id {token_id}: rows hold {per_row.tolist()} placeholder "
                    f"tokens, not whole media of {features.shape[1]} tokens each; {hint}"
                )
            embeds = embeds.masked_scatter(mask.unsqueeze(-1), features.to(embeds.dtype).reshape(-1, embeds.shape[-1]))
        return embeds

    def _media_token_ids(self) -> tuple[int, ...]:
        return tuple(getattr(self.config, m.token_id_field) for m in MODALITIES)

    def _expand_inputs_for_generation(self, expand_size: int = 1, is_encoder_decoder: bool = False,
                                      input_ids: torch.LongTensor | None = None, **model_kwargs: Any) -> Any:
        """Beam search and ``num_return_sequences`` repeat each conversation ``expand_size``
        times. transformers repeats every tensor along dim 0, but dim 0 of a media tensor
        counts media, not conversations: a conversation with two images would give its
        copies A,A and B,B. Each conversation's block of media is repeated instead."""
        if expand_size == 1 or input_ids is None:
            return super()._expand_inputs_for_generation(expand_size, is_encoder_decoder, input_ids, **model_kwargs)
        c = self.config
        kinds = {key: (getattr(c, m.token_id_field), getattr(c, m.seq_length_field))
                 for m in MODALITIES for key in (m.raw_key, m.feature_key)}
        expanded = {}
        for name, (token_id, length) in kinds.items():
            tensor = model_kwargs.get(name)
            if not isinstance(tensor, torch.Tensor) or not length:
                continue
            counts = ((input_ids == token_id).sum(dim=1) // length).tolist()
            if sum(counts) != tensor.shape[0]:
                continue  # left as it is: the forward pass reports the mismatch
            starts = [sum(counts[:row]) for row in range(len(counts))]
            index = [i for row, n in enumerate(counts) for _ in range(expand_size)
                     for i in range(starts[row], starts[row] + n)]
            expanded[name] = tensor[torch.tensor(index, dtype=torch.long, device=tensor.device)]
            model_kwargs.pop(name)
        input_ids, model_kwargs = super()._expand_inputs_for_generation(expand_size, is_encoder_decoder, input_ids,
                                                                        **model_kwargs)
        model_kwargs.update(expanded)
        return input_ids, model_kwargs

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        """Causal-LM forward with media spliced in.

        Args:
            input_ids: [B, L] token ids holding the expanded placeholders.
            labels: [B, L] with -100 where no loss is taken.
            attention_mask / position_ids: the usual padding mask; or, for packed rows
                (``data/packing.py``), no mask and ``position_ids`` restarting at 0 for every
                sample: attention then stays within each sample (FlashAttention-2 gets the
                rows laid end to end as one, for its variable-length kernel).
            **kwargs: the media, by the modality table's keys — raw media
                (``pixel_values`` / ``pixel_values_videos`` / ``input_features``, see the module
                doc) or the frozen encoders' outputs instead (``image_features`` /
                ``video_features`` / ``audio_features``, from :meth:`encode_media` or the
                feature cache); the rest goes to the language model (cache, use_cache,
                logits_to_keep ...). The signature lists the media keys (see
                :func:`_list_media_parameters`), which is what transformers' ``generate`` and
                ``Trainer`` read.
        """
        media_inputs = {name: kwargs.pop(name) for name in MEDIA_INPUT_NAMES if name in kwargs}
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            media = self.project_media(**media_inputs)
            is_placeholder = torch.isin(input_ids, torch.tensor(self._media_token_ids(), device=input_ids.device))
            if bool(is_placeholder.any()) and not media:
                raise ValueError(
                    "input_ids contain media placeholder tokens but no media was given "
                    "(pixel_values / pixel_values_videos / input_features or cached features)"
                )
            inputs_embeds = self.get_input_embeddings()(input_ids)
            if media:
                inputs_embeds = self._splice(input_ids, inputs_embeds, media)
        rows = inputs_embeds.shape[0]
        packed = self._packed(attention_mask, position_ids, kwargs)
        if packed:
            # transformers reads sample boundaries from position_ids only when no cache is in play;
            # with use_cache on, the LLM would make one and let samples attend to each other.
            kwargs["use_cache"] = False
        fold = packed and rows > 1 and self.language_model.config._attn_implementation in FOLDED_PACKING_KERNELS
        if fold:
            # FlashAttention's variable-length path reads sample boundaries from position_ids only
            # for a single row; packed rows are laid end to end (their padded tails are samples too).
            inputs_embeds = inputs_embeds.reshape(1, -1, inputs_embeds.shape[-1])
            position_ids = position_ids.reshape(1, -1)
            labels = labels.reshape(1, -1) if labels is not None else None
        out = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            labels=labels,
            **{**kwargs, "return_dict": True},
        )
        if fold and out.logits is not None:
            out.logits = out.logits.reshape(rows, -1, out.logits.shape[-1])
        return out

    @staticmethod
    def _packed(attention_mask: torch.Tensor | None, position_ids: torch.Tensor | None, kwargs: dict) -> bool:
        """A packed batch (``data/packing.py``): no mask, no cache, position ids that restart within a row."""
        cached = kwargs.get("cache", kwargs.get("past_key_values")) is not None  # the name depends on the release
        if attention_mask is not None or position_ids is None or cached:
            return False
        return position_ids.shape[-1] > 1 and bool((position_ids[..., 1:] != position_ids[..., :-1] + 1).any())

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        """``GenerationMixin.generate`` that never emits a media placeholder.

        A generated ``<image>`` / ``<video>`` / ``<audio>`` id would be fed back at the next
        step with no media to fill it, and the forward pass refuses such input; so the
        placeholder ids join any ``suppress_tokens`` the caller or the generation config gives.
        """
        config = kwargs.get("generation_config") or self.generation_config
        given = kwargs.get("suppress_tokens")
        if given is None:
            given = getattr(config, "suppress_tokens", None) or []
        kwargs["suppress_tokens"] = sorted({*given, *self._media_token_ids()})
        return super().generate(*args, **kwargs)

    def prepare_inputs_for_generation(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Media go to the model at prefill only; later steps read them from the KV cache."""
        inputs = super().prepare_inputs_for_generation(*args, **kwargs)
        cache = inputs.get("cache", inputs.get("past_key_values"))
        prefill = cache is None or cache.get_seq_length() == 0
        if not prefill:
            for name in MEDIA_INPUT_NAMES:
                inputs.pop(name, None)
        return inputs


def _list_media_parameters(forward: Any) -> Any:
    """Give ``forward`` a signature naming every media input of the modality table.

    ``forward`` takes media through ``**kwargs`` (one loop over the table, not a keyword per
    modality), but transformers decides which inputs a model takes from the signature:
    ``generate`` refuses keyword arguments it does not find there. So the table's keys are
    added as keyword-only parameters, defaulting to ``None``, before ``**kwargs``.
    """
    sig = inspect.signature(forward)
    params = [p for p in sig.parameters.values()
              if p.kind is not inspect.Parameter.VAR_KEYWORD and p.name not in getattr(forward, "_media_parameters", ())]
    var_kw = [p for p in sig.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    media = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation="torch.Tensor | None")
             for name in MEDIA_INPUT_NAMES]
    forward.__signature__ = sig.replace(parameters=[*params, *media, *var_kw])
    forward._media_parameters = tuple(MEDIA_INPUT_NAMES)
    return forward


_list_media_parameters(GroundingGPTForCausalLM.forward)


def _branch_attributes() -> set[str]:
    """Attributes whose assignment updates ``model.branches`` (read from the table each time)."""
    return {m.branch for m in MODALITIES}

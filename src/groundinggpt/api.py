"""The Python API: load a model folder, chat, and get grounded answers.

Every front end (CLI chat, HTTP server, web page, evaluation) goes through
:class:`GroundingGPT`, so they all decode, stop and convert coordinates alike.

Example:
    >>> from PIL import Image
    >>> from groundinggpt import GroundingGPT
    >>> gg = GroundingGPT.from_preset("tiny")           # random weights: answers are noise
    >>> out = gg.ground(Image.new("RGB", (80, 40), "red"), "the red square", max_new_tokens=4)
    >>> out.image_size
    (80, 40)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import LogitsProcessorList, StoppingCriteriaList

from .errors import InputError
from .modalities import MODALITIES
from .models import GroundingGPTForCausalLM
from .penalties import check_penalties, request_processors
from .processor import GroundedOutput, GroundingGPTProcessor
from .prompts import EVAL_PROMPTS
from .stopping import StopStrings
from .streaming import AnswerStream, BatchAnswerStreamer, StopRequested, answer_text


def context_size(engine: Any) -> int | None:
    """The LLM's context length in tokens of ``engine.model`` — or of ``engine.config`` for an
    engine that holds no HF model (the vLLM engine) — ``None`` if the config does not say."""
    config = getattr(getattr(engine, "model", None), "config", None) or getattr(engine, "config", None)
    text_config = getattr(config, "text_config", None) or config
    size = getattr(text_config, "max_position_embeddings", None)
    return size if isinstance(size, int) and size > 0 else None


def _check_phrase(value: Any, name: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{name} must be a non-empty string, got {value!r}")


@dataclass
class PreparedBatch:
    """Conversations turned into model inputs: what :meth:`GroundingGPT.prepare` returns.

    ``inputs`` holds ``input_ids`` / ``attention_mask`` (left-padded) and the media tensors
    present, on the CPU; ``media_info`` and ``prompt_lengths`` have one entry per conversation.
    """

    inputs: dict[str, torch.Tensor]
    media_info: list[Any]
    prompt_lengths: list[int]


@dataclass
class GenerationSettings:
    """Decoding settings shared by every front end.

    ``temperature == 0`` means greedy decoding (the evaluation default).
    ``presence_penalty`` / ``frequency_penalty``: OpenAI's, on the answer's tokens
    (:mod:`groundinggpt.penalties`).
    """

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    def generate_kwargs(self) -> dict[str, Any]:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")
        check_penalties(self.presence_penalty, self.frequency_penalty)
        kw: dict[str, Any] = {"max_new_tokens": self.max_new_tokens}
        if self.temperature > 0:
            kw.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        else:
            kw.update(do_sample=False)
        return kw

    def logits_processors(self, prompt_length: int) -> LogitsProcessorList | None:
        """What these settings add to the generation config's processors (``None``: nothing);
        ``prompt_length``: the prompt's columns (with padding) that the penalties skip."""
        return request_processors(self.presence_penalty, self.frequency_penalty, prompt_length)


class GroundingGPT:
    """A model and its processor, ready to answer.

    Args:
        model: a :class:`GroundingGPTForCausalLM`.
        processor: the matching :class:`GroundingGPTProcessor`.
        device: where to run (default: the model's device).
    """

    def __init__(self, model: GroundingGPTForCausalLM, processor: GroundingGPTProcessor,
                 device: str | torch.device | None = None):
        self.model = model.eval()
        self.processor = processor
        if device is not None:
            self.model.to(device)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @classmethod
    def load(cls, spec: str | Path, device: str | torch.device | None = "auto",
             dtype: str | torch.dtype | None = "auto", **preset_kwargs: Any) -> GroundingGPT:
        """The one loader: a preset name (``tiny``; the paper presets with their part folders
        in ``preset_kwargs``) or a project model folder, on ``device`` in ``dtype``.

        ``"auto"``: CUDA when available, bfloat16 there and float32 on CPU
        (:mod:`groundinggpt.loading`). A released (LEGO) folder is refused with the
        ``groundinggpt convert lego`` command to run.
        """
        from .loading import check_project_folder, resolve_device, resolve_dtype
        from .presets import PRESETS, build_preset

        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        if isinstance(spec, str) and spec in PRESETS:
            if spec != "tiny":
                preset_kwargs.setdefault("dtype", dtype)
            model, processor = build_preset(spec, **preset_kwargs)
            model.to(dtype)
        else:
            path = check_project_folder(spec)
            model = GroundingGPTForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
            processor = GroundingGPTProcessor.from_pretrained(path)
        return cls(model, processor, device=device)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | None = None,
                        dtype: torch.dtype | str | None = None) -> GroundingGPT:
        """Load a folder written by :meth:`save_pretrained` (or by training); see :meth:`load`."""
        return cls.load(Path(path), device=device or "auto", dtype=dtype or "auto")

    def _check_context(self, prompt_lengths: list[int]) -> None:
        """A prompt longer than the LLM's context would run for minutes and answer nothing."""
        size = context_size(self)
        if size is None:
            return
        for row, n in enumerate(prompt_lengths):
            if n >= size:
                raise InputError(f"conversation {row}: the prompt is {n} tokens, but this model's context is "
                                 f"{size}; shorten the conversation")

    @classmethod
    def from_preset(cls, name: str = "tiny", device: str | None = None, **kwargs: Any) -> GroundingGPT:
        """Build from a preset (see :mod:`groundinggpt.presets`)."""
        return cls.load(name, device=device or "auto", dtype=kwargs.pop("dtype", "auto"), **kwargs)

    def save_pretrained(self, path: str | Path) -> None:
        """Write model weights (safetensors), config and processor files into ``path``."""
        self.model.save_pretrained(path)
        self.processor.save_pretrained(path)

    # ---- generation -----------------------------------------------------------------------
    @torch.inference_mode()
    def generate(self, conversations: list[list[dict[str, Any]]], settings: GenerationSettings | None = None,
                 streamer: Any = None, on_text: Callable[[int, str], None] | None = None,
                 cancel: Sequence[Any] | None = None, **overrides: Any) -> list[GroundedOutput]:
        """Answer a batch of conversations (left-padded, one ``generate`` call).

        Args:
            conversations: a list of conversations (each a list of HF chat messages).
            settings: decoding settings; keyword ``overrides`` replace single fields.
            streamer: a transformers streamer (e.g. ``TextIteratorStreamer``) fed the raw
                tokens; batch size must then be 1.
            on_text: ``on_text(row, piece)`` receives each answer as it is generated, in
                the user's frame (boxes converted, released whole; see
                :mod:`groundinggpt.streaming`): ``""`` once per row when generation starts,
                then the new pieces. Joined, a row's pieces are a prefix of its final
                ``text``; the rest comes with the returned outputs.
            cancel: one ``threading.Event`` per conversation; setting it ends that row's
                answer at the next token (the others go on), e.g. when its client left.

        Returns:
            One :class:`GroundedOutput` per conversation, with token usage and finish reason.
        """
        settings = settings or GenerationSettings()
        if overrides:
            settings = GenerationSettings(**{**settings.__dict__, **overrides})
        if streamer is not None and len(conversations) != 1:
            raise ValueError("a streamer needs exactly one conversation")
        if streamer is not None and on_text is not None:
            raise ValueError("pass a streamer or on_text, not both")
        if cancel is not None and len(cancel) != len(conversations):
            raise ValueError(f"cancel needs one event per conversation, got {len(cancel)} for {len(conversations)}")
        prepared = self.prepare(conversations)
        if on_text is not None:
            streamer = BatchAnswerStreamer([AnswerStream(self.processor, info, settings.stop)
                                            for info in prepared.media_info], on_text)
        inputs = self.model_inputs(prepared.inputs)
        stops = self.stop_strings(settings)
        criteria = [StopStrings(self.processor.tokenizer, stops, inputs["input_ids"].shape[1])] if stops else []
        if cancel is not None:
            criteria.append(StopRequested(cancel))
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        tok = self.processor.tokenizer
        out = self.model.generate(
            **inputs, **settings.generate_kwargs(), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
            streamer=streamer, stopping_criteria=StoppingCriteriaList(criteria) if criteria else None,
            logits_processor=settings.logits_processors(inputs["input_ids"].shape[1]),
        )
        return [self.finish(row.tolist(), info, prompt_len, settings)
                for row, info, prompt_len in zip(out[:, inputs["input_ids"].shape[1]:], prepared.media_info,
                                                 prepared.prompt_lengths)]

    def prepare(self, conversations: list[list[dict[str, Any]]]) -> PreparedBatch:
        """Conversations → left-padded model inputs on the CPU (media decoded, prompt checked
        against the context). The server runs this off its inference thread."""
        batch = self.processor(conversations, add_generation_prompt=True, padding_side="left")
        media_info = batch.pop("media_info")
        prompt_lengths = [int(n) for n in batch["attention_mask"].sum(dim=1).tolist()]
        self._check_context(prompt_lengths)
        return PreparedBatch(dict(batch), media_info, prompt_lengths)

    def stop_strings(self, settings: GenerationSettings) -> list[str]:
        """The template's stop strings and the request's own (see :mod:`groundinggpt.stopping`)."""
        return list(self.processor.template.stop_strings + tuple(s for s in settings.stop if s))

    def finish(self, ids: list[int], media_info: Any, prompt_length: int,
               settings: GenerationSettings) -> GroundedOutput:
        """One row's generated ids (padding after EOS allowed) → its :class:`GroundedOutput`:
        text cut at the stop strings and converted to the user's frame, usage, finish reason."""
        tok = self.processor.tokenizer
        hit_eos = tok.eos_token_id in ids
        n = ids.index(tok.eos_token_id) + 1 if hit_eos else sum(1 for i in ids if i != tok.pad_token_id)
        raw = tok.decode(ids, skip_special_tokens=True)
        text = answer_text(self.processor, ids, settings.stop)
        stopped = hit_eos or any(s in raw for s in self.stop_strings(settings)) or n < settings.max_new_tokens
        result = self.processor.post_process(text, media_info)
        result.prompt_tokens, result.completion_tokens = int(prompt_length), n
        result.finish_reason = "stop" if stopped else "length"
        return result

    def model_inputs(self, batch: Any) -> dict[str, torch.Tensor]:
        """A processor batch (without ``media_info``) on the model's device, raw media in the model's dtype."""
        inputs = {k: v.to(self.device) for k, v in batch.items()}
        for m in MODALITIES:
            if m.raw_key in inputs:
                inputs[m.raw_key] = inputs[m.raw_key].to(self.model.dtype)
        return inputs

    def chat(self, messages: list[dict[str, Any]], **settings: Any) -> GroundedOutput:
        """Answer one conversation (HF chat format; see :mod:`groundinggpt.processor`)."""
        return self.generate([messages], **settings)[0]

    def _ask(self, media: list[dict[str, Any]], question: str, **settings: Any) -> GroundedOutput:
        return self.chat([{"role": "user", "content": [*media, {"type": "text", "text": question}]}], **settings)

    def ground(self, image: Any, expression: str, **settings: Any) -> GroundedOutput:
        """Referring expression comprehension: where is ``expression`` in ``image``?

        The answer's boxes are relative to the *original* image (``.boxes``) and in
        pixels (``.boxes_pixels``).
        """
        _check_phrase(expression, "expression")
        return self._ask([{"type": "image", "image": image}], EVAL_PROMPTS["rec"].format(exp=expression), **settings)

    def when(self, video: Any, event: str, **settings: Any) -> GroundedOutput:
        """Temporal grounding: when does ``event`` happen? (``.spans_seconds``)."""
        _check_phrase(event, "event")
        return self._ask([{"type": "video", "video": video}],
                         EVAL_PROMPTS["temporal_grounding"].format(event=event), **settings)

    def sound_source(self, image: Any, audio: Any, **settings: Any) -> GroundedOutput:
        """Sound-source localisation: which object in ``image`` makes the sound in ``audio``?"""
        return self._ask([{"type": "image", "image": image}, {"type": "audio", "audio": audio}],
                         EVAL_PROMPTS["sound_localization"], **settings)

"""lmms-eval model plugin: ``lmms-eval --model groundinggpt --model_args pretrained=DIR``.

lmms-eval 0.7 finds models outside its own tree through the Python entry-point group
``lmms_eval.models``; each entry point gives a ``ModelManifest`` (or a callable that
returns one) naming the class. This package declares::

    [project.entry-points."lmms_eval.models"]
    groundinggpt = "groundinggpt.eval.lmms_eval_plugin:manifest"

The class is a *simple* lmms-eval model: requests arrive as ``Instance`` objects whose
``args`` are ``(context, gen_kwargs, doc_to_visual, doc_id, task, split)`` for
``generate_until`` and ``(context, doc_to_target, doc_to_visual, doc_id, task, split)``
for ``loglikelihood``; the document is ``self.task_dict[task][split][doc_id]``.
Visuals (PIL images, video or audio paths, ``{"array", "sampling_rate"}`` audio) become
the conversation's media parts; answers are GroundedOutput text, so boxes in them are
relative to the ORIGINAL image.

Model arguments: ``pretrained`` (a model folder, or ``tiny`` for a random smoke-test
model), ``device`` (default: cuda when available), ``dtype`` (float32 / bfloat16 /
float16), ``batch_size``, ``max_new_tokens`` (default 256).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from typing import Any

import torch
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from lmms_eval.api.registry import register_model
from tqdm.auto import tqdm

from groundinggpt.api import GenerationSettings, GroundingGPT
from groundinggpt.processor import IGNORE_INDEX

__all__ = ["GroundingGPTLmms", "manifest"]

_VIDEO_EXTS = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v"}
_AUDIO_EXTS = {".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac"}
# LLaVA-style tasks put image tokens into the context; our processor would read them
# as plain text, so they are removed (the media parts carry the media).
_PLACEHOLDER_RE = re.compile(r"<(image|video|audio)>\s*")


def manifest():
    """The ``lmms_eval.models`` entry-point payload."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id="groundinggpt", simple_class_path=f"{__name__}.GroundingGPTLmms")


def _media_part(visual: Any) -> dict[str, Any] | None:
    if isinstance(visual, dict) and "array" in visual:  # datasets' Audio feature
        return {"type": "audio", "audio": (visual["array"], int(visual["sampling_rate"]))}
    if isinstance(visual, (str, os.PathLike)):
        ext = os.path.splitext(str(visual))[1].lower()
        kind = "video" if ext in _VIDEO_EXTS else "audio" if ext in _AUDIO_EXTS else "image"
        return {"type": kind, kind: str(visual)}
    if visual is None:
        return None
    return {"type": "image", "image": visual}  # PIL image (or anything load_image takes)


@register_model("groundinggpt")
class GroundingGPTLmms(lmms):
    """GroundingGPT as an lmms-eval simple model."""

    is_simple = True

    def __init__(self, pretrained: str = "tiny", device: str | None = None, dtype: str | None = None,
                 batch_size: int | str = 1, max_new_tokens: int = 256, **kwargs: Any) -> None:
        super().__init__()
        from ..loading import resolve_device

        device = resolve_device(device)
        self.gg = GroundingGPT.load(pretrained, device=device, dtype=dtype or "auto")
        # "auto" batch sizing is not supported: one fixed size.
        self.batch_size_per_gpu = int(batch_size) if str(batch_size).isdigit() else 1
        self.max_new_tokens = int(max_new_tokens)
        self._device = torch.device(device)

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    # ---- conversations ---------------------------------------------------------------------
    def _visuals(self, doc_to_visual, doc_id, task, split) -> list[Any]:
        if doc_to_visual is None:
            return []
        visuals = doc_to_visual(self.task_dict[task][split][doc_id])
        return list(visuals) if isinstance(visuals, (list, tuple)) else [visuals]

    def _user_turn(self, context: str, visuals: list[Any]) -> dict[str, Any]:
        limits = self.gg.processor.config.max_media
        counts: dict[str, int] = defaultdict(int)
        content = []
        for visual in visuals:
            part = _media_part(visual)
            # The model takes max_media per kind (1 in the paper); extra media are dropped.
            if part is None or counts[part["type"]] >= limits.get(part["type"], 0):
                continue
            counts[part["type"]] += 1
            content.append(part)
        content.append({"type": "text", "text": _PLACEHOLDER_RE.sub("", context).strip()})
        return {"role": "user", "content": content}

    def _settings(self, gen_kwargs: dict[str, Any]) -> GenerationSettings:
        until = gen_kwargs.get("until") or []
        until = [until] if isinstance(until, str) else list(until)
        temperature = float(gen_kwargs.get("temperature") or 0.0)
        if not gen_kwargs.get("do_sample", temperature > 0):
            temperature = 0.0
        return GenerationSettings(
            max_new_tokens=int(gen_kwargs.get("max_new_tokens") or self.max_new_tokens),
            temperature=temperature, top_p=float(gen_kwargs.get("top_p") or 1.0),
            stop=tuple(s for s in until if s),
        )

    # ---- lmms API ---------------------------------------------------------------------------
    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Greedy (unless asked otherwise) answers, batched by identical generation kwargs."""
        groups: dict[str, list[int]] = defaultdict(list)
        for i, req in enumerate(requests):
            groups[repr(sorted(req.args[1].items()))].append(i)
        results: list[str] = [""] * len(requests)
        bar = tqdm(total=len(requests), desc="GroundingGPT responding", disable=self.rank != 0)
        for indices in groups.values():
            settings = self._settings(dict(requests[indices[0]].args[1]))
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                conversations = []
                for i in chunk:
                    context, _, doc_to_visual, doc_id, task, split = requests[i].args
                    conversations.append([self._user_turn(context, self._visuals(doc_to_visual, doc_id, task, split))])
                for i, out in zip(chunk, self.gg.generate(conversations, settings)):
                    results[i] = out.text
                    self.cache_hook.add_partial("generate_until", requests[i].args[:2], out.text)
                bar.update(len(chunk))
        bar.close()
        return results

    @torch.inference_mode()
    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """Log-probability of each continuation as the assistant's answer, and whether it is greedy."""
        results = []
        for req in tqdm(requests, desc="GroundingGPT log-likelihood", disable=self.rank != 0):
            context, doc_to_target, doc_to_visual, doc_id, task, split = req.args
            continuation = doc_to_target if isinstance(doc_to_target, str) else \
                doc_to_target(self.task_dict[task][split][doc_id])
            user = self._user_turn(context, self._visuals(doc_to_visual, doc_id, task, split))
            results.append(self._continuation_logprob(user, str(continuation)))
        return results

    def _continuation_logprob(self, user: dict[str, Any], continuation: str) -> tuple[float, bool]:
        proc = self.gg.processor
        # The template already separates the answer ("ASSISTANT:" + " "), so a
        # leading space in the continuation would be a second one.
        batch = proc([user, {"role": "assistant", "content": continuation.lstrip()}],
                     add_generation_prompt=False, return_labels=True)
        batch.pop("media_info")
        labels = batch.pop("labels")[0]
        answer = (labels != IGNORE_INDEX).nonzero().squeeze(-1)
        # Labels also train the answer's terminator (EOS or the legacy "###"): not scored.
        suffix = proc.template.answer_suffix
        n_end = 1 if suffix is None else len(proc.tokenizer(suffix, add_special_tokens=False,
                                                             split_special_tokens=True)["input_ids"])
        answer = answer[: max(len(answer) - n_end, 0)]
        inputs = self.gg.model_inputs(batch)
        logits = self.gg.model(**inputs).logits[0].float()
        targets = inputs["input_ids"][0, answer]
        logprobs = torch.log_softmax(logits[answer - 1], dim=-1)  # token t is predicted at t - 1
        total = logprobs.gather(-1, targets[:, None]).sum()
        greedy = bool((logprobs.argmax(-1) == targets).all())
        return float(total), greedy

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError("GroundingGPT's lmms-eval plugin does not implement multi-round generation")

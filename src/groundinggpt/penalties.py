"""OpenAI's ``presence_penalty`` and ``frequency_penalty`` as a transformers logits processor.

OpenAI defines them on the logits of the tokens already *generated* (the prompt does not
count): a token's logit is lowered by ``frequency_penalty`` times how often it was sampled
so far, and by ``presence_penalty`` once if it was sampled at all; both lie in [-2, 2]
(negative values encourage repeats). transformers has no processor for this:
``repetition_penalty`` is multiplicative and counts the prompt too, so it cannot stand in.

The same processor is handed to ``generate`` by :meth:`GroundingGPT.generate` and built
into each row's list by the continuous batcher (:mod:`groundinggpt.serve.row_sampling`), in
the same place of the list (after the generation config's processors, before the sampling
warpers, where ``generate`` puts a caller's processors), so both paths give the same answer.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor, LogitsProcessorList

PENALTY_RANGE = (-2.0, 2.0)


class PresenceFrequencyPenalty(LogitsProcessor):
    """Lower each token's logit by its count in the answer so far (see the module doc).

    Args:
        presence: subtracted once from every token the answer already holds.
        frequency: subtracted per occurrence.
        prompt_length: ids before this column are the prompt (left padding included) and
            are not counted.
    """

    def __init__(self, presence: float, frequency: float, prompt_length: int):
        self.presence, self.frequency, self.prompt_length = float(presence), float(frequency), int(prompt_length)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        answer = input_ids[:, self.prompt_length:]
        if answer.shape[1] == 0:
            return scores
        counts = torch.zeros_like(scores).scatter_add_(1, answer, torch.ones_like(answer, dtype=scores.dtype))
        return scores - counts * self.frequency - (counts > 0).to(scores.dtype) * self.presence


def check_penalties(presence: float, frequency: float) -> None:
    """Raise ``ValueError`` naming the setting outside OpenAI's range."""
    low, high = PENALTY_RANGE
    for name, value in (("presence_penalty", presence), ("frequency_penalty", frequency)):
        if not low <= value <= high:
            raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value}")


def request_processors(presence: float, frequency: float, prompt_length: int) -> LogitsProcessorList | None:
    """The processors a request's penalties add (``None`` when both are 0: nothing to apply)."""
    if presence == 0 and frequency == 0:
        return None
    return LogitsProcessorList([PresenceFrequencyPenalty(presence, frequency, prompt_length)])

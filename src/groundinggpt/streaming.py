"""Answer text while it is generated, never showing a half-written or unconverted box.

The model writes boxes in its own frame (the padded square); users get them in the
original image's frame (:meth:`GroundingGPTProcessor.post_process` rewrites the numbers).
A streamed answer must therefore hold back a box until its closing ``]`` has been
generated, then release it converted — and likewise a partial UTF-8 character, the
beginning of a stop string, and trailing whitespace (the final answer is stripped).
What is released is always a prefix of the final answer, so joining the pieces gives
exactly the text a non-streamed request returns.

Each token costs the same whatever the answer's length: only a window of the last few
tokens is decoded (the incremental detokenisation of text-generation-inference and vLLM),
stop strings are looked for only where a new one can end, and only the newly settled text
is converted (``bench/stream_release_cost.py``: re-decoding the whole answer per token
made a 4,000-token answer cost seconds of CPU on its own).

Example:
    >>> from groundinggpt.presets import tiny_processor
    >>> from groundinggpt.processor import MediaInfo
    >>> proc = tiny_processor()
    >>> wide = [MediaInfo(kind="image", original_size=(200, 100))]   # padded to a 200x200 square
    >>> stream = AnswerStream(proc, wide)
    >>> ids = proc.tokenizer("The cat[0.1, 0.3, 0.5, 0.7] sleeps.", add_special_tokens=False)["input_ids"]
    >>> pieces = [stream.push(i) for i in ids]
    >>> "".join(pieces)                  # in the 200x100 image's frame
    'The cat[0.100, 0.100, 0.500, 0.900] sleeps.'
    >>> [p for p in pieces if "[" in p]  # the box came out whole, with what followed its "]"
    ['[0.100, 0.100, 0.500, 0.900] s']
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import StoppingCriteria
from transformers.generation.streamers import BaseStreamer

log = logging.getLogger(__name__)

# What may follow the opening bracket(s) of a box that is not finished yet (grounding._BOX_RE).
_BOX_BODY = frozenset("0123456789.,;+-% \t\r\n")


def answer_text(processor: Any, token_ids: Sequence[int], stops: Sequence[str] = ()) -> str:
    """Generated ids → the answer's text before coordinate conversion: decoded, cut at the
    template's and the user's stop strings, stripped. (The non-streamed path uses it too.)"""
    text = processor.decode(list(token_ids))
    for stop in stops:
        if stop and stop in text:
            text = text[: text.index(stop)]
    return text.strip()


def settled_prefix(text: str, stops: Sequence[str] = ()) -> str:
    """The part of a partial answer that later tokens cannot change.

    Held back: a trailing replacement character (a multi-byte character cut in two), a
    tail that could be the start of a stop string, a box that is open or whose run of
    closing brackets may go on (``[`` followed only by what a box may contain, then ``]``
    at most), and trailing whitespace.

    >>> settled_prefix("the cat[0.12, 0.3")
    'the cat'
    >>> settled_prefix("the cat[0.12, 0.3, 0.5, 0.9] is", stops=["USER:"])
    'the cat[0.12, 0.3, 0.5, 0.9] is'
    >>> settled_prefix("the cat[[0.12, 0.3, 0.5, 0.9]")   # "]]" may follow: one box, not a box and "]"
    'the cat'
    >>> settled_prefix("the cat [sic] is US", stops=["USER:"])
    'the cat [sic] is'
    """
    while text.endswith("\ufffd"):
        text = text[:-1]
    held = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), held, -1):
            if text.endswith(stop[:k]):
                held = k
                break
    if held:
        text = text[:-held]
    start = text.rfind("[")
    if start >= 0:
        while start > 0 and text[start - 1] == "[":
            start -= 1
        body = text[start:].lstrip("[").rstrip("]")
        if all(c in _BOX_BODY for c in body):
            text = text[:start]
    return text.rstrip()


class AnswerStream:
    """The answer of one generated sequence, released piece by piece.

    Args:
        processor: the model's processor (decoding, stop strings, coordinate conversion).
        media_info: the conversation's media (what ``post_process`` converts boxes for).
        stops: the request's own stop strings (the template's are always applied).
    """

    def __init__(self, processor: Any, media_info: Any = None, stops: Sequence[str] = ()):
        self.processor = processor
        self.media_info = media_info
        self.stops = tuple(s for s in stops if s)
        self._hold = tuple(processor.template.stop_strings) + self.stops
        self._eos = processor.tokenizer.eos_token_id
        self._pad = processor.tokenizer.pad_token_id
        self.ids: list[int] = []
        self.sent = ""
        self.finished = False
        self._text = ""        # the decoded answer so far, raw (before cutting and conversion)
        self._window = 0       # ids[_window:] are decoded anew for each token ...
        self._read = 0         # ... and ids[_window:_read] gave the end of _text
        self._used = 0         # _text[:_used] is released or dropped (leading whitespace)
        self._stopped = False  # a stop string ended the answer

    def push(self, token_id: int) -> str:
        """Add one generated token; return the newly settled text (often ``""``)."""
        if self.finished or token_id == self._pad:  # a finished row of a batch gets padding
            return ""
        if token_id == self._eos:
            self.finished = True
            return ""
        self.ids.append(int(token_id))
        if self._stopped:
            return ""
        before = len(self._text)
        self._decode_window()
        end = self._find_stop(before)
        if end is None:
            end = len(self._text)
        else:
            self._stopped = True
        tail = self._text[self._used:end]
        if not self.sent:  # the answer is stripped: leading whitespace is never released
            stripped = tail.lstrip()
            self._used += len(tail) - len(stripped)
            tail = stripped
        settled = settled_prefix(tail, self._hold)
        if not settled:
            return ""
        self._used += len(settled)
        piece = self.processor.boxes_to_user_frame(settled, self.media_info)
        self.sent += piece
        return piece

    def _decode_window(self) -> None:
        """Append the text the newest token adds, decoding only the last few ids.

        A window's decoding can begin with a different space or a broken character than
        the whole answer's would, so the new text is what the window gives beyond what
        its first part gave; the window moves on only once that text is whole (no cut
        multi-byte character) and extends it.
        """
        decode = self.processor.tokenizer.decode
        known = decode(self.ids[self._window:self._read], skip_special_tokens=True)
        text = decode(self.ids[self._window:], skip_special_tokens=True)
        if len(text) > len(known) and text.startswith(known) and not text.endswith("\ufffd"):
            self._text += text[len(known):]
            self._window, self._read = self._read, len(self.ids)

    def _find_stop(self, before: int) -> int | None:
        """Where the first stop string begins, looking only where one can end in the new text."""
        found = None
        for stop in self._hold:
            at = self._text.find(stop, max(self._used, before - len(stop) + 1))
            if at >= 0 and (found is None or at < found):
                found = at
        return found

    def rest(self, final_text: str) -> str:
        """What the final answer adds to what was released (``""`` if they disagree)."""
        if final_text.startswith(self.sent):
            return final_text[len(self.sent):]
        log.warning("final answer does not extend the streamed text; its rest is not sent")
        return ""


class BatchAnswerStreamer(BaseStreamer):
    """A ``transformers`` streamer for a whole batch: routes each row's tokens to its
    :class:`AnswerStream` and calls ``on_text(row, piece)``.

    ``on_text(row, "")`` is called once per row when generation starts (after the prompt,
    so the media have been decoded), then with every non-empty piece. It runs on the
    generating thread.
    """

    def __init__(self, streams: list[AnswerStream], on_text: Callable[[int, str], None]):
        self.streams = streams
        self.on_text = on_text
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() first passes the prompt ids [B, L]
            self._prompt_seen = True
            for row in range(len(self.streams)):
                self.on_text(row, "")
            return
        for row, token in enumerate(value.reshape(-1).tolist()):
            piece = self.streams[row].push(token)
            if piece:
                self.on_text(row, piece)

    def end(self) -> None:
        pass


class StopRequested(StoppingCriteria):
    """Ends a row of a batched ``generate`` once its event is set (the client went away);
    the other rows go on. ``events[i]`` is any object with ``is_set()`` (a ``threading.Event``)."""

    def __init__(self, events: Sequence[Any]):
        self.events = list(events)

    def __call__(self, input_ids: torch.LongTensor, scores: Any = None, **kwargs: Any) -> torch.BoolTensor:
        return torch.tensor([e.is_set() for e in self.events], dtype=torch.bool, device=input_ids.device)

"""Stop strings: the tail check finds the first token after which the answer contains one."""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from groundinggpt.api import GenerationSettings
from groundinggpt.presets import tiny_processor
from groundinggpt.stopping import StopStrings, TailStopMatcher

from test_streaming import _sentencepiece_processor

PROC = tiny_processor()
WORDS = st.sampled_from(["the", " cat", "USER", ":", "US", "ER:", " [0.1,", " 0.5]", "STOP", " é", "日本", "\n", " "])


def first_hit_by_definition(tok, ids, stops):
    """The first k such that the whole decoded ids[:k] contains a stop (None if never)."""
    for k in range(1, len(ids) + 1):
        text = tok.decode(ids[:k], skip_special_tokens=True)
        if any(s in text for s in stops):
            return k
    return None


def first_hit_by_matcher(matcher, ids):
    return next((k for k in range(1, len(ids) + 1) if matcher.hit(ids[:k])), None)


@settings(max_examples=120, deadline=None)
@example(words=[" é", "USER", "日本"], stops=("日本",))  # the tail began inside "é": its byte run decoded as garbage
@given(words=st.lists(WORDS, max_size=25), stops=st.sampled_from([("USER:",), ("STOP", "0.5]"), (" cat",), ("日本",)]))
def test_the_tail_finds_the_same_token_as_decoding_everything(words, stops):
    for tok in (PROC.tokenizer, _sentencepiece_tokenizer()):
        ids = tok("".join(words), add_special_tokens=False)["input_ids"]
        assert first_hit_by_matcher(TailStopMatcher(tok, stops), ids) == first_hit_by_definition(tok, ids, stops)


_SP = []


def _sentencepiece_tokenizer():
    if not _SP:
        _SP.append(_sentencepiece_processor().tokenizer)
    return _SP[0]


def test_the_criterion_stops_rows_one_by_one_and_ignores_the_prompt():
    tok = PROC.tokenizer
    prompt = tok("USER: hi ASSISTANT:", add_special_tokens=False)["input_ids"]
    answers = [tok(" fine. USER: more", add_special_tokens=False)["input_ids"],
               tok(" fine and more text", add_special_tokens=False)["input_ids"]]
    n = min(len(a) for a in answers)
    criterion = StopStrings(tok, ["USER:"], prompt_length=len(prompt))
    stopped_at = [None, None]
    for k in range(1, n + 1):
        ids = torch.tensor([prompt + a[:k] for a in answers])
        done = criterion(ids).tolist()
        for row, d in enumerate(done):
            if d and stopped_at[row] is None:
                stopped_at[row] = k
    assert stopped_at[0] == first_hit_by_definition(tok, answers[0], ["USER:"]) and stopped_at[1] is None
    assert not TailStopMatcher(tok, []) and not TailStopMatcher(tok, [""]).hit([1, 2])


@pytest.fixture(scope="module")
def chatty():
    from test_serve_support import chatty_tiny

    return chatty_tiny()


def test_a_request_stop_string_ends_the_answer_where_transformers_did(chatty):
    conv = [{"role": "user", "content": "Tell me about cats"}]
    tok = chatty.processor.tokenizer
    plain = chatty.chat(conv, max_new_tokens=24)
    assert plain.completion_tokens >= 8, "the scaled tiny model should write a long answer"
    raw = tok.decode(tok(plain.text, add_special_tokens=False)["input_ids"])
    stop = raw[len(raw) // 2: len(raw) // 2 + 3]
    assert stop.strip(), raw
    out = chatty.chat(conv, max_new_tokens=24, stop=(stop,))
    assert out.finish_reason == "stop" and out.completion_tokens < plain.completion_tokens
    assert out.text == plain.text[:plain.text.index(stop)].strip()
    # transformers' own stop_strings (what the API used before) ends at the same token.
    inputs = chatty.model_inputs(chatty.prepare([conv]).inputs)
    with torch.inference_mode():
        hf = chatty.model.generate(**inputs, max_new_tokens=24, do_sample=False, eos_token_id=tok.eos_token_id,
                                   pad_token_id=tok.pad_token_id, tokenizer=tok,
                                   stop_strings=chatty.stop_strings(GenerationSettings(stop=(stop,))))
    assert hf.shape[1] - inputs["input_ids"].shape[1] == out.completion_tokens

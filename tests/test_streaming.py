"""groundinggpt.streaming: streamed answers are prefixes of the final one, boxes come out whole and converted."""

from __future__ import annotations

import doctest
import functools
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from groundinggpt import streaming
from groundinggpt.grounding import parse_boxes
from groundinggpt.presets import tiny_processor
from groundinggpt.processor import GroundingGPTProcessor, MediaInfo
from groundinggpt.streaming import AnswerStream, answer_text, settled_prefix

PROC = tiny_processor()
TOK = PROC.tokenizer
# Pieces of text a grounding model writes, so random sequences hit boxes, spans, stops and numbers often.
FRAGMENTS = ["The", " cat", " red", " square", "[", "[[", "]", "]]", "{", "}", "0", ".", "1", "25", ".5", ",", ", ",
             ";", " ", "  ", "\n", "-", "%", " is", " on the left", "USER", ":", " USER:", "</s>", "é", "猫", "STOP"]


NUMBER = st.sampled_from(["0", "1", "0.5", ".25", "0.125", "1.", "-0.2", "0.7%", "12"])
SEPARATOR = st.sampled_from([", ", ",", " ", "; ", " ,  "])


@st.composite
def box_text(draw) -> str:
    """A box as a model may write it: odd brackets and separators, sometimes unfinished."""
    numbers = draw(st.lists(NUMBER, min_size=1, max_size=5))
    body = "".join(n + draw(SEPARATOR) for n in numbers[:-1]) + numbers[-1]
    return draw(st.sampled_from(["[", "[[", " ["])) + body + draw(st.sampled_from(["]", "]]", "", ",]", " ]"]))


PART = st.one_of(st.sampled_from(FRAGMENTS), box_text())


def ids_of(text: str) -> list[int]:
    return TOK(text, add_special_tokens=False)["input_ids"]


def test_module_docstring_examples_run():
    assert doctest.testmod(streaming).failed == 0


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(PART, max_size=30),
       size=st.tuples(st.integers(1, 400), st.integers(1, 400)),
       stops=st.sampled_from([(), ("STOP",), ("0.5]",)]),
       eos_at=st.one_of(st.none(), st.integers(0, 60)))
def test_streamed_pieces_join_to_the_final_answer(parts, size, stops, eos_at):
    _check_stream(PROC, parts, stops, size, eos_at)


def _check_stream(proc, parts, stops, size, eos_at=None):
    """Push the tokens of ``"".join(parts)`` one by one: every piece extends the released text,
    which is always a prefix of the final (non-streamed) answer, and the rest completes it."""
    tok = proc.tokenizer
    ids = tok("".join(parts), add_special_tokens=False)["input_ids"]
    if eos_at is not None and eos_at < len(ids):
        ids = ids[:eos_at] + [tok.eos_token_id] + ids[eos_at:]
    info = [MediaInfo(kind="image", original_size=size)]
    stream = AnswerStream(proc, info, stops)
    pieces = []
    for i in ids:
        pieces.append(stream.push(i))
        assert "".join(pieces) == stream.sent
    generated = ids[: ids.index(tok.eos_token_id)] if tok.eos_token_id in ids else ids
    answer = answer_text(proc, generated, stops)
    final = proc.post_process(answer, info).text
    assert final.startswith(stream.sent)  # never released anything the final answer does not have
    # ... and released all that was settled by the last token: nothing stalls until the end
    held = tuple(proc.template.stop_strings) + tuple(stops)
    raw = tok.decode(generated, skip_special_tokens=True)
    cut = min([raw.find(s) for s in held if s in raw] or [len(raw)])
    settled = proc.boxes_to_user_frame(settled_prefix(raw[:cut].lstrip(), held), info)
    if cut == len(raw):
        assert stream.sent == settled
    else:  # a stop ended the answer: a tail held earlier ("USER" of "USER:") may be out already
        assert stream.sent.startswith(settled)
    assert "".join(pieces) + stream.rest(final) == final


@functools.cache
def _sentencepiece_processor():
    """The tiny processor's template and conversion around a Vicuna-style SentencePiece
    tokenizer (byte fallback, "▁" spaces): windowed decoding must give the whole decode."""
    import tempfile

    from test_presets import sentencepiece_only_vicuna
    from transformers import AutoTokenizer

    folder = Path(tempfile.mkdtemp(prefix="gg-sp-")) / "vicuna"
    sentencepiece_only_vicuna(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    proc = SimpleNamespace(tokenizer=tok, template=PROC.template, boxes_to_user_frame=PROC.boxes_to_user_frame,
                           post_process=lambda text, info: PROC.post_process(text, info))
    proc.decode = lambda ids: GroundingGPTProcessor.decode(proc, ids)
    return proc


@settings(max_examples=150, deadline=None)
@given(parts=st.lists(PART, max_size=30),
       size=st.tuples(st.integers(1, 400), st.integers(1, 400)),
       stops=st.sampled_from([(), ("STOP",), ("0.5]",)]))
def test_streaming_with_a_sentencepiece_tokenizer(parts, size, stops):
    _check_stream(_sentencepiece_processor(), parts, stops, size)


def test_each_token_decodes_a_short_window_not_the_whole_answer(monkeypatch):
    decoded: list[int] = []
    real = TOK.decode
    monkeypatch.setattr(TOK, "decode", lambda ids, **kw: decoded.append(len(ids)) or real(ids, **kw))
    info = [MediaInfo(kind="image", original_size=(300, 200))]
    stream = AnswerStream(PROC, info)
    text = "The red square[0.1, 0.2, 0.3, 0.4] is left of the blue circle[0.5, 0.5, 0.9, 0.9]. " * 40
    for i in ids_of(text):
        stream.push(i)
    assert len(stream.ids) > 1000
    assert max(decoded) <= 8  # a window of a few ids, however long the answer
    final = PROC.post_process(answer_text(PROC, stream.ids), info).text
    assert stream.sent + stream.rest(final) == final and final.count("[") == 80


def test_a_double_bracketed_box_is_held_until_its_brackets_close():
    info = [MediaInfo(kind="image", original_size=(200, 100))]
    stream = AnswerStream(PROC, info)
    for i in ids_of("A dog[[0.1, 0.3, 0.5, 0.7]"):
        stream.push(i)
    assert stream.sent == "A dog"  # "]]" may follow: the box is not whole yet
    for i in ids_of("] runs"):
        stream.push(i)
    assert stream.sent == "A dog[0.100, 0.100, 0.500, 0.900] runs"


def test_a_box_is_released_only_when_closed_and_in_the_users_frame():
    info = [MediaInfo(kind="image", original_size=(200, 100))]
    stream = AnswerStream(PROC, info)
    text = "A dog[0.1, 0.3, 0.5, 0.7] and"
    ids = ids_of(text)
    released = []
    for i in ids:
        piece = stream.push(i)
        released.append(piece)
        if "]" not in TOK.decode(stream.ids):
            assert "[" not in stream.sent  # nothing of an open box goes out
    assert stream.sent == "A dog[0.100, 0.100, 0.500, 0.900] and"
    (box,) = parse_boxes(stream.sent)
    assert box.as_list() == pytest.approx([0.1, 0.1, 0.5, 0.9])
    assert sum(1 for p in released if p) >= 3  # the words before the box came out before it


def test_settled_prefix_holds_back_what_can_still_change():
    assert settled_prefix("a [0.1, 0.2") == "a"
    assert settled_prefix("a [[0.1") == "a"
    assert settled_prefix("a [see above] b") == "a [see above] b"  # not a box: no need to wait
    assert settled_prefix("a [see") == "a [see"
    assert settled_prefix("word \ufffd") == "word"
    assert settled_prefix("hello US", ["USER:"]) == "hello"
    assert settled_prefix("hello USA", ["USER:"]) == "hello USA"
    assert settled_prefix("hello </", ["</s>", "USER:"]) == "hello"


def test_user_stop_strings_cut_the_stream_like_the_answer():
    stream = AnswerStream(PROC, None, stops=("STOP",))
    for i in ids_of("one two STOP three"):
        stream.push(i)
    assert stream.sent == "one two"


@pytest.fixture(scope="module")
def chatty():
    from test_serve_support import chatty_tiny

    return chatty_tiny()


def test_generate_on_text_streams_every_row_of_a_batch(chatty):
    convs = [[{"role": "user", "content": "Tell me about cats"}], [{"role": "user", "content": "Where is the dog?"}]]
    events: list[tuple[int, str]] = []
    outs = chatty.generate(convs, max_new_tokens=24, on_text=lambda row, piece: events.append((row, piece)))
    plain = chatty.generate(convs, max_new_tokens=24)
    assert [o.text for o in outs] == [o.text for o in plain]
    assert events[:2] == [(0, ""), (1, "")]  # the start signal, once per row, before any text
    for row, out in enumerate(outs):
        joined = "".join(p for r, p in events if r == row)
        assert out.text.startswith(joined) and joined  # streamed, and a prefix of the answer
    with pytest.raises(ValueError, match="not both"):
        chatty.generate(convs[:1], streamer=object(), on_text=lambda *a: None)


def test_cancel_ends_one_row_and_leaves_the_others(chatty):
    import threading

    convs = [[{"role": "user", "content": "Tell me about cats"}], [{"role": "user", "content": "Where is the dog?"}]]
    plain = chatty.generate(convs, max_new_tokens=24)
    stop = [threading.Event(), threading.Event()]

    def on_text(row, piece):
        if row == 0:
            stop[0].set()  # row 0's client leaves as soon as its answer starts

    outs = chatty.generate(convs, max_new_tokens=24, on_text=on_text, cancel=stop)
    assert outs[0].completion_tokens == 1 < plain[0].completion_tokens
    assert outs[1].text == plain[1].text and outs[1].completion_tokens == plain[1].completion_tokens
    with pytest.raises(ValueError, match="one event per conversation"):
        chatty.generate(convs, max_new_tokens=2, cancel=stop[:1])

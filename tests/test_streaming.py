"""groundinggpt.streaming: streamed answers are prefixes of the final one, boxes come out whole and converted."""

from __future__ import annotations

import doctest

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from groundinggpt import streaming
from groundinggpt.grounding import parse_boxes
from groundinggpt.presets import tiny_processor
from groundinggpt.processor import MediaInfo
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
    ids = ids_of("".join(parts))
    if eos_at is not None and eos_at < len(ids):
        ids = ids[:eos_at] + [TOK.eos_token_id] + ids[eos_at:]
    info = [MediaInfo(kind="image", original_size=size)]
    stream = AnswerStream(PROC, info, stops)
    pieces = []
    for i in ids:
        pieces.append(stream.push(i))
        assert "".join(pieces) == stream.sent
    generated = ids[: ids.index(TOK.eos_token_id)] if TOK.eos_token_id in ids else ids
    final = PROC.post_process(answer_text(PROC, generated, stops), info).text
    assert final.startswith(stream.sent)  # never released anything the final answer does not have
    assert "".join(pieces) + stream.rest(final) == final


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

"""Tests for the grounding text contract (groundinggpt.grounding)."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groundinggpt import grounding
from groundinggpt.grounding import (
    Box, GroundedEntity, Span, box_iou, format_box, format_span, original_to_square,
    parse_boxes, parse_grounding, parse_spans, replace_boxes, seconds_to_span,
    span_to_seconds, square_to_original, temporal_iou,
)

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def assert_box(box: Box, expected, tol: float = 1e-9) -> None:
    assert box.as_list() == pytest.approx(list(expected), abs=tol)


def test_module_docstring_example_runs():
    assert doctest.testmod(grounding).failed == 0


# --- data classes --------------------------------------------------------------
def test_box_methods():
    b = Box(0.5, 0.8, 0.1, 0.2)
    assert b.area == pytest.approx(0.4 * 0.6)
    assert b.normalized() == Box(0.1, 0.2, 0.5, 0.8)
    assert Box(-0.2, 0.5, 1.5, 2).clipped() == Box(0.0, 0.5, 1.0, 1.0)
    assert Box(0.1, 0.2, 0.3, 0.4).to_pixels(200, 100) == pytest.approx((20, 20, 60, 40))
    assert_box(Box.from_pixels(20, 20, 60, 40, 200, 100), (0.1, 0.2, 0.3, 0.4))
    assert isinstance(Box(0, 0, 1, 1).x2, float)
    with pytest.raises(TypeError):
        Box("0", 0, 1, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="height"):
        Box.from_pixels(0, 0, 1, 1, 10, 0)


def test_span_methods_and_entity_dict():
    s = Span(0.7, 0.2)
    assert s.length == pytest.approx(0.5)
    assert s.normalized() == Span(0.2, 0.7)
    assert Span(-1, 3).clipped().as_list() == [0.0, 1.0]
    ent = GroundedEntity("a dog", box=Box(0, 0, 1, 1), start=5, end=33)
    assert ent.to_dict() == {"phrase": "a dog", "box": [0.0, 0.0, 1.0, 1.0],
                             "span": None, "start": 5, "end": 33}


# --- formatting and round trips ------------------------------------------------
def test_format_exact():
    assert format_box(Box(0.1, 0.2, 0.3, 0.4)) == "[0.100, 0.200, 0.300, 0.400]"
    assert format_box(Box(0.3, 1.4, -0.1, 0.2)) == "[0.000, 0.200, 0.300, 1.000]"
    assert format_span(Span(0.1, 0.25)) == "{0.10, 0.25}"
    assert format_span(Span(0.9, -0.3)) == "{0.00, 0.90}"


@given(unit, unit, unit, unit)
def test_box_round_trip(x1, y1, x2, y2):
    box = Box(x1, y1, x2, y2)
    (parsed,) = parse_boxes(f"the thing{format_box(box)}.")
    assert_box(parsed, box.normalized().as_list(), tol=0.0005 + 1e-12)


@given(unit, unit)
def test_span_round_trip(a, b):
    span = Span(a, b)
    (parsed,) = parse_spans(f"It happens in {format_span(span)}.")
    assert parsed.as_list() == pytest.approx(span.normalized().as_list(), abs=0.005 + 1e-12)


# --- parser robustness ---------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("[0.1,0.2,0.3,0.4]", (0.1, 0.2, 0.3, 0.4)),
    ("[  0.1 ,  0.2,0.3 ,0.4  ]", (0.1, 0.2, 0.3, 0.4)),
    ("[0, 0.5, 1, 1]", (0.0, 0.5, 1.0, 1.0)),
    ("[0.3, 0.4, 0.1, 0.2]", (0.1, 0.2, 0.3, 0.4)),            # swapped corners
    ("[-0.2, 0.5, 1.3, 7]", (0.0, 0.5, 1.0, 1.0)),             # out of range: clipped
    ("[10%, 20%, 30%, 40%]", (1.0, 1.0, 1.0, 1.0)),            # units not guessed: clipped
    ("[120, 0.5, 640, 0.75]", (1.0, 0.5, 1.0, 0.75)),          # pixels: clipped
    ("[[0.1, 0.2, 0.3, 0.4]]", (0.1, 0.2, 0.3, 0.4)),
    ("[0.1; 0.2; 0.3; 0.4]", (0.1, 0.2, 0.3, 0.4)),
    ("[0.1 0.2 0.3 0.4]", (0.1, 0.2, 0.3, 0.4)),
    ("[0.1, 0.2, 0.3, 0.4,]]]. more text", (0.1, 0.2, 0.3, 0.4)),
    ("[.1, .2, 1., 1.]", (0.1, 0.2, 1.0, 1.0)),
])
def test_parse_box_variants(text, expected):
    (box,) = parse_boxes(text)
    assert_box(box, expected)


@pytest.mark.parametrize("text", [
    "[1, 2, 3]", "[0.1, 0.2, 0.3, 0.4, 0.5]", "[0.1, 0.2, 0.3]", "[]", "[a, b, c, d]",
    "[0.10.2, 0.3, 0.4]", "(0.1, 0.2, 0.3, 0.4)", "{0.1, 0.2, 0.3, 0.4}", "[0.1, 0.2",
])
def test_not_a_box(text):
    assert parse_boxes(text) == []


@pytest.mark.parametrize("text, expected", [
    ("{0.10, 0.25}", (0.10, 0.25)),
    ("{0.71, 1.0}}", (0.71, 1.0)),
    ("{{0.1, 0.2}}", (0.1, 0.2)),
    ("{0.5,0.2}", (0.2, 0.5)),
    ("{0; 1}", (0.0, 1.0)),
    ("{ -3 , 40 } trailing", (0.0, 1.0)),
])
def test_parse_span_variants(text, expected):
    (span,) = parse_spans(text)
    assert span.as_list() == pytest.approx(list(expected))


@pytest.mark.parametrize("text", ["{0.1}", "{0.1, 0.2, 0.3}", "{}", "[0.1, 0.2]"])
def test_not_a_span(text):
    assert parse_spans(text) == []


def test_non_str_input_is_type_error():
    for fn in (parse_boxes, parse_spans, parse_grounding):
        with pytest.raises(TypeError):
            fn(b"[0.1, 0.2, 0.3, 0.4]")  # type: ignore[arg-type]


FRAGMENTS = st.lists(st.sampled_from(
    ["[", "]", "{", "}", "[[", "}}", ",", ";", ".", "-", "+", " ", "\n", "%", "0", "1",
     "0.5", "9", "the dog", "in", "and", "a", ":"]), max_size=60).map("".join)


@settings(max_examples=300)
@given(st.one_of(st.text(), FRAGMENTS))
def test_parsers_never_raise(text):
    boxes, spans, ents = parse_boxes(text), parse_spans(text), parse_grounding(text)
    assert len(ents) == len(boxes) + len(spans)
    for b in boxes:
        assert all(0.0 <= v <= 1.0 for v in b.as_list()) and b.x1 <= b.x2 and b.y1 <= b.y2
    for s in spans:
        assert 0.0 <= s.start <= s.end <= 1.0
    for e in ents:
        assert 0 <= e.start < e.end <= len(text)
        assert (e.box is None) != (e.span is None)
    assert parse_boxes(replace_boxes(text, lambda b: b)) == boxes


# --- phrases -------------------------------------------------------------------
def phrases(text):
    return [e.phrase for e in parse_grounding(text)]


@pytest.mark.parametrize("text, expected", [
    ("The girl is sitting on the bed[0.0, 0.289, 1.0, 1.0] and reading a book"
     "[0.024, 0.488, 0.982, 0.505].", ["the bed", "a book"]),
    ("A dog[0.1, 0.2, 0.5, 0.9] chases a cat[0.6, 0.5, 0.9, 0.8].", ["A dog", "a cat"]),
    ("{0.10, 0.20}", [""]),
    ("[0.1, 0.2, 0.3, 0.4] is here", [""]),
    ("The baby stretches in {0.16, 0.36}.", ["The baby stretches"]),
    ("The man speaks during {0.1, 0.3} and then the dog barks from {0.5,0.7}.",
     ["The man speaks", "the dog barks"]),
    ("The source of this sound is the dog[0.2, 0.3, 0.6, 0.9].", ["the dog"]),
    ("Look, a red car[0.1, 0.1, 0.4, 0.3]! People[0.5, 0.5, 0.9, 0.9]", ["a red car", "People"]),
    ("It costs 3.5 dollars and the cup[0.1, 0.2, 0.3, 0.4]", ["the cup"]),
    ("the cat is on[0.1, 0.2, 0.3, 0.4]", ["the cat"]),
    ("a man in a red shirt[0.1, 0.2, 0.3, 0.4]", ["a red shirt"]),  # documented limit
])
def test_phrases(text, expected):
    assert phrases(text) == expected


def test_grounding_order_and_offsets():
    text = "A dog[0.1, 0.2, 0.5, 0.9] barks in {0.20, 0.40}; a cat[0.6,0.5,0.9,0.8]"
    ents = parse_grounding(text)
    assert [(e.box is not None, e.span is not None) for e in ents] == [
        (True, False), (False, True), (True, False)]
    assert text[ents[0].start:ents[0].end] == "[0.1, 0.2, 0.5, 0.9]"
    assert text[ents[1].start:ents[1].end] == "{0.20, 0.40}"
    assert ents[1].phrase == "barks" and ents[2].phrase == "a cat"
    assert ents[1].span == Span(0.2, 0.4)


# --- coordinate frames ---------------------------------------------------------
def test_whole_image_to_square_hand_computed():
    assert_box(original_to_square(Box(0, 0, 1, 1), 640, 480), (0, 0.125, 1, 0.875))
    assert_box(original_to_square(Box(0, 0, 1, 1), 300, 900), (1 / 3, 0, 2 / 3, 1))
    # odd padding: side 101, offset (101 - 100) // 2 = 0, as PIL's paste would place it
    assert_box(original_to_square(Box(0, 0, 1, 1), 101, 100), (0, 0, 1, 100 / 101))
    assert_box(square_to_original(Box(0, 0, 1, 1), 640, 480), (0, 0, 1, 1))  # clipped
    assert_box(square_to_original(Box(0.25, 0.125, 0.5, 0.5), 640, 480),
               (0.25, 0, 0.5, 240 / 480))


@pytest.mark.parametrize("w, h", [(640, 480), (300, 900), (1, 1000), (1000, 1), (512, 512)])
@given(x1=unit, y1=unit, x2=unit, y2=unit)
def test_square_round_trip(w, h, x1, y1, x2, y2):
    box = Box(x1, y1, x2, y2)
    back = square_to_original(original_to_square(box, w, h), w, h)
    assert back.to_pixels(w, h) == pytest.approx(box.to_pixels(w, h), abs=1e-6)
    # and through model text (3 decimals of the square side): within ~half a pixel
    via_text = square_to_original(parse_boxes(format_box(original_to_square(box, w, h)))[0], w, h)
    assert via_text.to_pixels(w, h) == pytest.approx(box.normalized().to_pixels(w, h),
                                                     abs=0.0005 * max(w, h) + 1e-6)


@pytest.mark.parametrize("w, h, name", [(0, 10, "width"), (10, -1, "height")])
def test_bad_sizes(w, h, name):
    for fn in (original_to_square, square_to_original):
        with pytest.raises(ValueError, match=name):
            fn(Box(0, 0, 1, 1), w, h)


def test_replace_boxes_converts_prompt():
    prompt = "What is in [0, 0, 1, 1]? And {0.1, 0.2} stays."
    out = replace_boxes(prompt, lambda b: original_to_square(b, 640, 480))
    assert out == "What is in [0.000, 0.125, 1.000, 0.875]? And {0.1, 0.2} stays."
    assert replace_boxes("no boxes [1, 2, 3]", lambda b: b) == "no boxes [1, 2, 3]"


# --- time ----------------------------------------------------------------------
def test_seconds_conversion():
    assert span_to_seconds(Span(0.1, 0.5), 20.0) == pytest.approx((2.0, 10.0))
    assert seconds_to_span(2.0, 10.0, 20.0).as_list() == pytest.approx([0.1, 0.5])
    assert seconds_to_span(-5.0, 30.0, 20.0).as_list() == [0.0, 1.0]
    for bad in (0, -1):
        with pytest.raises(ValueError, match="duration"):
            span_to_seconds(Span(0, 1), bad)
        with pytest.raises(ValueError, match="duration"):
            seconds_to_span(0, 1, bad)


# --- IoU -----------------------------------------------------------------------
def test_box_iou_hand_cases():
    a = Box(0, 0, 0.5, 0.5)
    assert box_iou(a, a) == pytest.approx(1.0)
    assert box_iou(a, Box(0.6, 0.6, 1, 1)) == 0.0
    assert box_iou(a, Box(0.5, 0, 1, 0.5)) == 0.0  # touching edges
    # shifted by half its width: inter = 1/2 of each box, union = 3/2 of one -> 1/3
    assert box_iou(a, Box(0.25, 0, 0.75, 0.5)) == pytest.approx(1 / 3)
    assert box_iou(a, Box(0, 0, 0.5, 0.25)) == pytest.approx(0.5)  # contained half
    assert box_iou((0.5, 0.5, 0, 0), [0, 0, 0.5, 0.5]) == pytest.approx(1.0)
    assert box_iou(Box(0.2, 0.2, 0.2, 0.2), Box(0.2, 0.2, 0.2, 0.2)) == 0.0


def test_temporal_iou_hand_cases():
    assert temporal_iou(Span(0.1, 0.5), Span(0.1, 0.5)) == pytest.approx(1.0)
    assert temporal_iou((0, 1), (2, 3)) == 0.0
    assert temporal_iou((0, 10), (5, 15)) == pytest.approx(5 / 15)  # seconds
    assert temporal_iou((0, 4), (1, 2)) == pytest.approx(0.25)
    assert temporal_iou((3, 3), (3, 3)) == 0.0
    assert temporal_iou(Span(0.5, 0.0), (0.0, 0.25)) == pytest.approx(0.5)


def test_one_iou_rule_everywhere_reversed_corners_put_in_order():
    """grounding, eval metrics and the synthetic baselines give the same IoU, reversed input included."""
    import numpy as np

    from groundinggpt.data.synthetic import baselines
    from groundinggpt.eval import metrics
    from groundinggpt.grounding import accuracy_at, box_iou_array, span_iou_array

    rng = np.random.default_rng(0)
    boxes_a, boxes_b = rng.random((50, 4)), rng.random((40, 4))  # about half have reversed corners
    spans_a, spans_b = rng.random((50, 2)), rng.random((40, 2))
    box_matrix = baselines._box_iou_matrix(boxes_a, boxes_b)
    span_matrix = baselines._span_iou_matrix(spans_a, spans_b)
    assert box_matrix.shape == (50, 40) and np.array_equal(box_matrix, box_iou_array(boxes_a[:, None], boxes_b[None]))
    for i in range(0, 50, 7):
        for j in range(0, 40, 5):
            expected = box_iou(Box(*boxes_a[i]).normalized(), Box(*boxes_b[j]).normalized())
            assert box_iou(boxes_a[i], boxes_b[j]) == expected == metrics.box_iou(boxes_a[i], boxes_b[j])
            assert box_matrix[i, j] == expected
            t = temporal_iou(Span(*spans_a[i]).normalized(), Span(*spans_b[j]).normalized())
            assert temporal_iou(spans_a[i], spans_b[j]) == t == metrics.temporal_iou(spans_a[i], spans_b[j])
            assert span_matrix[i, j] == t
    assert float(span_iou_array([5, 3], [2, 6])) == pytest.approx(0.5)
    assert accuracy_at([0.5, 0.49, 1.0], 0.5) == pytest.approx(200 / 3) and accuracy_at([], 0.5) == 0.0
    assert metrics.rec_accuracy([(0.5, 0.5, 0, 0), None], [(0, 0, 0.5, 0.5)] * 2)["accuracy"] == 50.0

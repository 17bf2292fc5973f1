"""Drawing boxes and timelines: checked by pixel values."""

from __future__ import annotations

import pytest
from PIL import Image

from groundinggpt.grounding import Box
from groundinggpt.processor import GroundedOutput
from groundinggpt.serve.draw import PALETTE, draw_boxes, draw_grounding, draw_timeline

WHITE = (255, 255, 255)


def test_box_outline_has_box_colour_at_its_edges_and_not_inside():
    img = Image.new("RGB", (200, 100), WHITE)
    out = draw_boxes(img, [Box(0.1, 0.2, 0.6, 0.9)], labels=None, width=2)
    # x1 = 20, y1 = 20, x2 = 120, y2 = 90 in pixels
    for xy in [(20, 50), (21, 50), (120, 50), (70, 90), (70, 89)]:
        assert out.getpixel(xy) == PALETTE[0], xy
    assert out.getpixel((70, 55)) == WHITE  # an outline, not a filled box
    assert out.getpixel((5, 5)) == WHITE
    assert img.getpixel((20, 50)) == WHITE  # the input is untouched


def test_pixel_boxes_colours_and_labels():
    img = Image.new("RGB", (200, 100), WHITE)
    out = draw_boxes(img, [(10, 40, 50, 90), [100, 30, 190, 95]], ["a cat", "a dog"], relative=False, width=1)
    assert out.getpixel((10, 60)) == PALETTE[0]
    assert out.getpixel((190, 60)) == PALETTE[1]
    # the label tag sits above the box's top-left corner, filled with the box colour
    tag = [out.getpixel((x, y)) for x in range(100, 140) for y in range(15, 30)]
    assert PALETTE[1] in tag and WHITE in tag  # tag fill and its (white) text


def test_boxes_outside_the_image_are_clipped_and_corner_order_is_free():
    img = Image.new("RGB", (50, 50), WHITE)
    out = draw_boxes(img, [[1.2, 1.5, 0.5, 0.5]], width=1)
    assert out.getpixel((49, 30)) == PALETTE[0]
    assert out.getpixel((25, 30)) == PALETTE[0]
    with pytest.raises(ValueError, match="4 numbers"):
        draw_boxes(img, [[0.1, 0.2, 0.3]])


def test_draw_grounding_uses_phrases_and_only_boxes():
    from groundinggpt.grounding import parse_grounding

    text = "The cat[0.1, 0.1, 0.5, 0.5] sleeps {0.2, 0.4}."
    out = GroundedOutput(text, parse_grounding(text), image_size=(100, 100), duration=10.0)
    drawn = draw_grounding(Image.new("RGB", (100, 100), WHITE), out)
    assert drawn.getpixel((10, 30)) == PALETTE[0]


def test_timeline_bar_covers_the_span_in_seconds():
    tl = draw_timeline([(2.0, 6.0), (9.0, 9.0)], duration=10.0, labels=["runs", "stops"], width=420)
    margin, row = 10, 26
    span_w = 420 - 2 * margin
    y = margin + row // 2 + 8  # below the label text
    x_in = int(margin + span_w * 0.5)
    assert tl.getpixel((x_in, y)) == PALETTE[0]
    assert tl.getpixel((int(margin + span_w * 0.1), y)) != PALETTE[0]  # 1 s: before the span
    assert tl.getpixel((int(margin + span_w * 0.7), y)) != PALETTE[0]  # 7 s: after it
    # an instant still shows, on the second row
    assert tl.getpixel((int(margin + span_w * 0.9) + 1, y + row)) == PALETTE[1]
    assert tl.size[0] == 420
    with pytest.raises(ValueError):
        draw_timeline([(0, 1)], duration=0)

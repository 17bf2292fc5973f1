"""Every picture the project draws, in one place with one set of colours.

- Grounded answers (PIL, for the terminal chat's ``/save`` and the web page):
  :func:`draw_boxes` / :func:`draw_grounding` put labelled boxes on an image,
  :func:`draw_timeline` puts time spans on a timeline. Boxes come in *relative*
  coordinates of the original image (what :class:`GroundedOutput.boxes` holds) or in
  pixels; spans in seconds (``GroundedOutput.spans_seconds``).
- Evaluation examples (matplotlib, ``examples.png``): :func:`draw_examples` shows
  predicted boxes / spans in :data:`PRED_COLOUR` and the ground truth in
  :data:`TRUTH_COLOUR`, so a reader sees at a glance whether a model is off by a frame
  (a coordinate-frame bug), always answers the same box (a collapsed model) or is wrong.
- Metric bars (matplotlib, the quickstart's ``metrics.png``): :func:`bar_chart`; curves
  against a count with a target per curve (the quickstart's ``curve.png``): :func:`line_chart`.

matplotlib is imported only when a matplotlib picture is drawn, always with the file-only
``Agg`` backend.

Example:
    >>> from PIL import Image
    >>> img = draw_boxes(Image.new("RGB", (100, 50), "white"), [[0.1, 0.2, 0.5, 0.8]], ["a cat"])
    >>> img.getpixel((10, 25)) == PALETTE[0]
    True
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from .grounding import Box

__all__ = ["PALETTE", "PRED_COLOUR", "TRUTH_COLOUR", "draw_boxes", "draw_grounding", "draw_timeline", "colour",
           "draw_examples", "bar_chart", "line_chart"]

PRED_COLOUR = "#e8590c"  # orange: what the model said
TRUTH_COLOUR = "#2b8a3e"  # green: the annotation (and a target)

# Saturated colours that stay readable on photos and on a white timeline; the first
# one is also the colour tests look for.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (128, 128, 0), (0, 128, 128), (170, 110, 40),
)


def colour(i: int) -> tuple[int, int, int]:
    """The ``i``-th palette colour (cycling)."""
    return PALETTE[i % len(PALETTE)]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:  # Pillow >= 10.1 ships a scalable default font
        return ImageFont.load_default(size)
    except TypeError:  # older Pillow: fixed bitmap font
        return ImageFont.load_default()


def _to_pixels(box: Any, width: int, height: int, relative: bool) -> tuple[float, float, float, float]:
    if isinstance(box, Box):
        values = box.as_list()
    else:
        values = [float(v) for v in box]
        if len(values) != 4:
            raise ValueError(f"a box needs 4 numbers (x1, y1, x2, y2), got {len(values)}")
    x1, y1, x2, y2 = values
    if relative:
        x1, x2, y1, y2 = x1 * width, x2 * width, y1 * height, y2 * height
    # Corners in any order, clipped to the picture so the outline stays visible.
    x1, x2 = sorted((min(max(x1, 0), width - 1), min(max(x2, 0), width - 1)))
    y1, y2 = sorted((min(max(y1, 0), height - 1), min(max(y2, 0), height - 1)))
    return x1, y1, x2, y2


def _label(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, fill: tuple[int, int, int],
           font: Any, bounds: tuple[int, int]) -> None:
    """A filled tag with white text, above the box when there is room, else inside it."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 6, bottom - top + 4
    x, y = xy
    y = y - h if y - h >= 0 else y
    x = min(max(x, 0), max(bounds[0] - w, 0))
    draw.rectangle((x, y, x + w, y + h), fill=fill)
    draw.text((x + 3 - left, y + 2 - top), text, fill=(255, 255, 255), font=font)


def draw_boxes(image: Image.Image, boxes: Sequence[Any], labels: Sequence[str] | None = None, *,
               relative: bool = True, width: int | None = None,
               colours: Sequence[tuple[int, int, int]] | None = None) -> Image.Image:
    """Draw box outlines with labels on a copy of ``image``.

    Args:
        image: any PIL image (converted to RGB).
        boxes: :class:`~groundinggpt.grounding.Box` objects or ``(x1, y1, x2, y2)`` sequences.
        labels: one label per box (``None`` or ``""`` for none).
        relative: boxes are fractions of width/height (``True``) or pixels (``False``).
        width: outline width in pixels (default: ~0.6 % of the longer side, at least 2).
        colours: one RGB colour per box (default: :data:`PALETTE` in order).

    Returns:
        A new RGB image; the input is left untouched.
    """
    out = image.convert("RGB").copy()
    W, H = out.size
    line = width or max(2, round(max(W, H) / 160))
    font = _font(max(10, min(W, H) // 20))
    draw = ImageDraw.Draw(out)
    labels = list(labels or [])
    # Outlines first, then all labels, so a later box's outline never hides a label.
    placed = []
    for i, box in enumerate(boxes):
        x1, y1, x2, y2 = _to_pixels(box, W, H, relative)
        fill = colours[i] if colours else colour(i)
        draw.rectangle((x1, y1, x2, y2), outline=fill, width=line)
        placed.append(((x1, y1), fill, labels[i] if i < len(labels) else ""))
    for xy, fill, text in placed:
        if text:
            _label(draw, xy, text, fill, font, (W, H))
    return out


def draw_grounding(image: Image.Image, output: Any) -> Image.Image:
    """Draw a :class:`~groundinggpt.processor.GroundedOutput`'s boxes, phrases as labels."""
    ents = [e for e in output.entities if e.box is not None]
    return draw_boxes(image, [e.box for e in ents], [e.phrase or f"box {i + 1}" for i, e in enumerate(ents)])


def draw_timeline(spans: Sequence[Sequence[float]], duration: float, labels: Sequence[str] | None = None, *,
                  width: int = 640, row_height: int = 26) -> Image.Image:
    """Render time spans (seconds) as coloured bars over a ``0 … duration`` axis.

    Args:
        spans: ``(start, end)`` pairs in seconds (order of the two does not matter).
        duration: length of the medium in seconds (> 0).
        labels: one label per span, drawn on its bar.
        width: image width in pixels.
        row_height: height of one span's row.

    Returns:
        An RGB image: one row per span, then a time axis with ticks in seconds.
    """
    if not duration or duration <= 0:
        raise ValueError(f"duration must be > 0 seconds, got {duration!r}")
    labels = list(labels or [])
    margin, axis_h = 10, 28
    rows = max(len(spans), 1)
    img = Image.new("RGB", (width, margin + rows * row_height + axis_h), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = _font(12)
    span_w = width - 2 * margin

    def x_of(t: float) -> float:
        return margin + span_w * min(max(t / duration, 0.0), 1.0)

    for i, (a, b) in enumerate(spans):
        a, b = sorted((float(a), float(b)))
        top = margin + i * row_height
        fill = colour(i)
        draw.rectangle((margin, top + 3, width - margin, top + row_height - 3), fill=(235, 235, 235))
        # At least 2 px wide, so an instant (a == b) is still visible.
        draw.rectangle((x_of(a), top + 3, max(x_of(b), x_of(a) + 2), top + row_height - 3), fill=fill)
        text = f"{labels[i] + ': ' if i < len(labels) and labels[i] else ''}{a:.1f}-{b:.1f} s"
        # A white halo keeps the label readable whether it lies over the bar or not.
        draw.text((margin + 4, top + 6), text, fill=(0, 0, 0), font=font, stroke_width=2, stroke_fill=(255, 255, 255))
    axis_y = margin + rows * row_height + 4
    draw.line((margin, axis_y, width - margin, axis_y), fill=(0, 0, 0), width=1)
    step = _tick_step(duration)
    t = 0.0
    while t <= duration + 1e-9:
        x = x_of(t)
        draw.line((x, axis_y, x, axis_y + 5), fill=(0, 0, 0))
        label = f"{t:g}"
        tw = draw.textlength(label, font=font)
        draw.text((min(max(x - tw / 2, 0), width - tw), axis_y + 7), label, fill=(0, 0, 0), font=font)
        t += step
    return img


def _tick_step(duration: float) -> float:
    """A 1-2-5 step giving at most ~10 ticks."""
    step = 10 ** int(f"{duration / 10:e}".split("e")[1])
    for mult in (1, 2, 5, 10):
        if duration / (step * mult) <= 10:
            return step * mult
    return step * 10


# ---- matplotlib pictures (files only) ---------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt


def _caption(sample: Any) -> str:
    e = sample.extra
    return str(e.get("expression") or e.get("sentence") or e.get("text") or e.get("class") or "")


def _boxes(target: Any) -> list[list[float]]:
    if target and isinstance(target[0], (list, tuple)):
        return [list(b) for b in target]
    return [list(target)] if target else []


def _draw_box_panel(ax: Any, sample: Any, record: dict[str, Any], image_path: str) -> None:
    from matplotlib.patches import Rectangle
    from PIL import ImageOps

    with Image.open(image_path) as img:
        img = ImageOps.exif_transpose(img).convert("RGB")
    w, h = img.size
    ax.imshow(img)
    for box in _boxes(sample.target):
        x1, y1, x2, y2 = box[0] * w, box[1] * h, box[2] * w, box[3] * h
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=2, ec=TRUTH_COLOUR))
    pred = record.get("parsed")
    if isinstance(pred, list) and len(pred) == 4:
        x1, y1, x2, y2 = pred[0] * w, pred[1] * h, pred[2] * w, pred[3] * h
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=2, ec=PRED_COLOUR, ls="--"))
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_span_panel(ax: Any, sample: Any, record: dict[str, Any]) -> None:
    # Charades records carry seconds; synthetic spans stay fractions of the clip.
    if record.get("truth_seconds") is not None:
        truth, pred, end, unit = record["truth_seconds"], record.get("seconds"), record["duration"], "seconds"
    else:
        truth, pred, end, unit = sample.target, record.get("parsed"), 1.0, "fraction of the clip"
    ax.barh(1, truth[1] - truth[0], left=truth[0], height=0.6, color=TRUTH_COLOUR)
    if isinstance(pred, list) and len(pred) == 2:
        ax.barh(0, pred[1] - pred[0], left=pred[0], height=0.6, color=PRED_COLOUR)
    ax.set_xlim(0, end)
    ax.set_ylim(-0.6, 1.6)
    ax.set_yticks([0, 1], ["pred", "truth"], fontsize=7)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel(unit, fontsize=7)


def draw_examples(task: Any, samples: Sequence[Any], records: Sequence[dict[str, Any]], path: str | os.PathLike,
                  limit: int = 12) -> int:
    """Draw up to ``limit`` evaluation examples into a PNG grid; returns how many were drawn (0: no file).

    Box samples need their image on disk; samples whose image is missing are skipped.
    """
    chosen = []
    for sample, record in zip(samples, records):
        kind = task.example_kind(sample)
        if kind == "box":
            image = sample.first_path("image")
            if image and os.path.isfile(image):
                chosen.append((kind, sample, record, image))
        elif kind == "span" and record.get("status") != "error":
            chosen.append((kind, sample, record, None))
        if len(chosen) >= limit:
            break
    if not chosen:
        return 0
    plt = _pyplot()
    from matplotlib.patches import Patch

    cols = min(4, len(chosen))
    rows = math.ceil(len(chosen) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(chosen):]:
        ax.axis("off")
    for ax, (kind, sample, record, image) in zip(axes.flat, chosen):
        if kind == "box":
            _draw_box_panel(ax, sample, record, image)
        else:
            _draw_span_panel(ax, sample, record)
        score = record.get("score")
        label = getattr(task, "score_label", "IoU")
        head = f"{sample.id}" + (f"  {label} {score:.2f}" if isinstance(score, (int, float)) else "")
        if record.get("status") not in ("ok", None):
            head += f"  [{record['status']}]"
        caption = textwrap.shorten(_caption(sample), 90)
        ax.set_title(head + ("\n" + "\n".join(textwrap.wrap(caption, 38)) if caption else ""), fontsize=7)
    fig.legend(handles=[Patch(color=PRED_COLOUR, label="predicted"), Patch(color=TRUTH_COLOUR, label="truth")],
               loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(Path(path), dpi=100)
    plt.close(fig)
    return len(chosen)


def bar_chart(groups: Sequence[str], series: Sequence[tuple[str, Sequence[float | None], str]],
              targets: Sequence[float | None], path: str | os.PathLike, *, title: str, ylabel: str,
              names: dict[str, str] | None = None) -> Path:
    """Grouped bars (one group per task, one bar per series) with each group's target as a dashed tick.

    Args:
        groups: the x-axis groups (task names).
        series: ``(legend label, one value per group (None draws 0), colour)`` per bar of a group.
        targets: one target per group (None: no tick), drawn in :data:`TRUTH_COLOUR`.
        path: the PNG to write.
        title / ylabel: the chart's title and y label (the y axis runs 0-100).
        names: display names of the groups (defaults to the group names).
    """
    plt = _pyplot()
    names = names or {}
    fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=110)
    width = 0.26
    centre = (len(series) - 1) / 2
    for i, (label, values, colour_) in enumerate(series):
        bars = ax.bar([x + (i - centre) * width for x in range(len(groups))], [v or 0.0 for v in values], width,
                      label=label, color=colour_)
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
    first = True
    for x, target in enumerate(targets):
        if target is None:
            continue
        half = len(series) / 2 * width
        ax.hlines(target, x - half, x + half, colors=TRUTH_COLOUR, linestyles="--", linewidth=1.2,
                  label="target" if first else None)
        first = False
    ax.set_xticks(range(len(groups)), [names.get(g, g) for g in groups], fontsize=8)
    return _save_percent_chart(plt, fig, ax, path, title=title, ylabel=ylabel, legend="upper right")


def _save_percent_chart(plt: Any, fig: Any, ax: Any, path: str | os.PathLike, *, title: str, ylabel: str,
                        legend: str) -> Path:
    """The metric charts' common end: a 0-100 y axis, legend, title, the PNG written and the figure closed."""
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, loc=legend, ncol=2)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def line_chart(xs: Sequence[float], series: Sequence[tuple[str, Sequence[float | None], str]],
               targets: Sequence[float | None], path: str | os.PathLike, *, title: str, xlabel: str,
               ylabel: str) -> Path:
    """One line per series over ``xs``, each with its target as a dashed line of the same colour.

    Args:
        xs: the x positions shared by every series (e.g. samples seen).
        series: ``(legend label, one value per x (None: not measured, left out), colour)``.
        targets: one target per series (None: no line).
        path: the PNG to write.
        title / xlabel / ylabel: the chart's texts (the y axis runs 0-100).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=110)
    for (label, values, colour_), target in zip(series, targets):
        points = [(x, v) for x, v in zip(xs, values) if v is not None]
        ax.plot([x for x, _ in points], [v for _, v in points], marker="o", markersize=4, color=colour_, label=label)
        if target is not None:
            ax.axhline(target, color=colour_, linestyle="--", linewidth=1.0, alpha=0.8,
                       label=f"{label.splitlines()[0]}: target {target:g}")
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
    return _save_percent_chart(plt, fig, ax, path, title=title, ylabel=ylabel, legend="upper left")

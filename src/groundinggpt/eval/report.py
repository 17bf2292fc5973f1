"""Human-readable outputs: ``summary.md`` and the example grid (``examples.png``).

The grid shows predicted boxes / spans in one colour and the ground truth in another,
so a reader sees at a glance whether a model is off by a frame (a coordinate-frame
bug), always answers the same box (a collapsed model) or is simply wrong.
"""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path
from typing import Any

__all__ = ["summary_markdown", "draw_examples", "PRED_COLOUR", "TRUTH_COLOUR"]

PRED_COLOUR = "#e8590c"  # orange: what the model said
TRUTH_COLOUR = "#2b8a3e"  # green: the annotation
_MAX_MISSES_SHOWN = 20


def _fmt(value: Any, digits: int) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def summary_markdown(summary: dict[str, Any], digits: int = 2) -> str:
    """The summary as markdown: a metrics table, the counts and the first misses."""
    lines = [f"# GroundingGPT evaluation: {summary['task']}", ""]
    metrics = summary.get("metrics") or {}
    if metrics:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v, digits)} |" for k, v in metrics.items()]
    else:
        lines.append(f"No metrics: {summary.get('note', 'no samples')}.")
    statuses = summary.get("status_counts", {})
    missed = ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()) if k not in ("ok", "not_judged"))
    scored = f"scored: {statuses.get('ok', 0)}" + (f", not judged: {statuses['not_judged']}"
                                                   if statuses.get("not_judged") else "")
    lines += [
        "",
        f"- samples: {summary['n']}, answered: {summary['answered']}, {scored}, "
        f"misses: {summary['misses']}" + (f" ({missed})" if missed else ""),
        f"- source: {summary['mode']} `{summary['source']}`",
    ]
    if summary.get("prompt"):
        lines.append(f"- prompt: `{summary['prompt']}`")
    if summary.get("mode") == "predictions" and summary.get("boxes_frame"):
        lines.append(f"- boxes in answers relative to the {summary['boxes_frame']} image")
    unknown = summary.get("unknown_prediction_ids")
    if unknown:
        lines.append(f"- {unknown['count']} prediction ids match no sample, e.g. {unknown['examples'][:3]}")
    if summary.get("examples"):
        lines += ["", f"![examples]({summary['examples']})"]
    misses = summary.get("miss_list") or []
    if misses:
        lines += ["", f"## Misses ({len(misses)}; first {min(len(misses), _MAX_MISSES_SHOWN)} shown)", "",
                  "| id | status | detail |", "|---|---|---|"]
        for m in misses[:_MAX_MISSES_SHOWN]:
            detail = m["error"] if "error" in m else f"answer: {m['answer']!r}" if "answer" in m else ""
            detail = detail.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {m['id']} | {m['status']} | {detail} |")
    return "\n".join(lines) + "\n"


def _caption(sample) -> str:
    e = sample.extra
    return str(e.get("expression") or e.get("sentence") or e.get("text") or e.get("class") or "")


def _boxes(target: Any) -> list[list[float]]:
    if target and isinstance(target[0], (list, tuple)):
        return [list(b) for b in target]
    return [list(target)] if target else []


def _draw_box_panel(ax, sample, record, image_path: str) -> None:
    from matplotlib.patches import Rectangle
    from PIL import Image, ImageOps

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


def _draw_span_panel(ax, sample, record) -> None:
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


def draw_examples(task, samples, records, path: str | os.PathLike, limit: int = 12) -> int:
    """Draw up to ``limit`` examples into a PNG grid; returns how many were drawn (0: no file).

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
    import matplotlib

    matplotlib.use("Agg", force=False)  # files only: never needs a display
    import matplotlib.pyplot as plt
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

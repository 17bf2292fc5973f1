"""Human-readable outputs: ``summary.md`` here, the example grid (``examples.png``) drawn by
:func:`groundinggpt.draw.draw_examples` (re-exported), where every picture of the project is drawn.
"""

from __future__ import annotations

from typing import Any

from ..draw import PRED_COLOUR, TRUTH_COLOUR, draw_examples

__all__ = ["summary_markdown", "draw_examples", "PRED_COLOUR", "TRUTH_COLOUR"]

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

"""Statistics of a built stage file: counts per source / task / modality, token lengths,
box areas and span lengths — as ``stats.json``, ``stats.md`` and PNG histograms.

Box areas are fractions of the image (``(x2-x1)(y2-y1)`` of every box in the
assistant's answers); span lengths are fractions of the duration. The token-length
histogram counts the tokens of all the text of a sample with the tokenizer given (name
or folder for ``AutoTokenizer``; none given: left out).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from ..grounding import parse_boxes, parse_spans
from ..modalities import MEDIA_KINDS

__all__ = ["collect_stats", "write_stats"]


def _text(sample: dict[str, Any], role: str | None = None) -> str:
    parts = []
    for m in sample["messages"]:
        if role is not None and m["role"] != role:
            continue
        c = m["content"]
        parts.append(c if isinstance(c, str) else " ".join(p.get("text", "") for p in c if p.get("type") == "text"))
    return "\n".join(parts)


def collect_stats(path: Path, tokenizer: Any = None) -> dict[str, Any]:
    """Counts and distributions of one JSONL file (streamed)."""
    tok = None
    if tokenizer is not None:
        if isinstance(tokenizer, str):
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(tokenizer)
        else:
            tok = tokenizer
    per_source, per_task, per_modality = Counter(), Counter(), Counter()
    token_lengths, box_areas, span_lengths = [], [], []
    n = 0
    with path.open(encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            n += 1
            per_source[d.get("source") or "?"] += 1
            per_task[d["task"]] += 1
            kinds = sorted({p["type"] for m in d["messages"] if isinstance(m["content"], list)
                            for p in m["content"] if p.get("type") in MEDIA_KINDS})
            per_modality["+".join(kinds) or "text"] += 1
            answers = _text(d, "assistant")
            box_areas.extend(round(b.area, 6) for b in parse_boxes(answers))
            span_lengths.extend(round(s.length, 6) for s in parse_spans(answers))
            if tok is not None:
                token_lengths.append(len(tok(_text(d), add_special_tokens=False)["input_ids"]))
    out = {"samples": n, "per_source": dict(per_source.most_common()), "per_task": dict(per_task.most_common()),
           "per_modality": dict(per_modality.most_common()), "boxes": len(box_areas), "spans": len(span_lengths)}
    for key, values in (("box_area", box_areas), ("span_length", span_lengths), ("tokens", token_lengths)):
        if values:
            v = sorted(values)
            out[key] = {"min": v[0], "median": v[len(v) // 2], "mean": round(sum(v) / len(v), 6), "max": v[-1]}
    out["_values"] = {"box_area": box_areas, "span_length": span_lengths, "tokens": token_lengths}
    return out


def _bar(counts: dict[str, int], title: str, file: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.35 * max(3, len(counts)) + 1))
    names = list(counts)[::-1]
    ax.barh(names, [counts[k] for k in names])
    ax.set_title(title)
    ax.set_xlabel("samples")
    fig.tight_layout()
    fig.savefig(file, dpi=80)
    plt.close(fig)


def _hist(values: list[float], title: str, xlabel: str, file: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(values, bins=40)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    fig.tight_layout()
    fig.savefig(file, dpi=80)
    plt.close(fig)


def write_stats(path: Path, out: Path, per_source: dict[str, dict[str, Any]], *, stage: int,
                tokenizer: Any = None) -> dict[str, Any]:
    """Write ``stats.json``, ``stats.md`` and the PNGs of ``path`` into ``out``; return the stats."""
    stats = collect_stats(path, tokenizer)
    values = stats.pop("_values")
    stats["stage"] = stage
    stats["conversion"] = per_source
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    pngs = []
    for key, title in (("per_source", "samples per source"), ("per_task", "samples per task"),
                       ("per_modality", "samples per modality")):
        if stats[key]:
            name = f"{key}.png"
            _bar(stats[key], f"stage {stage}: {title}", out / name)
            pngs.append(name)
    for key, title, xlabel in (("tokens", "token length", "tokens per sample"),
                               ("box_area", "box area", "fraction of the image"),
                               ("span_length", "span length", "fraction of the duration")):
        if values[key]:
            name = f"{key}.png"
            _hist(values[key], f"stage {stage}: {title}", xlabel, out / name)
            pngs.append(name)
    md = [f"# Stage {stage} training data", "", f"{stats['samples']} samples in `{path.name}`.", "",
          "| source | converted | kept | rejected | adjusted | skipped |", "|---|---|---|---|---|---|"]
    for name, d in per_source.items():
        fmt = lambda c: ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "0"  # noqa: E731
        md.append(f"| {name} | {d['written']} | {d['kept']} | {fmt(d['rejected'])} | {fmt(d['fixed'])} | {fmt(d['skipped'])} |")
    for key, title in (("per_task", "task"), ("per_modality", "modality")):
        md += ["", f"| {title} | samples |", "|---|---|"] + [f"| {k} | {v} |" for k, v in stats[key].items()]
    for key in ("tokens", "box_area", "span_length"):
        if key in stats:
            s = stats[key]
            md.append(f"\n{key}: min {s['min']}, median {s['median']}, mean {s['mean']}, max {s['max']}")
    md += [""] + [f"![{p}]({p})" for p in pngs]
    (out / "stats.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    return stats

#!/usr/bin/env python
"""How fast does an LLM learn to pick the named object among several? (REC, multi-object)

The quickstart's REC stays near the floor because the miniature LLM does not learn, in
the steps a CPU affords, to *select* the object a question names among the image tokens
(docs/quickstart.md, "What it measures today"). This script measures that learning curve
in isolation: stage 2 on REC alone, the LLM and the image adapter trained, periodic greedy
evaluation on 300 held-out questions (Acc@0.5), one JSON line per evaluation.

Image tokens (``--features``):

- ``tower``: the committed miniature tower's patch features through the usual MLP adapter
  (the quickstart's own input);
- ``word``: each patch token is the LLM's *own input embeddings* of the colour, shape and
  size words of what covers the patch, plus a learned position embedding and the patch's
  4×4 coverage — ideal, already-aligned tokens, so only the selection is left to learn.

Runs on whatever device is there (a GPU is ~50x faster)::

    python scripts/diagnose_selection.py --features word --steps 600                 # CPU, ~6 min
    python scripts/diagnose_selection.py --features tower --question-first --batch 128 --lr 3e-4 --budget 230
    python scripts/diagnose_selection.py --features word --llm 512x6 --batch 128 --lr 3e-4   # wider, random-init LLM

The measured curves are in docs/quickstart.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

PATCH_GRID = 64  # 8x8 patches of the 64-px tower
COVERAGE = 16    # 4x4 sub-cells per patch (miniature.corpus.patch_targets)


def build_model(llm: str, seed: int = 0, parts: str | None = None):
    """The miniature model: ``llm`` is ``pretrained`` (the LLM of ``parts``, default the committed parts),
    ``random`` or ``WIDTHxLAYERS`` (random, 64-dim heads)."""
    from groundinggpt.miniature import build_miniature, miniature_config

    if llm == "pretrained":
        return build_miniature(parts, seed=seed)
    if llm == "random":
        return build_miniature(seed=seed, load=("vision", "audio"))
    try:
        width, layers = (int(v) for v in llm.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--llm: expected 'pretrained', 'random' or WIDTHxLAYERS such as 512x6, got {llm!r}") from None
    if width % 64:
        raise SystemExit(f"--llm: the width must be a multiple of 64 (64-dim heads), got {width}")
    text = miniature_config().text_config.to_dict()
    text.update(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
                num_attention_heads=width // 64, num_key_value_heads=width // 64)
    return build_miniature(seed=seed, load=("vision", "audio"), text_config=text)


class WordTokenAdapter(nn.Module):
    """``[..., 64, D + 16]`` word-embedding sums + coverage → tokens: x + learned position + coverage."""

    def __init__(self, width: int):
        super().__init__()
        self.position = nn.Parameter(torch.randn(PATCH_GRID, width) * 0.02)
        self.coverage = nn.Linear(COVERAGE, width)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features[..., :-COVERAGE] + self.position + self.coverage(features[..., -COVERAGE:])


def word_vectors(model, tokenizer) -> dict[str, torch.Tensor]:
    """Per attribute, a table ``[1 + values, D]``: row 0 (no object) is zero, row i the mean
    input embedding of the i-th value's word pieces (``patch_targets`` indices are 1-based)."""
    from groundinggpt.data.synthetic.world import COLOURS, SHAPES, SIZES

    table = model.language_model.get_input_embeddings().weight.detach()

    def word(w: str) -> torch.Tensor:
        return table[tokenizer(" " + w, add_special_tokens=False)["input_ids"]].mean(0)

    zero = torch.zeros(table.shape[1])
    return {name: torch.stack([zero] + [word(v) for v in values])
            for name, values in (("colour", COLOURS), ("shape", SHAPES), ("size", SIZES))}


def word_features(scene, vectors: dict[str, torch.Tensor]) -> torch.Tensor:
    """``[64, D + 16]``: sum of the word vectors of what covers each patch, then its coverage."""
    from groundinggpt.miniature.corpus import patch_targets

    t = patch_targets(scene)
    words = vectors["colour"][t["colour"]] + vectors["shape"][t["shape"]] + vectors["size"][t["size"]]
    return torch.cat([words, torch.from_numpy(t["cells"]).float()], -1)


def make_split(n: int, seed: int, test: bool, objects: tuple[int, int], features: str, model, vectors, device):
    """``n`` REC records on fresh scenes and their image features ``[n, 64, C]``."""
    from groundinggpt.data.synthetic.tasks import rec
    from groundinggpt.data.synthetic.world import sample_image_scene
    from groundinggpt.miniature.corpus import normalise_pixels

    rng = np.random.default_rng(seed)
    records, feats, pixels = [], [], []
    for i in range(n):
        scene = sample_image_scene(rng, f"probe-{seed}-{i}", 64, 64, objects)
        records.append(rec(scene, "probe.png", rng, test=test))
        if features == "word":
            feats.append(word_features(scene, vectors))
        else:
            pixels.append(scene.render())
    if features == "word":
        return records, torch.stack(feats)
    x = normalise_pixels(np.stack(pixels))
    with torch.no_grad():
        out = [model.encode_images(x[i:i + 512].to(device)).float().cpu() for i in range(0, len(x), 512)]
    return records, torch.cat(out)


def question_first(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The user turn's text before its image (LLaVA's data has both orders)."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = [p for p in content if p.get("type") == "text"] + [p for p in content if p.get("type") != "text"]
        out.append({**m, "content": content})
    return out


def _media_info(kind: str, source: str):
    from groundinggpt.processor import MediaInfo

    return None, MediaInfo(kind="image", original_size=(64, 64))


def encode(records, processor, order) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids``, ``labels`` and ``attention_mask`` for the whole split."""
    from groundinggpt.processor import IGNORE_INDEX

    rows = [processor(order(r.messages), add_generation_prompt=False, padding_side="right", return_labels=True,
                      media_loader=_media_info) for r in records]
    length = max(b["input_ids"].shape[1] for b in rows)
    ids = torch.full((len(rows), length), processor.tokenizer.pad_token_id)
    labels = torch.full((len(rows), length), IGNORE_INDEX)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for k, b in enumerate(rows):
        n = b["input_ids"].shape[1]
        ids[k, :n], labels[k, :n], mask[k, :n] = b["input_ids"][0], b["labels"][0], 1
    return ids, labels, mask


@torch.no_grad()
def evaluate(model, processor, records, features, order, device, autocast) -> tuple[float, list[str]]:
    """Greedy answers to the held-out questions → (Acc@0.5 in %, first three answers)."""
    from groundinggpt.eval.metrics import box_iou
    from groundinggpt.grounding import parse_grounding

    model.eval()
    batch = processor([order(r.messages[:-1]) for r in records], add_generation_prompt=True, padding_side="left",
                      media_loader=_media_info)
    tok = processor.tokenizer
    with autocast():
        out = model.generate(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                             image_features=features.to(device), max_new_tokens=40, do_sample=False,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    answers = [processor.decode(row) for row in out[:, batch["input_ids"].shape[1]:].cpu()]
    hits = 0
    for text, r in zip(answers, records):
        boxes = [e.box for e in parse_grounding(text) if e.box is not None]
        hits += bool(boxes) and box_iou(boxes[0].as_list(), r.meta["box"]) >= 0.5
    model.train()
    return 100.0 * hits / len(records), answers[:3]


def parse_objects(text: str) -> tuple[int, int]:
    """``--objects``: ``"N"`` or ``"MIN-MAX"`` → ``(min, max)``, 1 <= min <= max."""
    try:
        low, high = (int(v) for v in text.split("-")) if "-" in text else (int(text),) * 2
    except ValueError:
        raise SystemExit(f"--objects: expected N or MIN-MAX such as 2-4, got {text!r}") from None
    if not 1 <= low <= high:
        raise SystemExit(f"--objects: expected 1 <= MIN <= MAX, got {text!r}")
    return low, high


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(args.seed)
    rows: list[dict[str, Any]] = []

    def log(**row: Any) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

    started = time.perf_counter()
    model, processor = build_model(args.llm, args.seed, args.parts)
    vectors = word_vectors(model, processor.tokenizer) if args.features == "word" else None
    model.to(device)
    objects = parse_objects(args.objects)
    train_records, train_features = make_split(args.scenes, args.seed + 1, False, objects, args.features, model,
                                               vectors, device)
    test_records, test_features = make_split(args.test, args.seed + 2, True, objects, args.features, model,
                                             vectors, device)
    if args.features == "word":
        model.image_adapter = WordTokenAdapter(model.config.text_config.hidden_size).to(device)
    order = question_first if args.question_first else (lambda m: m)
    ids, labels, mask = (t.to(device) for t in encode(train_records, processor, order))
    train_features = train_features.to(device)
    lengths = mask.sum(1)
    log(event="data", seconds=round(time.perf_counter() - started, 1), scenes=args.scenes, objects=list(objects),
        features=args.features, device=str(device))

    for name, p in model.named_parameters():
        p.requires_grad = name.startswith(("language_model", "image_adapter"))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0, betas=(0.9, 0.98))
    from groundinggpt.precision import bf16_is_fast

    use_bf16 = args.precision == "bf16" or (args.precision == "auto" and bf16_is_fast(device))

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)

    acc, examples = evaluate(model, processor, test_records, test_features, order, device, autocast)
    log(event="eval", step=0, acc=acc, examples=examples)
    picker = torch.Generator().manual_seed(args.seed)
    clock = time.perf_counter()
    warmup = max(1, min(100, args.steps // 10))
    for step in range(1, args.steps + 1):
        idx = torch.randint(0, ids.shape[0], (args.batch,), generator=picker).to(device)
        width = int(lengths[idx].max())
        for group in opt.param_groups:  # linear warmup, then constant: curves stay comparable when cut short
            group["lr"] = args.lr * min(1.0, step / warmup)
        with autocast():
            loss = model(input_ids=ids[idx, :width], attention_mask=mask[idx, :width], labels=labels[idx, :width],
                         image_features=train_features[idx]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        out_of_time = args.budget is not None and time.perf_counter() - clock > args.budget
        if step % args.eval_every == 0 or step == args.steps or out_of_time:
            acc, examples = evaluate(model, processor, test_records, test_features, order, device, autocast)
            log(event="eval", step=step, samples=step * args.batch, acc=acc, loss=round(loss.item(), 4),
                seconds=round(time.perf_counter() - clock, 1), examples=examples)
        if out_of_time:
            break
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--features", choices=("word", "tower"), default="word", help="image tokens (see above)")
    p.add_argument("--llm", default="pretrained", help="'pretrained' (committed), 'random', or WIDTHxLAYERS (random)")
    p.add_argument("--parts", default=None, help="parts folder whose pretrained parts to use (default: the "
                   "committed ones; the tower always comes from it too)")
    p.add_argument("--objects", default="2-4", help="objects per scene: N or MIN-MAX (default 2-4, the world's)")
    p.add_argument("--question-first", action="store_true", help="the question text before the image")
    p.add_argument("--scenes", type=int, default=40000, help="training scenes (one REC question each)")
    p.add_argument("--test", type=int, default=300, help="held-out questions")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="auto: bf16 where the device computes it fast (groundinggpt.precision)")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--budget", type=float, default=None, help="stop after this many seconds of training")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", dest="out", type=Path, default=None, help="also append the JSON lines to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    rows = run(parse_args(argv))
    print("\n| step | samples | Acc@0.5 |\n|---|---|---|")
    for r in rows:
        if r["event"] == "eval":
            print(f"| {r['step']} | {r.get('samples', 0)} | {r['acc']:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

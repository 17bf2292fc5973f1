"""A realistic mixed training set, timed padded (random batches) vs grouped vs packed, against LLaVA.

Used by ``bench/train_throughput.py`` (``--mix``, on by default); runnable alone::

    python bench/mixed_batch.py --samples 64 --batch-size 8 --rounds 3

The set (``--samples`` conversations, fixed seed) at the tiny preset's equal config (64 image
tokens, i.e. ``image_token_pool=1``: LLaVA's config, see train_throughput.py):

======================  =====  ========================================================
kind                    share  LLM tokens (system + question + answer, plus placeholders)
======================  =====  ========================================================
image, grounding Q/A    35 %   64 image tokens + 20-60 text
image, conversation     15 %   64 image tokens + 120-400 text (multi-turn, as LLaVA-Instruct)
video                   15 %   8 video tokens (Q-Former over 8 frames) + 20-120 text
audio                   10 %   4 audio tokens (Q-Former over 3 clips) + 20-120 text
text only               25 %   40-480 text (ShareGPT-like)
======================  =====  ========================================================

Text is random token ids (labels on the answer part only); media are random tensors of the
model's input shapes. Cases, each one pass over the whole set per round, interleaved, rounds
rotating the order; samples/s = set size / median pass time:

``llava-random``
    ``LlavaForConditionalGeneration`` with the same CLIP / LLaMA / projector weights (built by
    ``train_throughput.build_llava``), random batches of ``--batch-size`` padded to their longest.
    LLaVA has no video or audio branch: those samples' placeholder spans are given as ordinary
    text tokens (it computes the same LLM tokens but no encoder: in its favour).
``gg-random``
    GroundingGPT at the same config and batches (its video/audio branches run): today's default.
``gg-grouped``
    ``GroupedSampler(modality_length)`` batches, padded.
``gg-packed``
    the same batches through ``PackingCollator`` (rows of at most the set's longest sample).

Every case runs the stage-2 step (frozen towers, trainable adapters / Q-Formers + LLM, AdamW).
The padding fraction is the share of computed LLM token slots that hold padding.
"""

from __future__ import annotations

import copy
import random
import statistics
import time
from typing import Any

import torch

KINDS = (  # name, share, media kind, text length range
    ("image-qa", 0.35, "image", (20, 60)),
    ("image-conv", 0.15, "image", (120, 400)),
    ("video", 0.15, "video", (20, 120)),
    ("audio", 0.10, "audio", (20, 120)),
    ("text", 0.25, None, (40, 480)),
)


def make_items(model, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` dataset-like items (input_ids / labels / attention_mask + raw media) of the mix above."""
    cfg = model.config
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    tokens = {"image": (cfg.image_token_id, cfg.image_seq_length), "video": (cfg.video_token_id, cfg.video_seq_length),
              "audio": (cfg.audio_token_id, cfg.audio_seq_length)}
    vocab = cfg.text_config.vocab_size
    media_ids = {t for t, _ in tokens.values()}
    text_ids = [i for i in range(4, vocab) if i not in media_ids]
    size = cfg.vision_config.image_size
    a = cfg.audio_config
    kinds = [k for k in KINDS for _ in range(round(k[1] * n))][:n]
    while len(kinds) < n:
        kinds.append(KINDS[0])
    rng.shuffle(kinds)
    items = []
    for i, (name, _, medium, (lo, hi)) in enumerate(kinds):
        text = rng.randint(lo, hi)
        question = max(4, int(text * rng.uniform(0.2, 0.5)))
        answer = text - question
        ids = [1] + rng.choices(text_ids, k=question)
        if medium:
            token, count = tokens[medium]
            at = rng.randint(1, len(ids))
            ids[at:at] = [token] * count
        labels = [-100] * len(ids) + (ans := rng.choices(text_ids, k=answer))
        ids += ans
        item = {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
                "attention_mask": torch.ones(len(ids), dtype=torch.long), "id": f"{name}-{i}", "kind": medium or "text"}
        if medium == "image":
            item["pixel_values"] = torch.randn(1, 3, size, size, generator=gen)
        elif medium == "video":
            item["pixel_values_videos"] = torch.randn(1, cfg.video_config.num_frames, 3, size, size, generator=gen)
        elif medium == "audio":
            item["input_features"] = torch.randn(1, a.num_clips, 1, a.num_mel_bins, a.target_frames, generator=gen)
        items.append(item)
    return items


def for_llava(item: dict[str, Any], model_config) -> dict[str, Any]:
    """LLaVA's view of an item: video/audio placeholders become a plain text id, their media dropped."""
    out = {k: v for k, v in item.items() if k not in ("pixel_values_videos", "input_features")}
    ids = item["input_ids"].clone()
    ids[(ids == model_config.video_token_id) | (ids == model_config.audio_token_id)] = 5
    out["input_ids"] = ids
    return out


class MixCase:
    def __init__(self, name: str, model, batches: list[dict[str, Any]], slots: int, real: int, n_samples: int):
        self.name, self.model, self.batches = name, model.train(), batches
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=1e-4, weight_decay=0.0)
        self.slots, self.real, self.n_samples = slots, real, n_samples
        self.times: list[float] = []

    @property
    def padding(self) -> float:
        return 1 - self.real / self.slots

    def run_pass(self) -> float:
        t = time.perf_counter()
        for batch in self.batches:
            self.opt.zero_grad(set_to_none=True)
            self.model(**batch).loss.backward()
            self.opt.step()
        return time.perf_counter() - t


def _strip(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if k not in ("ids",)}


def build_cases(gg, llava, processor, n: int, batch_size: int, seed: int) -> list[MixCase]:
    from groundinggpt.data.dataset import DataCollator
    from groundinggpt.data.grouping import GroupedSampler
    from groundinggpt.data.packing import PackingCollator

    items = make_items(gg, n, seed)
    real = sum(int(x["input_ids"].shape[0]) for x in items)
    plain = [{k: v for k, v in x.items() if k not in ("id", "kind")} for x in items]
    collate = DataCollator(processor)
    order = list(range(n))
    random.Random(seed + 1).shuffle(order)
    random_batches = [order[k:k + batch_size] for k in range(0, n, batch_size)]
    sampler = GroupedSampler([int(x["input_ids"].shape[0]) for x in items], batch_size,
                             modalities=[x["kind"] for x in items], window=max(1, n // batch_size), seed=seed)
    grouped_batches = sampler.batches()
    longest = max(int(x["input_ids"].shape[0]) for x in items)
    pack = PackingCollator(DataCollator(processor), max_tokens=longest)

    def padded(batches, make=lambda i: plain[i]):
        out = [_strip(collate([make(i) for i in b])) for b in batches]
        return out, sum(int(o["input_ids"].numel()) for o in out)

    llava_batches, llava_slots = padded(random_batches, lambda i: for_llava(plain[i], gg.config))
    gg_random, random_slots = padded(random_batches)
    gg_grouped, grouped_slots = padded(grouped_batches)
    gg_packed = [_strip(pack([plain[i] for i in b])) for b in grouped_batches]
    packed_slots = sum(int(o["input_ids"].numel()) for o in gg_packed)
    gg_copies = [gg] + [copy.deepcopy(gg) for _ in range(2)]
    return [
        MixCase("llava-random", llava, llava_batches, llava_slots, real, n),
        MixCase("gg-random", gg_copies[0], gg_random, random_slots, real, n),
        MixCase("gg-grouped", gg_copies[1], gg_grouped, grouped_slots, real, n),
        MixCase("gg-packed", gg_copies[2], gg_packed, packed_slots, real, n),
    ]


def run_mix(gg, llava, processor, *, n: int, batch_size: int, rounds: int, seed: int, log) -> dict[str, Any]:
    """Build the cases, warm each up with one pass, time ``rounds`` interleaved passes; return the results."""
    cases = build_cases(gg, llava, processor, n, batch_size, seed)
    for c in cases:
        c.run_pass()
    for r in range(rounds):
        order = cases[r % len(cases):] + cases[: r % len(cases)]
        for c in order:
            c.times.append(c.run_pass())
        log(f"  mix round {r + 1}/{rounds}")
    res = {"samples": n, "batch_size": batch_size, "rounds": rounds, "cases": {}}
    for c in cases:
        med = statistics.median(c.times)
        res["cases"][c.name] = {"median_pass_s": med, "samples_per_s": n / med, "padding_fraction": c.padding,
                                "rows": sum(int(b["input_ids"].shape[0]) for b in c.batches),
                                "token_slots": c.slots, "real_tokens": c.real, "pass_times_s": c.times}
    base = res["cases"]["llava-random"]["samples_per_s"]
    res["ratios_vs_llava"] = {k: v["samples_per_s"] / base for k, v in res["cases"].items()}
    return res


def render(res: dict[str, Any]) -> str:
    lines = [f"## Mixed set ({res['samples']} samples: image Q/A, image conversations, video, audio, text-only; "
             f"batch {res['batch_size']}, median of {res['rounds']} passes)", "",
             "| case | rows | padding | pass (s) | samples/s | vs llava-random |", "|---|---:|---:|---:|---:|---:|"]
    for name, c in res["cases"].items():
        lines.append(f"| {name} | {c['rows']} | {100 * c['padding_fraction']:.1f}% | {c['median_pass_s']:.2f} | "
                     f"{c['samples_per_s']:.1f} | {res['ratios_vs_llava'][name]:.2f}x |")
    lines += ["", f"mix target: gg-packed / llava-random = {res['ratios_vs_llava']['gg-packed']:.2f}x (target >= 1.3x)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import argparse
    import logging
    import os
    import sys
    import warnings

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from train_throughput import build_llava, stage2

    from groundinggpt.presets import build_tiny

    torch.manual_seed(args.seed)
    gg, processor = build_tiny(seed=args.seed, image_token_pool=1)
    stage2(gg)
    llava = build_llava(gg, copy.deepcopy(gg.config.vision_config), copy_weights=True)
    res = run_mix(gg, llava, processor, n=args.samples, batch_size=args.batch_size, rounds=args.rounds,
                  seed=args.seed, log=lambda s: print(s, file=sys.stderr, flush=True))
    print(render(res))
    return res


if __name__ == "__main__":
    main()

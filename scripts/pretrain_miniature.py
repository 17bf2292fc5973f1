#!/usr/bin/env python
"""Pretrain the miniature "CLIP", "ImageBind audio" and "Vicuna" the quickstart starts from.

Reproduces the committed checkpoints in ``src/groundinggpt/assets/miniature`` (float16
safetensors + ``parts.json`` with the settings and the pretraining report)::

    python scripts/pretrain_miniature.py                      # all three parts, ~50 min on 2 CPU cores (vision 12, audio 2.4, LLM 36)
    python scripts/pretrain_miniature.py --parts llm --out /tmp/parts   # one part (others copied from --out)
    python scripts/pretrain_miniature.py --quick --out /tmp/parts      # a smoke run (seconds)
    python scripts/pretrain_miniature.py --parts llm --llm-device cuda  # the LLM on a GPU (~1.5 min on an H100)

Data: only the synthetic world's captions and plain text, from seeds disjoint from any
quickstart world (see ``groundinggpt.miniature.corpus``): no coordinates, no timestamps,
no grounding answers. The same seed and settings give the same weights on the same
machine and library versions (CPU float32; the LLM trains under bfloat16 autocast).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch


def _finished(report: dict, started: float, environment: dict) -> dict:
    """A part's pretraining report with its total time (corpus included), where it ran, and
    its log thinned to ~50 rows."""
    report["total_seconds"] = time.perf_counter() - started
    report["environment"] = environment
    report["log"] = report["log"][:: max(1, len(report["log"]) // 50)]
    return report


def main(argv: list[str] | None = None) -> int:
    from groundinggpt.miniature import ASSETS, miniature_config, miniature_processor, save_parts
    from groundinggpt.miniature.parts import PART_FILES, build_miniature

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", dest="out", default=str(ASSETS), help="parts folder to write (default: the committed assets)")
    p.add_argument("--parts", default="vision,audio,llm", help="which parts to train; the others are loaded from --out")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny corpora and a few steps (tests, smoke runs)")
    p.add_argument("--vision-images", type=int, default=20000)
    p.add_argument("--vision-steps", type=int, default=1500)
    p.add_argument("--audio-clips", type=int, default=3000)
    p.add_argument("--audio-steps", type=int, default=600)
    p.add_argument("--llm-chats", type=int, default=40000)
    p.add_argument("--llm-steps", type=int, default=2000)
    p.add_argument("--llm-device", default="cpu", help="where the LLM trains: cpu (default) or cuda")
    p.add_argument("--llm-skills", type=float, default=0.0, help="share of the LLM's chats that are text-skill "
                   "chats (groundinggpt.miniature.skills: recall, grid, sequence, order, formats)")
    p.add_argument("--llm-from", default=None, help="start the LLM from this parts folder's LLM (continued "
                   "pretraining) instead of random init")
    p.add_argument("--llm-lr", type=float, default=2e-3, help="peak learning rate of the LLM (cosine)")
    p.add_argument("--llm-precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="bf16 autocast or float32 for the LLM; auto: bf16 where the device computes it fast "
                        "(groundinggpt.precision; an AVX2-only CPU is ~30x slower in bf16)")
    args = p.parse_args(argv)
    if args.quick:
        args.vision_images, args.vision_steps = 64, 2
        args.audio_clips, args.audio_steps = 16, 2
        args.llm_chats, args.llm_steps = 64, 2
    torch.set_num_threads(args.threads)
    wanted = [w.strip() for w in args.parts.split(",") if w.strip()]
    unknown = sorted(set(wanted) - set(PART_FILES))
    if unknown:
        p.error(f"unknown parts {unknown}; expected some of {sorted(PART_FILES)}")
    out = Path(args.out)

    from groundinggpt.miniature.corpus import audio_clip_features, audio_corpus, chat_corpus, image_corpus
    from groundinggpt.miniature.parts import load_part
    from groundinggpt.miniature.skills import SKILL_MAX_LENGTH, skill_examples, skills_corpus
    from groundinggpt.miniature.pretrain import encode_chats, pretrain_audio, pretrain_llm, pretrain_vision

    config = miniature_config()
    processor = miniature_processor(config)
    tokenizer = processor.tokenizer
    # Start from the existing parts (for the ones not retrained) or from random init.
    existing = [k for k in PART_FILES if (out / PART_FILES[k]).is_file() and k not in wanted]
    model, _ = build_miniature(out if existing else None, seed=args.seed, load=tuple(existing))
    info_path = out / "parts.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    info.update({
        "format": "groundinggpt-miniature-parts", "version": 1,
        "script": "scripts/pretrain_miniature.py", "seed": args.seed,
        "config": {"vision": config.vision_config.to_dict(), "audio": dict(config.audio_config.encoder),
                   "llm": config.text_config.to_dict(), "system_prompt": processor.config.system_prompt},
    })
    info.pop("environment", None)  # each report says where its part was trained (parts may differ)
    environment = {"torch": torch.__version__, "python": platform.python_version(), "threads": args.threads}
    info.setdefault("reports", {})
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731

    if "vision" in wanted:
        say(f"[vision] corpus of {args.vision_images} images ...")
        t = time.perf_counter()
        corpus = image_corpus(args.vision_images, stream=0)
        val = image_corpus(min(512, args.vision_images), stream=1)
        say(f"[vision] CLIP-style pretraining, {args.vision_steps} steps")
        report = pretrain_vision(model.vision_tower, tokenizer, corpus, steps=args.vision_steps, seed=args.seed,
                                 validation=val, say=say)
        info["reports"]["vision"] = _finished(report, t, environment)
    if "audio" in wanted:
        say(f"[audio] corpus of {args.audio_clips} clips ...")
        t = time.perf_counter()
        waves, captions = audio_corpus(args.audio_clips, stream=0)
        features = audio_clip_features(waves, processor)
        vwaves, vcaps = audio_corpus(min(300, args.audio_clips), stream=1)
        vfeat = audio_clip_features(vwaves, processor)
        say(f"[audio] ImageBind-style pretraining, {args.audio_steps} steps")
        report = pretrain_audio(model.audio_encoder, tokenizer, features, captions, steps=args.audio_steps,
                                seed=args.seed, validation=(vfeat, vcaps), say=say)
        info["reports"]["audio"] = _finished(report, t, environment)
    if "llm" in wanted:
        say(f"[llm] corpus of {args.llm_chats} text-only chats ...")
        t = time.perf_counter()
        skills = round(args.llm_skills * args.llm_chats)
        encoded = encode_chats(processor, chat_corpus(args.llm_chats - skills, stream=0))
        # Skill chats hold an 8x8 grid of words (64 tokens): a longer limit than the plain chats need.
        encoded += encode_chats(processor, skills_corpus(skills, stream=0), max_length=SKILL_MAX_LENGTH)
        val = encode_chats(processor, chat_corpus(min(500, args.llm_chats), stream=1))
        from groundinggpt.precision import bf16_is_fast

        bf16 = args.llm_precision == "bf16" or (args.llm_precision == "auto" and bf16_is_fast(args.llm_device))
        if args.llm_from:
            load_part(model.language_model, Path(args.llm_from), "llm")
        say(f"[llm] language-model pretraining, {args.llm_steps} steps ({skills} skill chats"
            f"{', from ' + args.llm_from if args.llm_from else ''})")
        report = pretrain_llm(model.language_model, encoded, pad_id=tokenizer.pad_token_id, steps=args.llm_steps,
                              lr=args.llm_lr, seed=args.seed, validation=val, say=say, bf16=bf16,
                              device=args.llm_device)
        if skills:
            from groundinggpt.miniature.pretrain import validation_loss

            skill_val = encode_chats(processor, skills_corpus(min(500, skills), stream=1),
                                     max_length=SKILL_MAX_LENGTH)
            report["validation_skills"] = {"loss": validation_loss(model.language_model, skill_val,
                                                                   tokenizer.pad_token_id)}
        from groundinggpt.miniature.pretrain import greedy_answerer
        from groundinggpt.miniature.skills import skill_accuracy

        report["skill_accuracy"] = skill_accuracy(greedy_answerer(model.language_model.to("cpu"), processor),
                                                  n=4 if args.quick else 30)
        say(f"[llm] held-out skill accuracy (greedy, exact match): {report['skill_accuracy']}")
        report.update(skills_share=args.llm_skills, bf16=bf16, started_from=args.llm_from, skills=skill_examples())
        device = torch.cuda.get_device_name() if args.llm_device.startswith("cuda") else "cpu"
        info["reports"]["llm"] = _finished(report, t, {**environment, "device": device})
    save_parts(out, vision=model.vision_tower, audio=model.audio_encoder, llm=model.language_model, info=info)
    sizes = {k: (out / f).stat().st_size for k, f in PART_FILES.items()}
    say(f"wrote {out}: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python
"""Time to the first words of an answer: streamed (``on_text``) vs whole (the old server).

Before streaming, a ``stream=true`` request got its first chunk only after the whole
answer was generated; now the first settled piece goes out after a few tokens. Both are
measured here on the same model and prompts, interleaved, greedy, with a fixed answer
length (EOS suppressed), so the ratio is the latency a client sees improve; the cost of
releasing pieces (a short incremental decode per token) shows as the difference in
total time.

    python bench/stream_latency.py [--preset tiny] [--tokens 128] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from groundinggpt.api import GroundingGPT


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--model", default=None, help="a model folder instead of the preset")
    p.add_argument("--tokens", type=int, default=128, help="answer length (EOS suppressed)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    gg = GroundingGPT.from_pretrained(args.model) if args.model else GroundingGPT.from_preset(args.preset, seed=0)
    eos = gg.processor.tokenizer.eos_token_id
    conversation = [{"role": "user", "content": "Describe the objects in the picture and where they are."}]
    settings = dict(max_new_tokens=args.tokens)

    def whole() -> tuple[float, float]:
        t = time.perf_counter()
        gg.generate([conversation], **settings)
        total = time.perf_counter() - t
        return total, total  # the first words reach the client with the rest

    def streamed() -> tuple[float, float]:
        first: list[float] = []
        t = time.perf_counter()

        def on_text(row: int, piece: str) -> None:
            if piece and not first:
                first.append(time.perf_counter() - t)

        gg.generate([conversation], on_text=on_text, **settings)
        total = time.perf_counter() - t
        return (first[0] if first else total), total

    # EOS never ends the answer early, so both produce exactly --tokens tokens.
    original = gg.model.generate

    def generate_without_eos(*a, **kw):
        kw["eos_token_id"] = None
        kw["min_new_tokens"] = args.tokens
        return original(*a, **kw)

    gg.model.generate = generate_without_eos
    whole(), streamed()  # warm-up
    rows = {"whole answer first (before)": [], "streamed (now)": []}
    for _ in range(args.repeats):
        rows["whole answer first (before)"].append(whole())
        rows["streamed (now)"].append(streamed())
    print(f"{args.model or args.preset}: {args.tokens} tokens, median of {args.repeats}, eos id {eos} suppressed\n")
    print("| | first words (ms) | whole answer (ms) |\n|---|---|---|")
    med = {}
    for name, values in rows.items():
        first = statistics.median(v[0] for v in values) * 1000
        total = statistics.median(v[1] for v in values) * 1000
        med[name] = (first, total)
        print(f"| {name} | {first:.1f} | {total:.1f} |")
    before, now = med["whole answer first (before)"], med["streamed (now)"]
    print(f"\ntime to first words: {before[0] / now[0]:.1f}x sooner; whole answer: {now[1] / before[1]:.2f}x the time")


if __name__ == "__main__":
    main()

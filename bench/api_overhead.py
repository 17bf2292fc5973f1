#!/usr/bin/env python
"""What the ``GroundingGPT`` API adds to ``model.generate``: tokens/s through each, one run.

Cases, interleaved round by round on the same model, image and question, greedy, with EOS
switched off so every answer runs to ``--tokens`` (tokens/s counts the tokens each case
really generated):

- ``model.generate``: the model's own ``generate`` on inputs prepared once (no
  preprocessing, no stop strings) — the baseline;
- ``API``: ``GroundingGPT.generate`` — preprocessing the image and the prompt, the
  template's stop strings checked by :class:`groundinggpt.stopping.StopStrings`, the
  answer decoded, cut and converted to the image's frame;
- ``API, HF stop_strings`` (what the API did before): the same, with transformers'
  ``stop_strings`` doing the stop-string check.

Prints the ratio API / model.generate (target ≥ 0.98) and the old path's.

    python bench/api_overhead.py [--tokens 128] [--rounds 7] [--threads 1] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see groundinggpt.openmp_policy)

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from groundinggpt.api import GenerationSettings, GroundingGPT  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, default=128, help="answer length (EOS switched off)")
    p.add_argument("--rounds", type=int, default=7, help="timed rounds (each runs every case once)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--output", dest="out", help="write the figures as JSON")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    gg = GroundingGPT.from_preset("tiny", seed=0)
    tok = gg.processor.tokenizer
    image = Image.new("RGB", (320, 240), (200, 40, 40))
    conversation = [{"role": "user", "content": [{"type": "image", "image": image},
                                                 {"type": "text", "text": "Describe the objects and where they are."}]}]
    generate = gg.model.generate

    def without_eos(*a, **kw):  # every case runs to --tokens
        kw["eos_token_id"] = None
        return generate(*a, **kw)

    gg.model.generate = without_eos
    inputs = gg.model_inputs(gg.prepare([conversation]).inputs)
    prompt = inputs["input_ids"].shape[1]

    def baseline() -> int:
        with torch.inference_mode():
            out = without_eos(**inputs, max_new_tokens=args.tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        return out.shape[1] - prompt

    def api() -> int:
        return gg.generate([conversation], max_new_tokens=args.tokens)[0].completion_tokens

    def api_hf_stop_strings() -> int:
        stops = gg.stop_strings(GenerationSettings())

        def with_hf_stops(*a, **kw):
            kw.pop("stopping_criteria", None)
            return without_eos(*a, **kw, stop_strings=stops, tokenizer=tok)

        gg.model.generate = with_hf_stops
        try:
            return gg.generate([conversation], max_new_tokens=args.tokens)[0].completion_tokens
        finally:
            gg.model.generate = without_eos

    cases = {"model.generate": baseline, "API": api, "API, HF stop_strings (before)": api_hf_stop_strings}
    for fn in cases.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    tokens: dict[str, list[int]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate the order
            t = time.perf_counter()
            n = cases[name]()
            times[name].append(time.perf_counter() - t)
            tokens[name].append(n)
    rate = {name: statistics.median(n / t for n, t in zip(tokens[name], times[name])) for name in cases}
    base = rate["model.generate"]
    print(f"## API overhead: tiny preset, one 320x240 image, {args.tokens}-token greedy answers, EOS off, "
          f"median of {args.rounds} interleaved rounds, {args.threads} thread(s), "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}\n")
    print("| case | tokens | median s | tokens/s | vs model.generate |\n|---|---:|---:|---:|---:|")
    for name in cases:
        print(f"| {name} | {statistics.median(tokens[name]):.0f} | {statistics.median(times[name]):.3f} | "
              f"{rate[name]:.1f} | {rate[name] / base:.3f}x |")
    ratio = rate["API"] / base
    print(f"\nAPI / model.generate tokens/s: {ratio:.3f}x (target >= 0.98x); "
          f"before (HF stop_strings): {rate['API, HF stop_strings (before)'] / base:.3f}x")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"tokens_per_s": rate, "ratio_api": ratio, "times": times, "tokens": tokens,
                       "args": vars(args), "machine": platform.machine(), "cpus": os.cpu_count(),
                       "load_average": os.getloadavg(), "torch": torch.__version__}, f, indent=1)


if __name__ == "__main__":
    main()

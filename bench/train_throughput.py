"""Training-step throughput: GroundingGPT tiny (raw media / feature cache) vs transformers' LLaVA.

Run::

    python bench/train_throughput.py                       # defaults: batch 8, 30 timed steps per case, e2e runs
    python bench/train_throughput.py --steps 20 --batch-size 4 --out /tmp/train_throughput.json
    python bench/train_throughput.py --no-e2e              # only the in-process step timings

What is timed (all cases in ONE process, on the SAME batch of images and texts)
------------------------------------------------------------------------------------
One training step = ``zero_grad`` → forward (with ``labels``) → ``loss.backward()`` →
``AdamW.step()``; the wall time of each step is recorded and the **median over the timed
steps after warm-up** is reported, as samples/s (batch / median) and tokens/s (non-padding
LLM input tokens of the batch / median; image placeholder tokens count, since the LLM
processes them). The data is fixed and already tensorised: no decoding, no collation, so
what differs between cases is only model compute (the end-to-end runs below include the
data pipeline).

Cases:

``gg-raw`` (a)
    ``groundinggpt.presets.build_tiny`` (CLIP 4 layers / 128 wide over 64-px images, patch 8 →
    8×8 grid, layer −2, 2× average pool → **16** image tokens; LLaMA 4 layers / 256 wide) with the
    stage-2 freeze plan (``groundinggpt.train.freeze.plan_for_stage(2)``: adapters + LLM train,
    vision tower and audio encoder frozen). ``pixel_values`` go through the frozen tower every step.
``gg-cache`` (b)
    The same model, but the frozen tower's outputs are computed once: the images are written to
    PNG files, ``FeatureCache.build`` encodes them with ``model.encode_media`` into a temporary
    cache, the features are read back with ``FeatureCache.get`` (and checked equal to
    ``encode_media(pixel_values)``), and every step takes ``image_features``.
``llava-same-tower`` (c)
    ``transformers.LlavaForConditionalGeneration`` with ``LlavaConfig(vision_config=<the same
    CLIPVisionConfig>, text_config=<the same LlamaConfig>, image_token_index=<the tiny tokenizer's
    <image> id>, vision_feature_layer=-2, vision_feature_select_strategy="default")``: the same
    tower and the same 64-px images. LLaVA has no pooling, so each image is **64** LLM tokens
    (``input_ids`` are the GroundingGPT ones with each 16-token image run expanded to 64 — the text
    tokens are identical). Vision tower frozen; projector (the same Linear→GELU→Linear shape as
    GroundingGPT's MLP adapter) + LLM trainable.

Because (a) vs (c) mixes two effects (GroundingGPT's 2× pooling gives 4× fewer image tokens, and
the implementation), two extra cases isolate them:

``gg-raw-64tok`` (equal config)
    ``build_tiny(image_token_pool=1)``: 64 image tokens, i.e. exactly LLaVA's config (same tower,
    same feature layer, same adapter/projector shape, same LLM, same ``input_ids``). The LLaVA model
    is built with the weights copied from this model, and the first-step losses of the two are
    compared (they must agree to float rounding): this proves the comparison is like for like. The
    ratio gg-raw-64tok / llava-same-tower is the implementation overhead (≈ 1 expected).
``llava-16tok`` (same number of LLM tokens)
    LLaVA whose CLIP tower uses patch 16 instead of 8 on the same 64-px images → a 4×4 grid → 16
    image tokens, so the LLM sees exactly the same sequence lengths as ``gg-raw``. The tower is the
    only difference (16 patches of 16 px vs GroundingGPT's 64 patches of 8 px pooled to 16), so
    gg-raw / llava-16tok shows what GroundingGPT's finer-grid-then-pool costs at equal LLM load.

Fairness measures: same optimizer (``torch.optim.AdamW``, lr 1e-4, default betas/eps, weight
decay 0, ``foreach`` default) over exactly the parameters with ``requires_grad``; fp32; the
attention implementation each model picks by default (``sdpa`` for both towers and both LLMs);
models in ``train()`` mode (attention dropout is 0 in both configs); ``zero_grad(set_to_none=True)``,
so GroundingGPT's video / audio branches (trainable in stage 2 but unused by an image batch) get no
gradient and AdamW skips them — the parameters that do train on an image batch (image adapter +
LLM, 3,246,848) are exactly LLaVA's (projector + LLM). To spread the noise of a shared machine evenly, the cases are **interleaved**: after
the warm-up steps, rounds of ``--block`` steps per case (default 1: strict round-robin) run in
rotating order until each case has ``--steps`` timed steps. The table gives the median and the
25th-75th percentile of the step times; the JSON keeps every step time.

Threads: ``torch.set_num_threads(2)`` (intra-op; ``--threads``) and ``torch.set_num_interop_threads(1)``
— the development machine has 2 cores, shared with other jobs. Run as a script, the bench sets
``OMP_WAIT_POLICY=PASSIVE`` before importing torch (unless the variable is already set, or
``--omp-wait-policy default``): with OpenMP's spinning wait, 2 threads on 2 cores that other jobs
also use made a step 2-30× slower and wildly variable (see the comment above ``import torch``).
The load average (``os.getloadavg``) is printed before and after and stored in the JSON, so numbers
from a loaded machine can be recognised; ``--max-timed-seconds`` (90 s) cuts the timed rounds
short on a very slow machine (every case keeps the same number of timed steps). Seeds:
``torch.manual_seed`` / ``random.seed`` fixed (``--seed``); every model is built from the same seed.

Mixed set (``--mix``, on by default): image Q/A, image conversations, video, audio and
text-only conversations of varied lengths (see ``bench/mixed_batch.py``), one pass per case:
LLaVA with random padded batches (the baseline), GroundingGPT with random padded batches,
modality/length-grouped batches, and grouped + packed rows; samples/s against LLaVA's and the
padding fraction of each.

End-to-end (``--e2e``, on by default): one real ``groundinggpt.train.run.train`` stage-2 run of
the tiny preset (recipe ``tiny-stage2``; batch ``--batch-size``, no gradient accumulation, no
checkpoints) on ``groundinggpt.train.toy`` REC data (``--e2e-samples`` images), once without and
once with ``--feature-cache``; ``samples_per_second`` from each ``run_log.json`` (the Trainer's
``train_samples_per_second``: data loading + steps, first step included) and the cache-build
time (part of ``timings.prepare_data_s``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

# OpenMP reads OMP_WAIT_POLICY once, when torch loads its runtime: set it before `import torch`.
# Default here: PASSIVE (idle OpenMP threads sleep instead of spinning). On a machine whose cores
# are busy with other jobs, spinning threads steal the cores the working thread needs and every
# parallel region waits for a descheduled thread: measured on the 2-core development machine at
# load ~3, a tiny-preset step at batch 8 took 0.4-7 s with 2 spinning threads, 0.21 s with 1 thread
# and 0.23-0.25 s with 2 passive threads. `--omp-wait-policy default` leaves the environment alone.
_OMP_ARG = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--omp-wait-policy=")), None)
if _OMP_ARG is None and "--omp-wait-policy" in sys.argv[:-1]:
    _OMP_ARG = sys.argv[sys.argv.index("--omp-wait-policy") + 1]
if __name__ == "__main__" and (_OMP_ARG or "passive") == "passive":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

DEFAULT_THREADS = 2


# ---- data -------------------------------------------------------------------------------------

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (230, 210, 40)}


def write_images_and_conversations(root: Path, n: int, seed: int) -> list[list[dict[str, Any]]]:
    """n synthetic 64×64 PNGs (a coloured rectangle on grey) and one REC conversation each."""
    from PIL import Image, ImageDraw

    from groundinggpt.grounding import Box, format_box

    rng = random.Random(seed)
    conversations = []
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name, colour = rng.choice(sorted(COLOURS.items()))
        x1, y1 = rng.randint(0, 31), rng.randint(0, 31)
        x2, y2 = rng.randint(x1 + 8, 63), rng.randint(y1 + 8, 63)
        img = Image.new("RGB", (64, 64), (235, 235, 235))
        ImageDraw.Draw(img).rectangle((x1, y1, x2, y2), fill=colour)
        path = root / "images" / f"{i:03d}.png"
        img.save(path)
        box = Box(x1 / 64, y1 / 64, (x2 + 1) / 64, (y2 + 1) / 64)
        conversations.append([
            {"role": "user", "content": [{"type": "image", "image": str(path)},
                                         {"type": "text", "text": f"Output the coordinate of the {name} rectangle."}]},
            {"role": "assistant", "content": f"The {name} rectangle{format_box(box)}."},
        ])
    return conversations


def expand_image_runs(input_ids: torch.Tensor, labels: torch.Tensor, attention: torch.Tensor,
                      image_id: int, new_len: int, pad_id: int) -> tuple[torch.Tensor, ...]:
    """Replace every run of ``image_id`` tokens by ``new_len`` of them (right padding kept)."""
    rows = []
    for ids, labs, att in zip(input_ids.tolist(), labels.tolist(), attention.tolist()):
        n = sum(att)
        out_ids, out_labs, i = [], [], 0
        while i < n:
            if ids[i] == image_id:
                j = i
                while j < n and ids[j] == image_id:
                    j += 1
                out_ids += [image_id] * new_len
                out_labs += [-100] * new_len
                i = j
            else:
                out_ids.append(ids[i])
                out_labs.append(labs[i])
                i += 1
        rows.append((out_ids, out_labs))
    longest = max(len(r[0]) for r in rows)
    new_ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    new_labs = torch.full((len(rows), longest), -100, dtype=torch.long)
    new_att = torch.zeros((len(rows), longest), dtype=torch.long)
    for k, (ids, labs) in enumerate(rows):
        new_ids[k, : len(ids)] = torch.tensor(ids)
        new_labs[k, : len(labs)] = torch.tensor(labs)
        new_att[k, : len(ids)] = 1
    return new_ids, new_labs, new_att


# ---- models -----------------------------------------------------------------------------------


def stage2(model):
    from groundinggpt.train.freeze import apply_freeze_plan, plan_for_stage

    apply_freeze_plan(model, plan_for_stage(2))
    return model


def build_llava(gg_model, vision_config, copy_weights: bool):
    """LLaVA at GroundingGPT's config; optionally with the GroundingGPT model's weights."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    cfg = gg_model.config
    llava_cfg = LlavaConfig(
        vision_config=vision_config,
        text_config=copy.deepcopy(cfg.text_config),
        image_token_index=cfg.image_token_id,
        vision_feature_layer=cfg.vision_feature_layer,
        vision_feature_select_strategy=cfg.vision_feature_select_strategy,
        projector_hidden_act="gelu",
        multimodal_projector_bias=True,
    )
    llava_cfg.image_seq_length = (vision_config.image_size // vision_config.patch_size) ** 2
    model = LlavaForConditionalGeneration(llava_cfg)
    if copy_weights:
        sd = {}
        for k, v in gg_model.vision_tower.state_dict().items():
            sd[f"model.vision_tower.{k}"] = v
        adapter = gg_model.image_adapter
        for src, dst in ((0, "linear_1"), (2, "linear_2")):
            sd[f"model.multi_modal_projector.{dst}.weight"] = adapter[src].weight
            sd[f"model.multi_modal_projector.{dst}.bias"] = adapter[src].bias
        for k, v in gg_model.language_model.state_dict().items():
            if k.startswith("model."):
                sd[f"model.language_model.{k[len('model.'):]}"] = v
            elif k.startswith("lm_head."):
                sd[k] = v
        missing, unexpected = model.load_state_dict(sd, strict=False)
        # GroundingGPT's tower is cut after the feature layer; LLaVA's keeps (and runs) the later
        # layers, whose output it never uses: they keep their random init, the loss is the same.
        kept = len(gg_model.vision_tower.encoder.layers)
        dropped = tuple(f".encoder.layers.{i}." for i in range(kept, vision_config.num_hidden_layers))
        missing = [k for k in missing if "position_ids" not in k and not any(d in k for d in dropped)]
        if missing or unexpected:
            raise RuntimeError(f"LLaVA weight copy: missing {missing}, unexpected {unexpected}")
    model.model.vision_tower.requires_grad_(False)
    return model


# ---- timing -----------------------------------------------------------------------------------


class Case:
    def __init__(self, name: str, model, inputs: dict[str, torch.Tensor], image_tokens: int, note: str):
        self.name = name
        self.model = model.train()
        self.inputs = inputs
        self.image_tokens = image_tokens
        self.note = note
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=1e-4, weight_decay=0.0)
        self.times: list[float] = []
        self.losses: list[float] = []
        self.tokens = int(inputs["attention_mask"].sum())
        self.seq_len = int(inputs["input_ids"].shape[1])

    def step(self) -> float:
        t = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        out = self.model(**self.inputs)
        out.loss.backward()
        self.opt.step()
        dt = time.perf_counter() - t
        self.losses.append(out.loss.item())
        return dt

    @torch.no_grad()
    def initial_loss(self) -> float:
        self.model.eval()
        try:
            return float(self.model(**self.inputs).loss)
        finally:
            self.model.train()


def run_interleaved(cases: list[Case], warmup: int, steps: int, block: int, budget_s: float,
                    log: Callable[[str], None]) -> bool:
    """Warm up each case, then rounds of ``block`` steps per case in rotating order.

    Stops early (after a complete round, so every case has the same number of timed steps) once
    ``budget_s`` seconds have been spent timing; returns True if it did.
    """
    for c in cases:
        for _ in range(warmup):
            c.step()
    done = 0
    r = 0
    t0 = time.perf_counter()
    while done < steps:
        if r and time.perf_counter() - t0 > budget_s:
            log(f"  time budget of {budget_s:.0f} s spent after {done} timed steps per case: stopping "
                "(the machine is slow or loaded; see --max-timed-seconds)")
            return True
        k = min(block, steps - done)
        order = cases[r % len(cases):] + cases[: r % len(cases)]
        for c in order:
            for _ in range(k):
                c.times.append(c.step())
        done += k
        r += 1
        log(f"  round {r}: {done}/{steps} timed steps per case")
    return False


# ---- end-to-end -------------------------------------------------------------------------------


def e2e_runs(batch_size: int, n_samples: int, seed: int, log: Callable[[str], None]) -> dict[str, Any]:
    """One real stage-2 ``train`` run on toy REC data, without and with --feature-cache."""
    from groundinggpt.train.recipe import build_config
    from groundinggpt.train.run import train
    from groundinggpt.train.toy import write_toy_dataset

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gg-bench-e2e-") as tmp:
        tmp = Path(tmp)
        data = write_toy_dataset(tmp / "data", n_images=n_samples, n_videos=0, n_audios=0, stage=2, seed=seed)
        for name, cache in (("raw", None), ("feature-cache", str(tmp / "cache"))):
            cfg = build_config(
                "tiny-stage2",
                overrides={"model": "tiny", "stage": 2, "data": [str(data)], "output": str(tmp / f"run-{name}"),
                           "feature_cache": cache},
                training_overrides={"per_device_train_batch_size": batch_size, "gradient_accumulation_steps": 1,
                                    "save_strategy": "no", "logging_steps": 1000, "seed": seed,
                                    "disable_tqdm": True},
            )
            t = time.perf_counter()
            with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its metrics: keep stdout the table
                result = train(cfg)
            wall = time.perf_counter() - t
            out[name] = {
                "samples": result.data["trained_on"],
                "steps": result.throughput.global_steps,
                "samples_per_second": result.throughput.samples_per_second,
                "tokens_per_second": result.throughput.tokens_per_second,
                "train_runtime_s": result.metrics.get("train_runtime"),
                "prepare_data_s": result.timings["prepare_data_s"],
                "total_s": result.timings["total_s"],
                "wall_s": wall,
                "feature_cache": result.feature_cache,
                "final_train_loss": result.final_train_loss,
            }
            log(f"  e2e {name}: {out[name]['samples_per_second']:.2f} samples/s "
                f"({out[name]['steps']} steps, train {out[name]['train_runtime_s']:.1f} s, wall {wall:.1f} s)")
    return out


# ---- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per case (median over these)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per case before timing")
    ap.add_argument("--block", type=int, default=1,
                    help="steps per case per interleaved round (1: strict round-robin, which spreads bursts of "
                         "load from other jobs most evenly over the cases)")
    ap.add_argument("--max-timed-seconds", type=float, default=90.0,
                    help="stop the timed rounds after this long (keeps a loaded machine's run short)")
    ap.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="torch.set_num_threads (default 2)")
    ap.add_argument("--omp-wait-policy", choices=("passive", "default"), default="passive",
                    help="passive: set OMP_WAIT_POLICY=PASSIVE before torch loads (only when run as a script; "
                         "an OMP_WAIT_POLICY already in the environment wins); default: leave it alone")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", dest="out", type=Path, default=None, help="write all results as JSON here")
    ap.add_argument("--e2e", action=argparse.BooleanOptionalAction, default=True,
                    help="also time real `train` runs on toy data without/with --feature-cache")
    ap.add_argument("--e2e-samples", type=int, default=96, help="toy REC samples per e2e run")
    ap.add_argument("--mix", action=argparse.BooleanOptionalAction, default=True,
                    help="also time the mixed set (image, video, audio, text-only; varied lengths) padded / grouped / "
                         "packed against LLaVA at the equal config (bench/mixed_batch.py)")
    ap.add_argument("--mix-samples", type=int, default=64, help="conversations in the mixed set")
    ap.add_argument("--mix-rounds", type=int, default=3, help="timed passes over the mixed set per case")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1 or args.warmup < 0 or args.block < 1:
        ap.error("--steps, --batch-size and --block must be >= 1, --warmup >= 0")

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731

    import transformers

    from groundinggpt.data.feature_cache import FeatureCache
    from groundinggpt.presets import build_tiny

    load_before = os.getloadavg()
    t_all = time.perf_counter()
    B = args.batch_size

    with tempfile.TemporaryDirectory(prefix="gg-bench-") as tmp:
        tmp = Path(tmp)
        conversations = write_images_and_conversations(tmp, B, args.seed)

        # (a) / (b): the tiny preset, 16 image tokens.
        gg, processor = build_tiny(seed=args.seed)
        stage2(gg)
        batch = processor(conversations, add_generation_prompt=False, padding_side="right", return_labels=True)
        text = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
        pixel_values = batch["pixel_values"]
        image_id = gg.config.image_token_id
        k16 = gg.config.image_seq_length

        # Feature cache: encode once, read back, check.
        from groundinggpt.data.schema import Sample

        samples = [Sample.from_dict({"id": f"b{i}", "task": "rec", "stage": 2, "source": "bench", "messages": c},
                                    f"bench sample {i}") for i, c in enumerate(conversations)]
        cache = FeatureCache(tmp / "cache")
        t = time.perf_counter()
        cache.build(gg, samples, processor, "/", batch_size=B, progress=False)
        cache_build_s = time.perf_counter() - t
        feats = torch.stack([cache.get("image", c[0]["content"][0]["image"]) for c in conversations])
        ref = gg.encode_media(pixel_values=pixel_values)["image_features"]
        cache_max_abs_diff = float((feats - ref).abs().max())
        encode_times = []
        for _ in range(3):
            t = time.perf_counter()
            gg.encode_media(pixel_values=pixel_values)
            encode_times.append(time.perf_counter() - t)
        encode_once_s = statistics.median(encode_times)

        gg_cache = copy.deepcopy(gg)  # own weights + optimizer: the cases do not disturb each other

        # Equal config: 64 image tokens (no pooling), and LLaVA with its weights.
        gg64, processor64 = build_tiny(seed=args.seed, image_token_pool=1)
        stage2(gg64)
        k64 = gg64.config.image_seq_length
        batch64 = processor64(conversations, add_generation_prompt=False, padding_side="right", return_labels=True)
        pad_id = processor.tokenizer.pad_token_id
        ids64, labs64, att64 = expand_image_runs(text["input_ids"], text["labels"], text["attention_mask"],
                                                 image_id, k64, pad_id)
        assert torch.equal(ids64, batch64["input_ids"]) and torch.equal(labs64, batch64["labels"])
        assert torch.equal(batch64["pixel_values"], pixel_values)
        text64 = {"input_ids": ids64, "attention_mask": att64, "labels": labs64}
        llava = build_llava(gg64, copy.deepcopy(gg64.config.vision_config), copy_weights=True)

        # Same LLM tokens: LLaVA with a patch-16 tower (4x4 grid = 16 tokens) on the same images.
        vc16 = copy.deepcopy(gg.config.vision_config)
        vc16.patch_size = 16
        torch.manual_seed(args.seed)
        llava16 = build_llava(gg, vc16, copy_weights=False)

        cases = [
            Case("gg-raw", gg, {**text, "pixel_values": pixel_values}, k16,
                 "(a) tiny preset, stage 2, raw images through the frozen tower"),
            Case("gg-cache", gg_cache, {**text, "image_features": feats}, k16,
                 "(b) tiny preset, stage 2, cached image_features (no tower)"),
            Case("llava-same-tower", llava, {**text64, "pixel_values": pixel_values}, k64,
                 "(c) LLaVA, same CLIP/LLaMA/images, no pooling -> 64 tokens/image"),
            Case("gg-raw-64tok", gg64, {**text64, "pixel_values": pixel_values}, k64,
                 "tiny preset with image_token_pool=1: exactly LLaVA's config and weights"),
            Case("llava-16tok", llava16, {**text, "pixel_values": pixel_values}, k16,
                 "LLaVA, patch-16 tower -> 16 tokens/image: same LLM sequences as (a)"),
        ]
        by = {c.name: c for c in cases}
        loss_gg64 = by["gg-raw-64tok"].initial_loss()
        loss_llava = by["llava-same-tower"].initial_loss()

        trainable = {c.name: sum(p.numel() for p in c.params) for c in cases}
        log(f"batch {B}, seq len {cases[0].seq_len} (16 tok/img) / {cases[2].seq_len} (64 tok/img); "
            f"torch {torch.__version__}, transformers {transformers.__version__}, threads {torch.get_num_threads()}")
        log(f"equal-config check: initial loss gg-raw-64tok {loss_gg64:.6f} vs llava-same-tower {loss_llava:.6f}")
        t = time.perf_counter()
        stopped_early = run_interleaved(cases, args.warmup, args.steps, args.block, args.max_timed_seconds, log)
        steps_s = time.perf_counter() - t

    mix = None
    if args.mix:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from mixed_batch import run_mix

        mix = run_mix(gg64, llava, processor64, n=args.mix_samples, batch_size=B, rounds=args.mix_rounds,
                      seed=args.seed, log=log)
    e2e = e2e_runs(B, args.e2e_samples, args.seed, log) if args.e2e else None
    load_after = os.getloadavg()

    results: dict[str, Any] = {"cases": {}}
    for c in cases:
        med = statistics.median(c.times)
        results["cases"][c.name] = {
            "note": c.note, "median_step_s": med, "min_step_s": min(c.times), "max_step_s": max(c.times),
            "samples_per_s": B / med, "tokens_per_s": c.tokens / med, "tokens_per_batch": c.tokens,
            "seq_len": c.seq_len, "image_tokens_per_image": c.image_tokens, "trainable_params": trainable[c.name],
            "p25_step_s": _quantile(c.times, 0.25), "p75_step_s": _quantile(c.times, 0.75),
            "timed_steps": len(c.times), "first_loss": c.losses[0], "last_loss": c.losses[-1],
            "step_times_s": [round(x, 5) for x in c.times],
        }
    R = results["cases"]

    def ratio(a: str, b: str) -> float:
        return R[a]["samples_per_s"] / R[b]["samples_per_s"]

    results["ratios"] = {
        "cache_speedup (b)/(a)": ratio("gg-cache", "gg-raw"),
        "tiny_vs_llava_same_tower (a)/(c)": ratio("gg-raw", "llava-same-tower"),
        "equal_config gg-raw-64tok/llava-same-tower": ratio("gg-raw-64tok", "llava-same-tower"),
        "same_llm_tokens gg-raw/llava-16tok": ratio("gg-raw", "llava-16tok"),
        "cache_vs_llava (b)/(c)": ratio("gg-cache", "llava-same-tower"),
    }
    results["checks"] = {
        "equal_config_initial_loss": {"gg-raw-64tok": loss_gg64, "llava-same-tower": loss_llava,
                                      "abs_diff": abs(loss_gg64 - loss_llava)},
        "feature_cache_max_abs_diff_vs_encode_media": cache_max_abs_diff,
        "feature_cache_build_s": cache_build_s,
        "encode_media_once_s": encode_once_s,  # median of 3
        # The most the cache can save: the tower's share of a raw step (Amdahl).
        "tower_share_of_raw_step": encode_once_s / R["gg-raw"]["median_step_s"],
        "cache_speedup_bound": 1 / max(1e-9, 1 - encode_once_s / R["gg-raw"]["median_step_s"]),
    }
    if mix is not None:
        results["mix"] = mix
        results["ratios"]["mix gg-packed/llava-random"] = mix["ratios_vs_llava"]["gg-packed"]
    if e2e is not None:
        results["e2e"] = e2e
        results["ratios"]["e2e cache_speedup"] = (e2e["feature-cache"]["samples_per_second"]
                                                 / e2e["raw"]["samples_per_second"])
    results["setup"] = {
        "batch_size": B, "timed_steps": len(cases[0].times), "warmup": args.warmup, "block": args.block, "seed": args.seed,
        "optimizer": "torch.optim.AdamW(lr=1e-4, weight_decay=0)", "dtype": "float32",
        "torch_threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "stopped_early_by_time_budget": stopped_early, "torch": torch.__version__,
        "transformers": transformers.__version__, "python": platform.python_version(),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs ({_cpu_name()})",
        "loadavg_before": load_before, "loadavg_after": load_after,
        "timed_section_s": steps_s, "total_s": time.perf_counter() - t_all,
    }
    table = render_table(results)
    print(table)
    results["table"] = table
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str))
        log(f"wrote {args.out}")
    return results


def _quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def render_table(results: dict[str, Any]) -> str:
    s = results.get("setup", {})
    lines = [
        f"## Training-step throughput (batch {s.get('batch_size')}, median of {s.get('timed_steps')} steps after "
        f"{s.get('warmup')} warm-up, fp32, AdamW, {s.get('torch_threads')} threads, "
        f"OMP_WAIT_POLICY={s.get('omp_wait_policy')})",
        "",
        f"machine: {s.get('machine')}; torch {s.get('torch')}, transformers {s.get('transformers')}; "
        f"load avg before {tuple(round(x, 2) for x in s.get('loadavg_before', ()))}, "
        f"after {tuple(round(x, 2) for x in s.get('loadavg_after', ()))}",
        "",
        "| case | img tok | seq len | trainable params | median step (ms) | p25-p75 (ms) | samples/s | tokens/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results["cases"].items():
        lines.append(f"| {name} | {r['image_tokens_per_image']} | {r['seq_len']} | {r['trainable_params']:,} | "
                     f"{1000 * r['median_step_s']:.1f} | {1000 * r['p25_step_s']:.0f}-{1000 * r['p75_step_s']:.0f} | {r['samples_per_s']:.1f} | {r['tokens_per_s']:.0f} |")
    lines += ["", "| ratio (samples/s) | value |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f}x |" for k, v in results["ratios"].items()]
    c = results["checks"]
    eq = c["equal_config_initial_loss"]
    lines += ["", f"checks: equal-config initial loss gg-raw-64tok {eq['gg-raw-64tok']:.6f} vs LLaVA "
              f"{eq['llava-same-tower']:.6f} (|diff| {eq['abs_diff']:.1e}); cached features vs encode_media "
              f"max |diff| {c['feature_cache_max_abs_diff_vs_encode_media']:.1e}; cache build "
              f"{c['feature_cache_build_s']:.2f} s, one encode_media of the batch "
              f"{1000 * c['encode_media_once_s']:.1f} ms = {100 * c['tower_share_of_raw_step']:.1f}% of a gg-raw "
              f"step, so the cache can gain at most {c['cache_speedup_bound']:.2f}x"]
    if "mix" in results:
        from mixed_batch import render

        lines += ["", render(results["mix"])]
    if "e2e" in results:
        e = results["e2e"]
        lines += ["", "| end-to-end `train` (tiny, stage 2, toy REC) | samples | steps | train s | samples/s | "
                      "prepare data s |", "|---|---:|---:|---:|---:|---:|"]
        for name, r in e.items():
            lines.append(f"| {name} | {r['samples']} | {r['steps']} | {r['train_runtime_s']:.1f} | "
                         f"{r['samples_per_second']:.2f} | {r['prepare_data_s']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""``groundinggpt train``: one stage of the three-stage coarse-to-fine training.

Examples::

    groundinggpt train --stage 1 --model tiny --data toy/train.jsonl --output runs/s1
    groundinggpt train --stage 2 --model runs/s1 --data s2.jsonl --previous-data s1.jsonl --alpha 0.2 \\
        --output runs/s2 --lora --set learning_rate=2e-4
    torchrun --nproc_per_node 8 -m groundinggpt.cli train --stage 1 --model groundinggpt-7b \\
        --set "model_parts={llm: vicuna-7b-v1.5, vision: clip-vit-l-336, audio: imagebind_huge.pth}" ...

The recipe defaults to ``tiny-stageN`` for ``--model tiny`` and to ``stageN`` (the paper's
Table 9, 8 GPUs) otherwise; explicit flags and ``--set KEY=VALUE`` override it.
"""

from __future__ import annotations

import argparse

from ..cli import add_quiet


def _csv(text: str) -> list[str]:
    return [p for p in (s.strip() for s in text.split(",")) if p]


def run(args: argparse.Namespace) -> int:
    from .recipe import build_config
    from .run import train

    overrides = {
        "stage": args.stage, "model": args.model, "data": args.data, "previous_data": args.previous_data,
        "alpha": args.alpha, "media_root": args.media_root, "output": args.output,
        "feature_cache": args.feature_cache,
        # store_true flags: only an explicit flag overrides the recipe.
        "resume": True if args.resume else None, "strict": True if args.strict else None,
        "overwrite": True if args.overwrite else None,
        "lora": True if args.lora else None,
        "gradient_checkpointing": True if args.gradient_checkpointing else None,
        # --dtype: the weights' load dtype (mixed precision stays the recipe's bf16/fp16 setting)
        "load_dtype": None if args.dtype in (None, "auto") else args.dtype,
    }
    # A bad recipe, data or folder (RecipeError, DataError, OSError, ValueError) is reported in one
    # line by groundinggpt.cli.main.
    # --quiet: the Trainer's progress bar off (the recipe key disable_tqdm).
    sets = [*args.set, "disable_tqdm=true"] if args.quiet else args.set
    config = build_config(args.recipe, overrides=overrides, sets=sets,
                          training_overrides={"max_steps": args.max_steps, "seed": args.seed,
                                              "use_cpu": True if args.device == "cpu" else None})
    train(config)
    return 0


def register(sub) -> None:
    p = sub.add_parser("train", help="train one stage (1, 2 or 3) with the Hugging Face Trainer",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", type=int, choices=(1, 2, 3), required=True, help="training stage (picks the freeze plan)")
    p.add_argument("--model", required=True, help="tiny | groundinggpt-7b | groundinggpt-13b | a folder saved by a stage")
    p.add_argument("--data", type=_csv, required=True, metavar="FILE[,FILE...]", help="JSONL files of this stage")
    p.add_argument("--previous-data", type=_csv, metavar="FILE[,FILE...]", help="earlier stages' JSONL to replay")
    p.add_argument("--alpha", type=float, help="replay rate of --previous-data (the paper's alpha)")
    p.add_argument("--media-root", help="folder the media paths are relative to (default: the data files' folder)")
    p.add_argument("--output", required=True, help="run folder: checkpoints, logs, the final model")
    p.add_argument("--recipe", help="recipe name (stage1, tiny-stage2 ...) or YAML file")
    p.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint in --output")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty --output that holds no run to resume (its files may be replaced)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad sample instead of skipping it")
    p.add_argument("--feature-cache", metavar="DIR", help="cache the frozen encoders' features in DIR")
    p.add_argument("--lora", action="store_true", help="LoRA on the LLM instead of full tuning (stages 2-3)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations to save memory")
    p.add_argument("--max-steps", type=int, help="stop after N optimizer steps")
    p.add_argument("--seed", type=int, help="random seed (model init, data order, dropout)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="cpu trains on the CPU even with a GPU; auto and cuda let the Trainer place the model "
                        "(GPUs are chosen with CUDA_VISIBLE_DEVICES or torchrun)")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                   help="dtype the weights are loaded in (auto: the recipe's load_dtype, float32 by default; "
                        "mixed precision is the recipe's bf16/fp16)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key: training.NAME, groundinggpt.NAME or a bare NAME (repeatable)")
    add_quiet(p)
    p.set_defaults(func=run)

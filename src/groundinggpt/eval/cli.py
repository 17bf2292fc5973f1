"""``groundinggpt eval TASK``: evaluate a model folder, or score any model's predictions file.

Examples::

    groundinggpt eval rec --model out/groundinggpt-7b --refs 'refs(unc).p' \\
        --instances instances.json --images train2014 --split val --output results/refcoco-val
    groundinggpt eval rec --predictions preds.jsonl --refs 'refs(unc).p' \\
        --instances instances.json --split val --boxes-frame square --output results/other-model
"""

from __future__ import annotations

import argparse
from pathlib import Path

from groundinggpt.cli import add_quiet
from groundinggpt.eval.tasks import BOXES_FRAMES, get_task, task_names
from groundinggpt.loading import add_device_arguments



def _add_common(p: argparse.ArgumentParser, task_cls) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="a model folder (or 'tiny': random weights, for smoke tests)")
    src.add_argument("--predictions", help='JSONL of {"id", "answer"} from any model: score it, load no model '
                                           f"({task_cls.scoring_needs})")
    p.add_argument("--output", help="output folder (default: eval-results/<task>); rerunning resumes")
    p.add_argument("--prompt", help="prompt template replacing the paper's, e.g. 'Where is {exp}?'")
    if task_cls.takes_boxes_frame():  # answers of the other tasks hold no box
        p.add_argument("--boxes-frame", choices=BOXES_FRAMES, default="original",
                       help="predictions files: boxes relative to the original image (default) or the padded square")
    p.add_argument("--batch-size", type=int, default=8, help="conversations per generate call (default: 8)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="answer length limit (default: 64)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, help="sampling seed")
    add_device_arguments(p)
    p.add_argument("--limit", type=int, help="evaluate only the first N samples")
    p.add_argument("--num-examples", type=int, default=12, help="examples in examples.png (0: none)")
    add_quiet(p, "--no-progress")


def _load_model(args: argparse.Namespace):
    from groundinggpt.api import GroundingGPT
    from groundinggpt.loading import device_kwargs

    return GroundingGPT.load(args.model, **device_kwargs(args))


def run(args: argparse.Namespace) -> int:
    from groundinggpt.api import GenerationSettings
    from groundinggpt.eval.runner import evaluate

    # Bad inputs are reported in one line by groundinggpt.cli.main.
    task = args.task_cls(args.task_cls.Inputs.from_namespace(args))  # the flags, as the task's typed inputs
    if getattr(args, "judge_endpoint", None):
        from groundinggpt.eval.judge import Judge

        task.judge = Judge(args.judge_endpoint, args.judge_model, args.judge_api_key)
    model = _load_model(args) if args.model else None
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                  top_p=args.top_p, seed=args.seed)
    settings.generate_kwargs()  # validates before any work
    output = Path(args.output or Path("eval-results") / task.name)
    evaluate(
        task, output, model=model, predictions=args.predictions,
        source=str(Path(args.model).resolve()) if args.model and args.model != "tiny" else args.model,
        prompt=args.prompt, settings=settings, batch_size=args.batch_size,
        boxes_frame=getattr(args, "boxes_frame", "original"),
        limit=args.limit, num_examples=args.num_examples, progress=not args.quiet,
    )
    print((output / "summary.md").read_text(), end="")
    print(f"outputs in {output}/")
    return 0


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a model or score a predictions file on a benchmark",
                       description="Run a benchmark with a model (--model) or score another model's "
                                   "answers (--predictions). See docs/evaluation.md.")
    tasks = p.add_subparsers(dest="task", metavar="TASK")
    tasks.required = True
    for name in task_names():
        cls = get_task(name)
        tp = tasks.add_parser(name, help=cls.help, description=f"{cls.help}. Sample ids: {cls.id_scheme}.")
        _add_common(tp, cls)
        cls.add_arguments(tp)
        tp.set_defaults(func=run, task_cls=cls)

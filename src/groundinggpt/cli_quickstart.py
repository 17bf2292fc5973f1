"""``groundinggpt quickstart``: the whole pipeline on the synthetic world, on a CPU, with measured grounding.

In order (each step is a *phase*; a finished phase is recorded in ``DIR/quickstart.json``
and never redone, so an interrupted run continues from the last finished one):

1. ``world``     generate the synthetic world (media + stage and test JSONL) and its blind
                 constant baselines;
2. ``init``      assemble the miniature model from the committed *pretrained* parts (a tiny
                 "CLIP", "ImageBind audio" and "Vicuna") with fresh adapters (``models/stage0``);
3. ``features``  run the frozen encoders once over every training medium: they never change;
4. ``stage1``..``stage3``  the paper's three stages with ``groundinggpt train``'s runner:
                 stage 1 adapters only on coarse captions; stage 2 LLM + adapters on the
                 fine-grained tasks, replaying α of stage 1; stage 3 multi-turn instructions,
                 replaying α of stage 2; between stages 2 and 3, ``curve`` scores stage 2's
                 model at a few points (kept as snapshots) on held-out questions: the learning curve;
5. ``eval``      held-out REC, temporal grounding and sound localisation, asked with the
                 media and again *without* them (the same model, blind);
6. ``report``    ``report.md`` + ``report.json`` (metrics beside the baselines and targets, the
                 learning curve, timings per phase, data sizes, machine load) and PNG examples.

About 15 minutes on 2 CPU cores with fast bfloat16 (AVX512-BF16 or AMX), about 50 on 2
AVX2-only cores (float32); ``--fast`` about 15 seconds (see docs/quickstart.md).
``--ablation coarse-to-fine`` adds the paper's Table 7: stage 1 trained once on coarse data
only (the main run) and once on coarse + fine-grained data, then the same stages 2-3 and
the REC evaluation for both.

Example::

    groundinggpt quickstart --out runs/quickstart

This module is only the command line: :mod:`groundinggpt.quickstart` (and with it torch, the
world generator and the trainer) is imported when the command runs, not when the CLI starts.
"""

from __future__ import annotations

import argparse

__all__ = ["ABLATIONS", "add_arguments", "main", "register"]

#: The ablations ``--ablation`` offers (:func:`groundinggpt.quickstart.plan.coarse_to_fine`).
ABLATIONS = ("coarse-to-fine",)


def _run(args: argparse.Namespace) -> int:
    from .quickstart import default_plan, fast_plan, run_quickstart

    # QuickstartError and bad inputs are reported in one line by groundinggpt.cli.main.
    plan = fast_plan(args.seed, args.parts) if args.fast else default_plan(args.seed, args.parts)
    report = run_quickstart(args.output, plan=plan, overwrite=args.overwrite, ablation=args.ablation,
                            progress=not args.quiet, threads=args.threads)
    print(report["summary_text"])
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", default="quickstart-run", help="output folder (default: ./quickstart-run); an "
                   "interrupted run there is resumed (--out works too)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier quickstart run in --output")
    p.add_argument("--ablation", choices=ABLATIONS, help="also run the paper's Table 7 ablation (stage 1 on "
                   "coarse data only vs coarse + fine), reporting REC for both")
    p.add_argument("--seed", type=int, default=0, help="world and training seed")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--parts", help="folder of pretrained miniature parts (default: the committed ones)")
    p.add_argument("--fast", action="store_true", help="a very small world and 2 steps per stage: checks the "
                   "whole path in about 15 seconds (the numbers mean nothing)")
    from .cli import add_quiet

    add_quiet(p, "--no-progress")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "quickstart", help="the whole pipeline on a synthetic world on this CPU (15-50 min): train 3 stages, "
        "evaluate, report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=_run)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="groundinggpt quickstart", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return _run(p.parse_args(argv))

"""``groundinggpt data``: build the training sets from the public datasets.

- ``data convert SOURCE ROOT --output FILE``: one source (see ``data sources``).
- ``data build --stage N --config sources.yaml --output DIR``: a whole stage, with stats.
- ``data question-pool TASK --endpoint URL``: more phrasings for a Table 11 family.
- ``data instruct KIND ROOT --endpoint URL --output FILE``: GPT-generated instruction data.
- ``data sources``: the registry.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import jsonsafe


def _options(pairs: list[str]) -> dict:
    out = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep:
            raise SystemExit(f"--option expects KEY=VALUE, got {p!r}")
        try:
            out[key] = jsonsafe.loads(value)
        except ValueError:
            out[key] = value
    return out


def _convert(args: argparse.Namespace) -> int:
    from .convert import convert_source

    report = convert_source(args.source, args.root, args.output, media_root=args.media_root,
                            options=_options(args.option), stage=args.stage, seed=args.seed, strict=args.strict,
                            check_media=not args.no_check_media, resume=not args.restart,
                            progress=not args.quiet)
    print(report.summary())
    return 0


def _sources(args: argparse.Namespace) -> int:
    from .sources import SOURCES, load_source, stage_of

    for name in SOURCES:
        print(f"{name:22s} stage {stage_of(name)}  {load_source(name).FILES}")
    return 0


def _build(args: argparse.Namespace) -> int:
    from .build import build_stage

    result = build_stage(args.stage, args.config, args.output, strict=args.strict, progress=not args.quiet,
                         tokenizer=args.tokenizer, restart=args.restart)
    print(result.summary())
    return 0


def _question_pool(args: argparse.Namespace) -> int:
    from .instruct.question_pool import generate_question_pool

    pool = generate_question_pool(args.task, endpoint=args.endpoint, model=args.model, n=args.n,
                                  rounds=args.rounds, api_key_env=args.api_key_env, timeout=args.timeout)
    text = "\n".join(pool) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"{len(pool)} phrasings -> {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _instruct(args: argparse.Namespace) -> int:
    from .instruct.run import run_instruct

    report = run_instruct(args.kind, args.root, args.output, endpoint=args.endpoint, model=args.model,
                          prompts=args.prompts, concurrency=args.concurrency, budget=args.budget,
                          api_key_env=args.api_key_env, options=_options(args.option), limit=args.limit,
                          max_retries=args.max_retries, timeout=args.timeout, progress=not args.quiet,
                          price_in=args.price_in, price_out=args.price_out, media_root=args.media_root,
                          check_media=not args.no_check_media, max_tokens=args.max_tokens)
    print(report.summary())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="build training data from the public datasets",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    dsub.required = True

    c = dsub.add_parser("convert", help="convert one source to JSONL")
    c.add_argument("source", help="registry name (groundinggpt data sources)")
    c.add_argument("root", help="folder with the source's files as published")
    c.add_argument("--output", required=True, help="JSONL file to write (rejections go to FILE-stem.rejected.jsonl)")
    c.add_argument("--media-root", help="write media paths relative to this folder (default ROOT)")
    c.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a source option (JSON value), e.g. splits='[\"train\"]' or image_dir=/data/coco/train2014")
    c.add_argument("--stage", type=int, help="stage written in the samples (default: the paper's)")
    c.add_argument("--seed", type=int, default=0, help="phrasing choice seed")
    c.add_argument("--strict", action="store_true", help="stop at the first rejected record")
    c.add_argument("--no-check-media", action="store_true", help="do not reject samples whose media file is missing")
    c.add_argument("--restart", action="store_true", help="start over instead of resuming an interrupted run")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=_convert)

    s = dsub.add_parser("sources", help="list the converters")
    s.set_defaults(func=_sources)

    b = dsub.add_parser("build", help="build one stage's training file from sources.yaml")
    b.add_argument("--stage", type=int, choices=(1, 2, 3), required=True)
    b.add_argument("--config", required=True, help="sources.yaml (see docs/data-sources.md)")
    b.add_argument("--output", required=True, help="folder for stageN.jsonl, stats and rejections")
    b.add_argument("--tokenizer", help="tokenizer (name or folder) for the token-length histogram")
    b.add_argument("--strict", action="store_true")
    b.add_argument("--restart", action="store_true", help="convert every source again")
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(func=_build)

    q = dsub.add_parser("question-pool", help="generate more phrasings of a Table 11 task family")
    q.add_argument("task", help="image_caption, reg, rec, object_attribute, video_caption, video_dense_caption, "
                                "temporal_grounding, audio_caption or sound_localization")
    q.add_argument("--endpoint", required=True, help="OpenAI-compatible base URL (…/v1)")
    q.add_argument("--model", default="gpt-3.5-turbo")
    q.add_argument("--n", type=int, default=20, help="phrasings asked per request")
    q.add_argument("--rounds", type=int, default=1, help="requests")
    q.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the key")
    q.add_argument("--timeout", type=float, default=120.0)
    q.add_argument("--output", help="file (default stdout)")
    q.set_defaults(func=_question_pool)

    i = dsub.add_parser("instruct", help="GPT-generated instruction data (paper Figures 4-6)")
    i.add_argument("kind", help="flickr30k-description, flickr30k-conversation, vcr-reasoning, video-conversation")
    i.add_argument("root", help="the source's folder (as for data convert)")
    i.add_argument("--output", required=True, help="JSONL of accepted samples (resumable)")
    i.add_argument("--endpoint", required=True)
    i.add_argument("--model", default="gpt-3.5-turbo")
    i.add_argument("--prompts", help="folder of prompt files overriding the shipped ones")
    i.add_argument("--concurrency", type=int, default=4)
    i.add_argument("--budget", type=int, help="at most this many requests in this run")
    i.add_argument("--limit", type=int, help="at most this many source items")
    i.add_argument("--max-retries", type=int, default=5)
    i.add_argument("--timeout", type=float, default=120.0)
    i.add_argument("--api-key-env", default="OPENAI_API_KEY")
    i.add_argument("--price-in", type=float, default=0.0, help="cost per 1000 prompt tokens (usage log)")
    i.add_argument("--price-out", type=float, default=0.0, help="cost per 1000 completion tokens")
    i.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="a source option, as for convert")
    i.add_argument("--media-root", help="write media paths relative to this folder (default ROOT)")
    i.add_argument("--no-check-media", action="store_true", help="do not skip items whose media file is missing")
    i.add_argument("--max-tokens", type=int, default=1024, help="max_tokens of each request")
    i.add_argument("--quiet", action="store_true")
    i.set_defaults(func=_instruct)

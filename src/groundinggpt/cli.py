"""The ``groundinggpt`` command line: one sub-command per job, each a plain function.

Each job lives with its code and registers itself here through a
``register(subparsers)`` function in its own module (listed in ``COMMANDS``), so
this file stays a table of contents.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Importing the package (which this import does first) sets OMP_WAIT_POLICY=PASSIVE before
# torch loads, for every sub-command: see groundinggpt.openmp_policy.
from groundinggpt.errors import GroundingGPTError

# module path → the sub-commands it registers (documentation only; the module decides)
COMMANDS: dict[str, str] = {
    "groundinggpt.cli_info": "info",
    "groundinggpt.eval.cli": "eval",
    "groundinggpt.train.cli": "train",
    "groundinggpt.serve.cli": "chat, serve, web",
    "groundinggpt.data.synthetic.cli": "synthetic",
    "groundinggpt.data.cli": "data",
    "groundinggpt.cli_quickstart": "quickstart",
    "groundinggpt.convert.cli": "convert",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="groundinggpt",
        description="GroundingGPT: train, evaluate and serve a multimodal grounding LLM.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (GroundingGPTError, OSError) as e:
        # A wrong path or a bad input file is the user's to fix: one line, not a traceback.
        print(f"groundinggpt {args.command}: error: {e}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())

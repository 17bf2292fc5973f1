"""The ``groundinggpt`` command line: one sub-command per job, each a plain function.

Each job lives with its code and registers itself here through a
``register(subparsers)`` function in its own module (listed in ``COMMANDS``), so
this file stays a table of contents.

Conventions every command follows: ``--output`` names what it writes (argparse's prefix
matching also takes ``--out``), ``--quiet`` turns progress bars off, and errors are
reported here, once: an error the user can fix (:class:`GroundingGPTError`, a bad value, a
missing or unreadable file) is one line ``groundinggpt COMMAND: error: ...`` and exit
status 2, never a traceback; the commands themselves do not catch and print.
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


def _label(args: argparse.Namespace) -> str:
    """The command as the user typed it, with its benchmark for ``eval`` (``eval refcoco``)."""
    task = getattr(args, "task", None)
    return f"{args.command} {task}" if args.command == "eval" and isinstance(task, str) else args.command


def add_quiet(parser: argparse.ArgumentParser, *old: str) -> None:
    """``--quiet`` (no progress bars); ``old`` spellings stay accepted but are not shown in ``--help``."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    for flag in old:
        parser.add_argument(flag, dest="quiet", action="store_true", help=argparse.SUPPRESS)


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser().parse_args(argv))


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command (``args.func``) under the one error handler; returns the exit status."""
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (GroundingGPTError, OSError, ValueError) as e:
        # A wrong path, a bad value or a bad input file is the user's to fix: one line, not a traceback.
        print(f"groundinggpt {_label(args)}: error: {e}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())

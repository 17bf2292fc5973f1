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
# torch loads, for every sub-command (see groundinggpt.openmp_policy); it imports no torch itself.
from groundinggpt.errors import GroundingGPTError

# module path → the sub-commands it registers. `groundinggpt COMMAND ...` imports only the module
# listed for COMMAND (tests/test_cli_conventions.py checks the table against what each registers):
# a command's imports (torch for most, none for `data`) are not paid by the others.
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


def module_of(command: str) -> str | None:
    """The module that registers ``command`` (per :data:`COMMANDS`), or None."""
    for module, names in COMMANDS.items():
        if command in names.split(", "):
            return module
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every sub-command, or, given a known ``command``, of that one only (fewer imports)."""
    parser = argparse.ArgumentParser(
        prog="groundinggpt",
        description="GroundingGPT: train, evaluate and serve a multimodal grounding LLM.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    only = module_of(command) if command else None
    for module in [only] if only else COMMANDS:
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
    argv = sys.argv[1:] if argv is None else list(argv)
    return run_command(build_parser(argv[0] if argv else None).parse_args(argv))


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

"""``groundinggpt synthetic --output DIR``: write the synthetic world (also ``python -m groundinggpt.data.synthetic``)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from .generate import DEFAULT_SIZES, blind_baselines, generate_world


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 64x64, got {text!r}") from None
    return width, height


def _count(text: str) -> tuple[str, str, int]:
    try:
        key, n = text.split("=")
        group, family = key.split(".")
        return group, family, int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected GROUP.FAMILY=N such as stage2.rec=5000, got {text!r}") from None


class _DeprecatedSet(argparse.Action):
    """``--set GROUP.FAMILY=N``, the first spelling of ``--count``: still accepted, with a warning,
    because ``--set`` means a recipe key in ``groundinggpt train`` (one flag, one meaning)."""

    def __call__(self, parser, namespace, value, option_string=None):
        group, family, n = value
        print(f"warning: synthetic --set {group}.{family}={n} is deprecated: use --count {group}.{family}={n} "
              "(--set sets recipe keys in groundinggpt train)", file=sys.stderr)
        getattr(namespace, self.dest).append(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", help="output folder: new or empty (or an earlier world, with --overwrite)")
    # The folder as a positional argument, as the command first took it (still accepted; not in --help).
    parser.add_argument("root", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the world already in --output (its media and files; nothing else is touched)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=_size, action="append", metavar="WxH",
                        help="image size; repeat to draw from several (default 64x64)")
    groups = ", ".join(DEFAULT_SIZES)
    parser.add_argument("--count", type=_count, action="append", default=[], metavar="GROUP.FAMILY=N",
                        help=f"a sample count, e.g. stage2.rec=5000 or test.rec=500 (groups: {groups}); repeatable")
    parser.add_argument("--set", type=_count, action=_DeprecatedSet, dest="count", help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every default count")
    parser.add_argument("--video-frames", type=int, default=16)
    parser.add_argument("--video-fps", type=float, default=8.0)
    parser.add_argument("--span-grid", type=int, default=8,
                        help="segments event boundaries snap to: the frames the model samples")
    parser.add_argument("--baselines", action="store_true", help="print the blind constant baselines")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _prepare_root(root: Path, overwrite: bool) -> None:
    """New or empty: fine. An earlier world: replaced with ``overwrite`` (so no stale media
    are left behind when counts shrink). Anything else: refused, never written into."""
    if not root.exists() or (root.is_dir() and not any(root.iterdir())):
        return
    manifest = root / "manifest.json"
    if not root.is_dir() or not manifest.is_file():
        raise SystemExit(f"{root} is not empty and holds no synthetic world (no manifest.json): "
                         "choose a new or empty folder")
    if not overwrite:
        raise SystemExit(f"{root} already holds a synthetic world: pass --overwrite to replace it, "
                         "or choose another folder")
    try:
        written = json.loads(manifest.read_text(encoding="utf-8")).get("files", {})
    except (ValueError, AttributeError):
        written = {}
    for name in [*written, "baselines.json"]:
        (root / name).unlink(missing_ok=True)
    shutil.rmtree(root / "media", ignore_errors=True)
    manifest.unlink()


def _output(args: argparse.Namespace) -> str:
    if args.output and args.root and Path(args.output) != Path(args.root):
        raise SystemExit(f"two output folders given: --output {args.output} and {args.root}; give one")
    if not (args.output or args.root):
        raise SystemExit("give the output folder: --output DIR")
    return args.output or args.root


def run(args: argparse.Namespace) -> int:
    args.root = _output(args)
    _prepare_root(Path(args.root), args.overwrite)
    sizes = {g: {f: round(n * args.scale) for f, n in fams.items()} for g, fams in DEFAULT_SIZES.items()}
    for group, family, n in args.count:
        sizes.setdefault(group, {})[family] = n
    manifest = generate_world(args.root, seed=args.seed, sizes=sizes, image_size=args.image_size or [(64, 64)],
                              video_frames=args.video_frames, video_fps=args.video_fps, span_grid=args.span_grid,
                              progress=not args.quiet)
    print(json.dumps({"root": str(manifest.root), "files": manifest.files,
                      "seconds": round(manifest.seconds, 1)}, indent=2))
    if args.baselines:
        print(json.dumps(blind_baselines(manifest.root), indent=2))
    return 0


def register(subparsers) -> None:
    """Add the ``synthetic`` sub-command to the ``groundinggpt`` CLI."""
    parser = subparsers.add_parser("synthetic", help="generate the synthetic grounding world",
                                   description=__doc__)
    add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m groundinggpt.data.synthetic", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))

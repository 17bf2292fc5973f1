"""``groundinggpt chat``: a multi-turn terminal chat with grounded answers.

Media are attached with flags or commands; each answer is followed by its grounded
entities (phrase → box in original-image coordinates and pixels, or span in seconds)::

    $ groundinggpt chat --model out/tiny --image cat.jpg
    you> Where is the cat?
    gpt> The cat[0.120, 0.300, 0.610, 0.950] is on the sofa.
      - The cat -> box [0.120, 0.300, 0.610, 0.950] = (77, 144, 390, 456) px of 640x480
    you> /save cat_boxes.png

Commands: ``/image PATH``, ``/video PATH``, ``/audio PATH`` (attach or replace a
medium: the conversation restarts, because the model takes one medium of each kind
per conversation, given in its first message), ``/reset``, ``/save PATH``, ``/help``,
``/quit``.

:func:`chat_loop` takes its input and output streams as arguments so that it can be
driven by a script (tests) as well as by a person (readline editing and history).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from ..errors import GroundingGPTError
from ..loading import add_device_arguments, device_kwargs
from ..grounding import format_box
from ..processor import MEDIA_KINDS, GroundedOutput
from .engine import load_engine

HELP = """commands:
  /image PATH   attach or replace the image  (restarts the conversation)
  /video PATH   attach or replace the video  (restarts the conversation)
  /audio PATH   attach or replace the audio  (restarts the conversation)
  /reset        forget the conversation (media stay attached)
  /save PATH    save the image with the last answer's boxes drawn (or the video's time spans)
  /quit         leave (also Ctrl-D)
anything else is a question to the model."""

RESTART_NOTE = ("(conversation restarted: the model takes one image, one video and one audio per "
                "conversation, all given with its first question)")


def describe_entities(output: GroundedOutput) -> list[str]:
    """One line per grounded entity, in the user's frame.

    Boxes are printed relative to the original image and in its pixels; spans in
    seconds (and as fractions of the duration, the model's own unit).
    """
    lines = []
    for e in output.entities:
        phrase = e.phrase or "(no phrase)"
        if e.box is not None:
            line = f"  - {phrase} -> box {format_box(e.box)}"
            if output.image_size is not None:
                w, h = output.image_size
                px = ", ".join(f"{v:.0f}" for v in e.box.to_pixels(w, h))
                line += f" = ({px}) px of {w}x{h}"
            lines.append(line)
        if e.span is not None:
            if output.duration is not None:
                a, b = e.span.start * output.duration, e.span.end * output.duration
                lines.append(f"  - {phrase} -> span {a:.2f}-{b:.2f} s of {output.duration:.2f} s")
            else:
                lines.append(f"  - {phrase} -> span {{{e.span.start:.2f}, {e.span.end:.2f}}} (no duration known)")
    return lines


def user_turn(media: dict[str, Any], question: str, first: bool) -> dict[str, Any]:
    """The next user message: the media go with the first turn of a conversation only."""
    content: list[dict[str, Any]] = []
    if first:
        content = [{"type": kind, kind: media[kind]} for kind in MEDIA_KINDS if media.get(kind) is not None]
    content.append({"type": "text", "text": question})
    return {"role": "user", "content": content}


class ChatSession:
    """The state of one terminal conversation: attached media, messages, last answer.

    Args:
        engine: a :class:`~groundinggpt.api.GroundingGPT` (anything with ``.generate``
            and ``.processor``).
        stream: where to write answers while they are generated (``"gpt> "``, the pieces,
            a newline); ``None`` returns them whole from :meth:`handle` instead.
        settings: keyword arguments for :class:`~groundinggpt.api.GenerationSettings`.
    """

    def __init__(self, engine: Any, stream: TextIO | None = None, **settings: Any):
        self.engine = engine
        self.stream = stream
        self.settings = settings
        self.media: dict[str, str] = {}
        self.messages: list[dict[str, Any]] = []
        self.last_output: GroundedOutput | None = None

    def reset(self) -> None:
        self.messages = []
        self.last_output = None

    def attach(self, kind: str, path: str) -> str:
        """Check and attach a medium; returns what to tell the user.

        Raises:
            GroundingGPTError: the file is missing or cannot be decoded (nothing changes).
        """
        # Decoding once now reports a bad file at once instead of at the next question.
        _, info = self.engine.processor.load_medium(kind, path)
        restarted = bool(self.messages)
        self.media[kind] = path
        self.reset()
        facts = []
        if info.original_size:
            facts.append("{}x{}".format(*info.original_size))
        if info.duration is not None:
            facts.append(f"{info.duration:.2f} s")
        text = f"attached {kind} {path}" + (f" ({', '.join(facts)})" if facts else "")
        return text + ("\n" + RESTART_NOTE if restarted else "")

    def ask(self, question: str) -> GroundedOutput:
        """Send one user turn and remember it with the answer."""
        turn = user_turn(self.media, question, first=not self.messages)
        if self.stream is None:
            output = self.engine.generate([[*self.messages, turn]], **self.settings)[0]
        else:
            written: list[str] = []
            output = None

            def show(row: int, piece: str) -> None:
                if not written:
                    self.stream.write("gpt> ")
                written.append(piece)
                self.stream.write(piece)
                self.stream.flush()

            try:
                output = self.engine.generate([[*self.messages, turn]], on_text=show, **self.settings)[0]
            finally:
                if written:  # what streamed before a failure stays on its own line
                    sent = "".join(written)
                    rest = output.text[len(sent):] if output is not None and output.text.startswith(sent) else ""
                    self.stream.write(rest + "\n")
                    self.stream.flush()
        # The answer goes back in the user's frame; the processor converts it again next turn.
        self.messages += [turn, {"role": "assistant", "content": output.text}]
        self.last_output = output
        return output

    def save(self, path: str) -> str:
        """Save the image with the last answer's boxes, or the video's timeline."""
        from PIL import Image

        from .draw import draw_grounding, draw_timeline

        target = Path(path).expanduser()
        formats = Image.registered_extensions()
        if formats.get(target.suffix.lower()) not in Image.SAVE:
            return (f"cannot save to {path}: {target.suffix or 'no extension'} is not a picture format "
                    "this can write; use .png or .jpg")
        if not target.parent.is_dir():
            return f"cannot save to {path}: the folder {target.parent} does not exist"
        out = self.last_output
        if "image" in self.media:
            from ..media.image import load_image  # same EXIF handling as the model's input

            image = load_image(self.media["image"])
            if out is not None:
                image = draw_grounding(image, out)
            image.save(target)
            n = len(out.boxes) if out is not None else 0
            return f"saved {path} ({n} box{'es' if n != 1 else ''})"
        if out is not None and out.spans_seconds:
            labels = [e.phrase for e in out.entities if e.span is not None]
            draw_timeline(out.spans_seconds, out.duration, labels).save(target)
            return f"saved {path} (timeline of {len(out.spans_seconds)} span(s))"
        return "nothing to save: attach an image (/image PATH) or get an answer with time spans first"

    def handle(self, line: str) -> tuple[str, bool]:
        """Act on one input line → (text to print, keep going)."""
        line = line.strip()
        if not line:
            return "", True
        if not line.startswith("/"):
            out = self.ask(line)
            if self.stream is not None:  # the answer itself has been written already
                return "\n".join(describe_entities(out)), True
            return "\n".join([f"gpt> {out.text}", *describe_entities(out)]), True
        try:
            cmd, *args = shlex.split(line)
        except ValueError as e:  # an unbalanced quote
            return f"error: {e}", True
        if cmd in ("/quit", "/exit", "/q"):
            return "bye", False
        if cmd == "/help":
            return HELP, True
        if cmd == "/reset":
            self.reset()
            return "conversation reset" + (f" (still attached: {', '.join(self.media)})" if self.media else ""), True
        if cmd in ("/image", "/video", "/audio", "/save"):
            if len(args) != 1:
                return f"usage: {cmd} PATH", True
            if cmd == "/save":
                return self.save(args[0]), True
            return self.attach(cmd[1:], args[0]), True
        return f"unknown command {cmd!r}; /help lists the commands", True


def _reader(stdin: TextIO | None, stdout: TextIO) -> Callable[[str], str]:
    if stdin is None:
        try:  # line editing and history for a person at a terminal
            import readline  # noqa: F401
        except ImportError:
            pass
        return input

    def read(prompt: str) -> str:
        stdout.write(prompt)
        stdout.flush()
        line = stdin.readline()
        if not line:
            raise EOFError
        return line

    return read


def chat_loop(session: ChatSession, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Read lines until ``/quit`` or end of input, answering each.

    Args:
        session: the conversation state.
        stdin: a stream to read from; ``None`` reads the terminal with readline.
        stdout: where to write (default ``sys.stdout``).

    Returns:
        0 (errors in single turns are reported and the loop goes on).
    """
    stdout = stdout or sys.stdout
    read = _reader(stdin, stdout)
    print("GroundingGPT chat. /help for commands, /quit to leave.", file=stdout)
    while True:
        try:
            line = read("you> ")
        except EOFError:
            print(file=stdout)
            break
        try:
            text, keep_going = session.handle(line)
        except (GroundingGPTError, OSError, ValueError) as e:
            # A bad file or request ends this turn, not the session.
            text, keep_going = f"error: {e}", True
        if text:
            print(text, file=stdout, flush=True)
        if not keep_going:
            break
    return 0


def run(args: argparse.Namespace) -> int:
    engine = load_engine(args.model, **device_kwargs(args))
    session = ChatSession(engine, stream=sys.stdout, max_new_tokens=args.max_new_tokens,
                          temperature=args.temperature, top_p=args.top_p, seed=args.seed)
    for kind in MEDIA_KINDS:
        path = getattr(args, kind)
        if path:
            try:
                print(session.attach(kind, path))
            except GroundingGPTError as e:
                print(f"error: --{kind}: {e}", file=sys.stderr)
                return 2
    return chat_loop(session)


def add_generation_args(p: argparse.ArgumentParser, max_new_tokens: int = 256) -> None:
    p.add_argument("--max-new-tokens", type=int, default=max_new_tokens, help="answer length limit in tokens (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (with --temperature > 0; default: %(default)s)")
    p.add_argument("--seed", type=int, default=None, help="seed for sampling")


def register(sub: Any) -> None:
    p = sub.add_parser("chat", help="multi-turn terminal chat with grounded answers")
    p.add_argument("--model", required=True, help="a model folder (or 'tiny' for a random-init demo)")
    add_device_arguments(p)
    p.add_argument("--image", help="image file to talk about")
    p.add_argument("--video", help="video file to talk about")
    p.add_argument("--audio", help="audio file to talk about")
    add_generation_args(p)
    p.set_defaults(func=run)

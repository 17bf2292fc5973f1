"""``groundinggpt web``: a Gradio page to chat about an image, a video and/or a sound.

Upload media on the left, ask on the right. Each answer's boxes are drawn on the
image with their phrases as labels (a sound-source answer's box too: it is a box on
the image), its time spans on a timeline under the video, and the parsed grounding
is shown as JSON. Changing a medium starts a new conversation, because the model
takes one medium of each kind per conversation, in its first question.

Written for Gradio 6 (``gr.Chatbot`` holds ``{"role", "content"}`` messages).
The page keeps only plain data per browser session (messages, media paths); all
sessions share one model, and Gradio's queue runs one answer at a time.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

from ..errors import GroundingGPTError
from ..loading import add_device_arguments, device_kwargs
from .chat import describe_entities, user_turn
from .engine import load_engine

RESTART_NOTE = "Media changed: a new conversation starts (the model takes one image, video and audio per conversation)."


# The processor locates a bad medium as "conversation 0, message 0, part 0": its own indexes,
# which mean nothing on a page with one upload box per kind.
_LOCATION = re.compile(r"(?:conversation \d+, )?message \d+, part \d+: ")
_EXPECTED = {"image": "a PNG, JPEG, WebP, GIF or BMP image", "video": "a video file (MP4, WebM, MKV, MOV ...)",
             "audio": "a sound file (WAV, FLAC, MP3, OGG, M4A ...) or a video with sound"}


def user_error(error: BaseException, media: dict[str, str]) -> str:
    """``error`` as the page shows it: the uploaded file by its name (never the server's
    temporary path) and no internal message/part indexes.

    >>> user_error(ValueError("conversation 0, message 0, part 0: /tmp/gradio/1f/cat.png: "
    ...                       "cannot identify image file '/tmp/gradio/1f/cat.png'"), {"image": "/tmp/gradio/1f/cat.png"})
    "Error: the image cat.png cannot be used: cannot identify image file 'cat.png'"
    """
    text = _LOCATION.sub("", str(error))
    kind = None
    for medium, path in sorted(media.items(), key=lambda item: -len(item[1])):  # longest first: no partial paths
        name = os.path.basename(path)
        if path in text:
            kind = kind or medium
            text = text.replace(path, name)
        folder = os.path.dirname(path)
        if folder and folder != os.sep:
            text = text.replace(folder + os.sep, "").replace(folder, "<upload>")
    if kind is None:
        return f"Error: {text}"
    name = os.path.basename(media[kind])
    if text.startswith(name + ": "):
        text = text[len(name) + 2:]
    return f"Error: the {kind} {name} cannot be used: {text}"


def upload_refusal(kind: str, file_name: str | None, error: BaseException, path: str | None = None) -> str:
    """The message for an upload Gradio's own preprocessing could not read (before any
    handler runs): the file's name, what was expected and the decoder's reason, with the
    server's copy of the file (``path``) named by the file's name.

    >>> upload_refusal("image", "cat.png", OSError("cannot identify image file '/tmp/gradio/9a/cat.png'"),
    ...                "/tmp/gradio/9a/cat.png")
    "cat.png could not be read as a PNG, JPEG, WebP, GIF or BMP image (cannot identify image file 'cat.png')."
    """
    name = os.path.basename(file_name or path or "") or f"the {kind}"
    reason = str(error)
    for where in (path, getattr(error, "filename", None)):
        if where:
            reason = reason.replace(str(where), name)
    if path and os.path.dirname(path) not in ("", os.sep):
        reason = reason.replace(os.path.dirname(path), "<upload>")
    return f"{name} could not be read as {_EXPECTED[kind]} ({reason})."


def _friendly(component: Any, kind: str) -> Any:
    """``component`` whose failures to read an upload are a :class:`gradio.Error` with
    :func:`upload_refusal`'s message, instead of Gradio's "could not preprocess input
    component at index N" and the server's temporary path.

    The instance's ``preprocess`` is wrapped rather than the class subclassed: Gradio
    writes a ``.pyi`` file next to the module of every component subclass it sees."""
    import gradio as gr

    plain = component.preprocess

    def preprocess(payload: Any) -> Any:
        try:
            return plain(payload)
        except gr.Error:
            raise
        except Exception as e:  # noqa: BLE001 - any decoder failure is the upload's
            name, path = getattr(payload, "orig_name", None), getattr(payload, "path", None)
            raise gr.Error(upload_refusal(kind, name, e, path), print_exception=False) from None

    component.preprocess = preprocess
    return component


def _empty_state() -> dict[str, Any]:
    return {"messages": [], "media": {}, "history": []}


def _start_turn(question: str, image: str | None, video: str | None, audio: str | None, state: dict[str, Any]):
    """→ (history with the question, media, earlier messages, the new user turn), or
    ``None`` when there is no question."""
    question = (question or "").strip()
    if not question:
        return None
    history = list(state["history"])
    media = {k: v for k, v in (("image", image), ("video", video), ("audio", audio)) if v}
    messages = state["messages"]
    if media != state["media"]:
        if messages:
            history.append({"role": "assistant", "content": RESTART_NOTE})
        messages = []
    history.append({"role": "user", "content": question})
    return history, media, messages, user_turn(media, question, first=not messages)


def _finish_turn(out: Any, history: list, media: dict, messages: list, turn: dict, image: str | None):
    from ..media.image import load_image
    from .draw import draw_grounding, draw_timeline

    messages = [*messages, turn, {"role": "assistant", "content": out.text}]
    history = [*history, {"role": "assistant", "content": out.text}]
    boxes = draw_grounding(load_image(image), out) if image else None
    timeline = None
    if out.spans_seconds:
        labels = [e.phrase for e in out.entities if e.span is not None]
        timeline = draw_timeline(out.spans_seconds, out.duration, labels)
    grounding = {**out.to_dict(), "summary": describe_entities(out)}
    return history, boxes, timeline, grounding, {"messages": messages, "media": media, "history": history}, ""


def respond(engine: Any, settings: dict[str, Any], question: str, image: str | None, video: str | None,
            audio: str | None, state: dict[str, Any] | None):
    """One question → (chat history, boxes image, timeline image, grounding JSON, state, cleared box).

    Never raises for bad input: errors are shown in the chat.
    """
    state = state or _empty_state()
    started = _start_turn(question, image, video, audio, state)
    if started is None:
        return list(state["history"]), None, None, None, state, ""
    history, media, messages, turn = started
    try:
        out = engine.generate([[*messages, turn]], **settings)[0]
    except (GroundingGPTError, OSError, ValueError) as e:
        history.append({"role": "assistant", "content": user_error(e, media)})
        return history, None, None, None, {**state, "history": history}, question
    return _finish_turn(out, history, media, messages, turn, image)


def respond_stream(engine: Any, settings: dict[str, Any], question: str, image: str | None, video: str | None,
                   audio: str | None, state: dict[str, Any] | None):
    """:func:`respond` as a generator: the answer grows in the chat while it is generated
    (boxes released whole, in the image's frame), then the final tuple with the drawings."""
    import queue
    import threading

    state = state or _empty_state()
    started = _start_turn(question, image, video, audio, state)
    if started is None:
        yield respond(engine, settings, question, image, video, audio, state)
        return
    history, media, messages, turn = started
    pieces: queue.Queue = queue.Queue()
    done = object()
    result: dict[str, Any] = {}
    left = threading.Event()  # set when the page stops listening (closed, or a new question)

    def work() -> None:
        try:
            result["out"] = engine.generate([[*messages, turn]], on_text=lambda row, piece: pieces.put(piece),
                                            cancel=[left], **settings)[0]
        except Exception as e:  # noqa: BLE001 - handed to the page below
            result["error"] = e
        finally:
            pieces.put(done)

    threading.Thread(target=work, name="groundinggpt-web-answer", daemon=True).start()
    text = ""
    try:
        while (piece := pieces.get()) is not done:
            if piece:
                text += piece
                yield [*history, {"role": "assistant", "content": text}], None, None, None, state, ""
    finally:
        if "out" not in result and "error" not in result:
            left.set()  # the generator was closed mid-answer: stop generating it
    error = result.get("error")
    if isinstance(error, (GroundingGPTError, OSError, ValueError)):
        history.append({"role": "assistant", "content": user_error(error, media)})
        yield history, None, None, None, {**state, "history": history}, question
        return
    if error is not None:
        raise error
    yield _finish_turn(result["out"], history, media, messages, turn, image)


def build_demo(engine: Any, max_new_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0,
               seed: int | None = None) -> Any:
    """The Gradio Blocks page for ``engine`` (a :class:`~groundinggpt.api.GroundingGPT`)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # never phone home
    import gradio as gr

    settings = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)

    def on_send(question, image, video, audio, state):
        yield from respond_stream(engine, settings, question, image, video, audio, state)

    def on_clear():
        return [], None, None, None, _empty_state(), ""

    with gr.Blocks(title="GroundingGPT") as demo:
        gr.Markdown("## GroundingGPT\nUpload an image, a video and/or a sound, then ask. "
                    "Boxes are drawn on the image, time spans on a timeline under the video.")
        state = gr.State(_empty_state())
        with gr.Row():
            with gr.Column(scale=1):
                # image_mode=None: Gradio only reads the header (no decode of its own, so no bomb
                # there); the processor decodes it with its pixel limit.
                image_in = _friendly(gr.Image(type="filepath", image_mode=None, label="Image", sources=["upload"],
                                              height=260, elem_id="image-in"), "image")
                # PNG, not Gradio's default WebP: lossy coding would blur thin box outlines.
                boxes_out = gr.Image(type="pil", format="png", label="Answer on the image", interactive=False,
                                     height=260, elem_id="boxes-out")
                video_in = _friendly(gr.Video(label="Video", sources=["upload"], elem_id="video-in"), "video")
                timeline_out = gr.Image(type="pil", format="png", label="Time spans", interactive=False,
                                        elem_id="timeline-out")
                audio_in = _friendly(gr.Audio(type="filepath", label="Audio", sources=["upload"], elem_id="audio-in"),
                                     "audio")
            with gr.Column(scale=2):
                chatbot = gr.Chatbot(label="Conversation", height=420, elem_id="chat")
                question = gr.Textbox(label="Question", placeholder="e.g. Where is the red square?",
                                      elem_id="question")
                with gr.Row():
                    send = gr.Button("Send", variant="primary", elem_id="send")
                    clear = gr.Button("New conversation", elem_id="clear")
                grounding = gr.JSON(label="Grounding (original-image coordinates, seconds)", elem_id="grounding")
        inputs = [question, image_in, video_in, audio_in, state]
        outputs = [chatbot, boxes_out, timeline_out, grounding, state, question]
        send.click(on_send, inputs, outputs)
        question.submit(on_send, inputs, outputs)
        clear.click(on_clear, None, outputs)
    return demo


def launch(demo: Any, host: str = "127.0.0.1", port: int = 7860, block: bool = True) -> Any:
    """Serve ``demo`` locally (no share link, no server-side rendering process).

    ``show_error``: an upload Gradio itself cannot read (a corrupt image fails in its
    preprocessing, before our handler) is reported with its reason, not a bare "Error".
    """
    return demo.queue().launch(server_name=host, server_port=port, share=False, ssr_mode=False,
                               prevent_thread_lock=not block, quiet=not block, show_error=True)


def run(args: argparse.Namespace) -> int:
    demo = build_demo(load_engine(args.model, **device_kwargs(args)), max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                      top_p=args.top_p, seed=args.seed)
    launch(demo, args.host, args.port)
    return 0


def register(sub: Any) -> None:
    from .chat import add_generation_args

    p = sub.add_parser("web", help="Gradio page: upload media, chat, see boxes and time spans")
    p.add_argument("--model", required=True, help="a model folder (or 'tiny' for a random-init demo)")
    add_device_arguments(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")
    add_generation_args(p)
    p.set_defaults(func=run)

"""Helpers shared by the serve tests (no tests here): a model folder, a scripted engine,
a uvicorn server on a free loopback port, and media as bytes / data URLs."""

from __future__ import annotations

import base64
import io

import numpy as np
import soundfile as sf
import torch
from PIL import Image, ImageDraw

from groundinggpt.api import GroundingGPT
from groundinggpt.serve.background import BackgroundServer as UvicornThread  # noqa: F401 - the tests' name for it
from groundinggpt.serve.background import free_port  # noqa: F401

# conftest.make_image's red rectangle: (10, 8)-(40, 30) in a 96x64 image.
IMAGE_SIZE = (96, 64)
RED_BOX_PX = (10, 8, 40, 30)
# The same box in the padded square the model sees (96x96, 16 px of padding on top).
RED_BOX_SQUARE = "[0.104, 0.250, 0.417, 0.479]"


def make_image(size=IMAGE_SIZE, box=RED_BOX_PX) -> Image.Image:
    img = Image.new("RGB", size, (240, 240, 240))
    ImageDraw.Draw(img).rectangle(box, fill=(220, 30, 30))
    return img


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def wav_bytes(seconds: float = 2.5, rate: int = 16000, freq: float = 440.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate, format="WAV")
    return buf.getvalue()


def chatty_tiny() -> GroundingGPT:
    """The tiny preset with its weights scaled up.

    At the preset's init scale every prompt gets the same degenerate answer; scaled
    weights make answers depend on the prompt, so mixed-up answers would show.
    """
    gg = GroundingGPT.from_preset("tiny", seed=0)
    with torch.no_grad():
        for p in gg.model.parameters():
            if p.dim() >= 2:
                p.mul_(4.0)
    return gg


def save_model(path) -> str:
    chatty_tiny().save_pretrained(path)
    return str(path)


class ScriptedGroundingGPT(GroundingGPT):
    """The real processor (media decoding, frames, post-processing) with scripted answers.

    The answer is written in the model's frame (padded square, fractions of duration),
    exactly as a trained model would write it, so the front ends' coordinate handling
    is tested end to end: an image gets the red box, a video a span, text an echo.
    """

    def generate(self, conversations, settings=None, on_text=None, cancel=None, **overrides):
        """Streams too (``on_text``): the scripted text token by token through the real
        :class:`~groundinggpt.streaming.AnswerStream`, as a generating model would."""
        from groundinggpt.streaming import AnswerStream

        batch = self.processor(conversations, add_generation_prompt=True)
        outs = []
        for row, (conv, infos) in enumerate(zip(conversations, batch["media_info"], strict=True)):
            kinds = {m.kind for m in infos}
            if "image" in kinds:
                text = f"The red square{RED_BOX_SQUARE} is on the left."
            elif "video" in kinds:
                text = "The bar grows {0.25, 0.75}."
            else:
                last = conv[-1]["content"]
                last = last if isinstance(last, str) else " ".join(p.get("text", "") for p in last)
                text = f"You said: {last}"
            if on_text is not None:
                on_text(row, "")
                stream = AnswerStream(self.processor, infos)
                for token in self.processor.tokenizer(text, add_special_tokens=False)["input_ids"]:
                    piece = stream.push(token)
                    if piece:
                        on_text(row, piece)
            out = self.processor.post_process(text, infos)
            out.finish_reason = "stop"
            outs.append(out)
        return outs


def scripted_tiny() -> ScriptedGroundingGPT:
    gg = GroundingGPT.from_preset("tiny", seed=0)
    return ScriptedGroundingGPT(gg.model, gg.processor)



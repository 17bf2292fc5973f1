"""A tiny synthetic grounding data set, for smoke runs and tests of the training pipeline.

Images hold one coloured rectangle on a grey background and ask where it is (REC, the
answer is its box); a short video has a bar that sweeps in during the second half
(temporal grounding); a 440 Hz tone asks for a description (audio caption). Every
file is generated here, so a CPU run needs no download.

Example:
    >>> import tempfile
    >>> from groundinggpt.data.schema import read_jsonl
    >>> root = tempfile.mkdtemp()
    >>> path = write_toy_dataset(root, n_images=2, n_videos=0, n_audios=0)
    >>> [s.task for s in read_jsonl(path)]
    ['rec', 'rec']
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np

from ..grounding import Box, Span, format_box, format_span

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (230, 210, 40)}


def _rec_sample(root: Path, index: int, rng: random.Random, stage: int, prefix: str) -> dict[str, Any]:
    from PIL import Image, ImageDraw

    width, height = rng.choice([(96, 64), (64, 96), (80, 80)])
    name, colour = rng.choice(sorted(COLOURS.items()))
    x1, y1 = rng.randint(0, width // 2), rng.randint(0, height // 2)
    x2, y2 = rng.randint(x1 + 8, width - 1), rng.randint(y1 + 8, height - 1)
    img = Image.new("RGB", (width, height), (235, 235, 235))
    ImageDraw.Draw(img).rectangle((x1, y1, x2, y2), fill=colour)
    rel = f"images/{prefix}{index:03d}.png"
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    img.save(root / rel)
    box = Box(x1 / width, y1 / height, (x2 + 1) / width, (y2 + 1) / height)
    return {
        "id": f"{prefix}rec-{index:03d}", "task": "rec", "stage": stage, "source": "toy",
        "messages": [
            {"role": "user", "content": [{"type": "image", "image": rel},
                                         {"type": "text", "text": f"Output the coordinate of the {name} rectangle."}]},
            {"role": "assistant", "content": f"The {name} rectangle{format_box(box)}."},
        ],
        "meta": None,
    }


def _video_sample(root: Path, index: int, stage: int, prefix: str) -> dict[str, Any]:
    from ..media.video import write_video

    frames = []
    for k in range(8):
        f = np.full((48, 64, 3), 30, dtype=np.uint8)
        if k >= 4:  # the bar appears in the second half: span {0.50, 1.00}
            f[:, : 16 * (k - 3)] = (200, 40, 40)
        frames.append(f)
    rel = f"videos/{prefix}{index:03d}.mp4"
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    write_video(root / rel, frames, fps=4)
    return {
        "id": f"{prefix}tg-{index:03d}", "task": "temporal_grounding", "stage": stage, "source": "toy",
        "messages": [
            {"role": "user", "content": [{"type": "video", "video": rel},
                                         {"type": "text", "text": "When did the red bar appear in the video?"}]},
            {"role": "assistant", "content": f"The red bar appears{format_span(Span(0.5, 1.0))}."},
        ],
        "meta": None,
    }


def _audio_sample(root: Path, index: int, stage: int, prefix: str) -> dict[str, Any]:
    import soundfile as sf

    t = np.arange(int(16000 * 2.5)) / 16000
    rel = f"audios/{prefix}{index:03d}.wav"
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    sf.write(root / rel, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    return {
        "id": f"{prefix}ac-{index:03d}", "task": "audio_caption", "stage": stage, "source": "toy",
        "messages": [
            {"role": "user", "content": [{"type": "audio", "audio": rel},
                                         {"type": "text", "text": "Describe the sound briefly."}]},
            {"role": "assistant", "content": "A steady high tone."},
        ],
        "meta": None,
    }


def toy_samples(root: str | Path, n_images: int = 6, n_videos: int = 1, n_audios: int = 1, stage: int = 1,
                seed: int = 0, prefix: str = "") -> list[dict[str, Any]]:
    """Write the media under ``root`` and return the sample dicts (schema of :mod:`groundinggpt.data.schema`).

    Args:
        root: media root; files go to ``images/``, ``videos/``, ``audios/``.
        n_images / n_videos / n_audios: how many samples of each kind.
        stage: value of each sample's ``stage`` field.
        seed: drives rectangle sizes, positions and colours.
        prefix: prepended to ids and file names (to make several disjoint sets under one root).
    """
    root = Path(root)
    rng = random.Random(seed)
    samples = [_rec_sample(root, i, rng, stage, prefix) for i in range(n_images)]
    samples += [_video_sample(root, i, stage, prefix) for i in range(n_videos)]
    samples += [_audio_sample(root, i, stage, prefix) for i in range(n_audios)]
    return samples


def write_toy_dataset(root: str | Path, name: str = "train.jsonl", **kwargs: Any) -> Path:
    """Write media and a JSONL file under ``root`` (see :func:`toy_samples`); return the JSONL path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    with path.open("w", encoding="utf-8") as f:
        for sample in toy_samples(root, **kwargs):
            f.write(json.dumps(sample) + "\n")
    return path

"""Open one medium cheaply to tell whether it is usable: the check before a long training run.

Cheaper than decoding for training: an image's header is read and its structure verified
(no pixel decode), a video's container is opened and one frame decoded, an audio file's
header is read. Catches missing, empty, truncated-header and wrong-type files; a file
corrupt deep inside still fails later, when it is decoded. Each modality of the table
(:mod:`groundinggpt.modalities`) names its probe here.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import MediaError

__all__ = ["probe_medium", "probe_image", "probe_video", "probe_audio"]


def probe_image(path: Path, max_image_pixels: int | None = None) -> str | None:
    """An image's header and structure (no pixel decode), and its pixel count against ``max_image_pixels``."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        if w <= 0 or h <= 0:
            return f"{path}: image has size {w}x{h}"
        if max_image_pixels is not None and w * h > max_image_pixels:
            return f"{path}: image has {w * h} pixels, more than max_image_pixels={max_image_pixels}"
        im.verify()
    return None


def probe_video(path: Path, max_image_pixels: int | None = None) -> str | None:
    """A video's container, the loader's stream checks, and one decoded frame."""
    from .containers import open_input
    from .video_stream import video_stream

    with open_input(str(path)) as container:
        try:
            video_stream(container, str(path))  # the loader's own checks (a still image ...)
        except MediaError as e:
            return str(e)
        if next(container.decode(video=0), None) is None:
            return f"{path}: no decodable video frame"
    return None


def probe_audio(path: Path, max_image_pixels: int | None = None) -> str | None:
    """An audio file's header (libsndfile, else the container's audio stream) and its extent."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
        if info.frames == 0:
            return f"{path}: contains no audio samples"
        from .audio import check_audio_extent

        try:
            check_audio_extent(info.frames, info.samplerate, str(path))
        except MediaError as e:
            return str(e)
    except RuntimeError:  # not a libsndfile format: an m4a, or a video's audio track
        from .containers import open_input

        with open_input(str(path)) as container:
            if not container.streams.audio:
                return f"{path}: expected an audio stream, found none"
    return None


def probe_medium(kind: str, path: str | os.PathLike, max_image_pixels: int | None = None) -> str | None:
    """Open one medium cheaply; return ``None`` if usable, else the reason (naming the file)."""
    from ..modalities import MODALITY

    path = Path(path)
    if not path.is_file():
        return f"{path}: file not found" if not path.exists() else f"{path}: not a regular file"
    if path.stat().st_size == 0:
        return f"{path}: the file is empty (0 bytes)"
    if kind not in MODALITY:
        return f"{path}: unknown media kind {kind!r}"
    try:
        return MODALITY[kind].probe_function()(path, max_image_pixels)
    except Exception as e:  # noqa: BLE001 - any decoder failure means "unusable", with its message
        return f"{path}: cannot be opened as {kind} ({type(e).__name__}: {e})"

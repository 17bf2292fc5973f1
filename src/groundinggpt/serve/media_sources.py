"""Where a request's media come from, and whether they fit the server's limits.

A server must never read an arbitrary file or fetch a URL because a request says so.
Media therefore come only from

- ``data:`` URLs / base64 payloads (decoded here, strictly), or
- paths (plain or ``file://``) that resolve — symlinks followed — to a file inside
  the configured media root.

Everything else (``http(s)://``, other schemes, paths outside the root, local paths
when no root is configured) is refused with an :class:`~.errors.APIError` before any
decoding. Limits (pixels, seconds) are checked from headers, before decoding.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import urllib.parse
import warnings
from pathlib import Path

from .errors import APIError

# The families a data URL's media type may name for each kind; an empty type and
# application/octet-stream are accepted because clients often send them for any file.
_FAMILIES = {"image": ("image/",), "video": ("video/",), "audio": ("audio/", "video/")}
_ANY_TYPE = ("", "application/octet-stream")
_DATA_URL = re.compile(r"^data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<payload>.*)$", re.DOTALL | re.IGNORECASE)
AUDIO_FORMATS = ("wav", "mp3", "flac", "ogg", "opus", "webm", "m4a", "aac", "pcm16")


def b64decode_strict(payload: str, param: str) -> bytes:
    """Decode base64 (line breaks allowed, nothing else), refusing empty payloads."""
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise APIError(400, f"{param}: the payload is not valid base64 ({e})", param=param,
                       code="invalid_base64") from None
    if not data:
        raise APIError(400, f"{param}: the payload is empty", param=param, code="invalid_base64")
    return data


def decode_data_url(url: str, kind: str, param: str) -> bytes:
    """``data:<type>;base64,<payload>`` → bytes, checking the type fits ``kind``."""
    m = _DATA_URL.match(url)
    if m is None:
        raise APIError(400, f"{param}: malformed data URL; expected 'data:{kind}/<type>;base64,<payload>'",
                       param=param, code="invalid_data_url")
    mime = m["mime"].strip().lower()
    if "base64" not in (p.strip().lower() for p in m["params"].split(";")):
        raise APIError(400, f"{param}: only base64 data URLs are accepted ('data:{kind}/<type>;base64,...')",
                       param=param, code="invalid_data_url")
    if mime not in _ANY_TYPE and not mime.startswith(_FAMILIES[kind]):
        raise APIError(400, f"{param}: media type {mime!r} is not {kind}; expected {kind}/*",
                       param=param, code="invalid_data_url")
    return b64decode_strict(m["payload"], param)


class MediaResolver:
    """Turns the URLs of a request into sources the processor accepts (bytes or a path).

    Args:
        media_root: the only folder local paths may point into; ``None`` disables paths.
    """

    def __init__(self, media_root: str | os.PathLike | None = None):
        self.root = Path(os.path.realpath(media_root)) if media_root is not None else None

    def resolve(self, url: object, kind: str, param: str) -> bytes | str:
        if not isinstance(url, str) or not url:
            raise APIError(400, f"{param}: expected a non-empty URL string", param=param, code="invalid_url")
        if url[:5].lower() == "data:":
            return decode_data_url(url, kind, param)
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        if scheme in ("http", "https", "ftp"):
            raise APIError(400, f"{param}: remote URLs are not fetched by this server; send the {kind} as a "
                                f"data: URL{' or a path under the media root' if self.root else ''}",
                           param=param, code="remote_url_not_allowed")
        if scheme == "file":
            parts = urllib.parse.urlsplit(url)
            if parts.netloc not in ("", "localhost"):
                raise APIError(400, f"{param}: file:// URLs must name a local path", param=param, code="invalid_url")
            path = urllib.parse.unquote(parts.path)
        elif scheme and len(scheme) > 1:  # a one-letter "scheme" is a Windows drive letter
            raise APIError(400, f"{param}: unsupported URL scheme {scheme!r}; expected data: or a path",
                           param=param, code="invalid_url")
        else:
            path = url
        return self._local(path, kind, param)

    def _local(self, path: str, kind: str, param: str) -> str:
        if self.root is None:
            raise APIError(400, f"{param}: local paths are disabled on this server (no --media-root); "
                                f"send the {kind} as a data: URL", param=param, code="local_paths_disabled")
        if "\x00" in path:
            raise APIError(400, f"{param}: the path contains a NUL byte", param=param, code="invalid_url")
        # Relative paths are relative to the root; realpath follows symlinks and "..",
        # so the containment check below sees where the file really is.
        real = os.path.realpath(self.root / path)
        if os.path.commonpath([real, str(self.root)]) != str(self.root):
            raise APIError(403, f"{param}: the path is outside the server's media root", param=param,
                           code="path_outside_media_root")
        if not os.path.isfile(real):
            raise APIError(400, f"{param}: no such file under the media root: {path!r}", param=param,
                           code="media_not_found")
        return real


def _open_target(source: bytes | str):
    return io.BytesIO(source) if isinstance(source, bytes) else source


def check_image(source: bytes | str, max_pixels: int | None, param: str) -> None:
    """Refuse images with more than ``max_pixels`` pixels, from the header alone.

    Unreadable data passes: the processor's decoder reports it (as a MediaError → 400).
    """
    from PIL import Image

    if not max_pixels:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(_open_target(source)) as im:
                w, h = im.size
        pixels = f"{w * h}"
    except Image.DecompressionBombError:
        # Pillow refuses to open over twice its MAX_IMAGE_PIXELS; the exact count is not exposed.
        w, h = (Image.MAX_IMAGE_PIXELS or 0) * 2 + 1, 1
        pixels = f"more than {w - 1}"
    except Exception:  # noqa: BLE001 - decoding errors are the processor's to report
        return
    if w * h > max_pixels:
        raise APIError(400, f"{param}: the image has {pixels} pixels, more than this server's limit of {max_pixels}",
                       param=param, code="image_too_large")


def probe_seconds(source: bytes | str) -> float | None:
    """Duration of an audio/video file from its container header; ``None`` if unknown."""
    import av

    from ..media.containers import open_input

    try:
        with open_input(_open_target(source)) as c:
            if c.duration:
                return c.duration / av.time_base
            times = [float(s.duration * s.time_base) for s in c.streams if s.duration and s.time_base]
            return max(times) if times else None
    except Exception:  # noqa: BLE001 - decoding errors are the processor's to report
        return None


def check_duration(source: bytes | str, kind: str, max_seconds: float | None, param: str) -> None:
    """Refuse audio/video longer than ``max_seconds`` (when the header tells the length)."""
    if not max_seconds:
        return
    seconds = probe_seconds(source)
    if seconds is not None and seconds > max_seconds:
        raise APIError(400, f"{param}: the {kind} lasts {seconds:.1f} s, more than this server's limit of "
                            f"{max_seconds:g} s", param=param, code="media_too_long")

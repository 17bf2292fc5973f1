"""Image loading and CLIP-style preprocessing.

GroundingGPT feeds images to a CLIP ViT (e.g. ViT-L/14 at 336 px). Like LLaVA, an
image is first padded to a square with the normaliser's mean colour
(``expand2square``) and then resized, so that the whole image is seen (nothing is
cropped away) and a box in original pixel coordinates maps to the square by one
offset and one scale. That mapping is what grounding outputs rely on.

Every bad input raises :class:`~groundinggpt.errors.MediaError` with a message that
names the source (a path, ``<bytes>``, ``<data: URL>`` or ``<PIL image>``).
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from groundinggpt.errors import MediaError

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "DEFAULT_IMAGE_SIZE",
    "ImageSource",
    "ProcessedImage",
    "describe_source",
    "expand_to_square",
    "load_image",
    "mean_to_fill",
    "normalize_frames",
    "preprocess_image",
    "preprocess_images",
    "resize_for_clip",
]

#: Per-channel mean of OpenAI CLIP's image normaliser (RGB, 0..1 scale).
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
#: Per-channel standard deviation of OpenAI CLIP's image normaliser.
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
#: Input resolution of CLIP ViT-L/14-336, the usual GroundingGPT vision tower.
DEFAULT_IMAGE_SIZE = 336

#: What :func:`load_image` accepts. A ``str`` is a filesystem path unless it starts
#: with ``data:`` (then it must be a base64 ``data:image/...`` URL).
ImageSource = str | os.PathLike | bytes | Image.Image

# Every error PIL may raise while identifying or decoding a broken file. PIL is not
# consistent: truncated data gives OSError, garbage gives UnidentifiedImageError
# (an OSError), some plugins raise SyntaxError/ValueError/struct.error (ValueError
# subclass is not guaranteed), EOFError for short reads.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError)


@dataclass
class ProcessedImage:
    """An image ready for the vision tower.

    Attributes:
        pixel_values: ``[3, size, size]`` float32, normalised with mean/std.
        original_size: ``(width, height)`` of the loaded image (after EXIF
            orientation), i.e. the frame that box coordinates refer to.
    """

    pixel_values: torch.Tensor
    original_size: tuple[int, int]


# --------------------------------------------------------------------------- loading


def describe_source(source: object) -> str:
    """Return how an input is named in error messages.

    Args:
        source: Anything passed as a medium.

    Returns:
        The path for paths, ``<data: URL>`` for data URLs, ``<bytes>`` for raw bytes,
        ``<PIL image>`` for PIL images and ``<TypeName>`` otherwise.
    """
    if isinstance(source, str):
        # Never echo a (possibly megabytes long) data URL into a message.
        return "<data: URL>" if source.startswith("data:") else repr(source)
    if isinstance(source, os.PathLike):
        return repr(os.fspath(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    if isinstance(source, Image.Image):
        return "<PIL image>"
    return f"<{type(source).__name__}>"


def _decode_data_url(url: str) -> bytes:
    """Return the payload of a ``data:image/...;base64,...`` URL.

    Raises:
        MediaError: The URL is malformed, not base64, or not of an image type.
    """
    name = "<data: URL>"
    header, sep, payload = url.partition(",")
    if not sep:
        raise MediaError(f"{name}: expected 'data:image/<type>;base64,<data>', found no ','")
    params = header[len("data:") :].split(";")
    media_type = params[0].strip().lower()
    if "base64" not in (p.strip().lower() for p in params[1:]):
        raise MediaError(
            f"{name}: expected a base64 data URL ('data:image/<type>;base64,...'), "
            f"got header {header[:64]!r}"
        )
    # An empty media type means text/plain by RFC 2397, but clients often omit it
    # for images; let the decoder decide instead of rejecting.
    if media_type and not media_type.startswith("image/"):
        raise MediaError(f"{name}: expected an image media type (image/...), got {media_type!r}")
    try:
        # validate=True: a stray character means a corrupt payload, not something
        # to skip silently. Whitespace (line-wrapped base64) is legitimate though.
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MediaError(f"{name}: payload is not valid base64 ({exc})") from exc


def _open_source(source: ImageSource) -> Image.Image:
    """Open (not yet decode) an image from any supported source."""
    name = describe_source(source)
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, str) and source.startswith("data:"):
        return _open_bytes(_decode_data_url(source), name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _open_bytes(bytes(source), name)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not os.path.exists(path):
            raise MediaError(f"{name}: image file not found")
        if not os.path.isfile(path):
            raise MediaError(f"{name}: expected an image file, found a directory or special file")
        with open(path, "rb") as fh:
            return _open_bytes(fh.read(), name)
    raise MediaError(
        f"{name}: unsupported image source type; expected a path, bytes, a "
        "'data:image/...;base64,' URL or a PIL.Image.Image"
    )


def _open_bytes(data: bytes, name: str) -> Image.Image:
    """Identify an image from bytes; decoding is forced later by ``load``."""
    if not data:
        raise MediaError(f"{name}: expected image data, got 0 bytes")
    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise MediaError(f"{name}: image is too large to decode safely ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise MediaError(f"{name}: not a recognised image format") from exc
    except _DECODE_ERRORS as exc:
        raise MediaError(f"{name}: could not read image ({exc})") from exc


def _to_rgb(image: Image.Image, name: str) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB.

    Transparency is composited over white, as ``transformers``' ``convert_to_rgb``
    does (a plain ``convert('RGB')`` would expose whatever colour happens to sit
    under transparent pixels, usually black).
    """
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        # PIL clips high-bit-depth greyscale to 255 when converting, turning most
        # 16-bit images white; rescale to 8 bits instead.
        return Image.fromarray(_high_depth_to_uint8(np.asarray(image)), mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise MediaError(f"{name}: cannot convert image mode {image.mode!r} to RGB ({exc})") from exc


def _high_depth_to_uint8(array: np.ndarray) -> np.ndarray:
    """Map a 16-bit/int32/float greyscale array to uint8.

    Integer data above 255 is taken to be 16-bit (the only common source: 16-bit
    PNG/TIFF); float data in [0, 1] is scaled by 255, otherwise clipped.
    """
    array = np.asarray(array)
    if np.issubdtype(array.dtype, np.floating):
        finite = np.nan_to_num(array.astype(np.float64))
        scale = 255.0 if finite.size and finite.max() <= 1.0 else 1.0
        return np.clip(np.rint(finite * scale), 0, 255).astype(np.uint8)
    wide = array.astype(np.int64)
    if wide.size and wide.max() > 255:
        wide = np.rint(wide / 257.0).astype(np.int64)  # 65535 -> 255 exactly
    return np.clip(wide, 0, 255).astype(np.uint8)


def load_image(source: ImageSource, *, max_pixels: int | None = None) -> Image.Image:
    """Load an image as an 8-bit RGB ``PIL.Image`` with EXIF orientation applied.

    Args:
        source: A path (``str``/``os.PathLike``), raw encoded bytes, a
            ``data:image/<type>;base64,...`` URL, or a ``PIL.Image.Image``.
        max_pixels: If given, images with more than this many pixels
            (width*height, checked from the header before decoding) are
            rejected. PIL's own decompression-bomb limit applies regardless.

    Returns:
        A fully decoded RGB image (a new object; the input is never modified).

    Raises:
        MediaError: Missing file, undecodable/truncated data, bad data URL,
            unsupported type, zero-size image or ``max_pixels`` exceeded. The
            message names the source.
    """
    name = describe_source(source)
    image = _open_source(source)
    width, height = image.size
    if width <= 0 or height <= 0:
        raise MediaError(f"{name}: expected a non-empty image, got size {width}x{height}")
    if max_pixels is not None and width * height > max_pixels:
        raise MediaError(
            f"{name}: image has {width}x{height}={width * height} pixels, more than "
            f"max_pixels={max_pixels}"
        )
    try:
        # Force the decode now: Image.open is lazy, and truncated data would
        # otherwise only fail later, far from the source that caused it.
        image.load()
        with warnings.catch_warnings():
            # EXIF parsing of slightly odd files warns; orientation is best effort.
            warnings.simplefilter("ignore")
            image = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as exc:
        raise MediaError(f"{name}: image is too large to decode safely ({exc})") from exc
    except _DECODE_ERRORS as exc:
        raise MediaError(f"{name}: image data is corrupt or truncated ({exc})") from exc
    rgb = _to_rgb(image, name)
    # Guarantee a new object so callers may mutate it without touching their input.
    return rgb.copy() if rgb is source else rgb


# ------------------------------------------------------------------- preprocessing


def mean_to_fill(mean: Sequence[float]) -> tuple[int, ...]:
    """The 0..255 pad colour for a normaliser mean, truncated as LLaVA does.

    LLaVA uses ``tuple(int(x * 255) for x in image_mean)``; truncation (not rounding)
    is kept so that padded pixels match checkpoints trained with it.
    """
    return tuple(int(m * 255) for m in mean)


def expand_to_square(image: Image.Image, fill: Sequence[int] | int) -> Image.Image:
    """Pad an image to a square, centring the original (LLaVA ``expand2square``).

    The original is pasted at ``((side - w) // 2, (side - h) // 2)`` on a
    ``side = max(w, h)`` canvas filled with ``fill``. A box ``(x0, y0, x1, y1)`` in
    original pixels is therefore at ``(x0 + dx, y0 + dy, x1 + dx, y1 + dy)`` in the
    square.

    Args:
        image: Any PIL image.
        fill: Pad colour, one int per band (or a single int).

    Returns:
        The square image (the input itself if it is already square).
    """
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    colour = fill if isinstance(fill, int) else tuple(int(c) for c in fill)
    canvas = Image.new(image.mode, (side, side), colour)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


#: Longest side an image is padded at. The padded square is ``max(w, h)`` on a side: a
#: 60000x1 image (254 bytes, far under any pixel limit) would make a 10.8 GB canvas.
#: Larger images are first shrunk to this side; the square is resized to ``size`` anyway.
MAX_PADDED_SIDE = 4096
#: Widest aspect ratio kept before the shortest-edge resize (which would otherwise scale
#: the long side by the same factor); the centre crop only keeps the middle square.
_MAX_CROP_ASPECT = 4


def _bounded_for_padding(image: Image.Image, side: int) -> Image.Image:
    width, height = image.size
    if max(width, height) <= side:
        return image  # every usual image: untouched, so results match LLaVA's pipeline exactly
    scale = side / max(width, height)
    return image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BICUBIC)


def _bounded_for_cropping(image: Image.Image) -> Image.Image:
    width, height = image.size
    short = min(width, height)
    if max(width, height) <= _MAX_CROP_ASPECT * short:
        return image
    keep = _MAX_CROP_ASPECT * short  # the centred band the crop is taken from
    if width > height:
        left = (width - keep) // 2
        return image.crop((left, 0, left + keep, height))
    top = (height - keep) // 2
    return image.crop((0, top, width, top + keep))


def resize_for_clip(
    image: Image.Image,
    size: int = DEFAULT_IMAGE_SIZE,
    mean: Sequence[float] = CLIP_MEAN,
    pad_to_square: bool = True,
) -> Image.Image:
    """Geometric part of preprocessing: RGB ``image`` -> ``size`` x ``size``.

    With ``pad_to_square`` the image is padded with the mean colour and resized
    (bicubic) straight to ``size`` x ``size``. CLIP's own processor resizes the
    shortest edge to ``size`` and centre-crops ``size`` x ``size``; on a square
    input that crop is the identity, so a direct resize is the same operation.

    Without padding, the shortest edge is resized to ``size`` and the centre is
    cropped, exactly as ``CLIPImageProcessor`` does. Content outside the crop is
    lost, so box coordinates are then NOT convertible to/from the original image;
    use this only where no grounding is needed.
    """
    _check_size(size)
    if pad_to_square:
        image = _bounded_for_padding(image, max(size, MAX_PADDED_SIDE))
        square = expand_to_square(image, mean_to_fill(mean))
        return square.resize((size, size), Image.Resampling.BICUBIC)
    image = _bounded_for_cropping(image)
    width, height = image.size
    # Same rounding as transformers' get_resize_output_image_size (int()).
    if width <= height:
        new_w, new_h = size, max(size, int(size * height / width))
    else:
        new_w, new_h = max(size, int(size * width / height)), size
    resized = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return resized.crop((left, top, left + size, top + size))


def normalize_frames(
    images: Sequence[Image.Image],
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
) -> torch.Tensor:
    """Stack equally sized RGB images into a normalised ``[N, 3, H, W]`` float32 tensor.

    Normalisation is done once on the stacked batch rather than per image.
    """
    mean_t, std_t = _channel_stats(mean, std)
    if not images:
        raise ValueError("normalize_frames needs at least one image")
    batch = np.stack([np.asarray(im, dtype=np.uint8) for im in images])  # N,H,W,3
    pixels = torch.from_numpy(batch).permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
    return pixels.sub_(mean_t.view(1, 3, 1, 1)).div_(std_t.view(1, 3, 1, 1)).contiguous()


def preprocess_image(
    image: ImageSource,
    size: int = DEFAULT_IMAGE_SIZE,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
    pad_to_square: bool = True,
) -> ProcessedImage:
    """Load (if needed) and preprocess one image for the CLIP vision tower.

    Args:
        image: Anything :func:`load_image` accepts.
        size: Output side length in pixels.
        mean: Normaliser mean (also the pad colour, see :func:`mean_to_fill`).
        std: Normaliser standard deviation.
        pad_to_square: Pad to a square before resizing (default, keeps boxes
            convertible); ``False`` = shortest-edge resize + centre crop.

    Returns:
        A :class:`ProcessedImage` with ``pixel_values`` of shape ``[3, size, size]``.

    Raises:
        MediaError: The image cannot be loaded.
    """
    pixels, sizes = preprocess_images([image], size, mean, std, pad_to_square)
    return ProcessedImage(pixel_values=pixels[0], original_size=sizes[0])


def preprocess_images(
    images: Sequence[ImageSource],
    size: int = DEFAULT_IMAGE_SIZE,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
    pad_to_square: bool = True,
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Preprocess a batch of images (see :func:`preprocess_image`).

    Returns:
        ``(pixel_values [N, 3, size, size], [(width, height), ...])``; for an empty
        list the tensor has shape ``[0, 3, size, size]``.
    """
    _check_size(size)
    _channel_stats(mean, std)  # validate before doing any work
    if not images:
        return torch.empty((0, 3, size, size), dtype=torch.float32), []
    loaded = [load_image(im) for im in images]
    sizes = [im.size for im in loaded]
    squares = [resize_for_clip(im, size, mean, pad_to_square) for im in loaded]
    return normalize_frames(squares, mean, std), sizes


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"size must be a positive int, got {size!r}")


def _channel_stats(mean: Sequence[float], std: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"mean and std need 3 (RGB) values, got {len(mean)} and {len(std)}")
    if any(s <= 0 for s in std):
        raise ValueError(f"std values must be positive, got {tuple(std)}")
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)

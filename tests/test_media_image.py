"""Tests for groundinggpt.media.image: loading, padding, normalisation, errors."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

from groundinggpt.errors import MediaError
from groundinggpt.media.image import (
    CLIP_MEAN,
    CLIP_STD,
    expand_to_square,
    load_image,
    mean_to_fill,
    preprocess_image,
    preprocess_images,
)

MEAN = np.array(CLIP_MEAN)
STD = np.array(CLIP_STD)
# One 8-bit step after normalisation, the largest per-channel error expected from
# quantising the mean colour to integers.
QUANTUM = float((1 / 255 / STD).max())


def normalised(rgb: tuple[int, int, int]) -> np.ndarray:
    return (np.array(rgb) / 255 - MEAN) / STD


def png_bytes(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture
def wide_png(tmp_path):
    """A 60x30 solid red-ish PNG on disk; returns (path, colour)."""
    colour = (200, 10, 50)
    path = tmp_path / "wide.png"
    Image.new("RGB", (60, 30), colour).save(path)
    return path, colour


# ------------------------------------------------------------------ padding/values


def test_mean_to_fill_truncates_like_llava():
    assert mean_to_fill(CLIP_MEAN) == (122, 116, 104)


def test_pad_region_is_mean_and_centre_is_original(wide_png):
    path, colour = wide_png
    out = preprocess_image(path, size=60)
    pixels = out.pixel_values
    assert pixels.shape == (3, 60, 60) and pixels.dtype == torch.float32
    assert out.original_size == (60, 30)
    # 60x30 -> 60x60: original occupies rows 15..44, pad above and below.
    for row in (0, 14, 45, 59):
        assert torch.all(pixels[:, row, :].abs() <= QUANTUM), row
    for row in (15, 30, 44):
        np.testing.assert_allclose(pixels[:, row, 30].numpy(), normalised(colour), atol=1e-5)


def test_pad_offsets_for_tall_odd_image():
    # 31 wide, 60 high: x offset (60 - 31) // 2 = 14, so columns 14..44 are original.
    image = Image.new("RGB", (31, 60), (255, 255, 255))
    pixels = preprocess_image(image, size=60).pixel_values
    white = torch.tensor(normalised((255, 255, 255)), dtype=torch.float32)
    assert torch.all(pixels[:, :, 13].abs() <= QUANTUM)
    assert torch.all(pixels[:, :, 45].abs() <= QUANTUM)
    assert torch.allclose(pixels[:, :, 14], white[:, None].expand(3, 60), atol=1e-5)
    assert torch.allclose(pixels[:, :, 44], white[:, None].expand(3, 60), atol=1e-5)


def test_resize_keeps_layout(wide_png):
    path, colour = wide_png
    out = preprocess_image(path, size=24)  # 60 -> 24, content rows 6..17
    pixels = out.pixel_values
    assert pixels.shape == (3, 24, 24)
    assert torch.all(pixels[:, 0:4, :].abs() <= QUANTUM)  # away from bicubic ringing
    assert torch.all(pixels[:, 20:, :].abs() <= QUANTUM)
    np.testing.assert_allclose(pixels[:, 12, 12].numpy(), normalised(colour), atol=1e-5)
    assert out.original_size == (60, 30)


def test_expand_to_square_geometry():
    image = Image.new("RGB", (5, 2), (9, 9, 9))
    square = expand_to_square(image, (1, 2, 3))
    assert square.size == (5, 5)
    array = np.asarray(square)
    assert (array[0:1] == (1, 2, 3)).all() and (array[3:] == (1, 2, 3)).all()
    assert (array[1:3] == 9).all()  # pasted at y = (5 - 2) // 2 = 1
    same = Image.new("RGB", (4, 4))
    assert expand_to_square(same, (0, 0, 0)) is same


def test_no_padding_does_shortest_edge_resize_and_centre_crop():
    # Three 30 px bands R|G|B; a 30 px centre crop sees only the green one.
    bands = np.zeros((30, 90, 3), np.uint8)
    bands[:, :30, 0] = bands[:, 30:60, 1] = bands[:, 60:, 2] = 255
    out = preprocess_image(Image.fromarray(bands), size=30, pad_to_square=False)
    assert out.pixel_values.shape == (3, 30, 30)
    np.testing.assert_allclose(out.pixel_values[:, 15, 15].numpy(), normalised((0, 255, 0)), atol=1e-5)
    assert out.original_size == (90, 30)


def test_preprocess_images_batches_and_keeps_sizes(wide_png):
    path, _ = wide_png
    pixels, sizes = preprocess_images([path, Image.new("RGB", (10, 40))], size=16)
    assert pixels.shape == (2, 3, 16, 16)
    assert sizes == [(60, 30), (10, 40)]
    assert torch.allclose(pixels[0], preprocess_image(path, size=16).pixel_values)
    empty, no_sizes = preprocess_images([], size=16)
    assert empty.shape == (0, 3, 16, 16) and no_sizes == []


# ------------------------------------------------------------------ sources/modes


def test_bytes_data_url_pil_and_path_agree(wide_png):
    path, _ = wide_png
    data = path.read_bytes()
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    reference = preprocess_image(path, size=32).pixel_values
    for source in (str(path), data, url, Image.open(path)):
        assert torch.equal(preprocess_image(source, size=32).pixel_values, reference)


def test_data_url_allows_wrapped_base64(wide_png):
    path, _ = wide_png
    encoded = base64.b64encode(path.read_bytes()).decode()
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    assert load_image("data:image/png;base64," + wrapped).size == (60, 30)


def test_rgba_is_composited_on_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[:2, :, 3] = 255  # top half opaque, bottom half fully transparent
    image = load_image(png_bytes(Image.fromarray(rgba, "RGBA")))
    assert image.mode == "RGB"
    array = np.asarray(image)
    assert (array[0, 0] == (10, 20, 30)).all()
    assert (array[3, 3] == (255, 255, 255)).all()


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "1", "LA"])
def test_other_modes_become_rgb(mode):
    image = Image.new("RGB", (6, 4), (255, 255, 255)).convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    loaded = load_image(png_bytes(image, fmt))
    assert loaded.mode == "RGB" and loaded.size == (6, 4)
    assert np.asarray(loaded).min() >= 250  # white stays white


def test_grey_level_is_replicated():
    loaded = load_image(Image.new("L", (3, 3), 77))
    assert (np.asarray(loaded) == 77).all()


def test_16_bit_greyscale_is_scaled_not_clipped():
    array = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000).astype(np.uint16)
    loaded = np.asarray(load_image(png_bytes(Image.fromarray(array))))
    np.testing.assert_array_equal(loaded[..., 0], np.rint(array / 257).astype(np.uint8))
    assert (loaded[..., 0] == loaded[..., 2]).all()


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    loaded = load_image(png_bytes(image, "JPEG", exif=exif))
    assert loaded.size == (20, 40)
    assert preprocess_image(png_bytes(image, "JPEG", exif=exif), size=8).original_size == (20, 40)


def test_pil_input_is_not_modified():
    image = Image.new("RGBA", (4, 4), (1, 2, 3, 0))
    loaded = load_image(image)
    assert loaded is not image and image.mode == "RGBA"


# ------------------------------------------------------------------------- errors


def assert_media_error(source, *fragments, **kwargs):
    with pytest.raises(MediaError) as info:
        load_image(source, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.png"
    assert_media_error(missing, str(missing), "not found")


def test_text_file_is_not_an_image(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello world\n" * 10)
    assert_media_error(text, str(text), "image")


def test_directory(tmp_path):
    assert_media_error(tmp_path, str(tmp_path))


def test_truncated_bytes(wide_png):
    path, _ = wide_png
    data = Image.new("RGB", (64, 64), (1, 2, 3))
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    for image in (data, noisy):
        encoded = png_bytes(image)
        assert_media_error(encoded[: len(encoded) // 2], "<bytes>")
    jpeg = png_bytes(noisy, "JPEG")
    assert_media_error(jpeg[: len(jpeg) // 2], "<bytes>", "truncated")


def test_garbage_and_empty_bytes():
    assert_media_error(b"definitely not an image" * 10, "<bytes>", "image")
    assert_media_error(b"", "<bytes>", "0 bytes")


def test_bad_data_urls(wide_png):
    path, _ = wide_png
    good = base64.b64encode(path.read_bytes()).decode()
    assert_media_error("data:image/png;base64,!!!not base64!!!", "<data: URL>", "base64")
    assert_media_error("data:image/png," + good, "<data: URL>", "base64")
    assert_media_error("data:text/plain;base64," + good, "<data: URL>", "image")
    assert_media_error("data:image/png;base64", "<data: URL>")
    not_image = base64.b64encode(b"plain text, not pixels").decode()
    assert_media_error("data:image/png;base64," + not_image, "<data: URL>", "image")


def test_unsupported_type():
    assert_media_error(12345, "<int>", "unsupported")
    assert_media_error(np.zeros((2, 2, 3)), "<ndarray>")


def test_zero_size_pil_image():
    assert_media_error(Image.new("RGB", (0, 5)), "<PIL image>", "0x5")


def test_max_pixels_guard(wide_png):
    path, _ = wide_png
    assert_media_error(path, str(path), "max_pixels", max_pixels=100)
    assert load_image(path, max_pixels=1800).size == (60, 30)


def test_bad_preprocessing_arguments(wide_png):
    path, _ = wide_png
    with pytest.raises(ValueError):
        preprocess_image(path, size=0)
    with pytest.raises(ValueError):
        preprocess_image(path, mean=(0.5, 0.5))
    with pytest.raises(ValueError):
        preprocess_image(path, std=(0.5, 0.0, 0.5))


def test_extreme_aspect_ratios_never_build_a_huge_canvas(monkeypatch):
    """A 60000x1 image is 254 bytes as a PNG, but its padded square would be 10.8 GB."""
    import groundinggpt.media.image as image_module

    canvases = []
    real_new = Image.new

    def spy(mode, size, *args, **kwargs):
        canvases.append(size)
        return real_new(mode, size, *args, **kwargs)

    monkeypatch.setattr(image_module.Image, "new", spy)
    for size in ((60000, 1), (1, 60000)):
        out = image_module.preprocess_image(real_new("RGB", size, (200, 30, 30)))
        assert out.pixel_values.shape == (3, 336, 336) and out.original_size == size
        cropped = image_module.preprocess_image(real_new("RGB", size, (200, 30, 30)), pad_to_square=False)
        assert cropped.pixel_values.shape == (3, 336, 336)
    assert canvases and max(max(s) for s in canvases) <= image_module.MAX_PADDED_SIDE


def test_large_images_shrunk_before_padding_match_the_direct_pipeline():
    from groundinggpt.media.image import expand_to_square, mean_to_fill, preprocess_image

    rng = np.random.default_rng(0)
    big = Image.fromarray(rng.integers(0, 255, (300, 6000, 3), dtype=np.uint8).repeat(4, 0))  # 6000x1200
    direct = expand_to_square(big, mean_to_fill(CLIP_MEAN)).resize((336, 336), Image.Resampling.BICUBIC)
    ours = preprocess_image(big).pixel_values
    want = preprocess_image(direct).pixel_values  # a 336 square: no further change
    assert (ours - want).abs().mean() < 0.05  # resampling twice vs once: close, not bit-equal

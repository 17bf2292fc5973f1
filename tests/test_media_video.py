"""Tests for groundinggpt.media.video: sampling, seeking, VFR, audio, errors."""

from __future__ import annotations

import wave
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from groundinggpt.errors import MediaError
from groundinggpt.media import video as video_module
from groundinggpt.media.frame_plan import PacketIndex, frames_on_screen
from groundinggpt.media.image import CLIP_MEAN, CLIP_STD
from groundinggpt.media.video import (
    VideoClip,
    load_video,
    preprocess_video,
    sample_times,
    write_video,
)

WIDTH, HEIGHT = 64, 48
# Grey level 10*k survives yuv420p + libx264 within a couple of levels.
TOLERANCE = 4


def grey_frames(count: int, step: int = 10) -> list[np.ndarray]:
    """Frame k is solid grey step * (k mod levels), identifiable after decoding."""
    levels = 256 // step
    return [np.full((HEIGHT, WIDTH, 3), step * (k % levels), np.uint8) for k in range(count)]


def frame_index(image, step: int = 10) -> int:
    """Which grey frame a decoded image is (checks it is uniform too)."""
    array = np.asarray(image, dtype=np.int32)
    level = int(np.median(array))
    assert np.abs(array - level).max() <= TOLERANCE
    index = round(level / step)
    assert abs(index * step - level) <= TOLERANCE, level
    return index


@pytest.fixture(scope="module")
def clip20(tmp_path_factory):
    """2 s at 10 fps: frame k (k < 20) has grey 10*k and starts at k/10 s."""
    path = tmp_path_factory.mktemp("video") / "clip20.mp4"
    write_video(path, grey_frames(20), fps=10)
    return path


@pytest.fixture(scope="module")
def clip300(tmp_path_factory):
    """30 s at 10 fps, keyframe at least every 12 frames; grey 5 * (k mod 51)."""
    path = tmp_path_factory.mktemp("video") / "clip300.mp4"
    write_video(path, grey_frames(300, step=5), fps=10, gop_size=12)
    return path


# ---------------------------------------------------------------------- sampling


def test_sample_times_are_segment_midpoints():
    assert sample_times(Fraction(2), 4) == [Fraction(1, 4), Fraction(3, 4), Fraction(5, 4), Fraction(7, 4)]


@pytest.mark.parametrize(
    ("num_frames", "expected"),
    [
        (4, [2, 7, 12, 17]),  # t = 0.25, 0.75, 1.25, 1.75 -> frame on screen
        (8, [1, 3, 6, 8, 11, 13, 16, 18]),  # t = 0.125, 0.375, ...
        (20, list(range(20))),  # M == frame count: every frame once
    ],
)
def test_uniform_sampling_picks_expected_frames(clip20, num_frames, expected):
    clip = load_video(clip20, num_frames)
    assert len(clip.frames) == num_frames
    assert [frame_index(f) for f in clip.frames] == expected
    np.testing.assert_allclose(clip.timestamps, [k / 10 for k in expected], atol=1e-6)
    assert clip.duration == pytest.approx(2.0)
    assert clip.fps == pytest.approx(10.0)
    assert clip.num_source_frames == 20
    assert clip.original_size == (WIDTH, HEIGHT)
    assert all(f.mode == "RGB" and f.size == (WIDTH, HEIGHT) for f in clip.frames)


def test_seeking_and_sequential_decoding_agree(clip20):
    for num_frames in (3, 4, 8):
        seeked = load_video(clip20, num_frames, seek=True)
        sequential = load_video(clip20, num_frames, seek=False)
        assert seeked.timestamps == sequential.timestamps
        for a, b in zip(seeked.frames, sequential.frames):
            assert np.array_equal(np.asarray(a), np.asarray(b))


def test_bytes_source_equals_path(clip20):
    from_path = load_video(clip20, 4)
    from_bytes = load_video(clip20.read_bytes(), 4)
    assert from_bytes.timestamps == from_path.timestamps
    assert [frame_index(f) for f in from_bytes.frames] == [2, 7, 12, 17]


def test_fewer_source_frames_than_requested_repeats(tmp_path):
    path = tmp_path / "three.mp4"
    write_video(path, grey_frames(3), fps=10)
    clip = load_video(path, 8)
    assert len(clip.frames) == 8 and len(clip.timestamps) == 8
    # t_i = 0.3 * (i + 0.5) / 8 -> 0.019, 0.056, 0.094 | 0.131, 0.169 | 0.206, ...
    assert [frame_index(f) for f in clip.frames] == [0, 0, 0, 1, 1, 2, 2, 2]
    assert clip.timestamps == sorted(clip.timestamps)
    assert clip.frames[0] is clip.frames[1]  # a repeat is the same image
    assert clip.num_source_frames == 3
    assert clip.duration == pytest.approx(0.3)


def test_single_frame_video(tmp_path):
    path = tmp_path / "one.mp4"
    write_video(path, grey_frames(1), fps=10)
    clip = load_video(path, 5)
    assert [frame_index(f) for f in clip.frames] == [0] * 5
    assert clip.timestamps == [0.0] * 5


def test_variable_frame_rate(tmp_path):
    times = [0.0, 0.1, 0.15, 0.5, 1.2, 1.3]
    path = tmp_path / "vfr.mp4"
    write_video(path, grey_frames(len(times)), fps=10, timestamps=times)
    clip = load_video(path, 4)
    # Last frame lasts 1/fps: duration 1.4; targets 0.175, 0.525, 0.875, 1.225.
    assert clip.duration == pytest.approx(1.4, abs=1e-3)
    assert [frame_index(f) for f in clip.frames] == [2, 3, 3, 4]
    np.testing.assert_allclose(clip.timestamps, [0.15, 0.5, 0.5, 1.2], atol=1e-4)
    assert clip.timestamps == sorted(clip.timestamps)
    every = load_video(path, 16)
    assert every.timestamps == sorted(every.timestamps)
    assert {round(t, 3) for t in every.timestamps} <= set(times)


def test_video_with_audio_track(tmp_path, clip20):
    sample_rate = 16_000
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * sample_rate) / sample_rate)).astype(np.float32)
    path = tmp_path / "with_audio.mp4"
    write_video(path, grey_frames(20), fps=10, audio=(tone, sample_rate))
    with av.open(str(path)) as container:
        assert len(container.streams.audio) == 1 and len(container.streams.video) == 1
    clip = load_video(path, 4)
    assert [frame_index(f) for f in clip.frames] == [2, 7, 12, 17]
    assert clip.timestamps == load_video(clip20, 4).timestamps
    assert clip.duration == pytest.approx(2.0)


def test_container_without_frame_count(tmp_path):
    # MPEG-TS stores no frame count; sampling must not depend on it.
    path = tmp_path / "clip.ts"
    write_video(path, grey_frames(20), fps=10)
    clip = load_video(path, 4)
    assert [frame_index(f) for f in clip.frames] == [2, 7, 12, 17]
    assert clip.duration == pytest.approx(2.0)


def test_raw_stream_without_timing_metadata(tmp_path):
    # A raw H.264 elementary stream has no duration; packets are scanned instead.
    path = tmp_path / "clip.h264"
    write_video(path, grey_frames(20), fps=10)
    clip = load_video(path, 4)
    assert len(clip.frames) == 4 and clip.num_source_frames == 20
    assert clip.timestamps == sorted(clip.timestamps)
    assert [frame_index(f) for f in clip.frames] == [2, 7, 12, 17]


def test_display_rotation_is_applied(tmp_path):
    path = tmp_path / "rotated.mp4"
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    frame[:8, :8] = 255  # white marker, top-left
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.set_display_rotation(90)  # counter-clockwise, as VideoFrame.rotation
        for _ in range(3):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    clip = load_video(path, 2)
    assert clip.original_size == (HEIGHT, WIDTH)
    array = np.asarray(clip.frames[0])
    # Rotating 90 degrees counter-clockwise moves top-left to bottom-left.
    assert array[-4, 3].min() > 200 and array[3, 3].max() < 50


# ----------------------------------------------------------------------- seeking


class _CountingContainer:
    """Wraps a PyAV input container and counts frames its decoder yields."""

    def __init__(self, container, counter):
        self._container, self._counter = container, counter

    def decode(self, *args, **kwargs):
        for frame in self._container.decode(*args, **kwargs):
            self._counter["frames"] += 1
            yield frame

    def seek(self, *args, **kwargs):
        self._counter["seeks"] += 1
        return self._container.seek(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._container, name)


@pytest.mark.parametrize("planned", [True, False], ids=["planned", "frame-by-frame"])
def test_long_video_is_sampled_by_seeking(clip300, monkeypatch, planned):
    counter = {"frames": 0, "seeks": 0}
    real_open = video_module._open_container
    monkeypatch.setattr(
        video_module,
        "_open_container",
        lambda source, name: _CountingContainer(real_open(source, name), counter),
    )
    if not planned:  # a stream without a usable packet index takes the frame-by-frame decoder
        monkeypatch.setattr(video_module, "read_packet_index", lambda container, stream: None)
    clip = load_video(clip300, 4)
    assert counter["seeks"] >= 2
    assert clip.num_decoded_frames < 100  # far fewer than the 300 in the file
    if not planned:  # the planned decoder feeds packets itself; the count is its own
        assert clip.num_decoded_frames == counter["frames"]
    # t = 3.75, 11.25, 18.75, 26.25 s -> frames 37, 112, 187, 262.
    expected = [k % 51 for k in (37, 112, 187, 262)]
    assert [frame_index(f, step=5) for f in clip.frames] == expected
    np.testing.assert_allclose(clip.timestamps, [3.7, 11.2, 18.7, 26.2], atol=1e-6)


def test_seeking_matches_full_decode_on_long_video(clip300):
    seeked = load_video(clip300, 7, seek=True)
    sequential = load_video(clip300, 7, seek=False)
    assert seeked.timestamps == sequential.timestamps
    assert seeked.num_decoded_frames < sequential.num_decoded_frames
    for a, b in zip(seeked.frames, sequential.frames):
        assert np.array_equal(np.asarray(a), np.asarray(b))


# ------------------------------------------------------------------ preprocessing


def test_preprocess_video_values(clip20):
    out = preprocess_video(clip20, num_frames=4, size=32)
    assert out.pixel_values.shape == (4, 3, 32, 32) and out.pixel_values.dtype == torch.float32
    assert out.original_size == (WIDTH, HEIGHT)
    assert out.duration == pytest.approx(2.0)
    np.testing.assert_allclose(out.timestamps, [0.2, 0.7, 1.2, 1.7], atol=1e-6)
    mean, std = torch.tensor(CLIP_MEAN), torch.tensor(CLIP_STD)
    # 64x48 pads to 64x64 (8 rows top and bottom) -> 4 rows of pad at 32 px.
    assert torch.all(out.pixel_values[:, :, :2, :].abs() <= (1 / 255 / std).max())
    for i, k in enumerate([2, 7, 12, 17]):
        expected = (10 * k / 255 - mean) / std
        assert torch.allclose(out.pixel_values[i, :, 16, 16], expected, atol=TOLERANCE / 255 / 0.26)


def test_preprocess_video_accepts_clip(clip20):
    clip = load_video(clip20, 3)
    out = preprocess_video(clip, size=16)
    assert out.pixel_values.shape == (3, 3, 16, 16)
    assert out.timestamps == clip.timestamps
    with pytest.raises(ValueError):
        preprocess_video(clip, num_frames=5, size=16)
    assert isinstance(clip, VideoClip)


# ------------------------------------------------------------------------- errors


def assert_media_error(source, *fragments):
    with pytest.raises(MediaError) as info:
        load_video(source, 4)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message


def test_missing_file_and_directory(tmp_path):
    missing = tmp_path / "nope.mp4"
    assert_media_error(missing, str(missing), "not found")
    assert_media_error(tmp_path, str(tmp_path))


def test_corrupt_and_truncated_bytes(clip20):
    data = clip20.read_bytes()
    assert_media_error(b"not a video at all" * 50, "<bytes>")
    assert_media_error(data[: len(data) // 2], "<bytes>")  # index (moov) lost
    assert_media_error(b"", "<bytes>", "0 bytes")


def test_text_file(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello world\n" * 50)  # FFmpeg would "play" this as ANSI art
    assert_media_error(text, str(text), "video")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP"])
def test_a_still_image_is_not_a_video(tmp_path, fmt):
    from PIL import Image

    path = tmp_path / f"picture.{fmt.lower()}"
    Image.new("RGB", (32, 24), (200, 30, 30)).save(path, fmt)
    assert_media_error(path, str(path), "still image")
    assert_media_error(path.read_bytes(), "<bytes>", "pass it as an image")


def test_audio_only_files(tmp_path):
    wav = tmp_path / "speech.wav"
    with wave.open(str(wav), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16_000)
        handle.writeframes(np.zeros(1_600, np.int16).tobytes())
    assert_media_error(wav, str(wav), "video stream", "audio")
    assert_media_error(wav.read_bytes(), "<bytes>", "video stream")


def test_zero_length_video(tmp_path):
    # AVI keeps a video stream header even with no frames (MP4 drops the track).
    path = tmp_path / "empty.avi"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        container.start_encoding()
    assert_media_error(path, str(path), "frame")


def test_unsupported_sources():
    assert_media_error(42, "<int>", "unsupported")
    assert_media_error("data:video/mp4;base64,AAAA", "<data: URL>")


def test_bad_arguments(clip20, tmp_path):
    with pytest.raises(ValueError):
        load_video(clip20, 0)
    with pytest.raises(ValueError):
        write_video(tmp_path / "odd.mp4", [np.zeros((5, 5, 3), np.uint8)])
    with pytest.raises(ValueError):
        write_video(tmp_path / "mixed.mp4", [np.zeros((4, 4, 3), np.uint8), np.zeros((6, 6, 3), np.uint8)])
    with pytest.raises(ValueError):
        write_video(tmp_path / "t.mp4", grey_frames(2), timestamps=[0.5, 0.5])
    with pytest.raises(ValueError):
        write_video(tmp_path / "none.mp4", [])


def test_shared_reformatter_gives_the_same_pixels_as_to_image(clip20):
    """The clip-wide swscale context (the fast path) converts exactly as PyAV's per-frame to_image()."""
    from av.video.reformatter import VideoReformatter

    reformatter = VideoReformatter()
    with av.open(str(clip20)) as container:
        for frame in container.decode(video=0):
            fast = video_module._to_display_image(frame, reformatter)
            assert np.array_equal(np.asarray(fast), np.asarray(frame.to_image()))


def _pyav19_open(real_open):
    """``av.open`` as PyAV 19 has it: no ``metadata_errors`` argument."""
    def open_(file, mode=None, **kw):
        if "metadata_errors" in kw:
            raise TypeError("open() got an unexpected keyword argument 'metadata_errors'")
        return real_open(file, mode=mode, **kw)
    return open_


@pytest.mark.parametrize("version", ["19.0.2", "20.1.0"])
def test_reads_with_pyav_19_open_signature(clip20, monkeypatch, version):
    """PyAV 19 removed ``metadata_errors`` (it always decodes metadata leniently): the
    loaders must not pass it there (a TypeError), and must still pass it to older PyAV."""
    expected = load_video(clip20, num_frames=4)
    monkeypatch.setattr(av, "__version__", version)
    monkeypatch.setattr(av, "open", _pyav19_open(av.open))
    clip = load_video(clip20, num_frames=4)
    assert clip.timestamps == expected.timestamps
    assert [frame_index(f) for f in clip.frames] == [frame_index(f) for f in expected.frames]


def test_older_pyav_gets_lenient_metadata_argument(clip20, monkeypatch):
    seen = {}
    real = av.open

    def recording_open(file, mode=None, **kw):
        seen.update(kw)  # forwarded without it: the installed PyAV may be 19 or newer
        return real(file, mode=mode, **{k: v for k, v in kw.items() if k != "metadata_errors"})

    monkeypatch.setattr(av, "__version__", "18.1.0")
    monkeypatch.setattr(av, "open", recording_open)
    load_video(clip20, num_frames=2)
    assert seen == {"metadata_errors": "ignore"}


def test_a_video_whose_data_breaks_off_early_is_refused(tmp_path):
    """Zeroed bytes from a quarter to half of the frame data: FFmpeg stops decoding about a
    quarter in, and most sampled frames would repeat the last good one (a frozen clip).
    Noise frames keep every frame's share of the data about equal, so the first keyframe
    lies before the damage whatever the encoder's choices."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(64)]
    good = tmp_path / "good.mp4"
    write_video(good, frames, fps=8)
    data = bytearray(good.read_bytes())
    at = data.find(b"mdat")
    start, end = at + 4, at - 4 + int.from_bytes(data[at - 4:at], "big")
    a, b = start + (end - start) // 4, start + (end - start) // 2
    data[a:b] = bytes(b - a)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bytes(data))
    assert len(load_video(good, 8).frames) == 8
    assert_media_error(broken, str(broken), "breaks off at", "of 8.0 s", "would repeat the last decodable one")


def test_a_variable_frame_rate_video_with_a_long_still_is_intact(tmp_path):
    """One frame on screen from 0.3 s to 9.7 s, then three more: most targets get the same
    frame, but the data goes on to the end, so this is not a video that breaks off."""
    frames = [np.full((16, 32, 3), 30 * i, np.uint8) for i in range(7)]
    path = tmp_path / "still.mp4"
    write_video(path, frames, fps=10, timestamps=[0, 0.1, 0.2, 0.3, 9.7, 9.8, 9.9])
    clip = load_video(path, 8)
    assert clip.timestamps == pytest.approx([0.3] * 8)  # the frame on screen at each target
    assert load_video(path, 20).timestamps[-2:] == pytest.approx([0.3, 9.7])


# ------------------------------------------------------------------ planned decoding


def _write_bframe_video(path, num_frames=150, gop=50, size=64):
    """An H.264 clip with B-frames and long groups of pictures (as most downloaded video is):
    ``write_video`` writes none, so encode here with libx264's defaults for B-frames."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"bf": "3", "g": str(gop), "keyint_min": str(gop)})
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(num_frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(two_band_frame(i, size), format="rgb24")))
        container.mux(stream.encode(None))


def two_band_frame(k: int, size: int) -> np.ndarray:
    """Frame k: top half grey 5 * (k mod 51), bottom half grey 5 * (k // 51) (up to 2,600 frames)."""
    frame = np.empty((size, size, 3), np.uint8)
    frame[: size // 2] = 5 * (k % 51)
    frame[size // 2 :] = 5 * (k // 51)
    return frame


def two_band_index(image) -> int:
    array = np.asarray(image)
    half = array.shape[0] // 2
    # away from the band edge, where yuv420p chroma and the codec blur the two halves
    return frame_index(array[2 : half - 2], step=5) + 51 * frame_index(array[half + 2 : -2], step=5)


@pytest.fixture(scope="module")
def bframe_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("bframes") / "b.mp4"
    _write_bframe_video(path)
    return path


def test_planned_decoding_equals_decoding_every_frame(bframe_clip, monkeypatch):
    planned = load_video(bframe_clip, 9)
    monkeypatch.setattr(video_module, "read_packet_index", lambda container, stream: None)
    every = load_video(bframe_clip, 9, seek=False)
    assert planned.timestamps == every.timestamps
    for a, b in zip(planned.frames, every.frames):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    # Frames 8, 25, 41 ... 141 (on screen at the segment midpoints of 6 s at 25 fps).
    assert [two_band_index(f) for f in planned.frames] == [(k * 2 + 1) * 150 // 18 for k in range(9)]
    # Disposable B-frames nobody needs are skipped: fewer decoded than a full pass up to the last pick.
    assert planned.num_decoded_frames < every.num_decoded_frames


def test_planned_decoding_skips_non_reference_frames_without_seeking(bframe_clip):
    one_pass = load_video(bframe_clip, 9, seek=False)
    last_pick = round(one_pass.timestamps[-1] * 25)
    assert one_pass.num_decoded_frames < last_pick + 1


def test_parallel_decoders_give_the_frames_of_one(bframe_clip, monkeypatch):
    parallel = load_video(bframe_clip, 12)
    monkeypatch.setattr(video_module, "_decode_workers", lambda: 1)
    single = load_video(bframe_clip, 12)
    assert parallel.timestamps == single.timestamps
    for a, b in zip(parallel.frames, single.frames):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_frames_on_screen_follows_the_sampling_rule():
    index = PacketIndex(pts=[0, 30, 10, 20, 60, 40, 50], keyframe=[True, False, False, False, True, False, False])
    # last frame at or before the target; the first frame for a target before every frame
    assert frames_on_screen(index, [-5, 0, 9, 10, 35, 59.5, 1000]) == [0, 0, 0, 10, 30, 50, 60]

"""Decoding limits are enforced on what is decoded (issue 13, items 1-3).

Hostile media are generated small here: the limits are set low instead, so each test
shows the decoder stopping at the limit, whatever the container claims.
"""

from __future__ import annotations

import io
import tracemalloc

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from groundinggpt.errors import MediaError, MediaLimitError
from groundinggpt.media.audio import load_audio, preprocess_audio
from groundinggpt.media.limits import DecodeLimits
from groundinggpt.media.resample import SincResampler, resample_waveform
from groundinggpt.media.video import load_video, write_video
from groundinggpt.serve.media_sources import probe_seconds
from conftest import mkv_video, webm_opus


def flac_bytes(seconds: float, rate: int, channels: int) -> bytes:
    """Silence, written block by block (the file is tiny; its decoded size is not)."""
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", samplerate=rate, channels=channels, format="FLAC", subtype="PCM_16") as f:
        block = np.zeros((rate // 4, channels), dtype=np.int16)
        for _ in range(int(seconds * 4)):
            f.write(block)
    return buf.getvalue()


# ---- audio ---------------------------------------------------------------------------------------
def test_streamed_resampling_is_bit_identical_to_one_pass():
    g = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    for orig, new, n in [(44100, 16000, 30000), (655350, 16000, 100000), (8000, 16000, 5000), (44101, 16000, 9000)]:
        x = torch.randn(n, generator=g)
        whole = resample_waveform(x, orig, new)
        r = SincResampler(orig, new)
        pieces, i = [], 0
        while i < n:
            step = int(rng.integers(1, 12000))
            pieces.append(r.push(x[i:i + step][None]))
            i += step
        pieces.append(r.finish())
        assert torch.equal(torch.cat(pieces, 1)[0], whole), (orig, new)


def whole_file_reference(data: bytes) -> torch.Tensor:
    """What decoding did before streaming: the whole file as float32, channel mean, one resampling pass."""
    x, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    channels = np.ascontiguousarray(x.T)
    mono = channels.mean(axis=0, dtype=np.float64) if channels.shape[0] > 1 else channels[0]
    return resample_waveform(torch.from_numpy(np.array(mono, dtype=np.float32)), rate, 16000)


@pytest.mark.parametrize("rate,channels,fmt,subtype", [(44100, 2, "WAV", "PCM_16"), (48000, 6, "FLAC", "PCM_24"),
                                                       (22050, 1, "WAV", "FLOAT"), (44100, 2, "OGG", "VORBIS")])
def test_block_decoding_gives_the_whole_file_numbers(rate, channels, fmt, subtype, monkeypatch):
    """Normal files decode to exactly the same waveform as one whole-file pass (numerics unchanged),
    also when the blocks are tiny and split the resampler's filter anywhere."""
    x = 0.3 * np.random.default_rng(rate).standard_normal((int(rate * 2.3), channels)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt, subtype=subtype)
    data = buf.getvalue()
    reference = whole_file_reference(data)
    assert torch.equal(load_audio(data).waveform, reference)
    monkeypatch.setattr("groundinggpt.media.audio_decode.BLOCK_SAMPLES", 997 * channels)
    monkeypatch.setattr("groundinggpt.media.audio_decode.RESAMPLE_SAMPLES", 7919)
    assert torch.equal(load_audio(data).waveform, reference)


def test_audio_without_a_duration_stops_at_the_seconds_limit():
    """MediaRecorder's WebM has no Duration: the header check cannot see the length, the decoder must."""
    data = webm_opus(6.0)
    assert probe_seconds(data) is None  # no duration in the container
    with pytest.raises(MediaLimitError, match=r"<bytes>: the audio lasts more than 4 s") as info:
        load_audio(data, limits=DecodeLimits(max_seconds=4))
    assert info.value.code == "media_too_long"
    assert load_audio(data, limits=DecodeLimits(max_seconds=7)).duration == pytest.approx(6.0, abs=0.05)


def test_many_channels_at_a_high_rate_stop_at_the_sample_budget():
    data = flac_bytes(2.0, 655_350, 8)  # ~10.5 M samples x channels in a few KB
    assert len(data) < 200_000
    with pytest.raises(MediaLimitError, match=r"more than 2000000 samples x channels decoded \(8 channels at 655350 Hz"):
        load_audio(data, limits=DecodeLimits(max_audio_samples=2_000_000))


def test_peak_memory_is_bounded_by_the_output_not_the_file():
    """Block decoding holds one block plus the 16 kHz mono output; the whole-file pass held the
    file as float32 (2 s x 655,350 Hz x 8 channels x 4 B = 42 MB) before mixing it down."""
    data = flac_bytes(2.0, 655_350, 8)
    whole_file = 2 * 655_350 * 8 * 4
    tracemalloc.start()
    try:
        audio = load_audio(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert audio.waveform.numel() == 32_000 and float(audio.waveform.abs().max()) == 0.0
    assert peak < whole_file / 3, f"peak {peak / 1e6:.1f} MB traced, the whole file is {whole_file / 1e6:.0f} MB"


def test_processor_config_limits_reach_the_decoder():
    from groundinggpt.api import GroundingGPT

    proc = GroundingGPT.from_preset("tiny", seed=0).processor
    proc.config.max_media_seconds = 4
    conv = [{"role": "user", "content": [{"type": "audio", "audio": webm_opus(6.0)}, {"type": "text", "text": "?"}]}]
    with pytest.raises(MediaLimitError, match=r"message 0, part 0: <bytes>: the audio lasts more than 4 s") as info:
        proc([conv])
    assert info.value.part == (0, 0) and info.value.code == "media_too_long"


def test_preprocess_audio_passes_limits():
    with pytest.raises(MediaLimitError):
        preprocess_audio(webm_opus(3.0), limits=DecodeLimits(max_seconds=1))


# ---- video ---------------------------------------------------------------------------------------
def test_video_without_a_duration_is_measured_and_refused_past_the_limit():
    data = mkv_video(3.0)
    assert probe_seconds(data) is None
    with pytest.raises(MediaLimitError, match=r"the video lasts more than 2 s") as info:
        load_video(data, 4, limits=DecodeLimits(max_seconds=2))
    assert info.value.code == "media_too_long"
    assert load_video(data, 4, limits=DecodeLimits(max_seconds=4)).duration == pytest.approx(3.0, abs=0.2)


def test_video_frame_pixels_are_capped_like_images(tmp_path):
    path = tmp_path / "wide.mp4"
    write_video(path, [np.zeros((48, 64, 3), np.uint8)] * 4, fps=4)
    with pytest.raises(MediaLimitError, match=r"frames of 64x48 = 3072 pixels; expected at most 3000 pixels per frame"):
        load_video(path, 2, limits=DecodeLimits(max_frame_pixels=3000))
    assert len(load_video(path, 2, limits=DecodeLimits(max_frame_pixels=3072)).frames) == 2


def test_frames_times_pixels_decoded_are_budgeted(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, [np.full((48, 64, 3), i * 20, np.uint8) for i in range(12)], fps=12)
    with pytest.raises(MediaLimitError, match=r"took more than 10000 pixels"):
        load_video(path, 6, limits=DecodeLimits(max_video_pixels=10_000))  # 3 frames of 3072
    clip = load_video(path, 6, limits=DecodeLimits(max_video_pixels=12 * 3072))
    assert clip.num_decoded_frames <= 12


def test_limit_errors_are_media_errors():
    assert issubclass(MediaLimitError, MediaError)

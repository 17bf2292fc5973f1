"""Tests for audio loading and ImageBind-compatible audio preprocessing."""

from __future__ import annotations

import base64
import io
import json
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from groundinggpt.errors import MediaError
from groundinggpt.media.audio import (
    AUDIO_MEAN,
    AUDIO_STD,
    TARGET_SAMPLE_RATE,
    AudioWaveform,
    audio_clip_starts,
    load_audio,
    preprocess_audio,
    resample_waveform,
    waveform_to_clips,
)
from groundinggpt.media.fbank import kaldi_fbank, mel_banks, num_frames

FIXTURE = Path(__file__).parent / "fixtures" / "fbank_reference.npz"
LOG_EPS = math.log(torch.finfo(torch.float32).eps)
# What a zero feature (a padded frame) becomes after ImageBind's normalisation.
PAD_VALUE = (0.0 - AUDIO_MEAN) / AUDIO_STD


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noisy_tone(seconds: float = 1.0, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A tone plus noise, quantised to int16 so WAV/FLAC round-trips are exact."""
    rng = np.random.default_rng(seed)
    x = tone(440, seconds, rate, 0.4) + 0.05 * rng.standard_normal(int(round(seconds * rate)))
    return (np.round(x * 32767) / 32768).astype(np.float32)


def encode_with_pyav(samples: np.ndarray, rate: int, container_format: str, codec: str, title: str | None = None) -> bytes:
    """Encodes mono float samples with PyAV/FFmpeg into an in-memory file (with a title tag if given)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=container_format) as container:
        if title is not None:
            container.metadata["title"] = title
        stream = container.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[None].astype(np.float32), format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def write_mp4(path: Path, audio: np.ndarray | None, rate: int = 16000, frames: int = 10) -> None:
    """Writes a tiny MPEG-4 video (32x32, 10 fps), with an AAC track if ``audio`` is given."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width = video.height = 32
        video.pix_fmt = "yuv420p"
        audio_stream = container.add_stream("aac", rate=rate, layout="mono") if audio is not None else None
        for i in range(frames):
            image = np.full((32, 32, 3), (i * 25) % 256, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if audio_stream is not None:
            frame = av.AudioFrame.from_ndarray(audio[None].astype(np.float32), format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = 0
            for packet in audio_stream.encode(frame):
                container.mux(packet)
            for packet in audio_stream.encode(None):
                container.mux(packet)


def peak_frequency(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum)) * rate / len(x)


def best_aligned_error(a: np.ndarray, b: np.ndarray, max_lag: int = 3000) -> float:
    """Relative RMS error of b against a after the best integer alignment (lossy codecs
    add encoder delay)."""
    n = min(len(a), len(b)) - max_lag
    best = math.inf
    for lag in range(0, max_lag, 1):
        for x, y in ((a[:n], b[lag : lag + n]), (a[lag : lag + n], b[:n])):
            best = min(best, float(np.sqrt(np.mean((x - y) ** 2)) / np.sqrt(np.mean(x**2))))
    return best


# --------------------------------------------------------------------------------------
# Kaldi fbank
# --------------------------------------------------------------------------------------


def _fixture_cases():
    data = np.load(FIXTURE)
    meta = json.loads(str(data["meta_json"]))
    for signal, configs in meta["signal_configs"].items():
        for config in configs:
            yield pytest.param(signal, config, meta["configs"][config], id=f"{signal}-{config}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("signal", "config", "settings"), list(_fixture_cases()))
def test_fbank_matches_kaldi_native_fbank(signal, config, settings, dtype):
    data = np.load(FIXTURE)
    samples = torch.from_numpy(data[f"{signal}_pcm16"].astype(np.float32) / 32768.0).to(dtype)
    reference = data[f"{signal}_{config}"].astype(np.float64)

    ours = kaldi_fbank(
        samples,
        num_mel_bins=settings["num_mel_bins"],
        frame_length_ms=settings["frame_length_ms"],
        frame_shift_ms=settings["frame_shift_ms"],
    )
    assert ours.dtype == dtype
    assert tuple(ours.shape) == reference.shape
    error = np.abs(ours.double().numpy() - reference)

    # The reference is float32 C++: a band far below its frame's loudest band (a
    # single FFT bin at ~1e-9 of the peak power) carries float32 rounding noise of
    # order 1e-3 in the log domain in *the reference*. Within 16 nats (~70 dB) of the
    # loudest band, the reference is accurate and we agree to 1e-3.
    below_peak = reference.max(axis=1, keepdims=True) - reference
    assert error[below_peak <= 16].max() <= 1e-3
    assert error.max() <= 3e-3
    assert error.mean() <= 5e-5


def test_fbank_batched_matches_single_and_keeps_dtype():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.standard_normal((3, 4000)).astype(np.float32) * 0.1)
    batched = kaldi_fbank(x)
    assert batched.shape == (3, num_frames(4000), 128) == (3, 23, 128)
    for i in range(3):
        torch.testing.assert_close(batched[i], kaldi_fbank(x[i]), rtol=0, atol=1e-5)
    f64 = kaldi_fbank(x.double())
    assert f64.dtype == torch.float64
    torch.testing.assert_close(f64.float(), batched, rtol=0, atol=2e-3)
    assert kaldi_fbank(x.half()).dtype == torch.float32


def test_fbank_shorter_than_a_frame_gives_no_frames():
    assert kaldi_fbank(torch.zeros(399)).shape == (0, 128)
    assert kaldi_fbank(torch.zeros(2, 100)).shape == (2, 0, 128)
    assert kaldi_fbank(torch.zeros(400)).shape == (1, 128)
    # Digital silence floors at log(float32 eps), as in Kaldi / torchaudio.
    torch.testing.assert_close(kaldi_fbank(torch.zeros(800)), torch.full((3, 128), LOG_EPS))


def test_fbank_rejects_integer_input():
    with pytest.raises(ValueError, match="floating-point"):
        kaldi_fbank(torch.zeros(1000, dtype=torch.int16))


def test_mel_banks_imagebind_layout():
    banks = mel_banks(128, 512, 16000)
    assert banks.shape == (128, 257)
    assert torch.all(banks >= 0) and torch.all(banks <= 1)
    assert torch.all(banks[:, -1] == 0)  # Nyquist bin never used
    # Bin 3's triangle falls between two FFT bins: torchaudio keeps an all-zero row
    # (Kaldi would refuse the setting), so that feature is always log(eps).
    empty = (banks.sum(dim=1) == 0).nonzero().flatten().tolist()
    assert empty == [3]
    noise = torch.from_numpy(np.random.default_rng(2).standard_normal(4000).astype(np.float32))
    torch.testing.assert_close(kaldi_fbank(noise)[:, 3], torch.full((23,), LOG_EPS))
    # Callers get a copy, not the cache.
    banks.zero_()
    assert mel_banks(128, 512, 16000).sum() > 0


# --------------------------------------------------------------------------------------
# Clips and preprocessing
# --------------------------------------------------------------------------------------


def test_clip_starts_follow_constant_clips_per_video_sampler():
    # ConstantClipsPerVideoSampler: start_i = i * (duration - clip) / num_clips.
    assert audio_clip_starts(10.0) == pytest.approx([0.0, 8 / 3, 16 / 3], abs=1e-12)
    assert audio_clip_starts(5.0) == pytest.approx([0.0, 1.0, 2.0])
    assert audio_clip_starts(2.0) == [0.0, 0.0, 0.0]
    assert audio_clip_starts(0.1) == [0.0, 0.0, 0.0]
    assert audio_clip_starts(11.0, num_clips=5, clip_seconds=1.0) == pytest.approx([0, 2, 4, 6, 8])
    with pytest.raises(ValueError):
        audio_clip_starts(10.0, num_clips=0)


def test_waveform_to_clips_slices_and_pads():
    x = torch.arange(160000, dtype=torch.float32)
    clips = waveform_to_clips(x, 16000)
    assert clips.shape == (3, 32000)
    # Starts 0, 8/3 s, 16/3 s -> samples int(16000 * 8/3) = 42666, int(16000 * 16/3) = 85333.
    for clip, first in zip(clips, (0, 42666, 85333)):
        torch.testing.assert_close(clip, x[first : first + 32000])
    short = waveform_to_clips(torch.ones(1600), 16000)
    assert short.shape == (3, 32000)
    assert torch.all(short[:, :1600] == 1) and torch.all(short[:, 1600:] == 0)


@pytest.mark.parametrize(("seconds", "valid_frames"), [(10.0, 198), (2.0, 198), (0.1, 8)])
def test_preprocess_audio_shape_and_padding(seconds, valid_frames):
    x = noisy_tone(seconds)
    out = preprocess_audio((x, 16000))
    feats = out.input_features
    assert feats.shape == (3, 1, 128, 204) and feats.dtype == torch.float32
    assert out.duration == pytest.approx(seconds)
    assert out.clip_starts == pytest.approx(audio_clip_starts(seconds))
    # ImageBind pads the *features* with 0, which normalises to -mean/std.
    padded = feats[..., valid_frames:]
    torch.testing.assert_close(padded, torch.full_like(padded, PAD_VALUE), rtol=0, atol=1e-6)
    valid = feats[..., :valid_frames]
    assert not torch.any(torch.isclose(valid[:, :, [0, 50, 120]], torch.tensor(PAD_VALUE)))
    # Mel bin 3 is empty in this layout: log(eps) in every real frame.
    torch.testing.assert_close(valid[:, 0, 3], torch.full_like(valid[:, 0, 3], (LOG_EPS - AUDIO_MEAN) / AUDIO_STD))


def test_preprocess_audio_equals_manual_imagebind_pipeline():
    x = noisy_tone(10.0, seed=3)
    out = preprocess_audio((x, 16000)).input_features
    wav = torch.from_numpy(x)
    for i, start in enumerate(audio_clip_starts(10.0)):
        a = int(Fraction(start) * 16000)
        clip = wav[a : a + 32000]
        fb = kaldi_fbank(clip - clip.mean()).T  # [128, 198]
        expected = torch.nn.functional.pad(fb, (0, 204 - fb.shape[1]))
        torch.testing.assert_close(out[i, 0], (expected - AUDIO_MEAN) / AUDIO_STD, rtol=0, atol=1e-5)


def test_preprocess_audio_replicates_in_place_mean_subtraction_and_keeps_input():
    # 3 s audio: clips [0, 2], [1/3, 7/3], [2/3, 8/3] overlap. ImageBind subtracts each
    # clip's mean in place on the shared waveform, so later clips see earlier means.
    x = noisy_tone(3.0, seed=4) + 0.2  # a DC offset makes the means matter
    original = x.copy()
    wav = AudioWaveform(torch.from_numpy(x), 16000, 3.0)
    out = preprocess_audio(wav).input_features
    assert np.array_equal(x, original)  # caller's data untouched

    buf = torch.from_numpy(original).clone()
    for i, start in enumerate(audio_clip_starts(3.0)):
        a = int(Fraction(start) * 16000)
        view = buf[a : a + 32000]
        view -= view.mean()
        fb = kaldi_fbank(view.clone()).T
        expected = (torch.nn.functional.pad(fb, (0, 6)) - AUDIO_MEAN) / AUDIO_STD
        torch.testing.assert_close(out[i, 0], expected, rtol=0, atol=1e-5)


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def test_formats_bytes_and_data_url_give_the_same_waveform(tmp_path):
    x = noisy_tone(1.0, seed=5)
    sf.write(tmp_path / "a.wav", x, 16000, subtype="PCM_16")
    sf.write(tmp_path / "a.flac", x, 16000, subtype="PCM_16")
    sf.write(tmp_path / "a.ogg", x, 16000, format="OGG", subtype="VORBIS")
    (tmp_path / "a.mp3").write_bytes(encode_with_pyav(x, 16000, "mp3", "libmp3lame"))
    (tmp_path / "a.m4a").write_bytes(encode_with_pyav(x, 16000, "ipod", "aac"))

    ref = load_audio(tmp_path / "a.wav")
    assert ref.sample_rate == 16000 and ref.duration == pytest.approx(1.0)
    assert ref.waveform.dtype == torch.float32 and ref.waveform.dim() == 1
    np.testing.assert_array_equal(ref.waveform.numpy(), x)  # int16 PCM round-trips exactly

    wav_bytes = (tmp_path / "a.wav").read_bytes()
    exact = [
        load_audio(str(tmp_path / "a.flac")),
        load_audio(wav_bytes),
        load_audio(bytearray(wav_bytes)),
        load_audio("data:audio/wav;base64," + base64.b64encode(wav_bytes).decode()),
        load_audio((x, 16000)),
        load_audio((torch.from_numpy(x), 16000)),
    ]
    for other in exact:
        torch.testing.assert_close(other.waveform, ref.waveform, rtol=0, atol=0)

    # Lossy codecs: same signal up to coding noise and encoder delay / padding.
    for name in ("a.ogg", "a.mp3", "a.m4a"):
        lossy = load_audio(tmp_path / name)
        assert lossy.sample_rate == 16000
        assert abs(lossy.waveform.numel() - 16000) <= 2048, name
        assert best_aligned_error(x, lossy.waveform.numpy()) < 0.25, name


def test_audio_track_of_a_video_loads(tmp_path):
    x = tone(440, 1.0, 16000)
    write_mp4(tmp_path / "clip.mp4", x)
    audio = load_audio(tmp_path / "clip.mp4")
    assert audio.sample_rate == 16000
    assert 0.9 < audio.duration < 1.2
    assert peak_frequency(audio.waveform.numpy(), 16000) == pytest.approx(440, abs=2)
    assert preprocess_audio(tmp_path / "clip.mp4").input_features.shape == (3, 1, 128, 204)
    # The same file as bytes and as a video/* data URL.
    data = (tmp_path / "clip.mp4").read_bytes()
    torch.testing.assert_close(load_audio(data).waveform, audio.waveform)
    url = "data:video/mp4;base64," + base64.b64encode(data).decode()
    torch.testing.assert_close(load_audio(url).waveform, audio.waveform)


def test_resampling_keeps_frequency_and_amplitude(tmp_path):
    x = tone(440, 2.0, 44100, amplitude=0.5)
    y = load_audio((x, 44100)).waveform.numpy()
    assert len(y) == 32000
    assert peak_frequency(y, 16000) == pytest.approx(440, abs=16000 / len(y))
    interior = y[1000:-1000]
    amplitude = np.sqrt(2 * np.mean(interior**2))
    assert amplitude == pytest.approx(0.5, rel=0.02)
    # Band-limited interpolation: the interior matches the ideal 16 kHz sine closely.
    ideal = 0.5 * np.sin(2 * np.pi * 440 * np.arange(len(y)) / 16000)
    assert np.abs(y - ideal)[1000:-1000].max() < 1e-3

    # Through a file, and for an awkward ratio and upsampling.
    sf.write(tmp_path / "cd.wav", x, 44100, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "cd.wav").waveform.numpy(), y, atol=1e-6)
    for rate in (44101, 8000, 48000):
        z = resample_waveform(torch.from_numpy(tone(440, 1.0, rate).astype(np.float64)), rate, 16000).numpy()
        assert len(z) == math.ceil(16000 * round(rate) / rate)
        ideal = 0.5 * np.sin(2 * np.pi * 440 * np.arange(len(z)) / 16000)
        assert np.abs(z - ideal)[500:-500].max() < 1e-3, rate
    # Equal rates: nothing to do; None keeps the source rate.
    t = torch.randn(100)
    assert resample_waveform(t, 16000, 16000) is t
    assert load_audio((x, 44100), sample_rate=None).sample_rate == 44100


def test_resampling_is_batched_and_removes_aliases():
    # 1 kHz passes; 12 kHz is above the 8 kHz output Nyquist and must be filtered out
    # (to < 1 %) rather than folded back to 4 kHz. (Like torchaudio's default filter,
    # 6 zero crossings, the transition band reaches ~10 kHz: 9 kHz is only -17 dB.)
    x = torch.from_numpy(np.stack([tone(1000, 0.5, 48000), tone(12000, 0.5, 48000)]))
    y = resample_waveform(x, 48000, 16000)
    assert y.shape == (2, 8000)
    torch.testing.assert_close(y[0], resample_waveform(x[0], 48000, 16000))
    assert y[1, 500:-500].abs().max() < 0.01 * 0.5


def test_stereo_is_averaged_to_mono(tmp_path):
    left = tone(440, 1.0, 16000, 0.5)
    right = tone(1000, 1.0, 16000, 0.25)
    stereo = np.stack([left, right], axis=1)  # [T, 2], as soundfile writes it
    sf.write(tmp_path / "st.wav", stereo, 16000, subtype="FLOAT")
    expected = (left + right) / 2
    np.testing.assert_allclose(load_audio(tmp_path / "st.wav").waveform.numpy(), expected, atol=1e-7)
    np.testing.assert_allclose(load_audio((stereo, 16000)).waveform.numpy(), expected, atol=1e-7)
    np.testing.assert_allclose(load_audio((stereo.T, 16000)).waveform.numpy(), expected, atol=1e-7)


def test_integer_pcm_arrays_are_scaled():
    pcm = np.array([0, 16384, -32768, 32767], dtype=np.int16)
    out = load_audio((np.tile(pcm, 100), 16000)).waveform.numpy()
    np.testing.assert_allclose(out[:4], [0.0, 0.5, -1.0, 32767 / 32768])


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


def test_corrupt_bytes_raise_media_error():
    with pytest.raises(MediaError, match="<bytes>"):
        load_audio(b"this is not audio at all" * 20)
    with pytest.raises(MediaError, match="<bytes>"):
        load_audio(b"")


def test_bad_files_raise_media_error_naming_the_path(tmp_path):
    missing = tmp_path / "nope.wav"
    with pytest.raises(MediaError, match="nope.wav.*not found"):
        load_audio(missing)

    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty.wav.*empty"):
        load_audio(empty)

    zero = tmp_path / "zero.wav"
    sf.write(zero, np.zeros((0, 1), dtype=np.float32), 16000)
    assert zero.stat().st_size > 0  # a valid header, no samples
    with pytest.raises(MediaError, match="zero.wav.*no audio samples"):
        load_audio(zero)

    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(MediaError, match="garbage.mp3"):
        load_audio(garbage)

    silent_video = tmp_path / "silent.mp4"
    write_mp4(silent_video, None)
    with pytest.raises(MediaError, match="silent.mp4.*no audio stream"):
        load_audio(silent_video)
    with pytest.raises(MediaError, match="<bytes>.*no audio stream"):
        preprocess_audio(silent_video.read_bytes())


def test_other_bad_sources_raise_media_error():
    with pytest.raises(MediaError, match="<data: URL>.*base64"):
        load_audio("data:audio/wav;base64,@@@not-base64@@@")
    with pytest.raises(MediaError, match="<data: URL>.*not audio"):
        load_audio("data:image/png;base64,AAAA")
    with pytest.raises(MediaError, match="<array>.*sample rate"):
        load_audio(np.zeros(100, dtype=np.float32))
    with pytest.raises(MediaError, match="<array>.*no audio samples"):
        load_audio((np.zeros(0, dtype=np.float32), 16000))
    with pytest.raises(MediaError, match="<array>.*NaN"):
        load_audio((np.full(10, np.nan, dtype=np.float32), 16000))
    with pytest.raises(MediaError, match="<array>"):
        load_audio((np.zeros(10, dtype=np.float32), 0))
    with pytest.raises(MediaError, match="remote"):
        load_audio("https://example.com/a.wav")
    with pytest.raises(MediaError):
        load_audio(12345)  # type: ignore[arg-type]


def test_short_audio_is_fine_but_not_shorter_than_one_window():
    out = preprocess_audio((noisy_tone(0.1), 16000))
    assert out.input_features.shape == (3, 1, 128, 204)
    one_window = preprocess_audio((noisy_tone(0.025), 16000)).input_features
    assert not torch.allclose(one_window, torch.full_like(one_window, PAD_VALUE))
    # Shorter than one 25 ms window there would be no frame at all, only padding: refused.
    with pytest.raises(MediaError, match=r"6.2 ms of audio; expected at least 25 ms"):
        preprocess_audio((np.full(100, 0.1, dtype=np.float32), TARGET_SAMPLE_RATE))


def test_decoded_files_with_nan_or_absurd_rates_are_refused(tmp_path):
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.full(32000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(MediaError, match=f"{nan}: samples contain NaN or infinite values"):
        load_audio(nan)
    inf = tone(440, 1.0, 16000).astype(np.float32)
    inf[100] = np.inf
    buf = io.BytesIO()
    sf.write(buf, inf, 16000, format="WAV", subtype="FLOAT")
    with pytest.raises(MediaError, match="<bytes>: samples contain NaN"):
        load_audio(buf.getvalue())
    # A 10 kB file whose header says 1 Hz: 5000 s, 16,000x the samples once resampled.
    slow = tmp_path / "rate1.wav"
    sf.write(slow, (np.sin(np.arange(5000)) * 1e4).astype(np.int16), 1, subtype="PCM_16")
    with pytest.raises(MediaError, match="sample rate 1 Hz; expected at least 4000 Hz"):
        load_audio(slow)
    assert load_audio((tone(440, 0.5, 8000), 8000)).sample_rate == TARGET_SAMPLE_RATE  # telephone rate: fine


def test_file_with_latin1_metadata_loads(tmp_path):
    """A title tag that is not UTF-8 (common in old files) must not stop the decoding:
    PyAV < 19 decodes tags strictly unless the loader asks it not to."""
    x = tone(440, 1.0, 16000)
    (tmp_path / "a.m4a").write_bytes(encode_with_pyav(x, 16000, "ipod", "aac", title="QQTITLEQQ"))
    path = tmp_path / "latin1.m4a"
    path.write_bytes((tmp_path / "a.m4a").read_bytes().replace(b"QQTITLEQQ", b"QQTITL\xe9QQ"))
    if int(av.__version__.split(".")[0]) < 19:  # the file really is one that strict decoding refuses
        with pytest.raises(UnicodeDecodeError):
            av.open(str(path), mode="r").close()
    audio = load_audio(path)
    assert peak_frequency(audio.waveform.numpy(), 16000) == pytest.approx(440, abs=2)

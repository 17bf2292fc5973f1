"""Kaldi-compatible log mel filterbank features, written with plain torch ops.

ImageBind's audio encoder was trained on ``torchaudio.compliance.kaldi.fbank``
features. torchaudio is not usable in every environment this package targets, so
this module re-implements the same algorithm (which is Kaldi's
``compute-fbank-feats``) for the options ImageBind uses:

* framing with ``snip_edges=True``: only frames that fit entirely in the signal,
  ``1 + (T - frame_length) // frame_shift`` of them;
* per-frame DC removal, then pre-emphasis ``x[t] - c * x[t-1]`` with
  ``x[-1] := x[0]`` inside each frame;
* a symmetric (non-periodic) Hann window, zero-padding to the next power of two
  for the FFT, and the power spectrum ``|rfft|**2``;
* Kaldi's triangular mel banks (``mel = 1127 ln(1 + f / 700)``, triangles that are
  linear in mel, no VTLN, the Nyquist bin unused), evaluated in float32 like
  torchaudio's; with 128 bins and a 512-point FFT, bin 3 contains no FFT bin and is
  all zero (Kaldi itself rejects that setting; torchaudio, hence ImageBind, keeps it);
* ``log(max(energy, float32 epsilon))``.

There is no energy column: ImageBind passes ``use_energy=False``, and
``htk_compat`` only moves that column, so it has no effect here.

The implementation is checked against the independent C++ implementation
``kaldi-native-fbank`` (see ``scripts/make_fbank_fixture.py`` and
``tests/test_media_audio.py``).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

__all__ = ["kaldi_fbank", "mel_banks", "num_frames"]

# Kaldi floors energies with std::numeric_limits<float>::epsilon() even when it
# computes in double precision; torchaudio does the same, so we do too.
_LOG_FLOOR = float(torch.finfo(torch.float32).eps)
_MS = 0.001


def _window_samples(sample_rate: float, duration_ms: float) -> int:
    # Same expression (and so the same float rounding) as torchaudio's
    # ``int(sample_frequency * frame_length * MILLISECONDS_TO_SECONDS)``.
    return int(sample_rate * duration_ms * _MS)


def _next_power_of_two(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def num_frames(num_samples: int, sample_rate: float = 16000, frame_length_ms: float = 25.0,
               frame_shift_ms: float = 10.0) -> int:
    """Number of frames ``kaldi_fbank`` produces for a signal of ``num_samples``.

    Args:
        num_samples: Signal length in samples.
        sample_rate: Sampling rate in Hz.
        frame_length_ms: Frame length in milliseconds.
        frame_shift_ms: Frame shift in milliseconds.

    Returns:
        ``1 + (num_samples - frame_length) // frame_shift`` when at least one frame
        fits (Kaldi's ``snip_edges=True``), else 0.
    """
    size = _window_samples(sample_rate, frame_length_ms)
    shift = _window_samples(sample_rate, frame_shift_ms)
    if num_samples < size:
        return 0
    return 1 + (num_samples - size) // shift


@functools.lru_cache(maxsize=32)
def _mel_banks_f32(num_bins: int, fft_size: int, sample_rate: float, low_freq: float,
                   high_freq: float) -> Tensor:
    if num_bins < 3:
        raise ValueError(f"num_mel_bins must be at least 3, got {num_bins}")
    if fft_size % 2:
        raise ValueError(f"the FFT size must be even, got {fft_size}")
    nyquist = 0.5 * sample_rate
    # Kaldi's convention: a non-positive high_freq is an offset from Nyquist.
    if high_freq <= 0.0:
        high_freq += nyquist
    if not (0.0 <= low_freq < nyquist and 0.0 < high_freq <= nyquist and low_freq < high_freq):
        raise ValueError(
            f"bad mel band edges: low_freq={low_freq}, high_freq={high_freq}, "
            f"expected 0 <= low_freq < high_freq <= Nyquist ({nyquist} Hz)"
        )

    # The band edges are computed in double precision, the per-bin values in float32,
    # in the same order of operations as torchaudio (and Kaldi, which uses float):
    # the weights then round the way they did for the features ImageBind was trained
    # on. (A float64 bank differs by up to ~2e-5 per weight.)
    mel_low = 1127.0 * math.log(1.0 + low_freq / 700.0)
    mel_high = 1127.0 * math.log(1.0 + high_freq / 700.0)
    # num_bins + 1 intervals: the outer triangles' feet are at low/high_freq.
    delta = (mel_high - mel_low) / (num_bins + 1)
    index = torch.arange(num_bins, dtype=torch.float32)[:, None]
    left = mel_low + index * delta
    center = mel_low + (index + 1.0) * delta
    right = mel_low + (index + 2.0) * delta

    # Only the first fft_size // 2 bins take part: Kaldi never weights the Nyquist bin.
    bin_hz = sample_rate / fft_size
    fft_hz = bin_hz * torch.arange(fft_size // 2, dtype=torch.float32)
    fft_mel = (1127.0 * (1.0 + fft_hz / 700.0).log())[None, :]
    up = (fft_mel - left) / (center - left)
    down = (right - fft_mel) / (right - center)
    # Triangles: rising on [left, center], falling on [center, right], zero elsewhere.
    # With 128 bins and a 512-point FFT at 16 kHz one triangle (bin 3) is narrower
    # than an FFT bin and gets an all-zero row; Kaldi rejects that setting, torchaudio
    # (and so ImageBind) keeps it, and so do we: that feature is always log(eps).
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    # Append a zero column for the Nyquist bin so the matrix matches rfft's output.
    return torch.nn.functional.pad(banks, (0, 1))


def mel_banks(num_mel_bins: int = 128, fft_size: int = 512, sample_rate: float = 16000,
              low_freq: float = 20.0, high_freq: float = 0.0, *,
              dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """Kaldi's triangular mel filterbank matrix.

    The matrix is computed once per setting (in float32, like torchaudio and
    Kaldi) and cached; each call returns a fresh copy, so callers may modify it.

    Args:
        num_mel_bins: Number of triangular filters.
        fft_size: FFT length (the padded frame length, a power of two for Kaldi).
        sample_rate: Sampling rate in Hz.
        low_freq: Lower edge of the first filter in Hz.
        high_freq: Upper edge of the last filter in Hz; ``<= 0`` means an offset
            from the Nyquist frequency (Kaldi's convention).
        dtype: Floating dtype of the result.
        device: Device of the result.

    Returns:
        Tensor of shape ``[num_mel_bins, fft_size // 2 + 1]``; the last column
        (the Nyquist bin) is zero.

    Raises:
        ValueError: For fewer than 3 bins, an odd FFT size or band edges outside
            ``[0, Nyquist]``.
    """
    banks = _mel_banks_f32(int(num_mel_bins), int(fft_size), float(sample_rate), float(low_freq),
                           float(high_freq))
    return banks.to(dtype=dtype, device=device, copy=True)


def kaldi_fbank(
    waveform: Tensor,
    sample_rate: float = 16000,
    num_mel_bins: int = 128,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    preemphasis: float = 0.97,
    remove_dc_offset: bool = True,
    dither: float = 0.0,
) -> Tensor:
    """Log mel filterbank energies, numerically equivalent to Kaldi / torchaudio.

    Equivalent to ``torchaudio.compliance.kaldi.fbank(waveform[None], ...,
    window_type="hanning", use_energy=False, snip_edges=True,
    round_to_power_of_two=True)`` with the same argument values, but vectorised
    over frames and over an optional batch dimension.

    Args:
        waveform: Float tensor ``[T]`` or ``[B, T]``. Use the scale the model was
            trained with (ImageBind: floats in ``[-1, 1]``, as torchaudio loads them).
            float32 and float64 are computed in their own precision (the mel
            weights are float32-rounded either way, as in torchaudio); float16 and
            bfloat16 are computed (and returned) in float32.
        sample_rate: Sampling rate in Hz.
        num_mel_bins: Number of mel filters.
        frame_length_ms: Frame length in milliseconds (25 ms = 400 samples at 16 kHz).
        frame_shift_ms: Frame shift in milliseconds (10 ms = 160 samples at 16 kHz).
        low_freq: Lower edge of the mel filters in Hz.
        high_freq: Upper edge in Hz; ``<= 0`` is an offset from Nyquist.
        preemphasis: Pre-emphasis coefficient in ``[0, 1]``.
        remove_dc_offset: Subtract each frame's mean before pre-emphasis.
        dither: Standard deviation of Gaussian noise added to each frame
            (Kaldi's dithering); 0 disables it and makes the result deterministic.

    Returns:
        Tensor ``[num_frames, num_mel_bins]`` (or ``[B, num_frames, num_mel_bins]``)
        of natural-log energies. A signal shorter than one frame gives zero frames
        (torchaudio raises instead).

    Raises:
        ValueError: For a non-floating or wrongly shaped waveform, or invalid
            frame / filter settings.
    """
    if not isinstance(waveform, Tensor):
        raise ValueError(f"waveform must be a torch.Tensor, got {type(waveform).__name__}")
    if not waveform.is_floating_point():
        raise ValueError(
            f"waveform must be a floating-point tensor (samples in [-1, 1]), got {waveform.dtype}"
        )
    if waveform.dim() not in (1, 2):
        raise ValueError(f"waveform must have shape [T] or [B, T], got {tuple(waveform.shape)}")
    if not 0.0 <= preemphasis <= 1.0:
        raise ValueError(f"preemphasis must be in [0, 1], got {preemphasis}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")

    frame_size = _window_samples(sample_rate, frame_length_ms)
    frame_shift = _window_samples(sample_rate, frame_shift_ms)
    if frame_size < 2 or frame_shift < 1:
        raise ValueError(
            f"frame length ({frame_size} samples) must be >= 2 and frame shift "
            f"({frame_shift} samples) >= 1"
        )
    fft_size = _next_power_of_two(frame_size)

    if waveform.dtype not in (torch.float32, torch.float64):
        # rfft has no half-precision CPU kernel, and log energies need the range anyway.
        waveform = waveform.to(torch.float32)
    dtype, device = waveform.dtype, waveform.device
    banks = mel_banks(num_mel_bins, fft_size, sample_rate, low_freq, high_freq, dtype=dtype,
                      device=device)

    batched = waveform.dim() == 2
    x = waveform if batched else waveform[None]
    if x.shape[-1] < frame_size:
        out = x.new_empty((x.shape[0], 0, int(num_mel_bins)))
        return out if batched else out[0]

    # [B, num_frames, frame_size]; unfold is a view, the arithmetic below copies.
    frames = x.unfold(-1, frame_size, frame_shift)
    if dither != 0.0:
        frames = frames + dither * torch.randn_like(frames)
    if remove_dc_offset:
        frames = frames - frames.mean(dim=-1, keepdim=True)
    if preemphasis != 0.0:
        # Kaldi treats the sample before each frame's first one as that first sample.
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = frames - preemphasis * previous
    window = torch.hann_window(frame_size, periodic=False, dtype=dtype, device=device)
    frames = frames * window

    spectrum = torch.fft.rfft(frames, n=fft_size, dim=-1)
    power = spectrum.real.square() + spectrum.imag.square()
    energies = power @ banks.T
    out = torch.clamp(energies, min=_LOG_FLOOR).log()
    return out if batched else out[0]

"""Band-limited (windowed-sinc) resampling, whole or block by block with the same result.

A decoder that resamples while it decodes keeps only a few filter lengths of the source
in memory, instead of the whole source at its own rate (an 8-channel 655 kHz file is
~40 MB per second as float32). :class:`SincResampler` computes every output sample from
exactly the same input samples, weights and summation order as one pass over the whole
signal, so feeding it in blocks gives bit-identical output; :func:`resample_waveform` is
that one pass.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["SincResampler", "check_rate", "resample_waveform"]


def check_rate(rate: Any, what: str) -> int:
    """``rate`` as an int, or ValueError naming ``what`` unless it is a positive integer."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what} must be a positive integer number of Hz, got {rate!r}")
    if not math.isfinite(float(rate)) or float(rate) <= 0 or float(rate) != int(rate):
        raise ValueError(f"{what} must be a positive integer number of Hz, got {rate!r}")
    return int(rate)


class SincResampler:
    """Streaming ``orig_freq -> new_freq`` resampling of ``[rows, T]`` signals.

    The filter is the one of ``torchaudio.functional.resample`` with its defaults
    (``sinc_interp_hann``): the rates are reduced by their gcd to ``orig : new``; output
    sample ``j`` is the input convolved with a windowed sinc of cutoff
    ``min(orig, new) * rolloff / 2`` (in reduced units) centred on input position
    ``j * orig / new``, using the input samples within ``lowpass_filter_width`` zero
    crossings; the signal is zero outside its support. Only the ``new`` distinct filter
    phases are built and the non-zero taps are gathered directly, so memory stays small
    even for awkward ratios such as 44101 -> 16000.

    :meth:`push` returns the outputs whose taps have all arrived; :meth:`finish` the
    rest (the last ones see zeros past the end). Input is kept only from the first tap
    of the next output on: a few filter lengths.

    Raises:
        ValueError: For non-integer or non-positive rates or bad filter settings.
    """

    def __init__(self, orig_freq: int, new_freq: int, *, rows: int = 1, dtype: torch.dtype = torch.float32,
                 device: Any = None, lowpass_filter_width: int = 6, rolloff: float = 0.99):
        orig = check_rate(orig_freq, "orig_freq")
        new = check_rate(new_freq, "new_freq")
        if lowpass_filter_width < 1:
            raise ValueError(f"lowpass_filter_width must be >= 1, got {lowpass_filter_width}")
        if not 0.0 < rolloff <= 1.0:
            raise ValueError(f"rolloff must be in (0, 1], got {rolloff}")
        g = math.gcd(orig, new)
        self.orig, self.new = orig // g, new // g
        orig, new = self.orig, self.new
        base = min(orig, new) * rolloff
        # Half-width of the filter in input samples, rounded up as torchaudio does.
        self.width = width = math.ceil(lowpass_filter_width * orig / base)
        self.taps = 2 * width + 2  # covers [c - width, c + width + 1] around any centre c
        # Phase p produces outputs j = k * new + p, centred on input k * orig + p * orig / new.
        phase = torch.arange(new, dtype=torch.int64)
        first = torch.div(phase * orig, new, rounding_mode="floor") - width  # first tap offset
        offsets = first[:, None] + torch.arange(self.taps)  # [new, taps], relative to k * orig
        # Distance to the centre in units of the filter's zero crossings, from an exact
        # integer numerator so every phase is as precise as float64 allows.
        t = (offsets * new - phase[:, None] * orig).to(torch.float64) * (base / (orig * new))
        inside = t.abs() <= lowpass_filter_width
        hann = torch.cos(t * (math.pi / (2 * lowpass_filter_width))).square()
        weights = torch.where(inside, torch.sinc(t) * hann, torch.zeros_like(t)) * (base / orig)
        self.weights = weights.to(dtype=dtype, device=device)
        self.first = first.to(device)
        self.tap_range = torch.arange(self.taps, device=device)
        self.rows, self.dtype, self.device = rows, dtype, device
        # The buffer holds input samples [start, start + n); it begins with the zeros
        # before the signal that the first outputs' taps reach.
        self._start = -(width + 1)
        self._buffer = torch.zeros((rows, width + 1), dtype=dtype, device=device)
        self.received = 0  # input samples pushed
        self.produced = 0  # output samples returned
        self._finished = False

    def _first_input(self, j: int) -> int:
        """Index of output ``j``'s first tap: ``floor(j * orig / new) - width``."""
        return (j * self.orig) // self.new - self.width

    def _compute(self, stop: int) -> Tensor:
        """Outputs ``[produced, stop)`` from the buffer, in ~1M-element gathers (each output
        is its own sum, so the grouping does not change a bit; small groups keep the
        temporaries, and the memory they leave behind, small)."""
        start = self.produced
        out = self._buffer.new_empty((self.rows, max(0, stop - start)))
        chunk = max(1, (1 << 20) // (self.taps * self.rows))
        for a in range(start, stop, chunk):
            j = torch.arange(a, min(stop, a + chunk), device=self.device)
            k, p = torch.div(j, self.new, rounding_mode="floor"), j % self.new
            idx = (k * self.orig + self.first[p] - self._start)[:, None] + self.tap_range
            out[:, a - start : a - start + j.numel()] = (self._buffer[:, idx] * self.weights[p]).sum(-1)
        self.produced = max(start, stop)
        return out

    def push(self, block: Tensor) -> Tensor:
        """Feed ``[rows, n]`` more input samples; returns the outputs now complete."""
        if self._finished:
            raise RuntimeError("push after finish")
        if block.dim() != 2 or block.shape[0] != self.rows:
            raise ValueError(f"expected a [{self.rows}, n] block, got {tuple(block.shape)}")
        self._buffer = torch.cat([self._buffer, block.to(self.dtype)], dim=1)
        self.received += block.shape[1]
        # Output j's last tap is floor(j * orig / new) + width + 1: complete when < received.
        ready = max(self.produced, -(-(self.received - self.width - 1) * self.new // self.orig))
        out = self._compute(ready)
        keep = self._first_input(self.produced)
        if keep > self._start:
            self._buffer = self._buffer[:, keep - self._start:].clone()
            self._start = keep
        return out

    def finish(self) -> Tensor:
        """The remaining outputs, ``ceil(received * new / orig)`` in all."""
        self._finished = True
        total = -(-self.new * self.received // self.orig)
        if total > self.produced:
            last_tap = self._first_input(total - 1) + self.taps - 1
            pad = last_tap - (self._start + self._buffer.shape[1]) + 1
            if pad > 0:
                self._buffer = torch.nn.functional.pad(self._buffer, (0, pad))
        return self._compute(total)


def resample_waveform(
    waveform: Tensor,
    orig_freq: int,
    new_freq: int,
    *,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
) -> Tensor:
    """Band-limited resampling with a Hann-windowed sinc filter (see :class:`SincResampler`).

    Computes the same thing as ``torchaudio.functional.resample`` with its defaults.

    Args:
        waveform: Float tensor ``[..., T]``.
        orig_freq: Input rate in Hz (integer).
        new_freq: Output rate in Hz (integer).
        lowpass_filter_width: Number of sinc zero crossings on each side.
        rolloff: Cutoff as a fraction of the lower Nyquist frequency (< 1 leaves
            room for the filter's transition band, reducing aliasing).

    Returns:
        Tensor ``[..., ceil(T * new_freq / orig_freq)]`` with the input's dtype. The
        input itself is returned when the rates are equal.

    Raises:
        ValueError: For non-integer or non-positive rates, a non-float waveform or
            bad filter settings.
    """
    orig = check_rate(orig_freq, "orig_freq")
    new = check_rate(new_freq, "new_freq")
    if not waveform.is_floating_point():
        raise ValueError(f"waveform must be a floating-point tensor, got {waveform.dtype}")
    resampler = SincResampler(orig, new, rows=max(1, math.prod(waveform.shape[:-1])), dtype=waveform.dtype,
                              device=waveform.device, lowpass_filter_width=lowpass_filter_width, rolloff=rolloff)
    if orig == new:
        return waveform
    length = waveform.shape[-1]
    lead_shape = waveform.shape[:-1]
    out_length = -(-resampler.new * length // resampler.orig)
    x = waveform.reshape(-1, length)
    if out_length == 0 or x.shape[0] == 0:
        return waveform.new_zeros((*lead_shape, out_length))
    out = torch.cat([resampler.push(x), resampler.finish()], dim=1)
    return out.reshape(*lead_shape, out_length)

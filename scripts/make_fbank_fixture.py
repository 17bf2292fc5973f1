#!/usr/bin/env python3
"""Writes ``tests/fixtures/fbank_reference.npz``: Kaldi fbank reference values.

The references come from ``kaldi-native-fbank`` (a C++ port of Kaldi's feature
extraction, independent of torchaudio and of ``groundinggpt.media.fbank``), so the
test that reads this fixture checks our torch implementation against a second
implementation rather than against itself. The fixture is committed data: the test
never runs kaldi-native-fbank (it is a dev-only dependency, ``pip install
-e .[dev]``).

Settings match ImageBind's ``torchaudio.compliance.kaldi.fbank`` call: 16 kHz,
25 ms / 10 ms frames, Hann ("hanning") window, dither 0, pre-emphasis 0.97, DC
removal, snip_edges, no energy column, float input in [-1, 1] (kaldi-native-fbank is
fed the same floats, unscaled). One deviation is forced: Kaldi (and so
kaldi-native-fbank) refuses 128 mel bins with a 512-point FFT because mel bin 3 then
contains no FFT bin ("num_mel_bins too large"). torchaudio does not check and simply
outputs log(float32 eps) for that bin. The fixture therefore holds

* config ``a``: the ImageBind framing with 126 bins (the most Kaldi accepts), and
* config ``b``: 128 bins with 50 ms frames (1024-point FFT), so the 128-bin filter
  layout is checked too.

Signals are stored as int16 PCM (the float signal is ``int16 / 32768``, exactly what
a 16-bit WAV decodes to), which keeps the file small and the floats exact.

Usage:
    python scripts/make_fbank_fixture.py [--out tests/fixtures/fbank_reference.npz]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
SEED = 20240611

CONFIGS = {
    # name: (num_mel_bins, frame_length_ms, frame_shift_ms)
    "a": (126, 25.0, 10.0),
    "b": (128, 50.0, 10.0),
}
# Which configs are computed for which signal (keeps the fixture well under 300 KB).
SIGNAL_CONFIGS = {"s0": ("a", "b"), "s1": ("a",), "s2": ("a",)}


def make_signals(seed: int = SEED) -> dict[str, np.ndarray]:
    """Deterministic test signals as int16 PCM at 16 kHz."""
    rng = np.random.default_rng(seed)
    sr = SAMPLE_RATE

    # s0, 1.0 s: a linear chirp 100 Hz -> 7 kHz over noise (exercises every mel bin).
    t = np.arange(sr) / sr
    f0, f1 = 100.0, 7000.0
    chirp = 0.5 * np.sin(2 * np.pi * (f0 * t + 0.5 * (f1 - f0) * t**2))
    s0 = chirp + 0.05 * rng.standard_normal(sr)

    # s1, 0.73 s (not a whole number of frame shifts): two tones, a DC offset (the
    # per-frame DC removal must cancel it) and a little noise.
    n1 = int(0.73 * sr)
    t1 = np.arange(n1) / sr
    s1 = 0.1 + 0.3 * np.sin(2 * np.pi * 440 * t1) + 0.2 * np.sin(2 * np.pi * 3000 * t1)
    s1 = s1 + 0.01 * rng.standard_normal(n1)

    # s2, 0.5 s: digital silence then very quiet noise (exercises the eps floor).
    n2 = sr // 2
    s2 = np.zeros(n2)
    s2[n2 // 2 :] = 1e-3 * rng.standard_normal(n2 - n2 // 2)

    return {
        name: np.clip(np.round(sig * 32768.0), -32768, 32767).astype(np.int16)
        for name, sig in {"s0": s0, "s1": s1, "s2": s2}.items()
    }


def knf_fbank(samples: np.ndarray, num_bins: int, frame_length_ms: float, frame_shift_ms: float) -> np.ndarray:
    """Kaldi fbank of float samples with kaldi-native-fbank, ``[frames, num_bins]`` float32."""
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = SAMPLE_RATE
    opts.frame_opts.frame_length_ms = frame_length_ms
    opts.frame_opts.frame_shift_ms = frame_shift_ms
    opts.frame_opts.dither = 0.0
    opts.frame_opts.preemph_coeff = 0.97
    opts.frame_opts.remove_dc_offset = True
    opts.frame_opts.window_type = "hanning"
    opts.frame_opts.round_to_power_of_two = True
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = num_bins
    opts.mel_opts.low_freq = 20.0
    opts.mel_opts.high_freq = 0.0
    opts.mel_opts.is_librosa = False  # Kaldi's mel banks, not librosa's
    opts.use_energy = False
    opts.use_log_fbank = True
    opts.use_power = True
    opts.htk_compat = True  # as ImageBind; without an energy column it changes nothing

    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(SAMPLE_RATE, samples.astype(np.float32).tolist())
    fbank.input_finished()
    return np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)]).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output",
        dest="out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "fbank_reference.npz",
    )
    args = parser.parse_args()

    import kaldi_native_fbank as knf

    arrays: dict[str, np.ndarray] = {}
    for name, pcm in make_signals().items():
        arrays[f"{name}_pcm16"] = pcm
        floats = pcm.astype(np.float32) / 32768.0
        for cfg in SIGNAL_CONFIGS[name]:
            arrays[f"{name}_{cfg}"] = knf_fbank(floats, *CONFIGS[cfg])

    meta = {
        "generator": "kaldi-native-fbank",
        "version": getattr(knf, "__version__", "unknown"),
        "sample_rate": SAMPLE_RATE,
        "seed": SEED,
        "configs": {k: dict(zip(("num_mel_bins", "frame_length_ms", "frame_shift_ms"), v)) for k, v in CONFIGS.items()},
        "signal_configs": SIGNAL_CONFIGS,
        "signal_scale": "float = int16 / 32768",
    }
    arrays["meta_json"] = np.array(json.dumps(meta))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1024:.1f} KiB): " + ", ".join(f"{k}{list(v.shape)}" for k, v in arrays.items()))


if __name__ == "__main__":
    main()

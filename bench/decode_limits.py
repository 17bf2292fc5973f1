#!/usr/bin/env python
"""Peak memory and time of decoding hostile media: block decoding with limits vs whole-file decoding.

The worst cases of issue 13 (items 1-3), generated here:

* ``flac``: an 8-channel 655,350 Hz FLAC of silence (a few KB per second, 21 MB per
  second once decoded to float32);
* ``webm``: a WebM/Opus without a Duration element, as browsers' MediaRecorder writes it
  (the server's header check cannot see its length);
* ``video``: frames of ``--side`` x ``--side`` pixels (images are capped at 16 M pixels).

For each, the baseline is what decoding did before the limits: the audio decoded whole
to float32 ``[channels, T]``, mixed down, then resampled in one pass; the video decoded
with no limit. "now" is ``load_audio`` / ``load_video`` with the server's default
limits (``Limits()``: 600 s, 115.2 M samples x channels, 16 M pixels per frame, 2 G
pixels per video). Each case runs in its own child process of this run (peak RSS is per
process) on the same file, so the figures compare directly; the bound the limits give
is printed next to them.

    python bench/decode_limits.py [--flac-seconds 20] [--webm-minutes 15] [--frames 8 --side 8000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

MIB = 1024 * 1024


def _server_limits():
    from groundinggpt.media.limits import DecodeLimits
    from groundinggpt.serve.protocol import Limits

    d = Limits()
    return DecodeLimits(max_seconds=d.max_media_seconds, max_audio_samples=d.max_audio_samples,
                        max_frame_pixels=d.max_image_pixels, max_video_pixels=d.max_video_pixels)


def _whole_file_audio(path: str):
    """The decoding before limits: all samples as float32, then the channel mean, then one resampling pass."""
    import av
    import numpy as np
    import soundfile as sf
    import torch

    from groundinggpt.media.resample import resample_waveform

    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        channels = np.ascontiguousarray(data.T)
    except RuntimeError:  # not for libsndfile: FFmpeg, every frame kept
        with av.open(path) as c:
            converter, chunks = av.AudioResampler(format="fltp"), []
            for frame in c.decode(c.streams.audio[0]):
                for out in converter.resample(frame):
                    rate = out.sample_rate
                    chunks.append(out.to_ndarray())
            channels = np.concatenate(chunks, axis=1)
    mono = channels.mean(axis=0, dtype=np.float64) if channels.shape[0] > 1 else channels[0]
    return resample_waveform(torch.from_numpy(np.array(mono, dtype=np.float32)), rate, 16000)


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


class _PeakRSS:
    """Samples this process's resident memory every 2 ms while a case runs: the process
    peak (``ru_maxrss``) is already set by importing torch, which would hide the case's."""

    def __enter__(self) -> "_PeakRSS":
        import threading

        self.before = self.peak = _rss_kib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss_kib())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_kib(), 0)

    @property
    def mib(self) -> float:
        return (self.peak - self.before) / 1024


def _case(kind: str, how: str, path: str, limits_json: str) -> None:
    """Runs in a child process; prints ``[peak MiB over the start, seconds, result]`` as JSON.

    The server's limits come from the parent as JSON: the child imports only the media code
    (importing the server's module would load its web stack, ~6 CPU s per child)."""
    from groundinggpt.errors import MediaLimitError
    from groundinggpt.media.audio import load_audio
    from groundinggpt.media.limits import DecodeLimits
    from groundinggpt.media.video import load_video

    import numpy  # noqa: F401 - imported before the measurement, like the rest
    import soundfile  # noqa: F401
    import torch  # noqa: F401

    from groundinggpt.media import resample  # noqa: F401

    server_limits = DecodeLimits(**json.loads(limits_json))
    start = time.perf_counter()
    peak = _PeakRSS().__enter__()
    try:
        if kind == "video":
            limits = DecodeLimits(None, None, None, None) if how == "baseline" else server_limits
            clip = load_video(path, 8, limits=limits)
            result = f"{len(clip.frames)} frames of {clip.original_size[0]}x{clip.original_size[1]}"
        elif how == "baseline":
            result = f"{_whole_file_audio(path).numel() / 16000:.0f} s decoded"
        else:
            result = f"{load_audio(path, limits=server_limits).duration:.0f} s decoded"
    except MediaLimitError as e:
        result = "refused: " + str(e).split(": ", 1)[1][:70]
    peak.__exit__()
    seconds = time.perf_counter() - start
    print(json.dumps([max(peak.mib, 0.0), seconds, result]))


def _flac(path: str, seconds: float) -> None:
    import numpy as np
    import soundfile as sf

    with sf.SoundFile(path, "w", samplerate=655_350, channels=8, format="FLAC", subtype="PCM_16") as f:
        block = np.zeros((655_350 // 5, 8), dtype=np.int16)
        for _ in range(round(seconds * 5)):
            f.write(block)


def _webm(path: str, seconds: float) -> None:
    import av
    import numpy as np

    with av.open(path, "w", format="webm", options={"live": "1"}) as c:  # live: no Duration element
        stream = c.add_stream("libopus", rate=48000, layout="mono")
        second = (0.3 * np.sin(2 * np.pi * 440 * np.arange(48000) / 48000)).astype(np.float32)[None]
        for i in range(int(seconds)):
            frame = av.AudioFrame.from_ndarray(second, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 48000, i * 48000
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)


def _video(path: str, frames: int, side: int) -> None:
    import numpy as np

    from groundinggpt.media.video import write_video

    image = np.zeros((side, side, 3), np.uint8)
    image[: side // 2] = 200
    write_video(path, [image] * frames, fps=4, codec="libx264", options={"preset": "ultrafast"})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flac-seconds", type=float, default=20.0)
    p.add_argument("--webm-minutes", type=float, default=15.0)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--side", type=int, default=8000)
    p.add_argument("--child", nargs=4, metavar=("KIND", "HOW", "PATH", "LIMITS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _case(*args.child)
        return
    limits = _server_limits()
    limits_json = json.dumps(dataclasses.asdict(limits))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = [("flac", os.path.join(tmp, "8ch.flac")), ("webm", os.path.join(tmp, "rec.webm")),
                 ("video", os.path.join(tmp, "big.mp4"))]
        _flac(cases[0][1], args.flac_seconds)
        _webm(cases[1][1], args.webm_minutes * 60)
        _video(cases[2][1], args.frames, args.side)
        for kind, path in cases:
            for how in ("baseline", "now"):  # a fresh interpreter per case: its own peak
                child = subprocess.run([sys.executable, __file__, "--child", kind, how, path, limits_json],
                                       capture_output=True, text=True, check=True)
                rows.append((kind, how, os.path.getsize(path), *json.loads(child.stdout.splitlines()[-1])))
    names = {"flac": f"FLAC 8 ch 655,350 Hz, {args.flac_seconds:g} s",
             "webm": f"WebM/Opus, no duration, {args.webm_minutes:g} min",
             "video": f"{args.frames} frames {args.side}x{args.side}"}
    print("| medium | file KB | decode | peak RSS MiB | seconds | result |")
    print("|---|---:|---|---:|---:|---|")
    for kind, how, size, peak, seconds, result in rows:
        decode = "whole file (before)" if how == "baseline" else "blocks + limits (now)"
        print(f"| {names[kind]} | {size / 1024:.0f} | {decode} | {peak:.1f} | {seconds:.2f} | {result} |")
    audio_bound = limits.max_seconds * 16000 * 4 * 2 / MIB + 2 * 4 + 8  # output (+ its concat), blocks, filter
    print(f"\nlimits: {limits.max_seconds:g} s, {limits.max_audio_samples} samples x channels, "
          f"{limits.max_frame_pixels} pixels per frame, {limits.max_video_pixels} pixels per video")
    print(f"audio bound from the limits: ~{audio_bound:.0f} MiB (the 16 kHz output, twice while joined, "
          "plus one decoded block)")
    for kind in ("flac", "webm", "video"):
        base, now = [r for r in rows if r[0] == kind]
        ratio = base[3] / max(now[3], 0.1)
        print(f"{kind}: peak memory {ratio:.1f}x less ({base[3]:.1f} -> {now[3]:.1f} MiB), "
              f"time {base[4]:.2f} -> {now[4]:.2f} s")


if __name__ == "__main__":
    main()

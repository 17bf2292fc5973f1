"""What decoding one medium may cost, enforced on what is decoded (not on headers).

Container headers can be missing (a browser's MediaRecorder WebM has no duration) or
lie, so every limit here is counted while decoding and decoding stops as soon as one
is passed (:class:`~groundinggpt.errors.MediaLimitError`). Headers only allow an early
refusal. Peak memory is then bounded by the limits, whatever the file:

- audio is mixed to mono and resampled block by block, so what is held is the output
  (at most ``max_seconds`` at the target rate) plus one block;
- a video keeps at most its sampled frames, each at most ``max_frame_pixels``; the
  total decoding work is bounded by ``max_video_pixels``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DecodeLimits"]


@dataclass(frozen=True)
class DecodeLimits:
    """Limits for decoding one audio or video (``None`` disables one).

    Attributes:
        max_seconds: Length of an audio or video, counted from the decoded samples
            (audio) or from the timestamps (video). Default one hour.
        max_audio_samples: Samples x channels decoded from one audio file: decoding
            time grows with it, not with the seconds (an 8-channel 655 kHz file is 5.2 M
            per second). Default: an hour of 96 kHz stereo.
        max_frame_pixels: Width x height of one video frame, as images are capped.
        max_video_pixels: Frames x pixels decoded from one video (seeking decodes
            from the keyframe before each sampled frame, so more than are kept).
    """

    max_seconds: float | None = 3600.0
    max_audio_samples: int | None = 3600 * 96_000 * 2
    max_frame_pixels: int | None = 64_000_000
    max_video_pixels: int | None = 8_000_000_000

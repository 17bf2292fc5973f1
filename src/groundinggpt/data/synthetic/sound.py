"""Synthetic sounds: one timbre per shape, 16 kHz mono.

Every shape "makes" its own sound, with a distinct timbre and a dominant
frequency in its own band (the bands do not overlap), so a sound names a shape
and a model can learn which object in an image is sounding. Per-scene jitter of
pitch, loudness and rhythm keeps clips of one shape from being identical.

=========  ==========  ==========================  ===================================
shape      sound       caption                     signal (dominant band)
=========  ==========  ==========================  ===================================
square     buzz        a low buzzing sound         band-limited square wave (200-240 Hz)
ring       bell        a ringing bell              struck inharmonic partials (470-570 Hz)
circle     beep        a steady beeping tone       pulsed sine (840-920 Hz)
triangle   whistle     a high whistle              sine with vibrato (1700-1900 Hz)
star       chirp       a rising chirp              repeated upward sweeps (2500-3900 Hz)
cross      click       a rapid clicking sound      train of short tone pips (4500-5500 Hz)
diamond    hiss        a hissing noise             band-passed noise (6400-7600 Hz)
=========  ==========  ==========================  ===================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .language import join_phrases, sentence
from .world import ImageScene, sample_image_scene

__all__ = [
    "SAMPLE_RATE", "SOUNDS", "AudioScene", "SoundSpec", "SoundingScene",
    "sample_audio_scene", "sample_sounding_scene", "synthesize",
]

#: Sample rate of every synthetic sound (ImageBind's rate, so no resampling).
SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class SoundSpec:
    """What a shape sounds like.

    Attributes:
        name: One word ("beep").
        caption: A short description ("a steady beeping tone").
        band: ``(low, high)`` Hz holding the sound's dominant frequency.
    """

    name: str
    caption: str
    band: tuple[float, float]


SOUNDS: dict[str, SoundSpec] = {
    "square": SoundSpec("buzz", "a low buzzing sound", (200.0, 240.0)),
    "ring": SoundSpec("bell", "a ringing bell", (470.0, 570.0)),
    "circle": SoundSpec("beep", "a steady beeping tone", (840.0, 920.0)),
    "triangle": SoundSpec("whistle", "a high whistle", (1700.0, 1900.0)),
    "star": SoundSpec("chirp", "a rising chirp", (2500.0, 3900.0)),
    "cross": SoundSpec("click", "a rapid clicking sound", (4500.0, 5500.0)),
    "diamond": SoundSpec("hiss", "a hissing noise", (6400.0, 7600.0)),
}


def _tone(freq: np.ndarray | float, t: np.ndarray) -> np.ndarray:
    """Sine of a (possibly time-varying) frequency, by integrating the phase."""
    f = np.broadcast_to(np.asarray(freq, dtype=np.float64), t.shape)
    return np.sin(2 * np.pi * np.cumsum(f) / SAMPLE_RATE)


def synthesize(shape: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """The sound of ``shape``, ``seconds`` long, float32 in [-1, 1].

    Args:
        shape: A key of :data:`SOUNDS`.
        seconds: Length.
        rng: Jitter of pitch (a few %), level and rhythm.
    """
    if shape not in SOUNDS:
        raise ValueError(f"no sound for shape {shape!r}; expected one of {sorted(SOUNDS)}")
    n = max(1, int(round(seconds * SAMPLE_RATE)))
    t = np.arange(n) / SAMPLE_RATE
    jitter = rng.uniform(0.98, 1.02)
    if shape == "square":
        f0 = 220.0 * jitter
        # Odd harmonics up to Nyquist: a square wave without aliasing.
        x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, int(SAMPLE_RATE / 2 / f0), 2))
    elif shape == "ring":
        period = rng.uniform(0.4, 0.6)
        since = t % period  # time since the last strike
        env = np.exp(-since / 0.15)
        f0 = 520.0 * jitter
        x = env * (np.sin(2 * np.pi * f0 * since) + 0.4 * np.sin(2 * np.pi * 2.76 * f0 * since)
                   + 0.2 * np.sin(2 * np.pi * 5.4 * f0 * since))
    elif shape == "circle":
        on = rng.uniform(0.15, 0.25)
        gate = (t % (on + 0.1)) < on
        x = gate * np.sin(2 * np.pi * 880.0 * jitter * t)
    elif shape == "triangle":
        f = 1800.0 * jitter + 30.0 * np.sin(2 * np.pi * rng.uniform(4, 7) * t)
        x = _tone(f, t)
    elif shape == "star":
        period = rng.uniform(0.3, 0.5)
        f = 2700.0 + 1000.0 * ((t % period) / period)
        x = _tone(f * jitter, t)
    elif shape == "cross":
        period = 1 / rng.uniform(10, 16)
        since = t % period
        pip = 0.004
        env = np.where(since < pip, np.sin(np.pi * np.minimum(since, pip) / pip) ** 2, 0.0)
        x = env * np.sin(2 * np.pi * 5000.0 * jitter * since)
    else:  # diamond: white noise band-passed in the frequency domain
        spec = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        spec[(freqs < 6600.0) | (freqs > 7400.0)] = 0
        x = np.fft.irfft(spec, n)
    x = np.asarray(x, dtype=np.float64)
    x = x / (np.abs(x).max() + 1e-9) * rng.uniform(0.3, 0.8)
    return x.astype(np.float32)


@dataclass(frozen=True)
class AudioScene:
    """An audio clip of one or two shapes' sounds in sequence.

    Attributes:
        id: Scene id.
        seconds: Clip length.
        parts: ``(shape, start_s, end_s)`` of each sound, in time order.
        seed: Seed of the sound jitter (makes :meth:`render` a pure function).
    """

    id: str
    seconds: float
    parts: tuple[tuple[str, float, float], ...]
    seed: int

    def render(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        out = np.zeros(int(round(self.seconds * SAMPLE_RATE)), dtype=np.float32)
        for shape, start, end in self.parts:
            a = int(round(start * SAMPLE_RATE))
            sound = synthesize(shape, end - start, rng)[: len(out) - a]
            out[a : a + len(sound)] += sound
        # A faint noise floor: real recordings are never digitally silent.
        out += (0.002 * rng.standard_normal(len(out))).astype(np.float32)
        return np.clip(out, -1.0, 1.0)

    def caption(self) -> str:
        return sentence(join_phrases([SOUNDS[s].caption for s, _, _ in self.parts], last="followed by"))


def sample_audio_scene(rng: np.random.Generator, scene_id: str, seconds: float = 2.0,
                       shapes: Sequence[str] = tuple(SOUNDS)) -> AudioScene:
    """One sound over most of the clip, or two different sounds one after the other."""
    if rng.random() < 0.5:
        start = round(float(rng.uniform(0, 0.2 * seconds)), 3)
        parts = ((shapes[int(rng.integers(len(shapes)))], start, seconds),)
    else:
        first, second = (shapes[int(i)] for i in rng.choice(len(shapes), size=2, replace=False))
        cut = round(float(rng.uniform(0.4, 0.6) * seconds), 3)
        parts = ((first, 0.0, cut - 0.05 * seconds), (second, cut, seconds))
    return AudioScene(scene_id, float(seconds), parts, int(rng.integers(2**31)))


@dataclass(frozen=True)
class SoundingScene:
    """An image in which one object is making a sound (sound-source localisation).

    The sounding object's shape is unique in the image, so its sound names it;
    the other objects are distractors.

    Attributes:
        image: The still scene.
        source: Index of the sounding object.
        audio: Its sound (one part covering the clip).
    """

    image: ImageScene
    source: int
    audio: AudioScene

    @property
    def id(self) -> str:
        return self.image.id

    def signature(self) -> tuple:
        return (self.image.signature(), self.source)


def sample_sounding_scene(rng: np.random.Generator, scene_id: str, width: int = 64, height: int = 64,
                          num_objects: tuple[int, int] = (2, 4), seconds: float = 2.0) -> SoundingScene:
    """An image scene plus the sound of one of its uniquely shaped objects."""
    for _ in range(50):
        image = sample_image_scene(rng, scene_id, width, height, num_objects)
        shapes = [o.shape for o in image.objects]
        candidates = [i for i, s in enumerate(shapes) if shapes.count(s) == 1]
        if candidates:
            source = candidates[int(rng.integers(len(candidates)))]
            audio = AudioScene(scene_id, float(seconds), ((image.objects[source].shape, 0.0, float(seconds)),),
                               int(rng.integers(2**31)))
            return SoundingScene(image, source, audio)
    raise RuntimeError("could not sample a scene with a uniquely shaped object")

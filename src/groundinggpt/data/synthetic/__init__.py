"""The synthetic grounding world: coloured shapes, moving objects and synthetic sounds.

A deterministic, CPU-cheap stand-in for the paper's datasets, with ground truth
known to the pixel and to the frame, so the tiny model can be trained and scored
end to end on a laptop. See ``docs/synthetic.md``.

- :mod:`.world`: still scenes (shapes, colours, sizes, boxes).
- :mod:`.video`: clips whose objects appear, disappear, move or change colour.
- :mod:`.sound`: one synthetic sound per shape; audio clips; sounding scenes.
- :mod:`.language`: referring expressions, captions.
- :mod:`.tasks`: stage 1-3 samples of the paper's task families.
- :mod:`.generate`: :func:`generate_world` writes it all to disk.
- :mod:`.baselines`: blind constant-answer baselines.

Example:
    >>> from groundinggpt.data.synthetic import generate_world
    >>> manifest = generate_world("runs/world", seed=0)          # doctest: +SKIP
    >>> manifest.files["stage2.jsonl"]                           # doctest: +SKIP
    4000
"""

from __future__ import annotations

from .baselines import ConstantBaseline, best_constant_box, best_constant_span
from .generate import DEFAULT_SIZES, TEST_FILES, WorldManifest, blind_baselines, generate_world
from .language import Expression, referring_expression
from .sound import SOUNDS, AudioScene, SoundingScene, SoundSpec, synthesize
from .tasks import TASKS, Record
from .video import Event, VideoScene, sample_video_scene
from .world import COLOURS, SHAPES, SIZES, ImageScene, SceneObject, sample_image_scene

__all__ = [
    "COLOURS", "DEFAULT_SIZES", "SHAPES", "SIZES", "SOUNDS", "TASKS", "TEST_FILES",
    "AudioScene", "ConstantBaseline", "Event", "Expression", "ImageScene", "Record", "SceneObject",
    "SoundSpec", "SoundingScene", "VideoScene", "WorldManifest",
    "best_constant_box", "best_constant_span", "blind_baselines", "generate_world",
    "referring_expression", "sample_image_scene", "sample_video_scene", "synthesize",
]

"""Write a synthetic grounding world to disk: media, stage JSONL files, test sets, manifest.

Layout of ``root``::

    media/{train,test}/{image,video,audio,sounding}/<scene id>.{png,mp4,wav}
    stage1.jsonl  stage2.jsonl  stage3.jsonl          training samples (unified schema)
    test_rec.jsonl  test_temporal.jsonl  test_sound.jsonl   questions only; ground truth in meta
    manifest.json                                      seed, settings, sizes, counts

Determinism: every scene is a pure function of ``(seed, split, kind, index)`` and
every sample of ``(seed, split, family, index)``, so the same arguments give
byte-identical JSONL and manifest files (and, with the same PyAV/FFmpeg build,
identical media), and growing one count does not change the other samples.
Test scenes come from their own random streams and any that happens to equal a
training scene is redrawn, so no test image or clip is ever seen in training.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from groundinggpt.data.schema import Sample, write_jsonl
from groundinggpt.media.video import write_video

from .baselines import best_constant_box, best_constant_span
from .sound import SAMPLE_RATE, sample_audio_scene, sample_sounding_scene
from .tasks import TASKS, Record
from .video import sample_video_scene
from .world import sample_image_scene

__all__ = ["DEFAULT_SIZES", "TEST_FILES", "WorldManifest", "blind_baselines", "generate_world"]

#: Samples per output file and task family (the keys of :data:`~.tasks.TASKS`).
#: About 6.6 k training samples and 3 x 300 test questions.
DEFAULT_SIZES: dict[str, dict[str, int]] = {
    "stage1": {"image_caption": 1500, "video_caption": 300, "audio_caption": 300},
    "stage2": {"rec": 2000, "reg": 400, "object_attribute": 400, "temporal_grounding": 600,
               "video_dense_caption": 200, "sound_localization": 400},
    "stage3": {"image_conversation": 300, "video_conversation": 150, "sound_conversation": 150},
    "test": {"rec": 300, "temporal_grounding": 300, "sound_localization": 300},
}

#: Test file of each test family.
TEST_FILES: dict[str, str] = {
    "rec": "test_rec.jsonl",
    "temporal_grounding": "test_temporal.jsonl",
    "sound_localization": "test_sound.jsonl",
}

#: ``task`` field of the written samples (the schema's report groups); the finer
#: family name is kept in ``meta["family"]``.
SCHEMA_TASK: dict[str, str] = {
    "image_caption": "caption", "video_caption": "video_caption", "audio_caption": "audio_caption",
    "rec": "rec", "reg": "reg", "object_attribute": "vqa", "temporal_grounding": "temporal_grounding",
    "video_dense_caption": "dense_caption", "sound_localization": "sound_localization",
    "image_conversation": "conversation", "video_conversation": "conversation",
    "sound_conversation": "conversation",
}

# Codes that separate random streams (never renumber: it would change every world).
_SPLITS = {"train": 1, "test": 2}
_KINDS = {"image": 1, "video": 2, "audio": 3, "sounding": 4}
_FAMILIES = {name: 10 + i for i, name in enumerate(
    ("image_caption", "video_caption", "audio_caption", "rec", "reg", "object_attribute", "temporal_grounding",
     "video_dense_caption", "sound_localization", "image_conversation", "video_conversation",
     "sound_conversation"))}
_SHUFFLE = 99
_EXT = {"image": ".png", "video": ".mp4", "audio": ".wav"}


@dataclass
class WorldManifest:
    """What :func:`generate_world` wrote.

    Attributes:
        root: The world's folder (media paths in the JSONL are relative to it).
        seed: The seed.
        settings: Scene settings (image sizes, video frames/fps/grid, ...).
        sizes: The sample counts used (defaults merged with the caller's).
        files: Samples per written JSONL file.
        tasks: Samples per family, per file.
        media: Scenes written per split and kind.
        seconds: Wall time of the generation (not saved in manifest.json, which
            must be byte-identical across runs).
    """

    root: Path
    seed: int
    settings: dict[str, Any]
    sizes: dict[str, dict[str, int]]
    files: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, dict[str, int]] = field(default_factory=dict)
    media: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0

    def path(self, name: str) -> Path:
        """Absolute path of a written file, e.g. ``manifest.path("test_rec.jsonl")``."""
        return self.root / name

    def to_dict(self) -> dict[str, Any]:
        return {"format": "groundinggpt-synthetic-world", "version": 1, "seed": self.seed,
                "settings": self.settings, "sizes": self.sizes, "files": self.files, "tasks": self.tasks,
                "media": self.media}

    @classmethod
    def load(cls, root: str | Path) -> WorldManifest:
        root = Path(root)
        d = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
        return cls(root, d["seed"], d["settings"], d["sizes"], d["files"], d["tasks"], d["media"])


def _merge_sizes(sizes: Mapping[str, Mapping[str, int]] | None) -> dict[str, dict[str, int]]:
    merged = {group: dict(counts) for group, counts in DEFAULT_SIZES.items()}
    for group, counts in (sizes or {}).items():
        if group not in merged:
            raise ValueError(f"unknown sizes group {group!r}; expected one of {sorted(merged)}")
        for family, n in counts.items():
            spec = TASKS.get(family)
            if spec is None or (group != "test" and f"stage{spec.stage}" != group) or (
                    group == "test" and family not in TEST_FILES):
                raise ValueError(f"sizes[{group!r}] cannot hold {family!r}")
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ValueError(f"sizes[{group!r}][{family!r}] must be a non-negative int, got {n!r}")
            merged[group][family] = n
    return merged


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in key])


def _looks(scene: Any) -> tuple:
    """What a scene shows (a sounding scene shows its image)."""
    return scene.image.signature() if hasattr(scene, "image") else scene.signature()


class _Pools:
    """Scenes per (split, kind), sampled lazily, written once, shared by the tasks."""

    def __init__(self, root: Path, seed: int, settings: dict[str, Any], bar: tqdm):
        self.root, self.seed, self.s, self.bar = root, seed, settings, bar
        self.scenes: dict[tuple[str, str], list[Any]] = {}
        # What training images and clips look like: a test scene must differ from all.
        self.train_signatures: set = set()

    def _sample(self, split: str, kind: str, index: int, attempt: int) -> Any:
        s = self.s
        rng = _rng(self.seed, _SPLITS[split], _KINDS[kind], index, attempt)
        scene_id = f"{split}-{kind}-{index:05d}"
        if kind in ("image", "sounding"):
            width, height = s["image_sizes"][int(rng.integers(len(s["image_sizes"])))]
            if kind == "image":
                return sample_image_scene(rng, scene_id, width, height, tuple(s["objects_per_image"]))
            return sample_sounding_scene(rng, scene_id, width, height, tuple(s["objects_per_image"]),
                                         s["audio_seconds"])
        if kind == "video":
            width, height = s["video_size"]
            return sample_video_scene(rng, scene_id, width, height, s["video_frames"], s["video_fps"],
                                      s["span_grid"], tuple(s["video_objects"]), tuple(s["video_events"]),
                                      tuple(s["event_segments"]))
        return sample_audio_scene(rng, scene_id, s["audio_seconds"])

    def _write(self, split: str, kind: str, scene: Any) -> dict[str, str]:
        folder = self.root / "media" / split / kind
        folder.mkdir(parents=True, exist_ok=True)
        rel = f"media/{split}/{kind}/{scene.id}"
        if kind == "image":
            scene.to_image().save(self.root / f"{rel}.png")
            return {"image": f"{rel}.png"}
        if kind == "video":
            write_video(self.root / f"{rel}.mp4", scene.frames(), fps=scene.fps)
            return {"video": f"{rel}.mp4"}
        if kind == "audio":
            sf.write(self.root / f"{rel}.wav", scene.render(), SAMPLE_RATE, subtype="PCM_16")
            return {"audio": f"{rel}.wav"}
        scene.image.to_image().save(self.root / f"{rel}.png")
        sf.write(self.root / f"{rel}.wav", scene.audio.render(), SAMPLE_RATE, subtype="PCM_16")
        return {"image": f"{rel}.png", "audio": f"{rel}.wav"}

    def build(self, split: str, kind: str, count: int) -> list[tuple[Any, dict[str, str]]]:
        out = []
        for index in range(count):
            attempt = 0
            scene = self._sample(split, kind, index, attempt)
            if kind != "audio":  # audio clips only serve captions, never a test set
                while split == "test" and _looks(scene) in self.train_signatures:
                    attempt += 1
                    scene = self._sample(split, kind, index, attempt)
                if split == "train":
                    self.train_signatures.add(_looks(scene))
            out.append((scene, self._write(split, kind, scene)))
            self.bar.update(1)
        self.scenes[(split, kind)] = out
        return out


def _call(family: str, scene: Any, paths: dict[str, str], rng: np.random.Generator, test: bool) -> Record:
    build: Callable[..., Record] = TASKS[family].build
    return build(scene, *paths.values(), rng, test=test)


def _to_sample(record: Record, family: str, split: str, index: int) -> Sample:
    meta = {"split": split, "family": family, **record.meta}
    return Sample(id=f"synthetic-{split}-{family}-{index:06d}", task=SCHEMA_TASK[family],
                  messages=record.messages, stage=record.stage, source="synthetic", meta=meta)


def _settings(image_size, video_size, video_frames, video_fps, span_grid, audio_seconds,
              objects_per_image, video_objects, video_events, event_segments) -> dict[str, Any]:
    sizes = [image_size] if isinstance(image_size[0], int) else list(image_size)
    image_sizes = [[int(w), int(h)] for w, h in sizes]
    if video_size is None:  # videos need even sides (4:2:0 chroma)
        w, h = image_sizes[0]
        video_size = (w - w % 2, h - h % 2)
    return {"image_sizes": image_sizes, "video_size": [int(v) for v in video_size],
            "video_frames": int(video_frames), "video_fps": float(video_fps), "span_grid": int(span_grid),
            "audio_seconds": float(audio_seconds), "audio_sample_rate": SAMPLE_RATE,
            "objects_per_image": list(objects_per_image), "video_objects": list(video_objects),
            "video_events": list(video_events), "event_segments": list(event_segments)}


def generate_world(
    root: str | Path,
    seed: int = 0,
    sizes: Mapping[str, Mapping[str, int]] | None = None,
    image_size: tuple[int, int] | Sequence[tuple[int, int]] = (64, 64),
    *,
    video_size: tuple[int, int] | None = None,
    video_frames: int = 16,
    video_fps: float = 8.0,
    span_grid: int = 8,
    audio_seconds: float = 2.0,
    objects_per_image: tuple[int, int] = (2, 4),
    video_objects: tuple[int, int] = (2, 3),
    video_events: tuple[int, int] = (1, 2),
    event_segments: tuple[int, int] = (1, 3),
    progress: bool = True,
) -> WorldManifest:
    """Generate the synthetic world under ``root`` (see the module docstring for the layout).

    Args:
        root: Output folder (created; existing world files are overwritten).
        seed: World seed.
        sizes: Sample counts, merged over :data:`DEFAULT_SIZES`, e.g.
            ``{"stage2": {"rec": 5000}, "test": {"rec": 500}}``; 0 leaves a family out.
        image_size: ``(width, height)`` of every image, or a list of sizes to draw
            from per scene (e.g. ``[(64, 64), (80, 64), (64, 80)]`` to exercise the
            original ↔ padded-square conversion).
        video_size: ``(width, height)`` of videos (even); default: the first image
            size rounded down to even.
        video_frames: Frames per video.
        video_fps: Frame rate (duration = ``video_frames / video_fps``).
        span_grid: Time segments event boundaries snap to; set it to the number of
            frames the model samples (8 for the tiny preset) so that spans are learnable.
        audio_seconds: Length of audio clips.
        objects_per_image: Inclusive range of objects per image.
        video_objects: Inclusive range of objects per video.
        video_events: Inclusive range of events per video.
        event_segments: Inclusive range of an event's length in grid segments
            (longer events make the constant-span baseline stronger).
        progress: Show a tqdm progress bar.

    Returns:
        The :class:`WorldManifest` (also saved as ``root/manifest.json``).
    """
    start = time.perf_counter()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    merged = _merge_sizes(sizes)
    settings = _settings(image_size, video_size, video_frames, video_fps, span_grid, audio_seconds,
                         objects_per_image, video_objects, video_events, event_segments)
    splits = {"train": {f: n for g in ("stage1", "stage2", "stage3") for f, n in merged[g].items()},
              "test": dict(merged["test"])}
    # One scene pool per (split, kind), as large as its largest task: tasks share scenes
    # (as the paper's stages share COCO images) and no task uses a scene twice.
    pools = {split: {kind: max([n for f, n in fams.items() if TASKS[f].scene == kind] + [0]) for kind in _KINDS}
             for split, fams in splits.items()}
    total = sum(sum(p.values()) for p in pools.values()) + sum(sum(f.values()) for f in splits.values())
    manifest = WorldManifest(root, int(seed), settings, merged)
    by_file: dict[str, list[Sample]] = {}
    with tqdm(total=total, desc="synthetic world", unit="item", disable=not progress) as bar:
        store = _Pools(root, int(seed), settings, bar)
        for split in ("train", "test"):  # train first: test scenes are checked against it
            manifest.media[split] = {}
            for kind, count in pools[split].items():
                if count:
                    store.build(split, kind, count)
                    manifest.media[split][kind] = count
            for family, n in splits[split].items():
                if not n:
                    continue
                spec = TASKS[family]
                scenes = store.scenes[(split, spec.scene)]
                order = _rng(seed, _SPLITS[split], _FAMILIES[family]).permutation(len(scenes))
                name = f"stage{spec.stage}.jsonl" if split == "train" else TEST_FILES[family]
                out = by_file.setdefault(name, [])
                for i in range(n):
                    scene, paths = scenes[int(order[i])]
                    record = _call(family, scene, paths, _rng(seed, _SPLITS[split], _FAMILIES[family], i),
                                   split == "test")
                    out.append(_to_sample(record, family, split, i))
                    bar.update(1)
                manifest.tasks.setdefault(name, {})[family] = n
    for name, samples in sorted(by_file.items()):
        if name.startswith("stage"):  # interleave families: readers need not shuffle
            perm = _rng(seed, _SHUFFLE, int(name[5])).permutation(len(samples))
            samples = [samples[int(k)] for k in perm]
        write_jsonl(samples, root / name)
        manifest.files[name] = len(samples)
    (root / "manifest.json").write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n",
                                        encoding="utf-8")
    manifest.seconds = time.perf_counter() - start
    return manifest


def _targets(path: Path, key: str, family: str | None = None) -> tuple[list, list]:
    values, keys = [], []
    if not path.is_file():
        return values, keys
    with path.open(encoding="utf-8") as f:
        for line in f:
            meta = json.loads(line)["meta"]
            if key in meta and (family is None or meta.get("family") == family):
                values.append(meta[key])
                # What a text-only predictor can key on: the relation word, the event's verb.
                keys.append(meta.get("relation") if key == "box" else meta.get("kind"))
    return values, keys


def blind_baselines(root: str | Path) -> dict[str, dict[str, Any]]:
    """Constant-answer baselines of a written world (train constants, test scores).

    Returns:
        ``{"rec", "rec_by_relation", "temporal_grounding", "temporal_grounding_by_kind",
        "sound_localization"}`` → ``constant``, ``train_accuracy``, ``test_accuracy``
        (percent, Acc@0.5 / R@1 tIoU≥0.5) and ``test_mean_iou``; families without
        data are left out. The ``_by_`` entries fit one constant per relation word
        (REC) or event kind (temporal) of the question: text-only predictors.
    """
    root = Path(root)
    out: dict[str, dict[str, Any]] = {}
    for family, key, fit in (("rec", "box", best_constant_box), ("temporal_grounding", "span", best_constant_span),
                             ("sound_localization", "box", best_constant_box)):
        train, train_keys = _targets(root / "stage2.jsonl", key, family)
        test, test_keys = _targets(root / TEST_FILES[family], key)
        if train and test:
            out[family] = vars(fit(train, test))
            if family in ("rec", "temporal_grounding"):
                keyed = fit(train, test, train_keys=train_keys, test_keys=test_keys)
                out[f"{family}_by_{'relation' if family == 'rec' else 'kind'}"] = vars(keyed)
    for result in out.values():
        result.pop("constants", None)
    return out

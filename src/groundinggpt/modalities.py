"""The media kinds GroundingGPT reads, as one table.

Every layer that handles "each medium" loops over :data:`MODALITIES` instead of naming
image, video and audio by hand: the processor (content-part types, placeholders, loading,
batch keys), the training dataset, collator and feature cache, the model (inputs, token ids,
branches, generation), the API, the lmms-eval plugin and the synthetic task.

One :class:`Modality` says, for one kind of medium:

- ``name``: the content-part type in conversations (``{"type": "image", "image": ...}``),
  ``MediaInfo.kind``, and the prefix of its settings (``<name>_token``,
  ``<name>_token_id``, ``<name>_seq_length`` on the processor and model configs);
- ``token``: the default placeholder string the processor expands to ``<name>_seq_length`` tokens;
- ``raw_key`` / ``feature_key``: the batch key of the decoded media tensor (the model's
  input) and of the frozen encoder's output (what the feature cache stores);
- ``encoder`` / ``encode`` / ``branch``: the model attribute holding the frozen encoder,
  the model method running it (raw → features; ``None``: the encoder module's own forward)
  and the attribute holding the trainable branch (features → LLM-width tokens). These are the
  names under which the weights are saved (``video_branch.qformer...``), so they are kept as
  they were: folders saved before this table load unchanged;
- ``build``: ``"module:function"`` that builds the modality's modules for the model,
  ``(model config) -> {attribute: module or None}`` (encoder and branch, under the names
  above); the model registers them in table order (:mod:`groundinggpt.models.branches`);
- ``config_key``: the model config attribute holding the branch's config (``None`` when the
  branch always exists, as the image branch does);
- ``loader``: ``"module:function"`` that decodes one medium, ``(source, ProcessorConfig) ->
  (tensor, {"original_size": ..., "duration": ...})``. Written as a string so that this table
  (which the model imports) pulls in no decoder; :meth:`Modality.load` imports it on first use;
- ``settings``: the processor config fields the loader reads, i.e. what shapes the tensor
  (part of the feature cache's key);
- ``probe``: ``"module:function"`` that opens one file cheaply before training and returns
  why it is unusable, or ``None`` (:func:`groundinggpt.media.probe.probe_medium`).

Adding a kind of medium is one entry here plus its loader and its builder (see "Adding a
modality" in ``docs/architecture.md``); :func:`register_modality` adds one at run time (a
plugin, or a test's toy modality), and the derived names (``MEDIA_KINDS``,
``MEDIA_INPUT_NAMES`` ...) follow, also in modules that imported them before.

This module imports nothing of the package but ``errors``: the model may read it without
depending on media decoding (see the import rules in ``docs/architecture.md``).

Example:
    >>> [m.name for m in MODALITIES]
    ['image', 'video', 'audio']
    >>> MODALITY["video"].raw_key, MODALITY["video"].feature_key, MODALITY["video"].token
    ('pixel_values_videos', 'video_features', '<video>')
    >>> modality_of_key("input_features").name
    'audio'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InputError

__all__ = ["Modality", "MODALITIES", "MODALITY", "MEDIA_KINDS", "RAW_KEYS", "FEATURE_KEYS", "MEDIA_INPUT_NAMES",
           "PART_TYPES_IN_WORDS", "modality_of_key", "get_modality", "register_modality", "unregister_modality"]


@dataclass(frozen=True)
class Modality:
    """One kind of medium (see the module docstring for each field)."""

    name: str
    token: str
    raw_key: str
    feature_key: str
    encoder: str
    encode: str | None
    branch: str
    config_key: str | None
    loader: str
    settings: tuple[str, ...]
    probe: str
    build: str

    @property
    def token_field(self) -> str:
        """Config attribute holding the placeholder string (``image_token``)."""
        return f"{self.name}_token"

    @property
    def token_id_field(self) -> str:
        """Model config attribute holding the placeholder id (``image_token_id``)."""
        return f"{self.name}_token_id"

    @property
    def seq_length_field(self) -> str:
        """Config attribute: LLM tokens one medium becomes (``image_seq_length``)."""
        return f"{self.name}_seq_length"

    def loader_function(self) -> Callable[[Any, Any], tuple[Any, dict[str, Any]]]:
        """The decoding function named by ``loader``, imported on first use."""
        return _named_function(self.loader)

    def probe_function(self) -> Callable[[Any, int | None], str | None]:
        """The cheap usability check named by ``probe``: ``(path, max_image_pixels) -> reason or None``."""
        return _named_function(self.probe)

    def build_function(self) -> Callable[[Any], dict[str, Any]]:
        """The model-side builder named by ``build``: ``(model config) -> {attribute: module or None}``."""
        return _named_function(self.build)

    def load(self, source: Any, config: Any) -> tuple[Any, dict[str, Any]]:
        """Decode one medium with the processor settings ``config`` → (tensor, info fields)."""
        return self.loader_function()(source, config)


def _named_function(path: str) -> Callable[..., Any]:
    """The function a ``"module:function"`` string names, its module imported on first use."""
    module, _, function = path.partition(":")
    return getattr(importlib.import_module(module), function)


#: The table. A list, changed only in place (:func:`register_modality`), so that every module
#: that imported it sees the same entries.
MODALITIES: list[Modality] = [
    Modality(name="image", token="<image>", raw_key="pixel_values", feature_key="image_features",
             encoder="vision_tower", encode="encode_images", branch="image_adapter", config_key=None,
             loader="groundinggpt.media.loaders:load_image_medium", probe="groundinggpt.media.probe:probe_image",
             build="groundinggpt.models.branches:build_image_modules",
             settings=("image_size", "image_mean", "image_std")),
    Modality(name="video", token="<video>", raw_key="pixel_values_videos", feature_key="video_features",
             encoder="vision_tower", encode="encode_videos", branch="video_branch", config_key="video_config",
             loader="groundinggpt.media.loaders:load_video_medium", probe="groundinggpt.media.probe:probe_video",
             build="groundinggpt.models.branches:build_video_modules",
             settings=("num_frames", "image_size", "image_mean", "image_std", "video_size", "video_sampling",
                       "video_resize")),
    Modality(name="audio", token="<audio>", raw_key="input_features", feature_key="audio_features",
             encoder="audio_encoder", encode="encode_audios", branch="audio_branch", config_key="audio_config",
             loader="groundinggpt.media.loaders:load_audio_medium", probe="groundinggpt.media.probe:probe_audio",
             build="groundinggpt.models.branches:build_audio_modules",
             settings=("num_clips", "clip_seconds", "num_mel_bins", "target_frames", "audio_mean", "audio_std")),
]

class _TableView(Sequence):
    """A tuple computed from the table at each use (``MEDIA_KINDS``, ``MEDIA_INPUT_NAMES``).

    Modules import these names once; a view lets a modality registered later
    (:func:`register_modality`) show up in them. It compares, hashes and prints as the tuple."""

    def __init__(self, compute: Callable[[], tuple[str, ...]]) -> None:
        self._compute = compute

    def __getitem__(self, index: Any) -> Any:
        return self._compute()[index]

    def __len__(self) -> int:
        return len(self._compute())

    def __iter__(self) -> Iterator[str]:
        return iter(self._compute())

    def __contains__(self, item: object) -> bool:
        return item in self._compute()

    def __eq__(self, other: object) -> bool:
        return self._compute() == (tuple(other) if isinstance(other, (_TableView, list)) else other)

    def __hash__(self) -> int:
        return hash(self._compute())

    def __add__(self, other: Any) -> tuple[str, ...]:
        return self._compute() + tuple(other)

    def __radd__(self, other: Any) -> tuple[str, ...]:
        return tuple(other) + self._compute()

    def __repr__(self) -> str:
        return repr(self._compute())


class _PartTypesInWords:
    """``'text', 'image', 'video' or 'audio'``, computed from the table when formatted."""

    def __str__(self) -> str:
        kinds = ("text", *MODALITY)
        return ", ".join(repr(k) for k in kinds[:-1]) + f" or {kinds[-1]!r}"

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __eq__(self, other: object) -> bool:
        return str(self) == other

    def __hash__(self) -> int:
        return hash(str(self))


#: The table by name.
MODALITY: dict[str, Modality] = {m.name: m for m in MODALITIES}
#: Content-part types that carry a medium, in table order.
MEDIA_KINDS: Sequence[str] = _TableView(lambda: tuple(MODALITY))
#: Batch key of raw media / of cached encoder features, per kind.
RAW_KEYS: dict[str, str] = {m.name: m.raw_key for m in MODALITIES}
FEATURE_KEYS: dict[str, str] = {m.name: m.feature_key for m in MODALITIES}
#: Every model input that carries media (dropped after prefill during generation).
MEDIA_INPUT_NAMES: Sequence[str] = _TableView(lambda: (*RAW_KEYS.values(), *FEATURE_KEYS.values()))

_BY_KEY = {**{m.raw_key: m for m in MODALITIES}, **{m.feature_key: m for m in MODALITIES}}


#: "'text', 'image', 'video' or 'audio'": the content-part types, for error messages.
PART_TYPES_IN_WORDS = _PartTypesInWords()


def register_modality(modality: Modality) -> None:
    """Add ``modality`` to the table at run time (a plugin, or a test of a toy modality).

    Adding a kind of medium to the project is one entry in :data:`MODALITIES`; this does the
    same for a process without editing the file. Every name derived from the table follows.
    Raises :class:`InputError` when the name or a batch key is taken."""
    taken = {*MODALITY, *_BY_KEY}
    clash = sorted({modality.name, modality.raw_key, modality.feature_key} & taken)
    if clash:
        raise InputError(f"modality {modality.name!r}: {clash} already in the table")
    MODALITIES.append(modality)
    _index(modality)


def unregister_modality(name: str) -> None:
    """Remove the entry ``name`` added by :func:`register_modality`."""
    modality = get_modality(name)
    MODALITIES.remove(modality)
    for table in (MODALITY, RAW_KEYS, FEATURE_KEYS):
        table.pop(name, None)
    _BY_KEY.pop(modality.raw_key, None)
    _BY_KEY.pop(modality.feature_key, None)


def _index(modality: Modality) -> None:
    MODALITY[modality.name] = modality
    RAW_KEYS[modality.name] = modality.raw_key
    FEATURE_KEYS[modality.name] = modality.feature_key
    _BY_KEY[modality.raw_key] = _BY_KEY[modality.feature_key] = modality


def modality_of_key(key: str) -> Modality:
    """The modality a raw-media or feature batch key belongs to."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise InputError(f"{key!r} is not a media input; expected one of {sorted(_BY_KEY)}") from None


def get_modality(kind: str) -> Modality:
    """The table entry of ``kind``; an :class:`InputError` naming the known kinds otherwise."""
    try:
        return MODALITY[kind]
    except KeyError:
        raise InputError(f"unknown media kind {kind!r}; expected one of {MEDIA_KINDS}") from None

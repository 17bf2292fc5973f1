"""On-disk cache of the frozen encoders' outputs, so training decodes and encodes each medium once.

The vision tower and the audio encoder are frozen in every stage, so what they make of
a medium never changes during training. :class:`FeatureCache` stores, per medium, exactly
what :meth:`GroundingGPTForCausalLM.encode_media` returns for it (one row of
``image_features`` [K,C], ``video_features`` [M,T,C] or ``audio_features`` [N,1,C]) together
with the processor's :class:`~groundinggpt.processor.MediaInfo` (the image size is
needed to convert boxes into the padded-square frame without opening the image).

Key of an entry: sha256 of

- the medium file's bytes (renaming or moving a file keeps its entry; editing it does not),
- the preprocessing settings that shape that kind's tensor (image size, mean/std,
  frames, clips, fbank settings ...: see :data:`PREPROCESSING_FIELDS`),
- an encoder fingerprint: sha256 over the branch's frozen weights (names, dtypes,
  shapes, bytes) and the config fields that select its output (feature layer, pooling).

Any change to one of them is a miss, never a stale hit. Entries are safetensors files
(``root/<kind>/<key[:2]>/<key>.safetensors``) written to a temp file and renamed, so a
killed job leaves no half-written entry and several jobs may fill one cache.

Example:
    >>> cache = FeatureCache("runs/features")                       # doctest: +SKIP
    >>> report = cache.build(model, samples, processor, "data/media")  # doctest: +SKIP
    >>> ds = GroundingDataset(samples, processor, "data/media", feature_cache=cache)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .. import jsonsafe
from ..errors import MediaError
from ..modalities import MEDIA_KINDS, MODALITIES, MODALITY
from ..processor import GroundingGPTProcessor, MediaInfo
from .schema import Sample

if TYPE_CHECKING:
    from ..models import GroundingGPTForCausalLM

__all__ = ["FeatureCache", "CachedFeature", "PREPROCESSING_FIELDS", "encoder_fingerprints"]

logger = logging.getLogger(__name__)

#: Bumped when the stored format or the meaning of an entry changes.
CACHE_VERSION = "groundinggpt-feature-cache-v1"

#: Processor config fields that shape each kind's tensor.
PREPROCESSING_FIELDS = {m.name: m.settings for m in MODALITIES}
_HASH_CHUNK = 1 << 20


@dataclass
class CachedFeature:
    """One cache entry: the encoder output for one medium and what the processor learnt about it."""

    features: torch.Tensor
    info: MediaInfo | None


def _hash_module(h: Any, module: torch.nn.Module) -> None:
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        # view(uint8) reads the raw bytes of any dtype (bf16 has no numpy equivalent).
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def encoder_fingerprints(model: GroundingGPTForCausalLM) -> dict[str, str]:
    """sha256 per kind over the frozen encoder's weights and the config fields selecting its output.

    Image and video share the vision tower but may pool differently, so they get separate
    fingerprints. Kinds the model has no branch for are left out.
    """
    cfg = model.config
    vision = hashlib.sha256(CACHE_VERSION.encode())
    _hash_module(vision, model.vision_tower)
    vision_sel = {"layer": cfg.vision_feature_layer, "strategy": cfg.vision_feature_select_strategy}
    out = {}
    h = vision.copy()
    h.update(json.dumps({**vision_sel, "branch": "image", "pool": cfg.image_token_pool}, sort_keys=True).encode())
    out["image"] = h.hexdigest()
    if getattr(model, "video_branch", None) is not None and getattr(model, "video_frame_encoder", None) is not None:
        # The released front (EVA + BLIP-2 Q-Former) encodes frames without the CLIP tower.
        h = hashlib.sha256(CACHE_VERSION.encode())
        _hash_module(h, model.video_frame_encoder)
        h.update(json.dumps({"branch": "video", "frame_encoder": "eva_blip2"}).encode())
        out["video"] = h.hexdigest()
    elif getattr(model, "video_branch", None) is not None:
        h = vision.copy()
        h.update(json.dumps({**vision_sel, "branch": "video", "pool": cfg.video_config.frame_token_pool}, sort_keys=True).encode())
        out["video"] = h.hexdigest()
    if getattr(model, "audio_encoder", None) is not None:
        h = hashlib.sha256(CACHE_VERSION.encode())
        _hash_module(h, model.audio_encoder)
        out["audio"] = h.hexdigest()
    # Any other modality of the table: its encoder's weights and its name (the three above
    # keep the fingerprints caches were written under).
    for m in MODALITIES:
        if m.name not in out and getattr(model, m.branch, None) is not None:
            h = hashlib.sha256(f"{CACHE_VERSION}|{m.name}".encode())
            _hash_module(h, getattr(model, m.encoder))
            out[m.name] = h.hexdigest()
    return out


def _preprocessing_settings(processor: GroundingGPTProcessor) -> dict[str, str]:
    c = processor.config
    return {
        kind: json.dumps({f: getattr(c, f) for f in fields}, sort_keys=True, default=list)
        for kind, fields in PREPROCESSING_FIELDS.items()
    }


def _readable(entry: Path) -> bool:
    """Whether an entry's header and features open (cheap: safetensors maps the file)."""
    try:
        with safe_open(str(entry), framework="pt") as f:
            return "features" in f.keys()
    except Exception:  # noqa: BLE001 - any failure to open means the entry must be rebuilt
        return False


class FeatureCache:
    """Frozen-encoder features on disk, keyed by file content + preprocessing + encoder.

    Args:
        root: cache folder (created on first write).
        processor / model: configure at once (see :meth:`configure`); :meth:`build` does it too.
        fingerprints: precomputed :func:`encoder_fingerprints`, to configure without the model.
    """

    def __init__(self, root: str | os.PathLike, processor: GroundingGPTProcessor | None = None,
                 model: GroundingGPTForCausalLM | None = None, fingerprints: dict[str, str] | None = None):
        self.root = Path(root)
        self._settings: dict[str, str] | None = None
        self._fingerprints: dict[str, str] | None = None
        self._file_hashes: dict[tuple[str, int, int], str] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = self.writes = 0
        if processor is not None or model is not None or fingerprints is not None:
            self.configure(processor=processor, model=model, fingerprints=fingerprints)

    # ---- configuration
    def configure(self, processor: GroundingGPTProcessor | None = None, model: GroundingGPTForCausalLM | None = None,
                  fingerprints: dict[str, str] | None = None) -> FeatureCache:
        """Bind the preprocessing settings and encoder fingerprints that enter every key.

        The model itself is not kept (the cache stays small and picklable for DataLoader
        workers): only its fingerprints, computed once here.
        """
        if processor is not None:
            self._settings = _preprocessing_settings(processor)
        if fingerprints is not None:
            self._fingerprints = dict(fingerprints)
        elif model is not None:
            self._fingerprints = encoder_fingerprints(model)
        return self

    @property
    def fingerprints(self) -> dict[str, str] | None:
        return dict(self._fingerprints) if self._fingerprints is not None else None

    def _require(self, kind: str) -> tuple[str, str]:
        if kind not in MEDIA_KINDS:
            raise ValueError(f"unknown media kind {kind!r}; expected one of {MEDIA_KINDS}")
        if self._settings is None or self._fingerprints is None:
            raise RuntimeError("FeatureCache is not configured: call build(...) or "
                               "configure(processor=..., model=...) first")
        if kind not in self._fingerprints:
            raise ValueError(f"the model has no {kind} encoder, so there are no {kind} features to cache")
        return self._settings[kind], self._fingerprints[kind]

    # ---- keys
    def file_hash(self, path: str | os.PathLike) -> str:
        """sha256 of a file's bytes, memoised per (path, size, mtime) so each epoch does not re-read it."""
        path = os.path.realpath(path)
        st = os.stat(path)
        memo = (path, st.st_size, st.st_mtime_ns)
        digest = self._file_hashes.get(memo)
        if digest is None:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(_HASH_CHUNK):
                    h.update(chunk)
            digest = h.hexdigest()
            self._file_hashes[memo] = digest
        return digest

    def key(self, kind: str, path: str | os.PathLike) -> str:
        """The entry key of a medium (raises OSError if the file cannot be read)."""
        settings, fingerprint = self._require(kind)
        h = hashlib.sha256(CACHE_VERSION.encode())
        for part in (kind, self.file_hash(path), settings, fingerprint):
            h.update(b"\0" + part.encode())
        return h.hexdigest()

    def _entry_path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.safetensors"

    # ---- access
    def get_entry(self, kind: str, path: str | os.PathLike) -> CachedFeature | None:
        """The entry for a medium, or ``None`` on a miss (a missing source file is a miss too)."""
        try:
            key = self.key(kind, path)
        except FileNotFoundError:
            self._count("misses")
            return None
        entry_path = self._entry_path(kind, key)
        if not entry_path.is_file():
            self._count("misses")
            return None
        try:
            with safe_open(str(entry_path), framework="pt") as f:
                features = f.get_tensor("features")
                meta = f.metadata() or {}
            info = None
            if "info" in meta:
                d = jsonsafe.loads(meta["info"])
                size = d.get("original_size")
                info = MediaInfo(kind=d["kind"], original_size=tuple(size) if size else None,
                                 duration=d.get("duration"))
        except Exception as e:  # noqa: BLE001 - a damaged entry is a miss, rebuilt by the next build()
            logger.warning("feature cache entry %s is unreadable (%s); treating it as a miss", entry_path, e)
            self._count("misses")
            return None
        self._count("hits")
        return CachedFeature(features, info)

    def get(self, kind: str, path: str | os.PathLike) -> torch.Tensor | None:
        """The cached features of a medium, or ``None``."""
        entry = self.get_entry(kind, path)
        return entry.features if entry is not None else None

    def put(self, kind: str, path: str | os.PathLike, tensor: torch.Tensor, info: MediaInfo | None = None) -> Path:
        """Store one medium's features (one row of ``encode_media``'s output); atomic."""
        key = self.key(kind, path)
        target = self._entry_path(kind, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        meta = {"kind": kind, "source": str(path), "version": CACHE_VERSION}
        if info is not None:
            meta["info"] = json.dumps(info.to_dict())
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{key[:16]}.", suffix=".tmp")
        os.close(fd)
        try:
            # clone(): safetensors refuses views that share storage with the rest of the batch.
            save_file({"features": tensor.detach().cpu().contiguous().clone()}, tmp, metadata=meta)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._count("writes")
        return target

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    # ---- bulk
    def build(self, model: GroundingGPTForCausalLM, samples: Sequence[Sample], processor: GroundingGPTProcessor,
              media_root: str | os.PathLike, batch_size: int = 8, progress: bool = True) -> dict[str, Any]:
        """Encode every medium of ``samples`` not yet cached.

        Media are decoded with ``processor.load_medium`` and encoded ``batch_size`` at a time
        with ``model.encode_media`` on the model's device (in eval mode, restored after).
        A medium that fails to decode is skipped and reported, not fatal.

        Returns:
            ``{"media": n, "already_cached": n, "encoded": n, "failed": [{"kind", "path",
            "reason", "samples": [ids]}]}``.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.configure(processor=processor, model=model)
        root = Path(media_root)
        users: dict[tuple[str, Path], list[str]] = {}
        for s in samples:
            for kind, rel in s.media():
                users.setdefault((kind, root / rel), []).append(s.id)
        report: dict[str, Any] = {"media": len(users), "already_cached": 0, "encoded": 0, "failed": []}

        def fail(kind: str, path: Path, reason: str) -> None:
            report["failed"].append({"kind": kind, "path": str(path), "reason": reason,
                                     "samples": users[(kind, path)]})
            logger.warning("feature cache: cannot encode %s %s: %s", kind, path, reason)

        from tqdm.auto import tqdm

        device = next(model.parameters()).device
        was_training = model.training
        model.eval()  # dropout in a frozen encoder would make cached features random
        try:
            bar = tqdm(total=len(users), desc="caching features", unit="medium", disable=not progress)
            for kind in MEDIA_KINDS:
                pending: list[tuple[Path, torch.Tensor, MediaInfo]] = []
                for _, path in [u for u in users if u[0] == kind]:
                    try:
                        key = self.key(kind, path)
                    except OSError as e:
                        fail(kind, path, f"cannot read the file ({e})")
                        bar.update(1)
                        continue
                    entry = self._entry_path(kind, key)
                    if entry.is_file() and _readable(entry):
                        report["already_cached"] += 1
                        bar.update(1)
                        continue
                    if entry.is_file():  # damaged (a write cut short, a full disk): encoded again
                        logger.warning("feature cache entry %s is unreadable; encoding it again", entry)
                        report["rebuilt"] = report.get("rebuilt", 0) + 1
                    try:
                        tensor, info = processor.load_medium(kind, str(path))
                    except MediaError as e:
                        fail(kind, path, str(e))
                        bar.update(1)
                        continue
                    pending.append((path, tensor, info))
                    if len(pending) == batch_size:
                        self._encode_batch(model, kind, pending, device)
                        report["encoded"] += len(pending)
                        bar.update(len(pending))
                        pending = []
                if pending:
                    self._encode_batch(model, kind, pending, device)
                    report["encoded"] += len(pending)
                    bar.update(len(pending))
            bar.close()
        finally:
            model.train(was_training)
        return report

    def _encode_batch(self, model: GroundingGPTForCausalLM, kind: str,
                      pending: list[tuple[Path, torch.Tensor, MediaInfo]], device: torch.device) -> None:
        stacked = torch.stack([t for _, t, _ in pending]).to(device)
        m = MODALITY[kind]
        features = model.encode_media(**{m.raw_key: stacked})[m.feature_key]
        for (path, _, info), row in zip(pending, features):
            self.put(kind, path, row, info)

    def stats(self) -> dict[str, Any]:
        """Entries and bytes on disk per kind, plus this process's hits / misses / writes."""
        entries: dict[str, int] = {}
        size = 0
        for kind in MEDIA_KINDS:
            files = list((self.root / kind).glob("*/*.safetensors")) if (self.root / kind).is_dir() else []
            entries[kind] = len(files)
            size += sum(f.stat().st_size for f in files)
        return {"root": str(self.root), "entries": entries, "bytes": size,
                "hits": self.hits, "misses": self.misses, "writes": self.writes}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]  # locks do not pickle; DataLoader workers get a fresh one
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

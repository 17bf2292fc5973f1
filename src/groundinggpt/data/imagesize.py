"""Image sizes from file headers, probed in parallel and cached on disk.

Converting boxes needs each image's size. Some annotation files carry it (COCO,
Visual Genome, Flickr30k Entities, VCR); others do not (LLaVA's mix665k, whose boxes are
in the padded-square frame). Opening a JPEG/PNG with PIL reads only its header, and
threads overlap the file-system latency. Sizes are those the model's processor sees:
an EXIF orientation of 90/270 degrees swaps width and height.
The cache is a JSONL file of ``{"path": ..., "size": [w, h]}`` (or ``"error"``) lines,
appended as probes finish, so an interrupted build does not probe again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = ["probe_size", "ImageSizeCache"]

_ROTATED = (5, 6, 7, 8)  # EXIF orientations that turn the picture by 90 or 270 degrees


def probe_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` of an image file as displayed, from its header only.

    Raises:
        OSError: missing or unreadable file (PIL's UnidentifiedImageError is an OSError).
    """
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        try:
            if im.getexif().get(0x0112, 1) in _ROTATED:
                w, h = h, w
        except Exception:  # a broken EXIF block: the stored size stands
            pass
    return int(w), int(h)


class ImageSizeCache:
    """Sizes of images under ``root``, keyed by path relative to it.

    Args:
        root: folder the paths are relative to.
        cache_file: JSONL cache (created; appended to); None keeps sizes in memory only.
        workers: threads probing at once.
    """

    def __init__(self, root: str | os.PathLike, cache_file: str | os.PathLike | None = None, workers: int = 16):
        self.root = Path(root)
        self.cache_file = Path(cache_file) if cache_file else None
        self.workers = max(1, int(workers))
        self.sizes: dict[str, tuple[int, int] | None] = {}
        self.errors: dict[str, str] = {}
        self.probed = 0
        if self.cache_file is not None and self.cache_file.is_file():
            with self.cache_file.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        d = json.loads(line)
                        path = d["path"]
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut by a kill: probed again
                    if d.get("size"):
                        self.sizes[path] = (int(d["size"][0]), int(d["size"][1]))
                    else:
                        self.sizes[path] = None
                        self.errors[path] = str(d.get("error"))

    def _probe(self, rel: str) -> tuple[str, tuple[int, int] | None, str | None]:
        try:
            return rel, probe_size(self.root / rel), None
        except Exception as e:  # noqa: BLE001 - any decoder failure is a per-file error
            return rel, None, f"{type(e).__name__}: {e}"

    def ensure(self, paths: Iterable[str]) -> None:
        """Probe every path not yet known, in parallel, appending results to the cache."""
        todo = sorted({p for p in paths if p not in self.sizes})
        if not todo:
            return
        out = None
        if self.cache_file is not None:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            out = self.cache_file.open("a", encoding="utf-8")
        try:
            with ThreadPoolExecutor(self.workers) as pool:
                for rel, size, error in pool.map(self._probe, todo):
                    self.probed += 1
                    self.sizes[rel] = size
                    if error is not None:
                        self.errors[rel] = error
                    if out is not None:
                        rec = {"path": rel, "size": list(size)} if size else {"path": rel, "error": error}
                        out.write(json.dumps(rec) + "\n")
        finally:
            if out is not None:
                out.close()

    def __call__(self, paths: Iterable[str]) -> dict[str, tuple[int, int]]:
        """Sizes of ``paths`` (probing those not cached); unreadable ones are left out."""
        paths = list(paths)
        self.ensure(paths)
        return {p: self.sizes[p] for p in paths if self.sizes.get(p)}

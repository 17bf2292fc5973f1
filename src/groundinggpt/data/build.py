"""``groundinggpt data build --stage N --config sources.yaml --output DIR``: one stage's training file.

``sources.yaml``::

    seed: 0                      # phrasing choice, sample caps, final shuffle
    media_root: /data            # media paths in stageN.jsonl are relative to it
                                 # (default: the config file's folder)
    check_media: true            # reject samples whose media file is missing
    sources:
      refcoco:                   # a registry name, or any name with `source:`
        root: refcoco            # the dataset's files, relative to the config's folder
        max_samples: 50000       # optional cap (a seeded random subset)
        options: {image_dir: coco/train2014}
      didemo-val:
        source: didemo
        stage: 2                 # optional: default the paper's stage of the source
        root: didemo
        options: {files: [val_data.json]}

Only the sources of stage N are converted, each into ``DIR/sources/<name>.jsonl``
(with its ``.rejected.jsonl`` and ``.report.json``). A source whose report exists and
whose settings are unchanged is not converted again, and a source interrupted half-way
resumes (:mod:`.convert`): a killed build resumes where it stopped. Then the caps are
applied, everything is shuffled (seeded) into ``DIR/stageN.jsonl``, the rejections are
gathered in ``DIR/rejected.jsonl`` and ``DIR/stats.json`` / ``stats.md`` / PNGs are
written (:mod:`.stats`). Train with
``groundinggpt train --stage N --data DIR/stageN.jsonl --media-root MEDIA_ROOT``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError
from .convert import convert_source, rejected_path, report_path
from .imagesize import ImageSizeCache
from .sources import SOURCES, stage_of

__all__ = ["BuildResult", "build_stage", "load_config"]

_ENTRY_KEYS = {"source", "root", "max_samples", "options", "stage"}


@dataclass
class BuildResult:
    """What a build wrote, for the command's summary."""

    stage: int
    output: Path
    samples: int
    per_source: dict[str, dict[str, Any]] = field(default_factory=dict)
    media_root: str = ""

    def summary(self) -> str:
        lines = [f"stage {self.stage}: {self.samples} samples -> {self.output / f'stage{self.stage}.jsonl'}"]
        for name, d in self.per_source.items():
            rej = sum(d["rejected"].values())
            lines.append(f"  {name}: {d['kept']} kept of {d['written']} converted, {rej} rejected")
        lines.append(f"stats: {self.output / 'stats.md'}; train with: groundinggpt train --stage {self.stage} "
                     f"--data {self.output / f'stage{self.stage}.jsonl'} --media-root {self.media_root}")
        return "\n".join(lines)


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``sources.yaml`` (names the bad key)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config not found")
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not valid YAML ({e})") from None
    except RecursionError:  # PyYAML recurses once per level of "[[[[..."
        raise InputError(f"{path}: not valid YAML (lists/mappings nested too deep)") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("sources"), dict) or not cfg["sources"]:
        raise InputError(f"{path}: expected a mapping with 'sources: {{name: {{root: ...}}}}'")
    unknown = set(cfg) - {"seed", "media_root", "check_media", "sources"}
    if unknown:
        raise InputError(f"{path}: unknown key(s) {sorted(unknown)}; expected seed, media_root, check_media, sources")
    for name, entry in cfg["sources"].items():
        if not isinstance(entry, dict) or "root" not in entry:
            raise InputError(f"{path}: sources.{name} must be a mapping with 'root'")
        bad = set(entry) - _ENTRY_KEYS
        if bad:
            raise InputError(f"{path}: sources.{name}: unknown key(s) {sorted(bad)}; expected {sorted(_ENTRY_KEYS)}")
        source = entry.get("source", name)
        if source not in SOURCES:
            raise InputError(f"{path}: sources.{name}: unknown source {source!r}; known: {', '.join(sorted(SOURCES))}")
        cap = entry.get("max_samples")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
            raise InputError(f"{path}: sources.{name}.max_samples must be a non-negative integer, got {cap!r}")
    return cfg


def _fingerprint(source: str, entry: dict[str, Any], seed: int, media_root: Path, check_media: bool) -> str:
    blob = json.dumps({"source": source, "root": str(entry["root"]), "options": entry.get("options") or {},
                       "stage": entry.get("stage"), "seed": seed, "media_root": str(media_root),
                       "check_media": check_media}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _line_offsets(path: Path) -> list[int]:
    offsets, pos = [], 0
    with path.open("rb") as f:
        for line in f:
            offsets.append(pos)
            pos += len(line)
    return offsets


def build_stage(stage: int, config: str | os.PathLike, output: str | os.PathLike, *, strict: bool = False,
                progress: bool = True, tokenizer: Any = None, restart: bool = False) -> BuildResult:
    """Build ``output/stage{stage}.jsonl`` from the config's sources of that stage (see the module doc)."""
    from .stats import write_stats

    config = Path(config)
    cfg = load_config(config)
    base = config.parent
    seed = int(cfg.get("seed", 0))
    media_root = Path(cfg.get("media_root") or base)
    if not media_root.is_absolute():
        media_root = base / media_root
    check_media = bool(cfg.get("check_media", True))
    out = Path(output)
    (out / "sources").mkdir(parents=True, exist_ok=True)
    sizes = ImageSizeCache(media_root, out / "cache" / "image_sizes.jsonl")
    selected = {n: e for n, e in cfg["sources"].items() if int(e.get("stage") or stage_of(e.get("source", n))) == stage}
    if not selected:
        raise InputError(f"{config}: no source of stage {stage} (stages: "
                         f"{sorted({int(e.get('stage') or stage_of(e.get('source', n))) for n, e in cfg['sources'].items()})})")
    result = BuildResult(stage=stage, output=out, samples=0, media_root=str(media_root.resolve()))
    kept: list[tuple[Path, int]] = []
    for name, entry in selected.items():
        source = entry.get("source", name)
        root = Path(entry["root"])
        root = root if root.is_absolute() else base / root
        file = out / "sources" / f"{name}.jsonl"
        fp = _fingerprint(source, entry, seed, media_root, check_media)
        rp = report_path(file)
        report = json.loads(rp.read_text()) if rp.is_file() and file.is_file() and not restart else None
        if report is None or report.get("fingerprint") != fp:
            rep = convert_source(source, root, file, media_root=media_root, options=entry.get("options") or {},
                                 stage=stage, seed=seed, strict=strict, check_media=check_media,
                                 resume=not restart and (report is None), progress=progress, image_sizes=sizes)
            report = {**rep.to_dict(), "fingerprint": fp}
            rp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        offsets = _line_offsets(file)
        cap = entry.get("max_samples")
        chosen = range(len(offsets))
        if cap is not None and cap < len(offsets):
            chosen = sorted(random.Random(f"{seed}:{name}").sample(range(len(offsets)), cap))
        kept.extend((file, offsets[i]) for i in chosen)
        result.per_source[name] = {"source": source, "written": len(offsets), "kept": len(chosen),
                                   "rejected": report.get("rejected", {}), "fixed": report.get("fixed", {}),
                                   "skipped": report.get("skipped", {})}
    random.Random(seed).shuffle(kept)
    final = out / f"stage{stage}.jsonl"
    tmp = final.with_name(final.name + ".tmp")
    handles: dict[Path, Any] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(kept), desc=f"stage{stage}.jsonl", unit=" samples", disable=None, mininterval=1.0)
    try:
        with tmp.open("wb") as dst:
            for file, offset in kept:
                f = handles.get(file) or handles.setdefault(file, file.open("rb"))
                f.seek(offset)
                dst.write(f.readline())
                if bar is not None:
                    bar.update()
    finally:
        for f in handles.values():
            f.close()
        if bar is not None:
            bar.close()
    os.replace(tmp, final)
    with (out / "rejected.jsonl").open("w", encoding="utf-8") as dst:
        for name in selected:
            rj = rejected_path(out / "sources" / f"{name}.jsonl")
            if rj.is_file():
                with rj.open(encoding="utf-8") as src:
                    for line in src:
                        dst.write(line)
    result.samples = len(kept)
    write_stats(final, out, result.per_source, stage=stage, tokenizer=tokenizer)
    return result

"""``groundinggpt data build``: a stage file from sources.yaml over files in the published
formats (with media made here), its stats, resume, and a few training steps on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import data_source_files as files
from groundinggpt.data import read_jsonl
from groundinggpt.data.build import build_stage, load_config
from groundinggpt.errors import InputError


def _media(root: Path) -> None:
    import soundfile as sf
    from PIL import Image

    from groundinggpt.media.video import write_video

    (root / "coco/train2014").mkdir(parents=True)
    Image.new("RGB", (640, 480), (90, 120, 150)).save(root / "coco/train2014/COCO_train2014_000000000007.jpg")
    (root / "charades/Charades_v1_480").mkdir(parents=True)
    write_video(root / "charades/Charades_v1_480/ABC12.mp4",
                [np.full((48, 64, 3), 20 * k, dtype=np.uint8) for k in range(8)], fps=4)
    (root / "vggss/frames").mkdir(parents=True)
    (root / "vggss/audio").mkdir(parents=True)
    Image.new("RGB", (64, 48)).save(root / "vggss/frames/abc_000010.jpg")
    t = np.arange(16000 * 2) / 16000
    sf.write(root / "vggss/audio/abc_000010.wav", (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 16000)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    files.refcoco(root / "refcoco")
    files.charades(root / "charades")
    files.vggss(root / "vggss")
    files.clotho(root / "clotho")
    _media(root)
    (root / "sources.yaml").write_text(
        "seed: 3\n"
        "sources:\n"
        "  refcoco: {root: refcoco, options: {image_dir: ../coco/train2014}}\n"
        "  charades-sta: {root: charades}\n"
        "  vggss: {root: vggss}\n"
        "  clotho: {root: clotho}\n")
    return root


def test_stage2_build_values_counts_and_stats(world, tmp_path):
    from groundinggpt.presets import build_tiny

    _, processor = build_tiny(seed=0)
    out = tmp_path / "build"
    result = build_stage(2, world / "sources.yaml", out, progress=False, tokenizer=processor.tokenizer)
    samples = {s.id: s for s in read_jsonl(out / "stage2.jsonl")}
    # refcoco: one good ref (REC + REG); charades: 2 good lines; vggss: 1 good clip; clotho is stage 3
    assert result.samples == len(samples) == 5
    assert samples["refcoco-rec-11"].messages[1]["content"] == "[0.100, 0.100, 0.600, 0.600]"
    assert samples["refcoco-rec-11"].media() == [("image", "coco/train2014/COCO_train2014_000000000007.jpg")]
    assert samples["charades-ABC12-1"].messages[1]["content"] == "{0.05, 0.24}"
    assert samples["charades-ABC12-1"].media() == [("video", "charades/Charades_v1_480/ABC12.mp4")]
    assert not any(s.source == "clotho" for s in samples.values())
    stats = json.loads((out / "stats.json").read_text())
    assert stats["per_source"] == {"refcoco": 2, "charades-sta": 2, "vggss": 1}
    assert stats["per_modality"] == {"image": 2, "video": 2, "audio+image": 1}
    assert stats["boxes"] == 3 and stats["spans"] == 2 and stats["tokens"]["min"] > 0
    assert stats["conversion"]["charades-sta"]["rejected"] == {
        "span_outside_video": 1, "unknown_video": 1, "malformed": 1}
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert len(rejected) == 5 and {r["source"] for r in rejected} == {"refcoco", "charades-sta", "vggss"}
    for png in ("per_source", "per_task", "per_modality", "tokens", "box_area", "span_length"):
        assert (out / f"{png}.png").stat().st_size > 1000
    assert "| charades-sta | 2 | 2 |" in (out / "stats.md").read_text()
    # a second build converts nothing again and writes the same file
    first = (out / "stage2.jsonl").read_text()
    mtime = (out / "sources" / "refcoco.jsonl").stat().st_mtime_ns
    build_stage(2, world / "sources.yaml", out, progress=False)
    assert (out / "sources" / "refcoco.jsonl").stat().st_mtime_ns == mtime
    assert (out / "stage2.jsonl").read_text() == first


def test_caps_are_seeded_subsets(world, tmp_path):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"seed: 1\nmedia_root: {world}\nsources:\n  charades-sta: {{root: {world}/charades, max_samples: 1}}\n")
    a = build_stage(2, cfg, tmp_path / "a", progress=False)
    b = build_stage(2, cfg, tmp_path / "b", progress=False)
    assert a.samples == 1 and (tmp_path / "a/stage2.jsonl").read_text() == (tmp_path / "b/stage2.jsonl").read_text()


def test_bad_config_is_named(tmp_path):
    cfg = tmp_path / "s.yaml"
    cfg.write_text("sources:\n  refcoco: {root: x, max_sample: 3}\n")
    with pytest.raises(InputError, match=r"sources.refcoco: unknown key\(s\) \['max_sample'\]"):
        load_config(cfg)
    cfg.write_text("sources:\n  nope: {root: x}\n")
    with pytest.raises(InputError, match="unknown source 'nope'"):
        load_config(cfg)


def test_built_stage_file_trains_with_the_tiny_preset(world, tmp_path):
    from groundinggpt.cli import main

    out = tmp_path / "build"
    assert main(["data", "build", "--stage", "2", "--config", str(world / "sources.yaml"), "--output", str(out),
                 "--quiet"]) == 0
    run = tmp_path / "run"
    assert main(["train", "--stage", "2", "--model", "tiny", "--data", str(out / "stage2.jsonl"),
                 "--media-root", str(world), "--output", str(run), "--max-steps", "2",
                 "--set", "per_device_train_batch_size=2", "--set", "save_strategy=no"]) == 0
    log = json.loads((run / "run_log.json").read_text())
    assert log["data"]["trained_on"] == 5      # every built sample went through the model
    assert any(run.rglob("*.safetensors"))

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
    assert len(rejected) == 6 and {r["source"] for r in rejected} == {"refcoco", "charades-sta", "vggss"}
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


def test_stage1_and_stage3_builds(tmp_path):
    for name in ("llava_cc3m", "wavcaps", "valley", "flickr30k", "vcr", "activitynet", "clotho", "videochat"):
        getattr(files, name)(tmp_path / name)
    files.llava_mix(tmp_path / "llava_mix")
    (tmp_path / "s.yaml").write_text(
        "check_media: false\nsources:\n"
        "  llava-cc3m: {root: llava_cc3m}\n  wavcaps: {root: wavcaps}\n  valley-pretrain: {root: valley}\n"
        "  flickr30k-entities: {root: flickr30k}\n  vcr: {root: vcr}\n  activitynet-captions: {root: activitynet}\n"
        "  clotho: {root: clotho}\n  videochat-instruct: {root: videochat}\n"
        "  llava-mix665k: {root: llava_mix}\n")
    one = build_stage(1, tmp_path / "s.yaml", tmp_path / "b1", progress=False)
    three = build_stage(3, tmp_path / "s.yaml", tmp_path / "b3", progress=False)
    s1 = {s.id: s for s in read_jsonl(tmp_path / "b1/stage1.jsonl")}
    s3 = {s.id: s for s in read_jsonl(tmp_path / "b3/stage3.jsonl")}
    assert one.samples == len(s1) == 1 + 2 + 2          # cc3m 1, wavcaps 2, valley 2
    assert s1["wavcaps-SoundBible-123"].messages[1]["content"] == "A dog barks twice."
    assert {s.stage for s in s1.values()} == {1} and {s.stage for s in s3.values()} == {3}
    # flickr 2 + vcr 1 + anet (dense 1 + grounding 2) + clotho 5 + videochat 1 + mix665k 3
    assert three.samples == len(s3) == 2 + 1 + 3 + 5 + 1 + 3
    assert s3["flickr30k-42-2"].messages[1]["content"] == "Kites[0.200, 0.125, 0.600, 0.500] fly ."
    assert s3["llava-mix665k-a1"].messages[1]["content"] == "[0.250, 0.000, 0.750, 0.500]"
    assert s3["anet-train-v_x-0-tg"].messages[1]["content"] == "{0.00, 0.25}"
    stats = json.loads((tmp_path / "b3/stats.json").read_text())
    assert stats["per_modality"]["text"] == 1 and stats["per_source"]["clotho"] == 5

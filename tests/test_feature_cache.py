"""FeatureCache: cached features train exactly like raw media, hits decode nothing, keys invalidate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import make_image, make_video_frames
from groundinggpt.data import DataCollator, FeatureCache, GroundingDataset, Sample, encoder_fingerprints
from groundinggpt.errors import MediaError
from groundinggpt.processor import GroundingGPTProcessor


@pytest.fixture
def media_root(tmp_path):
    from groundinggpt.media.video import write_video

    root = tmp_path / "media"
    root.mkdir()
    make_image(96, 64).save(root / "a.png")
    make_image(64, 80, box=(5, 40, 60, 75), colour=(30, 200, 30)).save(root / "b.png")
    write_video(root / "clip.mp4", make_video_frames(), fps=6)
    t = np.arange(int(16000 * 2.5)) / 16000
    sf.write(root / "tone.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    return root


def sample(sid: str, parts: list[dict], answer: str = "A box[0.100, 0.200, 0.500, 0.750].") -> Sample:
    return Sample.from_dict({"id": sid, "task": "rec", "messages": [
        {"role": "user", "content": [*parts, {"type": "text", "text": "Where is it?"}]},
        {"role": "assistant", "content": answer}]})


SAMPLES = [
    sample("a", [{"type": "image", "image": "a.png"}, {"type": "video", "video": "clip.mp4"}]),
    sample("b", [{"type": "audio", "audio": "tone.wav"}, {"type": "image", "image": "b.png"}]),
    sample("v", [{"type": "video", "video": "clip.mp4"}], answer="At {0.20, 0.45}."),
]


def test_cached_features_give_the_same_loss_and_skip_decoding(tiny, media_root, tmp_path, monkeypatch):
    model, processor = tiny
    cache = FeatureCache(tmp_path / "cache")
    report = cache.build(model, SAMPLES, processor, media_root, batch_size=2, progress=False)
    assert report == {"media": 4, "already_cached": 0, "encoded": 4, "failed": []}
    assert cache.stats()["entries"] == {"image": 2, "video": 1, "audio": 1}
    assert not list((tmp_path / "cache").rglob("*.tmp"))  # atomic writes leave nothing behind

    collate = DataCollator(processor)
    raw = collate([GroundingDataset(SAMPLES, processor, media_root)[i] for i in range(3)])

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cache hit must not decode media")

    monkeypatch.setattr(processor, "load_medium", no_decoding)
    ds = GroundingDataset(SAMPLES, processor, media_root, feature_cache=cache)
    items = [ds[i] for i in range(3)]
    assert all(x is not None for x in items) and not ds.skipped
    cached = collate(items)
    assert not {"pixel_values", "pixel_values_videos", "input_features"} & set(cached)
    assert cached["image_features"].shape[0] == 2 and cached["video_features"].shape[0] == 2
    assert cached["audio_features"].shape[0] == 1
    # same text, same placeholders, same box conversion (the image size came from the cache)
    for key in ("input_ids", "labels", "attention_mask"):
        assert torch.equal(cached[key], raw[key])
    with torch.no_grad():
        assert float(model(**cached).loss) == pytest.approx(float(model(**raw).loss), abs=1e-5)

    monkeypatch.undo()
    again = cache.build(model, SAMPLES, processor, media_root, progress=False)
    assert again["already_cached"] == 4 and again["encoded"] == 0


def test_a_damaged_entry_is_encoded_again_by_build(tiny, media_root, tmp_path):
    model, processor = tiny
    cache = FeatureCache(tmp_path / "cache")
    cache.build(model, SAMPLES, processor, media_root, progress=False)
    from safetensors.torch import load_file

    entry = sorted((tmp_path / "cache").rglob("*.safetensors"))[0]
    good = load_file(entry)["features"].clone()  # (load_file maps the file)
    data = entry.read_bytes()
    entry.write_bytes(data[: len(data) // 3])  # cut short by a full disk, say
    report = cache.build(model, SAMPLES, processor, media_root, progress=False)
    assert report["rebuilt"] == 1 and report["encoded"] == 1
    assert torch.equal(load_file(entry)["features"], good)  # the same features again


def test_key_changes_with_file_content_settings_and_encoder(tiny, media_root, tmp_path):
    model, processor = tiny
    cache = FeatureCache(tmp_path / "cache", processor=processor, model=model)
    path = media_root / "a.png"
    key = cache.key("image", path)
    assert cache.key("image", path) == key
    renamed = media_root / "renamed.png"
    renamed.write_bytes(path.read_bytes())
    assert cache.key("image", renamed) == key  # content-addressed: moving a file keeps its entry

    make_image(96, 64, colour=(0, 0, 255)).save(path)
    assert cache.key("image", path) != key  # new content → new key (memo keyed by mtime/size too)

    bigger = GroundingGPTProcessor(processor.tokenizer, dataclasses.replace(processor.config, image_size=32))
    other = FeatureCache(tmp_path / "cache", processor=bigger, fingerprints=cache.fingerprints)
    assert other.key("image", renamed) != cache.key("image", renamed)
    assert other.key("audio", media_root / "tone.wav") == cache.key("audio", media_root / "tone.wav")

    fingerprints = encoder_fingerprints(model)
    with torch.no_grad():
        model.vision_tower.post_layernorm.bias.add_(1.0)
    try:
        changed = encoder_fingerprints(model)
    finally:
        with torch.no_grad():
            model.vision_tower.post_layernorm.bias.sub_(1.0)
    assert changed["image"] != fingerprints["image"] and changed["video"] != fingerprints["video"]
    assert changed["audio"] == fingerprints["audio"]
    assert fingerprints["image"] != fingerprints["video"]  # same tower, separate branches


def test_get_put_and_bad_media(tiny, media_root, tmp_path):
    model, processor = tiny
    cache = FeatureCache(tmp_path / "cache")
    with pytest.raises(RuntimeError, match="not configured"):
        cache.get("image", media_root / "a.png")
    cache.configure(processor=processor, model=model)
    assert cache.get("image", media_root / "a.png") is None
    assert cache.get("image", media_root / "missing.png") is None
    t = torch.randn(16, 128)
    cache.put("image", media_root / "a.png", t)
    assert torch.equal(cache.get("image", media_root / "a.png"), t)
    s = cache.stats()
    assert (s["hits"], s["misses"], s["writes"]) == (1, 2, 1)

    (media_root / "bad.png").write_bytes(b"not an image")
    bad = [sample("bad", [{"type": "image", "image": "bad.png"}]), SAMPLES[1]]
    report = cache.build(model, bad, processor, media_root, progress=False)
    assert report["encoded"] == 2 and len(report["failed"]) == 1
    assert report["failed"][0]["samples"] == ["bad"] and "bad.png" in report["failed"][0]["reason"]
    # the sample with the uncached bad medium falls back to decoding, which fails: skipped, not a crash
    ds = GroundingDataset(bad, processor, media_root, feature_cache=cache)
    assert ds[0] is None and ds.skipped[0][0] == "bad"
    with pytest.raises(MediaError):
        GroundingDataset(bad, processor, media_root, feature_cache=cache, strict=True)[0]

"""GroundingDataset / DataCollator: labels, media order in a batch, bad media, truncation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import make_image, make_video_frames
from groundinggpt.data import DataCollator, DataError, GroundingDataset, Sample, SkipReport
from groundinggpt.errors import MediaError
from groundinggpt.grounding import Box, format_box, original_to_square
from groundinggpt.processor import IGNORE_INDEX


@pytest.fixture
def media_root(tmp_path):
    from groundinggpt.media.video import write_video

    root = tmp_path / "media"
    (root / "img").mkdir(parents=True)
    make_image(96, 64).save(root / "img" / "a.png")
    make_image(64, 80, box=(5, 40, 60, 75), colour=(30, 200, 30)).save(root / "img" / "b.png")
    write_video(root / "clip.mp4", make_video_frames(), fps=6)
    t = np.arange(int(16000 * 2.5)) / 16000
    sf.write(root / "tone.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    return root


def sample(sid: str, parts: list[dict], answer: str = "A red box.", task: str = "caption") -> Sample:
    return Sample.from_dict({"id": sid, "task": task, "messages": [
        {"role": "user", "content": [*parts, {"type": "text", "text": "Describe it."}]},
        {"role": "assistant", "content": answer}]})


IMG_A = {"type": "image", "image": "img/a.png"}
IMG_B = {"type": "image", "image": "img/b.png"}
VIDEO = {"type": "video", "video": "clip.mp4"}
AUDIO = {"type": "audio", "audio": "tone.wav"}


def trained_text(processor, item) -> str:
    ids = [t for t in item["labels"].tolist() if t != IGNORE_INDEX]
    return processor.tokenizer.decode(ids)


def test_labels_only_on_assistant_tokens(tiny, media_root):
    _, processor = tiny
    box = Box(0.1, 0.2, 0.5, 0.75)
    s = Sample.from_dict({"id": "m", "task": "rec", "messages": [
        {"role": "user", "content": [IMG_A, {"type": "text", "text": "Where is the red box?"}]},
        {"role": "assistant", "content": f"Here{format_box(box)}."},
        {"role": "user", "content": "And its colour?"},
        {"role": "assistant", "content": "Red."}]})
    item = GroundingDataset([s], processor, media_root)[0]
    assert item["input_ids"].shape == item["labels"].shape == item["attention_mask"].shape
    assert item["input_ids"].dim() == 1 and bool(item["attention_mask"].all())
    assert item["pixel_values"].shape == (1, 3, 64, 64)
    # exactly the two answers (boxes in the model's padded-square frame) and their EOS tokens
    square = format_box(original_to_square(box, 96, 64))
    assert trained_text(processor, item) == f" Here{square}.</s> Red.</s>"
    trained = item["labels"] != IGNORE_INDEX
    assert torch.equal(item["labels"][trained], item["input_ids"][trained])


def _summed_loss(model, batch) -> tuple[float, int]:
    """Sum of token losses and number of trained tokens (the model's loss is their mean)."""
    with torch.no_grad():
        loss = model(**batch).loss
    n = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    return float(loss) * n, n


def test_collated_media_follow_placeholder_order(tiny, media_root):
    model, processor = tiny
    samples = [sample("a", [IMG_A, VIDEO]), sample("text", [], answer="Just text here."),
               sample("b", [AUDIO, IMG_B], answer="A green box."), sample("c", [VIDEO])]
    ds = GroundingDataset(samples, processor, media_root)
    items = [ds[i] for i in range(len(ds))]
    collate = DataCollator(processor)
    batch = collate(items)
    assert batch["pixel_values"].shape[0] == 2 and batch["pixel_values_videos"].shape[0] == 2
    assert batch["input_features"].shape[0] == 1
    longest = max(len(x["input_ids"]) for x in items)
    assert batch["input_ids"].shape == (4, longest)
    short = items[1]["input_ids"].shape[0]
    assert bool((batch["input_ids"][1, short:] == processor.tokenizer.pad_token_id).all())
    assert bool((batch["labels"][1, short:] == IGNORE_INDEX).all()) and not bool(batch["attention_mask"][1, short:].any())

    total, count = 0.0, 0
    for x in items:
        single = collate([x])
        s, n = _summed_loss(model, single)
        total, count = total + s, count + n
    with torch.no_grad():
        batch_loss = float(model(**batch).loss)
    assert batch_loss == pytest.approx(total / count, abs=1e-5)
    # the check is sensitive to order: swapping the two images changes the loss
    swapped = dict(batch, pixel_values=batch["pixel_values"].flip(0))
    with torch.no_grad():
        assert abs(float(model(**swapped).loss) - batch_loss) > 1e-4


def test_missing_image_is_skipped_and_listed(tiny, media_root, tmp_path):
    _, processor = tiny
    samples = [sample("ok", [IMG_A]), sample("gone", [{"type": "image", "image": "img/missing.png"}])]
    ds = GroundingDataset(samples, processor, media_root)
    assert ds[1] is None
    assert ds.skipped[0][0] == "gone" and "not found" in ds.skipped[0][1]
    assert ds[1] is None and len(ds.skipped) == 1  # known bad: not decoded (nor recorded) again
    collate = DataCollator(processor)
    batch = collate([ds[0], ds[1]])
    assert batch["input_ids"].shape[0] == 1 and collate.dropped == 1

    report = SkipReport.from_dataset(ds)
    summary = report.write(tmp_path / "skipped.json")
    written = json.loads((tmp_path / "skipped.json").read_text())
    assert written["skipped_count"] == 1 and written["skipped"][0]["id"] == "gone"
    assert written["by_reason"] == {"media": 1} and "gone" in summary

    with pytest.raises(MediaError, match="sample 'gone'"):
        GroundingDataset(samples, processor, media_root, strict=True)[1]


def test_validate_media_drops_bad_samples_up_front(tiny, media_root):
    _, processor = tiny
    (media_root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (media_root / "empty.wav").write_bytes(b"")
    (media_root / "text.mp4").write_text("hello")
    make_image().save(media_root / "still.mp4", "PNG")  # a picture named like a video
    sf.write(media_root / "blip.wav", np.zeros(100, dtype=np.float32), 16000)  # 6 ms: under one window
    sf.write(media_root / "rate1.wav", np.zeros(5000, dtype=np.int16), 1, subtype="PCM_16")
    samples = [sample("ok", [IMG_A]), sample("ok-v", [VIDEO, AUDIO]),
               sample("missing", [{"type": "image", "image": "nope.png"}]),
               sample("broken", [{"type": "image", "image": "broken.png"}]),
               sample("empty", [{"type": "audio", "audio": "empty.wav"}]),
               sample("text", [{"type": "video", "video": "text.mp4"}]),
               sample("still", [{"type": "video", "video": "still.mp4"}]),
               sample("blip", [{"type": "audio", "audio": "blip.wav"}]),
               sample("rate1", [{"type": "audio", "audio": "rate1.wav"}])]
    ds = GroundingDataset(samples, processor, media_root)
    report = ds.validate_media(num_threads=2)
    assert [s.id for s in ds.samples] == ["ok", "ok-v"]
    assert sorted(i for i, _ in report.skipped) == ["blip", "broken", "empty", "missing", "rate1", "still", "text"]
    assert all(r.startswith("media: ") for _, r in report.skipped)
    reasons = dict(report.skipped)
    assert "still image" in reasons["still"] and "expected at least 25 ms" in reasons["blip"]
    assert "sample rate 1 Hz" in reasons["rate1"]
    assert len(ds) == 2 and all(ds[i] is not None for i in range(2))


def test_truncation_keeps_labels_aligned_or_skips(tiny, media_root):
    _, processor = tiny
    s = sample("long", [IMG_A], answer="A red box on a grey background, near the top left corner.")
    full = GroundingDataset([s], processor, media_root)[0]
    n = full["input_ids"].shape[0]
    last_media = int(torch.isin(full["input_ids"], torch.tensor(list(processor.token_ids.values())))
                     .nonzero().max())
    first_answer = int((full["labels"] != IGNORE_INDEX).nonzero().min())

    cut = n - 5  # inside the answer: truncated, same prefix
    log = media_root / "truncations.jsonl"
    ds = GroundingDataset([s], processor, media_root, max_length=cut, skip_log=log)
    item = ds[0]
    assert item["input_ids"].shape[0] == cut and not ds.skipped
    for key in ("input_ids", "labels", "attention_mask"):
        assert torch.equal(item[key], full[key][:cut])
    assert item["pixel_values"].shape[0] == 1
    ds[0]  # a second epoch: counted once
    report = SkipReport.from_dataset(ds)  # counted, not hidden (workers report through the log)
    assert report.to_dict()["truncated_count"] == 1 and report.to_dict()["skipped_count"] == 0
    assert "1 samples cut at max_length" in report.summary()
    ds.truncated.clear()
    assert SkipReport.from_dataset(ds).truncated == {"long"}  # from the log alone, as from a worker
    log.unlink()

    ds = GroundingDataset([s], processor, media_root, max_length=last_media)  # cuts the image block
    assert ds[0] is None and ds.skipped[0][1].startswith("too long: media block would be cut")

    ds = GroundingDataset([s], processor, media_root, max_length=first_answer)  # media fit, no answer left
    assert ds[0] is None and ds.skipped[0][1].startswith("too long: no answer tokens left")

    with pytest.raises(DataError, match="sample 'long': too long"):
        GroundingDataset([s], processor, media_root, max_length=last_media, strict=True)[0]


def test_samples_without_answer_or_with_too_many_media_are_rejected(tiny, media_root):
    _, processor = tiny
    no_answer = Sample.from_dict({"id": "q", "task": "vqa", "messages": [{"role": "user", "content": "hi"}]})
    with pytest.raises(DataError, match="sample 'q': no assistant turn"):
        GroundingDataset([no_answer], processor, media_root)
    with pytest.raises(DataError, match="2 image parts"):
        GroundingDataset([sample("two", [IMG_A, IMG_B])], processor, media_root)
    cut = Sample.from_dict({"id": "cut", "task": "vqa", "messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "and the dog?"}]})
    with pytest.raises(DataError, match="sample 'cut': ends with a user turn that has no answer"):
        GroundingDataset([cut], processor, media_root)
    # read from a file, the sample is named with its file and line too
    path = media_root / "two.jsonl"
    path.write_text(json.dumps(sample("one", [IMG_A]).to_dict()) + "\n"
                    + json.dumps(sample("two", [IMG_A, IMG_B]).to_dict()) + "\n")
    from groundinggpt.data import read_jsonl

    with pytest.raises(DataError, match=rf"sample 'two' \({path}:2\): 2 image parts"):
        GroundingDataset(read_jsonl(path), processor, media_root)


def test_all_bad_batch_is_replaced_not_nan(tiny, media_root):
    model, processor = tiny
    samples = [sample("ok", [IMG_A]), sample("gone", [{"type": "image", "image": "nope.png"}])]
    ds = GroundingDataset(samples, processor, media_root)
    with pytest.raises(DataError, match="validate_media"):
        DataCollator(processor)([None, None])
    collate = DataCollator(processor, dataset=ds, seed=0, return_ids=True)
    batch = collate([None, None])
    assert batch.pop("ids") == ["ok"] and collate.replaced == 1
    with torch.no_grad():
        assert torch.isfinite(model(**batch).loss)
    everything_bad = GroundingDataset(samples[1:], processor, media_root)
    with pytest.raises(DataError, match="replacements failed"):
        DataCollator(processor, dataset=everything_bad, max_tries=3)([None])


def test_worker_skips_reach_the_report_through_skip_log(tiny, media_root, tmp_path):
    _, processor = tiny
    samples = [sample("ok", []), sample("gone", [{"type": "image", "image": "nope.png"}])]
    ds = GroundingDataset(samples, processor, media_root, skip_log=tmp_path / "skips.jsonl")
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=1, collate_fn=DataCollator(processor))
    batches = list(loader)
    assert len(batches) == 1 and batches[0]["input_ids"].shape[0] == 1
    assert ds.skipped == []  # the worker's copy recorded it, not this process's
    report = SkipReport.from_dataset(ds)
    assert [i for i, _ in report.skipped] == ["gone"] and report.total == 2

"""Packing: packed rows give the same loss, gradients and per-sample logits as the padded batch."""

from __future__ import annotations

import random

import pytest
import torch

from groundinggpt.data.dataset import RAW_KEYS, DataCollator
from groundinggpt.data.packing import PackingCollator, pack_rows, padding_fraction
from groundinggpt.models import modeling_groundinggpt
from groundinggpt.presets import build_tiny


def _conversation(media: list[tuple[str, str]], question: str, answer: str) -> list[dict]:
    parts = [{"type": kind, kind: str(path)} for kind, path in media]
    return [{"role": "user", "content": [*parts, {"type": "text", "text": question}]},
            {"role": "assistant", "content": answer}]


@pytest.fixture(scope="module")
def model_and_processor():
    model, processor = build_tiny(seed=0)
    return model.eval(), processor  # eval: no dropout, so both forms see the same function


@pytest.fixture
def items(model_and_processor, image_path, video_path, audio_path, tmp_path):
    """Six samples of mixed media and very different lengths; two different images, so a wrong
    media order would change the loss."""
    from conftest import make_image

    other = tmp_path / "other.png"
    make_image(box=(30, 20, 60, 50), colour=(30, 30, 220)).save(other)
    _, processor = model_and_processor
    long_answer = " ".join(["the red box is left of the blue one"] * 6)
    conversations = [
        _conversation([("image", image_path)], "Where is the red box?", "At [0.10,0.12,0.42,0.47]."),
        _conversation([], "Tell me a long story.", long_answer),
        _conversation([("video", video_path)], "What happens?", "A bar grows."),
        _conversation([("image", other)], "Describe it in detail.", long_answer),
        _conversation([("audio", audio_path)], "What sound?", "A tone."),
        _conversation([("image", image_path), ("audio", audio_path)], "Both?", "Yes."),
    ]
    out = []
    for i, conv in enumerate(conversations):
        b = processor([conv], add_generation_prompt=False, padding_side="right", return_labels=True)
        item = {"input_ids": b["input_ids"][0], "labels": b["labels"][0], "attention_mask": b["attention_mask"][0],
                "id": f"s{i}"}
        item.update({key: b[key] for key in RAW_KEYS.values() if key in b})
        out.append(item)
    return out


def _loss_and_grads(model, batch):
    model.zero_grad(set_to_none=True)
    inputs = {k: v for k, v in batch.items() if k != "ids"}
    out = model(**inputs)
    out.loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.loss.detach(), grads


@pytest.mark.parametrize("max_tokens", [None, "two-rows"])
def test_packed_loss_and_gradients_equal_the_padded_batch(model_and_processor, items, max_tokens):
    model, processor = model_and_processor
    lengths = [int(x["input_ids"].shape[0]) for x in items]
    if max_tokens == "two-rows":
        # a row length at which first-fit decreasing puts the images out of their batch order
        def image_order(cap):
            return [i for row in pack_rows(lengths, cap) for i in row if "pixel_values" in items[i]]

        max_tokens = next(cap for cap in range(max(lengths), sum(lengths))
                          if image_order(cap) != sorted(image_order(cap)))
    padded = DataCollator(processor)(items)
    packed = PackingCollator(DataCollator(processor), max_tokens=max_tokens)(items)
    assert "attention_mask" not in packed and packed["position_ids"].shape == packed["input_ids"].shape
    rows = pack_rows(lengths, max_tokens)
    assert packed["input_ids"].shape[0] == len(rows) and (max_tokens is None or len(rows) >= 2)
    assert int((packed["labels"] != -100).sum()) == int((padded["labels"][:, 1:] != -100).sum())
    if max_tokens is not None:  # the rows reorder the samples, so the images must follow them
        order = [i for row in rows for i in row]
        image_rows = [i for i in order if "pixel_values" in items[i]]
        assert torch.equal(packed["pixel_values"], torch.cat([items[i]["pixel_values"] for i in image_rows]))
        assert not torch.equal(packed["pixel_values"], padded["pixel_values"])
    loss_a, grads_a = _loss_and_grads(model, padded)
    loss_b, grads_b = _loss_and_grads(model, packed)
    torch.testing.assert_close(loss_b, loss_a, rtol=0, atol=1e-5)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=0, atol=1e-5, msg=name)


def test_each_packed_sample_sees_only_itself(model_and_processor, items):
    """Per-sample logits in a packed row equal the sample's logits alone (no attention across samples)."""
    model, processor = model_and_processor
    packed = PackingCollator(DataCollator(processor), max_tokens=None)(items)
    with torch.no_grad():
        logits = model(**{k: v for k, v in packed.items() if k != "labels"}).logits[0]
        start = 0
        for item in items:
            n = int(item["input_ids"].shape[0])
            alone = DataCollator(processor)([item])
            ref = model(**{k: v for k, v in alone.items() if k != "labels"}).logits[0]
            torch.testing.assert_close(logits[start:start + n], ref, rtol=0, atol=1e-5)
            start += n


def test_position_ids_restart_per_sample_and_for_the_padded_tail(model_and_processor, items):
    _, processor = model_and_processor
    lengths = [int(x["input_ids"].shape[0]) for x in items]
    packed = PackingCollator(DataCollator(processor), max_tokens=max(lengths) + 3)(items)
    for r, row in enumerate(pack_rows(lengths, max(lengths) + 3)):
        want = [p for i in row for p in range(lengths[i])]
        tail = packed["input_ids"].shape[1] - len(want)
        assert packed["position_ids"][r].tolist() == want + list(range(tail))
        starts = [sum(lengths[j] for j in row[:k]) for k in range(len(row))]
        assert all(int(packed["labels"][r, s]) == -100 for s in starts)
        assert (packed["labels"][r, len(want):] == -100).all()


def test_rows_folded_for_flash_attention_give_the_same_loss(model_and_processor, items, monkeypatch):
    """The one-row layout FlashAttention-2's varlen kernel gets, checked here under SDPA."""
    model, processor = model_and_processor
    lengths = [int(x["input_ids"].shape[0]) for x in items]
    packed = PackingCollator(DataCollator(processor), max_tokens=max(lengths))(items)
    assert packed["input_ids"].shape[0] >= 2
    with torch.no_grad():
        plain = model(**packed)
        monkeypatch.setattr(modeling_groundinggpt, "FOLDED_PACKING_KERNELS", ("sdpa",))
        calls = []
        hook = model.language_model.register_forward_pre_hook(
            lambda m, a, kw: calls.append(kw["inputs_embeds"].shape[0]), with_kwargs=True)
        try:
            folded = model(**packed)
        finally:
            hook.remove()
    assert calls == [1]
    assert folded.logits.shape == plain.logits.shape
    torch.testing.assert_close(folded.loss, plain.loss, rtol=0, atol=1e-5)
    torch.testing.assert_close(folded.logits, plain.logits, rtol=0, atol=1e-5)


def test_pack_rows_places_every_sample_once_within_capacity():
    rng = random.Random(0)
    for _ in range(50):
        lengths = [rng.randint(1, 40) for _ in range(rng.randint(1, 20))]
        cap = rng.randint(1, 60)
        rows = pack_rows(lengths, cap)
        assert sorted(i for r in rows for i in r) == list(range(len(lengths)))
        assert all(sum(lengths[i] for i in r) <= cap or len(r) == 1 for r in rows)
        assert all(r == sorted(r) for r in rows)
    with pytest.raises(ValueError, match="max_tokens"):
        pack_rows([3], 0)


def test_padding_fraction():
    assert padding_fraction(torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])) == 0.25
    assert padding_fraction([3, 5], row_length=4, rows=2) == 0.0


def test_an_all_bad_batch_is_replaced_and_still_packed(model_and_processor, items):
    _, processor = model_and_processor

    class OneGood:
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return items[0]

    packer = PackingCollator(DataCollator(processor, dataset=OneGood()))
    batch = packer([None, None])
    n = int(items[0]["input_ids"].shape[0])
    assert batch["input_ids"].shape == (1, n) and batch["position_ids"][0].tolist() == list(range(n))
    assert packer.collator.replaced == 1
    packer([items[1], None])
    assert packer.collator.dropped == 3  # the two of the all-bad batch, then one

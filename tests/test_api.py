"""The Python API: one-call helpers return structured results in the user's frame."""

from __future__ import annotations

import pytest
import torch

from groundinggpt import GenerationSettings, GroundingGPT
from groundinggpt.errors import InputError
from groundinggpt.grounding import Box

from conftest import make_image


@pytest.fixture(scope="module")
def gg():
    return GroundingGPT.from_preset("tiny", seed=0)


def test_ground_returns_original_frame_results(gg):
    out = gg.ground(make_image(120, 60), "the red box", max_new_tokens=8)
    assert out.image_size == (120, 60)
    assert isinstance(out.text, str)


def test_post_processing_of_a_forced_answer(gg, monkeypatch):
    """Whatever the model says, a box in its square frame comes back in the original frame."""
    monkeypatch.setattr(gg.processor, "decode", lambda ids: "The red box[0.000, 0.250, 0.500, 0.750].")
    out = gg.ground(make_image(120, 60), "the red box", max_new_tokens=2)
    assert out.entities[0].phrase == "The red box"
    assert out.boxes[0].as_list() == pytest.approx(Box(0.0, 0.0, 0.5, 1.0).as_list(), abs=1e-3)
    assert out.boxes_pixels[0] == pytest.approx((0, 0, 60, 60), abs=0.5)


def test_when_and_sound_source(gg, video_path, audio_path, image_path, monkeypatch):
    monkeypatch.setattr(gg.processor, "decode", lambda ids: "It turns red in {0.25, 0.50}.")
    out = gg.when(str(video_path), "it turns red", max_new_tokens=2)
    assert out.duration == pytest.approx(2.0, abs=0.2)
    assert out.spans_seconds[0] == pytest.approx((0.25 * out.duration, 0.5 * out.duration))
    monkeypatch.undo()
    out = gg.sound_source(str(image_path), str(audio_path), max_new_tokens=3)
    assert out.image_size == (96, 64)


def test_batched_generate_matches_single(gg, image_path):
    convs = [[{"role": "user", "content": [{"type": "image", "image": str(image_path)},
                                          {"type": "text", "text": "Output the coordinate of the red box."}]}],
             [{"role": "user", "content": "hello there"}]]
    batched = gg.generate(convs, max_new_tokens=6)
    single = [gg.chat(c, max_new_tokens=6) for c in convs]
    assert [b.text for b in batched] == [s.text for s in single]


def test_sampling_with_seed_is_reproducible(gg):
    conv = [{"role": "user", "content": "hello"}]
    a = gg.chat(conv, max_new_tokens=8, temperature=1.0, top_p=0.9, seed=3).text
    b = gg.chat(conv, max_new_tokens=8, temperature=1.0, top_p=0.9, seed=3).text
    assert a == b


def test_bad_generation_settings():
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationSettings(max_new_tokens=0).generate_kwargs()
    with pytest.raises(ValueError, match="top_p"):
        GenerationSettings(top_p=0).generate_kwargs()


def test_save_and_reload_api(gg, tmp_path, image_path):
    gg.save_pretrained(tmp_path)
    again = GroundingGPT.from_pretrained(tmp_path)
    conv = [{"role": "user", "content": [{"type": "image", "image": str(image_path)},
                                         {"type": "text", "text": "what?"}]}]
    assert again.chat(conv, max_new_tokens=6).text == gg.chat(conv, max_new_tokens=6).text
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        GroundingGPT.from_pretrained(tmp_path / "missing")


def test_usage_and_finish_reason(gg):
    out = gg.generate([[{"role": "user", "content": "hello"}]], max_new_tokens=3)[0]
    prompt = gg.processor([{"role": "user", "content": "hello"}])["input_ids"]
    assert out.prompt_tokens == prompt.shape[1]
    assert 1 <= out.completion_tokens <= 3
    assert out.finish_reason == ("length" if out.completion_tokens == 3 else "stop")


def test_generated_placeholder_tokens_are_suppressed():
    """A model that 'wants' to emit <image> must not crash the next decoding step."""
    gg2 = GroundingGPT.from_preset("tiny", seed=1)
    lm_head = gg2.model.language_model.lm_head.weight
    with torch.no_grad():
        for token_id in gg2.processor.token_ids.values():
            lm_head[token_id] = lm_head[token_id].sign() * 50  # overwhelmingly preferred
    out = gg2.generate([[{"role": "user", "content": "Question 10: what colour is item 70?"}]],
                       max_new_tokens=6)[0]
    assert out.completion_tokens >= 1
    assert not any(t in out.text for t in ("<image>", "<video>", "<audio>"))


def test_streamer_receives_the_answer(gg):
    from transformers import TextStreamer

    pieces = []

    class Collect(TextStreamer):
        def on_finalized_text(self, text, stream_end=False):
            pieces.append(text)

    streamer = Collect(gg.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    out = gg.generate([[{"role": "user", "content": "hello"}]], max_new_tokens=5, streamer=streamer)[0]
    assert "".join(pieces).strip().startswith(out.text[:3])
    with pytest.raises(ValueError, match="exactly one conversation"):
        gg.generate([[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]], streamer=streamer)


def test_a_prompt_beyond_the_context_is_refused_before_generating(gg, monkeypatch):
    calls = []
    monkeypatch.setattr(gg.model, "generate", lambda *a, **k: calls.append(1))
    context = gg.model.config.text_config.max_position_embeddings
    short = [{"role": "user", "content": "Hello"}]
    long = [{"role": "user", "content": "word " * (2 * context)}]
    with pytest.raises(InputError, match=rf"conversation 1: the prompt is \d+ tokens, but this model's context is {context}"):
        gg.generate([short, long], max_new_tokens=4)
    assert calls == []  # refused before any generation


def test_helpers_refuse_a_missing_phrase(gg, image_path, video_path):
    for bad in (None, "", "   ", 3):
        with pytest.raises(InputError, match="expression must be a non-empty string"):
            gg.ground(image_path, bad)
    with pytest.raises(InputError, match="event must be a non-empty string"):
        gg.when(video_path, None)

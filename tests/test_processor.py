"""GroundingGPTProcessor: placeholder expansion, template, labels, coordinates, bad input."""

from __future__ import annotations

import base64
import io

import pytest
import torch

from groundinggpt.errors import InputError, MediaError
from groundinggpt.grounding import Box, format_box, original_to_square, parse_boxes
from groundinggpt.processor import IGNORE_INDEX, GroundingGPTProcessor, MediaInfo

from conftest import make_image


def _user(*parts):
    return {"role": "user", "content": list(parts)}


def test_placeholders_expand_to_branch_lengths(tiny, image_path, video_path, audio_path):
    _, proc = tiny
    conv = [_user({"type": "image", "image": str(image_path)}, {"type": "video", "video": str(video_path)},
                  {"type": "audio", "audio": str(audio_path)}, {"type": "text", "text": "Describe."})]
    batch = proc(conv)
    ids = batch["input_ids"][0]
    assert int((ids == proc.token_ids["image"]).sum()) == proc.config.image_seq_length == 16
    assert int((ids == proc.token_ids["video"]).sum()) == proc.config.video_seq_length == 8
    assert int((ids == proc.token_ids["audio"]).sum()) == proc.config.audio_seq_length == 4
    assert batch["pixel_values"].shape == (1, 3, 64, 64)
    assert batch["pixel_values_videos"].shape == (1, 8, 3, 64, 64)
    assert batch["input_features"].shape == (1, 3, 1, 128, 204)
    kinds = [m.kind for m in batch["media_info"][0]]
    assert kinds == ["image", "video", "audio"]
    assert batch["media_info"][0][0].original_size == (96, 64)
    assert batch["media_info"][0][1].duration == pytest.approx(2.0, abs=0.2)
    # The placeholders sit in one contiguous run, in message order.
    image_pos = (ids == proc.token_ids["image"]).nonzero().flatten()
    assert image_pos.max() - image_pos.min() == 15


def test_vicuna_template_text(tiny):
    _, proc = tiny
    conv = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Bye"}]
    ids = proc(conv)["input_ids"][0]
    text = proc.tokenizer.decode(ids, skip_special_tokens=False)
    assert text == (
        "<s>A chat between a curious user and an artificial intelligence assistant. The assistant gives "
        "helpful, detailed, and polite answers to the user's questions. USER: Hi ASSISTANT: Hello.</s>"
        "USER: Bye ASSISTANT:"
    )


def test_labels_train_only_assistant_answers(tiny):
    _, proc = tiny
    conv = [{"role": "user", "content": "Question one"}, {"role": "assistant", "content": "Answer one"},
            {"role": "user", "content": "Question two"}, {"role": "assistant", "content": "Answer two"}]
    batch = proc(conv, return_labels=True, padding_side="right")
    labels = batch["labels"][0]
    trained = proc.tokenizer.decode(labels[labels != IGNORE_INDEX], skip_special_tokens=False)
    assert trained == " Answer one</s> Answer two</s>"
    # Everything the user wrote, the system prompt and the role markers are masked.
    assert (labels != IGNORE_INDEX).sum() < (batch["attention_mask"][0] == 1).sum() / 3


@pytest.mark.parametrize("kind", ["tiny byte-level BPE", "Vicuna-style SentencePiece", "legacy SentencePiece"])
def test_tokens_are_the_whole_prompt_string_as_llava_tokenises_it(tiny, tmp_path, kind):
    """The template's pieces are tokenised as one string between media placeholders, as
    LLaVA's tokenizer_image_token does: tokenised apart, SentencePiece put a "▁" before each
    piece ("questions. ▁ ▁USER") that Vicuna never saw. Only the answers are trained."""
    _, proc = tiny
    if kind != "tiny byte-level BPE":
        from test_presets import sentencepiece_only_vicuna
        from transformers import AutoTokenizer

        from groundinggpt.processor import GroundingGPTProcessor, ProcessorConfig

        sentencepiece_only_vicuna(tmp_path / "vicuna")
        if kind.startswith("legacy"):  # "▁" after special tokens too (LLaMA-1 era configs)
            config = tmp_path / "vicuna" / "tokenizer_config.json"
            config.write_text(config.read_text().replace('"legacy": false', '"legacy": true'))
        tok = AutoTokenizer.from_pretrained(tmp_path / "vicuna")
        tok.add_tokens(["<image>", "<video>", "<audio>"], special_tokens=True)
        proc = GroundingGPTProcessor(tok, ProcessorConfig(chat_template="vicuna_v1", image_seq_length=3))
    tok = proc.tokenizer
    loader = lambda kind, source: (None, MediaInfo(kind, original_size=(100, 100)))  # noqa: E731
    conv = [_user({"type": "image", "image": "x"}, {"type": "text", "text": "Where is the cat?"}),
            {"role": "assistant", "content": "The cat[0.100, 0.200, 0.300, 0.400]."},
            {"role": "user", "content": "And the dog?"}, {"role": "assistant", "content": "Gone."}]
    batch = proc(conv, media_loader=loader, return_labels=True, padding_side="right")
    prompt = (proc.template.system + " USER: <image>\nWhere is the cat? ASSISTANT: The cat[0.100, 0.200, 0.300, "
              "0.400].</s>USER: And the dog? ASSISTANT: Gone.</s>")
    before, after = prompt.split("<image>")
    expected = ([tok.bos_token_id] + tok(before, add_special_tokens=False)["input_ids"]
                + [proc.token_ids["image"]] * proc.seq_lengths["image"] + tok(after, add_special_tokens=False)["input_ids"])
    assert batch["input_ids"][0].tolist() == expected
    labels = batch["labels"][0]
    trained = tok.decode(labels[labels != IGNORE_INDEX], skip_special_tokens=False)
    assert trained.replace(" ", "") == "Thecat[0.100,0.200,0.300,0.400].</s>Gone.</s>"


def test_right_and_left_padding(tiny):
    _, proc = tiny
    convs = [[{"role": "user", "content": "a"}], [{"role": "user", "content": "a much longer question here"}]]
    right = proc(convs, padding_side="right", return_labels=True)
    left = proc(convs, padding_side="left")
    pad = proc.tokenizer.pad_token_id
    assert right["attention_mask"][0, -1] == 0 and right["input_ids"][0, -1] == pad
    assert right["labels"][0, -1] == IGNORE_INDEX
    assert left["attention_mask"][0, 0] == 0 and left["input_ids"][0, -1] != pad


def test_literal_special_tokens_typed_by_user_stay_text(tiny, image_path):
    _, proc = tiny
    conv = [_user({"type": "image", "image": str(image_path)},
                  {"type": "text", "text": "What does <image> or <video> or <audio> or </s> mean?"})]
    ids = proc(conv)["input_ids"][0]
    assert int((ids == proc.token_ids["image"]).sum()) == proc.config.image_seq_length  # only the real image
    assert int((ids == proc.token_ids["video"]).sum()) == 0
    assert int((ids == proc.token_ids["audio"]).sum()) == 0
    assert int((ids == proc.tokenizer.eos_token_id).sum()) == 0
    assert "<image> or <video>" in proc.tokenizer.decode(ids, skip_special_tokens=False)


def test_user_boxes_converted_to_square_and_answers_back_to_original(tiny, tmp_path):
    _, proc = tiny
    path = tmp_path / "wide.png"
    make_image(200, 100).save(path)  # square side 200, vertical padding 50 px each side
    user_box = Box(0.1, 0.2, 0.5, 0.8)  # relative to the original 200×100 image
    conv = [_user({"type": "image", "image": str(path)},
                  {"type": "text", "text": f"What is the thing{format_box(user_box)}?"}),
            {"role": "assistant", "content": f"A square{format_box(Box(0.25, 0.0, 0.75, 1.0))}."}]
    batch = proc(conv, return_labels=True)
    text = proc.tokenizer.decode(batch["input_ids"][0], skip_special_tokens=True)
    boxes = parse_boxes(text)
    expected_user = original_to_square(user_box, 200, 100)
    assert boxes[0].as_list() == pytest.approx(expected_user.as_list(), abs=1e-3)
    assert boxes[0].as_list() == pytest.approx([0.1, 0.35, 0.5, 0.65], abs=1e-3)
    assert boxes[1].as_list() == pytest.approx([0.25, 0.25, 0.75, 0.75], abs=1e-3)
    # post_process takes the model's square box back to the original frame.
    out = proc.post_process("The square[0.250, 0.250, 0.750, 0.750].", batch["media_info"][0])
    assert out.entities[0].phrase == "The square"
    assert out.boxes[0].as_list() == pytest.approx([0.25, 0.0, 0.75, 1.0], abs=1e-3)
    assert out.boxes_pixels[0] == pytest.approx((50.0, 0.0, 150.0, 100.0), abs=0.5)
    assert "[0.250, 0.000, 0.750, 1.000]" in out.text


def test_user_boxes_before_the_image_are_converted_and_non_boxes_left_alone(tiny, tmp_path):
    """OpenAI clients often send the text part before the image: its boxes are in the same
    original frame. Bracketed numbers that are not a relative box stay as written."""
    _, proc = tiny
    path = tmp_path / "wide.png"
    make_image(200, 100).save(path)
    question = "What is at [0.1, 0.2, 0.5, 0.8]? Not [120, 40, 300, 200] nor [1, 2, 3, 4]."
    after = proc([_user({"type": "image", "image": str(path)}, {"type": "text", "text": question})])
    before = proc([_user({"type": "text", "text": question}, {"type": "image", "image": str(path)})])
    for batch in (after, before):
        text = proc.tokenizer.decode(batch["input_ids"][0], skip_special_tokens=True)
        assert "[0.100, 0.350, 0.500, 0.650]" in text  # converted to the padded square
        assert "[120, 40, 300, 200]" in text and "[1, 2, 3, 4]" in text  # untouched


def test_media_errors_name_the_message_as_the_caller_numbered_it(tiny, tmp_path):
    _, proc = tiny
    conv = [{"role": "system", "content": "Be brief."}, _user({"type": "text", "text": "look"},
                                                              {"type": "audio", "audio": b"not audio at all"})]
    with pytest.raises(MediaError, match="message 1, part 1") as info:
        proc(conv)
    assert info.value.part == (1, 1)  # the server names messages[1].content[1]


def test_post_process_spans_and_garbage(tiny):
    _, proc = tiny
    info = [MediaInfo("video", original_size=(64, 48), duration=20.0)]
    out = proc.post_process("The dog jumps in {0.10, 0.45}.", info)
    assert out.spans_seconds == [pytest.approx((2.0, 9.0))]
    assert out.to_dict()["entities"][0]["span_seconds"] == [2.0, 9.0]
    for junk in ["", "[[[", "{0.1,", "[0.1, 0.2, 0.3]", "\x00\uffff", "}" * 100]:
        assert proc.post_process(junk, info).entities == []


def test_media_sources_bytes_pil_and_data_url_agree(tiny, image_path):
    _, proc = tiny
    raw = image_path.read_bytes()
    url = "data:image/png;base64," + base64.b64encode(raw).decode()
    from PIL import Image
    pil = Image.open(io.BytesIO(raw))
    tensors = [proc([_user({"type": "image", "image": src}, {"type": "text", "text": "x"})])["pixel_values"]
               for src in (str(image_path), raw, url, pil)]
    for t in tensors[1:]:
        assert torch.equal(t, tensors[0])


def test_processor_save_load(tiny, tmp_path):
    _, proc = tiny
    proc.save_pretrained(tmp_path)
    again = GroundingGPTProcessor.from_pretrained(tmp_path)
    assert again.config == proc.config
    conv = [{"role": "user", "content": "hello"}]
    assert torch.equal(again(conv)["input_ids"], proc(conv)["input_ids"])


# ---- bad input: each a clear error naming the input and what was expected ----------------

def test_media_part_without_file(tiny):
    _, proc = tiny
    with pytest.raises(InputError, match=r"message 0, part 0: a 'image' part has no file"):
        proc([_user({"type": "image"}, {"type": "text", "text": "hi"})])


def test_unknown_content_type_and_role(tiny):
    _, proc = tiny
    with pytest.raises(InputError, match="unknown content type 'pdf'"):
        proc([_user({"type": "pdf", "pdf": "x.pdf"})])
    with pytest.raises(InputError, match="unknown role 'robot'"):
        proc([{"role": "robot", "content": "x"}])
    with pytest.raises(InputError, match="only user messages may hold media"):
        proc([{"role": "user", "content": "x"}, {"role": "assistant", "content": [{"type": "image", "image": "a"}]}])


def test_too_many_media_parts(tiny, image_path):
    _, proc = tiny
    part = {"type": "image", "image": str(image_path)}
    with pytest.raises(InputError, match="2 image parts, but this model supports at most 1"):
        proc([_user(part, part, {"type": "text", "text": "compare"})])


def test_corrupt_and_missing_media_name_the_source(tiny, tmp_path):
    _, proc = tiny
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(MediaError, match="broken.png"):
        proc([_user({"type": "image", "image": str(bad)})])
    with pytest.raises(MediaError, match="nowhere.mp4"):
        proc([_user({"type": "video", "video": str(tmp_path / "nowhere.mp4")})])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty.mp4"):
        proc([_user({"type": "video", "video": str(empty)})])
    with pytest.raises(MediaError, match="conversation 0, message 0, part 0"):
        proc([_user({"type": "audio", "audio": b"not audio at all"})])


def test_short_audio_is_padded_not_an_error(tiny, tmp_path):
    import numpy as np
    import soundfile as sf
    _, proc = tiny
    path = tmp_path / "blip.wav"
    sf.write(path, np.full(1600, 0.1, dtype=np.float32), 16000)  # 0.1 s
    batch = proc([_user({"type": "audio", "audio": str(path)}, {"type": "text", "text": "?"})])
    assert batch["input_features"].shape == (1, 3, 1, 128, 204)
    assert batch["media_info"][0][0].duration == pytest.approx(0.1, abs=1e-3)


def test_generation_prompt_after_assistant_is_an_error(tiny):
    _, proc = tiny
    with pytest.raises(InputError, match="last message is the assistant's"):
        proc([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], add_generation_prompt=True)


def test_system_prompt_override_and_system_message(tiny):
    from dataclasses import replace
    _, proc = tiny
    short = GroundingGPTProcessor(proc.tokenizer, replace(proc.config, system_prompt="Be brief."))
    text = short.tokenizer.decode(short([{"role": "user", "content": "Hi"}])["input_ids"][0])
    assert text == "<s>Be brief. USER: Hi ASSISTANT:"
    conv = [{"role": "system", "content": "Custom."}, {"role": "user", "content": "Hi"}]
    assert proc.tokenizer.decode(proc(conv)["input_ids"][0]) == "<s>Custom. USER: Hi ASSISTANT:"


class _SettingSpy:
    """Stands in for a fast tokenizer's Rust tokenizer and records every change of a setting."""

    def __init__(self, real):
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "changes", [])

    def __getattr__(self, name):
        return getattr(self._real, name)

    def __setattr__(self, name, value):
        self.changes.append((name, value))
        setattr(self._real, name, value)


def test_encoding_never_changes_a_tokenizer_setting_after_construction(tiny):
    # Threads share the processor (the server's media pool, the web page): a fast tokenizer
    # whose split_special_tokens setting one thread changes while another encodes raises
    # "Already borrowed". Everything that changes it happens in the constructor.
    _, built = tiny
    processor = GroundingGPTProcessor(built.tokenizer, built.config)
    spy = _SettingSpy(processor.tokenizer._tokenizer)
    processor.tokenizer._tokenizer = spy
    try:
        conv = [{"role": "user", "content": "Hi <image> </s>"}, {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "Again"}, {"role": "assistant", "content": "Yes."}]
        processor([conv])
        processor([conv], add_generation_prompt=False)
    finally:
        processor.tokenizer._tokenizer = spy._real
    assert spy.changes == []

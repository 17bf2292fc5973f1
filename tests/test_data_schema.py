"""The unified JSONL schema: validation, reading / writing, the LLaVA-style converter."""

from __future__ import annotations

import json

import pytest

from conftest import make_image
from groundinggpt.data import DataError, Sample, from_llava_style, read_jsonl, write_jsonl
from groundinggpt.errors import InputError
from groundinggpt.grounding import Box, original_to_square, parse_boxes


def rec_sample(i: int = 0, **over) -> dict:
    d = {
        "id": f"rec-{i}", "task": "rec", "stage": 2, "source": "refcoco",
        "messages": [
            {"role": "user", "content": [{"type": "image", "image": "img/a.png"},
                                         {"type": "text", "text": "Output the coordinate of the red box."}]},
            {"role": "assistant", "content": "[0.104, 0.125, 0.427, 0.484]"},
        ],
        "meta": None,
    }
    d.update(over)
    return d


def test_round_trip_and_media(tmp_path):
    s = Sample.from_dict(rec_sample())
    assert s.media() == [("image", "img/a.png")]
    assert s.has_answer
    path = write_jsonl([s, rec_sample(1)], tmp_path / "d" / "train.jsonl")
    back = read_jsonl(path)
    assert [b.to_dict() for b in back] == [s.to_dict(), Sample.from_dict(rec_sample(1)).to_dict()]


def test_media_order_across_messages():
    d = rec_sample(messages=[
        {"role": "user", "content": [{"type": "video", "video": "v.mp4"}, {"type": "text", "text": "a"},
                                     {"type": "audio", "audio": "s.wav"}]},
        {"role": "assistant", "content": "x"},
        {"role": "user", "content": [{"type": "image", "image": "i.png"}]},
        {"role": "assistant", "content": "y"},
    ])
    assert Sample.from_dict(d).media() == [("video", "v.mp4"), ("audio", "s.wav"), ("image", "i.png")]


@pytest.mark.parametrize("change, field", [
    ({"messages": []}, "'messages' must be a non-empty list"),
    ({"id": ""}, "'id'"),
    ({"task": 3}, "'task'"),
    ({"stage": "2"}, "'stage'"),
    ({"stage": True}, "'stage'"),
    ({"meta": []}, "'meta'"),
    ({"messages": [{"role": "bot", "content": "x"}]}, "'messages[0].role'"),
    ({"messages": [{"role": "user", "content": [{"type": "image"}]}]}, "'messages[0].content[0].image'"),
    ({"messages": [{"role": "user", "content": [{"type": "gif", "gif": "a"}]}]}, "'messages[0].content[0].type'"),
    ({"messages": [{"role": "assistant", "content": [{"type": "image", "image": "a"}]}]}, "user messages"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "s"}]}, "only come first"),
])
def test_validation_names_the_field(change, field):
    with pytest.raises(DataError) as err:
        Sample.from_dict(rec_sample(**change), "train.jsonl:17")
    assert str(err.value).startswith("train.jsonl:17: ")
    assert field in str(err.value)
    assert isinstance(err.value, InputError)


def test_unknown_field_is_an_error():
    d = rec_sample()
    d["mesages"] = d.pop("messages")
    with pytest.raises(DataError, match="unknown field.*mesages"):
        Sample.from_dict(d)


def test_read_jsonl_reports_file_and_line(tmp_path):
    path = tmp_path / "train.jsonl"
    good = json.dumps(rec_sample(0))
    path.write_text(good + "\n\n" + '{"id": "x", "task": \n' + json.dumps(rec_sample(2, messages=[])) + "\n")
    with pytest.raises(DataError) as err:
        read_jsonl(path)
    errors = err.value.errors
    assert len(errors) == 2  # every line was checked, not just the first bad one
    assert errors[0].startswith(f"{path}:3: invalid JSON")
    assert errors[0].endswith("at column 21)")  # the end of the cut line, where the value is missing
    assert errors[1] == f"{path}:4: field 'messages' must be a non-empty list"


def test_blank_lines_skipped_and_duplicates_rejected(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("\n" + json.dumps(rec_sample(0)) + "\n   \n")
    assert [s.id for s in read_jsonl(a)] == ["rec-0"]
    b.write_text(json.dumps(rec_sample(1)) + "\n" + json.dumps(rec_sample(0)) + "\n")
    with pytest.raises(DataError, match=r"b.jsonl:2: field 'id' 'rec-0' is a duplicate \(first at .*a.jsonl:2\)"):
        read_jsonl([a, b])
    with pytest.raises(FileNotFoundError):
        read_jsonl(tmp_path / "missing.jsonl")


def test_llava_style_markers_become_parts():
    rec = {"id": 7, "video": "v/clip.mp4", "conversations": [
        {"from": "human", "value": "Look: <video>\nWhen does the dog jump?"},
        {"from": "gpt", "value": "The dog jumps in {0.20, 0.45}."}]}
    s = from_llava_style(rec, "llava.json:1", task="temporal_grounding", stage=2, source="didemo")
    assert s.id == "7" and s.task == "temporal_grounding" and s.stage == 2
    assert s.messages[0]["content"] == [{"type": "text", "text": "Look:"}, {"type": "video", "video": "v/clip.mp4"},
                                        {"type": "text", "text": "When does the dog jump?"}]
    assert s.messages[1] == {"role": "assistant", "content": "The dog jumps in {0.20, 0.45}."}
    assert s.meta is None


def test_llava_style_extra_keys_are_kept_in_meta():
    rec = {"id": "e", "image": "i.png", "dataset": "refcoco", "conversations": [
        {"from": "human", "value": "<image>\nWhere is the dog?"},
        {"from": "gpt", "value": "[0.1, 0.2, 0.3, 0.4]", "weight": 0.5, "markdown": False}]}
    s = from_llava_style(rec)
    assert s.meta == {"llava": {"dataset": "refcoco", "conversations": {"1": {"weight": 0.5, "markdown": False}}}}
    assert Sample.from_dict(s.to_dict()) == s  # and they survive a round trip through the schema


def test_llava_style_sound_and_missing_marker():
    rec = {"id": "a1", "image": "i.png", "sound": "s.wav", "conversations": [
        {"from": "human", "value": "<sound>\nWhere is the sound from?"}, {"from": "gpt", "value": "[0.1, 0.2, 0.3, 0.4]"}]}
    s = from_llava_style(rec)
    # the image had no marker: it goes first (LLaVA's rule), the sound stays where its marker was
    assert s.media() == [("image", "i.png"), ("audio", "s.wav")]


@pytest.mark.parametrize("rec, match", [
    ({"id": 1, "conversations": [{"from": "human", "value": "<image> hi"}, {"from": "gpt", "value": "x"}]},
     "no image file"),
    ({"id": 1, "image": "a", "conversations": [{"from": "human", "value": "<image><image>"}, {"from": "gpt", "value": "x"}]},
     "second <image>"),
    ({"id": 1, "image": "a", "conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "<image>"}]},
     "only human turns"),
    ({"image": "a", "conversations": []}, "'id'"),
    ({"id": 1, "conversations": [{"from": "robot", "value": "x"}]}, "conversations\\[0\\]"),
])
def test_llava_style_errors(rec, match):
    with pytest.raises(DataError, match=match):
        from_llava_style(rec, "x.json:3")


def test_llava_style_square_boxes_are_converted(tmp_path):
    make_image(96, 64).save(tmp_path / "a.png")
    original = Box(0.1, 0.2, 0.5, 0.75)
    square = original_to_square(original, 96, 64)
    text = f"the box[{square.x1}, {square.y1}, {square.x2}, {square.y2}]"
    rec = {"id": 1, "image": "a.png", "conversations": [{"from": "human", "value": "<image>\nwhere?"},
                                                          {"from": "gpt", "value": text}]}
    kept = from_llava_style(rec)
    assert parse_boxes(kept.messages[1]["content"])[0] == square  # default: boxes left as they are
    conv = from_llava_style(rec, boxes_frame="square", media_root=tmp_path)
    back = parse_boxes(conv.messages[1]["content"])[0]
    assert back.as_list() == pytest.approx(original.as_list(), abs=1e-3)
    with pytest.raises(ValueError, match="media_root"):
        from_llava_style(rec, boxes_frame="square")


@pytest.mark.parametrize("answer, shown", [
    ("the red box[12, 30, 55, 60]", "box [12, 30, 55, 60]"),            # pixels, not relative
    ("[0.2, 0.3, 1.5, 0.9]", "box [0.2, 0.3, 1.5, 0.9]"),               # outside the image
    ("[-0.2, 0.3, 0.5, 0.9]", "box [-0.2, 0.3, 0.5, 0.9]"),
    ("[0.8, 0.3, 0.2, 0.9]", "box [0.8, 0.3, 0.2, 0.9]"),               # x1 > x2
    ("[0.2, 0.3, 0.2, 0.9]", "box [0.2, 0.3, 0.2, 0.9]"),               # no width
    ("it happens at {0.80, 0.20}.", "span {0.80, 0.20}"),               # t1 > t2
    ("it happens at {12.5, 30}.", "span {12.5, 30}"),                   # seconds, not fractions
])
def test_coordinates_in_data_must_be_valid_as_written(answer, shown):
    d = rec_sample()
    d["messages"][1]["content"] = answer
    with pytest.raises(DataError) as err:
        Sample.from_dict(d, "train.jsonl:3")
    message = str(err.value)
    assert message.startswith("train.jsonl:3: field 'messages[1].content' holds " + shown), message
    assert "not pixels" in message
    # in a list of parts, and in the user's question, the same
    d = rec_sample()
    d["messages"][0]["content"][1]["text"] = f"What is in {answer}?"
    with pytest.raises(DataError, match=r"messages\[0\]\.content\[1\]\.text"):
        Sample.from_dict(d, "train.jsonl:3")


def test_valid_edge_coordinates_pass():
    d = rec_sample()
    d["messages"][1]["content"] = "the box[0, 0, 1, 1] from {0.0, 1.0} and an instant {0.5, 0.5}"
    assert Sample.from_dict(d).messages[1]["content"].startswith("the box[0, 0, 1, 1]")


def test_non_utf8_and_lone_surrogates_are_reported_at_their_line(tmp_path):
    path = tmp_path / "mixed.jsonl"
    lines = [
        b"\xef\xbb\xbf" + json.dumps(rec_sample(0)).encode(),                          # BOM: fine
        json.dumps(rec_sample(1)).replace("red box", "caf\u00e9").encode("latin-1"),     # Latin-1
        json.dumps(rec_sample(2)).replace("red box", "\\ud800 box").encode(),           # half a pair
        json.dumps(rec_sample(3)).replace("red box", "\\ud83d\\ude00 box").encode(),    # a whole pair: fine
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(DataError) as err:
        read_jsonl(path)
    assert err.value.errors == [
        f"{path}:2: not valid UTF-8 (byte 0xe9 at byte {lines[1].index(b'caf') + 4} of the line); "
        "expected a UTF-8 text file",
        f"{path}:3: holds a lone surrogate escape (such as \\ud800), which is not text; expected valid Unicode",
    ]
    path.write_bytes(lines[0] + b"\n" + lines[3] + b"\n")
    assert [s.id for s in read_jsonl(path)] == ["rec-0", "rec-3"]


def test_llava_style_marker_in_a_later_turn_moves_to_the_first():
    s = from_llava_style({"id": "a", "image": "dog.jpg", "conversations": [
        {"from": "human", "value": "Where is the dog?"}, {"from": "gpt", "value": "the dog[0.100, 0.200, 0.500, 0.900]"},
        {"from": "human", "value": "<image>\nAnd now?"}, {"from": "gpt", "value": "the dog[0.100, 0.200, 0.500, 0.900]"},
    ]}, "r.json:0")
    assert s.messages[0]["content"] == [{"type": "image", "image": "dog.jpg"},
                                        {"type": "text", "text": "Where is the dog?"}]
    assert s.messages[2]["content"] == [{"type": "text", "text": "And now?"}]
    # so both answers are converted in the same (the image's) frame
    only_marker = from_llava_style({"id": "b", "image": "dog.jpg", "conversations": [
        {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"},
        {"from": "human", "value": "<image>"}, {"from": "gpt", "value": "A dog."}]}, "r.json:1")
    assert only_marker.messages[2]["content"] == [{"type": "text", "text": ""}]
    assert only_marker.messages[0]["content"][0] == {"type": "image", "image": "dog.jpg"}


def test_a_folder_given_as_data_is_named_as_such(tmp_path):
    with pytest.raises(FileNotFoundError, match="is a folder; expected a JSONL data file"):
        read_jsonl(tmp_path)
    with pytest.raises(FileNotFoundError, match="data file not found"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_duplicate_keys_and_empty_user_turns_are_refused(tmp_path):
    path = tmp_path / "d.jsonl"
    good = json.dumps(rec_sample(0))
    twice = '{"id": "a", "id": "b", ' + json.dumps(rec_sample(1))[1:]
    empty = rec_sample(2)
    empty["messages"][0]["content"] = []
    path.write_text("\n".join([good, twice, json.dumps(empty)]) + "\n")
    with pytest.raises(DataError) as err:
        read_jsonl(path)
    assert err.value.errors[0] == f"{path}:2: key 'id' appears twice in one object; JSON readers disagree on " \
                                  "which one wins, so give it once"
    assert err.value.errors[1] == (f"{path}:3: field 'messages[0].content' is an empty list; a user message needs "
                                   "at least one part")

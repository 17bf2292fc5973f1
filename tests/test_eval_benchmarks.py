"""Tiny benchmark files in each published format (builders shared by the eval tests),
plus the readers that the runner adds on top of formats.py (video QA, synthetic)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import make_image, make_video_frames
from groundinggpt.eval import formats
from groundinggpt.eval.task_synthetic import read_synthetic


# ---------------------------------------------------------------------------- builders
def build_refcoco(root: Path) -> list[str]:
    """3 val expressions on 2 images (one very wide, one tall) + 1 train ref; → CLI flags.

    Ground truth (relative to the original image):
      0_100, 0_101 → image 42 (200×50): (0.1, 0.2, 0.4, 0.8)
      1_102        → image 7 (60×90):   (0.1, 0.1, 0.6, 0.6)
    """
    images = root / "train2014"
    images.mkdir(parents=True)
    make_image(200, 50, box=(20, 10, 80, 40)).save(images / "COCO_train2014_000000000042.jpg")
    make_image(60, 90, box=(6, 9, 36, 54), colour=(30, 30, 220)).save(images / "COCO_train2014_000000000007.jpg")

    def ref(ref_id, ann_id, image_id, split, sents):
        return {"ref_id": ref_id, "ann_id": ann_id, "image_id": image_id, "split": split, "category_id": 1,
                "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg",
                "sentences": [{"sent": s, "raw": s, "tokens": s.split(), "sent_id": i} for s, i in sents]}

    refs = [ref(0, 10, 42, "val", [("red box", 100), ("left red thing", 101)]),
            ref(1, 11, 7, "val", [("blue box", 102)]),
            ref(2, 12, 7, "train", [("ignored", 103)])]
    (root / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    instances = {
        "images": [{"id": 42, "file_name": "COCO_train2014_000000000042.jpg", "width": 200, "height": 50},
                   {"id": 7, "file_name": "COCO_train2014_000000000007.jpg", "width": 60, "height": 90}],
        "annotations": [{"id": 10, "image_id": 42, "bbox": [20, 10, 60, 30], "category_id": 1},
                        {"id": 11, "image_id": 7, "bbox": [6, 9, 30, 45], "category_id": 1},
                        {"id": 12, "image_id": 7, "bbox": [0, 0, 10, 10], "category_id": 1}],
    }
    (root / "instances.json").write_text(json.dumps(instances))
    return ["--refs", str(root / "refs(unc).p"), "--instances", str(root / "instances.json"),
            "--images", str(images), "--split", "val"]


def build_charades(root: Path, csv: bool = True) -> list[str]:
    """2 videos of 2 s (12 frames at 6 fps), 3 queries: VID1_0 [0,1] s, VID1_1 [0.5,2] s, VID2_0 [0.2,1.2] s."""
    from groundinggpt.media.video import write_video

    videos = root / "videos"
    videos.mkdir(parents=True)
    for vid in ("VID1", "VID2"):
        write_video(videos / f"{vid}.mp4", make_video_frames(), fps=6)
    (root / "charades_sta_test.txt").write_text(
        "VID1 0.0 1.0##person opens the door.\nVID1 0.5 2.0##Person sits on a chair.\n"
        "VID2 0.2 1.2##person walks away.\n")
    flags = ["--annotations", str(root / "charades_sta_test.txt"), "--videos", str(videos)]
    if csv:
        (root / "Charades_v1_test.csv").write_text("id,subject,length\nVID1,A,2.0\nVID2,B,2.0\n")
        flags += ["--durations", str(root / "Charades_v1_test.csv")]
    return flags


def build_pope(root: Path) -> list[str]:
    """3 questions (labels yes, no, no) on 2 images, adversarial split from the file name."""
    images = root / "val2014"
    images.mkdir(parents=True)
    make_image(80, 60).save(images / "a.jpg")
    make_image(64, 64, colour=(20, 200, 20)).save(images / "b.jpg")
    rows = [{"question_id": 1, "image": "a.jpg", "text": "Is there a red box in the image?", "label": "yes"},
            {"question_id": 2, "image": "a.jpg", "text": "Is there a dog in the image?", "label": "no"},
            {"question_id": 3, "image": "b.jpg", "text": "Is there a cat in the image?", "label": "no"}]
    path = root / "coco_pope_adversarial.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return ["--questions", str(path), "--images", str(images)]


def build_vqav2(root: Path) -> list[str]:
    """2 questions: q 11 (10 × "2"), q 12 (2 × "blue", 8 × "red")."""
    images = root / "val2014"
    images.mkdir(parents=True)
    make_image(72, 48).save(images / "COCO_val2014_000000000005.jpg")
    questions = {"data_subtype": "val2014", "questions": [
        {"image_id": 5, "question": "How many boxes are there?", "question_id": 11},
        {"image_id": 5, "question": "What colour is the box?", "question_id": 12}]}

    def answers(values):
        return [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(values)]

    annotations = {"annotations": [
        {"question_id": 11, "image_id": 5, "answers": answers(["2"] * 10), "multiple_choice_answer": "2",
         "answer_type": "number", "question_type": "how many"},
        {"question_id": 12, "image_id": 5, "answers": answers(["blue"] * 2 + ["red"] * 8),
         "multiple_choice_answer": "red", "answer_type": "other", "question_type": "what color is the"}]}
    (root / "questions.json").write_text(json.dumps(questions))
    (root / "annotations.json").write_text(json.dumps(annotations))
    return ["--questions", str(root / "questions.json"), "--annotations", str(root / "annotations.json"),
            "--images", str(images)]


def write_tone(path: Path, seconds: float = 1.0, hz: float = 440.0) -> None:
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32), 16000)


def build_vggss(root: Path) -> list[str]:
    """2 clips: clipA_000010 box (0.25, 0.25, 0.75, 0.75); clipB_000020 two boxes."""
    frames, audio = root / "frames", root / "audio"
    frames.mkdir(parents=True)
    audio.mkdir()
    for name in ("clipA_000010", "clipB_000020"):
        make_image(96, 64).save(frames / f"{name}.jpg")
        write_tone(audio / f"{name}.wav")
    data = [{"file": "clipA_000010", "class": "dog barking", "bbox": [[0.25, 0.25, 0.75, 0.75]]},
            {"file": "clipB_000020", "class": "playing violin",
             "bbox": [[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]}]
    (root / "vggss.json").write_text(json.dumps(data))
    return ["--annotations", str(root / "vggss.json"), "--images", str(frames), "--audio", str(audio)]


def build_activitynet_qa(root: Path) -> list[str]:
    """2 questions (ActivityNet-QA shape); videos named v_<video_name>.mp4 as in ActivityNet."""
    from groundinggpt.media.video import write_video

    videos = root / "videos"
    videos.mkdir(parents=True)
    write_video(videos / "v_abc.mp4", make_video_frames(), fps=6)
    write_video(videos / "xyz.mkv", make_video_frames(), fps=6)
    q = [{"video_name": "abc", "question": "what animal is shown", "question_id": "v_abc_0"},
         {"video_name": "xyz", "question": "what colour is the wall", "question_id": "v_xyz_0"}]
    a = [{"answer": "dog", "type": 5, "question_id": "v_abc_0"},
         {"answer": "red", "type": 4, "question_id": "v_xyz_0"}]
    (root / "test_q.json").write_text(json.dumps(q))
    (root / "test_a.json").write_text(json.dumps(a))
    return ["--questions", str(root / "test_q.json"), "--answers", str(root / "test_a.json"),
            "--videos", str(videos)]


def build_synthetic(root: Path) -> list[str]:
    """3 records: a box (rec), a span (temporal_grounding), an answer (count)."""
    from groundinggpt.media.video import write_video

    (root / "images").mkdir(parents=True)
    (root / "videos").mkdir()
    make_image(64, 32, box=(16, 8, 32, 24)).save(root / "images" / "0.png")
    write_video(root / "videos" / "0.mp4", make_video_frames(), fps=6)
    records = [
        {"id": "rec-0", "task": "rec",
         "messages": [{"role": "user", "content": [{"type": "image", "image": "images/0.png"},
                                                   {"type": "text", "text": "Output the coordinate of the red box."}]},
                      {"role": "assistant", "content": "The red box[0.250, 0.250, 0.500, 0.750]."}],
         "meta": {"box": [0.25, 0.25, 0.5, 0.75], "image_size": [64, 32]}},
        {"id": "tg-0", "task": "temporal_grounding",
         "messages": [{"role": "user", "content": [{"type": "video", "video": "videos/0.mp4"},
                                                   {"type": "text", "text": "When does it turn red?"}]}],
         "meta": {"span": [0.25, 0.75], "duration": 2.0}},
        {"id": "count-0", "task": "count",
         "messages": [{"role": "user", "content": [{"type": "image", "image": "images/0.png"},
                                                   {"type": "text", "text": "How many boxes are there?"}]}],
         "meta": {"answer": "one"}},
    ]
    path = root / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return ["--data", str(path)]


def write_predictions(path: Path, answers: dict) -> Path:
    path.write_text("".join(json.dumps({"id": k, "answer": v}) + "\n" for k, v in answers.items()))
    return path


# ---------------------------------------------------------------------------- reader tests
def test_activitynet_qa_reader(tmp_path):
    build_activitynet_qa(tmp_path)
    qs = formats.read_video_qa(tmp_path / "test_q.json", tmp_path / "test_a.json")
    assert [(q.question_id, q.answer, q.video) for q in qs] == [
        ("v_abc_0", "dog", ("abc", "v_abc")), ("v_xyz_0", "red", ("xyz", "v_xyz"))]


def test_msvd_and_msrvtt_qa_readers(tmp_path):
    (tmp_path / "test_qa.json").write_text(json.dumps(
        [{"answer": "man", "id": 30933, "question": "who is dancing?", "video_id": 1201}]))
    (tmp_path / "youtube_mapping.txt").write_text("-4wsuPCjDBc_5_15 vid1200\nabcDEF_1_9 vid1201\n")
    msvd = formats.read_video_qa(tmp_path / "test_qa.json", video_mapping=tmp_path / "youtube_mapping.txt")
    assert (msvd[0].question_id, msvd[0].video, msvd[0].answer) == ("30933", ("abcDEF_1_9",), "man")
    (tmp_path / "msrvtt.json").write_text(json.dumps(
        [{"answer": "car", "category_id": 3, "id": 7, "question": "what is shown?", "video_id": 7010}]))
    msrvtt = formats.read_video_qa(tmp_path / "msrvtt.json")
    assert msrvtt[0].video[0] == "video7010" and msrvtt[0].answer_type == 3


def test_video_qa_reader_errors(tmp_path):
    build_activitynet_qa(tmp_path)
    with pytest.raises(formats.FormatError, match="no answer"):
        formats.read_video_qa(tmp_path / "test_q.json")
    (tmp_path / "bad.json").write_text(json.dumps([{"question": "q?"}]))
    with pytest.raises(formats.FormatError, match="neither 'video_name' nor 'video_id'"):
        formats.read_video_qa(tmp_path / "bad.json")
    (tmp_path / "map.txt").write_text("only-one-column\n")
    with pytest.raises(formats.FormatError, match="map.txt:1"):
        formats.read_youtube_mapping(tmp_path / "map.txt")


def test_synthetic_reader_resolves_media_and_drops_the_reference_answer(tmp_path):
    build_synthetic(tmp_path)
    recs = read_synthetic(tmp_path / "test.jsonl")
    assert [r["kind"] for r in recs] == ["box", "span", "answer"]
    assert recs[0]["messages"][-1]["role"] == "user"  # the reference answer is not shown
    assert recs[0]["media"] == [("image", str(tmp_path / "images" / "0.png"))]


@pytest.mark.parametrize("line, match", [
    ('{"task": "rec", "messages": [{"role": "user", "content": "hi"}], "meta": {}}', "exactly one of"),
    ('{"task": "rec", "messages": [{"role": "user", "content": "hi"}], "meta": {"box": [1, 2]}}', "4 numbers"),
    ('{"task": "rec", "meta": {"answer": "x"}}', "missing field 'messages'"),
    ("not json", "not JSON"),
])
def test_synthetic_reader_errors(tmp_path, line, match):
    (tmp_path / "t.jsonl").write_text(line + "\n")
    with pytest.raises(formats.FormatError, match=match):
        read_synthetic(tmp_path / "t.jsonl")


def test_each_task_takes_typed_inputs_and_the_command_line_maps_onto_them(tmp_path):
    import argparse
    import dataclasses

    from groundinggpt.errors import InputError
    from groundinggpt.eval.benchmarks.refcoco import RefCOCOInputs
    from groundinggpt.eval.tasks import TaskInputs, get_task, task_names

    for name in task_names():
        cls = get_task(name)
        assert issubclass(cls.Inputs, TaskInputs) and dataclasses.is_dataclass(cls.Inputs), name
        parser = argparse.ArgumentParser()
        cls.add_arguments(parser)
        flags = {a.dest for a in parser._actions if a.dest != "help"}
        assert flags <= {f.name for f in dataclasses.fields(cls.Inputs)}, (name, flags)
    task = get_task("rec")(RefCOCOInputs(refs="refs.p", instances="instances.json"))
    assert task.inputs == RefCOCOInputs("refs.p", "instances.json", None, "val")
    assert get_task("rec")(argparse.Namespace(refs="r", instances="i", split="testA")).inputs.split == "testA"
    with pytest.raises(InputError, match="'refs' is required"):
        get_task("rec")(argparse.Namespace(instances="i"))

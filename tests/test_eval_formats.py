"""Readers of the benchmarks' published file formats (groundinggpt.eval.formats)."""

from __future__ import annotations

import json
import os
import pickle
import struct

import pytest

from groundinggpt.errors import InputError
from groundinggpt.eval import formats as f

# --------------------------------------------------------------------------- helpers


def _py2_pickle(obj) -> bytes:
    """Protocol-2 pickle as Python 2's cPickle writes it: ``bytes`` -> py2 ``str``.

    Emits only the opcodes Python 2 uses for this data (PROTO, EMPTY_LIST/APPEND,
    EMPTY_DICT/SETITEM, SHORT_BINSTRING/BINSTRING, BINUNICODE, BININT, BINFLOAT, STOP).
    """

    def enc(o) -> bytes:
        if isinstance(o, bytes):
            if len(o) < 256:
                return b"U" + bytes([len(o)]) + o
            return b"T" + struct.pack("<i", len(o)) + o
        if isinstance(o, str):
            raw = o.encode("utf-8")
            return b"X" + struct.pack("<I", len(raw)) + raw
        if isinstance(o, bool):
            raise TypeError("not needed")
        if isinstance(o, int):
            return b"J" + struct.pack("<i", o)
        if isinstance(o, float):
            return b"G" + struct.pack(">d", o)
        if isinstance(o, list):
            return b"]" + b"".join(enc(v) + b"a" for v in o)
        if isinstance(o, dict):
            return b"}" + b"".join(enc(k) + enc(v) + b"s" for k, v in o.items())
        raise TypeError(type(o))

    return b"\x80\x02" + enc(obj) + b"."


def _ref(ref_id, ann_id, image_id, split, sents):
    return {
        b"ref_id": ref_id,
        b"ann_id": ann_id,
        b"image_id": image_id,
        b"split": split,
        b"category_id": 1,
        b"file_name": b"COCO_train2014_%012d_%d.jpg" % (image_id, ann_id),
        b"sentences": [
            {b"sent": s, b"raw": raw, b"tokens": s.split(), b"sent_id": sid}
            for s, raw, sid in sents
        ],
    }


@pytest.fixture
def refcoco_files(tmp_path):
    refs = [
        _ref(0, 10, 42, b"val", [(b"left man", "Left man.", 100), (b"man on left", "man on left", 101)]),
        # A Python 2 byte string that is UTF-8 but not ASCII ("caf\xc3\xa9").
        _ref(1, 11, 42, b"testA", [(b"caf\xc3\xa9 sign", "caf\u00e9 sign", 102)]),
        _ref(2, 12, 7, b"train", [(b"dog", "Dog", 103)]),
    ]
    refs_path = tmp_path / "refs(unc).p"
    refs_path.write_bytes(_py2_pickle(refs))
    instances = {
        "images": [
            {"id": 42, "file_name": "COCO_train2014_000000000042.jpg", "width": 640, "height": 480},
            {"id": 7, "file_name": "COCO_train2014_000000000007.jpg", "width": 100, "height": 200},
        ],
        "annotations": [
            {"id": 10, "image_id": 42, "bbox": [64.0, 48.0, 320.0, 240.0], "category_id": 1},
            {"id": 11, "image_id": 42, "bbox": [0, 0, 640, 480], "category_id": 1},
            {"id": 12, "image_id": 7, "bbox": [10, 20, 30, 40], "category_id": 18},
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
    }
    instances_path = tmp_path / "instances.json"
    instances_path.write_text(json.dumps(instances))
    return refs_path, instances_path


# --------------------------------------------------------------------------- RefCOCO


def test_read_refcoco_py2_pickle(refcoco_files, tmp_path):
    refs_path, instances_path = refcoco_files
    samples = f.read_refcoco(refs_path, instances_path, image_root=tmp_path / "train2014")
    assert len(samples) == 4  # one per sentence
    s = samples[0]
    assert (s.ref_id, s.ann_id, s.sent_id, s.image_id, s.split) == (0, 10, 100, 42, "val")
    assert s.expression == "left man" and s.raw_expression == "Left man."
    # The image on disk is instances.json's file name, not the refs' "_<ann>" name.
    assert s.image_file == "COCO_train2014_000000000042.jpg"
    assert s.image_path == os.path.join(str(tmp_path / "train2014"), s.image_file)
    assert (s.width, s.height) == (640, 480)
    assert s.box == (64.0, 48.0, 384.0, 288.0)  # [x, y, w, h] -> [x1, y1, x2, y2]
    assert s.box_rel == pytest.approx((0.1, 0.1, 0.6, 0.6))
    assert samples[2].expression == "caf\u00e9 sign"  # py2 UTF-8 bytes decoded
    assert samples[3].box == (10.0, 20.0, 40.0, 60.0)
    assert samples[3].box_rel == pytest.approx((0.1, 0.1, 0.4, 0.3))
    assert samples[3].category_id == 1


def test_read_refcoco_split_filter(refcoco_files):
    refs_path, instances_path = refcoco_files
    val = f.read_refcoco(refs_path, instances_path, split="val")
    assert [s.sent_id for s in val] == [100, 101] and val[0].image_path is None
    assert [s.sent_id for s in f.read_refcoco(refs_path, instances_path, split="testA")] == [102]
    with pytest.raises(f.FormatError, match=r"no ref has split 'testB'.*'testA', 'train', 'val'"):
        f.read_refcoco(refs_path, instances_path, split="testB")


def test_read_refcoco_python3_pickle_also_loads(tmp_path):
    refs = [{"ref_id": 5, "ann_id": 1, "image_id": 2, "split": "val",
             "sentences": [{"sent": "a cup", "raw": "A cup", "tokens": ["a", "cup"], "sent_id": 9}]}]
    refs_path = tmp_path / "refs(umd).p"
    refs_path.write_bytes(pickle.dumps(refs, protocol=2))
    inst = tmp_path / "instances.json"
    inst.write_text(json.dumps({
        "images": [{"id": 2, "file_name": "COCO_train2014_000000000002.jpg", "width": 10, "height": 10}],
        "annotations": [{"id": 1, "image_id": 2, "bbox": [1, 1, 2, 2], "category_id": 3}],
    }))
    (s,) = f.read_refcoco(refs_path, inst)
    assert s.expression == "a cup" and s.box == (1.0, 1.0, 3.0, 3.0) and s.category_id == 3


def test_refs_pickle_protocol0_as_python2_writes_it(tmp_path):
    # cPickle.dump(refs, f) in Python 2 defaults to protocol 0: S'...' byte strings,
    # V... unicode (raw-unicode-escape), I ints, F floats -- no GLOBAL opcode.
    data = (
        b"(lp0\n(dp1\nS'ref_id'\np2\nI7\nsS'score'\np3\nF0.5\nsS'sentences'\np4\n"
        b"(lp5\n(dp6\nS'sent'\np7\nS'the man'\np8\nsS'raw'\np9\nVThe man \\u00e9\np10\nsasa."
    )
    path = tmp_path / "refs(unc).p"
    path.write_bytes(data)
    assert f.load_refs_pickle(path) == [
        {"ref_id": 7, "score": 0.5, "sentences": [{"sent": "the man", "raw": "The man \u00e9"}]}
    ]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_refs_pickle_with_a_global_is_rejected(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([{"ref_id": 1, "x": _Evil(marker)}], protocol=2))
    with pytest.raises(f.FormatError, match=r"refs\(unc\)\.p: refused to unpickle global '\w+\.system'"):
        f.load_refs_pickle(path)
    assert not marker.exists()
    # Protocol 4 (STACK_GLOBAL) is refused the same way.
    path.write_bytes(pickle.dumps(_Evil(marker), protocol=4))
    with pytest.raises(f.FormatError, match="refused to unpickle global"):
        f.load_refs_pickle(path)
    assert not marker.exists()


def test_refs_pickle_wrong_content(tmp_path):
    path = tmp_path / "refs(unc).p"
    path.write_bytes(b"this is not a pickle")
    with pytest.raises(f.FormatError, match="not a readable pickle"):
        f.load_refs_pickle(path)
    path.write_bytes(pickle.dumps({"ref_id": 1}, protocol=2))
    with pytest.raises(f.FormatError, match="expected a pickled list of ref dicts"):
        f.load_refs_pickle(path)
    with pytest.raises(f.FormatError, match="file not found"):
        f.load_refs_pickle(tmp_path / "missing.p")


def test_read_refcoco_wrong_instances_and_refs(refcoco_files, tmp_path):
    refs_path, instances_path = refcoco_files
    bad = tmp_path / "bad_instances.json"
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(f.FormatError, match=r"bad_instances\.json: missing field 'annotations'"):
        f.read_refcoco(refs_path, bad)
    bad.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(f.FormatError, match=r"ann_id 10 is not in .*bad_instances\.json"):
        f.read_refcoco(refs_path, bad)
    bad_refs = tmp_path / "refs(google).p"
    bad_refs.write_bytes(_py2_pickle([{b"ref_id": 1, b"ann_id": 10}]))
    with pytest.raises(f.FormatError, match=r"refs\(google\)\.p: ref #0: missing field 'image_id'"):
        f.read_refcoco(bad_refs, instances_path)
    assert issubclass(f.FormatError, InputError) and issubclass(f.FormatError, ValueError)


# --------------------------------------------------------------------------- Charades-STA


def test_read_charades_sta_with_csv(tmp_path):
    txt = tmp_path / "charades_sta_test.txt"
    txt.write_text("3MSZA 24.3 30.4##person turn a light on.\n\nAO8RW 0.0 36.0##a person is putting a book on a shelf.\n")
    csv_path = tmp_path / "Charades_v1_test.csv"
    csv_path.write_text(
        "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
        '3MSZA,s1,Bedroom,6,7,Yes,"script, with comma",light,desc,c001 1.0 5.0,32.0\n'
        "AO8RW,s2,Kitchen,5,7,Yes,script,book,desc,,33.5\n"
    )
    samples = f.read_charades_sta(txt, video_info_csv=csv_path, video_root=tmp_path / "videos")
    assert len(samples) == 2
    s = samples[0]
    assert (s.video_id, s.start, s.end, s.duration) == ("3MSZA", 24.3, 30.4, 32.0)
    assert s.sentence == "person turn a light on."
    assert s.video_path == os.path.join(str(tmp_path / "videos"), "3MSZA.mp4")
    assert s.relative_span() == pytest.approx((24.3 / 32.0, 30.4 / 32.0))
    # The second annotation ends after the video: end clipped to the duration.
    assert samples[1].relative_span() == pytest.approx((0.0, 1.0))


def test_read_charades_sta_without_duration_and_with_mapping(tmp_path):
    txt = tmp_path / "charades_sta_test.txt"
    txt.write_text("3MSZA 24.3 30.4##person turn a light on.\n")
    (s,) = f.read_charades_sta(txt)
    assert s.duration is None and s.video_path is None
    with pytest.raises(ValueError, match="no duration"):
        s.relative_span()
    (s,) = f.read_charades_sta(txt, durations={"3MSZA": 40.0})
    assert s.relative_span() == pytest.approx((24.3 / 40, 30.4 / 40))


def test_read_charades_sta_errors(tmp_path):
    txt = tmp_path / "charades_sta_test.txt"
    txt.write_text("3MSZA 24.3 30.4##ok.\n3MSZA 24.3 30.4 person without separator\n")
    with pytest.raises(f.FormatError, match=r"charades_sta_test\.txt:2: .*VIDEOID START END##SENTENCE"):
        f.read_charades_sta(txt)
    txt.write_text("3MSZA start 30.4##bad number.\n")
    with pytest.raises(f.FormatError, match=r"charades_sta_test\.txt:1: START/END"):
        f.read_charades_sta(txt)
    txt.write_text("ZZZZZ 1 2##unknown video.\n")
    csv_path = tmp_path / "Charades_v1_test.csv"
    csv_path.write_text("id,length\n3MSZA,32.0\n")
    with pytest.raises(f.FormatError, match=r"video 'ZZZZZ' has no duration in .*Charades_v1_test\.csv"):
        f.read_charades_sta(txt, video_info_csv=csv_path)
    csv_path.write_text("id,duration\n3MSZA,32.0\n")
    with pytest.raises(f.FormatError, match=r"Charades_v1_test\.csv: missing column 'length'"):
        f.read_charades_durations(csv_path)


# --------------------------------------------------------------------------- POPE


def test_read_pope(tmp_path):
    path = tmp_path / "coco_pope_random.json"
    path.write_text(
        '{"question_id": 1, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a snowboard in the image?", "label": "yes"}\n'
        '{"question_id": 2, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a car in the image?", "label": "no"}\n'
    )
    samples = f.read_pope(path, image_root=tmp_path)
    assert [s.question_id for s in samples] == [1, 2]
    assert samples[0].split == "random" and samples[1].label == "no"
    assert samples[0].question == "Is there a snowboard in the image?"
    assert samples[0].image_path == os.path.join(str(tmp_path), "COCO_val2014_000000310196.jpg")
    assert f.read_pope(path, split="mine")[0].split == "mine"


def test_read_pope_errors(tmp_path):
    path = tmp_path / "coco_pope_adversarial.json"
    path.write_text('{"question_id": 1, "image": "x.jpg", "text": "Is there a cat?"}\n')
    with pytest.raises(f.FormatError, match=r"coco_pope_adversarial\.json:1: missing field 'label'"):
        f.read_pope(path)
    path.write_text('{"question_id": 1, "image": "x.jpg", "text": "q", "label": "maybe"}\n')
    with pytest.raises(f.FormatError, match="expected 'yes' or 'no'"):
        f.read_pope(path)
    path.write_text('[{"question_id": 1}]\n')
    with pytest.raises(f.FormatError, match=r":1: got JSON list"):
        f.read_pope(path)


# --------------------------------------------------------------------------- VQAv2


def _vqa_files(tmp_path, subtype="val2014", with_ann=True):
    q = tmp_path / "questions.json"
    q.write_text(json.dumps({
        "task_type": "Open-Ended", "data_type": "mscoco", "data_subtype": subtype,
        "questions": [
            {"image_id": 42, "question": "How many dogs?", "question_id": 42000},
            {"image_id": 7, "question": "Is it sunny?", "question_id": 7001},
        ],
    }))
    a = tmp_path / "annotations.json"
    if with_ann:
        a.write_text(json.dumps({"annotations": [
            {"question_id": 42000, "image_id": 42, "question_type": "how many", "answer_type": "number",
             "multiple_choice_answer": "2",
             "answers": [{"answer": "2", "answer_confidence": "yes", "answer_id": i + 1} for i in range(10)]},
            {"question_id": 7001, "image_id": 7, "question_type": "is it", "answer_type": "yes/no",
             "multiple_choice_answer": "yes",
             "answers": [{"answer": "yes", "answer_confidence": "maybe", "answer_id": i + 1} for i in range(10)]},
        ]}))
    return q, a


def test_read_vqav2(tmp_path):
    q, a = _vqa_files(tmp_path)
    samples = f.read_vqav2(q, a, image_root=tmp_path / "val2014")
    s = samples[0]
    assert (s.question_id, s.image_id, s.question) == (42000, 42, "How many dogs?")
    assert s.image_file == "COCO_val2014_000000000042.jpg"
    assert s.image_path == os.path.join(str(tmp_path / "val2014"), s.image_file)
    assert s.answers == ("2",) * 10 and s.answer_type == "number" and s.question_type == "how many"
    assert samples[1].multiple_choice_answer == "yes"


def test_read_vqav2_test_dev_without_annotations(tmp_path):
    q, _ = _vqa_files(tmp_path, subtype="test-dev2015", with_ann=False)
    s = f.read_vqav2(q)[1]
    assert s.image_file == "COCO_test2015_000000000007.jpg" and s.answers == () and s.answer_type is None


def test_read_vqav2_errors(tmp_path):
    q, a = _vqa_files(tmp_path)
    a.write_text(json.dumps({"annotations": [{"question_id": 42000, "answers": [{"answer": "2"}]}]}))
    with pytest.raises(f.FormatError, match=r"question_id 7001 has no entry in .*annotations\.json"):
        f.read_vqav2(q, a)
    a.write_text(json.dumps({"annotations": [{"question_id": 42000}]}))
    with pytest.raises(f.FormatError, match=r"annotations\.json: annotations\[0\]: missing field 'answers'"):
        f.read_vqav2(q, a)
    q.write_text(json.dumps([{"image_id": 1}]))
    with pytest.raises(f.FormatError, match=r"questions\.json: expected a JSON object/dict with 'questions'"):
        f.read_vqav2(q)
    q.write_text("{not json")
    with pytest.raises(f.FormatError, match=r"questions\.json: not valid JSON"):
        f.read_vqav2(q)


# --------------------------------------------------------------------------- VGG-SS


def test_read_vggss(tmp_path):
    path = tmp_path / "vggss.json"
    path.write_text(json.dumps([
        {"file": "zpWuikVorYg_000032", "class": "elk bugling", "bbox": [[0.403125, 0.253125, 0.6, 0.75]]},
        {"file": "ORaz32CQ29k_000130", "class": "coyote howling",
         "bbox": [[0.121875, 0.171875, 0.6, 0.853125], [0.765625, 0.275, 0.984375, 0.565625]]},
    ]))
    samples = f.read_vggss(path, frame_root=tmp_path / "frames")
    assert samples[0].file == "zpWuikVorYg_000032" and samples[0].cls == "elk bugling"
    assert samples[0].boxes == ((0.403125, 0.253125, 0.6, 0.75),)
    assert len(samples[1].boxes) == 2
    assert samples[1].frame_path == os.path.join(str(tmp_path / "frames"), "ORaz32CQ29k_000130.jpg")


def test_read_vggss_errors(tmp_path):
    path = tmp_path / "vggss.json"
    path.write_text(json.dumps({"file": "x"}))
    with pytest.raises(f.FormatError, match=r"vggss\.json: got JSON dict; expected a JSON list"):
        f.read_vggss(path)
    path.write_text(json.dumps([{"file": "x", "class": "c", "bbox": [[0, 0, 1]]}]))
    with pytest.raises(f.FormatError, match=r"vggss\.json: entry #0: box \[0, 0, 1\]"):
        f.read_vggss(path)
    path.write_text(json.dumps([{"file": "x", "class": "c"}]))
    with pytest.raises(f.FormatError, match="missing field 'bbox'"):
        f.read_vggss(path)


# --------------------------------------------------------------------------- predictions


def test_read_predictions(tmp_path):
    path = tmp_path / "preds.jsonl"
    path.write_text(
        '{"id": "q1", "answer": "[0.1, 0.2, 0.3, 0.4]"}\n'
        "\n"
        '{"id": 2, "answer": null, "extra": 1}\n'
    )
    preds = f.read_predictions(path)
    assert preds == [f.Prediction("q1", "[0.1, 0.2, 0.3, 0.4]"), f.Prediction(2, None)]
    assert f.predictions_by_id(preds) == {"q1": "[0.1, 0.2, 0.3, 0.4]", "2": None}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": 1, "answer": "a"}\n{"id": 2, "answer": "b"\n', r"preds\.jsonl:2: not a JSON object"),
        ('{"id": 1, "text": "a"}\n', r"preds\.jsonl:1: missing field 'answer' \(found 'text'"),
        ('{"answer": "a"}\n', r"preds\.jsonl:1: missing field 'id'"),
        ('{"id": 1, "answer": 3}\n', r"preds\.jsonl:1: field 'answer' is 3"),
        ('{"id": [1], "answer": "a"}\n', r"preds\.jsonl:1: field 'id' is \[1\]"),
        ('{"id": 1, "answer": "a"}\n{"id": "1", "answer": "b"}\n', r"preds\.jsonl:2: duplicate id '1' \(first on line 1\)"),
        ('"just a string"\n', r"preds\.jsonl:1: got JSON str"),
    ],
)
def test_read_predictions_errors(tmp_path, content, message):
    path = tmp_path / "preds.jsonl"
    path.write_text(content)
    with pytest.raises(f.FormatError, match=message):
        f.read_predictions(path)

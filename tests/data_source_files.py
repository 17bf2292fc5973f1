"""Small files in the publishers' formats, written by the tests (no downloads).

Each writer returns the root folder; the values are chosen so the converted numbers can
be computed by hand (see the assertions in test_data_sources.py).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path


def _w(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def refcoco(root: Path) -> Path:
    refs = [
        {"ref_id": 1, "ann_id": 100, "image_id": 7, "split": "train", "category_id": 1,
         "sentences": [{"sent": "man in red", "raw": "Man in red", "sent_id": 11, "tokens": ["man"]}]},
        {"ref_id": 2, "ann_id": 100, "image_id": 7, "split": "testA", "category_id": 1,
         "sentences": [{"sent": "left guy", "raw": "left guy", "sent_id": 12, "tokens": []}]},
        {"ref_id": 3, "ann_id": 101, "image_id": 7, "split": "train", "category_id": 1,
         "sentences": [{"sent": "far right", "raw": "far right", "sent_id": 13, "tokens": []}]},
        {"ref_id": 4, "ann_id": 100, "image_id": 7, "split": "train", "category_id": 99,
         "sentences": [{"sent": "a thing", "raw": "a thing", "sent_id": 14, "tokens": []}]},
    ]
    root.mkdir(parents=True, exist_ok=True)
    (root / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    _w(root / "instances.json", json.dumps({
        "images": [{"id": 7, "file_name": "COCO_train2014_000000000007.jpg", "width": 640, "height": 480}],
        "annotations": [{"id": 100, "image_id": 7, "bbox": [64, 48, 320, 240], "category_id": 1},
                        {"id": 101, "image_id": 7, "bbox": [600, 400, 100, 100], "category_id": 1}],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}))
    return root


def visual_genome(root: Path) -> Path:
    _w(root / "image_data.json", json.dumps([
        {"image_id": 1, "width": 800, "height": 600, "url": "https://cs.stanford.edu/people/rak248/VG_100K_2/1.jpg",
         "coco_id": None, "flickr_id": None}]))
    _w(root / "region_descriptions.json", json.dumps([{"id": 1, "regions": [
        {"region_id": 10, "image_id": 1, "phrase": "a red car", "x": 80, "y": 60, "width": 400, "height": 300},
        {"region_id": 11, "image_id": 1, "phrase": "sky", "x": 700, "y": 0, "width": 200, "height": 100},
        {"region_id": 12, "image_id": 1, "phrase": "edge", "x": 0, "y": 0, "width": 800.5, "height": 10}]}]))
    return root


def didemo(root: Path, durations: bool = True) -> Path:
    _w(root / "train_data.json", json.dumps([
        {"annotation_id": 5, "description": "The dog jumps into the water.", "video": "a_b.mov",
         "times": [[1, 2], [1, 2], [1, 3], [4, 5]], "num_segments": 6, "download_link": "x"},
        {"annotation_id": 6, "description": "the end", "video": "a_b.mov", "times": [[5, 5]] * 4, "num_segments": 6},
        {"annotation_id": 7, "description": "bad", "video": "c.mov", "times": [[2, 6]], "num_segments": 6}]))
    if durations:
        _w(root / "durations.json", json.dumps({"a_b.mov": 28.0}))
    return root


def charades(root: Path) -> Path:
    _w(root / "Charades_v1_train.csv",
       "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
       "ABC12,s,Kitchen,6,7,Yes,x,a;b,d,c001 1.0 2.0,30.0\n")
    _w(root / "charades_sta_train.txt",
       "ABC12 1.5 7.2##a person opens a door.\n"
       "ABC12 20.0 31.0##Person sits down.\n"
       "ABC12 35.0 36.0##person leaves.\n"
       "ZZZ99 1 2##unknown video.\n"
       "ABC12 garbage\n")
    return root


def vggss(root: Path) -> Path:
    _w(root / "vggss.json", json.dumps([
        {"file": "abc_000010", "class": "dog barking", "bbox": [[0.1, 0.2, 0.5, 0.6], [-0.05, 0.0, 0.3, 1.02]]},
        {"file": "def_000020", "class": "car", "bbox": [[0.5, 0.5, 0.5, 0.9]]}]))
    return root


def hirest(root: Path) -> Path:
    _w(root / "all_data_train.json", json.dumps({"Make Tea": {
        "v1.mp4": {"relevant": True, "clip": True, "v_duration": 200.0, "bounds": [20, 120],
                   "steps": [{"index": 0, "heading": "Boil water", "absolute_bounds": [20, 50]}]},
        "v2.mp4": {"relevant": True, "clip": False, "v_duration": 100.0, "bounds": [0, 0], "steps": []}}}))
    return root


def flickr30k(root: Path) -> Path:
    _w(root / "train.txt", "42\n")
    _w(root / "Sentences/42.txt",
       "[/EN#1/people A man] holds [/EN#2/other two kites] in [/EN#3/scene the park] .\n"
       "[/EN#2/other Kites] fly .\n")
    _w(root / "Annotations/42.xml", """<annotation><filename>42.jpg</filename>
<size><width>500</width><height>400</height><depth>3</depth></size>
<object><name>1</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>250</xmax><ymax>200</ymax></bndbox></object>
<object><name>2</name><bndbox><xmin>101</xmin><ymin>101</ymin><xmax>200</xmax><ymax>200</ymax></bndbox></object>
<object><name>2</name><bndbox><xmin>151</xmin><ymin>51</ymin><xmax>300</xmax><ymax>150</ymax></bndbox></object>
<object><name>3</name><nobndbox>0</nobndbox><scene>1</scene></object>
</annotation>""")
    return root


def vcr(root: Path) -> Path:
    _w(root / "vcr1images/movie1/frame1.json", json.dumps(
        {"boxes": [[10, 20, 110, 220, 0.99], [0, 0, 50, 50, 0.9]], "segms": [], "names": ["person", "cup"],
         "width": 200, "height": 400}))
    rec = {"movie": "movie1", "objects": ["person", "cup"], "img_fn": "movie1/frame1.jpg",
           "metadata_fn": "movie1/frame1.json", "question": ["What", "is", [0], "doing", "?"],
           "answer_choices": [["Sleeping", "."], [[0], "drinks", "from", [1], "."]], "answer_label": 1,
           "rationale_choices": [["No", "."], [[0], "holds", [1], "to", "his", "mouth", "."]],
           "rationale_label": 1, "annot_id": "train-0", "question_number": 0}
    test = dict(rec, annot_id="test-1", answer_label=None, rationale_label=None)
    _w(root / "train.jsonl", json.dumps(rec) + "\n" + json.dumps(test) + "\n{not json\n")
    return root


def activitynet(root: Path) -> Path:
    _w(root / "train.json", json.dumps({
        "v_x": {"duration": 100.0, "timestamps": [[0, 25.0], [30, 100.4]], "sentences": ["A man enters.", " He lifts a bar."]},
        "v_y": {"duration": 50.0, "timestamps": [[10, 5]], "sentences": ["Backwards."]}}))
    return root


def llava_cc3m(root: Path) -> Path:
    _w(root / "chat.json", json.dumps([
        {"id": "GCC_train_000000001", "image": "GCC_train_000000001.jpg",
         "conversations": [{"from": "human", "value": "Give a brief description of the image.\n<image>"},
                           {"from": "gpt", "value": "a dog on a beach"}]},
        {"id": "GCC_train_000000002", "conversations": "oops"}]))
    return root


def llava_mix(root: Path) -> Path:
    from PIL import Image

    (root / "coco").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (200, 100)).save(root / "coco/x.jpg")
    _w(root / "llava_v1_5_mix665k.json", json.dumps([
        {"id": "a1", "image": "coco/x.jpg", "conversations": [
            {"from": "human", "value": "<image>\nPlease provide the bounding box coordinate of the region this "
                                       "sentence describes: dog."},
            {"from": "gpt", "value": "[0.25, 0.25, 0.75, 0.50]"}]},
        {"id": "t1", "model": "", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]},
        {"id": "a2", "image": "coco/x.jpg", "conversations": [
            {"from": "human", "value": "<image>\nWhere is the bird?"}, {"from": "gpt", "value": "[0.1, 0.0, 0.2, 0.1]"}]},
        {"id": 17, "image": "coco/x.jpg", "conversations": [
            {"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A box."}]}]))
    return root


def wavcaps(root: Path) -> Path:
    _w(root / "json_files/SoundBible/sb_final.json", json.dumps({"num_captions_per_audio": 1, "data": [
        {"title": "Dog", "description": "dog", "author": "x", "href": "h", "caption": "a dog barks twice",
         "id": "123", "duration": 3.2, "audio": "wav_path", "download_link": "l"}]}))
    _w(root / "json_files/AudioSet_SL/as_final.json", json.dumps({"data": [
        {"id": "Yabc.wav", "caption": "Rain falls on a roof.", "audio": "wav_path", "duration": 10.0},
        {"id": "Ynocap.wav", "audio": "wav_path"}]}))
    for sub in ("BBC_Sound_Effects", "FreeSound"):
        _w(root / f"json_files/{sub}/x.json", json.dumps({"data": []}))
    return root


def clotho(root: Path) -> Path:
    _w(root / "clotho_captions_development.csv",
       "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
       "rain 1.wav,rain falls,water drips,a storm,rain on tin, drops fall \n")
    return root


def videochat(root: Path) -> Path:
    _w(root / "videochat_instruct_11k.json", json.dumps([
        {"video": "000001_000050/1066674784.mp4", "QA": [
            {"i": "", "q": "What is the man doing?", "a": "He is cooking."},
            {"i": "", "q": "Where?", "a": "In a kitchen."}]}]))
    return root


def valley(root: Path) -> Path:
    _w(root / "chat.json", json.dumps([
        {"id": "v1", "video": "1066674784", "conversations": [
            {"from": "human", "value": "<video>\nDescribe the video."}, {"from": "gpt", "value": "A man cooks."}]},
        {"id": "v2", "video": "x.mp4", "source": "jukin", "conversations": [
            {"from": "human", "value": "What happens?\n<video>"}, {"from": "gpt", "value": "A crash."}]}]))
    return root

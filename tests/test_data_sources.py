"""Every converter on small files in its publisher's format: hand-computed boxes and spans,
counts, rejections (reason + location), strict mode, resume, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import data_source_files as files
from groundinggpt.data import read_jsonl
from groundinggpt.data.convert import convert_source, partial_path, rejected_path
from groundinggpt.data.sources import SOURCES, stage_of
from groundinggpt.data.sources.base import ConversionError
from groundinggpt.data.sources.didemo import consensus


def run(name, root, tmp_path, check_media=False, **kw):
    out = tmp_path / f"{name}.jsonl"
    report = convert_source(name, root, out, check_media=check_media, **kw)
    samples = {s.id: s for s in read_jsonl(out)}
    rejected = [json.loads(line) for line in rejected_path(out).read_text().splitlines()]
    return samples, report, rejected


def user_text(s):
    return next(p["text"] for p in s.messages[0]["content"] if p["type"] == "text")


def answer(s, k=1):
    return s.messages[k]["content"]


def media(s):
    return s.media()


def test_registry_covers_table10_with_stages():
    assert {stage_of(n) for n in SOURCES} == {1, 2, 3}
    assert stage_of("valley-instruct") == 3 and stage_of("valley-pretrain") == 1
    assert stage_of("refcoco") == stage_of("didemo") == stage_of("vggss") == 2


def test_refcoco_rec_reg_boxes_split_and_outside(tmp_path):
    root = files.refcoco(tmp_path / "refcoco")
    s, rep, rej = run("refcoco", root, tmp_path)
    # bbox [64, 48, 320, 240] (x, y, w, h) on 640x480 -> [64/640, 48/480, 384/640, 288/480]
    assert answer(s["refcoco-rec-11"]) == "[0.100, 0.100, 0.600, 0.600]"
    assert "man in red" in user_text(s["refcoco-rec-11"])
    assert "[0.100, 0.100, 0.600, 0.600]" in user_text(s["refcoco-reg-11"])
    assert answer(s["refcoco-reg-11"]) == "Man in red."
    assert media(s["refcoco-rec-11"]) == [("image", "train2014/COCO_train2014_000000000007.jpg")]
    assert s["refcoco-rec-11"].stage == 2 and s["refcoco-rec-11"].source == "refcoco"
    assert s["refcoco-rec-11"].meta["ann_id"] == 100
    assert "refcoco-rec-12" not in s            # testA is a benchmark split
    assert rep.rejected == {"box_outside_image": 1, "unknown_category": 1} and rep.skipped == {"split testA": 1}
    assert rej[0]["where"].endswith("refs(unc).p:ref #2") and rej[0]["reason"] == "box_outside_image"
    assert rej[1]["where"].endswith("refs(unc).p:ref #3") and rej[1]["reason"] == "unknown_category"


def test_visual_genome_boxes_paths_and_json_path_of_rejections(tmp_path):
    s, rep, rej = run("visual-genome", files.visual_genome(tmp_path / "vg"), tmp_path)
    # x=80, y=60, w=400, h=300 on 800x600 -> [0.1, 0.1, 0.6, 0.6]
    assert answer(s["vg-rec-10"]) == "[0.100, 0.100, 0.600, 0.600]"
    assert media(s["vg-rec-10"]) == [("image", "VG_100K_2/1.jpg")]
    # 800.5 px wide on an 800 px image: within the 1 px tolerance, clipped and counted
    assert answer(s["vg-rec-12"]) == "[0.000, 0.000, 1.000, 0.017]"
    assert rep.fixed == {"box_clipped_to_image": 1}
    assert rep.rejected == {"box_outside_image": 1}
    assert rej[0]["where"].endswith("region_descriptions.json:$[0].regions[1]")
    assert rep.written == 4


def test_didemo_chunks_inclusive_consensus_and_duration(tmp_path):
    assert consensus([(1, 2), (1, 2), (1, 3), (4, 5)]) == (1, 2)
    assert consensus([(0, 0), (0, 1), (0, 1), (0, 1)]) == (0, 1)
    s, rep, rej = run("didemo", files.didemo(tmp_path / "d"), tmp_path, options={"durations": "durations.json"})
    # chunks (1, 2) -> 5 s .. 15 s of a 28 s video
    assert answer(s["didemo-5"]) == "{0.18, 0.54}"
    assert "the dog jumps into the water" in user_text(s["didemo-5"])
    # last chunk (5, 5) -> 25 s .. min(30, 28) s
    assert answer(s["didemo-6"]) == "{0.89, 1.00}"
    assert rep.rejected == {"span_outside_video": 1}   # chunk 6 of a 6-chunk video
    s2, rep2, _ = run("didemo", files.didemo(tmp_path / "d2", durations=False), tmp_path / "o2")
    assert answer(s2["didemo-5"]) == "{0.17, 0.50}"    # 5/30, 15/30 without a duration
    assert rep2.fixed == {"duration_from_num_segments": 2}


def test_hirest_seconds_steps_and_skips(tmp_path):
    s, rep, _ = run("hirest", files.hirest(tmp_path / "h"), tmp_path)
    (moment,) = [v for k, v in s.items() if "step" not in k]
    assert answer(moment) == "{0.10, 0.60}"            # 20..120 s of 200 s
    (step,) = [v for k, v in s.items() if "step" in k]
    assert answer(step) == "{0.10, 0.25}" and "boil water" in user_text(step)
    assert rep.skipped == {"no moment (relevant/clip false)": 1}


def test_charades_sta_seconds_clip_and_rejections(tmp_path):
    s, rep, rej = run("charades-sta", files.charades(tmp_path / "c"), tmp_path)
    assert answer(s["charades-ABC12-1"]) == "{0.05, 0.24}"  # 1.5/30, 7.2/30
    assert answer(s["charades-ABC12-2"]) == "{0.67, 1.00}"  # end 31 s clipped to the 30 s length
    assert media(s["charades-ABC12-1"]) == [("video", "Charades_v1_480/ABC12.mp4")]
    assert rep.fixed == {"span_end_clipped_to_duration": 1}
    assert rep.rejected == {"span_outside_video": 1, "unknown_video": 1, "malformed": 1}
    assert [r["where"].rsplit(":", 1)[1] for r in rej] == ["3", "4", "5"]


def test_vggss_relative_boxes_clipped_like_the_publisher(tmp_path):
    s, rep, _ = run("vggss", files.vggss(tmp_path / "v"), tmp_path)
    a = answer(s["vggss-abc_000010"])
    assert a == "Dog barking[0.100, 0.200, 0.500, 0.600], dog barking[0.000, 0.000, 0.300, 1.000]."
    assert media(s["vggss-abc_000010"]) == [("image", "frames/abc_000010.jpg"), ("audio", "audio/abc_000010.wav")]
    assert rep.fixed == {"box_clipped_to_frame": 1} and rep.rejected == {"empty_box": 1}


def test_flickr30k_one_based_inclusive_and_union(tmp_path):
    s, rep, _ = run("flickr30k-entities", files.flickr30k(tmp_path / "f"), tmp_path)
    # entity 1: pixels 1..250 x 1..200 -> [0, 0, 250, 200] / (500, 400)
    # entity 2: union of [100, 100, 200, 200] and [150, 50, 300, 150] -> [100, 50, 300, 200]
    assert answer(s["flickr30k-42-1"]) == ("A man[0.000, 0.000, 0.500, 0.500] holds two kites"
                                           "[0.200, 0.125, 0.600, 0.500] in the park .")
    assert answer(s["flickr30k-42-2"]) == "Kites[0.200, 0.125, 0.600, 0.500] fly ."
    assert s["flickr30k-42-1"].meta["entities"] == ["1", "2"]
    assert rep.written == 2 and not rep.rejected


def test_vcr_object_references_with_boxes(tmp_path):
    s, rep, rej = run("vcr", files.vcr(tmp_path / "vcr"), tmp_path)
    p1 = "person1[0.050, 0.050, 0.550, 0.550]"   # [10, 20, 110, 220] on 200x400
    c2 = "cup2[0.000, 0.000, 0.250, 0.125]"
    v = s["vcr-train-0"]
    assert user_text(v) == f"What is {p1} doing?"
    assert answer(v) == f"{p1} drinks from {c2}."
    assert v.messages[2]["content"] == [{"type": "text", "text": "Why?"}] and answer(v, 3) == f"{p1} holds {c2} to his mouth."
    assert rep.skipped == {"no labels (test split)": 1}
    assert rep.rejected == {"malformed": 1} and rej[0]["where"].endswith("train.jsonl:3")


def test_activitynet_dense_and_grounding(tmp_path):
    s, rep, rej = run("activitynet-captions", files.activitynet(tmp_path / "a"), tmp_path)
    assert answer(s["anet-train-v_x-dense"]) == "A man enters {0.00, 0.25}. He lifts a bar {0.30, 1.00}."
    assert answer(s["anet-train-v_x-1-tg"]) == "{0.30, 1.00}" and "he lifts a bar" in user_text(s["anet-train-v_x-1-tg"])
    assert rep.fixed == {"span_end_clipped_to_duration": 1}
    assert rep.rejected == {"empty_span": 1} and "v_y" in rej[0]["where"]
    assert not any(k.startswith("anet-train-v_y") for k in s)


def test_llava_mix_square_boxes_to_original_and_text_only(tmp_path):
    root = files.llava_mix(tmp_path / "m")
    s, rep, rej = run("llava-mix665k", root, tmp_path, check_media=True)
    # 200x100 image: square side 200, padding 50 px above. X=[0.25, 0.75] -> same; Y=[0.25, 0.5] -> [0, 0.5]
    assert answer(s["llava-mix665k-a1"]) == "[0.250, 0.000, 0.750, 0.500]"
    t = s["llava-mix665k-t1"]
    assert t.media() == [] and answer(t) == "Hello!" and t.meta["llava"]["model"] == ""
    assert "llava-mix665k-17" in s                      # an integer id
    assert rep.rejected == {"box_outside_image": 1}     # a box in the padding
    assert (tmp_path / "llava-mix665k.image_sizes.jsonl").read_text().count("coco/x.jpg") == 1


def test_stage1_and_stage3_llava_style_and_audio(tmp_path):
    s, rep, _ = run("llava-cc3m", files.llava_cc3m(tmp_path / "cc"), tmp_path)
    c = s["llava-cc3m-GCC_train_000000001"]
    assert c.media() == [("image", "images/GCC_train_000000001.jpg")] and answer(c) == "a dog on a beach"
    assert c.stage == 1 and c.task == "caption" and rep.rejected == {"malformed": 1}
    s, _, _ = run("valley-pretrain", files.valley(tmp_path / "va"), tmp_path)
    assert s["valley-pretrain-v1"].media() == [("video", "videos/webvid/1066674784.mp4")]
    assert s["valley-pretrain-v2"].media() == [("video", "videos/jukin/x.mp4")]
    s, rep, _ = run("wavcaps", files.wavcaps(tmp_path / "w"), tmp_path)
    assert answer(s["wavcaps-SoundBible-123"]) == "A dog barks twice."
    assert s["wavcaps-AudioSet_SL-Yabc"].media() == [("audio", "audio/AudioSet_SL/Yabc.flac")]
    assert rep.rejected == {"malformed": 1}
    s, rep, _ = run("clotho", files.clotho(tmp_path / "cl"), tmp_path)
    assert rep.written == 5 and answer(s["clotho-development-rain_1-5"]) == "Drops fall."
    assert s["clotho-development-rain_1-1"].media() == [("audio", "development/rain 1.wav")]
    s, _, _ = run("videochat-instruct", files.videochat(tmp_path / "vc"), tmp_path)
    v = s["videochat-1066674784-0"]
    assert [m["role"] for m in v.messages] == ["user", "assistant"] * 2 and v.stage == 3


def test_missing_media_is_rejected_and_strict_stops(tmp_path):
    root = files.charades(tmp_path / "c")
    s, rep, rej = run("charades-sta", root, tmp_path, check_media=True)
    assert not s and rep.rejected["missing_media"] == 2
    with pytest.raises(ConversionError, match=r"charades_sta_train.txt:1: missing_media"):
        convert_source("charades-sta", root, tmp_path / "strict.jsonl", strict=True)


def test_resume_after_interruption_equals_a_full_run(tmp_path):
    root = files.refcoco(tmp_path / "r")
    full, _, _ = run("refcoco", root, tmp_path / "full")
    out = tmp_path / "part" / "refcoco.jsonl"
    out.parent.mkdir()
    first = (tmp_path / "full" / "refcoco.jsonl").read_text().splitlines()[0]
    partial_path(out).write_text(first + "\n" + '{"id": "refcoco-reg-11", "ta')   # killed mid-line
    report = convert_source("refcoco", root, out, check_media=False)
    assert report.resumed == 1 and report.written == 2
    assert out.read_text() == (tmp_path / "full" / "refcoco.jsonl").read_text()


def test_cli_convert_accepts_out_prefix(tmp_path, capsys):
    from groundinggpt.cli import main

    root = files.vggss(tmp_path / "v")
    assert main(["data", "convert", "vggss", str(root), "--out", str(tmp_path / "o.jsonl"),
                 "--no-check-media", "--quiet"]) == 0
    assert "1 samples" in capsys.readouterr().out
    assert len(read_jsonl(tmp_path / "o.jsonl")) == 1


def test_box_text_edges():
    from groundinggpt.data.sources.base import Rejected, box_text, pixel_box

    assert box_text(pixel_box(-0.0, 0, 10, 10, 10, 10)) == "[0.000, 0.000, 1.000, 1.000]"
    with pytest.raises(Rejected, match="box_too_small"):
        box_text(pixel_box(100.0, 0, 100.2, 10, 1000, 10))     # 0.1000 .. 0.1002: empty at 3 decimals
    with pytest.raises(Rejected, match="box_outside_image"):
        pixel_box(0, 0, 11, 10, 10, 10)


def test_didemo_length_from_the_video_header(tmp_path):
    import numpy as np

    from groundinggpt.media.video import write_video

    root = tmp_path / "d"
    (root / "videos").mkdir(parents=True)
    (root / "train_data.json").write_text(json.dumps([
        {"annotation_id": 1, "description": "x", "video": "v.mp4", "times": [[1, 1]] * 4, "num_segments": 3}]))
    write_video(root / "videos" / "v.mp4", [np.full((32, 32, 3), 9 * k, dtype=np.uint8) for k in range(24)], fps=2)
    s, rep, _ = run("didemo", root, tmp_path, check_media=True)
    # chunk 1 = 5..10 s of the 12 s video (15 s if the length were taken from num_segments)
    assert answer(s["didemo-1"]) == "{0.42, 0.83}"
    assert rep.fixed == {"duration_from_video_header": 1}


@pytest.mark.parametrize("stage", [2, 3])
def test_visual_genome_serialized_lines_equal_the_checked_path(tmp_path, stage):
    # VG's hot loop writes ordinary regions straight to JSONL bytes (Serialized); every line
    # must equal what the checked path (_region: number(), pixel_box, box_text,
    # Context.sample, then orjson) makes of the same region, escaping included.
    import random

    import orjson

    from groundinggpt.data.sources import visual_genome as vg
    from groundinggpt.data.sources.base import Context, Rejected, Serialized

    rng = random.Random(3)
    W, H = 640, 480
    phrases = ["a  red {car}", " [0.1, 0.2, 0.3, 0.4] ", "dog.", "", "Man\tholding  kite", 'the "big" \\ sign',
               "café – naïve 猫 \U0001f600", "100% cotton %s %d", "line\u2028sep\x07bell", "tail]} only"]
    regions = []
    for rid in range(1, 401):
        x, y = rng.choice([0, 1, rng.randint(0, 639)]), rng.choice([0, rng.randint(0, 479)])
        w, h = rng.choice([1, rng.randint(1, W - x)]), rng.choice([1, rng.randint(1, max(1, H - y))])
        rid = rng.choice([rid, rid, rid, f"s{rid}", rid + (1 << 62)])  # str ids take the checked path
        regions.append({"region_id": rid, "x": x, "y": y, "width": w, "height": h, "phrase": rng.choice(phrases),
                        "image_id": 1})
    iid = "1%s\"é"  # an image id that needs escaping (and a % for the line format)
    url = "http://x/VG_100K/1 100%\"é.jpg"
    (tmp_path / "vg").mkdir()
    (tmp_path / "vg" / "image_data.json").write_text(json.dumps([{"image_id": iid, "width": W, "height": H,
                                                                  "url": url}]))
    (tmp_path / "vg" / "region_descriptions.json").write_text(json.dumps([{"id": iid, "regions": regions}]))
    out = tmp_path / "vg.jsonl"
    convert_source("visual-genome", tmp_path / "vg", out, check_media=False, resume=False, stage=stage)
    ctx = Context(source="visual-genome", root=tmp_path / "vg", media_root=tmp_path / "vg", stage=stage,
                  check_media=False)
    fast = sum(len(d.lines) for d in vg.convert(ctx) if type(d) is Serialized)
    expected = []
    for r in regions:
        try:
            samples = vg._region(ctx, r, iid, 'VG_100K/1 100%"é.jpg', float(W), float(H), {"rec", "reg"})
        except Rejected:
            continue
        for d in samples:
            d.pop("_built")
            expected.append(orjson.dumps(d) + b"\n")
    got = out.read_bytes()
    assert got == b"".join(expected)
    assert 300 < got.count(b"\n") < 800  # most regions kept (rec + reg), the empty phrases and tiny boxes not
    assert 200 < fast < got.count(b"\n")  # the fast path wrote most lines, the checked path the rest


@pytest.mark.parametrize("name", ["Valley_instruct_73k.json", "valley_instruct_65k.json"])
def test_valley_instruct_finds_the_released_file_names(tmp_path, name):
    # The 73K file circulates as Valley_instruct_73k.json (capital V); the publisher's current
    # release is valley_instruct_65k.json. Either is found without the `file` option.
    root = files.valley(tmp_path / "vi")
    (root / "chat.json").rename(root / name)
    s, rep, _ = run("valley-instruct", root, tmp_path)
    assert rep.written == 2 and s["valley-instruct-v1"].task == "conversation" and s["valley-instruct-v1"].stage == 3
    assert s["valley-instruct-v2"].media() == [("video", "videos/jukin/x.mp4")]
    (root / name).rename(root / "other.json")
    with pytest.raises(FileNotFoundError, match="none of Valley_instruct_73k.json, valley_instruct_73k.json"):
        run("valley-instruct", root, tmp_path)
    assert run("valley-instruct", root, tmp_path, options={"file": "other.json"})[1].written == 2


def test_wavcaps_audio_in_the_folders_the_release_zips_unpack_to(tmp_path):
    # The release's zips unpack to waveforms/<subset>_flac/<id without extension>.flac;
    # <audio_dir>/<subset>/ wins when it exists (a renamed folder).
    root = files.wavcaps(tmp_path / "w")
    for rel in ("audio/AudioSet_SL_flac/Yabc.flac", "audio/SoundBible/123.flac", "audio/SoundBible_flac/123.flac"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"fLaC")
    s, rep, _ = run("wavcaps", root, tmp_path, check_media=True)
    assert s["wavcaps-AudioSet_SL-Yabc"].media() == [("audio", "audio/AudioSet_SL_flac/Yabc.flac")]
    assert s["wavcaps-SoundBible-123"].media() == [("audio", "audio/SoundBible/123.flac")]
    assert rep.written == 2 and rep.rejected == {"malformed": 1}


def test_visual_genome_batches_resume_and_refuse_duplicate_ids(tmp_path):
    # VG's lines come per image (Serialized): a resumed run must still skip the lines already
    # written one by one, and a region id seen again (in another image or the same one) is a
    # duplicate_id rejection, never a second line.
    root = tmp_path / "vg"
    root.mkdir()
    (root / "image_data.json").write_text(json.dumps([{"image_id": i, "width": 100, "height": 100,
                                                       "url": f"http://x/VG_100K/{i}.jpg"} for i in (1, 2)]))
    region = {"image_id": 1, "phrase": "a cat", "x": 10, "y": 10, "width": 20, "height": 30}
    (root / "region_descriptions.json").write_text(json.dumps([
        {"id": 1, "regions": [dict(region, region_id=1), dict(region, region_id=2), dict(region, region_id=1)]},
        {"id": 2, "regions": [dict(region, region_id=3), dict(region, region_id=2)]}]))
    full, report, rejected = run("visual-genome", root, tmp_path / "full", options={"tasks": ["rec"]})
    assert sorted(full) == ["vg-rec-1", "vg-rec-2", "vg-rec-3"] and report.tasks == {"rec": 3}
    assert [r["reason"] for r in rejected] == ["duplicate_id", "duplicate_id"]
    assert report.rejected == {"duplicate_id": 2}
    out = tmp_path / "part" / "vg.jsonl"
    out.parent.mkdir()
    first = (tmp_path / "full" / "visual-genome.jsonl").read_text().splitlines()[0]
    partial_path(out).write_text(first + "\n" + '{"id": "vg-rec-2", "ta')  # killed mid-line
    report = convert_source("visual-genome", root, out, check_media=False, options={"tasks": ["rec"]})
    assert report.resumed == 1 and report.written == 3 and report.tasks == {"rec": 3}
    assert out.read_text() == (tmp_path / "full" / "visual-genome.jsonl").read_text()

"""End-to-end evaluation: benchmark files in their published formats → scores and outputs.

(a) scoring mode: hand-written predictions whose correct scores are known;
(b) model mode: the tiny random model on 2-3 samples per task (outputs, misses, resume).
"""

from __future__ import annotations

import argparse
import json
import os

import pytest

from groundinggpt import GenerationSettings, GroundingGPT
from groundinggpt.cli import run_command
from groundinggpt.eval import cli as eval_cli
from groundinggpt.eval.formats import FormatError
from groundinggpt.eval.runner import evaluate
from groundinggpt.eval.tasks import get_task
from groundinggpt.grounding import Box, format_box, original_to_square

from test_eval_benchmarks import (build_charades, build_pope, build_refcoco, build_synthetic, build_vggss,
                                  build_vqav2, write_predictions)


def run_eval(argv: list[str]) -> int:
    """``groundinggpt eval ...`` with only the eval command registered."""
    parser = argparse.ArgumentParser(prog="groundinggpt")
    eval_cli.register(parser.add_subparsers(dest="command"))
    return run_command(parser.parse_args(argv))


def outputs(out) -> tuple[dict, list[dict]]:
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return summary, records


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-model")
    GroundingGPT.from_preset("tiny", seed=0).save_pretrained(path)
    return str(path)


@pytest.fixture
def count_generate(monkeypatch):
    """Counts the conversations GroundingGPT.generate is asked to answer (and the calls)."""
    seen = {"conversations": [], "calls": 0}
    original = GroundingGPT.generate

    def counting(self, conversations, settings=None, **kw):
        seen["conversations"].extend(conversations)
        seen["calls"] += 1
        return original(self, conversations, settings, **kw)

    monkeypatch.setattr(GroundingGPT, "generate", counting)
    return seen


MODEL_FLAGS = ["--max-new-tokens", "4", "--batch-size", "2", "--no-progress"]


# ================================================================ (a) scoring mode: REC
def test_rec_two_of_three_boxes_right(tmp_path):
    flags = build_refcoco(tmp_path / "data")
    preds = write_predictions(tmp_path / "p.jsonl", {
        "0_100": "The red box[0.100, 0.200, 0.400, 0.800].",  # exact
        "0_101": "[0.600, 0.000, 0.900, 0.300]",  # elsewhere
        "1_102": "the blue box [0.1, 0.1, 0.6, 0.6]",  # exact
    })
    out = tmp_path / "out"
    assert run_eval(["eval", "rec", "--predictions", str(preds), "--output", str(out), *flags]) == 0
    summary, records = outputs(out)
    assert summary["metrics"]["Acc@0.5"] == pytest.approx(200 / 3)
    assert summary["misses"] == 0 and summary["n"] == 3
    assert [r["correct"] for r in records] == [True, False, True]
    assert records[0]["parsed"] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert "| Acc@0.5 | 66.67 |" in (out / "summary.md").read_text()
    assert (out / "examples.png").stat().st_size > 1000


def test_rec_square_frame_predictions_on_non_square_images(tmp_path):
    flags = build_refcoco(tmp_path / "data")
    # Boxes as a model that answers in the padded-square frame writes them.
    sq42 = format_box(original_to_square(Box(0.1, 0.2, 0.4, 0.8), 200, 50))  # y → [0.425, 0.575]
    sq7 = format_box(original_to_square(Box(0.1, 0.1, 0.6, 0.6), 60, 90))
    preds = write_predictions(tmp_path / "p.jsonl", {"0_100": sq42, "0_101": sq42, "1_102": sq7})
    scores = {}
    for frame in ("square", "original"):
        out = tmp_path / frame
        run_eval(["eval", "rec", "--predictions", str(preds), "--output", str(out),
                  "--boxes-frame", frame, *flags])
        scores[frame] = outputs(out)[0]["metrics"]["Acc@0.5"]
    assert scores["square"] == pytest.approx(100.0)
    # Read as original-frame boxes, the 200×50 image's box is squeezed to IoU 0.25.
    assert scores["original"] == pytest.approx(100 / 3)


def test_rec_unparsed_and_absent_predictions_are_listed_misses(tmp_path):
    flags = build_refcoco(tmp_path / "data")
    preds = write_predictions(tmp_path / "p.jsonl", {
        "0_100": "[0.1, 0.2, 0.4, 0.8]", "0_101": "I cannot tell.", "999_1": "[0, 0, 1, 1]"})
    out = tmp_path / "out"
    run_eval(["eval", "rec", "--predictions", str(preds), "--output", str(out), *flags])
    summary, records = outputs(out)
    assert summary["metrics"]["Acc@0.5"] == pytest.approx(100 / 3)
    assert summary["misses"] == 2
    assert summary["status_counts"] == {"ok": 1, "unparsed": 1, "no_prediction": 1}
    assert {m["id"] for m in summary["miss_list"]} == {"0_101", "1_102"}
    assert summary["unknown_prediction_ids"] == {"count": 1, "examples": ["999_1"]}
    md = (out / "summary.md").read_text()
    assert "| 1_102 | no_prediction |" in md and "match no sample" in md


def test_predictions_with_foreign_ids_are_refused(tmp_path, capsys):
    flags = build_refcoco(tmp_path / "data")
    preds = write_predictions(tmp_path / "p.jsonl", {"a": "[0, 0, 1, 1]", "b": "[0, 0, 1, 1]"})
    assert run_eval(["eval", "rec", "--predictions", str(preds), "--output", str(tmp_path / "o"), *flags]) == 2
    err = capsys.readouterr().err
    assert "none of its 2 ids" in err and "{ref_id}_{sent_id}" in err


def test_wrong_format_annotations_raise_format_error(tmp_path, capsys):
    flags = build_refcoco(tmp_path / "data")
    (tmp_path / "data" / "instances.json").write_text(json.dumps({"images": []}))
    preds = write_predictions(tmp_path / "p.jsonl", {"0_100": "[0, 0, 1, 1]"})
    assert run_eval(["eval", "rec", "--predictions", str(preds), "--output", str(tmp_path / "o"), *flags]) == 2
    assert "missing field 'annotations'" in capsys.readouterr().err
    args = argparse.Namespace(refs=flags[1], instances=flags[3], images=None, split="val")
    with pytest.raises(FormatError, match="instances.json"):
        evaluate(get_task("rec")(args), tmp_path / "o2", predictions=preds, progress=False)


def test_output_folder_of_another_run_is_refused(tmp_path, capsys):
    flags = build_refcoco(tmp_path / "data")
    preds = write_predictions(tmp_path / "p.jsonl", {"0_100": "[0, 0, 1, 1]"})
    out = str(tmp_path / "out")
    assert run_eval(["eval", "rec", "--predictions", str(preds), "--output", out, *flags]) == 0
    code = run_eval(["eval", "rec", "--predictions", str(preds), "--output", out, "--boxes-frame", "square",
                     *flags])
    assert code == 2 and "boxes_frame" in capsys.readouterr().err


def test_output_folder_of_other_test_data_is_refused(tmp_path, tiny_dir, capsys, count_generate):
    """Same ids, other questions (POPE's popular vs adversarial): the old answers are not reused."""
    flags = build_pope(tmp_path / "data")
    out = str(tmp_path / "out")
    argv = ["eval", "pope", "--model", tiny_dir, "--output", out, *MODEL_FLAGS]
    assert run_eval([*argv, *flags]) == 0 and len(count_generate["conversations"]) == 3
    adversarial = tmp_path / "data" / "coco_pope_adversarial.json"
    popular = tmp_path / "data" / "coco_pope_popular.json"
    popular.write_text(adversarial.read_text().replace("a dog", "a bird").replace("a cat", "a horse"))
    other = [*flags[:1], str(popular), *flags[2:]]
    assert run_eval([*argv, *other]) == 2
    assert "other test data" in capsys.readouterr().err
    assert len(count_generate["conversations"]) == 3  # nothing generated, nothing scored
    # The same data resumes as before (nothing regenerated); --limit does not count as other data.
    assert run_eval([*argv, *flags]) == 0 and run_eval([*argv, *flags, "--limit", "2"]) == 0
    assert len(count_generate["conversations"]) == 3


def test_empty_predictions_file_is_refused(tmp_path, capsys):
    flags = build_refcoco(tmp_path / "data")
    empty = tmp_path / "p.jsonl"
    empty.write_text("")
    assert run_eval(["eval", "rec", "--predictions", str(empty), "--output", str(tmp_path / "o"), *flags]) == 2
    assert "holds no predictions" in capsys.readouterr().err


def test_summary_lists_only_misses_in_the_miss_breakdown(tmp_path):
    flags = build_refcoco(tmp_path / "data")
    preds = write_predictions(tmp_path / "p.jsonl", {"0_100": "[0.1, 0.2, 0.4, 0.8]", "0_101": "no idea"})
    out = tmp_path / "out"
    run_eval(["eval", "rec", "--predictions", str(preds), "--output", str(out), *flags])
    md = (out / "summary.md").read_text()
    assert "- samples: 3, answered: 2, scored: 1, misses: 2 (no_prediction 1, unparsed 1)" in md


# ================================================================ (b) model mode: REC
def test_rec_model_mode_outputs_misses_and_resume(tmp_path, tiny_dir, count_generate):
    flags = build_refcoco(tmp_path / "data")
    blue = tmp_path / "data" / "train2014" / "COCO_train2014_000000000007.jpg"
    os.rename(blue, tmp_path / "moved.jpg")  # 1_102's image is missing
    out = tmp_path / "out"
    argv = ["eval", "rec", "--model", tiny_dir, "--output", str(out), *flags, *MODEL_FLAGS]
    assert run_eval(argv) == 0
    summary, records = outputs(out)
    assert [r["id"] for r in records] == ["0_100", "0_101", "1_102"]
    assert len(count_generate["conversations"]) == 2 and count_generate["calls"] == 1  # batch of 2
    assert summary["status_counts"]["missing_media"] == 1
    miss = next(m for m in summary["miss_list"] if m["id"] == "1_102")
    assert miss["status"] == "missing_media" and str(blue) in miss["error"]
    assert summary["n"] == 3 and summary["answered"] == 2
    assert summary["generation"]["max_new_tokens"] == 4 and summary["generation"]["temperature"] == 0.0
    for name in ("summary.md", "examples.png", "run.json"):
        assert (out / name).is_file()
    assert "missing_media" in (out / "summary.md").read_text()

    # Resume: answered samples are not generated again; the missing one still is not there.
    assert run_eval(argv) == 0
    assert len(count_generate["conversations"]) == 2
    # Once its image is back, only that sample is generated.
    os.rename(tmp_path / "moved.jpg", blue)
    assert run_eval(argv) == 0
    assert len(count_generate["conversations"]) == 3
    summary, records = outputs(out)
    assert summary["answered"] == 3 and len(records) == 3 and "missing_media" not in summary["status_counts"]


def test_model_mode_without_any_media_is_refused(tmp_path, tiny_dir, capsys):
    flags = build_refcoco(tmp_path / "data")
    flags[flags.index("--images") + 1] = str(tmp_path / "nowhere")
    assert run_eval(["eval", "rec", "--model", tiny_dir, "--output", str(tmp_path / "o"), *flags,
                     *MODEL_FLAGS]) == 2
    err = capsys.readouterr().err
    assert "none of the 3 rec samples has its media files" in err and "check --images" in err


def test_limit_then_full_run_keeps_and_reuses_records(tmp_path, tiny_dir, count_generate):
    flags = build_refcoco(tmp_path / "data")
    out = tmp_path / "out"
    argv = ["eval", "rec", "--model", tiny_dir, "--output", str(out), *flags, *MODEL_FLAGS]
    assert run_eval([*argv, "--limit", "1"]) == 0 and outputs(out)[0]["n"] == 1
    assert run_eval(argv) == 0
    assert len(count_generate["conversations"]) == 3  # 1, then the 2 others
    assert run_eval([*argv, "--limit", "1"]) == 0
    assert len(outputs(out)[1]) == 3  # the two records outside the limit are kept


def test_model_mode_scores_boxes_in_original_coordinates(tmp_path, monkeypatch):
    flags = build_refcoco(tmp_path / "data")
    gg = GroundingGPT.from_preset("tiny", seed=0)
    # The model "says" the 200×50 image's true box in ITS frame (the padded square).
    monkeypatch.setattr(gg.processor, "decode", lambda ids: "The red box[0.100, 0.425, 0.400, 0.575].")
    args = argparse.Namespace(refs=flags[1], instances=flags[3], images=flags[5], split="val")
    summary = evaluate(get_task("rec")(args), tmp_path / "out", model=gg, batch_size=3, progress=False,
                       settings=GenerationSettings(max_new_tokens=4))
    assert summary["metrics"]["Acc@0.5"] == pytest.approx(200 / 3)  # right on image 42, not on image 7
    records = [json.loads(x) for x in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert records[0]["answer"] == "The red box[0.100, 0.200, 0.400, 0.800]."  # original frame
    assert records[0]["observed"]["image_size"] == [200, 50]
    # A model run's predictions.jsonl is a valid predictions file with the same score.
    again = evaluate(get_task("rec")(args), tmp_path / "again", predictions=tmp_path / "out" / "predictions.jsonl",
                     progress=False)
    assert again["metrics"] == summary["metrics"]


def test_prompt_override_and_bad_placeholder(tmp_path, tiny_dir, count_generate, capsys):
    flags = build_refcoco(tmp_path / "data")
    argv = ["eval", "rec", "--model", tiny_dir, "--output", str(tmp_path / "o"), "--limit", "1", *flags,
            *MODEL_FLAGS]
    assert run_eval([*argv, "--prompt", "Where is {exp}?"]) == 0
    text = count_generate["conversations"][0][0]["content"][-1]["text"]
    assert text == "Where is red box?"
    assert run_eval([*argv[:5], str(tmp_path / "o2"), *argv[6:], "--prompt", "Find {object}."]) == 2
    assert "unknown placeholder" in capsys.readouterr().err


def test_default_prompt_is_the_papers(tmp_path, tiny_dir, count_generate):
    flags = build_refcoco(tmp_path / "data")
    run_eval(["eval", "rec", "--model", tiny_dir, "--output", str(tmp_path / "o"), "--limit", "1", *flags,
              *MODEL_FLAGS])
    assert count_generate["conversations"][0][0]["content"][-1]["text"] == "Output the coordinate of red box."


# ================================================================ Charades-STA
CHARADES_PREDS = {"VID1_0": "{0.00, 0.50}", "VID1_1": "It happens in {0.25, 1.00}.", "VID2_0": "{0.60, 0.90}"}


@pytest.mark.parametrize("csv", [True, False], ids=["csv-durations", "probed-durations"])
def test_charades_scoring(tmp_path, csv):
    flags = build_charades(tmp_path / "data", csv=csv)
    preds = write_predictions(tmp_path / "p.jsonl", CHARADES_PREDS)
    out = tmp_path / "out"
    assert run_eval(["eval", "charades-sta", "--predictions", str(preds), "--output", str(out), *flags]) == 0
    summary, records = outputs(out)
    m = summary["metrics"]
    assert m["R1@0.5"] == pytest.approx(200 / 3) and m["R1@0.7"] == pytest.approx(200 / 3)
    assert m["mIoU"] == pytest.approx(200 / 3, abs=1.0)
    assert records[1]["seconds"] == pytest.approx([0.5, 2.0], abs=0.05)
    assert (out / "examples.png").is_file()


def test_charades_summary_agrees_with_each_record_and_resume_rescores(tmp_path):
    """R@1 is counted from exact seconds (a span rounded for display can cross 0.5), and a
    folder scored with other durations is scored again, not reused."""
    (tmp_path / "ann.txt").write_text("VID1 0.0 10.0##person opens the door.\n")
    durations = tmp_path / "len.csv"
    durations.write_text("id,subject,length\nVID1,A,11.11\n")  # {0, 0.45} * 11.11 s = [0, 4.9995] s
    preds = write_predictions(tmp_path / "p.jsonl", {"VID1_0": "It happens in {0.00, 0.45}."})
    out = tmp_path / "out"
    flags = ["eval", "charades-sta", "--predictions", str(preds), "--annotations", str(tmp_path / "ann.txt"),
             "--durations", str(durations), "--output", str(out)]
    assert run_eval(flags) == 0
    summary, records = outputs(out)
    assert records[0]["correct"] is False and records[0]["score"] == pytest.approx(0.49995)
    assert summary["metrics"]["R1@0.5"] == 0.0 and summary["metrics"]["mIoU"] == pytest.approx(49.995)
    durations.write_text("id,subject,length\nVID1,A,20.0\n")  # now [0, 9] s: tIoU 0.9
    assert run_eval(flags) == 0
    summary, records = outputs(out)
    assert records[0]["correct"] is True and summary["metrics"]["mIoU"] == pytest.approx(90.0)


def test_charades_scoring_without_durations_or_videos_is_refused_before_any_work(tmp_path, capsys):
    flags = build_charades(tmp_path / "data", csv=False)
    preds = write_predictions(tmp_path / "p.jsonl", CHARADES_PREDS)
    out = tmp_path / "out"
    assert run_eval(["eval", "charades-sta", "--predictions", str(preds), "--output", str(out), *flags[:2]]) == 2
    assert "charades-sta --predictions needs --durations Charades_v1_test.csv or --videos" in capsys.readouterr().err
    assert not out.exists()


def test_an_evaluation_that_scored_nothing_fails_and_keeps_its_outputs(tmp_path, capsys):
    """Videos given but none there: every sample is an error, which is no result (was 0.00, exit 0)."""
    flags = build_charades(tmp_path / "data", csv=False)
    preds = write_predictions(tmp_path / "p.jsonl", CHARADES_PREDS)
    out = tmp_path / "out"
    argv = ["eval", "charades-sta", "--predictions", str(preds), "--output", str(out),
            "--annotations", flags[1], "--videos", str(tmp_path / "elsewhere")]
    assert run_eval(argv) == 2
    err = capsys.readouterr().err
    assert "task charades-sta: no sample was scored, all 3 failed before their answer (error: 3); e.g. sample " \
           "VID1_0: no duration for video VID1" in err and f"Outputs are in {out}" in err
    summary, records = outputs(out)  # nothing lost: every record and the summary are there
    assert summary["status_counts"] == {"error": 3} and len(records) == 3
    # the same through the API, with the summary on the exception
    from groundinggpt.eval.runner import NothingScored

    args = argparse.Namespace(annotations=flags[1], videos=str(tmp_path / "elsewhere"), durations=None)
    with pytest.raises(NothingScored) as e:
        evaluate(get_task("charades-sta")(args), out, predictions=preds, progress=False)
    assert e.value.summary["misses"] == 3


def test_boxes_frame_only_on_box_tasks_and_what_scoring_needs_is_in_the_help(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps help at hyphens otherwise
    flags = build_vggss(tmp_path / "data")
    preds = write_predictions(tmp_path / "p.jsonl", {"clipA_000010": "[0.25, 0.25, 0.75, 0.75]"})
    no_images = [f for i, f in enumerate(flags) if not (flags[i] == "--images" or flags[i - 1] == "--images")]
    assert run_eval(["eval", "vggss", "--predictions", str(preds), "--output", str(tmp_path / "v"),
                     "--boxes-frame", "square", *no_images]) == 2
    assert "vggss --predictions --boxes-frame square needs --images" in capsys.readouterr().err
    for task, task_flags in (("pope", build_pope(tmp_path / "pope")), ("charades-sta", ["--annotations", "a.txt"])):
        with pytest.raises(SystemExit):  # argparse: not an option of these tasks
            run_eval(["eval", task, "--predictions", str(preds), "--boxes-frame", "square", *task_flags])
        assert "unrecognized arguments: --boxes-frame square" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_eval(["eval", "charades-sta", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "scoring needs --annotations and --durations or --videos" in text
    assert "with --predictions, it or --durations gives the clip lengths" in text


def test_charades_model_mode(tmp_path, tiny_dir, count_generate):
    flags = build_charades(tmp_path / "data")
    os.remove(tmp_path / "data" / "videos" / "VID2.mp4")
    out = tmp_path / "out"
    assert run_eval(["eval", "charades-sta", "--model", tiny_dir, "--output", str(out), *flags, *MODEL_FLAGS]) == 0
    summary, records = outputs(out)
    assert len(count_generate["conversations"]) == 2
    assert count_generate["conversations"][0][0]["content"][-1]["text"] == \
        "When did person opens the door occur in the video?"
    assert records[0]["observed"]["duration"] == pytest.approx(2.0, abs=0.2)
    assert summary["status_counts"]["missing_media"] == 1 and set(summary["metrics"]) == {
        "R1@0.3", "R1@0.5", "R1@0.7", "mIoU"}
    assert (out / "examples.png").is_file()


# ================================================================ POPE, VQAv2
def test_pope_scoring(tmp_path):
    flags = build_pope(tmp_path / "data")
    preds = write_predictions(tmp_path / "p.jsonl", {1: "Yes, there is.", 2: "No.", 3: "yes"})
    out = tmp_path / "out"
    assert run_eval(["eval", "pope", "--predictions", str(preds), "--output", str(out), *flags]) == 0
    summary, records = outputs(out)
    m = summary["metrics"]
    assert (m["accuracy"], m["precision"], m["recall"]) == pytest.approx((200 / 3, 50.0, 100.0))
    assert m["yes_ratio"] == pytest.approx(200 / 3) and summary["split"] == "adversarial"
    assert [r["parsed"] for r in records] == ["yes", "no", "yes"]
    assert not (out / "examples.png").exists()  # not a grounding task


def test_pope_model_mode(tmp_path, tiny_dir):
    flags = build_pope(tmp_path / "data")
    out = tmp_path / "out"
    assert run_eval(["eval", "pope", "--model", tiny_dir, "--output", str(out), *flags, *MODEL_FLAGS]) == 0
    summary, records = outputs(out)
    assert summary["answered"] == 3 and all(r["parsed"] in ("yes", "no") for r in records)


def test_a_corrupt_image_fails_only_its_own_sample(tmp_path, tiny_dir, count_generate):
    flags = build_pope(tmp_path / "data")
    (tmp_path / "data" / "val2014" / "b.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    assert run_eval(["eval", "pope", "--model", tiny_dir, "--output", str(out), *flags, *MODEL_FLAGS,
                     "--batch-size", "3"]) == 0
    summary, records = outputs(out)
    assert [r["status"] for r in records] == ["ok", "ok", "media_error"]
    assert "b.jpg" in records[2]["error"] and summary["misses"] == 1
    assert summary["metrics"]["accuracy"] <= 200 / 3  # the miss counts as a wrong answer


def test_a_prompt_too_long_fails_only_its_own_sample(tmp_path, tiny_dir):
    flags = build_pope(tmp_path / "data")
    questions = tmp_path / "data" / "coco_pope_adversarial.json"
    rows = [json.loads(line) for line in questions.read_text().splitlines()]
    rows[1]["text"] = "Is there a dog " + "really " * 3000 + "in the image?"  # beyond the tiny model's 1024
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    assert run_eval(["eval", "pope", "--model", tiny_dir, "--output", str(out), *flags, *MODEL_FLAGS]) == 0
    summary, records = outputs(out)
    assert [r["status"] for r in records] == ["ok", "error", "ok"]
    assert "context is 1024" in records[1]["error"] and summary["misses"] == 1


def test_vqav2_scoring(tmp_path):
    flags = build_vqav2(tmp_path / "data")
    preds = write_predictions(tmp_path / "p.jsonl", {"11": "Two.", "12": "blue"})
    out = tmp_path / "out"
    assert run_eval(["eval", "vqav2", "--predictions", str(preds), "--output", str(out), *flags]) == 0
    summary, records = outputs(out)
    # q11: "Two." → "2", all ten agree → 1. q12: 2 of 10 say blue → mean of 2×(1/3), 8×(2/3) = 0.6.
    assert summary["metrics"]["accuracy"] == pytest.approx(80.0)
    assert [r["score"] for r in records] == pytest.approx([1.0, 0.6])


def test_vqav2_model_mode(tmp_path, tiny_dir):
    flags = build_vqav2(tmp_path / "data")
    out = tmp_path / "out"
    assert run_eval(["eval", "vqav2", "--model", tiny_dir, "--output", str(out), *flags, *MODEL_FLAGS]) == 0
    assert outputs(out)[0]["answered"] == 2


# ================================================================ VGG-SS
def test_vggss_scoring(tmp_path):
    flags = build_vggss(tmp_path / "data")
    preds = write_predictions(tmp_path / "p.jsonl", {
        "clipA_000010": "The dog[0.25, 0.25, 0.75, 0.75].", "clipB_000020": "[0.0, 0.5, 0.5, 1.0]"})
    out = tmp_path / "out"
    assert run_eval(["eval", "vggss", "--predictions", str(preds), "--output", str(out), *flags]) == 0
    summary, records = outputs(out)
    assert summary["metrics"]["cIoU@0.5"] == pytest.approx(50.0)  # percent, as every other task
    assert [r["score"] for r in records] == pytest.approx([1.0, 0.0])  # per sample: the cIoU itself
    assert "| cIoU@0.5 | 50.00 |" in (out / "summary.md").read_text()
    assert (out / "examples.png").is_file()


def test_vggss_model_mode_with_a_missing_wav(tmp_path, tiny_dir, count_generate):
    flags = build_vggss(tmp_path / "data")
    os.remove(tmp_path / "data" / "audio" / "clipB_000020.wav")
    out = tmp_path / "out"
    assert run_eval(["eval", "vggss", "--model", tiny_dir, "--output", str(out), *flags, *MODEL_FLAGS]) == 0
    summary, _ = outputs(out)
    kinds = [p["type"] for p in count_generate["conversations"][0][0]["content"]]
    assert kinds == ["image", "audio", "text"]
    assert summary["miss_list"][-1]["id"] == "clipB_000020" and "clipB_000020.wav" in summary["miss_list"][-1]["error"]


# ================================================================ synthetic
def test_synthetic_scoring_per_task(tmp_path):
    flags = build_synthetic(tmp_path / "data")
    preds = write_predictions(tmp_path / "p.jsonl", {
        "rec-0": "The red box[0.250, 0.250, 0.500, 0.750].", "tg-0": "{0.25, 0.75}", "count-0": "One."})
    out = tmp_path / "out"
    assert run_eval(["eval", "synthetic", "--predictions", str(preds), "--output", str(out), *flags]) == 0
    m = outputs(out)[0]["metrics"]
    assert m["rec Acc@0.5"] == 100.0 and m["temporal_grounding R1@0.5"] == 100.0 and m["count accuracy"] == 100.0
    assert (out / "examples.png").is_file()


def test_synthetic_model_mode(tmp_path, tiny_dir, count_generate):
    flags = build_synthetic(tmp_path / "data")
    out = tmp_path / "out"
    assert run_eval(["eval", "synthetic", "--model", tiny_dir, "--output", str(out), *flags, *MODEL_FLAGS]) == 0
    summary, records = outputs(out)
    assert summary["answered"] == 3 and len(count_generate["conversations"]) == 3
    # The reference answer is not in the prompt.
    assert all(c[-1]["role"] == "user" for c in count_generate["conversations"])


# ================================================================ registration
def test_eval_is_a_groundinggpt_subcommand(tmp_path):
    from groundinggpt.cli import main

    flags = build_pope(tmp_path / "data")
    preds = write_predictions(tmp_path / "p.jsonl", {1: "yes", 2: "no", 3: "no"})
    assert main(["eval", "pope", "--predictions", str(preds), "--output", str(tmp_path / "o"), *flags]) == 0
    assert outputs(tmp_path / "o")[0]["metrics"]["accuracy"] == 100.0


def test_evaluate_returns_the_summary_summary_json_is_written_from(tmp_path):
    from groundinggpt.eval.summary import EvalSummary

    flags, preds = build_refcoco(tmp_path), tmp_path / "preds.jsonl"
    write_predictions(preds, {"0_100": "It is [0.100, 0.200, 0.400, 0.800]."})
    args = argparse.Namespace(refs=flags[1], instances=flags[3], images=flags[5], split="val")
    summary = evaluate(get_task("rec")(args), tmp_path / "out", predictions=preds, progress=False)
    assert isinstance(summary, EvalSummary) and summary.task == "rec" and summary.mode == "predictions"
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert json.loads(json.dumps(summary.to_dict(), default=str)) == on_disk
    assert dict(summary) == summary.to_dict() and summary["metrics"] is summary.metrics
    assert EvalSummary.from_dict(on_disk).metrics == summary.metrics

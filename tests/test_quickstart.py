"""The quickstart's whole path on a very small world (a few steps per stage), its folder rules and report.

The full quickstart (≈ 20 min) is not run here; ``--fast`` runs every phase — world, the
miniature pretrained start, feature cache, stages 1-3 through ``groundinggpt train``'s runner,
evaluation with and without media, report — on a world of a few dozen samples.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from groundinggpt.quickstart import (
    STATE_FILE,
    QuickstartError,
    assess,
    build_report,
    coarse_to_fine,
    fast_plan,
    run_quickstart,
)
from groundinggpt.quickstart.phases import _blind_copy, _prepare_out
from groundinggpt.quickstart.report import report_markdown, summary_text


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("qs") / "run"
    messages: list[str] = []
    report = run_quickstart(out, plan=fast_plan(), progress=False, threads=1, say=messages.append)
    return out, report, messages


def test_fast_quickstart_writes_report_model_and_examples(fast_run):
    from groundinggpt import GroundingGPT

    out, report, _ = fast_run
    saved = json.loads((out / "report.json").read_text())
    assert saved["metrics"].keys() == {"rec", "temporal", "sound"}
    for name, m in saved["metrics"].items():
        assert m["value"] is not None and m["without_media"] is not None, name
        assert m["constant_baseline"] is not None, name
        assert m["target"] > 0
    assert "without_audio" in saved["metrics"]["sound"]
    for phase in ("world", "init", "features", "stage1", "stage2", "stage3", "eval"):
        assert saved["timings_seconds"][phase] >= 0, phase
    assert saved["data"]["stages"]["stage2"]["replay"]["previous_used"] > 0  # stage 2 replays stage 1
    assert saved["data"]["stages"]["stage1"]["replay"]["previous_used"] == 0
    text = (out / "report.md").read_text()
    assert "best constant answer" in text and "groundinggpt chat --model" in text
    # the report's verdicts are assess()'s on the figures it shows (whatever a 2-step run reaches)
    for name, m in saved["metrics"].items():
        assert m["met"] == assess(m["value"], m["target"], m["constant_baseline"], m["without_media"])["met"], name
    assert ("**Targets missed: " in text) == (not all(m["met"] for m in saved["metrics"].values()))
    assert (out / "examples_rec.png").stat().st_size > 0
    assert (out / "examples_temporal.png").is_file() and (out / "examples_sound.png").is_file()
    gg = GroundingGPT.from_pretrained(out / "models" / "stage3")
    assert gg.processor.config.system_prompt  # the miniature's short system prompt travels with the model
    assert "groundinggpt chat" in report["summary_text"]
    # a metrics picture, and a chat command that names a real held-out image of this run
    assert (out / "metrics.png").stat().st_size > 0 and "![metrics](metrics.png)" in text
    image = report["how_to"][0].split("--image ")[1].split()[0]
    assert Path(image).is_file() and image.endswith(".png")
    # report.md's commands work from any folder; the console's are the same files, seen from here
    model = report["how_to"][0].split("--model ")[1].split()[0]
    assert Path(image).is_absolute() and Path(model).is_absolute() and (Path(model) / "config.json").is_file()
    assert f"--model {model} " in text
    shown = report["summary_text"].split("groundinggpt chat --model ")[1].split()[0]
    assert Path(shown).resolve() == Path(model)


def test_stages_follow_the_paper_freeze_plan(fast_run):
    out, _, _ = fast_run
    for stage, trains_llm in ((1, False), (2, True), (3, True)):
        log = json.loads((out / "models" / f"stage{stage}" / "run_log.json").read_text())
        summary = log["freeze"]["summary"]
        assert summary["vision_tower"]["trainable"] == 0 and summary["audio_encoder"]["trainable"] == 0
        assert (summary["language_model"]["trainable"] > 0) == trains_llm
        assert summary["image_adapter"]["trainable"] > 0
        assert not list((out / "models" / f"stage{stage}").glob("checkpoint-*"))


def test_blind_test_files_hold_no_media(fast_run):
    out, _, _ = fast_run
    for name in ("test_rec_blind.jsonl", "test_temporal_blind.jsonl", "test_sound_blind.jsonl"):
        for line in (out / "world" / name).read_text().splitlines():
            rec = json.loads(line)
            kinds = {p.get("type") for m in rec["messages"] if isinstance(m["content"], list) for p in m["content"]}
            assert kinds <= {"text"}, name
    for line in (out / "world" / "test_sound_no_audio.jsonl").read_text().splitlines():
        kinds = {p.get("type") for m in json.loads(line)["messages"] if isinstance(m["content"], list)
                 for p in m["content"]}
        assert "image" in kinds and "audio" not in kinds


def test_rerun_resumes_and_skips_finished_phases(fast_run):
    out, _, _ = fast_run
    state = json.loads((out / STATE_FILE).read_text())
    state["phases"]["eval"]["status"] = "running"  # as if killed during the evaluation
    (out / STATE_FILE).write_text(json.dumps(state))
    messages: list[str] = []
    run_quickstart(out, plan=fast_plan(), progress=False, threads=1, say=messages.append)
    joined = "\n".join(messages)
    assert "resuming the quickstart" in joined
    for phase in ("world", "init", "features", "stage1", "stage2", "curve", "stage3"):
        assert f"[{phase}] already done" in joined
    assert "[eval] held-out evaluation" in joined


def test_other_settings_are_refused_unless_overwrite(fast_run, tmp_path):
    out, _, _ = fast_run
    with pytest.raises(QuickstartError, match="other settings"):
        _prepare_out(out, fast_plan(seed=1), overwrite=False, say=lambda m: None)
    # --overwrite on a copy (the fixture's folder stays for the other tests)
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out / "world", copy / "world")
    shutil.copy(out / STATE_FILE, copy / STATE_FILE)
    state = _prepare_out(copy, fast_plan(seed=1), overwrite=True, say=lambda m: None)
    assert not (copy / "world").exists() and state.data["plan"]["seed"] == 1


def test_a_foreign_folder_is_never_written_or_deleted(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(QuickstartError, match="holds no quickstart run"):
            _prepare_out(out, fast_plan(), overwrite=overwrite, say=lambda m: None)
    assert (out / "thesis.tex").read_text() == "precious"


def test_blind_copy_keeps_the_question(tmp_path):
    src = tmp_path / "t.jsonl"
    rec = {"id": "a", "task": "rec", "messages": [{"role": "user", "content": [
        {"type": "image", "image": "x.png"}, {"type": "text", "text": "Output the coordinate of the star."}]},
        {"role": "assistant", "content": "the star[0.1, 0.1, 0.2, 0.2]"}],
        "meta": {"box": [0.1, 0.1, 0.2, 0.2], "image_size": [64, 64]}}
    src.write_text(json.dumps(rec) + "\n")
    assert _blind_copy(src, tmp_path / "b.jsonl", ("image", "video", "audio")) == 1
    out = json.loads((tmp_path / "b.jsonl").read_text())
    assert out["messages"][0]["content"] == [{"type": "text", "text": "Output the coordinate of the star."}]
    assert out["meta"]["box"] == rec["meta"]["box"]


def test_cli_lists_quickstart():
    result = subprocess.run([sys.executable, "-m", "groundinggpt.cli", "quickstart", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--ablation" in result.stdout and "--overwrite" in result.stdout


def test_cli_imports_the_quickstart_only_when_the_command_runs():
    code = ("import sys; from groundinggpt.cli import build_parser; p = build_parser(); "
            "print(sorted(m for m in sys.modules if m.startswith('groundinggpt.quickstart'))); "
            "args = p.parse_args(['quickstart', '--fast']); "
            "print(args.func.__module__, sorted(m for m in sys.modules if m.startswith('groundinggpt.quickstart')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    before, after = result.stdout.splitlines()
    assert before == "[]"
    assert after == "groundinggpt.cli_quickstart []"  # parsing the arguments does not import it either


def _state(values: dict[str, tuple[float, float]], constants: dict[str, float]) -> dict:
    """A run's state as the phases record it: per test (with media, without media) and the constant baselines."""
    from groundinggpt.quickstart import TESTS

    evals, baselines = {}, {}
    for name, (_, key, base) in TESTS.items():
        with_media, blind = values[name]
        evals[name] = {"with_media": {"metrics": {key: with_media}, "n": 300},
                       "without_media": {"metrics": {key: blind}, "n": 300}}
        baselines[base] = {"test_accuracy": constants[name]}
    return {"plan": {}, "phases": {"world": {"status": "done", "seconds": 1.0, "info": {"baselines": baselines}},
                                   "eval": {"status": "done", "seconds": 2.0, "info": evals}}}


def test_assess_needs_the_target_and_twice_each_blind_baseline():
    assert assess(65.0, 60.0, 10.0, 20.0) == {"met": True, "missed": []}
    assert assess(60.0, 60.0, 30.0, 30.0)["met"]  # the bounds are inclusive
    low = assess(59.9, 60.0, 5.0, 5.0)
    assert not low["met"] and low["missed"] == ["59.9 % < target 60 %"]
    blind = assess(70.0, 60.0, 36.0, 40.0)  # a model that is as good without its media says nothing
    assert not blind["met"] and len(blind["missed"]) == 2
    assert "best constant answer (36.0 %)" in blind["missed"][0] and "without its media (40.0 %)" in blind["missed"][1]
    assert assess(None, 60.0, 1.0, 1.0) == {"met": False, "missed": ["not evaluated"]}
    assert assess(61.0, 60.0, None, None)["met"]  # a baseline that was not measured cannot be held against it


def test_report_says_which_targets_are_met_and_why_others_are_not(tmp_path):
    state = _state({"rec": (72.0, 3.0), "temporal": (50.0, 30.0), "sound": (20.0, 1.0)},
                   {"rec": 6.0, "temporal": 27.0, "sound": 4.7})
    report = build_report(tmp_path, state)
    m = report["metrics"]
    assert m["rec"]["met"] and m["rec"]["value"] == 72.0 and m["rec"]["goal"] == 80.0
    assert not m["temporal"]["met"] and "2× the best constant answer (27.0 %)" in m["temporal"]["missed"][0]
    assert "without its media (30.0 %)" in m["temporal"]["missed"][1]
    assert not m["sound"]["met"] and m["sound"]["missed"] == ["20.0 % < target 60 %"]
    text = "\n".join(report_markdown(report))
    assert "**Targets missed: temporal grounding (R@1, IoU 0.5), sound-source localisation (Acc@0.5).**" in text
    assert "| REC (Acc@0.5) | **72.0 %** | 60 % ✓ (80 %) |" in text
    assert "targets missed (temporal_grounding R1@0.5, sound_localization Acc@0.5)" in summary_text(report, [])
    met = build_report(tmp_path, _state({n: (90.0, 1.0) for n in ("rec", "temporal", "sound")},
                                        {n: 5.0 for n in ("rec", "temporal", "sound")}))
    assert all(v["met"] for v in met["metrics"].values())
    assert "Targets missed" not in "\n".join(report_markdown(met)) and "all targets met" in summary_text(met, [])


def test_the_ablation_is_a_plan_of_its_own():
    import dataclasses

    plan = fast_plan()
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.max_steps = None
    main = fast_plan(steps=5)
    full = dataclasses.replace(main, max_steps=None)
    ablation = coarse_to_fine(full, stage1_steps=157)
    assert ablation.plan.max_steps == {"1": 157} and full.max_steps is None  # the main plan is untouched
    assert ablation.stage_files["1"] == ("stage1.jsonl", "stage2.jsonl")
    assert ablation.stage_files["2"] == ("stage2.jsonl",) and ablation.replay_files["1"] == ("stage1.jsonl",)
    assert coarse_to_fine(main, stage1_steps=157).plan.max_steps["1"] == 5  # a plan's own limit stays


def test_committed_parts_load_into_float32(tmp_path):
    import torch

    from groundinggpt.miniature import ASSETS, build_miniature, load_parts_info
    from groundinggpt.miniature.parts import PART_FILES

    total = sum((ASSETS / f).stat().st_size for f in PART_FILES.values())
    assert total < 12_000_000  # "a few MB"
    info = load_parts_info()
    assert set(info["reports"]) == {"vision", "audio", "llm"}
    model, processor = build_miniature()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert processor.config.system_prompt and processor.config.image_seq_length == model.config.image_seq_length


def test_unknown_ablation_is_refused(tmp_path):
    with pytest.raises(QuickstartError, match="unknown ablation"):
        run_quickstart(tmp_path / "x", plan=fast_plan(), ablation="nope", progress=False)
    assert not (tmp_path / "x").exists()


def test_coarse_to_fine_ablation_trains_stage1_on_fine_data_too(fast_run):
    """Table 7: the ablation's stage 1 sees coarse + fine data; its REC lands beside the main run's."""
    out, _, _ = fast_run
    report = run_quickstart(out, plan=fast_plan(), ablation="coarse-to-fine", progress=False, threads=1,
                            say=lambda m: None)
    main_tasks = json.loads((out / "models" / "stage1" / "run_log.json").read_text())["data"]["by_task"]
    ablation_tasks = json.loads((out / "models" / "ablation-fine-stage1" / "run_log.json").read_text())["data"]["by_task"]
    assert "rec" not in main_tasks and "rec" in ablation_tasks
    assert set(main_tasks) < set(ablation_tasks)
    a = report["ablation"]
    assert a["rec_stage1_coarse_only"] == report["metrics"]["rec"]["value"]
    assert a["rec_stage1_coarse_plus_fine"] is not None
    assert "coarse-to-fine" in (out / "report.md").read_text()
    # the ablation's stage 1 takes as many optimizer steps as the main one (same budget)
    state = json.loads((out / STATE_FILE).read_text())
    assert state["phases"]["ablation-stage1"]["info"]["steps"] == state["phases"]["stage1"]["info"]["steps"]


# ---- the learning curve of stage 2 (groundinggpt.quickstart.curve)


def test_fast_run_scores_a_learning_curve_during_stage2(fast_run):
    """Stage 1's model, a snapshot kept at step 1 of stage 2's two steps, and stage 2's model, each scored on
    the held-out questions with the evaluation's scorer: the curve's numbers are its predictions' scores."""
    from groundinggpt.grounding import box_iou, temporal_iou
    from groundinggpt.quickstart import TESTS

    out, _, _ = fast_run
    saved = json.loads((out / "report.json").read_text())
    points = saved["curve"]["points"]
    assert [(p["step"], p["samples"], p["label"]) for p in points] == [
        (0, 0, "stage 1"), (1, 2, "stage 2, step 1"), (2, 4, "stage 2")]  # batch 2 in the fast plan
    models = out / "models"
    sources = {0: models / "stage1", 1: models / "stage2-curve" / "step-1", 2: models / "stage2"}
    for p in points:
        for name, (_, key, _) in TESTS.items():
            folder = out / p["folder"] / name
            summary = json.loads((folder / "summary.json").read_text())
            assert Path(summary["source"]) == sources[p["step"]]  # scored with that point's model
            records = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
            assert len(records) == p["n"][name] == 4  # min(curve_questions, the fast world's 4 test questions)
            iou = temporal_iou if name == "temporal" else box_iou
            correct = [r["parsed"] is not None and iou(r["parsed"], r["truth"]) >= 0.5 for r in records]
            assert correct == [r["correct"] for r in records], name
            assert p["values"][name] == pytest.approx(100 * sum(correct) / len(correct)) == summary["metrics"][key]
    assert not (out / "models" / "stage2-curve").exists()  # snapshots go once scored
    assert saved["timings_seconds"]["curve"] >= 0 and (out / "curve.png").stat().st_size > 0
    text = (out / "report.md").read_text()
    assert "## Learning curve during stage 2" in text and "![learning curve](curve.png)" in text
    assert "| 2 | 1 | stage 2, step 1 |" in text and "| target | | | 60 % | 45 % | 60 % |" in text


def _curve_state() -> dict:
    state = _state({"rec": (40.0, 3.0), "temporal": (30.0, 20.0), "sound": (50.0, 1.0)},
                   {"rec": 6.0, "temporal": 27.0, "sound": 4.7})
    values = [(0, 0, {"rec": 1.0, "temporal": 10.0, "sound": 2.0}), (150, 4800, {"rec": 12.5, "temporal": 20.0,
              "sound": 9.0}), (600, 19200, {"rec": 38.0, "temporal": 31.0, "sound": 52.0})]
    state["phases"]["curve"] = {"status": "done", "seconds": 30.0, "info": {"questions": 100, "points": [
        {"step": step, "samples": samples, "label": label, "values": v, "n": {k: 100 for k in v}, "folder": "x"}
        for (step, samples, v), label in zip(values, ("stage 1", "stage 2, step 150", "stage 2"))]}}
    return state


def test_report_lists_the_curve_beside_the_targets_and_draws_it(tmp_path):
    from groundinggpt.quickstart import write_report

    report = write_report(tmp_path, _curve_state())
    assert [p["values"]["rec"] for p in report["curve"]["points"]] == [1.0, 12.5, 38.0]
    assert report["curve"]["targets"] == {"rec": 60.0, "temporal": 45.0, "sound": 60.0}
    assert (tmp_path / "curve.png").stat().st_size > 0 and report["curve"]["plot"] == "curve.png"
    text = (tmp_path / "report.md").read_text()
    assert "| 4800 | 150 | stage 2, step 150 | 12.5 % | 20.0 % | 9.0 % |" in text
    assert "| 19200 | 600 | stage 2 | 38.0 % | 31.0 % | 52.0 % |" in text
    assert "| target | | | 60 % | 45 % | 60 % |" in text and "first 100 questions" in text
    assert "rec 1.0 → 12.5 → 38.0" in report["summary_text"] and "0, 4800, 19200 samples" in report["summary_text"]
    assert json.loads((tmp_path / "report.json").read_text())["curve"]["points"][1]["samples"] == 4800
    # the curve's phase counts in the run's total; a run without one (older state) reports none
    assert report["total_seconds"] == 33.0
    assert "curve" not in build_report(tmp_path, _state({n: (1.0, 1.0) for n in ("rec", "temporal", "sound")},
                                                          {n: 1.0 for n in ("rec", "temporal", "sound")}))


def test_curve_points_come_from_snapshots_in_order_of_samples(tmp_path):
    from groundinggpt.quickstart.curve import CURVE_FOLDER, curve_points, samples_seen, snapshot_steps

    assert snapshot_steps(670, (0.25, 0.5, 0.75)) == [168, 335, 503]
    assert snapshot_steps(2, (0.25, 0.5, 0.75)) == [1] and snapshot_steps(1, (0.5,)) == []
    assert samples_seen(20, 32, 1000) == 640 and samples_seen(32, 32, 1000) == 1000  # a short last batch
    assert samples_seen(33, 32, 1000) == 1032 and samples_seen(5, 8, None) == 40
    folder = tmp_path / CURVE_FOLDER
    for step in (335, 168):
        (folder / f"step-{step}").mkdir(parents=True)
        (folder / f"step-{step}" / "curve_point.json").write_text(json.dumps({"step": step, "samples": step * 32}))
    (folder / "step-503").mkdir()  # a snapshot cut short before its point file: not a point
    stage2 = {"steps": 670, "batch_size": 32, "samples": 21000}
    points = curve_points(tmp_path, stage2)
    assert [(p["step"], p["samples"]) for p in points] == [(0, 0), (168, 5376), (335, 10720), (670, 21000)]
    assert points[0]["model"] == tmp_path / "stage1" and points[-1]["model"] == tmp_path / "stage2"
    (folder / "final.json").write_text(json.dumps({"step": 670, "samples": 21234}))  # what the callback counted
    assert curve_points(tmp_path, stage2)[-1]["samples"] == 21234

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
    _blind_copy,
    _prepare_out,
    fast_plan,
    run_quickstart,
)


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
    # missed targets point to the measurements that explain them; met ones do not
    missed = [n for n, m in saved["metrics"].items() if not m["met"]]
    assert missed and "**Targets missed: " in text and "scripts/diagnose_selection.py" in text
    from groundinggpt.quickstart import _report_markdown

    all_met = {**saved, "metrics": {n: {**m, "met": True} for n, m in saved["metrics"].items()}}
    assert not any("Targets missed" in line for line in _report_markdown(all_met))
    assert (out / "examples_rec.png").stat().st_size > 0
    assert (out / "examples_temporal.png").is_file() and (out / "examples_sound.png").is_file()
    gg = GroundingGPT.from_pretrained(out / "models" / "stage3")
    assert gg.processor.config.system_prompt  # the miniature's short system prompt travels with the model
    assert "groundinggpt chat" in report["summary_text"] and "targets missed" in report["summary_text"]
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
    for phase in ("world", "init", "features", "stage1", "stage2", "stage3"):
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

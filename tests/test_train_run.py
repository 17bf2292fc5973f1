"""End-to-end training runs of the tiny preset on a synthetic data set (a few steps each, CPU).

One optimizer step covers every sample (batch 2 x accumulation 2 = the 4 samples: two
REC images, one video, one audio clip) with no warmup, so every trainable tensor gets a
gradient and a non-zero learning rate: "trainable changed, frozen bit-identical" is exact.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from groundinggpt.data.schema import DataError
from groundinggpt.presets import build_tiny
from groundinggpt.train.freeze import plan_for_stage
from groundinggpt.train.recipe import build_config
from groundinggpt.train.run import last_complete_checkpoint, prepare_model, train
from groundinggpt.train.toy import toy_samples, write_toy_dataset

ONE_STEP_OVER_EVERYTHING = [
    "per_device_train_batch_size=2", "gradient_accumulation_steps=2", "warmup_steps=0", "save_strategy=no",
]


def run_stage(data, output, stage=1, model="tiny", sets=(), max_steps=1, **overrides) -> Path:
    data = [str(p) for p in (data if isinstance(data, (list, tuple)) else [data])]
    config = build_config(None, overrides={"stage": stage, "model": str(model), "data": data,
                                           "output": str(output), **overrides},
                          sets=[*ONE_STEP_OVER_EVERYTHING, *sets], training_overrides={"max_steps": max_steps})
    return train(config).output


def by_module(state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        out.setdefault(key.split(".", 1)[0], {})[key] = tensor
    return out


def assert_frozen_and_trained(before: dict, after: dict, trainable: set[str]) -> None:
    """Modules not in ``trainable`` are bit-identical; every tensor of a trainable module changed."""
    assert before.keys() == after.keys()
    for module, tensors in by_module(before).items():
        for key, tensor in tensors.items():
            if module in trainable:
                # LayerNorm weights etc. all get gradients here; a tensor left untouched means a lost branch.
                assert not torch.equal(tensor, after[key]), f"{key} did not train"
            else:
                assert torch.equal(tensor, after[key]), f"{key} is frozen but changed"


def initial_state() -> dict[str, torch.Tensor]:
    model, _ = build_tiny(seed=0)  # the recipes' seed: what `--model tiny` starts from
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    return write_toy_dataset(root, n_images=2, n_videos=1, n_audios=1)


@pytest.fixture(scope="module")
def stage1(toy, tmp_path_factory):
    return run_stage(toy, tmp_path_factory.mktemp("runs") / "stage1", stage=1)


def test_stage1_trains_only_the_branches_and_saves_a_complete_model(stage1):
    from groundinggpt import GroundingGPT

    saved = load_file(stage1 / "model.safetensors")
    assert_frozen_and_trained(initial_state(), saved, set(plan_for_stage(1).trainable))
    # The authors' stage-1 save kept only the image projector; ours holds every branch.
    for branch in ("image_adapter", "video_branch", "audio_branch"):
        assert any(k.startswith(branch + ".") for k in saved)
    gg = GroundingGPT.from_pretrained(stage1)
    assert gg.processor.config.image_seq_length == gg.model.config.image_seq_length
    for key, tensor in gg.model.state_dict().items():
        assert torch.equal(tensor, saved[key])

    log = json.loads((stage1 / "run_log.json").read_text())
    assert log["stage"] == 1 and log["world_size"] == 1 and log["throughput"]["global_steps"] == 1
    assert log["data"]["by_task"] == {"rec": 2, "temporal_grounding": 1, "audio_caption": 1}
    assert log["freeze"]["summary"]["language_model"]["trainable"] == 0
    assert log["throughput"]["samples_per_second"] > 0 and log["throughput"]["tokens_per_second"] > 0
    assert log["skipped"]["skipped_count"] == 0
    rows = (stage1 / "loss.csv").read_text().splitlines()
    assert rows[0].startswith("step,epoch,loss") and len(rows) == 2
    assert (stage1 / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_stage2_starts_from_stage1_and_trains_llm_too(stage1, toy, tmp_path):
    # Replay: the previous stage's data (distinct ids) mixed in at alpha 0.5.
    prev = tmp_path / "prev.jsonl"
    prev.write_text("".join(json.dumps(s) + "\n" for s in toy_samples(toy.parent, n_images=2, n_videos=0,
                                                                        n_audios=0, prefix="p", seed=1)))
    stage1_state = load_file(stage1 / "model.safetensors")

    config = build_config(None, overrides={"stage": 2, "model": str(stage1), "data": [str(toy)],
                                           "output": str(tmp_path / "unused")})
    model, _, info = prepare_model(config)
    for key, tensor in model.state_dict().items():  # stage 2 begins exactly where stage 1 ended
        assert torch.equal(tensor, stage1_state[key]), key
    assert info["summary"]["language_model"]["frozen"] == 0

    out = run_stage(toy, tmp_path / "stage2", stage=2, model=stage1, previous_data=[str(prev)], alpha=0.5,
                    media_root=str(toy.parent),
                    sets=["gradient_accumulation_steps=3"])  # 4 current + 1 replayed in one step
    assert_frozen_and_trained(stage1_state, load_file(out / "model.safetensors"), set(plan_for_stage(2).trainable))
    log = json.loads((out / "run_log.json").read_text())
    assert log["recipe"].endswith("tiny-stage2.yaml")  # a tiny chain keeps the CPU recipe
    assert log["data"]["replay"]["previous_used"] == 1 and log["data"]["samples"] == 5


def test_lora_with_gradient_checkpointing_saves_a_merged_plain_model(toy, tmp_path):
    pytest.importorskip("peft")
    from groundinggpt import GroundingGPT

    out = run_stage(toy, tmp_path / "lora", stage=3, lora=True, gradient_checkpointing=True,
                    sets=["lora_r=4", "learning_rate=1e-3"])
    saved = load_file(out / "model.safetensors")
    assert not [k for k in saved if "lora_" in k or "base_layer" in k]
    start = initial_state()
    assert saved.keys() == start.keys()
    # Merged LoRA: the projections moved, the un-adapted LLM tensors did not.
    assert not torch.equal(saved["language_model.model.layers.0.self_attn.q_proj.weight"],
                           start["language_model.model.layers.0.self_attn.q_proj.weight"])
    assert torch.equal(saved["language_model.model.embed_tokens.weight"],
                       start["language_model.model.embed_tokens.weight"])
    for key in start:
        if key.startswith(("vision_tower.", "audio_encoder.")):
            assert torch.equal(saved[key], start[key])
    gg = GroundingGPT.from_pretrained(out)
    assert not any("lora" in name for name, _ in gg.model.named_modules())
    log = json.loads((out / "run_log.json").read_text())
    assert log["freeze"]["lora_parameters"] > 0 and log["config"]["gradient_checkpointing"]


def test_feature_cache_trains_the_same(stage1, toy, tmp_path):
    out = run_stage(toy, tmp_path / "cached", stage=1, feature_cache=str(tmp_path / "features"))
    log = json.loads((out / "run_log.json").read_text())
    assert log["feature_cache"]["encoded"] == 4
    reference = json.loads((stage1 / "run_log.json").read_text())["final_train_loss"]
    assert log["final_train_loss"] == pytest.approx(reference, abs=1e-5)


def test_missing_image_is_skipped_and_reported(toy, tmp_path):
    samples = [json.loads(line) for line in toy.read_text().splitlines()]
    broken = json.loads(json.dumps(samples[0]))
    broken["id"] = "rec-missing"
    broken["messages"][0]["content"][0]["image"] = "images/does-not-exist.png"
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(s) + "\n" for s in [*samples, broken]))

    out = run_stage(data, tmp_path / "skip", stage=1, media_root=str(toy.parent))
    log = json.loads((out / "run_log.json").read_text())
    assert log["data"]["samples"] == 5 and log["data"]["trained_on"] == 4
    [entry] = log["skipped"]["skipped"]
    assert entry["id"] == "rec-missing" and "does-not-exist.png" in entry["reason"]

    with pytest.raises(DataError, match="rec-missing"):
        run_stage(data, tmp_path / "strict", stage=1, media_root=str(toy.parent), strict=True)
    # Refused before its first step: no run record or skip log left behind, so the fixed
    # command runs into the same folder (it was refused as "holds no run to resume").
    assert not (tmp_path / "strict").exists()
    data.write_text("".join(json.dumps(s) + "\n" for s in samples))
    out = run_stage(data, tmp_path / "strict", stage=1, media_root=str(toy.parent), strict=True)
    assert json.loads((out / "run_log.json").read_text())["data"]["trained_on"] == 4
    # A folder that held something before keeps it: only what the refused run wrote goes.
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="every sample was skipped"):
        run_stage(data, kept, stage=1, media_root=str(tmp_path / "nowhere"), overwrite=True)
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]


def test_resume_refuses_changed_data_or_settings_and_names_each(toy, tmp_path):
    import hashlib
    import re

    from groundinggpt.train.recipe import RecipeError

    data = tmp_path / "data.jsonl"
    data.write_text(toy.read_text())
    out = tmp_path / "run"

    def resume(*sets):
        return run_stage(data, out, stage=1, media_root=str(toy.parent), resume=True, sets=sets)

    run_stage(data, out, stage=1, media_root=str(toy.parent))
    record = json.loads((out / "train_run.json").read_text())
    assert record["data"] == [{"path": str(data.resolve()), "sha256": hashlib.sha256(data.read_bytes()).hexdigest()}]
    assert record["training"]["per_device_train_batch_size"] == 2 and record["training"]["seed"] == 0
    original = data.read_text()
    data.write_text(original.replace("[0.", "[0.0", 1))  # edited in place: same path, other samples
    with pytest.raises(RecipeError, match=re.escape(f"holds another run (data file {data.resolve()} changed since "
                                                    "the run started (sha256 ")):
        resume()
    data.write_text(original)
    for assignment, shown in (("per_device_train_batch_size=1", "per_device_train_batch_size: 2 there, 1 now"),
                              ("gradient_accumulation_steps=4", "gradient_accumulation_steps: 2 there, 4 now"),
                              ("learning_rate=0.5", "learning_rate: 0.001 there, 0.5 now"),
                              ("lr_scheduler_type=linear", "lr_scheduler_type: 'cosine' there, 'linear' now"),
                              ("seed=7", "seed: 0 there, 7 now")):
        with pytest.raises(RecipeError, match=re.escape(shown)):
            resume(assignment)
    with pytest.raises(RecipeError, match=re.escape("max_steps: 1 there, 2 now")):
        run_stage(data, out, stage=1, media_root=str(toy.parent), resume=True, max_steps=2)
    weights = (out / "model.safetensors").read_bytes()
    resume()  # the same run: finished, nothing to do
    assert (out / "model.safetensors").read_bytes() == weights


def test_final_train_loss_after_a_resume_covers_the_whole_run(toy, tmp_path):
    """The Trainer's train_loss is the resumed session's mean; run_log.json gives the run's.

    Logging every 10 steps: the save at step 2 must log too, or the checkpoint's history
    would not hold the loss of the steps it trained.
    """
    sets = ["save_strategy=steps", "save_steps=2", "save_total_limit=null", "logging_steps=10"]
    out = run_stage(toy, tmp_path / "run", stage=1, media_root=str(toy.parent), sets=sets, max_steps=3)
    straight = json.loads((out / "run_log.json").read_text())["final_train_loss"]
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert [e["step"] for e in state["log_history"] if "loss" in e] == [2]
    # As a run killed after its step-2 checkpoint leaves the folder:
    for name in ("model.safetensors", "run_log.json"):
        (out / name).unlink()
    for ckpt in out.glob("checkpoint-*"):
        if ckpt.name != "checkpoint-2":
            import shutil

            shutil.rmtree(ckpt)
    run_stage(toy, out, stage=1, media_root=str(toy.parent), sets=sets, max_steps=3, resume=True)
    log = json.loads((out / "run_log.json").read_text())
    assert log["resumed_from"].endswith("checkpoint-2") and log["throughput"]["session_steps"] == 1
    assert log["final_train_loss"] == pytest.approx(straight, rel=1e-6)
    assert log["metrics"]["train_loss"] != pytest.approx(straight, rel=1e-3)  # the session's own mean differs


def test_resume_into_a_new_folder_starts_quietly(toy, tmp_path, capsys):
    run_stage(toy, tmp_path / "new", stage=1, media_root=str(toy.parent), resume=True)
    assert "no complete checkpoint" not in capsys.readouterr().err  # nothing was there to resume
    # a run that died before its first checkpoint: its start record is there, nothing else to keep
    half = tmp_path / "half"
    run_stage(toy, half, stage=1, media_root=str(toy.parent))
    for name in ("model.safetensors", "run_log.json"):
        (half / name).unlink()
    run_stage(toy, half, stage=1, media_root=str(toy.parent), resume=True)
    assert "--resume: no complete checkpoint in" in capsys.readouterr().err


def test_output_folders_that_would_lose_or_mix_work_are_refused(toy, tmp_path, capsys):
    from groundinggpt.train.recipe import RecipeError

    def start(output, **kw):
        return run_stage(toy, output, stage=1, media_root=str(toy.parent), **kw)

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text("{}")  # somebody else's files: never overwritten in silence
    with pytest.raises(RecipeError, match="is not empty .*config.json.* --overwrite"):
        start(mine)
    with pytest.raises(RecipeError, match="is not empty"):
        start(mine, resume=True)  # nothing of ours to resume there either
    assert (mine / "config.json").read_text() == "{}"
    start(mine, overwrite=True)  # asked for
    done = start(tmp_path / "done")
    with pytest.raises(RecipeError, match="is not empty"):
        start(done)  # a finished model folder is not re-trained over
    weights = (done / "model.safetensors").read_bytes()
    start(done, resume=True)  # finished: nothing to do, nothing touched
    assert "finished already" in capsys.readouterr().err and (done / "model.safetensors").read_bytes() == weights
    with pytest.raises(RecipeError, match=r"holds another run \(stage: 1 there, 2 now"):
        run_stage(toy, done, stage=2, model=done, media_root=str(toy.parent), resume=True)
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(RecipeError, match="is a file"):
        start(afile)
    with pytest.raises(RecipeError, match="no optimizer step was taken"):
        start(tmp_path / "zero", max_steps=-1, sets=["num_train_epochs=0"])
    other = tmp_path / "other"
    other.mkdir()
    (other / "more.jsonl").write_text(toy.read_text())
    with pytest.raises(RecipeError, match="different folders .* give --media-root"):
        run_stage([toy, other / "more.jsonl"], tmp_path / "two-roots")


def test_a_diverged_run_fails_loudly_and_saves_nothing(toy, tmp_path):
    from groundinggpt.train.run import TrainingDiverged

    with pytest.raises(TrainingDiverged, match="training diverged: .* trained tensors hold NaN or inf"):
        run_stage(toy, tmp_path / "nan", stage=1, media_root=str(toy.parent), max_steps=3,
                  sets=["learning_rate=1e38", "max_grad_norm=0", "logging_steps=1"])
    assert not (tmp_path / "nan" / "model.safetensors").exists()


def test_cli_errors_before_training(toy, tmp_path, capsys):
    from groundinggpt.cli import main

    lines = toy.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines[0] + "\n" + lines[1][:-5] + "\n")  # line 2 is cut short
    out = tmp_path / "out"
    assert main(["train", "--stage", "1", "--model", "tiny", "--data", str(bad), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2" in err and "invalid JSON" in err
    assert not out.exists()  # nothing loaded, nothing written

    recipe = tmp_path / "mine.yaml"
    recipe.write_text("training:\n  per_device_train_batch_size: 2\n  learnig_rate: 1.0e-3\n")
    assert main(["train", "--stage", "1", "--model", "tiny", "--data", str(toy), "--output", str(out),
                 "--recipe", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "learnig_rate" in err and str(recipe) in err


@pytest.mark.parametrize("assignment, message", [
    ("learning_rate=abc", "training.learning_rate must be a positive number, got 'abc'"),
    ("learning_rate=", "training.learning_rate must be a positive number, got None"),
    ("gradient_accumulation_steps=0", "training.gradient_accumulation_steps must be a positive integer, got 0"),
    ("num_train_epochs=[1, 2]", "training.num_train_epochs must be a number >= 0, got [1, 2]"),
    ("alpha=abc", "groundinggpt.alpha must be a number, got 'abc'"),
    ("max_length=1.5", "groundinggpt.max_length must be a positive integer or null, got 1.5"),
    ("strict=maybe", "groundinggpt.strict must be true or false, got 'maybe'"),
    ("max_steps=0", "training.max_steps must be a positive integer (or -1: run num_train_epochs), got 0"),
    (f"previous_data=[{__file__}]", "--previous-data was given but alpha is 0"),
])
def test_set_values_of_the_wrong_type_are_named_before_anything_loads(toy, tmp_path, capsys, assignment, message):
    from groundinggpt.cli import main

    out = tmp_path / "out"
    assert main(["train", "--stage", "1", "--model", "tiny", "--data", str(toy), "--output", str(out),
                 "--set", assignment]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_empty_previous_data_is_refused(toy, tmp_path, capsys):
    from groundinggpt.cli import main

    empty = toy.parent / "empty-previous.jsonl"  # beside the data: one media root
    empty.write_text("")
    try:
        assert main(["train", "--stage", "2", "--model", "tiny", "--data", str(toy), "--output", str(tmp_path / "o"),
                     "--previous-data", str(empty), "--alpha", "0.5"]) == 2
    finally:
        empty.unlink()
    assert "holds no samples; alpha=0.5 would replay nothing" in capsys.readouterr().err


def test_a_recipe_key_written_twice_is_refused(toy, tmp_path, capsys):
    from groundinggpt.cli import main

    recipe = tmp_path / "twice.yaml"
    recipe.write_text("training:\n  learning_rate: 1.0e-3\n  learning_rate: 1.0e-1\n")
    assert main(["train", "--stage", "1", "--model", "tiny", "--data", str(toy), "--output", str(tmp_path / "o"),
                 "--recipe", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert f"{recipe}: invalid YAML" in err and "'learning_rate' is written twice" in err and "line 3" in err


def test_a_recipe_that_is_not_utf8_is_named(toy, tmp_path, capsys):
    from groundinggpt.cli import main

    recipe = tmp_path / "latin1.yaml"
    recipe.write_bytes("training:\n  learning_rate: 1.0e-3  # caf\xe9\n".encode("latin-1"))
    assert main(["train", "--stage", "1", "--model", "tiny", "--data", str(toy), "--output", str(tmp_path / "o"),
                 "--recipe", str(recipe)]) == 2
    assert f"{recipe}: not UTF-8 text" in capsys.readouterr().err


def test_last_complete_checkpoint_ignores_a_half_written_one(tmp_path):
    assert last_complete_checkpoint(tmp_path / "nothing") is None
    for step, complete in ((2, True), (10, True), (12, False)):  # a kill during the save of step 12
        (tmp_path / f"checkpoint-{step}").mkdir()
        if complete:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert last_complete_checkpoint(tmp_path).name == "checkpoint-10"  # numeric order, not text order


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    """Kill a CLI run with SIGKILL after its first checkpoint, resume, compare with a straight run.

    An image and a video: the video branch's Q-Former dropout makes the result depend on the
    RNG state, which the resume must restore along with weights, optimizer and scheduler.

    Bit-identical, not close: every run uses one torch thread as the run started with, and
    the resume is given two on purpose (as a changed OMP_NUM_THREADS, or a test that left
    its own count behind, once did): it must go back to the recorded one, since a sum split
    over another number of threads rounds differently (~1e-7 after these 6 steps).
    """
    toy = write_toy_dataset(tmp_path / "data", n_images=1, n_videos=1, n_audios=0)
    steps = 6
    sets = ["per_device_train_batch_size=2", "gradient_accumulation_steps=1", "save_strategy=steps",
            "save_steps=2", "save_total_limit=null", "warmup_steps=0.2"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference = run_stage(toy, tmp_path / "straight", stage=1, sets=sets, max_steps=steps)
    finally:
        torch.set_num_threads(threads)

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "groundinggpt.cli", "train", "--stage", "1", "--model", "tiny",
           "--data", str(toy), "--output", str(out), "--max-steps", str(steps)]
    for s in [*ONE_STEP_OVER_EVERYTHING, *sets]:
        cmd += ["--set", s]
    log = (tmp_path / "killed.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 900  # a guard against a hang only: under load a step can take 30 s+
    while not (out / "checkpoint-2" / "trainer_state.json").exists():
        assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint written in time"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (out / "model.safetensors").exists()  # it really was stopped mid-run

    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "--resume: 1 torch threads, as the run started" in resumed.stderr
    run_log = json.loads((out / "run_log.json").read_text())
    assert run_log["resumed_from"] and Path(run_log["resumed_from"]).name.startswith("checkpoint-")
    # the whole run's mean loss, not the resumed steps' (6.601 vs 6.683 in the report)
    straight_loss = json.loads((reference / "run_log.json").read_text())["final_train_loss"]
    assert run_log["final_train_loss"] == pytest.approx(straight_loss, rel=1e-9)
    a = load_file(reference / "model.safetensors")
    b = load_file(out / "model.safetensors")
    assert a.keys() == b.keys()
    differ = [key for key in a if not torch.equal(a[key], b[key])]
    assert not differ, f"{len(differ)} tensors differ, e.g. {differ[0]}: " \
        f"{(a[differ[0]] - b[differ[0]]).abs().max().item():.3g} at most"
    # The loss curve covers every step exactly once, across the kill.
    steps_logged = [int(r.split(",")[0]) for r in (out / "loss.csv").read_text().splitlines()[1:]]
    assert steps_logged == list(range(1, steps + 1))


def test_checkpointing_arguments_follow_the_installed_transformers():
    """``activation_checkpointing`` where TrainingArguments has it; the older name (and the
    non-reentrant kind) on transformers releases that predate it, e.g. 5.17."""
    from transformers import TrainingArguments

    from groundinggpt.train.run import _argument_names, checkpointing_arguments

    new = checkpointing_arguments(True, {"activation_checkpointing", "gradient_checkpointing"})
    assert new == {"activation_checkpointing": True}
    old = checkpointing_arguments(True, {"gradient_checkpointing", "gradient_checkpointing_kwargs"})
    assert old == {"gradient_checkpointing": True, "gradient_checkpointing_kwargs": {"use_reentrant": False}}
    assert checkpointing_arguments(False, {"gradient_checkpointing"})["gradient_checkpointing"] is False
    # What the installed release gets is accepted and turns checkpointing on.
    names = _argument_names(TrainingArguments)
    args = TrainingArguments(output_dir="unused", report_to=[], use_cpu=True, **checkpointing_arguments(True, names))
    assert getattr(args, "activation_checkpointing", None) or args.gradient_checkpointing


def test_train_returns_the_result_run_log_json_is_written_from(stage1):
    from groundinggpt.train.result import TrainResult

    result = TrainResult.read(stage1)
    assert result.to_dict() == json.loads((stage1 / "run_log.json").read_text())
    assert result.stage == 1 and result.output == stage1.resolve() and result.throughput.global_steps >= 1

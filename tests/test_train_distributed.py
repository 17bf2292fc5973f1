"""Multi-process training on CPU: ``torchrun`` + gloo DDP, and DeepSpeed ZeRO-2 (``DS_ACCELERATOR=cpu``).

Two processes with per-device batch b must give the weights of one process with batch 2b:
the Trainer normalises the loss by the token count gathered over all processes
(``average_tokens_across_devices``), so the averaged gradients are the same sum.

The data are images only: the video/audio Q-Formers' dropout would draw different masks in
one process than in two, so their weights could not be compared. Their branches still
train in stage 1 and get no gradient from an image batch, which is exactly the case
``ddp_find_unused_parameters=True`` exists for (without it DDP fails on the second step).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from groundinggpt.train.recipe import build_config
from groundinggpt.train.run import train
from groundinggpt.train.toy import write_toy_dataset

STEPS = 2
COMMON_SETS = ["warmup_steps=0", "save_strategy=no", "gradient_accumulation_steps=1"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("ddp-data"), n_images=8, n_videos=0, n_audios=0)


@pytest.fixture(scope="module")
def single_process(images, tmp_path_factory):
    """The reference: one process, batch 2."""
    config = build_config(None, overrides={"stage": 1, "model": "tiny", "data": [str(images)],
                                           "output": str(tmp_path_factory.mktemp("single") / "out")},
                          sets=[*COMMON_SETS, "per_device_train_batch_size=2"],
                          training_overrides={"max_steps": STEPS})
    return train(config).output


def torchrun(images, output, extra_sets, env=None, timeout=300, stage=1, model="tiny", nproc=2, expect_ok=True):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    cmd = [*(launcher if nproc else [sys.executable]), "-m", "groundinggpt.cli", "train", "--stage", str(stage), "--model", str(model), "--data", str(images),
           "--output", str(output), "--max-steps", str(STEPS)]
    for s in [*COMMON_SETS, "per_device_train_batch_size=1", *extra_sets]:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    if not expect_ok:
        return proc
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return output


def assert_same_weights(a_dir, b_dir, atol=1e-6):
    a = load_file(a_dir / "model.safetensors")
    b = load_file(b_dir / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=atol, rtol=0, msg=key)


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_with_double_batch(images, single_process, tmp_path):
    out = torchrun(images, tmp_path / "ddp", [])
    log = json.loads((out / "run_log.json").read_text())
    assert log["world_size"] == 2 and log["throughput"]["global_steps"] == STEPS
    assert_same_weights(single_process, out)
    # The complete model is written once, by rank 0, and loads.
    from groundinggpt import GroundingGPT

    GroundingGPT.from_pretrained(out)


def cpu_deepspeed_config(path, stage: int):
    """The shipped ZeRO config's settings, with what a CPU run needs."""
    # DeepSpeed's default optimizer (FusedAdam) needs a compiled CUDA op; torch_adam uses torch.optim.AdamW.
    zero = {"stage": stage, "overlap_comm": False, "contiguous_gradients": True, "reduce_bucket_size": "auto"}
    if stage == 3:
        zero.update({"stage3_prefetch_bucket_size": "auto", "stage3_param_persistence_threshold": "auto",
                     "stage3_gather_16bit_weights_on_model_save": True})
    config = {
        "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
        "train_batch_size": "auto", "gradient_clipping": "auto",
        "optimizer": {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": "auto",
                                                  "weight_decay": "auto", "torch_adam": True}},
        "zero_optimization": zero,
    }
    path.write_text(json.dumps(config))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_zero_on_cpu_equals_one_process(images, single_process, tmp_path, stage):
    pytest.importorskip("deepspeed")
    ds_json = cpu_deepspeed_config(tmp_path / f"zero{stage}-cpu.json", stage)
    out = torchrun(images, tmp_path / "ds", [f"deepspeed={ds_json}"], env={"DS_ACCELERATOR": "cpu"}, timeout=500)
    log = json.loads((out / "run_log.json").read_text())
    assert log["world_size"] == 2
    if stage == 3:  # a diverged ZeRO-3 run is caught too: each process checks its own shards
        failed = torchrun(images, tmp_path / "nan", [f"deepspeed={ds_json}", "learning_rate=1e30", "max_grad_norm=0", "logging_steps=1"],
                          env={"DS_ACCELERATOR": "cpu"}, timeout=500, expect_ok=False)
        assert failed.returncode != 0 and "training diverged" in failed.stderr
        assert not (tmp_path / "nan" / "model.safetensors").exists()
    # ZeRO-3 partitions every parameter and gathers the model to save it; its sums run in
    # another order, which Adam's first step (g / sqrt(v)) magnifies to ~1e-5 on the adapter.
    assert_same_weights(single_process, out, atol=1e-6 if stage == 2 else 5e-5)


@pytest.mark.slow
def test_deepspeed_zero3_stage2_from_a_saved_model(images, single_process, tmp_path):
    """Stages 2-3 start from a saved folder: under ZeRO-3 from_pretrained builds it partitioned
    (deepspeed.zero.Init) and loads the weights into the shards; the LLM trains."""
    pytest.importorskip("deepspeed")
    from groundinggpt.models import GroundingGPTForCausalLM

    config = build_config(None, overrides={"stage": 2, "model": str(single_process), "data": [str(images)],
                                           "output": str(tmp_path / "single2")},
                          sets=[*COMMON_SETS, "per_device_train_batch_size=2"],
                          training_overrides={"max_steps": STEPS})
    reference = train(config).output
    ds_json = cpu_deepspeed_config(tmp_path / "zero3-cpu.json", 3)
    out = torchrun(images, tmp_path / "ds2", [f"deepspeed={ds_json}"], env={"DS_ACCELERATOR": "cpu"},
                   timeout=500, stage=2, model=single_process)
    # (transformers writes a gathered ZeRO-3 state dict under some legacy key names, e.g.
    # LayerNorm.gamma; loading maps them back, so the folders are compared as loaded.)
    a = GroundingGPTForCausalLM.from_pretrained(reference).state_dict()
    b = GroundingGPTForCausalLM.from_pretrained(out).state_dict()
    assert a.keys() == b.keys()
    llm = "language_model.model.layers.0.mlp.gate_proj.weight"
    single_start = GroundingGPTForCausalLM.from_pretrained(single_process).state_dict()
    assert not torch.equal(single_start[llm], b[llm])  # the LLM trained ...
    for key in a:  # ... as in one process
        torch.testing.assert_close(b[key], a[key], atol=5e-5, rtol=0, msg=key)


@pytest.mark.slow
def test_zero3_from_pretrained_parts_and_deepspeed_without_a_launcher(images, tmp_path):
    """The paper's stage 1 assembles the model from Vicuna / CLIP folders. Under ZeRO-3 the
    parts are loaded whole and partitioned by deepspeed.initialize: the result equals ZeRO-2's.
    And a DeepSpeed recipe also runs as one plain process (no torchrun), as on one GPU."""
    pytest.importorskip("deepspeed")
    from test_presets import _tiny_clip, _vicuna_like_folder

    from groundinggpt.models import GroundingGPTForCausalLM

    _vicuna_like_folder(tmp_path / "llm")
    _tiny_clip(tmp_path / "clip")
    paper = ["model_parts={llm: %s, vision: %s, audio: null}" % (tmp_path / "llm", tmp_path / "clip"),
             "tf32=false", "bf16=false", "dataloader_num_workers=0"]  # the paper recipe's GPU settings, off
    cpu = {"DS_ACCELERATOR": "cpu"}
    runs = {}
    for stage in (2, 3):
        ds_json = cpu_deepspeed_config(tmp_path / f"zero{stage}.json", stage)
        runs[stage] = torchrun(images, tmp_path / f"zero{stage}", [*paper, f"deepspeed={ds_json}"], env=cpu,
                               timeout=500, model="groundinggpt-7b")
    a, b = (GroundingGPTForCausalLM.from_pretrained(runs[k]).state_dict() for k in (2, 3))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-6, rtol=0, msg=key)
    # No launcher: the shipped zero2.json of the recipe, one process (DeepSpeed would look for MPI).
    single = [*paper, "per_device_train_batch_size=2"]
    out = torchrun(images, tmp_path / "one", single, env=cpu, nproc=0,
                   model="groundinggpt-7b")
    assert json.loads((out / "run_log.json").read_text())["world_size"] == 1

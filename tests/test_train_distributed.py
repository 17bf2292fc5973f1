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
    return train(config)


def torchrun(images, output, extra_sets, env=None, timeout=300):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "groundinggpt.cli", "train", "--stage", "1", "--model", "tiny", "--data", str(images),
           "--output", str(output), "--max-steps", str(STEPS)]
    for s in [*COMMON_SETS, "per_device_train_batch_size=1", *extra_sets]:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
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


@pytest.mark.slow
def test_deepspeed_zero2_on_cpu_equals_one_process(images, single_process, tmp_path):
    pytest.importorskip("deepspeed")
    # DeepSpeed's default optimizer (FusedAdam) needs a compiled CUDA op; torch_adam uses torch.optim.AdamW.
    config = {
        "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
        "train_batch_size": "auto", "gradient_clipping": "auto",
        "optimizer": {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": "auto",
                                                  "weight_decay": "auto", "torch_adam": True}},
        "zero_optimization": {"stage": 2, "overlap_comm": False, "contiguous_gradients": True,
                              "reduce_bucket_size": "auto"},
    }
    ds_json = tmp_path / "zero2-cpu.json"
    ds_json.write_text(json.dumps(config))
    out = torchrun(images, tmp_path / "ds", [f"deepspeed={ds_json}"], env={"DS_ACCELERATOR": "cpu"}, timeout=500)
    log = json.loads((out / "run_log.json").read_text())
    assert log["world_size"] == 2
    assert_same_weights(single_process, out)

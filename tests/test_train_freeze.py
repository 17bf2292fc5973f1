"""Freeze plans, LoRA inject/merge, gradient checkpointing and recipes (no training loop here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from groundinggpt.presets import build_tiny
from groundinggpt.train.freeze import (
    ALWAYS_FROZEN,
    BRANCHES,
    STAGE_PLANS,
    FreezePlan,
    apply_freeze_plan,
    plan_for_stage,
    trainable_names,
)
from groundinggpt.train.recipe import (
    RecipeError,
    apply_set,
    available_recipes,
    build_config,
    default_recipe,
    load_recipe,
    parse_value,
)

# ---- freeze plans -------------------------------------------------------------------------------


def test_stage_plans_follow_the_paper():
    assert set(STAGE_PLANS[1].trainable) == {"image_adapter", "video_branch", "audio_branch"}
    for stage in (2, 3):
        assert set(STAGE_PLANS[stage].trainable) == {*BRANCHES, "language_model"}
    for plan in STAGE_PLANS.values():
        assert not set(plan.trainable) & set(ALWAYS_FROZEN)
    with pytest.raises(ValueError, match="always frozen"):
        FreezePlan(("vision_tower",))
    with pytest.raises(ValueError, match="stage must be one of"):
        plan_for_stage(4)


@pytest.mark.parametrize("stage", [1, 2])
def test_apply_freeze_plan_sets_requires_grad_per_module(stage):
    model, _ = build_tiny(seed=0)
    summary = apply_freeze_plan(model, plan_for_stage(stage))
    trainable = set(plan_for_stage(stage).trainable)
    for name, module in model.named_children():
        flags = {p.requires_grad for p in module.parameters()}
        assert flags == {name in trainable}, name
        total = sum(p.numel() for p in module.parameters())
        assert summary[name] == ({"trainable": total, "frozen": 0} if name in trainable
                                 else {"trainable": 0, "frozen": total})
    names = trainable_names(model)
    # The Q-Former branches train whole: queries, frame/clip positions, Q-Former, adapter.
    for branch in ("video_branch", "audio_branch"):
        for part in ("query_tokens", "position_embedding.weight", "qformer.", "adapter."):
            assert any(n.startswith(f"{branch}.{part}") for n in names), (branch, part)
    assert any(n.startswith("language_model.") for n in names) == (stage >= 2)


def test_freeze_plan_naming_an_unknown_module_is_an_error():
    model, _ = build_tiny(seed=0)
    with pytest.raises(ValueError, match="no such module"):
        apply_freeze_plan(model, FreezePlan(("image_adapter", "projector")))


# ---- LoRA -------------------------------------------------------------------------------------------


def test_lora_trains_only_adapters_and_merges_to_a_plain_model():
    pytest.importorskip("peft")
    from groundinggpt.train.lora import LoraSettings, add_lora, has_lora, merge_lora

    model, _ = build_tiny(seed=0)
    apply_freeze_plan(model, plan_for_stage(2))
    n = add_lora(model, LoraSettings(r=4, alpha=8, dropout=0.0))
    assert n > 0 and has_lora(model)
    llm_trainable = [name for name, p in model.language_model.named_parameters() if p.requires_grad]
    assert llm_trainable and all("lora_" in name for name in llm_trainable)
    assert not any("lora_" in name for name, _ in model.vision_tower.named_parameters())  # CLIP has q_proj too
    assert all(p.requires_grad for p in model.image_adapter.parameters())  # branches still train

    # Give the adapters a non-zero update (B starts at zero), then merge: same function, plain modules.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    ids = torch.tensor([[1, 40, 41, 42, 43, 2]])
    model.eval()
    before = model(input_ids=ids).logits
    assert merge_lora(model) > 0
    assert not has_lora(model)
    assert not any("lora_" in k or "base_layer" in k for k in model.state_dict())
    after = model(input_ids=ids).logits
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


# ---- gradient checkpointing ------------------------------------------------------------------------------


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(image_path):
    model, processor = build_tiny(seed=0)
    apply_freeze_plan(model, plan_for_stage(1))  # frozen LLM: the non-reentrant kind is required
    batch = processor([{"role": "user", "content": [{"type": "image", "image": str(image_path)},
                                                    {"type": "text", "text": "Where is the red box?"}]},
                       {"role": "assistant", "content": "Here[0.100, 0.125, 0.427, 0.484]."}],
                      add_generation_prompt=False, padding_side="right", return_labels=True)
    batch.pop("media_info")
    model.train()  # checkpointing is only active in training mode

    def loss_and_grads():
        model.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        # Only the image branch gets gradients from an image batch (video/audio ran no branch).
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain_loss, plain_grads = loss_and_grads()
    model.activation_checkpointing_enable()
    assert model.language_model.model.gradient_checkpointing
    ckpt_loss, ckpt_grads = loss_and_grads()
    torch.testing.assert_close(ckpt_loss, plain_loss)
    assert plain_grads.keys() == ckpt_grads.keys()
    for name in plain_grads:
        torch.testing.assert_close(ckpt_grads[name], plain_grads[name], atol=1e-6, rtol=1e-5)
    assert any(n.startswith("image_adapter.") for n in ckpt_grads)
    assert any(g.abs().sum() > 0 for g in ckpt_grads.values())


# ---- recipes -------------------------------------------------------------------------------------------


def test_shipped_recipes_load_and_follow_table_9():
    assert {"stage1", "stage2", "stage3", "tiny-stage1", "tiny-stage2", "tiny-stage3"} <= set(available_recipes())
    expected = {1: (64, 1, 1e-3), 2: (16, 2, 2e-5), 3: (8, 2, 2e-5)}
    for stage, (per_device, accumulation, lr) in expected.items():
        r = load_recipe(f"stage{stage}")
        t = r["training"]
        assert (t["per_device_train_batch_size"], t["gradient_accumulation_steps"]) == (per_device, accumulation)
        assert t["learning_rate"] == pytest.approx(lr) and isinstance(t["learning_rate"], float)
        # Global batch on the paper's 8 GPUs.
        assert per_device * accumulation * 8 == {1: 512, 2: 256, 3: 128}[stage]
        assert t["lr_scheduler_type"] == "cosine" and t["warmup_steps"] == pytest.approx(0.03)
        assert t["weight_decay"] == 0 and t["num_train_epochs"] == 1 and t["bf16"] and t["tf32"]
        ds = json.loads(open(t["deepspeed"]).read())  # relative path resolved against the recipe
        assert ds["zero_optimization"]["stage"] == 2 and ds["train_micro_batch_size_per_gpu"] == "auto"
        assert r["groundinggpt"]["stage"] == stage
        tiny = load_recipe(f"tiny-stage{stage}")
        assert tiny["groundinggpt"]["stage"] == stage and not tiny["training"]["bf16"]
        assert "deepspeed" not in tiny["training"]


def test_deepspeed_configs_leave_the_batch_to_the_trainer():
    from groundinggpt.train.recipe import recipes_dir

    for stage in (2, 3):
        ds = json.loads((recipes_dir() / "deepspeed" / f"zero{stage}.json").read_text())
        assert ds["zero_optimization"]["stage"] == stage
        for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size"):
            assert ds[key] == "auto"


def _write(path, text):
    path.write_text(text)
    return path


def test_unknown_recipe_keys_name_the_key_and_the_file(tmp_path):
    bad = _write(tmp_path / "bad.yaml", "training:\n  learning_rte: 1.0e-3\ngroundinggpt:\n  stage: 1\n")
    with pytest.raises(RecipeError, match=r"learning_rte") as e:
        load_recipe(bad)
    assert str(bad) in str(e.value)
    bad2 = _write(tmp_path / "bad2.yaml", "training: {}\ngroundinggpt:\n  stagee: 1\n")
    with pytest.raises(RecipeError, match=r"bad2\.yaml.*stagee"):
        load_recipe(bad2)
    bad3 = _write(tmp_path / "bad3.yaml", "trainnig: {}\n")
    with pytest.raises(RecipeError, match=r"bad3\.yaml.*trainnig"):
        load_recipe(bad3)
    old = _write(tmp_path / "old.yaml", "training:\n  warmup_ratio: 0.03\n")
    with pytest.raises(RecipeError, match="warmup_steps"):
        load_recipe(old)
    with pytest.raises(RecipeError, match="not found"):
        load_recipe("stage9")


def test_overrides_and_value_parsing(tmp_path):
    assert parse_value("1e-4") == pytest.approx(1e-4) and parse_value("true") is True
    assert parse_value("[a, b]") == ["a", "b"] and parse_value("null") is None
    recipe = load_recipe("tiny-stage1")
    apply_set(recipe, "learning_rate=5e-4")  # bare key → training
    apply_set(recipe, "groundinggpt.max_length=64")
    apply_set(recipe, "alpha=0.5")  # bare key → groundinggpt
    assert recipe["training"]["learning_rate"] == pytest.approx(5e-4)
    assert recipe["groundinggpt"]["max_length"] == 64 and recipe["groundinggpt"]["alpha"] == 0.5
    with pytest.raises(RecipeError, match="unknown key 'learnin_rate'"):
        apply_set(recipe, "learnin_rate=1")
    # a shipped DeepSpeed config named as the recipe files name it; a local file wins
    apply_set(recipe, "deepspeed=deepspeed/zero3.json")
    shipped = Path(recipe["training"]["deepspeed"])
    assert shipped.is_absolute() and shipped.is_file() and shipped.parent.parent.name == "recipes"
    (tmp_path / "mine.json").write_text("{}")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        apply_set(recipe, "deepspeed=mine.json")
    assert recipe["training"]["deepspeed"] == "mine.json"
    with pytest.raises(RecipeError, match="output_dir"):
        apply_set(recipe, "training.output_dir=x")

    cfg = build_config(None, overrides={"stage": 2, "model": "tiny", "data": "a.jsonl,b.jsonl", "output": "o",
                                        "lora": True},
                       sets=["per_device_train_batch_size=4"], training_overrides={"max_steps": 3, "seed": None})
    assert cfg.recipe.endswith("tiny-stage2.yaml") and cfg.data == ["a.jsonl", "b.jsonl"] and cfg.lora
    assert cfg.training["per_device_train_batch_size"] == 4 and cfg.training["max_steps"] == 3
    assert cfg.training["seed"] == 0  # None from an absent flag does not override the recipe
    with pytest.raises(RecipeError, match="stage 1 keeps the LLM frozen"):
        build_config(None, overrides={"stage": 1, "model": "tiny", "data": ["a"], "output": "o", "lora": True})
    with pytest.raises(RecipeError, match="no --previous-data"):
        build_config(None, overrides={"stage": 2, "model": "tiny", "data": ["a"], "output": "o", "alpha": 0.3})


def test_default_recipe_choice(tmp_path):
    assert default_recipe(2, "tiny") == "tiny-stage2"
    assert default_recipe(2, "groundinggpt-7b") == "stage2"
    (tmp_path / "run_log.json").write_text(json.dumps({"recipe": "/x/recipes/tiny-stage1.yaml"}))
    assert default_recipe(2, str(tmp_path)) == "tiny-stage2"  # a tiny chain stays on CPU settings

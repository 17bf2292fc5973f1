"""The runner's batching options: grouped sampling and packing through the Trainer, the attention kernel."""

from __future__ import annotations

import json

import pytest

from groundinggpt.data.grouping import GroupedSampler
from groundinggpt.data.packing import PackingCollator
from groundinggpt.train import batching
from groundinggpt.train.recipe import RecipeError, build_config
from groundinggpt.train.run import train
from groundinggpt.train.toy import write_toy_dataset


def _config(data, output, **overrides):
    return build_config(None, overrides={"stage": 2, "model": "tiny", "data": [str(data)], "output": str(output),
                                         **overrides},
                        sets=["per_device_train_batch_size=4", "warmup_steps=0", "save_strategy=no"],
                        training_overrides={"max_steps": 2})


@pytest.mark.slow  # a training run through the Trainer (~13 CPU s)
def test_a_grouped_packed_run_trains_through_the_trainer(tmp_path, monkeypatch):
    data = write_toy_dataset(tmp_path / "data", n_images=5, n_videos=2, n_audios=2, stage=2)
    seen: dict[str, list] = {"samplers": [], "batches": []}
    original = batching.GroupedTrainer._get_train_sampler

    def spy_sampler(self, *a, **kw):
        sampler = original(self, *a, **kw)
        seen["samplers"].append(sampler)
        return sampler

    call = PackingCollator.__call__

    def spy_collate(self, items):
        batch = call(self, items)
        seen["batches"].append(batch)
        return batch

    monkeypatch.setattr(batching.GroupedTrainer, "_get_train_sampler", spy_sampler)
    monkeypatch.setattr(PackingCollator, "__call__", spy_collate)
    out = train(_config(data, tmp_path / "run", group_by="modality_length", packing=True, pack_max_tokens=400)).output
    log = json.loads((out / "run_log.json").read_text())
    assert log["throughput"]["global_steps"] == 2 and log["final_train_loss"] > 0
    assert log["config"]["group_by"] == "modality_length" and log["config"]["packing"] is True
    assert len(seen["samplers"]) == 1 and isinstance(seen["samplers"][0], GroupedSampler)
    assert seen["samplers"][0].modalities.count("video") == 2
    assert seen["batches"] and all("attention_mask" not in b and "position_ids" in b for b in seen["batches"])
    assert all(b["input_ids"].shape[1] <= 400 or b["input_ids"].shape[0] == 1 for b in seen["batches"])


@pytest.mark.parametrize("key,value,message", [
    ("group_by", "modality", "group_by must be one of none, length, modality_length"),
    ("attn_implementation", "flash", "attn_implementation must be one of"),
    ("pack_max_tokens", 0, "pack_max_tokens must be a positive integer or null"),
    ("packing", "yes", "packing must be true or false"),
])
def test_bad_batching_settings_are_refused_by_name(tmp_path, key, value, message):
    with pytest.raises(RecipeError, match=message):
        _config(tmp_path / "d.jsonl", tmp_path / "o", **{key: value}).validate()


def test_flash_attention_without_its_package_is_a_clear_error(tmp_path):
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("flash_attn is installed here")
    data = write_toy_dataset(tmp_path / "data", n_images=2, n_videos=0, n_audios=0, stage=2)
    with pytest.raises(RecipeError, match=r"attn_implementation='flash_attention_2' cannot be used here: .*"
                                          r"FlashAttention2.*not.*installed"):
        train(_config(data, tmp_path / "run", attn_implementation="flash_attention_2"))


def test_flex_attention_is_accepted_and_set_on_the_llm_and_the_tower():
    from groundinggpt.presets import build_tiny

    model, _ = build_tiny(seed=0)
    batching.set_attention(model, "flex_attention")
    assert model.language_model.config._attn_implementation == "flex_attention"
    assert model.vision_tower.config._attn_implementation == "flex_attention"
    batching.set_attention(model, None)  # None leaves it as it is
    assert model.language_model.config._attn_implementation == "flex_attention"

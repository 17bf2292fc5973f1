"""The vision tower is cut after the selected layer: same features, fewer layers, every weight source still loads."""

from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import CLIPVisionModel

from groundinggpt.models import GroundingGPTForCausalLM
from groundinggpt.models.vision_cut import cut_vision_tower
from groundinggpt.presets import tiny_config


def _full_tower_like(model: GroundingGPTForCausalLM, seed: int = 3) -> CLIPVisionModel:
    """An uncut CLIP tower of the model's config whose first layers are the model's own."""
    torch.manual_seed(seed)
    full = CLIPVisionModel(model.config.vision_config).eval()
    missing, unexpected = full.load_state_dict(model.vision_tower.state_dict(), strict=False)
    kept = len(model.vision_tower.encoder.layers)
    dropped = tuple(f".layers.{i}." for i in range(kept, model.config.vision_config.num_hidden_layers))
    assert not unexpected and all(any(d in k for d in dropped) for k in missing)  # only dropped layers stay random
    return full


def test_only_the_layers_up_to_the_selected_one_are_kept_and_run():
    cfg = tiny_config()
    assert cfg.vision_config.num_hidden_layers == 4 and cfg.vision_feature_layer == -2
    model = GroundingGPTForCausalLM(cfg).eval()
    layers = model.vision_tower.encoder.layers
    assert len(layers) == 3
    assert cfg.vision_config.num_hidden_layers == 4  # the config still describes the released tower
    ran = []
    for i, layer in enumerate(layers):
        layer.register_forward_hook(lambda *a, i=i: ran.append(i))
    model.encode_images(torch.randn(2, 3, 64, 64))
    assert ran == [0, 1, 2]


@pytest.mark.parametrize("strategy,pool", [("default", 2), ("full", 1)])
def test_features_equal_the_uncut_towers_selected_hidden_state(strategy, pool):
    model = GroundingGPTForCausalLM(tiny_config(vision_feature_select_strategy=strategy, image_token_pool=pool)).eval()
    full = _full_tower_like(model)
    px = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        ref = full(px, output_hidden_states=True).hidden_states[-2]
        got = model._vision_patch_features(px)
    ref = ref[:, 1:] if strategy == "default" else ref
    assert got.shape == ref.shape
    assert (got - ref).abs().max().item() <= 1e-6


@pytest.mark.parametrize("layer,kept", [(-1, 4), (-3, 2), (2, 2), (0, 0)])
def test_other_feature_layers(layer, kept):
    model = GroundingGPTForCausalLM(tiny_config(vision_feature_layer=layer)).eval()
    assert len(model.vision_tower.encoder.layers) == kept
    full = _full_tower_like(model) if kept < 4 else None
    px = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = (full or model.vision_tower)(px, output_hidden_states=True).hidden_states[layer][:, 1:]
        assert (model._vision_patch_features(px) - ref).abs().max().item() <= 1e-6


def test_a_layer_outside_the_tower_is_refused():
    with pytest.raises(ValueError, match="vision_feature_layer=-7 is outside the 5 hidden states"):
        GroundingGPTForCausalLM(tiny_config(vision_feature_layer=-7))


def test_full_clip_weights_load_into_the_cut_tower_with_load_state_dict():
    """What the presets do with a separately loaded CLIP, and the miniature with its part file."""
    model = GroundingGPTForCausalLM(tiny_config()).eval()
    torch.manual_seed(11)
    clip = CLIPVisionModel(model.config.vision_config).eval()
    model.vision_tower.load_state_dict(clip.state_dict())  # strict: the dropped layer's keys are ignored
    px = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = clip(px, output_hidden_states=True).hidden_states[-2][:, 1:]
        assert (model._vision_patch_features(px) - ref).abs().max().item() <= 1e-6
    # a key that is neither kept nor dropped is still an error
    bad = {**clip.state_dict(), "encoder.extra.weight": torch.zeros(1)}
    with pytest.raises(RuntimeError, match="extra.weight"):
        model.vision_tower.load_state_dict(bad)


def test_a_folder_holding_every_layer_loads_cleanly_and_a_cut_folder_saves_and_loads(tmp_path):
    model = GroundingGPTForCausalLM(tiny_config()).eval()
    full = _full_tower_like(model)
    model.save_pretrained(tmp_path / "cut")
    saved = load_file(str(tmp_path / "cut" / "model.safetensors"))
    assert not any(".encoder.layers.3." in k for k in saved)  # the dropped layer is not saved
    # A folder saved before the cut (or converted from the authors' checkpoint) holds layer 3 too.
    old = dict(saved)
    old.update({f"vision_tower.{k}": v for k, v in full.state_dict().items() if ".layers.3." in k})
    (tmp_path / "old").mkdir()
    save_file(old, str(tmp_path / "old" / "model.safetensors"), metadata={"format": "pt"})
    (tmp_path / "old" / "config.json").write_text((tmp_path / "cut" / "config.json").read_text())
    px = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = model.encode_images(px)
    for name in ("cut", "old"):
        loaded, info = GroundingGPTForCausalLM.from_pretrained(tmp_path / name, output_loading_info=True)
        assert not info["unexpected_keys"] and not info["missing_keys"], (name, info)
        assert len(loaded.vision_tower.encoder.layers) == 3
        with torch.no_grad():
            assert torch.equal(loaded.eval().encode_images(px), want)
        loaded.save_pretrained(tmp_path / f"{name}-again")  # saving a loaded, cut model works too
        assert load_file(str(tmp_path / f"{name}-again" / "model.safetensors")).keys() == saved.keys()


def test_cut_is_idempotent_and_the_model_still_pickles():
    model = GroundingGPTForCausalLM(tiny_config())
    assert cut_vision_tower(model.vision_tower, -2) == 3
    assert len(model.vision_tower.encoder.layers) == 3
    again = pickle.loads(pickle.dumps(model.vision_tower))
    assert len(again.encoder.layers) == 3

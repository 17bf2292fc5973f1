"""The modality table (groundinggpt.modalities) is what every layer loops over."""

import inspect
import json
from pathlib import Path

import pytest
import torch

from groundinggpt.errors import InputError
from groundinggpt.modalities import (FEATURE_KEYS, MEDIA_INPUT_NAMES, MEDIA_KINDS, MODALITIES, MODALITY, RAW_KEYS,
                                     get_modality, modality_of_key)
from groundinggpt.models import GroundingGPTConfig, GroundingGPTForCausalLM
from groundinggpt.models.configuration_groundinggpt import (GroundingGPTAudioConfig, GroundingGPTVideoConfig,
                                                            QFormerBranchConfig)
from groundinggpt.processor import ProcessorConfig

FIXTURE_CONFIG = Path(__file__).parent / "fixtures" / "model_v1" / "config.json"


def test_table_names_keys_and_lookups():
    assert MEDIA_KINDS == ("image", "video", "audio")
    assert RAW_KEYS == {"image": "pixel_values", "video": "pixel_values_videos", "audio": "input_features"}
    assert FEATURE_KEYS == {"image": "image_features", "video": "video_features", "audio": "audio_features"}
    assert len(set(MEDIA_INPUT_NAMES)) == 6
    assert modality_of_key("image_features") is MODALITY["image"]
    with pytest.raises(InputError, match="not a media input"):
        modality_of_key("labels")
    with pytest.raises(InputError, match="unknown media kind 'smell'"):
        get_modality("smell")


def test_every_entry_is_backed_by_the_processor_model_and_media_layers():
    pc, mc = ProcessorConfig(), GroundingGPTConfig()
    model_cls = GroundingGPTForCausalLM
    for m in MODALITIES:
        assert getattr(pc, m.token_field) == m.token == getattr(mc, m.token_field)
        assert isinstance(getattr(mc, m.token_id_field), int) and getattr(mc, m.seq_length_field) > 0
        assert isinstance(getattr(pc, m.seq_length_field), int)
        assert all(hasattr(pc, f) for f in m.settings), m.name
        assert callable(getattr(model_cls, m.encode)) and callable(m.loader_function())
        assert callable(m.probe_function())
        assert m.config_key is None or hasattr(mc, m.config_key)


def test_model_branches_by_modality_and_forward_signature_lists_the_table():
    model = GroundingGPTForCausalLM(GroundingGPTConfig(video_config=None))
    assert set(model.branches) == {"image", "audio"}
    assert model.branches["audio"] is model.audio_branch and model.branches["image"] is model.image_adapter
    params = inspect.signature(model.forward).parameters
    assert all(params[name].default is None for name in MEDIA_INPUT_NAMES)
    with pytest.raises(TypeError, match="unknown media inputs"):
        model.encode_media(pixel_values_video=torch.zeros(1))  # a typo is refused, not ignored
    with pytest.raises(ValueError, match="no video branch"):
        model.project_media(video_features=torch.zeros(1, 8, 16, 128))


def test_qformer_fields_are_shared_and_saved_flat_as_before():
    for cls in (GroundingGPTVideoConfig, GroundingGPTAudioConfig):
        assert issubclass(cls, QFormerBranchConfig)
    saved = json.loads(FIXTURE_CONFIG.read_text())  # written before QFormerBranchConfig existed
    for key in ("video_config", "audio_config"):
        again = GroundingGPTConfig(**{key: saved[key]}).to_dict()[key]
        for field, value in saved[key].items():
            if field not in ("transformers_version", "id2label", "label2id"):  # JSON makes int keys str
                assert again.get(field) == value, (key, field)
    video = GroundingGPTVideoConfig(num_frames=4, qformer_hidden_size=32, qformer_num_heads=2)
    qcfg = video.qformer_config(encoder_width=48)
    assert (qcfg.hidden_size, qcfg.num_attention_heads, qcfg.encoder_hidden_size) == (32, 2, 48)
    assert video.num_positions == 4 and GroundingGPTAudioConfig(max_clips=6).num_positions == 6


def test_branches_are_a_module_dict_by_modality_and_saved_names_stay():
    """``model.branches`` is an ``nn.ModuleDict`` keyed by modality holding the registered
    modules; parameter names, state-dict keys and the top-level children stay those of saved
    folders (the fixture's keys), and replacing a branch attribute updates the dict."""
    from safetensors import safe_open

    from groundinggpt.train.freeze import apply_freeze_plan, plan_for_stage

    model = GroundingGPTForCausalLM(GroundingGPTConfig())
    assert isinstance(model.branches, torch.nn.ModuleDict) and list(model.branches) == ["image", "video", "audio"]
    assert all(model.branches[m.name] is getattr(model, m.branch) for m in MODALITIES)
    assert [name for name, _ in model.named_children()] == [
        "vision_tower", "image_adapter", "video_branch", "audio_encoder", "audio_branch", "language_model"]
    with safe_open(FIXTURE_CONFIG.parent / "model.safetensors", "pt") as saved:
        saved_prefixes = {key.split(".")[0] for key in saved.keys()}
    assert {key.split(".")[0] for key in model.state_dict()} == saved_prefixes
    summary = apply_freeze_plan(model, plan_for_stage(1))  # branches train, nothing counted twice
    assert all(p.requires_grad for p in model.branches.parameters())
    assert sum(c["trainable"] + c["frozen"] for c in summary.values()) == sum(p.numel() for p in model.parameters())
    new_adapter = torch.nn.Linear(model.config.vision_config.hidden_size, model.config.text_config.hidden_size)
    model.image_adapter = new_adapter
    assert model.branches["image"] is new_adapter
    model.audio_branch = None
    assert list(model.branches) == ["image", "video"]

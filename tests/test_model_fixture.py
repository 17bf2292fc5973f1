"""A model folder saved before the modality table (commit f38e726) still loads, with the same logits.

The folder ``tests/fixtures/model_v1`` was written by ``scripts/make_model_fixture.py`` with
the code of that commit: tiny shapes, all three branches, random weights, plus fixed inputs and the
logits that code computed for them.
"""

from pathlib import Path

import torch
from safetensors.torch import load_file

from groundinggpt.models import GroundingGPTForCausalLM

FIXTURE = Path(__file__).parent / "fixtures" / "model_v1"


def test_folder_saved_before_the_modality_table_loads_with_the_same_logits():
    model, info = GroundingGPTForCausalLM.from_pretrained(FIXTURE, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    saved = load_file(FIXTURE / "model.safetensors")
    # The vision tower is cut after layer -2 (models/vision_cut.py): the folder's last tower
    # layer is accepted and not kept; every other saved weight is loaded as it was.
    last = model.config.vision_config.num_hidden_layers - 1
    dropped = {k for k in saved if k.startswith(f"vision_tower.encoder.layers.{last}.")}
    assert dropped and set(model.state_dict()) == set(saved) - dropped
    for key, tensor in saved.items():
        if key in dropped:
            continue
        assert torch.equal(model.state_dict()[key], tensor), key
    data = load_file(FIXTURE / "inputs_and_logits.safetensors")
    expected = data.pop("expected_logits")
    with torch.no_grad():
        logits = model.eval()(**data).logits
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)

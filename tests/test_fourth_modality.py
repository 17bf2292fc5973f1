"""A fourth kind of medium is one table entry plus its loader and its encoder/branch builder.

The toy "depth" modality below is written entirely in this file — the three things
docs/architecture.md ("Adding a modality") says a new medium needs: a ``Modality`` entry
(registered here at run time instead of edited into ``modalities.py``), a loader
(``media/`` in the project) and a builder of its encoder and branch (``models/branches.py``).
Nothing else of the package is edited, yet the processor validates, loads, expands and batches
it, and the model builds, encodes, splices, saves and generates with it.
"""

import inspect

import pytest
import torch
from torch import nn

from groundinggpt.errors import InputError
from groundinggpt.modalities import (MEDIA_INPUT_NAMES, MEDIA_KINDS, PART_TYPES_IN_WORDS, Modality, get_modality,
                                     register_modality, unregister_modality)
from groundinggpt.models import GroundingGPTForCausalLM
from groundinggpt.presets import tiny_config, tiny_tokenizer
from groundinggpt.processor import GroundingGPTProcessor, ProcessorConfig

# Builds and runs a model end to end (forward, backward, generate), like test_model.py.
pytestmark = pytest.mark.slow

SIDE, PATCH, WIDTH = 8, 4, 16
TOKENS = (SIDE // PATCH) ** 2  # what one depth map becomes in the LLM


def load_depth(source, config):
    """The toy's loader: a 2-D list of depths → [1, S, S] at the processor's ``depth_size``."""
    depth = torch.as_tensor(source, dtype=torch.float32)[None, None]
    resized = nn.functional.interpolate(depth, size=(config.depth_size, config.depth_size), mode="bilinear")
    return resized[0], {"original_size": (depth.shape[-1], depth.shape[-2])}


def probe_depth(path, max_pixels):
    return None


class DepthEncoder(nn.Module):
    """The toy's frozen encoder: [D, 1, S, S] → patch tokens [D, (S/p)², width]."""

    def __init__(self, patch: int, width: int):
        super().__init__()
        self.patch = patch
        self.proj = nn.Linear(patch * patch, width)

    def forward(self, depth_values):
        patches = nn.functional.unfold(depth_values, self.patch, stride=self.patch).transpose(1, 2)
        return self.proj(patches)


def build_depth_modules(config):
    settings = getattr(config, "depth_config", None)
    if settings is None:
        return {"depth_encoder": None, "depth_branch": None}
    return {"depth_encoder": DepthEncoder(settings["patch"], settings["width"]),
            "depth_branch": nn.Linear(settings["width"], config.text_config.hidden_size)}


DEPTH = Modality(name="depth", token="<depth>", raw_key="depth_values", feature_key="depth_features",
                 encoder="depth_encoder", encode=None, branch="depth_branch", config_key="depth_config",
                 loader=f"{__name__}:load_depth", probe=f"{__name__}:probe_depth", settings=("depth_size",),
                 build=f"{__name__}:build_depth_modules")


@pytest.fixture
def depth_world():
    """The toy registered for one test; tokenizer, model and processor built from the table."""
    register_modality(DEPTH)
    try:
        tokenizer = tiny_tokenizer()
        tokenizer.add_tokens([DEPTH.token], special_tokens=True)  # what presets.assemble does for the table
        config = tiny_config(depth_token_id=tokenizer.convert_tokens_to_ids(DEPTH.token), depth_seq_length=TOKENS,
                             depth_config={"patch": PATCH, "width": WIDTH})
        torch.manual_seed(0)
        model = GroundingGPTForCausalLM(config).eval()
        processor = GroundingGPTProcessor(
            tokenizer, ProcessorConfig.from_model_config(config, media_settings={"depth_size": SIDE}))
        yield model, processor
    finally:
        unregister_modality("depth")
    assert MEDIA_KINDS == ("image", "video", "audio")


def _chat(depth):
    return [{"role": "user", "content": [{"type": "depth", "depth": depth}, {"type": "text", "text": "How far?"}]},
            {"role": "assistant", "content": "Near."}]


def test_a_fourth_modality_runs_through_processor_and_model(depth_world):
    model, processor = depth_world
    assert MEDIA_KINDS[-1] == "depth" and "depth_values" in MEDIA_INPUT_NAMES and "'depth'" in f"{PART_TYPES_IN_WORDS}"
    assert isinstance(model.branches["depth"], nn.Linear) and model.branches["depth"] is model.depth_branch
    assert any(key.startswith("depth_branch.") for key in model.state_dict())
    assert "depth_values" in inspect.signature(model.forward).parameters  # generate and Trainer see it

    near = [[float(x + y) for x in range(5)] for y in range(5)]
    batch = processor(_chat(near), padding_side="right", return_labels=True)
    assert tuple(batch["depth_values"].shape) == (1, 1, SIDE, SIDE)
    assert int((batch["input_ids"] == model.config.depth_token_id).sum()) == TOKENS
    assert batch["media_info"][0][0].kind == "depth"
    inputs = {k: v for k, v in batch.items() if k != "media_info"}
    out = model(**inputs)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert model.depth_branch.weight.grad.abs().sum() > 0  # the depth tokens reached the loss

    with torch.no_grad():
        far = processor(_chat([[10.0 - v for v in row] for row in near]), padding_side="right", return_labels=True)
        far_logits = model(**{k: v for k, v in far.items() if k != "media_info"}).logits
        assert not torch.allclose(out.logits.detach(), far_logits)  # the medium changes the answer
        features = model.encode_media(depth_values=inputs["depth_values"])
        assert set(features) == {"depth_features"} and tuple(features["depth_features"].shape) == (1, TOKENS, WIDTH)
        cached = {**{k: v for k, v in inputs.items() if k != "depth_values"}, **features}
        torch.testing.assert_close(model(**cached).logits, out.logits.detach())  # the feature-cache seam

    prompt = processor(_chat(near)[:1])
    generated = model.generate(**{k: v for k, v in prompt.items() if k != "media_info"}, max_new_tokens=3,
                               do_sample=False)
    assert generated.shape[1] == prompt["input_ids"].shape[1] + 3
    assert not bool((generated[:, prompt["input_ids"].shape[1]:] == model.config.depth_token_id).any())


def test_a_fourth_modality_is_validated_and_saved_like_the_others(depth_world, tmp_path):
    model, processor = depth_world
    with pytest.raises(InputError, match="'depth'"):
        processor([{"role": "user", "content": [{"type": "smell", "smell": "x"}]}])
    processor.save_pretrained(tmp_path)
    again = GroundingGPTProcessor.from_pretrained(tmp_path)
    assert (again.config.depth_size, again.config.depth_seq_length, again.config.depth_token) == (SIDE, TOKENS,
                                                                                                   "<depth>")
    with pytest.raises(InputError, match="already in the table"):
        register_modality(DEPTH)
    assert get_modality("depth") is DEPTH

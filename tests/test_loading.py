"""One loader (GroundingGPT.load), --device/--dtype on every command that loads a model, the
released-folder error everywhere, and HF-native loading (AutoProcessor / AutoModelForCausalLM)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor, ProcessorMixin

import groundinggpt  # noqa: F401  (registers the Auto classes)
from groundinggpt import GroundingGPT, GroundingGPTProcessor
from groundinggpt.cli import main as cli_main
from groundinggpt.convert.lego import ConversionError
from groundinggpt.loading import resolve_device, resolve_dtype


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny"
    GroundingGPT.load("tiny").save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def lego_folder(tmp_path_factory):
    """A released folder needs only its config.json to be recognised."""
    path = tmp_path_factory.mktemp("released") / "GroundingGPT"
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model_type": "LEGO", "hidden_size": 64}))
    return path


def test_auto_device_and_dtype():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_dtype("auto", "cuda:1") == torch.bfloat16 and resolve_dtype("auto", "cpu") == torch.float32
    with pytest.raises(ValueError, match="dtype 'fp8'"):
        resolve_dtype("fp8", "cpu")


def test_load_preset_and_folder_in_the_given_dtype(folder):
    assert next(GroundingGPT.load("tiny").model.parameters()).dtype == torch.float32  # auto on CPU
    gg = GroundingGPT.load(folder, device="cpu", dtype="bfloat16")
    assert {p.dtype for p in gg.model.parameters()} == {torch.bfloat16}
    assert gg.device == torch.device("cpu")
    assert next(GroundingGPT.load("tiny", dtype=torch.float16).model.parameters()).dtype == torch.float16


def test_released_folder_is_named_everywhere(lego_folder):
    hint = "groundinggpt convert lego"
    with pytest.raises(ConversionError, match=hint):
        GroundingGPT.load(lego_folder)
    with pytest.raises(ConversionError, match=hint):
        GroundingGPT.from_pretrained(lego_folder)
    with pytest.raises(ConversionError, match=hint):
        GroundingGPTProcessor.from_pretrained(lego_folder)
    with pytest.raises(ConversionError, match=hint):
        AutoConfig.from_pretrained(lego_folder)
    with pytest.raises(ConversionError, match=hint):
        AutoModelForCausalLM.from_pretrained(lego_folder)
    from groundinggpt.presets import build_from_pretrained_parts
    with pytest.raises(ConversionError, match=hint):
        build_from_pretrained_parts(lego_folder, lego_folder)


@pytest.mark.parametrize("command", ["chat", "serve", "web", "eval"])
def test_every_model_command_takes_device_and_dtype(command, monkeypatch, capsys, folder):
    seen = {}

    def fake_load(cls, spec, device="auto", dtype="auto", **kwargs):
        seen.update(spec=str(spec), device=device, dtype=dtype)
        raise ConversionError("stop here")

    monkeypatch.setattr(GroundingGPT, "load", classmethod(fake_load))
    flags = ["--model", str(folder), "--device", "cpu", "--dtype", "bfloat16"]
    if command == "eval":  # the task reads its data before loading: call its loader directly
        from groundinggpt.cli import build_parser
        from groundinggpt.eval.cli import _load_model

        with pytest.raises(ConversionError, match="stop here"):
            _load_model(build_parser().parse_args(["eval", "synthetic", *flags, "--data", "x.jsonl"]))
    else:
        assert cli_main([command, *flags]) == 2 and "stop here" in capsys.readouterr().err
    assert seen == {"spec": str(folder), "device": "cpu", "dtype": "bfloat16"}


def test_chat_and_info_refuse_a_released_folder(lego_folder, capsys):
    assert cli_main(["chat", "--model", str(lego_folder)]) == 2
    assert "groundinggpt convert lego" in capsys.readouterr().err
    assert cli_main(["info", "--model", str(lego_folder)]) == 2
    assert "groundinggpt convert lego" in capsys.readouterr().err


def test_info_loads_in_the_given_dtype(folder, monkeypatch, capsys):
    from groundinggpt.models import GroundingGPTForCausalLM

    real, seen = GroundingGPTForCausalLM.from_pretrained, {}

    def spy(*args, **kwargs):
        model = real(*args, **kwargs)
        seen["dtype"] = next(model.parameters()).dtype
        return model

    monkeypatch.setattr(GroundingGPTForCausalLM, "from_pretrained", spy)
    assert cli_main(["info", "--model", str(folder), "--dtype", "bfloat16", "--device", "cpu"]) == 0
    assert seen["dtype"] == torch.bfloat16 and '"total_parameters"' in capsys.readouterr().out


def test_auto_processor_round_trip(folder, tmp_path):
    proc = AutoProcessor.from_pretrained(folder)
    assert isinstance(proc, GroundingGPTProcessor) and isinstance(proc, ProcessorMixin)
    original = GroundingGPTProcessor.from_pretrained(folder)
    assert proc.config == original.config and proc.token_ids == original.token_ids
    proc.save_pretrained(tmp_path / "again")
    again = AutoProcessor.from_pretrained(tmp_path / "again")
    messages = [{"role": "user", "content": "Where is the red square?"}]
    assert again(messages)["input_ids"].tolist() == original(messages)["input_ids"].tolist()
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert type(model).__name__ == "GroundingGPTForCausalLM"


def test_parts_take_an_audio_folder_as_the_audio_loader_does(tmp_path):
    """build_from_pretrained_parts(audio=FOLDER): a folder of shards (here the released layout,
    whose audio tower sits under model.audio_encoder.) is what load_imagebind_audio_weights reads."""
    import lego_fixture as lf
    from test_presets import _vicuna_like_folder

    from groundinggpt.models.configuration_groundinggpt import GroundingGPTAudioConfig
    from groundinggpt.presets import build_from_pretrained_parts

    src, clip, sd = lf.write_released_folder(tmp_path / "released")
    _vicuna_like_folder(tmp_path / "llm")
    encoder = dict(embed_dim=lf.AUD_W, depth=lf.AUD_DEPTH, num_heads=1, patch_stride=lf.AUD_STRIDE, out_dim=lf.AUD_OUT)
    model, _ = build_from_pretrained_parts(tmp_path / "llm", clip, src, video_config=None,
                                           audio_config=GroundingGPTAudioConfig(encoder=encoder, num_query_tokens=2))
    assert torch.equal(model.audio_encoder.head_proj.weight, sd["model.audio_encoder.modality_heads.audio.2.weight"])
    assert torch.equal(model.audio_encoder.blocks[1].attn.in_proj_weight,
                       sd["model.audio_encoder.modality_trunks.audio.blocks.1.attn.in_proj_weight"])


def test_train_takes_device_and_dtype(monkeypatch, tmp_path):
    import groundinggpt.train.run as run

    seen = {}

    def fake_train(config):
        seen.update(load_dtype=config.load_dtype, use_cpu=config.training.get("use_cpu"))

    monkeypatch.setattr(run, "train", fake_train)
    data = tmp_path / "d.jsonl"
    data.write_text("")
    base = ["train", "--stage", "1", "--model", "tiny", "--data", str(data), "--output", str(tmp_path / "o")]
    assert cli_main([*base, "--device", "cpu", "--dtype", "bfloat16"]) == 0
    assert seen == {"load_dtype": "bfloat16", "use_cpu": True}
    assert cli_main(base) == 0
    assert seen == {"load_dtype": "float32", "use_cpu": None}  # the recipe's own choices

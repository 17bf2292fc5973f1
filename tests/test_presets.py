"""Presets: the tiny preset and assembling the paper-shaped model from local pretrained folders."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from groundinggpt.models.audio_encoder import IMAGEBIND_AUDIO_KEY_MAP, ImageBindAudioEncoder, AudioEncoderConfig
from groundinggpt.models.configuration_groundinggpt import GroundingGPTAudioConfig, GroundingGPTVideoConfig
from groundinggpt.presets import build_from_pretrained_parts, build_preset, build_tiny

SMALL_AUDIO = dict(embed_dim=32, depth=1, num_heads=2, out_dim=32, patch_stride=16)


def test_tiny_is_a_few_million_parameters_and_digits_are_single_tokens():
    model, proc = build_tiny()
    n = sum(p.numel() for p in model.parameters())
    assert 2_000_000 < n < 10_000_000
    tokens = proc.tokenizer.tokenize("[0.125, 0.875]")
    assert [t for t in tokens if any(c.isdigit() for c in t)] == list("0125") + list("0875")


def _vicuna_like_folder(path):
    """A tiny LLaMA + BPE tokenizer folder *without* the media tokens (like a real Vicuna)."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["a chat between a curious user and an assistant"] * 10,
                            trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    fast.save_pretrained(path)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    torch.manual_seed(1)
    LlamaForCausalLM(cfg).save_pretrained(path)
    return len(fast)


def _official_audio_checkpoint(path, cfg: AudioEncoderConfig):
    """Our encoder's weights written under ImageBind's official names (as imagebind_huge.pth is)."""
    torch.manual_seed(2)
    enc = ImageBindAudioEncoder(cfg)
    ours_to_official = {v: k for k, v in IMAGEBIND_AUDIO_KEY_MAP.items()}
    sd = {}
    for key, value in enc.state_dict().items():
        if key.startswith("blocks."):
            sd["modality_trunks.audio." + key] = value.clone()
        else:
            sd[ours_to_official[key]] = value.clone()
    torch.save(sd, path)
    return enc


def test_build_from_local_folders(tmp_path):
    base_vocab = _vicuna_like_folder(tmp_path / "llm")
    vision_cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                  image_size=56, patch_size=14)
    torch.manual_seed(3)
    CLIPVisionModel(vision_cfg).save_pretrained(tmp_path / "clip")
    enc_cfg = AudioEncoderConfig.from_dict(SMALL_AUDIO)
    reference_audio = _official_audio_checkpoint(tmp_path / "imagebind.pth", enc_cfg)

    model, proc = build_from_pretrained_parts(
        tmp_path / "llm", tmp_path / "clip", tmp_path / "imagebind.pth",
        video_config=GroundingGPTVideoConfig(num_frames=4, frame_token_pool=1, num_query_tokens=4),
        audio_config=GroundingGPTAudioConfig(encoder=SMALL_AUDIO, num_query_tokens=2),
    )
    # The three media tokens are appended to the LLM vocabulary and the embeddings resized.
    assert len(proc.tokenizer) == base_vocab + 3
    assert model.get_input_embeddings().weight.shape[0] == base_vocab + 3
    assert proc.token_ids["image"] == base_vocab
    # Every pretrained part arrived unchanged.
    llm = LlamaForCausalLM.from_pretrained(tmp_path / "llm")
    torch.testing.assert_close(model.language_model.model.layers[0].mlp.up_proj.weight,
                               llm.model.layers[0].mlp.up_proj.weight)
    clip = CLIPVisionModel.from_pretrained(tmp_path / "clip")
    # The tower keeps the layers up to layer -2 (the last of 2 is cut, see models/vision_cut.py).
    kept = model.vision_tower.state_dict()
    assert set(kept) == {k for k in clip.state_dict() if not k.startswith("encoder.layers.1.")}
    for k, v in kept.items():
        assert torch.equal(clip.state_dict()[k], v), k
    for k, v in reference_audio.state_dict().items():
        assert torch.equal(model.audio_encoder.state_dict()[k], v), k
    # Paper structure at these widths: 4×4 patches from a 56-px, patch-14 tower, layer −2, MLP adapter.
    assert model.config.image_seq_length == 16 and model.config.vision_feature_layer == -2
    assert model.image_adapter[0].in_features == 32 and model.image_adapter[2].out_features == 64
    # And it runs end to end through the processor.
    from PIL import Image
    batch = proc([{"role": "user", "content": [{"type": "image", "image": Image.new("RGB", (70, 40), "red")},
                                              {"type": "text", "text": "Output the coordinate of the red."}]}])
    batch.pop("media_info")
    with torch.no_grad():
        out = model(**batch)
    assert out.logits.shape[-1] == base_vocab + 3
    # Added media tokens typed by a user stay plain text here too.
    typed = proc([{"role": "user", "content": "what is <image> and <audio>?"}])["input_ids"]
    assert not torch.isin(typed, torch.tensor(list(proc.token_ids.values()))).any()


def test_missing_local_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="llm folder .* does not exist"):
        build_from_pretrained_parts(tmp_path / "no-llm", tmp_path / "no-clip")
    with pytest.raises(ValueError, match="missing: llm, vision"):
        build_preset("groundinggpt-7b")
    with pytest.raises(ValueError, match="unknown preset 'big'"):
        build_preset("big")


def sentencepiece_only_vicuna(path):
    """As lmsys/vicuna-7b-v1.5 ships: a LlamaTokenizer config and a SentencePiece tokenizer.model, no tokenizer.json."""
    import io
    import json

    import sentencepiece as spm

    text = ["a chat between a curious user and an assistant", "output the coordinate of the dog 0.123"] * 50
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(text), model_writer=model, vocab_size=300, model_type="bpe",
                                   bos_id=1, eos_id=2, unk_id=0, pad_id=-1, byte_fallback=True, minloglevel=2)
    path.mkdir()
    (path / "tokenizer.model").write_bytes(model.getvalue())
    (path / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
         "add_bos_token": True, "legacy": False}))
    cfg = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                      num_attention_heads=4, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    LlamaForCausalLM(cfg).save_pretrained(path)


def _tiny_clip(path):
    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=56, patch_size=14)
    CLIPVisionModel(cfg).save_pretrained(path)


def test_a_sentencepiece_only_vicuna_folder_loads(tmp_path):
    sentencepiece_only_vicuna(tmp_path / "vicuna")
    _tiny_clip(tmp_path / "clip")
    model, proc = build_from_pretrained_parts(tmp_path / "vicuna", tmp_path / "clip", None,
                                              video_config=GroundingGPTVideoConfig(num_frames=4, frame_token_pool=1,
                                                                                   num_query_tokens=4),
                                              audio_config=GroundingGPTAudioConfig(encoder=SMALL_AUDIO,
                                                                                   num_query_tokens=2))
    assert len(proc.tokenizer) == 303 and proc.token_ids["image"] == 300
    assert proc.tokenizer.decode(proc.tokenizer("the dog 0.123", add_special_tokens=False)["input_ids"]) == \
        "the dog 0.123"


def test_parts_of_the_wrong_kind_are_refused_before_loading(tmp_path):
    _vicuna_like_folder(tmp_path / "llm")
    _tiny_clip(tmp_path / "clip")
    with pytest.raises(ValueError, match="vision folder .* holds a 'llama' model; expected a CLIP model"):
        build_from_pretrained_parts(tmp_path / "llm", tmp_path / "llm")
    with pytest.raises(ValueError, match="llm folder .* holds a 'clip_vision_model' model; expected a causal"):
        build_from_pretrained_parts(tmp_path / "clip", tmp_path / "clip")
    with pytest.raises(FileNotFoundError, match="audio checkpoint .*imagebind_hug.pth does not exist"):
        build_from_pretrained_parts(tmp_path / "llm", tmp_path / "clip", tmp_path / "imagebind_hug.pth")


def test_model_parts_keys_are_checked():
    from groundinggpt.train.recipe import RecipeError
    from groundinggpt.train.run import check_model_parts

    with pytest.raises(RecipeError, match=r"unknown key\(s\) \['audoi'\]"):
        check_model_parts({"llm": "v", "vision": "c", "audoi": "a.pth"})
    with pytest.raises(RecipeError, match="missing audio .*'audio: null'"):
        check_model_parts({"llm": "v", "vision": "c"})
    check_model_parts({"llm": "v", "vision": "c", "audio": None})  # a random audio encoder, on purpose


def test_a_vicuna_of_the_other_size_is_refused_before_loading(tmp_path, caplog):
    import json

    _tiny_clip(tmp_path / "clip")
    llm = tmp_path / "vicuna-7b"
    llm.mkdir()  # a config alone: the check must come before any weights are read
    (llm / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32}))
    with pytest.raises(ValueError, match=r"Vicuna-7B-shaped model .* preset is groundinggpt-13b .* use groundinggpt-7b"):
        build_preset("groundinggpt-13b", llm=llm, vision=tmp_path / "clip")
    # a shape that is neither size (a LLaMA variant, or a test model) loads, with a warning
    _vicuna_like_folder(tmp_path / "small")
    with caplog.at_level("WARNING", logger="groundinggpt.presets"):
        model, _ = build_from_pretrained_parts(tmp_path / "small", tmp_path / "clip", size="13b",
                                               video_config=GroundingGPTVideoConfig(num_frames=4, frame_token_pool=1,
                                                                                    num_query_tokens=4),
                                               audio_config=GroundingGPTAudioConfig(encoder=SMALL_AUDIO,
                                                                                    num_query_tokens=2))
    assert model.config.text_config.hidden_size == 64
    assert "hidden_size 64 and 2 layers, not Vicuna-13B's 5120 and 40" in caplog.text

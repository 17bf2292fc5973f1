"""``groundinggpt convert lego``: the authors' released checkpoint → a project model folder.

The released folder (``zwli/GroundingGPT``, written by the authors' ``lego`` code) is a
LLaMA checkpoint with ``model_type: "LEGO"``, its branches under ``model.``, sharded
``.bin`` (or safetensors) with an index, and a tokenizer with 9 added tokens
(``<im_patch> <im_start> <im_end> <vi_patch> <vi_start> <vi_end> <so_patch> <so_start>
<so_end>``). CLIP ViT-L/14-336 is not in it (their code loads it by hub id), so it comes
from ``--vision``.

Conversion runs in two passes over the shards:

1. names and shapes only (safetensors headers; ``.bin`` memory-mapped): every released
   tensor must be mapped (:mod:`.lego_keys`) or on the drop list, the shapes give the
   project config (EVA depth and width, Q-Former sizes, audio tower ...), and every
   parameter of the project model built from it must be filled — else nothing is
   written and the error names the tensors;
2. one input shard at a time: its tensors are renamed (EVA's q/v biases fused) and
   written as one output shard: one input shard and its output are in memory at a time.

Head counts cannot be read from tensors: they follow the released models' head widths
(EVA 88, BERT Q-Formers and the ImageBind audio trunk 64) unless given.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from ..errors import GroundingGPTError
from .lego_keys import drop_reason, map_key, mapping_table

#: The tokens the authors' loader adds, in its order (ids 32000–32008 on Vicuna's 32000).
RELEASED_TOKENS = ("<im_patch>", "<im_start>", "<im_end>", "<vi_patch>", "<vi_start>", "<vi_end>",
                   "<so_patch>", "<so_start>", "<so_end>")
BOUNDARY_TOKENS = {"image": ["<im_start>", "<im_end>"], "video": ["<vi_start>", "<vi_end>"],
                   "audio": ["<so_start>", "<so_end>"]}
REPORT_NAME = "conversion_report.json"
INDEX_NAME = "model.safetensors.index.json"


class ConversionError(GroundingGPTError, ValueError):
    """The released folder cannot be converted as it is; the message names what is wrong."""


def is_lego_folder(path: str | Path) -> bool:
    """Whether ``path`` is a released (``model_type`` LEGO) folder, not a project folder."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        return str(json.loads(config.read_text(encoding="utf-8")).get("model_type", "")).lower() == "lego"
    except (ValueError, UnicodeDecodeError):
        return False


def lego_folder_error(path: str | Path, flag: str = "--model") -> GroundingGPTError:
    """The one message a released folder gets wherever a project folder is expected."""
    return ConversionError(
        f"{flag} {path} is the authors' released (model_type 'LEGO') checkpoint, not a project model folder; "
        f"convert it once with: groundinggpt convert lego {path} --vision CLIP_L14_336_DIR --output CONVERTED_DIR")


class ReleasedLegoConfig:
    """Registered with ``AutoConfig`` as model type ``LEGO`` (see ``groundinggpt/__init__``) so that
    ``AutoConfig`` / ``AutoModelForCausalLM.from_pretrained(released_folder)`` name the converter
    instead of "unknown model type"."""

    model_type = "LEGO"

    @classmethod
    def from_dict(cls, *_: Any, **__: Any) -> Any:
        raise ConversionError("this folder is the authors' released (model_type 'LEGO') GroundingGPT checkpoint; "
                              "convert it once with: groundinggpt convert lego SRC --vision CLIP_L14_336_DIR "
                              "--output CONVERTED_DIR, then load CONVERTED_DIR")

    from_pretrained = from_dict


# --------------------------------------------------------------------------- reading


def weight_files(src: Path) -> list[Path]:
    """The checkpoint files of a folder: from its index, else the single file, else all shards."""
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (src / index).is_file():
            try:
                weight_map = json.loads((src / index).read_text(encoding="utf-8"))["weight_map"]
            except (ValueError, KeyError, TypeError) as e:
                raise ConversionError(f"{src / index}: expected a JSON object with a 'weight_map' ({e})") from None
            files = sorted({src / name for name in weight_map.values()})
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise ConversionError(f"{src / index} names shards that are not in the folder: {missing[:5]}")
            return files
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (src / single).is_file():
            return [src / single]
    files = sorted(src.glob("*.safetensors")) or sorted(src.glob("*.bin"))
    if not files:
        raise ConversionError(f"{src}: no checkpoint files (expected *.safetensors or pytorch_model*.bin with an index)")
    return files


def _open_shard(path: Path) -> tuple[dict[str, tuple[int, ...]], Callable[[str], torch.Tensor], Callable[[], None]]:
    """``(shapes, get tensor, close)`` for one shard without reading its data."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        handle = safe_open(str(path), framework="pt", device="cpu")
        shapes = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}
        return shapes, handle.get_tensor, lambda: None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # a legacy (pre-zipfile) file cannot be memory-mapped
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise ConversionError(f"{path}: not a readable PyTorch state dict ({e})") from None
    if not isinstance(obj, dict):
        raise ConversionError(f"{path}: expected a state dict (a mapping of tensors), got {type(obj).__name__}")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    return {k: tuple(v.shape) for k, v in tensors.items()}, tensors.__getitem__, tensors.clear


# --------------------------------------------------------------------------- shapes → config


def _count(shapes: dict[str, tuple], pattern: str) -> int:
    found = {int(m.group(1)) for k in shapes if (m := re.fullmatch(pattern, k))}
    return max(found) + 1 if found else 0


def _need(shapes: dict[str, tuple], key: str) -> tuple[int, ...]:
    if key not in shapes:
        raise ConversionError(f"released checkpoint has no tensor {key!r}; expected the authors' full model "
                              "(LLM, image projector, EVA + BLIP-2 video front, video and audio branches)")
    return shapes[key]


def _heads(width: int, head_dim: int, given: int | None, what: str, option: str) -> int:
    heads = given if given is not None else (width // head_dim if width % head_dim == 0 else None)
    if not heads or width % heads:
        raise ConversionError(f"{what} width {width} is not a multiple of the released head width {head_dim}: "
                              f"give its head count with {option}")
    return heads


def _cross_frequency(shapes: dict[str, tuple], prefix: str, layers: int) -> int:
    with_cross = {int(m.group(1)) for k in shapes
                  if (m := re.fullmatch(re.escape(prefix) + r"encoder\.layer\.(\d+)\.crossattention\..+", k))}
    for freq in range(1, layers + 1):
        if with_cross == {i for i in range(layers) if i % freq == 0}:
            return freq
    raise ConversionError(f"{prefix}: cross-attention in layers {sorted(with_cross)} of {layers} follows no "
                          "'every N-th layer' rule")


def _qformer(shapes: dict[str, tuple], prefix: str, heads: int | None) -> dict[str, Any]:
    layers = _count(shapes, re.escape(prefix) + r"encoder\.layer\.(\d+)\..+")
    hidden = _need(shapes, prefix + "embeddings.LayerNorm.weight")[0]
    return dict(hidden_size=hidden, num_hidden_layers=layers,
                num_attention_heads=_heads(hidden, 64, heads, prefix.rstrip("."), "--qformer-heads"),
                intermediate_size=_need(shapes, prefix + "encoder.layer.0.intermediate_query.dense.weight")[0],
                cross_attention_frequency=_cross_frequency(shapes, prefix, layers))


def _audio_stride(kernel: int, tokens: int, mel: int = 128, frames: int = 204) -> int:
    candidates = [10] + [s for s in range(1, 2 * kernel + 1) if s != 10]
    for stride in candidates:
        if ((mel - kernel) // stride + 1) * ((frames - kernel) // stride + 1) + 1 == tokens:
            return stride
    raise ConversionError(f"audio position embedding of {tokens} tokens fits no patch stride for a {mel}x{frames} "
                          f"fbank and kernel {kernel}")


@dataclass
class Heads:
    """Head counts that tensors cannot tell (None: the released head width decides)."""

    eva: int | None = None
    qformer: int | None = None
    audio: int | None = None


def project_config(lego: dict[str, Any], shapes: dict[str, tuple], vision_config: Any, token_ids: dict[str, int],
                   heads: Heads | None = None) -> Any:
    """The :class:`GroundingGPTConfig` whose model holds exactly the released tensors."""
    from transformers import LlamaConfig

    from ..models import GroundingGPTConfig
    from ..models.configuration_groundinggpt import GroundingGPTAudioConfig, GroundingGPTVideoConfig

    heads = heads or Heads()
    known = set(LlamaConfig().to_dict())
    text = {k: v for k, v in lego.items() if k in known and k not in ("model_type", "architectures", "auto_map")}
    text["vocab_size"] = _need(shapes, "model.embed_tokens.weight")[0]
    text["tie_word_embeddings"] = False
    text_config = LlamaConfig(**text)

    eva = "model.visual_encoder."
    width = _need(shapes, eva + "cls_token")[-1]
    patch = _need(shapes, eva + "patch_embed.proj.weight")[-1]
    grid = math.isqrt(_need(shapes, eva + "pos_embed")[1] - 1)
    frame_encoder = {
        "vision": dict(hidden_size=width, intermediate_size=_need(shapes, eva + "blocks.0.mlp.fc1.weight")[0],
                       num_hidden_layers=_count(shapes, re.escape(eva) + r"blocks\.(\d+)\..+"),
                       num_attention_heads=_heads(width, 88, heads.eva, "EVA ViT", "--eva-heads"),
                       image_size=grid * patch, patch_size=patch),
        "qformer": _qformer(shapes, "model.Qformer.bert.", heads.qformer),
        "num_query_tokens": _need(shapes, "model.query_tokens")[1],
    }
    video_q = _qformer(shapes, "model.video_Qformer.bert.", heads.qformer)
    max_frame = _need(shapes, "model.video_frame_position_embedding.weight")[0]
    video_config = GroundingGPTVideoConfig(
        num_frames=int(lego.get("max_frame", max_frame)), frame_token_pool=1,
        num_query_tokens=_need(shapes, "model.video_query_tokens")[1],
        qformer_hidden_size=video_q["hidden_size"], qformer_num_layers=video_q["num_hidden_layers"],
        qformer_num_heads=video_q["num_attention_heads"], qformer_intermediate_size=video_q["intermediate_size"],
        cross_attention_frequency=video_q["cross_attention_frequency"], adapter="linear",
        frame_encoder="eva_blip2", frame_encoder_config=frame_encoder, frame_sampling="index", frame_resize="squash",
    )
    ab = "model.audio_encoder.modality_"
    embed = _need(shapes, ab + "preprocessors.audio.cls_token")[-1]
    kernel = _need(shapes, ab + "preprocessors.audio.rgbt_stem.proj.weight")[-1]
    encoder = dict(
        embed_dim=embed, depth=_count(shapes, re.escape(ab) + r"trunks\.audio\.blocks\.(\d+)\..+"),
        num_heads=_heads(embed, 64, heads.audio, "ImageBind audio trunk", "--audio-heads"),
        mlp_ratio=_need(shapes, ab + "trunks.audio.blocks.0.mlp.fc1.weight")[0] / embed,
        patch_kernel=kernel,
        patch_stride=_audio_stride(kernel, _need(shapes, ab + "preprocessors.audio.pos_embedding_helper.pos_embed")[1]),
        out_dim=_need(shapes, ab + "heads.audio.2.weight")[0],
    )
    audio_q = _qformer(shapes, "model.audio_Qformer.bert.", heads.qformer)
    audio_config = GroundingGPTAudioConfig(
        encoder=encoder, num_clips=3, clip_seconds=2.0, max_clips=_need(shapes, "model.audio_position_embedding.weight")[0],
        num_query_tokens=_need(shapes, "model.audio_query_tokens")[1],
        qformer_hidden_size=audio_q["hidden_size"], qformer_num_layers=audio_q["num_hidden_layers"],
        qformer_num_heads=audio_q["num_attention_heads"], qformer_intermediate_size=audio_q["intermediate_size"],
        cross_attention_frequency=audio_q["cross_attention_frequency"], adapter="linear",
        # the released forward: no LayerNorm on the clip embeddings (BLIP-2's 0.02 for the rest)
        input_norm=False, position_init_std=0.02, qformer_initializer_range=0.02,
    )
    select = lego.get("mm_vision_select_feature", "patch")
    if select not in ("patch", None):
        raise ConversionError(f"config.json mm_vision_select_feature {select!r}: only 'patch' (CLS dropped) is released")
    return GroundingGPTConfig(
        text_config=text_config, vision_config=vision_config, video_config=video_config, audio_config=audio_config,
        vision_feature_layer=int(lego.get("mm_vision_select_layer", -2)), vision_feature_select_strategy="default",
        image_token_pool=1, image_adapter="mlp",
        image_token_id=token_ids["<im_patch>"], video_token_id=token_ids["<vi_patch>"],
        audio_token_id=token_ids["<so_patch>"],
        image_token="<im_patch>", video_token="<vi_patch>", audio_token="<so_patch>",
        chat_template="legacy", media_boundary_tokens=BOUNDARY_TOKENS,
    )


# --------------------------------------------------------------------------- the conversion


@dataclass
class ConversionReport:
    """What was mapped and dropped; written as ``conversion_report.json`` beside the weights."""

    source: str
    vision: str
    mapped: int = 0
    fused_qkv_biases: int = 0
    from_vision_folder: int = 0
    clip_left_out: list[str] = field(default_factory=list)  # CLIP layers after vision_feature_layer
    dropped: dict[str, list[str]] = field(default_factory=dict)
    mapping: list[tuple[str, str]] = field(default_factory=mapping_table)

    def summary(self) -> str:
        lines = [f"converted {self.source} → project layout",
                 f"  mapped released tensors: {self.mapped} (of which {2 * self.fused_qkv_biases} EVA q/v biases "
                 f"fused into {self.fused_qkv_biases} qkv biases)",
                 f"  CLIP tensors from {self.vision}: {self.from_vision_folder} (left out: "
                 f"{len(self.clip_left_out)} of layers after vision_feature_layer, never run)"]
        total = sum(len(v) for v in self.dropped.values())
        lines.append(f"  dropped released tensors: {total}")
        lines += [f"    {len(keys):6d}  {reason}" for reason, keys in sorted(self.dropped.items())]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "vision": self.vision, "mapped": self.mapped,
                "fused_qkv_biases": self.fused_qkv_biases, "from_vision_folder": self.from_vision_folder,
                "clip_left_out": self.clip_left_out,
                "dropped": self.dropped, "mapping": [list(r) for r in self.mapping]}


def _released_tokenizer(src: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(src), local_files_only=True)
    except (OSError, ValueError) as e:
        raise ConversionError(f"{src}: no loadable tokenizer ({e})") from None
    for token in RELEASED_TOKENS:  # as the authors' loader does: a no-op when the folder has them
        tok.add_tokens([token], special_tokens=True)
    if tok.pad_token is None:
        tok.pad_token = tok.unk_token if tok.unk_token is not None else tok.eos_token
    return tok


def _vision_tower_state(vision: Path) -> tuple[Any, dict[str, torch.Tensor]]:
    from transformers import CLIPVisionModel

    from ..presets import _check_kind

    _check_kind(vision, "--vision", lambda t: t in ("clip", "clip_vision_model"), "a CLIP ViT-L/14-336 folder")
    tower = CLIPVisionModel.from_pretrained(str(vision), local_files_only=True)
    return tower.config, {"vision_tower." + k: v for k, v in tower.state_dict().items()}


def _cut_clip_layers(state: dict[str, torch.Tensor], config: Any) -> tuple[dict[str, torch.Tensor], list[str]]:
    """CLIP's tensors minus the encoder layers after ``vision_feature_layer``: the model's tower
    is cut there (:mod:`groundinggpt.models.vision_cut`) and never runs them."""
    from ..models.vision_cut import kept_vision_layers

    kept = kept_vision_layers(config.vision_config.num_hidden_layers, config.vision_feature_layer)
    layer = re.compile(r"vision_tower\.(?:vision_model\.)?encoder\.layers\.(\d+)\.")
    unused = sorted(k for k in state if (m := layer.match(k)) and int(m.group(1)) >= kept)
    return {k: v for k, v in state.items() if k not in set(unused)}, unused


def _classify(shapes: dict[str, tuple]) -> tuple[dict[str, Any], dict[str, list[str]], list[str]]:
    mapped, dropped, unknown = {}, {}, []
    for key in shapes:  # the drop list first: buffers such as rotary inv_freq sit under mapped prefixes
        reason = drop_reason(key)
        target = map_key(key) if reason is None else None
        if reason is not None:
            dropped.setdefault(reason, []).append(key)
        elif target is not None:
            mapped[key] = target
        else:
            unknown.append(key)
    return mapped, dropped, unknown


def _check_targets(model_shapes: dict[str, tuple], released: dict[str, tuple], mapped: dict[str, Any],
                   vision_state: dict[str, torch.Tensor]) -> None:
    filled: dict[str, tuple] = {k: tuple(v.shape) for k, v in vision_state.items()}
    fused: dict[str, set] = {}
    for key, target in mapped.items():
        if isinstance(target, tuple):
            fused.setdefault(target[0], set()).add(target[1])
            filled[target[0]] = (3 * released[key][0],)
        else:
            filled[target] = released[key]
    half = [k for k, parts in fused.items() if parts != {"q", "v"}]
    unexpected = sorted(set(filled) - set(model_shapes))
    unfilled = sorted(set(model_shapes) - set(filled))
    wrong = [f"{k}: released {list(filled[k])} vs project {list(model_shapes[k])}"
             for k in sorted(set(filled) & set(model_shapes)) if tuple(filled[k]) != tuple(model_shapes[k])]
    problems = []
    if half:
        problems.append(f"EVA qkv biases lacking q_bias or v_bias: {half[:5]}")
    if unfilled:
        problems.append(f"{len(unfilled)} project parameters would stay unfilled: {unfilled[:10]}")
    if unexpected:
        problems.append(f"{len(unexpected)} mapped tensors have no project parameter: {unexpected[:10]}")
    if wrong:
        problems.append(f"{len(wrong)} shapes differ: {wrong[:6]}")
    if problems:
        raise ConversionError("refusing to convert: " + "; ".join(problems))


def _shards(files: list[Path]) -> Iterator[tuple[Path, dict[str, tuple], Callable, Callable]]:
    for path in files:
        shapes, get, close = _open_shard(path)
        yield path, shapes, get, close


def convert_lego(src: str | Path, vision: str | Path, dst: str | Path, *, heads: Heads | None = None,
                 log: Callable[[str], None] = print) -> ConversionReport:
    """Convert a released folder (see the module doc); returns the report it also writes."""
    from safetensors.torch import save_file

    from ..models import GroundingGPTForCausalLM
    from ..processor import GroundingGPTProcessor, ProcessorConfig

    src, vision, dst = Path(src), Path(vision), Path(dst)
    config_file = src / "config.json"
    if not config_file.is_file():
        raise ConversionError(f"{src}: no config.json (expected the released GroundingGPT folder)")
    try:
        lego = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ConversionError(f"{config_file}: not JSON ({e})") from None
    if not isinstance(lego, dict) or str(lego.get("model_type", "")).lower() != "lego":
        raise ConversionError(f"{config_file}: model_type {lego.get('model_type') if isinstance(lego, dict) else None!r}; "
                              "expected 'LEGO' (the authors' released checkpoint)")
    if dst.exists() and any(dst.iterdir()):
        raise ConversionError(f"--output {dst} exists and is not empty; give a new folder")
    files = weight_files(src)

    # Pass 1: names and shapes.
    released: dict[str, tuple] = {}
    for _, shapes, _, close in _shards(files):
        released.update(shapes)
        close()
    mapped, dropped, unknown = _classify(released)
    if unknown:
        raise ConversionError(f"refusing to convert: {len(unknown)} released tensors are neither mapped nor on the "
                              f"drop list: {sorted(unknown)[:10]}")
    tokenizer = _released_tokenizer(src)
    token_ids = {t: tokenizer.convert_tokens_to_ids(t) for t in RELEASED_TOKENS}
    for name, token in (("video_patch_token", "<vi_patch>"), ("video_start_token", "<vi_start>"),
                        ("video_end_token", "<vi_end>"), ("sound_patch_token", "<so_patch>"),
                        ("sound_start_token", "<so_start>"), ("sound_end_token", "<so_end>")):
        if name in lego and lego[name] != token_ids[token]:
            raise ConversionError(f"{config_file}: {name} is {lego[name]} but the tokenizer gives {token} id "
                                  f"{token_ids[token]}")
    vision_config, vision_state = _vision_tower_state(vision)
    config = project_config(lego, released, vision_config, token_ids, heads)
    if max(token_ids.values()) >= config.text_config.vocab_size:
        raise ConversionError(f"the tokenizer's added tokens reach id {max(token_ids.values())} but the embedding has "
                              f"{config.text_config.vocab_size} rows")
    with torch.device("meta"):
        model_shapes = {k: tuple(v.shape) for k, v in GroundingGPTForCausalLM(config).state_dict().items()}
    vision_state, unused_clip = _cut_clip_layers(vision_state, config)
    _check_targets(model_shapes, released, mapped, vision_state)

    # Pass 2: one shard in, one shard out.
    dst.mkdir(parents=True, exist_ok=True)
    report = ConversionReport(source=str(src), vision=str(vision), dropped={r: sorted(k) for r, k in dropped.items()})
    report.clip_left_out = unused_clip
    total = len(files) + 1
    weight_map: dict[str, str] = {}
    size = 0
    pending: dict[str, dict[str, torch.Tensor]] = {}
    dtype = None
    for i, (path, shapes, get, close) in enumerate(_shards(files), start=1):
        out: dict[str, torch.Tensor] = {}
        for key in shapes:
            target = mapped.get(key)
            if target is None:
                continue
            tensor = get(key)
            dtype = dtype or tensor.dtype
            report.mapped += 1
            if isinstance(target, tuple):
                name, part = target
                pending.setdefault(name, {})[part] = tensor.clone()
                parts = pending[name]
                if len(parts) == 2:
                    out[name] = torch.cat((parts["q"], torch.zeros_like(parts["q"]), parts["v"])).contiguous()
                    report.fused_qkv_biases += 1
                    del pending[name]
                continue
            out[target] = tensor.contiguous()
        name = f"model-{i:05d}-of-{total:05d}.safetensors"
        save_file(out, str(dst / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in out})
        size += sum(t.numel() * t.element_size() for t in out.values())
        log(f"  {path.name}: {len(out)} tensors → {name}")
        out.clear()
        close()
    name = f"model-{total:05d}-of-{total:05d}.safetensors"
    vision_out = {k: v.to(dtype or v.dtype).contiguous() for k, v in vision_state.items()}
    save_file(vision_out, str(dst / name), metadata={"format": "pt"})
    weight_map.update({k: name for k in vision_out})
    size += sum(t.numel() * t.element_size() for t in vision_out.values())
    report.from_vision_folder = len(vision_out)
    (dst / INDEX_NAME).write_text(json.dumps({"metadata": {"total_size": size}, "weight_map": weight_map}, indent=2))
    if dtype is not None:
        config.dtype = dtype
    config.architectures = ["GroundingGPTForCausalLM"]
    config.save_pretrained(dst)
    GroundingGPTProcessor(tokenizer, ProcessorConfig.from_model_config(config)).save_pretrained(dst)
    (dst / REPORT_NAME).write_text(json.dumps(report.to_dict(), indent=2))
    log(report.summary())
    log(f"wrote {dst} ({size / 2**30:.2f} GiB); report: {dst / REPORT_NAME}")
    return report

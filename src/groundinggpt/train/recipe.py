"""Training recipes: YAML files with a ``training:`` and a ``groundinggpt:`` section.

``training:`` holds ``transformers.TrainingArguments`` fields, checked against
``dataclasses.fields(TrainingArguments)``; ``groundinggpt:`` holds this project's
settings (:class:`TrainConfig`). Any unknown key is an error that names the key and
the file, so a typo (``learning_rte``) never silently trains with a default.

Recipes ship in ``groundinggpt/recipes/`` (``stage1`` .. ``stage3``, the paper's Table 9,
and ``tiny-stage1`` .. ``tiny-stage3`` for CPU) and are found by name; any other YAML
file is found by path. Command-line values override recipe values; generic overrides
are ``KEY=VALUE`` strings where KEY is ``training.NAME``, ``groundinggpt.NAME`` or a bare
``NAME`` that exists in exactly one section (see :func:`apply_set`).

Example:
    >>> cfg = build_config("tiny-stage1", overrides={"model": "tiny", "data": ["d.jsonl"], "output": "out"},
    ...                    sets=["learning_rate=5e-4"])
    >>> cfg.stage, cfg.training["learning_rate"]
    (1, 0.0005)
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .. import precision
from ..errors import InputError
from .lora import DEFAULT_TARGET_MODULES, LoraSettings

SECTIONS = ("training", "groundinggpt")
#: Top-level keys a recipe may hold besides the two sections.
EXTRA_TOP_LEVEL = ("description",)

#: Training keys the runner sets itself, and where the user should set them instead.
RESERVED_TRAINING_KEYS = {
    "output_dir": "use --output (groundinggpt.output)",
    "resume_from_checkpoint": "use --resume (groundinggpt.resume)",
    "gradient_checkpointing": "use groundinggpt.gradient_checkpointing (--gradient-checkpointing)",
    "activation_checkpointing": "use groundinggpt.gradient_checkpointing (--gradient-checkpointing)",
    "remove_unused_columns": "the runner always sets it to false: media tensors are not model-signature columns",
    "label_names": "the runner always sets it to ['labels']",
}
#: Names from older transformers versions, with what replaces them.
RENAMED_TRAINING_KEYS = {
    "warmup_ratio": "use warmup_steps: 0.03 (transformers >= 5 reads a float below 1 as a ratio of the steps)",
    "evaluation_strategy": "use eval_strategy",
    "save_safetensors": "transformers >= 5 always saves safetensors; drop the key",
}


#: Values of ``groundinggpt.group_by`` (see :mod:`groundinggpt.data.grouping`).
GROUP_BY = ("none", "length", "modality_length")
#: Values of ``groundinggpt.attn_implementation`` (None: transformers' default, SDPA).
ATTN_IMPLEMENTATIONS = (None, "sdpa", "eager", "flash_attention_2", "flex_attention")


class RecipeError(InputError):
    """A recipe file or override is invalid; the message names the key and the file."""


@dataclass
class TrainConfig:
    """Everything one training run needs (the ``groundinggpt:`` section plus ``training``).

    Attributes:
        stage: 1, 2 or 3: picks the freeze plan (:data:`groundinggpt.train.freeze.STAGE_PLANS`).
        model: a preset name (``tiny``, ``groundinggpt-7b``, ``groundinggpt-13b``) or a model
            folder written by a previous stage.
        model_parts: for the paper presets: ``{"llm": DIR, "vision": DIR, "audio": FILE}``.
        data: JSONL files of the current stage.
        previous_data: JSONL files of earlier stages, replayed with rate ``alpha``.
        alpha: replay sampling rate (the paper's α; 0 in stage 1).
        media_root: folder the samples' media paths are relative to (default: the data
            files' folder; files in several folders need it given).
        max_length: longest token sequence kept: a longer sample is cut at it when the cut keeps
            its media whole and some answer tokens (LLaVA's model_max_length), else skipped and reported.
        feature_cache: folder of cached frozen-encoder features (built when missing).
        lora: train LoRA adapters instead of the full LLM (stages 2–3).
        lora_r / lora_alpha / lora_dropout / lora_target_modules: LoRA settings.
        gradient_checkpointing: recompute activations in the backward pass (saves memory).
        strict: stop at the first bad sample instead of skipping it.
        load_dtype: dtype the weights are loaded in (``float32``; mixed precision comes from
            ``training.bf16``).
        output: the run folder: checkpoints, logs and the final model.
        resume: continue from the last complete checkpoint in ``output``.
        overwrite: write into a non-empty ``output`` that holds no run to resume.
        group_by: batch order: ``none`` (random), ``length`` (samples of similar length together) or
            ``modality_length`` (also one media kind per batch); see :mod:`groundinggpt.data.grouping`.
        packing: lay each batch's samples end to end in rows of ``pack_max_tokens`` (no padding
            between them, attention kept within each sample); see :mod:`groundinggpt.data.packing`.
        pack_max_tokens: tokens per packed row (``null``: the whole batch in one row, what
            FlashAttention-2 wants; on CPU a bounded row keeps attention's cost down).
        attn_implementation: the attention kernel of the LLM and the vision tower (``sdpa``,
            ``eager``, ``flash_attention_2``, ``flex_attention``; ``null``: transformers' default).
        training: ``TrainingArguments`` keyword arguments.
        recipe: the recipe file this config came from (for logs).
    """

    stage: int = 1
    model: str | None = None
    model_parts: dict[str, str] | None = None
    data: list[str] = field(default_factory=list)
    previous_data: list[str] = field(default_factory=list)
    alpha: float = 0.0
    media_root: str | None = None
    max_length: int | None = None
    feature_cache: str | None = None
    lora: bool = False
    lora_r: int = 64
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_TARGET_MODULES))
    gradient_checkpointing: bool = False
    strict: bool = False
    load_dtype: str = "float32"
    output: str | None = None
    resume: bool = False
    overwrite: bool = False
    group_by: str = "none"
    packing: bool = False
    pack_max_tokens: int | None = None
    attn_implementation: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    recipe: str | None = None

    @property
    def lora_settings(self) -> LoraSettings:
        return LoraSettings(r=int(self.lora_r), alpha=int(self.lora_alpha), dropout=float(self.lora_dropout),
                            target_modules=tuple(self.lora_target_modules))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Check the values that no later step would report clearly."""
        _check_types(self)
        if self.stage not in (1, 2, 3):
            raise RecipeError(f"stage must be 1, 2 or 3, got {self.stage!r}")
        if not self.model:
            raise RecipeError("no model: give --model (a preset name or a model folder)")
        if not self.data:
            raise RecipeError("no training data: give --data FILE[,FILE...]")
        if not self.output:
            raise RecipeError("no output folder: give --output DIR")
        if not 0.0 <= float(self.alpha) <= 1.0:
            raise RecipeError(f"alpha must be in [0, 1], got {self.alpha!r}")
        if float(self.alpha) > 0 and not self.previous_data:
            raise RecipeError(f"alpha={self.alpha} replays previous data, but no --previous-data was given")
        if self.previous_data and float(self.alpha) == 0:
            raise RecipeError("--previous-data was given but alpha is 0, so none of it would be replayed; "
                              "set --alpha (the replay rate)")
        if self.lora and self.stage == 1:
            raise RecipeError("--lora trains the LLM through adapters; stage 1 keeps the LLM frozen (use stage 2 or 3)")
        if self.group_by not in GROUP_BY:
            raise RecipeError(f"group_by must be one of {', '.join(GROUP_BY)}, got {self.group_by!r}")
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise RecipeError(f"attn_implementation must be one of {', '.join(map(str, ATTN_IMPLEMENTATIONS))}, "
                              f"got {self.attn_implementation!r}")
        if self.load_dtype not in ("float32", "bfloat16", "float16"):
            raise RecipeError(f"load_dtype must be float32, bfloat16 or float16, got {self.load_dtype!r}")


# Settings whose wrong type would otherwise surface as a traceback deep in the Trainer
# (``learning_rate=abc``) or a message that names no key (``alpha=abc``).
_SCALAR_TYPES: dict[str, tuple[str, Any]] = {
    "stage": ("an integer", lambda v: _is_int(v)),
    "alpha": ("a number", lambda v: _is_number(v)),
    "max_length": ("a positive integer or null", lambda v: v is None or (_is_int(v) and v > 0)),
    "lora_r": ("a positive integer", lambda v: _is_int(v) and v > 0),
    "lora_alpha": ("a positive integer", lambda v: _is_int(v) and v > 0),
    "lora_dropout": ("a number in [0, 1)", lambda v: _is_number(v) and 0 <= v < 1),
    "pack_max_tokens": ("a positive integer or null", lambda v: v is None or (_is_int(v) and v > 0)),
    **{k: ("true or false", lambda v: isinstance(v, bool))
       for k in ("lora", "gradient_checkpointing", "strict", "resume", "overwrite", "packing")},
}
_TRAINING_TYPES: dict[str, tuple[str, Any]] = {
    "learning_rate": ("a positive number", lambda v: _is_number(v) and v > 0),
    "per_device_train_batch_size": ("a positive integer", lambda v: _is_int(v) and v > 0),
    "gradient_accumulation_steps": ("a positive integer", lambda v: _is_int(v) and v > 0),
    "num_train_epochs": ("a number >= 0", lambda v: _is_number(v) and v >= 0),
    "max_steps": ("a positive integer (or -1: run num_train_epochs)", lambda v: _is_int(v) and (v > 0 or v == -1)),
    "warmup_steps": ("a number >= 0", lambda v: _is_number(v) and v >= 0),
    "weight_decay": ("a number >= 0", lambda v: _is_number(v) and v >= 0),
    "max_grad_norm": ("a number >= 0", lambda v: _is_number(v) and v >= 0),
    "seed": ("an integer", lambda v: _is_int(v)),
    "save_steps": ("a positive number", lambda v: _is_number(v) and v > 0),
    "logging_steps": ("a positive number", lambda v: _is_number(v) and v > 0),
    "dataloader_num_workers": ("an integer >= 0", lambda v: _is_int(v) and v >= 0),
    **{k: ("true or false", lambda v: isinstance(v, bool)) for k in ("fp16", "tf32")},
    "bf16": ("true, false or auto (bf16 where the device computes it fast)",
             lambda v: isinstance(v, bool) or v == precision.AUTO),
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v  # not NaN


def _check_types(config: TrainConfig) -> None:
    for key, (expected, ok) in _SCALAR_TYPES.items():
        value = getattr(config, key)
        if not ok(value):
            raise RecipeError(f"groundinggpt.{key} must be {expected}, got {value!r}")
    for key, (expected, ok) in _TRAINING_TYPES.items():
        if key in config.training and not ok(config.training[key]):  # null too: TrainingArguments wants a value
            raise RecipeError(f"training.{key} must be {expected}, got {config.training[key]!r}")


#: The keys a recipe's ``groundinggpt:`` section may hold.
GROUNDINGGPT_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("training", "recipe"))
_LIST_KEYS = ("data", "previous_data", "lora_target_modules")


def training_argument_names() -> set[str]:
    """Field names of ``transformers.TrainingArguments`` (imported lazily: it is slow)."""
    from transformers import TrainingArguments

    return {f.name for f in dataclasses.fields(TrainingArguments)}


def recipes_dir() -> Path:
    """The folder of the shipped recipes."""
    return Path(str(resources.files("groundinggpt") / "recipes"))


def available_recipes() -> list[str]:
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def resolve_recipe(name_or_path: str | Path) -> Path:
    """A recipe file from a path or a shipped recipe name (``stage1``, ``tiny-stage2`` ...)."""
    path = Path(name_or_path)
    if path.is_file():
        return path.resolve()
    shipped = recipes_dir() / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    raise RecipeError(
        f"recipe {str(name_or_path)!r} not found: not a file, nor a shipped recipe "
        f"({', '.join(available_recipes())})"
    )


def default_recipe(stage: int, model: str | None) -> str:
    """``tiny-stageN`` for the tiny preset (CPU-sized), else the paper's ``stageN``.

    A model folder written by a run with a ``tiny-*`` recipe (its ``run_log.json`` says so)
    continues with ``tiny-stageN`` too: the chain tiny stage 1 → 2 → 3 stays on CPU settings.
    """
    if model == "tiny":
        return f"tiny-stage{stage}"
    if model and (Path(model) / "run_log.json").is_file():
        try:
            from .. import jsonsafe

            log = jsonsafe.loads((Path(model) / "run_log.json").read_text(encoding="utf-8"))
            previous = log.get("recipe") if isinstance(log, dict) else ""
        except (OSError, ValueError):
            previous = ""
        previous = previous if isinstance(previous, str) else ""
        if Path(previous).name.startswith("tiny-"):
            return f"tiny-stage{stage}"
    return f"stage{stage}"


_EXPONENT_ONLY = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def coerce_value(value: Any) -> Any:
    """Fix YAML 1.1's blind spot: ``1e-3`` (no dot) is read as a string, not a float."""
    if isinstance(value, str) and _EXPONENT_ONLY.match(value.strip()):
        return float(value)
    return value


def coerce_training_value(key: str, value: Any) -> Any:
    """:func:`coerce_value`, plus YAML 1.1 reading ``save_strategy: no`` as ``False``."""
    value = coerce_value(value)
    if key.endswith("_strategy") and value is False:
        return "no"
    return value


def parse_value(text: str) -> Any:
    """A ``--set`` value: YAML scalar/list syntax (``true``, ``3``, ``[a, b]``, ``null``), numbers fixed."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    except RecursionError:  # "[[[[..." thousands deep: PyYAML recurses per level
        raise RecipeError(f"--set value {text[:40]!r}...: lists/mappings nested too deep") from None
    return coerce_value(value)


def _check_training_key(key: str, where: str, valid: set[str]) -> None:
    if key in RESERVED_TRAINING_KEYS:
        raise RecipeError(f"{where}: training key {key!r} cannot be set here: {RESERVED_TRAINING_KEYS[key]}")
    if key in RENAMED_TRAINING_KEYS:
        raise RecipeError(f"{where}: unknown training key {key!r}: {RENAMED_TRAINING_KEYS[key]}")
    if key not in valid:
        close = [k for k in sorted(valid) if k.startswith(key[:4])][:5]
        hint = f"; did you mean one of {close}?" if close else ""
        raise RecipeError(f"{where}: unknown training key {key!r} (not a TrainingArguments field){hint}")


def _check_groundinggpt_key(key: str, where: str) -> None:
    if key not in GROUNDINGGPT_KEYS:
        raise RecipeError(f"{where}: unknown groundinggpt key {key!r}; expected one of {list(GROUNDINGGPT_KEYS)}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key written twice in one mapping (YAML keeps the
    last in silence: a recipe with two ``learning_rate`` lines trains with the second)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} is written twice",
                                                    key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_recipe(name_or_path: str | Path) -> dict[str, Any]:
    """Read and validate a recipe file.

    Returns:
        ``{"training": {...}, "groundinggpt": {...}, "path": str}``; a relative
        ``training.deepspeed`` path is made absolute against the recipe's folder.

    Raises:
        RecipeError: unreadable YAML, an unknown section or key (naming it and the file).
    """
    path = resolve_recipe(name_or_path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader) or {}  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: invalid YAML ({e})") from e
    except RecursionError:  # PyYAML recurses once per level of "[[[[..."
        raise RecipeError(f"{path}: invalid YAML (lists/mappings nested too deep)") from None
    except UnicodeDecodeError as e:
        raise RecipeError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); expected a YAML recipe") from e
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping with 'training' and 'groundinggpt' sections")
    for key in raw:
        if key not in SECTIONS and key not in EXTRA_TOP_LEVEL:
            raise RecipeError(f"{path}: unknown top-level key {key!r}; expected {list(SECTIONS)}")
    training = raw.get("training") or {}
    gg = raw.get("groundinggpt") or {}
    for name, section in (("training", training), ("groundinggpt", gg)):
        if not isinstance(section, dict):
            raise RecipeError(f"{path}: section {name!r} must be a mapping, got {type(section).__name__}")
    valid = training_argument_names()
    for key in training:
        _check_training_key(key, str(path), valid)
    for key in gg:
        _check_groundinggpt_key(key, str(path))
    training = {k: coerce_training_value(k, v) for k, v in training.items()}
    gg = {k: coerce_value(v) for k, v in gg.items()}
    ds = training.get("deepspeed")
    if _relative_deepspeed_path(ds):
        training["deepspeed"] = str((path.parent / ds).resolve())
    return {"training": training, "groundinggpt": gg, "path": str(path)}


def apply_set(recipe: dict[str, Any], assignment: str, valid_training: set[str] | None = None) -> None:
    """Apply one ``KEY=VALUE`` override to a loaded recipe, in place.

    ``KEY`` is ``training.NAME``, ``groundinggpt.NAME`` or a bare ``NAME`` found in exactly one
    of the two sections' valid keys.
    """
    if "=" not in assignment:
        raise RecipeError(f"--set {assignment!r}: expected KEY=VALUE")
    key, _, text = assignment.partition("=")
    key = key.strip()
    value = parse_value(text)
    valid_training = valid_training if valid_training is not None else training_argument_names()
    section, _, name = key.rpartition(".")
    where = f"--set {assignment!r}"
    if section:
        if section not in SECTIONS:
            raise RecipeError(f"{where}: unknown section {section!r}; expected {list(SECTIONS)}")
    else:
        in_training = name in valid_training or name in RESERVED_TRAINING_KEYS
        in_gg = name in GROUNDINGGPT_KEYS
        if in_training and in_gg:
            raise RecipeError(f"{where}: {name!r} exists in both sections; write training.{name} or groundinggpt.{name}")
        if not in_training and not in_gg:
            raise RecipeError(f"{where}: unknown key {name!r} (neither a TrainingArguments field nor a groundinggpt key)")
        section = "training" if in_training else "groundinggpt"
    if section == "training":
        _check_training_key(name, where, valid_training)
        value = coerce_training_value(name, value)
        if name == "deepspeed":
            value = _shipped_deepspeed(value)
    else:
        _check_groundinggpt_key(name, where)
    recipe[section][name] = value


def _relative_deepspeed_path(value: Any) -> bool:
    """A ``deepspeed`` value naming a file by a relative path (not inline JSON, not absolute)."""
    return isinstance(value, str) and not value.lstrip().startswith("{") and not Path(value).is_absolute()


def _shipped_deepspeed(value: Any) -> Any:
    """``--set deepspeed=deepspeed/zero3.json``: a relative path found from the working folder
    is used as is; otherwise one of the shipped configs (as recipe files name them)."""
    if not _relative_deepspeed_path(value) or Path(value).exists():
        return value
    shipped = recipes_dir() / value
    return str(shipped) if shipped.is_file() else value


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in (s.strip() for s in value.split(",")) if v]
    return [str(v) for v in value]


def build_config(
    recipe: str | Path | None,
    overrides: dict[str, Any] | None = None,
    sets: list[str] | None = None,
    training_overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """Recipe ← ``--set`` overrides ← explicit command-line values → a validated :class:`TrainConfig`.

    Args:
        recipe: a recipe name or file; ``None`` picks :func:`default_recipe` from the stage
            and model in ``overrides``.
        overrides: ``groundinggpt`` values from dedicated flags (``None`` values are ignored).
        sets: ``KEY=VALUE`` strings (see :func:`apply_set`).
        training_overrides: ``TrainingArguments`` values from dedicated flags (``--max-steps``, ``--seed``).
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if recipe is None:
        recipe = default_recipe(int(overrides.get("stage", 1)), overrides.get("model"))
    loaded = load_recipe(recipe)
    valid = training_argument_names()
    for assignment in sets or []:
        apply_set(loaded, assignment, valid)
    for key, value in (training_overrides or {}).items():
        if value is not None:
            _check_training_key(key, "command line", valid)
            loaded["training"][key] = value
    gg = dict(loaded["groundinggpt"])
    if "stage" in gg and "stage" in overrides and gg["stage"] != overrides["stage"]:
        warnings.warn(f"recipe {loaded['path']} is written for stage {gg['stage']}, but stage {overrides['stage']} "
                      "was asked for: the command line wins (freeze plan of that stage, recipe's hyper-parameters)",
                      stacklevel=2)
    for key, value in overrides.items():
        _check_groundinggpt_key(key, "command line")
        gg[key] = value
    for key in _LIST_KEYS:
        if key in gg:
            gg[key] = _as_list(gg[key])
    config = TrainConfig(**gg, training=dict(loaded["training"]), recipe=loaded["path"])
    _check_types(config)  # before the conversions below, so a bad value is named with its key
    config.stage = int(config.stage)
    config.alpha = float(config.alpha)
    if "bf16" in config.training:  # resolved here, so the run record and run_log hold what ran
        config.training["bf16"] = precision.resolve_bf16(config.training["bf16"],
                                                         use_cpu=bool(config.training.get("use_cpu")))
    config.validate()
    return config

"""One training stage with the Hugging Face ``Trainer``: data → model → freeze → train → complete save.

:func:`train` is what ``groundinggpt train`` runs. In order:

1. read and validate every data line (current + replayed previous stage) — a malformed
   line stops the run here, naming file and line, before any model is loaded;
2. build the model from a preset or load the folder a previous stage saved;
3. apply the stage's freeze plan (and LoRA adapters on the LLM, stages 2–3);
4. optionally fill the frozen-encoder feature cache; probe every medium once and drop
   (or, with ``strict``, stop at) samples whose media cannot be opened;
5. ``Trainer.train`` (DDP via ``torchrun``, DeepSpeed via ``training.deepspeed``,
   checkpoints every ``save_steps``, ``resume`` from the last complete one);
6. save a COMPLETE model folder — every branch, the LLM (LoRA merged), config and
   processor files — loadable by :meth:`groundinggpt.GroundingGPT.from_pretrained` and
   by the next stage; plus ``run_log.json``, ``loss.csv`` and ``loss.png``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..data.dataset import GroundingDataset, SkipReport
from ..data.replay import mix_with_replay
from ..data.schema import DataError, Sample, read_jsonl
from ..errors import GroundingGPTError
from .callbacks import LogAtSaveCallback, LossCurveCallback, ThroughputCallback, whole_run_loss
from .arguments import _argument_names, checkpointing_arguments, make_training_arguments  # noqa: F401 (re-exported)
from .freeze import format_summary
from .lora import merge_lora
from .model_setup import MODEL_PARTS, build_model, check_model_parts, prepare_model  # noqa: F401 (re-exported)
from . import run_record
from .recipe import RecipeError, TrainConfig
from .result import RUN_LOG, Throughput, TrainResult

logger = logging.getLogger(__name__)

SKIP_LOG = "skipped.jsonl"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def last_complete_checkpoint(output: str | os.PathLike) -> Path | None:
    """The newest ``checkpoint-N`` folder whose save finished.

    The Trainer writes ``trainer_state.json`` last, so a folder without it is what a kill
    in the middle of a save leaves behind; ``transformers.trainer_utils.get_last_checkpoint``
    would pick that one and the resume would fail.
    """
    output = Path(output)
    if not output.is_dir():
        return None
    found = []
    for child in output.iterdir():
        m = _CHECKPOINT_RE.match(child.name)
        if m and child.is_dir() and (child / "trainer_state.json").is_file():
            found.append((int(m.group(1)), child))
    return max(found)[1] if found else None


def _has_checkpoints(output: Path) -> bool:
    return output.is_dir() and any(_CHECKPOINT_RE.match(c.name) for c in output.iterdir())


def _say(args: Any, message: str) -> None:
    """Print on the main process only (one line per run, not one per rank)."""
    if args is None or args.process_index == 0:
        print(message, file=sys.stderr, flush=True)


# ---- data ----------------------------------------------------------------------------------


def load_samples(config: TrainConfig, seed: int) -> tuple[list[Sample], dict[str, Any]]:
    """Current data (+ replayed previous data) → (samples, data-mix report). Validates every line."""
    current = read_jsonl(config.data)
    previous = read_jsonl(config.previous_data) if config.previous_data else []
    if config.previous_data and not previous:
        raise DataError(f"--previous-data {', '.join(config.previous_data)} holds no samples; alpha={config.alpha} "
                        "would replay nothing")
    if previous:
        samples, replay = mix_with_replay(current, previous, config.alpha, seed=seed)
    else:
        samples, replay = list(current), {"current": len(current), "previous_available": 0, "previous_used": 0,
                                          "previous_overlap": 0, "alpha": config.alpha, "seed": seed}
    if not samples:
        raise DataError(f"no samples in {config.data}")
    mix = {
        "files": list(config.data),
        "previous_files": list(config.previous_data),
        "replay": replay,
        "samples": len(samples),
        "by_task": dict(Counter(s.task for s in samples).most_common()),
        "by_source": dict(Counter(str(s.source) for s in samples).most_common()),
        "by_stage": {str(k): v for k, v in Counter(s.stage for s in samples).most_common()},
        "by_media": dict(Counter("+".join(k for k, _ in s.media()) or "text" for s in samples).most_common()),
    }
    return samples, mix


# ---- save ----------------------------------------------------------------------------------


def save_final(trainer: Any, model: torch.nn.Module, processor: Any, output: Path, lora: bool) -> None:
    """Write the complete model folder (every branch + LLM, config, processor) into ``output``.

    LoRA adapters are merged first, so the folder is a plain GroundingGPT. ``trainer.save_model``
    gathers the weights from DeepSpeed when needed, saves on the main process only and writes
    the processor files through ``processing_class``.
    """
    if lora:
        merge_lora(model)
    trainer.save_model(str(output))
    trainer.accelerator.wait_for_everyone()


# ---- the run -------------------------------------------------------------------------------


class TrainingDiverged(GroundingGPTError):
    """The trained weights hold NaN or inf, or the run ended on a NaN or inf loss: nothing
    worth saving came out of it."""


def _check_finite(model: torch.nn.Module, log_history: list[dict[str, Any]] = ()) -> None:
    # Under ZeRO-3 a parameter is an empty placeholder; this process's shard is ds_tensor.
    # Each process checks what it holds, and all of them learn whether any found a bad value.
    bad = [name for name, p in model.named_parameters()
           if p.requires_grad and not bool(torch.isfinite(getattr(p, "ds_tensor", p)).all())]
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # A 1-element tensor on the process group's device (NCCL: this GPU; gloo: CPU).
        nccl = torch.distributed.get_backend() == "nccl"
        device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
        anywhere = torch.tensor([len(bad)], device=device)
        torch.distributed.all_reduce(anywhere, op=torch.distributed.ReduceOp.MAX)
        if anywhere.item() and not bad:
            bad = ["(a shard held by another process)"]
    if bad:
        raise TrainingDiverged(
            f"training diverged: {len(bad)} trained tensors hold NaN or inf (e.g. {bad[0]}); the final model "
            "was not saved. Look for a non-finite loss in the log: a bad medium or a learning rate too high")
    # DeepSpeed skips a step whose gradients overflow, so its weights can stay finite (and
    # useless) while every loss is NaN: the last logged loss is checked too. The Trainer logs
    # on every process the loss averaged over all of them, so all processes agree.
    losses = [entry["loss"] for entry in log_history if "loss" in entry]
    if losses and not math.isfinite(float(losses[-1])):
        raise TrainingDiverged(
            f"training diverged: the last logged loss is {losses[-1]}; the final model was not saved. "
            "Look for the first non-finite loss in the log: a bad medium or a learning rate too high")


def check_output(config: TrainConfig, identity: dict[str, Any]) -> bool:
    """Refuse an ``--output`` that would lose or mix work; ``True`` if it holds this very
    run, finished (``--resume`` then has nothing to do).

    A new or empty folder starts a run. A folder with checkpoints needs ``--resume``, and a
    resumed run must be the one that started there: ``identity`` (see
    :func:`run_record.run_identity`: stage, model, recipe, schedule, batch, seed, length and
    every data file's content hash) must equal its record, each difference is named.
    Any other non-empty folder (another run's model, unrelated files) is refused unless
    ``--overwrite``: training would replace its ``config.json`` and weights in silence.
    """
    output = Path(config.output)
    if output.exists() and not output.is_dir():
        raise RecipeError(f"--output {output} is a file; expected a folder for the run")
    if not output.is_dir() or not any(output.iterdir()):
        return False
    if config.overwrite:
        return False
    before = run_record.read(output) if config.resume else None
    if before is not None:
        changed = run_record.differences(before, identity)
        if changed:
            shown = "; ".join(changed)
            raise RecipeError(f"--resume: {output} holds another run ({shown}); resume it with its own settings, "
                              "or choose another --output")
        return (output / RUN_LOG).is_file() and (output / "model.safetensors").is_file()
    if _has_checkpoints(output):
        if not config.resume:
            raise RecipeError(f"{output} already holds checkpoints: pass --resume to continue that run, "
                              "or choose another --output")
        return False  # a run from before the start record: resumed as it is
    examples = ", ".join(sorted(p.name for p in output.iterdir())[:3])
    raise RecipeError(f"--output {output} is not empty ({examples}, ...) and holds no run to resume; training would "
                      "overwrite what is there: choose a new folder, or pass --overwrite")


def _undo_start(output: Path, skip_log: Path, created: bool) -> None:
    """Remove what a run refused before its first step wrote: its skip log (an older one was
    cleared when it began), and ``output`` if this run created it and nothing else is there."""
    skip_log.unlink(missing_ok=True)
    if created:
        try:
            output.rmdir()  # only when empty: never anything that was not ours
        except OSError:
            pass


def check_media_root(config: TrainConfig) -> Path:
    """The folder media paths are relative to: ``--media-root``, else the data files' folder."""
    if config.media_root:
        return Path(config.media_root)
    folders = sorted({str(Path(d).resolve().parent) for d in [*config.data, *config.previous_data]})
    if len(folders) > 1:
        raise RecipeError(f"the data files are in different folders ({', '.join(folders)}), so their media paths "
                          "may be relative to different roots: give --media-root")
    return Path(folders[0])


def train(config: TrainConfig, callbacks: Sequence[Any] = ()) -> TrainResult:
    """Run one training stage; return what it did (its ``output`` folder holds the final model).

    The returned :class:`~groundinggpt.train.result.TrainResult` is also written as
    ``run_log.json`` (by the main process); a finished run asked to ``resume`` returns the
    one it wrote then.

    Args:
        config: see :class:`~groundinggpt.train.recipe.TrainConfig` (built by
            :func:`~groundinggpt.train.recipe.build_config` from a recipe and the command line).
        callbacks: extra ``transformers.TrainerCallback`` objects (the quickstart's learning-curve
            snapshots); they run after the built-in ones.

    Raises:
        DataError: a malformed data line (before any training), or a bad sample with ``strict``.
        RecipeError: an invalid setting.
    """
    from transformers import Trainer, set_seed
    from transformers.trainer_utils import enable_full_determinism

    config.validate()
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    output = Path(config.output)
    identity = run_record.run_identity(config)  # hashes the data files: once, before they are read
    if check_output(config, identity):
        print(f"--resume: the run in {output} finished already ({RUN_LOG}); nothing to do", file=sys.stderr)
        return TrainResult.read(output)
    media_root = check_media_root(config)
    if config.resume:
        run_record.pin_threads(run_record.read(output), say=lambda m: print(m, file=sys.stderr, flush=True))

    # Data first: a typo on line 90 000 should cost seconds, not a model load.
    t = time.perf_counter()
    seed = int(config.training.get("seed", 42))
    data_seed = config.training.get("data_seed")
    samples, mix = load_samples(config, seed=int(data_seed if data_seed is not None else seed))
    timings["read_data_s"] = time.perf_counter() - t

    resume_from = last_complete_checkpoint(output) if config.resume else None
    args = make_training_arguments(config)
    # Set up torch.distributed (and DeepSpeed's communication) now, not lazily at the first
    # use: under ZeRO-3 the model is built inside deepspeed.zero.Init, which reads the world
    # size from it and otherwise takes 1 (its batch-size check then fails).
    _ = args.device
    if args.deepspeed and torch.distributed.is_initialized():
        # On CPU (use_cpu) accelerate starts gloo by itself, and DeepSpeed's communication
        # layer only learns of it at deepspeed.initialize(), after the model is built.
        import deepspeed

        deepspeed.init_distributed(dist_backend=torch.distributed.get_backend())
    if config.resume and resume_from is None and output.is_dir() and any(output.iterdir()):
        # Worth saying only where something was there to resume; a new folder just starts.
        _say(args, f"--resume: no complete checkpoint in {output}; starting from the beginning")
    # The Trainer seeds again in its constructor; this one makes the model build (tiny's
    # random init, LoRA's A matrices) reproducible too.
    if args.full_determinism:
        enable_full_determinism(args.seed)
    else:
        set_seed(args.seed)

    t = time.perf_counter()
    model, processor, freeze = prepare_model(config, seed=args.seed)
    timings["load_model_s"] = time.perf_counter() - t
    _say(args, f"stage {config.stage}: {freeze['plan']['description']}\n{format_summary(freeze['summary'])}")

    skip_log = output / SKIP_LOG
    fresh = resume_from is None
    created = not output.exists()
    cache = None
    cache_report = None
    t = time.perf_counter()
    try:
        # Main process first: it clears the old skip log and fills the feature cache; the other
        # ranks then find every entry cached instead of encoding the same media concurrently.
        with args.main_process_first(local=False, desc="prepare data"):
            output.mkdir(parents=True, exist_ok=True)
            if args.process_index == 0 and fresh:
                skip_log.unlink(missing_ok=True)
            if config.feature_cache:
                from ..data.feature_cache import FeatureCache

                cache = FeatureCache(config.feature_cache)
                cache_report = cache.build(model, samples, processor, media_root, progress=args.process_index == 0)
            dataset = GroundingDataset(samples, processor, media_root, max_length=config.max_length,
                                       feature_cache=cache, strict=config.strict, skip_log=skip_log)
            probe = dataset.validate_media(progress=False)
        timings["prepare_data_s"] = time.perf_counter() - t
        if probe.skipped:
            if config.strict:
                sample_id, reason = probe.skipped[0]
                raise DataError(f"--strict: sample {sample_id!r} is unusable: {reason}")
            _say(args, probe.summary())
        if len(dataset) == 0:
            raise DataError("every sample was skipped; nothing to train on (see the messages above)")

        from .batching import GroupedTrainer, make_collator

        collator = make_collator(config, processor, dataset, seed=args.seed)
        throughput = ThroughputCallback()
        grouped = {"group_by": config.group_by} if config.group_by != "none" else {}
        trainer = (GroupedTrainer if grouped else Trainer)(
            model=model, args=args, train_dataset=dataset, data_collator=collator, processing_class=processor,
            callbacks=[LossCurveCallback(output, f"stage {config.stage} loss"), throughput, LogAtSaveCallback(),
                       *callbacks],
            **grouped,
        )
    except BaseException:
        if args.process_index == 0 and fresh:
            _undo_start(output, skip_log, created)
        raise
    if args.process_index == 0 and fresh:
        # Only now: a run refused above (a bad sample with --strict ...) leaves no record that
        # would make the fixed command's folder look like someone else's.
        run_record.write(output, identity)
    t = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    timings["train_s"] = time.perf_counter() - t
    if trainer.state.global_step == 0:
        raise RecipeError("no optimizer step was taken (num_train_epochs 0, or too few samples for one batch?); "
                          "the model was not saved")
    _check_finite(model, trainer.state.log_history)

    t = time.perf_counter()
    save_final(trainer, model, processor, output, lora=config.lora)
    timings["save_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t_start

    skips = SkipReport.from_dataset(dataset)
    metrics = dict(result.metrics)
    outcome = TrainResult(
        stage=config.stage, model=config.model, output=output.resolve(), recipe=config.recipe,
        config=config.to_dict(), world_size=args.world_size,
        resumed_from=str(resume_from) if resume_from else None,
        data={**mix, "media_root": str(media_root),
              # samples skipped while training (too long, a medium that failed) count out too
              "trained_on": len({s.id for s in dataset.samples} - {sid for sid, _ in skips.skipped})},
        skipped=skips.to_dict(), freeze=freeze, feature_cache=cache_report, timings=timings,
        throughput=Throughput(
            global_steps=trainer.state.global_step,
            session_steps=trainer.state.global_step - throughput.start_step,
            samples_per_second=metrics.get("train_samples_per_second"),
            steps_per_second=metrics.get("train_steps_per_second"),
            tokens_seen=trainer.state.num_input_tokens_seen,
            tokens_per_second=throughput.tokens_per_second(trainer.state, metrics.get("train_runtime")),
        ),
        # The Trainer's train_loss covers this session only; this one every step of the run.
        final_train_loss=whole_run_loss(trainer.state.log_history, throughput.start_step,
                                        metrics.get("train_loss"), trainer.state.global_step),
        metrics=metrics,
    )
    if trainer.is_world_process_zero():
        outcome.write()
        _say(args, skips.summary())
        _say(args, f"saved the stage-{config.stage} model to {output}")
    return outcome

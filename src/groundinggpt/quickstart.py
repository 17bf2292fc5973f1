"""``groundinggpt quickstart``: the whole pipeline on the synthetic world, on a CPU, with measured grounding.

In order (each step is a *phase*; a finished phase is recorded in ``DIR/quickstart.json``
and never redone, so an interrupted run continues from the last finished one):

1. ``world``     generate the synthetic world (media + stage and test JSONL) and its blind
                 constant baselines (:func:`groundinggpt.data.synthetic.blind_baselines`);
2. ``init``      assemble the miniature model from the committed *pretrained* parts
                 (:mod:`groundinggpt.miniature`: a tiny "CLIP", "ImageBind audio" and
                 "Vicuna") with fresh adapters, and save it as ``models/stage0``;
3. ``features``  run the frozen encoders once over every training medium
                 (:class:`~groundinggpt.data.feature_cache.FeatureCache`): they never change;
4. ``stage1``..``stage3``  the paper's three stages with ``groundinggpt train``'s runner
                 (:func:`groundinggpt.train.run.train`): stage 1 adapters only on coarse
                 captions; stage 2 LLM + adapters on the fine-grained tasks, replaying α of
                 stage 1; stage 3 multi-turn instructions, replaying α of stage 2;
5. ``eval``      held-out REC, temporal grounding and sound localisation with
                 ``groundinggpt eval synthetic``'s runner, asked with the media and again
                 *without* them (the same model, blind);
6. ``report``    ``report.md`` + ``report.json`` (metrics beside the baselines, timings per
                 phase, data sizes, machine load) and PNG examples.

``--ablation coarse-to-fine`` adds the paper's Table 7: stage 1 trained once on coarse data
only (the main run) and once on coarse + fine-grained data, then the same stages 2-3 and
the REC evaluation for both.

Example::

    groundinggpt quickstart --out runs/quickstart
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .data.synthetic.generate import TEST_FILES

__all__ = ["QuickstartError", "Plan", "default_plan", "fast_plan", "run_quickstart", "register", "main"]

STATE_FILE = "quickstart.json"
FORMAT = "groundinggpt-quickstart"
ABLATIONS = ("coarse-to-fine",)

#: World of the full quickstart (sample counts per family; see docs/quickstart.md for why).
QUICKSTART_WORLD: dict[str, dict[str, int]] = {
    "stage1": {"image_caption": 3000, "video_caption": 1000, "audio_caption": 1000},
    "stage2": {"rec": 12000, "reg": 1000, "object_attribute": 1000, "temporal_grounding": 3000,
               "video_dense_caption": 500, "sound_localization": 3000},
    "stage3": {"image_conversation": 1000, "video_conversation": 400, "sound_conversation": 400},
    "test": {"rec": 300, "temporal_grounding": 300, "sound_localization": 300},
}
#: A very small world for the CI test of the whole path.
FAST_WORLD: dict[str, dict[str, int]] = {
    "stage1": {"image_caption": 8, "video_caption": 4, "audio_caption": 4},
    "stage2": {"rec": 8, "reg": 2, "object_attribute": 2, "temporal_grounding": 4,
               "video_dense_caption": 2, "sound_localization": 4},
    "stage3": {"image_conversation": 3, "video_conversation": 2, "sound_conversation": 2},
    "test": {"rec": 4, "temporal_grounding": 4, "sound_localization": 4},
}

#: The evaluated test sets: name → (world file, metric reported, world baseline key).
TESTS = {name: (TEST_FILES[family], metric, family) for name, metric, family in (
    ("rec", "rec Acc@0.5", "rec"),
    ("temporal", "temporal_grounding R1@0.5", "temporal_grounding"),
    ("sound", "sound_localization Acc@0.5", "sound_localization"),
)}
#: Where the measurements behind missed targets are written up.
MISSED_TARGETS_DOC = "docs/quickstart.md, \"What it measures today\""
#: The issue's targets (percent).
TARGETS = {"rec": 80.0, "temporal": 60.0, "sound": 80.0}


class QuickstartError(RuntimeError):
    """The output folder cannot be used (another run, a foreign folder) or a phase failed."""


@dataclass
class Plan:
    """Everything that determines a quickstart's results (a resumed run must match it exactly).

    Attributes:
        seed: world and training seed.
        world: sample counts per family (:data:`QUICKSTART_WORLD`).
        recipes: recipe per stage (shipped names such as ``quickstart-stage2`` or files).
        sets: extra ``KEY=VALUE`` recipe overrides per stage.
        max_steps: optional step limit per stage (the CI path).
        parts: folder of the pretrained parts (``None``: the committed ones).
        parts_sha: fingerprint of the parts' files.
        eval_batch_size: conversations per generate call in the evaluation.
        eval_limit: evaluate only the first N test samples (``None``: all).
    """

    seed: int = 0
    world: dict[str, dict[str, int]] = field(default_factory=lambda: json.loads(json.dumps(QUICKSTART_WORLD)))
    recipes: dict[str, str] = field(default_factory=lambda: {
        "1": "quickstart-stage1", "2": "quickstart-stage2", "3": "quickstart-stage3"})
    sets: dict[str, list[str]] = field(default_factory=lambda: {"1": [], "2": [], "3": []})
    max_steps: dict[str, int] | None = None
    parts: str | None = None
    parts_sha: str = ""
    eval_batch_size: int = 50
    eval_limit: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fingerprint(self) -> str:
        """sha256 of the plan and of the recipe files' contents."""
        from .train.recipe import resolve_recipe

        h = hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode())
        for stage in sorted(self.recipes):
            h.update(resolve_recipe(self.recipes[stage]).read_bytes())
        return h.hexdigest()


def _parts_sha(parts: str | None) -> str:
    from .miniature.parts import ASSETS, PART_FILES

    directory = Path(parts or ASSETS)
    h = hashlib.sha256()
    for name in sorted(PART_FILES):
        path = directory / PART_FILES[name]
        if not path.is_file():
            raise QuickstartError(f"pretrained part {path} not found: run scripts/pretrain_miniature.py "
                                  f"(or pass --parts DIR)")
        h.update(name.encode() + path.read_bytes())
    return h.hexdigest()[:16]


def default_plan(seed: int = 0, parts: str | None = None) -> Plan:
    """The full quickstart (about 20 minutes on 2 CPU cores; see docs/quickstart.md)."""
    return Plan(seed=seed, parts=parts, parts_sha=_parts_sha(parts))


def fast_plan(seed: int = 0, parts: str | None = None, steps: int = 2) -> Plan:
    """A very small world and ``steps`` optimizer steps per stage: the CI test of the whole path."""
    return Plan(seed=seed, world=json.loads(json.dumps(FAST_WORLD)), parts=parts, parts_sha=_parts_sha(parts),
                max_steps={"1": steps, "2": steps, "3": steps},
                sets={s: ["per_device_train_batch_size=2", "gradient_accumulation_steps=1", "save_strategy=no",
                          "warmup_steps=0", "logging_steps=1"] for s in ("1", "2", "3")},
                eval_batch_size=4)


# ------------------------------------------------------------------------------------------ state


class _State:
    """``DIR/quickstart.json``: the plan, its fingerprint and the finished phases."""

    def __init__(self, out: Path, plan: Plan):
        self.out, self.plan = out, plan
        self.path = out / STATE_FILE
        self.data: dict[str, Any] = {"format": FORMAT, "version": 1, "fingerprint": plan.fingerprint(),
                                     "plan": plan.to_dict(), "phases": {}, "created": time.strftime("%Y-%m-%d %H:%M:%S")}

    def load(self) -> None:
        self.data = json.loads(self.path.read_text(encoding="utf-8"))

    def save(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)

    def done(self, phase: str) -> bool:
        return self.data["phases"].get(phase, {}).get("status") == "done"

    def info(self, phase: str) -> dict[str, Any]:
        return self.data["phases"].get(phase, {}).get("info", {})

    def record(self, phase: str, status: str, **values: Any) -> None:
        entry = self.data["phases"].setdefault(phase, {})
        entry.update(status=status, **values)
        self.save()


def _prepare_out(out: Path, plan: Plan, overwrite: bool, say: Callable[[str], None]) -> _State:
    """Check ``out``: new / empty → start; same plan → resume; anything else → refuse (or overwrite)."""
    state = _State(out, plan)
    if out.exists() and not out.is_dir():
        raise QuickstartError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        old = None
        if state.path.is_file():
            try:
                old = json.loads(state.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                old = None
        ours = isinstance(old, dict) and old.get("format") == FORMAT
        if not ours:
            raise QuickstartError(
                f"--out {out} is not empty and holds no quickstart run ({STATE_FILE} missing or unreadable); "
                "refusing to write into it (and --overwrite never deletes a folder it did not create): "
                "choose a new or empty folder")
        if overwrite:
            say(f"--overwrite: removing the earlier quickstart run in {out}")
            shutil.rmtree(out)
        elif old.get("fingerprint") != state.data["fingerprint"]:
            raise QuickstartError(
                f"--out {out} holds a quickstart run with other settings (seed, world sizes, recipes or "
                "pretrained parts differ); resuming would mix two runs. Pass --overwrite to replace it, "
                "or choose another --out")
        else:
            state.data = old
            finished = [p for p, v in old.get("phases", {}).items() if v.get("status") == "done"]
            say(f"resuming the quickstart in {out} (finished: {', '.join(finished) or 'nothing yet'})")
    out.mkdir(parents=True, exist_ok=True)
    if not state.path.is_file():
        state.save()
    return state


# ------------------------------------------------------------------------------------------ phases


def _load() -> dict[str, float]:
    try:
        one, five, _ = os.getloadavg()
        return {"load1": round(one, 2), "load5": round(five, 2)}
    except OSError:
        return {}


def _blind_copy(src: Path, dst: Path, drop: tuple[str, ...]) -> int:
    """Write ``src``'s test samples with the media kinds ``drop`` removed from every message."""
    n = 0
    with src.open(encoding="utf-8") as f, dst.open("w", encoding="utf-8") as g:
        for line in f:
            rec = json.loads(line)
            for message in rec["messages"]:
                if isinstance(message.get("content"), list):
                    message["content"] = [p for p in message["content"] if p.get("type") not in drop]
            rec["meta"] = {k: v for k, v in rec["meta"].items() if k != "image_size" or "image" not in drop}
            g.write(json.dumps(rec) + "\n")
            n += 1
    return n


class Quickstart:
    """Runs the phases of one quickstart folder (see the module docstring)."""

    def __init__(self, out: str | os.PathLike, plan: Plan, *, overwrite: bool = False, progress: bool = True,
                 threads: int | None = None, say: Callable[[str], None] | None = None):
        self.out = Path(out)
        self.plan = plan
        self.progress = progress
        self.threads = threads
        self.say = say or (lambda m: print(m, file=sys.stderr, flush=True))
        self.state = _prepare_out(self.out, plan, overwrite, self.say)
        self.world = self.out / "world"
        self.models = self.out / "models"
        self.cache = self.out / "features"
        self.evals = self.out / "eval"

    # ---- running a phase
    def phase(self, name: str, fn: Callable[[], dict[str, Any] | None], title: str) -> dict[str, Any]:
        if self.state.done(name):
            self.say(f"[{name}] already done ({self.state.data['phases'][name].get('seconds', 0):.0f} s): skipped")
            return self.state.info(name)
        self.say(f"[{name}] {title}")
        before = _load()
        t = time.perf_counter()
        self.state.record(name, "running", started=time.strftime("%H:%M:%S"))
        info = fn() or {}
        seconds = time.perf_counter() - t
        self.state.record(name, "done", seconds=round(seconds, 1), info=info, load_before=before, load_after=_load())
        self.say(f"[{name}] done in {seconds:.0f} s")
        return info

    # ---- 1. world
    def _world(self) -> dict[str, Any]:
        from .data.synthetic import blind_baselines, generate_world

        manifest = generate_world(self.world, seed=self.plan.seed, sizes=self.plan.world, progress=self.progress)
        baselines = blind_baselines(self.world)
        (self.world / "baselines.json").write_text(json.dumps(baselines, indent=2) + "\n", encoding="utf-8")
        blind = {}
        for name, (file, _, _) in TESTS.items():
            blind[name] = _blind_copy(self.world / file, self.world / file.replace(".jsonl", "_blind.jsonl"),
                                      ("image", "video", "audio"))
        _blind_copy(self.world / TESTS["sound"][0], self.world / "test_sound_no_audio.jsonl", ("audio",))
        return {"files": manifest.files, "media": manifest.media, "generation_seconds": round(manifest.seconds, 1),
                "baselines": baselines, "settings": manifest.settings}

    # ---- 2. the pretrained start
    def _init(self) -> dict[str, Any]:
        from .api import GroundingGPT
        from .miniature import build_miniature, load_parts_info

        model, processor = build_miniature(self.plan.parts, seed=self.plan.seed)
        GroundingGPT(model, processor).save_pretrained(self.models / "stage0")
        info = load_parts_info(self.plan.parts)
        counts = {name: sum(p.numel() for p in module.parameters())
                  for name, module in model.named_children()}
        return {"parameters": counts, "parts_pretraining": {
            k: {kk: v.get(kk) for kk in ("steps", "seconds", "validation")} for k, v in info.get("reports", {}).items()}}

    # ---- 3. frozen features
    def _features(self) -> dict[str, Any]:
        from .api import GroundingGPT
        from .data.feature_cache import FeatureCache
        from .data.schema import read_jsonl

        gg = GroundingGPT.from_pretrained(self.models / "stage0")
        samples = read_jsonl([self.world / f"stage{s}.jsonl" for s in (1, 2, 3)])
        report = FeatureCache(self.cache).build(gg.model, samples, gg.processor, self.world, batch_size=64,
                                                progress=self.progress)
        return {k: v for k, v in report.items() if k != "failed"} | {"failed": len(report["failed"])}

    # ---- 4. training stages
    def _stage(self, stage: int, model: Path, output: Path, data: list[Path], previous: list[Path],
               recipe_stage: int | None = None) -> dict[str, Any]:
        from .train.recipe import build_config
        from .train.run import train

        key = str(recipe_stage or stage)
        overrides = {"stage": stage, "model": str(model), "data": [str(p) for p in data],
                     "previous_data": [str(p) for p in previous] or None, "media_root": str(self.world),
                     "feature_cache": str(self.cache), "output": str(output), "resume": True}
        if not previous:
            overrides["alpha"] = 0.0
        training = {"seed": self.plan.seed}
        if self.plan.max_steps and key in self.plan.max_steps:
            training["max_steps"] = self.plan.max_steps[key]
        sets = list(self.plan.sets.get(key, []))
        if not self.progress:
            sets.append("disable_tqdm=true")
        config = build_config(self.plan.recipes[key], overrides=overrides, sets=sets, training_overrides=training)
        train(config)
        log = json.loads((output / "run_log.json").read_text(encoding="utf-8"))
        for ckpt in output.glob("checkpoint-*"):  # only needed to resume this stage
            shutil.rmtree(ckpt, ignore_errors=True)
        return {"samples": log["data"]["samples"], "by_task": log["data"]["by_task"],
                "replay": log["data"]["replay"], "trained_on": log["data"]["trained_on"],
                "steps": log["throughput"]["global_steps"],
                "samples_per_second": log["throughput"]["samples_per_second"],
                "final_train_loss": log["final_train_loss"], "train_seconds": round(log["timings"]["train_s"], 1),
                "learning_rate": log["config"]["training"].get("learning_rate"),
                "batch_size": log["config"]["training"].get("per_device_train_batch_size"),
                "alpha": log["config"]["alpha"], "recipe": log["recipe"]}

    # ---- 5. evaluation
    def _evaluate(self, model_dir: Path, names: tuple[str, ...], tag: str = "") -> dict[str, Any]:
        from .api import GenerationSettings, GroundingGPT
        from .eval.runner import evaluate
        from .eval.task_synthetic import SyntheticTask

        gg = GroundingGPT.from_pretrained(model_dir)
        settings = GenerationSettings(max_new_tokens=48)
        out: dict[str, Any] = {}
        runs = []
        for name in names:
            file = TESTS[name][0]
            runs.append((name, "with_media", file))
            runs.append((name, "without_media", file.replace(".jsonl", "_blind.jsonl")))
            if name == "sound":
                runs.append((name, "without_audio", "test_sound_no_audio.jsonl"))
        for name, variant, file in runs:
            task = SyntheticTask(argparse.Namespace(data=str(self.world / file), root=str(self.world), prompt=None))
            folder = self.evals / f"{name}{tag}-{variant}"
            summary = evaluate(task, folder, model=gg, source=str(model_dir), settings=settings,
                               batch_size=self.plan.eval_batch_size, limit=self.plan.eval_limit,
                               num_examples=12 if variant == "with_media" else 0, progress=self.progress)
            out.setdefault(name, {})[variant] = {"metrics": summary.get("metrics", {}), "n": summary["n"],
                                                 "misses": summary["misses"], "folder": str(folder.relative_to(self.out))}
            if variant == "with_media" and (folder / "examples.png").is_file():
                shutil.copyfile(folder / "examples.png", self.out / f"examples_{name}{tag}.png")
        return out

    # ---- the run
    def run(self, ablation: str | None = None) -> dict[str, Any]:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        t0 = time.perf_counter()
        w = self.world
        self.phase("world", self._world, "generating the synthetic world")
        self.phase("init", self._init, "assembling the miniature pretrained model (CLIP, ImageBind audio, Vicuna)")
        self.phase("features", self._features, "running the frozen encoders once over the training media")
        prev = self.models / "stage0"
        stage_data = {1: [w / "stage1.jsonl"], 2: [w / "stage2.jsonl"], 3: [w / "stage3.jsonl"]}
        titles = {1: "stage 1: adapters on coarse captions (LLM and encoders frozen)",
                  2: "stage 2: LLM + adapters on fine-grained grounding, replaying stage 1",
                  3: "stage 3: multi-turn instructions, replaying stage 2"}
        for stage in (1, 2, 3):
            output = self.models / f"stage{stage}"
            previous = stage_data[stage - 1] if stage > 1 else []
            self.phase(f"stage{stage}", lambda s=stage, m=prev, o=output, p=previous: self._stage(
                s, m, o, stage_data[s], p), titles[stage])
            prev = output
        self.phase("eval", lambda: self._evaluate(prev, tuple(TESTS)),
                   "held-out evaluation: with the media, and the same model without them")
        if ablation == "coarse-to-fine":
            self._ablation(stage_data)
        report = self.phase_report(ablation, time.perf_counter() - t0)
        return report

    def _ablation(self, stage_data: dict[int, list[Path]]) -> None:
        """Table 7: stage 1 on coarse + fine data (same steps as the main stage 1), then stages 2-3."""
        steps1 = self.state.info("stage1").get("steps")
        prev = self.models / "stage0"
        for stage in (1, 2, 3):
            output = self.models / f"ablation-fine-stage{stage}"
            data = stage_data[1] + stage_data[2] if stage == 1 else stage_data[stage]
            previous = stage_data[stage - 1] if stage > 1 else []

            def run(s=stage, m=prev, o=output, d=data, p=previous):
                if s == 1 and steps1 and not (self.plan.max_steps and "1" in self.plan.max_steps):
                    saved = self.plan.max_steps
                    self.plan.max_steps = {**(saved or {}), "1": int(steps1)}
                    try:
                        return self._stage(s, m, o, d, p)
                    finally:
                        self.plan.max_steps = saved
                return self._stage(s, m, o, d, p)

            self.phase(f"ablation-stage{stage}", run,
                       f"ablation (coarse + fine in stage 1): stage {stage}")
            prev = output
        self.phase("ablation-eval", lambda: self._evaluate(prev, ("rec",), tag="-ablation-fine"),
                   "ablation: REC of the coarse + fine stage-1 model")

    # ---- 6. report
    def phase_report(self, ablation: str | None, seconds: float) -> dict[str, Any]:
        report = write_report(self.out, self.state.data, ablation=ablation, run_seconds=seconds)
        self.say(f"[report] {self.out / 'report.md'}")
        return report


def _metric(entry: dict[str, Any] | None, key: str) -> float | None:
    if not entry:
        return None
    value = entry.get("metrics", {}).get(key)
    return round(float(value), 2) if value is not None else None


def _display_path(path: Path) -> str:
    """``path`` relative to the working folder when it lies below it, else absolute."""
    rel = os.path.relpath(path)
    return str(path.resolve()) if rel.startswith("..") else rel


def _example_question(out: Path) -> tuple[Path | None, str]:
    """A held-out REC image of this run and its expression (for a copy-pasteable chat command)."""
    test = out / "world" / TESTS["rec"][0]
    try:
        with test.open(encoding="utf-8") as f:
            first = json.loads(f.readline())
        image = next(p["image"] for p in first["messages"][0]["content"] if p.get("type") == "image")
        return (out / "world" / image).resolve(), first["meta"]["expression"]
    except (OSError, ValueError, StopIteration, KeyError, TypeError):
        return None, "the red circle"


def _commands(out: Path, shown: Callable[[Path], str]) -> list[str]:
    """How to use the final model, with paths as ``shown`` writes them."""
    image, expression = _example_question(out)
    return _how_to(shown((out / "models" / "stage3").resolve()), shown(image) if image else "PICTURE.png",
                   expression)


def _how_to(model: str, image: str = "PICTURE.png", expression: str = "the red circle") -> list[str]:
    return [
        f"groundinggpt chat --model {model} --image {image}   # then ask: Output the coordinate of {expression}.",
        f"groundinggpt serve --model {model}                     # OpenAI-compatible HTTP API on :8000",
        f"groundinggpt web --model {model}                       # Gradio page with drawn boxes and spans",
        f"python -c \"from groundinggpt import GroundingGPT; gg = GroundingGPT.from_pretrained('{model}'); "
        f"print(gg.ground('{image}', '{expression}').boxes)\"",
    ]


def plot_metrics(report: dict[str, Any], path: Path) -> Path:
    """Bar chart: per task, the model beside its blind baselines, with the target as a tick."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = {"rec": "REC\nAcc@0.5", "temporal": "temporal grounding\nR@1, IoU 0.5",
             "sound": "sound localisation\nAcc@0.5"}
    series = [("model", "value", "#e8590c"), ("same model, no media", "without_media", "#868e96"),
              ("best constant answer", "constant_baseline", "#ced4da")]
    tasks = list(report["metrics"])
    fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=110)
    width = 0.26
    for i, (label, key, colour) in enumerate(series):
        values = [report["metrics"][t].get(key) or 0.0 for t in tasks]
        bars = ax.bar([x + (i - 1) * width for x in range(len(tasks))], values, width, label=label, color=colour)
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
    for x, t in enumerate(tasks):
        target = report["metrics"][t]["target"]
        ax.hlines(target, x - 1.5 * width, x + 1.5 * width, colors="#2b8a3e", linestyles="--", linewidth=1.2,
                  label="target" if x == 0 else None)
    ax.set_xticks(range(len(tasks)), [names.get(t, t) for t in tasks], fontsize=8)
    ax.set_ylabel("% of held-out questions")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    ax.set_title("Held-out grounding accuracy vs blind baselines", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(out: Path, state: dict[str, Any], *, ablation: str | None = None,
                 run_seconds: float | None = None) -> dict[str, Any]:
    """``report.json`` + ``report.md`` from the state of a finished run; returns the report."""
    import platform

    import torch

    phases = state["phases"]
    world = phases.get("world", {}).get("info", {})
    baselines = world.get("baselines", {})
    evals = phases.get("eval", {}).get("info", {})
    metrics: dict[str, Any] = {}
    for name, (_, key, base) in TESTS.items():
        entry = evals.get(name, {})
        with_media = entry.get("with_media")
        keyed = baselines.get(f"{base}_by_relation") or baselines.get(f"{base}_by_kind")
        m = {
            "metric": key,
            "value": _metric(with_media, key),
            "without_media": _metric(entry.get("without_media"), key),
            "constant_baseline": round(baselines.get(base, {}).get("test_accuracy", float("nan")), 2)
            if base in baselines else None,
            "text_only_constant_baseline": round(keyed["test_accuracy"], 2) if keyed else None,
            "target": TARGETS[name],
            "n": (with_media or {}).get("n"),
            "all_metrics": {k: round(float(v), 2) for k, v in (with_media or {}).get("metrics", {}).items()},
        }
        if "without_audio" in entry:
            m["without_audio"] = _metric(entry["without_audio"], key)
        m["met"] = m["value"] is not None and m["value"] >= m["target"]
        metrics[name] = m
    timings = {p: v.get("seconds") for p, v in phases.items() if v.get("status") == "done"}
    main_phases = ("world", "init", "features", "stage1", "stage2", "stage3", "eval")
    total = round(sum(timings.get(p) or 0 for p in main_phases), 1)
    stages = {p: phases[p]["info"] for p in ("stage1", "stage2", "stage3") if p in phases and "info" in phases[p]}
    report: dict[str, Any] = {
        "format": "groundinggpt-quickstart-report", "version": 1, "folder": str(out.resolve()),
        "model": str((out / "models" / "stage3").resolve()),
        "metrics": metrics,
        "timings_seconds": timings, "total_seconds": total,
        "this_invocation_seconds": round(run_seconds, 1) if run_seconds is not None else None,
        "data": {"world_files": world.get("files"), "world_media": world.get("media"),
                 "world_settings": world.get("settings"),
                 "stages": {k: {kk: v.get(kk) for kk in ("samples", "by_task", "replay", "trained_on")}
                            for k, v in stages.items()}},
        "training": {k: {kk: v.get(kk) for kk in ("steps", "batch_size", "learning_rate", "alpha",
                                                  "samples_per_second", "final_train_loss", "train_seconds",
                                                  "recipe")} for k, v in stages.items()},
        "model_parameters": phases.get("init", {}).get("info", {}).get("parameters"),
        "pretrained_parts": phases.get("init", {}).get("info", {}).get("parts_pretraining"),
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version(),
                    "load_per_phase": {p: {"before": v.get("load_before"), "after": v.get("load_after")}
                                       for p, v in phases.items() if v.get("status") == "done"}},
        "plan": state.get("plan"),
        "examples": sorted(p.name for p in out.glob("examples_*.png")),
    }
    if ablation == "coarse-to-fine" or "ablation-eval" in phases:
        fine = phases.get("ablation-eval", {}).get("info", {}).get("rec", {})
        report["ablation"] = {
            "name": "coarse-to-fine (paper Table 7)",
            "rec_stage1_coarse_only": metrics["rec"]["value"],
            "rec_stage1_coarse_plus_fine": _metric(fine.get("with_media"), TESTS["rec"][1]),
            "stage1_coarse_plus_fine": phases.get("ablation-stage1", {}).get("info"),
        }
    # The report may be read from anywhere: absolute paths. The console: from here.
    report["how_to"] = _commands(out, str)
    report["metrics_plot"] = plot_metrics(report, out / "metrics.png").name
    lines = _report_markdown(report)
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = _summary_text(report, _commands(out, _display_path))
    report["summary_text"] = summary
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return report


def _fmt(v: Any, suffix: str = " %") -> str:
    return "–" if v is None else f"{v:.1f}{suffix}"


def _report_markdown(r: dict[str, Any]) -> list[str]:
    names = {"rec": "REC (Acc@0.5)", "temporal": "temporal grounding (R@1, IoU 0.5)",
             "sound": "sound-source localisation (Acc@0.5)"}
    lines = ["# GroundingGPT quickstart report", "",
             f"Final model: `{r['model']}` · total {r['total_seconds'] / 60:.1f} min of phases "
             f"on {r['machine']['cpu_count']} CPU cores ({r['machine']['torch_threads']} torch threads)", "",
             "## Held-out grounding accuracy and blind baselines", "", "![metrics](metrics.png)", "",
             "| task | model | target | same model, no media | best constant answer | text-only constant | n |",
             "|---|---|---|---|---|---|---|"]
    for name, m in r["metrics"].items():
        extra = f" (no audio: {_fmt(m['without_audio'])})" if "without_audio" in m else ""
        lines.append(f"| {names[name]} | **{_fmt(m['value'])}** | {m['target']:.0f} % {'✓' if m['met'] else '✗'} | "
                     f"{_fmt(m['without_media'])}{extra} | {_fmt(m['constant_baseline'])} | "
                     f"{_fmt(m['text_only_constant_baseline'])} | {m['n']} |")
    lines += ["", "*Best constant answer*: the box / span that maximises training accuracy, scored on the test set "
              "(`groundinggpt.data.synthetic.blind_baselines`); *text-only constant*: one constant per relation "
              "word (REC) or event kind (temporal). *No media*: the same questions with the image / video / audio "
              "removed.", ""]
    missed = [names[n] for n, m in r["metrics"].items() if not m["met"]]
    if missed:
        lines += [f"**Targets missed: {', '.join(missed)}.** Why, as measured: the miniature LLM learns to pick "
                  "the named object (or moment) among several far more slowly than a CPU run allows — "
                  f"see {MISSED_TARGETS_DOC} and `scripts/diagnose_selection.py`.", ""]
    if "ablation" in r:
        a = r["ablation"]
        lines += ["## Ablation: coarse-to-fine (paper Table 7)", "",
                  "| stage-1 data | REC Acc@0.5 |", "|---|---|",
                  f"| coarse only (the paper's choice) | {_fmt(a['rec_stage1_coarse_only'])} |",
                  f"| coarse + fine | {_fmt(a['rec_stage1_coarse_plus_fine'])} |", ""]
    lines += ["## Time per phase", "", "| phase | seconds | load (1 min avg) before → after |", "|---|---|---|"]
    for p, s in r["timings_seconds"].items():
        load = r["machine"]["load_per_phase"].get(p, {})
        b, a = (load.get("before") or {}).get("load1"), (load.get("after") or {}).get("load1")
        lines.append(f"| {p} | {s:.0f} | {b} → {a} |")
    lines += [f"| **total (main run)** | **{r['total_seconds']:.0f}** | |", ""]
    lines += ["## Training", "", "| stage | samples (replayed) | steps | batch | lr | samples/s | final loss |",
              "|---|---|---|---|---|---|---|"]
    for k, t in r["training"].items():
        d = r["data"]["stages"].get(k, {})
        rep = (d.get("replay") or {}).get("previous_used", 0)
        sps = t.get("samples_per_second")
        loss = t.get("final_train_loss")
        lines.append(f"| {k} | {d.get('samples')} ({rep}) | {t.get('steps')} | {t.get('batch_size')} | "
                     f"{t.get('learning_rate')} | {sps if sps is None else round(sps, 1)} | "
                     f"{loss if loss is None else round(loss, 4)} |")
    lines += ["", "## Data", "", "| file | samples |", "|---|---|"]
    for f, n in (r["data"]["world_files"] or {}).items():
        lines.append(f"| {f} | {n} |")
    if r["examples"]:
        lines += ["", "## Examples (orange: predicted, green: truth)", ""]
        lines += [f"![{e}]({e})" for e in r["examples"]]
    lines += ["", "## Use the model", "", "```"] + r["how_to"] + ["```"]
    return lines


def _summary_text(r: dict[str, Any], how_to: list[str]) -> str:
    rows = [f"quickstart finished: {r['total_seconds'] / 60:.1f} min; report: {Path(r['folder']) / 'report.md'}"]
    for name, m in r["metrics"].items():
        rows.append(f"  {m['metric']:<28} {_fmt(m['value']):>8}   (no media {_fmt(m['without_media'])}, "
                    f"best constant {_fmt(m['constant_baseline'])}, target {m['target']:.0f} %)")
    if any(not m["met"] for m in r["metrics"].values()):
        rows.append(f"  targets missed: why, as measured, is in {MISSED_TARGETS_DOC}")
    if "ablation" in r:
        a = r["ablation"]
        rows.append(f"  ablation REC: stage 1 coarse only {_fmt(a['rec_stage1_coarse_only'])}, "
                    f"coarse + fine {_fmt(a['rec_stage1_coarse_plus_fine'])}")
    rows.append("chat with it / serve it:")
    rows += ["  " + h for h in how_to]
    return "\n".join(rows)


def run_quickstart(out: str | os.PathLike, *, plan: Plan | None = None, overwrite: bool = False,
                   ablation: str | None = None, progress: bool = True, threads: int | None = None,
                   say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run (or resume) a quickstart in ``out``; returns the report (also ``out/report.json``)."""
    if ablation is not None and ablation not in ABLATIONS:
        raise QuickstartError(f"unknown ablation {ablation!r}; expected one of {ABLATIONS}")
    qs = Quickstart(out, plan or default_plan(), overwrite=overwrite, progress=progress, threads=threads, say=say)
    return qs.run(ablation)


# ------------------------------------------------------------------------------------------ CLI


def _run(args: argparse.Namespace) -> int:
    from .errors import GroundingGPTError

    try:
        plan = fast_plan(args.seed, args.parts) if args.fast else default_plan(args.seed, args.parts)
        report = run_quickstart(args.out, plan=plan, overwrite=args.overwrite, ablation=args.ablation,
                                progress=not args.no_progress, threads=args.threads)
    except (QuickstartError, GroundingGPTError) as e:
        print(f"groundinggpt quickstart: error: {e}", file=sys.stderr)
        return 2
    print(report["summary_text"])
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="quickstart-run", help="output folder (default: ./quickstart-run); an "
                   "interrupted run there is resumed")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier quickstart run in --out")
    p.add_argument("--ablation", choices=ABLATIONS, help="also run the paper's Table 7 ablation (stage 1 on "
                   "coarse data only vs coarse + fine), reporting REC for both")
    p.add_argument("--seed", type=int, default=0, help="world and training seed")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--parts", help="folder of pretrained miniature parts (default: the committed ones)")
    p.add_argument("--fast", action="store_true", help="a very small world and 2 steps per stage: checks the "
                   "whole path in about a minute (the numbers mean nothing)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "quickstart", help="the whole pipeline on a synthetic world on this CPU: train 3 stages, evaluate, report",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=_run)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="groundinggpt quickstart", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return _run(p.parse_args(argv))

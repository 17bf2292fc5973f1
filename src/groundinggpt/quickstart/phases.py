"""Running a quickstart: the output folder's state, the phases in order, resuming.

In order (each step is a *phase*; a finished phase is recorded in ``DIR/quickstart.json``
and never redone, so an interrupted run continues from the last finished one): ``world``,
``init``, ``features``, ``stage1``, ``stage2``, ``curve`` (:mod:`.curve`), ``stage3``, ``eval``,
``report`` — see
:mod:`groundinggpt.cli_quickstart` for what each does. Every phase goes through the
package's public entry points: :func:`groundinggpt.data.synthetic.generate_world`,
:func:`groundinggpt.miniature.build_miniature`, :class:`groundinggpt.GroundingGPT`,
:class:`~groundinggpt.data.feature_cache.FeatureCache`, ``groundinggpt train``'s runner
(:func:`groundinggpt.train.run.train`) and ``groundinggpt eval``'s
(:func:`groundinggpt.eval.runner.evaluate`). An ablation runs its own
:class:`~groundinggpt.quickstart.plan.AblationPlan` beside the main chain.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..modalities import MEDIA_KINDS
from .plan import ABLATIONS, STAGE_FILES, TESTS, AblationPlan, Plan, QuickstartError, coarse_to_fine, default_plan
from .report import write_report

__all__ = ["STATE_FILE", "Quickstart", "run_quickstart"]

STATE_FILE = "quickstart.json"
FORMAT = "groundinggpt-quickstart"


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
        raise QuickstartError(f"--output {out} exists and is not a folder")
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
                f"--output {out} is not empty and holds no quickstart run ({STATE_FILE} missing or unreadable); "
                "refusing to write into it (and --overwrite never deletes a folder it did not create): "
                "choose a new or empty folder")
        if overwrite:
            say(f"--overwrite: removing the earlier quickstart run in {out}")
            shutil.rmtree(out)
        elif old.get("fingerprint") != state.data["fingerprint"]:
            raise QuickstartError(
                f"--output {out} holds a quickstart run with other settings (seed, world sizes, recipes or "
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
        from ..data.synthetic import blind_baselines, generate_world

        manifest = generate_world(self.world, seed=self.plan.seed, sizes=self.plan.world, progress=self.progress)
        baselines = blind_baselines(self.world)
        (self.world / "baselines.json").write_text(json.dumps(baselines, indent=2) + "\n", encoding="utf-8")
        blind = {}
        for name, (file, _, _) in TESTS.items():
            blind[name] = _blind_copy(self.world / file, self.world / file.replace(".jsonl", "_blind.jsonl"),
                                      MEDIA_KINDS)
        _blind_copy(self.world / TESTS["sound"][0], self.world / "test_sound_no_audio.jsonl", ("audio",))
        return {"files": manifest.files, "media": manifest.media, "generation_seconds": round(manifest.seconds, 1),
                "baselines": baselines, "settings": manifest.settings}

    # ---- 2. the pretrained start
    def _init(self) -> dict[str, Any]:
        from ..api import GroundingGPT
        from ..miniature import build_miniature, load_parts_info

        model, processor = build_miniature(self.plan.parts, seed=self.plan.seed)
        GroundingGPT(model, processor).save_pretrained(self.models / "stage0")
        info = load_parts_info(self.plan.parts)
        counts = {name: sum(p.numel() for p in module.parameters())
                  for name, module in model.named_children()}
        return {"parameters": counts, "parts_pretraining": {
            k: {kk: v.get(kk) for kk in ("steps", "seconds", "validation")} for k, v in info.get("reports", {}).items()}}

    # ---- 3. frozen features
    def _features(self) -> dict[str, Any]:
        from ..api import GroundingGPT
        from ..data.feature_cache import FeatureCache
        from ..data.schema import read_jsonl

        gg = GroundingGPT.from_pretrained(self.models / "stage0")
        samples = read_jsonl([self.world / f"stage{s}.jsonl" for s in (1, 2, 3)])
        report = FeatureCache(self.cache).build(gg.model, samples, gg.processor, self.world, batch_size=64,
                                                progress=self.progress)
        return {k: v for k, v in report.items() if k != "failed"} | {"failed": len(report["failed"])}

    # ---- 4. training stages
    def _stage(self, plan: Plan, stage: int, model: Path, output: Path, files: dict[str, tuple[str, ...]],
               replay: dict[str, tuple[str, ...]], callbacks: tuple[Any, ...] = ()) -> dict[str, Any]:
        """One training stage of ``plan`` on the world ``files`` of that stage, replaying ``replay`` of the
        stage before (α of the recipe); ``callbacks`` go to the Trainer (the learning curve's snapshots)."""
        from ..train.recipe import build_config
        from ..train.run import train

        key = str(stage)
        data = [self.world / f for f in files[key]]
        previous = [self.world / f for f in replay[str(stage - 1)]] if stage > 1 else []
        overrides = {"stage": stage, "model": str(model), "data": [str(p) for p in data],
                     "previous_data": [str(p) for p in previous] or None, "media_root": str(self.world),
                     "feature_cache": str(self.cache), "output": str(output), "resume": True}
        if not previous:
            overrides["alpha"] = 0.0
        training = {"seed": plan.seed}
        if plan.max_steps and key in plan.max_steps:
            training["max_steps"] = plan.max_steps[key]
        sets = list(plan.sets.get(key, []))
        if not self.progress:
            sets.append("disable_tqdm=true")
        config = build_config(plan.recipes[key], overrides=overrides, sets=sets, training_overrides=training)
        result = train(config, callbacks=callbacks)
        for ckpt in output.glob("checkpoint-*"):  # only needed to resume this stage
            shutil.rmtree(ckpt, ignore_errors=True)
        return {"samples": result.data["samples"], "by_task": result.data["by_task"],
                "replay": result.data["replay"], "trained_on": result.data["trained_on"],
                "steps": result.throughput.global_steps,
                "samples_per_second": result.throughput.samples_per_second,
                "final_train_loss": result.final_train_loss, "train_seconds": round(result.timings["train_s"], 1),
                "learning_rate": result.config["training"].get("learning_rate"),
                "batch_size": result.config["training"].get("per_device_train_batch_size"),
                "alpha": result.config["alpha"], "recipe": result.recipe}

    def _chain(self, plan: Plan, files: dict[str, tuple[str, ...]], replay: dict[str, tuple[str, ...]],
               phase_prefix: str, model_prefix: str, titles: dict[int, str], curve: bool = False) -> Path:
        """Stages 1-3 from ``models/stage0``, each a phase; with ``curve``, stage 2 keeps snapshots and the
        ``curve`` phase scores them before stage 3. Returns the last model's folder."""
        from .curve import CURVE_FOLDER, CurveSnapshots

        prev = self.models / "stage0"
        for stage in (1, 2, 3):
            output = self.models / f"{model_prefix}stage{stage}"
            callbacks = (CurveSnapshots(self.models / CURVE_FOLDER, plan.curve_fractions),) \
                if curve and stage == 2 else ()
            self.phase(f"{phase_prefix}stage{stage}",
                       lambda s=stage, m=prev, o=output, c=callbacks: self._stage(plan, s, m, o, files, replay, c),
                       titles[stage])
            if curve and stage == 2:
                self.phase("curve", self._curve, "learning curve: held-out accuracy at points of stage 2")
            prev = output
        return prev

    # ---- 5. evaluation
    def _score(self, gg: Any, source: Path, file: str, folder: Path, *, limit: int | None,
               num_examples: int) -> Any:
        """``groundinggpt eval synthetic``'s runner on one world test file (greedy, batched): the
        evaluation and the learning curve score alike."""
        from ..api import GenerationSettings
        from ..eval.benchmarks.synthetic import SyntheticInputs, SyntheticTask
        from ..eval.runner import evaluate

        task = SyntheticTask(SyntheticInputs(data=str(self.world / file), root=str(self.world)))
        return evaluate(task, folder, model=gg, source=str(source), settings=GenerationSettings(max_new_tokens=48),
                        batch_size=self.plan.eval_batch_size, limit=limit, num_examples=num_examples,
                        progress=self.progress)

    def _curve(self) -> dict[str, Any]:
        """Score the learning curve's models (:func:`.curve.curve_points`) on the first
        ``curve_questions`` of each test set, then delete stage 2's snapshots."""
        from ..api import GroundingGPT
        from .curve import CURVE_FOLDER, curve_points

        points = []
        for point in curve_points(self.models, self.state.info("stage2")):
            gg = GroundingGPT.from_pretrained(point["model"])
            values, counts = {}, {}
            for name, (file, key, _) in TESTS.items():
                folder = self.evals / "curve" / f"step-{point['step']}" / name
                summary = self._score(gg, point["model"], file, folder, limit=self.plan.curve_questions,
                                      num_examples=0)
                values[name], counts[name] = round(float(summary.metrics[key]), 2), summary.n
            points.append({"step": point["step"], "samples": point["samples"], "label": point["label"],
                           "values": values, "n": counts,
                           "folder": str((self.evals / "curve" / f"step-{point['step']}").relative_to(self.out))})
        shutil.rmtree(self.models / CURVE_FOLDER, ignore_errors=True)  # the scores are kept; 16 MB a model
        return {"questions": max((n for p in points for n in p["n"].values()), default=0), "points": points}

    def _evaluate(self, model_dir: Path, names: tuple[str, ...], tag: str = "") -> dict[str, Any]:
        from ..api import GroundingGPT

        gg = GroundingGPT.from_pretrained(model_dir)
        out: dict[str, Any] = {}
        runs = []
        for name in names:
            file = TESTS[name][0]
            runs.append((name, "with_media", file))
            runs.append((name, "without_media", file.replace(".jsonl", "_blind.jsonl")))
            if name == "sound":
                runs.append((name, "without_audio", "test_sound_no_audio.jsonl"))
        for name, variant, file in runs:
            folder = self.evals / f"{name}{tag}-{variant}"
            summary = self._score(gg, model_dir, file, folder, limit=self.plan.eval_limit,
                                  num_examples=12 if variant == "with_media" else 0)
            out.setdefault(name, {})[variant] = {"metrics": summary.metrics, "n": summary.n,
                                                 "misses": summary.misses, "folder": str(folder.relative_to(self.out))}
            if variant == "with_media" and (folder / "examples.png").is_file():
                shutil.copyfile(folder / "examples.png", self.out / f"examples_{name}{tag}.png")
        return out

    # ---- the run
    def run(self, ablation: str | None = None) -> dict[str, Any]:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        t0 = time.perf_counter()
        self.phase("world", self._world, "generating the synthetic world")
        self.phase("init", self._init, "assembling the miniature pretrained model (CLIP, ImageBind audio, Vicuna)")
        self.phase("features", self._features, "running the frozen encoders once over the training media")
        final = self._chain(self.plan, STAGE_FILES, STAGE_FILES, "", "", {
            1: "stage 1: adapters on coarse captions (LLM and encoders frozen)",
            2: "stage 2: LLM + adapters on fine-grained grounding, replaying stage 1",
            3: "stage 3: multi-turn instructions, replaying stage 2"}, curve=True)
        self.phase("eval", lambda: self._evaluate(final, tuple(TESTS)),
                   "held-out evaluation: with the media, and the same model without them")
        if ablation == "coarse-to-fine":
            self.run_ablation(coarse_to_fine(self.plan, self.state.info("stage1").get("steps")))
        return self.phase_report(ablation, time.perf_counter() - t0)

    def run_ablation(self, ablation: AblationPlan) -> None:
        """The ablation's own chain of stages 1-3 (phases ``{prefix}-stage1`` …) and its evaluation."""
        final = self._chain(ablation.plan, ablation.stage_files, ablation.replay_files, f"{ablation.prefix}-",
                            f"{ablation.model_prefix}-",
                            {s: f"ablation {ablation.title}: stage {s}" for s in (1, 2, 3)})
        self.phase(f"{ablation.prefix}-eval",
                   lambda: self._evaluate(final, ablation.tests, tag=f"-{ablation.model_prefix}"),
                   f"ablation {ablation.title}: evaluation")

    # ---- 6. report
    def phase_report(self, ablation: str | None, seconds: float) -> dict[str, Any]:
        report = write_report(self.out, self.state.data, ablation=ablation, run_seconds=seconds)
        self.say(f"[report] {self.out / 'report.md'}")
        return report


def run_quickstart(out: str | os.PathLike, *, plan: Plan | None = None, overwrite: bool = False,
                   ablation: str | None = None, progress: bool = True, threads: int | None = None,
                   say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run (or resume) a quickstart in ``out``; returns the report (also ``out/report.json``)."""
    if ablation is not None and ablation not in ABLATIONS:
        raise QuickstartError(f"unknown ablation {ablation!r}; expected one of {ABLATIONS}")
    qs = Quickstart(out, plan or default_plan(), overwrite=overwrite, progress=progress, threads=threads, say=say)
    return qs.run(ablation)

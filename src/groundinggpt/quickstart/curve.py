"""The learning curve of stage 2: held-out accuracy of each task against the samples seen.

A final score says where stage 2 ended, not whether it was still climbing when the budget
ran out (the question behind the quickstart's missed targets). So stage 2 keeps a model
*snapshot* at a few fractions of its optimizer steps (:class:`CurveSnapshots`, a Trainer
callback: a complete ``save_pretrained`` folder, ``models/stage2-curve/step-N``), and the
``curve`` phase scores the stage-1 model (0 samples), every snapshot and the stage-2 model on
the first ``Plan.curve_questions`` questions of each test set, with the final evaluation's
runner and scorer (greedy, batched), then deletes the snapshots. Snapshots rather than an
evaluation inside the training loop: stage 2's time and throughput stay its own, and the
curve follows the quickstart's resume rules (a snapshot written before an interruption is
kept; the phase's evaluations resume like any ``groundinggpt eval``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

__all__ = ["CURVE_FOLDER", "CurveSnapshots", "curve_markdown", "curve_points", "plot_curve", "samples_seen",
           "snapshot_steps"]

#: Where stage 2's snapshots go, under the run's ``models/``.
CURVE_FOLDER = "stage2-curve"
POINT_FILE = "curve_point.json"
FINAL_FILE = "final.json"


def snapshot_steps(max_steps: int, fractions: tuple[float, ...]) -> list[int]:
    """The optimizer steps at ``fractions`` of ``max_steps``, strictly between 0 and the last step
    (the last is the stage's own model).

    >>> snapshot_steps(670, (0.25, 0.5, 0.75))
    [168, 335, 503]
    >>> snapshot_steps(2, (0.25, 0.5, 0.75))
    [1]
    """
    steps = {min(max(1, int(f * max_steps + 0.5)), max_steps) for f in fractions}
    return sorted(s for s in steps if s < max_steps)


def samples_seen(step: int, batch: int, per_epoch: int | None) -> int:
    """Training samples behind ``step`` optimizer steps of ``batch`` samples each, when an epoch holds
    ``per_epoch`` samples (its last batch may be short).

    >>> samples_seen(3, 32, 1000), samples_seen(32, 32, 1000), samples_seen(33, 32, 1000)
    (96, 1000, 1032)
    """
    if not per_epoch:
        return step * batch
    steps_per_epoch = -(-per_epoch // batch)
    epochs, rest = divmod(step, steps_per_epoch)
    return epochs * per_epoch + min(rest * batch, per_epoch)


def _write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class CurveSnapshots(TrainerCallback):
    """Save the model at :func:`snapshot_steps` into ``folder/step-N`` and the last step's count into
    ``folder/final.json``.

    Each snapshot is written to a temporary folder and renamed, so a snapshot folder is always
    complete; one that exists already (written before an interruption, the same plan at the same
    step) is kept. Single-process training only (the quickstart's): the weights are the live model's.

    Args:
        folder: where the snapshots go.
        fractions: fractions of the run's optimizer steps.
    """

    def __init__(self, folder: str | os.PathLike, fractions: tuple[float, ...]):
        self.folder = Path(folder)
        self.fractions = tuple(fractions)
        self.steps: list[int] = []
        self.batch = 1
        self.per_epoch: int | None = None

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self.steps = snapshot_steps(state.max_steps, self.fractions)
        self.batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
        dataset = getattr(train_dataloader, "dataset", None)
        self.per_epoch = len(dataset) if dataset is not None else None

    def _point(self, step: int) -> dict[str, int]:
        return {"step": step, "samples": samples_seen(step, self.batch, self.per_epoch)}

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        step = state.global_step
        if not state.is_world_process_zero or step not in self.steps:
            return
        target = self.folder / f"step-{step}"
        if target.is_dir():
            return
        tmp = self.folder / f".step-{step}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        model.save_pretrained(tmp)
        if processing_class is not None:
            processing_class.save_pretrained(tmp)
        _write_json(tmp / POINT_FILE, self._point(step))
        os.replace(tmp, target)

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.folder.mkdir(parents=True, exist_ok=True)
            _write_json(self.folder / FINAL_FILE, self._point(state.global_step))


def curve_points(models: Path, stage2: dict[str, Any]) -> list[dict[str, Any]]:
    """The models of the curve in order of samples seen: the stage-1 model (0 samples), the snapshots
    that stage 2 left, the stage-2 model. ``stage2`` is what the stage-2 phase recorded (its step count
    places the last point when the snapshot callback did not: a stage that finished before it existed)."""
    folder = models / CURVE_FOLDER
    points = [{"step": 0, "samples": 0, "model": models / "stage1", "label": "stage 1"}]
    for snapshot in sorted(folder.glob("step-*")):
        point_file = snapshot / POINT_FILE
        if snapshot.is_dir() and point_file.is_file():
            point = json.loads(point_file.read_text(encoding="utf-8"))
            points.append({**point, "model": snapshot, "label": f"stage 2, step {point['step']}"})
    final_file = folder / FINAL_FILE
    if final_file.is_file():
        final = json.loads(final_file.read_text(encoding="utf-8"))
    else:
        steps = int(stage2.get("steps") or 0)
        final = {"step": steps, "samples": min(steps * int(stage2.get("batch_size") or 1),
                                               int(stage2.get("samples") or steps))}
    points.append({**final, "model": models / "stage2", "label": "stage 2"})
    return sorted(points, key=lambda p: (p["samples"], p["step"]))


# ---- the report's view


TASK_NAMES = {"rec": "REC Acc@0.5", "temporal": "temporal grounding R@1", "sound": "sound localisation Acc@0.5"}


def plot_curve(curve: dict[str, Any], targets: dict[str, float], path: Path) -> Path:
    """``curve.png``: accuracy of each task against samples seen, each with its target."""
    from ..draw import PALETTE, line_chart

    points = curve["points"]
    tasks = [t for t in TASK_NAMES if any(t in p["values"] for p in points)]
    colours = ["#%02x%02x%02x" % PALETTE[i] for i in (2, 0, 4)]
    series = [(TASK_NAMES[t], [p["values"].get(t) for p in points], colours[i % len(colours)])
              for i, t in enumerate(tasks)]
    return line_chart([p["samples"] for p in points], series, [targets.get(t) for t in tasks], path,
                      title=f"Stage 2: held-out accuracy (first {curve['questions']} questions per task) "
                            "against samples seen", xlabel="stage-2 training samples seen (replay included)",
                      ylabel="% of held-out questions")


def curve_markdown(curve: dict[str, Any], targets: dict[str, float]) -> list[str]:
    """The report's section: the plot and one row per point, the targets last."""
    points = curve["points"]
    tasks = [t for t in TASK_NAMES if any(t in p["values"] for p in points)]
    lines = ["## Learning curve during stage 2", "", f"![learning curve]({curve['plot']})", "",
             "| samples seen | step | model | " + " | ".join(TASK_NAMES[t] for t in tasks) + " |",
             "|---|---|---|" + "---|" * len(tasks)]
    for p in points:
        cells = ["–" if p["values"].get(t) is None else f"{p['values'][t]:.1f} %" for t in tasks]
        lines.append(f"| {p['samples']} | {p['step']} | {p['label']} | " + " | ".join(cells) + " |")
    lines.append("| target | | | " + " | ".join(f"{targets[t]:.0f} %" for t in tasks) + " |")
    lines += ["", f"The first {curve['questions']} questions of each held-out test set, scored like the final "
              "evaluation (greedy); samples seen: stage 2's optimizer steps × batch, replayed stage-1 samples "
              "included. The last row is the stage-2 model (stage 3 follows it).", ""]
    return lines

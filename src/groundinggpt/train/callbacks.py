"""Trainer callbacks: the loss curve as ``loss.csv`` + ``loss.png``; the whole run's loss after a resume.

The curve is rebuilt from ``state.log_history`` every time the Trainer logs, rather
than appended row by row: after ``--resume`` the history is the checkpoint's, so
steps logged by the killed run after its last checkpoint do not appear twice.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

LOSS_COLUMNS = ("step", "epoch", "loss", "learning_rate", "grad_norm")


def loss_rows(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The training-loss entries of a Trainer log history, one per logged step."""
    rows = []
    for entry in log_history:
        if "loss" in entry and "step" in entry:
            rows.append({k: entry.get(k) for k in LOSS_COLUMNS})
    return rows


def write_loss_csv(rows: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write the rows atomically (a reader never sees half a file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=LOSS_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path


def plot_loss(rows: list[dict[str, Any]], path: str | os.PathLike, title: str = "training loss") -> Path | None:
    """Plot loss against step to a PNG (matplotlib's Agg backend: no display needed)."""
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], marker="." if len(rows) < 50 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


class LossCurveCallback(TrainerCallback):
    """Keep ``<output>/loss.csv`` current while training; draw ``<output>/loss.png`` at the end.

    Args:
        output_dir: the run folder.
        title: the plot's title.
    """

    def __init__(self, output_dir: str | os.PathLike, title: str = "training loss"):
        self.output_dir = Path(output_dir)
        self.title = title

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            write_loss_csv(loss_rows(state.log_history), self.output_dir / "loss.csv")

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            rows = loss_rows(state.log_history)
            self.output_dir.mkdir(parents=True, exist_ok=True)
            write_loss_csv(rows, self.output_dir / "loss.csv")
            plot_loss(rows, self.output_dir / "loss.png", self.title)


class ThroughputCallback(TrainerCallback):
    """Remember the step and token count a session starts from (non-zero after ``--resume``).

    The Trainer's final metrics give samples/s for this session but not tokens/s; with the
    start count, ``tokens_this_session / train_runtime`` is exact for resumed runs too.
    """

    def __init__(self):
        self.start_step = 0
        self.start_tokens = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.start_step = state.global_step
        self.start_tokens = state.num_input_tokens_seen

    def tokens_per_second(self, state, runtime_s: float | None) -> float | None:
        if not runtime_s:
            return None
        return (state.num_input_tokens_seen - self.start_tokens) / runtime_s


class LogAtSaveCallback(TrainerCallback):
    """Log the loss at every step that saves a checkpoint.

    The Trainer's ``train_loss`` is the mean over the steps of one session, so after
    ``--resume`` it leaves out every step before the checkpoint. Their losses are in the
    checkpoint's log history, which :func:`whole_run_loss` sums, but only up to the last
    logged step: logging at the save step too makes that history cover every step the
    checkpoint trained (runs after DefaultFlowCallback, which sets ``should_save``).
    """

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save:
            control.should_log = True
        return control


def whole_run_loss(log_history: list[dict[str, Any]], start_step: int, session_loss: float | None,
                   global_step: int) -> float | None:
    """The mean step loss over the whole run: what an uninterrupted run's ``train_loss`` is.

    Each logged ``loss`` is the mean over the steps since the previous log, so the steps
    before ``start_step`` (the checkpoint resumed from) add up to ``sum(loss x window)``;
    this session adds ``session_loss x its steps``. ``None`` when the checkpoint's history
    stops short of its step (written before :class:`LogAtSaveCallback`): not knowable then.

    >>> history = [{"loss": 4.0, "step": 2}, {"loss": 3.0, "step": 3}, {"loss": 1.0, "step": 4}]
    >>> whole_run_loss(history, start_step=3, session_loss=1.5, global_step=5)  # (8 + 3 + 1.5 * 2) / 5
    2.8
    >>> whole_run_loss(history[:1], start_step=3, session_loss=1.5, global_step=5) is None
    True
    """
    if start_step == 0 or session_loss is None:
        return session_loss
    total, last = 0.0, 0
    for entry in log_history:
        if "loss" in entry and "step" in entry and entry["step"] <= start_step:
            total += float(entry["loss"]) * (entry["step"] - last)
            last = entry["step"]
    if last != start_step:
        return None
    return (total + float(session_loss) * (global_step - start_step)) / global_step

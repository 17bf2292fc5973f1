"""What one training stage did, as a typed object: :class:`TrainResult`, written as ``run_log.json``.

:func:`groundinggpt.train.run.train` returns it and writes the file from it, so callers (the
quickstart, the bench, tests) read fields instead of string keys of a JSON file, and the
file's keys cannot drift from the object's: :meth:`TrainResult.to_dict` is the file,
:meth:`TrainResult.read` reads a run folder back.

Example:
    >>> r = TrainResult(stage=1, model="tiny", output=Path("runs/s1"), recipe="tiny-stage1", config={},
    ...                 world_size=1, resumed_from=None, data={"samples": 8, "trained_on": 8}, skipped={},
    ...                 freeze={}, feature_cache=None, timings={"train_s": 1.5},
    ...                 throughput=Throughput(global_steps=2, session_steps=2, samples_per_second=5.0,
    ...                                       steps_per_second=1.25, tokens_seen=900, tokens_per_second=560.0),
    ...                 final_train_loss=4.2, metrics={})
    >>> again = TrainResult.from_dict(r.to_dict())  # what TrainResult.read(folder) does
    >>> again.throughput == r.throughput, again.output == r.output.resolve(), r.to_dict()["throughput"]["global_steps"]
    (True, True, 2)
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RUN_LOG", "Throughput", "TrainResult"]

#: The run folder's record of a finished stage (written from :meth:`TrainResult.to_dict`).
RUN_LOG = "run_log.json"


@dataclass(frozen=True)
class Throughput:
    """Rates of this session (after ``--resume``: of the resumed part only)."""

    global_steps: int
    session_steps: int
    samples_per_second: float | None
    steps_per_second: float | None
    tokens_seen: int | None
    tokens_per_second: float | None


@dataclass(frozen=True)
class TrainResult:
    """One finished training stage.

    Attributes:
        stage: 1, 2 or 3.
        model: the model it started from (a preset name or a folder).
        output: the folder holding the saved model (and ``run_log.json``, ``loss.csv``, ``loss.png``).
        recipe: the recipe name or file.
        config: the whole :class:`~groundinggpt.train.recipe.TrainConfig` as a dict.
        world_size: processes that trained.
        resumed_from: the checkpoint the run resumed from, if any.
        data: the mix (``samples``, ``by_task``, ``replay``), ``media_root`` and ``trained_on``.
        skipped: :class:`~groundinggpt.data.dataset.SkipReport` as a dict.
        freeze: the freeze plan and the trainable / frozen counts per module.
        feature_cache: the feature cache's build report, if a cache was used.
        timings: seconds per phase (``read_data_s``, ``load_model_s``, ``prepare_data_s``,
            ``train_s``, ``save_s``, ``total_s``).
        throughput: :class:`Throughput`.
        final_train_loss: the Trainer's mean training loss.
        metrics: the Trainer's final metrics.
    """

    stage: int
    model: str
    output: Path
    recipe: str | None
    config: dict[str, Any]
    world_size: int
    resumed_from: str | None
    data: dict[str, Any]
    skipped: dict[str, Any]
    freeze: dict[str, Any]
    feature_cache: dict[str, Any] | None
    timings: dict[str, float]
    throughput: Throughput
    final_train_loss: float | None
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``run_log.json`` content (plain JSON types; ``output`` absolute)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["output"] = str(Path(self.output).resolve())
        out["throughput"] = dataclasses.asdict(self.throughput)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainResult:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["output"] = Path(values["output"])
        values["throughput"] = Throughput(**values["throughput"])
        return cls(**values)

    def write(self) -> Path:
        """Write ``run_log.json`` into :attr:`output`; returns the file."""
        path = Path(self.output) / RUN_LOG
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str), encoding="utf-8")
        return path

    @classmethod
    def read(cls, folder: str | Path) -> TrainResult:
        """The result a finished run left in ``folder`` (its ``run_log.json``)."""
        from .. import jsonsafe

        path = Path(folder) / RUN_LOG
        return cls.from_dict(jsonsafe.loads(path.read_text(encoding="utf-8")))

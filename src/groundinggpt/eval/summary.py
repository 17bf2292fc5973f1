"""One evaluation run's result as a typed object: :class:`EvalSummary`, written as ``summary.json``.

:func:`groundinggpt.eval.runner.evaluate` returns it and writes ``summary.json`` (and
``summary.md``) from it, so callers read fields (``summary.metrics``, ``summary.n``) instead of
string keys, and the file cannot drift from the object. It is also a read-only mapping of
exactly the file's keys (``summary["metrics"]``), as the plain dict it replaces was.

Example:
    >>> s = EvalSummary(task="rec", mode="predictions", source="p.jsonl", prompt=None, boxes_frame="original",
    ...                 n=2, answered=2, misses=0, status_counts={"ok": 2}, metrics={"Acc@0.5": 50.0})
    >>> s.metrics["Acc@0.5"], s["n"], list(s)[:3]
    (50.0, 2, ['task', 'mode', 'source'])
    >>> EvalSummary.from_dict(s.to_dict()) == s
    True
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EvalSummary"]

_OWN = ("task", "mode", "source", "prompt", "boxes_frame", "n", "answered", "misses", "status_counts", "metrics")
_LATE = ("generation", "miss_list")
_LAST = ("examples", "elapsed_s")


@dataclass(frozen=True, eq=True)
class EvalSummary(Mapping):
    """What one evaluation run measured.

    Attributes:
        task / mode / source / prompt / boxes_frame: what was evaluated and how (``mode``:
            ``"model"`` or ``"predictions"``; ``boxes_frame`` only for box answers).
        n / answered / misses / status_counts: sample counts.
        metrics: the benchmark's published metrics (rates in percent).
        details: the task's other summary entries (per-split tables, samples per task ...).
        generation: the generation settings of a model run.
        miss_list: the samples not scored, with their status and error or answer.
        extra: other run facts (``unknown_prediction_ids`` of a predictions file).
        examples: the example grid's file name, if one was drawn.
        elapsed_s: wall time of the run.
    """

    task: str
    mode: str
    source: str
    prompt: str | None
    boxes_frame: str | None
    n: int
    answered: int
    misses: int
    status_counts: dict[str, int]
    metrics: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)
    generation: dict[str, Any] | None = None
    miss_list: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    examples: str | None = None
    elapsed_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``summary.json`` content, in the file's key order (absent optional entries left out)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in _OWN}
        out.update(self.details)
        if self.generation is not None:
            out["generation"] = self.generation
        out["miss_list"] = self.miss_list
        out.update(self.extra)
        if self.examples is not None:
            out["examples"] = self.examples
        if self.elapsed_s is not None:
            out["elapsed_s"] = self.elapsed_s
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], extra_keys: tuple[str, ...] = ("unknown_prediction_ids",)
                  ) -> EvalSummary:
        """Inverse of :meth:`to_dict` (keys it does not know go to ``details``, ``extra_keys`` to ``extra``)."""
        known = {f.name for f in dataclasses.fields(cls)} - {"details", "extra"}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("metrics", {})
        values["extra"] = {k: v for k, v in data.items() if k in extra_keys}
        values["details"] = {k: v for k, v in data.items() if k not in known and k not in extra_keys}
        return cls(**values)

    def write(self, path: str | Path) -> Path:
        """Write the summary as JSON to ``path``."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        return path

    # ---- read-only mapping of the file's keys
    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

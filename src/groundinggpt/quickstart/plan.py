"""What a quickstart run is: its world sizes, recipes, pretrained parts and targets (the *plan*).

A plan determines a run's results, so a resumed run must match it exactly: its
:meth:`Plan.fingerprint` is stored in the run folder and compared on every start. Plans are
frozen; an ablation is a plan of its own (:func:`coarse_to_fine`), derived from the main
one, never the main plan changed in place.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..cli_quickstart import ABLATIONS
from ..data.synthetic.generate import TEST_FILES
from ..errors import GroundingGPTError

__all__ = ["ABLATIONS", "FAST_WORLD", "GOALS", "QUICKSTART_WORLD", "TARGETS", "TESTS", "AblationPlan", "Plan",
           "QuickstartError", "coarse_to_fine", "default_plan", "fast_plan"]

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
#: The targets of a 2-core CPU run (percent); each must also be at least twice the best constant
#: answer and twice the same model without its media (:func:`groundinggpt.quickstart.report.assess`).
TARGETS = {"rec": 60.0, "temporal": 45.0, "sound": 60.0}
#: The goal beyond the targets (percent): reported, not required.
GOALS = {"rec": 80.0, "temporal": 60.0, "sound": 80.0}
#: The stage files of the world, per stage.
STAGE_FILES: dict[str, tuple[str, ...]] = {"1": ("stage1.jsonl",), "2": ("stage2.jsonl",), "3": ("stage3.jsonl",)}


class QuickstartError(GroundingGPTError, RuntimeError):
    """The output folder cannot be used (another run, a foreign folder) or a phase failed."""


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


@dataclass(frozen=True)
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
        curve_fractions: where in stage 2 (fractions of its optimizer steps) a model is kept for the
            learning curve (:mod:`groundinggpt.quickstart.curve`), besides its start and end.
        curve_questions: the learning curve scores the first N questions of each test set.
    """

    seed: int = 0
    world: dict[str, dict[str, int]] = field(default_factory=lambda: _copy(QUICKSTART_WORLD))
    recipes: dict[str, str] = field(default_factory=lambda: {
        "1": "quickstart-stage1", "2": "quickstart-stage2", "3": "quickstart-stage3"})
    sets: dict[str, list[str]] = field(default_factory=lambda: {"1": [], "2": [], "3": []})
    max_steps: dict[str, int] | None = None
    parts: str | None = None
    parts_sha: str = ""
    eval_batch_size: int = 50
    eval_limit: int | None = None
    curve_fractions: tuple[float, ...] = (0.25, 0.5, 0.75)
    curve_questions: int = 60

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fingerprint(self) -> str:
        """sha256 of the plan and of the recipe files' contents."""
        from ..train.recipe import resolve_recipe

        h = hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode())
        for stage in sorted(self.recipes):
            h.update(resolve_recipe(self.recipes[stage]).read_bytes())
        return h.hexdigest()


@dataclass(frozen=True)
class AblationPlan:
    """A second chain of stages 1-3 beside the main run, and the tests it is evaluated on.

    Attributes:
        name: the ablation's name (one of :data:`ABLATIONS`).
        title: how the report names it.
        plan: the plan its stages run with (the main plan with what the ablation changes).
        stage_files: the world files each stage trains on.
        replay_files: the world files of the stage before that each stage replays (α of its recipe); the
            main run's by default, so that stages 2-3 see the same data in both chains.
        prefix: its phases are ``{prefix}-stage1`` … and its models ``models/{model_prefix}-stage1`` ….
        model_prefix: see ``prefix``.
        tests: the test sets it is evaluated on.
    """

    name: str
    title: str
    plan: Plan
    stage_files: dict[str, tuple[str, ...]]
    replay_files: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(STAGE_FILES))
    prefix: str = "ablation"
    model_prefix: str = "ablation-fine"
    tests: tuple[str, ...] = ("rec",)


def coarse_to_fine(plan: Plan, stage1_steps: int | None) -> AblationPlan:
    """The paper's Table 7: stage 1 on coarse + fine-grained data, for as many optimizer steps
    as the main run's stage 1 took (``stage1_steps``; a plan with its own stage-1 limit keeps it)."""
    limits = dict(plan.max_steps or {})
    if stage1_steps and "1" not in limits:
        limits["1"] = int(stage1_steps)
    return AblationPlan(
        name="coarse-to-fine", title="coarse-to-fine (paper Table 7)",
        plan=replace(plan, max_steps=limits or None),
        stage_files={**STAGE_FILES, "1": STAGE_FILES["1"] + STAGE_FILES["2"]})


def parts_fingerprint(parts: str | None) -> str:
    """sha256 (16 hex digits) of the pretrained parts' files: other parts, another plan."""
    from ..miniature.parts import ASSETS, PART_FILES

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
    """The full quickstart (15 minutes on 2 CPU cores with fast bf16, ~50 without; see docs/quickstart.md)."""
    return Plan(seed=seed, parts=parts, parts_sha=parts_fingerprint(parts))


def fast_plan(seed: int = 0, parts: str | None = None, steps: int = 2) -> Plan:
    """A very small world and ``steps`` optimizer steps per stage: the CI test of the whole path."""
    return Plan(seed=seed, world=_copy(FAST_WORLD), parts=parts, parts_sha=parts_fingerprint(parts),
                max_steps={"1": steps, "2": steps, "3": steps},
                sets={s: ["per_device_train_batch_size=2", "gradient_accumulation_steps=1", "save_strategy=no",
                          "warmup_steps=0", "logging_steps=1"] for s in ("1", "2", "3")},
                eval_batch_size=4)

"""``groundinggpt quickstart``'s machinery: the plan, the phases that run it, the report.

- :mod:`.plan` — what a run is (world sizes, recipes, parts, targets), fingerprinted; an
  ablation is a plan of its own;
- :mod:`.phases` — the output folder's state and the phases in order, resumable;
- :mod:`.report` — metrics beside baselines and targets, met or missed, and why.

The command line is :mod:`groundinggpt.cli_quickstart`, which imports this package only when
the command runs. See docs/quickstart.md.
"""

from .phases import STATE_FILE, Quickstart, run_quickstart
from .plan import (
    ABLATIONS,
    FAST_WORLD,
    GOALS,
    QUICKSTART_WORLD,
    TARGETS,
    TESTS,
    AblationPlan,
    Plan,
    QuickstartError,
    coarse_to_fine,
    default_plan,
    fast_plan,
)
from .report import assess, build_report, write_report

__all__ = ["ABLATIONS", "FAST_WORLD", "GOALS", "QUICKSTART_WORLD", "STATE_FILE", "TARGETS", "TESTS", "AblationPlan",
           "Plan", "Quickstart", "QuickstartError", "assess", "build_report", "coarse_to_fine", "default_plan",
           "fast_plan", "run_quickstart", "write_report"]

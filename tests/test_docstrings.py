"""Every runnable example in the package's docstrings runs and prints what it says."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import groundinggpt


#: Optional stacks some modules import at their top; without them those modules are not walked.
OPTIONAL_STACKS = {"vllm"}


def _modules_with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(groundinggpt.__path__, "groundinggpt."):
        if info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ModuleNotFoundError as e:
            if e.name in OPTIONAL_STACKS:  # modules that only load with that stack (serve --engine vllm)
                continue
            raise
        if any(t.examples for t in doctest.DocTestFinder().find(module)):
            names.append(info.name)
    return names


MODULES = _modules_with_examples()


def test_the_documented_modules_are_found():
    # The walk must see the modules whose examples the README and the docs lean on.
    assert {"groundinggpt.api", "groundinggpt.processor", "groundinggpt.grounding", "groundinggpt.presets",
            "groundinggpt.streaming"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, report=True)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} docstring examples failed"

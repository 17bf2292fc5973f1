"""The layering rules of docs/architecture.md ("Import rules"), checked on the source's import statements.

Every ``import`` / ``from ... import`` of the package counts, wherever it is written (module
level, inside a function, under ``TYPE_CHECKING``): a lazy import is still a dependency.
"""

import ast
import functools
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: (layer, what it may import from the package — None: anything but `forbidden`, forbidden layers)
RULES: list[tuple[str, set[str] | None, set[str]]] = [
    ("groundinggpt.errors", set(), set()),
    ("groundinggpt.modalities", {"groundinggpt.errors"}, set()),
    ("groundinggpt.grounding", set(), set()),
    ("groundinggpt.models", {"groundinggpt.errors", "groundinggpt.modalities"}, set()),
    ("groundinggpt.media", {"groundinggpt.errors", "groundinggpt.modalities"}, set()),
    ("groundinggpt.processor", None, {"groundinggpt.models", "groundinggpt.api", "groundinggpt.train"}),
    ("groundinggpt.eval", None, {"groundinggpt.train", "groundinggpt.serve"}),
    ("groundinggpt.serve", None, {"groundinggpt.train", "groundinggpt.eval"}),
    ("groundinggpt.data", None, {"groundinggpt.train", "groundinggpt.serve", "groundinggpt.api"}),
    ("groundinggpt.train", None, {"groundinggpt.serve", "groundinggpt.eval"}),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str, is_package: bool = False) -> set[str]:
    """The package modules ``source`` (the text of ``module``) imports."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from groundinggpt import jsonsafe` imports the module groundinggpt.jsonsafe: each name
            # counts as target.name (for a function that is still inside the target's layer).
            names = [target] if node.module else []
            names += [f"{target}.{a.name}" for a in node.names]
            found.update(n for n in names if n.startswith("groundinggpt"))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("groundinggpt"))
    return found


def _in(name: str, layer: str) -> bool:
    return name == layer or name.startswith(layer + ".")


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import in ``graph`` (module -> imported modules) that breaks a rule of :data:`RULES`."""
    out = []
    for layer, allowed, forbidden in RULES:
        for module, targets in graph.items():
            if not _in(module, layer):
                continue
            for target in sorted(targets):
                if _in(target, layer):
                    continue  # within the layer
                if allowed is not None and not any(_in(target, a) for a in allowed):
                    out.append(f"{module} imports {target}: {layer} may import only {sorted(allowed) or 'nothing'}")
                if any(_in(target, f) for f in forbidden):
                    out.append(f"{module} imports {target}: {layer} never imports {sorted(forbidden)}")
    return out


@functools.cache
def _graph() -> dict[str, frozenset[str]]:
    graph = {}
    for path in (SRC / "groundinggpt").rglob("*.py"):
        module = _module_name(path)
        graph[module] = frozenset(imports_of(path.read_text(encoding="utf-8"), module, path.name == "__init__.py"))
    return graph


def package_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, for every module of the package (parsed once)."""
    return {module: set(targets) for module, targets in _graph().items()}


def test_the_package_follows_the_import_rules():
    graph = package_graph()
    assert "groundinggpt.models.modeling_groundinggpt" in graph and len(graph) > 50
    assert violations(graph) == []


@pytest.mark.parametrize("module, source, broken", [
    ("groundinggpt.models.modeling_groundinggpt", "from ..media.image import load_image", "models may import only"),
    ("groundinggpt.models.audio_encoder", "def f():\n    from groundinggpt.processor import X", "models may import only"),
    ("groundinggpt.media.video", "from ..models import GroundingGPTForCausalLM", "media may import only"),
    ("groundinggpt.grounding", "from .models import GroundingGPTConfig", "grounding may import only nothing"),
    ("groundinggpt.eval.runner", "from groundinggpt.train.run import train", "eval never imports"),
    ("groundinggpt.serve.server", "from ..train import run", "serve never imports"),
])
def test_a_broken_rule_is_reported(module, source, broken):
    graph = package_graph()
    graph[module] = graph.get(module, set()) | imports_of(source, module)
    found = violations(graph)
    assert found and all(broken in f for f in found), found

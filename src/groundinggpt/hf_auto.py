"""GroundingGPT in transformers' Auto classes, registered when those load, not when ``groundinggpt`` does.

``AutoConfig`` / ``AutoModelForCausalLM`` / ``AutoProcessor.from_pretrained(folder)`` find
GroundingGPT (and name the converter for the authors' released ``LEGO`` folders) once
:func:`register` has run. Running it means importing torch and the model (~7 CPU seconds),
which commands that never touch a model (``groundinggpt data ...``: JSON in, JSONL out)
should not pay. So ``import groundinggpt`` only calls :func:`install`:

- if transformers' Auto module (``transformers.models.auto``) is already loaded, it
  registers at once;
- otherwise it puts a finder first on ``sys.meta_path`` that registers right after that
  module loads — every route to an Auto class goes through it, so a program that imports
  ``groundinggpt`` and then uses ``AutoConfig`` finds GroundingGPT as before.

The Auto module is often first loaded *by one of groundinggpt's own modules* (the processor
imports ``AutoTokenizer`` at its top); registering then would import the model while that
module is half-initialised (a circular-import error). The finder therefore also counts the
``groundinggpt.*`` imports in progress (per thread) and defers the registration to the
moment the outermost of them has finished. Once registered, the finder removes itself.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
from typing import Any

__all__ = ["AUTO_MODULE", "install", "register", "registered"]

#: The module every transformers Auto class is reached through (its package ``__init__``).
AUTO_MODULE = "transformers.models.auto"
#: The modules whose imports in progress defer the registration (this package's own).
OWN_PREFIX = "groundinggpt."

_lock = threading.RLock()
_state = {"registered": False, "pending": False}
_depth = threading.local()


def registered() -> bool:
    """Whether GroundingGPT's classes are registered with transformers' Auto classes."""
    return _state["registered"]


def register() -> None:
    """Register the config types, the model, the processor and the released ``LEGO`` type (idempotent)."""
    with _lock:
        if _state["registered"]:
            return
        _state["registered"] = True  # first: the imports below re-enter the finder
        try:
            from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor
            from transformers.models.auto.configuration_auto import CONFIG_MAPPING

            from .convert.lego import ReleasedLegoConfig
            from .models import (GroundingGPTAudioConfig, GroundingGPTConfig, GroundingGPTForCausalLM,
                                 GroundingGPTVideoConfig)
            from .processor import GroundingGPTProcessor

            AutoConfig.register("groundinggpt", GroundingGPTConfig, exist_ok=True)
            AutoConfig.register("groundinggpt_video", GroundingGPTVideoConfig, exist_ok=True)
            AutoConfig.register("groundinggpt_audio", GroundingGPTAudioConfig, exist_ok=True)
            AutoModelForCausalLM.register(GroundingGPTConfig, GroundingGPTForCausalLM, exist_ok=True)
            AutoProcessor.register(GroundingGPTConfig, GroundingGPTProcessor, exist_ok=True)
            if "LEGO" not in CONFIG_MAPPING:  # the authors' own package may have registered its class
                CONFIG_MAPPING.register("LEGO", ReleasedLegoConfig, exist_ok=True)
        except BaseException:
            _state["registered"] = False
            raise
        _state["pending"] = False
        _uninstall()


def install() -> None:
    """Register now if transformers' Auto module is loaded, else as soon as it is (see the module doc)."""
    if _state["registered"]:
        return
    if AUTO_MODULE in sys.modules:
        register()
        return
    with _lock:
        if not any(isinstance(f, _Finder) for f in sys.meta_path):
            sys.meta_path.insert(0, _Finder())


def _uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _Finder)]


def _in_progress() -> int:
    return getattr(_depth, "n", 0)


def _after_auto_module() -> None:
    if _in_progress():
        _state["pending"] = True  # a groundinggpt module is half-imported: wait for the outermost
    else:
        register()


def _after_own_module() -> None:
    if _state["pending"] and not _in_progress():
        register()


class _Finder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader the other finders return for the modules it watches."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname == AUTO_MODULE:
            after, counted = _after_auto_module, False
        elif fullname.startswith(OWN_PREFIX) and not _state["registered"]:
            after, counted = _after_own_module, True
        else:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _ThenCall(spec.loader, after, counted)
                return spec
        return None


class _ThenCall(importlib.abc.Loader):
    """The real loader, then ``after()``; ``counted`` imports are counted as groundinggpt's own in progress."""

    def __init__(self, loader: Any, after: Any, counted: bool):
        self._loader, self._after, self._counted = loader, after, counted

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        if self._counted:
            _depth.n = _in_progress() + 1
        try:
            self._loader.exec_module(module)
        finally:
            if self._counted:
                _depth.n -= 1
        self._after()

    def __getattr__(self, name: str) -> Any:  # get_code, get_source, resource readers ...
        return getattr(self._loader, name)

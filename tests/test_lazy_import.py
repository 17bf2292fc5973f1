"""`import groundinggpt` is cheap (PEP 562 lazy names): the data commands never load torch, while
transformers' Auto classes still find GroundingGPT (groundinggpt.hf_auto)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import groundinggpt
from groundinggpt import hf_auto


def _run(code: str, timeout: int = 300) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_the_data_commands_import_neither_torch_nor_transformers(tmp_path):
    root = tmp_path / "vg"
    root.mkdir()
    (root / "image_data.json").write_text(json.dumps([{"image_id": 1, "width": 100, "height": 50,
                                                       "url": "http://x/VG_100K/1.jpg"}]))
    (root / "region_descriptions.json").write_text(json.dumps([{"id": 1, "regions": [
        {"region_id": 7, "image_id": 1, "phrase": "a dog", "x": 10, "y": 5, "width": 40, "height": 20}]}]))
    out = _run(f"""
        import sys
        import groundinggpt, groundinggpt.data, groundinggpt.data.convert, groundinggpt.data.build
        from groundinggpt.cli import main
        code = main(["data", "convert", "visual-genome", {str(root)!r}, "--output", {str(tmp_path / "vg.jsonl")!r},
                     "--no-check-media", "--quiet"])
        code += main(["data", "sources"])
        print(code, sorted(m for m in ("torch", "transformers") if m in sys.modules))
    """)
    assert out.splitlines()[-1] == "0 []"
    rec = [json.loads(line) for line in (tmp_path / "vg.jsonl").read_text().splitlines()]
    assert [s["messages"][1]["content"] for s in rec if s["task"] == "rec"] == ["[0.100, 0.100, 0.500, 0.500]"]


def test_lazy_names_and_submodules():
    from groundinggpt.models import GroundingGPTForCausalLM
    from groundinggpt.processor import GroundingGPTProcessor

    assert groundinggpt.GroundingGPTForCausalLM is GroundingGPTForCausalLM
    assert groundinggpt.GroundingGPTProcessor is GroundingGPTProcessor
    assert set(groundinggpt.__all__) <= set(dir(groundinggpt))
    assert groundinggpt.jsonsafe.__name__ == "groundinggpt.jsonsafe"  # submodules as attributes, as before
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        groundinggpt.NoSuchThing  # noqa: B018
    import groundinggpt.data as data

    assert data.GroundingDataset.__module__ == "groundinggpt.data.dataset"
    with pytest.raises(AttributeError):
        data.NoSuchThing  # noqa: B018


def test_the_auto_classes_find_groundinggpt_in_this_process():
    from transformers import AutoConfig, AutoProcessor
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    assert hf_auto.registered()
    config = AutoConfig.for_model("groundinggpt")
    assert type(config) is groundinggpt.GroundingGPTConfig
    assert MODEL_FOR_CAUSAL_LM_MAPPING[type(config)] is groundinggpt.GroundingGPTForCausalLM
    assert PROCESSOR_MAPPING[type(config)] is groundinggpt.GroundingGPTProcessor
    assert AutoProcessor is not None and not any(isinstance(f, hf_auto._Finder) for f in sys.meta_path)


@pytest.mark.slow  # a fresh interpreter that loads torch + transformers: ~8 CPU s
def test_import_groundinggpt_then_auto_classes_in_a_fresh_process():
    out = _run("""
        import sys
        import groundinggpt
        assert "torch" not in sys.modules
        from transformers import AutoConfig
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING
        from transformers.models.auto.processing_auto import PROCESSOR_MAPPING
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING
        c = type(AutoConfig.for_model("groundinggpt"))
        print(c.__name__, MODEL_FOR_CAUSAL_LM_MAPPING[c].__name__, PROCESSOR_MAPPING[c].__name__,
              CONFIG_MAPPING["LEGO"].__name__)
    """, timeout=900)
    assert out.split() == ["GroundingGPTConfig", "GroundingGPTForCausalLM", "GroundingGPTProcessor",
                           "ReleasedLegoConfig"]


def test_registration_waits_for_the_outermost_own_import(tmp_path, monkeypatch):
    # The Auto module is often first imported by one of the package's own modules, half-way
    # through its import: the registration (which imports the model) must wait until that
    # import has finished, or it would meet half-initialised modules.
    pkg = tmp_path / "h17c_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "outer.py").write_text("from h17c_pkg import inner\nDONE = True\n")
    (pkg / "inner.py").write_text("import h17c_auto\nDONE = True\n")
    (tmp_path / "h17c_auto.py").write_text("")
    calls = []

    def fake_register():
        calls.append([getattr(sys.modules.get(f"h17c_pkg.{m}"), "DONE", False) for m in ("outer", "inner")])
        hf_auto._state["registered"] = True
        hf_auto._uninstall()

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(hf_auto, "_state", {"registered": False, "pending": False})
    monkeypatch.setattr(hf_auto, "AUTO_MODULE", "h17c_auto")
    monkeypatch.setattr(hf_auto, "OWN_PREFIX", "h17c_pkg.")
    monkeypatch.setattr(hf_auto, "register", fake_register)
    try:
        hf_auto.install()
        assert any(isinstance(f, hf_auto._Finder) for f in sys.meta_path)
        import h17c_pkg.outer  # noqa: F401

        assert calls == [[True, True]]  # once, after outer (and inner) finished
        assert not any(isinstance(f, hf_auto._Finder) for f in sys.meta_path)
    finally:
        hf_auto._uninstall()
        for m in ("h17c_pkg", "h17c_pkg.outer", "h17c_pkg.inner", "h17c_auto"):
            sys.modules.pop(m, None)


def test_registration_right_after_the_auto_module_when_no_own_import_runs(tmp_path, monkeypatch):
    (tmp_path / "h17c_auto2.py").write_text("LOADED = True\n")
    calls = []

    def fake_register():
        calls.append(getattr(sys.modules.get("h17c_auto2"), "LOADED", False))
        hf_auto._state["registered"] = True
        hf_auto._uninstall()

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(hf_auto, "_state", {"registered": False, "pending": False})
    monkeypatch.setattr(hf_auto, "AUTO_MODULE", "h17c_auto2")
    monkeypatch.setattr(hf_auto, "register", fake_register)
    try:
        hf_auto.install()
        assert calls == []
        import h17c_auto2  # noqa: F401

        assert calls == [True]
        hf_auto.install()  # already loaded and registered: nothing more
        assert calls == [True]
    finally:
        hf_auto._uninstall()
        sys.modules.pop("h17c_auto2", None)

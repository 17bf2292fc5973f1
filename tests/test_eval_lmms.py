"""The lmms-eval plugin, found the way lmms-eval finds external models (entry points).

Needs lmms-eval: ``pip install --no-deps lmms-eval==0.7.3`` plus the few small packages
its model API and CLI import (see docs/evaluation.md); skipped without it.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

# The model API (what the plugin imports) needs lmms-eval plus loguru and evaluate.
pytest.importorskip("lmms_eval.api.registry")
from lmms_eval.api.instance import Instance  # noqa: E402
from lmms_eval.models.registry_v2 import ModelRegistryV2  # noqa: E402

from conftest import make_image  # noqa: E402
from test_eval_runner import tiny_dir  # noqa: E402,F401 (fixture)

ENTRY_POINT = "groundinggpt = groundinggpt.eval.lmms_eval_plugin:manifest"


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    """A folder to put on sys.path whose dist-info declares the entry point — unless the
    installed groundinggpt already declares it (after pyproject gains it), then None."""
    if any(ep.name == "groundinggpt" for ep in md.entry_points(group="lmms_eval.models")):
        return None
    info = tmp_path / "site" / "groundinggpt_lmms_plugin-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: groundinggpt-lmms-plugin\nVersion: 0\n")
    (info / "entry_points.txt").write_text(f"[lmms_eval.models]\n{ENTRY_POINT}\n")
    monkeypatch.syspath_prepend(str(info.parent))
    return str(info.parent)


@pytest.fixture
def lm(plugin_path, tiny_dir):  # noqa: F811
    registry = ModelRegistryV2()  # what lmms_eval.models builds at import time
    registry.load_entrypoint_manifests()
    cls = registry.get_model_class("groundinggpt")
    assert cls.__name__ == "GroundingGPTLmms" and cls.is_simple
    model = cls.create_from_arg_string(f"pretrained={tiny_dir},max_new_tokens=5", {"batch_size": 2, "device": "cpu"})
    docs = [{"image": make_image(96, 64)}, {"image": make_image(40, 80, colour=(30, 30, 220))},
            {"image": make_image(64, 64), "audio": {"array": np.zeros(16000, np.float32), "sampling_rate": 16000}}]
    model.task_dict = {"colours": {"test": docs}}
    return model


def doc_to_visual(doc):
    return [doc["image"], *([doc["audio"]] if "audio" in doc else [])]


def request(kind, i, context, second):
    return Instance(request_type=kind, arguments=(context, second, doc_to_visual, i, "colours", "test"), idx=0,
                    metadata={"task": "colours", "doc_id": i, "repeats": 1})


def test_generate_until_batches_and_matches_single_answers(lm, monkeypatch):
    seen = []
    original = lm.gg.generate
    monkeypatch.setattr(lm.gg, "generate", lambda convs, settings: seen.append(convs) or original(convs, settings))
    gen = {"max_new_tokens": 4, "until": ["\n"], "temperature": 0}
    out = lm.generate_until([request("generate_until", i, "<image>\nWhat colour is the box?", dict(gen))
                             for i in range(3)])
    assert len(out) == 3 and all(isinstance(t, str) for t in out)
    assert [len(b) for b in seen] == [2, 1]  # batch_size 2
    parts = seen[1][0][0]["content"]
    assert [p["type"] for p in parts] == ["image", "audio", "text"]
    assert parts[-1]["text"] == "What colour is the box?"  # the LLaVA placeholder is gone
    single = original([seen[0][1]], lm._settings(gen))[0].text
    assert out[1] == single  # left-padded batching changes nothing


def test_loglikelihood(lm):
    ctx = "What colour is the box?"
    (ll_a, _), (ll_ab, _) = lm.loglikelihood([request("loglikelihood", 0, ctx, "red"),
                                              request("loglikelihood", 0, ctx, "red box")])
    assert math.isfinite(ll_a) and ll_a < 0
    assert ll_ab < ll_a  # one more token can only lower the log-probability
    # The model's own greedy answer is greedy; the continuation is scored, not the EOS.
    greedy = lm.generate_until([request("generate_until", 0, ctx, {"max_new_tokens": 3})])[0]
    (ll_g, is_greedy), = lm.loglikelihood([request("loglikelihood", 0, ctx, greedy)])
    assert is_greedy and ll_g <= 0


@pytest.mark.slow
def test_lmms_eval_cli_runs_a_local_yaml_task(tmp_path, plugin_path, tiny_dir):  # noqa: F811
    """A full ``lmms-eval eval`` over a local JSON task, offline (~15 s)."""
    for module in ("sacrebleu", "tenacity", "pytablewriter"):  # what the CLI adds on top
        pytest.importorskip(module)
    docs = []
    for k, colour in enumerate(("red", "blue")):
        make_image(64, 48, colour=(220, 30, 30) if colour == "red" else (30, 30, 220)).save(tmp_path / f"{k}.png")
        docs.append({"image": str(tmp_path / f"{k}.png"), "question": "What colour is the box?", "answer": colour})
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    task = tmp_path / "task"
    task.mkdir()
    (task / "gg_colours.yaml").write_text(textwrap.dedent(f"""\
        task: gg_colours
        dataset_path: json
        dataset_kwargs:
          data_files:
            test: {tmp_path / "docs.jsonl"}
        test_split: test
        output_type: generate_until
        doc_to_visual: !function utils.doc_to_visual
        doc_to_text: !function utils.doc_to_text
        doc_to_target: answer
        generation_kwargs:
          max_new_tokens: 4
        process_results: !function utils.process_results
        metric_list:
          - metric: exact_match
            aggregation: mean
            higher_is_better: true
        """))
    (task / "utils.py").write_text(textwrap.dedent("""\
        from PIL import Image
        def doc_to_visual(doc):
            return [Image.open(doc["image"]).convert("RGB")]
        def doc_to_text(doc):
            return "<image>\\n" + doc["question"]
        def process_results(doc, results):
            return {"exact_match": float(results[0].strip().lower() == doc["answer"])}
        """))
    # lmms-eval 0.7.3 patches filelock internals that filelock 4 moved (filelock._api);
    # mark that patch as done when they are absent — it only matters for parallel runs.
    script = textwrap.dedent("""\
        import importlib.util, sys
        import lmms_eval.evaluator as ev
        if importlib.util.find_spec("filelock._api") is None:
            ev._enable_reentrant_filelocks._patched = True
        from lmms_eval.cli.dispatch import main
        sys.argv = ["lmms-eval", *sys.argv[1:]]
        main()
        """)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    if plugin_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (plugin_path, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-c", script, "eval", "--model", "groundinggpt", "--model_args", f"pretrained={tiny_dir}",
           "--batch_size", "2", "--tasks", "gg_colours", "--include_path", str(task), "--device", "cpu",
           "--output_path", str(tmp_path / "out"), "--log_samples"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = list((tmp_path / "out").rglob("*_results.json"))
    assert results, done.stdout[-2000:]
    data = json.loads(results[0].read_text())
    assert "exact_match,none" in data["results"]["gg_colours"]
    samples = list((tmp_path / "out").rglob("*_samples_gg_colours.jsonl"))
    assert len(samples[0].read_text().splitlines()) == 2
    assert importlib.util.find_spec("groundinggpt.eval.lmms_eval_plugin") is not None

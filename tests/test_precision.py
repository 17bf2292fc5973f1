"""``bf16: auto``: bfloat16 only where the device computes it fast (groundinggpt.precision)."""

from __future__ import annotations

import pytest

from groundinggpt import precision
from groundinggpt.train.recipe import RecipeError, build_config


@pytest.fixture
def cpu_speed(monkeypatch):
    """Make the CPU's measured bf16 / fp32 matmul times whatever the test says."""

    def set_times(bf16: float, fp32: float):
        precision.cpu_bf16_is_fast.cache_clear()
        times = {"bfloat16": bf16, "float32": fp32}
        monkeypatch.setattr(precision, "_matmul_seconds", lambda dtype, size, reps: times[str(dtype).split(".")[-1]])

    yield set_times
    precision.cpu_bf16_is_fast.cache_clear()


def test_the_cpu_is_asked_not_assumed(cpu_speed):
    cpu_speed(bf16=0.030, fp32=0.064)  # AVX512-BF16 / AMX: bf16 faster
    assert precision.cpu_bf16_is_fast() and precision.resolve_bf16("auto", use_cpu=True)
    cpu_speed(bf16=1.87, fp32=0.064)  # AVX2 only (the development machine): reference loops, ~30x slower
    assert not precision.cpu_bf16_is_fast() and not precision.resolve_bf16("auto", use_cpu=True)
    cpu_speed(bf16=0.09, fp32=0.064)  # within 1.5x: memory savings are worth it
    assert precision.cpu_bf16_is_fast()


def test_explicit_values_are_kept_whatever_the_cpu(cpu_speed):
    cpu_speed(bf16=1.87, fp32=0.064)
    assert precision.resolve_bf16(True, use_cpu=True) is True
    assert precision.resolve_bf16(False) is False


def test_the_measurement_itself_runs_and_agrees_with_itself():
    precision.cpu_bf16_is_fast.cache_clear()
    first = precision.cpu_bf16_is_fast()
    assert isinstance(first, bool) and precision.cpu_bf16_is_fast() is first  # cached
    assert precision.bf16_is_fast("cpu") is first
    assert precision.bf16_is_fast("meta") is False


@pytest.mark.parametrize("fast", [True, False])
def test_quickstart_recipes_resolve_auto_into_the_run_config(cpu_speed, fast, tmp_path):
    cpu_speed(bf16=0.03 if fast else 2.0, fp32=0.064)
    data = tmp_path / "d.jsonl"
    data.write_text("")
    for stage in (1, 2, 3):
        config = build_config(f"quickstart-stage{stage}", {"model": "tiny", "data": [str(data)],
                                                             "previous_data": [str(data)] if stage > 1 else None, "output": str(tmp_path / "out")})
        assert config.training["bf16"] is fast  # what the run record and run_log.json hold


def test_a_bf16_value_that_is_neither_bool_nor_auto_is_refused(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("training:\n  bf16: sometimes\ngroundinggpt:\n  stage: 1\n")
    with pytest.raises(RecipeError, match=r"training\.bf16 must be true, false or auto"):
        build_config(bad, {"model": "tiny", "data": ["x.jsonl"], "output": str(tmp_path / "out")})

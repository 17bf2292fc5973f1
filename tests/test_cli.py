"""The ``groundinggpt`` command line."""

from __future__ import annotations

import json
import subprocess
import sys

from groundinggpt.cli import main


def _json_from(out: str) -> dict:
    # Optional libraries (e.g. DeepSpeed) may print a banner on import; the report is the JSON object.
    return json.loads(out[out.index("{\n"):])


def test_info_reports_paper_shapes(capsys):
    assert main(["info", "--model", "groundinggpt-7b"]) == 0
    info = _json_from(capsys.readouterr().out)
    assert info["image_tokens"] == 576 and info["video_frames"] == 64 and info["audio_clips"] == 3
    assert info["parameters"]["audio_encoder"] == 86_235_648
    assert info["parameters"]["image_adapter"] == 1024 * 4096 + 4096 + 4096 * 4096 + 4096


def test_info_on_saved_folder(tmp_path, tiny, capsys):
    model, _ = tiny
    model.save_pretrained(tmp_path)
    assert main(["info", "--model", str(tmp_path)]) == 0
    info = _json_from(capsys.readouterr().out)
    assert info["total_parameters"] == sum(p.numel() for p in model.parameters())


def test_console_script_bad_model_is_a_clear_error():
    proc = subprocess.run([sys.executable, "-m", "groundinggpt.cli", "info", "--model", "nope"],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "expected tiny, groundinggpt-7b, groundinggpt-13b or a model folder" in proc.stderr

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


def test_a_folder_that_is_no_model_is_one_line_not_a_traceback(tmp_path, capsys):
    (tmp_path / "world").mkdir()
    (tmp_path / "world" / "test_rec.jsonl").write_text("")
    for argv in (["chat", "--model", str(tmp_path / "world")], ["info", "--model", str(tmp_path / "world")]):
        try:
            code = main(argv)
        except SystemExit as e:  # info refuses through argparse-style SystemExit
            code, err = 2, str(e)
        else:
            err = capsys.readouterr().err
        assert code == 2, argv
        assert "not a model folder (no config.json)" in err and "Traceback" not in err
    # A config.json without weights: transformers' OSError, reported in one line.
    (tmp_path / "world" / "config.json").write_text("{}")
    code = main(["chat", "--model", str(tmp_path / "world")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("groundinggpt chat: error:") and err.count("\n") == 1

"""Every sub-command follows the same conventions: --output, --quiet, one error handler (groundinggpt.cli)."""

import argparse

import pytest

from groundinggpt.cli import build_parser, main, run_command
from groundinggpt.errors import InputError


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = _subparsers(sub)
                out.update({f"{name} {k}": v for k, v in nested.items()} if nested else {name: sub})
    return out


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def test_output_and_quiet_are_spelled_the_same_everywhere():
    commands = _subparsers(build_parser())
    assert {"eval pope", "train", "quickstart", "synthetic", "data convert"} <= set(commands)
    for name, parser in commands.items():
        flags = _options(parser)
        assert "--out" not in flags, name  # argparse's prefix matching takes --out for --output
        visible = parser.format_help()
        assert "--no-progress" not in visible, name  # old spelling: accepted, not advertised
    writers = ("eval pope", "train", "quickstart", "synthetic", "data convert", "data build")
    assert all("--output" in _options(commands[n]) for n in writers)
    progress = ("eval pope", "train", "quickstart", "synthetic", "data convert", "data build")
    assert all("--quiet" in _options(commands[n]) for n in progress)


def test_old_spellings_still_parse():
    parser = build_parser()
    args = parser.parse_args(["quickstart", "--out", "somewhere", "--no-progress"])
    assert args.output == "somewhere" and args.quiet
    args = parser.parse_args(["eval", "pope", "--questions", "q.jsonl", "--predictions", "p.jsonl", "--out", "o",
                              "--no-progress"])
    assert args.output == "o" and args.quiet
    assert parser.parse_args(["synthetic", "world"]).root == "world"
    assert parser.parse_args(["synthetic", "--out", "world", "--quiet"]).output == "world"


def test_one_error_handler_one_line_exit_2(capsys):
    def failing(args):
        raise InputError("data.jsonl, line 3: expected an object")

    code = run_command(argparse.Namespace(command="train", func=failing))
    err = capsys.readouterr().err
    assert code == 2 and err == "groundinggpt train: error: data.jsonl, line 3: expected an object\n"
    code = run_command(argparse.Namespace(command="eval", task="rec", func=lambda a: int("x")))
    assert code == 2 and capsys.readouterr().err.startswith("groundinggpt eval rec: error: invalid literal")

    def bug(args):
        raise KeyError("a programming error")

    with pytest.raises(KeyError):  # not the user's to fix: the traceback is kept
        run_command(argparse.Namespace(command="train", func=bug))


def test_quickstart_refusal_goes_through_the_shared_handler(tmp_path, capsys):
    (tmp_path / "foreign.txt").write_text("not a quickstart run")
    assert main(["quickstart", "--fast", "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("groundinggpt quickstart: error:") and err.count("\n") == 1


def test_set_means_a_recipe_key_and_count_a_sample_count(capsys):
    """``--set KEY=VALUE`` sets recipe keys (train); the synthetic world's sample counts are
    ``--count GROUP.FAMILY=N``. The synthetic command's first spelling, ``--set``, still works
    and warns; no command but train advertises ``--set``."""
    parser = build_parser()
    commands = _subparsers(parser)
    advertising = sorted(name for name, sub in commands.items() if "--set" in sub.format_help())
    assert advertising == ["train"]
    assert "--count" in commands["synthetic"].format_help()
    args = parser.parse_args(["synthetic", "--output", "w", "--count", "test.rec=3", "--count", "stage2.vqa=7"])
    assert args.count == [("test", "rec", 3), ("stage2", "vqa", 7)]
    assert capsys.readouterr().err == ""
    args = parser.parse_args(["synthetic", "--output", "w", "--set", "test.rec=3", "--count", "stage1.caption=2"])
    assert args.count == [("test", "rec", 3), ("stage1", "caption", 2)]
    warning = capsys.readouterr().err
    assert "--set test.rec=3 is deprecated" in warning and "use --count test.rec=3" in warning
    with pytest.raises(SystemExit):
        parser.parse_args(["synthetic", "--output", "w", "--count", "rec=3"])
    assert "expected GROUP.FAMILY=N" in capsys.readouterr().err
    train = parser.parse_args(["train", "--stage", "1", "--model", "tiny", "--data", "d.jsonl", "--output", "o",
                               "--set", "learning_rate=0.1"])
    assert train.set == ["learning_rate=0.1"]


def test_commands_table_matches_what_each_module_registers():
    # `groundinggpt COMMAND` imports only the module COMMANDS lists for it (the data commands
    # then never load torch): the table must name exactly what each module registers.
    import importlib

    from groundinggpt.cli import COMMANDS, module_of

    for module, names in COMMANDS.items():
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(sub)
        assert sorted(sub.choices) == sorted(names.split(", ")), module
    assert module_of("web") == "groundinggpt.serve.cli" and module_of("nope") is None
    assert set(_subparsers(build_parser("data"))) == {"data sources", "data convert", "data build",
                                                       "data question-pool", "data instruct"}
    assert len({name.split()[0] for name in _subparsers(build_parser("nope"))}) == 10  # unknown: all, for the error


def test_unknown_command_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["no-such-command"])
    assert e.value.code == 2 and "invalid choice: 'no-such-command'" in capsys.readouterr().err

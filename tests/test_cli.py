"""The one entry point: every command's --help composes its config; errors are one clear line."""
from __future__ import annotations

import subprocess
import sys

import pytest

from selfflow_robot.cli import COMMANDS, main


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_shows_config(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*name.split(), "--help"]) == 0
    out = capsys.readouterr().out
    assert f"selfflow-robot {name}:" in out
    assert "Current config:" in out


def test_top_level_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_unknown_command_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trian"]) == 2
    assert "did you mean 'train'" in capsys.readouterr().err.lower()


def test_bad_override_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "no_such_key_xyz=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "no_such_key_xyz" in err
    assert "Traceback" not in err


def test_console_script_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "selfflow_robot.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: selfflow-robot" in out.stdout

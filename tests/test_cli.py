"""The one entry point: every command's --help composes its config; errors are one clear line.

Each command's schema dataclass is the one source of its keys and defaults: `configs/*.yaml` only
select config groups or set what differs from the dataclass.
"""
from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys
from typing import Any

import pytest
from omegaconf import OmegaConf

from selfflow_robot.cli import COMMANDS, main
from selfflow_robot.config import config_dir, load_config, structured
from selfflow_robot.data.dataset import DataConfig
from selfflow_robot.train.config import TrainConfig, TrainRunConfig


def _schema(name: str) -> type:
    module, cls = COMMANDS[name].schema.split(":")
    return getattr(importlib.import_module(module), cls)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_shows_config(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*name.split(), "--help"]) == 0
    out = capsys.readouterr().out
    assert f"selfflow-robot {name}:" in out
    assert "Current config:" in out
    schema = _schema(name)
    assert dataclasses.is_dataclass(schema) and schema.__doc__.splitlines()[0] in out
    config = out.split("Current config:", 1)[1]
    for field in dataclasses.fields(schema):
        assert f"\n{field.name}:" in config, field.name


def test_help_shows_the_selected_group_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "model=small", "objective=vanilla", "--help"]) == 0
    out = capsys.readouterr().out
    assert "model: base | small* | tiny | xl" in out and "objective: selfflow | vanilla*" in out
    assert "hidden_size: 384" in out


def test_top_level_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_unknown_command_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trian"]) == 2
    assert "did you mean 'train'" in capsys.readouterr().err.lower()
    assert main(["data", "stat"]) == 2
    assert "did you mean 'data stats'" in capsys.readouterr().err.lower()


def test_bad_override_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "no_such_key_xyz=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "no_such_key_xyz" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("override, message", [
    ("+foo=1", "unknown key 'foo' in the 'train' config"),
    ("+model.foo=1", "unknown key 'model.foo'"),
    ("train.optim.lrr=3", "unknown key 'train.optim.lrr' in the 'train' config (TrainRunConfig); "
                          "did you mean 'train.optim.lr'?"),
    ("model=huge", "no option 'huge' in config group 'model' (options: base, small, tiny, xl)"),
    ("train.steps=many", "train.steps=many"),
])
def test_keys_no_schema_knows_are_refused(override: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", override, "--help"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def _leaves(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


@pytest.mark.parametrize("yaml, schema", [
    *((f"{c.config}.yaml", c.schema) for c in COMMANDS.values()),
    ("train/cpu.yaml", TrainConfig), ("data/synth.yaml", DataConfig), ("data/rt1.yaml", DataConfig),
])
def test_yaml_sets_only_what_differs_from_the_dataclass(yaml: str, schema: type | str) -> None:
    if isinstance(schema, str):
        schema = _schema(next(n for n, c in COMMANDS.items() if c.schema == schema))
    content = OmegaConf.to_container(OmegaConf.load(config_dir() / yaml))
    content.pop("defaults", None)
    defaults = _leaves(OmegaConf.to_container(OmegaConf.structured(schema), enum_to_str=True))
    for key, value in _leaves(content).items():
        assert key in defaults and value != defaults[key], f"{yaml}: {key}={value!r} repeats the default"


def test_one_size_table() -> None:
    """The model and objective options exist only as dataclasses: no YAML copies under configs/."""
    assert not list(config_dir().glob("model/*.yaml")) and not list(config_dir().glob("objective/*.yaml"))


def test_saved_run_config_reloads() -> None:
    """A checkpoint's config.yaml (the resolved composed config) validates against the schema again."""
    cfg = load_config("train", ["model=small", "train=cpu", "data=rt1", "data.path=/x"], schema=TrainRunConfig)
    again = structured(TrainRunConfig, OmegaConf.create(OmegaConf.to_yaml(cfg, resolve=True)))
    assert again == structured(TrainRunConfig, cfg)
    assert (again.model.hidden_size, again.train.steps, again.data.shuffle_episodes) == (384, 300, 16)


def test_console_script_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "selfflow_robot.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: selfflow-robot" in out.stdout


def test_one_commands_config_groups_do_not_leak_into_another():
    """Hydra's ConfigStore is process-wide: after `train` registered its `objective` group, the demo's plain
    `objective=` key must still be a plain key (the study composes demo configs in a process that trains)."""
    demo_schema = _schema("demo")
    load_config("demo", ["objective=vanilla"], schema=demo_schema)
    assert load_config("train", ["objective=vanilla"], schema=TrainRunConfig).objective.name == "vanilla"
    assert load_config("demo", ["objective=vanilla"], schema=demo_schema).objective == "vanilla"

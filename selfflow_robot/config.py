"""Hydra configs: compose `configs/<command>.yaml` with `key=value` overrides.

YAML files under `configs/` select and override; typed dataclasses (beside the code that
uses them) are the schema. `load_config` composes, `structured` validates into a dataclass.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from selfflow_robot.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
T = TypeVar("T")


def config_dir() -> Path:
    """The folder holding the Hydra configs (repository `configs/`, or its installed copy)."""
    if CONFIG_DIR.is_dir():
        return CONFIG_DIR
    import selfflow_robot.configs as pkg  # installed (non-editable) layout

    return Path(pkg.__file__).resolve().parent


def load_config(name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose `configs/<name>.yaml` with Hydra `key=value` overrides; raises `ConfigError` on bad input."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    path = config_dir()
    if not (path / f"{name}.yaml").is_file():
        raise ConfigError(f"no config '{name}.yaml' in {path}")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(path), version_base="1.3"):
            cfg = compose(config_name=name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"bad override for '{name}': {e}".splitlines()[0] if str(e) else repr(e)) from e
    finally:
        GlobalHydra.instance().clear()
    return cfg


def structured(cls: type[T], cfg: DictConfig | dict[str, Any] | None) -> T:
    """Validate `cfg` against dataclass `cls` (types, unknown keys) and return an instance.

    Raises `ConfigError` naming the offending key. Dataclass `__post_init__` checks run too.
    """
    from omegaconf.errors import OmegaConfBaseException

    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), cfg or {})
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        msg = str(e).splitlines()[0]
        raise ConfigError(f"invalid {cls.__name__} config: {msg}") from e
    assert dataclasses.is_dataclass(obj)
    return obj  # type: ignore[return-value]


def to_yaml(cfg: Any) -> str:
    """Render a config (DictConfig or dataclass) as YAML."""
    if dataclasses.is_dataclass(cfg):
        cfg = OmegaConf.structured(cfg)
    return OmegaConf.to_yaml(cfg)


def check_choice(name: str, value: Any, allowed: Sequence[Any]) -> None:
    """Raise `ConfigError` "`name` must be one of [...], got X" (with a close match if any)."""
    if value in allowed:
        return
    import difflib

    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ConfigError(f"{name} must be one of {list(allowed)}, got {value!r}{hint}")

"""Hydra configs: a schema dataclass per command, composed with `configs/<command>.yaml` and `key=value` overrides.

The dataclass is the schema and the defaults (docs/architecture.md, "Configs"). `load_config` stores it in
Hydra's ConfigStore as `<command>_schema`, the first entry of the YAML's `defaults:` list, together with the
options of its config groups (`ConfigSchema.config_groups`); the YAML only selects group options or sets what
differs. Group options may also be YAML files, `configs/<group>/<option>.yaml`, holding only their overrides.
`structured` validates a composed config into its dataclass.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import selfflow_robot.configs as installed_configs
from selfflow_robot.errors import ConfigError

SCHEMA_SUFFIX = "_schema"  # configs/<name>.yaml starts its defaults list with `<name>_schema`
T = TypeVar("T")
_REGISTERED_GROUPS: set[str] = set()   # groups `register_schema` put into Hydra's ConfigStore


def config_dir() -> Path:
    """The folder holding the Hydra configs (repository `configs/`, or its installed copy)."""
    return Path(installed_configs.__file__).resolve().parent


def register_schema(name: str, schema: type) -> None:
    """Store `schema` as `<name>_schema` and its group presets as group options in Hydra's ConfigStore.

    The presets are the schema's optional class attribute `config_groups: ClassVar[dict[str, dict[str, Any]]]`,
    group -> option -> dataclass instance (e.g. `{"model": SIZES}` makes `model=tiny` select `SIZES["tiny"]`).
    """
    if not dataclasses.is_dataclass(schema):
        raise TypeError(f"the schema of '{name}' must be a dataclass, got {schema!r}")
    store = ConfigStore.instance()
    # the store is process-wide: drop the groups an earlier command registered, so that another command's
    # group (e.g. train's `objective`) never swallows a plain key of this one (the demo's `objective=`)
    for group in _REGISTERED_GROUPS:
        store.repo.pop(group, None)
    _REGISTERED_GROUPS.clear()
    store.store(name=f"{name}{SCHEMA_SUFFIX}", node=schema)
    for group, options in getattr(schema, "config_groups", {}).items():
        _REGISTERED_GROUPS.add(group)
        for option, preset in options.items():
            store.store(group=group, name=option, node=preset)


def load_config(name: str, overrides: Sequence[str] = (), *, schema: type) -> DictConfig:
    """Compose `configs/<name>.yaml` over its `schema` dataclass with Hydra `key=value` overrides.

    Returns the composed config, typed by `schema` (values are checked against the field types).
    Raises `ConfigError`, one line naming the culprit, on a bad override, a missing group option, or
    a key the schema does not know (`+foo=1`, a misspelt key).
    """
    path = config_dir()
    if not (path / f"{name}.yaml").is_file():
        raise ConfigError(f"no config '{name}.yaml' in {path}")
    register_schema(name, schema)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(path), version_base="1.3"):
            cfg = compose(config_name=name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(_composition_error(name, schema, e)) from e
    finally:
        GlobalHydra.instance().clear()
    if OmegaConf.get_type(cfg) is not schema:
        raise ConfigError(f"{path / name}.yaml must list '{name}{SCHEMA_SUFFIX}' first in its defaults "
                          f"(the schema {schema.__name__})")
    unknown = unknown_keys(cfg)
    if unknown:
        raise ConfigError(_unknown_key_error(name, schema, unknown[0]))
    return cfg


def group_options(name: str, overrides: Sequence[str] = (), *, schema: type) -> dict[str, tuple[list[str], str]]:
    """For `--help`: each config group of `configs/<name>.yaml` -> (its options, the one `overrides` select)."""
    register_schema(name, schema)
    fields = {f.name for f in dataclasses.fields(schema)}
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            composed = compose(config_name=name, overrides=list(overrides), return_hydra_config=True)
            choices = composed.hydra.runtime.choices
            loader = GlobalHydra.instance().config_loader()
            return {g: (sorted(loader.get_group_options(g)), str(choices[g])) for g in sorted(choices) if g in fields}
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(_composition_error(name, schema, e)) from e
    finally:
        GlobalHydra.instance().clear()


def unknown_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Dotted keys of `cfg` that no field of their dataclass declares (added with `+key=...`)."""
    kind = OmegaConf.get_type(cfg)
    known = {f.name for f in dataclasses.fields(kind)} if dataclasses.is_dataclass(kind) else None
    found = []
    for key in cfg:
        if known is not None and key not in known:
            found.append(f"{prefix}{key}")
        elif dataclasses.is_dataclass(OmegaConf.get_type(cfg, str(key))):
            found += unknown_keys(cfg[key], f"{prefix}{key}.")
    return found


def _key_paths(cfg: DictConfig, prefix: str = "") -> list[str]:
    paths = []
    for key in cfg:
        paths.append(f"{prefix}{key}")
        kind = OmegaConf.get_type(cfg, str(key))
        if dataclasses.is_dataclass(kind) or kind is dict:
            paths += _key_paths(cfg[key], f"{prefix}{key}.")
    return paths


def _unknown_key_error(name: str, schema: type, key: str) -> str:
    parent, _, leaf = key.rpartition(".")
    paths = [p.rpartition(".") for p in _key_paths(OmegaConf.structured(schema))]
    siblings = [child for above, _, child in paths if above == parent]
    close = difflib.get_close_matches(leaf, siblings, n=1)
    hint = f"; did you mean '{parent + '.' if parent else ''}{close[0]}'?" if close else ""
    return f"unknown key '{key}' in the '{name}' config ({schema.__name__}){hint}"


def _composition_error(name: str, schema: type, e: Exception) -> str:
    """One line for a failed composition: the unknown key, the missing group option, or the bad value."""
    text = str(e)
    unknown = re.match(r"Could not override '([^']+)'", text)
    if unknown:
        return _unknown_key_error(name, schema, unknown.group(1))
    if isinstance(e, MissingConfigException):
        missing = re.search(r"Could not find '([^'/]+)/([^']+)'", text)
        options = re.findall(r"^\t(\S+)$", text, flags=re.MULTILINE)
        if missing:
            return (f"no option '{missing.group(2)}' in config group '{missing.group(1)}' "
                    f"(options: {', '.join(options) or 'none'})")
    lines = [text.splitlines()[0] if text else repr(e)]
    if e.__cause__ is not None and str(e.__cause__):
        lines.append(str(e.__cause__).splitlines()[0])
    return f"bad override for '{name}': " + ": ".join(lines)


def structured(cls: type[T], cfg: DictConfig | dict[str, Any] | None) -> T:
    """Validate `cfg` against dataclass `cls` (types, unknown keys) and return an instance.

    Raises `ConfigError` naming the offending key. Dataclass `__post_init__` checks run too.
    """
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
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ConfigError(f"{name} must be one of {list(allowed)}, got {value!r}{hint}")

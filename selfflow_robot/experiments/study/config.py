"""The study's settings: its arms, each arm's `selfflow-robot demo` overrides, and the command that reproduces it.

Every arm is `selfflow-robot demo` with the same (shared) overrides plus its own output dir, objective and seed.
"""
from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from selfflow_robot.config import load_config, structured
from selfflow_robot.experiments.demo.config import PHASE_DIRS, DemoConfig

DEMOS_DIR = PHASE_DIRS["collect"]  # the shared demos under the study dir, and each arm's link to them
ARM_PHASES = ["train", "eval", "imagine", "report"]
# DemoConfig fields that may differ between arms without changing what is compared.
NOT_SETTINGS = ("output_dir", "objective", "seed", "phases", "assets", "workers")
# Written out in a study's command even when equal to the defaults, so it survives a change of configs/demo.yaml.
PINNED = ("suite", "demos_per_task", "demo_noise_m", "demo_noise_rad", "steps", "batch_size", "lr", "train_overrides",
          "eval_episodes_per_task")
# Demo settings that have their own flag in the study's command line (the others go through `--set`).
FLAG_OF = {"steps": "--steps", "batch_size": "--batch-size", "demos_per_task": "--demos-per-task",
           "eval_episodes_per_task": "--eval-episodes-per-task"}
STUDY_SCRIPT = "scripts/study_selfflow_vs_vanilla.py"


def arm_name(objective: str, seed: int) -> str:
    """The arm's directory name, e.g. `selfflow-seed0`."""
    return f"{objective}-seed{seed}"


def arm_overrides(shared: Sequence[str], *, output_dir: Path, objective: str, seed: int,
                  phases: Sequence[str] = ARM_PHASES) -> list[str]:
    """The `selfflow-robot demo` overrides of one arm: the shared ones, then its dir, objective, seed and phases
    (last, so a shared override can never change what makes the arm this arm)."""
    return [*shared, f"output_dir={output_dir}", f"objective={objective}", f"seed={seed}",
            "phases=[" + ",".join(phases) + "]"]


def demo_config(overrides: Sequence[str]) -> tuple[DictConfig, DemoConfig]:
    """Compose `configs/demo.yaml` with `overrides` and validate it: (DictConfig, DemoConfig)."""
    cfg = load_config("demo", list(overrides), schema=DemoConfig)
    return cfg, structured(DemoConfig, cfg)


def settings_of(cfg: DemoConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a DemoConfig (or its `demo_config.json` dict) that must match across arms."""
    d = dict(cfg) if isinstance(cfg, Mapping) else asdict(cfg)
    return {k: v for k, v in d.items() if k not in NOT_SETTINGS}


def _hydra_value(v: Any) -> str:
    """A Python value as a Hydra override value (strings quoted when they hold grammar characters)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_hydra_value(x) for x in v) + "]"
    s = str(v)
    if s and all(c.isalnum() or c in "_-./" for c in s):
        return s
    return json.dumps(s)


def overrides_from_config(cfg: DemoConfig | Mapping[str, Any], defaults: DemoConfig) -> list[str]:
    """The `key=value` overrides that turn the default DemoConfig into `cfg` (study settings only).

    The PINNED keys are always written; `policy_options` differences per key (`policy_options.steps=2`).
    """
    want, base = settings_of(cfg), settings_of(defaults)
    out = []
    for k, v in want.items():
        if k == "policy_options":
            b = base.get(k) or {}
            out += [f"policy_options.{pk}={_hydra_value(pv)}" for pk, pv in (v or {}).items() if b.get(pk) != pv]
        elif k in PINNED or base.get(k) != v:
            out.append(f"{k}={_hydra_value(v)}")
    return out


def study_command(out: Path, seeds: Sequence[int], objectives: Sequence[str], overrides: Sequence[str],
                  demos: Path | None, workers: int | None = None) -> str:
    """The script command line that runs (or resumes) this study, from the repository root."""
    parts = ["python", STUDY_SCRIPT, "--out", str(out), "--seeds", *map(str, seeds), "--objectives", *objectives]
    for o in overrides:
        key, val = o.split("=", 1)
        if key in FLAG_OF and val != "null":
            parts += [FLAG_OF[key], val]
        else:
            parts += ["--set", o]
    if workers is not None:
        parts += ["--workers", str(workers)]
    if demos is not None:
        parts += ["--demos", str(demos)]
    return " ".join(shlex.quote(p) for p in parts)


__all__ = ["ARM_PHASES", "DEMOS_DIR", "FLAG_OF", "NOT_SETTINGS", "PINNED", "STUDY_SCRIPT", "arm_name",
           "arm_overrides", "demo_config", "overrides_from_config", "settings_of", "study_command"]

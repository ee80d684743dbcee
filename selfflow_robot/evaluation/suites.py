"""What an evaluation sweep runs: the suite's tasks, their grid episodes and scene variants, the checkpoints.

A sweep is suite x checkpoint: every task of the suite (or `tasks`), every episode of its grid (or
`episodes` / `max_episodes`), for every checkpoint (or the scripted expert); a variant-aggregation suite
runs the scene variants whose assets are present (or `variants`). `plan_jobs` lists them as `EpisodeJob`s.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from omegaconf import ListConfig

from selfflow_robot.config import check_choice
from selfflow_robot.envs.assets import check_variant_assets, missing_variant_files, resolve_asset_root
from selfflow_robot.envs.grid import MISSING_VARIANTS, VARIANT_FAMILY, VARIANT_NAMES, episode_config, scene_variant
from selfflow_robot.envs.tasks import SUITES, TASKS
from selfflow_robot.errors import ConfigError, UserError
from selfflow_robot.evaluation.agents import EXPERT
from selfflow_robot.evaluation.config import EvalConfig
from selfflow_robot.evaluation.workers import EpisodeJob


def checkpoint_list(ckpt: Any) -> list[str]:
    """`ckpt` as a list of paths: accepts None, one path, a list, or a comma-separated string."""
    if ckpt is None:
        return []
    if isinstance(ckpt, (ListConfig, list, tuple)):
        items = [str(c) for c in ckpt]
    else:
        items = str(ckpt).split(",")
    return [c.strip() for c in items if c and c.strip()]


def _is_step_dir(p: Path) -> bool:
    return p.name.startswith("step-") and p.parent.name == "checkpoints"


def checkpoint_name(path: str) -> str:
    """A folder-safe display name: `RUN` for a run dir, `RUN_step-N` for `RUN/checkpoints/step-N`."""
    p = Path(path.rstrip("/"))
    return _safe_name(f"{p.parent.parent.name}_{p.name}" if _is_step_dir(p) else p.name)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name) or "checkpoint"


def checkpoint_names(paths: list[str]) -> list[str]:
    """`checkpoint_name` of each path; names that collide (two runs both called `run`) get the folders above their
    run dir prefixed, one more at a time, until they differ: `demo_run_step-N` and `seed1_run_step-N`."""
    base = [checkpoint_name(p) for p in paths]
    runs = [Path(p.rstrip("/")).resolve() for p in paths]
    runs = [r.parent.parent if _is_step_dir(r) else r for r in runs]
    names = list(base)
    for depth in range(1, 4):
        clash = {n for n in names if names.count(n) > 1}
        if not clash:
            break
        names = [_safe_name("_".join([*(a.name for a in reversed(r.parents[:depth])), b])) if n in clash else n
                 for n, b, r in zip(names, base, runs)]
    return names


def suite_tasks(cfg: EvalConfig) -> list[str]:
    """The tasks to run: the suite's, optionally restricted to `cfg.tasks` (checked against the suite)."""
    check_choice("suite", cfg.suite, list(SUITES))
    tasks = list(SUITES[cfg.suite])
    if cfg.tasks:
        for t in cfg.tasks:
            check_choice(f"task of suite {cfg.suite}", t, tasks)
        tasks = [t for t in tasks if t in cfg.tasks]
    return tasks


def variant_selection(cfg: EvalConfig) -> tuple[list[str], dict[str, str]]:
    """Scene variants a variant-aggregation sweep runs, and those left out with the reason.

    `cfg.variants` when given (each must have its assets: `AssetsMissingError` otherwise); else every
    variant of `grid.VARIANTS` whose files are under the asset root. SimplerEnv's background variants
    are always left out (their stages are not in the asset copy). ([], {}) for visual-matching suites.
    """
    if TASKS[suite_tasks(cfg)[0]].family != VARIANT_FAMILY:
        if cfg.variants is not None:
            raise ConfigError(f"variants= applies to variant-aggregation suites (drawer_variant_agg), not to "
                              f"suite {cfg.suite}; drop variants=")
        return [], {}
    root = resolve_asset_root(cfg.asset_root)
    left_out = {name: "stage file not in the asset copy" for name in MISSING_VARIANTS}
    if cfg.variants is not None:
        names = [v for v in VARIANT_NAMES if v in {str(x) for x in cfg.variants}]
        for v in names:
            check_variant_assets(root, scene_variant(v))
        left_out.update({v: "not selected by variants=" for v in VARIANT_NAMES if v not in names})
        return names, left_out
    names = []
    for v in VARIANT_NAMES:
        missing = missing_variant_files(root, scene_variant(v))
        if missing:
            left_out[v] = f"missing {', '.join(missing)} under {root} (selfflow-robot assets fetch has it)"
        else:
            names.append(v)
    return names, left_out


def task_episodes(cfg: EvalConfig, task: str, variants: list[str] | None = None) -> list[int]:
    """Grid indices to run for `task`: all, or `episodes`, in the selected `variants` (variant-aggregation
    tasks; default `variant_selection(cfg)`), truncated to `max_episodes`."""
    spec = TASKS[task]
    n = spec.num_episodes
    if cfg.episodes is not None:
        bad = [e for e in cfg.episodes if not 0 <= int(e) < n]
        if bad:
            raise ConfigError(f"episodes {bad} are outside the {n}-episode grid of {task} (valid: 0..{n - 1})")
        idx = sorted({int(e) for e in cfg.episodes})
    else:
        idx = list(range(n))
    if spec.family == VARIANT_FAMILY:
        keep = set(variant_selection(cfg)[0] if variants is None else variants)
        idx = [e for e in idx if episode_config(spec.family, e).variant in keep]
    return idx[: cfg.max_episodes] if cfg.max_episodes else idx


def plan_jobs(cfg: EvalConfig) -> tuple[list[EpisodeJob], dict[str, str]]:
    """All episodes of the sweep (checkpoint-major, then task, then grid index) and the checkpoint name -> path
    map."""
    tasks = suite_tasks(cfg)
    if cfg.policy == EXPERT:
        agents = [(EXPERT, "")]
    else:
        paths = checkpoint_list(cfg.ckpt)
        if not paths:
            raise ConfigError("eval needs a checkpoint: selfflow-robot eval ckpt=RUN_DIR (or ckpt=[A,B]), "
                              "or policy=expert for the scripted expert")
        for p in paths:
            if not Path(p).exists():
                raise UserError(f"checkpoint {p} does not exist; pass a run dir or a step dir with ckpt=")
        agents = list(zip(checkpoint_names(paths), (str(Path(p).resolve()) for p in paths)))
        names = [a[0] for a in agents]
        if len(set(names)) != len(names):
            raise ConfigError(f"checkpoints {paths} give duplicate result names {names}; evaluate them into "
                              "separate output_dir folders")
    variants = variant_selection(cfg)[0]
    episodes = {task: task_episodes(cfg, task, variants) for task in tasks}
    jobs = [EpisodeJob(name, path, cfg.policy, task, e)
            for name, path in agents for task in tasks for e in episodes[task]]
    return jobs, dict(agents)

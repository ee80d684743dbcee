"""`selfflow-robot eval`: score checkpoints (or the scripted expert) on SIMPLER suites of the ManiSkill3 port.

    selfflow-robot eval ckpt=runs/demo suite=drawer_visual_matching
    selfflow-robot eval ckpt=[runs/a,runs/b] suite=apple_visual_matching workers=2
    selfflow-robot eval policy=expert suite=drawer_visual_matching max_episodes=9
    selfflow-robot eval ckpt=runs/demo suite=drawer_variant_agg variants=[base,darker]
    selfflow-robot eval simpler_results=results_simpler        # report a real-SimplerEnv sweep (scripts/simpler)

A sweep is suite x checkpoint: every task of the suite, every episode of its grid (or the subset
`episodes` / `max_episodes`), for every checkpoint. A variant-aggregation suite (`drawer_variant_agg`)
runs the scene variants whose assets are present (or `variants=[...]`), and reports under the
variant-aggregation protocol beside its published numbers. Episodes run in parallel worker
processes (`workers`, default: all cores). Each finished episode is one JSON line in
`<output_dir>/episodes.jsonl` (written by the parent, flushed and fsynced); a rerun with the same
`output_dir` skips the episodes already there (`resume=true`). Each episode also leaves an mp4
under `<output_dir>/videos/<checkpoint>/<task>/`, named `success_...` or `failure_...`. At the end
(and from whatever is in episodes.jsonl) the report is written: `results.json`, `results.md` (beside
the published SIMPLER numbers) and `success.png`.
"""
from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig

from selfflow_robot.evaluation.workers import CHECKPOINT, EXPERT, POLICY_KINDS, EpisodeJob, WorkerSettings
from selfflow_robot.errors import ConfigError, UserError

EPISODES_FILE = "episodes.jsonl"


@dataclass
class EvalConfig:
    """`selfflow-robot eval` settings.

    Args:
        ckpt: checkpoint dir(s): one path, a list `[a,b]`, or comma-separated; a run dir means its newest step.
        policy: `checkpoint` (a trained policy) or `expert` (the scripted expert; `ckpt` is ignored).
        suite: a suite of `selfflow_robot.envs.tasks.SUITES` (e.g. drawer_visual_matching: 6 tasks x 36 episodes,
            drawer_variant_agg: 6 tasks x 45 episodes = 5 scene variants x 9 robot poses).
        tasks: only these tasks of the suite (default: all).
        episodes: only these grid indices of every task (default: the whole grid).
        variants: variant-aggregation suites only: run these scene variants (`grid.VARIANT_NAMES`); default:
            every variant whose asset files are present (the others are left out with a printed notice).
        max_episodes: at most this many episodes per task (the first ones of the grid, after `episodes`).
        output_dir: where episodes.jsonl, videos and the report go.
        workers: parallel worker processes (0 = all cores; 1 = run in this process).
        resume: skip episodes already recorded in `<output_dir>/episodes.jsonl`; false moves an old file aside.
        video: write one mp4 per episode.
        video_fps: frames per second of the videos (SimplerEnv: 5).
        overlay: green-screen the real image (visual matching); false renders the plain sim.
        asset_root: ManiSkill2_real2sim copy (default: SELFFLOW_ROBOT_ASSETS or the fetch cache).
        render_backend: SAPIEN render device: `cpu` (lavapipe) or `cuda`.
        torch_threads: torch threads per worker (policy inference); keeps workers from oversubscribing cores.
        policy_options: `SelfFlowPolicy` options (steps, execute_horizon, ensemble, cfg_scale, seed, device, ...);
            null values mean the policy's own default, e.g. `policy_options.steps=5`.
        simulator: name recorded in results.json.
        simpler_results: instead of running episodes, report a real-SimplerEnv results folder
            (scripts/simpler/*.sh or SimplerEnv's own main_inference.py).
    """

    ckpt: Any = None
    policy: str = CHECKPOINT
    suite: str = "drawer_visual_matching"
    tasks: list[str] | None = None
    episodes: list[int] | None = None
    variants: list[str] | None = None
    max_episodes: int | None = None
    output_dir: str = "runs/eval"
    workers: int = 0
    resume: bool = True
    video: bool = True
    video_fps: int = 5
    overlay: bool = True
    asset_root: str | None = None
    render_backend: str = "cpu"
    torch_threads: int = 1
    policy_options: dict[str, Any] = field(default_factory=dict)
    simulator: str = "maniskill3_port"
    simpler_results: str | None = None

    def __post_init__(self) -> None:
        from selfflow_robot.config import check_choice

        check_choice("policy", self.policy, POLICY_KINDS)
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0 (0 = all cores), got {self.workers}")
        if self.max_episodes is not None and self.max_episodes < 1:
            raise ConfigError(f"max_episodes must be >= 1 or null, got {self.max_episodes}")
        if self.video_fps < 1:
            raise ConfigError(f"video_fps must be >= 1, got {self.video_fps}")
        if self.variants is not None:
            from selfflow_robot.envs.grid import scene_variant

            for v in self.variants:
                scene_variant(str(v))  # ConfigError for an unknown name or a left-out background


def checkpoint_list(ckpt: Any) -> list[str]:
    """`ckpt` as a list of paths: accepts None, one path, a list, or a comma-separated string."""
    if ckpt is None:
        return []
    if isinstance(ckpt, (ListConfig, list, tuple)):
        items = [str(c) for c in ckpt]
    else:
        items = str(ckpt).split(",")
    return [c.strip() for c in items if c and c.strip()]


def checkpoint_name(path: str) -> str:
    """A folder-safe display name: `RUN` for a run dir, `RUN_step-N` for `RUN/checkpoints/step-N`."""
    p = Path(path.rstrip("/"))
    name = f"{p.parent.parent.name}_{p.name}" if p.name.startswith("step-") and p.parent.name == "checkpoints" else p.name
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name) or "checkpoint"


def suite_tasks(cfg: EvalConfig) -> list[str]:
    """The tasks to run: the suite's, optionally restricted to `cfg.tasks` (checked against the suite)."""
    from selfflow_robot.config import check_choice
    from selfflow_robot.envs.tasks import SUITES

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
    from selfflow_robot.envs.tasks import TASKS, VARIANT_FAMILY

    if TASKS[suite_tasks(cfg)[0]].family != VARIANT_FAMILY:
        if cfg.variants is not None:
            raise ConfigError(f"variants= applies to variant-aggregation suites (drawer_variant_agg), not to "
                              f"suite {cfg.suite}; drop variants=")
        return [], {}
    from selfflow_robot.envs.assets import resolve_asset_root
    from selfflow_robot.envs.drawer_variant_scene import check_variant_assets, missing_variant_files
    from selfflow_robot.envs.grid import MISSING_VARIANTS, VARIANT_NAMES, scene_variant

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
    from selfflow_robot.envs.grid import episode_config
    from selfflow_robot.envs.tasks import TASKS, VARIANT_FAMILY

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
    """All episodes of the sweep (checkpoint-major, then task, then grid index) and the checkpoint name -> path map."""
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
        agents = [(checkpoint_name(p), str(Path(p).resolve())) for p in paths]
        names = [a[0] for a in agents]
        if len(set(names)) != len(names):
            raise ConfigError(f"checkpoints {paths} give duplicate result names {names}; evaluate them into "
                              "separate output_dir folders")
    variants = variant_selection(cfg)[0]
    episodes = {task: task_episodes(cfg, task, variants) for task in tasks}
    jobs = [EpisodeJob(name, path, cfg.policy, task, e) for name, path in agents for task in tasks for e in episodes[task]]
    return jobs, dict(agents)


def policy_options(cfg: EvalConfig) -> dict[str, Any]:
    """The `SelfFlowPolicy` options that were set (null = keep the policy's default)."""
    return {k: v for k, v in dict(cfg.policy_options).items() if v is not None}


def read_records(path: Path) -> list[dict]:
    """Records of an episodes.jsonl; a torn last line (crash mid-write) is ignored."""
    if not path.is_file():
        return []
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def append_record(f: Any, record: dict) -> None:
    """One JSON line, flushed and fsynced so a finished episode survives a crash."""
    f.write(json.dumps(record) + "\n")
    f.flush()
    os.fsync(f.fileno())


def run_sweep(cfg: EvalConfig) -> dict[str, Any]:
    """Run (or resume) the sweep and write the report; returns the report paths and run counts."""
    from tqdm import tqdm

    from selfflow_robot.evaluation.report import write_report
    from selfflow_robot.evaluation.workers import run_jobs
    from selfflow_robot.envs.tasks import suite_protocol

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs, ckpts = plan_jobs(cfg)
    variants, left_out = variant_selection(cfg)
    if variants:
        print(f"variant aggregation: variants {variants}; left out: "
              + "; ".join(f"{k} ({v})" for k, v in left_out.items()))
    log = out / EPISODES_FILE
    if log.exists() and not cfg.resume:
        aside = log.with_name(f"episodes.{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
        os.replace(log, aside)   # never delete results: keep the old run beside the new one
        print(f"resume=false: previous episodes moved to {aside}")
    done = {(r["checkpoint"], r["task"], int(r["episode"])) for r in read_records(log)}
    todo = [j for j in jobs if j.key not in done]
    workers = cfg.workers or os.cpu_count() or 1
    settings = WorkerSettings(video_dir=str(out / "videos") if cfg.video else None, video_fps=cfg.video_fps,
                              asset_root=cfg.asset_root, overlay=cfg.overlay, render_backend=cfg.render_backend,
                              torch_threads=cfg.torch_threads, policy_options=policy_options(cfg))
    print(f"eval {cfg.suite}: {len(jobs)} episodes ({len(jobs) - len(todo)} already done, {len(todo)} to run) "
          f"on {min(workers, max(len(todo), 1))} worker(s) -> {out}")
    t0 = time.time()
    n_run = 0
    with open(log, "a") as f, tqdm(total=len(todo), desc="episodes", unit="ep", dynamic_ncols=True) as bar:
        wanted = {j.key for j in jobs}
        ok = sum(1 for r in read_records(log) if (r["checkpoint"], r["task"], int(r["episode"])) in wanted and r["success"])
        for rec in run_jobs(todo, settings, workers):
            append_record(f, rec)
            n_run += 1
            ok += int(rec["success"])
            bar.update(1)
            bar.set_postfix(success=f"{ok}/{len(jobs) - len(todo) + n_run}")
    wanted = {j.key for j in jobs}
    records = [r for r in read_records(log) if (r["checkpoint"], r["task"], int(r["episode"])) in wanted]
    extra = {"simulator": cfg.simulator, "policy": cfg.policy, "workers": workers, "episodes_run_now": n_run,
             "seconds_now": round(time.time() - t0, 1), "policy_options": policy_options(cfg), "overlay": cfg.overlay}
    if variants:
        extra.update(overlay=False, variants=variants, variants_left_out=left_out)
    paths = write_report(records, out, suite=cfg.suite, protocol=suite_protocol(cfg.suite), checkpoints=ckpts,
                         extra=extra)
    return {"paths": paths, "ran": n_run, "skipped": len(jobs) - len(todo), "records": records}


def report_simpler(cfg: EvalConfig) -> dict[str, Any]:
    """Report a real-SimplerEnv results folder (mp4 names) with the same tables and plot."""
    from selfflow_robot.evaluation.report import records_from_simpler_videos, write_report

    src = Path(cfg.simpler_results)  # type: ignore[arg-type]
    records = records_from_simpler_videos(src)
    if not records:
        raise UserError(f"no SimplerEnv result videos (success_*.mp4 / failure_*.mp4) under {src}; "
                        "point simpler_results= at the LOGGING_DIR of a scripts/simpler sweep")
    paths = write_report(records, cfg.output_dir, suite="simpler_env", extra={"simulator": "simpler_env",
                                                                               "source": str(src)})
    return {"paths": paths, "ran": 0, "skipped": len(records), "records": records}


def main(cfg: DictConfig) -> int:
    """Entry point of `selfflow-robot eval` (configs/eval.yaml)."""
    from selfflow_robot.config import structured

    conf = structured(EvalConfig, cfg)
    result = report_simpler(conf) if conf.simpler_results else run_sweep(conf)
    table = Path(result["paths"]["table"]).read_text()
    print(table)
    print("\n".join(f"{k}: {v}" for k, v in result["paths"].items()))
    return 0


def summarize(records: Iterable[dict]) -> dict[str, tuple[int, int]]:
    """(successes, episodes) per task of some records (for scripts and tests)."""
    out: dict[str, list[int]] = {}
    for r in records:
        c = out.setdefault(r["task"], [0, 0])
        c[0] += int(bool(r["success"]))
        c[1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def config_from_overrides(overrides: list[str]) -> EvalConfig:
    """Compose configs/eval.yaml with overrides and validate it (used by scripts/eval_simpler.py and tests)."""
    from selfflow_robot.config import load_config, structured

    return structured(EvalConfig, load_config("eval", overrides))


__all__ = ["EvalConfig", "run_sweep", "report_simpler", "plan_jobs", "main", "read_records", "summarize",
           "checkpoint_list", "checkpoint_name", "config_from_overrides", "variant_selection"]

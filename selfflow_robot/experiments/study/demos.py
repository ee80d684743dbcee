"""The study's shared demos: collected once (or an existing demos dir, checked), linked into every arm."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from selfflow_robot.envs.collect import CollectConfig
from selfflow_robot.errors import DataError, UserError
from selfflow_robot.experiments.demo.config import COLLECT_SUMMARY, DemoConfig
from selfflow_robot.experiments.demo.run import collect_phase
from selfflow_robot.experiments.study.config import DEMOS_DIR, demo_config


def prepare_demos(shared: Sequence[str], out: Path, demos: Path | None) -> Path:
    """The shared demos dir: `demos` if given (must hold collect.json), else `<out>/demos` (collected once)."""
    if demos is not None:
        demos = Path(demos).resolve()
        if not (demos / COLLECT_SUMMARY).is_file():
            raise DataError(f"--demos {demos}: no {COLLECT_SUMMARY} there, so it is not a finished demos dir; "
                            f"point --demos at the `demos/` folder of a `selfflow-robot demo` run, or leave "
                            f"--demos out to collect the demos into {out / DEMOS_DIR}")
        check_demos(demos, demo_config([*shared, f"output_dir={out}"])[1])
        return demos
    _, cfg = demo_config([*shared, f"output_dir={out}"])
    print(f"=== demos -> {out / DEMOS_DIR}", flush=True)
    collect_phase(cfg, out)
    return (out / DEMOS_DIR).resolve()


def check_demos(demos: Path, cfg: DemoConfig) -> None:
    """Refuse a demos dir whose tasks or episode count differ from the study's (its records would be wrong)."""
    summary = json.loads((demos / COLLECT_SUMMARY).read_text())
    tasks = CollectConfig(task=list(cfg.tasks or [cfg.suite]), episodes=cfg.demos_per_task).task_list()
    want = len(tasks) * cfg.demos_per_task
    if list(summary.get("tasks", [])) != tasks or int(summary.get("episodes", -1)) != want:
        raise DataError(f"--demos {demos}: it holds {summary.get('episodes')} demos of {summary.get('tasks')}, but "
                        f"the study asks for {cfg.demos_per_task} per task of {tasks} ({want}); pass the "
                        f"--demos-per-task and --set tasks=[...]/suite= it was collected with, or another --demos")
    noise = [float(summary.get("action_noise_m", 0.0)), float(summary.get("action_noise_rad", 0.0))]
    if noise != [float(cfg.demo_noise_m), float(cfg.demo_noise_rad)]:
        raise DataError(f"--demos {demos}: collected with action noise {noise[0]:g} m / {noise[1]:g} rad, but the "
                        f"study asks for {cfg.demo_noise_m:g} m / {cfg.demo_noise_rad:g} rad; pass "
                        f"--set demo_noise_m={noise[0]:g} --set demo_noise_rad={noise[1]:g}, or another --demos")


def link_demos(arm_dir: Path, demos: Path) -> None:
    """Make `<arm>/demos` a symlink to the shared demos (an existing link must already point there)."""
    arm_dir.mkdir(parents=True, exist_ok=True)
    link = arm_dir / DEMOS_DIR
    if link.is_symlink():
        if link.resolve() != demos.resolve():
            raise UserError(f"{link} links to {link.resolve()}, not to this study's demos {demos}: the arms would "
                            f"train on different data; use the study's --out/--demos of that run, or remove the link")
        return
    if link.exists():
        raise UserError(f"{link} is a real folder, not a link to the shared demos {demos}: the arms would not share "
                        f"their data; move it away or choose another --out")
    link.symlink_to(demos, target_is_directory=True)


__all__ = ["check_demos", "link_demos", "prepare_demos"]

"""`selfflow-robot demo`: the main job end to end on one CPU machine.

    selfflow-robot demo                                   # defaults: drawer suite, tiny model, under 2 hours
    selfflow-robot demo output_dir=runs/demo_vanilla objective=vanilla
    selfflow-robot demo demos_per_task=1 tasks=[close_top_drawer] steps=20 eval_episodes_per_task=1   # minutes

Phases, each the same library call its CLI command makes and each resumable (rerun the same
command after an interruption and finished work is reused):

1. `collect`: scripted-expert demos in the ManiSkill3 drawer suite, as RT-1 RLDS (`<out>/demos`);
2. `train`: fine-tune the `tiny` Self-Flow DiT as world model + policy (`<out>/run`, resumes exactly);
3. `eval`: the policy in the suite, an mp4 per episode (`<out>/eval`, finished episodes are kept);
4. `imagine`: the world model rolled out beside a real held-out demo (`<out>/imagine`);
5. `report`: `<out>/report/report.md` with the results tables, training curves, success plot, videos.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from selfflow_robot.config import check_choice, load_config, structured
from selfflow_robot.errors import ConfigError

PHASES = ("collect", "train", "eval", "imagine", "report")


@dataclass
class DemoConfig:
    """`selfflow-robot demo` settings (`configs/demo.yaml`).

    Args:
        output_dir: the report directory; phases write `demos/`, `run/`, `eval/`, `imagine/`, `report/` in it.
        suite: the SIMPLER suite of the ManiSkill3 port to collect demos in and score.
        tasks: a subset of the suite's tasks (default: all).
        demos_per_task: expert episodes per task, grid episodes 0.. (36 = the whole visual-matching grid).
        demo_max_steps: cut demos short (CI); default: the task's episode length.
        demo_noise_m, demo_noise_rad: std of the Gaussian noise on each executed expert translation (m) and
            rotation (rad) while collecting (DART-style: the demos also show recoveries; 0 = none).
        workers: processes for collection and evaluation (0 = all cores).
        objective: `selfflow` or `vanilla` (plain flow matching, the baseline); the config group's name.
        steps, batch_size, lr, seed: training length, windows per step, peak learning rate, seed (data, init, noise).
        train_overrides: extra `selfflow-robot train` overrides (model size, window, modes, ...).
        eval_episodes_per_task: episodes per task scored in the suite (None: the whole grid).
        policy_options: `SelfFlowPolicy` options for the evaluation (see `configs/eval.yaml`).
        imagine_length: frames the world model imagines after its context.
        assets: ManiSkill2_real2sim copy (default: $SELFFLOW_ROBOT_ASSETS or the `assets fetch` cache).
        phases: the phases to run, in order (a later phase needs the earlier ones' outputs).
    """

    output_dir: str = "runs/demo"
    suite: str = "drawer_visual_matching"
    tasks: list[str] | None = None
    demos_per_task: int = 18
    demo_max_steps: int | None = None
    demo_noise_m: float = 0.015
    demo_noise_rad: float = 0.03
    workers: int = 0
    objective: Any = "selfflow"
    steps: int = 3000
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0
    train_overrides: list[str] = field(default_factory=lambda: ["model=tiny"])
    eval_episodes_per_task: int | None = 9
    policy_options: dict[str, Any] = field(default_factory=dict)
    imagine_length: int = 12
    assets: str | None = None
    phases: list[str] = field(default_factory=lambda: list(PHASES))

    def __post_init__(self) -> None:
        if not isinstance(self.objective, str):  # the `objective` config group: train with its name
            self.objective = str(self.objective["name"])
        check_choice("objective", self.objective, ["selfflow", "vanilla"])
        for p in self.phases:
            check_choice("phase", p, list(PHASES))
        for name in ("demos_per_task", "steps", "batch_size", "imagine_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")


def _paths(out: Path) -> dict[str, Path]:
    return {p: out / d for p, d in (("collect", "demos"), ("train", "run"), ("eval", "eval"),
                                    ("imagine", "imagine"), ("report", "report"))}


def collect_phase(cfg: DemoConfig, out: Path) -> dict[str, Any]:
    """Expert demos for every task of the suite into one RT-1 RLDS dataset (reused when complete)."""
    from selfflow_robot.envs.collect import CollectConfig, collect
    from selfflow_robot.evaluation.report import atomic_write_text

    dest = _paths(out)["collect"]
    summary_file = dest / "collect.json"
    if summary_file.is_file():
        print(f"reusing {dest} (delete it to collect again)")
        return json.loads(summary_file.read_text())
    c = CollectConfig(task=list(cfg.tasks or [cfg.suite]), episodes=cfg.demos_per_task, output_dir=str(dest),
                      assets=cfg.assets, max_steps=cfg.demo_max_steps, workers=cfg.workers, overwrite=True,
                      action_noise_m=cfg.demo_noise_m, action_noise_rad=cfg.demo_noise_rad)
    path, written, ok = collect(c)
    summary = {"dataset": str(path), "tasks": c.task_list(), "episodes": written, "expert_successes": ok,
               "action_noise_m": c.action_noise_m, "action_noise_rad": c.action_noise_rad}
    atomic_write_text(summary_file, json.dumps(summary, indent=2))  # written last: marks the phase complete
    return summary


def train_overrides(cfg: DemoConfig, out: Path) -> list[str]:
    """The `selfflow-robot train` overrides the demo trains with (also used by the Self-Flow/vanilla study)."""
    run = _paths(out)["train"]
    return ["train=cpu", "data=rt1", "data.num_workers=0", "data.val_fraction=0.1", *cfg.train_overrides,
            f"objective={cfg.objective}", f"data.path={_paths(out)['collect']}", f"data.seed={cfg.seed}",
            f"train.steps={cfg.steps}", f"train.batch_size={cfg.batch_size}", f"train.optim.lr={cfg.lr}",
            f"train.seed={cfg.seed}", f"output_dir={run}",
            f"resume={str((run / 'checkpoints').exists()).lower()}"]


def train_phase(cfg: DemoConfig, out: Path) -> dict[str, Any]:
    """Fine-tune (or resume, or find finished) the run; returns its last validation metrics."""
    from selfflow_robot.train.logger import read_metrics
    from selfflow_robot.train.trainer import train

    ckpt = train(load_config("train", train_overrides(cfg, out)))
    rows = [r for r in read_metrics(_paths(out)["train"]) if any(k.startswith("val/") for k in r)]
    return {"checkpoint": str(ckpt), "validation": rows[-1] if rows else {}}


def eval_phase(cfg: DemoConfig, out: Path) -> dict[str, Any]:
    """Score the run's newest checkpoint in the suite; returns `results.json`'s content.

    The step dir itself is evaluated, so its episodes are recorded as `run_step-N`: after more training
    a rerun scores the new checkpoint instead of reusing the old one's episodes.
    """
    from selfflow_robot.checkpoint import latest_checkpoint
    from selfflow_robot.evaluation.evaluate import EvalConfig, run_sweep

    ckpt = latest_checkpoint(_paths(out)["train"])
    if ckpt is None:
        raise ConfigError(f"no checkpoint in {_paths(out)['train']}: run the train phase first "
                          "(phases=[train,eval,imagine,report])")
    e = EvalConfig(ckpt=str(ckpt), suite=cfg.suite, tasks=cfg.tasks,
                   max_episodes=cfg.eval_episodes_per_task, output_dir=str(_paths(out)["eval"]),
                   workers=cfg.workers, asset_root=cfg.assets, policy_options=dict(cfg.policy_options))
    run_sweep(e)
    return json.loads((_paths(out)["eval"] / "results.json").read_text())


def imagine_phase(cfg: DemoConfig, out: Path) -> dict[str, Any]:
    """Imagine the first held-out demo from its first frames and actions; returns its metrics."""
    from selfflow_robot.world_model.cli import main as imagine_main

    dest = _paths(out)["imagine"]
    imagine_main(load_config("imagine", [f"ckpt={_paths(out)['train']}", f"data.path={_paths(out)['collect']}",
                                         f"output_dir={dest}", f"length={cfg.imagine_length}",
                                         f"seed={cfg.seed}"]))
    return json.loads(next(iter(sorted(dest.glob("*_metrics.json")))).read_text())


def main(cfg: DictConfig) -> int:
    """CLI entry point (`configs/demo.yaml`)."""
    from selfflow_robot.experiments.demo.report import write_report

    c = structured(DemoConfig, cfg)
    out = Path(c.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo_config.json").write_text(json.dumps(asdict(c), indent=2))
    runners = {"collect": collect_phase, "train": train_phase, "eval": eval_phase, "imagine": imagine_phase}
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    for i, phase in enumerate(c.phases, 1):
        print(f"\n=== {i}/{len(c.phases)} {phase} -> {_paths(out)[phase]}", flush=True)
        t0 = time.perf_counter()
        if phase == "report":
            print(f"report: {write_report(c, out, timings)}")
        else:
            runners[phase](c, out)
        timings[phase] = time.perf_counter() - t0
        print(f"--- {phase} done in {_fmt(timings[phase])}", flush=True)
    where = [f"Report: {_paths(out)['report'] / 'report.md'}"] if "report" in c.phases else []
    if "train" in c.phases:
        where.append(f"TensorBoard: tensorboard --logdir {_paths(out)['train']}")
    print(f"\ndone in {_fmt(time.perf_counter() - t_start)}." + (" " + "; ".join(where) if where else ""))
    return 0


def _fmt(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


__all__ = ["DemoConfig", "PHASES", "collect_phase", "train_phase", "eval_phase", "imagine_phase", "main",
           "train_overrides"]

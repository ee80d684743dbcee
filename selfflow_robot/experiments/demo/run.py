"""`selfflow-robot demo`: the main job end to end on one CPU machine.

    selfflow-robot demo                                   # defaults: drawer suite, tiny model, under 2 hours
    selfflow-robot demo output_dir=runs/demo_vanilla objective=vanilla
    selfflow-robot demo demos_per_task=1 tasks=[close_top_drawer] steps=20 eval_episodes_per_task=1   # minutes

Phases, each the same library call its CLI command makes and each resumable (rerun the same
command after an interruption and finished work is reused):

1. `collect`: scripted-expert demos in the ManiSkill3 drawer suite, as RT-1 RLDS (`<out>/demos`);
2. `codec`: fit the small frame autoencoder to the demos' frames (`<out>/demos/codec`, minutes);
3. `train`: fine-tune the `tiny` Self-Flow DiT on its latents as world model + policy (`<out>/run`, resumes
   exactly; every frame is encoded once into the run's latent cache first);
4. `eval`: the policy in the suite, an mp4 per episode (`<out>/eval`, finished episodes are kept);
5. `imagine`: the world model rolled out beside a real held-out demo (`<out>/imagine`);
6. `report`: `<out>/report/report.md` with the results tables, training curves, success plot, videos.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from selfflow_robot.checkpoint import latest_checkpoint
from selfflow_robot.config import load_config, structured
from selfflow_robot.envs.collect import CollectConfig, collect
from selfflow_robot.errors import ConfigError
from selfflow_robot.evaluation.config import EvalConfig
from selfflow_robot.evaluation.evaluate import run_sweep
from selfflow_robot.evaluation.report import atomic_write_text
from selfflow_robot.experiments.demo.config import COLLECT_SUMMARY, CONFIG_RECORD, DemoConfig, phase_dir
from selfflow_robot.experiments.demo.curve import curve_phase
from selfflow_robot.experiments.demo.report import write_demo_report
from selfflow_robot.model.autoencoder import CONFIG_FILE as AUTOENCODER_CONFIG
from selfflow_robot.model.autoencoder import read_report
from selfflow_robot.train.codec import CodecTrainConfig, train_codec
from selfflow_robot.train.config import TrainRunConfig
from selfflow_robot.train.logger import read_metrics
from selfflow_robot.train.trainer import train
from selfflow_robot.world_model.cli import ImagineConfig
from selfflow_robot.world_model.cli import main as imagine_main


def collect_phase(cfg: DemoConfig, out: Path) -> dict[str, Any]:
    """Expert demos for every task of the suite into one RT-1 RLDS dataset (reused when complete)."""
    dest = phase_dir(out, "collect")
    summary_file = dest / COLLECT_SUMMARY
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


def codec_config(cfg: DemoConfig, out: Path) -> CodecTrainConfig:
    """The `codec train` settings of the demo's autoencoder: its overrides, at the model's frame size."""
    h, w = load_config("train", ["train=cpu", *cfg.train_overrides], schema=TrainRunConfig).model.image_size
    return structured(CodecTrainConfig, load_config(
        "codec_train", [f"data_path={phase_dir(out, 'collect')}", f"output_dir={phase_dir(out, 'codec')}",
                        f"codec.image_size=[{h},{w}]", *cfg.codec_overrides], schema=CodecTrainConfig))


def codec_phase(cfg: DemoConfig, out: Path) -> dict[str, Any]:
    """Fit the frame autoencoder to the demos (reused when there); returns its report (reconstruction PSNR)."""
    dest = phase_dir(out, "codec")
    if not cfg.codec:
        print("codec=false: the model reads pixel patches")
        return {}
    if (dest / AUTOENCODER_CONFIG).is_file():
        print(f"reusing {dest} (delete it to fit the autoencoder again)")
        return read_report(dest)
    return train_codec(codec_config(cfg, out))


def train_overrides(cfg: DemoConfig, out: Path) -> list[str]:
    """The `selfflow-robot train` overrides the demo trains with (also used by the Self-Flow/vanilla study)."""
    run = phase_dir(out, "train")
    codec = []
    if cfg.codec:  # before train_overrides, which may still change them
        ae = codec_config(cfg, out).codec
        codec = ["model.codec=ae", f"model.vae={phase_dir(out, 'codec')}",
                 f"model.latent_channels={ae.latent_channels}", f"model.vae_downsample={ae.downsample}",
                 f"model.patch_size={cfg.codec_patch_size}"]
    return ["train=cpu", "data=rt1", "data.num_workers=0", "data.val_fraction=0.1", *codec, *cfg.train_overrides,
            f"objective={cfg.objective}", f"data.path={phase_dir(out, 'collect')}", f"data.seed={cfg.seed}",
            f"train.steps={cfg.steps}", f"train.batch_size={cfg.batch_size}", f"train.optim.lr={cfg.lr}",
            f"train.seed={cfg.seed}", f"output_dir={run}",
            f"resume={str((run / 'checkpoints').exists()).lower()}"]


def train_phase(cfg: DemoConfig, out: Path) -> dict[str, Any]:
    """Fine-tune (or resume, or find finished) the run; returns its last validation metrics."""
    if cfg.codec and not (phase_dir(out, "codec") / AUTOENCODER_CONFIG).is_file():
        raise ConfigError(f"no autoencoder in {phase_dir(out, 'codec')}: run the codec phase first "
                          "(phases=[codec,train,...]), or train on pixel patches with codec=false")
    ckpt = train(load_config("train", train_overrides(cfg, out), schema=TrainRunConfig))
    rows = [r for r in read_metrics(phase_dir(out, "train")) if any(k.startswith("val/") for k in r)]
    return {"checkpoint": str(ckpt), "validation": rows[-1] if rows else {}}


def eval_phase(cfg: DemoConfig, out: Path) -> dict[str, Any]:
    """Score the run's newest checkpoint in the suite; returns `results.json`'s content.

    The step dir itself is evaluated, so its episodes are recorded as `run_step-N`: after more training
    a rerun scores the new checkpoint instead of reusing the old one's episodes.
    """
    run, dest = phase_dir(out, "train"), phase_dir(out, "eval")
    ckpt = latest_checkpoint(run)
    if ckpt is None:
        raise ConfigError(f"no checkpoint in {run}: run the train phase first (phases=[train,eval,imagine,report])")
    e = EvalConfig(ckpt=str(ckpt), suite=cfg.suite, tasks=cfg.tasks,
                   max_episodes=cfg.eval_episodes_per_task, output_dir=str(dest),
                   workers=cfg.workers, asset_root=cfg.assets, policy_options=dict(cfg.policy_options))
    run_sweep(e)
    return json.loads((dest / "results.json").read_text())


def imagine_phase(cfg: DemoConfig, out: Path) -> dict[str, Any]:
    """Imagine every held-out demo from its first frames and actions, and again with the actions of the next demo
    of another task (the action-dependence control); returns the metrics per frame ahead, averaged over the demos."""
    dest = phase_dir(out, "imagine")
    imagine_main(load_config("imagine", [f"ckpt={phase_dir(out, 'train')}", f"data.path={phase_dir(out, 'collect')}",
                                         f"output_dir={dest}", f"length={cfg.imagine_length}", "data.num_episodes=0",
                                         f"steps={cfg.imagine_steps}",
                                         "action_control=true", f"seed={cfg.seed}"], schema=ImagineConfig))
    summary = dest / "summary_metrics.json"
    return json.loads((summary if summary.is_file() else next(iter(sorted(dest.glob("*_metrics.json"))))).read_text())


PHASE_RUNNERS: dict[str, Callable[[DemoConfig, Path], dict[str, Any]]] = {
    "collect": collect_phase, "codec": codec_phase, "train": train_phase, "eval": eval_phase,
    "imagine": imagine_phase, "curve": curve_phase}


def main(cfg: DictConfig) -> int:
    """CLI entry point (`configs/demo.yaml`): run the configured phases in order."""
    c = structured(DemoConfig, cfg)
    out = Path(c.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_RECORD).write_text(json.dumps(asdict(c), indent=2))
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    for i, phase in enumerate(c.phases, 1):
        print(f"\n=== {i}/{len(c.phases)} {phase} -> {phase_dir(out, phase)}", flush=True)
        t0 = time.perf_counter()
        if phase == "report":
            print(f"report: {write_demo_report(c, out, timings)}")
        else:
            PHASE_RUNNERS[phase](c, out)
        timings[phase] = time.perf_counter() - t0
        print(f"--- {phase} done in {_fmt(timings[phase])}", flush=True)
    where = [f"Report: {phase_dir(out, 'report') / 'report.md'}"] if "report" in c.phases else []
    if "train" in c.phases:
        where.append(f"TensorBoard: tensorboard --logdir {phase_dir(out, 'train')}")
    print(f"\ndone in {_fmt(time.perf_counter() - t_start)}." + (" " + "; ".join(where) if where else ""))
    return 0


def _fmt(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


__all__ = ["PHASE_RUNNERS", "codec_config", "codec_phase", "collect_phase", "eval_phase", "imagine_phase", "main",
           "train_overrides", "train_phase"]

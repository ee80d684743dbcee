"""The `selfflow-robot demo` report: `<out>/report/report.md` with its plots and videos copied beside it.

Built from `DemoResults` (the phases' own outputs read back from disk), so `phases=[report]` rebuilds it.
"""
from __future__ import annotations

import platform
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from selfflow_robot.evaluation.report import atomic_write_text
from selfflow_robot.experiments.demo.config import DemoConfig, phase_dir
from selfflow_robot.experiments.demo.results import DemoResults, read_demo_results


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{100 * rate:.1f}%"


def _copy(src: Path, dest_dir: Path, name: str | None = None) -> str:
    """Copy `src` into the report dir; returns the relative link."""
    dest = dest_dir / (name or src.name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return str(dest.relative_to(dest_dir))


def setup_section(cfg: DemoConfig, collect: Mapping[str, Any] | None, run_config: Mapping[str, Any] | None,
                  trained_to: int = 0, seen: Mapping[str, float] | None = None) -> list[str]:
    """The suite, the demos, the model, the objective and the training schedule."""
    lines = ["## Setup", "", "| | |", "|---|---|", f"| suite | `{cfg.suite}` (ManiSkill3 port, visual matching) |"]
    if collect:
        lines.append(f"| demos | {collect['episodes']} scripted-expert episodes, {len(collect['tasks'])} tasks "
                     f"(expert success {collect['expert_successes']}/{collect['episodes']}), "
                     f"grid episodes 0-{cfg.demos_per_task - 1} of each task"
                     + (f", executed actions perturbed by Gaussian noise ({collect['action_noise_m']:g} m, "
                        f"{collect['action_noise_rad']:g} rad)" if collect.get("action_noise_m") or
                        collect.get("action_noise_rad") else "") + " |")
    if run_config:
        m, t = run_config.get("model", {}), run_config.get("train", {})
        lines += [
            f"| model | `{m.get('depth')}`-block DiT, width {m.get('hidden_size')}, {m.get('image_size')} pixels in "
            f"{m.get('patch_size')}x{m.get('patch_size')} patches, {m.get('context_frames')} context frames, "
            f"{m.get('horizon')}-step chunks |",
            f"| objective | `{run_config.get('objective', {}).get('name', cfg.objective)}` |",
            f"| training | step {trained_to} of a {t.get('steps')}-step schedule, {t.get('batch_size')} windows per "
            f"step, lr {t.get('optim', {}).get('lr')}, seed {t.get('seed')}, modes {t.get('modes')} |",
        ]
    if seen:
        draws = run_config["train"].get("draws_per_window", 1)
        lines.append(f"| training seen | {seen['windows']:,} windows x {draws} noise draws = {seen['signals']:,} "
                     f"training signals; {seen['passes']:.1f} passes over the training windows |")
    return lines + [""]


def eval_section(results: Mapping[str, Any] | None, report_dir: Path, eval_dir: Path) -> list[str]:
    """Success per task with Wilson intervals, per scored checkpoint, and the success plot."""
    if not results:
        return ["## Policy in the suite", "", "not evaluated (the `eval` phase did not run)", ""]
    lines = ["## Policy in the suite", ""]
    opts = results.get("policy_options")
    if opts is not None:
        lines += ["Policy options: " + (", ".join(f"`{k}={v}`" for k, v in opts.items()) or "the policy's defaults")
                  + " (`steps` = denoising steps per chunk).", ""]
    for ck in results["checkpoints"].values():
        lines += [f"Checkpoint `{ck['path']}`; success at the last step of each episode, as SIMPLER reads it.", "",
                  "| task | success | rate | Wilson 95% |", "|---|---|---|---|"]
        for task, r in ck["tasks"].items():
            lo, hi = r["ci95"]
            lines.append(f"| {task} | {r['successes']}/{r['trials']} | {_pct(r['rate'])} | "
                         f"{_pct(lo)} - {_pct(hi)} |")
        lines += ["", f"Average over task columns: {_pct(ck['average_task_columns']['rate'])}.", ""]
    if (eval_dir / "success.png").is_file():
        lines += [f"![success per task]({_copy(eval_dir / 'success.png', report_dir)})", ""]
    if (eval_dir / "results.md").is_file():
        lines += ["Beside the published SIMPLER numbers: [results.md]"
                  f"({_copy(eval_dir / 'results.md', report_dir, 'eval_results.md')}).", ""]
    return lines


def validation_section(val: Mapping[str, float] | None) -> list[str]:
    """The last held-out validation row, each metric beside its trivial baseline."""
    if not val:
        return []
    rows = [("action MSE (normalised), sampled chunk", "val/action_mse_norm", "val/action_mse_norm_mean_baseline",
             "mean action", False),
            ("action MSE (normalised), one-step estimate", "val/action_mse_norm_1step",
             "val/action_mse_norm_mean_baseline", "mean action", False),
            ("next-frames PSNR (dB), sampled", "val/psnr", "val/psnr_copy_last", "copy last frame", True),
            ("next-frames PSNR (dB), one-step estimate", "val/psnr_1step", "val/psnr_copy_last", "copy last frame",
             True)]
    lines = [f"## Held-out demos (validation at step {int(val.get('step', 0))})", "",
             "| metric | model | baseline | beats it |", "|---|---|---|---|"]
    for label, key, base_key, base_name, higher in rows:
        if key in val and base_key in val:
            a, b = val[key], val[base_key]
            lines.append(f"| {label} | {a:.4g} | {base_name} {b:.4g} | {'yes' if (a > b) == higher else 'no'} |")
    return lines + [""]


def imagine_section(r: Mapping[str, Any] | None, report_dir: Path,
                    summary: Mapping[str, Any] | None = None) -> list[str]:
    """The imagined rollout (gif, mp4) and PSNR/SSIM per frame ahead beside copying the last frame, averaged over
    the held-out demos when `summary` is given, with the other-actions control where it was run."""
    if not r:
        return []
    lines = ["## World model: imagined rollout beside the real one", "",
             f"Held-out demo `{r['label']}` (\"{r['instruction']}\"): the world model sees the first frames and the "
             f"demo's {r['steps']} actions, and imagines the frames (left: imagined, right: real).", ""]
    setting = r.get("config") or {}
    if "steps" in setting:
        lines += [f"World model settings: `steps={setting['steps']}`" + (" (its conditional mean)"
                  if setting["steps"] == 1 else " (sampled)") + f", `decode={setting.get('decode', 'direct')}`.", ""]
    video = r.get("video", {})
    if video.get("gif") and Path(video["gif"]).is_file():
        lines += [f"![imagined rollout]({_copy(Path(video['gif']), report_dir, 'imagine.gif')})", ""]
    if video.get("mp4") and Path(video["mp4"]).is_file():
        lines += [f"[mp4]({_copy(Path(video['mp4']), report_dir, 'imagine.mp4')})", ""]
    m = (summary or r).get("metrics")
    if not m:
        return lines + [""]
    if summary:
        lines += [f"Mean over the {len(summary['episodes'])} held-out demos. \"Other actions\": the same start and "
                  "noise with the actions of the next demo of another task; a world model that follows its actions "
                  "scores lower there.",
                  ""]
    other = "psnr_other_actions" in m
    lines += ["| frames ahead | PSNR (dB) | copy-last PSNR | SSIM | copy-last SSIM |" + (" other-actions PSNR |"
                                                                                      if other else ""),
              "|---|---|---|---|---|" + ("---|" if other else "")]
    for i in range(len(m["psnr"])):
        o = f" {m['psnr_other_actions'][i]:.2f} |" if other and i < len(m["psnr_other_actions"]) else (
            " - |" if other else "")
        lines.append(f"| {i + 1} | {m['psnr'][i]:.2f} | {m['psnr_copy_last'][i]:.2f} | {m['ssim'][i]:.3f} | "
                     f"{m['ssim_copy_last'][i]:.3f} |" + o)
    lines.append(f"| mean | {np.mean(m['psnr']):.2f} | {np.mean(m['psnr_copy_last']):.2f} | "
                 f"{np.mean(m['ssim']):.3f} | {np.mean(m['ssim_copy_last']):.3f} |"
                 + (f" {np.mean(m['psnr_other_actions']):.2f} |" if other else ""))
    return lines + [""]


def videos_section(videos: Mapping[tuple[str, bool], Path], eval_dir: Path, report_dir: Path) -> list[str]:
    """Link one success and one failure per task (copied into `report/videos/`)."""
    if not videos:
        return []
    lines = ["## Episode videos", "", "| task | success | failure |", "|---|---|---|"]
    for task in sorted({t for t, _ in videos}):
        cells = []
        for ok in (True, False):
            src = videos.get((task, ok))
            cells.append(f"[{src.name}]({_copy(src, report_dir, f'videos/{task}/{src.name}')})" if src else "-")
        lines.append(f"| {task} | {cells[0]} | {cells[1]} |")
    return lines + ["", f"All episodes: `{eval_dir / 'videos'}`.", ""]


def timings_section(timings: Mapping[str, float]) -> list[str]:
    """Minutes per phase of this invocation."""
    if not timings:
        return []
    lines = ["## Time (this invocation; reused phases are near zero)", "", "| phase | time |", "|---|---|"]
    lines += [f"| {p} | {t / 60:.1f} min |" for p, t in timings.items()]
    return lines + [f"| total | {sum(timings.values()) / 60:.1f} min |", ""]


def demo_markdown(cfg: DemoConfig, results: DemoResults, report_dir: Path, timings: Mapping[str, float]) -> str:
    """`report.md`'s text; copies the files it links into `report_dir`."""
    lines = [f"# selfflow-robot demo: {cfg.objective} on `{cfg.suite}`", "",
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()} "
             f"({platform.processor() or platform.machine()}).", ""]
    lines += eval_section(results.eval_results, report_dir, results.eval_dir)
    lines += validation_section(results.validation)
    if (results.run_dir / "curves.png").is_file():
        lines += ["## Training curves", "",
                  f"![training curves]({_copy(results.run_dir / 'curves.png', report_dir)})", ""]
    lines += imagine_section(results.imagine, report_dir, results.imagine_summary)
    lines += videos_section(results.videos, results.eval_dir, report_dir)
    lines += setup_section(cfg, results.collect, results.run_config, results.trained_to, results.training_seen())
    lines += timings_section(timings)
    return "\n".join(lines)


def write_demo_report(cfg: DemoConfig, out: Path, timings: Mapping[str, float]) -> Path:
    """Write `<out>/report/report.md` (+ plots, videos) from what the phases left under `out`; returns its path."""
    report_dir = phase_dir(out, "report")
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / "report.md"
    atomic_write_text(path, demo_markdown(cfg, read_demo_results(out), report_dir, timings))
    return path


__all__ = ["demo_markdown", "eval_section", "imagine_section", "setup_section", "timings_section",
           "validation_section", "videos_section", "write_demo_report"]

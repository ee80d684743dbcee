"""The study's report, written from whatever the arms have on disk: `study.json`, `study.md` and two plots.

`write_study_report` reads the arms (`arms`), compares them (`results`), plots them (`plots`) and writes
`study.json` (strict JSON), `study.md` (verdict, arms, final validation, steps to reach, success) and
`study_curves.png` / `study_success.png`; arms that are not finished are included and marked partial.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from selfflow_robot.config import check_choice, load_config, structured
from selfflow_robot.errors import UserError
from selfflow_robot.evaluation.report import atomic_write_text
from selfflow_robot.experiments.demo.config import DemoConfig, phase_dir
from selfflow_robot.experiments.study.arms import ArmResult, load_study
from selfflow_robot.experiments.study.config import (
    DEMOS_DIR,
    arm_name,
    overrides_from_config,
    settings_of,
    study_command,
)
from selfflow_robot.experiments.study.plots import plot_study_curves, plot_study_success
from selfflow_robot.experiments.study.results import (
    GOAL_RATIO,
    HEADLINE_MSE,
    HEADLINE_PSNR,
    METRICS,
    compare_arms,
    format_number,
    format_percent,
)
from selfflow_robot.objective.config import OBJECTIVES

STUDY_JSON = "study.json"
STUDY_MD = "study.md"
CURVES_PNG = "study_curves.png"
SUCCESS_PNG = "study_success.png"


def verdict_paragraph(result: Mapping[str, Any], partial: bool, *, reference: str = "vanilla",
                      candidate: str = "selfflow") -> str:
    """One honest paragraph generated from the numbers."""
    g = result.get("goals") or {}
    if not g:
        return (f"No verdict: the study needs both `{candidate}` and `{reference}` arms; "
                f"found {sorted(result['objectives'])}.")
    hs, sa = g["half_steps"], g["success_ahead"]
    parts = []
    head = "Provisional verdict (some arms are unfinished or missing, see Arms): " if partial else "Verdict: "
    parts.append(f"goal 1 (Self-Flow reaches vanilla's final held-out action MSE in <= {GOAL_RATIO:g} of the "
                 f"steps) is **{hs['verdict']}**: {hs['why']}.")
    parts.append(f"Goal 2 (Self-Flow ends ahead on suite success) is **{sa['verdict']}**: {sa['why']}.")
    p = result["steps_to_reach"].get(HEADLINE_PSNR)
    if p:
        which = "final" if p["reference_final"] else f"latest (step {p['reference_step']}, still training)"
        parts.append(f"On world-model PSNR, {candidate} " + (
            f"reached {reference}'s {which} {p['target']:.2f} dB at step {p['step']} "
            f"(ratio {format_number(p['ratio'], '.2f')})." if p["reached"] else
            f"has not reached {reference}'s {which} {p['target']:.2f} dB by step {p['candidate_last_step']}."))
    fv_c = result["objectives"][candidate]["final_validation"]["mean"].get(HEADLINE_MSE)
    fv_r = result["objectives"][reference]["final_validation"]["mean"].get(HEADLINE_MSE)
    if fv_c and fv_r:
        done = result["objectives"][candidate]["curves_final"] and result["objectives"][reference]["curves_final"]
        parts.append(f"{'Final' if done else 'Latest (training goes on)'} held-out action MSE: {candidate} "
                     f"{fv_c['mean']:.4g} +- {fv_c['std']:.2g} "
                     f"({fv_c['n']} seed(s)) vs {reference} {fv_r['mean']:.4g} +- {fv_r['std']:.2g} "
                     f"({fv_r['n']} seed(s)).")
    return head + " ".join(parts)


def _md_table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def study_markdown(study: Mapping[str, Any]) -> str:
    """`study.md` from the `study.json` payload."""
    res = study["result"]
    objs = list(res["objectives"])
    lines = ["# Self-Flow vs vanilla flow matching: side-by-side study", ""]
    if study["partial"]:
        lines += [("> **PARTIAL RESULTS**: not every arm has finished (or started); the numbers below use what is on "
                  "disk now and will change. Rerun the command below to finish the arms."), ""]
    lines += [verdict_paragraph(res, study["partial"]), "",
              (f"Written {study['written']} from `{study['out']}`. Reproduce (runs or resumes every arm, then writes "
              "this report; run from the repository root):"), "", "```", study["command"], "```", ""]
    if study.get("settings_differ"):
        lines += ["**Warning: the arms' settings differ** (the comparison is not like for like): "
                  + "; ".join(f"`{k}`: {v}" for k, v in study["settings_differ"].items()), ""]
    lines += _arms_section(res, objs)
    lines += _validation_section(res, objs)
    lines += _steps_section(res)
    lines += _success_section(res, objs)
    lines += ["## Per-arm reports", ""]
    for obj in objs:
        for name in res["objectives"][obj]["arms"]:
            lines.append(f"- `{name}`: `{phase_dir(Path(study['out']) / name, 'report') / 'report.md'}`")
    return "\n".join(lines) + "\n"


def _arms_section(res: Mapping[str, Any], objs: Sequence[str]) -> list[str]:
    """Each arm's status, training progress and evaluation."""
    lines = ["## Arms", ""]
    rows = []
    for obj in objs:
        for name, a in res["objectives"][obj]["arms"].items():
            rows.append([f"`{name}`", a["status"], f"{a['train']} ({a['trained_steps']}/{a['total_steps'] or '?'})",
                         f"{a['eval']} ({a['episodes']} episode(s))"])
    lines += _md_table(["arm", "status", "training (steps)", "evaluation"], rows) + [""]
    if any(a["eval"] == "stale" for o in objs for a in res["objectives"][o]["arms"].values()):
        lines += [("Evaluation `stale`: it scored a checkpoint from before the end of training; those episodes count "
                  "only provisionally. Rerunning the study command moves such `eval/` dirs aside (to "
                  "`eval.stale-<time>`) and scores the final checkpoint."), ""]
    return lines


def _validation_section(res: Mapping[str, Any], objs: Sequence[str]) -> list[str]:
    """The last validation row per seed, and its mean +- std per objective."""
    lines = ["## Held-out validation at the final validation step", "",
             ("Normalised action MSE (lower is better) and next-frames PSNR (dB, higher is better) on held-out "
              "demo windows, sampled (the policy's/world model's real output) and 1-step estimate."), ""]
    head = ["objective", "seed", "step"] + [m.label for m in METRICS] + ["PSNR copy-last-frame"]
    names = [m.name for m in METRICS] + ["psnr_copy_last"]
    rows = []
    for obj in objs:
        fv = res["objectives"][obj]["final_validation"]
        for seed, r in fv["per_seed"].items():
            step = str(r["step"]) + ("" if r["train"] == "complete" else " (training)")
            rows.append([obj, seed, step] + [format_number(r.get(n)) for n in names])
        if fv["mean"]:
            which = ("finished" if res["objectives"][obj]["curves_final"] else "unfinished") + " seeds " + ",".join(
                map(str, fv["seeds"]))
            rows.append([f"**{obj}**", f"mean +- std ({which})", ""]
                        + [f"{format_number(fv['mean'][n]['mean'])} +- {format_number(fv['mean'][n]['std'], '.2g')}"
                           if n in fv["mean"] else "n/a" for n in names])
    return lines + _md_table(head, rows) + [""]


def _steps_section(res: Mapping[str, Any]) -> list[str]:
    """Per metric: vanilla's final value and the step at which Self-Flow's seed mean reaches it."""
    if not res["steps_to_reach"]:
        return []
    lines = ["## Steps for Self-Flow to reach vanilla's final quality", "",
             ("Target: vanilla's seed-mean value at its last validation (over the seeds that finished "
              "training). Reached: the first validation step at "
              "which Self-Flow's seed-mean curve is at least as good (no interpolation between validations). "
              f"Goal for the action MSE: ratio <= {GOAL_RATIO:g}."), ""]
    rows = []
    for m in METRICS:
        r = res["steps_to_reach"].get(m.name)
        if r is None:
            rows.append([m.label, "n/a", "n/a", "n/a", "no curve"])
            continue
        rows.append([m.label, f"{format_number(r['target'])} (step {r['reference_step']}"
                     + (")" if r["reference_final"] else ", still training)"),
                     str(r["step"]) if r["reached"] else f"not reached (by step {r['candidate_last_step']})",
                     str(r["total_steps"]), format_number(r["ratio"], ".2f") if r["reached"] else "not reached"])
    lines += _md_table(["metric", "vanilla final", "Self-Flow reaches it at", "total steps", "ratio"], rows)
    return lines + ["", f"![validation curves]({CURVES_PNG})", ""]


def _rate_cell(r: Mapping[str, Any] | None) -> str:
    """`50.0% [20.1%-79.9%] (4/8)`, or `n/a`."""
    if r is None:
        return "n/a"
    lo, hi = r["ci95"]
    return f"{format_percent(r['rate'])} [{format_percent(lo)}-{format_percent(hi)}] ({r['successes']}/{r['trials']})"


def _success_section(res: Mapping[str, Any], objs: Sequence[str]) -> list[str]:
    """Suite success per task and its mean over tasks, seeds pooled, per objective."""
    lines = ["## Suite success (seeds pooled, Wilson 95% intervals)", ""]
    success = {o: res["objectives"][o]["success"] for o in objs}
    tasks = sorted({t for s in success.values() if s for t in s["tasks"]})
    if not tasks:
        return lines + ["no evaluated episodes yet", ""]
    rows = []
    for t in tasks + ["mean over tasks"]:
        row = [t if t != "mean over tasks" else "**mean over tasks**"]
        for o in objs:
            s = success[o]
            cell = (s["mean_over_tasks"] if t == "mean over tasks" else s["tasks"].get(t)) if s else None
            row.append(_rate_cell(cell))
        rows.append(row)
    lines += _md_table(["task"] + list(objs), rows)
    return lines + ["", "Mean over tasks: plain mean of the task rates; its interval is Wilson on the pooled counts.",
                    "", f"![success per task]({SUCCESS_PNG})", ""]


def settings_differences(arms: Sequence[ArmResult]) -> dict[str, str]:
    """Setting -> `arm=value, ...` for every study setting whose recorded value differs between the arms."""
    configs = {a.name: settings_of(a.config) for a in arms if a.config}
    differ: dict[str, str] = {}
    for k in sorted({k for c in configs.values() for k in c}):
        vals = {n: c.get(k) for n, c in configs.items()}
        if len({json.dumps(v, sort_keys=True) for v in vals.values()}) > 1:
            differ[k] = ", ".join(f"{n}={v}" for n, v in vals.items())
    return differ


def recorded_command(out: Path, seeds: Sequence[int], objectives: Sequence[str], arms: Sequence[ArmResult]) -> str:
    """The study command rebuilt from the first arm's recorded settings and the demos its link points to."""
    first = next((a for a in arms if a.config), None)
    overrides = []
    if first is not None:
        overrides = overrides_from_config(first.config, structured(DemoConfig, load_config("demo", schema=DemoConfig)))
    demos_link = Path(arms[0].path) / DEMOS_DIR
    demos = demos_link.resolve() if demos_link.is_symlink() else None
    if demos is not None and demos == (out / DEMOS_DIR).resolve():
        demos = None
    return study_command(out, seeds, objectives, overrides, demos,
                         workers=(first.config.get("workers") if first is not None else None))


def write_study_report(out: Path, seeds: Sequence[int], objectives: Sequence[str], *, report_dir: Path | None = None,
                     command: str | None = None) -> dict[str, Path]:
    """Read the arms under `out` and write study.json, study.md and the two plots into `report_dir` (default `out`).

    Only reads `out`: pointing `report_dir` elsewhere compares a study that is still running without touching it.
    `command` (default: rebuilt from the arms' recorded settings) is the reproduce command the report prints.
    """
    for o in objectives:
        check_choice("objective", o, list(OBJECTIVES))
    out = Path(out).resolve()
    report_dir = Path(report_dir).resolve() if report_dir else out
    arms = load_study(out, seeds, objectives)
    present = [a for obj_arms in arms.values() for a in obj_arms if a.exists]
    if not present:
        raise UserError(f"no arms under {out} (looked for {[arm_name(o, s) for o in objectives for s in seeds]}); "
                        "run the study first, or check --out, --seeds and --objectives")
    result = compare_arms(arms)
    partial = any(a.status != "complete" for obj_arms in arms.values() for a in obj_arms)
    study = {"out": str(out), "written": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
             "command": command if command is not None else recorded_command(out, seeds, objectives, present),
             "seeds": list(seeds), "objectives": list(objectives), "partial": partial,
             "settings_differ": settings_differences(present), "result": result}
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": report_dir / STUDY_JSON, "md": report_dir / STUDY_MD,
             "curves": plot_study_curves(arms, result, report_dir / CURVES_PNG),
             "success": plot_study_success(result, report_dir / SUCCESS_PNG)}
    text = json.dumps(_finite(study), indent=2, default=_json_default, allow_nan=False) + "\n"
    atomic_write_text(paths["json"], text)
    atomic_write_text(paths["md"], study_markdown(study))
    for f in (paths["json"], paths["md"]):
        f.chmod(0o644)  # the temp-file rename leaves 0600; these are reports to share
    return paths


def _finite(o: Any) -> Any:
    """NaN/inf -> None, recursively, so study.json is strict JSON."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, Mapping):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


__all__ = ["CURVES_PNG", "STUDY_JSON", "STUDY_MD", "SUCCESS_PNG", "recorded_command", "settings_differences",
           "study_markdown", "verdict_paragraph", "write_study_report"]

"""The comparison of a study's arms: seed means, steps to reach the reference's quality, pooled success, goals.

`compare_arms` turns the arms per objective (`arms.ArmResult`) into the `study.json` result; `judge_goals`
reads the issue's two goals from it. Pure functions of what the arms have on disk: nothing here writes.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from selfflow_robot.evaluation.metrics import Rate, score
from selfflow_robot.experiments.study.arms import ArmResult

GOAL_RATIO = 0.5  # the goal: Self-Flow reaches vanilla's final action MSE in <= half the steps


@dataclass(frozen=True)
class Metric:
    """One validation metric of the comparison: its `metrics.jsonl` key and which direction is better."""

    name: str
    key: str
    label: str
    higher_is_better: bool


METRICS: tuple[Metric, ...] = (
    Metric("action_mse_norm", "val/action_mse_norm", "held-out action MSE (normalised, sampled)", False),
    Metric("action_mse_norm_1step", "val/action_mse_norm_1step", "held-out action MSE (normalised, 1-step)", False),
    Metric("psnr", "val/psnr", "world-model PSNR (dB, sampled)", True),
    Metric("psnr_1step", "val/psnr_1step", "world-model PSNR (dB, 1-step)", True),
)
BASELINES = {"psnr_copy_last": "val/psnr_copy_last",
             "action_mse_norm_mean_baseline": "val/action_mse_norm_mean_baseline"}
HEADLINE_MSE, HEADLINE_PSNR = "action_mse_norm", "psnr"


def mean_std(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for one value, NaN mean for none)."""
    xs = [float(x) for x in xs]
    if not xs:
        return float("nan"), float("nan")
    m = sum(xs) / len(xs)
    if len(xs) == 1:
        return m, 0.0
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def seed_mean_curve(curves: Sequence[Sequence[tuple[int, float]]]) -> list[dict[str, float]]:
    """Mean +- std over seeds at each step that every seed's curve has (a shorter seed cuts the curve)."""
    curves = [dict(c) for c in curves if c]
    if not curves:
        return []
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    out = []
    for s in steps:
        m, sd = mean_std([c[s] for c in curves])
        out.append({"step": s, "mean": m, "std": sd, "seeds": len(curves)})
    return out


def steps_to_reach(curve: Sequence[Mapping[str, float]], target: float, *, higher_is_better: bool,
                   total_steps: int | None) -> dict[str, Any]:
    """The first validation step at which `curve` (rows with `step`, `mean`) is at least as good as `target`.

    No interpolation between validations. `ratio` = step / total_steps (None without a total or when not reached).
    """
    for row in curve:
        v = row["mean"]
        if (v >= target) if higher_is_better else (v <= target):
            step = int(row["step"])
            return {"reached": True, "step": step, "ratio": (step / total_steps) if total_steps else None,
                    "value": v, "target": target}
    return {"reached": False, "step": None, "ratio": None, "value": None, "target": target}


def pooled_counts(arms: Sequence[ArmResult]) -> dict[str, list[int]]:
    """task -> [successes, trials] summed over the arms (seeds pooled)."""
    pooled: dict[str, list[int]] = {}
    for a in arms:
        for task, (k, n) in a.task_counts.items():
            c = pooled.setdefault(task, [0, 0])
            c[0] += k
            c[1] += n
    return dict(sorted(pooled.items()))


def success_summary(arms: Sequence[ArmResult]) -> dict[str, Any] | None:
    """Per-task pooled rates with Wilson 95% intervals, their plain mean over tasks (interval: Wilson on the
    pooled counts) and SIMPLER's two averages (None for tasks outside SIMPLER's cells); None without episodes."""
    pooled = pooled_counts(arms)
    if not pooled:
        return None
    tasks = {t: Rate.of(k, n) for t, (k, n) in pooled.items()}
    try:
        s = score([(t, True) for t, (k, _) in pooled.items() for _ in range(k)]
                  + [(t, False) for t, (k, n) in pooled.items() for _ in range(n - k)])
        simpler = {"simpler_average_task_columns": s.column_average, "simpler_average_sub_cells": s.sub_cell_average}
    except ValueError:  # a task that belongs to no SIMPLER sub-cell
        simpler = {"simpler_average_task_columns": None, "simpler_average_sub_cells": None}
    return {"tasks": {t: r.as_dict() for t, r in tasks.items()},
            "mean_over_tasks": Rate.mean_of(list(tasks.values())).as_dict(),
            "seeds": [a.seed for a in arms if a.task_counts], **simpler}


def final_validation(arms: Sequence[ArmResult], used: Sequence[ArmResult]) -> dict[str, Any]:
    """Per seed (every arm with validation rows): the last validation row; mean +- std over the `used` arms."""
    per_seed = {}
    for a in arms:
        if a.validation:
            last = a.validation[-1]
            per_seed[str(a.seed)] = {"step": int(last["step"]), "train": a.train_status,
                                     **{m.name: last.get(m.key) for m in METRICS},
                                     **{b: last.get(k) for b, k in BASELINES.items()}}
    summary = {}
    rows = [per_seed[str(a.seed)] for a in used if str(a.seed) in per_seed]
    for name in [m.name for m in METRICS] + list(BASELINES):
        vals = [r[name] for r in rows if r.get(name) is not None and math.isfinite(r[name])]
        if vals:
            m, sd = mean_std(vals)
            summary[name] = {"mean": m, "std": sd, "n": len(vals)}
    return {"per_seed": per_seed, "mean": summary, "seeds": [a.seed for a in used]}


def _used(arms: Sequence[ArmResult], done: str, has: str) -> tuple[list[ArmResult], bool]:
    """The arms a summary uses: those whose phase is complete, else (provisionally) those with any data."""
    complete = [a for a in arms if getattr(a, done) == "complete"]
    return (complete, True) if complete else ([a for a in arms if getattr(a, has)], False)


def compare_arms(arms: Mapping[str, Sequence[ArmResult]], *, reference: str = "vanilla",
                 candidate: str = "selfflow") -> dict[str, Any]:
    """The whole comparison (the `study.json` payload, less the run metadata) from the arms per objective.

    Per objective, curves and final numbers use the arms whose training is complete (success: whose
    evaluation is complete); only when there is none yet do they use the unfinished arms, flagged
    `curves_final: false` / `success_final: false`.
    """
    result: dict[str, Any] = {"objectives": {}, "steps_to_reach": {}, "goals": {}}
    for obj, obj_arms in arms.items():
        trained, curves_final = _used(obj_arms, "train_status", "validation")
        scored, success_final = _used(obj_arms, "eval_status", "task_counts")
        result["objectives"][obj] = {
            "arms": {a.name: {"status": a.status, "train": a.train_status, "eval": a.eval_status,
                              "trained_steps": a.trained_steps, "total_steps": a.total_steps,
                              "episodes": sum(n for _, n in a.task_counts.values())} for a in obj_arms},
            "final_validation": final_validation(obj_arms, trained),
            "curves_final": curves_final,
            "curves": {m.name: seed_mean_curve([a.curve(m.key) for a in trained]) for m in METRICS},
            "success_final": success_final,
            "success": success_summary(scored),
        }
    if reference in arms and candidate in arms:
        ref, cand = result["objectives"][reference], result["objectives"][candidate]
        totals = [a.total_steps for a in arms[candidate] if a.total_steps]
        total = max(totals) if totals else None
        for m in METRICS:
            ref_curve, cand_curve = ref["curves"][m.name], cand["curves"][m.name]
            if not ref_curve or not cand_curve:
                result["steps_to_reach"][m.name] = None
                continue
            target = ref_curve[-1]["mean"]
            r = steps_to_reach(cand_curve, target, higher_is_better=m.higher_is_better, total_steps=total)
            r.update({"reference_step": int(ref_curve[-1]["step"]), "reference_final": ref["curves_final"],
                      "total_steps": total, "candidate_last_step": int(cand_curve[-1]["step"]),
                      "candidate_final": cand["curves_final"]})
            result["steps_to_reach"][m.name] = r
        result["goals"] = judge_goals(result, reference=reference, candidate=candidate)
    return result


def judge_goals(result: Mapping[str, Any], *, reference: str = "vanilla",
                candidate: str = "selfflow") -> dict[str, Any]:
    """The issue's two goals, judged from the numbers: met / not met / undecided (with the reason).

    Goal 1 needs a finished reference (its final MSE is the target); an unfinished candidate can already
    have met it (reached within half the steps) or missed it (past half the steps without reaching it).
    Goal 2 needs a finished evaluation of both objectives.
    """
    out: dict[str, Any] = {}
    r = result["steps_to_reach"].get(HEADLINE_MSE)
    if r is None:
        out["half_steps"] = {"verdict": "undecided", "why": "no validation curve for one of the objectives yet"}
    elif not r["reference_final"]:
        out["half_steps"] = {"verdict": "undecided",
                             "why": f"no {reference} arm has finished training, so its final action MSE is not "
                                    f"known (at step {r['reference_step']} it is {r['target']:.4g})"}
    elif r["reached"]:
        met = r["ratio"] is not None and r["ratio"] <= GOAL_RATIO
        out["half_steps"] = {"verdict": "met" if met else "not met",
                             "why": f"{candidate} reached {reference}'s final action MSE {r['target']:.4g} at step "
                                    f"{r['step']} of {r['total_steps']} (ratio {format_number(r['ratio'], '.2f')}; "
                                    f"goal <= {GOAL_RATIO:g})"}
    else:
        past_half = r["total_steps"] and r["candidate_last_step"] >= GOAL_RATIO * r["total_steps"]
        decided = r["candidate_final"] or past_half
        out["half_steps"] = {"verdict": "not met" if decided else "undecided",
                             "why": f"{candidate} has not reached {reference}'s final action MSE {r['target']:.4g} "
                                    f"by its last validation (step {r['candidate_last_step']}"
                                    + (f" of {r['total_steps']})" if r["total_steps"] else ")")
                                    + ("" if decided else "; its training goes on")}
    objs = result["objectives"]
    ref_s, cand_s = objs[reference]["success"], objs[candidate]["success"]
    if not ref_s or not cand_s:
        out["success_ahead"] = {"verdict": "undecided", "why": "one of the objectives has no evaluated episodes yet"}
    else:
        a, b = cand_s["mean_over_tasks"], ref_s["mean_over_tasks"]
        overlap = a["ci95"][0] <= b["ci95"][1] and b["ci95"][0] <= a["ci95"][1]
        final = objs[reference]["success_final"] and objs[candidate]["success_final"]
        verdict = ("met" if a["rate"] > b["rate"] else "not met") if final else "undecided"
        out["success_ahead"] = {
            "verdict": verdict, "significant": not overlap,
            "why": ("" if final else "evaluations are still running; so far ")
                   + f"mean success over tasks {candidate} {format_percent(a['rate'])} "
                   f"({a['successes']}/{a['trials']}) vs {reference} {format_percent(b['rate'])} "
                   f"({b['successes']}/{b['trials']}); Wilson 95% intervals "
                   + ("overlap, so the difference is within noise at this many episodes" if overlap
                      else "do not overlap")}
    return out


def format_percent(x: float | None) -> str:
    """A rate as `12.5%` (`n/a` for None or non-finite)."""
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.1f}%"


def format_number(x: float | None, fmt: str = ".4g") -> str:
    """A number in `fmt` (`n/a` for None or non-finite)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return format(x, fmt)


__all__ = ["BASELINES", "GOAL_RATIO", "HEADLINE_MSE", "HEADLINE_PSNR", "METRICS", "Metric", "compare_arms",
           "final_validation", "format_number", "format_percent", "judge_goals", "mean_std", "pooled_counts",
           "seed_mean_curve", "steps_to_reach", "success_summary"]

"""SIMPLER scoring: success rates, sub-cells, both averaging conventions, Wilson intervals, MMRV, Pearson.

Vocabulary (reference/simpler.md §1.3, §3):

- a *task* is one registered environment (``open_top_drawer``, SimplerEnv's ``OpenTopDrawerCustomInScene-v0``);
- a *sub-cell* is what SIMPLER papers report under one heading: coke can horizontal / vertical / standing,
  move near, open drawer, close drawer, apple in drawer. A sub-cell pools the episodes of its tasks
  (open drawer = top + middle + bottom);
- a *task column* is one column of SIMPLER Table IV: coke can (mean of its 3 orientations), move near,
  drawer (mean of open and close), apple.

Two averages circulate and differ: the **task-column average** (CogACT style: mean of the 4 columns,
RT-1 visual matching 52.4) and the **sub-cell average** (SpatialVLA style: mean of the 6 sub-cells
coke H/V/S, move near, open, close; RT-1 visual matching 74.6). Both are computed over the cells that
were evaluated, and reported with the set they cover, so a drawer-only sweep is never mistaken for a
full one.

Rates are fractions in [0, 1] everywhere in code; the published table (`published.py`) stores percentages as
printed.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------------------------------
# Cells and columns
# ---------------------------------------------------------------------------------------------------------------

COKE_H, COKE_V, COKE_S = "coke_can_horizontal", "coke_can_vertical", "coke_can_standing"
MOVE_NEAR = "move_near"
OPEN_DRAWER, CLOSE_DRAWER = "open_drawer", "close_drawer"
APPLE = "apple_in_drawer"
SUB_CELLS = (COKE_H, COKE_V, COKE_S, MOVE_NEAR, OPEN_DRAWER, CLOSE_DRAWER, APPLE)
# The SpatialVLA-style "#Average" runs over these six (apple is not part of it).
SUB_CELL_AVERAGE_CELLS = (COKE_H, COKE_V, COKE_S, MOVE_NEAR, OPEN_DRAWER, CLOSE_DRAWER)

COKE, DRAWER = "coke_can", "drawer"
COLUMNS: dict[str, tuple[str, ...]] = {  # task column -> its sub-cells (column = plain mean of them)
    COKE: (COKE_H, COKE_V, COKE_S),
    MOVE_NEAR: (MOVE_NEAR,),
    DRAWER: (OPEN_DRAWER, CLOSE_DRAWER),
    APPLE: (APPLE,),
}
COLUMN_TITLES = {COKE: "Pick coke can", MOVE_NEAR: "Move near", DRAWER: "Open/close drawer",
                 APPLE: "Open top drawer and place apple"}
CELL_TITLES = {COKE_H: "coke H", COKE_V: "coke V", COKE_S: "coke S", MOVE_NEAR: "move near",
               OPEN_DRAWER: "open", CLOSE_DRAWER: "close", APPLE: "apple"}


def sub_cell_of(task: str) -> str:
    """The SIMPLER sub-cell a task belongs to; accepts our task ids and SimplerEnv env ids.

    >>> sub_cell_of("open_top_drawer"), sub_cell_of("CloseBottomDrawerCustomInScene-v0")
    ('open_drawer', 'close_drawer')
    """
    t = task.lower().replace("-", "_")
    if "apple" in t or "placeintoclosed" in t or "place_in_closed" in t:
        return APPLE
    if "drawer" in t and t.startswith("open"):
        return OPEN_DRAWER
    if "drawer" in t and t.startswith("close"):
        return CLOSE_DRAWER
    if "movenear" in t or "move_near" in t:
        return MOVE_NEAR
    if "coke" in t:
        if "horizontal" in t or "lr_switch" in t:
            return COKE_H
        if "vertical" in t or "laid_vertically" in t:
            return COKE_V
        if "standing" in t or "upright" in t:
            return COKE_S
    raise ValueError(f"task {task!r} belongs to no SIMPLER sub-cell (known: {list(SUB_CELLS)})")


def column_of(cell: str) -> str:
    """The task column of a sub-cell."""
    for col, cells in COLUMNS.items():
        if cell in cells:
            return col
    raise ValueError(f"unknown sub-cell {cell!r}; expected one of {list(SUB_CELLS)}")


# ---------------------------------------------------------------------------------------------------------------
# Rates and intervals
# ---------------------------------------------------------------------------------------------------------------

def wilson_interval(successes: int, trials: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default). (0, 1) when there are no trials."""
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    denom = 1.0 + z2 / trials
    center = (p + z2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denom
    lo = 0.0 if successes == 0 else max(0.0, center - half)   # exact bounds at the ends (no 0.999...)
    hi = 1.0 if successes == trials else min(1.0, center + half)
    return lo, hi


@dataclass(frozen=True)
class Rate:
    """A success rate with its Wilson 95% interval. `rate` may be a mean of sub-rates (then != k/n)."""

    rate: float
    successes: int
    trials: int
    ci_low: float
    ci_high: float

    @classmethod
    def of(cls, successes: int, trials: int) -> Rate:
        lo, hi = wilson_interval(successes, trials)
        return cls(successes / trials if trials else float("nan"), successes, trials, lo, hi)

    @classmethod
    def mean_of(cls, parts: Sequence[Rate]) -> Rate:
        """Plain mean of part rates (SIMPLER's convention); the interval is Wilson on the pooled counts."""
        k, n = sum(p.successes for p in parts), sum(p.trials for p in parts)
        lo, hi = wilson_interval(k, n)
        return cls(sum(p.rate for p in parts) / len(parts), k, n, lo, hi)

    def as_dict(self) -> dict:
        return {"rate": self.rate, "successes": self.successes, "trials": self.trials,
                "ci95": [self.ci_low, self.ci_high]}


@dataclass
class SuiteScore:
    """Per-task, per-sub-cell and per-column success of one checkpoint, plus both averages."""

    tasks: dict[str, Rate]
    cells: dict[str, Rate]
    columns: dict[str, Rate]
    column_average: float          # mean over the evaluated task columns (CogACT "Average")
    sub_cell_average: float        # mean over the evaluated cells of SUB_CELL_AVERAGE_CELLS (SpatialVLA "#Average")
    column_average_over: list[str] = field(default_factory=list)
    sub_cell_average_over: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "tasks": {k: v.as_dict() for k, v in self.tasks.items()},
            "sub_cells": {k: v.as_dict() for k, v in self.cells.items()},
            "columns": {k: v.as_dict() for k, v in self.columns.items()},
            "average_task_columns": {"rate": self.column_average, "over": self.column_average_over},
            "average_sub_cells": {"rate": self.sub_cell_average, "over": self.sub_cell_average_over},
        }


def score(outcomes: Iterable[tuple[str, bool]]) -> SuiteScore:
    """Aggregate (task, success) episode outcomes into tasks, SIMPLER sub-cells, task columns and averages."""
    counts: dict[str, list[int]] = {}
    for task, ok in outcomes:
        c = counts.setdefault(task, [0, 0])
        c[0] += int(bool(ok))
        c[1] += 1
    tasks = {t: Rate.of(k, n) for t, (k, n) in sorted(counts.items())}
    pooled: dict[str, list[int]] = {}
    for t, (k, n) in counts.items():
        c = pooled.setdefault(sub_cell_of(t), [0, 0])
        c[0] += k
        c[1] += n
    cells = {c: Rate.of(*pooled[c]) for c in SUB_CELLS if c in pooled}
    columns = {}
    for col, members in COLUMNS.items():
        present = [cells[c] for c in members if c in cells]
        if present:
            columns[col] = Rate.mean_of(present)
    col_over = list(columns)
    cell_over = [c for c in SUB_CELL_AVERAGE_CELLS if c in cells]
    col_avg = _mean([columns[c].rate for c in col_over])
    cell_avg = _mean([cells[c].rate for c in cell_over])
    return SuiteScore(tasks, cells, columns, col_avg, cell_avg, col_over, cell_over)


def average_task_columns(columns: Mapping[str, float | None]) -> float:
    """Mean of the reported task columns (CogACT convention); None entries are skipped."""
    return _mean([v for v in columns.values() if v is not None])


def average_sub_cells(cells: Mapping[str, float | None]) -> float:
    """Mean of the reported sub-cells among coke H/V/S, move near, open, close (SpatialVLA convention)."""
    return _mean([cells[c] for c in SUB_CELL_AVERAGE_CELLS if cells.get(c) is not None])


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


# ---------------------------------------------------------------------------------------------------------------
# Sim-vs-real agreement (SIMPLER paper §V; SimplerEnv simpler_env/utils/metrics.py)
# ---------------------------------------------------------------------------------------------------------------

def mmrv(perf_sim: Sequence[float], perf_real: Sequence[float]) -> float:
    """Mean Maximum Rank Violation: for each policy i, the largest real gap |real_i - real_j| over the
    policies j whose sim order disagrees with the real order; averaged over i. Lower is better.

    Argument order matters (the metric is asymmetric): simulation first, real second.
    """
    if len(perf_sim) != len(perf_real) or not perf_sim:
        raise ValueError(f"need two equal, non-empty lists, got {len(perf_sim)} and {len(perf_real)}")
    worst = []
    for i in range(len(perf_sim)):
        v = 0.0
        for j in range(len(perf_sim)):
            if (perf_sim[i] > perf_sim[j]) != (perf_real[i] > perf_real[j]):
                v = max(v, abs(perf_real[i] - perf_real[j]))
        worst.append(v)
    return sum(worst) / len(worst)


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Pearson correlation; 1.0 when the two lists are identical (SimplerEnv's convention), NaN when one is constant."""
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError(f"need two equal lists of length >= 2, got {len(xs)} and {len(ys)}")
    mx, my = _mean(xs), _mean(ys)
    dx = [x - mx for x in xs]
    dy = [y - my for y in ys]
    if dx == dy:
        return 1.0
    sxx, syy = sum(d * d for d in dx), sum(d * d for d in dy)
    if sxx == 0 or syy == 0:
        return float("nan")
    return sum(a * b for a, b in zip(dx, dy)) / math.sqrt(sxx * syy)

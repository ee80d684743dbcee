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

Rates are fractions in [0, 1] everywhere in code; the published table stores percentages as printed.
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


# ---------------------------------------------------------------------------------------------------------------
# Published numbers (reference/simpler.md §3), success in percent as printed; None = not reported
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Published:
    """One published row: visual-matching and variant-aggregation task columns, and sub-cells where printed."""

    policy: str
    source: str
    vm: dict[str, float | None]
    va: dict[str, float | None]
    vm_cells: dict[str, float] = field(default_factory=dict)
    va_cells: dict[str, float] = field(default_factory=dict)

    def columns(self, protocol: str) -> dict[str, float | None]:
        return self.vm if protocol == VISUAL_MATCHING else self.va

    def cells(self, protocol: str) -> dict[str, float]:
        return self.vm_cells if protocol == VISUAL_MATCHING else self.va_cells


VISUAL_MATCHING, VARIANT_AGGREGATION = "visual_matching", "variant_aggregation"
PROTOCOLS = (VISUAL_MATCHING, VARIANT_AGGREGATION)


def _row(policy, source, vm, va, vm_cells=None, va_cells=None) -> Published:
    cols = (COKE, MOVE_NEAR, DRAWER, APPLE)
    return Published(policy, source, dict(zip(cols, vm)), dict(zip(cols, va)), vm_cells or {}, va_cells or {})


_TAB4 = "SIMPLER Tab. IV"
_STARVLA = "starVLA docs"
_SPATIAL = "SpatialVLA README"
PUBLISHED: tuple[Published, ...] = (
    _row("RT-1 (Converged)", _TAB4, (85.7, 44.2, 73.0, 6.5), (89.8, 50.0, 32.3, 2.6),
         {COKE_H: 96.0, COKE_V: 90.0, COKE_S: 71.0, MOVE_NEAR: 44.2, OPEN_DRAWER: 60.1, CLOSE_DRAWER: 86.1, APPLE: 6.5},
         {OPEN_DRAWER: 27.0, CLOSE_DRAWER: 37.6}),
    _row("RT-1 (15%)", _TAB4, (71.0, 35.4, 56.5, 13.0), (81.3, 44.6, 26.7, 2.1),
         {OPEN_DRAWER: 46.3, CLOSE_DRAWER: 66.7}),
    _row("RT-1 (Begin)", _TAB4, (2.7, 5.0, 13.9, 0.0), (2.2, 4.0, 6.9, 0.0),
         {OPEN_DRAWER: 0.0, CLOSE_DRAWER: 27.8}),
    _row("RT-1-X", _TAB4, (56.7, 31.7, 59.7, 21.3), (49.0, 32.3, 29.4, 10.1),
         {OPEN_DRAWER: 29.6, CLOSE_DRAWER: 89.1}),
    _row("RT-2-X", _TAB4, (78.7, 77.9, 25.0, 3.7), (82.3, 79.2, 35.3, 20.6),
         {OPEN_DRAWER: 15.7, CLOSE_DRAWER: 34.3}),
    _row("Octo-Base", _TAB4, (17.0, 4.2, 22.7, 0.0), (0.6, 3.1, 1.1, 0.0),
         {OPEN_DRAWER: 0.9, CLOSE_DRAWER: 44.4}),
    _row("OpenVLA (CogACT run)", _STARVLA, (18.0, 56.3, 63.0, 0.0), (60.8, 67.7, 28.8, 0.0)),
    _row("OpenVLA (SpatialVLA run)", _SPATIAL, (16.3, 46.2, 35.6, None), (54.5, 47.7, 17.7, None)),
    _row("CogACT", "CogACT paper via starVLA docs", (91.3, 85.0, 71.8, 50.9), (89.6, 80.8, 28.3, 46.6)),
    _row("SpatialVLA (zero-shot)", _SPATIAL, (81.0, 69.6, 59.3, None), (89.5, 71.7, 36.2, None)),
    _row("SpatialVLA (fine-tuned)", _SPATIAL, (86.0, 77.9, 57.4, None), (88.0, 72.7, 41.8, None)),
    _row("RoboVLMs (zero-shot)", _SPATIAL, (72.7, 66.3, 26.8, None), (68.3, 56.0, 8.5, None)),
    _row("RoboVLMs (fine-tuned)", _SPATIAL, (77.3, 61.7, 43.5, None), (75.6, 60.0, 10.6, None)),
    _row("TraceVLA", _SPATIAL, (28.0, 53.7, 57.0, None), (60.0, 56.4, 29.4, None)),
    _row("HPT", _SPATIAL, (56.0, 60.0, 24.0, None), (None, None, 31.0, None)),
    _row("pi0 (3rd-party run)", _STARVLA, (72.7, 65.3, 38.3, None), (75.2, 63.7, 25.6, None)),
    _row("pi0-FAST (3rd-party run)", _STARVLA, (75.3, 67.5, 42.9, None), (77.6, 68.2, 31.3, None)),
    _row("open-pi-zero Fractal-Uniform", "allenzren/open-pi-zero README", (88.0, 80.3, 55.95, 52.2),
         (None, None, None, None), {OPEN_DRAWER: 45.2, CLOSE_DRAWER: 66.7}),
    _row("open-pi-zero Fractal-Beta", "allenzren/open-pi-zero README", (97.9, 78.7, 62.25, 46.6),
         (None, None, None, None), {OPEN_DRAWER: 49.5, CLOSE_DRAWER: 75.0}),
    _row("GR00T N1.5 (starVLA re-impl.)", _STARVLA, (51.7, 54.0, 27.8, 7.4), (69.3, 68.7, 35.8, 4.0)),
    _row("Magma", _STARVLA, (83.7, 65.4, 56.0, 6.4), (68.8, 65.7, 53.4, 18.5)),
    _row("StarVLA-OFT (Qwen3-VL-4B)", _STARVLA, (95.3, 75.0, 68.8, 66.1), (91.3, 75.1, 55.0, 59.4)),
    _row("VideoVLA (CogVideoX-5B)", "vla-evaluation-harness leaderboard (unverified)", (92.3, 82.9, 66.2, 50.9),
         (89.8, 73.3, 28.8, 59.3)),
    _row("Moto", "vla-evaluation-harness leaderboard (unverified)", (74.0, 60.4, 43.1, None), (None, None, None, None)),
)

# Real-robot success (SIMPLER Tab. IV; SimplerEnv REAL_PERF), percent, for MMRV / Pearson of any simulator.
REAL_ROBOT: dict[str, dict[str, float]] = {
    "RT-1 (Converged)": {COKE: 85.3, MOVE_NEAR: 63.3, DRAWER: 87.0, APPLE: 18.5, OPEN_DRAWER: 81.5, CLOSE_DRAWER: 92.6},
    "RT-1 (15%)": {COKE: 92.0, MOVE_NEAR: 58.3, DRAWER: 79.6, APPLE: 18.5, OPEN_DRAWER: 70.4, CLOSE_DRAWER: 88.9},
    "RT-1 (Begin)": {COKE: 13.3, MOVE_NEAR: 1.7, DRAWER: 0.0, APPLE: 0.0, OPEN_DRAWER: 0.0, CLOSE_DRAWER: 0.0},
    "RT-1-X": {COKE: 76.0, MOVE_NEAR: 45.0, DRAWER: 63.0, APPLE: 40.7, OPEN_DRAWER: 51.9, CLOSE_DRAWER: 74.1},
    "RT-2-X": {COKE: 90.7, MOVE_NEAR: 73.3, DRAWER: 48.1, APPLE: 7.4, OPEN_DRAWER: 33.3, CLOSE_DRAWER: 63.0},
    "Octo-Base": {COKE: 29.3, MOVE_NEAR: 35.0, DRAWER: 33.3, APPLE: 0.0, OPEN_DRAWER: 14.8, CLOSE_DRAWER: 51.9},
}


def published_row(policy: str) -> Published:
    """The published row of `policy` (exact name as in PUBLISHED)."""
    for r in PUBLISHED:
        if r.policy == policy:
            return r
    raise KeyError(f"no published row {policy!r}; known: {[r.policy for r in PUBLISHED]}")


def sim_real_agreement(column: str, sim: Mapping[str, float]) -> dict:
    """MMRV and Pearson r of a simulator's per-policy success on one column against the real robot.

    `sim` maps policy names of REAL_ROBOT to simulated success (percent or fraction, consistently with itself);
    the published SIMPLER visual-matching numbers reproduce Table IV (e.g. drawer: MMRV 0.055, r 0.915).
    """
    names = [p for p in REAL_ROBOT if p in sim and column in REAL_ROBOT[p]]
    scale = 100.0 if max(sim[p] for p in names) > 1.0 else 1.0
    s = [sim[p] / scale for p in names]
    r = [REAL_ROBOT[p][column] / 100.0 for p in names]
    return {"policies": names, "mmrv": mmrv(s, r), "pearson": pearson(s, r)}

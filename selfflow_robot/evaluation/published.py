"""Published SIMPLER numbers (reference/simpler.md §3) and the real-robot success they are checked against.

Success in percent as printed; None = not reported. Rows carry the visual-matching and variant-aggregation
task columns and, where the source prints them, sub-cells (vocabulary: `metrics`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from selfflow_robot.envs.grid import VISUAL_MATCHING
from selfflow_robot.evaluation.metrics import (
    APPLE,
    CLOSE_DRAWER,
    COKE,
    COKE_H,
    COKE_S,
    COKE_V,
    DRAWER,
    MOVE_NEAR,
    OPEN_DRAWER,
    mmrv,
    pearson,
)


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
        """The task columns (percent) under `protocol` (`envs.grid.VISUAL_MATCHING` or `VARIANT_AGGREGATION`)."""
        return self.vm if protocol == VISUAL_MATCHING else self.va

    def cells(self, protocol: str) -> dict[str, float]:
        """The sub-cells (percent) printed under `protocol`."""
        return self.vm_cells if protocol == VISUAL_MATCHING else self.va_cells



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

"""Where a policy's tool goes against the scripted expert's, from the same grid starts: the diagnosis of a missed
hook or push.

`selfflow-robot eval` records the robot's state per frame (`tool_state`: tool position and quaternion in the
base frame, gripper) beside the drawer's opening (`drawer_qpos`). In an expert episode the *contact point* is the
tool position at the first frame where the drawer has moved by `moved` metres (the hook that starts pulling it
open, or the push that starts closing it). For a policy episode of the same task and grid episode, the *closest
approach* is its tool frame nearest that point, up to its own first contact (or over the whole episode when its
drawer never moved). The offset (policy - expert, base frame: x forward, y left, z up) says how the policy
misses: a few centimetres too high or not deep enough into the slot behind the front panel, or nowhere near.

    rows = compare_tool_paths(read_tool_paths(policy_dir), read_tool_paths(expert_dir))
    print(tool_path_table(rows))
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from selfflow_robot.errors import UserError
from selfflow_robot.evaluation.evaluate import EPISODES_FILE, read_records


@dataclass(frozen=True)
class PathComparison:
    """One grid episode: the expert's contact point, the policy's closest approach to it and the offset (m)."""

    task: str
    episode: int
    success: bool
    drawer_moved: bool          # the policy's drawer moved by `moved` at some frame
    expert_frame: int           # the expert's contact frame
    policy_frame: int           # the policy's frame nearest the contact point
    offset: tuple[float, float, float]

    @property
    def distance(self) -> float:
        return float(np.linalg.norm(self.offset))


def read_tool_paths(sweep: str | Path, checkpoint: str | None = None) -> list[dict]:
    """The episode records of one `selfflow-robot eval` output dir (optionally of one checkpoint name) that carry
    the per-frame tool state and drawer opening."""
    path = Path(sweep) / EPISODES_FILE
    if not path.is_file():
        raise UserError(f"{path}: not found; point at a `selfflow-robot eval` output_dir")
    records = read_records(path)
    if checkpoint is not None:
        records = [r for r in records if r.get("checkpoint") == checkpoint]
    usable = [r for r in records if r.get("tool_state") and r.get("drawer_qpos")]
    if not usable:
        raise UserError(f"{path}: no episode records the tool state and drawer opening per frame "
                        f"(`tool_state`, `drawer_qpos`; sweeps from before they were recorded lack them)"
                        + (f" for checkpoint {checkpoint!r}" if checkpoint else ""))
    return usable


def contact_frame(opening: Sequence[float], moved: float = 0.01) -> int | None:
    """The first frame whose drawer opening differs from the start by at least `moved` m; None if none does."""
    q = np.asarray(opening, np.float64)
    hit = np.flatnonzero(np.abs(q - q[0]) >= moved)
    return int(hit[0]) if len(hit) else None


def compare_tool_paths(policy: Iterable[dict], expert: Iterable[dict], moved: float = 0.01) -> list[PathComparison]:
    """Pair policy and expert episodes by (task, episode) and measure the policy's miss of the expert's contact."""
    contacts = {}
    for r in expert:
        f = contact_frame(r["drawer_qpos"], moved)
        if f is not None:
            contacts[(r["task"], int(r["episode"]))] = np.asarray(r["tool_state"][f][:3]), f
    rows = []
    for r in policy:
        key = (r["task"], int(r["episode"]))
        if key not in contacts:
            continue
        point, ef = contacts[key]
        own = contact_frame(r["drawer_qpos"], moved)
        path = np.asarray([s[:3] for s in r["tool_state"]])[: (own + 1) if own is not None else None]
        i = int(np.argmin(np.linalg.norm(path - point, axis=1)))
        rows.append(PathComparison(key[0], key[1], bool(r["success"]), own is not None, ef, i,
                                   tuple(round(float(v), 4) for v in path[i] - point)))
    if not rows:
        raise UserError("no policy episode shares a (task, episode) with an expert episode whose drawer moved: "
                        "score the expert on the same grid episodes (`selfflow-robot eval policy=expert ...`)")
    return sorted(rows, key=lambda c: (c.task, c.episode))


def tool_path_table(rows: Sequence[PathComparison]) -> str:
    """Markdown: per task and outcome, the episodes and the mean offset and distance from the contact point (cm)."""
    lines = ["| task | policy outcome | episodes | drawer moved | mean offset x / y / z (cm) | mean distance (cm) |",
             "|---|---|---|---|---|---|"]
    for task in sorted({r.task for r in rows}):
        for outcome in (True, False):
            sel = [r for r in rows if r.task == task and r.success == outcome]
            if not sel:
                continue
            off = np.mean([r.offset for r in sel], axis=0) * 100
            dist = np.mean([r.distance for r in sel]) * 100
            lines.append(f"| {task} | {'success' if outcome else 'failure'} | {len(sel)} | "
                         f"{sum(r.drawer_moved for r in sel)} | {off[0]:+.1f} / {off[1]:+.1f} / {off[2]:+.1f} | "
                         f"{dist:.1f} |")
    return "\n".join(lines)


def plot_tool_paths(policy: Sequence[dict], expert: Sequence[dict], task: str, path: str | Path,
                    moved: float = 0.01) -> Path:
    """Side views (x forward, z up; base frame) of the policy's and the expert's tool paths, one panel per grid
    episode of `task`, the expert's contact point marked; written as a png."""
    exp = {int(r["episode"]): r for r in expert if r["task"] == task}
    pol = [r for r in sorted(policy, key=lambda r: int(r["episode"])) if r["task"] == task and int(r["episode"]) in exp]
    if not pol:
        raise UserError(f"no episode of {task!r} in both the policy's and the expert's records")
    cols = min(3, len(pol))
    rows = -(-len(pol) // cols)
    fig = Figure(figsize=(3.2 * cols, 2.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, r in zip(axes.flat, pol):
        e = exp[int(r["episode"])]
        for rec, colour, label in ((e, "tab:green", "expert"), (r, "tab:blue" if r["success"] else "tab:red",
                                                               "policy")):
            p = np.asarray([s[:3] for s in rec["tool_state"]])
            ax.plot(p[:, 0], p[:, 2], color=colour, lw=1.2, label=label)
        f = contact_frame(e["drawer_qpos"], moved)
        if f is not None:
            ax.plot(*np.asarray(e["tool_state"][f])[[0, 2]], "k*", ms=9, label="expert contact")
        ax.set_title(f"ep {r['episode']}: {'success' if r['success'] else 'failure'}", fontsize=9)
        ax.set_xlabel("x (m)", fontsize=8)
        ax.set_ylabel("z (m)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(pol):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{task}: tool paths, policy against the scripted expert (side view, base frame)", fontsize=10)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


__all__ = ["PathComparison", "compare_tool_paths", "contact_frame", "plot_tool_paths", "read_tool_paths",
           "tool_path_table"]

"""The fidelity report: what the port and SimplerEnv phases of `scripts/simpler_fidelity.py` measured, as tables.

(a) first overhead frames of the same initial states (mean absolute difference, side-by-side PNGs), (b) the
port expert's actions replayed open-loop in SimplerEnv (outcome agreement), (c) the same actions in both
simulators step by step (TCP path, drawer opening; one plot per task). Layout of `--out`:
`selfflow_robot.evaluation.simpler.fidelity`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from selfflow_robot.evaluation.simpler.fidelity import SIMPLER_IDS, read_jsonl


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 images (0-255)."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _trajectory_section(out: Path, img_dir: Path) -> list[str]:
    """(c) Same actions, both simulators: TCP path divergence and drawer opening; one plot per task."""
    lines = ["", "### (c) Same action sequence in both simulators: end-effector path and drawer opening", "",
             "| task | episodes | TCP distance at step 10 (cm) | first step > 1 cm apart (median) | "
             "max TCP distance (cm) | final drawer opening port / SimplerEnv (m) | port open-loop = closed-loop |",
             "|---|---|---|---|---|---|---|"]
    closed = {(r["task"], r["episode"]): r["success"] for r in read_jsonl(out / "port" / "episodes.jsonl")}
    for task in SIMPLER_IDS:
        pairs = []
        for f in sorted((out / "simpler").glob(f"traj_{task}_ep*.npz")):
            g = out / "port" / f.name
            if g.is_file():
                pairs.append((int(f.stem.rsplit("_ep", 1)[1]), np.load(g), np.load(f)))
        if not pairs:
            continue
        d10 = [100 * np.linalg.norm(a["tcp"][min(9, len(a["tcp"]) - 1)] - b["tcp"][min(9, len(b["tcp"]) - 1)])
               for _, a, b in pairs]
        dmax = [100 * np.max(np.linalg.norm(a["tcp"] - b["tcp"], axis=1)) for _, a, b in pairs]
        apart = [int(np.argmax(d > 1.0)) + 1 if (d := 100 * np.linalg.norm(a["tcp"] - b["tcp"], axis=1)).max() > 1.0
                 else len(d) for _, a, b in pairs]
        qp = [a["qpos"][-1] for _, a, _ in pairs]
        qs = [b["qpos"][-1] for _, _, b in pairs]
        same = sum(bool(a["success"]) == closed.get((task, e)) for e, a, _ in pairs)
        lines.append(f"| {task} | {len(pairs)} | {np.mean(d10):.2f} | {int(np.median(apart))} | "
                     f"{np.mean(dmax):.1f} | {np.mean(qp):.3f} / {np.mean(qs):.3f} | {same}/{len(pairs)} |")
        e, a, b = pairs[0]
        fig = Figure(figsize=(13, 2.6), dpi=80)
        axes = fig.subplots(1, 4)
        for i, name in enumerate("xyz"):
            axes[i].plot(a["tcp"][:, i], label="port")
            axes[i].plot(b["tcp"][:, i], "--", label="SimplerEnv")
            axes[i].set_title(f"TCP {name} (m)", fontsize=9)
        axes[3].plot(a["qpos"], label="port")
        axes[3].plot(b["qpos"], "--", label="SimplerEnv")
        axes[3].set_title("drawer opening (m)", fontsize=9)
        axes[3].legend(fontsize=7)
        for ax in axes:
            ax.set_xlabel("step", fontsize=8)
            ax.tick_params(labelsize=7)
        fig.suptitle(f"{task}, grid episode {e}: the port expert's actions replayed in both simulators",
                     fontsize=9)
        fig.tight_layout()
        fig.savefig(img_dir / f"traj_{task}.png")
    return lines


def write_fidelity_report(out: Path, img_dir: Path) -> dict:
    """Compare what the port and SimplerEnv phases left in `out`: frame differences (a), replay outcomes (b),
    trajectories (c). Writes `fidelity.md`, `fidelity.json` (returned) and the side-by-side PNGs into `img_dir`,
    and prints both."""
    img_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[float]] = {}
    worst: dict[str, tuple[float, str]] = {}
    for png in sorted((out / "port" / "frames").glob("*.png")):
        other = out / "simpler" / "frames" / png.name
        if not other.is_file():
            continue
        a, b = np.asarray(Image.open(png).convert("RGB")), np.asarray(Image.open(other).convert("RGB"))
        task = png.stem.rsplit("_ep", 1)[0]
        d = _mad(a, b)
        rows.setdefault(task, []).append(d)
        if d > worst.get(task, (-1, ""))[0]:
            worst[task] = (d, png.name)
    lines = ["### (a) First overhead frame, same initial state (mean absolute difference, 0-255)", "",
             "| task | frames | mean | median | max |", "|---|---|---|---|---|"]
    allv = []
    for task, v in rows.items():
        allv += v
        lines.append(f"| {task} | {len(v)} | {np.mean(v):.2f} | {np.median(v):.2f} | {np.max(v):.2f} |")
    if allv:
        lines.append(f"| **all** | {len(allv)} | {np.mean(allv):.2f} | {np.median(allv):.2f} | {np.max(allv):.2f} |")
    # ray-traced SimplerEnv frames (its drawer scripts' default renderer), where rendered
    rt = sorted((out / "simpler" / "frames_rt").glob("*.png"))
    if rt:
        lines += ["", "Against SimplerEnv's ray-traced render (`shader_dir=rt`, as its drawer scripts), same initial "
                      "states:", "",
                  "| frames | port vs SimplerEnv ray-traced | SimplerEnv rasterizer vs SimplerEnv ray-traced |",
                  "|---|---|---|"]
        d_port, d_se = [], []
        for png in rt:
            c = np.asarray(Image.open(png).convert("RGB"))
            d_port.append(_mad(np.asarray(Image.open(out / "port" / "frames" / png.name).convert("RGB")), c))
            d_se.append(_mad(np.asarray(Image.open(out / "simpler" / "frames" / png.name).convert("RGB")), c))
        lines.append(f"| {len(rt)} | {np.mean(d_port):.2f} | {np.mean(d_se):.2f} |")
    # side-by-side PNGs: episode 0 of every task (port | SimplerEnv | ray-traced if any | |difference| x4),
    # 320x256 each
    for task in rows:
        name = f"{task}_ep000.png"
        a = Image.open(out / "port" / "frames" / name).convert("RGB")
        b = Image.open(out / "simpler" / "frames" / name).convert("RGB")
        diff = np.clip(4 * np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)), 0, 255).astype(np.uint8)
        panels = [(a, "ManiSkill3 port"), (b, "SimplerEnv, rasterizer")]
        if (out / "simpler" / "frames_rt" / name).is_file():
            panels.append((Image.open(out / "simpler" / "frames_rt" / name).convert("RGB"),
                           "SimplerEnv, ray-traced"))
        mad = _mad(np.asarray(a), np.asarray(b))
        panels.append((Image.fromarray(diff), f"|port - SimplerEnv| x4 (MAD {mad:.2f})"))
        w, h = 320, 256
        canvas = Image.new("RGB", (len(panels) * w, h + 18), "white")
        for i, (im, label) in enumerate(panels):
            canvas.paste(im.resize((w, h), Image.BILINEAR), (i * w, 18))
            ImageDraw.Draw(canvas).text((i * w + 4, 3), label, fill="black")
        canvas.quantize(128).save(img_dir / f"{task}_ep000.png", optimize=True)  # palette PNG: small enough for git
    # (b) outcomes: SimplerEnv success of the open-loop replay (own loop, `simpler_traj`), cross-checked with
    # SimplerEnv's evaluator (`replays.jsonl`) where that ran too
    port_recs = {(r["task"], r["episode"]): r for r in read_jsonl(out / "port" / "episodes.jsonl")}
    evaluator = {(r["task"], r["episode"]): r["simpler_success"]
                 for r in read_jsonl(out / "simpler" / "replays.jsonl")}
    reps = []
    for (task, e), rec in port_recs.items():
        f = out / "simpler" / f"traj_{task}_ep{e:03d}.npz"
        g = out / "port" / f"traj_{task}_ep{e:03d}.npz"
        if f.is_file():
            reps.append({"task": task, "episode": e, "port_success": rec["success"],
                         "port_open_loop": bool(np.load(g)["success"]) if g.is_file() else None,
                         "simpler_success": bool(np.load(f)["success"]), "evaluator": evaluator.get((task, e))})
    lines += ["", "### (b) Port expert actions replayed open-loop in SimplerEnv (rasterizer)", "",
              "| task | episodes | port expert (closed loop) | SimplerEnv, same actions | agreement | "
              "port, same actions (open loop) | agreement, same actions |", "|---|---|---|---|---|---|---|"]
    agree_all, agree_ol = [], []

    def _frac(rows: list, key: str) -> str:
        vals = [x[key] for x in rows if x[key] is not None]
        return f"{sum(vals)}/{len(vals)}" if vals else "—"

    for task in list(SIMPLER_IDS) + ["**all**"]:
        r = reps if task == "**all**" else [x for x in reps if x["task"] == task]
        if not r:
            continue
        agree = [x["port_success"] == x["simpler_success"] for x in r]
        ol = [x["port_open_loop"] == x["simpler_success"] for x in r if x["port_open_loop"] is not None]
        if task != "**all**":
            agree_all += agree
            agree_ol += ol
        lines.append(f"| {task} | {len(r)} | {_frac(r, 'port_success')} | {_frac(r, 'simpler_success')} | "
                     f"{100 * np.mean(agree):.0f}% | {_frac(r, 'port_open_loop')} | "
                     + (f"{100 * np.mean(ol):.0f}% |" if ol else "— |"))
    checked = [x for x in reps if x["evaluator"] is not None]
    if checked:
        lines += ["", f"SimplerEnv's own evaluator (`run_maniskill2_eval_single_episode`) on {len(checked)} of these "
                      f"episodes gives the same outcome as the replay loop in "
                      f"{sum(x['evaluator'] == x['simpler_success'] for x in checked)}/{len(checked)}."]
    lines += _trajectory_section(out, img_dir)
    text = "\n".join(lines) + "\n"
    (out / "fidelity.md").write_text(text)
    summary = {"frame_mad": {t: float(np.mean(v)) for t, v in rows.items()},
               "frame_mad_all": float(np.mean(allv)) if allv else None,
               "replay_agreement": float(np.mean(agree_all)) if agree_all else None,
               "replay_agreement_same_actions": float(np.mean(agree_ol)) if agree_ol else None,
               "replays": len(agree_all), "worst_frame": worst}
    (out / "fidelity.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(text)
    print(json.dumps(summary, indent=2))
    return summary

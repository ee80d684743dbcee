"""Evaluation report: `results.json`, a markdown table beside the published SIMPLER numbers, a bar plot.

Inputs are per-episode records (one dict per finished episode, as `evaluate` writes them to
``episodes.jsonl``: at least ``checkpoint``, ``task``, ``success``). Everything here is a pure
function of those records, so a report can be rebuilt from a sweep directory at any time.
SimplerEnv's own result folders (mp4 names start with ``success``/``failure``) can be read with
`records_from_simpler_videos` and reported the same way.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from selfflow_robot.envs.grid import VISUAL_MATCHING
from selfflow_robot.evaluation.metrics import (
    CELL_TITLES,
    COLUMN_TITLES,
    COLUMNS,
    DRAWER,
    SUB_CELLS,
    Rate,
    SuiteScore,
    average_sub_cells,
    average_task_columns,
    score,
    sub_cell_of,
)
from selfflow_robot.evaluation.published import PUBLISHED

RESULTS_FILE = "results.json"
TABLE_FILE = "results.md"
PLOT_FILE = "success.png"
# Published rows shown by default: the SIMPLER paper's policies (they carry sub-cells) and a few recent VLAs.
DEFAULT_PUBLISHED = ("RT-1 (Converged)", "RT-1 (15%)", "RT-1 (Begin)", "RT-1-X", "RT-2-X", "Octo-Base",
                     "OpenVLA (CogACT run)", "CogACT", "pi0 (3rd-party run)", "VideoVLA (CogVideoX-5B)")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` through a temp file and a rename (a crash never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def scores_by_checkpoint(records: Iterable[Mapping[str, Any]]) -> dict[str, SuiteScore]:
    """Group episode records by ``checkpoint`` and score each group (order of first appearance)."""
    groups: dict[str, list[tuple[str, bool]]] = {}
    for r in records:
        groups.setdefault(str(r["checkpoint"]), []).append((str(r["task"]), bool(r["success"])))
    return {name: score(outcomes) for name, outcomes in groups.items()}


def results_payload(scores: Mapping[str, SuiteScore], *, suite: str, protocol: str = VISUAL_MATCHING,
                    checkpoints: Mapping[str, str] | None = None, extra: Mapping[str, Any] | None = None,
                    published: Sequence[str] = DEFAULT_PUBLISHED) -> dict:
    """The `results.json` document: our scores, and the published rows of the same protocol for comparison."""
    rows = [p for p in PUBLISHED if p.policy in published]
    return {
        "suite": suite,
        "protocol": protocol,
        "units": "success rate in [0, 1]; ci95 = Wilson 95% interval",
        "checkpoints": {
            name: {"path": (checkpoints or {}).get(name, name), **s.as_dict()} for name, s in scores.items()
        },
        "published_percent": [
            {"policy": p.policy, "source": p.source, "columns": p.columns(protocol), "sub_cells": p.cells(protocol),
             "average_task_columns": _nan_to_none(average_task_columns(p.columns(protocol))),
             "average_sub_cells": _nan_to_none(average_sub_cells(p.cells(protocol)))}
            for p in rows
        ],
        **(dict(extra) if extra else {}),
    }


def _nan_to_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}"


def _pub(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f}"


def markdown_table(scores: Mapping[str, SuiteScore], protocol: str = VISUAL_MATCHING,
                   published: Sequence[str] = DEFAULT_PUBLISHED) -> str:
    """Two tables: our sub-cells with Wilson intervals and both averages, then the task columns beside
    the published SIMPLER numbers (success %). Columns nobody evaluated are left out."""
    cells = [c for c in SUB_CELLS if any(c in s.cells for s in scores.values())]
    cols = [c for c in COLUMNS if any(c in s.columns for s in scores.values())]
    lines = [f"### Our checkpoints ({protocol.replace('_', ' ')}; success %, Wilson 95% interval, episodes)", ""]
    head = ["checkpoint"] + [CELL_TITLES[c] for c in cells] + ["avg (task columns)", "avg (sub-cells)"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in scores.items():
        row = [f"`{name}`"]
        for c in cells:
            r = s.cells.get(c)
            row.append("—" if r is None else f"{_pct(r.rate)} [{_pct(r.ci_low, 0)}–{_pct(r.ci_high, 0)}] ({r.trials})")
        row += [_pct(s.column_average), _pct(s.sub_cell_average)]
        lines.append("| " + " | ".join(row) + " |")
    if scores:
        s0 = next(iter(scores.values()))
        lines += ["", f"Averages cover only what was evaluated: task columns {s0.column_average_over}, "
                      f"sub-cells {s0.sub_cell_average_over} (the published 6-cell average also needs coke H/V/S "
                      "and move near)."]
    lines += ["", f"### Beside the published SIMPLER numbers ({protocol.replace('_', ' ')}, success %)", ""]
    head = ["policy"] + [COLUMN_TITLES[c] for c in cols]
    if DRAWER in cols:
        head += ["open", "close"]
    head += ["source"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in scores.items():
        row = [f"**ours: `{name}`**"] + [_pct(s.columns[c].rate) if c in s.columns else "—" for c in cols]
        if DRAWER in cols:
            row += [_pct(s.cells[c].rate) if c in s.cells else "—" for c in ("open_drawer", "close_drawer")]
        lines.append("| " + " | ".join(row + ["this run"]) + " |")
    for p in (p for p in PUBLISHED if p.policy in published):
        pc, pcells = p.columns(protocol), p.cells(protocol)
        row = [p.policy] + [_pub(pc.get(c)) for c in cols]
        if DRAWER in cols:
            row += [_pub(pcells.get("open_drawer")), _pub(pcells.get("close_drawer"))]
        lines.append("| " + " | ".join(row + [p.source]) + " |")
    return "\n".join(lines) + "\n"


def bar_plot(scores: Mapping[str, SuiteScore], path: str | Path, protocol: str = VISUAL_MATCHING,
             published: Sequence[str] = ("RT-1 (Converged)", "RT-1-X", "Octo-Base")) -> Path:
    """Grouped bars per sub-cell: our checkpoints with Wilson 95% error bars, published rows hatched."""
    cells = [c for c in SUB_CELLS if any(c in s.cells for s in scores.values())]
    pubs = [p for p in PUBLISHED if p.policy in published and any(c in p.cells(protocol) for c in cells)]
    series = len(scores) + len(pubs)
    width = 0.8 / max(series, 1)
    fig = Figure(figsize=(max(7.0, 1.6 * len(cells) + 4.0), 3.6), dpi=110)
    ax = fig.subplots()
    xs = list(range(len(cells)))
    for i, (name, s) in enumerate(scores.items()):
        ys = [100 * s.cells[c].rate if c in s.cells else 0.0 for c in cells]
        lo = [100 * (s.cells[c].rate - s.cells[c].ci_low) if c in s.cells else 0.0 for c in cells]
        hi = [100 * (s.cells[c].ci_high - s.cells[c].rate) if c in s.cells else 0.0 for c in cells]
        ax.bar([x - 0.4 + width * (i + 0.5) for x in xs], ys, width, yerr=[lo, hi], capsize=3, label=name)
    for j, p in enumerate(pubs):
        k = len(scores) + j
        ys = [p.cells(protocol).get(c, 0.0) for c in cells]
        ax.bar([x - 0.4 + width * (k + 0.5) for x in xs], ys, width, hatch="//", fill=False,
               edgecolor=f"C{k % 10}", label=f"{p.policy} (published)")
    ax.set_xticks(xs, [CELL_TITLES[c] for c in cells])
    ax.set_ylim(0, 105)
    ax.set_ylabel("success %")
    ax.set_title(f"SIMPLER {protocol.replace('_', ' ')}: success per sub-cell (error bars: Wilson 95%)", fontsize=9,
                 loc="left")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)
    return path


def per_variant(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Rate]]]:
    """Variant-aggregation records -> checkpoint -> variant -> sub-cell -> `Rate` (records without ``variant``
    skipped).

    Variants and cells come in order of first appearance; SIMPLER's variant-aggregation number of a cell
    is the pooled rate over all variants (each variant has the same number of episodes).
    """
    counts: dict[str, dict[str, dict[str, list[int]]]] = {}
    for r in records:
        if not r.get("variant"):
            continue
        c = counts.setdefault(str(r["checkpoint"]), {}).setdefault(str(r["variant"]), {})
        k = c.setdefault(sub_cell_of(str(r["task"])), [0, 0])
        k[0] += int(bool(r["success"]))
        k[1] += 1
    return {ck: {v: {cell: Rate.of(*n) for cell, n in cells.items()} for v, cells in vs.items()}
            for ck, vs in counts.items()}


def variant_table(table: Mapping[str, Mapping[str, Mapping[str, Rate]]]) -> str:
    """Markdown: success % per scene variant (columns) for each checkpoint and sub-cell (rows), episodes in ()."""
    variants: list[str] = []
    for vs in table.values():
        variants += [v for v in vs if v not in variants]
    lines = ["### Per scene variant (variant aggregation; success %, episodes)", "",
             "| checkpoint | sub-cell | " + " | ".join(variants) + " |", "|" + "---|" * (len(variants) + 2)]
    for ck, vs in table.items():
        cells = [c for c in SUB_CELLS if any(c in v for v in vs.values())]
        for cell in cells:
            row = [f"`{ck}`", CELL_TITLES[cell]]
            for v in variants:
                r = vs.get(v, {}).get(cell)
                row.append("—" if r is None else f"{_pct(r.rate)} ({r.trials})")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def write_eval_report(records: Sequence[Mapping[str, Any]], out_dir: str | Path, *, suite: str,
                 protocol: str = VISUAL_MATCHING, checkpoints: Mapping[str, str] | None = None,
                 extra: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """Score `records` and write results.json, results.md and success.png into `out_dir`; return their paths."""
    out = Path(out_dir)
    scores = scores_by_checkpoint(records)
    payload = results_payload(scores, suite=suite, protocol=protocol, checkpoints=checkpoints, extra=extra)
    table = markdown_table(scores, protocol)
    variants = per_variant(records)
    if variants:
        payload["per_variant"] = {ck: {v: {c: r.as_dict() for c, r in cells.items()} for v, cells in vs.items()}
                                  for ck, vs in variants.items()}
        table += "\n" + variant_table(variants)
    if extra and extra.get("variants"):
        table += ("\nThe published variant-aggregation numbers pool SimplerEnv's 7 drawer scene variants, ray traced; "
                  f"this run covers {', '.join(extra['variants'])} (rasterized); left out: "
                  + "; ".join(f"{k} ({v})" for k, v in dict(extra.get("variants_left_out") or {}).items()) + ".\n")
    atomic_write_text(out / RESULTS_FILE, json.dumps(payload, indent=2, default=_json_default) + "\n")
    atomic_write_text(out / TABLE_FILE, table)
    paths = {"results": out / RESULTS_FILE, "table": out / TABLE_FILE}
    if scores:
        paths["plot"] = bar_plot(scores, out / PLOT_FILE, protocol)
    return paths


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# SimplerEnv writes  <logging_dir>/<ckpt>/<scene>/<control_mode>/<env><kwargs>/rob_.../{success|failure}_obj_....mp4
_SIMPLER_ENV_RE = re.compile(r"^([A-Za-z]+(?:-v\d+))")


def records_from_simpler_videos(results_dir: str | Path) -> list[dict]:
    """Episode records from a SimplerEnv results folder, keyed by the mp4 names its evaluator writes.

    Works for runs of SimplerEnv's own `main_inference.py` and of our `evaluation/simpler/runner.py` alike
    (same layout), with ray tracing or the rasterizer. ``checkpoint`` is the first folder under
    `results_dir`, ``task`` the env id, plus ``scene``, ``env_dir`` (env id + build kwargs) and ``video``.
    """
    root = Path(results_dir)
    out = []
    for mp4 in sorted(root.glob("*/*/*/*/*/*.mp4")):
        name = mp4.stem
        if name.startswith("success"):
            ok = True
        elif name.startswith("failure"):
            ok = False
        else:
            continue
        rel = mp4.relative_to(root).parts
        m = _SIMPLER_ENV_RE.match(rel[3])
        if not m:
            continue
        out.append({"checkpoint": rel[0], "scene": rel[1], "task": m.group(1), "env_dir": rel[3],
                    "episode_dir": rel[4], "video": str(mp4), "success": ok})
    return out

"""Tool paths of a policy against the expert's: contact frames, the closest approach and its offset, the table,
the plots and the script, on episode records written the way `selfflow-robot eval` writes them."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from selfflow_robot.errors import UserError
from selfflow_robot.evaluation.evaluate import EPISODES_FILE, append_record
from selfflow_robot.evaluation.tool_paths import (
    compare_tool_paths,
    contact_frame,
    plot_tool_paths,
    read_tool_paths,
    tool_path_table,
)

ROOT = Path(__file__).resolve().parents[2]


def _record(task, episode, path, opening, success, checkpoint="ck"):
    states = [[float(x), float(y), float(z), 0.0, 0.0, 0.0, 1.0, 0.0] for x, y, z in path]
    return {"checkpoint": checkpoint, "task": task, "episode": episode, "success": success,
            "steps": len(path) - 1, "drawer_qpos": list(opening), "tool_state": states}


def _line(start, end, n=11):
    return np.linspace(start, end, n).tolist()


@pytest.fixture
def sweeps(tmp_path):
    """An expert that reaches (0.6, 0, 0.9) at frame 5, where the drawer starts to move; a policy that ends 3 cm
    above that point without moving the drawer, and one that gets there and opens it."""
    expert_path = _line([0.4, 0.0, 1.0], [0.6, 0.0, 0.9], 6) + _line([0.6, 0.0, 0.9], [0.4, 0.0, 0.9], 6)[1:]
    expert_open = [0.0] * 5 + [0.02, 0.05, 0.1, 0.15, 0.2, 0.25]
    miss = _line([0.4, 0.0, 1.0], [0.6, 0.0, 0.93], 11)
    hit = _line([0.4, 0.0, 1.0], [0.6, 0.0, 0.9], 6) + _line([0.6, 0.0, 0.9], [0.45, 0.0, 0.9], 6)[1:]
    exp_dir, pol_dir = tmp_path / "expert", tmp_path / "policy"
    for d in (exp_dir, pol_dir):
        d.mkdir()
    with open(exp_dir / EPISODES_FILE, "a") as f:
        append_record(f, _record("open_top_drawer", 0, expert_path, expert_open, True, "expert"))
        append_record(f, _record("open_top_drawer", 1, expert_path, expert_open, True, "expert"))
    with open(pol_dir / EPISODES_FILE, "a") as f:
        append_record(f, _record("open_top_drawer", 0, miss, [0.0] * 11, False))
        append_record(f, _record("open_top_drawer", 1, hit, expert_open, True))
        append_record(f, {"checkpoint": "ck", "task": "open_top_drawer", "episode": 2, "success": False})  # old record
        f.write('{"checkpoint": "ck", "task": "open_t')   # torn by a crash mid-write: ignored
    return pol_dir, exp_dir


def test_contact_frame_is_the_first_frame_the_drawer_moved():
    assert contact_frame([0.0, 0.0, 0.005, 0.012, 0.3]) == 3
    assert contact_frame([0.2, 0.2, 0.195, 0.17]) == 3            # closing counts too
    assert contact_frame([0.0, 0.004, 0.0]) is None


def test_the_offset_is_the_policy_closest_approach_to_the_expert_contact(sweeps):
    pol_dir, exp_dir = sweeps
    rows = compare_tool_paths(read_tool_paths(pol_dir), read_tool_paths(exp_dir))
    assert [(r.episode, r.success, r.drawer_moved) for r in rows] == [(0, False, False), (1, True, True)]
    miss, hit = rows
    assert miss.expert_frame == 5 and miss.policy_frame == 10
    np.testing.assert_allclose(miss.offset, [0.0, 0.0, 0.03], atol=1e-6)
    assert hit.distance < 0.02 and hit.policy_frame <= 5      # only frames up to its own contact count
    table = tool_path_table(rows)
    assert "| open_top_drawer | failure | 1 | 0 | +0.0 / +0.0 / +3.0 | 3.0 |" in table
    assert "| open_top_drawer | success | 1 | 1 |" in table


def test_plots_and_the_script(sweeps, tmp_path):
    pol_dir, exp_dir = sweeps
    png = plot_tool_paths(read_tool_paths(pol_dir), read_tool_paths(exp_dir), "open_top_drawer", tmp_path / "p.png")
    assert png.stat().st_size > 1000
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "compare_tool_paths.py"), "--policy", str(pol_dir),
                          "--expert", str(exp_dir), "--out", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "+0.0 / +0.0 / +3.0" in res.stdout
    assert (out / "tool_paths_open_top_drawer.png").is_file()
    assert [r["episode"] for r in json.loads((out / "tool_paths.json").read_text())] == [0, 1]


def test_clear_errors(sweeps, tmp_path):
    pol_dir, exp_dir = sweeps
    with pytest.raises(UserError, match="not found"):
        read_tool_paths(tmp_path / "nowhere")
    with pytest.raises(UserError, match="for checkpoint 'other'"):
        read_tool_paths(pol_dir, "other")
    with pytest.raises(UserError, match="score the expert on the same grid episodes"):
        compare_tool_paths(read_tool_paths(pol_dir), [])
    with pytest.raises(UserError, match="no episode of 'close_top_drawer'"):
        plot_tool_paths(read_tool_paths(pol_dir), read_tool_paths(exp_dir), "close_top_drawer", tmp_path / "x.png")
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "compare_tool_paths.py"), "--policy",
                          str(tmp_path / "nowhere"), "--expert", str(exp_dir)], capture_output=True, text=True)
    assert res.returncode == 2 and "error:" in res.stderr and "not found" in res.stderr

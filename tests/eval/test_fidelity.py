"""The port-fidelity measurement (`scripts/simpler_fidelity.py`): the grid hand-off to SimplerEnv, the replay
subsets, the SimplerEnv half loading alone, and the report on measurements with known answers."""
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from selfflow_robot.envs.grid import episode_config
from selfflow_robot.evaluation.fidelity import write_grid
from selfflow_robot.evaluation.fidelity_report import write_fidelity_report
from selfflow_robot.evaluation.simpler.fidelity import grid_path, replay_episodes

REPO = Path(__file__).resolve().parents[2]
SIMPLER_SIDE = REPO / "selfflow_robot" / "evaluation" / "simpler" / "fidelity.py"


def test_simpler_side_loads_alone_and_refuses_our_phases():
    """SimplerEnv's environment has neither selfflow-robot nor torch: the module loads by path without them."""
    code = (f"import importlib.util, sys; s = importlib.util.spec_from_file_location('f', {str(SIMPLER_SIDE)!r}); "
            "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); "
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('selfflow_robot', 'torch', 'mani_skill', "
            "'sapien', 'simpler_env'))); sys.exit(m.main(['port'], unavailable='no package'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]"
    assert out.returncode == 2 and "phase port runs in selfflow-robot's environment (here: no package)" in out.stderr


def test_port_writes_the_grid_simpler_renders(tmp_path):
    for task, family, n in (("open_top_drawer", "drawer", 36), ("place_apple_in_closed_top_drawer", "apple", 108)):
        write_grid(tmp_path, task)
        episodes = json.loads(grid_path(tmp_path, task).read_text())
        assert len(episodes) == n
        assert episodes == [json.loads(json.dumps(asdict(episode_config(family, e)))) for e in range(n)]
    ep = episodes[40]
    assert {"index", "urdf_version", "overlay_id", "robot_xy", "robot_yaw", "apple_xy"} <= set(ep)
    assert ep["index"] == 40 and len(ep["apple_xy"]) == 2


def test_replay_subsets_cover_every_pose_and_colouring():
    drawer = replay_episodes("open_top_drawer", 36, "stratified")
    assert sorted(e % 9 for e in drawer) == list(range(9)) and {e // 9 for e in drawer} == {0, 1, 2, 3}
    apple = replay_episodes("place_apple_in_closed_top_drawer", 108, "stratified")
    assert sorted({(e // 27, (e % 27) // 9) for e in apple}) == [(u, p) for u in range(4) for p in range(3)]
    assert sorted(e // 9 for e in replay_episodes("close_top_drawer", 36, "small")) == [0, 1, 2, 3]
    assert replay_episodes("open_top_drawer", 36, "all") == list(range(36))


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((64, 80, 3), value, np.uint8)).save(path)


def test_report_of_known_measurements(tmp_path):
    out, img = tmp_path / "fidelity", tmp_path / "img"
    task = "open_top_drawer"
    for e, (port, simpler) in enumerate(((100, 110), (50, 54))):         # MAD 10 and 4
        _png(out / "port" / "frames" / f"{task}_ep{e:03d}.png", port)
        _png(out / "simpler" / "frames" / f"{task}_ep{e:03d}.png", simpler)
    recs = [{"task": task, "episode": 0, "success": True}, {"task": task, "episode": 1, "success": True}]
    (out / "port" / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    steps = np.arange(12, dtype=float)[:, None]
    for e, simpler_ok in ((0, True), (1, False)):                         # replay agreement 1/2
        tcp = np.concatenate([0.01 * steps, 0 * steps, 0 * steps], 1)
        np.savez(out / "port" / f"traj_{task}_ep{e:03d}.npz", tcp=tcp, qpos=np.full(12, 0.2), success=True)
        np.savez(out / "simpler" / f"traj_{task}_ep{e:03d}.npz", tcp=tcp + [0, 0.02, 0], qpos=np.full(12, 0.1),
                 success=simpler_ok)
    summary = write_fidelity_report(out, img)
    assert summary["frame_mad"] == {task: 7.0} and summary["frame_mad_all"] == 7.0
    assert summary["replay_agreement"] == 0.5 and summary["replays"] == 2
    assert summary["worst_frame"] == {task: (10.0, f"{task}_ep000.png")}
    assert json.loads((out / "fidelity.json").read_text())["replay_agreement"] == 0.5
    md = (out / "fidelity.md").read_text()
    assert f"| {task} | 2 | 7.00 | 7.00 | 10.00 |" in md
    assert f"| {task} | 2 | 2/2 | 1/2 | 50% | 2/2 | 50% |" in md
    assert f"| {task} | 2 | 2.00 | 1 | 2.0 | 0.200 / 0.100 | 2/2 |" in md     # TCP 2 cm apart from the start
    assert (img / f"{task}_ep000.png").is_file() and (img / f"traj_{task}.png").stat().st_size > 1000

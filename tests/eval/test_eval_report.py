"""Report writer: results.json, the markdown table beside published numbers, the bar plot, SimplerEnv video names."""
import json

import numpy as np
from PIL import Image

from selfflow_robot.evaluation import report as er


def _records():
    recs = []
    for ckpt, p_open in (("run-a", 0.75), ("run-b", 0.25)):
        for task in ("open_top_drawer", "open_middle_drawer", "close_bottom_drawer"):
            for i in range(4):
                ok = (i < 4 * p_open) if task.startswith("open") else True
                recs.append({"checkpoint": ckpt, "task": task, "episode": i, "success": ok})
    return recs


def test_write_eval_report_files_and_numbers(tmp_path):
    paths = er.write_eval_report(_records(), tmp_path, suite="drawer_visual_matching",
                            checkpoints={"run-a": "/x/run-a"}, extra={"workers": 2})
    res = json.loads((tmp_path / "results.json").read_text())
    a = res["checkpoints"]["run-a"]
    assert a["path"] == "/x/run-a" and res["workers"] == 2
    assert a["sub_cells"]["open_drawer"]["rate"] == 0.75 and a["sub_cells"]["open_drawer"]["trials"] == 8
    assert a["sub_cells"]["close_drawer"]["rate"] == 1.0
    assert a["columns"]["drawer"]["rate"] == 0.875
    assert a["average_sub_cells"]["over"] == ["open_drawer", "close_drawer"]
    assert res["checkpoints"]["run-b"]["columns"]["drawer"]["rate"] == 0.625
    rt1 = next(p for p in res["published_percent"] if p["policy"] == "RT-1 (Converged)")
    assert rt1["columns"]["drawer"] == 73.0 and abs(rt1["average_sub_cells"] - 74.57) < 0.01

    md = (tmp_path / "results.md").read_text()
    assert "| **ours: `run-a`** | 87.5 | 75.0 | 100.0 | this run |" in md
    assert "| RT-1 (Converged) | 73.0 | 60.1 | 86.1 | SIMPLER Tab. IV |" in md
    assert "coke H" not in md.split("### Beside")[0].split("\n")[2]  # only evaluated cells are columns

    img = np.asarray(Image.open(paths["plot"]).convert("RGB"))
    assert img.shape[0] > 200 and img.shape[1] > 400 and img.std() > 10  # a real, non-blank figure


def test_records_from_simpler_video_names(tmp_path):
    base = tmp_path / "ckpt-7" / "dummy_drawer" / ("arm_pd_ee_delta_pose_align_interpolate_by_planner_gripper_pd_"
                                                   "joint_target_delta_pos_interpolate_by_planner")
    d1 = (base / ("OpenTopDrawerCustomInScene-v0_shader_dir_rt_station_name_mk_station_recolor_light_mode_simple_"
                  "disable_bad_material_True_urdf_version_None")
          / "rob_0.644_-0.179_rot_0.000_-0.000_3.112_rgb_overlay_open_drawer_a0")
    d2 = (base / "CloseTopDrawerCustomInScene-v0_station_name_mk_station_recolor"
          / "rob_0.652_0.009_rot_0.000_-0.000_3.142_rgb_overlay_open_drawer_b0")
    for d, name in ((d1, "success_obj_0.0_0.0_qpos_0.171.mp4"), (d2, "failure_obj_0.0_0.0_qpos_0.120.mp4"),
                    (d2, "success_obj_0.0_0.0_qpos_0.010.mp4")):
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(b"")
    (d1 / "actions").mkdir()
    (d1 / "actions" / "success_obj_0.0_0.0_qpos_0.171.png").write_bytes(b"")
    recs = er.records_from_simpler_videos(tmp_path)
    assert sorted((r["task"], r["success"]) for r in recs) == [
        ("CloseTopDrawerCustomInScene-v0", False), ("CloseTopDrawerCustomInScene-v0", True),
        ("OpenTopDrawerCustomInScene-v0", True)]
    s = er.scores_by_checkpoint(recs)["ckpt-7"]
    assert s.cells["open_drawer"].rate == 1.0 and s.cells["close_drawer"].rate == 0.5

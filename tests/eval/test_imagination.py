"""Policy evaluation in imagination: the success judge, closed-loop imagined episodes from the port's start
frames, the ranking against the port, and `selfflow-robot imagine-eval` end to end with real tiny checkpoints."""
import json
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from selfflow_robot.errors import ConfigError, UserError
from selfflow_robot.evaluation.evaluate import append_record
from selfflow_robot.evaluation.imagination.cli import ImagineEvalConfig, imagine_eval
from selfflow_robot.evaluation.imagination.judge import SuccessJudge, drawer_task, success_rule
from selfflow_robot.evaluation.imagination.judge_train import (
    JudgeTrainConfig,
    LabelledFrames,
    labelled_frames,
    train_judge,
)
from selfflow_robot.evaluation.imagination.ranking import (
    PolicyResult,
    port_outcomes,
    port_records,
    ranking_summary,
    write_ranking_report,
)
from selfflow_robot.evaluation.imagination.rollout import imagine_episodes, read_starts, replay_episodes
from selfflow_robot.evaluation.metrics import mmrv, pearson
from selfflow_robot.policies.policy import SelfFlowPolicy
from selfflow_robot.world_model.rollout import WorldModel

TASKS = ["open_top_drawer", "close_middle_drawer", "open_bottom_drawer"]


def _drawer_frames(n: int, size: tuple[int, int] = (64, 80), seed: int = 0) -> LabelledFrames:
    """Frames whose task drawer's opening is drawn as a bright bar (length proportional to the opening) in that
    drawer's row band, over noise: a judge can only get the opening right by reading the bar of the right drawer."""
    rng = np.random.default_rng(seed)
    H, W = size
    frames = rng.integers(0, 60, size=(n, H, W, 3), dtype=np.uint8)
    opening = rng.uniform(0, 0.3, n).astype(np.float32)
    tasks = [TASKS[i % len(TASKS)] for i in range(n)]
    for i, (t, q) in enumerate(zip(tasks, opening)):
        row = drawer_task(t)[1] * H // 3 + 4
        frames[i, row:row + 8, : 4 + int(q / 0.3 * (W - 8))] = 230
    episode = np.arange(n) // 10
    last = (np.arange(n) % 10) == 9
    return LabelledFrames(frames, opening, tasks, episode, last)


def test_success_rule_is_the_simulators():
    assert success_rule("open_top_drawer", [0.149, 0.15]).tolist() == [False, True]
    assert success_rule("close_bottom_drawer", [0.05, 0.051]).tolist() == [True, False]
    assert drawer_task("close_middle_drawer") == ("close", 1)
    with pytest.raises(UserError, match="drawer tasks"):
        drawer_task("place_apple_in_closed_top_drawer")


def test_judge_learns_the_drawer_opening_and_round_trips(tmp_path):
    data = _drawer_frames(600)
    cfg = JudgeTrainConfig(output_dir=str(tmp_path / "judge"), steps=300, batch_size=32, lr=3e-3)
    judge, m = train_judge(cfg, data)
    # guessing the mean opening would be off by 7.5 cm on average; the bar gives it away
    assert m["held_out"]["opening_mae_m"] < 0.04, m["held_out"]
    assert m["held_out"]["accuracy"] > 0.85 and m["episodes"]["held_out"] == 12
    loaded = SuccessJudge.load(tmp_path / "judge")
    x, tasks = data.frames[:16], data.tasks[:16]
    np.testing.assert_allclose(loaded.opening(x, tasks), judge.opening(x, tasks), atol=1e-6)
    assert loaded.metrics["held_out"]["frames"] == m["held_out"]["frames"]
    with pytest.raises(UserError, match="reads \\(64, 80\\) frames"):
        loaded.opening(np.zeros((1, 32, 40, 3), np.uint8), ["open_top_drawer"])
    with pytest.raises(UserError, match="no success judge"):
        SuccessJudge.load(tmp_path)


def test_judge_reads_the_robot_state_where_the_sweeps_record_it(tmp_path):
    """Frames that also show the tool's (x, y) as a blue square: the judge learns to read it (frames of episodes
    without a recorded state still teach the openings), saves its normalisation, and reports held-out errors."""
    data = _drawer_frames(600)
    rng = np.random.default_rng(1)
    H, W = data.frames.shape[1:3]
    state = np.tile(np.array([0.5, -0.1, 0.9, -0.6, 0.78, -0.03, 0.16, 0.0], np.float32), (600, 1))
    state[:, :2] = rng.uniform([0.3, -0.3], [0.7, 0.1], (600, 2))
    for i, (x, y) in enumerate(state[:, :2]):
        r, c = 4 + int((y + 0.3) / 0.4 * (H - 18)), 4 + int((x - 0.3) / 0.4 * (W - 18))
        data.frames[i, r:r + 10, c:c + 10] = (0, 0, 255)
    state[data.episode % 3 == 2] = np.nan                       # every third episode recorded no state
    data.state = state
    judge, m = train_judge(JudgeTrainConfig(output_dir=str(tmp_path / "judge"), steps=600, batch_size=32, lr=3e-3),
                           data)
    held = m["held_out"]
    assert judge.cfg.state_dim == 8 and 0 < held["state_frames"] < held["frames"]   # labelled held-out frames only
    # predicting the mean would be off by about 10 cm in x and y (0 in z): 6.7 cm on the mean of the three
    assert held["state_position_mae_cm"] < 3.0, held
    assert held["opening_mae_m"] < 0.05, held
    loaded = SuccessJudge.load(tmp_path / "judge")
    np.testing.assert_allclose(loaded.state(data.frames[:8]), judge.state(data.frames[:8]), atol=1e-5)
    assert loaded.state(data.frames[:3]).shape == (3, 8)
    data.state = None                                           # no recorded state: an openings-only judge
    plain, _ = train_judge(JudgeTrainConfig(output_dir=str(tmp_path / "plain"), steps=2), data)
    assert plain.cfg.state_dim == 0
    with pytest.raises(UserError, match="trained without robot states"):
        SuccessJudge.load(tmp_path / "plain").state(data.frames[:1])


def test_judge_frames_come_from_eval_sweeps(tmp_path):
    """Per-frame openings label every frame of an episode's video; an older record labels only its last frame."""
    video = tmp_path / "videos" / "ep0.mp4"
    video.parent.mkdir()
    frames = np.random.default_rng(0).integers(0, 255, size=(5, 128, 160, 3), dtype=np.uint8)
    imageio.mimwrite(video, frames, fps=5, macro_block_size=16)
    with open(tmp_path / "episodes.jsonl", "w") as f:
        append_record(f, {"task": "open_top_drawer", "episode": 0, "video": str(video),
                          "drawer_qpos": [0.0, 0.05, 0.1, 0.15, 0.2], "final_drawer_qpos": 0.2,
                          "tool_state": [[0.4 + 0.01 * i, -0.2, 0.9, -0.6, 0.78, -0.03, 0.16, 0.0] for i in range(5)]})
        append_record(f, {"task": "close_top_drawer", "episode": 1, "video": str(video), "final_drawer_qpos": 0.03})
        append_record(f, {"task": "close_top_drawer", "episode": 2, "success": False})   # no video: skipped
    data = labelled_frames([str(tmp_path)], (64, 80))
    assert data.frames.shape == (6, 64, 80, 3) and data.frames.dtype == np.uint8
    np.testing.assert_allclose(data.opening, [0.0, 0.05, 0.1, 0.15, 0.2, 0.03])
    assert data.last.tolist() == [False, False, False, False, True, True]
    assert data.tasks[-1] == "close_top_drawer" and data.episode.tolist() == [0] * 5 + [1]
    np.testing.assert_allclose(data.state[:5, 0], [0.4, 0.41, 0.42, 0.43, 0.44], atol=1e-6)
    assert np.isnan(data.state[5]).all()                        # the older record has no state
    with open(tmp_path / "episodes.jsonl", "a") as f:
        append_record(f, {"task": "open_top_drawer", "episode": 3, "video": str(video),
                          "drawer_qpos": [0.0] * 5, "tool_state": [[0.0] * 8] * 4})
    with pytest.raises(UserError, match="tool_state of shape \\(4, 8\\)"):
        labelled_frames([str(tmp_path)], (64, 80))
    with pytest.raises(UserError, match="no episodes.jsonl"):
        labelled_frames([str(tmp_path / "videos")], (64, 80))


def test_ranking_against_the_port(tmp_path):
    keys = [(t, e) for t in ("open_top_drawer", "close_top_drawer") for e in range(4)]
    port_rates = [0.0, 0.25, 0.5, 0.75]
    results = []
    for i, rate in enumerate(port_rates):
        port = {k: j < rate * 8 for j, k in enumerate(keys)}
        imagined = {k: (j < rate * 8) != (j == 0 and i == 1) for j, k in enumerate(keys)}  # one flip for policy 1
        results.append(PolicyResult(f"p{i}", f"/ckpt/p{i}", imagined, port, 1.0, 10.0))
    results.append(PolicyResult("no_port", "/ckpt/x", dict.fromkeys(keys, True)))
    s = ranking_summary(results)
    drawer_sim = [p["drawer_imagined"] for p in s["policies"][:4]]
    drawer_real = [p["drawer_port"] for p in s["policies"][:4]]
    assert s["compared"] == 4 and s["pearson"] == pytest.approx(pearson(drawer_sim, drawer_real))
    assert s["mmrv"] == pytest.approx(mmrv(drawer_sim, drawer_real))
    assert s["policies"][1]["episode_agreement"] == pytest.approx(7 / 8) and s["policies"][4]["drawer_port"] is None
    assert s["imagined_cpu_s"] == 4.0 and s["port_cpu_s"] == 40.0
    paths = write_ranking_report(results, tmp_path)
    assert "Pearson r" in paths["table"].read_text() and paths["plot"].stat().st_size > 0
    # the port's outcomes of one checkpoint, read from an eval folder
    with open(tmp_path / "episodes.jsonl", "w") as f:
        for ck, task, ep, ok in [("/ckpt/p1", "open_top_drawer", 0, True), ("/ckpt/p2", "open_top_drawer", 0, False)]:
            append_record(f, {"checkpoint_path": ck, "task": task, "episode": ep, "success": ok, "seconds": 12.5})
    assert port_outcomes(port_records([str(tmp_path)], "/ckpt/p1")) == ({("open_top_drawer", 0): True}, 12.5)


@pytest.mark.sim
def test_imagined_episodes_run_closed_loop_from_the_port_start(eval_ckpt, eval_state_ckpt, sim_assets):
    starts = read_starts([("open_top_drawer", 0), ("close_middle_drawer", 4)], asset_root=sim_assets)
    assert [s.instruction for s in starts] == ["open top drawer", "close middle drawer"]
    assert starts[0].frame.shape == (512, 640, 3) and starts[0].frame.dtype == np.uint8
    wm = WorldModel.from_pretrained(eval_ckpt, steps=1)
    policy = SelfFlowPolicy.from_pretrained(eval_ckpt, steps=1)
    eps = imagine_episodes(wm, policy, starts, max_steps=6, progress=False)
    h, w = wm.image_size
    assert eps.frames.shape == (2, 7, h, w, 3) and eps.frames.dtype == np.uint8
    assert (eps.steps <= 6).all() and eps.last_frames().shape == (2, h, w, 3)
    assert not np.array_equal(eps.frames[:, 1], eps.frames[:, 0])        # the world model imagined something
    again = imagine_episodes(wm, SelfFlowPolicy.from_pretrained(eval_ckpt, steps=1), starts, max_steps=6,
                             progress=False)
    np.testing.assert_array_equal(again.frames, eps.frames)               # seeded: reproducible
    state_policy = SelfFlowPolicy.from_pretrained(eval_state_ckpt, steps=1)
    with pytest.raises(ConfigError, match="judge that reads it"):
        imagine_episodes(wm, state_policy, starts, max_steps=6)
    seen = []

    def read_state(frames):                 # what a state-reading judge gives: one state per imagined frame
        seen.append(frames.copy())
        return np.tile([0.45, -0.2, 0.9, -0.6, 0.78, -0.03, 0.16, 0.0], (len(frames), 1))

    H = state_policy.horizon
    eps = imagine_episodes(wm, state_policy, starts, max_steps=H + 2, progress=False, state_reader=read_state)
    assert eps.frames.shape == (2, H + 3, h, w, 3) and len(seen) == 1 + int(eps.steps.max() > H)
    for chunk, frames in enumerate(seen):          # each chunk's state is read off the newest frame so far
        np.testing.assert_array_equal(frames, eps.frames[:, chunk * H])


@pytest.mark.sim
def test_imagine_eval_ranks_checkpoints_and_writes_videos(eval_ckpt, other_eval_ckpt, sim_assets, tmp_path):
    other = other_eval_ckpt
    h, w = WorldModel.from_pretrained(eval_ckpt).image_size
    train_judge(JudgeTrainConfig(output_dir=str(tmp_path / "judge"), image_size=[h, w], steps=10),
                _drawer_frames(60, (h, w)))
    port = tmp_path / "port"
    port.mkdir()
    with open(port / "episodes.jsonl", "w") as f:      # the port's outcomes of both checkpoints, as eval writes them
        for ck, ok in [(eval_ckpt, True), (other, False)]:
            for ep in (0, 9):
                append_record(f, {"checkpoint_path": str(ck), "task": "open_top_drawer", "episode": ep,
                                  "success": ok and ep == 0, "seconds": 20.0})
    # the second policy given as its run folder: it still matches the port's records of its newest step folder
    cfg = ImagineEvalConfig(world_model=str(eval_ckpt), ckpt=[str(eval_ckpt), str(Path(other).parents[1])],
                            judge=str(tmp_path / "judge"), port=[str(port)], tasks=["open_top_drawer"],
                            episodes=[0, 9], max_steps=5, videos=1, output_dir=str(tmp_path / "out"),
                            asset_root=sim_assets, policy_options={"steps": 1})
    out = imagine_eval(cfg)
    lines = [json.loads(x) for x in (tmp_path / "out" / "episodes.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and {x["port_success"] for x in lines} == {True, False}
    assert all(0 < x["steps"] <= 5 for x in lines)
    summary = json.loads(out["paths"]["json"].read_text())
    assert summary["compared"] == 2 and summary["port_cpu_s"] == 80.0
    assert len(list((tmp_path / "out" / "videos").rglob("*.mp4"))) == 2


@pytest.mark.sim
def test_replay_feeds_the_recorded_actions_open_loop(eval_ckpt, sim_assets):
    starts = read_starts([("open_top_drawer", 0), ("close_middle_drawer", 4)], asset_root=sim_assets)
    wm = WorldModel.from_pretrained(eval_ckpt, steps=1)
    rng = np.random.default_rng(0)
    actions = [rng.normal(0, 0.02, (7, 7)).astype(np.float32), rng.normal(0, 0.02, (4, 7)).astype(np.float32)]
    eps = replay_episodes(wm, starts, actions, terminated=[False, True], progress=False)
    h, w = wm.image_size
    assert eps.frames.shape == (2, 8, h, w, 3) and eps.steps.tolist() == [7, 4] and eps.terminated.tolist() == [0, 1]
    assert not np.array_equal(eps.frames[0, 1:5], eps.frames[1, 1:5])
    # one episode is exactly the world model's own rollout of its actions from the start frame
    one = replay_episodes(wm, starts[:1], actions[:1], progress=False)
    alone = wm.rollout(eps.frames[0, :1], actions[0], text=wm.language(starts[0].instruction))
    np.testing.assert_array_equal(one.frames[0, 1:], (np.clip(alone, 0, 1) * 255 + 0.5).astype(np.uint8))
    with pytest.raises(ConfigError, match="one non-empty"):
        replay_episodes(wm, starts, actions[:1])


@pytest.mark.sim
def test_imagine_eval_replays_the_ports_actions_against_its_video(eval_ckpt, sim_assets, tmp_path):
    """The port's record of an episode gives its actions; the report scores the imagined frames against the port's
    video: a video of exactly what the world model imagines scores far above copying the start frame."""
    h, w = WorldModel.from_pretrained(eval_ckpt).image_size
    train_judge(JudgeTrainConfig(output_dir=str(tmp_path / "judge"), image_size=[h, w], steps=10),
                _drawer_frames(60, (h, w)))
    port = tmp_path / "port"
    port.mkdir()
    rng = np.random.default_rng(1)
    record = {"checkpoint_path": str(eval_ckpt), "task": "open_top_drawer", "episode": 0, "success": True,
              "seconds": 20.0, "terminated_by_policy": False, "final_drawer_qpos": 0.31,
              "actions": np.round(rng.normal(0, 0.05, (6, 7)), 5).tolist()}
    with open(port / "episodes.jsonl", "w") as f:
        append_record(f, record)
    cfg = dict(world_model=str(eval_ckpt), ckpt=[str(eval_ckpt)], judge=str(tmp_path / "judge"), port=[str(port)],
               tasks=["open_top_drawer"], episodes=[0], videos=0, asset_root=sim_assets, replay=True)
    first = imagine_eval(ImagineEvalConfig(**cfg, output_dir=str(tmp_path / "a")))
    assert first["results"][0].replay_psnr is not None and np.isnan(first["results"][0].replay_psnr).all()
    # the port's "video": the imagined episode itself at the simulator's size (what a perfect world model shows)
    start = read_starts([("open_top_drawer", 0)], asset_root=sim_assets)[0].frame
    imagined = replay_episodes(WorldModel.from_pretrained(eval_ckpt, steps=1),
                               read_starts([("open_top_drawer", 0)], asset_root=sim_assets),
                               [np.asarray(record["actions"], np.float32)], progress=False).frames[0]
    fy, fx = start.shape[0] // h, start.shape[1] // w
    big = np.stack([start] + [f.repeat(fy, 0).repeat(fx, 1) for f in imagined[1:]])
    video = tmp_path / "port_video.mp4"
    imageio.mimwrite(video, big, fps=5, macro_block_size=16)
    with open(port / "episodes.jsonl", "w") as f:
        append_record(f, {**record, "video": str(video)})
    out = imagine_eval(ImagineEvalConfig(**cfg, output_dir=str(tmp_path / "b")))
    wm_db, copy_db = out["results"][0].replay_psnr
    assert wm_db > 28 and wm_db > copy_db + 3
    line = json.loads((tmp_path / "b" / "episodes.jsonl").read_text())
    assert line["replay_psnr_db"] == pytest.approx(wm_db, abs=1e-3) and line["port_success"] is True
    assert line["port_opening"] == 0.31           # the port's true opening, beside what the judge read
    assert "Replay of the port's actions" in out["paths"]["table"].read_text()
    assert out["paths"]["replay_plot"].stat().st_size > 0       # PSNR per frame, imagined against start held
    with pytest.raises(ConfigError, match="give port="):
        ImagineEvalConfig(**{**cfg, "port": []})
    with open(port / "episodes.jsonl", "w") as f:        # a sweep from before actions were recorded
        append_record(f, {k: v for k, v in record.items() if k != "actions"})
    with pytest.raises(UserError, match="no port record with actions for 1 of 1"):
        imagine_eval(ImagineEvalConfig(**cfg, output_dir=str(tmp_path / "c")))


STATE = [0.45, -0.2, 0.9, -0.6, 0.78, -0.03, 0.16, 0.0]


@pytest.mark.sim
def test_a_world_model_that_takes_the_state_gets_it_in_closed_loop_and_replay(eval_ckpt, eval_wm_state_ckpt,
                                                                              sim_assets):
    starts = read_starts([("open_top_drawer", 0)], asset_root=sim_assets)
    wm = WorldModel.from_pretrained(eval_wm_state_ckpt, steps=1)
    policy = SelfFlowPolicy.from_pretrained(eval_ckpt, steps=1)          # image-only: every read is the world model's
    with pytest.raises(ConfigError, match="world model takes the robot state"):
        imagine_episodes(wm, policy, starts, max_steps=3)
    seen = []

    def read_state(frames):
        seen.append(frames.copy())
        return np.tile(STATE, (len(frames), 1))

    H = wm.horizon
    eps = imagine_episodes(wm, policy, starts, max_steps=H + 2, progress=False, state_reader=read_state)
    assert len(seen) == 1 + int(eps.steps.max() > H)
    for chunk, frames in enumerate(seen):          # read off the newest frame at each world-model chunk
        np.testing.assert_array_equal(frames, eps.frames[:, chunk * H])
    acts = [np.random.default_rng(0).normal(0, 0.02, (6, 7)).astype(np.float32)]
    recorded = replay_episodes(wm, starts, acts, states=[np.tile(STATE, (7, 1))], progress=False)
    read = replay_episodes(wm, starts, acts, state_reader=lambda f: np.tile(STATE, (len(f), 1)), progress=False)
    np.testing.assert_array_equal(recorded.frames, read.frames)
    assert not np.array_equal(recorded.frames, replay_episodes(wm, starts, acts, progress=False).frames)  # null state
    with pytest.raises(ConfigError, match="one row per frame"):
        replay_episodes(wm, starts, acts, states=[np.tile(STATE, (6, 1))])


@pytest.mark.sim
def test_imagine_eval_wm_state_recorded_replays_with_the_ports_states(eval_wm_state_ckpt, sim_assets, tmp_path):
    h, w = WorldModel.from_pretrained(eval_wm_state_ckpt).image_size
    train_judge(JudgeTrainConfig(output_dir=str(tmp_path / "judge"), image_size=[h, w], steps=10),
                _drawer_frames(60, (h, w)))                         # a judge that does not read the state
    port = tmp_path / "port"
    port.mkdir()
    record = {"checkpoint_path": str(eval_wm_state_ckpt), "task": "open_top_drawer", "episode": 0, "success": False,
              "seconds": 20.0, "actions": np.round(np.random.default_rng(2).normal(0, 0.05, (5, 7)), 5).tolist(),
              "tool_state": np.tile(STATE, (6, 1)).tolist()}
    with open(port / "episodes.jsonl", "w") as f:
        append_record(f, record)
    cfg = dict(world_model=str(eval_wm_state_ckpt), ckpt=[str(eval_wm_state_ckpt)], judge=str(tmp_path / "judge"),
               port=[str(port)], tasks=["open_top_drawer"], episodes=[0], videos=0, asset_root=sim_assets,
               replay=True)
    runs = {s: imagine_eval(ImagineEvalConfig(**cfg, wm_state=s, output_dir=str(tmp_path / s)))
            for s in ("recorded", "none")}
    assert all(len(r["episodes"]) == 1 and r["episodes"][0]["steps"] == 5 for r in runs.values())
    with pytest.raises(ConfigError, match="judge that reads it"):
        imagine_eval(ImagineEvalConfig(**cfg, output_dir=str(tmp_path / "read")))       # wm_state=read
    with pytest.raises(ConfigError, match="only a replay has"):
        ImagineEvalConfig(**{**cfg, "replay": False, "wm_state": "recorded"})
    with open(port / "episodes.jsonl", "w") as f:
        append_record(f, {k: v for k, v in record.items() if k != "tool_state"})
    with pytest.raises(UserError, match="lack the robot state"):
        imagine_eval(ImagineEvalConfig(**cfg, wm_state="recorded", output_dir=str(tmp_path / "c")))

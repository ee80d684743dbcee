"""End to end with the real components: `data synth` -> `train` (a few steps) -> SelfFlowPolicy and
`imagine` from the checkpoint, also after moving the run dir (statistics travel with the checkpoint)."""
from __future__ import annotations

import json
import shutil
import time

import imageio.v2 as imageio
import numpy as np
import pytest

from selfflow_robot.cli import main as cli
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.policies import SelfFlowPolicy, check_simpler_action

pytestmark = pytest.mark.slow

TRAIN_STEPS = 3


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data, run = root / "data", root / "run"
    assert cli(["data", "synth", f"output_dir={data}", "episodes=8", "min_steps=8", "max_steps=12"]) == 0
    assert cli(["train", "model=tiny", "data=synth", f"data.path={data}", "data.val_fraction=0.25", "train=cpu",
                f"train.steps={TRAIN_STEPS}", "train.batch_size=2", "train.save_every=0", "train.val_every=0",
                "train.log_every=1", f"output_dir={run}"]) == 0
    return root, data, run


def _episode(policy, frames, task):
    policy.reset(task)
    return [policy.step(f, task) for f in frames]


def test_trained_checkpoint_policy_schema_latency_and_moved_dir(trained, tmp_path):
    root, data, run = trained

    task = RLDSReader(data).read(0).instruction  # an instruction the checkpoint's language table knows
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (512, 640, 3), dtype=np.uint8) for _ in range(6)]

    policy = SelfFlowPolicy.from_pretrained(run, steps=10, execute_horizon=2)
    assert policy.source.name == f"step-{TRAIN_STEPS:07d}"
    policy.reset(task)
    timings = []
    results = []
    for f in frames:
        t0 = time.perf_counter()
        results.append(policy.step(f, task))
        timings.append((time.perf_counter() - t0) * 1e3)
        check_simpler_action(results[-1][1])
    chunk = policy.infer({"image": frames[0]})
    print(f"\nSelfFlowPolicy (trained tiny, 10 denoising steps, CPU): step latency with a new chunk "
          f"{np.median(timings[0::2]):.1f} ms, from the queued chunk {np.median(timings[1::2]):.2f} ms; "
          f"infer() chunk {chunk['timing']['infer_ms']:.1f} ms for {chunk['actions'].shape[0]} actions")

    moved = tmp_path / "moved_run"
    shutil.move(str(run), moved)
    try:
        again = _episode(SelfFlowPolicy.from_pretrained(moved, steps=10, execute_horizon=2), frames, task)
        for (_, a), (_, b) in zip(results, again):
            for key in a:
                np.testing.assert_array_equal(a[key], b[key])
    finally:
        shutil.move(str(moved), run)


def test_imagine_on_the_held_out_episode_writes_a_real_mp4(trained, capsys):
    root, data, run = trained
    out = root / "imagine"
    assert cli(["imagine", f"ckpt={run}", f"data.path={data}", "steps=4", "length=6", f"output_dir={out}"]) == 0
    printed = capsys.readouterr().out
    assert "PSNR copy-last" in printed
    [mp4] = list(out.glob("*.mp4"))
    frames = [f for f in imageio.get_reader(mp4)]
    assert len(frames) == 2 + 6 and frames[0].ndim == 3 and frames[0].shape[1] > frames[0].shape[0]
    [metrics] = list(out.glob("*_metrics.json"))
    m = json.loads(metrics.read_text())["metrics"]
    assert len(m["psnr"]) == 6 and np.isfinite(m["psnr"]).all()

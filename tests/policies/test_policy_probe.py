"""The conditioning probe: real synthetic RLDS demos, real tiny checkpoints, the real policy and script."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.data.synth import SynthConfig, write_synthetic
from selfflow_robot.errors import ConfigError, DataError
from selfflow_robot.policies.policy import SelfFlowPolicy
from selfflow_robot.policies.probe import episodes_by_instruction, probe_conditioning

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import probe_conditioning as probe_script  # noqa: E402

A, B = "open top drawer", "close middle drawer"


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> Path:
    """10 synthetic episodes (8-10 steps): 2 per instruction, with the robot state."""
    root = tmp_path_factory.mktemp("probe_demos")
    return write_synthetic(SynthConfig(output_dir=str(root), episodes=10, min_steps=8, max_steps=10, shards=1, seed=3))


@pytest.fixture(scope="module")
def state_ckpt(tmp_path_factory, write_tiny_ckpt, demos) -> Path:
    return write_tiny_ckpt(tmp_path_factory.mktemp("probe_run") / "run", data={"path": str(demos)}, state_dim=8)


def _pairs(demos: Path, a: str = A, b: str = B, n: int = 2):
    return episodes_by_instruction(RLDSReader(demos), [a, b], n)


def test_probe_measures_each_input_and_the_demo_gap(state_ckpt, demos):
    policy = SelfFlowPolicy.from_pretrained(state_ckpt, steps=1)
    eps_a, eps_b = _pairs(demos)
    assert [e.instruction for e in eps_a] == [A, A] and [e.instruction for e in eps_b] == [B, B]
    assert [e.episode_id for e in eps_a] == [2, 7] and [e.episode_id for e in eps_b] == [3, 8]  # synth: round-robin
    result = probe_conditioning(policy, eps_a, eps_b, steps=(0, 2, 4))
    assert result.instructions == (A, B) and result.pairs == 2 and result.steps == [0, 2, 4]
    assert set(result.swap) == {"image", "text", "state"}
    for name in ("image", "text", "state"):  # a random-weight model responds to every input
        assert len(result.per_step[name]) == 3 and result.swap[name] > 0
        assert result.swap[name] == pytest.approx(np.mean(result.per_step[name]))
    want = np.mean([np.abs(eb.actions()[t:t + 4, :3] - ea.actions()[t:t + 4, :3]).mean()
                    for t in (0, 2, 4) for ea, eb in zip(eps_a, eps_b)])
    assert result.demo == pytest.approx(want, rel=1e-6) and result.demo > 0
    table = result.to_markdown()
    assert "| image |" in table and "| state |" in table and "(demos: B's actions)" in table and "100% |" in table


def test_swapping_in_the_same_inputs_changes_nothing(state_ckpt, demos):
    """Every prediction starts from the same sampler noise, so identical inputs give an exact 0."""
    policy = SelfFlowPolicy.from_pretrained(state_ckpt, steps=3)   # sampled chunks: noise would show
    eps_a, _ = _pairs(demos)
    result = probe_conditioning(policy, eps_a, eps_a, steps=(1, 3))
    assert result.swap == {"image": 0.0, "text": 0.0, "state": 0.0} and result.demo == 0.0
    assert "| - |" in result.to_markdown()


def test_state_free_checkpoint_probes_image_and_text(tiny_ckpt, demos):
    policy = SelfFlowPolicy.from_pretrained(tiny_ckpt, steps=1)
    result = probe_conditioning(policy, *_pairs(demos, n=1), steps=(0,))
    assert set(result.swap) == {"image", "text"} and result.pairs == 1


def test_clear_errors(state_ckpt, demos):
    with pytest.raises(DataError, match="no episode with the instruction 'open the fridge'.*pick coke can"):
        _pairs(demos, b="open the fridge")
    policy = SelfFlowPolicy.from_pretrained(state_ckpt, steps=1)
    with pytest.raises(ConfigError, match=r"steps \[40\] are outside the shortest probed episode \(\d+ steps\)"):
        probe_conditioning(policy, *_pairs(demos), steps=(0, 40))
    with pytest.raises(ConfigError, match="at least one episode"):
        probe_conditioning(policy, [], [], steps=(0,))


def test_script_reads_the_checkpoints_own_data_and_writes_json(state_ckpt, tmp_path, capsys):
    out = tmp_path / "probe.json"
    assert probe_script.main(["--ckpt", str(state_ckpt.parent.parent), "--pair", A, B, "--episodes", "2",
                              "--steps", "0", "3", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| text |" in printed and "t=3" in printed
    saved = json.loads(out.read_text())
    assert saved["checkpoint"] == str(state_ckpt) and saved["instructions"] == [A, B]
    assert set(saved["swap"]) == {"image", "text", "state"} and saved["pairs"] == 2
    assert probe_script.main(["--ckpt", str(state_ckpt), "--pair", A, "fly to the moon"]) == 2
    assert "no episode with the instruction 'fly to the moon'" in capsys.readouterr().err

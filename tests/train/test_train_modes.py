"""`build_flow_batch`: per-example modes set the right noisy / key / loss masks; text dropout; tokens."""
from __future__ import annotations

import numpy as np
import torch

from selfflow_robot import constants as C
from selfflow_robot.model import build_model, dit_config
from selfflow_robot.model.future import future_from_model
from selfflow_robot.train.modes import MODES, Mode, build_flow_batch, mode_probabilities, sample_modes


def _batch(B=3, k=2, H=4, size=(32, 40)):
    g = np.random.default_rng(0)
    frame_pad = np.zeros((B, H), bool)
    frame_pad[1, 2:] = True
    action_pad = frame_pad.copy()
    return {
        C.CONTEXT_FRAMES: torch.from_numpy(g.integers(0, 255, (B, k, *size, 3), dtype=np.uint8)),
        C.FUTURE_FRAMES: torch.from_numpy(g.integers(0, 255, (B, H, *size, 3), dtype=np.uint8)),
        C.ACTIONS_RAW: torch.from_numpy(g.normal(size=(B, H, 7)).astype(np.float32)),
        C.TERMINATE_FLAG: torch.zeros(B, H),
        C.ACTION_PAD: torch.from_numpy(action_pad), C.FRAME_PAD: torch.from_numpy(frame_pad),
        C.LANGUAGE_EMBEDDING: torch.randn(B, 512), C.INSTRUCTION: ["a", "b", "c"],
    }


def _tokens(actions, terminate):
    return torch.cat([actions.clamp(-1, 1), terminate[..., None] * 2 - 1], -1)


def test_modes_set_noisy_key_and_loss_masks():
    cfg = dit_config("tiny", image_size=(32, 40))
    _, codec = build_model(cfg)
    batch = _batch()
    modes = torch.tensor([MODES.index(Mode.world_model), MODES.index(Mode.policy), MODES.index(Mode.joint)])
    fb = build_flow_batch(batch, codec.encode, _tokens, modes, text_dropout=0.0, device=torch.device("cpu"))
    per = cfg.tokens_per_frame
    assert fb.x0[C.CONTEXT].shape == (3, 2 * per, cfg.frame_token_dim)
    assert fb.x0[C.FUTURE].shape == (3, 4 * per, cfg.frame_token_dim) and fb.x0[C.ACTIONS].shape == (3, 4, 8)
    assert fb.noisy[C.FUTURE].tolist() == [True, False, True]       # frames generated: world model, joint
    assert fb.noisy[C.ACTIONS].tolist() == [False, True, True]      # actions generated: policy, joint
    assert not fb.noisy[C.CONTEXT].any()
    # policy example: future frames absent (no token attends to them) and out of the loss
    assert fb.key_mask[C.FUTURE][1].sum() == 0 and fb.key_mask[C.FUTURE][[0, 2]].all()
    assert fb.token_weights(C.FUTURE)[1].sum() == 0
    # padded steps (example 1, steps 2-3) are out of the loss; world-model actions are clean (no loss)
    assert fb.loss_mask[C.ACTIONS][1].tolist() == [True, True, False, False]
    assert fb.token_weights(C.ACTIONS)[0].sum() == 0 and fb.token_weights(C.ACTIONS)[1].sum() == 2
    assert fb.token_weights(C.FUTURE)[0].sum() == 4 * per
    assert not fb.text_drop.any() and torch.equal(fb.text, batch[C.LANGUAGE_EMBEDDING])


def test_mode_sampling_and_text_dropout_follow_probabilities():
    p = mode_probabilities({"world_model": 1.0, "policy": 3.0, "joint": 0.0})
    assert torch.allclose(p, torch.tensor([0.25, 0.75, 0.0], dtype=torch.float64))
    m = sample_modes(4000, p, torch.Generator().manual_seed(0))
    frac = torch.bincount(m, minlength=3).float() / 4000
    assert abs(frac[1] - 0.75) < 0.03 and frac[2] == 0
    cfg = dit_config("tiny", image_size=(32, 40))
    _, codec = build_model(cfg)
    batch = _batch()
    drops = [build_flow_batch(batch, codec.encode, _tokens, torch.zeros(3, dtype=torch.long), 0.5,
                              torch.device("cpu"), torch.Generator().manual_seed(s)).text_drop for s in range(40)]
    rate = torch.stack(drops).float().mean()
    assert 0.3 < rate < 0.7


def test_state_dropout_and_noise():
    """World-model examples get the null state (unless `world_model_state`); `state_dropout` adds the null state to a
    share of the policy/joint examples, `state_noise` perturbs the normalised state; both off = the plain state."""
    cfg = dit_config("tiny", image_size=(32, 40))
    _, codec = build_model(cfg)
    B = 400
    g = np.random.default_rng(1)
    batch = {k: (v[g.integers(0, 3, B)] if torch.is_tensor(v) else [v[0]] * B) for k, v in _batch().items()}
    batch[C.STATE] = torch.randn(B, C.STATE_DIM)
    modes = torch.tensor([MODES.index(Mode.world_model), MODES.index(Mode.policy)]).repeat(B // 2)

    def flow_batch(dropout, noise, seed=0):
        return build_flow_batch(batch, codec.encode, _tokens, modes, 0.0, torch.device("cpu"),
                                torch.Generator().manual_seed(seed), state_input=lambda s: s * 2,
                                state_dropout=dropout, state_noise=noise)

    plain = flow_batch(0.0, 0.0)
    assert torch.equal(plain.state, batch[C.STATE] * 2)
    assert torch.equal(plain.state_drop, modes == MODES.index(Mode.world_model))
    dropped = flow_batch(0.5, 0.0)
    assert dropped.state_drop[0::2].all()                          # world model: always the null state
    assert 0.4 < dropped.state_drop[1::2].float().mean() < 0.6     # policy: about half
    noisy = flow_batch(0.0, 0.2)
    assert 0.18 < (noisy.state - plain.state).std() < 0.22 and torch.equal(noisy.state_drop, plain.state_drop)
    assert torch.equal(flow_batch(0.5, 0.2, seed=3).state, flow_batch(0.5, 0.2, seed=3).state)  # seeded
    # train.world_model_state: the world-model examples get the state too, with the same dropout
    wm_state = build_flow_batch(batch, codec.encode, _tokens, modes, 0.0, torch.device("cpu"),
                                torch.Generator().manual_seed(0), state_input=lambda s: s * 2, state_dropout=0.5,
                                world_model_state=True)
    assert torch.equal(wm_state.state, plain.state)
    assert 0.4 < wm_state.state_drop[0::2].float().mean() < 0.6 and 0.4 < wm_state.state_drop[1::2].float().mean() < 0.6


def test_state_target_is_the_normalised_state_untouched_by_dropout_and_noise():
    """The state head's target is a label: every example (world model included) gets it, never noised or dropped."""
    cfg = dit_config("tiny", image_size=(32, 40))
    _, codec = build_model(cfg)
    batch = _batch()
    batch[C.STATE] = torch.randn(3, C.STATE_DIM)
    modes = torch.tensor([MODES.index(Mode.world_model), MODES.index(Mode.policy), MODES.index(Mode.joint)])
    fb = build_flow_batch(batch, codec.encode, _tokens, modes, 0.0, torch.device("cpu"),
                          torch.Generator().manual_seed(0), state_input=lambda s: s * 2, state_dropout=0.9,
                          state_noise=0.5, state_target=lambda s: s * 3)
    assert torch.equal(fb.state_target, batch[C.STATE] * 3)
    assert not torch.equal(fb.state, batch[C.STATE] * 2)               # the input is noised, the target not
    no_head = build_flow_batch(batch, codec.encode, _tokens, modes, 0.0, torch.device("cpu"))
    assert no_head.state_target is None


def test_future_delta_target_is_the_scaled_change_from_the_last_context_frame():
    """future_delta_scale=s: the future target is s·(frame − last context frame) per future frame, the context
    is untouched, and `future_from_model` gives the frames' own tokens back."""
    cfg = dit_config("tiny", image_size=(32, 40))
    _, codec = build_model(cfg)
    batch, modes, per = _batch(), torch.zeros(3, dtype=torch.long), cfg.tokens_per_frame
    plain = build_flow_batch(batch, codec.encode, _tokens, modes, 0.0, torch.device("cpu"))
    delta = build_flow_batch(batch, codec.encode, _tokens, modes, 0.0, torch.device("cpu"), future_delta_scale=4.0)
    last = codec.encode(batch[C.CONTEXT_FRAMES])[:, -per:]
    assert torch.equal(delta.x0[C.CONTEXT], plain.x0[C.CONTEXT])
    for h in range(4):
        torch.testing.assert_close(delta.x0[C.FUTURE][:, h * per:(h + 1) * per],
                                   4.0 * (plain.x0[C.FUTURE][:, h * per:(h + 1) * per] - last))
    torch.testing.assert_close(future_from_model(delta.x0[C.FUTURE], delta.x0[C.CONTEXT], per, 4.0),
                               plain.x0[C.FUTURE])


def test_context_noise_corrupts_the_world_models_past_only():
    """`context_noise`: world-model and joint examples see a noised context (std up to the setting), policy examples
    the clean one; the targets are untouched; the draw is seeded."""
    cfg = dit_config("tiny", image_size=(32, 40))
    _, codec = build_model(cfg)
    batch = _batch()
    modes = torch.tensor([MODES.index(Mode.world_model), MODES.index(Mode.policy), MODES.index(Mode.joint)])
    clean = build_flow_batch(batch, codec.encode, _tokens, modes, 0.0, torch.device("cpu"),
                             torch.Generator().manual_seed(0))
    noisy = build_flow_batch(batch, codec.encode, _tokens, modes, 0.0, torch.device("cpu"),
                             torch.Generator().manual_seed(0), context_noise=0.5)
    diff = noisy.x0[C.CONTEXT] - clean.x0[C.CONTEXT]
    assert torch.equal(diff[1], torch.zeros_like(diff[1]))                     # policy: clean context
    assert 0 < diff[0].std() <= 0.5 and 0 < diff[2].std() <= 0.5              # world model, joint: noised
    assert torch.equal(noisy.x0[C.FUTURE], clean.x0[C.FUTURE]) and torch.equal(noisy.x0[C.ACTIONS], clean.x0[C.ACTIONS])
    again = build_flow_batch(batch, codec.encode, _tokens, modes, 0.0, torch.device("cpu"),
                             torch.Generator().manual_seed(0), context_noise=0.5)
    assert torch.equal(again.x0[C.CONTEXT], noisy.x0[C.CONTEXT])              # seeded

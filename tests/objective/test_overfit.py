"""`tiny` overfits one fixed batch: the flow-matching loss falls >= 10x within 300 steps, for both objectives.

"Fixed batch" = fixed frames, actions, text, and fixed noise / timestep / mask draws (a seeded generator each
step), so the loss is a deterministic function of the weights that a working model must be able to drive down.
"""
import pytest
import torch

from selfflow_robot.constants import ACTIONS, CONTEXT, FUTURE
from selfflow_robot.model import build_model, dit_config
from selfflow_robot.objective import EMA, FlowBatch, build_objective


def fixed_batch(codec, cfg, B=2):
    g = torch.Generator().manual_seed(0)
    T = cfg.context_frames + cfg.horizon
    # smooth random frames (blurred noise), like camera images rather than white noise
    raw = torch.rand(B * T, 3, cfg.image_size[0], cfg.image_size[1], generator=g)
    raw = torch.nn.functional.avg_pool2d(raw, 5, 1, 2)
    frames = (raw * 255).to(torch.uint8).reshape(B, T, 3, *cfg.image_size).permute(0, 1, 3, 4, 2)
    tokens = codec.encode(frames)
    n = cfg.num_tokens(CONTEXT)
    x0 = {CONTEXT: tokens[:, :n], FUTURE: tokens[:, n:], ACTIONS: torch.rand(B, cfg.horizon, 8, generator=g) * 2 - 1}
    noisy = {FUTURE: torch.ones(B, dtype=torch.bool), ACTIONS: torch.ones(B, dtype=torch.bool)}
    return FlowBatch(x0, noisy, text=torch.randn(B, 512, generator=g))


@pytest.mark.parametrize("name", ["vanilla", "selfflow"])
def test_tiny_overfits_one_fixed_batch(name):
    torch.manual_seed(0)
    cfg = dit_config("tiny", image_size=(32, 40), context_frames=1, horizon=2)
    model, codec = build_model(cfg)
    batch = fixed_batch(codec, cfg)
    objective = build_objective({"name": name}, cfg)
    ema = EMA(model, decay=0.99)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    first = None
    for step in range(300):  # noqa: B007 - the count is reported after the loop
        out = objective(model, ema.module, batch, generator=torch.Generator().manual_seed(0))
        flow = out.logs["flow"].item()
        first = flow if first is None else first
        if flow <= first / 10:
            break
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        ema.update(model)
    print(f"{name}: {first:.4f} -> {flow:.4f} in {step} steps")
    assert flow <= first / 10, f"{name}: flow loss {first:.4f} -> {flow:.4f} after {step + 1} steps"

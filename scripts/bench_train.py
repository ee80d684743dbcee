"""Benchmark training steps side by side: two objectives, or the old and the new training recipe.

One process: measures a matmul peak, then alternates timed rounds of the two arms (full step: forward,
teacher forward for selfflow, backward, AdamW, EMA update) and prints ONE JSON line.

`--compare objectives` (default): objective=selfflow against objective=vanilla on the same model and batch
(`joint` mode batch): step_s_selfflow, step_s_vanilla, ratio (selfflow / vanilla), tokens_per_s_*,
flops_per_step_* (counted with torch.utils.flop_counter on one step), mfu_* (counted FLOP/s over the measured
peak), peak_tflops, ...

`--compare recipes`: the old recipe (`model.attention=full`, one noise draw per window) against the new one
(`model.attention=prefix`, `--draws` draws per window sharing one context pass), on a batch with the training
modes mix (policy rows carry no future frames): windows_per_s_*, signals_per_s_* (windows x draws),
tokens_per_s_* (tokens the model runs: the context once per window under prefix attention), mfu_*, and
signals_ratio (new / old).

Usage:
    python scripts/bench_train.py --model tiny --batch-size 8 --steps 20
    python scripts/bench_train.py --compare recipes --draws 4 --model tiny --batch-size 16 --threads 1
    python scripts/bench_train.py --compare recipes --draws 4 --model tiny --batch-size 16 --threads 1 \
        --new-model codec=ae vae=runs/codec latent_channels=16 vae_downsample=16 patch_size=1
    python scripts/bench_train.py --model small --batch-size 2 --steps 5 model.horizon=2
    python scripts/bench_train.py --model xl --device cuda --dtype bf16 --batch-size 8   # on a GPU

Trailing `model.<key>=<value>` / `objective.<key>=<value>` arguments override the configs.
The batch is synthetic: random frame tokens (or random latents for codec=vae, so no VAE is loaded) in
`joint` mode (future frames and actions noisy), context frames clean.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
from omegaconf import OmegaConf
from torch.utils import flop_counter as fc
from torch.utils.flop_counter import FlopCounterMode

from selfflow_robot.config import structured
from selfflow_robot.constants import ACTIONS, CONTEXT, FUTURE
from selfflow_robot.model import SIZES, DiTConfig, SelfFlowDiT
from selfflow_robot.objective import EMA, FlowBatch, ObjectiveConfig, build_objective
from selfflow_robot.train.config import ModesConfig
from selfflow_robot.train.modes import MODES, Mode, mode_probabilities, sample_modes


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, seconds: float = 2.0) -> float:
    """Best observed FLOP/s of a square matmul (n = 1024 on CPU, 8192 on GPU) in `dtype`."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best, start = 0.0, time.perf_counter()
    for _ in range(2):
        a @ b
    sync(device)
    while best == 0.0 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        sync(device)
        best = max(best, 4 * 2 * n ** 3 / (time.perf_counter() - t0))
    return best


def synthetic_batch(cfg: DiTConfig, B: int, device: torch.device, modes: bool = False) -> FlowBatch:
    """Random clean tokens; every row `joint`, or (`modes`) the default training modes mix, where the policy
    rows carry no future frames (key_mask False) and the world-model rows clean actions."""
    g = torch.Generator().manual_seed(0)
    x0 = {grp: torch.randn(B, cfg.num_tokens(grp), cfg.token_dim(grp), generator=g).clamp(-1, 1).to(device)
          for grp in (CONTEXT, FUTURE, ACTIONS)}
    text = torch.randn(B, cfg.text_dim, generator=g).to(device)
    drop = (torch.rand(B, generator=g) < 0.1).to(device)
    if not modes:
        noisy = {FUTURE: torch.ones(B, dtype=torch.bool, device=device),
                 ACTIONS: torch.ones(B, dtype=torch.bool, device=device)}
        return FlowBatch(x0, noisy, text=text, text_drop=drop)
    mode = sample_modes(B, mode_probabilities(ModesConfig().probabilities()), g).to(device)
    policy = mode == MODES.index(Mode.policy)
    noisy = {FUTURE: ~policy, ACTIONS: mode != MODES.index(Mode.world_model)}
    key_mask = {FUTURE: (~policy)[:, None].expand(B, cfg.num_tokens(FUTURE))}
    return FlowBatch(x0, noisy, text=text, text_drop=drop, key_mask=key_mask)


def tokens_run(cfg: DiTConfig, batch: FlowBatch, draws: int) -> int:
    """Tokens the model runs per step: the present tokens of every draw, the context once per window under
    prefix attention."""
    B = batch.batch_size
    present = sum(int(batch.key_mask[g].sum()) if batch.key_mask and g in batch.key_mask
                  else B * cfg.num_tokens(g) for g in (FUTURE, ACTIONS))
    context = B * cfg.num_tokens(CONTEXT)
    return draws * present + (context if cfg.attention == "prefix" else draws * context)


def register_cpu_attention_flops() -> None:
    """torch's FlopCounterMode knows the CUDA attention kernels but not the CPU flash kernel: teach it."""
    ops = torch.ops.aten
    if not hasattr(ops, "_scaled_dot_product_flash_attention_for_cpu") or \
            ops._scaled_dot_product_flash_attention_for_cpu in fc.flop_registry:
        return

    @fc.register_flop_formula(ops._scaled_dot_product_flash_attention_for_cpu)
    def _fwd(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_flop_count(query, key, value)

    @fc.register_flop_formula(ops._scaled_dot_product_flash_attention_for_cpu_backward)
    def _bwd(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_backward_flop_count(grad_out, query, key, value)


class Trainer:
    """The minimal training step: objective -> backward -> AdamW -> EMA update."""

    def __init__(self, model_cfg: DiTConfig, obj_cfg: ObjectiveConfig, device: torch.device, dtype: torch.dtype,
                 draws: int = 1):
        torch.manual_seed(0)
        self.draws = draws
        self.model = SelfFlowDiT(model_cfg).to(device)
        self.ema = EMA(self.model, obj_cfg.ema_decay)
        self.objective = build_objective(obj_cfg, model_cfg)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4, weight_decay=0.0)
        self.device, self.dtype = device, dtype

    def step(self, batch: FlowBatch) -> None:
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            out = self.objective(self.model, self.ema.module, batch, draws=self.draws)
        self.opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.ema.update(self.model)

    def count_flops(self, batch: FlowBatch) -> int:
        register_cpu_attention_flops()
        with FlopCounterMode(display=False) as counter:
            self.step(batch)
        return counter.get_total_flops()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny", choices=list(SIZES), help="size preset (model.config.SIZES)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=20, help="timed steps per objective (split into rounds)")
    p.add_argument("--rounds", type=int, default=4, help="alternating timing rounds per objective")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads on CPU (0 = leave as is)")
    p.add_argument("--peak-seconds", type=float, default=2.0, help="time spent measuring the matmul peak")
    p.add_argument("--compare", default="objectives", choices=["objectives", "recipes"])
    p.add_argument("--draws", type=int, default=4, help="recipes: noise draws per window of the new recipe")
    p.add_argument("--objective", default="selfflow", choices=["selfflow", "vanilla"], help="recipes: objective")
    p.add_argument("--new-model", nargs="*", default=[], metavar="KEY=VALUE",
                   help="recipes: model overrides of the new recipe only, e.g. its codec: codec=ae vae=DIR "
                        "latent_channels=16 vae_downsample=16 patch_size=1 (the weights are not read)")
    p.add_argument("overrides", nargs="*", help="model.<key>=<value> or objective.<key>=<value>")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]

    over = OmegaConf.from_dotlist(args.overrides)
    unknown = set(over.keys()) - {"model", "objective"}
    if unknown:
        p.error(f"overrides must start with model. or objective., got {sorted(unknown)}")
    model_cfg = structured(DiTConfig, OmegaConf.merge(OmegaConf.structured(SIZES[args.model]), over.get("model", {})))
    base_obj = OmegaConf.merge(OmegaConf.structured(ObjectiveConfig), over.get("objective", {}))

    peak = matmul_peak(device, dtype, args.peak_seconds)
    if args.compare == "recipes":
        obj_cfg = structured(ObjectiveConfig, OmegaConf.merge(base_obj, {"name": args.objective}))
        base = OmegaConf.to_container(OmegaConf.structured(model_cfg))
        new_over = OmegaConf.to_container(OmegaConf.from_dotlist(args.new_model))
        cfgs = {"old": structured(DiTConfig, {**base, "attention": "full"}),
                "new": structured(DiTConfig, {**base, "attention": "prefix", **new_over})}
        draws = {"old": 1, "new": args.draws}
        batches = {name: synthetic_batch(cfgs[name], args.batch_size, device, modes=True) for name in cfgs}
        trainers = {name: Trainer(cfgs[name], obj_cfg, device, dtype, draws[name]) for name in cfgs}
    else:
        batch = synthetic_batch(model_cfg, args.batch_size, device)
        trainers = {name: Trainer(model_cfg, structured(ObjectiveConfig, OmegaConf.merge(base_obj, {"name": name})),
                                  device, dtype) for name in ("selfflow", "vanilla")}
        batches = dict.fromkeys(trainers, batch)
    flops = {name: tr.count_flops(batches[name]) for name, tr in trainers.items()}
    step = time_arms(trainers, batches, args.warmup, args.steps, args.rounds, device)
    params = sum(p.numel() for p in next(iter(trainers.values())).model.parameters())
    result = {
        "model": args.model, "params_m": round(params / 1e6, 3), "device": str(device), "dtype": args.dtype,
        "threads": torch.get_num_threads(), "batch_size": args.batch_size,
        "tokens_per_example": sum(model_cfg.num_tokens(g) for g in (CONTEXT, FUTURE, ACTIONS)),
        "steps_timed": args.rounds * max(1, args.steps // args.rounds), "peak_tflops": round(peak / 1e12, 4),
    }
    for name, tr in trainers.items():
        tokens = tokens_run(tr.model.cfg, batches[name], tr.draws)
        result.update({f"step_s_{name}": round(step[name], 5), f"tokens_per_s_{name}": round(tokens / step[name], 1),
                       f"flops_per_step_{name}": flops[name],
                       f"mfu_{name}": round(flops[name] / step[name] / peak, 4)})
        if args.compare == "recipes":
            result.update({f"draws_{name}": tr.draws, f"attention_{name}": tr.model.cfg.attention,
                           f"codec_{name}": tr.model.cfg.codec,
                           f"tokens_per_frame_{name}": tr.model.cfg.tokens_per_frame,
                           f"windows_per_s_{name}": round(args.batch_size / step[name], 2),
                           f"signals_per_s_{name}": round(args.batch_size * tr.draws / step[name], 2)})
    if args.compare == "recipes":
        result["signals_ratio"] = round(result["signals_per_s_new"] / result["signals_per_s_old"], 3)
        result["objective"] = args.objective
    else:
        result["ratio"] = round(step["selfflow"] / step["vanilla"], 3)
    result["overrides"] = args.overrides
    print(json.dumps(result))
    return 0


def time_arms(trainers: dict[str, Trainer], batches: dict[str, FlowBatch], warmup: int, steps: int, rounds: int,
              device: torch.device) -> dict[str, float]:
    """Median step time of each arm, timed in alternating rounds (so machine noise hits both alike)."""
    for name, tr in trainers.items():
        for _ in range(warmup):
            tr.step(batches[name])
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(rounds):
        for name, tr in trainers.items():
            sync(device)
            for _ in range(max(1, steps // rounds)):
                t0 = time.perf_counter()
                tr.step(batches[name])
                sync(device)
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


if __name__ == "__main__":
    sys.exit(main())

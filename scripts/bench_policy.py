"""Per-chunk policy latency: eager (with and without the context cache) vs exported graphs vs torch.compile.

One chunk = encode the k context frames + `steps` denoiser evaluations (Euler, policy mode) for
`chunk` action tokens; the figures are per chunk, for `batch` chunks at once. Prints p50/p99
latency, actions/s (chunk * batch / p50) and the process CPU time per chunk (robust to a busy
machine when --threads 1), plus the FLOPs of one chunk (counted with `torch.utils.flop_counter`)
and the time it would take at `--peak-tflops`.

    python scripts/bench_policy.py --size tiny --steps 10 --modes eager,torchscript,onnx,compile
    python scripts/bench_policy.py --size tiny --attention prefix --steps 10 --threads 1 --modes eager,cached
    python scripts/bench_policy.py --size tiny --steps 10 --threads 1 --modes onnx,onnx_cached,cached

`eager` runs every denoising step over the context and the action tokens (for a prefix-attention model: one
pass under the prefix mask); `cached` (models with `attention=prefix`) runs the context once per chunk and every
step over the action tokens only, against the context's cached keys/values. Both count the codec's encode of the
context frames. `<graph>_cached` (`onnx_cached`, `torchscript_cached`, `torch_export_cached`, `compile_cached`) runs
the same backend as two graphs, the context's keys/values once per chunk and the steps against them
(`policies/cached_graphs.py`). `--breakdown` also times the parts of a cached chunk (encode, the modulation of
the context pass and of every step, the context pass, one denoising step).

`--model KEY=VALUE ...` overrides the preset's geometry, e.g. the demo recipe's autoencoder tokens (the encode of a
trained `ae` codec is counted like the pixel codec's; its weights come from `vae=`):
    python scripts/bench_policy.py --size tiny --steps 10 --threads 1 --modes eager,cached \
        --model codec=ae vae=runs/demo/demos/codec latent_channels=8 vae_downsample=8 patch_size=2
    python scripts/bench_policy.py --ckpt runs/demo --steps 10
    python scripts/bench_policy.py --size xl --flops-only --peak-tflops 989      # H100 dense bf16
    python scripts/bench_policy.py --size xl --device cuda --dtype bfloat16 --modes eager,compile

Weights do not change the latency: without --ckpt the model is the size preset, freshly initialised.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from selfflow_robot.checkpoint import load_pretrained
from selfflow_robot.constants import ACTIONS, CONTEXT
from selfflow_robot.model import build_model
from selfflow_robot.model.config import SIZES, dit_config
from selfflow_robot.objective import sample
from selfflow_robot.policies.export import (
    SUFFIX,
    ActionDenoiser,
    ExportedSampler,
    compiled_denoiser,
    export_denoiser,
    load_cached,
    load_exported,
)

GRAPH_MODES = ("torchscript", "onnx", "torch_export", "compile")
# `<graph mode>_cached`: the same backend as two graphs, the context's keys/values once per chunk (prefix models)
MODES = ("eager", "cached", *GRAPH_MODES, *(f"{m}_cached" for m in GRAPH_MODES))


def _denoiser_flops(cfg, batch: int) -> int:
    model, _ = build_model(cfg, with_codec=False)
    den = ActionDenoiser(model.eval().requires_grad_(False))
    n_ctx = cfg.context_frames * cfg.tokens_per_frame
    args = (torch.zeros(batch, n_ctx, cfg.frame_token_dim), torch.zeros(batch, cfg.horizon, cfg.action_dim),
            torch.zeros(batch), torch.zeros(batch, cfg.text_dim), torch.zeros(batch, dtype=torch.bool))
    if getattr(cfg, "state_dim", 0):
        args += (torch.zeros(batch, cfg.state_dim),)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        den(*args)
    return int(counter.get_total_flops())


def chunk_flops(cfg, steps: int, batch: int, cfg_scale: float = 1.0) -> int:
    """FLOPs of one chunk (batch rows): `steps` denoiser calls (x2 with CFG), per `torch.utils.flop_counter`.

    Counted on 1- and 2-block copies of the model and extrapolated linearly in depth (exact: every
    block costs the same), so even `xl` is counted in a second on a CPU.
    """
    one = _denoiser_flops(dataclasses.replace(cfg, depth=1), batch)
    two = _denoiser_flops(dataclasses.replace(cfg, depth=2), batch)
    per_call = one + (two - one) * (cfg.depth - 1)
    return per_call * steps * (2 if cfg_scale != 1.0 else 1)


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean())}


def time_it(fn, iters: int, warmup: int, sync) -> tuple[list[float], float]:
    """Wall-clock ms per call, and this process's CPU ms per call (all its threads).

    On a shared machine wall time includes waiting for a core; with one thread, CPU time per chunk
    is what the chunk would take on an idle core.
    """
    for _ in range(warmup):
        fn()
    sync()
    out = []
    cpu0 = time.process_time()
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync()
        out.append((time.perf_counter() - t0) * 1e3)
    return out, (time.process_time() - cpu0) * 1e3 / iters


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", help="checkpoint dir (default: a fresh model of --size)")
    p.add_argument("--size", default="tiny", choices=list(SIZES))
    p.add_argument("--steps", type=int, default=10, help="denoising steps per chunk")
    p.add_argument("--chunk", type=int, default=None, help="action chunk length H (default: the model's horizon)")
    p.add_argument("--batch", type=int, default=1, help="chunks computed together")
    p.add_argument("--modes", default="eager,torchscript,onnx,torch_export,compile")
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--attention", choices=["full", "prefix"], default=None,
                   help="model.attention of the fresh model (default: the size preset's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--peak-tflops", type=float, default=989.0,
                   help="accelerator peak for the projection (H100/H200 SXM dense bf16: 989)")
    p.add_argument("--flops-only", action="store_true", help="count FLOPs and project; run nothing")
    p.add_argument("--model", nargs="*", default=[], metavar="KEY=VALUE",
                   help="model config overrides of the fresh model, e.g. codec=ae vae=DIR latent_channels=8 "
                        "vae_downsample=8 patch_size=2")
    p.add_argument("--breakdown", action="store_true", help="also time the parts of a cached chunk")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad:
        p.error(f"unknown modes {bad}; choose from {list(MODES)}")

    if args.ckpt:
        pre = load_pretrained(args.ckpt, device="cpu")
        model, codec, cfg = pre.model, pre.codec, pre.model.cfg
    else:
        over = {} if args.chunk is None else {"horizon": args.chunk}
        over.update(OmegaConf.to_container(OmegaConf.from_dotlist(args.model)))
        if args.attention:
            over["attention"] = args.attention
        cfg = dit_config(args.size, **over)
        model = codec = None
    if args.chunk is not None and args.chunk != cfg.horizon:
        if args.ckpt:
            p.error(f"--chunk {args.chunk} differs from the checkpoint's horizon {cfg.horizon}")
    flops = chunk_flops(cfg, args.steps, args.batch)
    result: dict = {"size": args.size if not args.ckpt else args.ckpt, "steps": args.steps, "chunk": cfg.horizon,
                    "attention": cfg.attention, "codec": cfg.codec, "model_overrides": args.model,
                    "batch": args.batch, "tokens": cfg.context_frames * cfg.tokens_per_frame + cfg.horizon,
                    "device": args.device, "dtype": args.dtype, "threads": args.threads,
                    "gflops_per_chunk": flops / 1e9, "peak_tflops": args.peak_tflops,
                    "projected_ms_at_peak": flops / (args.peak_tflops * 1e12) * 1e3, "modes": {}}
    print(f"model {result['size']}: {result['tokens']} tokens, chunk {cfg.horizon}, {args.steps} steps, "
          f"batch {args.batch}: {flops / 1e9:.3f} GFLOP/chunk -> {result['projected_ms_at_peak']:.3f} ms "
          f"at {args.peak_tflops:g} TFLOP/s peak (100% utilisation; real kernels reach a fraction)")
    if args.flops_only:
        _write(args.json, result)
        return 0

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    if model is None:  # a fresh model; a VAE codec would need its weights, so VAE sizes use random latents
        model, codec = build_model(cfg, with_codec=cfg.codec in ("pixel", "ae"))
    model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (args.batch, cfg.context_frames, *cfg.image_size, 3), dtype=torch.uint8,
                           generator=g)
    text = torch.randn(args.batch, cfg.text_dim, generator=g).to(device)
    noise = torch.randn(args.batch, cfg.horizon, cfg.action_dim, generator=g).to(device)
    S = getattr(cfg, "state_dim", 0)  # a state-conditioned checkpoint: a normalised-range robot state too
    state = (torch.rand(args.batch, S, generator=g) * 2 - 1).to(device=device, dtype=dtype) if S else None
    latents = torch.randn(args.batch, cfg.context_frames * cfg.tokens_per_frame, cfg.frame_token_dim,
                          generator=g).to(device=device, dtype=dtype)
    if codec is None:
        print("note: no VAE weights here: the loop runs on random context latents (VAE encode excluded)")
    codec = codec if codec is None else codec.to(device).eval()

    def encode() -> torch.Tensor:
        return latents if codec is None else codec.encode(frames.to(device)).to(dtype)

    tmp = tempfile.TemporaryDirectory(prefix="bench-policy-")
    for mode in modes:
        try:
            if mode in ("eager", "cached"):
                if mode == "cached" and cfg.attention != "prefix":
                    print("  cached: needs a model with attention=prefix (--attention prefix); skipped")
                    continue

                def run(split=mode == "cached"):
                    model.split_prefix = split
                    with torch.inference_mode():
                        c = encode()
                        sample(model, {CONTEXT: c, ACTIONS: noise.to(dtype)}, [ACTIONS], text.to(dtype),
                               steps=args.steps, noise={ACTIONS: noise.to(dtype)}, robot_state=state)
            else:
                base, with_cache = mode.removesuffix("_cached"), mode.endswith("_cached")
                if with_cache and cfg.attention != "prefix":
                    print(f"  {mode}: needs a model with attention=prefix (--attention prefix); skipped")
                    continue
                out_dir = Path(tmp.name) / base
                if base == "compile":   # with_cache: the two graphs (this model is prefix); else the one graph
                    den = compiled_denoiser(model) if with_cache else torch.compile(ActionDenoiser(model))
                else:
                    if device.type != "cpu" or dtype != torch.float32:
                        print(f"  {mode}: exported graphs are benchmarked on CPU float32 only here; skipped")
                        continue
                    if not out_dir.is_dir():   # one export writes both the single graph and the cached pair
                        t0 = time.perf_counter()
                        export_denoiser(model, base, out_dir, steps=args.steps)
                        print(f"  {base}: exported + parity-checked in {time.perf_counter() - t0:.1f} s")
                    den = load_cached(out_dir, base) if with_cache else \
                        load_exported(out_dir / f"denoiser.{SUFFIX[base]}", base)
                sampler = ExportedSampler(den, args.steps)

                def run(sampler=sampler):
                    with torch.inference_mode():
                        sampler(encode(), noise.to(dtype), text.to(dtype), state)
            warm = args.warmup + (3 if mode.startswith("compile") else 0)
            ms, cpu_ms = time_it(run, args.iters, warm, sync)
        except Exception as e:  # noqa: BLE001 - one failing backend must not hide the others
            print(f"  {mode}: FAILED {type(e).__name__}: {str(e).splitlines()[0][:200]}")
            result["modes"][mode] = {"error": f"{type(e).__name__}: {e}"[:500]}
            continue
        stats = percentiles(ms)
        stats["cpu_ms_per_chunk"] = cpu_ms
        stats["actions_per_s"] = cfg.horizon * args.batch / (stats["p50_ms"] / 1e3)
        result["modes"][mode] = stats
        print(f"  {mode:<19} p50 {stats['p50_ms']:8.2f} ms   p99 {stats['p99_ms']:8.2f} ms   "
              f"{stats['actions_per_s']:10.1f} actions/s   cpu {cpu_ms:8.2f} ms/chunk")
    tmp.cleanup()
    if args.breakdown and cfg.attention == "prefix":
        model.split_prefix = True
        result["breakdown"] = breakdown(model, encode, text.to(dtype), noise.to(dtype), state, args.steps,
                                        args.iters, args.warmup, sync)
    _write(args.json, result)
    return 0


def breakdown(model, encode, text: torch.Tensor, noise: torch.Tensor, state: torch.Tensor | None, steps: int,
              iters: int, warmup: int, sync) -> dict[str, float]:
    """p50 ms of the parts of a cached chunk, as `sample` runs them: the codec's encode, the adaLN modulation of
    the context pass and of every step (one batch), the context pass (keys/values only), and one denoising step
    (x steps)."""
    kw = {} if state is None else {"state": state}
    B = noise.shape[0]
    with torch.inference_mode():
        ctx = encode()
        sizes = [{CONTEXT: ctx.shape[1]}] + [{ACTIONS: noise.shape[1]}] * steps
        taus = [{CONTEXT: torch.zeros(B, device=noise.device)}] + [
            {ACTIONS: torch.full((B,), 1 - i / steps, device=noise.device)} for i in range(steps)]
        ctx_cond, *conds = model.conditioning(sizes, taus, text, **kw)
        cache = model.encode_prefix(ctx, text, keys_only=True, conditioning=ctx_cond, **kw)
        parts = {"encode": encode,
                 "modulation": lambda: model.conditioning(sizes, taus, text, **kw),
                 "context_pass": lambda: model.encode_prefix(ctx, text, keys_only=True, conditioning=ctx_cond, **kw),
                 "one_step": lambda: model({ACTIONS: noise}, taus[1 + steps // 2], text, prefix=cache,
                                           conditioning=conds[steps // 2], **kw)}
        out = {name: percentiles(time_it(fn, iters, warmup, sync)[0])["p50_ms"] for name, fn in parts.items()}
    out["steps_total"] = out["one_step"] * steps
    out["sum"] = sum(v for k, v in out.items() if k not in ("one_step", "sum"))
    print("  cached chunk, p50 ms: " + ", ".join(f"{k} {v:.2f}" for k, v in out.items()))
    return out


def _write(path: str | None, result: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(result, indent=2))
        print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())

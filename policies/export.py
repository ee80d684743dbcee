"""`selfflow-robot export ckpt=DIR format={torchscript,onnx,torch_export}`: export the policy's denoiser.

What is exported: `ActionDenoiser`, one evaluation of the backbone in policy mode,

    (context tokens (B, k*h*w, d), action tokens (B, H, 8), tau (B,), text (B, 512), text_drop (B,) bool
     [, state (B, state_dim) normalised, for checkpoints trained with model.state_dim > 0])
        -> action velocity (B, H, 8)

with the context clean (tau = 0) and no future frames. A state-conditioned checkpoint's graph takes
the normalised proprioception as a sixth input (`input_names(cfg)`); the raw-state normalisation
(`StateNormalizer`) stays outside with the other checkpoint transforms. The **sampler loop stays
outside** the exported graph (`ExportedSampler`, Euler on the same `time_grid` as
`objective.sample`): the number of denoising steps stays a run-time choice, the graph is the same
size for 1 or 50 steps, and ONNX/TensorRT see one static transformer instead of an unrolled loop.
The frame codec (pixel patchify, or the VAE encoder for `xl`) and the text/statistics transforms
also stay outside: they run once per chunk and come from the checkpoint as usual.

A prefix-attention checkpoint (every preset) also gets the context cache as two graphs,
`context.<ext>` (the context's keys/values, once per chunk) and `step.<ext>` (a denoising step
against them): `policies/cached_graphs.py`. `load_cached` loads the pair; `ExportedSampler` runs it.

Every export is checked against the eager model on random inputs (several noise levels) and on
a whole chunk sampled through the exported graph; the max abs differences are printed, written to
`export.json` and must be below `tolerance`, or the export fails.
"""
from __future__ import annotations

import copy
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from selfflow_robot.checkpoint import load_pretrained
from selfflow_robot.config import check_choice, structured
from selfflow_robot.constants import ACTIONS, CONTEXT
from selfflow_robot.errors import ConfigError, require
from selfflow_robot.files import check_writable_dir
from selfflow_robot.objective import time_grid
from selfflow_robot.policies.cached_graphs import (
    CONTEXT_INPUTS,
    KV_BATCH_DIM,
    STEP_INPUTS,
    CachedActionDenoiser,
    CachedGraphs,
    ContextKV,
    is_prefix,
)

FORMATS = ("torchscript", "onnx", "torch_export")
SUFFIX = {"torchscript": "pt", "onnx": "onnx", "torch_export": "pt2"}
INPUT_NAMES = ("context", "actions", "tau", "text", "text_drop")
STATE_INPUT = "state"


def input_names(model_cfg: Any) -> tuple[str, ...]:
    """The exported graph's inputs: `INPUT_NAMES`, plus `state` for a model with `state_dim > 0`."""
    return INPUT_NAMES + ((STATE_INPUT,) if getattr(model_cfg, "state_dim", 0) else ())


class ActionDenoiser(nn.Module):
    """Policy-mode velocity of the action tokens: the unit that export writes out.

    forward(context (B, Nc, d), actions (B, H, A), tau (B,), text (B, T), text_drop (B,) bool
            [, state (B, S)]) -> (B, H, A)

    `state` is the normalised proprioception of a model with `state_dim > 0`, the same for both CFG
    halves (as in `objective.sample`); it is traced only when given, so a state-free model's graph keeps
    the 5 inputs of `INPUT_NAMES`.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, context: torch.Tensor, actions: torch.Tensor, tau: torch.Tensor, text: torch.Tensor,
                text_drop: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        clean = torch.zeros_like(tau)                                         # context frames: tau = 0
        extra = {} if state is None else {"state": state}                     # state-conditioned models only
        out = self.model({CONTEXT: context, ACTIONS: actions}, {CONTEXT: clean, ACTIONS: tau}, text,
                         text_drop=text_drop, **extra)
        return out.velocity[ACTIONS]                                          # (B, H, A)


Denoise = Callable[..., torch.Tensor]  # ActionDenoiser's signature: 5 tensors, or 6 with the state


class ExportedSampler:
    """The sampler loop outside the graph: Euler ODE on `objective.time_grid`, optional text CFG.

    Mirrors `objective.sample(method="ode", guidance_interval=(0, 1))` step for step, so an exported
    denoiser gives the eager policy's chunk for the same initial noise (and `state` = `robot_state`).
    `denoise` is one graph (`ActionDenoiser`'s signature, the context in every step) or `CachedGraphs`
    (the context's keys/values once per chunk, then the steps against them).
    """

    def __init__(self, denoise: Denoise | CachedGraphs, steps: int = 10, cfg_scale: float = 1.0) -> None:
        self.denoise = denoise
        self.cfg_scale = cfg_scale
        self.grid = time_grid(steps, "ode")

    @torch.no_grad()
    def __call__(self, context: torch.Tensor, noise: torch.Tensor, text: torch.Tensor,
                 state: torch.Tensor | None = None) -> torch.Tensor:
        """Action tokens (B, H, A) from the initial `noise`; `state` (B, S) normalised, for state graphs."""
        B = noise.shape[0]
        x = noise
        n = 1 if self.cfg_scale == 1.0 else 2                                # rows: conditional [, null text]
        keep = torch.zeros(B, dtype=torch.bool, device=noise.device)
        drop = keep if n == 1 else torch.cat([keep, ~keep])
        rows = (lambda t: t) if n == 1 else (lambda t: torch.cat([t, t]))
        text_n, extra = rows(text), () if state is None else (rows(state),)   # both CFG halves see the state
        cached = isinstance(self.denoise, CachedGraphs)
        if cached:
            kv = self.denoise.context(rows(context), text_n, drop, *extra)   # once per chunk
        for tau, tau_next in zip(self.grid[:-1], self.grid[1:]):
            t = torch.full((n * B,), tau, device=noise.device)
            if cached:
                out = self.denoise.step(kv, rows(x), t, text_n, drop, *extra)
            else:
                out = self.denoise(rows(context), rows(x), t, text_n, drop, *extra)
            v = out if n == 1 else out[B:] + self.cfg_scale * (out[:B] - out[B:])
            x = x + (tau_next - tau) * v.to(x.dtype)
        return x


def compiled_denoiser(model: nn.Module) -> Denoise | CachedGraphs:
    """The policy's denoiser under `torch.compile`: the two cached graphs for a prefix-attention model, else one."""
    if is_prefix(model.cfg):
        return CachedGraphs(torch.compile(ContextKV(model)), torch.compile(CachedActionDenoiser(model)))
    return torch.compile(ActionDenoiser(model))


def example_inputs(model_cfg: Any, batch: int = 1, seed: int = 0, device: str | torch.device = "cpu",
                   tau: float = 0.5) -> tuple[torch.Tensor, ...]:
    """Random denoiser inputs of the checkpoint's shapes, in `input_names(model_cfg)` order: (context, actions,
    tau, text, text_drop), plus a normalised-range state (B, state_dim) for a state-conditioned model."""
    g = torch.Generator().manual_seed(seed)
    n_ctx = model_cfg.context_frames * model_cfg.tokens_per_frame
    ctx = torch.randn(batch, n_ctx, model_cfg.frame_token_dim, generator=g)
    act = torch.randn(batch, model_cfg.horizon, model_cfg.action_dim, generator=g)
    text = torch.randn(batch, model_cfg.text_dim, generator=g)
    t = torch.full((batch,), tau)
    drop = torch.zeros(batch, dtype=torch.bool)
    S = getattr(model_cfg, "state_dim", 0)
    state = (torch.rand(batch, S, generator=g) * 2 - 1,) if S else ()        # StateNormalizer's range, ~[-1, 1]
    return tuple(x.to(device) for x in (ctx, act, t, text, drop, *state))


# ---------------------------------------------------------------------------------------------
# Writers and loaders, one per format
# ---------------------------------------------------------------------------------------------

@dataclass
class Graph:
    """One module to write: its example inputs, their names and batch dimensions, and its output's name."""

    module: nn.Module
    args: tuple[torch.Tensor, ...]
    names: tuple[str, ...]
    output: str
    batch_dims: tuple[int, ...]


def _write(fmt: str, graph: Graph, path: Path, opset: int) -> None:
    """Write `graph` in format `fmt` to `path`, its batch dimension dynamic."""
    if fmt == "torchscript":
        torch.jit.trace(graph.module, graph.args, check_trace=False, strict=False).save(str(path))
        return
    b = torch.export.Dim("batch", min=1, max=1024)
    dynamic = tuple({d: b} for d in graph.batch_dims)
    if fmt == "torch_export":
        torch.export.save(torch.export.export(graph.module, graph.args, dynamic_shapes=dynamic), str(path))
        return
    require("onnx", "export")
    require("onnxscript", "export")
    program = torch.onnx.export(graph.module, graph.args, dynamo=True, input_names=list(graph.names),
                                output_names=[graph.output], opset_version=opset, dynamic_shapes=dynamic,
                                external_data=False)
    program.save(str(path))


def cached_graphs(model: nn.Module, args: tuple[torch.Tensor, ...]) -> dict[str, Graph]:
    """The context and step graphs of a prefix-attention `model`, on the single graph's example inputs `args`."""
    context, actions, tau, text, drop, *state = args
    ctx_module = ContextKV(model).eval()
    with torch.no_grad():
        kv = ctx_module(context, text, drop, *state)
    extra = (STATE_INPUT,) if state else ()
    return {"context": Graph(ctx_module, (context, text, drop, *state), CONTEXT_INPUTS + extra, "kv",
                             (0,) * (3 + len(state))),
            "step": Graph(CachedActionDenoiser(model).eval(), (kv, actions, tau, text, drop, *state),
                          STEP_INPUTS + extra, "velocity", (KV_BATCH_DIM,) + (0,) * (4 + len(state)))}


def load_exported(path: str | Path, fmt: str, device: str | torch.device = "cpu") -> Denoise:
    """A callable with `ActionDenoiser`'s signature backed by the exported file."""
    check_choice("export format", fmt, FORMATS)
    path = Path(path)
    if fmt == "torchscript":
        module = torch.jit.load(str(path), map_location=device)
        return lambda *a: module(*a)
    if fmt == "torch_export":
        module = torch.export.load(str(path)).module()
        return lambda *a: module(*a)
    ort = require("onnxruntime", "export")
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if str(device).startswith("cuda") \
        else ["CPUExecutionProvider"]
    opts = ort.SessionOptions()
    threads = torch.get_num_threads()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), opts, providers=providers)
    names = [i.name for i in session.get_inputs()]

    def run(*a: torch.Tensor) -> torch.Tensor:
        feeds = {n: x.detach().cpu().numpy() for n, x in zip(names, a)}
        (out,) = session.run(None, feeds)
        return torch.from_numpy(out).to(a[0].device)

    return run


def load_cached(out_dir: str | Path, fmt: str, device: str | torch.device = "cpu") -> CachedGraphs:
    """The context and step graphs `export_denoiser` wrote to `out_dir` for a prefix-attention checkpoint."""
    out_dir = Path(out_dir)
    paths = [out_dir / f"{name}.{SUFFIX[fmt]}" for name in ("context", "step")]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ConfigError(f"no cached graphs at {', '.join(missing)}: export a prefix-attention checkpoint "
                          f"(model.attention=prefix) with selfflow-robot export format={fmt}")
    return CachedGraphs(*(load_exported(p, fmt, device) for p in paths))


# ---------------------------------------------------------------------------------------------
# Export + parity
# ---------------------------------------------------------------------------------------------

@dataclass
class ExportResult:
    """What `export_denoiser` wrote and measured (also saved as `export.json`)."""

    format: str
    path: str
    checkpoint: str
    denoiser_max_abs_diff: float | None   # None: the single graph was not exported (`cached_only`)
    chunk_max_abs_diff: float | None
    tolerance: float
    steps: int
    input_shapes: dict[str, list[int]]
    state_dim: int = 0  # > 0: the graph takes `state` (B, state_dim), normalised, as its sixth input
    sampler: str = "outside the graph: Euler ODE on objective.time_grid(steps, 'ode') (ExportedSampler)"
    export_s: float = 0.0
    # prefix-attention checkpoints: context.<ext> + step.<ext> (the context cache), and their whole chunk's max abs
    # difference from eager (with and without text guidance)
    cached_paths: list[str] | None = None
    cached_chunk_max_abs_diff: float | None = None


@torch.no_grad()
def parity(eager: Denoise, exported: Denoise, model_cfg: Any, steps: int = 10, batch: int = 2,
           seed: int = 0) -> tuple[float, float]:
    """Max abs differences (one denoiser call over several tau; one whole sampled chunk), with the state
    input for a state-conditioned model."""
    worst = 0.0
    for i, tau in enumerate((1.0, 0.7, 0.3, 0.0)):
        b = (1, batch + 1)[i % 2]  # batch sizes other than the traced one too
        args = example_inputs(model_cfg, b, seed + i, tau=tau)
        args = (*args[:4], torch.tensor([j % 2 == 1 for j in range(b)]), *args[5:])  # both CFG branches
        worst = max(worst, (eager(*args) - exported(*args)).abs().max().item())
    return worst, chunk_difference(eager, exported, model_cfg, steps, batch, seed)


@torch.no_grad()
def chunk_difference(eager: Denoise | CachedGraphs, exported: Denoise | CachedGraphs, model_cfg: Any,
                     steps: int = 10, batch: int = 2, seed: int = 0, cfg_scale: float = 1.0) -> float:
    """Max abs difference of one whole chunk sampled through `eager` and through `exported`, same noise."""
    ctx, noise, _, text, _, *state = example_inputs(model_cfg, batch, seed + 99)
    chunk_eager = ExportedSampler(eager, steps, cfg_scale)(ctx, noise, text, *state)
    chunk_exported = ExportedSampler(exported, steps, cfg_scale)(ctx, noise, text, *state)
    return (chunk_eager - chunk_exported).abs().max().item()


def export_denoiser(model: nn.Module, fmt: str, out_dir: str | Path, *, checkpoint: str = "", steps: int = 10,
                    tolerance: float = 1e-3, opset: int = 18, batch: int = 2,
                    cached_only: bool = False) -> ExportResult:
    """Export `model`'s policy denoiser to `out_dir/denoiser.<ext>` (atomic) and check parity against eager; for a
    prefix-attention model also the context cache as `context.<ext>` + `step.<ext>` (`policies/cached_graphs.py`).

    `batch` is the example batch traced; it must be >= 2 so the batch dimension stays dynamic. `cached_only`
    skips the single graph of a prefix-attention model (the server runs the cache's two graphs only); its result
    then has `path` = the context graph and no single-graph differences.

    Raises `ConfigError` if an exported graph differs from eager by more than `tolerance` (nothing is written).
    """
    check_choice("export format", fmt, FORMATS)
    model = copy.deepcopy(model).eval().float().cpu()  # exports are float32 CPU graphs; the caller's model is untouched
    module = ActionDenoiser(model).eval()
    args = example_inputs(model.cfg, batch)
    cached = is_prefix(model.cfg)
    single = not (cached and cached_only)
    graphs = {"denoiser": Graph(module, args, input_names(model.cfg), "velocity", (0,) * len(args))} if single else {}
    if cached:
        graphs.update(cached_graphs(model, args))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    finals = {name: out_dir / f"{name}.{SUFFIX[fmt]}" for name in graphs}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
        tmps = {name: Path(tmp) / final.name for name, final in finals.items()}
        for name, graph in graphs.items():
            _write(fmt, graph, tmps[name], opset)
        export_s = time.perf_counter() - t0
        d_step, d_chunk = parity(module, load_exported(tmps["denoiser"], fmt), model.cfg, steps=steps) if single \
            else (None, None)
        d_cached = None
        if cached:
            loaded = CachedGraphs(load_exported(tmps["context"], fmt), load_exported(tmps["step"], fmt))
            d_cached = max(chunk_difference(module, loaded, model.cfg, steps, cfg_scale=scale) for scale in (1.0, 2.0))
        diffs = {"denoiser": d_step, f"chunk, {steps} steps": d_chunk, "chunk through the context cache": d_cached}
        if any(d is not None and not d <= tolerance for d in diffs.values()):
            found = ", ".join(f"{d:.3g} ({what})" for what, d in diffs.items() if d is not None)
            raise ConfigError(f"{fmt} export differs from eager: max abs diff {found} > tolerance {tolerance}; "
                              "not written")
        for name, final in finals.items():
            os.replace(tmps[name], final)
    result = ExportResult(format=fmt, path=str(finals["denoiser" if single else "context"]), checkpoint=checkpoint,
                          denoiser_max_abs_diff=d_step, chunk_max_abs_diff=d_chunk, tolerance=tolerance, steps=steps,
                          input_shapes={n: list(a.shape) for n, a in zip(input_names(model.cfg), args)},
                          state_dim=int(getattr(model.cfg, "state_dim", 0)), export_s=round(export_s, 2),
                          cached_paths=[str(finals[n]) for n in ("context", "step")] if cached else None,
                          cached_chunk_max_abs_diff=d_cached)
    meta = out_dir / "export.json"
    tmp_meta = meta.with_suffix(".json.tmp")
    tmp_meta.write_text(json.dumps({**asdict(result), "model": asdict(model.cfg)}, indent=2, default=str))
    os.replace(tmp_meta, meta)
    return result


# ---------------------------------------------------------------------------------------------
# CLI: selfflow-robot export ckpt=DIR format=onnx
# ---------------------------------------------------------------------------------------------

@dataclass
class ExportConfig:
    """`selfflow-robot export` config (configs/export.yaml).

    Args:
        ckpt: checkpoint step dir or run dir.
        format: torchscript | onnx | torch_export.
        output_dir: where `denoiser.<ext>` and `export.json` go (default: <step dir>/export).
        steps: denoising steps used for the whole-chunk parity check.
        tolerance: max abs difference allowed against eager (float32, CPU).
        opset: ONNX opset.
        use_ema: export the EMA weights.
    """

    ckpt: str | None = None
    format: str = "torchscript"
    output_dir: str | None = None
    steps: int = 10
    tolerance: float = 1e-3
    opset: int = 18
    use_ema: bool = True

    def __post_init__(self) -> None:
        check_choice("format", self.format, FORMATS)
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if self.tolerance <= 0:
            raise ConfigError(f"tolerance must be > 0, got {self.tolerance}")


def main(cfg: Any) -> int:
    """Export the denoiser of `ckpt` and print the parity figures."""
    conf = structured(ExportConfig, cfg)
    if not conf.ckpt:
        raise ConfigError("export needs a checkpoint: selfflow-robot export ckpt=RUN_DIR_OR_STEP_DIR format=onnx")
    if conf.output_dir:
        check_writable_dir(conf.output_dir)
    pre = load_pretrained(conf.ckpt, use_ema=conf.use_ema, device="cpu")
    out_dir = check_writable_dir(Path(conf.output_dir) if conf.output_dir else pre.path / "export")
    result = export_denoiser(pre.model, conf.format, out_dir, checkpoint=str(pre.path), steps=conf.steps,
                             tolerance=conf.tolerance, opset=conf.opset)
    print(f"exported {conf.format}: {result.path}")
    print(f"parity vs eager: max abs diff {result.denoiser_max_abs_diff:.3e} (one denoiser call), "
          f"{result.chunk_max_abs_diff:.3e} (whole chunk, {conf.steps} steps); tolerance {conf.tolerance:g}")
    if result.cached_paths:
        print(f"context cache: {' + '.join(result.cached_paths)}; whole chunk vs eager: max abs diff "
              f"{result.cached_chunk_max_abs_diff:.3e} (load with policies.export.load_cached)")
    if result.state_dim:
        print(f"state input: (B, {result.state_dim}) normalised proprioception (the checkpoint's StateNormalizer)")
    print("sampler loop: outside the graph (Euler ODE on objective.time_grid); see policies/export.py")
    return 0

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
    """

    def __init__(self, denoise: Denoise, steps: int = 10, cfg_scale: float = 1.0) -> None:
        self.denoise = denoise
        self.cfg_scale = cfg_scale
        self.grid = time_grid(steps, "ode")

    @torch.no_grad()
    def __call__(self, context: torch.Tensor, noise: torch.Tensor, text: torch.Tensor,
                 state: torch.Tensor | None = None) -> torch.Tensor:
        """Action tokens (B, H, A) from the initial `noise`; `state` (B, S) normalised, for state graphs."""
        B = noise.shape[0]
        x = noise
        keep = torch.zeros(B, dtype=torch.bool, device=noise.device)
        extra = () if state is None else (state,)
        extra2 = () if state is None else (torch.cat([state, state]),)       # both CFG halves see the state
        for tau, tau_next in zip(self.grid[:-1], self.grid[1:]):
            t = torch.full((B,), tau, device=noise.device)
            if self.cfg_scale == 1.0:
                v = self.denoise(context, x, t, text, keep, *extra)
            else:
                both = self.denoise(torch.cat([context, context]), torch.cat([x, x]), torch.cat([t, t]),
                                    torch.cat([text, text]), torch.cat([keep, ~keep]), *extra2)
                v = both[B:] + self.cfg_scale * (both[:B] - both[B:])
            x = x + (tau_next - tau) * v.to(x.dtype)
        return x


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

def _write_torchscript(module: ActionDenoiser, args: tuple[torch.Tensor, ...], path: Path) -> None:
    traced = torch.jit.trace(module, args, check_trace=False, strict=False)
    traced.save(str(path))


def _batch_dim() -> Any:
    return torch.export.Dim("batch", min=1, max=1024)


def _write_torch_export(module: ActionDenoiser, args: tuple[torch.Tensor, ...], path: Path) -> None:
    b = _batch_dim()
    program = torch.export.export(module, args, dynamic_shapes=tuple({0: b} for _ in args))
    torch.export.save(program, str(path))


def _write_onnx(module: ActionDenoiser, args: tuple[torch.Tensor, ...], path: Path, opset: int) -> None:
    require("onnx", "export")
    require("onnxscript", "export")
    b = _batch_dim()
    program = torch.onnx.export(module, args, dynamo=True, input_names=list(input_names(module.model.cfg)),
                                output_names=["velocity"], opset_version=opset,
                                dynamic_shapes=tuple({0: b} for _ in args), external_data=False)
    program.save(str(path))


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


# ---------------------------------------------------------------------------------------------
# Export + parity
# ---------------------------------------------------------------------------------------------

@dataclass
class ExportResult:
    """What `export_denoiser` wrote and measured (also saved as `export.json`)."""

    format: str
    path: str
    checkpoint: str
    denoiser_max_abs_diff: float
    chunk_max_abs_diff: float
    tolerance: float
    steps: int
    input_shapes: dict[str, list[int]]
    state_dim: int = 0  # > 0: the graph takes `state` (B, state_dim), normalised, as its sixth input
    sampler: str = "outside the graph: Euler ODE on objective.time_grid(steps, 'ode') (ExportedSampler)"
    export_s: float = 0.0


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
    ctx, noise, _, text, _, *state = example_inputs(model_cfg, batch, seed + 99)
    chunk_eager = ExportedSampler(eager, steps)(ctx, noise, text, *state)
    chunk_exported = ExportedSampler(exported, steps)(ctx, noise, text, *state)
    return worst, (chunk_eager - chunk_exported).abs().max().item()


def export_denoiser(model: nn.Module, fmt: str, out_dir: str | Path, *, checkpoint: str = "", steps: int = 10,
                    tolerance: float = 1e-3, opset: int = 18, batch: int = 2) -> ExportResult:
    """Export `model`'s policy denoiser to `out_dir/denoiser.<ext>` (atomic) and check parity against eager.

    `batch` is the example batch traced; it must be >= 2 so the batch dimension stays dynamic.

    Raises `ConfigError` if the exported graph differs from eager by more than `tolerance`.
    """
    check_choice("export format", fmt, FORMATS)
    model = copy.deepcopy(model).eval().float().cpu()  # exports are float32 CPU graphs; the caller's model is untouched
    module = ActionDenoiser(model).eval()
    args = example_inputs(model.cfg, batch)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"denoiser.{SUFFIX[fmt]}"
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
        tmp_path = Path(tmp) / final.name
        if fmt == "torchscript":
            _write_torchscript(module, args, tmp_path)
        elif fmt == "torch_export":
            _write_torch_export(module, args, tmp_path)
        else:
            _write_onnx(module, args, tmp_path, opset)
        export_s = time.perf_counter() - t0
        exported = load_exported(tmp_path, fmt)
        d_step, d_chunk = parity(module, exported, model.cfg, steps=steps)
        if not (d_step <= tolerance and d_chunk <= tolerance):
            raise ConfigError(f"{fmt} export differs from eager: max abs diff {d_step:.3g} (denoiser), "
                              f"{d_chunk:.3g} (chunk, {steps} steps) > tolerance {tolerance}; not written")
        os.replace(tmp_path, final)
    result = ExportResult(format=fmt, path=str(final), checkpoint=checkpoint, denoiser_max_abs_diff=d_step,
                          chunk_max_abs_diff=d_chunk, tolerance=tolerance, steps=steps,
                          input_shapes={n: list(a.shape) for n, a in zip(input_names(model.cfg), args)},
                          state_dim=int(getattr(model.cfg, "state_dim", 0)), export_s=round(export_s, 2))
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
    if result.state_dim:
        print(f"state input: (B, {result.state_dim}) normalised proprioception (the checkpoint's StateNormalizer)")
    print("sampler loop: outside the graph (Euler ODE on objective.time_grid); see policies/export.py")
    return 0

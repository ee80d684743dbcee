"""Import the released Self-Flow ImageNet checkpoint (`selfflow_imagenet256.pt`) into a `SelfFlowDiT`.

What loads (shapes must match, so use `model=xl`):
  - every transformer block, the final layer's adaLN, the projector, the timestep MLP;
  - `x_embedder.proj` and `final_layer.linear` only when the frame tokens are SD-VAE latents in the
    released patch layout (`codec=vae`, 4 latent channels, patch 2); otherwise they re-initialise.
What is skipped: `pos_embed` (ours is a fixed (frame, row, col) sin-cos table), `y_embedder` (class
labels; we condition on text). What re-initialises: the action, text, group and type embeddings and
the action output head (the ImageNet model has none).

Convention flip: the released network embeds the SiT time 1 - tau (1 = data) and its raw output is
the SiT velocity x0 - eps; ours embeds tau (1 = noise) and outputs eps - x0. The flip is folded into
the weights exactly: `t_embedder.mlp.0.weight` is multiplied by the linear map that turns the
sinusoidal embedding of tau into that of 1 - tau, and the imported output rows are negated.

Which weights: a file that wraps its state dicts (`{"model": ..., "ema": ..., ...}`) is read at the
entry `key` names, by default `model`, the entry the official Self-Flow sample script loads
(`key="ema"` takes the EMA copy). A file with one wrapped state dict uses it whatever `key` says; one
with several and no `key` entry is refused, listing them. The report names the entry it used. Files
are read with `torch.load(weights_only=True)` (no pickled code runs), memory-mapped when they are in
the zip format and read whole when they are legacy (non-zip) `torch.save` files.
"""
from __future__ import annotations

import math
import re
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

from selfflow_robot.errors import ConfigError, UserError
from selfflow_robot.model.dit import SelfFlowDiT

DEFAULT_KEY = "model"  # the entry the official Self-Flow sample script loads from selfflow_imagenet256.pt
WRAPPER_KEYS = ("model", "ema", "state_dict")
SKIP_REASONS = {
    "pos_embed": "fixed 2-D sin-cos table; ours is a fixed (frame, row, col) sin-cos table",
    "y_embedder.embedding_table.weight": "ImageNet class labels; this model is conditioned on text",
}
REINIT_REASONS = {
    "action_embedder.": "no action tokens in the ImageNet model",
    "text_embedder.": "text conditioning replaces the class labels",
    "group_embed.": "token groups are new",
    "type_embed.": "token types are new",
    "final_layer.action_linear.": "no action tokens in the ImageNet model",
    "x_embedder.": "frame tokens differ from the checkpoint's (see skipped)",
    "final_layer.linear.": "frame tokens differ from the checkpoint's (see skipped)",
}


@dataclass
class ImportReport:
    """What happened to each tensor: `loaded` (ours <- theirs, note), `skipped` (theirs, why), `reinitialised`
    (ours, why); `source` names the file and the entry read (see `unwrap_state_dict`)."""

    source: str
    loaded: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    reinitialised: list[tuple[str, str]] = field(default_factory=list)

    def format(self) -> str:
        """Human-readable report; block tensors are folded into `blocks.*.<name> xN` lines."""
        def fold(rows: list[tuple[str, ...]]) -> list[str]:
            counts: OrderedDict[tuple[str, ...], int] = OrderedDict()
            for row in rows:
                key = tuple(re.sub(r"\bblocks\.\d+\.", "blocks.*.", r) for r in row)
                counts[key] = counts.get(key, 0) + 1
            return ["  " + "  ".join([part for part in k if part] + ([f"x{n}"] if n > 1 else []))
                    for k, n in counts.items()]

        lines = [f"Self-Flow import from {self.source}",
                 f"loaded {len(self.loaded)} tensors (ours <- checkpoint, note):"]
        lines += fold([(ours, "<- " + theirs, note) for ours, theirs, note in self.loaded])
        lines += [f"skipped {len(self.skipped)} checkpoint tensors:"]
        lines += fold([(name, "(" + why + ")") for name, why in self.skipped])
        lines += [f"re-initialised {len(self.reinitialised)} model tensors:"]
        lines += fold([(name, "(" + why + ")") for name, why in self.reinitialised])
        return "\n".join(lines)


def read_checkpoint(path: str | Path, key: str = DEFAULT_KEY) -> tuple[dict[str, torch.Tensor], str]:
    """Load a released checkpoint file (.pt or .safetensors) into a flat state dict; returns (state, which entry).

    `.pt` files load with `weights_only=True`, memory-mapped when they are zip files (`torch.save` since
    PyTorch 1.6) and read whole when they are legacy non-zip files, which cannot be mapped. `key` picks the
    entry of a wrapped checkpoint (see `unwrap_state_dict`).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Self-Flow checkpoint not found: {path}; download it with "
                        f"huggingface_hub.hf_hub_download('Hila/Self-Flow', 'selfflow_imagenet256.pt')")
    if path.suffix == ".safetensors":
        return load_file(str(path)), "safetensors"
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as e:  # UnpicklingError (not weights-only), RuntimeError / EOFError (damaged), ...
        raise UserError(f"{path} cannot be read as a PyTorch checkpoint ({type(e).__name__}: "
                        f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}); re-download it") from e
    if not isinstance(obj, Mapping):
        raise UserError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return unwrap_state_dict(obj, key)


def unwrap_state_dict(obj: Mapping, key: str = DEFAULT_KEY) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of a bare state dict, or of the entry `key` of a wrapped one; strips a 'module.' prefix (DDP).

    A wrapped checkpoint holds state dicts under some of 'model' / 'ema' / 'state_dict'. Its `key` entry is
    used; if it has no such entry but exactly one of those, that one is used (and named in the returned
    description); with several and none called `key`, `UserError` lists them.
    """
    wrapped = [k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)]
    if not wrapped:
        entry = "bare state dict"
    elif key in wrapped:
        obj, entry = obj[key], f"'{key}' entry" + (f" (also has {[k for k in wrapped if k != key]})"
                                                   if len(wrapped) > 1 else "")
    elif len(wrapped) == 1:
        obj, entry = obj[wrapped[0]], f"'{wrapped[0]}' entry (the only one; no '{key}' entry)"
    else:
        raise UserError(f"the checkpoint has no '{key}' entry but several state dicts {wrapped}; choose one with "
                        f"key= one of {wrapped}")
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()
             if isinstance(v, torch.Tensor)}
    return state, entry


def flip_time_embedding_weight(weight: torch.Tensor, max_period: float = 10000.0) -> torch.Tensor:
    """W' such that W'·emb(tau) == W·emb(1 - tau) for DiT's emb(t) = [cos(t·f), sin(t·f)] (f: half frequencies).

    cos(f(1-tau)) = cos f·cos(f tau) + sin f·sin(f tau); sin(f(1-tau)) = sin f·cos(f tau) - cos f·sin(f tau).
    """
    half = weight.shape[1] // 2
    f = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64) / half).to(weight.device)
    w = weight.double()
    w_cos, w_sin = w[:, :half], w[:, half:2 * half]
    new_cos = w_cos * torch.cos(f) + w_sin * torch.sin(f)
    new_sin = w_cos * torch.sin(f) - w_sin * torch.cos(f)
    return torch.cat([new_cos, new_sin], dim=1).to(weight.dtype)


def _output_rows(channels: int, patch: int) -> torch.Tensor:
    """Rows of the released final linear (p q c order, 2C channels: mean then sigma) for our (c p q) order."""
    rows = [(pi * patch + qi) * (2 * channels) + c
            for c in range(channels) for pi in range(patch) for qi in range(patch)]
    return torch.tensor(rows)


def import_selfflow(model: SelfFlowDiT, source: str | Path | Mapping[str, torch.Tensor], *,
                    key: str = DEFAULT_KEY, verbose: bool = True) -> ImportReport:
    """Copy the released weights into `model` (in place) and return (and print) the report.

    `source`: a checkpoint path or an already-loaded state dict (possibly wrapped / 'module.'-prefixed).
    `key`: the entry of a wrapped checkpoint to import, `model` by default (what the official sample
    script loads) or `ema`; the report's first line names the entry used.
    Raises `ConfigError` when the geometry does not match (use `model=xl`).
    """
    if isinstance(source, (str, Path)):
        state, entry = read_checkpoint(source, key)
        report = ImportReport(f"{source} ({entry})")
    else:
        state, entry = unwrap_state_dict(source, key)
        report = ImportReport(f"in-memory {entry}")
    cfg = model.cfg
    if "t_embedder.mlp.0.weight" not in state or "blocks.0.attn.qkv.weight" not in state:
        raise UserError(f"{report.source} is not a Self-Flow/SiT state dict (no t_embedder / blocks tensors)")
    if cfg.timestep_scale != 1.0:
        raise ConfigError(f"importing Self-Flow weights needs model.timestep_scale=1.0 (the released model embeds "
                          f"tau in [0, 1]), got {cfg.timestep_scale}; use model=xl")
    ours = dict(model.state_dict())
    done: set[str] = set()

    def put(name: str, value: torch.Tensor, theirs: str, note: str = "") -> None:
        target = ours[name]
        if tuple(value.shape) != tuple(target.shape):
            raise ConfigError(f"{theirs} has shape {tuple(value.shape)} but the model's {name} is "
                              f"{tuple(target.shape)}: the checkpoint is SiT-XL/2 geometry, use model=xl")
        with torch.no_grad():
            target.copy_(value.to(device=target.device, dtype=target.dtype))
        report.loaded.append((name, theirs, note))
        done.add(name)

    n_blocks = len(model.blocks)
    for name, value in state.items():
        m = re.match(r"blocks\.(\d+)\.", name)
        if name in SKIP_REASONS:
            report.skipped.append((name, SKIP_REASONS[name]))
        elif m and int(m.group(1)) >= n_blocks:
            report.skipped.append((name, f"model has {n_blocks} blocks"))
        elif name == "t_embedder.mlp.0.weight":
            put(name, flip_time_embedding_weight(value), name, "timestep flip folded in (tau -> 1 - tau)")
        elif name == "x_embedder.proj.weight" or name == "x_embedder.proj.bias":
            if tuple(value.shape) == tuple(ours[name].shape) and cfg.codec == "vae":
                put(name, value, name, "SD-VAE latent patches, (c p q)")
            else:
                report.skipped.append((name, f"input tokens differ: checkpoint {tuple(value.shape)}, model "
                                             f"{tuple(ours[name].shape)} (codec={cfg.codec})"))
        elif name in ("final_layer.linear.weight", "final_layer.linear.bias"):
            C, p = cfg.latent_channels, cfg.patch_size
            if cfg.codec == "vae" and value.shape[0] == 2 * C * p * p and ours[name].shape[0] == C * p * p:
                rows = _output_rows(C, p).to(value.device)
                put(name, -value[rows], name, "mean half, (p q c) -> (c p q), sign flipped (x0-eps -> eps-x0)")
            else:
                report.skipped.append((name, f"output tokens differ: checkpoint {tuple(value.shape)}, model "
                                             f"{tuple(ours[name].shape)} (codec={cfg.codec})"))
        elif name in ours:
            put(name, value, name)
        else:
            report.skipped.append((name, "no tensor of that name in SelfFlowDiT"))

    for name in ours:
        if name in done:
            continue
        why = next((r for prefix, r in REINIT_REASONS.items() if name.startswith(prefix)), None)
        if why is None:
            m = re.match(r"blocks\.(\d+)\.", name)
            why = "beyond the checkpoint's depth" if m else "not in the checkpoint or not compatible"
        report.reinitialised.append((name, why))
    if verbose:
        print(report.format())
    return report

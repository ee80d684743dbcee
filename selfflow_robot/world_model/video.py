"""Side-by-side videos of predicted frames beside ground truth, with labels, as mp4 and gif.

`compose_panels` builds the frames (each panel upscaled with nearest-neighbour so small frames
stay readable, a label strip on top, the step index in the corner); `write_video` writes mp4
(through imageio-ffmpeg) or gif (through Pillow) atomically: temp file, then rename.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
from PIL import Image, ImageDraw, ImageFont

LABEL_HEIGHT = 18
MIN_PANEL_HEIGHT = 192
GAP = 4
BACKGROUND = (24, 24, 24)
TEXT_COLOUR = (235, 235, 235)
CONTEXT_COLOUR = (90, 160, 255)   # border of frames that are given (context), not predicted


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Frames as uint8: float ones in [0, 1] clipped and rounded, uint8 ones as they are."""
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    return (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def compose_panels(panels: Sequence[np.ndarray], labels: Sequence[str], *, context_steps: int = 0,
                   min_height: int = MIN_PANEL_HEIGHT) -> np.ndarray:
    """Place equally long frame sequences side by side: `(T, H, W, 3)` each -> uint8 `(T, H', W', 3)`.

    Frames may be uint8 or float in [0, 1]. The first `context_steps` frames get a blue border
    (they are the given context); a step counter is drawn in the top-right corner.
    """
    if len(panels) != len(labels):
        raise ValueError(f"{len(panels)} panels but {len(labels)} labels")
    panels = [to_uint8(p) for p in panels]
    n_frames = panels[0].shape[0]
    for p in panels:
        if p.ndim != 4 or p.shape[-1] != 3 or p.shape[0] != n_frames:
            raise ValueError(f"every panel must be (T={n_frames}, H, W, 3); got {p.shape}")
    height = max(p.shape[1] for p in panels)
    scale = max(1, -(-min_height // height))  # ceil: small frames are upscaled
    widths = [p.shape[2] * scale * height // p.shape[1] for p in panels]
    canvas_w = sum(widths) + GAP * (len(panels) + 1)
    canvas_h = height * scale + LABEL_HEIGHT + GAP
    font = ImageFont.load_default()
    out = np.empty((n_frames, canvas_h, canvas_w, 3), np.uint8)
    for t in range(n_frames):
        canvas = Image.new("RGB", (canvas_w, canvas_h), BACKGROUND)
        draw = ImageDraw.Draw(canvas)
        x = GAP
        for panel, label, w in zip(panels, labels, widths):
            img = Image.fromarray(panel[t]).resize((w, height * scale), Image.NEAREST)
            canvas.paste(img, (x, LABEL_HEIGHT))
            if t < context_steps:
                draw.rectangle([x, LABEL_HEIGHT, x + w - 1, LABEL_HEIGHT + height * scale - 1],
                               outline=CONTEXT_COLOUR, width=2)
            draw.text((x + 2, 3), label, fill=TEXT_COLOUR, font=font)
            x += w + GAP
        step = f"t={t - context_steps + 1}" if t >= context_steps else "context"
        draw.text((canvas_w - 8 * len(step) - GAP, 3), step, fill=TEXT_COLOUR, font=font)
        out[t] = np.asarray(canvas)
    return out


def _atomic_path(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float = 3.0) -> Path:
    """Write uint8 frames `(T, H, W, 3)` to `path` (`.mp4` or `.gif`), atomically. Returns the path."""
    path = Path(path)
    frames = to_uint8(frames)
    suffix = path.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise ValueError(f"video path must end in .mp4 or .gif, got {path}")
    fd, tmp = _atomic_path(path)
    os.close(fd)
    try:
        if suffix == ".gif":
            images = [Image.fromarray(f) for f in frames]
            images[0].save(tmp, save_all=True, append_images=images[1:], loop=0,
                           duration=max(1, int(round(1000.0 / fps))), format="GIF")
        else:
            # H.264 wants even sides; pad with the background colour rather than resampling.
            h, w = frames.shape[1:3]
            ph, pw = (-h) % 16, (-w) % 16
            if ph or pw:
                frames = np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), constant_values=BACKGROUND[0])
            with imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                    pixelformat="yuv420p", macro_block_size=16,
                                    output_params=["-loglevel", "error"]) as writer:
                for f in frames:
                    writer.append_data(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_comparison(out_stem: str | os.PathLike, prediction: np.ndarray, truth: np.ndarray | None, *,
                     context: np.ndarray | None = None, fps: float = 3.0,
                     labels: tuple[str, str] = ("prediction", "ground truth")) -> dict[str, Path]:
    """Write `<out_stem>.mp4` and `<out_stem>.gif` of prediction beside ground truth.

    `prediction`/`truth`: `(T, H, W, 3)`; `truth=None` writes the prediction alone. `context`
    frames `(k, H, W, 3)`, if given, are shown first in every panel with a blue border.
    """
    panels = [to_uint8(prediction)]
    names = [labels[0]]
    if truth is not None:
        panels.append(to_uint8(truth))
        names.append(labels[1])
    k = 0
    if context is not None:
        ctx = to_uint8(context)
        k = ctx.shape[0]
        panels = [np.concatenate([ctx, p], axis=0) for p in panels]
    frames = compose_panels(panels, names, context_steps=k)
    stem = Path(out_stem)
    return {"mp4": write_video(stem.with_suffix(".mp4"), frames, fps),
            "gif": write_video(stem.with_suffix(".gif"), frames, fps)}

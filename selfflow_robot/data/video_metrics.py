"""Frame-quality metrics for world-model predictions: PSNR and SSIM.

Both take frames shaped `(..., H, W, C)` (numpy or torch; uint8 or float) and return one value
per frame, shape `(...)`, as float64 numpy. Float inputs are assumed in `[0, data_range]`;
uint8 inputs are scaled to `[0, 1]` first, so the two agree with `data_range=1.0`.

SSIM follows Wang et al. 2004: an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, the
map over "valid" window positions (no padding), averaged over positions and channels. On frames
smaller than 11 pixels the window shrinks to the largest odd size that fits.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

Array = np.ndarray | torch.Tensor

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _as_float(x: Array) -> torch.Tensor:
    """Frames to float64 torch; uint8 becomes [0, 1]."""
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    t = t.detach().cpu()
    if t.dtype == torch.uint8:
        return t.to(torch.float64) / 255.0
    return t.to(torch.float64)


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.ndim < 3:
        raise ValueError(f"frames must be (..., H, W, C), got shape {tuple(pred.shape)}")


def mse(pred: Array, target: Array) -> np.ndarray:
    """Mean squared error per frame, shape `(...)`."""
    p, t = _as_float(pred), _as_float(target)
    _check_pair(p, t)
    return ((p - t) ** 2).mean(dim=(-3, -2, -1)).numpy()


def psnr(pred: Array, target: Array, data_range: float = 1.0, max_db: float = 100.0) -> np.ndarray:
    """Peak signal-to-noise ratio in dB per frame: 10 log10(data_range^2 / MSE).

    Identical frames (MSE = 0) give `max_db` rather than infinity, so averages stay finite.
    """
    err = mse(pred, target)
    with np.errstate(divide="ignore"):
        val = 10.0 * np.log10(data_range**2 / err)
    return np.minimum(val, max_db)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised 2-D Gaussian window `(size, size)`, float64."""
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(ax**2) / (2.0 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim(pred: Array, target: Array, data_range: float = 1.0, window: int = SSIM_WINDOW,
         sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Structural similarity per frame, shape `(...)`; 1.0 for identical frames."""
    p, t = _as_float(pred), _as_float(target)
    _check_pair(p, t)
    *lead, h, w, c = p.shape
    size = min(window, h, w)
    size -= (size + 1) % 2  # odd window
    kernel = gaussian_window(size, sigma)[None, None].repeat(c, 1, 1, 1)  # (C, 1, s, s)
    # (N, C, H, W) with N = prod(lead)
    p = p.reshape(-1, h, w, c).permute(0, 3, 1, 2)
    t = t.reshape(-1, h, w, c).permute(0, 3, 1, 2)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, kernel, groups=c)  # valid positions only

    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_p, mu_t = blur(p), blur(t)
    var_p = blur(p * p) - mu_p**2
    var_t = blur(t * t) - mu_t**2
    cov = blur(p * t) - mu_p * mu_t
    num = (2 * mu_p * mu_t + c1) * (2 * cov + c2)
    den = (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2)
    smap = num / den  # (N, C, H', W')
    return smap.mean(dim=(1, 2, 3)).reshape(lead).numpy()

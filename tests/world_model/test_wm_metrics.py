"""PSNR / SSIM against hand-computed values and an independent brute-force SSIM."""
import math

import numpy as np
import pytest
import torch

from selfflow_robot.data.video_metrics import gaussian_window, mse, psnr, ssim


def test_psnr_hand_computed():
    a = np.zeros((4, 4, 3), np.float32)
    b = np.full((4, 4, 3), 0.1, np.float32)  # MSE = 0.01 -> 20 dB
    assert psnr(a, b) == pytest.approx(20.0, abs=1e-5)
    b[0, 0, 0] = 0.5  # MSE = (47 * 0.01 + 0.25) / 48
    expected = 10 * math.log10(1.0 / ((47 * 0.01 + 0.25) / 48))
    assert psnr(a, b) == pytest.approx(expected, abs=1e-5)


def test_psnr_uint8_equals_float_and_identical_is_capped():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, 5, 8, 8, 3), dtype=np.uint8)
    y = rng.integers(0, 256, (2, 5, 8, 8, 3), dtype=np.uint8)
    got = psnr(x, y)
    assert got.shape == (2, 5)
    np.testing.assert_allclose(got, psnr(x / 255.0, y / 255.0), rtol=1e-12)
    np.testing.assert_allclose(got, psnr(torch.from_numpy(x), torch.from_numpy(y)), rtol=1e-12)
    assert psnr(x, x).tolist() == [[100.0] * 5] * 2
    assert mse(x, x).sum() == 0


def test_ssim_identical_is_one_and_constant_images_hand_computed():
    rng = np.random.default_rng(1)
    x = rng.random((16, 16, 3))
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    # Constant images: variances and covariance vanish, so SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    a, b = 0.2, 0.6
    c1 = (0.01 * 1.0) ** 2
    got = ssim(np.full((12, 12, 1), a), np.full((12, 12, 1), b))
    assert got == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-9)


def _ssim_brute_force(x, y, size=11, sigma=1.5):
    """Direct loop over windows, independent of the conv implementation."""
    ax = np.arange(size) - (size - 1) / 2
    g = np.exp(-ax**2 / (2 * sigma**2))
    w = np.outer(g, g)
    w /= w.sum()
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    h, wd, ch = x.shape
    for c in range(ch):
        for i in range(h - size + 1):
            for j in range(wd - size + 1):
                px, py = x[i:i + size, j:j + size, c], y[i:i + size, j:j + size, c]
                mx, my = (w * px).sum(), (w * py).sum()
                vx = (w * (px - mx) ** 2).sum()
                vy = (w * (py - my) ** 2).sum()
                cxy = (w * (px - mx) * (py - my)).sum()
                vals.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(vals))


def test_ssim_matches_brute_force_and_batches():
    rng = np.random.default_rng(2)
    x = rng.random((14, 13, 3))
    y = np.clip(x + 0.1 * rng.standard_normal(x.shape), 0, 1)
    ref = _ssim_brute_force(x, y)
    assert ssim(x, y) == pytest.approx(ref, rel=1e-9)
    assert 0.0 < ref < 1.0
    batch = ssim(np.stack([x, x]), np.stack([y, x]))
    np.testing.assert_allclose(batch, [ref, 1.0], rtol=1e-9)


def test_ssim_small_frames_shrink_window():
    rng = np.random.default_rng(3)
    x, y = rng.random((6, 8, 3)), rng.random((6, 8, 3))
    assert ssim(x, y) == pytest.approx(_ssim_brute_force(x, y, size=5), rel=1e-9)
    assert gaussian_window(5).sum().item() == pytest.approx(1.0)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))

"""The textures and the plane partitions of :class:`~matbackprop.data.TextureMosaics`: every
draw comes from the generator ``g`` of one image, so an image is a function of its seed."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F


def _uniform(g: torch.Generator, low: float, high: float, n: int | None = None) -> Any:
    u = torch.rand(() if n is None else (n,), generator=g, dtype=torch.float64)
    u = low + (high - low) * u
    return float(u) if n is None else u


def spread_sites(g: torch.Generator, n: int, height: int, width: int) -> torch.Tensor:
    """``(n, 2)`` (y, x) sites by farthest-point sampling from random candidates."""
    candidates = torch.rand(max(16 * n, 64), 2, generator=g) * torch.tensor(
        [height, width], dtype=torch.float32
    )
    chosen = [0]
    dist = (candidates - candidates[0]).square().sum(1)
    for _ in range(n - 1):
        nxt = int(dist.argmax())
        chosen.append(nxt)
        dist = torch.minimum(dist, (candidates - candidates[nxt]).square().sum(1))
    return candidates[chosen]


def smooth_field(g: torch.Generator, cells: int, height: int, width: int) -> torch.Tensor:
    """``(2, H, W)`` smooth random field: bicubic upsampling of ``cells x cells`` normals."""
    coarse = torch.randn(1, 2, cells + 1, cells + 1, generator=g)
    return F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)[0]


def _rotated(yy: torch.Tensor, xx: torch.Tensor, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    c, s = math.cos(theta), math.sin(theta)
    return xx * c + yy * s, -xx * s + yy * c


def _bandpass_noise(
    g: torch.Generator,
    height: int,
    width: int,
    f0: float,
    bandwidth: float,
    theta: float | None,
    angular_sigma: float,
) -> torch.Tensor:
    """Gaussian noise filtered by a radial (and optionally angular) Gaussian band in Fourier."""
    noise = torch.randn(height, width, generator=g)
    spectrum = torch.fft.rfft2(noise)
    fy = torch.fft.fftfreq(height).view(-1, 1)
    fx = torch.fft.rfftfreq(width).view(1, -1)
    radius = torch.sqrt(fy.square() + fx.square())
    gain = torch.exp(-0.5 * ((radius - f0) / bandwidth).square())
    if theta is not None:
        angle = torch.atan2(fy, fx)
        delta = torch.remainder(angle - theta + math.pi / 2, math.pi) - math.pi / 2
        gain = gain * torch.exp(-0.5 * (delta / angular_sigma).square())
    return torch.fft.irfft2(spectrum * gain, s=(height, width))


def texture(
    g: torch.Generator,
    family: str,
    variant: float,
    yy: torch.Tensor,
    xx: torch.Tensor,
) -> torch.Tensor:
    """An ``(H, W)`` texture pattern of ``family`` (any range; normalized by the caller)."""
    height, width = yy.shape
    jitter = math.radians(_uniform(g, -10.0, 10.0))
    two_pi = 2.0 * math.pi
    if family == "grating":
        period = _uniform(g, 5.0, 8.0)
        t, _ = _rotated(yy, xx, math.radians(variant) + jitter)
        return torch.sin(two_pi * t / period + _uniform(g, 0.0, two_pi))
    if family == "stripes":
        period = _uniform(g, 7.0, 11.0)
        duty = _uniform(g, 0.2, 0.3)
        t, _ = _rotated(yy, xx, math.radians(variant) + jitter)
        phase = torch.remainder(t / period + _uniform(g, 0.0, 1.0), 1.0)
        return (phase < duty).to(yy.dtype)
    if family == "checkerboard":
        period = _uniform(g, 8.0, 12.0)
        u, v = _rotated(yy, xx, math.radians(variant) + jitter)
        su = torch.sin(two_pi * u / period + _uniform(g, 0.0, two_pi))
        sv = torch.sin(two_pi * v / period + _uniform(g, 0.0, two_pi))
        return torch.sign(su) * torch.sign(sv)
    if family == "dots":
        period = _uniform(g, 5.5, 7.0) if variant == 0.0 else _uniform(g, 8.0, 10.0)
        sigma = _uniform(g, 0.9, 1.3)
        u, v = _rotated(yy, xx, _uniform(g, 0.0, math.pi / 2))
        cu = (torch.remainder(u / period + _uniform(g, 0.0, 1.0), 1.0) - 0.5) * period
        cv = (torch.remainder(v / period + _uniform(g, 0.0, 1.0), 1.0) - 0.5) * period
        return torch.exp(-(cu.square() + cv.square()) / (2.0 * sigma * sigma))
    if family == "oriented_noise":
        f0 = 1.0 / _uniform(g, 5.0, 8.0)
        theta = math.radians(variant) + jitter
        return _bandpass_noise(g, height, width, f0, 0.25 * f0, theta, math.radians(12.0))
    if family == "isotropic_noise":
        f0 = 1.0 / (_uniform(g, 4.0, 6.0) if variant == 0.0 else _uniform(g, 9.0, 13.0))
        return _bandpass_noise(g, height, width, f0, 0.3 * f0, None, 0.0)
    raise ValueError(f"unknown texture family {family!r}")  # pragma: no cover


def region_normalize(pattern: torch.Tensor, labels: torch.Tensor, n: int) -> torch.Tensor:
    """Per region: subtract the region mean, then scale to max |value| = 1 in the region."""
    flat_labels = labels.reshape(-1)
    flat = pattern.reshape(-1)
    counts = torch.bincount(flat_labels, minlength=n).to(flat.dtype)
    sums = torch.zeros(n, dtype=flat.dtype).index_add_(0, flat_labels, flat)
    centred = flat - (sums / counts)[flat_labels]
    peak = torch.zeros(n, dtype=flat.dtype).scatter_reduce_(
        0, flat_labels, centred.abs(), reduce="amax", include_self=True
    )
    peak = torch.where(peak > 1e-6, peak, torch.ones_like(peak))
    return (centred / peak[flat_labels]).view_as(pattern)

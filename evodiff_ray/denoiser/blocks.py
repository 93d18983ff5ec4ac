"""The searched building blocks: one torch module per genome layer kind.

Every block maps ``(B, C, H, W) -> (B, C, H, W)`` at its level's channel count ``C``.
Blocks receive the time embedding ``temb`` of shape ``(B, T)``; only residual blocks
use it. None of them knows anything about the noise schedule.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

_ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU}


class ConvBlock(nn.Module):
    """A plain ``k x k`` convolution, channels preserved."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ResidualBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the time embedding added in between (DDPM style)."""

    def __init__(self, channels: int, kernel: int, time_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, channels)
        self.conv1 = nn.Conv2d(channels, channels, kernel, padding=kernel // 2)
        self.temb = nn.Linear(time_dim, channels)
        self.norm2 = nn.GroupNorm(groups, channels)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(channels, channels, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))                  # (B, C, H, W)
        h = h + self.temb(F.silu(temb))[:, :, None, None]      # (B, C, 1, 1) broadcast
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return x + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the ``H*W`` positions, with a residual."""

    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = qkv.unbind(1)                                # each (B, heads, C/heads, N)
        q, k, v = (t.transpose(-1, -2) for t in (q, k, v))     # (B, heads, N, C/heads)
        out = F.scaled_dot_product_attention(q, k, v)          # (B, heads, N, C/heads)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj(out)


class NormBlock(nn.Module):
    """GroupNorm with the genome's group count."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class ActivationBlock(nn.Module):
    """A pointwise nonlinearity."""

    def __init__(self, fn: str):
        super().__init__()
        self.act = _ACTIVATIONS[fn]()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return self.act(x)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps: ``(B,) -> (B, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def make_block(layer: dict, channels: int, time_dim: int, norm_groups: int) -> nn.Module:
    """The module for one genome layer dict at ``channels`` channels."""
    kind = layer["kind"]
    if kind == "conv":
        return ConvBlock(channels, layer["kernel"])
    if kind == "residual":
        return ResidualBlock(channels, layer["kernel"], time_dim, norm_groups, layer["dropout"])
    if kind == "attention":
        return AttentionBlock(channels, layer["heads"], norm_groups)
    if kind == "norm":
        return NormBlock(channels, layer["groups"])
    if kind == "activation":
        return ActivationBlock(layer["fn"])
    raise ValueError(f"unknown layer kind {kind!r}")  # unreachable for a validated Genome

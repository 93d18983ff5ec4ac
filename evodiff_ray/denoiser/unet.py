"""GenomeUNet: the UNet-family denoiser a genome describes.

``forward(x, t)`` predicts the noise in ``x`` at (continuous or integer) timestep
``t``. The network knows nothing of the noise schedule; :mod:`evodiff_ray.diffusion`
owns that. Layout (see :mod:`evodiff_ray.genome`): stem, down layers per level with a
stride-2 conv between levels, mid layers, up layers per level with nearest-upsample
plus conv between levels, additive skips along ``connections``, then the head.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from evodiff_ray.denoiser.blocks import make_block, timestep_embedding
from evodiff_ray.genome import Genome


class GenomeUNet(nn.Module):
    """A denoiser built from a :class:`~evodiff_ray.genome.Genome`.

    Args:
        genome: the validated architecture.
        in_channels: image channels (1 for digits, 3 for RGB).
    """

    def __init__(self, genome: Genome, in_channels: int = 1):
        super().__init__()
        p = genome.parameters
        self.levels = genome.levels
        self.time_dim = T = p["time_emb_dim"]
        c0 = genome.channels(0)
        self.time_mlp = nn.Sequential(nn.Linear(T, T), nn.SiLU(), nn.Linear(T, T))
        self.stem = nn.Conv2d(in_channels, c0, 3, padding=1)
        self.stem_temb = nn.Linear(T, c0)
        self.blocks = nn.ModuleList(
            make_block(layer, genome.channels(layer["level"]), T, p["norm_groups"]) for layer in genome.layers
        )
        self.sides = [layer["side"] for layer in genome.layers]
        self.block_levels = [layer["level"] for layer in genome.layers]
        self.down = nn.ModuleList(
            nn.Conv2d(genome.channels(lvl), genome.channels(lvl + 1), 3, stride=2, padding=1)
            for lvl in range(self.levels - 1)
        )
        self.up = nn.ModuleList(
            nn.Conv2d(genome.channels(lvl + 1), genome.channels(lvl), 3, padding=1) for lvl in range(self.levels - 1)
        )
        self.head_norm = nn.GroupNorm(p["norm_groups"], c0)
        self.head = nn.Conv2d(c0, in_channels, 3, padding=1)
        self.skips_into: dict[int, list[int]] = {}
        for a, b in genome.connections:
            self.skips_into.setdefault(b, []).append(a)
        self.skip_sources = {a for a, _ in genome.connections}

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Predict noise: ``x (B, C, H, W)``, ``t (B,)`` -> ``(B, C, H, W)``."""
        temb = self.time_mlp(timestep_embedding(t, self.time_dim))          # (B, T)
        h = self.stem(x) + self.stem_temb(temb)[:, :, None, None]           # (B, C0, H, W)
        saved: dict[int, torch.Tensor] = {}
        n = len(self.blocks)
        i = 0
        for lvl in range(self.levels):
            while i < n and self.sides[i] == "down" and self.block_levels[i] == lvl:
                h = self.blocks[i](h, temb)
                if i in self.skip_sources:
                    saved[i] = h
                i += 1
            if lvl < self.levels - 1:
                h = self.down[lvl](h)                                       # (B, C_{l+1}, H/2, W/2)
        while i < n and self.sides[i] == "mid":
            h = self.blocks[i](h, temb)
            i += 1
        for lvl in range(self.levels - 1, -1, -1):
            while i < n and self.block_levels[i] == lvl:
                for src in self.skips_into.get(i, ()):
                    h = h + saved[src]
                h = self.blocks[i](h, temb)
                i += 1
            if lvl > 0:
                h = self.up[lvl - 1](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.head(F.silu(self.head_norm(h)))

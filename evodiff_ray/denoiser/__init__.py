"""The searched network: genome -> torch module (kept apart from the diffusion machinery)."""

from __future__ import annotations

from evodiff_ray.genome import Genome


def build_denoiser(genome: Genome, in_channels: int = 1):
    """Build the denoiser a genome describes.

    Args:
        genome: a validated genome.
        in_channels: image channels.

    Returns:
        A ``torch.nn.Module`` whose ``forward(x, t)`` keeps ``x``'s shape.
    """
    from evodiff_ray.denoiser.unet import GenomeUNet

    return GenomeUNet(genome, in_channels)


__all__ = ["build_denoiser"]

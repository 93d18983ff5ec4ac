"""evodiff_ray.diffusion."""

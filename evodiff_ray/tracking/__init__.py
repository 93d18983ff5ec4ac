"""evodiff_ray.tracking."""

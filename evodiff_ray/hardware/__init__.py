"""evodiff_ray.hardware."""

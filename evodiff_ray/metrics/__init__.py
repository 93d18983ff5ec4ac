"""evodiff_ray.metrics."""

"""evodiff_ray.operators."""

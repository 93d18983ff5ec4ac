"""evodiff_ray.cache."""

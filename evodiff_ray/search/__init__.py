"""evodiff_ray.search."""

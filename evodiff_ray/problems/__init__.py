"""evodiff_ray.problems."""

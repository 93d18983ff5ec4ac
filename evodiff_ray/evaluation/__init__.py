"""evodiff_ray.evaluation."""

"""The objectives, all minimised: :mod:`~evodiff_ray.metrics.quality` (``quality_fd``),
:mod:`~evodiff_ray.metrics.latency` (``latency_ms``), :mod:`~evodiff_ray.metrics.memory` (``memory_mb``)."""

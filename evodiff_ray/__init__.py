"""evodiff-ray: Ray-distributed multi-objective evolutionary architecture search for diffusion denoisers."""

__version__ = "0.1.0"

__all__ = ["__version__"]

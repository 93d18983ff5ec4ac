"""The fixed diffusion machinery every candidate shares: schedule, loss, sampler, training, fidelities.

Modules: :mod:`~evodiff_ray.diffusion.schedule` (linear DDPM betas), :mod:`~evodiff_ray.diffusion.loss`
(epsilon MSE), :mod:`~evodiff_ray.diffusion.sampler` (deterministic DDIM),
:mod:`~evodiff_ray.diffusion.train` (the budgeted recipe), :mod:`~evodiff_ray.diffusion.fidelity`
(``FIDELITIES``). The denoiser (:mod:`evodiff_ray.denoiser`) knows none of it.
"""

"""A diffusion candidate trained into a servable model, for the model registry.

:func:`train_model` trains a genome at a fidelity (``full`` by default) on the problem's
dataset and seed, or reuses weights trained before for the same genome, fidelity,
dataset and seed. :func:`model_from_trunk` instead hands over exactly the model a
multi-fidelity search measured at a rung: its stored trunk plus that rung's decay branch,
replayed (the branch is a small share of the rung's budget), with no training from scratch. MLflow logs the result as "model from code": ``pyfunc_model.py`` beside
this module, which samples images, plus the genome JSON, the weights (a ``state_dict``,
read back with ``weights_only=True``) and their metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from evodiff_ray.diffusion.fidelity import Fidelity, get_fidelity
from evodiff_ray.genome import Genome
from evodiff_ray.problems.base import TrainedModel
from evodiff_ray.problems.diffusion.settings import DiffusionSettings

#: the model-from-code file MLflow loads (never imported by the package itself)
PYFUNC_MODEL = Path(__file__).with_name("pyfunc_model.py")


@dataclass(frozen=True)
class TrainingSettings:
    """What decides trained weights besides the genome; its key names the weights file."""

    fidelity: Fidelity
    dataset_digest: str
    seed: int

    def key_dict(self) -> dict[str, Any]:
        return {"purpose": "promote", "fidelity": self.fidelity.to_dict(), "dataset": self.dataset_digest,
                "seed": self.seed}


@dataclass(frozen=True)
class TrunkModelSettings:
    """What decides a model taken from a multi-fidelity trunk; its key names the weights file."""

    rungs: dict[str, Any]
    rung: int
    dataset_digest: str
    seed: int

    def key_dict(self) -> dict[str, Any]:
        return {"purpose": "promote-from-trunk", "rungs": self.rungs, "rung": self.rung,
                "dataset": self.dataset_digest, "seed": self.seed}


def model_from_trunk(genome: Genome, settings: DiffusionSettings, *, store, trunk_key: str, rung: int,
                     models_dir: str | Path, progress: Callable[[str], None] | None = None) -> TrainedModel | None:
    """The model a multi-fidelity search measured at ``rung``, from its stored trunk.

    The trunk at ``rung`` (weights, EMA, Adam moments, generators) is read back with
    ``weights_only``, and the rung's decay branch is replayed on it, so the weights are the
    ones whose quality the search recorded (for the same seeds the branch is deterministic;
    see :mod:`evodiff_ray.diffusion.wsd`).

    Args:
        genome: the architecture.
        settings: the search's settings, with ``rungs``.
        store: the search's :class:`~evodiff_ray.diffusion.trunk_store.TrunkStore`.
        trunk_key: the genome's key under the settings' quality part.
        rung: the rung whose model is wanted.
        models_dir: where the weights are written (as :func:`train_model`'s).
        progress: one-line progress messages.

    Returns:
        The model, or None when the store holds no usable trunk at ``rung``.
    """
    import torch

    from evodiff_ray.core.key import evaluation_key
    from evodiff_ray.data import load_dataset
    from evodiff_ray.denoiser import build_denoiser
    from evodiff_ray.diffusion import wsd
    from evodiff_ray.diffusion.schedule import linear_schedule

    progress = progress or (lambda message: None)
    recipe = settings.rung_recipe
    if recipe is None or not 0 <= rung < len(recipe):
        return None
    data = store.get(trunk_key, rung)
    if data is None:
        return None
    ds = load_dataset(settings.dataset, resolution=settings.resolution)
    key = evaluation_key(genome.key(), TrunkModelSettings(recipe.to_dict(), rung, ds.digest, settings.seed))
    folder = Path(models_dir) / key
    weights, meta_path, genome_path = folder / "weights.pt", folder / "meta.json", folder / "genome.json"
    if weights.exists() and meta_path.exists():
        progress(f"reusing weights taken from the rung-{rung} trunk: {weights}")
        meta = json.loads(meta_path.read_text())
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            net = build_denoiser(genome, in_channels=ds.channels)
        try:
            trunk = wsd.state_from_bytes(data, net, recipe.fidelity)
            if trunk.step != recipe.trunk_steps(rung):
                raise ValueError(f"trunk at step {trunk.step}, rung {rung} branches at {recipe.trunk_steps(rung)}")
        except ValueError as e:
            progress(f"trunk of {genome.key()[:12]} at rung {rung} unusable ({e}); training instead")
            return None
        progress(f"taking {genome.key()[:12]} from its rung-{rung} trunk: replaying the "
                 f"{recipe.decay_steps(rung)}-step decay branch")
        model = wsd.branch(trunk, ds.train, linear_schedule(), recipe, rung)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = weights.with_suffix(".tmp")
        torch.save(model.state_dict(), tmp)
        tmp.replace(weights)
        meta = {"resolution": ds.resolution, "channels": ds.channels, "dataset_digest": ds.digest,
                "fidelity": {"name": f"{recipe.fidelity.name}@rung{rung}", "train_steps": recipe.budget(rung)},
                "from_trunk": True, "rung": rung, "rungs": recipe.to_dict(),
                "final_loss": sum(trunk.tail_losses) / max(1, len(trunk.tail_losses)),
                "train_seconds": trunk.seconds}
        meta_path.write_text(json.dumps(meta))
    genome_path.write_text(json.dumps(genome.to_dict(), indent=1))
    return _trained(genome_path, weights, meta_path, meta)


def _trained(genome_path: Path, weights: Path, meta_path: Path, meta: dict[str, Any]) -> TrainedModel:
    import torch

    return TrainedModel(
        python_model=str(PYFUNC_MODEL),
        artifacts={"genome": str(genome_path), "weights": str(weights), "meta": str(meta_path)},
        pip_requirements=("evodiff-ray", f"torch=={torch.__version__.split('+')[0]}", "mlflow"),
        meta=meta,
    )


def train_model(genome: Genome, settings: DiffusionSettings, *, models_dir: str | Path,
                fidelity: str | Fidelity = "full", progress: Callable[[str], None] | None = None) -> TrainedModel:
    """Train ``genome`` at ``fidelity``, or reuse weights trained before, as a loggable model.

    Args:
        genome: the architecture.
        settings: the search's settings (dataset, resolution and seed are used).
        models_dir: where trained models are kept, one folder per key
            (``<key>/weights.pt``, ``meta.json``, ``genome.json``: the artifacts' names).
        fidelity: the training budget.
        progress: one-line progress messages (None: silent).

    Returns:
        The :class:`~evodiff_ray.problems.base.TrainedModel`; its ``meta`` holds resolution,
        channels, dataset digest, fidelity, final loss and training seconds.
    """
    import torch

    from evodiff_ray.core.key import evaluation_key
    from evodiff_ray.data import load_dataset
    from evodiff_ray.denoiser import build_denoiser
    from evodiff_ray.diffusion.schedule import linear_schedule
    from evodiff_ray.diffusion.train import step_progress, train

    progress = progress or (lambda message: None)
    models_dir = Path(models_dir)
    fid = get_fidelity(fidelity)
    ds = load_dataset(settings.dataset, resolution=settings.resolution)
    key = evaluation_key(genome.key(), TrainingSettings(fid, ds.digest, settings.seed))
    folder = models_dir / key
    weights, meta_path, genome_path = folder / "weights.pt", folder / "meta.json", folder / "genome.json"
    if weights.exists() and meta_path.exists():
        progress(f"reusing weights trained at {fid.name} fidelity: {weights}")
        meta = json.loads(meta_path.read_text())
    else:
        torch.manual_seed(settings.seed)
        net = build_denoiser(genome, in_channels=ds.channels)
        progress(f"training {genome.key()[:12]} at {fid.name} fidelity ({fid.train_steps} steps)")
        result = train(net, ds.train, linear_schedule(), fid, settings.seed,
                       on_step=step_progress(progress, fid.train_steps, f"training {genome.key()[:12]}"))
        folder.mkdir(parents=True, exist_ok=True)
        tmp = weights.with_suffix(".tmp")
        torch.save(result.model.state_dict(), tmp)
        tmp.replace(weights)
        meta = {"resolution": ds.resolution, "channels": ds.channels, "dataset_digest": ds.digest,
                "fidelity": fid.to_dict(), "final_loss": result.final_loss, "train_seconds": result.seconds}
        meta_path.write_text(json.dumps(meta))
    genome_path.write_text(json.dumps(genome.to_dict(), indent=1))
    return _trained(genome_path, weights, meta_path, meta)

"""Flat encodings of a problem's search space: named parameters, some conditional.

A library like Optuna samples named parameters one at a time (define by run), so a
candidate is decoded while it is drawn: :meth:`Encoding.decode` asks ``suggest(param)``
for each parameter it needs, and which parameters it needs depends on earlier answers
(a genome with 2 levels has no ``mult_2``; a stage with 1 layer has no slot 1).
:meth:`Encoding.encode` is the inverse: the parameters that decode back to a candidate.

- :class:`BoxEncoding`: one float per variable of a real-vector problem.
- :class:`GenomeEncoding`: a genome of a :class:`~evodiff_ray.space.SearchSpace`:
  ``levels``, ``base_channels``, ``mult_<l>``, ``time_emb_dim``, ``sampler_steps``,
  ``norm_groups``; per stage (``down<l>``, ``mid``, ``up<l>``) a layer count ``n_<stage>``
  and per slot ``<stage>_<i>_kind`` with that kind's choice (``_kernel``, ``_heads``,
  ``_fn``, ``_groups``); per level and (down slot, up slot) pair a ``skip<l>_<i>_<j>``
  switch. Every genome the space's sampler draws (without a complexity schedule) encodes
  and decodes to itself; decoding goes through the operators' repair, so any answer
  decodes to a valid genome inside the space.

Pure: no Optuna import here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from evodiff_ray.core.errors import UsageError
from evodiff_ray.problems.base import Bounds


@dataclass(frozen=True)
class Param:
    """One named parameter: ``float`` in ``[low, high]``, ``int`` in ``[low, high]``, or
    ``categorical`` over ``choices``."""

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    choices: tuple = ()


Suggest = Callable[[Param], Any]


class Encoding(ABC):
    """A problem's candidates as flat named parameters."""

    @abstractmethod
    def decode(self, suggest: Suggest, generation: int = 0) -> Any:
        """The candidate built from the values ``suggest(param)`` returns, asked in order
        (``generation`` is lineage, for candidates that carry it)."""

    @abstractmethod
    def encode(self, x: Any) -> dict[str, Any]:
        """The parameter values that :meth:`decode` turns back into ``x``.

        Raises:
            ValueError: ``x`` lies outside the encoded space.
        """

    def decode_values(self, values: dict[str, Any]) -> Any:
        """Decode from a dict of values (every parameter decode asks for must be present)."""
        return self.decode(lambda p: values[p.name])


class BoxEncoding(Encoding):
    """``x0 .. x<n-1>``, each a float between the problem's bounds."""

    def __init__(self, xl: np.ndarray, xu: np.ndarray):
        self.params = [Param(f"x{i}", "float", float(lo), float(hi)) for i, (lo, hi) in enumerate(zip(xl, xu))]

    def decode(self, suggest: Suggest, generation: int = 0) -> np.ndarray:
        return np.array([float(suggest(p)) for p in self.params])

    def encode(self, x: Any) -> dict[str, Any]:
        x = np.asarray(x, dtype=float).ravel()
        if len(x) != len(self.params):
            raise ValueError(f"a candidate has {len(self.params)} variables, not {len(x)}")
        return {p.name: float(v) for p, v in zip(self.params, x)}


class GenomeEncoding(Encoding):
    """A genome space as conditional parameters (see the module docstring).

    Args:
        space: the :class:`~evodiff_ray.space.SearchSpace`; decoding repairs into its full
            limits (no complexity schedule).
    """

    def __init__(self, space):
        self.space = space
        s = space
        self._levels = Param("levels", "int", 1, s.max_levels)
        self._count = {}  # stage -> Param, made on demand (names depend on the level)
        self._global = {
            "base_channels": Param("base_channels", "categorical", choices=tuple(s.base_channels)),
            "time_emb_dim": Param("time_emb_dim", "categorical", choices=tuple(s.time_emb_dims)),
            "sampler_steps": Param("sampler_steps", "categorical", choices=tuple(s.sampler_steps)),
            "norm_groups": Param("norm_groups", "categorical", choices=tuple(s.norm_groups)),
        }
        self._mult = [Param(f"mult_{lvl}", "categorical", choices=tuple(s.channel_mults))
                      for lvl in range(s.max_levels)]
        self._kinds = tuple(space.kinds())
        self._layer_choice = {  # kind -> (suffix, choices)
            "conv": ("kernel", tuple(s.kernels)),
            "residual": ("kernel", tuple(s.kernels)),
            "attention": ("heads", tuple(s.heads)),
            "activation": ("fn", tuple(s.activations)),
            "norm": ("groups", tuple(s.norm_groups)),
        }

    # -- names -----------------------------------------------------------------------
    @staticmethod
    def stages(levels: int) -> list[tuple[str, str, int]]:
        """``(name, side, level)`` of every stage of a genome with ``levels`` levels, in layer order."""
        return ([(f"down{lvl}", "down", lvl) for lvl in range(levels)] + [("mid", "mid", levels - 1)]
                + [(f"up{lvl}", "up", lvl) for lvl in range(levels - 1, -1, -1)])

    def _count_param(self, stage: str) -> Param:
        return Param(f"n_{stage}", "int", 0, self.space.max_stage_layers)

    def _kind_param(self, stage: str, i: int) -> Param:
        return Param(f"{stage}_{i}_kind", "categorical", choices=self._kinds)

    def _choice_param(self, stage: str, i: int, kind: str) -> Param:
        suffix, choices = self._layer_choice[kind]
        return Param(f"{stage}_{i}_{suffix}", "categorical", choices=choices)

    @staticmethod
    def _skip_param(level: int, i: int, j: int) -> Param:
        return Param(f"skip{level}_{i}_{j}", "categorical", choices=(False, True))

    # -- decode ----------------------------------------------------------------------
    def decode(self, suggest: Suggest, generation: int = 0):
        from evodiff_ray.operators.repair import repair

        levels = int(suggest(self._levels))
        params = {name: suggest(p) for name, p in self._global.items() if name != "norm_groups"}
        params["channel_mults"] = [int(suggest(self._mult[lvl])) for lvl in range(levels)]
        params["norm_groups"] = suggest(self._global["norm_groups"])
        layers, slots = [], {}
        for stage, side, lvl in self.stages(levels):
            for i in range(int(suggest(self._count_param(stage)))):
                kind = suggest(self._kind_param(stage, i))
                layer = {"kind": kind, "side": side, "level": lvl, "_id": f"{stage}_{i}"}
                suffix, _ = self._layer_choice[kind]
                layer[suffix] = suggest(self._choice_param(stage, i, kind))
                if kind == "residual":
                    layer["dropout"] = 0.0
                layers.append(layer)
                slots[(stage, i)] = layer["_id"]
        connections = []
        for lvl in range(levels):
            downs = [i for (st, i) in slots if st == f"down{lvl}"]
            ups = [j for (st, j) in slots if st == f"up{lvl}"]
            for i in downs:
                for j in ups:
                    if suggest(self._skip_param(lvl, i, j)):
                        connections.append((slots[(f"down{lvl}", i)], slots[(f"up{lvl}", j)]))
        draft = {"parameters": params, "layers": layers, "connections": connections}
        return repair(draft, self.space, self.space.limits(10**9), generation=generation,
                      origin="optuna")  # the sampler's own proposal (its edits are not visible)

    # -- encode ----------------------------------------------------------------------
    def encode(self, genome) -> dict[str, Any]:
        p = genome.parameters
        levels = len(p["channel_mults"])
        out: dict[str, Any] = {"levels": levels}
        self._check(self._levels, levels)
        for name in ("base_channels", "time_emb_dim", "sampler_steps", "norm_groups"):
            out[name] = self._check(self._global[name], p[name])
        for lvl, m in enumerate(p["channel_mults"]):
            out[f"mult_{lvl}"] = self._check(self._mult[lvl], m)
        by_stage: dict[str, list[int]] = {}
        for pos, layer in enumerate(genome.layers):
            stage = "mid" if layer["side"] == "mid" else f"{layer['side']}{layer['level']}"
            by_stage.setdefault(stage, []).append(pos)
        slot_of = {}
        for stage, _side, _lvl in self.stages(levels):
            positions = by_stage.pop(stage, [])
            out[f"n_{stage}"] = self._check(self._count_param(stage), len(positions))
            for i, pos in enumerate(positions):
                layer = genome.layers[pos]
                kind = out[f"{stage}_{i}_kind"] = self._check(self._kind_param(stage, i), layer["kind"])
                suffix, _ = self._layer_choice[kind]
                out[f"{stage}_{i}_{suffix}"] = self._check(self._choice_param(stage, i, kind), layer[suffix])
                if kind == "residual" and layer.get("dropout", 0.0) != 0.0:
                    raise ValueError(f"layer {pos}: dropout {layer['dropout']} is not encoded (always 0.0)")
                slot_of[pos] = (stage, i)
        if by_stage:
            raise ValueError(f"layers in stages {sorted(by_stage)} do not fit {levels} levels")
        edges = {(slot_of[a], slot_of[b]) for a, b in genome.connections}
        for lvl in range(levels):
            for i in range(out[f"n_down{lvl}"]):
                for j in range(out[f"n_up{lvl}"]):
                    out[f"skip{lvl}_{i}_{j}"] = ((f"down{lvl}", i), (f"up{lvl}", j)) in edges
        return out

    @staticmethod
    def _check(param: Param, value: Any) -> Any:
        ok = value in param.choices if param.kind == "categorical" else param.low <= value <= param.high
        if not ok:
            raise ValueError(f"{param.name}={value!r} lies outside the encoded space")
        return value


def encoding_for(problem, strategy: str) -> Encoding:
    """The flat encoding of a problem's :meth:`~evodiff_ray.problems.base.SearchProblem.search_space`.

    Raises:
        UsageError: the problem describes no space this module can encode.
    """
    space = described_space(problem, strategy)
    if isinstance(space, Bounds):
        return BoxEncoding(space.xl, space.xu)
    return GenomeEncoding(space)


def described_space(problem, strategy: str):
    """The problem's search space with no complexity schedule: Bounds or a SearchSpace.

    Raises:
        UsageError: the problem describes neither (``strategy`` does not fit it).
    """
    import dataclasses

    from evodiff_ray.space import ComplexitySchedule, SearchSpace

    space = problem.search_space()
    if isinstance(space, Bounds):
        return space
    if isinstance(space, SearchSpace):
        return dataclasses.replace(space, schedule=ComplexitySchedule(enabled=False))
    raise UsageError(
        f"strategy {strategy!r} does not fit problem {problem.name or type(problem).__name__!r}: it describes no "
        "search space (real bounds or a genome SearchSpace, SearchProblem.search_space); use --strategy nsga2"
    )


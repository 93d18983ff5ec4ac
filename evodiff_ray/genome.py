"""Genome: a denoiser architecture as data, with validation, canonical JSON and a key.

A genome describes a UNet-family denoiser with ``L = len(channel_mults)`` resolution
levels. Level ``l`` runs at ``resolution / 2**l`` with ``C_l = base_channels *
channel_mults[l]`` channels; every layer at a level keeps ``C_l`` channels, so the
skip connections (encoder -> decoder, same level) are additive and always fit.

The layer list is ordered: all ``down`` layers (levels non-decreasing), then the
``mid`` layers (at the lowest resolution, level ``L-1``), then the ``up`` layers
(levels non-increasing). Between levels the network has fixed resampling convs.
:mod:`evodiff_ray.denoiser` builds exactly this; :mod:`evodiff_ray.cost` counts it.

Example::

    {"parameters": {"base_channels": 32, "channel_mults": [1, 2], "time_emb_dim": 64,
                    "sampler_steps": 20, "norm_groups": 8},
     "layers": [{"kind": "residual", "side": "down", "level": 0},
                {"kind": "attention", "side": "mid", "level": 1, "heads": 2},
                {"kind": "residual", "side": "up", "level": 0}],
     "connections": [[0, 2]]}
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evodiff_ray.core.errors import UsageError

KINDS = ("attention", "conv", "residual", "norm", "activation")
SIDES = ("down", "mid", "up")
ACTIVATIONS = ("silu", "relu", "gelu")
KERNELS = (1, 3, 5)

#: Limits a genome must respect to be loadable at all (the SearchSpace is narrower).
MAX_LEVELS = 4
MAX_LAYERS = 64
PARAM_RANGES = {
    "base_channels": (4, 256),
    "time_emb_dim": (8, 512),
    "sampler_steps": (1, 1000),
    "norm_groups": (1, 64),
}
MULT_RANGE = (1, 8)
MAX_HEADS = 16

#: Explicit defaults: the canonical form always carries them.
PARAM_DEFAULTS = {"time_emb_dim": 64, "sampler_steps": 20, "norm_groups": 4}
LAYER_DEFAULTS: dict[str, dict[str, Any]] = {
    "attention": {"heads": 1},
    "conv": {"kernel": 3},
    "residual": {"kernel": 3, "dropout": 0.0},
    "norm": {"groups": None},  # None -> parameters.norm_groups
    "activation": {"fn": "silu"},
}
_SIDE_RANK = {s: i for i, s in enumerate(SIDES)}


class GenomeError(UsageError):
    """A genome failed validation. The message names the field and the fix."""


@dataclass(frozen=True, eq=False)
class Genome:
    """An architecture genome. Build it with :meth:`from_dict` / :meth:`from_json`.

    Attributes:
        parameters: global genes (base_channels, channel_mults, time_emb_dim,
            sampler_steps, norm_groups).
        layers: ordered layer dicts, each with ``kind``, ``side``, ``level`` and its
            kind's parameters (all explicit).
        connections: sorted, de-duplicated ``(from, to)`` skip edges between layer
            positions (a ``down`` layer and an ``up`` layer of the same level).
        generation: lineage only; not part of the key.
        parents: lineage only (parents' keys); not part of the key.
        origin: lineage only: the edit that made it (``"sample"``, ``"crossover"``,
            ``"mutation:<kind>[+<kind>]"``, ``"crossover+mutation:<kind>"``, ``"seed:<source>"``
            for a warm start, ``""`` when unknown); not part of the key.
    """

    parameters: dict[str, Any]
    layers: tuple[dict[str, Any], ...]
    connections: tuple[tuple[int, int], ...] = ()
    generation: int = 0
    parents: tuple[str, ...] = ()
    origin: str = ""
    _canonical: str = field(default="", repr=False, compare=False)

    # -- construction ------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, where: str = "genome") -> "Genome":
        """Validate untrusted data and build a Genome. No silent repair.

        Raises:
            GenomeError: naming the field that is wrong and how to fix it.
        """
        arch = normalise(data, where)
        g = cls(
            parameters=arch["parameters"],
            layers=tuple(arch["layers"]),
            connections=tuple(tuple(c) for c in arch["connections"]),
            generation=arch["generation"],
            parents=tuple(arch["parents"]),
            origin=arch["origin"],
        )
        object.__setattr__(g, "_canonical", _dumps(g.architecture()))
        return g

    @classmethod
    def trusted(cls, parameters: dict[str, Any], layers: list[dict[str, Any]], connections: list,
                generation: int = 0, parents: tuple[str, ...] = (), origin: str = "") -> "Genome":
        """Build from data already in normalised form, without validation.

        Only for code that guarantees validity by construction (the operators' repair);
        anything from a user, a file or the network goes through :meth:`from_dict`.
        """
        g = cls(parameters=parameters, layers=tuple(layers),
                connections=tuple(tuple(c) for c in connections), generation=generation, parents=tuple(parents),
                origin=origin)
        arch = {"parameters": parameters, "layers": layers, "connections": [list(c) for c in connections]}
        object.__setattr__(g, "_canonical", _dumps(arch))
        return g

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "genome") -> "Genome":
        """Parse JSON text and validate it (see :meth:`from_dict`)."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise GenomeError(f"{where}: not valid JSON ({e}); check the file's syntax") from None
        return cls.from_dict(data, where)

    @classmethod
    def load(cls, path: str | Path) -> "Genome":
        """Read and validate a genome JSON file."""
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as e:
            raise GenomeError(f"{p}: cannot read genome file ({e.strerror}); check the path") from None
        return cls.from_json(text, where=str(p))

    def with_lineage(self, generation: int, parents: tuple[str, ...] | list[str],
                     origin: str | None = None) -> "Genome":
        """A copy with new lineage (same architecture, same key); ``origin`` None keeps this one's."""
        g = Genome(self.parameters, self.layers, self.connections, int(generation), tuple(parents),
                   self.origin if origin is None else str(origin))
        object.__setattr__(g, "_canonical", self._canonical)
        return g

    # -- views -------------------------------------------------------------------
    def architecture(self) -> dict[str, Any]:
        """The architecture alone (what the key covers), fully explicit."""
        return {
            "parameters": dict(self.parameters),
            "layers": [dict(layer) for layer in self.layers],
            "connections": [list(c) for c in self.connections],
        }

    def to_dict(self) -> dict[str, Any]:
        """Architecture plus lineage, as JSON data."""
        d = self.architecture()
        d["generation"] = self.generation
        d["parents"] = list(self.parents)
        if self.origin:   # absent when unknown, so genomes written before it round-trip unchanged
            d["origin"] = self.origin
        return d

    def to_json(self, indent: int | None = None) -> str:
        """JSON text of :meth:`to_dict` (canonical key order)."""
        if indent is None:
            return _dumps(self.to_dict())
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent)

    def canonical_json(self) -> str:
        """Canonical bytes of the architecture: equal genomes give equal strings."""
        return self._canonical

    def key(self) -> str:
        """sha256 hex of :meth:`canonical_json` (architecture only, no lineage)."""
        k = self.__dict__.get("_key")
        if k is None:
            k = hashlib.sha256(self._canonical.encode()).hexdigest()
            object.__setattr__(self, "_key", k)
        return k

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Genome) and other._canonical == self._canonical

    def __hash__(self) -> int:
        return hash(self._canonical)

    # -- derived facts -----------------------------------------------------------
    @property
    def levels(self) -> int:
        return len(self.parameters["channel_mults"])

    def channels(self, level: int) -> int:
        """Channel count at a resolution level."""
        return self.parameters["base_channels"] * self.parameters["channel_mults"][level]

    @property
    def depth(self) -> int:
        return len(self.layers)

    def has_attention(self) -> bool:
        return any(layer["kind"] == "attention" for layer in self.layers)


# ---------------------------------------------------------------------------------
# validation (pure functions over JSON data)
# ---------------------------------------------------------------------------------
def normalise(data: Any, where: str = "genome") -> dict[str, Any]:
    """Validate genome data and return its fully explicit, normalised form.

    Integral floats in integer genes become ints; floats are rounded to 6 decimals;
    connections are sorted and de-duplicated; defaults are filled in.

    Raises:
        GenomeError: for the first problem found, naming the field and the fix.
    """
    if not isinstance(data, dict):
        raise GenomeError(f"{where}: must be a JSON object with 'parameters' and 'layers'")
    _no_unknown(data, {"parameters", "layers", "connections", "generation", "parents", "origin"}, where)
    for required in ("parameters", "layers"):
        if required not in data:
            raise GenomeError(f"{where}.{required}: missing; add it (see 'evodiff-ray genome sample')")
    params = _parameters(data["parameters"], f"{where}.parameters")
    layers = _layers(data["layers"], params, f"{where}.layers")
    conns = _connections(data.get("connections", []), layers, f"{where}.connections")
    generation = _int(data.get("generation", 0), f"{where}.generation", 0, 10**9)
    parents = data.get("parents", [])
    if not isinstance(parents, list) or not all(isinstance(p, str) and len(p) <= 128 for p in parents):
        raise GenomeError(f"{where}.parents: must be a list of parent keys (strings)")
    origin = data.get("origin", "")
    if not isinstance(origin, str) or len(origin) > 256:
        raise GenomeError(f"{where}.origin: must be a short string naming the edit (e.g. 'crossover'), or absent")
    return {
        "parameters": params,
        "layers": layers,
        "connections": conns,
        "generation": generation,
        "parents": list(parents),
        "origin": origin,
    }


def _parameters(p: Any, where: str) -> dict[str, Any]:
    if not isinstance(p, dict):
        raise GenomeError(f"{where}: must be an object")
    _no_unknown(p, set(PARAM_RANGES) | {"channel_mults"}, where)
    out: dict[str, Any] = {}
    for name, (lo, hi) in PARAM_RANGES.items():
        if name not in p and name not in PARAM_DEFAULTS:
            raise GenomeError(f"{where}.{name}: missing; give an integer in [{lo}, {hi}]")
        out[name] = _int(p.get(name, PARAM_DEFAULTS.get(name)), f"{where}.{name}", lo, hi)
    if out["time_emb_dim"] % 2:
        raise GenomeError(f"{where}.time_emb_dim: {out['time_emb_dim']} is odd; use an even size")
    mults = p.get("channel_mults")
    if not isinstance(mults, list) or not 1 <= len(mults) <= MAX_LEVELS:
        raise GenomeError(f"{where}.channel_mults: missing or not a list of 1 to {MAX_LEVELS} integers")
    out["channel_mults"] = [_int(m, f"{where}.channel_mults[{i}]", *MULT_RANGE) for i, m in enumerate(mults)]
    g = out["norm_groups"]
    for i, m in enumerate(out["channel_mults"]):
        c = out["base_channels"] * m
        if c % g:
            raise GenomeError(
                f"{where}.norm_groups: {g} groups do not divide {c} channels at level {i}; "
                f"use a divisor of every level's channels (e.g. {_gcd_all(out)})"
            )
    return out


def _layers(layers: Any, params: dict, where: str) -> list[dict[str, Any]]:
    if not isinstance(layers, list) or not 1 <= len(layers) <= MAX_LAYERS:
        raise GenomeError(f"{where}: must be a list of 1 to {MAX_LAYERS} layer objects")
    n_levels = len(params["channel_mults"])
    out = []
    prev_rank, prev_level = 0, 0
    for i, layer in enumerate(layers):
        w = f"{where}[{i}]"
        if not isinstance(layer, dict):
            raise GenomeError(f"{w}: must be an object with 'kind', 'side' and 'level'")
        for required in ("kind", "side", "level"):
            if required not in layer:
                raise GenomeError(f"{w}.{required}: missing; every layer needs kind, side and level")
        kind = layer["kind"]
        if kind not in KINDS:
            raise GenomeError(f"{w}.kind: unknown kind {kind!r}; use one of {', '.join(KINDS)}")
        side = layer["side"]
        if side not in SIDES:
            raise GenomeError(f"{w}.side: unknown side {side!r}; use one of {', '.join(SIDES)}")
        _no_unknown(layer, {"kind", "side", "level", *LAYER_DEFAULTS[kind]}, w)
        level = _int(layer["level"], f"{w}.level", 0, n_levels - 1)
        if side == "mid" and level != n_levels - 1:
            raise GenomeError(f"{w}.level: mid layers sit at the lowest resolution; use {n_levels - 1}")
        rank = _SIDE_RANK[side]
        if rank < prev_rank:
            raise GenomeError(f"{w}.side: '{side}' after a later side; order layers down, mid, up")
        if rank == prev_rank and i > 0:
            if side == "down" and level < prev_level:
                raise GenomeError(f"{w}.level: down layers must not go back up in resolution; sort by level")
            if side == "up" and level > prev_level:
                raise GenomeError(f"{w}.level: up layers must not go down in resolution; sort by level, descending")
        prev_rank, prev_level = rank, level
        c = params["base_channels"] * params["channel_mults"][level]
        entry = {"kind": kind, "side": side, "level": level}
        entry.update(_layer_params(kind, layer, c, params, w))
        out.append(entry)
    return out


def _layer_params(kind: str, layer: dict, c: int, params: dict, w: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if kind in ("conv", "residual"):
        k = _int(layer.get("kernel", 3), f"{w}.kernel", 1, 5)
        if k not in KERNELS:
            raise GenomeError(f"{w}.kernel: {k} is not supported; use one of {KERNELS}")
        out["kernel"] = k
    if kind == "residual":
        d = layer.get("dropout", 0.0)
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 <= d <= 0.5:
            raise GenomeError(f"{w}.dropout: {d!r} is out of range; use a number in [0, 0.5]")
        out["dropout"] = round(float(d), 6) + 0.0  # +0.0 folds -0.0
    if kind == "attention":
        h = _int(layer.get("heads", 1), f"{w}.heads", 1, MAX_HEADS)
        if c % h:
            raise GenomeError(f"{w}.heads: {h} heads do not divide {c} channels; use a divisor of {c}")
        out["heads"] = h
    if kind == "norm":
        g = layer.get("groups")
        g = params["norm_groups"] if g is None else _int(g, f"{w}.groups", 1, 64)
        if c % g:
            raise GenomeError(f"{w}.groups: {g} groups do not divide {c} channels; use a divisor of {c}")
        out["groups"] = g
    if kind == "activation":
        fn = layer.get("fn", "silu")
        if fn not in ACTIVATIONS:
            raise GenomeError(f"{w}.fn: unknown activation {fn!r}; use one of {', '.join(ACTIVATIONS)}")
        out["fn"] = fn
    return out


def _connections(conns: Any, layers: list[dict], where: str) -> list[list[int]]:
    if not isinstance(conns, list):
        raise GenomeError(f"{where}: must be a list of [from, to] pairs")
    seen = set()
    n = len(layers)
    for i, c in enumerate(conns):
        w = f"{where}[{i}]"
        if not isinstance(c, (list, tuple)) or len(c) != 2:
            raise GenomeError(f"{w}: must be a [from, to] pair of layer positions")
        a = _int(c[0], f"{w}[0]", -(10**9), 10**9)
        b = _int(c[1], f"{w}[1]", -(10**9), 10**9)
        for pos in (a, b):
            if not 0 <= pos < n:
                raise GenomeError(f"{w}: position {pos} does not exist; use 0..{n - 1}")
        la, lb = layers[a], layers[b]
        if la["side"] != "down" or lb["side"] != "up":
            raise GenomeError(f"{w}: skips go from a down layer to an up layer; {a} is {la['side']}, {b} is {lb['side']}")
        if la["level"] != lb["level"]:
            raise GenomeError(
                f"{w}: levels differ ({la['level']} vs {lb['level']}); connect layers of the same resolution level"
            )
        seen.add((a, b))
    return [list(c) for c in sorted(seen)]


def _int(v: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise GenomeError(f"{where}: {v!r} is not an integer; give an integer in [{lo}, {hi}]")
    if isinstance(v, float):
        if not v.is_integer():
            raise GenomeError(f"{where}: {v!r} is not an integer; give an integer in [{lo}, {hi}]")
        v = int(v)
    if not lo <= v <= hi:
        raise GenomeError(f"{where}: {v} is out of range; give an integer in [{lo}, {hi}]")
    return v


def _no_unknown(d: dict, allowed: set, where: str) -> None:
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise GenomeError(f"{where}: unknown field {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")


def _gcd_all(params: dict) -> int:
    from math import gcd

    g = 0
    for m in params["channel_mults"]:
        g = gcd(g, params["base_channels"] * m)
    return g


def _dumps(d: Any) -> str:
    return json.dumps(d, sort_keys=True, separators=(",", ":"), allow_nan=False)

"""Analytic cost model: parameters, FLOPs and activation bytes of a genome's denoiser.

Pure functions of the genome, exact for parameters (a test checks them against the
built ``torch`` module) and first-order for FLOPs and bytes, in the spirit of
nanoGPT's ``estimate_mfu``. The counts follow :mod:`evodiff_ray.denoiser` piece by
piece; change both together.

FLOPs count a multiply-add as 2. Bytes assume float32 activations.
"""

from __future__ import annotations

from dataclasses import dataclass

from evodiff_ray.genome import Genome

BYTES_PER_FLOAT = 4
#: FLOPs a typical device does in the time it moves one byte (the roofline's ridge);
#: used only to weigh bytes against FLOPs when ranking layers by cost.
MACHINE_BALANCE = 16


@dataclass(frozen=True)
class LayerCost:
    """Cost of one piece of the network for one forward pass (one sampling step).

    Attributes:
        name: ``"layers[i]"`` for genome layers, or a fixed piece (``"stem"``, ``"down1"``...).
        index: the genome layer position, or None for fixed pieces.
        kind: layer kind (or ``"fixed"``).
        level: resolution level.
        params: trainable parameters.
        flops: floating point operations (multiply-add = 2).
        bytes: activation bytes the piece writes (its outputs and big intermediates).
    """

    name: str
    index: int | None
    kind: str
    level: int
    params: int
    flops: int
    bytes: int


@dataclass(frozen=True)
class Cost:
    """Whole-network cost summary for a resolution, batch and channel count."""

    params: int
    flops_per_step: int
    activation_bytes_per_step: int
    peak_activation_bytes: int
    sampler_steps: int

    @property
    def sampling_flops(self) -> int:
        """FLOPs of a full sampling run (all steps)."""
        return self.flops_per_step * self.sampler_steps


def _conv(cin: int, cout: int, k: int, hw: int, batch: int) -> tuple[int, int]:
    params = cin * cout * k * k + cout
    return params, 2 * batch * hw * cin * cout * k * k


def _gn(c: int, hw: int, batch: int) -> tuple[int, int]:
    return 2 * c, 8 * batch * hw * c  # mean, var, normalise, affine


def layer_costs(genome: Genome, *, resolution: int = 8, batch: int = 1, in_channels: int = 1) -> list[LayerCost]:
    """Per-piece costs of one forward pass, in execution order.

    Args:
        genome: the architecture.
        resolution: input height (= width) in pixels.
        batch: batch size.
        in_channels: image channels.

    Returns:
        One :class:`LayerCost` per genome layer plus the fixed pieces (stem, time MLP,
        resampling convs, output head).
    """
    p = genome.parameters
    T = p["time_emb_dim"]
    c0 = genome.channels(0)
    out: list[LayerCost] = []
    hw0 = resolution * resolution
    act = BYTES_PER_FLOAT * batch

    # time embedding MLP: sinusoid(T) -> Linear(T, T) -> SiLU -> Linear(T, T)
    tp = 2 * (T * T + T)
    out.append(LayerCost("time_mlp", None, "fixed", 0, tp, 2 * batch * 2 * T * T, act * 2 * T))
    # stem: conv3x3(in -> c0) + Linear(T -> c0) added per channel
    sp, sf = _conv(in_channels, c0, 3, hw0, batch)
    out.append(LayerCost("stem", None, "fixed", 0, sp + T * c0 + c0, sf + 2 * batch * T * c0, act * hw0 * c0))

    def piece(i: int, layer: dict) -> LayerCost:
        lvl = layer["level"]
        c = genome.channels(lvl)
        hw = (resolution >> lvl) ** 2
        kind = layer["kind"]
        if kind == "conv":
            params, flops = _conv(c, c, layer["kernel"], hw, batch)
            nbytes = act * hw * c
        elif kind == "residual":
            k = layer["kernel"]
            p1, f1 = _conv(c, c, k, hw, batch)
            g1, gf = _gn(c, hw, batch)
            params = 2 * p1 + 2 * g1 + T * c + c
            flops = 2 * f1 + 2 * gf + 2 * batch * T * c + 4 * batch * hw * c
            nbytes = act * hw * c * 4
        elif kind == "attention":
            g1, gf = _gn(c, hw, batch)
            pq, fq = _conv(c, 3 * c, 1, hw, batch)
            pp, fp = _conv(c, c, 1, hw, batch)
            heads = layer["heads"]
            # scores QK^T and weighted sum AV: 2 * (2 * hw * hw * c) per image
            fa = 2 * 2 * batch * hw * hw * c + 5 * batch * heads * hw * hw
            params = g1 + pq + pp
            flops = gf + fq + fp + fa
            nbytes = act * (hw * 5 * c + heads * hw * hw)
        elif kind == "norm":
            params, flops = _gn(c, hw, batch)
            nbytes = act * hw * c
        else:  # activation
            params, flops = 0, 4 * batch * hw * c
            nbytes = act * hw * c
        return LayerCost(f"layers[{i}]", i, kind, lvl, params, flops, nbytes)

    L = genome.levels
    layers = genome.layers
    n_down = sum(1 for layer in layers if layer["side"] == "down")
    n_mid = sum(1 for layer in layers if layer["side"] == "mid")
    i = 0
    for lvl in range(L):
        while i < n_down and layers[i]["level"] == lvl:
            out.append(piece(i, layers[i]))
            i += 1
        if lvl < L - 1:
            hw = (resolution >> (lvl + 1)) ** 2
            dp, df = _conv(genome.channels(lvl), genome.channels(lvl + 1), 3, hw, batch)
            out.append(LayerCost(f"down{lvl + 1}", None, "fixed", lvl + 1, dp, df, act * hw * genome.channels(lvl + 1)))
    for j in range(n_down, n_down + n_mid):
        out.append(piece(j, layers[j]))
    i = n_down + n_mid
    for lvl in range(L - 1, -1, -1):
        while i < len(layers) and layers[i]["level"] == lvl:
            out.append(piece(i, layers[i]))
            i += 1
        if lvl > 0:
            hw = (resolution >> (lvl - 1)) ** 2
            up, uf = _conv(genome.channels(lvl), genome.channels(lvl - 1), 3, hw, batch)
            out.append(LayerCost(f"up{lvl}", None, "fixed", lvl - 1, up, uf, act * hw * genome.channels(lvl - 1)))
    # head: GroupNorm(norm_groups, c0) -> SiLU -> conv3x3(c0 -> in)
    g, gf = _gn(c0, hw0, batch)
    hp, hf = _conv(c0, in_channels, 3, hw0, batch)
    out.append(LayerCost("head", None, "fixed", 0, g + hp, gf + hf + 4 * batch * hw0 * c0, act * hw0 * (c0 + in_channels)))
    return out


def estimate(genome: Genome, *, resolution: int = 8, batch: int = 1, in_channels: int = 1) -> Cost:
    """Whole-network cost of one forward pass (and of full sampling via ``sampling_flops``).

    ``peak_activation_bytes`` is the largest live set during a forward pass: the
    biggest single piece's bytes plus the skip tensors held for the decoder.
    """
    costs = layer_costs(genome, resolution=resolution, batch=batch, in_channels=in_channels)
    held = 0
    for a, _b in genome.connections:
        lvl = genome.layers[a]["level"]
        held += BYTES_PER_FLOAT * batch * genome.channels(lvl) * (resolution >> lvl) ** 2
    return Cost(
        params=sum(c.params for c in costs),
        flops_per_step=sum(c.flops for c in costs),
        activation_bytes_per_step=sum(c.bytes for c in costs),
        peak_activation_bytes=max(c.bytes for c in costs) + held,
        sampler_steps=genome.parameters["sampler_steps"],
    )


def dominant_layer(genome: Genome, *, resolution: int = 8, batch: int = 1, in_channels: int = 1) -> int | None:
    """See :func:`_dominant_layer`; memoised by genome key (parents are mutated many times)."""
    return _dominant_cached(genome.key(), genome, resolution=resolution, batch=batch, in_channels=in_channels)


_DOMINANT: dict[tuple, int | None] = {}


def _dominant_cached(key: str, genome: Genome, *, resolution: int, batch: int, in_channels: int) -> int | None:
    k = (key, resolution, batch, in_channels)
    if k not in _DOMINANT:
        if len(_DOMINANT) > 50_000:  # bounded: a search's parents, not every genome ever seen
            _DOMINANT.clear()
        _DOMINANT[k] = _dominant_layer(genome, resolution=resolution, batch=batch, in_channels=in_channels)
    return _DOMINANT[k]


def _dominant_layer(genome: Genome, *, resolution: int = 8, batch: int = 1, in_channels: int = 1) -> int | None:
    """Genome position of the layer that dominates the cost: ``flops + MACHINE_BALANCE * bytes``.

    Feeds analysis-driven mutation. Returns None when the genome has no layers that
    cost anything (only fixed pieces).
    """
    best, best_score = None, -1.0
    for c in layer_costs(genome, resolution=resolution, batch=batch, in_channels=in_channels):
        if c.index is None:
            continue
        score = c.flops + MACHINE_BALANCE * c.bytes
        if score > best_score:
            best, best_score = c.index, score
    return best

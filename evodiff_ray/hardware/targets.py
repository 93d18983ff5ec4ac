"""Hardware targets: ``--target`` parsing and the measure-or-predict decision for a cluster.

A target is ``any`` (wherever evaluators land), ``apple_silicon`` (any Mac node), or one
chip (``m2-max``). Mac nodes advertise themselves when they join (see
``cluster/join-mac-worker.sh``) with

* resources ``apple_silicon: 1`` and the chip's, ``apple_m2_max: 1`` (the hard pin:
  Ray never places an actor on a node without its resources);
* labels ``evodiff.io/accelerator=apple-silicon`` and ``evodiff.io/chip=m2-max``
  (Ray 2.60 ``ray start --labels``; an actor's ``label_selector`` must match them).

:func:`plan_target` is the pure decision: with a node that has the chip, evaluators are
pinned there and *measure*; without one, they run anywhere and latency and memory are
*predicted* for the chip (:mod:`.predict`), labelled in every record's
``measured_on["predicted"]``.

One front per search, one target per search. A latency objective only means something
on one device, so mixing chips in one NSGA-II population would rank candidates by
incomparable numbers, and a joint front (one latency objective per chip) grows the
objective count with the fleet, which NSGA-II handles badly beyond three. ``--target
m1,m2-max`` therefore means one search per chip (:func:`parse_targets`); the searches
share the fitness cache (one Redis), which saves the target-independent work. See
``cluster/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from evodiff_ray.core.errors import UsageError
from evodiff_ray.hardware.chips import CHIPS, get_chip, normalize_chip_name

#: the resource every Mac node advertises
APPLE_SILICON_RESOURCE = "apple_silicon"
#: node labels a Mac node carries (Ray label syntax: DNS prefix / name = value)
ACCELERATOR_LABEL = "evodiff.io/accelerator"
CHIP_LABEL = "evodiff.io/chip"
APPLE_SILICON_LABEL_VALUE = "apple-silicon"
#: objectives that depend on the device (quality does not)
DEVICE_OBJECTIVES = ("latency_ms", "memory_mb")

_ANY = ("any", "auto", "")
_APPLE = ("apple_silicon", "apple-silicon", "apple", "mac", "mps")


@dataclass(frozen=True)
class Target:
    """A parsed ``--target``.

    Attributes:
        kind: ``"any"``, ``"apple_silicon"`` or ``"chip"``.
        chip: the chip name when ``kind == "chip"``.
    """

    kind: str
    chip: str | None = None

    @property
    def name(self) -> str:
        """The canonical spelling (``any``, ``apple_silicon``, ``m2-max``)."""
        return self.chip if self.kind == "chip" else self.kind

    def resources(self) -> dict[str, float]:
        """Ray custom resources an evaluator actor requests to *measure* on this target."""
        if self.kind == "chip":
            return {get_chip(self.chip).resource: 1.0}
        if self.kind == "apple_silicon":
            return {APPLE_SILICON_RESOURCE: 1.0}
        return {}

    def label_selector(self) -> dict[str, str]:
        """Ray label selector of the nodes that can measure this target."""
        if self.kind == "chip":
            return {CHIP_LABEL: self.chip}
        if self.kind == "apple_silicon":
            return {ACCELERATOR_LABEL: APPLE_SILICON_LABEL_VALUE}
        return {}


def parse_target(text: str | None) -> Target:
    """Parse one ``--target``: ``any``, ``apple_silicon`` or a chip (``m2-max``, ``"Apple M2 Max"``,
    ``apple_m2_max``).

    Raises:
        UsageError: an unknown target, naming the accepted ones.
    """
    raw = (text or "").strip()
    low = raw.lower()
    if low in _ANY:
        return Target("any")
    if low in _APPLE:
        return Target("apple_silicon")
    name = normalize_chip_name(raw)
    if name in CHIPS:
        return Target("chip", name)
    raise UsageError(
        f"unknown --target {raw!r}; use any, apple_silicon, or a chip: {', '.join(CHIPS)} "
        "(several: a comma-separated list, one search each)"
    )


def parse_targets(text: str | None) -> list[Target]:
    """Parse ``--target m1,m2-max``: one :class:`Target` per comma-separated item, duplicates dropped.

    Each becomes its own search (one front per chip); see the module docstring.

    Raises:
        UsageError: an unknown item, or ``any`` mixed with others.
    """
    items = [t for t in (text or "").split(",") if t.strip()] or [""]
    out: list[Target] = []
    for item in items:
        t = parse_target(item)
        if t not in out:
            out.append(t)
    if len(out) > 1 and any(t.kind == "any" for t in out):
        raise UsageError("--target any cannot be combined with other targets; drop 'any' or the others")
    return out


@dataclass
class TargetPlan:
    """How a search evaluates for its target (JSON data via :meth:`to_dict`).

    Attributes:
        mode: ``"measure"`` (on a node with the target) or ``"predict"``.
        target: the target's canonical name.
        resources: custom resources per evaluator actor.
        label_selector: node labels per evaluator actor.
        predicted: objectives that are predicted (``measured_on["predicted"]``).
        chip: the chip whose profile predicts (predict mode) or that is measured.
        nodes: ids of the live nodes able to measure.
        reason: one line saying why this mode was chosen.
    """

    mode: str
    target: str
    resources: dict[str, float] = field(default_factory=dict)
    label_selector: dict[str, str] = field(default_factory=dict)
    predicted: list[str] = field(default_factory=list)
    chip: str | None = None
    nodes: list[str] = field(default_factory=list)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "target": self.target, "resources": dict(self.resources),
                "label_selector": dict(self.label_selector), "predicted": list(self.predicted),
                "chip": self.chip, "nodes": list(self.nodes), "reason": self.reason}


def _alive(nodes: Iterable[dict]) -> list[dict]:
    return [n for n in nodes if n.get("Alive", n.get("alive", True))]


def _node_id(n: dict) -> str:
    return str(n.get("NodeID") or n.get("node_id") or "")


def plan_target(target: Target | str | None, cluster_nodes: Iterable[dict]) -> dict[str, Any]:
    """Decide whether a search measures on its target or predicts for it (pure).

    Args:
        target: a :class:`Target` or ``--target`` text.
        cluster_nodes: ``ray.nodes()``-shaped dicts (``Alive``, ``NodeID``, ``Resources``,
            ``Labels``); dead nodes are ignored.

    Returns:
        ``{"mode": "measure"|"predict", "resources": {...}, "label_selector": {...},
        "predicted": [...], "chip", "nodes", "reason", "target"}``. A label selector is
        included only when every node offering the resource also carries the label
        (nodes joined by hand with resources only still qualify through the resource).

    Raises:
        UsageError: ``apple_silicon`` with no Mac node: there is no chip to predict for.
    """
    t = target if isinstance(target, Target) else parse_target(target)
    nodes = _alive(cluster_nodes)
    if t.kind == "any":
        return TargetPlan("measure", "any", nodes=[_node_id(n) for n in nodes],
                          reason="any node measures on its own device").to_dict()
    resources = t.resources()
    (resource,) = resources
    selector = t.label_selector()
    able = [n for n in nodes if float((n.get("Resources") or {}).get(resource, 0)) >= 1]
    if able:
        labelled = all(all((n.get("Labels") or {}).get(k) == v for k, v in selector.items()) for n in able)
        return TargetPlan(
            "measure", t.name, resources=resources, label_selector=selector if labelled else {},
            chip=t.chip, nodes=[_node_id(n) for n in able],
            reason=f"{len(able)} node(s) offer {resource}; evaluators are pinned there",
        ).to_dict()
    if t.kind == "apple_silicon":
        raise UsageError("--target apple_silicon: no Apple Silicon node in the Ray cluster; join one with "
                         "cluster/join-mac-worker.sh, or name a chip (e.g. --target m2-max) to predict for it")
    return TargetPlan(
        "predict", t.name, predicted=list(DEVICE_OBJECTIVES), chip=t.chip,
        reason=f"no node offers {resource}; latency and memory are predicted for {t.chip} "
               "from the cost model and its chip profile",
    ).to_dict()

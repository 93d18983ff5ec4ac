"""Apple Silicon chip profiles: unified memory, bandwidth, GPU cores, FP32 TFLOPS, Neural Engine TOPS.

One :class:`ChipProfile` per chip (M1 to M4, each family's base, Pro, Max and, where
Apple made one, Ultra), in the explicit registry :data:`CHIPS`. Values are for the
chip's *full* configuration (its most GPU cores); binned parts with fewer GPU cores
are listed in ``gpu_cores`` and, where their memory bandwidth differs, in
``binned_bandwidth_gbs``.

Sources: Apple's newsroom announcements and tech-spec pages for memory sizes,
bandwidth, GPU and Neural Engine figures wherever Apple published them; reputable
reviews (AnandTech, Notebookcheck, Ars Technica, MacRumors) for the rest. Apple did
not publish FP32 TFLOPS for most chips after M1 Ultra: those are *estimates*,
``gpu_cores x 128 FP32 lanes x 2 (FMA) x GPU clock``, with the clock from reviews,
and each such field is named in the row's ``estimated``. Treat every number as a
planning figure, not a measurement: the predictor corrects it with measured data
(:mod:`evodiff_ray.hardware.predict`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evodiff_ray.core.errors import UsageError

FAMILIES = ("M1", "M2", "M3", "M4")
TIERS = ("base", "pro", "max", "ultra")


@dataclass(frozen=True)
class ChipProfile:
    """One Apple Silicon chip, full configuration.

    Attributes:
        name: registry name, ``"m2-max"`` (family and tier, lower case).
        family: ``"M1"`` .. ``"M4"``.
        tier: ``"base"``, ``"pro"``, ``"max"`` or ``"ultra"``.
        memory_gb: unified-memory sizes Apple sold it with, ascending.
        bandwidth_gbs: unified-memory bandwidth of the full configuration, GB/s (1e9 B/s).
        gpu_cores: GPU core counts of its configurations, ascending (the last is full).
        fp32_tflops: GPU FP32 peak of the full configuration, TFLOPS.
        neural_engine_tops: Neural Engine throughput, TOPS (Apple's figure; M4's is INT8,
            earlier ones are not comparable one to one).
        binned_bandwidth_gbs: GPU core count -> bandwidth for bins that differ.
        estimated: names of the fields above that are estimates, not published figures.
        source: where the numbers come from.
    """

    name: str
    family: str
    tier: str
    memory_gb: tuple[int, ...]
    bandwidth_gbs: float
    gpu_cores: tuple[int, ...]
    fp32_tflops: float
    neural_engine_tops: float
    binned_bandwidth_gbs: dict[int, float] = field(default_factory=dict)
    estimated: tuple[str, ...] = ()
    source: str = ""

    @property
    def display_name(self) -> str:
        """``"Apple M2 Max"``, as ``sysctl machdep.cpu.brand_string`` prints it."""
        return f"Apple {self.family}" + ("" if self.tier == "base" else f" {self.tier.capitalize()}")

    @property
    def resource(self) -> str:
        """The Ray custom resource a node with this chip advertises: ``"apple_m2_max"``."""
        return "apple_" + self.name.replace("-", "_")

    def bandwidth_for(self, gpu_cores: int | None = None) -> float:
        """Bandwidth (GB/s) of the configuration with ``gpu_cores`` (None: the full one)."""
        if gpu_cores is None:
            return self.bandwidth_gbs
        return self.binned_bandwidth_gbs.get(int(gpu_cores), self.bandwidth_gbs)

    def tflops_for(self, gpu_cores: int | None = None) -> float:
        """FP32 TFLOPS of a configuration, scaled linearly by GPU cores (same clock)."""
        if gpu_cores is None:
            return self.fp32_tflops
        return self.fp32_tflops * int(gpu_cores) / self.gpu_cores[-1]

    def to_dict(self) -> dict:
        """JSON data of the row (for ``evodiff-ray hardware --format json``)."""
        return {
            "name": self.name, "display_name": self.display_name, "family": self.family, "tier": self.tier,
            "memory_gb": list(self.memory_gb), "bandwidth_gbs": self.bandwidth_gbs,
            "gpu_cores": list(self.gpu_cores), "fp32_tflops": self.fp32_tflops,
            "neural_engine_tops": self.neural_engine_tops,
            "binned_bandwidth_gbs": {str(k): v for k, v in self.binned_bandwidth_gbs.items()},
            "estimated": list(self.estimated), "resource": self.resource, "source": self.source,
        }


_APPLE_M1 = "Apple newsroom, 'Apple unleashes M1' (2020-11-10): 8-core GPU 2.6 TFLOPS, 16-core NE 11 TOPS"
_APPLE_M1PM = "Apple newsroom, 'Introducing M1 Pro and M1 Max' (2021-10-18); TFLOPS from Apple's event slides"
_APPLE_M2 = "Apple newsroom, 'Apple unveils M2' (2022-06-06): 100 GB/s, 15.8 TOPS"
_APPLE_M2PM = "Apple newsroom, 'Apple unveils M2 Pro and M2 Max' (2023-01-17)"
_APPLE_M3 = "Apple newsroom, 'Apple unveils M3, M3 Pro, and M3 Max' (2023-10-30); MacBook Pro tech specs"
_APPLE_M4 = "Apple newsroom M4 (2024-05-07), M4 Pro / M4 Max (2024-10-30); Mac mini / MacBook Pro tech specs"
_CLOCK = "TFLOPS estimated as cores x 128 x 2 x GPU clock (clock from Notebookcheck / AnandTech reviews)"

#: chip name -> profile. Explicit, ordered by family then tier.
CHIPS: dict[str, ChipProfile] = {c.name: c for c in (
    # --- M1 (5 nm, LPDDR4X on the base chip, LPDDR5 on Pro/Max/Ultra)
    ChipProfile("m1", "M1", "base", (8, 16), 68.25, (7, 8), 2.6, 11.0,
                source=_APPLE_M1 + "; bandwidth: LPDDR4X-4266 x 128 bit (AnandTech M1 review)"),
    ChipProfile("m1-pro", "M1", "pro", (16, 32), 200.0, (14, 16), 5.2, 11.0, source=_APPLE_M1PM),
    ChipProfile("m1-max", "M1", "max", (32, 64), 400.0, (24, 32), 10.4, 11.0, source=_APPLE_M1PM),
    ChipProfile("m1-ultra", "M1", "ultra", (64, 128), 800.0, (48, 64), 21.0, 22.0,
                source="Apple newsroom, 'Apple unveils M1 Ultra' (2022-03-08): 800 GB/s, 21 TFLOPS, 22 TOPS"),
    # --- M2 (5 nm N5P, LPDDR5)
    ChipProfile("m2", "M2", "base", (8, 16, 24), 100.0, (8, 10), 3.6, 15.8,
                source=_APPLE_M2 + "; 3.6 TFLOPS for the 10-core GPU per Apple's WWDC22 keynote"),
    ChipProfile("m2-pro", "M2", "pro", (16, 32), 200.0, (16, 19), 6.8, 15.8,
                estimated=("fp32_tflops",), source=f"{_APPLE_M2PM}; {_CLOCK} (~1.40 GHz)"),
    ChipProfile("m2-max", "M2", "max", (32, 64, 96), 400.0, (30, 38), 13.6, 15.8,
                estimated=("fp32_tflops",), source=f"{_APPLE_M2PM}; {_CLOCK} (~1.40 GHz)"),
    ChipProfile("m2-ultra", "M2", "ultra", (64, 128, 192), 800.0, (60, 76), 27.2, 31.6,
                estimated=("fp32_tflops",),
                source=f"Apple newsroom, 'Apple introduces M2 Ultra' (2023-06-05): 800 GB/s, 31.6 TOPS; {_CLOCK}"),
    # --- M3 (3 nm N3B); the binned M3 Max (30-core GPU) has a narrower memory bus
    ChipProfile("m3", "M3", "base", (8, 16, 24), 100.0, (8, 10), 4.1, 18.0,
                estimated=("fp32_tflops",), source=f"{_APPLE_M3}; {_CLOCK} (~1.6 GHz)"),
    ChipProfile("m3-pro", "M3", "pro", (18, 36), 150.0, (14, 18), 7.4, 18.0,
                estimated=("fp32_tflops",), source=f"{_APPLE_M3}; {_CLOCK} (~1.6 GHz)"),
    ChipProfile("m3-max", "M3", "max", (36, 48, 64, 96, 128), 400.0, (30, 40), 16.4, 18.0,
                binned_bandwidth_gbs={30: 300.0}, estimated=("fp32_tflops",),
                source=f"{_APPLE_M3}: 400 GB/s (40-core GPU), 300 GB/s (30-core); {_CLOCK} (~1.6 GHz)"),
    ChipProfile("m3-ultra", "M3", "ultra", (96, 256, 512), 819.2, (60, 80), 32.8, 36.0,
                estimated=("fp32_tflops", "neural_engine_tops"),
                source="Apple newsroom, 'Apple reveals M3 Ultra' (2025-03-05): 32-core NE, 819 GB/s per Ars "
                       f"Technica; NE TOPS estimated as 2 x M3's 18; {_CLOCK}"),
    # --- M4 (3 nm N3E); no M4 Ultra exists (Apple: not every generation gets one)
    ChipProfile("m4", "M4", "base", (16, 24, 32), 120.0, (8, 10), 4.3, 38.0,
                estimated=("fp32_tflops",), source=f"{_APPLE_M4}: 120 GB/s, 38 TOPS; {_CLOCK} (~1.7 GHz)"),
    ChipProfile("m4-pro", "M4", "pro", (24, 48, 64), 273.0, (16, 20), 8.7, 38.0,
                estimated=("fp32_tflops",), source=f"{_APPLE_M4}: 273 GB/s; {_CLOCK} (~1.7 GHz)"),
    ChipProfile("m4-max", "M4", "max", (36, 48, 64, 128), 546.0, (32, 40), 17.4, 38.0,
                binned_bandwidth_gbs={32: 410.0}, estimated=("fp32_tflops",),
                source=f"{_APPLE_M4}: 546 GB/s (40-core GPU), 410 GB/s (32-core, Notebookcheck); "
                       f"{_CLOCK} (~1.7 GHz)"),
)}


def chip_names() -> list[str]:
    """Registered chip names, in table order."""
    return list(CHIPS)


def normalize_chip_name(text: str) -> str:
    """``"Apple M2 Max"``, ``"M2_MAX"``, ``"apple_m2_max"``, ``"m2max"`` -> ``"m2-max"`` (not checked)."""
    s = text.strip().lower().replace("_", " ").replace("-", " ")
    if s.startswith("apple "):
        s = s[len("apple "):]
    s = s.replace("apple", "").strip()
    parts = s.split()
    if len(parts) == 1:  # "m2max" -> ["m2", "max"]
        for tier in ("pro", "max", "ultra"):
            if parts[0].endswith(tier) and len(parts[0]) > len(tier):
                parts = [parts[0][: -len(tier)], tier]
    return "-".join(parts)


def get_chip(name: str) -> ChipProfile:
    """The profile of a chip by any spelling :func:`normalize_chip_name` understands.

    Raises:
        UsageError: an unknown chip, naming the known ones.
    """
    key = normalize_chip_name(name)
    if key not in CHIPS:
        raise UsageError(f"unknown Apple Silicon chip {name!r}; use one of {', '.join(CHIPS)}")
    return CHIPS[key]


def chip_from_brand(brand: str) -> ChipProfile | None:
    """The profile for a ``machdep.cpu.brand_string`` such as ``"Apple M2 Max"`` (None if unknown)."""
    if not brand or "apple" not in brand.lower():
        return None
    return CHIPS.get(normalize_chip_name(brand))

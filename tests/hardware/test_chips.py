"""The chip table: complete families, sane numbers, sources, estimates named."""

import re

import pytest

from evodiff_ray.core.errors import UsageError
from evodiff_ray.hardware.chips import CHIPS, FAMILIES, chip_from_brand, get_chip, normalize_chip_name


def test_every_family_has_base_pro_and_max():
    for fam in FAMILIES:
        tiers = {c.tier for c in CHIPS.values() if c.family == fam}
        assert {"base", "pro", "max"} <= tiers, fam
    assert {c.family for c in CHIPS.values() if c.tier == "ultra"} == {"M1", "M2", "M3"}  # no M4 Ultra


#: a review outlet or Apple itself must stand behind every row
OUTLETS = ("Apple", "AnandTech", "Notebookcheck", "Ars Technica", "MacRumors")
#: GPU clocks Apple Silicon ran at, M1 (1.28 GHz) to M4 (~1.7 GHz): FP32 TFLOPS is
#: cores x 128 lanes x 2 (FMA) x clock, so a row outside this band has a wrong figure
CLOCK_GHZ = (1.2, 1.85)
#: plausible bandwidth per tier, GB/s (LPDDR4X/5 bus widths of 128 to 1024 bits)
BANDWIDTH_GBS = {"base": (60, 130), "pro": (140, 300), "max": (290, 600), "ultra": (780, 850)}


def _previous_tier(chip):
    """The next smaller chip of the same family (None for the base chip)."""
    rows = [c for c in CHIPS.values() if c.family == chip.family]
    i = rows.index(chip)
    return rows[i - 1] if i else None


@pytest.mark.parametrize("chip", list(CHIPS.values()), ids=list(CHIPS))
def test_row_is_sane(chip):
    # sources: named, from Apple or a review outlet
    assert any(outlet in chip.source for outlet in OUTLETS), chip.source
    # memory configurations: what Apple sold, ascending, distinct, from 8 GB up
    assert list(chip.memory_gb) == sorted(set(chip.memory_gb)) and chip.memory_gb[0] >= 8
    assert all(m % 2 == 0 for m in chip.memory_gb)
    # GPU configurations ascending; the binned bandwidths belong to a binned (not full) part
    assert list(chip.gpu_cores) == sorted(set(chip.gpu_cores)) and chip.gpu_cores[0] >= 7
    assert set(chip.binned_bandwidth_gbs) <= set(chip.gpu_cores[:-1])
    assert all(0 < bw < chip.bandwidth_gbs for bw in chip.binned_bandwidth_gbs.values())
    # bandwidth plausible for the tier, TFLOPS consistent with the core count at a real clock
    lo, hi = BANDWIDTH_GBS[chip.tier]
    assert lo <= chip.bandwidth_gbs <= hi, chip.bandwidth_gbs
    clock = chip.fp32_tflops * 1e12 / (chip.gpu_cores[-1] * 128 * 2) / 1e9
    assert CLOCK_GHZ[0] <= clock <= CLOCK_GHZ[1], f"{chip.name}: implied GPU clock {clock:.2f} GHz"
    # estimates are marked: named in `estimated`, and the source says how they were made
    assert set(chip.estimated) <= {"bandwidth_gbs", "fp32_tflops", "neural_engine_tops", "memory_gb"}
    if "fp32_tflops" in chip.estimated:
        assert "TFLOPS estimated as cores x 128 x 2 x GPU clock" in chip.source, chip.source
        stated = re.search(r"~(\d\.\d+) GHz", chip.source)
        if stated:                 # the stated clock gives the figure
            assert clock == pytest.approx(float(stated.group(1)), rel=0.03)
    if "neural_engine_tops" in chip.estimated:
        assert "NE TOPS estimated" in chip.source
    # monotone within the family: each tier beats the one below on every throughput figure
    below = _previous_tier(chip)
    if below is not None:
        assert chip.bandwidth_gbs > below.bandwidth_gbs and chip.fp32_tflops > below.fp32_tflops
        assert chip.gpu_cores[-1] > below.gpu_cores[-1] and chip.memory_gb[-1] >= below.memory_gb[-1]
        if chip.tier == "ultra":   # two Max dies: twice the Max on every throughput figure
            for field in ("bandwidth_gbs", "fp32_tflops", "neural_engine_tops"):
                assert getattr(chip, field) == pytest.approx(2 * getattr(below, field), rel=0.03), field
            assert chip.gpu_cores[-1] == 2 * below.gpu_cores[-1]
        else:                      # one Neural Engine design per family
            assert chip.neural_engine_tops == below.neural_engine_tops
    # names: the registry name, the Ray resource and the brand string all lead back to the row
    assert chip.name == chip.family.lower() + ("" if chip.tier == "base" else f"-{chip.tier}")
    assert chip.resource == "apple_" + chip.name.replace("-", "_")
    assert get_chip(chip.resource) is chip and chip_from_brand(chip.display_name) is chip
    assert chip.to_dict()["estimated"] == list(chip.estimated)


def test_names_parse_in_every_spelling():
    for text in ("m2-max", "M2 Max", "Apple M2 Max", "apple_m2_max", "M2_MAX", "m2max"):
        assert normalize_chip_name(text) == "m2-max"
    assert get_chip("Apple M3").name == "m3"
    assert chip_from_brand("Apple M4 Pro").name == "m4-pro"
    assert chip_from_brand("AMD EPYC 7B13") is None
    with pytest.raises(UsageError, match="m2-max"):
        get_chip("m9-mega")


def test_bins():
    m3max = get_chip("m3-max")
    assert m3max.bandwidth_for(30) == 300 and m3max.bandwidth_for() == 400
    assert m3max.tflops_for(30) == pytest.approx(m3max.fp32_tflops * 30 / 40)

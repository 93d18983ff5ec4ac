"""The chip table: complete families, sane numbers, sources, estimates named."""

import pytest

from evodiff_ray.core.errors import UsageError
from evodiff_ray.hardware.chips import CHIPS, FAMILIES, chip_from_brand, get_chip, normalize_chip_name


def test_every_family_has_base_pro_and_max():
    for fam in FAMILIES:
        tiers = {c.tier for c in CHIPS.values() if c.family == fam}
        assert {"base", "pro", "max"} <= tiers, fam
    assert {c.family for c in CHIPS.values() if c.tier == "ultra"} == {"M1", "M2", "M3"}  # no M4 Ultra


@pytest.mark.parametrize("chip", list(CHIPS.values()), ids=list(CHIPS))
def test_row_is_sane(chip):
    assert chip.bandwidth_gbs > 0 and chip.fp32_tflops > 0 and chip.neural_engine_tops > 0
    assert chip.memory_gb == tuple(sorted(chip.memory_gb)) and chip.memory_gb[0] >= 8
    assert chip.gpu_cores == tuple(sorted(chip.gpu_cores)) and chip.gpu_cores[0] > 0
    assert chip.source and ("Apple" in chip.source or "review" in chip.source.lower())
    assert set(chip.estimated) <= {"bandwidth_gbs", "fp32_tflops", "neural_engine_tops", "memory_gb"}
    assert all(0 < bw < chip.bandwidth_gbs for bw in chip.binned_bandwidth_gbs.values())
    assert chip.name == f"{chip.family.lower()}" + ("" if chip.tier == "base" else f"-{chip.tier}")
    assert chip.resource == "apple_" + chip.name.replace("-", "_")


def test_tiers_scale_within_a_family():
    for fam in FAMILIES:
        rows = [c for c in CHIPS.values() if c.family == fam]  # table order: base, pro, max, ultra
        assert [c.bandwidth_gbs for c in rows] == sorted(c.bandwidth_gbs for c in rows)
        assert [c.fp32_tflops for c in rows] == sorted(c.fp32_tflops for c in rows)


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

"""The cache key covers every component that changes a fitness."""

import pytest

from evodiff_ray.core.key import CACHE_SCHEMA, cache_key

BASE = {"problem": "diffusion", "fidelity": {"name": "quick", "steps": 300}, "dataset": "abc",
        "target": "cpu"}


def test_key_format():
    k = cache_key("g" * 64, BASE)
    prefix = f"evodiff:fit:v{CACHE_SCHEMA}:"
    assert k.startswith(prefix) and len(k) == len(prefix) + 64


@pytest.mark.parametrize("change", [
    {"problem": "zdt1"},
    {"fidelity": {"name": "quick", "steps": 301}},
    {"dataset": "abd"},
    {"target": "m2-max"},
])
def test_key_changes_with_each_setting(change):
    assert cache_key("g" * 64, {**BASE, **change}) != cache_key("g" * 64, BASE)


def test_key_changes_with_candidate_and_code_version(monkeypatch):
    assert cache_key("a" * 64, BASE) != cache_key("b" * 64, BASE)
    before = cache_key("a" * 64, BASE)
    monkeypatch.setattr("evodiff_ray.core.key.EVALUATION_CODE_VERSION", 999)
    assert cache_key("a" * 64, BASE) != before


def test_key_ignores_settings_order():
    assert cache_key("a", {"x": 1, "y": 2}) == cache_key("a", {"y": 2, "x": 1})

"""The canary policy's statistics, without Ray or Redis: verdicts, looks, SLO and the false-alarm rate."""

import numpy as np
import pytest

from evodiff_ray.serving.policy import (PROMOTE, ROLLBACK, WAIT, ArmStats, CanaryPolicy, current_look, decide,
                                        looks, percentile)

POLICY = CanaryPolicy(alpha=0.05, min_ratings=20, max_ratings=160, min_requests=30, max_requests=240,
                      max_p90_ms=100.0, slo_min_requests=10)


def arm(version, rng, n_req, lat_ms=10.0, ratings=(), errors=0, pairs=()):
    lat = list(rng.lognormal(np.log(lat_ms), 0.2, n_req - errors))
    return ArmStats(version, requests=n_req, errors=errors, latencies_ms=lat, ratings=list(ratings),
                    pairs=list(pairs))


def ratings(rng, n, p):
    """n ratings 1-5 drawn with probabilities p."""
    return list(rng.choice([1, 2, 3, 4, 5], size=n, p=p))


GOOD = [0.02, 0.03, 0.15, 0.4, 0.4]
FAIR = [0.1, 0.2, 0.4, 0.2, 0.1]


def test_looks_double_up_to_the_last():
    assert looks(20, 160) == [20, 40, 80, 160]
    assert looks(30, 100) == [30, 60, 100]
    assert current_look(19, 20, 160) is None and current_look(79, 20, 160) == 40 and current_look(999, 20, 160) == 160
    assert percentile([1, 2, 3, 4], 50) == 2.5 and percentile([], 90) is None


def test_better_rated_challenger_is_promoted_and_worse_rolled_back():
    rng = np.random.default_rng(0)
    prod = arm("1", rng, 60, ratings=ratings(rng, 40, FAIR))
    chal = arm("2", rng, 60, ratings=ratings(rng, 40, GOOD))
    d = decide(prod, chal, POLICY)
    assert d.action == PROMOTE and d.reason.startswith("ratings: challenger rated higher"), d
    d = decide(chal, prod, POLICY)       # the roles swapped: the challenger is the worse one
    assert d.action == ROLLBACK and d.reason.startswith("ratings: challenger rated lower"), d


def test_waits_below_the_minimum_sample_size_even_with_a_large_effect():
    rng = np.random.default_rng(1)
    prod = arm("1", rng, 60, ratings=[1] * 19)
    chal = arm("2", rng, 60, ratings=[5] * 19)
    assert decide(prod, chal, POLICY).action == WAIT
    # evidence for the challenger, but too few requests to have checked its latency: wait
    prod = arm("1", rng, 25, ratings=[1] * 20)
    chal = arm("2", rng, 25, ratings=[5] * 20)
    d = decide(prod, chal, POLICY)
    assert d.action == WAIT and "latency" in d.reason


def test_slower_challenger_is_rolled_back_within_tolerance_it_is_not():
    rng = np.random.default_rng(2)
    prod = arm("1", rng, 60, lat_ms=10.0)
    d = decide(prod, arm("2", rng, 60, lat_ms=14.0), POLICY)         # 40% slower
    assert d.action == ROLLBACK and d.reason.startswith("latency:"), d
    assert decide(prod, arm("3", rng, 60, lat_ms=10.3), POLICY).action == WAIT   # 3% slower: tolerated


def test_hard_slo_breach_rolls_back_at_once():
    rng = np.random.default_rng(3)
    prod = arm("1", rng, 5)
    d = decide(prod, arm("2", rng, 10, lat_ms=300.0), POLICY)
    assert d.action == ROLLBACK and d.reason.startswith("slo: p90 latency"), d
    d = decide(prod, arm("2", rng, 10, errors=1), POLICY)            # 10% errors over 5%
    assert d.action == ROLLBACK and d.reason.startswith("slo: error rate"), d
    assert decide(prod, arm("2", rng, 9, lat_ms=300.0), POLICY).action == WAIT  # below slo_min_requests


def test_pairwise_preferences_promote():
    rng = np.random.default_rng(4)
    prod, chal = arm("1", rng, 60), arm("2", rng, 60, pairs=[1] * 17 + [0] * 3)
    d = decide(prod, chal, POLICY)
    assert d.action == PROMOTE and d.reason.startswith("preferences:"), d


def test_inconclusive_at_the_last_look_rolls_back():
    prod = ArmStats("1", 200, 0, [10.0] * 200, [3] * 160)
    chal = ArmStats("2", 200, 0, [10.0] * 200, [3] * 160)
    d = decide(prod, chal, POLICY)
    assert d.action == ROLLBACK and d.reason.startswith("inconclusive"), d


def test_checking_between_looks_repeats_the_verdict():
    """Only the first m samples of a look count: more samples before the next look change nothing."""
    rng = np.random.default_rng(5)
    prod = arm("1", rng, 60, ratings=ratings(rng, 20, FAIR))
    chal = arm("2", rng, 60, ratings=ratings(rng, 20, FAIR))
    assert decide(prod, chal, POLICY).action == WAIT
    prod.ratings += [1] * 19
    chal.ratings += [5] * 19           # overwhelming, but the next look is at 40
    assert decide(prod, chal, POLICY).action == WAIT
    prod.ratings.append(1)
    chal.ratings.append(5)
    assert decide(prod, chal, POLICY).action == PROMOTE


@pytest.mark.parametrize("family", ["ratings", "latency"])
def test_false_alarm_rate_is_at_most_alpha(family):
    """Under the null (both arms alike), sequential looks until the last: promote or roll back
    wrongly in at most alpha of canaries (400 simulated canaries; the bound plus 2 sigma)."""
    rng = np.random.default_rng(6)
    alarms, trials = 0, 400
    for _ in range(trials):
        pr = ratings(rng, 160, FAIR)
        cr = ratings(rng, 160, FAIR)
        pl = list(rng.lognormal(2.3, 0.3, 240))
        cl = list(rng.lognormal(2.3, 0.3, 240))
        for m_req, m_rat in [(30, 20), (60, 40), (120, 80), (240, 159)]:
            d = decide(ArmStats("1", m_req, 0, pl[:m_req], pr[:m_rat]),
                       ArmStats("2", m_req, 0, cl[:m_req], cr[:m_rat]), POLICY)
            if d.action != WAIT:
                if family == "ratings":
                    alarms += d.action == PROMOTE or d.reason.startswith("ratings")
                else:
                    alarms += d.reason.startswith("latency")
                break
    bound = POLICY.alpha + 2 * np.sqrt(POLICY.alpha * (1 - POLICY.alpha) / trials)
    assert alarms / trials <= bound, (alarms, trials)


def test_policy_rejects_nonsense():
    with pytest.raises(ValueError, match="alpha"):
        CanaryPolicy(alpha=1.5)
    with pytest.raises(ValueError, match="min_ratings"):
        CanaryPolicy(min_ratings=50, max_ratings=10)
    assert CanaryPolicy.from_dict({"alpha": 0.01, "unknown": 1}).alpha == 0.01

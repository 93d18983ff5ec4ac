"""The canary decision policy: pure functions from two arms' samples to promote, roll back or wait.

The challenger runs beside production on a share of the traffic. Each check looks at what
both arms have gathered since the canary began and decides, in this order:

1. **Hard SLO.** Once the challenger has ``slo_min_requests`` requests, an error rate over
   ``max_error_rate`` or a p90 latency over ``max_p90_ms`` rolls it back at once.
2. **Latency** (one-sided Mann-Whitney U, H1: the challenger's server-side latency is
   stochastically greater than production's times ``1 + latency_tolerance``). Significant:
   roll back.
3. **Ratings** (one-sided Mann-Whitney U on the 1-5 ratings, H1: the challenger's are
   greater) and **pairwise preferences** (one-sided binomial test, H1: the challenger wins
   more than half of the pairs). Better: promote; worse (the mirrored tests): roll back.
   At the last look with neither: roll back as inconclusive (the alias never moves
   without evidence).

Tests are only run at fixed *looks*: sample sizes ``min * 2**k`` up to the maximum, each on
the first ``m`` samples of each arm in arrival order. A check between looks repeats the last
look's verdict, so checking often does not inflate the error rates. The level ``alpha`` is
split evenly over the looks of a family (Bonferroni), and over the two evidence families
(ratings, preferences) of the promote decision, so the false-alarm rate of each decision
(promoting a challenger that is no better; rolling back one that is no slower or no worse)
is at most ``alpha``. ``tests/serving/test_policy.py`` measures it by simulation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

WAIT, PROMOTE, ROLLBACK = "wait", "promote", "rollback"


@dataclass(frozen=True)
class CanaryPolicy:
    """The stated policy (every number is in the README).

    Attributes:
        alpha: false-alarm rate of each decision over all its looks.
        min_ratings: ratings (and preference pairs) per arm at the first look.
        max_ratings: ratings per arm at the last look; inconclusive there means roll back.
        min_requests: requests per arm at the first latency look; promotion waits for it.
        max_requests: requests per arm at the last latency look.
        latency_tolerance: how much slower (a fraction) the challenger may be before that counts.
        max_error_rate: hard SLO on the challenger's error rate.
        max_p90_ms: hard SLO on the challenger's server-side p90 latency, in ms.
        slo_min_requests: challenger requests before the SLO is judged.
    """

    alpha: float = 0.05
    min_ratings: int = 20
    max_ratings: int = 160
    min_requests: int = 30
    max_requests: int = 960
    latency_tolerance: float = 0.10
    max_error_rate: float = 0.05
    max_p90_ms: float = 1000.0
    slo_min_requests: int = 10

    def __post_init__(self):
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if not 1 <= self.min_ratings <= self.max_ratings:
            raise ValueError(f"need 1 <= min_ratings <= max_ratings, got {self.min_ratings}, {self.max_ratings}")
        if not 1 <= self.min_requests <= self.max_requests:
            raise ValueError(f"need 1 <= min_requests <= max_requests, got {self.min_requests}, {self.max_requests}")
        if self.latency_tolerance < 0 or not 0 <= self.max_error_rate <= 1 or self.max_p90_ms <= 0:
            raise ValueError("latency_tolerance >= 0, 0 <= max_error_rate <= 1 and max_p90_ms > 0 are required")
        if self.slo_min_requests < 1:
            raise ValueError(f"slo_min_requests must be >= 1, got {self.slo_min_requests}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "CanaryPolicy":
        known = {k: v for k, v in (d or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class ArmStats:
    """What one version gathered since the canary began, samples in arrival order.

    Attributes:
        version: the registry version.
        requests: requests answered or failed.
        errors: requests that failed on the server.
        latencies_ms: server-side latency of each successful request.
        ratings: 1-5 ratings of its requests.
        pairs: pairwise preferences against the other arm, 1 won and 0 lost, in arrival order.
    """

    version: str
    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    ratings: list[float] = field(default_factory=list)
    pairs: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Requests, errors, error rate, latency p50/p90 and mean rating (JSON data)."""
        return {"version": self.version, "requests": self.requests, "errors": self.errors,
                "error_rate": self.errors / self.requests if self.requests else 0.0,
                "p50_ms": percentile(self.latencies_ms, 50), "p90_ms": percentile(self.latencies_ms, 90),
                "ratings": len(self.ratings),
                "mean_rating": sum(self.ratings) / len(self.ratings) if self.ratings else None,
                "wins": sum(self.pairs), "losses": len(self.pairs) - sum(self.pairs)}


@dataclass(frozen=True)
class Decision:
    """``wait``, ``promote`` or ``rollback``, why, and the numbers behind it."""

    action: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


def percentile(xs: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (linear interpolation), None for no samples."""
    if not xs:
        return None
    s = sorted(xs)
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (pos - lo))


def looks(first: int, last: int) -> list[int]:
    """The sample sizes at which a family is tested: ``first * 2**k`` below ``last``, then ``last``."""
    out, m = [], first
    while m < last:
        out.append(m)
        m *= 2
    out.append(last)
    return out


def current_look(n: int, first: int, last: int) -> int | None:
    """The largest look size ``<= n`` (None before the first look)."""
    reached = [m for m in looks(first, last) if m <= n]
    return reached[-1] if reached else None


def mann_whitney_p(x: Sequence[float], y: Sequence[float], alternative: str) -> float:
    """One-sided Mann-Whitney U p-value for H1 ``x`` ``alternative`` (``greater``/``less``) than ``y``.

    Identical constant samples carry no evidence: p = 1.
    """
    from scipy.stats import mannwhitneyu

    if not x or not y:
        return 1.0
    p = float(mannwhitneyu(x, y, alternative=alternative).pvalue)
    return 1.0 if math.isnan(p) else p


def binomial_p(wins: int, n: int, alternative: str) -> float:
    """One-sided exact binomial p-value against a fair coin (H1: wins ``greater``/``less`` than n/2)."""
    from scipy.stats import binomtest

    return float(binomtest(wins, n, 0.5, alternative=alternative).pvalue) if n else 1.0


def check_slo(chal: ArmStats, policy: CanaryPolicy) -> Decision | None:
    """A rollback for a hard SLO breach of the challenger, or None."""
    if chal.requests < policy.slo_min_requests:
        return None
    rate = chal.errors / chal.requests
    if rate > policy.max_error_rate:
        return Decision(ROLLBACK, f"slo: error rate {rate:.1%} over {policy.max_error_rate:.1%} "
                                  f"({chal.errors}/{chal.requests} requests)",
                        {"error_rate": rate, "requests": chal.requests})
    ok = chal.latencies_ms
    if len(ok) >= policy.slo_min_requests:
        p90 = percentile(ok, 90)
        if p90 > policy.max_p90_ms:
            return Decision(ROLLBACK, f"slo: p90 latency {p90:.0f} ms over {policy.max_p90_ms:.0f} ms "
                                      f"({len(ok)} requests)", {"p90_ms": p90, "requests": len(ok)})
    return None


def check_latency(prod: ArmStats, chal: ArmStats, policy: CanaryPolicy) -> tuple[Decision | None, int | None]:
    """A rollback when the challenger is significantly slower at the current look; and that look."""
    n = min(len(prod.latencies_ms), len(chal.latencies_ms))
    m = current_look(n, policy.min_requests, policy.max_requests)
    if m is None:
        return None, None
    level = policy.alpha / len(looks(policy.min_requests, policy.max_requests))
    shifted = [x * (1 + policy.latency_tolerance) for x in prod.latencies_ms[:m]]
    p = mann_whitney_p(chal.latencies_ms[:m], shifted, "greater")
    if p < level:
        return Decision(ROLLBACK, f"latency: challenger slower than production by over "
                                  f"{policy.latency_tolerance:.0%} (Mann-Whitney U p={p:.2g} < {level:.2g}, "
                                  f"n={m} per arm)", {"p_latency": p, "look": m}), m
    return None, m


def check_quality(prod: ArmStats, chal: ArmStats, policy: CanaryPolicy) -> Decision | None:
    """Promote or roll back on ratings and preferences at the current look; inconclusive at the last."""
    level = policy.alpha / len(looks(policy.min_ratings, policy.max_ratings)) / 2
    m = current_look(min(len(prod.ratings), len(chal.ratings)), policy.min_ratings, policy.max_ratings)
    k = current_look(len(chal.pairs), policy.min_ratings, policy.max_ratings)
    details: dict[str, Any] = {"ratings_look": m, "pairs_look": k}
    if m is not None:
        a, b = chal.ratings[:m], prod.ratings[:m]
        better, worse = mann_whitney_p(a, b, "greater"), mann_whitney_p(a, b, "less")
        details.update(p_ratings_better=better, p_ratings_worse=worse)
        if better < level:
            return Decision(PROMOTE, f"ratings: challenger rated higher (Mann-Whitney U p={better:.2g} < "
                                     f"{level:.2g}, n={m} per arm)", details)
        if worse < level:
            return Decision(ROLLBACK, f"ratings: challenger rated lower (Mann-Whitney U p={worse:.2g} < "
                                      f"{level:.2g}, n={m} per arm)", details)
    if k is not None:
        wins = sum(chal.pairs[:k])
        better, worse = binomial_p(wins, k, "greater"), binomial_p(wins, k, "less")
        details.update(p_pairs_better=better, p_pairs_worse=worse)
        if better < level:
            return Decision(PROMOTE, f"preferences: challenger preferred in {wins}/{k} pairs "
                                     f"(binomial p={better:.2g} < {level:.2g})", details)
        if worse < level:
            return Decision(ROLLBACK, f"preferences: production preferred in {k - wins}/{k} pairs "
                                      f"(binomial p={worse:.2g} < {level:.2g})", details)
    if policy.max_ratings in (m, k):
        return Decision(ROLLBACK, f"inconclusive: no evidence the challenger is better after "
                                  f"{policy.max_ratings} ratings or pairs; production stays", details)
    return None


def decide(prod: ArmStats, chal: ArmStats, policy: CanaryPolicy) -> Decision:
    """The policy's verdict on a canary (pure; see the module docstring for the order)."""
    slo = check_slo(chal, policy)
    if slo is not None:
        return slo
    slower, latency_look = check_latency(prod, chal, policy)
    if slower is not None:
        return slower
    verdict = check_quality(prod, chal, policy)
    if verdict is not None and (verdict.action == ROLLBACK or latency_look is not None):
        return verdict
    waiting = {"ratings": [len(prod.ratings), len(chal.ratings)], "requests": [prod.requests, chal.requests],
               "pairs": len(chal.pairs)}
    if verdict is not None:
        return Decision(WAIT, f"ratings favour the challenger; waiting for {policy.min_requests} requests "
                              "per arm to check its latency", waiting)
    return Decision(WAIT, f"gathering evidence (ratings {len(chal.ratings)}/{len(prod.ratings)}, "
                          f"need {policy.min_ratings} per arm)", waiting)
